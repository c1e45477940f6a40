#!/usr/bin/env bash
# Record Claude Code's own Messages requests — first party, Bedrock and Mantle — as the paired
# ground truth under tests/data/claude-code/VERSION/ (see docs/fidelity.md, "Refreshing Claude Code's
# captured requests").
#
#   scripts/capture-claude-code.sh [--out DIR] [--logs DIR] [VERSION]     (VERSION defaults to 2.1.332)
#
#   --out DIR    write the pair files to DIR instead of tests/data/claude-code/VERSION
#   --logs DIR   also keep every run's raw request log (all requests, all headers, credentials
#                redacted; JSON lines) in DIR
#
# How it works
# - Installs @anthropic-ai/claude-code@VERSION from npm into a temporary folder and runs the
#   platform package's native binary directly (the JS launcher wants node >= 22; the binary needs
#   no node at all).
# - Each `claude -p "say ok"` run gets its own temporary HOME (working directory HOME/project, so
#   the paths become /home/dev and /home/dev/project in the files), a clean environment (env -i:
#   none of your own ANTHROPIC_*, AWS_* or CLAUDE_* variables leak in), telemetry, auto-update,
#   error reporting and all non-essential traffic turned off, and its own local recorder
#   (scripts/capture/recorder.py) that answers every Messages call with a stream saying "ok":
#     first party  ANTHROPIC_BASE_URL=http://127.0.0.1:PORT (the recorder), ANTHROPIC_AUTH_TOKEN set
#     bedrock      CLAUDE_CODE_USE_BEDROCK=1 AWS_REGION=us-east-1 CLAUDE_CODE_SKIP_BEDROCK_AUTH=1
#     mantle       CLAUDE_CODE_USE_MANTLE=1  AWS_REGION=us-east-1 CLAUDE_CODE_SKIP_MANTLE_AUTH=1
#   In every mode HTTPS_PROXY points at the recorder, which terminates TLS only for the real AWS
#   hosts (bedrock-runtime.us-east-1.amazonaws.com, bedrock-mantle.us-east-1.api.aws) with a leaf
#   certificate from a throwaway CA (trusted through NODE_EXTRA_CA_CERTS) and refuses every other
#   CONNECT, so nothing leaves the machine. No ANTHROPIC_BEDROCK_BASE_URL / mantle base URL: with a
#   custom base URL the CLI leaves fields out (eager_input_streaming, thinking-binding-controls-*).
# - Every request of a run is recorded, but a pair holds only the run's main request: the turn
#   itself, i.e. the Messages call whose user message carries "say ok" AND that offers the tools.
#   Side calls the CLI may make (a quota probe with max_tokens 1, title/topic generation on a small
#   model, count_tokens) carry no tools, and are not what the proxy must translate faithfully.
#   (2.1.332 makes just that one call per run in -p mode.) scripts/capture/pairs.py does the
#   picking and writes one file per model, headers reduced to anthropic-beta and anthropic-version,
#   in the committed files' format (one-space indent, UTF-8 as is).
#
# How the model is chosen
#   The CLI's aliases resolve differently per mode (2.1.332: `sonnet` is claude-sonnet-5-5 first
#   party, but us.anthropic.claude-sonnet-4-5-20250929-v1:0 on Bedrock and anthropic.claude-sonnet-5
#   on Mantle), so an alias cannot be used across modes. For each of (default model, `sonnet`,
#   `haiku`) a first-party run resolves the alias to a full model id (e.g. claude-sonnet-5-5); then
#   the three recorded runs pass `--model <that id>` (ANTHROPIC_MODEL=<id> gives the same request),
#   which the CLI maps to us.anthropic.<id> on Bedrock (the US cross-region inference profile) and
#   anthropic.<id> on Mantle. The default model is the exception: its runs pass no --model (so the
#   prompt names the model as each mode's default does, e.g. "us.anthropic.claude-opus-5-5"), unless
#   a mode's default is another model, in which case that mode is run again with --model <id>.
#   The file is named after the id without "claude-" (sonnet-5-5.json); an alias resolving to an id
#   already recorded is skipped.
#
# Exits non-zero, naming the run, if any mode recorded no main Messages request; pairs that did
# complete are still written.
set -euo pipefail

