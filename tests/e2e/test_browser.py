"""The official TypeScript SDK (npm @anthropic-ai/sdk, pinned in tests/browser/package.json) in
headless Chromium (Debian's `chromium`), from a page served on one loopback origin, calling the
proxy on another with `dangerouslyAllowBrowser: true`.

The proxy runs with its default configuration plus the one thing a browser needs, the page's
origin in CORS_ALLOW_ORIGINS. tests/browser/drive.mjs (puppeteer-core) runs the page; this file
judges what the page could read and the preflights Chromium sent. Those preflights' header
names are checked in as tests/browser/preflight-headers.json, which Terraform's default
`cors_allow_headers` must cover (tests/terraform/test_function.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time

import pytest

from .conftest import EMULATOR_TEXT, MODEL, REPO, TOKEN, free_port, minimal_env, prompt, record_response

BROWSER_DIR = REPO / "tests" / "browser"
PREFLIGHT_HEADERS = BROWSER_DIR / "preflight-headers.json"
REQUEST_ID = re.compile(r"req_[0-9A-Za-z]{24}")

RUNS = [
    {"name": "create", "scenario": "create", "auth": "apiKey", "prompt": prompt()},
    {"name": "stream", "scenario": "stream", "auth": "authToken", "prompt": prompt("emulator:chunks=5")},
    {
        "name": "throttled",
        "scenario": "throttled",
        "auth": "apiKey",
        "prompt": prompt("emulator:error=ThrottlingException"),
    },
]


def chromium() -> str:
    path = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium")
    if not path:
        pytest.fail("no `chromium` on PATH; scripts/test.sh installs Debian's chromium package", pytrace=False)
    return path


def drive(config: dict) -> dict:
    """Runs tests/browser/drive.mjs with `config` and returns what it printed."""
    if not (BROWSER_DIR / "node_modules" / "puppeteer-core").is_dir():
        pytest.fail("tests/browser has no node_modules; run `npm ci --prefix tests/browser`", pytrace=False)
    done = subprocess.run(
        ["node", str(BROWSER_DIR / "drive.mjs"), json.dumps(config)],
        cwd=BROWSER_DIR,
        env=minimal_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"drive.mjs exited {done.returncode}:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def page_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def browser_run(start_proxy, page_port) -> dict:
    origin = f"http://127.0.0.1:{page_port}"
    allowed = start_proxy(CORS_ALLOW_ORIGINS=origin)
    # A proxy that lets another origin in: the same calls must then be refused by Chromium,
    # which shows that the passes above come from the CORS answer and not from a lax browser.
    other = start_proxy(CORS_ALLOW_ORIGINS="http://127.0.0.1:9")
    started = time.monotonic()
    out = drive(
        {
            "pagePort": page_port,
            "proxyUrl": allowed.url,
            "token": TOKEN,
            "model": MODEL,
            "chromium": chromium(),
            "runs": [
                *RUNS,
                {
                    "name": "other_origin",
                    "scenario": "create",
                    "auth": "apiKey",
                    "prompt": prompt(),
                    "baseURL": other.url,
                },
            ],
        }
    )
    out["wallSeconds"] = time.monotonic() - started
    print(
        f"\n[browser] {out['chromium']}: {len(out['preflights'])} preflights, "
        f"{out['wallSeconds']:.1f} s (drive.mjs {out['elapsedMs'] / 1000:.1f} s)"
    )
    for name, result in out["results"].items():
        record_response(result.get("requestIdHeader"), result.get("status") or 0, f"browser {name}")
    out["allowed_origin"] = origin
    out["allowed_url"] = allowed.url
    return out


def result(run: dict, name: str) -> dict:
    value = run["results"][name]
    assert "error" not in value, f"{name}: the page got {value}; console: {run['console']}"
    return value


def test_create_answers_and_its_request_id_is_readable(browser_run):
    create = result(browser_run, "create")

    assert create["status"] == 200
    assert create["text"] == EMULATOR_TEXT
    assert REQUEST_ID.fullmatch(create["requestIdHeader"] or ""), create
    assert create["sdkRequestId"] == create["requestIdHeader"]


def test_stream_answers_in_pieces_and_its_request_id_is_readable(browser_run):
    stream = result(browser_run, "stream")

    assert stream["status"] == 200
    assert stream["contentType"].startswith("text/event-stream"), stream
    assert len(stream["deltas"]) == 5, stream["deltas"]
    assert "".join(stream["deltas"]) == stream["text"] == EMULATOR_TEXT
    assert REQUEST_ID.fullmatch(stream["requestIdHeader"] or ""), stream
    assert stream["sdkRequestId"] == stream["requestIdHeader"]


def test_a_429_is_a_rate_limit_error_with_readable_retry_after(browser_run):
    throttled = result(browser_run, "throttled")

    assert throttled["isRateLimitError"], throttled
    assert throttled["status"] == 429 and throttled["errorType"] == "rate_limit_error", throttled
    assert throttled["retryAfter"] is not None and float(throttled["retryAfter"]) > 0, throttled
    assert REQUEST_ID.fullmatch(throttled["requestIdHeader"] or ""), throttled
    assert throttled["sdkRequestId"] == throttled["requestIdHeader"]


def test_an_origin_the_proxy_does_not_allow_is_refused_by_chromium(browser_run):
    refused = browser_run["results"]["other_origin"]

    assert refused.get("error") == "APIConnectionError", refused


def test_preflights_ask_for_the_checked_in_headers(browser_run):
    to_proxy = [p for p in browser_run["preflights"] if p["url"].startswith(browser_run["allowed_url"])]
    assert to_proxy, f"no preflight to the proxy was seen: {browser_run['preflights']}"
    assert all(p["method"] == "OPTIONS" and p["origin"] == browser_run["allowed_origin"] for p in to_proxy), to_proxy
    asked = ",".join(p["accessControlRequestHeaders"] or "" for p in to_proxy)
    seen = sorted({name.strip().lower() for name in asked.split(",") if name.strip()})
    print(f"\n[browser] Access-Control-Request-Headers seen: {', '.join(seen)}")

    checked_in = json.loads(PREFLIGHT_HEADERS.read_text())["headers"]
    assert seen == sorted(checked_in), (
        f"the SDK now asks for {seen}; update {PREFLIGHT_HEADERS.relative_to(REPO)} and Terraform's "
        "default cors_allow_headers (terraform/variables.tf)"
    )
