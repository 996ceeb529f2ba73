#!/usr/bin/env python3
"""Benchmark the Lambda functions' release binaries: size, cold init, warm RSS.

For each function (release build, as deployed):

1. size of the stripped binary, and of it zipped as `bootstrap` (deflate 9);
2. cold init: time from spawning the process to its first
   `GET /2018-06-01/runtime/invocation/next` on a local stand-in for the
   Lambda Runtime API (N runs, median and p90);
3. peak RSS (VmHWM) after serving 1,000 API Gateway HTTP API v2 events
   that need no network, checking every response's status code.

An empty lambda_http "hello" function is measured the same way as a
baseline, unless --no-baseline (or --skip-build without a built baseline).

Python 3.11 standard library only. All traffic stays on 127.0.0.1; every
loop is bounded; only processes this script started are killed.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import http.server
import io
import json
import math
import os
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import tomllib
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_DIR = REPO / "target"
RELEASE_DIR = TARGET_DIR / "release"
BASELINE_DIR = TARGET_DIR / "lambda-bench" / "hello"
BASELINE_BIN = BASELINE_DIR / "target" / "release" / "hello"
SOURCE_DIR = TARGET_DIR / "lambda-bench" / "src"  # --rev export
BIN_DIR = TARGET_DIR / "lambda-bench" / "bin"  # the binaries measured after a build
RESULTS = REPO / "bench" / "results" / "lambda.md"

# function -> (sample event that needs no network, the status code it must get)
FUNCTIONS: dict[str, tuple[str, int]] = {
    "connect": ("events/connect-form-tampered.json", 403),
    "status": ("events/status-bad-id.json", 400),
    "internal-status": ("events/internal-status-unauthenticated.json", 401),
    "connect-links": ("events/connect-links.json", 200),
}
BASELINE = "hello (baseline)"
BASELINE_EVENT = ("events/status-bad-id.json", 200)  # hello answers 200 to anything

# Targets (MiB = 1,048,576 bytes, as Lambda reports memory).
TARGET_INIT_MS = 6.0
TARGET_ZIP_MIB = 4.0
TARGET_RSS_MIB = 30.0
MIB = 1024 * 1024

NEXT_PATH = "/2018-06-01/runtime/invocation/next"
INVOCATION_PREFIX = "/2018-06-01/runtime/invocation/"
INIT_ERROR_PATH = "/2018-06-01/runtime/init/error"

EXTRA_ENV: dict[str, str] = {}  # --env KEY=VALUE, over everything else

COLD_TIMEOUT_S = 10.0  # one cold start must reach GET /next within this
WARM_TIMEOUT_S = 300.0  # all warm invocations must be answered within this


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------
# Lambda Runtime API stand-in
# --------------------------------------------------------------------------


@dataclass
class Session:
    """One process's conversation with the runtime API.

    `event` None: a cold-start probe (record the first GET /next, answer
    nothing). Otherwise serve `event` `total` times and record responses.
    """

    function_name: str
    event: bytes | None = None
    total: int = 0
    expected_status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)
    first_connect_ns: int | None = None
    first_next_ns: int | None = None
    got_next: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    all_answered: threading.Event = field(default_factory=threading.Event)
    init_error: str | None = None
    sent: int = 0
    answered: int = 0
    first_dispatch_ns: int | None = None
    last_answer_ns: int | None = None
    inflight: dict[str, int] = field(default_factory=dict)
    latencies_ns: list[int] = field(default_factory=list)
    status_counts: dict[object, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)


class RuntimeServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RuntimeHandler)
        self.session: Session | None = None

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host}:{port}"

    def handle_error(self, request, client_address):
        # A killed function leaves connections that reset mid-request: expected.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def get_request(self):  # runs in the serving thread right after accept()
        conn = super().get_request()
        now = time.perf_counter_ns()
        s = self.session
        if s is not None:
            with s.lock:
                if s.first_connect_ns is None:
                    s.first_connect_ns = now
        return conn


class RuntimeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RuntimeServer

    def log_message(self, format, *args):  # noqa: A002 - keep stderr quiet
        pass

    # -- helpers -----------------------------------------------------------
    def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None):
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if body:
                self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            for _ in range(1_000_000):  # bounded
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _park(self, s: Session) -> None:
        # Nothing more to hand out: block like the real API until the run
        # ends (the process is killed), then drop the connection.
        s.finished.wait(timeout=WARM_TIMEOUT_S + 60)
        self.close_connection = True

    # -- routes ------------------------------------------------------------
    def do_GET(self):
        now = time.perf_counter_ns()
        s = self.server.session
        if self.path != NEXT_PATH or s is None:
            self._send(404, b'{"errorType":"NotFound"}')
            return
        with s.lock:
            first = s.first_next_ns is None
            if first:
                s.first_next_ns = now
        if first:
            s.got_next.set()
        if s.event is None:
            self._park(s)
            return
        with s.lock:
            if s.sent >= s.total:
                index = None
            else:
                index = s.sent
                s.sent += 1
        if index is None:
            self._park(s)
            return
        request_id = str(uuid.uuid4())
        deadline_ms = int(time.time() * 1000) + 30_000
        trace = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"
        headers = {
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": (
                f"arn:aws:lambda:us-east-1:123456789012:function:{s.function_name}"
            ),
            "Lambda-Runtime-Trace-Id": trace,
        }
        dispatched = time.perf_counter_ns()
        with s.lock:
            s.inflight[request_id] = dispatched
            if s.first_dispatch_ns is None:
                s.first_dispatch_ns = dispatched
        self._send(200, s.event, headers)

    def do_POST(self):
        body = self._read_body()
        now = time.perf_counter_ns()
        s = self.server.session
        path = self.path
        if s is None:
            self._send(404)
            return
        if path == INIT_ERROR_PATH:
            with s.lock:
                s.init_error = body.decode("utf-8", "replace")[:2000]
            s.got_next.set()  # wake the waiter: init failed
            s.all_answered.set()
            self._send(202, b'{"status":"OK"}')
            return
        m = re.fullmatch(re.escape(INVOCATION_PREFIX) + r"([^/]+)/(response|error)", path)
        if not m:
            self._send(404, b'{"errorType":"NotFound"}')
            return
        request_id, kind = m.groups()
        with s.lock:
            dispatched = s.inflight.pop(request_id, None)
            if dispatched is None:
                s.errors.append(f"response for unknown request id {request_id}")
            else:
                s.latencies_ns.append(now - dispatched)
            if kind == "error":
                s.errors.append("invocation error: " + body.decode("utf-8", "replace")[:300])
                key: object = "error"
            else:
                try:
                    key = json.loads(body).get("statusCode")
                except (ValueError, AttributeError):
                    key = "unparseable"
                    s.errors.append("unparseable response: " + body[:300].decode("utf-8", "replace"))
                if key != s.expected_status and key != "unparseable":
                    s.errors.append(
                        f"status {key} != expected {s.expected_status}: "
                        + body[:300].decode("utf-8", "replace")
                    )
            s.status_counts[key] = s.status_counts.get(key, 0) + 1
            s.answered += 1
            s.last_answer_ns = now
            done = s.answered >= s.total
        self._send(202, b'{"status":"OK"}')
        if done:
            s.all_answered.set()


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------


def function_env(function_name: str, runtime_api: str, workdir: Path) -> dict[str, str]:
    """What Lambda sets, plus the App's configuration. Dummy values only;
    every endpoint is a closed port on 127.0.0.1 (init makes no call)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        # Lambda runtime (lambda_runtime::Config::from_env + client)
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]00000000000000000000000000000000",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
        "LAMBDA_TASK_ROOT": str(workdir),
        "LAMBDA_RUNTIME_DIR": str(workdir),
        "_HANDLER": "bootstrap",
        # AWS SDK: region and credentials from the environment, no profile
        # files, no instance metadata, endpoints on closed local ports.
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDBENCHMARKDUMMY00",
        "AWS_SECRET_ACCESS_KEY": "benchmark-dummy-secret-access-key-000000",
        "AWS_SESSION_TOKEN": "benchmark-dummy-session-token",
        # HOME is an empty scratch dir: ~/.aws/{config,credentials} are absent,
        # as on Lambda, without the warning an AWS_CONFIG_FILE override logs.
        "HOME": str(workdir),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9",
        "AWS_ENDPOINT_URL_KMS": "http://127.0.0.1:9",
        # The App (shared::config::Config::from_env)
        "TABLE_NAME": "checkout-best-bench",
        "KMS_KEY_ID": "alias/checkout-best-bench",
        "INTERNAL_SECRET": "handler-test-internal-secret-0123456789",
        "PUBLIC_BASE_URL": "https://pay.checkout.best/",
        "ALLOWED_RETURN_HOSTS": "bmos.example",
        "STRIPE_API_BASE": "http://127.0.0.1:9/",
        "STRIPE_TIMEOUT_SECONDS": "2",
    } | EXTRA_ENV


