"""What the Terraform checks share: the parsed HCL, the paths, and the names the binaries read.

Parses the HCL with python-hcl2 (no provider, no AWS account needed) and reads
src/config.rs for the environment variable names the proxy understands.
"""

import re
from functools import lru_cache
from importlib import metadata
from pathlib import Path

try:
    metadata.version("bc-python-hcl2")
except metadata.PackageNotFoundError:
    pass
else:  # pragma: no cover - an environment problem, not a test result
    raise RuntimeError(
        "bc-python-hcl2 (checkov's fork) is installed in this virtualenv and overwrites python-hcl2's "
        "`hcl2` package. Keep checkov in its own virtualenv (scripts/check-terraform.sh uses .venv/checkov). "
        "Fix: .venv/bin/pip uninstall -y checkov bc-python-hcl2 && "
        ".venv/bin/pip install --force-reinstall --no-deps python-hcl2"
    )

import hcl2  # noqa: E402  (after the check above: the fork would shadow it)

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"
CONFIG_RS = REPO / "src" / "config.rs"
CONFIGURATION_MD = REPO / "docs" / "configuration.md"
# What the official TypeScript SDK's CORS preflights asked for in tests/e2e/test_browser.py.
BROWSER_PREFLIGHT_HEADERS = REPO / "tests" / "browser" / "preflight-headers.json"

PROXY_ACTIONS = {"bedrock-mantle:CountTokens", "secretsmanager:GetSecretValue"}
RUNTIME_ACTIONS = {"bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream", "bedrock:CountTokens"}
ROTATION_ACTIONS = {
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecretVersionStage",
}
CORE_SETTINGS = {
    "BEARER_TOKEN_SECRET_ID",
    "BEDROCK_API",
    "INFERENCE_PROFILE",
    "METRICS_NAMESPACE",
    "MODEL_FALLBACKS",
    "MODEL_MAP",
    "OIDC_ISSUERS",
    "RUST_LOG",
}
# Set only when its feature is on (here: enable_budgets).
OPTIONAL_SETTINGS = {"USAGE_TABLE"}
NEVER_SET_BY_TERRAFORM = {"BEARER_TOKEN", "AWS_REGION", "CORS_ALLOW_ORIGINS"}
# Read by the binary but not Terraform's to set: local runs only, or set by Lambda.
LOCAL_OR_SET_BY_LAMBDA = NEVER_SET_BY_TERRAFORM | {
    "LISTEN_ADDR",
    "WORKER_THREADS",
    "AWS_DEFAULT_REGION",
    "AWS_LAMBDA_RUNTIME_API",
}
# aws-config's endpoint overrides (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_BEDROCK_MANTLE, ...) point tests at emulators.
ENDPOINT_OVERRIDE = re.compile(r"^AWS_ENDPOINT_URL(_[A-Z0-9_]+)?$")
# A name as a key: `NAME = value` in an object, or `"NAME" => value` in a for expression.
ENV_NAME = re.compile(r'\b([A-Z][A-Z0-9_]{2,})"?\s*=')
# The metrics the proxy writes (embedded metric format) that the dashboard shows; for its Duration the dashboard
# uses the function's own (AWS/Lambda), which the duration alarm watches too.
EMF_METRICS = {
    "Requests",
    "InputTokens",
    "OutputTokens",
    "CacheReadInputTokens",
    "CacheWriteInputTokens",
    "TimeToFirstToken",
    "Errors",
    "Throttles",
    "Fallbacks",
    "Healed",
}

def unquote(value):
    """python-hcl2 keeps string quotes; strip them (recursively in lists)."""
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@lru_cache(maxsize=None)
def parse(path: Path) -> dict:
    with path.open() as handle:
        return hcl2.load(handle)


def tf_files():
    return sorted(p for p in TERRAFORM.rglob("*.tf") if ".terraform" not in p.parts)


def labelled(path: Path, kind: str):
    """Yield (label, body) for `kind "label" {}` blocks (variable, output, module)."""
    for entry in parse(path).get(kind, []):
        for label, body in entry.items():
            yield unquote(label), body


def typed(path: Path, kind: str):
    """Yield (type, name, body) for `kind "type" "name" {}` blocks (resource, data)."""
    for entry in parse(path).get(kind, []):
        for type_label, named in entry.items():
            for name_label, body in named.items():
                yield unquote(type_label), unquote(name_label), body


