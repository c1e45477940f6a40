#!/usr/bin/env bash
# Load and soak (issue 6), local mode against the Bedrock emulator on loopback:
#
#   scripts/load.sh                  # 3 min soak + 200-stream burst, ~3.5 min once built; non-zero exit on any failed check
#   SOAK_SECS=30 scripts/load.sh     # a shorter soak
#
# 1. Soak: 32 callers for SOAK_SECS of mixed traffic: complete streams, non-streaming calls,
#    ThrottlingException (UPSTREAM_MAX_ATTEMPTS=1, so it reaches the caller as a 429),
#    connections cut mid-stream, exception frames mid-stream, callers that hang up mid-stream
#    and callers that hang up before the first event. Every request must end as its kind should.
# 2. Burst: CONCURRENT (200) streams at once, each must end with message_stop.
# Before and after each: the proxy's caller and upstream connections, CLOSE_WAIT sockets, fds,
# threads and RSS (from /proc), and the emulator's open_streams, which must be back to 0.
# Peak RSS (VmHWM) must stay under 64 MB. Results: target/load/load.{json,md}.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/load
mkdir -p "$OUT"
SOAK_SECS=${SOAK_SECS:-180}
CONCURRENT=${CONCURRENT:-200}
TOKEN=sk-load-token
START=$(date +%s)

# Each of the 200 streams holds a caller socket and an upstream socket in the proxy.
ulimit -n 8192 2>/dev/null || true

step "build (release): proxy, emulator, proxy-bench"
cargo build --release -p bedrock-anthropic-proxy -p bedrock-emulator -p proxy-bench
BIN=$ROOT/target/release

step "bedrock emulator"
"$BIN/bedrock-emulator" --addr 127.0.0.1:0 >"$OUT/emulator.out" 2>&1 &
track $!
for _ in $(seq 100); do grep -q LISTENING "$OUT/emulator.out" && break; sleep 0.05; done
EMU=$(sed -n 's/^LISTENING //p' "$OUT/emulator.out")
[ -n "$EMU" ] || { echo "load.sh: the emulator did not start" >&2; cat "$OUT/emulator.out" >&2; exit 1; }

step "proxy (local mode, release build, UPSTREAM_MAX_ATTEMPTS=1)"
PROXY_PORT=$(free_port)
AWS_ENDPOINT_URL_BEDROCK_RUNTIME="$EMU" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
  INFERENCE_PROFILE=us BEARER_TOKEN=$TOKEN UPSTREAM_MAX_ATTEMPTS=1 LISTEN_ADDR=127.0.0.1:$PROXY_PORT \
  "$BIN/bedrock-anthropic-proxy" 2>"$OUT/proxy.log" &
PROXY_PID=$!
track "$PROXY_PID"
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$PROXY_PORT") 2>/dev/null && break; sleep 0.05; done

step "soak ${SOAK_SECS}s, then a burst of $CONCURRENT streams"
status=0
"$BIN/proxy-bench" load --proxy "http://127.0.0.1:$PROXY_PORT" --pid "$PROXY_PID" --emulator "$EMU" \
  --token "$TOKEN" --concurrent "$CONCURRENT" --soak-secs "$SOAK_SECS" --soak-callers 32 --rss-limit-mb 64 \
  --out "$OUT/load.json" | tee "$OUT/load.md" || status=$?

if ! kill -0 "$PROXY_PID" 2>/dev/null; then
  echo "load.sh: FAIL: the proxy is no longer running" >&2
  status=1
fi
panics=$(grep -c -i 'panicked' "$OUT/proxy.log" || true)
if [ "$panics" != 0 ]; then
  echo "load.sh: FAIL: $panics panic(s) in target/load/proxy.log" >&2
  status=1
fi

step "load.sh: $([ "$status" = 0 ] && echo PASS || echo FAIL) in $(($(date +%s) - START)) s; results in target/load/"
exit "$status"