def spawn(binary: Path, env: dict[str, str], log_path: Path, cwd: Path) -> tuple[int, subprocess.Popen]:
    log = open(log_path, "ab")
    try:
        t0 = time.perf_counter_ns()
        proc = subprocess.Popen(
            [str(binary)],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    finally:
        log.close()
    return t0, proc


def stop(proc: subprocess.Popen) -> float | None:
    """Kill the process spawned above (by its pid) and reap it. Returns its
    CPU time (user + system, all threads) in ms, or None if it had already
    exited on its own."""
    if proc.returncode is not None:
        return None
    proc.kill()  # polls first: a process that already exited is reaped, not signalled
    if proc.returncode is not None:
        return None
    try:
        _, status, usage = os.wait4(proc.pid, 0)  # returns promptly after SIGKILL
    except ChildProcessError:
        proc.wait(timeout=10)
        return None
    proc.returncode = os.waitstatus_to_exitcode(status)
    return (usage.ru_utime + usage.ru_stime) * 1000


def proc_status_kib(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS") and rest.strip().endswith("kB"):
                out[key] = int(rest.split()[0])
    return out


def wait_for(event: threading.Event, proc: subprocess.Popen, timeout: float) -> bool:
    """Wait for `event`, giving up when the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if event.wait(0.1):
            return True
        if proc.poll() is not None:
            return event.is_set()
    return event.is_set()


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    | " + line[:300] for line in text[-lines:])


@dataclass
class ColdResult:
    init_ms: list[float] = field(default_factory=list)
    connect_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    init_rss_kib: int | None = None


def cold_start(name: str, binary: Path, server: RuntimeServer, workdir: Path) -> tuple[float, float, float | None, int | None]:
    """One cold start: (ms to GET /next, ms to its TCP accept, CPU ms, VmHWM KiB)."""
    env = function_env(name, server.address, workdir)
    log_path = workdir / f"{safe(name)}-cold.log"
    s = Session(function_name=name)
    server.session = s
    t0, proc = spawn(binary, env, log_path, workdir)
    rss: dict[str, int] = {}
    cpu = None
    try:
        ok = wait_for(s.got_next, proc, COLD_TIMEOUT_S)
        if ok and proc.poll() is None:
            rss = proc_status_kib(proc.pid)
    finally:
        cpu = stop(proc)
        s.finished.set()
        server.session = None
    if s.init_error or not ok or s.first_next_ns is None:
        raise BenchError(
            f"{name}: cold start never reached GET /next "
            f"(exit code {proc.returncode}, init error {s.init_error!r}); log {log_path}:\n" + log_tail(log_path)
        )
    return (
        (s.first_next_ns - t0) / 1e6,
        ((s.first_connect_ns or s.first_next_ns) - t0) / 1e6,
        cpu,
        rss.get("VmHWM"),
    )


@dataclass
class WarmResult:
    invocations: int
    answered: int
    errors: int
    error_samples: list[str]
    status_counts: dict[object, int]
    peak_rss_kib: int
    rss_kib: int
    mean_wall_ms: float
    mean_roundtrip_ms: float


def measure_warm(
    name: str, binary: Path, server: RuntimeServer, event: bytes, expected: int, n: int, workdir: Path
) -> WarmResult:
    env = function_env(name, server.address, workdir)
    log_path = workdir / f"{safe(name)}-warm.log"
    s = Session(function_name=name, event=event, total=n, expected_status=expected)
    server.session = s
    _, proc = spawn(binary, env, log_path, workdir)
    try:
        ok = wait_for(s.all_answered, proc, WARM_TIMEOUT_S)
        alive = proc.poll() is None
        rss = proc_status_kib(proc.pid) if alive else {}
    finally:
        stop(proc)
        s.finished.set()
        server.session = None
    if s.init_error:
        raise BenchError(f"{name}: init failed: {s.init_error}\n" + log_tail(log_path))
    if not ok or not alive or "VmHWM" not in rss:
        raise BenchError(
            f"{name}: answered {s.answered}/{n} invocations, process "
            f"{'alive' if alive else f'exited with {proc.returncode}'}; log {log_path}:\n" + log_tail(log_path)
        )
    with s.lock:
        wall = (s.last_answer_ns - s.first_dispatch_ns) / 1e6 if s.first_dispatch_ns and s.last_answer_ns else 0.0
        lat = [x / 1e6 for x in s.latencies_ns]
        return WarmResult(
            invocations=n,
            answered=s.answered,
            errors=len(s.errors),
            error_samples=s.errors[:3],
            status_counts=dict(s.status_counts),
            peak_rss_kib=rss["VmHWM"],
            rss_kib=rss.get("VmRSS", 0),
            mean_wall_ms=wall / max(s.answered, 1),
            mean_roundtrip_ms=statistics.fmean(lat) if lat else 0.0,
        )


# --------------------------------------------------------------------------
# Sizes
# --------------------------------------------------------------------------


def zipped_size(binary: Path) -> int:
    buf = io.BytesIO()
    info = zipfile.ZipInfo("bootstrap", date_time=(2020, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # unix, so the mode bits below count
    info.external_attr = (0o100755 & 0xFFFF) << 16
    with zipfile.ZipFile(buf, "w") as zf, open(binary, "rb") as src:
        zf.writestr(info, src.read(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return buf.getbuffer().nbytes


def elf_has_symtab(binary: Path) -> bool | None:
    """True if the ELF still has a .symtab (not stripped); None if unreadable."""
    try:
        with open(binary, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:  # ELF64 only
                return None
            endian = "<" if head[5] == 1 else ">"
            shoff = struct.unpack_from(endian + "Q", head, 0x28)[0]
            shentsize, shnum, shstrndx = struct.unpack_from(endian + "HHH", head, 0x3A)
            if not shoff or not shnum:
                return False
            f.seek(shoff)
            table = f.read(shentsize * shnum)
            sections = [struct.unpack_from(endian + "IIQQQQ", table, i * shentsize) for i in range(shnum)]
            _, _, _, _, str_off, str_size = sections[shstrndx]
            f.seek(str_off)
            names = f.read(str_size)
            for name_off, sh_type, *_ in sections:
                end = names.find(b"\0", name_off)
                if names[name_off:end] == b".symtab" or sh_type == 2:  # SHT_SYMTAB
                    return True
            return False
    except (OSError, struct.error, IndexError):
        return None


# --------------------------------------------------------------------------
# Builds
# --------------------------------------------------------------------------


def build_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CARGO_BUILD_JOBS", "1")  # shared 2-core machine
    return env


def export_rev(rev: str) -> tuple[Path, str]:
    """A clean copy of the tracked files at `rev` (git archive: reads the
    repository, changes nothing), so edits in progress stay out of the build."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    marker = SOURCE_DIR / ".lambda-bench-commit"
    if marker.exists() and marker.read_text().strip() == commit:
        return SOURCE_DIR, commit  # already exported: cargo finds it up to date
    shutil.rmtree(SOURCE_DIR, ignore_errors=True)
    SOURCE_DIR.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=REPO, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(SOURCE_DIR, filter="data")
    marker.write_text(commit + "\n")
    return SOURCE_DIR, commit


def build_functions(names: list[str], source: Path) -> float:
    """Release build into the workspace's target/ (shared dependencies), then
    a copy of each binary to target/lambda-bench/bin/, so that a concurrent
    build cannot swap a binary in the middle of the measurements."""
    cmd = ["cargo", "build", "--release"]
    for name in names:
        cmd += ["-p", name]
    env = build_env()
    env["CARGO_TARGET_DIR"] = str(TARGET_DIR)
    where = "" if source == REPO else f"(cd {source.relative_to(REPO)} && "
    print(f"$ {where}CARGO_BUILD_JOBS={env['CARGO_BUILD_JOBS']} {' '.join(cmd)}{')' if where else ''}", flush=True)
    t0 = time.monotonic()
    subprocess.run(cmd, cwd=source, env=env, check=True)
    elapsed = time.monotonic() - t0
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(RELEASE_DIR / name, BIN_DIR / name)
    return elapsed


HELLO_MAIN = """\
// Generated by bench/lambda_bench.py: the smallest lambda_http function,
// as `cargo lambda new` makes it, for a baseline.
use lambda_http::{Body, Error, Request, Response, run, service_fn, tracing};

async fn handler(_event: Request) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body("hello".into())
        .map_err(Box::new)?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    run(service_fn(handler)).await
}
"""


def toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))


