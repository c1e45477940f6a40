#!/usr/bin/env bash
# Static checks of terraform/: terraform fmt, terraform validate where providers
# can be had, checkov (zero failed checks) and tests/terraform (python-hcl2).
# Runs every check, then exits non-zero if any failed.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
repo="$PWD"
venv="$repo/.venv"
# checkov pins old boto3/packaging/python-hcl2 releases that clash with the test
# tools, so it lives in a virtualenv of its own inside .venv.
checkov_venv="$venv/checkov"
checkov_version="3.3.30"

failed=()
section() { printf '\n== %s\n' "$1"; }

# An unreadable TF_CLI_CONFIG_FILE only makes terraform print warnings.
if [[ -n "${TF_CLI_CONFIG_FILE:-}" && ! -r "$TF_CLI_CONFIG_FILE" ]]; then
    unset TF_CLI_CONFIG_FILE
fi

# -- terraform fmt -------------------------------------------------------------
section "terraform fmt -check -recursive terraform"
if command -v terraform >/dev/null 2>&1; then
    terraform version | head -1
    if terraform fmt -check -recursive -diff terraform; then
        echo "terraform fmt: ok"
    else
        failed+=("terraform fmt (run: terraform fmt -recursive terraform)")
    fi
else
    echo "terraform fmt skipped: no terraform binary on PATH here; it runs in .github/workflows/ci.yml"
fi

# -- terraform validate -------------------------------------------------------
# The registry is unreachable from this machine. Where a local filesystem mirror
# of hashicorp/aws exists (TF_PLUGIN_MIRROR, default /opt/tf-plugins), the
# modules that need no other provider are validated against it, in a scratch
# copy so no .terraform or lock file lands in the tree.
section "terraform validate"
mirror="${TF_PLUGIN_MIRROR:-/opt/tf-plugins}"
aws_mirror="$mirror/registry.terraform.io/hashicorp/aws"
validated=()
if command -v terraform >/dev/null 2>&1 && [[ -d "$aws_mirror" ]]; then
    scratch="$(mktemp -d)"
    cat >"$scratch/cli.tfrc" <<EOF
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/hashicorp/aws"]
  }
}
EOF
    for module in function rotation usage observability; do
        copy="$scratch/$module"
        cp -r "terraform/modules/$module" "$copy"
        if (cd "$copy" &&
            TF_CLI_CONFIG_FILE="$scratch/cli.tfrc" terraform init -backend=false -input=false -no-color >"$scratch/$module-init.log" 2>&1 &&
            TF_CLI_CONFIG_FILE="$scratch/cli.tfrc" terraform validate -no-color); then
            validated+=("terraform/modules/$module")
        else
            cat "$scratch/$module-init.log"
            failed+=("terraform validate terraform/modules/$module")
        fi
    done
    rm -rf "$scratch"
    echo "terraform validate ran for ${validated[*]:-nothing} with hashicorp/aws $(find "$aws_mirror" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -1) from $mirror."
    echo "terraform validate skipped for terraform, terraform/examples/complete and terraform/modules/secret: the Terraform registry is unreachable from this machine and the local mirror has no hashicorp/random (nor hashicorp/aws >= 6.28); it runs in .github/workflows/ci.yml"
else
    echo "terraform validate skipped: the Terraform registry is unreachable from this machine; it runs in .github/workflows/ci.yml"
fi

# -- checkov -------------------------------------------------------------------
section "checkov -d terraform"
if [[ ! -x "$checkov_venv/bin/checkov" ]]; then
    if [[ -x "$venv/bin/python" ]]; then
        echo "installing checkov $checkov_version into $checkov_venv"
        "$venv/bin/python" -m venv "$checkov_venv" &&
            "$checkov_venv/bin/pip" install --quiet "checkov==$checkov_version" ||
            failed+=("installing checkov")
    else
        failed+=("checkov: no $venv (create it: python3 -m venv .venv)")
    fi
fi
if [[ -x "$checkov_venv/bin/checkov" ]]; then
    # Once as deployed by examples/complete (modules resolved), once for the
    # root module alone with its own defaults. --skip-download: offline.
    for args in "" "--skip-path examples"; do
        echo "checkov -d terraform --framework terraform $args"
        # shellcheck disable=SC2086
        "$checkov_venv/bin/checkov" -d terraform --framework terraform --skip-download --compact --quiet $args ||
            failed+=("checkov $args")
    done
fi

# -- wiring tests -----------------------------------------------------------------
section "pytest tests/terraform"
if [[ -x "$venv/bin/pytest" ]]; then
    "$venv/bin/pytest" -q tests/terraform || failed+=("pytest tests/terraform")
else
    failed+=("pytest: $venv/bin/pytest not found (.venv/bin/pip install pytest python-hcl2)")
fi

echo
if [[ ${#failed[@]} -gt 0 ]]; then
    printf 'check-terraform: FAILED: %s\n' "${failed[@]}"
    exit 1
fi
echo "check-terraform: all checks passed"
