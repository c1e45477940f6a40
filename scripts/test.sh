#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a clean machine.
#
# Installs what it needs (Python tools into .venv, never the system Python), checks formatting
# and lints, starts moto_server (Secrets Manager) on loopback, runs the Rust unit and
# integration tests (which start the Bedrock emulator in-process), the Python end-to-end tests
# (official anthropic SDK, Claude Code itself, the TypeScript SDK in headless chromium, raw HTTP,
# cargo lambda watch), and the Terraform checks. Every server it starts is stopped on exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv

step "python tools (.venv)"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
export PATH="$VENV/bin:$PATH"

step "claude code (npm, pinned) for the end-to-end tests"
# The npm package carries a native binary per platform (an optional dependency); its install
# script, which only copies that binary into place, wants Node 22, so it is skipped and the
# platform binary is run directly.
CLAUDE_CODE_VERSION=2.1.332
CLAUDE_CODE_DIR=$ROOT/.cache/claude-code-$CLAUDE_CODE_VERSION
claude_code_bin() {
  for bin in "$CLAUDE_CODE_DIR"/node_modules/@anthropic-ai/claude-code-linux-*/claude; do
    if "$bin" --version >/dev/null 2>&1; then
      echo "$bin"
      return 0
    fi
  done
  return 1
}
if ! claude_code_bin >/dev/null; then
  npm install --prefix "$CLAUDE_CODE_DIR" --ignore-scripts --no-audit --no-fund --loglevel=error \
    "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION"
fi
CLAUDE_CODE_BIN=$(claude_code_bin) || { echo "no runnable Claude Code binary under $CLAUDE_CODE_DIR"; exit 1; }
export CLAUDE_CODE_BIN
"$CLAUDE_CODE_BIN" --version

step "headless chromium (Debian) and the browser test's npm packages (pinned)"
# tests/e2e/test_browser.py drives the official TypeScript SDK in Debian's chromium through
# puppeteer-core, which never downloads a browser of its own. CHROMIUM_BIN may name another
# Chromium build instead (GitHub's Ubuntu runners have no Debian chromium, but a Chrome).
if [ -z "${CHROMIUM_BIN:-}" ]; then
  if ! command -v chromium >/dev/null 2>&1; then
    as_root=()
    [ "$(id -u)" -eq 0 ] || as_root=(sudo)
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq chromium >/dev/null
  fi
  CHROMIUM_BIN=$(command -v chromium)
fi
export CHROMIUM_BIN
"$CHROMIUM_BIN" --version 2>/dev/null
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error

step "oidc-provider (npm, pinned) for the SSO end-to-end tests"
# A real OpenID provider on loopback (tests/oidc/server.js), started and stopped by
# tests/e2e/test_sso.py.
npm ci --prefix tests/oidc --no-audit --no-fund --loglevel=error

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "moto_server (Secrets Manager) on loopback"
mkdir -p "$ROOT/target"
MOTO_PORT=$(free_port)
moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$ROOT/target/moto.log" 2>&1 &
track $!
export MOTO_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
wait_url "$MOTO_ENDPOINT/moto-api/" 30 || { echo "moto_server did not start"; cat "$ROOT/target/moto.log"; exit 1; }

step "cargo test (unit + integration, Bedrock emulator in-process, moto at $MOTO_ENDPOINT)"
cargo test --workspace

step "build the binaries the end-to-end tests run"
cargo build --workspace --bins

step "pytest (anthropic SDK, Claude Code, TypeScript SDK in chromium, raw HTTP, cargo lambda watch, log scan)"
pytest -q tests/e2e

step "fuzz: a short bounded pass over request translation and SSE re-framing"
# cargo fuzz passes -Z flags that need nightly; only a stable toolchain can be had here, and
# RUSTC_BOOTSTRAP=1 lets stable accept them. No sanitizer: the code under test is safe Rust,
# and the pass is about panics and broken output.
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi
(
  cd fuzz
  export RUSTC_BOOTSTRAP=1
  for target in translate_request reframe_sse; do
    log="$ROOT/target/fuzz-$target.log"
    if ! cargo fuzz run --dev -s none "$target" -- -max_total_time="${FUZZ_SECONDS:-20}" >"$log" 2>&1; then
      tail -n 60 "$log"
      echo "fuzz target $target failed; the input is under fuzz/artifacts/$target/"
      exit 1
    fi
    echo "$target: $(grep -E '^Done' "$log")"
  done
)

step "terraform checks"
bash scripts/check-terraform.sh

step "all tests passed"