def build_baseline() -> float:
    """An empty lambda_http function outside the workspace (own [workspace],
    own target dir under target/), with the workspace's release profile,
    lambda_http/tokio requirements and locked versions."""
    ws = tomllib.loads((REPO / "Cargo.toml").read_text())
    deps = ws["workspace"]["dependencies"]
    profile = ws.get("profile", {}).get("release", {})

    def dep_line(name: str) -> str:
        spec = dict(deps[name]) if isinstance(deps[name], dict) else {"version": deps[name]}
        parts = []
        for k, v in spec.items():
            if isinstance(v, list):
                parts.append(f"{k} = [{', '.join(toml_value(x) for x in v)}]")
            else:
                parts.append(f"{k} = {toml_value(v)}")
        return f"{name} = {{ {', '.join(parts)} }}"

    (BASELINE_DIR / "src").mkdir(parents=True, exist_ok=True)
    manifest = "\n".join(
        [
            "# Generated by bench/lambda_bench.py (baseline); not part of the workspace.",
            "[package]",
            'name = "hello"',
            'version = "0.0.0"',
            'edition = "2024"',
            "publish = false",
            "",
            "[workspace]",
            "",
            "[dependencies]",
            dep_line("lambda_http"),
            dep_line("tokio"),
            "",
            "[profile.release]",
            *(f"{k} = {toml_value(v)}" for k, v in profile.items() if not isinstance(v, dict)),
            "",
        ]
    )
    (BASELINE_DIR / "Cargo.toml").write_text(manifest)
    (BASELINE_DIR / "src" / "main.rs").write_text(HELLO_MAIN)
    lock = REPO / "Cargo.lock"
    if lock.exists() and not (BASELINE_DIR / "Cargo.lock").exists():
        shutil.copyfile(lock, BASELINE_DIR / "Cargo.lock")  # same versions as the functions
    env = build_env()
    env["CARGO_TARGET_DIR"] = str(BASELINE_DIR / "target")
    cmd = ["cargo", "build", "--release"]
    print(f"$ (cd {BASELINE_DIR.relative_to(REPO)} && {' '.join(cmd)})", flush=True)
    t0 = time.monotonic()
    subprocess.run(cmd, cwd=BASELINE_DIR, env=env, check=True)
    return time.monotonic() - t0


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]  # nearest rank


