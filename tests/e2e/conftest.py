"""End-to-end fixtures: the real Bedrock emulator, proxy and `cargo lambda watch` processes on
loopback, driven from the outside by the official `anthropic` SDK and by raw sockets.

Every process a fixture starts is stopped at teardown (terminate, wait, then kill). Each proxy's
stderr goes to its own file; test_logs.py scans them all once every other test has run.

Run: `.venv/bin/pytest tests/e2e` (about 40 s once built; the first `cargo lambda watch` start
may compile for a few minutes). Markers: `slow` (the 13 s default-ping test), `lambda_watch`
(test_lambda.py), e.g. `-m "not lambda_watch"`. Set E2E_SKIP_BUILD=1 to skip `cargo build`
(the binaries in the cargo target dir must then be fresh). Claude Code itself runs from
CLAUDE_CODE_BIN, which scripts/test.sh installs from npm (pinned).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import selectors
import signal
import socket
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import anthropic
import pytest

REPO = Path(__file__).resolve().parents[2]


def cargo_target_dir() -> Path:
    """Where cargo puts binaries: `CARGO_TARGET_DIR`, a config file's `build.target-dir`, or
    `target/`; `cargo metadata` knows which."""
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(json.loads(out.stdout)["target_directory"])


TARGET_DEBUG = cargo_target_dir() / "debug"
VENV_BIN = REPO / ".venv" / "bin"

# The one token every proxy accepts; random per run so that a log scan can look for it.
TOKEN = "e2e-token-" + secrets.token_hex(16)
# A distinctive word in every prompt: it must never show up in a proxy's logs.
MARKER = "zebra-sentinel"
MODEL = "claude-sonnet-4-5"
# What the emulator writes when no directive changes the text (tests/emulator/src/answer.rs).
EMULATOR_TEXT = "Hello from the Bedrock emulator."
THINKING_TEXT = "The user wants a reply. A short greeting will do."
TOOL_INPUT = {"location": "Paris", "unit": "celsius"}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
        "required": ["location"],
    },
}
PING_FRAME = b'event: ping\ndata: {"type": "ping"}\n\n'
LAMBDA_FUNCTION = "bedrock-anthropic-proxy"

# Shared by the whole session (test_logs.py reads them at the end).
LOG_FILES: list[Path] = []
# (request-id, HTTP status, what sent it) of every response a test received.
SEEN_RESPONSES: list[tuple[str, int, str]] = []
# Every credential value a test sent; none may ever be logged.
SENT_SECRETS: set[str] = {TOKEN}


def prompt(*directives: str) -> str:
    """A user prompt carrying the marker word and emulator directives."""
    return " ".join([f"{MARKER}: please answer briefly.", *directives])


def wrong_key() -> str:
    key = "wrong-key-" + secrets.token_hex(8)
    SENT_SECRETS.add(key)
    return key


def record_response(request_id: str | None, status: int, source: str) -> None:
    if request_id:
        SEEN_RESPONSES.append((request_id, status, source))


# -- pytest plumbing ----------------------------------------------------------------------


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes 10 s or more (still part of the default run)")
    config.addinivalue_line("markers", "lambda_watch: runs the proxy under `cargo lambda watch`")
    config.addinivalue_line("markers", "after_all: runs after every other collected test")
    # The SDK warns about model retirement dates; the emulator does not care.
    config.addinivalue_line("filterwarnings", "ignore:The model .* is deprecated:DeprecationWarning")


def pytest_collection_modifyitems(session, config, items):
    # Log checks must see every other test's requests, whatever the file order or -k filter.
    items.sort(key=lambda item: item.get_closest_marker("after_all") is not None)


# -- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def isolated_aws_env(workdir: Path) -> dict[str, str]:
    """Dummy credentials and no profile, config file or instance metadata to fall back on."""
    missing = str(workdir / "no-such-aws-file")
    return {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": missing,
        "AWS_SHARED_CREDENTIALS_FILE": missing,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def minimal_env(**extra: str) -> dict[str, str]:
    """A child environment built from scratch: nothing AWS_*, ANTHROPIC_* or secret inherited."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env.update(extra)
    return env


