"""SSO end to end: a real OpenID provider (oidc-provider, tests/oidc/server.js) on loopback, the
proxy trusting it through OIDC_ISSUERS, and a person signing in with scripts/sso-login.

The person is played by an HTTP client with a cookie jar: it opens the link sso-login prints,
confirms the device code on the provider's own page and signs in on its test-only login page.
Then the token sso-login prints answers through the proxy and the log line names the person;
Claude Code `-p`, with sso-login as its `apiKeyHelper`, answers too, logged as that person.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import selectors
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from .conftest import (
    EMULATOR_TEXT,
    MODEL,
    REPO,
    SENT_SECRETS,
    TOKEN,
    free_port,
    minimal_env,
    prompt,
    sdk_client,
    stop_process,
    tail,
)
from .test_logs import parse_request_line

SSO_LOGIN = REPO / "scripts" / "sso-login"
OIDC_DIR = REPO / "tests" / "oidc"
CLIENT_ID = "claude-code"
RESOURCE = "urn:bedrock-proxy"
SCOPE = "openid offline_access email groups api"
# The provider's people (tests/oidc/server.js): alice is in `engineering`, which the secret
# below lets use Claude; bob is only in `contractors`, which it does not name.
ALICE = "alice@example.com"
GROUPS_SECRET = json.dumps({"tokens": {"default": TOKEN}, "groups": {"engineering": {"models": ["claude-*"]}}})


class OidcProvider:
    """`node tests/oidc/server.js` on a free loopback port; the URL comes from its LISTENING line."""

    def __init__(self, workdir: Path):
        if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
            pytest.fail("oidc-provider is not installed: run `npm ci --prefix tests/oidc`", pytrace=False)
        self.port = free_port()
        self.log_path = workdir / "oidc-provider.stderr.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            ["node", str(OIDC_DIR / "server.js")],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=minimal_env(PORT=str(self.port)),
        )
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            ready = sel.select(30)
        line = self.proc.stdout.readline().decode().strip() if ready else ""
        if not line.startswith("LISTENING http://"):
            self.stop()
            raise RuntimeError(f"oidc-provider said {line!r}: {tail(self.log_path)}")
        self.issuer = line.split(" ", 1)[1]

    def stop(self) -> None:
        stop_process(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()


@pytest.fixture(scope="module")
def idp(workdir) -> Iterator[OidcProvider]:
    provider = OidcProvider(workdir)
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def sso_proxy(start_proxy, idp):
    issuers = [{"issuer": idp.issuer, "audience": "bedrock-proxy", "caller_claim": "email", "groups_claim": "groups"}]
    return start_proxy(OIDC_ISSUERS=json.dumps(issuers), BEARER_TOKEN=GROUPS_SECRET)


def sso_login_args(idp: OidcProvider) -> list[str]:
    return ["--issuer", idp.issuer, "--client-id", CLIENT_ID, "--resource", RESOURCE, "--scope", SCOPE]


def approve_in_browser(link: str, account: str) -> None:
    """What the person does with the link: confirm the code, sign in (test-only login page)."""
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = browser.open(link, timeout=10).read().decode()
    # oidc-provider's own page: the code and an anti-forgery token, posted back with `confirm`.
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"/>', page))
    assert {"xsrf", "user_code"} <= set(fields), page
    origin = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(link))
    confirm = urllib.parse.urlencode({**fields, "confirm": "yes"}).encode()
    page = browser.open(urllib.request.Request(f"{origin}/device", data=confirm), timeout=10).read().decode()
    action = re.search(r'<form id="login" method="post" action="([^"]+)"', page)
    assert action, f"no login form after confirming the code: {page[:500]}"
    login = urllib.parse.urlencode({"login": account}).encode()
    page = browser.open(urllib.request.Request(origin + action[1], data=login), timeout=10).read().decode()
    assert 'id="device-success"' in page, page[:500]


def sso_login(idp: OidcProvider, cache: Path, account: str | None = None) -> str:
    """Runs scripts/sso-login; when `account` is given, signs that person in through the link it
    prints. Returns the token it printed on stdout."""
    proc = subprocess.Popen(
        [sys.executable, str(SSO_LOGIN), *sso_login_args(idp), "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=minimal_env(XDG_CACHE_HOME=str(cache)),
    )
    try:
        if account is not None:
            first = proc.stderr.readline()
            link = re.search(r"open (\S+)", first)
            assert link, f"sso-login printed no link: {first!r}"
            approve_in_browser(link[1], account)
        out, err = proc.communicate(timeout=60)
    finally:
        stop_process(proc)
    assert proc.returncode == 0, f"sso-login exited {proc.returncode}: {err}"
    token = out.strip()
    assert token.count(".") == 2, f"not a JWT on stdout: {out[:80]!r}"
    SENT_SECRETS.add(token)
    return token


def request_line(proxy, request_id: str) -> dict:
    for line in proxy.log_text().splitlines():
        parsed = parse_request_line(line)
        if parsed and parsed.get("request_id") == request_id:
            return parsed
    raise AssertionError(f"no log line for {request_id} in {proxy.log_path}")


@pytest.fixture(scope="module")
def alice_cache(idp, tmp_path_factory) -> Path:
    """Alice's cache directory after she signed in once (it holds her refresh token)."""
    cache = tmp_path_factory.mktemp("alice-cache")
    sso_login(idp, cache, account="alice")
    return cache


