#!/usr/bin/env bash
# Local stack: DynamoDB Local, moto (KMS) and localstripe, on free 127.0.0.1 ports.
#
#   infra/stack.sh start    start all three, bootstrap them, write $STACK_DIR/env
#   infra/stack.sh stop     stop exactly what `start` recorded (safe to repeat)
#   infra/stack.sh serve    build the functions and serve them at their production
#                           paths with `cargo lambda watch` (after start); writes
#                           $STACK_DIR/service.env (CHECKOUT_BASE_URL, INTERNAL_SECRET, ...)
#   infra/stack.sh status   show what is running
#
# STACK_DIR (default .local/stack) holds logs, pids and env, so two stacks (a dev's
# `run` and the test command) can run at once: ports are picked free each start.
# Then: `source "$STACK_DIR/env"` to point the SDKs at the stack.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="$(mkdir -p "${STACK_DIR:-$ROOT/.local/stack}" && cd "${STACK_DIR:-$ROOT/.local/stack}" && pwd)"
VENV="$ROOT/.local/venv"
DDB="$ROOT/.local/node/dynamodb-local/emulator"
PIDS="$STACK_DIR/pids"   # lines: name pid starttime port
ENV_FILE="$STACK_DIR/env"
READY_TIMEOUT="${READY_TIMEOUT:-30}"  # seconds per service

log() { echo "stack.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Kernel start time of a process (field 22 of /proc/PID/stat). Recorded next to
# each pid so a stale pid file never makes us signal an unrelated, reused pid.
starttime() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null || true; }

