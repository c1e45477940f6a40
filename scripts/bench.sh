#!/usr/bin/env bash
# Benchmarks (issue 7), all on loopback against the Bedrock emulator, one command:
#
#   scripts/bench.sh            # ~9 min on 2 cores once built; results in target/bench/
#   scripts/bench.sh --quick    # shorter runs, for checking the script itself
#   scripts/bench.sh --profile  # also callgrind-profile a streamed request (+2 min; first time +10 min build)
#                               # (of the proxy in both modes, BEDROCK_API=invoke and mantle)
#   scripts/bench.sh --budgets  # only the budget path's cost per request (scripts/bench-budgets.sh, ~2 min)
#   scripts/bench.sh --jwt      # only the JWT check's CPU per request (in-process, ~1 min once built)
#
# Five paths get the same requests in the same run, interleaved: (1) direct: the client speaks
# Bedrock's event stream to the emulator itself; (2) this proxy, local mode, release build
# (BEDROCK_API=invoke, the default); (3) direct (mantle): the client speaks SSE to the
# emulator's Bedrock Anthropic Messages ("Mantle") route; (4) proxy (mantle): the same binary
# started a second time with BEDROCK_API=mantle; (5) LiteLLM's proxy (PyPI litellm[proxy] in
# .venv-bench) with its Bedrock endpoint pointed at the emulator. Then exec-to-ready of the
# proxy (local and Lambda mode, with and without Secrets Manager via moto) and the size of the
# arm64 bootstrap.zip from scripts/build.sh.
# The measuring is done by bench/ (proxy-bench); this script builds, starts and stops servers.
# Every server it starts is stopped on exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/bench
mkdir -p "$OUT"

QUICK=0
PROFILE=0
JWT_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --profile) PROFILE=1 ;;
    --budgets) exec bash scripts/bench-budgets.sh ;;
    --jwt) JWT_ONLY=1 ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $arg (use --quick, --profile, --jwt, --budgets)" >&2; exit 2 ;;
  esac
done

# LiteLLM 1.108 and later pin litellm-proxy / litellm-proxy-extras versions that this
# machine's PyPI does not serve; 1.106.12 is the newest whose [proxy] extra installs here.
LITELLM_VERSION=${LITELLM_VERSION:-1.106.12}
LITELLM_WORKERS=${LITELLM_WORKERS:-$(nproc)}
TOKEN=sk-bench-token
START=$(date +%s)

step "build (release): proxy, emulator, proxy-bench"
cargo build --release -p bedrock-anthropic-proxy -p bedrock-emulator -p proxy-bench
# Where cargo put them: target/, or CARGO_TARGET_DIR (or a config's build.target-dir).
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release

# The JWT check (issue 19): in-process, one thread, against a loopback issuer with keys made there.
jwt_bench() {
  step "jwt: the JWT check's CPU per request (RS256, ES256; in-process, one thread)"
  "$BIN/proxy-bench" jwt --n "$1" --rounds 5 --out "$OUT/jwt.json" | tee "$OUT/jwt.md"
}
if [ "$JWT_ONLY" = 1 ]; then
  jwt_bench 2000
  step "done in $(($(date +%s) - START)) s; table in target/bench/jwt.md, raw figures in target/bench/jwt.json"
  exit 0
fi

step "LiteLLM $LITELLM_VERSION in .venv-bench"
if [ ! -x .venv-bench/bin/python ]; then python3 -m venv .venv-bench; fi
if ! .venv-bench/bin/pip show litellm 2>/dev/null | grep -qx "Version: $LITELLM_VERSION"; then
  .venv-bench/bin/pip install --quiet --disable-pip-version-check "litellm[proxy]==$LITELLM_VERSION"
fi
LITELLM_BYTES=$(du -sb .venv-bench | cut -f1)

