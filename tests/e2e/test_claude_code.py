"""Claude Code itself (npm @anthropic-ai/claude-code, pinned in scripts/test.sh) through the proxy
against the Bedrock emulator, whose acceptance rules come from Claude Code's own Bedrock traffic.

Done means zero rejections: every request Claude Code makes reaches Bedrock once and is answered
200, never a 400 followed by a retry, for its default model, `--model sonnet` and `--model haiku`,
and for a second turn that replays thinking and answers a tool call.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from .conftest import EMULATOR_TEXT, TOKEN, minimal_env

# What Claude Code 2.1.332 asks for first party, and the Bedrock IDs it uses itself.
EXPECTED_MODEL_IDS = {
    None: "us.anthropic.claude-opus-5-5",
    "sonnet": "us.anthropic.claude-sonnet-5-5",
    "haiku": "us.anthropic.claude-haiku-5-5",
}


@pytest.fixture(scope="module")
def claude_bin() -> Path:
    path = os.environ.get("CLAUDE_CODE_BIN")
    if not path or not Path(path).is_file():
        pytest.fail(
            "CLAUDE_CODE_BIN is not set to the claude binary; scripts/test.sh installs "
            "@anthropic-ai/claude-code from npm and sets it",
            pytrace=False,
        )
    return Path(path)


def run_claude(claude_bin: Path, proxy, tmp_path: Path, prompt: str, *args: str) -> subprocess.CompletedProcess:
    home = tmp_path / "home"
    project = home / "project"
    project.mkdir(parents=True, exist_ok=True)
    env = minimal_env(
        HOME=str(home),
        ANTHROPIC_BASE_URL=proxy.url,
        ANTHROPIC_AUTH_TOKEN=TOKEN,
        DISABLE_TELEMETRY="1",
        DISABLE_AUTOUPDATER="1",
        DISABLE_ERROR_REPORTING="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
    )
    return subprocess.run(
        [str(claude_bin), "-p", prompt, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def assert_no_rejections(requests: list[dict]) -> None:
    statuses = [r["status"] for r in requests]
    assert requests and all(s == 200 for s in statuses), f"emulator statuses {statuses}: " + "; ".join(
        str(r["body"])[:300] for r in requests if r["status"] != 200
    )


@pytest.mark.parametrize("model", [None, "sonnet", "haiku"], ids=["default", "sonnet", "haiku"])
def test_claude_code_answers_through_the_proxy_with_zero_rejections(claude_bin, proxy, emulator, tmp_path, model):
    emulator.clear()
    args = ["--model", model] if model else []
    done = run_claude(claude_bin, proxy, tmp_path, "say ok", *args)
    assert done.returncode == 0, f"claude exited {done.returncode}: {done.stderr[-2000:]}"
    assert EMULATOR_TEXT in done.stdout
    requests = emulator.requests()
    assert_no_rejections(requests)
    main = [r for r in requests if r["operation"] == "invoke-with-response-stream" and r["body"].get("tools")]
    assert main, f"no conversation request among {[r['operation'] for r in requests]}"
    assert main[0]["model_id"] == EXPECTED_MODEL_IDS[model]
    body = main[0]["body"]
    # What Claude Code's own Bedrock client sends: tool search under its Bedrock name, the
    # deferred tool kept, effort only in the header, no per-turn effort on messages.
    assert "tool-search-tool-2025-10-19" in body["anthropic_beta"]
    assert "effort-2025-11-24" in main[0]["headers"]["anthropic-beta"].split(",")
    assert any(t.get("defer_loading") for t in body["tools"])
    assert all(set(m) == {"role", "content"} for m in body["messages"])
    assert "context_management" not in body
    # Attribution: Claude Code's session id (a UUID in x-claude-code-session-id) is in the
    # request's log line, so spend can be traced to a session.
    sessions = set(re.findall(r"session_id=\"?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})", proxy.log_text()))
    assert sessions, "no Claude Code session id in the proxy's request lines"


def test_a_second_turn_with_thinking_and_a_tool_result_is_accepted(claude_bin, proxy, emulator, tmp_path):
    # The emulator answers turn 1 with a signed thinking block and a call of Claude Code's first
    # tool; Claude Code runs it (or reports it failed) and sends turn 2.
    emulator.clear()
    done = run_claude(claude_bin, proxy, tmp_path, "say ok emulator:tool_use emulator:thinking")
    assert done.returncode == 0, f"claude exited {done.returncode}: {done.stderr[-2000:]}"
    requests = [r for r in emulator.requests() if r["operation"] == "invoke-with-response-stream"]
    assert_no_rejections(requests)
    assert len(requests) >= 2, "Claude Code did not send a second turn"
    turn2 = requests[-1]["body"]["messages"]
    assistant = next(m for m in turn2 if m["role"] == "assistant")
    kinds = [block["type"] for block in assistant["content"]]
    assert "thinking" in kinds and "tool_use" in kinds
    assert all(b.get("signature") for b in assistant["content"] if b["type"] == "thinking")
    results = [b for m in turn2 if m["role"] == "user" and isinstance(m["content"], list) for b in m["content"]]
    assert any(b["type"] == "tool_result" for b in results)