def stop_process(proc: subprocess.Popen, *, group: bool = False, timeout: float = 10) -> None:
    """SIGTERM (the whole process group if `group`), wait, then SIGKILL."""
    if proc.poll() is not None:
        return
    send = (lambda sig: os.killpg(proc.pid, sig)) if group else proc.send_signal
    try:
        send(signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        proc.wait(timeout=timeout)


def descendants(pid: int) -> list[int]:
    """Child processes of `pid`, recursively (from /proc), so none outlives its parent."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"<cannot read {path}: {e}>"


class Emulator:
    """`bedrock-emulator --addr 127.0.0.1:0`; the URL comes from its `LISTENING` line."""

    def __init__(self, binary: Path, workdir: Path):
        self.log_path = workdir / "emulator.stderr.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(binary), "--addr", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=minimal_env(),
        )
        self.url = self._read_listening_line(timeout=30)

    def _read_listening_line(self, timeout: float) -> str:
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                self.stop()
                raise RuntimeError(f"bedrock-emulator printed nothing in {timeout} s: {tail(self.log_path)}")
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("LISTENING http://"):
            self.stop()
            raise RuntimeError(f"bedrock-emulator said {line!r}: {tail(self.log_path)}")
        return line.split(" ", 1)[1]

    def _get(self, path: str):
        host, port = urllib.parse.urlsplit(self.url).netloc.split(":")
        response = http_request(host, int(port), "GET", path, timeout=10)
        body = response.read_body()
        assert response.status == 200, f"emulator {path}: {response.status} {body!r}"
        return json.loads(body)

    def stats(self) -> dict:
        return self._get("/_emulator/stats")

    def requests(self) -> list[dict]:
        return self._get("/_emulator/requests")

    def clear(self) -> None:
        """Forgets the request log (and fail_first counters)."""
        host, port = urllib.parse.urlsplit(self.url).netloc.split(":")
        response = http_request(host, int(port), "DELETE", "/_emulator/requests", timeout=10)
        response.read_body()
        assert response.status == 204, f"emulator clear: {response.status}"

    def stop(self) -> None:
        stop_process(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()


class Proxy:
    """The local proxy binary on a free loopback port, stderr captured to a file."""

    def __init__(self, binary: Path, name: str, env: dict[str, str], workdir: Path):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"proxy-{name}.stderr.log"
        LOG_FILES.append(self.log_path)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(binary)],
            stdout=self._log,
            stderr=self._log,
            env=minimal_env(LISTEN_ADDR=f"127.0.0.1:{self.port}", **env),
        )
        self._wait_ready(timeout=30)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"proxy {self.name} exited with {self.proc.returncode} before /health answered:\n"
                    f"{tail(self.log_path)}"
                )
            try:
                response = http_request("127.0.0.1", self.port, "GET", "/health", timeout=2)
                response.read_body()
                if response.status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"proxy {self.name}: GET /health not 200 within {timeout} s:\n{tail(self.log_path)}")

    def request(self, method: str, path: str, **kwargs) -> "RawResponse":
        return http_request("127.0.0.1", self.port, method, path, **kwargs)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()


class LambdaWatch:
    """`cargo lambda watch` serving the proxy as a Function URL with response streaming.

    Started in its own session so that teardown can signal the whole process group (cargo-lambda,
    cargo and the function binary); any descendant still alive afterwards is killed by pid.
    """

    def __init__(self, env: dict[str, str], workdir: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/lambda-url/{LAMBDA_FUNCTION}"
        self.log_path = workdir / "lambda-watch.stderr.log"
        LOG_FILES.append(self.log_path)
        self._log = self.log_path.open("wb")
        child_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ANTHROPIC_", "CARGO_LAMBDA_"))
        }
        child_env["PATH"] = f"{VENV_BIN}{os.pathsep}{child_env.get('PATH', '')}"
        child_env.update(env)
        self.command = [
            str(VENV_BIN / "cargo-lambda"), "lambda", "watch",
            # Other engineers edit the tree while tests run; a reload would cut a stream short.
            "--ignore-changes",
            # The watch server's own default CORS layer would add access-control-* headers and
            # hide what the function itself sends.
            "--disable-cors",
            "--invoke-address", "127.0.0.1",
            "--invoke-port", str(self.port),
            "--package", "bedrock-anthropic-proxy",
            "--bin", LAMBDA_FUNCTION,
        ]
        self.proc = subprocess.Popen(
            self.command,
            cwd=REPO,
            env=child_env,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float) -> float:
        """Polls GET /health through the Function URL; the first call waits for the compile."""
        started = time.monotonic()
        deadline = started + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"`{' '.join(self.command)}` exited with {self.proc.returncode} before the function "
                    f"answered; its output ends with:\n{tail(self.log_path, 60)}"
                )
            try:
                response = http_request("127.0.0.1", self.port, "GET", self.path("/health"), timeout=60)
                body = response.read_body()
                if response.status == 200:
                    return time.monotonic() - started
                last = f"{response.status} {body[:200]!r}"
            except OSError as e:
                last = repr(e)
            time.sleep(0.5)
        raise RuntimeError(
            f"the function did not answer GET {self.base}/health with 200 within {timeout} s "
            f"(last: {last}); `cargo lambda watch` output ends with:\n{tail(self.log_path, 60)}"
        )

    def path(self, path: str) -> str:
        return urllib.parse.urlsplit(self.base).path + path

    def request(self, method: str, path: str, **kwargs) -> "RawResponse":
        return http_request("127.0.0.1", self.port, method, self.path(path), **kwargs)

    def stop(self) -> None:
        family = descendants(self.proc.pid)
        stop_process(self.proc, group=True)
        for pid in family:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._log.close()


# -- raw HTTP over sockets ----------------------------------------------------------------


@dataclass
class Frame:
    """One SSE frame (up to and including its blank line) and when its last byte arrived."""

    t: float
    raw: bytes

    @property
    def name(self) -> str:
        return self._checked()[0]

    @property
    def data(self) -> dict:
        return self._checked()[1]

    def _checked(self) -> tuple[str, dict]:
        events = assert_sse_framing(self.raw)
        assert len(events) == 1, f"not exactly one frame: {self.raw!r}"
        return events[0]


@dataclass
class RawResponse:
    """An HTTP/1.1 response read by hand, so that byte arrival times can be measured."""

    sock: socket.socket
    sent_at: float
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    header_names: list[str] = field(default_factory=list)

    def __post_init__(self):
        self._file = self.sock.makefile("rb")
        status_line = self._file.readline().decode("latin-1")
        if not status_line:
            raise ConnectionError("connection closed before a status line")
        self.status = int(status_line.split()[1])
        while True:
            line = self._file.readline().decode("latin-1").rstrip("\r\n")
            if not line:
                break
            name, value = line.split(":", 1)
            self.header_names.append(name.lower())
            key = name.lower()
            self.headers[key] = f"{self.headers[key]}, {value.strip()}" if key in self.headers else value.strip()
        self.headers_at = time.monotonic()
        record_response(self.headers.get("request-id"), self.status, "raw")

    def iter_chunks(self) -> Iterator[tuple[float, bytes]]:
        """Body pieces as they arrive: HTTP chunks, or the content-length body at once."""
        if "chunked" in self.headers.get("transfer-encoding", ""):
            while True:
                size_line = self._file.readline()
                if not size_line:
                    raise ConnectionError("connection closed inside a chunked body")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self._file.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                data = self._file.read(size)
                self._file.read(2)
                yield time.monotonic(), data
        elif "content-length" in self.headers:
            length = int(self.headers["content-length"])
            yield time.monotonic(), self._file.read(length) if length else b""
        else:
            data = self._file.read()
            yield time.monotonic(), data

    def iter_frames(self) -> Iterator[Frame]:
        """SSE frames as they complete; a trailing partial frame is yielded as it stands."""
        buffer = b""
        last_t = time.monotonic()
        for t, data in self.iter_chunks():
            buffer += data
            last_t = t
            while b"\n\n" in buffer:
                raw, buffer = buffer.split(b"\n\n", 1)
                yield Frame(t, raw + b"\n\n")
        if buffer:
            yield Frame(last_t, buffer)

    def read_body(self) -> bytes:
        try:
            return b"".join(data for _, data in self.iter_chunks())
        finally:
            self.close()

    def json(self) -> dict:
        return json.loads(self.read_body())

    def close(self) -> None:
        self._file.close()
        self.sock.close()


def http_request(
    host: str,
    port: int,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | dict | None = None,
    timeout: float = 30,
) -> RawResponse:
    """Sends one HTTP/1.1 request on a fresh connection and reads the status and headers."""
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    all_headers = {"Host": f"{host}:{port}", "Connection": "close", **(headers or {})}
    if body is not None:
        all_headers.setdefault("Content-Type", "application/json")
        all_headers["Content-Length"] = str(len(body))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in all_headers.items()) + "\r\n"
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sent_at = time.monotonic()
    sock.sendall(head.encode("latin-1") + (body or b""))
    try:
        return RawResponse(sock, sent_at)
    except BaseException:
        sock.close()
        raise


def message_body(text: str, *, stream: bool, max_tokens: int = 256, **extra) -> dict:
    return {
        "model": MODEL,
        "max_tokens": max_tokens,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"x-api-key": token, "anthropic-version": "2023-06-01"}


SSE_FRAME = re.compile(r"event: ([A-Za-z_]+)\ndata: (\{.*\})")


def assert_sse_framing(body: bytes) -> list[tuple[str, dict]]:
    """Every frame is exactly `event: X\\ndata: {json}\\n\\n` with X == data.type; returns them."""
    text = body.decode()
    assert text.endswith("\n\n"), f"the stream does not end with a blank line: {text[-200:]!r}"
    events = []
    for raw in text[:-2].split("\n\n"):
        match = SSE_FRAME.fullmatch(raw)
        assert match, f"not an `event: X\\ndata: {{json}}` frame: {raw!r}"
        data = json.loads(match[2])
        assert data.get("type") == match[1], f"event name {match[1]!r} but data.type {data.get('type')!r}"
        events.append((match[1], data))
    return events


def assert_error_shape(body: bytes, kind: str) -> dict:
    """Exactly {"type":"error","error":{"type":kind,"message":<non-empty>}}."""
    value = json.loads(body)
    assert set(value) == {"type", "error"}, value
    assert value["type"] == "error", value
    assert set(value["error"]) == {"type", "message"}, value
    assert value["error"]["type"] == kind, value
    assert isinstance(value["error"]["message"], str) and value["error"]["message"], value
    return value


# -- the anthropic SDK --------------------------------------------------------------------


def sdk_client(
    base_url: str,
    *,
    auth: str = "api_key",
    token: str = TOKEN,
    max_retries: int = 0,
    sent_headers: list | None = None,
) -> anthropic.Anthropic:
    """An SDK client for `base_url` that records every response's request-id (and, if asked,
    the headers of every request it sends).

    `auth`: "api_key" or "auth_token" (the SDK's arguments; anthropic 2.x sends both as
    `Authorization: Bearer`), or "x-api-key" (the `x-api-key` header alone, as Claude Code with
    ANTHROPIC_API_KEY and earlier SDKs send it).
    """

    def on_request(request):
        if sent_headers is not None:
            sent_headers.append(dict(request.headers))

    def on_response(response):
        record_response(response.headers.get("request-id"), response.status_code, "sdk")

    http_client = anthropic.DefaultHttpxClient(event_hooks={"request": [on_request], "response": [on_response]})
    credentials = {
        "api_key": {"api_key": token},
        "auth_token": {"auth_token": token},
        # With no credential argument the SDK would look for a profile; omit its header instead.
        "x-api-key": {"api_key": token, "default_headers": {"x-api-key": token, "Authorization": anthropic.omit}},
    }[auth]
    return anthropic.Anthropic(
        base_url=base_url, max_retries=max_retries, timeout=60, http_client=http_client, **credentials
    )


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _isolate_sdk_environment():
    """The SDK reads ANTHROPIC_* (keys, base URL, headers) from the environment; tests set everything."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("ANTHROPIC_") or k == "NO_PROXY"}
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    yield
    os.environ.pop("NO_PROXY", None)
    os.environ.update(saved)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def binaries() -> dict[str, Path]:
    """Builds both binaries (cargo waits if another build holds the target-dir lock)."""
    if os.environ.get("E2E_SKIP_BUILD") != "1":
        build = subprocess.run(
            ["cargo", "build", "--bins", "-p", "bedrock-anthropic-proxy", "-p", "bedrock-emulator"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        if build.returncode != 0:
            pytest.fail(f"cargo build failed ({build.returncode}):\n{build.stderr[-4000:]}", pytrace=False)
    paths = {name: TARGET_DEBUG / name for name in ("bedrock-anthropic-proxy", "bedrock-emulator")}
    for name, path in paths.items():
        if not path.is_file():
            pytest.fail(f"{path} is missing; build it with `cargo build --bins -p {name}`", pytrace=False)
    return paths


@pytest.fixture(scope="session")
def emulator(binaries, workdir) -> Iterator[Emulator]:
    emu = Emulator(binaries["bedrock-emulator"], workdir)
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def start_proxy(binaries, emulator, workdir):
    """Factory: `start_proxy(NAME=value, ...)` starts (or reuses) a proxy with those extra env
    settings on top of the defaults. All are stopped when the session ends."""
    started: dict[tuple, Proxy] = {}

    def start(**overrides: str) -> Proxy:
        key = tuple(sorted(overrides.items()))
        if key not in started:
            env = {
                **isolated_aws_env(workdir),
                "BEARER_TOKEN": TOKEN,
                "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": emulator.url,
                "INFERENCE_PROFILE": "us",
                "UPSTREAM_RETRY_BASE_MS": "5",
                **overrides,
            }
            # Long values (a JSON token secret, say) go by a digest: file names stay short and
            # never carry a token.
            def short(v: str) -> str:
                return re.sub(r"[^A-Za-z0-9]", "", v) if len(v) <= 32 else hashlib.sha256(v.encode()).hexdigest()[:12]

            name = "-".join(f"{k.lower()}_{short(v)}" for k, v in key) or "default"
            started[key] = Proxy(binaries["bedrock-anthropic-proxy"], name, env, workdir)
        return started[key]

    yield start
    for proxy in started.values():
        proxy.stop()


@pytest.fixture(scope="session")
def proxy(start_proxy) -> Proxy:
    """The proxy with default settings (PING_INTERVAL_MS 10 s, 3 upstream attempts)."""
    return start_proxy()


@pytest.fixture(scope="session")
def lambda_function(binaries, emulator, workdir) -> Iterator[LambdaWatch]:
    """The proxy under `cargo lambda watch`, as a Function URL with RESPONSE_STREAM. The first
    start compiles the binary (allowing up to 10 minutes)."""
    watch = LambdaWatch(
        {
            **isolated_aws_env(workdir),
            "BEARER_TOKEN": TOKEN,
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": emulator.url,
            "INFERENCE_PROFILE": "us",
            "UPSTREAM_RETRY_BASE_MS": "5",
            # Must have no effect inside Lambda, where the Function URL owns CORS.
            "CORS_ALLOW_ORIGINS": "*",
        },
        workdir,
    )
    try:
        ready_after = watch.wait_ready(timeout=600)
        print(f"\n[e2e] cargo lambda watch answered after {ready_after:.1f} s")
        yield watch
    finally:
        watch.stop()
