"""The official `anthropic` SDK as a guarded caller (docs/guardrails.md): the emulator's test guardrails
(tests/emulator/README.md) intervene the way Bedrock does, and the SDK reads the intervention as an ordinary
answer, with none of Bedrock's guardrail fields. The blocked-answer stream is the one that matters most: Bedrock
addresses the guardrail's message to a content block that never started, which the SDK's accumulator cannot read
unless the proxy puts it back in order."""

import json
import secrets

import anthropic
import pytest

from .conftest import MODEL, SENT_SECRETS, TOKEN, prompt, sdk_client

GUARDED = "e2e-guarded-" + secrets.token_hex(16)
GUARDED_OUTPUT = "e2e-guarded-output-" + secrets.token_hex(16)
SENT_SECRETS.update({GUARDED, GUARDED_OUTPUT})
BLOCKED = "Sorry, the model cannot answer this question."
BLOCKED_OUTPUT = "The answer was blocked by the emulator's output guardrail."


@pytest.fixture(scope="module")
def guarded_proxy(start_proxy):
    secret = {
        "tokens": {
            "e2e": TOKEN,
            "guarded": {"token": GUARDED, "guardrail": {"id": "emulatorinput1", "version": "1"}},
            "guarded-output": {"token": GUARDED_OUTPUT, "guardrail": {"id": "emulatoroutput1", "version": "2"}},
        }
    }
    return start_proxy(BEARER_TOKEN=json.dumps(secret))


def no_bedrock_fields(message: anthropic.types.Message) -> None:
    dumped = json.dumps(message.to_dict())
    assert "amazon-bedrock" not in dumped, dumped


def test_a_blocked_prompt_is_an_ordinary_answer_with_the_guardrails_message(guarded_proxy, emulator):
    with sdk_client(guarded_proxy.url, token=GUARDED) as client:
        message = client.messages.create(
            model=MODEL, max_tokens=256, messages=[{"role": "user", "content": prompt("bring contraband")}]
        )
        with client.messages.stream(
            model=MODEL, max_tokens=256, messages=[{"role": "user", "content": prompt("bring contraband")}]
        ) as stream:
            streamed = stream.get_final_message()

    for answer in (message, streamed):
        assert [block.type for block in answer.content] == ["text"]
        assert answer.content[0].text == BLOCKED
        assert answer.stop_reason == "end_turn"
        no_bedrock_fields(answer)
    sent = [r for r in emulator.requests() if "bring contraband" in json.dumps(r.get("body"))]
    assert len(sent) == 2 and all(r["headers"]["x-amzn-bedrock-guardrailidentifier"] == "emulatorinput1" for r in sent)


def test_an_answer_blocked_mid_stream_accumulates_into_one_text_block(guarded_proxy):
    with sdk_client(guarded_proxy.url, token=GUARDED_OUTPUT) as client:
        with client.messages.stream(
            model=MODEL, max_tokens=256, messages=[{"role": "user", "content": prompt()}]
        ) as stream:
            pieces = list(stream.text_stream)
            final = stream.get_final_message()

    assert "".join(pieces) == f"Hello from the {BLOCKED_OUTPUT}"
    assert [block.type for block in final.content] == ["text"]
    assert final.content[0].text == f"Hello from the {BLOCKED_OUTPUT}"
    no_bedrock_fields(final)


def test_a_guardrail_header_of_the_callers_own_is_refused(guarded_proxy, emulator):
    word = "own-guardrail-" + secrets.token_hex(4)
    for token in (GUARDED, TOKEN):
        with sdk_client(guarded_proxy.url, token=token) as client:
            with pytest.raises(anthropic.BadRequestError) as refused:
                client.messages.create(
                    model=MODEL,
                    max_tokens=256,
                    messages=[{"role": "user", "content": prompt(word)}],
                    extra_headers={"X-Amzn-Bedrock-GuardrailIdentifier": "emulatoroutput1"},
                )
        assert "guardrail" in refused.value.message
    assert not [r for r in emulator.requests() if word in json.dumps(r.get("body"))], "nothing reached Bedrock"