# Ask the OS for N distinct free loopback ports (all bound at once, so no repeats).
free_ports() {
  "$VENV/bin/python" - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# True once something answers HTTP on 127.0.0.1:$1 (any status: 4xx still means
# the server is up). Pure bash (no curl needed), cheap enough to poll every 0.1 s.
http_up() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
    IFS= read -r -t 2 line <&3
    [[ "$line" == HTTP/* ]]
  ) 2>/dev/null
}

# launch NAME PORT CMD...: runs CMD in its own session (so its process group id is
# its pid and `stop` can signal the whole group), logs to $STACK_DIR/NAME.log.
launch() {
  local name="$1" port="$2"; shift 2
  # No job control in a script, so this child is not a group leader and setsid
  # execs in place: $! is the new session's leader.
  (cd "$STACK_DIR" && exec setsid "$@" >"$STACK_DIR/$name.log" 2>&1 </dev/null) &
  local pid=$!
  echo "$name $pid $(starttime "$pid") $port" >>"$PIDS"
}

# wait_ready NAME PORT PATH: bounded wait; on failure shows the log tail.
wait_ready() {
  local name="$1" port="$2" path="$3" pid
  pid="$(awk -v n="$name" '$1 == n {print $2}' "$PIDS")"
  local deadline=$((SECONDS + READY_TIMEOUT))
  until http_up "$port" "$path"; do
    if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
      log "$name did not become ready on port $port (pid $pid); last log lines:"
      tail -n 30 "$STACK_DIR/$name.log" >&2 || true
      stop_all
      exit 1
    fi
    sleep 0.1
  done
  log "$name ready on 127.0.0.1:$port"
}

# True while process group $1 has a live (non-zombie) member. Zombies count as
# gone: when start fails, the not-yet-reaped children are our own.
group_alive() {
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } |
    awk -v g="$1" '{ sub(/^.*\) /, "") } $3 == g && $1 != "Z" { f = 1 } END { exit !f }'
}

alive() {  # alive PID STARTTIME: the recorded process is still the same one
  [[ -n "$1" && "$(starttime "$1")" == "$2" ]]
}

stop_all() {
  [[ -f "$PIDS" ]] || { log "not running ($STACK_DIR)"; rm -f "$ENV_FILE"; return 0; }
  local name pid st port groups=()
  while read -r name pid st port; do
    if alive "$pid" "$st"; then
      kill -TERM -- "-$pid" 2>/dev/null || true
      groups+=("$pid")
    fi
  done <"$PIDS"
  # Wait for every process of each group to exit; SIGKILL after 10 s; give up
  # (loudly) after 15 s rather than hang.
  local deadline=$((SECONDS + 10)) g
  for g in "${groups[@]}"; do
    while group_alive "$g"; do
      if ((SECONDS >= deadline + 5)); then log "WARNING: group $g still alive"; break; fi
      if ((SECONDS >= deadline)); then kill -KILL -- "-$g" 2>/dev/null || true; fi
      sleep 0.1
    done
  done
  rm -f "$PIDS" "$ENV_FILE" "$STACK_DIR/service.env"
  log "stopped ${#groups[@]} process group(s) ($STACK_DIR)"
}

start() {
  [[ -f "$VENV/.installed" && -f "$DDB/DynamoDBLocal.jar" ]] || die "tools missing: run infra/install.sh"
  if [[ -f "$PIDS" ]]; then
    local name pid st port
    while read -r name pid st port; do
      alive "$pid" "$st" && die "already running in $STACK_DIR (infra/stack.sh stop first)"
    done <"$PIDS"
    rm -f "$PIDS"  # left by a stack that died or a machine restart
  fi
  rm -f "$ENV_FILE"

  local ports ddb_port kms_port stripe_port
  ports="$(free_ports 3)"
  read -r ddb_port kms_port stripe_port <<<"$ports"

  # DynamoDB Local cannot choose its bind address (it listens on all interfaces);
  # everything we send it goes to 127.0.0.1. Small-heap JIT flags: ~1 s, ~135 MB.
  # The table lives in that heap: a benchmark with 10,000 orders needs more
  # (DYNAMODB_HEAP=512m; bench/README.md).
  launch dynamodb "$ddb_port" java "-Xmx${DYNAMODB_HEAP:-64m}" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Djava.library.path="$DDB/DynamoDBLocal_lib" -jar "$DDB/DynamoDBLocal.jar" \
    -inMemory -sharedDb -disableTelemetry -port "$ddb_port"
  launch moto "$kms_port" "$VENV/bin/moto_server" -H 127.0.0.1 -p "$kms_port"
  launch localstripe "$stripe_port" "$VENV/bin/python" "$ROOT/infra/localstripe_launcher.py" --port "$stripe_port"

  wait_ready moto "$kms_port" /moto-api/
  wait_ready localstripe "$stripe_port" /js.stripe.com/v3/
  wait_ready dynamodb "$ddb_port" /

  # Written to a temp file and renamed only after bootstrap succeeds, so an env
  # file means a fully usable stack.
  cat >"$ENV_FILE.tmp" <<EOF
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=local
export AWS_SECRET_ACCESS_KEY=local
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$ddb_port
export AWS_ENDPOINT_URL_KMS=http://127.0.0.1:$kms_port
# moto serves Secrets Manager too: in AWS each secret comes from there
# (tests/system/tests/secrets_from_secrets_manager.rs runs that path).
export AWS_ENDPOINT_URL_SECRETS_MANAGER=http://127.0.0.1:$kms_port
export TABLE_NAME=checkout-best-local
export KMS_KEY_ID=alias/checkout-best-local
export STRIPE_API_BASE=http://127.0.0.1:$stripe_port/
export STRIPE_JS_URL=http://127.0.0.1:$stripe_port/js.stripe.com/v3/
EOF
  # (AWS_DEFAULT_REGION: boto3/botocore read that one; the Rust SDK reads AWS_REGION.)
  if ! (set -a && source "$ENV_FILE.tmp" && "$VENV/bin/python" "$ROOT/infra/bootstrap.py"); then
    log "bootstrap failed; stopping the stack"
    rm -f "$ENV_FILE.tmp"
    stop_all
    exit 1
  fi
  mv "$ENV_FILE.tmp" "$ENV_FILE"
  log "up; env in $ENV_FILE"
}

# The functions, served by `cargo lambda watch` at their production paths (the
# router in Cargo.toml). Settings come from the environment: PORT (else a free
# one) and INTERNAL_SECRET (else generated and printed). Recorded in the same
# pid file, so `stop` ends it with the emulators.
serve() {
  [[ -f "$ENV_FILE" ]] || die "stack not started (infra/stack.sh start first)"
  # shellcheck disable=SC1090
  source "$ENV_FILE"
  local port="${PORT:-}"
  [[ -n "$port" ]] || port="$(free_ports 1)"
  local secret="${INTERNAL_SECRET:-}"
  if [[ -z "$secret" ]]; then
    secret="$("$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(32))')"
    log "INTERNAL_SECRET was not set; generated one for this local run:"
    echo "INTERNAL_SECRET=$secret"
  fi
  # Locally both secrets are INTERNAL_SECRET, given as values (fast, no
  # Secrets Manager read per cold start), so the tests and BMOS stand-ins
  # sign everything with the one value. In AWS they are two secrets; the
  # separation is proven by the unit and template tests, and the Secrets
  # Manager path against moto.
  cat >"$STACK_DIR/service.env" <<EOF
export CHECKOUT_BASE_URL=http://127.0.0.1:$port
export PUBLIC_BASE_URL=http://127.0.0.1:$port/
export INTERNAL_SECRET=$secret
export BMOS_AUTH_SECRET=$secret
export LINK_SIGNING_SECRET=$secret
export LOCAL_MODE=true
export ALLOWED_RETURN_HOSTS=localhost,127.0.0.1
# The Stripe emulator refuses automatic_payment_methods; real Stripe uses them.
export STRIPE_PAYMENT_METHOD_TYPES=card
export RUST_LOG=${RUST_LOG:-info}
EOF
  # shellcheck disable=SC1090
  source "$STACK_DIR/service.env"
  # Build first: watch compiles lazily on the first request, which would
  # otherwise time out the first test or click.
  log "building the functions"
  local packages=() dir
  for dir in "$ROOT"/functions/*/; do packages+=(-p "$(basename "$dir")"); done
  (cd "$ROOT" && cargo build --quiet --bins "${packages[@]}") || die "build failed"
  # Reloading on every file change is for `make run`. A test run must not
  # have its functions restarted under it by an edit elsewhere in the tree:
  # a request caught in the restart is dropped.
  local reload=(--ignore-changes)
  [[ "${RELOAD_ON_CHANGE:-}" == 1 ]] && reload=()
  # With RECORD_RESPONSES=DIR (the test command), clients reach the functions
  # through infra/recording_proxy.py, which appends every answer to
  # DIR/http.jsonl for the secret scan (infra/tests/test_responses.py); the
  # functions listen on a port of their own behind it.
  local functions_port="$port"
  if [[ -n "${RECORD_RESPONSES:-}" ]]; then
    functions_port="$(free_ports 1)"
    launch recorder "$port" "$VENV/bin/python" "$ROOT/infra/recording_proxy.py" \
      "$port" "$functions_port" "$RECORD_RESPONSES/http.jsonl"
  fi
  launch service "$functions_port" env -C "$ROOT" PATH="$VENV/bin:$PATH" \
    cargo lambda watch --offline --disable-cors "${reload[@]}" -A 127.0.0.1 -P "$functions_port"
  READY_TIMEOUT="${SERVE_TIMEOUT:-300}" wait_ready service "$functions_port" /stripe/status/00000000-0000-0000-0000-000000000000
  # Start every function once so the first real request is warm (directly:
  # these warm-ups are not the suite's requests).
  http_up "$functions_port" /stripe/connect || true
  http_up "$functions_port" /api/internal/stores/00000000-0000-0000-0000-000000000000/stripe-status || true
  (exec 3<>"/dev/tcp/127.0.0.1/$functions_port" &&
    printf 'POST /api/internal/stores/00000000-0000-0000-0000-000000000000/connect-links HTTP/1.0\r\nHost: x\r\nContent-Length: 0\r\n\r\n' >&3 &&
    IFS= read -r -t 30 _ <&3) 2>/dev/null || true
  if [[ -n "${RECORD_RESPONSES:-}" ]]; then
    wait_ready recorder "$port" /stripe/status/00000000-0000-0000-0000-000000000000
  fi
  log "functions served on http://127.0.0.1:$port (env in $STACK_DIR/service.env)"
}

status() {
  [[ -f "$PIDS" ]] || { echo "not running ($STACK_DIR)"; return 1; }
  local name pid st port rc=0
  while read -r name pid st port; do
    if alive "$pid" "$st"; then
      echo "$name: running, pid $pid, 127.0.0.1:$port"
    else
      echo "$name: NOT running (was pid $pid, port $port)"; rc=1
    fi
  done <"$PIDS"
  [[ -f "$ENV_FILE" ]] && echo "env: $ENV_FILE" || { echo "env: missing (start incomplete)"; rc=1; }
  return $rc
}

case "${1:-}" in
  start) start ;;
  serve) serve ;;
  stop) stop_all ;;
  status) status ;;
  *) echo "usage: $0 start|serve|stop|status" >&2; exit 2 ;;
esac
