"""A spent dollar budget as the official SDK and Claude Code meet it: one 429 with `retry-after`
to the reset and `x-should-retry: false`, so that the SDK sends exactly one request and Claude
Code stops within seconds and prints why. Budgets live in moto's DynamoDB (MOTO_ENDPOINT, started
by scripts/test.sh), Bedrock is the emulator.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import time

import anthropic
import boto3
import pytest

from .conftest import sdk_client
from .test_claude_code import claude_bin, run_claude  # noqa: F401  (fixture)

SPENDER = "spender-token-" + secrets.token_hex(12)


@pytest.fixture(scope="module")
def spent_proxy(start_proxy, workdir):
    moto = os.environ.get("MOTO_ENDPOINT")
    if not moto:
        pytest.fail("MOTO_ENDPOINT is not set; scripts/test.sh starts moto_server and sets it", pytrace=False)
    table = "e2e-usage-" + secrets.token_hex(4)
    dynamodb = boto3.client(
        "dynamodb", endpoint_url=moto, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    dynamodb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
    )
    today = datetime.datetime.now(datetime.timezone.utc)
    # $5.02 spent today (and this month), as another instance would have left it.
    dynamodb.put_item(
        TableName=table,
        Item={
            "pk": {"S": "caller#spender"},
            "sk": {"S": f"month#{today:%Y-%m}"},
            "usd_micros": {"N": "5020000"},
            f"d{today:%d}_usd_micros": {"N": "5020000"},
        },
    )
    secret = json.dumps({"tokens": {"spender": {"token": SPENDER, "daily_usd": 5}}})
    return start_proxy(BEARER_TOKEN=secret, USAGE_TABLE=table, AWS_ENDPOINT_URL_DYNAMODB=moto)


def test_the_python_sdk_sends_exactly_one_request_and_raises_the_budget_message(spent_proxy, emulator):
    sent: list = []
    # The SDK's default retries (2): x-should-retry: false must stop them.
    client = sdk_client(spent_proxy.url, token=SPENDER, max_retries=2, sent_headers=sent)
    started = time.monotonic()
    with pytest.raises(anthropic.RateLimitError) as raised:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    assert time.monotonic() - started < 5
    assert len(sent) == 1, f"the SDK sent {len(sent)} requests"
    error = raised.value
    assert "daily dollar budget of $5.00 for this token is used up" in str(error.message)
    assert error.response.headers["x-should-retry"] == "false"
    assert int(error.response.headers["retry-after"]) > 0
    assert spent_proxy.log_text().count('caller="spender"') == 1


def test_claude_code_stops_within_seconds_and_prints_why(claude_bin, spent_proxy, tmp_path):  # noqa: F811
    started = time.monotonic()
    done = run_claude(claude_bin, spent_proxy, tmp_path, "say ok", token=SPENDER)
    elapsed = time.monotonic() - started
    assert done.returncode != 0
    out = done.stdout + done.stderr
    print(f"\n[e2e] claude -p gave up after {elapsed:.1f} s, exit {done.returncode}: {out.strip()[:300]}")
    assert "daily dollar budget of $5.00 for this token is used up" in out, out[-2000:]
    assert "resets at 00:00 UTC" in out
    assert elapsed < 20, f"claude -p took {elapsed:.1f} s to give up"
    # One conversation request reached the proxy (Claude Code may also count tokens).
    lines = [l for l in spent_proxy.log_text().splitlines() if 'caller="spender"' in l and "path=/v1/messages " in l]
    assert len([l for l in lines if "status=429" in l]) <= 2, lines