def one(path: Path, kind: str, type_: str, name: str) -> dict:
    found = [b for t, n, b in typed(path, kind) if (t, n) == (type_, name)]
    assert len(found) == 1, f"expected one {kind} {type_}.{name} in {path}"
    return found[0]


def variable(path: Path, name: str) -> dict:
    found = [b for label, b in labelled(path, "variable") if label == name]
    assert len(found) == 1, f"expected variable {name} in {path}"
    return found[0]


def local(path: Path, name: str) -> str:
    for entry in parse(path).get("locals", []):
        if name in entry:
            return entry[name]
    raise AssertionError(f"local {name} not found in {path}")


def statements(document: dict):
    """Yield (conditional, statement) for the statement blocks of a policy document."""
    for statement in document.get("statement", []):
        yield False, statement
    for dynamic in document.get("dynamic", []):
        for label, body in dynamic.items():
            if unquote(label) == "statement":
                for statement in body["content"]:
                    yield body["for_each"], statement


def actions_of(statement: dict) -> set:
    return set(unquote(statement["actions"]))


def all_policy_documents():
    for path in tf_files():
        for type_, name, body in typed(path, "data"):
            if type_ == "aws_iam_policy_document":
                yield path, name, body


def validation_strings(var_body: dict) -> list:
    """String literals inside a variable's validation conditions."""
    found = []
    for validation in var_body.get("validation", []):
        found += re.findall(r'\\?"([^"\\]*)\\?"', validation["condition"])
    return found


ROOT_MAIN = TERRAFORM / "main.tf"
ROOT_VARIABLES = TERRAFORM / "variables.tf"
ROOT_OUTPUTS = TERRAFORM / "outputs.tf"
FUNCTION_MAIN = TERRAFORM / "modules" / "function" / "main.tf"
USAGE_MAIN = TERRAFORM / "modules" / "usage" / "main.tf"
OBSERVABILITY_MAIN = TERRAFORM / "modules" / "observability" / "main.tf"
OBSERVABILITY_VARIABLES = TERRAFORM / "modules" / "observability" / "variables.tf"
MODULES = sorted(p for p in (TERRAFORM / "modules").iterdir() if p.is_dir())
SECRET_MAIN = TERRAFORM / "modules" / "secret" / "main.tf"
ROTATION_MAIN = TERRAFORM / "modules" / "rotation" / "main.tf"


def proxy_environment_names() -> set:
    merged = local(ROOT_MAIN, "proxy_environment")
    names = set(ENV_NAME.findall(merged))
    # The settings merged in from other locals (the usage table, the deployment's caps).
    for other in re.findall(r"local\.(\w+_environment)", merged):
        names |= set(ENV_NAME.findall(local(ROOT_MAIN, other)))
    return names


def module_call(name: str) -> dict:
    found = [b for label, b in labelled(ROOT_MAIN, "module") if label == name]
    assert len(found) == 1, f"expected module {name} in {ROOT_MAIN}"
    return found[0]


def proxy_policy() -> dict:
    return one(ROOT_MAIN, "data", "aws_iam_policy_document", "proxy")


def statement_by_sid(document: dict, sid: str):
    """(for_each or False, statement) of the statement with this Sid."""
    found = [(c, s) for c, s in statements(document) if unquote(s.get("sid")) == sid]
    assert len(found) == 1, f"expected one statement {sid}"
    return found[0]


def hcl_regex(expression: str, function: str) -> str:
    """The first string argument of regexall(...) / replace(..., "/.../", ...) in an HCL expression, as a Python regex."""
    if function == "replace":
        pattern = re.search(r'replace\(\w+, "/(.+?)/",', expression).group(1)
    else:
        pattern = re.search(function + r'\("(.+?)", ', expression).group(1)
    return pattern.replace("\\\\", "\\")


def extra_environment_names() -> set:
    return set(validation_strings(variable(ROOT_VARIABLES, "extra_environment")))


def rotation_environment_names() -> set:
    body = [b for label, b in labelled(ROOT_MAIN, "module") if label == "rotation_function"][0]
    environment = body["environment"]
    if isinstance(environment, dict):
        return set(environment)
    return set(ENV_NAME.findall(environment))
