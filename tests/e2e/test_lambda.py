"""The Lambda transport for real: the proxy binary under `cargo lambda watch`, reached as a
Function URL with response streaming (`/lambda-url/<function>/...`)."""

import json
import time

import pytest

from .conftest import (
    EMULATOR_TEXT,
    MODEL,
    assert_error_shape,
    assert_sse_framing,
    auth,
    message_body,
    prompt,
    sdk_client,
)

pytestmark = pytest.mark.lambda_watch

ORIGIN = {"Origin": "https://example.com"}


def test_lambda_streams_sse_in_pieces_with_a_request_id(lambda_function):
    body = message_body(prompt("emulator:chunks=3", "emulator:delay_ms=800"), stream=True)

    response = lambda_function.request("POST", "/v1/messages", headers=auth(), body=body)
    frames = list(response.iter_frames())
    response.close()

    assert response.status == 200, [f.raw for f in frames]
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers.get("request-id", "").startswith("req_"), response.headers
    events = assert_sse_framing(b"".join(f.raw for f in frames))
    assert events[0][0] == "message_start" and events[-1][0] == "message_stop"
    assert not any(b"amazon-bedrock-invocationMetrics" in f.raw for f in frames)
    first_event = frames[0].t - response.sent_at
    spread = frames[-1].t - frames[0].t
    print(f"\n[e2e] lambda: first event {first_event * 1000:.0f} ms after the request; "
          f"message_stop {spread:.2f} s after message_start")
    assert spread >= 1.0, f"the Function URL delivered the stream at once ({spread:.3f} s): buffered"


def test_lambda_serves_the_sdk(lambda_function):
    client = sdk_client(lambda_function.base)

    with client.messages.stream(
        model=MODEL, max_tokens=64, messages=[{"role": "user", "content": prompt()}]
    ) as stream:
        text = stream.get_final_text()

    assert text == EMULATOR_TEXT


def test_lambda_without_a_token_is_401(lambda_function):
    response = lambda_function.request("POST", "/v1/messages", body=message_body(prompt(), stream=True))
    body = response.read_body()

    assert response.status == 401, body
    assert_error_shape(body, "authentication_error")
    assert response.headers.get("request-id", "").startswith("req_")


@pytest.mark.parametrize("method, path, with_token", [("POST", "/v1/messages", True), ("GET", "/health", False)])
def test_lambda_adds_no_cors_headers_even_with_cors_allow_origins(lambda_function, method, path, with_token):
    # CORS_ALLOW_ORIGINS=* is set for the function (see the lambda_function fixture), and the
    # watch server's own CORS layer is off, so any access-control-* header would be the proxy's.
    headers = {**ORIGIN, **(auth() if with_token else {})}
    body = message_body(prompt(), stream=False) if method == "POST" else None

    response = lambda_function.request(method, path, headers=headers, body=body)
    response.read_body()

    assert response.status == 200
    cors = [name for name in response.header_names if name.startswith("access-control-")]
    assert cors == [], f"the function sent CORS headers inside Lambda: {cors}"


def test_local_mode_does_send_cors_headers_with_the_same_setting(start_proxy):
    # The control for the test above: the same setting outside Lambda does add them.
    proxy = start_proxy(CORS_ALLOW_ORIGINS="*")

    response = proxy.request("GET", "/health", headers=ORIGIN)
    response.read_body()

    assert response.status == 200
    assert response.headers.get("access-control-allow-origin") == "*", response.headers


