#!/usr/bin/env bash
# What the budget path costs per request (issue 20), on loopback: the release proxy three times
# against the Bedrock emulator, (1) without budgets, (2) with a dollar budget that is far from
# spent (a cached read, and the charge written before the stream's last frame: 1 UpdateItem),
# (3) with every request reserving its worst case (BUDGET_RESERVE_PERCENT=100, as a tight budget
# does: 1 conditional UpdateItem more). DynamoDB is moto_server, which is much slower than
# DynamoDB itself, so the wall time says little; the proxy's own CPU per request is the figure
# (from /proc/PID/schedstat, nanoseconds on CPU). Rounds interleave the three proxies.
#
#   scripts/bench-budgets.sh            # 3 rounds × 300 streamed requests per proxy, c=1
#   scripts/bench-budgets.sh --quick    # 1 round × 50
#
# Run by scripts/bench.sh (and alone by `scripts/bench.sh --budgets`). Figures to stdout and
# target/bench/budgets.md. Every server it starts is stopped on exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/bench
mkdir -p "$OUT"
ROUNDS=3
N=300
[ "${1:-}" = "--quick" ] && { ROUNDS=1; N=50; }
TOKEN=sk-bench-budget-token
TOOLS=$ROOT/.venv/bin
[ -x "$TOOLS/moto_server" ] || { echo "bench-budgets.sh: needs .venv with moto[server] (tests/requirements.txt)" >&2; exit 1; }

step "build (release): proxy, emulator, proxy-bench"
cargo build --release -p bedrock-anthropic-proxy -p bedrock-emulator -p proxy-bench
# Copied at once: a shared target directory may be rebuilt from another tree mid-run.
BIN=$OUT/budgets-bin
mkdir -p "$BIN"
for b in bedrock-anthropic-proxy bedrock-emulator proxy-bench; do
  cp "${CARGO_TARGET_DIR:-$ROOT/target}/release/$b" "$BIN/$b"
done

step "bedrock emulator and moto (DynamoDB)"
"$BIN/bedrock-emulator" --addr 127.0.0.1:0 >"$OUT/budgets-emulator.out" 2>&1 &
track $!
for _ in $(seq 100); do grep -q LISTENING "$OUT/budgets-emulator.out" && break; sleep 0.05; done
EMU=$(sed -n 's/^LISTENING //p' "$OUT/budgets-emulator.out")
MOTO_PORT=$(free_port)
"$TOOLS/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$OUT/budgets-moto.log" 2>&1 &
track $!
wait_port "$MOTO_PORT" 60 moto_server
MOTO=http://127.0.0.1:$MOTO_PORT
TABLE=bench-usage
"$TOOLS/python" - "$MOTO" "$TABLE" <<'PY'
import sys, boto3
db = boto3.client("dynamodb", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
db.create_table(TableName=sys.argv[2], BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                      {"AttributeName": "sk", "AttributeType": "S"}])
PY

SECRET="{\"tokens\": {\"bench\": {\"token\": \"$TOKEN\", \"daily_usd\": 1000000}}}"
base_env=(
  AWS_ENDPOINT_URL_BEDROCK_RUNTIME="$EMU" AWS_ENDPOINT_URL_DYNAMODB="$MOTO" AWS_ACCESS_KEY_ID=test
  AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 INFERENCE_PROFILE=us RUST_LOG=warn
)
declare -A PORT PID
start() { # name env...
  local name=$1
  shift
  PORT[$name]=$(free_port)
  env "${base_env[@]}" "$@" LISTEN_ADDR=127.0.0.1:${PORT[$name]} "$BIN/bedrock-anthropic-proxy" \
    2>"$OUT/budgets-proxy-$name.log" &
  PID[$name]=$!
  track "${PID[$name]}"
  wait_port "${PORT[$name]}" 10 "proxy ($name)"
}
start none BEARER_TOKEN="$TOKEN"
start loose BEARER_TOKEN="$SECRET" USAGE_TABLE=$TABLE
start reserved BEARER_TOKEN="$SECRET" USAGE_TABLE=$TABLE BUDGET_RESERVE_PERCENT=100
NAMES=(none loose reserved)

cpu_ns() { cut -d' ' -f1 "/proc/$1/schedstat"; }
declare -A CPU WALL DONE
for name in "${NAMES[@]}"; do
  CPU[$name]=0 WALL[$name]=0 DONE[$name]=0
  # Warm-up: connection pools, the first read of the budget, lazy statics.
  "$BIN/proxy-bench" drive --url "http://127.0.0.1:${PORT[$name]}" --token "$TOKEN" --n 20 >/dev/null
done
for round in $(seq "$ROUNDS"); do
  step "round $round of $ROUNDS: $N streamed requests per proxy (emulator:chunks=10, c=1)"
  for name in "${NAMES[@]}"; do
    c0=$(cpu_ns "${PID[$name]}")
    t0=$(date +%s%N)
    "$BIN/proxy-bench" drive --url "http://127.0.0.1:${PORT[$name]}" --token "$TOKEN" --n "$N" \
      --text "emulator:chunks=10" >/dev/null
    t1=$(date +%s%N)
    c1=$(cpu_ns "${PID[$name]}")
    CPU[$name]=$((CPU[$name] + c1 - c0))
    WALL[$name]=$((WALL[$name] + t1 - t0))
    DONE[$name]=$((DONE[$name] + N))
  done
done

SPENT=$("$TOOLS/python" - "$MOTO" "$TABLE" <<'PY'
import sys, boto3
db = boto3.client("dynamodb", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
items = db.scan(TableName=sys.argv[2])["Items"]
print(sum(int(i["usd_micros"]["N"]) for i in items) / 1e6)
PY
)

{
  echo "Streamed requests (emulator:chunks=10), c=1, $ROUNDS × $N per proxy, interleaved; DynamoDB is moto_server on loopback."
  echo
  echo "| path | table calls per request | proxy CPU per request | wall per request (moto-bound) |"
  echo "|---|---|---|---|"
  for name in "${NAMES[@]}"; do
    case $name in
      none) calls="0" label="no budget" ;;
      loose) calls="1 UpdateItem (the charge); 1 GetItem per BUDGET_READ_SECONDS" label="dollar budget, far from spent" ;;
      reserved) calls="2 UpdateItem (reserve, then settle); reads as above" label="tight budget (every request reserves)" ;;
    esac
    awk -v l="$label" -v c="$calls" -v cpu="${CPU[$name]}" -v wall="${WALL[$name]}" -v n="${DONE[$name]}" \
      'BEGIN { printf "| %s | %s | %.0f µs | %.2f ms |\n", l, c, cpu / n / 1000, wall / n / 1e6 }'
  done
  echo
  echo "Charged to the budget in the table over the run: \$$SPENT (the reserved proxy's reservations all settled)."
} | tee "$OUT/budgets.md"