def test_a_persons_token_from_sso_login_answers_and_the_log_line_names_her(idp, sso_proxy, alice_cache):
    saved = list((alice_cache / "bedrock-proxy-sso").glob("*.json"))
    assert len(saved) == 1 and oct(saved[0].stat().st_mode & 0o777) == "0o600"
    assert "refresh_token" in json.loads(saved[0].read_text())
    # A later run refreshes without the browser and prints a new token.
    token = sso_login(idp, alice_cache)
    client = sdk_client(sso_proxy.url, auth="auth_token", token=token)
    raw = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=64, messages=[{"role": "user", "content": prompt()}]
    )
    assert EMULATOR_TEXT in raw.parse().content[0].text
    assert request_line(sso_proxy, raw.headers["request-id"])["caller"] == ALICE


def test_a_person_in_none_of_the_secrets_groups_is_refused_with_a_403(idp, sso_proxy, tmp_path):
    token = sso_login(idp, tmp_path / "bob-cache", account="bob")
    client = sdk_client(sso_proxy.url, auth="x-api-key", token=token)
    with pytest.raises(Exception) as refused:
        client.messages.create(model=MODEL, max_tokens=16, messages=[{"role": "user", "content": prompt()}])
    assert getattr(refused.value, "status_code", None) == 403, refused.value
    assert "none of the groups" in str(refused.value)


def test_claude_code_with_sso_login_as_its_api_key_helper_answers_as_the_person(
    idp, sso_proxy, alice_cache, emulator, tmp_path
):
    claude_bin = os.environ.get("CLAUDE_CODE_BIN")
    if not claude_bin or not Path(claude_bin).is_file():
        pytest.fail("CLAUDE_CODE_BIN is not set to the claude binary; scripts/test.sh installs it", pytrace=False)
    home = tmp_path / "home"
    project = home / "project"
    project.mkdir(parents=True)
    helper = " ".join([sys.executable, str(SSO_LOGIN), *(f"'{a}'" for a in sso_login_args(idp))])
    (home / ".claude").mkdir()
    (home / ".claude" / "settings.json").write_text(json.dumps({"apiKeyHelper": helper}))
    before = len(sso_proxy.log_text().splitlines())
    emulator.clear()
    done = subprocess.run(
        [claude_bin, "-p", "say ok"],
        cwd=project,
        env=minimal_env(
            HOME=str(home),
            XDG_CACHE_HOME=str(alice_cache),
            ANTHROPIC_BASE_URL=sso_proxy.url,
            DISABLE_TELEMETRY="1",
            DISABLE_AUTOUPDATER="1",
            DISABLE_ERROR_REPORTING="1",
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        ),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"claude exited {done.returncode}: {done.stdout[-1000:]} {done.stderr[-2000:]}"
    assert EMULATOR_TEXT in done.stdout
    lines = [parse_request_line(line) for line in sso_proxy.log_text().splitlines()[before:]]
    messages = [line for line in lines if line and line.get("path") == "/v1/messages"]
    assert messages, "Claude Code sent no /v1/messages through the proxy"
    assert {line["caller"] for line in messages} == {ALICE}, messages
    assert all(line["status"] == 200 for line in messages), messages
