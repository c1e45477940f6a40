"""BEDROCK_API=mantle: the proxy in front of Bedrock's Anthropic Messages endpoint (the emulator
serves it too, checking SigV4 for `bedrock-mantle` and the rules learned from Claude Code's own
Mantle requests), driven by the official anthropic SDK, raw HTTP and Claude Code itself."""

from __future__ import annotations

import json

import anthropic
import pytest

from .conftest import EMULATOR_TEXT, MODEL, TOKEN, assert_error_shape, assert_sse_framing, auth, message_body, prompt, sdk_client
from .test_claude_code import assert_no_rejections, claude_bin, run_claude  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def mantle_proxy(start_proxy, emulator):
    return start_proxy(BEDROCK_API="mantle", AWS_ENDPOINT_URL_BEDROCK_MANTLE=emulator.url)


@pytest.fixture(scope="module")
def client(mantle_proxy):
    with sdk_client(mantle_proxy.url) as client:
        yield client


def mantle_requests(emulator) -> list[dict]:
    return [r for r in emulator.requests() if r["operation"].startswith("mantle-")]


def test_the_sdk_gets_an_answer_from_mantle(client, emulator):
    emulator.clear()
    message = client.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": prompt()}])
    assert message.content[0].text == EMULATOR_TEXT
    assert message.usage.output_tokens > 0
    sent = mantle_requests(emulator)
    assert [r["status"] for r in sent] == [200]
    # Mantle names models without a region prefix, and takes the first-party body.
    assert sent[0]["model_id"] == "anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert sent[0]["body"]["model"] == sent[0]["model_id"]
    assert "anthropic_version" not in sent[0]["body"]
    assert sent[0]["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
    assert "/bedrock-mantle/aws4_request" in sent[0]["headers"]["authorization"]


def test_the_sdk_streams_from_mantle(client):
    with client.messages.stream(
        model=MODEL, max_tokens=64, messages=[{"role": "user", "content": prompt("emulator:chunks=4")}]
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) == 4 and "".join(pieces) == EMULATOR_TEXT
    assert final.stop_reason == "end_turn"


def test_raw_sse_from_mantle_is_well_framed_and_ends_with_message_stop(mantle_proxy):
    response = mantle_proxy.request(
        "POST", "/v1/messages", headers=auth(), body=message_body(prompt("emulator:chunks=3"), stream=True)
    )
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = assert_sse_framing(response.read_body())
    names = [name for name, _ in events if name != "ping"]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert names.count("content_block_delta") == 3


def test_a_mantle_error_mid_stream_becomes_one_error_event(mantle_proxy):
    body = message_body(prompt("emulator:stream_exception_after=3:internalServerException"), stream=True)
    response = mantle_proxy.request("POST", "/v1/messages", headers=auth(), body=body)
    assert response.status == 200
    events = assert_sse_framing(response.read_body())
    assert events[-1][0] == "error"
    assert events[-1][1]["error"]["type"] == "api_error"


def test_mantle_throttling_is_retried_then_reported_as_a_rate_limit(mantle_proxy, emulator):
    emulator.clear()
    response = mantle_proxy.request(
        "POST", "/v1/messages", headers=auth(), body=message_body(prompt("emulator:error=ThrottlingException"), stream=False)
    )
    body = response.read_body()
    assert response.status == 429
    assert_error_shape(body, "rate_limit_error")
    assert len(mantle_requests(emulator)) == 3, "three attempts (UPSTREAM_MAX_ATTEMPTS)"


@pytest.mark.parametrize("mode", ["invoke", "mantle"])
def test_count_tokens_works_for_claude_codes_default_model_in_both_modes(start_proxy, emulator, mode):
    proxy = start_proxy(BEDROCK_API=mode, AWS_ENDPOINT_URL_BEDROCK_MANTLE=emulator.url)
    emulator.clear()
    body = {"model": "claude-opus-5-5", "messages": [{"role": "user", "content": prompt()}]}
    for _ in range(2):
        response = proxy.request("POST", "/v1/messages/count_tokens", headers=auth(), body=body)
        payload = json.loads(response.read_body())
        assert response.status == 200, payload
        assert payload["input_tokens"] > 0
    operations = [(r["operation"], r["status"]) for r in emulator.requests()]
    if mode == "invoke":
        # Runtime refuses the model once; from then on it is counted on Mantle directly.
        assert ("mantle-count-tokens", 200) in operations
        assert sum(1 for op, _ in operations if op == "count-tokens") <= 2, operations
        assert operations[-1] == ("mantle-count-tokens", 200)
        assert operations[-2] == ("mantle-count-tokens", 200)
    else:
        assert operations == [("mantle-count-tokens", 200)] * 2


@pytest.mark.parametrize("model", [None, "sonnet", "haiku"], ids=["default", "sonnet", "haiku"])
def test_claude_code_answers_through_the_mantle_proxy_with_zero_rejections(
    claude_bin, mantle_proxy, emulator, tmp_path, model  # noqa: F811 (fixture)
):
    emulator.clear()
    done = run_claude(claude_bin, mantle_proxy, tmp_path, "say ok", *(["--model", model] if model else []))
    assert done.returncode == 0, f"claude exited {done.returncode}: {done.stderr[-2000:]}"
    assert EMULATOR_TEXT in done.stdout
    sent = mantle_requests(emulator)
    assert_no_rejections(sent)
    body = sent[-1]["body"]
    assert body["model"].startswith("anthropic.claude-")
    assert "context_management" in body, "Mantle keeps context management"
    beta_header = sent[-1]["headers"]["anthropic-beta"].split(",")
    assert "context-management-2025-06-27" in beta_header and "tool-search-tool-2025-10-19" in beta_header
    assert "advanced-tool-use-2025-11-20" not in beta_header
    assert all(set(m) == {"role", "content"} for m in body["messages"])
