#!/usr/bin/env bash
# CPU seconds per streamed request of the function process in Lambda mode, under
# `cargo lambda watch --release` (a real runtime-API loop), against the Bedrock emulator.
#   scripts/lambda-cpu.sh [N]     # N sequential streamed requests (default 1000)
#   BEDROCK_API=mantle scripts/lambda-cpu.sh [N]   # the same through Bedrock's Anthropic Messages
#                                                  # endpoint (the emulator's Mantle route)
# Needs .venv (scripts/test.sh makes it) for cargo-lambda. Stops everything it starts.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
N=${1:-1000}
API=${BEDROCK_API:-invoke}
cargo build --release --quiet -p bedrock-emulator -p proxy-bench

EMU_PORT=$(free_port)
./target/release/bedrock-emulator --addr "127.0.0.1:$EMU_PORT" >/dev/null 2>&1 &
EMU_PID=$!
PORT=$(free_port)
env -u AWS_PROFILE BEARER_TOKEN=bench-token BEDROCK_API="$API" AWS_ENDPOINT_URL_BEDROCK_RUNTIME="http://127.0.0.1:$EMU_PORT" \
  AWS_ENDPOINT_URL_BEDROCK_MANTLE="http://127.0.0.1:$EMU_PORT" \
  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 INFERENCE_PROFILE=us RUST_LOG=warn \
  setsid .venv/bin/cargo-lambda lambda watch --release --ignore-changes --disable-cors \
  --invoke-address 127.0.0.1 --invoke-port "$PORT" --package bedrock-anthropic-proxy --bin bedrock-anthropic-proxy \
  >target/lambda-cpu-watch.log 2>&1 &
WATCH_PID=$!
track "$EMU_PID"
# cargo lambda runs the function as its child: stop the whole process group it leads.
trap 'kill -- -"$WATCH_PID" 2>/dev/null || true; stop_tracked' EXIT

URL="http://127.0.0.1:$PORT/lambda-url/bedrock-anthropic-proxy"
python3 - "$URL/health" <<'PY'
import sys, time, urllib.request
# The first call waits for cargo-lambda's build. A client that gives up on it makes cargo-lambda
# close the response channel, and the function exits on the broken pipe; so wait long.
deadline = time.monotonic() + 900
while time.monotonic() < deadline:
    try:
        urllib.request.urlopen(sys.argv[1], timeout=deadline - time.monotonic()); sys.exit(0)
    except Exception:
        time.sleep(1)
sys.exit("cargo lambda watch did not become ready")
PY
./target/release/proxy-bench drive --url "$URL" --token bench-token --n 50 --concurrency 1 >/dev/null
# The function binary this script's cargo-lambda started (its child; it runs in a session of its own).
FPID=$(pgrep -n -P "$WATCH_PID" -f 'target/release/bedrock-anthropic-proxy$')
ticks() { awk '{print $14+$15}' "/proc/$FPID/stat"; }
T0=$(ticks)
./target/release/proxy-bench drive --url "$URL" --token bench-token --n "$N" --concurrency 1
T1=$(ticks)
python3 -c "import os; hz=os.sysconf('SC_CLK_TCK'); print(f'function CPU per streamed request (BEDROCK_API=$API): {($T1-$T0)/hz/$N*1e6:.0f} µs over $N requests')"
