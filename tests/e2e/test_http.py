"""Raw HTTP against the proxy, where the bytes and their timing matter."""

import json
import shutil
import socket
import subprocess
import time

import pytest

from .conftest import (
    TOKEN,
    assert_error_shape,
    assert_sse_framing,
    auth,
    message_body,
    prompt,
    wrong_key,
)


def test_stream_is_exact_anthropic_sse(proxy):
    response = proxy.request("POST", "/v1/messages", headers=auth(), body=message_body(prompt("emulator:chunks=4"), stream=True))
    body = response.read_body()

    assert response.status == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = assert_sse_framing(body)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-1] == "message_stop", names
    assert names.count("content_block_delta") == 4, names
    assert b"amazon-bedrock-invocationMetrics" not in body
    assert events[-1][1] == {"type": "message_stop"}


def test_non_streaming_answer_has_no_bedrock_metrics(proxy):
    response = proxy.request("POST", "/v1/messages", headers=auth(), body=message_body(prompt(), stream=False))
    body = response.read_body()

    assert response.status == 200
    assert response.headers["content-type"].startswith("application/json")
    assert b"amazon-bedrock-invocationMetrics" not in body
    assert response.headers["request-id"].startswith("req_")


@pytest.mark.parametrize(
    "method, path, headers, body, status, kind",
    [
        ("POST", "/v1/messages", {"x-api-key": "PLACEHOLDER"}, message_body(prompt(), stream=False), 401, "authentication_error"),
        ("POST", "/v1/messages", None, message_body(prompt(), stream=True), 401, "authentication_error"),
        ("GET", "/v1/no-such-route", auth(), None, 404, "not_found_error"),
        ("POST", "/v1/messages", auth(), b'{"model": "claude-sonnet-4-5", "messages": [', 400, "invalid_request_error"),
        ("POST", "/v1/messages", auth(), message_body(prompt("emulator:error=ValidationException"), stream=True), 400, "invalid_request_error"),
        ("POST", "/v1/messages", auth(), message_body(prompt("emulator:error=AccessDeniedException"), stream=False), 403, "permission_error"),
        ("POST", "/v1/messages", auth(), message_body(prompt("emulator:error=ThrottlingException"), stream=True), 429, "rate_limit_error"),
        ("POST", "/v1/messages", auth(), message_body(prompt("emulator:error=InternalServerException"), stream=False), 500, "api_error"),
        ("POST", "/v1/messages", auth(), message_body(prompt("emulator:error=ServiceUnavailableException"), stream=True), 529, "overloaded_error"),
        ("POST", "/v1/messages", {**auth(), "x-padding": "p" * 13 * 1024}, message_body(prompt(), stream=False), 431, "request_too_large"),
    ],
    ids=["401-wrong-key", "401-no-key", "404-route", "400-bad-json", "400-bedrock-validation", "403", "429", "500", "529", "431-headers"],
)
def test_errors_have_anthropics_exact_shape_and_a_request_id(proxy, method, path, headers, body, status, kind):
    if headers and headers.get("x-api-key") == "PLACEHOLDER":
        headers = {"x-api-key": wrong_key()}

    response = proxy.request(method, path, headers=headers, body=body)
    raw = response.read_body()

    assert response.status == status, raw
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("request-id", "").startswith("req_"), response.headers
    assert_error_shape(raw, kind)
    if status in (429, 529):
        assert float(response.headers["retry-after"]) > 0


@pytest.mark.parametrize("path", ["/health", "/v1/models"])
def test_success_responses_carry_a_request_id(proxy, path):
    response = proxy.request("GET", path, headers=auth())
    response.read_body()

    assert response.status == 200
    assert response.headers.get("request-id", "").startswith("req_")


def test_request_ids_differ_per_request(proxy):
    ids = set()
    for _ in range(3):
        response = proxy.request("GET", "/health")
        response.read_body()
        ids.add(response.headers["request-id"])

    assert len(ids) == 3