# moto (Secrets Manager) and cargo-lambda come from the test virtualenv when it has them,
# otherwise from a tools virtualenv under target/ (same pins as tests/requirements.txt).
TOOLS=$ROOT/.venv/bin
if [ ! -x "$TOOLS/moto_server" ] || [ ! -x "$TOOLS/cargo-lambda" ]; then
  step "tools virtualenv (moto, cargo-lambda) in target/bench/tools"
  [ -x "$OUT/tools/bin/python" ] || python3 -m venv "$OUT/tools"
  "$OUT/tools/bin/pip" install --quiet --disable-pip-version-check \
    "$(grep -E '^moto' tests/requirements.txt)" "$(grep -E '^cargo-lambda' tests/requirements.txt)" \
    "$(grep -E '^ziglang' tests/requirements.txt)"
  TOOLS=$OUT/tools/bin
fi

step "machine"
{
  echo "- nproc: $(nproc)"
  echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "- RAM: $(free -g | awk '/^Mem:/ {print $2}') GiB"
  echo "- kernel: $(uname -r); $(rustc --version); LiteLLM $LITELLM_VERSION, $LITELLM_WORKERS uvicorn worker(s)"
  echo "- tree: HEAD $(git rev-parse --short HEAD) ($(git log -1 --format=%cs)), $(git status --porcelain -- src tests/emulator Cargo.toml Cargo.lock | wc -l) uncommitted change(s) under src/, tests/emulator/ and Cargo.* built as they are; $(date -u '+%Y-%m-%d %H:%M UTC')"
} | tee "$OUT/machine.md"

step "bedrock emulator"
"$BIN/bedrock-emulator" --addr 127.0.0.1:0 >"$OUT/emulator.out" 2>&1 &
EMU_PID=$!
track "$EMU_PID"
for _ in $(seq 100); do grep -q LISTENING "$OUT/emulator.out" && break; sleep 0.05; done
EMU=$(sed -n 's/^LISTENING //p' "$OUT/emulator.out")
[ -n "$EMU" ] || { echo "bench.sh: the emulator did not start" >&2; cat "$OUT/emulator.out" >&2; exit 1; }
echo "emulator at $EMU (pid $EMU_PID)"

proxy_env=(
  AWS_ENDPOINT_URL_BEDROCK_RUNTIME="$EMU" AWS_ENDPOINT_URL_BEDROCK_MANTLE="$EMU" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
  AWS_REGION=us-east-1 INFERENCE_PROFILE=us BEARER_TOKEN=$TOKEN
)

step "proxy (local mode, release build)"
PROXY_PORT=$(free_port)
env "${proxy_env[@]}" BEDROCK_API=invoke LISTEN_ADDR=127.0.0.1:$PROXY_PORT "$BIN/bedrock-anthropic-proxy" \
  2>"$OUT/proxy.log" &
PROXY_PID=$!
track "$PROXY_PID"
wait_port "$PROXY_PORT" 10 proxy

step "proxy (mantle): the same binary, BEDROCK_API=mantle"
MANTLE_PORT=$(free_port)
env "${proxy_env[@]}" BEDROCK_API=mantle LISTEN_ADDR=127.0.0.1:$MANTLE_PORT "$BIN/bedrock-anthropic-proxy" \
  2>"$OUT/proxy-mantle.log" &
MANTLE_PID=$!
track "$MANTLE_PID"
wait_port "$MANTLE_PORT" 10 "proxy (mantle)"
# Fail early, with the proxy's own answer, if Mantle mode cannot stream through the emulator.
if ! "$BIN/proxy-bench" drive --url "http://127.0.0.1:$MANTLE_PORT" --token "$TOKEN" --n 1 >/dev/null; then
  echo "bench.sh: the proxy in mantle mode does not answer a streamed request:" >&2
  curl -sS "http://127.0.0.1:$MANTLE_PORT/v1/messages" -H "authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' \
    -d '{"model":"claude-sonnet-4-5","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}' >&2 || true
  tail -5 "$OUT/proxy-mantle.log" >&2
  exit 1
fi

step "LiteLLM proxy ($LITELLM_WORKERS workers)"
export LITELLM_LOCAL_MODEL_COST_MAP=True # no network here: never fetch the price list
LITELLM_PORT=$(free_port)
cat >"$OUT/litellm.yaml" <<EOF
model_list:
  - model_name: claude-sonnet-4-5
    litellm_params:
      model: bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0
      aws_access_key_id: test
      aws_secret_access_key: test
      aws_region_name: us-east-1
      aws_bedrock_runtime_endpoint: $EMU