def run_text(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine_info() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = run_text(["git", "rev-parse", "--short", "HEAD"])
    dirty = run_text(["git", "status", "--porcelain", "--untracked-files=no"])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "kernel": platform.release(),
        "rustc": run_text(["rustc", "--version"]),
        "commit": commit + (" (with uncommitted changes)" if dirty and dirty != "?" else ""),
        "python": platform.python_version(),
    }


def ca_store_note() -> str:
    """What rustls-native-certs will load at init (it honours SSL_CERT_FILE
    and SSL_CERT_DIR, else probes the usual places): this cost scales with
    the size of the machine's CA store."""

    def bundle(path: str) -> str:
        try:
            return f"`{path}` ({Path(path).read_bytes().count(b'BEGIN CERTIFICATE')} certificates)"
        except OSError:
            return f"`{path}` (absent)"

    def directory(path: str) -> str:
        try:
            return f"`{path}` ({len(os.listdir(path))} entries)"
        except OSError:
            return f"`{path}` (absent)"

    if "SSL_CERT_FILE" in EXTRA_ENV or "SSL_CERT_DIR" in EXTRA_ENV:
        parts = []
        if "SSL_CERT_FILE" in EXTRA_ENV:
            parts.append("SSL_CERT_FILE " + bundle(EXTRA_ENV["SSL_CERT_FILE"]))
        if "SSL_CERT_DIR" in EXTRA_ENV:
            parts.append("SSL_CERT_DIR " + directory(EXTRA_ENV["SSL_CERT_DIR"]))
        return ", ".join(parts)
    return f"system default: {bundle('/etc/ssl/certs/ca-certificates.crt')} and {directory('/etc/ssl/certs')}"


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already in user
    return total - idle, total