def test_sse_arrives_in_pieces_not_at_the_end(proxy):
    # Arrange: 4 text deltas 0.8 s apart, each stamped by the emulator with the time it sent it
    # (unix microseconds, the same clock as time.time() here).
    body = message_body(prompt("emulator:chunks=4", "emulator:delay_ms=800", "emulator:stamp"), stream=True)

    # Act: read the socket as bytes arrive, noting when each frame was complete.
    response = proxy.request("POST", "/v1/messages", headers=auth(), body=body)
    received = [(frame, time.time()) for frame in response.iter_frames()]
    response.close()

    # Assert, by order rather than speed: every event reached us before the emulator even sent
    # the next one. A buffering path would hand them over together, after the last was sent.
    assert response.status == 200
    frames = [frame for frame, _ in received]
    assert frames[0].raw.startswith(b"event: message_start\n"), frames[0].raw
    assert frames[-1].raw.startswith(b"event: message_stop\n"), frames[-1].raw
    deltas = [
        (int(frame.data["delta"]["text"][2:-1]), at)
        for frame, at in received
        if frame.name == "content_block_delta"
    ]
    assert len(deltas) == 4, [f.raw for f in frames]
    assert received[0][1] * 1e6 < deltas[0][0], "message_start arrived only after the first delta was sent"
    for i, ((_, got), (next_sent, _)) in enumerate(zip(deltas, deltas[1:])):
        assert got * 1e6 < next_sent, f"delta {i} arrived only after delta {i + 1} was sent: batched"
    lead = min(next_sent / 1e6 - got for (_, got), (next_sent, _) in zip(deltas, deltas[1:]))
    print(f"\n[e2e] local: each delta arrived at least {lead * 1000:.0f} ms before the next was sent")


def test_sigterm_stops_accepting_and_lets_open_streams_finish(start_proxy):
    # Its own proxy (the setting only makes it distinct): this test ends it.
    proxy = start_proxy(RUST_LOG="info,graceful_shutdown_test=off")
    body = message_body(prompt("emulator:chunks=8 emulator:delay_ms=150"), stream=True)
    response = proxy.request("POST", "/v1/messages", headers=auth(), body=body)
    stream = response.iter_frames()
    frames = []
    for frame in stream:
        frames.append(frame)
        if frame.name == "content_block_delta":
            break

    proxy.proc.terminate()
    refused = False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not refused:
        try:
            socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()
            time.sleep(0.05)
        except (ConnectionRefusedError, ConnectionResetError):
            # Refused once the listener is gone; reset when a connection that reached the
            # closing listener's backlog is dropped with it. Either way: no longer accepting.
            refused = True
    frames.extend(stream)
    response.close()

    assert refused, "the proxy still accepted connections 5 s after SIGTERM"
    events = assert_sse_framing(b"".join(f.raw for f in frames))
    assert events[-1][0] == "message_stop", [name for name, _ in events]
    assert proxy.proc.wait(timeout=10) == 0


@pytest.mark.parametrize("stream", [False, True])
def test_the_seeds_readme_curl_to_the_root_answers(proxy, stream):
    """The original project's usage, byte for byte: curl POSTs to the URL's root with no
    anthropic-version header, streamed or not by the body."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is needed for this test (Debian package curl)")
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "Hello"}]}
    if stream:
        body["stream"] = True
    done = subprocess.run(
        [curl, "-sS", "-X", "POST", f"{proxy.url}/", "-H", f"Authorization: Bearer {TOKEN}",
         "-H", "Content-Type: application/json", "-d", json.dumps(body), "-w", "\n%{http_code}"],
        capture_output=True, timeout=60, check=True,
    )
    answer, _, status = done.stdout.rpartition(b"\n")
    assert status == b"200", done.stdout
    if stream:
        names = [name for name, _ in assert_sse_framing(answer)]
        assert names[0] == "message_start" and names[-1] == "message_stop", names
    else:
        message = json.loads(answer)
        assert message["type"] == "message" and message["content"][0]["type"] == "text", message