general_settings:
  master_key: $TOKEN
EOF
LITELLM_CMD="$ROOT/.venv-bench/bin/litellm --config $OUT/litellm.yaml --host 127.0.0.1 --num_workers $LITELLM_WORKERS"
$LITELLM_CMD --port "$LITELLM_PORT" >"$OUT/litellm.log" 2>&1 &
LITELLM_PID=$!
track "$LITELLM_PID"
wait_port "$LITELLM_PORT" 180 LiteLLM
# uvicorn may accept before every worker is ready; ask until a real answer comes back.
for _ in $(seq 120); do
  curl -sf -o /dev/null "http://127.0.0.1:$LITELLM_PORT/v1/messages" -H "authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' \
    -d '{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}' && break
  sleep 0.5
done

if [ "$QUICK" = 1 ]; then
  compare_args=(--ttfd-rounds 50 --chunk-rounds 10 --rounds 1 --secs 2)
  cold_runs=5
  litellm_runs=1
else
  compare_args=(--ttfd-rounds 300 --chunk-rounds 60 --rounds 3 --secs 4)
  cold_runs=30
  litellm_runs=3
fi

step "compare: direct vs proxy (invoke, mantle) vs LiteLLM (interleaved)"
"$BIN/proxy-bench" compare --direct "$EMU" --proxy "http://127.0.0.1:$PROXY_PORT" --proxy-pid "$PROXY_PID" \
  --direct-mantle "$EMU" --proxy-mantle "http://127.0.0.1:$MANTLE_PORT" --proxy-mantle-pid "$MANTLE_PID" \
  --litellm "http://127.0.0.1:$LITELLM_PORT" --litellm-pid "$LITELLM_PID" --emulator-pid "$EMU_PID" \
  --token "$TOKEN" "${compare_args[@]}" --out "$OUT/compare.json" | tee "$OUT/compare.md"

step "stop the servers under test (cold starts run alone)"
LITELLM_KIDS=$(pgrep -P "$LITELLM_PID" 2>/dev/null || true)
for kid in $LITELLM_KIDS; do kill "$kid" 2>/dev/null || true; done
kill "$LITELLM_PID" "$PROXY_PID" "$MANTLE_PID" 2>/dev/null || true
wait "$LITELLM_PID" "$PROXY_PID" "$MANTLE_PID" 2>/dev/null || true
for kid in $LITELLM_KIDS; do
  for _ in $(seq 100); do kill -0 "$kid" 2>/dev/null || break; sleep 0.1; done
done

if [ "$QUICK" = 1 ]; then jwt_bench 200; else jwt_bench 2000; fi

step "moto (Secrets Manager) on loopback"
MOTO_PORT=$(free_port)
"$TOOLS/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$OUT/moto.log" 2>&1 &
track $!
wait_port "$MOTO_PORT" 60 moto_server
sleep 2 # let moto finish starting: cold starts are timed on a quiet machine

step "cold start: exec → ready ($cold_runs runs per mode; LiteLLM $litellm_runs)"
"$BIN/proxy-bench" coldstart --proxy-bin "$BIN/bedrock-anthropic-proxy" --emulator "$EMU" \
  --moto "http://127.0.0.1:$MOTO_PORT" --runs "$cold_runs" \
  --litellm-cmd "$LITELLM_CMD --port $LITELLM_PORT" --litellm-port "$LITELLM_PORT" --litellm-runs "$litellm_runs" \
  --out "$OUT/coldstart.json" | tee "$OUT/coldstart.md"

step "bootstrap.zip (arm64) via scripts/build.sh"
ZIP=target/lambda/bedrock-anthropic-proxy/bootstrap.zip
if PATH="$TOOLS:$PATH" bash scripts/build.sh --bin bedrock-anthropic-proxy >"$OUT/build.log" 2>&1; then
  ZIP_BYTES=$(stat -c %s "$ZIP")
  {
    echo "| artifact | bytes | MB | ×LiteLLM install (.venv-bench, $(numfmt --to=iec "$LITELLM_BYTES")) |"
    echo "|---|---|---|---|"
    awk -v z="$ZIP_BYTES" -v l="$LITELLM_BYTES" 'BEGIN { printf "| bootstrap.zip (arm64) | %d | %.2f | %.4f× |\n", z, z/1048576, z/l }'
    awk -v z="$(stat -c %s "$BIN/bedrock-anthropic-proxy")" -v l="$LITELLM_BYTES" \
      'BEGIN { printf "| x86_64 release binary (unzipped, for reference) | %d | %.2f | %.4f× |\n", z, z/1048576, z/l }'
  } | tee "$OUT/size.md"