def own_cpu_s() -> float:
    """CPU seconds of this script plus its reaped children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class OtherLoad:
    """How busy the machine was between start() and stop(), and how much of
    that was this script and its children; the rest is noise on the numbers.
    /proc/stat counts in ticks, so short runs are approximate; and contention
    from outside this VM does not show at all."""

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.jiffies0 = cpu_jiffies()
        self.own0 = own_cpu_s()

    def stop(self) -> str:
        capacity = max((time.monotonic() - self.t0) * len(os.sched_getaffinity(0)), 1e-9)
        busy1, _ = cpu_jiffies()
        busy_pct = 100.0 * (busy1 - self.jiffies0[0]) / os.sysconf("SC_CLK_TCK") / capacity
        own_pct = 100.0 * (own_cpu_s() - self.own0) / capacity
        return f"{min(busy_pct, 100):.0f}% busy ({own_pct:.0f}% this benchmark)"


def wait_for_idle(max_wait_s: float, busy_limit_pct: float = 15.0, quiet_windows: int = 3) -> str:
    """Wait (at most max_wait_s) until the machine has been at most
    busy_limit_pct busy for quiet_windows consecutive seconds."""
    deadline = time.monotonic() + max_wait_s
    streak = 0
    last = 100.0
    print(f"waiting up to {max_wait_s:.0f} s for an idle machine (≤ {busy_limit_pct:g}% busy for {quiet_windows} s)", flush=True)
    while time.monotonic() < deadline:
        b0, t0 = cpu_jiffies()
        time.sleep(1.0)
        b1, t1 = cpu_jiffies()
        last = 100.0 * (b1 - b0) / max(t1 - t0, 1)
        streak = streak + 1 if last <= busy_limit_pct else 0
        if streak >= quiet_windows:
            return f"machine idle (≤ {busy_limit_pct:g}% busy for {quiet_windows} s) before the runs"
    return f"machine still {last:.0f}% busy after waiting {max_wait_s:.0f} s; measured anyway"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("PASS" if ok else "FAIL")


@dataclass
class Row:
    name: str
    size: int
    zipped: int
    has_symtab: bool | None  # True: not stripped
    cold: ColdResult
    warm: WarmResult | None


def markdown(rows: list[Row], args, info: dict[str, str], loads: tuple[str, str], timings: dict[str, float]) -> str:
    head = (
        "| function | binary | zipped | init median | init p90 | RSS after init | "
        f"peak RSS after {args.invocations} inv. | mean inv. | errors | "
        f"init ≤ {TARGET_INIT_MS:g} ms | zip ≤ {TARGET_ZIP_MIB:g} MiB | RSS ≤ {TARGET_RSS_MIB:g} MiB |"
    )
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for r in rows:
        med = statistics.median(r.cold.init_ms)
        is_baseline = r.name == BASELINE
        warm = r.warm
        lines.append(
            "| "
            + " | ".join(
                [
                    r.name,
                    f"{r.size / MIB:.2f} MiB" + ("" if r.has_symtab is not True else " (not stripped!)"),
                    f"{r.zipped / MIB:.2f} MiB",
                    f"{med:.2f} ms",
                    f"{p90(r.cold.init_ms):.2f} ms",
                    f"{r.cold.init_rss_kib / 1024:.1f} MiB" if r.cold.init_rss_kib else "?",
                    f"{warm.peak_rss_kib / 1024:.1f} MiB" if warm else "—",
                    f"{warm.mean_wall_ms:.3f} ms" if warm else "—",
                    f"{warm.errors}" if warm else "—",
                    "(ref)" if is_baseline else verdict(med <= TARGET_INIT_MS),
                    "(ref)" if is_baseline else verdict(r.zipped <= TARGET_ZIP_MIB * MIB),
                    "(ref)" if is_baseline else (verdict(warm.peak_rss_kib * 1024 <= TARGET_RSS_MIB * MIB) if warm else "—"),
                ]
            )
            + " |"
        )
    out = ["# Lambda functions: size, cold init, memory", ""]
    out.append(
        f"{info['date']} · {info['nproc']} CPUs ({info['cpu']}) · Linux {info['kernel']} · "
        f"{info['rustc']} · commit {info['commit']} · load average {loads[0]} before, {loads[1]} after"
        + (f" · CPU during the cold starts {info['other_load']}" if "other_load" in info else "")
        + (f" · {info['idle']}" if "idle" in info else "")
    )
    out.append("")
    out.append(
        "Command: `" + " ".join(["python3", "bench/lambda_bench.py", *sys.argv[1:]]) + "` "
        f"({args.runs} cold starts per function after {args.warmup} unmeasured; "
        f"{args.invocations} warm invocations; p90 is nearest-rank)."
    )
    out.append(f"CA certificates the functions load at init: {ca_store_note()}.")
    if EXTRA_ENV:
        out.append("Extra environment: " + ", ".join(f"`{k}={v}`" for k, v in EXTRA_ENV.items()) + ".")
    if timings:
        out.append("Timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ".")
    out.append("")
    out.extend(lines)
    out.append("")
    out.append(
        "Init: time from `Popen` (release binary, 128 MB env, dummy AWS credentials) to the first "
        "`GET /2018-06-01/runtime/invocation/next` parsed by a local Python stand-in for the Runtime API "
        "(the TCP accept comes earlier; see below); cold starts "
        + ("one binary after another. " if args.sequential else "interleaved across the binaries. ")
        + "Zipped: the binary as `bootstrap`, deflate 9. "
        "Peak RSS: `VmHWM` after the last answer. Mean inv.: wall time of all invocations ÷ count, "
        "including the stand-in's own overhead. Init CPU: user + system time of the whole process, "
        "all threads, until it is killed at its first `GET /next`. Sizes and memory in MiB (1,048,576 bytes)."
    )
    out.append("")
    out.append(
        "| function | event (expected status) | status codes seen | init min | init median to TCP accept "
        "| init CPU median (user+sys) | mean round trip |"
    )
    out.append("|---|---|---|---|---|---|---|")
    for r in rows:
        ev, exp = FUNCTIONS.get(r.name, BASELINE_EVENT)
        w = r.warm
        codes = ", ".join(f"{k}×{v}" for k, v in sorted(w.status_counts.items(), key=str)) if w else "—"
        cpu = f"{statistics.median(r.cold.cpu_ms):.2f} ms" if r.cold.cpu_ms else "?"
        out.append(
            f"| {r.name} | `{ev}` ({exp}) | {codes} | {min(r.cold.init_ms):.2f} ms | "
            f"{statistics.median(r.cold.connect_ms):.2f} ms | {cpu} | "
            + (f"{w.mean_roundtrip_ms:.3f} ms" if w else "—")
            + " |"
        )
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--skip-build", action="store_true", help="use the binaries already in target/release")
    ap.add_argument("--runs", type=int, default=30, help="cold starts per function (default 30)")
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured cold starts first (default 1)")
    ap.add_argument("--invocations", type=int, default=1000, help="warm invocations (default 1000)")
    ap.add_argument("--functions", default=",".join(FUNCTIONS), help="comma-separated subset")
    ap.add_argument(
        "--rev",
        help="build a clean export of this git revision (e.g. HEAD) instead of the working tree",
    )
    ap.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the functions, over the defaults (repeatable), e.g. SSL_CERT_DIR=/empty",
    )
    ap.add_argument(
        "--wait-idle",
        type=float,
        default=120,
        metavar="SECONDS",
        help="before measuring, wait up to SECONDS (default 120; 0: don't) for the shared machine to be idle",
    )
    ap.add_argument(
        "--sequential",
        action="store_true",
        help="cold-start each binary --runs times in a row instead of round-robin (warmer caches: faster)",
    )
    ap.add_argument("--no-baseline", action="store_true", help="skip the empty lambda_http baseline")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"Markdown output (default {RESULTS.relative_to(REPO)})")
    args = ap.parse_args()

    names = [n.strip() for n in args.functions.split(",") if n.strip()]
    unknown = [n for n in names if n not in FUNCTIONS]
    if unknown:
        ap.error(f"unknown function(s) {unknown}; known: {', '.join(FUNCTIONS)}")
    if not (1 <= args.runs <= 10_000 and 0 <= args.warmup <= 100 and 1 <= args.invocations <= 1_000_000):
        ap.error("--runs 1..10000, --warmup 0..100, --invocations 1..1000000")

    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            ap.error(f"--env needs KEY=VALUE, got {item!r}")
        EXTRA_ENV[key] = value

    timings: dict[str, float] = {}
    started = time.monotonic()
    info = machine_info()
    if args.skip_build and args.rev:
        ap.error("--rev needs a build; drop --skip-build")
    if not args.skip_build:
        source = REPO
        if args.rev:
            source, commit = export_rev(args.rev)
            info["commit"] = commit[:7] + f" (clean export of {args.rev})"
        timings["build"] = build_functions(names, source)
        if not args.no_baseline:
            timings["baseline build"] = build_baseline()
        binaries: list[tuple[str, Path]] = [(n, BIN_DIR / n) for n in names]
    else:
        binaries = [(n, RELEASE_DIR / n) for n in names]
        info["commit"] = f"unknown: --skip-build took target/release as found (HEAD is {info['commit']})"
    if not args.no_baseline:
        if BASELINE_BIN.exists():
            binaries.append((BASELINE, BASELINE_BIN))
        else:
            print(f"note: no baseline binary at {BASELINE_BIN}; run without --skip-build to build it", file=sys.stderr)
    missing = [str(p) for _, p in binaries if not p.exists()]
    if missing:
        print("missing binaries (build first, or drop --skip-build): " + ", ".join(missing), file=sys.stderr)
        return 2

    if args.wait_idle > 0:
        info["idle"] = wait_for_idle(args.wait_idle)
        print(info["idle"], flush=True)
    info["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_before = loadavg()
    bench_started = time.monotonic()
    server = RuntimeServer()
    serve_thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True)
    serve_thread.start()
    rows: list[Row] = []
    failures = 0
    workdir = Path(tempfile.mkdtemp(prefix="lambda-bench-"))
    try:
        # Cold starts round-robin over the binaries, so that load from
        # elsewhere on this shared machine hits every function alike.
        cold = {name: ColdResult() for name, _ in binaries}
        broken: set[str] = set()
        noise = OtherLoad()
        noise.start()
        order = "one binary after another" if args.sequential else "interleaved"
        print(f"cold starts: {args.warmup} + {args.runs} per binary, {order}", flush=True)
        rounds = range(args.warmup + args.runs)
        if args.sequential:
            schedule = [(i, name, binary) for name, binary in binaries for i in rounds]
        else:
            schedule = [(i, name, binary) for i in rounds for name, binary in binaries]
        for i, name, binary in schedule:
            if name in broken:
                continue
            try:
                init, connect, cpu, rss = cold_start(name, binary, server, workdir)
            except BenchError as err:
                print(f"   FAILED: {err}", file=sys.stderr, flush=True)
                broken.add(name)
                failures += 1
                continue
            if i < args.warmup:
                continue
            c = cold[name]
            c.init_ms.append(init)
            c.connect_ms.append(connect)
            if cpu is not None:
                c.cpu_ms.append(cpu)
            if c.init_rss_kib is None:
                c.init_rss_kib = rss
        info["other_load"] = noise.stop()
        print(f"CPU during the cold starts: {info['other_load']}", flush=True)
        for name, binary in binaries:
            if name in broken:
                continue
            c = cold[name]
            event_path, expected = FUNCTIONS.get(name, BASELINE_EVENT)
            event = (REPO / event_path).read_bytes()
            size = binary.stat().st_size
            zipped = zipped_size(binary)
            print(f"\n== {name}: {size / MIB:.2f} MiB, zipped {zipped / MIB:.2f} MiB", flush=True)
            print(
                f"   cold init: median {statistics.median(c.init_ms):.2f} ms, p90 {p90(c.init_ms):.2f} ms, "
                f"min {min(c.init_ms):.2f}, max {max(c.init_ms):.2f} (TCP accept median "
                f"{statistics.median(c.connect_ms):.2f} ms; CPU median "
                f"{statistics.median(c.cpu_ms) if c.cpu_ms else float('nan'):.2f} ms)",
                flush=True,
            )
            try:
                warm = measure_warm(name, binary, server, event, expected, args.invocations, workdir)
            except BenchError as err:
                print(f"   FAILED: {err}", file=sys.stderr, flush=True)
                failures += 1
                continue
            print(
                f"   {warm.answered} invocations: peak RSS {warm.peak_rss_kib / 1024:.1f} MiB "
                f"(now {warm.rss_kib / 1024:.1f}), {warm.mean_wall_ms:.3f} ms each, "
                f"status codes {warm.status_counts}, {warm.errors} errors",
                flush=True,
            )
            for sample in warm.error_samples:
                print(f"   ! {sample}", flush=True)
            if warm.errors:
                failures += 1
            rows.append(Row(name, size, zipped, elf_has_symtab(binary), c, warm))
    finally:
        server.session = None
        server.shutdown()
        server.server_close()
    timings["bench"] = time.monotonic() - bench_started
    if not args.skip_build:
        timings["total"] = time.monotonic() - started

    if rows:
        report = markdown(rows, args, info, (load_before, loadavg()), timings)
        print("\n" + report)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
        print(f"wrote {args.out}")
    shutil.rmtree(workdir, ignore_errors=True) if not failures else print(f"logs kept in {workdir}")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as err:
        print(f"failed: {' '.join(map(str, err.cmd))} (exit code {err.returncode})", file=sys.stderr)
        sys.exit(2)
