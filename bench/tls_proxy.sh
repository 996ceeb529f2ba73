#!/usr/bin/env bash
# TLS in front of the local stack's DynamoDB, so the benchmarks can measure
# the HTTPS client work that production pays and DynamoDB Local (plain HTTP)
# does not ask for. Needs nginx (Debian: apt-get install nginx-light); not
# part of the test run.
#
#   bench/tls_proxy.sh start   # after `infra/stack.sh start`; prints the env to use
#   bench/tls_proxy.sh stop
#
# Works in $STACK_DIR/tls-proxy: a throwaway CA and a 127.0.0.1 certificate,
# nginx's config, pid and log. nginx listens on 127.0.0.1 only.
set -euo pipefail

: "${STACK_DIR:?set STACK_DIR to the directory infra/stack.sh uses}"
dir="$STACK_DIR/tls-proxy"

start() {
    command -v nginx > /dev/null || { echo "tls_proxy.sh: nginx not found (apt-get install nginx-light)" >&2; exit 1; }
    local upstream
    upstream=$(sed -n 's|^export AWS_ENDPOINT_URL_DYNAMODB=http://||p' "$STACK_DIR/env")
    [ -n "$upstream" ] || { echo "tls_proxy.sh: no DynamoDB endpoint in $STACK_DIR/env" >&2; exit 1; }
    mkdir -p "$dir"
    cd "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=checkout-best bench CA" -keyout ca.key -out ca.pem 2> /dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=127.0.0.1" -keyout server.key -out server.csr 2> /dev/null
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext.cnf
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile ext.cnf -out server.pem 2> /dev/null
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # Keep-alive both ways, as the SDK's pool and DynamoDB's endpoint do; the
    # Host header is passed on unchanged because SigV4 signed it.
    cat > nginx.conf <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  upstream dynamodb { server $upstream; keepalive 32; }
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $dir/server.pem;
    ssl_certificate_key $dir/server.key;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://dynamodb;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
    }
  }
}
EOF
    nginx -c "$dir/nginx.conf"
    echo "export AWS_ENDPOINT_URL_DYNAMODB=https://127.0.0.1:$port SSL_CERT_FILE=$dir/ca.pem"
}

stop() {
    [ -f "$dir/nginx.pid" ] || { echo "tls_proxy.sh: not running"; return 0; }
    kill "$(cat "$dir/nginx.pid")"
    rm -f "$dir/nginx.pid"
    echo "tls_proxy.sh: stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: bench/tls_proxy.sh start|stop" >&2; exit 2 ;;
esac
