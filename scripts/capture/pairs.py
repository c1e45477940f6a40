#!/usr/bin/env python3
"""Turn the recorder's logs into a request pair file, and compare pair files by structure.

    pairs.py build --version V --first-party RUN --bedrock RUN --mantle RUN --out FILE
                                     (RUN: a run's folder: requests.jsonl, home/, home/project/)
    pairs.py summary LOG...          one line per recorded request (what scripts/capture-claude-code.sh prints)
    pairs.py main-model [--bare] LOG the model of a run's main request
    pairs.py compare OLD.json NEW.json   structural differences (keys, tools, betas, model ids), not texts

A pair file is what tests/data/claude-code/VERSION/*.json hold: top-level `client` and `model`, then
`first_party` (method, path, headers, body), `bedrock` (operation, host, path, headers, body) and
`mantle` (host, path, headers, body). Headers kept: `anthropic-beta` and `anthropic-version` only, as in
the first committed files (left out: anthropic-dangerous-direct-browser-access, x-app, x-stainless-*,
x-claude-code-session-id, user-agent, authorization and transport headers; `--logs` keeps them all).
The body is the parsed JSON, keys in the order sent.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

PROMPT = "say ok"
KEPT_HEADERS = ("anthropic-beta", "anthropic-version")
PROJECT, HOME = "/home/dev/project", "/home/dev"


def load_log(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def is_messages_call(e: dict) -> bool:
    """A Messages API call in any of the three dialects (count_tokens excluded)."""
    if e.get("kind") != "request" or e.get("method") != "POST" or not isinstance(e.get("body"), dict):
        return False
    route = e["path"].split("?", 1)[0]
    return route.endswith("/v1/messages") or bool(
        re.fullmatch(r"/model/[^/]+/invoke(-with-response-stream)?", route))


def _texts(content) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [b.get("text", "") for b in content or [] if isinstance(b, dict)]


def main_request(log: list[dict]) -> dict | None:
    """The main conversation request of one `claude -p "say ok"` run.

    Claude Code can make more than one Messages call per run: a quota probe (max_tokens 1), a title
    or topic call on a small model, a count_tokens call, ... . The one that matters for the proxy
    is the turn itself: the call whose user message carries the prompt AND that offers the tools
    (side calls send no tools). If several qualify (a retry), the last one is taken; if none
    offers tools, the largest max_tokens call carrying the prompt is the fallback.
    """
    calls = [e for e in log if is_messages_call(e)]
    with_prompt = [e for e in calls
                   if any(PROMPT in t for m in e["body"].get("messages", []) if m.get("role") == "user"
                          for t in _texts(m.get("content")))]
    with_tools = [e for e in with_prompt if e["body"].get("tools")]
    if with_tools:
        return with_tools[-1]
    if with_prompt:
        return max(with_prompt, key=lambda e: e["body"].get("max_tokens") or 0)
    return None


def _slug(path: str) -> str:
    # Claude Code's project directory name under ~/.claude/projects: every non-alphanumeric -> "-"
    return re.sub(r"[^A-Za-z0-9]", "-", path)


def scrub(obj, workdir: str, home: str):
    """Replace the temporary working directory and HOME with /home/dev/project and /home/dev."""
    pairs = [(_slug(workdir), _slug(PROJECT)), (workdir, PROJECT), (_slug(home), _slug(HOME)), (home, HOME)]
    if isinstance(obj, str):
        for old, new in pairs:
            obj = obj.replace(old, new)
        return obj
    if isinstance(obj, list):
        return [scrub(v, workdir, home) for v in obj]
    if isinstance(obj, dict):
        return {scrub(k, workdir, home): scrub(v, workdir, home) for k, v in obj.items()}
    return obj


def kept_headers(e: dict) -> dict:
    return {k: e["headers"][k] for k in KEPT_HEADERS if k in e["headers"]}


def build(args) -> int:
    parts = {}
    for mode in ("first_party", "bedrock", "mantle"):
        run = Path(getattr(args, mode))
        e = main_request(load_log(run / "requests.jsonl"))
        if e is None:
            print(f"error: the {mode} run recorded no main Messages request (log: {run / 'requests.jsonl'})",
                  file=sys.stderr)
            return 1
        if mode == "first_party":
            part = {"method": e["method"], "path": e["path"]}
        elif mode == "bedrock":
            op = ("InvokeModelWithResponseStream" if e["path"].split("?")[0].endswith("-with-response-stream")
                  else "InvokeModel")
            part = {"operation": op, "host": e["host"], "path": e["path"]}
        else:
            part = {"host": e["host"], "path": e["path"]}
        part["headers"] = kept_headers(e)
        part["body"] = scrub(e["body"], str(run / "home" / "project"), str(run / "home"))
        parts[mode] = part
    model = parts["first_party"]["body"].get("model")
    pair = {"client": f'claude-code {args.version} (claude -p "{PROMPT}")', "model": model, **parts}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        # the committed files: one-space indent, UTF-8 kept as is, final newline
        f.write(json.dumps(pair, indent=1, ensure_ascii=False) + "\n")
    return 0


def summary(args) -> int:
    for path in args.logs:
        log = load_log(path)
        main = main_request(log)
        print(f"   {sum(e.get('kind') == 'request' for e in log)} request(s) recorded")
        for e in log:
            if e.get("kind") == "connect":
                if not e["allowed"]:
                    print(f"   refused CONNECT {e['host']}:{e['port']}")
                continue
            if e.get("kind") != "request":
                print(f"   {e.get('kind')}: {e}")
                continue
            b = e["body"] if isinstance(e["body"], dict) else {}
            print(f"   {'MAIN ' if e is main else '     '}{e['method']} {e['host']}{e['path']}"
                  f" model={b.get('model', '-')} max_tokens={b.get('max_tokens', '-')}"
                  f" tools={len(b.get('tools') or [])} -> {e['answered']['status']}")
    return 0


def main_model(args) -> int:
    """The model of a run's main request: body `model`, or the model id in a Bedrock path.
    With --bare, Bedrock's and Mantle's prefixes are dropped (us.anthropic.claude-x -> claude-x)."""
    e = main_request(load_log(args.log))
    if e is None:
        return 1
    m = re.fullmatch(r"/model/([^/]+)/invoke(-with-response-stream)?", e["path"].split("?", 1)[0])
    model = m.group(1) if m else e["body"].get("model")
    if not model:
        return 1
    if args.bare:
        model = re.sub(r"^((us|eu|apac|au|jp|us-gov|global)\.)?anthropic\.", "", model)
    print(model)
    return 0


# --------------------------------------------------------------------------- compare


def _betas(header: str | None) -> list[str]:
    return [b.strip() for b in (header or "").split(",") if b.strip()]


def shape(pair: dict) -> dict:
    """What a refresh should be read for: everything but the texts and the run-specific ids."""
    out = {"top-level keys": list(pair)}
    for mode in ("first_party", "bedrock", "mantle"):
        part = pair.get(mode)
        if part is None:
            continue
        body = part.get("body", {})
        out[f"{mode}: keys"] = list(part)
        out[f"{mode}: path"] = part.get("path")
        out[f"{mode}: header keys"] = list(part.get("headers", {}))
        out[f"{mode}: header betas"] = _betas(part.get("headers", {}).get("anthropic-beta"))
        out[f"{mode}: body keys"] = list(body)
        out[f"{mode}: body model"] = body.get("model")
        out[f"{mode}: body anthropic_beta"] = body.get("anthropic_beta")
        out[f"{mode}: body anthropic_version"] = body.get("anthropic_version")
        for k in ("max_tokens", "thinking", "context_management", "output_config", "stream"):
            out[f"{mode}: body {k}"] = body.get(k)
        out[f"{mode}: system blocks"] = [sorted(b) for b in body.get("system", [])]
        out[f"{mode}: messages"] = [
            {"role": m.get("role"), "keys": list(m),
             "blocks": [sorted(b) for b in m.get("content", [])] if isinstance(m.get("content"), list) else "str"}
            for m in body.get("messages", [])]
        out[f"{mode}: tools"] = [t.get("name") for t in body.get("tools", [])]
        for t in body.get("tools", []):
            out[f"{mode}: tool {t.get('name')} keys"] = list(t)
            out[f"{mode}: tool {t.get('name')} input properties"] = list(
                (t.get("input_schema") or {}).get("properties", {}))
        out[f"{mode}: metadata keys"] = list(body.get("metadata", {}))
    return out


def compare(args) -> int:
    old, new = (json.loads(Path(p).read_text(encoding="utf-8")) for p in (args.old, args.new))
    a, b = shape(old), shape(new)
    diffs = 0
    for key in list(a) + [k for k in b if k not in a]:
        va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
        if va == vb:
            continue
        diffs += 1
        if isinstance(va, list) and isinstance(vb, list) and all(isinstance(x, str) for x in va + vb):
            gone, added = [x for x in va if x not in vb], [x for x in vb if x not in va]
            detail = (f"removed {gone} " if gone else "") + (f"added {added}" if added else "")
            print(f"{key}: {detail or 'same items, order changed'}")
        else:
            print(f"{key}: {json.dumps(va)} -> {json.dumps(vb)}")
    print(f"{diffs} structural difference(s) between {args.old} and {args.new}")
    return 0


def cli() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    for opt in ("version", "first-party", "bedrock", "mantle", "out"):
        b.add_argument(f"--{opt}", required=True)
    s = sub.add_parser("summary")
    s.add_argument("logs", nargs="+")
    m = sub.add_parser("main-model")
    m.add_argument("log")
    m.add_argument("--bare", action="store_true")
    c = sub.add_parser("compare")
    c.add_argument("old")
    c.add_argument("new")
    args = ap.parse_args()
    return {"build": build, "summary": summary, "main-model": main_model, "compare": compare}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(cli())