def test_lambda_stops_bedrock_when_the_caller_leaves(lambda_function, emulator):
    # Under `cargo lambda watch` the caller's hang-up closes the function's response stream to
    # the runtime API; lambda_runtime then drops the body, and with it Bedrock's connection.
    # This shows the function's side works. Real Lambda does not do this: a Function URL keeps
    # the function running after the client disconnects (AWS, "Response streaming for Lambda
    # functions"), so there the deadline is what stops it (see docs/reliability.md).
    before = emulator.stats()["streams_cancelled"]
    body = message_body(prompt("emulator:chunks=300", "emulator:delay_ms=100"), stream=True)
    response = lambda_function.request("POST", "/v1/messages", headers=auth(), body=body)
    frames = response.iter_frames()
    received = [next(frames) for _ in range(3)]
    assert received[0].name == "message_start"

    response.close()
    closed_at = time.time()

    deadline = closed_at + 15
    stats = emulator.stats()
    while stats["streams_cancelled"] <= before and time.time() < deadline:
        time.sleep(0.05)
        stats = emulator.stats()
    assert stats["streams_cancelled"] > before, f"Bedrock's stream outlived the caller: {stats}"
    delay = stats["last_cancel_unix_ms"] / 1000 - closed_at
    print(f"\n[e2e] lambda: Bedrock stream cancelled {delay * 1000:.0f} ms after the caller left")
    # Milliseconds in practice; the bound allows for a loaded machine and is still far below
    # the 30 s the stream would have lasted.
    assert delay < 10.0, f"cancelled {delay:.3f} s after the caller left"


def emf_records(lambda_function) -> list[dict]:
    records = []
    for line in lambda_function.log_path.read_text(errors="replace").splitlines():
        start = line.find('{"')
        if start < 0 or '"_aws"' not in line:
            continue
        try:
            records.append(json.loads(line[start:]))
        except json.JSONDecodeError:
            continue
    return records


def assert_valid_emf(record: dict) -> None:
    """The Embedded Metric Format specification's rules for one record."""
    aws = record["_aws"]
    assert isinstance(aws["Timestamp"], int) and aws["Timestamp"] > 1_600_000_000_000
    directives = aws["CloudWatchMetrics"]
    assert isinstance(directives, list) and directives
    for directive in directives:
        assert isinstance(directive["Namespace"], str) and directive["Namespace"]
        assert 1 <= len(directive["Dimensions"])
        for dimension_set in directive["Dimensions"]:
            assert isinstance(dimension_set, list) and len(dimension_set) <= 30
            for key in dimension_set:
                assert isinstance(record.get(key), str) and record[key], f"dimension {key} must be a string member"
        assert 1 <= len(directive["Metrics"]) <= 100
        for metric in directive["Metrics"]:
            name = metric["Name"]
            assert isinstance(record.get(name), (int, float)) and not isinstance(record[name], bool), name
            assert metric.get("Unit", "None") in {"Count", "Milliseconds", "None"}


def test_lambda_request_lines_are_cloudwatch_emf_records(lambda_function):
    ok = lambda_function.request(
        "POST", "/v1/messages", headers=auth(), body=message_body(prompt("emulator:chunks=2"), stream=True)
    )
    ok.read_body()
    throttled = lambda_function.request(
        "POST",
        "/v1/messages",
        headers=auth(),
        body=message_body(prompt("emulator:error=ThrottlingException"), stream=False),
    )
    throttled.read_body()
    ids = {ok.headers["request-id"], throttled.headers["request-id"]}

    deadline = time.monotonic() + 10
    records = []
    while time.monotonic() < deadline:
        records = [r for r in emf_records(lambda_function) if r.get("request_id") in ids]
        if len(records) == 2:
            break
        time.sleep(0.2)
    assert len(records) == 2, f"EMF lines for {ids}: {records}"
    for record in records:
        assert_valid_emf(record)
        assert record["model"].startswith("us.anthropic.claude-"), "the model dimension is the Bedrock ID"
        assert record["caller"] == "default"
    by_id = {r["request_id"]: r for r in records}
    good, bad = by_id[ok.headers["request-id"]], by_id[throttled.headers["request-id"]]
    assert good["Requests"] == 1 and good["OutputTokens"] > 0 and good["Errors"] == 0
    assert 0 < good["TimeToFirstToken"] <= good["Duration"]
    assert bad["Errors"] == 1 and bad["error_type"] == "rate_limit_error"
    assert bad["Throttles"] == 3, "every throttled attempt is counted"
