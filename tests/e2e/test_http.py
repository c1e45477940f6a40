"""Raw HTTP against the proxy, where the bytes and their timing matter."""

import pytest

from .conftest import (
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
    ],
    ids=["401-wrong-key", "401-no-key", "404-route", "400-bad-json", "400-bedrock-validation", "403", "429", "500", "529"],
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
    # Arrange: 8 frames about 0.8 s apart, about 5.6 s in all.
    body = message_body(prompt("emulator:chunks=3", "emulator:delay_ms=800"), stream=True)

    # Act: read the socket as bytes arrive.
    response = proxy.request("POST", "/v1/messages", headers=auth(), body=body)
    frames = list(response.iter_frames())
    response.close()

    # Assert
    assert response.status == 200
    assert frames[0].raw.startswith(b"event: message_start\n"), frames[0].raw
    assert frames[-1].raw.startswith(b"event: message_stop\n"), frames[-1].raw
    first_event = frames[0].t - response.sent_at
    spread = frames[-1].t - frames[0].t
    print(f"\n[e2e] local: first event {first_event * 1000:.0f} ms after the request; "
          f"message_stop {spread:.2f} s after message_start")
    assert first_event < 1.0, f"message_start took {first_event:.2f} s"
    assert spread >= 1.0, f"message_start and message_stop arrived only {spread:.3f} s apart: buffered"
    arrivals = sorted({round(frame.t, 2) for frame in frames})
    assert len(arrivals) >= 6, f"frames were batched: arrival times {arrivals}"
