"""Keep-alive pings and cancellation on disconnect, through real sockets."""

import time

import pytest

from .conftest import PING_FRAME, assert_sse_framing, auth, message_body, prompt


def frames_until(response, name: str):
    """Frames up to and including the first one named `name`."""
    frames = []
    for frame in response.iter_frames():
        frames.append(frame)
        if frame.name == name:
            return frames
    raise AssertionError(f"the stream ended without {name}: {[f.raw[:40] for f in frames]}")


def test_pings_keep_a_silent_stream_alive(start_proxy):
    proxy = start_proxy(PING_INTERVAL_MS="1000")
    body = message_body(prompt("emulator:first_delay_ms=3500"), stream=True)

    response = proxy.request("POST", "/v1/messages", headers=auth(), body=body)
    frames = list(response.iter_frames())
    response.close()

    assert response.status == 200
    start = next(i for i, f in enumerate(frames) if f.name == "message_start")
    before = frames[:start]
    assert len(before) >= 2, f"only {len(before)} frame(s) before message_start: {[f.raw for f in before]}"
    assert all(f.raw == PING_FRAME for f in before), [f.raw for f in before]
    print("\n[e2e] pings at " + ", ".join(f"{f.t - response.sent_at:.2f} s" for f in before)
          + f"; message_start at {frames[start].t - response.sent_at:.2f} s")
    events = assert_sse_framing(b"".join(f.raw for f in frames))
    assert events[-1][0] == "message_stop"


@pytest.mark.slow
def test_default_ping_interval_sends_a_ping_before_a_13s_silence_ends(proxy):
    # ~13 s: PING_INTERVAL_MS is left at its default (10 s) and Bedrock is silent for 13 s.
    body = message_body(prompt("emulator:first_delay_ms=13000"), stream=True)

    response = proxy.request("POST", "/v1/messages", headers=auth(), body=body, timeout=60)
    frames = frames_until(response, "content_block_delta")
    response.close()

    timeline = ", ".join(f"{f.name}@{f.t - response.sent_at:.2f}s" for f in frames)
    print(f"\n[e2e] default interval: headers@{response.headers_at - response.sent_at:.2f}s, {timeline}")
    assert response.status == 200
    # Bedrock says nothing for 13 s before message_start, so a ping ahead of message_start was
    # sent during that silence; when exactly depends on the machine's load, not on the proxy.
    start = next(i for i, f in enumerate(frames) if f.name == "message_start")
    pings = [f for f in frames[:start] if f.raw == PING_FRAME]
    assert pings, (
        "no ping before message_start although Bedrock was silent for 13 s and PING_INTERVAL_MS "
        f"defaults to 10 s; the caller saw only: headers@{response.headers_at - response.sent_at:.2f}s, {timeline}"
    )


def test_closing_the_socket_cancels_the_bedrock_stream(proxy, emulator):
    # Arrange: a 30 s stream (300 deltas, 100 ms apart).
    before = emulator.stats()["streams_cancelled"]
    body = message_body(prompt("emulator:chunks=300", "emulator:delay_ms=100"), stream=True)
    response = proxy.request("POST", "/v1/messages", headers=auth(), body=body)
    request_id = response.headers["request-id"]
    frames = response.iter_frames()
    received = [next(frames) for _ in range(4)]
    assert [f.name for f in received[:3]] == ["message_start", "content_block_start", "content_block_delta"]

    # Act: hang up.
    response.close()
    closed_at = time.time()

    # Assert: the emulator sees its stream dropped, promptly.
    deadline = closed_at + 15
    stats = emulator.stats()
    while stats["streams_cancelled"] <= before and time.time() < deadline:
        time.sleep(0.02)
        stats = emulator.stats()
    detected = time.time() - closed_at
    assert stats["streams_cancelled"] > before, f"Bedrock's stream was never cancelled: {stats}"
    delay = stats["last_cancel_unix_ms"] / 1000 - closed_at
    print(f"\n[e2e] Bedrock stream cancelled {delay * 1000:.1f} ms after the client closed its socket "
          f"(emulator clock in whole ms; seen by polling after {detected * 1000:.0f} ms)")
    # The emulator stamps the cancel in whole milliseconds, so allow 2 ms of rounding. The close
    # is seen within milliseconds; the bound is for a loaded machine and is still far below
    # the 30 s the stream would have lasted.
    assert -0.002 <= delay < 10.0, f"cancelled {delay:.3f} s after the client left"

    # ...and the proxy logs the request as abandoned by the client.
    deadline = time.time() + 15
    line = None
    while line is None and time.time() < deadline:
        line = next((l for l in proxy.log_text().splitlines() if f"request_id={request_id}" in l), None)
        time.sleep(0.02)
    assert line is not None, f"no log line for {request_id}"
    assert 'outcome="client_gone"' in line, line