VERSION=2.1.332
OUT=
LOGS=
while [ $# -gt 0 ]; do
  case $1 in
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --out=*) OUT=${1#--out=}; shift ;;
    --logs) LOGS=${2:?--logs needs a directory}; shift 2 ;;
    --logs=*) LOGS=${1#--logs=}; shift ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    -*) echo "unknown option: $1" >&2; exit 2 ;;
    *) VERSION=$1; shift ;;
  esac
done
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
[ -z "$OUT" ] || OUT=$(absolute "$OUT")
[ -z "$LOGS" ] || LOGS=$(absolute "$LOGS")
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/tests/data/claude-code/$VERSION}

REGION=us-east-1
BEDROCK_HOST=bedrock-runtime.$REGION.amazonaws.com
MANTLE_HOST=bedrock-mantle.$REGION.api.aws
PROMPT="say ok"
ALIASES=(default sonnet haiku)
RUN_TIMEOUT=300

for tool in npm python3 openssl timeout; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required" >&2; exit 1; }
done
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "error: python3 >= 3.11 is required" >&2; exit 1; }
RECORDER=$ROOT/scripts/capture/recorder.py
PAIRS=$ROOT/scripts/capture/pairs.py

TMP=$(mktemp -d "${TMPDIR:-/tmp}/capture-claude-code.XXXXXX")
REC_PID=
CLAUDE_PID=
cleanup() {
  local pid
  for pid in $CLAUDE_PID $REC_PID; do  # `timeout` passes the TERM on to claude
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n==> %s\n' "$*"; }

step "npm install @anthropic-ai/claude-code@$VERSION (into $TMP/npm)"
# (npm warns that the package wants node >= 22 and that its postinstall was not run: neither matters,
# the platform package's binary is used as is)
if ! npm install --prefix "$TMP/npm" --no-audit --no-fund --loglevel=error \
  "@anthropic-ai/claude-code@$VERSION" >"$TMP/npm-install.log" 2>&1; then
  cat "$TMP/npm-install.log" >&2
  echo "error: npm could not install @anthropic-ai/claude-code@$VERSION" >&2
  exit 1
fi
CLAUDE=
for candidate in "$TMP"/npm/node_modules/@anthropic-ai/claude-code-linux-*/claude \
  "$TMP/npm/node_modules/@anthropic-ai/claude-code/bin/claude.exe"; do
  if [ -x "$candidate" ] && "$candidate" --version >/dev/null 2>&1; then
    CLAUDE=$candidate
    break
  fi
done
[ -n "$CLAUDE" ] || { echo "error: no runnable claude binary in $TMP/npm/node_modules/@anthropic-ai" >&2; exit 1; }
GOT=$("$CLAUDE" --version)
echo "$CLAUDE: $GOT"
case $GOT in
  "$VERSION "* | "$VERSION") ;;
  *) echo "error: asked for $VERSION, the binary says $GOT" >&2; exit 1 ;;
esac

python3 "$RECORDER" --make-ca-only --ca-dir "$TMP/ca" --log /dev/null

