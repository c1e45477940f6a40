"""The official `anthropic` Python SDK against the running proxy: what a real client sees."""

import json
import time
import uuid

import anthropic
import pytest

from .conftest import (
    EMULATOR_TEXT,
    MODEL,
    THINKING_TEXT,
    TOOL_INPUT,
    WEATHER_TOOL,
    prompt,
    sdk_client,
    wrong_key,
)

THINKING = {"type": "enabled", "budget_tokens": 1024}


@pytest.fixture(scope="module")
def client(proxy):
    with sdk_client(proxy.url) as client:
        yield client


def emulator_entries_containing(emulator, needle: str) -> list[dict]:
    return [r for r in emulator.requests() if needle in json.dumps(r.get("body"))]


# -- answers ------------------------------------------------------------------------------


def test_create_returns_the_emulators_text_usage_and_id(client):
    message = client.messages.create(
        model=MODEL, max_tokens=256, messages=[{"role": "user", "content": prompt()}]
    )

    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == EMULATOR_TEXT
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_stream_text_accumulates_to_the_final_text(client):
    with client.messages.stream(
        model=MODEL, max_tokens=256, messages=[{"role": "user", "content": prompt("emulator:chunks=5")}]
    ) as stream:
        pieces = list(stream.text_stream)
        final_text = stream.get_final_text()
        final = stream.get_final_message()

    assert len(pieces) == 5, pieces
    assert "".join(pieces) == final_text == EMULATOR_TEXT
    assert final.id.startswith("msg_") and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_tool_use_streams_its_input_and_the_tool_result_round_trips(client, emulator):
    # Arrange: a streamed answer that calls the tool.
    question = {"role": "user", "content": prompt("emulator:tool_use")}
    partial_json = []
    with client.messages.stream(model=MODEL, max_tokens=256, tools=[WEATHER_TOOL], messages=[question]) as stream:
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                partial_json.append(event.delta.partial_json)
        first = stream.get_final_message()

    assert len(partial_json) > 1, "the tool input should arrive in several input_json_delta pieces"
    assert json.loads("".join(partial_json)) == TOOL_INPUT
    assert first.stop_reason == "tool_use"
    tool_use = next(block for block in first.content if block.type == "tool_use")
    assert tool_use.name == "get_weather" and tool_use.input == TOOL_INPUT

    # Act: send the tool result back.
    result_marker = f"tool-result-{uuid.uuid4().hex[:8]}"
    answer = client.messages.create(
        model=MODEL,
        max_tokens=256,
        tools=[WEATHER_TOOL],
        messages=[
            question,
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": tool_use.id, "content": f"18 degrees {result_marker}"},
                    {"type": "text", "text": prompt()},
                ],
            },
        ],
    )

    # Assert: a text answer, and Bedrock got the tool_use / tool_result pair intact.
    assert answer.stop_reason == "end_turn"
    assert answer.content[0].type == "text" and answer.content[0].text == EMULATOR_TEXT
    (seen,) = emulator_entries_containing(emulator, result_marker)
    assert seen["status"] == 200
    sent = seen["body"]["messages"]
    assert sent[1]["content"][-1]["type"] == "tool_use" and sent[1]["content"][-1]["id"] == tool_use.id
    assert sent[2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": tool_use.id,
        "content": f"18 degrees {result_marker}",
    }


def test_thinking_block_keeps_its_signature(client):
    deltas = []
    with client.messages.stream(
        model=MODEL,
        max_tokens=2048,
        thinking=THINKING,
        messages=[{"role": "user", "content": prompt("emulator:thinking")}],
    ) as stream:
        for event in stream:
            if event.type == "content_block_delta":
                deltas.append(event.delta.type)
        final = stream.get_final_message()

    assert "thinking_delta" in deltas and "signature_delta" in deltas
    assert [block.type for block in final.content] == ["thinking", "text"]
    thinking = final.content[0]
    assert thinking.thinking == THINKING_TEXT
    assert isinstance(thinking.signature, str) and len(thinking.signature) > 10
    assert final.content[1].text == EMULATOR_TEXT


