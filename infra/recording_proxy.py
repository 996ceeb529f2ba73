"""Stands in front of the functions during `make test` and records every answer
they give, so that infra/tests/test_responses.py can prove that no page and no
API response hands out a secret it should not (issue 15, item 6).

    recording_proxy.py LISTEN_PORT UPSTREAM_PORT RECORD_FILE

Every client of the test run (the system tests, the browser, the smoke test,
schemathesis) talks to LISTEN_PORT; each exchange is forwarded unchanged to the
functions on UPSTREAM_PORT, and one JSON line per exchange is appended to
RECORD_FILE: the request's method, target and body (what the caller already
held) and the response's status, headers and body. Request headers are not
recorded: they carry BMOS's credentials, which the record has no need of.

Standard library only, one thread per connection; it adds well under a
millisecond per request on 127.0.0.1.
"""

import http.client
import http.server
import json
import sys
import threading

# Headers that describe one hop, not the message (RFC 9110, section 7.6.1).
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
}
UPSTREAM_TIMEOUT = 300


class Upstream(http.client.HTTPConnection):
    """Sends the request line as the client sent it: the server parsed it as
    Latin-1, and http.client would refuse (or re-encode) bytes the functions
    must see unchanged, such as a schemathesis path with odd characters."""

    def _validate_path(self, url):
        pass

    def _encode_request(self, request):
        return request.encode("latin-1")


class Recorder:
    def __init__(self, path):
        self.file = open(path, "a", encoding="utf-8")
        self.lock = threading.Lock()

    def write(self, record):
        line = json.dumps(record, ensure_ascii=False)
        with self.lock:
            self.file.write(line + "\n")
            self.file.flush()


def text(body):
    return body.decode("utf-8", "replace")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream_port = 0
    recorder = None

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Trailer section, up to the empty line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def forward(self):
        body = self.read_body()
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
        upstream = Upstream("127.0.0.1", self.upstream_port, timeout=UPSTREAM_TIMEOUT)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() != "content-length":
                    upstream.putheader(name, value)
            if body or self.command in ("POST", "PUT", "PATCH"):
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            answer = upstream.getresponse()
            answer_body = answer.read()
            status, reason = answer.status, answer.reason
            answer_headers = [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP]
        except Exception as err:  # noqa: BLE001 (any failure is the proxy's 502, never a dropped client)
            # The type only: a message could quote the path, which holds tokens.
            print(f"recording proxy: {self.command} failed upstream: {type(err).__name__}", file=sys.stderr)
            status, reason = 502, "Bad Gateway"
            answer_body = f"recording proxy: no answer from the functions ({type(err).__name__})".encode()
            answer_headers = [("Content-Type", "text/plain")]
        finally:
            upstream.close()

        self.recorder.write(
            {
                "method": self.command,
                "target": self.path,
                "request_body": text(body),
                "status": status,
                "headers": answer_headers,
                "body": text(answer_body),
            }
        )
        self.send_response_only(status, reason)
        for name, value in answer_headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        if status >= 200 and status not in (204, 304):
            self.send_header("Content-Length", str(len(answer_body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer_body)

    def __getattr__(self, name):
        # Every method goes through, TRACE and made-up ones included: what
        # the functions answer to them is part of what is tested.
        if name.startswith("do_"):
            return self.forward
        raise AttributeError(name)

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


def main():
    listen_port, upstream_port, record_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    Handler.upstream_port = upstream_port
    Handler.recorder = Recorder(record_file)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", listen_port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
