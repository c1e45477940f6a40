"""After every other test: what the proxies wrote to stderr. No credential and no prompt text
ever, and exactly one complete log line per request."""

import json
import re
import time
from collections import Counter

import pytest

from .conftest import EMULATOR_TEXT, LOG_FILES, MARKER, SEEN_RESPONSES, SENT_SECRETS, THINKING_TEXT

pytestmark = pytest.mark.after_all

FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')
REQUIRED = ("request_id", "status", "model", "latency_ms", "input_tokens", "output_tokens")


def parse_request_line(line: str) -> dict | None:
    """The per-request line: key=value text locally, a JSON object inside Lambda."""
    if line.startswith("{"):
        try:
            value = json.loads(line)
        except ValueError:
            return None
        return value if value.get("message") == "request" else None
    if "request_log: request " not in line:
        return None
    fields = {}
    for key, raw in FIELD.findall(line.split("request_log: request ", 1)[1]):
        value = json.loads(raw) if raw.startswith('"') else raw
        if isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value):
            value = float(value) if "." in value else int(value)
        fields[key] = value
    return fields


def read_logs() -> dict:
    return {path: path.read_text(errors="replace") for path in LOG_FILES if path.exists()}


def request_lines(logs: dict) -> list[dict]:
    lines = []
    for path, text in logs.items():
        for line in text.splitlines():
            parsed = parse_request_line(line)
            if parsed is not None:
                parsed["_file"] = path.name
                lines.append(parsed)
    return lines


@pytest.fixture(scope="module")
def logs():
    if not SEEN_RESPONSES:
        pytest.skip("run with the rest of tests/e2e: there are no requests to check")
    # A stream's line is written when its body is dropped, just after the caller got the end;
    # the wait is generous for a loaded machine and ends as soon as every line is there.
    deadline = time.monotonic() + 30
    while True:
        logs = read_logs()
        logged = {line.get("request_id") for line in request_lines(logs)}
        if all(rid in logged for rid, _, _ in SEEN_RESPONSES) or time.monotonic() > deadline:
            return logs
        time.sleep(0.1)


def test_no_credential_ever_reaches_the_logs(logs):
    for path, text in logs.items():
        for secret in SENT_SECRETS:
            assert secret not in text, f"{path.name} contains a token that a test sent ({secret[:12]}...)"


def test_no_prompt_or_completion_text_reaches_the_logs(logs):
    for path, text in logs.items():
        for needle in (MARKER, EMULATOR_TEXT, THINKING_TEXT):
            lines = [line for line in text.splitlines() if needle in line]
            assert not lines, f"{path.name} logs message text ({needle!r}): {lines[:3]}"


def test_every_response_has_exactly_one_log_line_with_its_status(logs):
    lines = request_lines(logs)
    by_id = Counter(line.get("request_id") for line in lines)

    duplicated = [rid for rid, n in by_id.items() if n > 1]
    assert not duplicated, f"request ids logged more than once: {duplicated[:5]}"
    status_of = {line["request_id"]: line.get("status") for line in lines}
    missing = [(rid, source) for rid, _, source in SEEN_RESPONSES if rid not in status_of]
    assert not missing, f"{len(missing)} responses have no log line, e.g. {missing[:5]}"
    wrong = [(rid, status, status_of[rid]) for rid, status, _ in SEEN_RESPONSES if status_of[rid] != status]
    assert not wrong, f"logged status differs from the one sent (id, sent, logged): {wrong[:5]}"
    assert len(SEEN_RESPONSES) >= 30, "the suite should have sent many requests"


def test_every_log_line_has_id_status_model_latency_and_tokens(logs):
    lines = request_lines(logs)
    assert lines

    for line in lines:
        missing = [key for key in REQUIRED if key not in line]
        assert not missing, f"{line['_file']}: request line without {missing}: {line}"
        assert str(line["request_id"]).startswith("req_"), line
        assert isinstance(line["latency_ms"], (int, float)) and line["latency_ms"] >= 0, line


def test_answered_messages_log_their_model_and_token_counts(logs):
    answered = [
        line for line in request_lines(logs)
        if line.get("path") == "/v1/messages" and line.get("status") == 200 and line.get("outcome") == "ok"
    ]
    counted = [
        line for line in request_lines(logs)
        if line.get("path") == "/v1/messages/count_tokens" and line.get("status") == 200
    ]
    assert len(answered) >= 10 and counted

    for line in answered:
        assert line["model"] != "-" and line["bedrock_model"] != "-", line
        assert line["input_tokens"] > 0 and line["output_tokens"] > 0, line
        # Every answer says what it cost, or that its model has no price (never a guess).
        assert str(line["priced"]).lower() in {"true", "false", "1", "0"}, line
        if str(line["priced"]).lower() in {"true", "1"}:
            assert float(line["cost_usd"]) > 0, line
    for line in counted:
        assert line["input_tokens"] > 0, line
