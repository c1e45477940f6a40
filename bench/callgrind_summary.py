"""Summarises a callgrind dump of the proxy as instructions per request, in Markdown.

usage: callgrind_summary.py DUMP REQUESTS

Inclusive costs are shown for the entry points that make up one streamed request, and
exclusive costs for leaf work (hashing, allocation, copying, parsing), which inlining under
fat LTO cannot move between functions.
"""

import re
import subprocess
import sys

LINE = re.compile(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$")
# Inclusive entry points: label, regex over the demangled name. The largest match counts.
ENTRY_POINTS = [
    ("handler up to the first event (routes::messages)", [r"bedrock_anthropic_proxy::routes::messages"]),
    ("  Anthropic → Bedrock body (translate::parse_request + to_bedrock_body)",
     [r"translate::parse_request$", r"translate::to_bedrock_body$"]),
    ("  SDK call up to response headers, incl. signing (orchestrator::invoke_with_stop_point)",
     [r"orchestrator::invoke_with_stop_point"]),
    ("    SigV4 signing (orchestrator::auth::sign_request)", [r"orchestrator::auth::sign_request$"]),
    ("      signing-key derivation, 4 HMAC-SHA256 (aws_sigv4 generate_signing_key)",
     [r"aws_sigv4::sign::v4::generate_signing_key$"]),
    ("      canonical request (aws_sigv4 CanonicalRequest::from)", [r"CanonicalRequest::from$"]),
    ("    user-agent interceptor", [r"UserAgentInterceptor as aws_smithy_runtime_api"]),
    # The response body decodes Bedrock's events itself (no pump task since the second run).
    ("event unmarshalling: JSON + base64 of each chunk (Receiver::unmarshall)", [r"Receiver<T,E>::unmarshall$"]),
    ("SSE body: re-framing and pings, all events (sse.rs)", [r"(^|/)src/sse\.rs:.*poll_frame"]),
    ("request log line (RequestLog drop → tracing fmt)", [r"request_log::Inner as core::ops::drop::Drop>::drop$"]),
]
LEAVES = [
    ("SHA-256 compression (sha2; software: valgrind hides SHA-NI)", r"sha2::sha256::compress256"),
    ("malloc / free / realloc (glibc)", r"^(_int_malloc|_int_free|_int_realloc|malloc|free|realloc|calloc|malloc_consolidate|unlink_chunk.*|cfree)$"),
    ("memcpy / memmove / memset", r"^__mem(cpy|move|set)"),
    ("aws_smithy_json tokenizer (event payloads)", r"^<?aws_smithy_json::"),
    ("serde_json (request body, SSE event heads)", r"^<?serde_json::"),
    ("UTF-8 validation", r"core::str::converts::from_utf8"),
    ("CRC32 (event-stream frames)", r"crc32fast::"),
    ("base64 decode (event payloads)", r"base64"),
    ("fmt::write (log line, headers, signing strings)", r"^core::fmt::write"),
]



def annotate(dump, inclusive):
    out = subprocess.run(
        ["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}", "--threshold=100", dump],
        capture_output=True, text=True, check=True).stdout
    total = 0
    rows = []
    for line in out.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        ir = int(m.group(1).replace(",", ""))
        name = m.group(2)
        if name.startswith("PROGRAM TOTALS"):
            total = ir
            continue
        rows.append((ir, name))
    return total, rows


def short(name):
    name = re.sub(r"\s*\[[^\]]*\]$", "", name)
    name = name.split(":", 1)[1] if re.match(r"^[^:]*\.(rs|c|S)?:|^\?\?\?:", name) else name
    return name if len(name) < 110 else name[:107] + "…"


def main():
    dump, requests = sys.argv[1], int(sys.argv[2])
    total, excl = annotate(dump, inclusive=False)
    _, incl = annotate(dump, inclusive=True)
    per = lambda ir: ir / requests
    print(f"Instructions per streamed request (all threads, callgrind): **{per(total):,.0f}** "
          f"({total:,} over {requests} requests).\n")

    print("| inclusive entry point | instructions/request | share |\n|---|---|---|")
    for label, patterns in ENTRY_POINTS:
        best = 0
        for pattern in patterns:
            rx = re.compile(pattern)
            best += max((ir for ir, name in incl if rx.search(re.sub(r"\s*\[[^\]]*\]$", "", name))), default=0)
        label = label.replace("  ", "&nbsp;&nbsp;")
        print(f"| {label} | {per(best):,.0f} | {100 * best / total:.1f}% |")

    # Leaf work, exclusive (these do not call out, so inlining cannot move their cost).
    print("\n| leaf work (exclusive) | instructions/request | share |\n|---|---|---|")
    for label, pattern in LEAVES:
        rx = re.compile(pattern)
        ir = sum(ir for ir, name in excl if ir < total / 2 and rx.search(short(name)))
        print(f"| {label} | {per(ir):,.0f} | {100 * ir / total:.1f}% |")


if __name__ == "__main__":
    main()