# run_claude NAME MODE [claude args...]: one `claude -p` run against a fresh recorder; the
# recorder's log ends up in $TMP/runs/NAME/requests.jsonl.
run_claude() {
  local name=$1 mode=$2
  shift 2
  local run=$TMP/runs/$name
  local home=$run/home
  local work=$home/project
  rm -rf "$run"
  mkdir -p "$work"
  : >"$run/requests.jsonl"
  python3 "$RECORDER" --log "$run/requests.jsonl" --ca-dir "$TMP/ca" \
    --allow-host "$BEDROCK_HOST" --allow-host "$MANTLE_HOST" --port-file "$run/port" \
    2>"$run/recorder.err" &
  REC_PID=$!
  local _
  for _ in $(seq 100); do
    [ -s "$run/port" ] && break
    kill -0 "$REC_PID" 2>/dev/null || break
    sleep 0.1
  done
  [ -s "$run/port" ] || { echo "error: recorder did not start" >&2; cat "$run/recorder.err" >&2; exit 1; }
  local port
  port=$(cat "$run/port")

  local envs=(
    "PATH=/usr/local/bin:/usr/bin:/bin" "HOME=$home" "SHELL=/bin/bash" "TERM=dumb" "LANG=C.UTF-8" "USER=dev"
    DISABLE_TELEMETRY=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1
    DISABLE_ERROR_REPORTING=1 DISABLE_BUG_COMMAND=1 CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY=1
    AWS_EC2_METADATA_DISABLED=true
    "HTTPS_PROXY=http://127.0.0.1:$port" "https_proxy=http://127.0.0.1:$port"
    "NO_PROXY=127.0.0.1,localhost" "no_proxy=127.0.0.1,localhost"
    "NODE_EXTRA_CA_CERTS=$TMP/ca/ca.crt"
  )
  case $mode in
    first_party) envs+=("ANTHROPIC_BASE_URL=http://127.0.0.1:$port" ANTHROPIC_AUTH_TOKEN=capture-token) ;;
    bedrock) envs+=(CLAUDE_CODE_USE_BEDROCK=1 "AWS_REGION=$REGION" CLAUDE_CODE_SKIP_BEDROCK_AUTH=1) ;;
    mantle) envs+=(CLAUDE_CODE_USE_MANTLE=1 "AWS_REGION=$REGION" CLAUDE_CODE_SKIP_MANTLE_AUTH=1) ;;
  esac
  local rc=0
  # in the background so that a signal reaches the trap at once (`wait` is interruptible)
  (cd "$work" && exec env -i "${envs[@]}" timeout "$RUN_TIMEOUT" "$CLAUDE" -p "$PROMPT" "$@" \
    </dev/null >"$run/stdout" 2>"$run/stderr") &
  CLAUDE_PID=$!
  wait "$CLAUDE_PID" || rc=$?
  CLAUDE_PID=
  kill "$REC_PID" 2>/dev/null || true
  wait "$REC_PID" 2>/dev/null || true
  REC_PID=
  if [ "$rc" -ne 0 ]; then
    echo "warning: $name: claude exited $rc; its output:" >&2
    cat "$run/stdout" "$run/stderr" | tail -n 20 | sed 's/^/    /' >&2
  fi
  echo "$name ($mode) -> claude printed: $(head -c 60 "$run/stdout" | tr '\n' ' ')"
  python3 "$PAIRS" summary "$run/requests.jsonl"
  if [ -n "$LOGS" ]; then
    mkdir -p "$LOGS"
    cp "$run/requests.jsonl" "$LOGS/$name.jsonl"
  fi
}

FAILED=()
DONE=()
WRITTEN=()
for alias in "${ALIASES[@]}"; do
  step "model: $alias"
  args=()
  [ "$alias" = default ] || args=(--model "$alias")
  run_claude "resolve-$alias" first_party "${args[@]}"
  if ! model=$(python3 "$PAIRS" main-model "$TMP/runs/resolve-$alias/requests.jsonl"); then
    echo "error: $alias: the first-party run recorded no main /v1/messages request, so the alias could not be resolved" >&2
    FAILED+=("$alias (first party)")
    continue
  fi
  echo "$alias -> $model"
  # shellcheck disable=SC2076
  if [[ " ${DONE[*]-} " =~ " $model " ]]; then
    echo "$model already recorded; skipped"
    continue
  fi
  DONE+=("$model")
  name=${model#claude-}
  for mode in first_party bedrock mantle; do
    if [ "$alias" = default ]; then
      # The default model: no --model at all, as a user with no settings runs it, if this mode's
      # own default is the same model; otherwise again with --model.
      run_claude "$name-$mode" "$mode"
      got=$(python3 "$PAIRS" main-model --bare "$TMP/runs/$name-$mode/requests.jsonl" || true)
      [ "$got" = "$model" ] && continue
      echo "$mode's default model is ${got:-unknown}, not $model: again with --model $model"
    fi
    run_claude "$name-$mode" "$mode" --model "$model"
  done
  out=$OUT/$name.json
  if python3 "$PAIRS" build --version "$VERSION" \
    --first-party "$TMP/runs/$name-first_party" --bedrock "$TMP/runs/$name-bedrock" \
    --mantle "$TMP/runs/$name-mantle" \
    --out "$out.tmp"; then
    mv "$out.tmp" "$out"
    WRITTEN+=("$out")
  else
    rm -f "$out.tmp"
    FAILED+=("$model")
  fi
done

step "result"
for f in "${WRITTEN[@]}"; do echo "wrote $f"; done
if [ "${#FAILED[@]}" -gt 0 ]; then
  echo "error: no main Messages request recorded for: ${FAILED[*]} (see the run summaries above;" \
    "--logs DIR keeps every request the recorder saw)" >&2
  exit 1
fi