else
  echo "bench.sh: scripts/build.sh failed; see $OUT/build.log" >&2
  tail -20 "$OUT/build.log" | tee "$OUT/size.md" >&2
fi

if [ "$PROFILE" = 1 ]; then
  # perf stat reports instructions as "not supported" on this machine's kernel/VM, so
  # callgrind counts them (exact and repeatable, whatever else the machine is doing).
  step "profile: a release build with symbols (target/profiling), under callgrind"
  cargo build --profile profiling --config 'profile.profiling.inherits="release"' \
    --config 'profile.profiling.strip=false' --config 'profile.profiling.debug="line-tables-only"' \
    -p bedrock-anthropic-proxy --bin bedrock-anthropic-proxy
  PROF_REQUESTS=${PROF_REQUESTS:-2000}
  profile_api() { # BEDROCK_API; sets DUMP to the dump's path (no subshell: PIDS must see the pid)
    local api=$1 port pid
    port=$(free_port)
    env "${proxy_env[@]}" BEDROCK_API="$api" LISTEN_ADDR=127.0.0.1:$port \
      valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind-$api.out" \
      target/profiling/bedrock-anthropic-proxy 2>"$OUT/callgrind-$api.log" &
    pid=$!
    track "$pid"
    wait_port "$port" 120 "proxy under callgrind ($api)"
    local drive=("$BIN/proxy-bench" drive --url "http://127.0.0.1:$port" --token "$TOKEN" --text "emulator:chunks=10")
    "${drive[@]}" --n 200 >/dev/null # warm-up: connection pools, lazy statics
    callgrind_control --zero "$pid" >/dev/null
    "${drive[@]}" --n "$PROF_REQUESTS" >&2
    rm -f "$OUT/callgrind-$api.out".*
    callgrind_control --dump=streamed "$pid" >/dev/null
    sleep 1
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    DUMP=$(ls -t "$OUT/callgrind-$api.out".* | head -1)
  }
  profile_api invoke
  DUMP_INVOKE=$DUMP
  profile_api mantle
  DUMP_MANTLE=$DUMP
  {
    echo "Workload: $PROF_REQUESTS streamed requests (emulator:chunks=10, c=1) through target/profiling/bedrock-anthropic-proxy"
    echo "(the release profile plus symbols), counted by callgrind after 200 warm-up requests, once with"
    echo "BEDROCK_API=invoke and once with BEDROCK_API=mantle."
    echo
    python3 bench/callgrind_summary.py "$PROF_REQUESTS" invoke="$DUMP_INVOKE" mantle="$DUMP_MANTLE"
  } | tee "$OUT/profile.md"
fi

step "budgets: the cost of the budget path per request (scripts/bench-budgets.sh)"
if [ "$QUICK" = 1 ]; then bash scripts/bench-budgets.sh --quick; else bash scripts/bench-budgets.sh; fi

{
  echo "## Machine"
  cat "$OUT/machine.md"
  echo
  echo "## Direct vs proxy (InvokeModel and Mantle) vs LiteLLM"
  cat "$OUT/compare.md"
  echo
  echo "## Exec to ready"
  cat "$OUT/coldstart.md"
  echo
  echo "## Package size"
  cat "$OUT/size.md"
  echo
  echo "## Budgets"
  cat "$OUT/budgets.md"
  echo "## JWT check"
  cat "$OUT/jwt.md"
  if [ "$PROFILE" = 1 ]; then
    echo
    echo "## Profile"
    cat "$OUT/profile.md"
  fi
} >"$OUT/report.md"
step "done in $(($(date +%s) - START)) s; report in target/bench/report.md, raw figures in target/bench/*.json"
