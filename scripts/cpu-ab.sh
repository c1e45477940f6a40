#!/usr/bin/env bash
# Two builds of the proxy, measured in one run and interleaved (local mode, against the Bedrock
# emulator), so that a change's effect is not lost in the machine's noise:
#
#   scripts/cpu-ab.sh BEFORE_BINARY AFTER_BINARY [ROUNDS]
#
# For example, the build before a change:
#   git worktree add /tmp/before <commit> && (cd /tmp/before && CARGO_TARGET_DIR=/tmp/before-target \
#     cargo build --release -p bedrock-anthropic-proxy)
#   scripts/cpu-ab.sh /tmp/before-target/release/bedrock-anthropic-proxy target/release/bedrock-anthropic-proxy
#
# Each round starts each binary afresh (in alternating order) and measures:
# - CPU per streamed request (utime+stime from /proc over N requests, `emulator:chunks=10`) at c=1 and c=16;
# - peak RSS (VmHWM) of a fresh process through 200 concurrent streams, each on a new connection and
#   held for ~1 s: with a small body, and with Claude Code's own first request (~50 KB, from
#   tests/data/claude-code/2.1.332/opus-5-5.json).
# Prints a Markdown table of medians. Every server it starts is stopped on exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
ROOT=$PWD
[ $# -ge 2 ] || { sed -n '2,17p' "$0"; exit 2; }
BEFORE=$(realpath "$1")
AFTER=$(realpath "$2")
ROUNDS=${3:-3}
N=${N:-3000}
OUT=$ROOT/target/cpu-ab
mkdir -p "$OUT"
ulimit -n 8192 2>/dev/null || true

cargo build --release --quiet -p bedrock-emulator -p proxy-bench
BIN=$ROOT/target/release

"$BIN/bedrock-emulator" --addr 127.0.0.1:0 >"$OUT/emulator.out" 2>&1 &
track $!
for _ in $(seq 100); do grep -q LISTENING "$OUT/emulator.out" && break; sleep 0.05; done
EMU=$(sed -n 's/^LISTENING //p' "$OUT/emulator.out")

PROXY_PID=
PORT=
start_proxy() { # binary
  PORT=$(free_port)
  env AWS_ENDPOINT_URL_BEDROCK_RUNTIME="$EMU" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
    INFERENCE_PROFILE=us BEARER_TOKEN=tok UPSTREAM_MAX_ATTEMPTS=1 LISTEN_ADDR="127.0.0.1:$PORT" \
    "$1" 2>>"$OUT/proxy.log" &
  PROXY_PID=$!
  track "$PROXY_PID"
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return; sleep 0.05; done
  echo "cpu-ab.sh: $1 did not start" >&2; exit 1
}
stop_proxy() { kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$PROXY_PID/stat"; }
cpu_us() { # concurrency
  local a b
  "$BIN/proxy-bench" drive --url "http://127.0.0.1:$PORT" --token tok --n 300 --concurrency "$1" >/dev/null
  a=$(cpu_ticks)
  "$BIN/proxy-bench" drive --url "http://127.0.0.1:$PORT" --token tok --n "$N" --concurrency "$1" >/dev/null
  b=$(cpu_ticks)
  python3 -c "print(round(($b - $a) / $(getconf CLK_TCK) / $N * 1e6))"
}
burst_kb() { # small|claude-code
  python3 - "$PORT" "$1" "$ROOT/tests/data/claude-code/2.1.332/opus-5-5.json" <<'PY'
import asyncio, json, sys
port, kind, capture = int(sys.argv[1]), sys.argv[2], sys.argv[3]
hold = "emulator:chunks=40 emulator:delay_ms=25"
if kind == "small":
    body = {"model": "claude-sonnet-4-5", "max_tokens": 256, "stream": True,
            "messages": [{"role": "user", "content": "hi " + hold}]}
else:
    body = json.load(open(capture))["first_party"]["body"]
    user = [m for m in body["messages"] if m["role"] == "user"][-1]
    user["content"].append({"type": "text", "text": hold})
raw = json.dumps(body).encode()
head = (f"POST /v1/messages?beta=true HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer tok\r\n"
        f"content-type: application/json\r\nanthropic-version: 2023-06-01\r\n"
        f"content-length: {len(raw)}\r\nconnection: close\r\n\r\n").encode()
async def one():
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + raw)
    await writer.drain()
    data = await reader.read()
    writer.close()
    return b"event: message_stop" in data
async def main():
    done = await asyncio.gather(*[one() for _ in range(200)])
    if not all(done):
        sys.exit(f"{done.count(False)} of 200 streams did not end with message_stop")
asyncio.run(main())
PY
  awk '/VmHWM/ {print $2}' "/proc/$PROXY_PID/status"
}

: >"$OUT/results.tsv"
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="before after"; else order="after before"; fi
  for which in $order; do
    binary=$BEFORE; [ "$which" = after ] && binary=$AFTER
    start_proxy "$binary"; c1=$(cpu_us 1); c16=$(cpu_us 16); stop_proxy
    start_proxy "$binary"; small=$(burst_kb small); stop_proxy
    start_proxy "$binary"; cc=$(burst_kb claude-code); stop_proxy
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$which" "$round" "$c1" "$c16" "$small" "$cc" | tee -a "$OUT/results.tsv" >&2
  done
done

python3 - "$OUT/results.tsv" <<'PY'
import statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1]).read().split("\n") if line]
def med(which, col):
    return statistics.median(float(r[col]) for r in rows if r[0] == which)
print("| figure (median of %d rounds) | before | after | after/before |" % len({r[1] for r in rows}))
print("|---|---|---|---|")
for name, col, unit, scale in [("CPU per streamed request, c=1", 2, "µs", 1), ("CPU per streamed request, c=16", 3, "µs", 1),
                               ("peak RSS, 200 streams, small body", 4, "MB", 1024), ("peak RSS, 200 streams, Claude Code's 50 KB body", 5, "MB", 1024)]:
    b, a = med("before", col) / scale, med("after", col) / scale
    fmt = "{:.0f}" if unit == "µs" else "{:.1f}"
    print(f"| {name} | {fmt.format(b)} {unit} | {fmt.format(a)} {unit} | {a / b:.2f}× |")
PY
