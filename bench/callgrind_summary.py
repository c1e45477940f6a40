"""Summarises callgrind dumps of the proxy as instructions per request, in Markdown.

usage: callgrind_summary.py DUMP REQUESTS
       callgrind_summary.py REQUESTS NAME=DUMP [NAME=DUMP ...]   # one column per dump, e.g.
                                                                 # invoke=... mantle=...

Inclusive costs are shown for the entry points that make up one streamed request, and
exclusive costs for leaf work (hashing, allocation, copying, parsing), which inlining under
fat LTO cannot move between functions.
"""

import re
import subprocess
import sys

LINE = re.compile(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$")
# Inclusive entry points: label, regexes over the demangled name (the largest match of each counts),
# and optionally the only column (dump name) where the row means what its label says ("—" elsewhere).
ENTRY_POINTS = [
    ("handler up to the first event (http::messages)", [r"bedrock_anthropic_proxy::http::messages::messages"]),
    ("  Anthropic → upstream body (translate::request::parse_request + to_upstream)",
     [r"translate::request::parse_request$", r"translate::request::to_upstream$"]),
    # BEDROCK_API=invoke: the AWS SDK's orchestrator.
    ("  SDK call up to response headers, incl. signing (orchestrator::invoke_with_stop_point)",
     [r"orchestrator::invoke_with_stop_point"]),
    ("    SigV4 signing (orchestrator::auth::sign_request)", [r"orchestrator::auth::sign_request$"]),
    ("    user-agent interceptor", [r"UserAgentInterceptor as aws_smithy_runtime_api"]),
    # BEDROCK_API=mantle: a request signed with aws-sigv4 and sent on hyper.
    ("  Mantle call up to response headers, incl. signing (mantle::Mantle::send)", [r"mantle::Mantle::send"]),
    # In both: aws-sigv4's own work.
    ("    signing-key derivation, 4 HMAC-SHA256 (aws_sigv4 generate_signing_key)",
     [r"aws_sigv4::sign::v4::generate_signing_key$"]),
    ("    canonical request (aws_sigv4 CanonicalRequest::from)", [r"CanonicalRequest::from$"]),
    # The answer's stream, polled by the SSE body. InvokeModel: the SDK's EventReceiver wrapped as a
    # Stream (no pump task since the second run); under LTO its poll_next is the part of sse.rs's
    # poll_frame whose lines are futures-core's stream.rs. Mantle: a futures `unfold` stream
    # (mantle::events), named after futures-util's Unfold::poll_next. Each row is 0 in the other mode.
    ("InvokeModel: the answer's stream: body reads, frames, unmarshalling (the SDK's EventReceiver)",
     [r"futures-core-[\d.]+/src/stream\.rs:<http_body_util::combinators::map_err::MapErr<B,F> as "
      r"http_body::Body>::poll_frame'2$"], "invoke"),
    ("  event unmarshalling: JSON + base64 of each chunk (Receiver::unmarshall)", [r"Receiver<T,E>::unmarshall$"]),
    ("Mantle: the answer's stream: body reads, SSE split, usage (mantle::events, an Unfold)",
     [r"futures-util-[\d.]+/src/stream/unfold\.rs:<futures_util::stream::unfold::Unfold<T,F,Fut> as "
      r"futures_core::stream::Stream>::poll_next$"], "mantle"),
    ("SSE body: re-framing and pings, all events (sse.rs)",
     [r"(^|/)src/sse\.rs:.*poll_frame"]),
    ("request log line (RequestLog drop → tracing fmt)", [r"request_log::Inner as core::ops::drop::Drop>::drop$"]),
]
LEAVES = [
    ("SHA-256 compression (sha2; software: valgrind hides SHA-NI)", r"sha2::sha256::compress256"),
    ("malloc / free / realloc (glibc)", r"^(_int_malloc|_int_free|_int_realloc|malloc|free|realloc|calloc|malloc_consolidate|unlink_chunk.*|cfree)$"),
    ("memcpy / memmove / memset", r"^__mem(cpy|move|set)"),
    ("aws_smithy_json tokenizer (event payloads)", r"^<?aws_smithy_json::"),
    ("serde_json (request body, SSE event heads; on Mantle also the usage events, as Value)", r"^<?serde_json::"),
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


def inclusive_cost(incl, patterns):
    best = 0
    for pattern in patterns:
        rx = re.compile(pattern)
        best += max((ir for ir, name in incl if rx.search(re.sub(r"\s*\[[^\]]*\]$", "", name))), default=0)
    return best


def main():
    if len(sys.argv) == 3 and sys.argv[2].isdigit():
        dumps, requests = [("", sys.argv[1])], int(sys.argv[2])
    else:
        requests = int(sys.argv[1])
        dumps = [tuple(arg.split("=", 1)) for arg in sys.argv[2:]]
    runs = []
    for name, dump in dumps:
        total, excl = annotate(dump, inclusive=False)
        _, incl = annotate(dump, inclusive=True)
        runs.append((name, total, excl, incl))
    per = lambda ir: ir / requests
    print("Instructions per streamed request (all threads, callgrind): "
          + "; ".join(f"{name + ' ' if name else ''}**{per(total):,.0f}** ({total:,} over {requests} requests)"
                      for name, total, _, _ in runs) + ".\n")
    head = "".join(f" {name + ' ' if name else ''}instructions/request | share |" for name, *_ in runs)
    rule = "---|---|" * len(runs)

    print(f"| inclusive entry point |{head}\n|---|{rule}")
    for label, patterns, *only in ENTRY_POINTS:
        costs = [(inclusive_cost(incl, patterns), total, name) for name, total, _, incl in runs]
        if not any(ir for ir, _, _ in costs):
            continue  # an entry point of the other upstream
        label = label.replace("  ", "&nbsp;&nbsp;")
        cells = "".join(
            " — | — |" if only and len(runs) > 1 and name != only[0] else f" {per(ir):,.0f} | {100 * ir / total:.1f}% |"
            for ir, total, name in costs)
        print(f"| {label} |{cells}")

    # Leaf work, exclusive (these do not call out, so inlining cannot move their cost).
    print(f"\n| leaf work (exclusive) |{head}\n|---|{rule}")
    for label, pattern in LEAVES:
        rx = re.compile(pattern)
        cells = ""
        for _, total, excl, _ in runs:
            ir = sum(ir for ir, name in excl if ir < total / 2 and rx.search(short(name)))
            cells += f" {per(ir):,.0f} | {100 * ir / total:.1f}% |"
        print(f"| {label} |{cells}")


if __name__ == "__main__":
    main()
