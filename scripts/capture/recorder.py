#!/usr/bin/env python3
"""Local recorder for scripts/capture-claude-code.sh: one process per `claude -p` run.

It listens on 127.0.0.1 and plays two roles at once:

* the first-party Anthropic API (``ANTHROPIC_BASE_URL=http://127.0.0.1:PORT``): plain HTTP;
* an HTTP CONNECT proxy (``HTTPS_PROXY=http://127.0.0.1:PORT``) that terminates TLS for the hosts
  named with ``--allow-host`` (Bedrock Runtime, Bedrock Mantle) with a leaf certificate made on the
  spot and signed by a throwaway CA (``--ca-dir``; the CLI trusts it through ``NODE_EXTRA_CA_CERTS``).
  A CONNECT to any other host is refused (403) and logged, so nothing leaves the machine.

Every request is appended to ``--log`` as one JSON line (all headers, lower-cased, credentials
redacted; the body parsed as JSON when it is JSON) and answered so that the CLI finishes normally:
Anthropic SSE for /v1/messages (first party) and /anthropic/v1/messages (Mantle), an
``application/vnd.amazon.eventstream`` body of ``chunk`` frames for Bedrock's
InvokeModelWithResponseStream, plain JSON for the non-streaming variants and count_tokens.

Only the Python 3.11 standard library and the ``openssl`` command-line tool are used.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REDACT = {"authorization", "x-api-key", "proxy-authorization", "x-amz-security-token", "cookie"}
REPLY_TEXT = "ok"


# --------------------------------------------------------------------------- certificates


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def ensure_ca(ca_dir: Path) -> tuple[Path, Path]:
    """The throwaway CA (EC P-256, valid two days); made once per capture, reused by every run."""
    ca_dir.mkdir(parents=True, exist_ok=True)
    crt, key = ca_dir / "ca.crt", ca_dir / "ca.key"
    if not crt.exists():
        _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(crt), "-days", "2",
            "-subj", "/CN=capture-claude-code throwaway CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-addext", "subjectKeyIdentifier=hash",
        )
    return crt, key


class LeafCerts:
    """An SSLContext per host, each with a leaf certificate for that host signed by the CA."""

    def __init__(self, ca_dir: Path):
        self.dir = ca_dir
        self.ca_crt, self.ca_key = ensure_ca(ca_dir)
        self.lock = threading.Lock()
        self.contexts: dict[str, ssl.SSLContext] = {}

    def context(self, host: str) -> ssl.SSLContext:
        with self.lock:
            if host in self.contexts:
                return self.contexts[host]
            safe = re.sub(r"[^A-Za-z0-9.-]", "_", host)
            key, csr, crt, ext = (self.dir / f"{safe}.{s}" for s in ("key", "csr", "crt", "ext"))
            if not crt.exists():
                san = f"IP:{host}" if re.fullmatch(r"[0-9.]+", host) else f"DNS:{host}"
                ext.write_text(
                    f"subjectAltName={san}\n"
                    "basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectKeyIdentifier=hash\n"
                    "authorityKeyIdentifier=keyid,issuer\n"
                )
                _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                         "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={host}")
                _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca_crt), "-CAkey", str(self.ca_key),
                         "-CAcreateserial", "-days", "2", "-sha256", "-extfile", str(ext), "-out", str(crt))
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.set_alpn_protocols(["http/1.1"])
            ctx.load_cert_chain(str(crt), str(key))
            self.contexts[host] = ctx
            return ctx


# --------------------------------------------------------------------------- answers


def sse_events(model: str) -> list[dict]:
    """One complete Anthropic Messages stream whose whole answer is the text "ok"."""
    msg_id = "msg_capture" + uuid.uuid4().hex[:20]
    return [
        {"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                      "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": REPLY_TEXT}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 2}},
        {"type": "message_stop"},
    ]


def message_json(model: str) -> dict:
    return {"id": "msg_capture" + uuid.uuid4().hex[:20], "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": REPLY_TEXT}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                      "output_tokens": 2}}


def sse_body(model: str) -> bytes:
    return b"".join(
        f"event: {e['type']}\ndata: {json.dumps(e, separators=(',', ':'))}\n\n".encode() for e in sse_events(model)
    )


def _es_header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return struct.pack(">B", len(n)) + n + struct.pack(">BH", 7, len(v)) + v  # 7 = string


def eventstream_frame(payload: bytes) -> bytes:
    """One AWS event-stream message: prelude (total, headers length, CRC32), headers, payload, CRC32."""
    headers = (_es_header(":event-type", "chunk") + _es_header(":content-type", "application/json")
               + _es_header(":message-type", "event"))
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


def eventstream_body(model: str) -> bytes:
    events = sse_events(model)
    events[-1]["amazon-bedrock-invocationMetrics"] = {
        "inputTokenCount": 10, "outputTokenCount": 2, "invocationLatency": 100, "firstByteLatency": 50}
    return b"".join(
        eventstream_frame(json.dumps(
            {"bytes": base64.b64encode(json.dumps(e, separators=(",", ":")).encode()).decode()},
            separators=(",", ":")).encode())
        for e in events
    )


# --------------------------------------------------------------------------- server


class Recorder(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, log_path: Path, certs: LeafCerts, allow_hosts: set[str]):
        super().__init__(addr, Handler)
        self.log_file = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 (lives as long as the server)
        self.log_lock = threading.Lock()
        self.seq = 0
        self.certs = certs
        self.allow_hosts = allow_hosts

    def record(self, entry: dict) -> None:
        with self.log_lock:
            self.seq += 1
            entry = {"seq": self.seq, "time": round(time.time(), 3), **entry}
            self.log_file.write(json.dumps(entry, ensure_ascii=False) + "\n")
            self.log_file.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Recorder
    tunnel_host: str | None = None
    tls_conn: ssl.SSLSocket | None = None

    def log_message(self, format, *args):  # noqa: A002 (quiet: everything goes to the JSON log)
        pass

    # ---- CONNECT: terminate TLS for allowed hosts, refuse the rest

    def do_CONNECT(self):
        host, _, port = self.path.rpartition(":")
        host = host.strip("[]")
        if self.tunnel_host is not None or host not in self.server.allow_hosts:
            self.server.record({"kind": "connect", "host": host, "port": port, "allowed": False})
            self.send_response(403, "Refused by capture recorder")
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            return
        self.server.record({"kind": "connect", "host": host, "port": port, "allowed": True})
        self.send_response(200, "Connection Established")
        self.end_headers()
        self.wfile.flush()
        try:
            conn = self.server.certs.context(host).wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.server.record({"kind": "tls_error", "host": host, "error": str(e)})
            self.close_connection = True
            return
        self.tls_conn = conn
        self.connection = conn
        self.rfile = conn.makefile("rb", -1)
        self.wfile = conn.makefile("wb", 0)
        self.tunnel_host = host
        self.close_connection = False

    def finish(self):
        try:
            super().finish()
        finally:
            if self.tls_conn is not None:
                try:
                    self.tls_conn.close()
                except OSError:
                    pass

    # ---- requests

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self):
        raw = self._read_body()
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        try:
            if encoding == "gzip":
                raw = gzip.decompress(raw)
            elif encoding == "deflate":
                raw = zlib.decompress(raw)
        except (OSError, zlib.error):
            pass
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            body = {"_raw_base64": base64.b64encode(raw).decode()}
        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = "<redacted>" if k in REDACT else (headers[k] + ", " + v if k in headers else v)
        host = self.tunnel_host or headers.get("host", "")
        path = self.path
        entry = {"kind": "request", "scheme": "https" if self.tunnel_host else "http", "host": host,
                 "method": self.command, "path": path, "headers": headers, "body": body}
        route = path.split("?", 1)[0]
        model = (body or {}).get("model", "") if isinstance(body, dict) else ""
        stream = isinstance(body, dict) and bool(body.get("stream"))

        m = re.fullmatch(r"/model/([^/]+)/(invoke|invoke-with-response-stream)", route)
        if self.command != "POST":
            status, ctype, payload = 404, "application/json", b'{"type":"error","error":{"type":"not_found_error","message":"not recorded"}}'
        elif m and self.tunnel_host and self.tunnel_host.startswith("bedrock-runtime."):
            model_id = m.group(1)
            if m.group(2) == "invoke-with-response-stream":
                status, ctype, payload = 200, "application/vnd.amazon.eventstream", eventstream_body(model_id)
            else:
                status, ctype, payload = 200, "application/json", json.dumps(message_json(model_id)).encode()
        elif route.endswith("/v1/messages/count_tokens"):
            status, ctype, payload = 200, "application/json", b'{"input_tokens":10}'
        elif route.endswith("/v1/messages"):
            if stream:
                status, ctype, payload = 200, "text/event-stream", sse_body(model)
            else:
                status, ctype, payload = 200, "application/json", json.dumps(message_json(model)).encode()
        else:
            status, ctype, payload = 404, "application/json", b'{"type":"error","error":{"type":"not_found_error","message":"not recorded"}}'
        entry["answered"] = {"status": status, "content_type": ctype}
        self.server.record(entry)

        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        rid = str(uuid.uuid4())
        self.send_header("request-id", "req_capture" + rid.replace("-", "")[:20])
        self.send_header("x-amzn-requestid", rid)
        if ctype == "application/vnd.amazon.eventstream":
            self.send_header("x-amzn-bedrock-content-type", "application/json")
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    do_POST = do_GET = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--log", required=True, type=Path, help="JSON-lines file every request is appended to")
    ap.add_argument("--ca-dir", required=True, type=Path, help="where the throwaway CA and leaf certs live")
    ap.add_argument("--allow-host", action="append", default=[], help="host whose CONNECT is terminated")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--port-file", type=Path, help="written with the port once listening")
    ap.add_argument("--make-ca-only", action="store_true", help="create the CA in --ca-dir and exit")
    args = ap.parse_args()

    certs = LeafCerts(args.ca_dir)
    if args.make_ca_only:
        return 0
    for host in args.allow_host:  # make the leaf certs before the CLI connects
        certs.context(host)
    server = Recorder(("127.0.0.1", args.port), args.log, certs, set(args.allow_host))
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file.with_suffix(".tmp")
        tmp.write_text(f"{port}\n")
        os.replace(tmp, args.port_file)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