def test_thinking_and_tool_use_stream_together(client):
    with client.messages.stream(
        model=MODEL,
        max_tokens=2048,
        thinking=THINKING,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": prompt("emulator:thinking emulator:tool_use")}],
    ) as stream:
        final = stream.get_final_message()

    assert [block.type for block in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[0].signature
    assert final.content[2].input == TOOL_INPUT
    assert final.stop_reason == "tool_use"


# -- authentication -----------------------------------------------------------------------


AUTH_MODES = ["api_key", "auth_token", "x-api-key"]


@pytest.mark.parametrize("auth", AUTH_MODES)
def test_both_auth_headers_are_accepted(proxy, auth):
    sent = []
    client = sdk_client(proxy.url, auth=auth, sent_headers=sent)

    message = client.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": prompt()}])

    assert message.content[0].text == EMULATOR_TEXT
    headers = {k.lower(): v for k, v in sent[-1].items()}
    if auth == "x-api-key":
        assert "x-api-key" in headers and "authorization" not in headers, sorted(headers)
    else:
        # anthropic 2.x sends api_key= as a bearer token too.
        assert headers["authorization"].startswith("Bearer ") and "x-api-key" not in headers, sorted(headers)


@pytest.mark.parametrize("auth", AUTH_MODES)
def test_a_wrong_key_is_an_authentication_error(proxy, auth):
    client = sdk_client(proxy.url, auth=auth, token=wrong_key())

    with pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": prompt()}])

    assert caught.value.status_code == 401
    assert caught.value.type == "authentication_error"
    assert caught.value.request_id and caught.value.request_id.startswith("req_")


# -- errors -------------------------------------------------------------------------------


def test_throttling_is_a_rate_limit_error_with_retry_after(client):
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(
            model=MODEL,
            max_tokens=64,
            messages=[{"role": "user", "content": prompt("emulator:error=ThrottlingException")}],
        )

    error = caught.value
    assert error.status_code == 429 and error.type == "rate_limit_error"
    retry_after = error.response.headers.get("retry-after")
    assert retry_after is not None and float(retry_after) > 0, dict(error.response.headers)


def test_unavailable_is_the_sdks_overloaded_error_before_a_stream_starts(client):
    with pytest.raises(anthropic.OverloadedError) as caught:
        with client.messages.stream(
            model=MODEL,
            max_tokens=64,
            messages=[{"role": "user", "content": prompt("emulator:error=ServiceUnavailableException")}],
        ) as stream:
            stream.get_final_message()

    error = caught.value
    assert isinstance(error, anthropic.InternalServerError)
    assert error.status_code == 529 and error.type == "overloaded_error"
    assert error.response.headers.get("retry-after")


def test_an_error_mid_stream_raises_the_sdks_status_error_while_iterating(client):
    seen = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        with client.messages.stream(
            model=MODEL,
            max_tokens=64,
            messages=[
                {"role": "user", "content": prompt("emulator:stream_exception_after=2:modelStreamErrorException")}
            ],
        ) as stream:
            for event in stream:
                seen.append(event.type)

    # The stream had begun (HTTP 200) when `event: error` came: the SDK raises its base
    # APIStatusError built from the event's JSON, not an HTTP-status subclass.
    assert seen[:1] == ["message_start"], seen
    error = caught.value
    assert type(error) is anthropic.APIStatusError
    assert error.type == "api_error"
    assert error.body["type"] == "error" and error.body["error"]["message"]


# -- count_tokens and models ------------------------------------------------------------


def test_count_tokens_counts_the_prompt(client):
    short = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": prompt()}])
    long = client.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": prompt() + " lorem ipsum" * 50}]
    )

    assert short.input_tokens > 0
    assert long.input_tokens > short.input_tokens


def test_models_list_pages_through_unique_ids(client):
    first = client.models.list(limit=5)

    ids, pages = [], 0
    for page in first.iter_pages():
        pages += 1
        assert 0 < len(page.data) <= 5
        ids.extend(model.id for model in page.data)

    assert pages >= 2, f"expected several pages of 5, got {pages}"
    assert len(ids) == len(set(ids)), f"duplicate ids across pages: {ids}"
    assert "claude-sonnet-4-5-20250929" in ids


def test_models_retrieve_knows_an_alias(client):
    model = client.models.retrieve("claude-sonnet-4-5")

    assert model.type == "model"
    assert model.id.startswith("claude-sonnet-4-5")
    assert model.display_name


# -- retries ------------------------------------------------------------------------------


def test_sdk_retries_after_429s_until_bedrock_answers(start_proxy, emulator):
    # The proxy gives up at once, so the SDK's own retries (default max_retries=2) must do it.
    proxy = start_proxy(UPSTREAM_MAX_ATTEMPTS="1")
    client = sdk_client(proxy.url, max_retries=2)
    key = f"retry-{uuid.uuid4().hex[:12]}"

    started = time.monotonic()
    message = client.messages.create(
        model=MODEL,
        max_tokens=64,
        messages=[{"role": "user", "content": prompt(f"emulator:fail_first=2:ThrottlingException:{key}")}],
    )
    elapsed = time.monotonic() - started

    assert message.content[0].text == EMULATOR_TEXT
    statuses = [entry["status"] for entry in emulator_entries_containing(emulator, key)]
    assert statuses == [429, 429, 200], statuses
    # retry-after: 2 was honoured twice (without it the SDK waits about 0.5 s, then 1 s).
    assert elapsed >= 3.5, f"the SDK retried after {elapsed:.2f} s, sooner than retry-after allows"
