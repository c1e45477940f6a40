#!/usr/bin/env bash
# Builds both Lambda binaries for arm64 (provided.al2023) as the zips Terraform
# deploys: target/lambda/bedrock-anthropic-proxy/bootstrap.zip and
# target/lambda/rotate-token/bootstrap.zip. Extra arguments go to `cargo lambda build`.
set -euo pipefail

cd "$(dirname "$0")/.."
repo="$PWD"

# cargo-lambda and Zig come from PyPI; the project's test virtualenv has both.
if [[ -x "$repo/.venv/bin/cargo-lambda" ]]; then
    export PATH="$repo/.venv/bin:$PATH"
fi

missing=0
need() {
    echo "build.sh: missing $1" >&2
    echo "          $2" >&2
    missing=1
}

command -v cargo >/dev/null 2>&1 ||
    need "cargo (Rust)" "install Rust with rustup: https://rustup.rs"

command -v cargo-lambda >/dev/null 2>&1 ||
    need "cargo-lambda" "pip install cargo-lambda ziglang   (in a virtualenv, e.g. python3 -m venv .venv && .venv/bin/pip install cargo-lambda ziglang)"

# cargo-lambda cross-compiles through Zig: a zig on PATH, or PyPI's ziglang module.
if ! command -v zig >/dev/null 2>&1 && ! python3 -c 'import ziglang' >/dev/null 2>&1; then
    need "Zig" "pip install ziglang   (into the same environment as cargo-lambda)"
fi

if command -v rustup >/dev/null 2>&1; then
    rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu ||
        need "the aarch64-unknown-linux-gnu Rust target" "rustup target add aarch64-unknown-linux-gnu"
elif command -v rustc >/dev/null 2>&1; then
    sysroot="$(rustc --print sysroot)"
    [[ -d "$sysroot/lib/rustlib/aarch64-unknown-linux-gnu" ]] ||
        need "the aarch64-unknown-linux-gnu Rust target" "rustup target add aarch64-unknown-linux-gnu   (or your distribution's aarch64 Rust std package)"
fi

if [[ "$missing" -ne 0 ]]; then
    echo "build.sh: install the above and run it again." >&2
    exit 1
fi

cargo lambda build --release --arm64 --output-format zip "$@"
# With extra arguments (e.g. --bin NAME) one zip may rightly be missing.
partial=$#

echo
echo "Lambda packages (arm64, provided.al2023):"
status=0
for bin in bedrock-anthropic-proxy rotate-token; do
    zip="target/lambda/$bin/bootstrap.zip"
    if [[ -f "$zip" ]]; then
        bytes=$(stat -c %s "$zip")
        printf '  %-52s %9s bytes (%s)\n' "$zip" "$bytes" "$(numfmt --to=iec --suffix=B "$bytes")"
    else
        echo "  $zip was not produced" >&2
        [[ "$partial" -gt 0 ]] || status=1
    fi
done
exit "$status"
