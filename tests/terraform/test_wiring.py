"""Static checks that terraform/ is wired to what the binaries read and call.

Parses the HCL with python-hcl2 (no provider, no AWS account needed) and reads
src/config.rs for the environment variable names the proxy understands.
"""

import json
import re
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import pytest

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


# -- helpers -----------------------------------------------------------------


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


# -- the function and its URL ---------------------------------------------------


def test_function_url_streams_responses():
    url = one(ROOT_MAIN, "resource", "aws_lambda_function_url", "this")

    assert unquote(url["invoke_mode"]) == "RESPONSE_STREAM"
    assert "module.proxy.function_name" in url["function_name"]


def test_functions_are_arm64_custom_runtime_from_the_built_zip():
    function = one(FUNCTION_MAIN, "resource", "aws_lambda_function", "this")

    assert unquote(function["runtime"]) == "provided.al2023"
    assert unquote(function["architectures"]) == ["arm64"]
    assert unquote(function["handler"]) == "bootstrap"
    assert "filebase64sha256(var.zip_path)" in function["source_code_hash"]


def test_zip_paths_default_to_what_build_sh_produces():
    proxy_zip = local(ROOT_MAIN, "proxy_zip_path")
    rotation_zip = local(ROOT_MAIN, "rotation_zip_path")
    build_sh = (REPO / "scripts" / "build.sh").read_text()

    assert "/../target/lambda/bedrock-anthropic-proxy/bootstrap.zip" in proxy_zip
    assert "/../target/lambda/rotate-token/bootstrap.zip" in rotation_zip
    assert "path.module" in proxy_zip and "path.module" in rotation_zip
    assert "cargo lambda build --release --arm64 --output-format zip" in build_sh


def test_proxy_defaults_are_256_mb_and_300_seconds():
    assert variable(ROOT_VARIABLES, "memory_size")["default"] == 256
    assert variable(ROOT_VARIABLES, "timeout")["default"] == 300


def test_authorization_defaults_to_none_and_allows_aws_iam():
    auth = variable(ROOT_VARIABLES, "authorization_type")
    url = one(ROOT_MAIN, "resource", "aws_lambda_function_url", "this")

    assert unquote(auth["default"]) == "NONE"
    assert set(validation_strings(auth)) == {"NONE", "AWS_IAM"}
    assert url["authorization_type"] == "${var.authorization_type}"


def test_cors_lives_only_in_the_function_url_block():
    url = one(ROOT_MAIN, "resource", "aws_lambda_function_url", "this")
    cors = [d for d in url.get("dynamic", []) if "cors" in map(unquote, d)]
    headers = unquote(variable(ROOT_VARIABLES, "cors_allow_headers")["default"])
    cors_blocks = sum(
        len(re.findall(r'(dynamic\s+"cors"|\bcors\s*\{)', p.read_text())) for p in tf_files() if "examples" not in p.parts
    )

    assert cors, "the Function URL has no cors block"
    assert unquote(variable(ROOT_VARIABLES, "cors_allow_origins")["default"]) == ["*"]
    assert {"authorization", "content-type", "x-api-key", "anthropic-version", "anthropic-beta"} <= set(headers)
    assert cors_blocks == 1
    assert "CORS_ALLOW_ORIGINS" not in proxy_environment_names()


def test_cors_default_allows_every_header_the_browser_sdk_sends():
    allowed = {h.lower() for h in unquote(variable(ROOT_VARIABLES, "cors_allow_headers")["default"])}
    seen = {h.lower() for h in json.loads(BROWSER_PREFLIGHT_HEADERS.read_text())["headers"]}

    # An empty or shrunken list would make this pass for the wrong reason.
    assert len(seen) >= 13 and "anthropic-dangerous-direct-browser-access" in seen
    missing = sorted(seen - allowed)
    assert not missing, f"a default deploy blocks the browser SDK; cors_allow_headers lacks {missing}"
    # Sent by Claude Code, earlier SDKs and callers who set them, though not by SDK 1.x's defaults.
    assert {"x-api-key", "anthropic-beta"} <= allowed


def test_cors_default_exposes_what_the_sdk_reads():
    exposed = {h.lower() for h in unquote(variable(ROOT_VARIABLES, "cors_expose_headers")["default"])}

    assert {"request-id", "retry-after", "x-should-retry"} <= exposed


def test_proxy_reserves_concurrency_by_default():
    default = variable(ROOT_VARIABLES, "reserved_concurrency")["default"]
    function = one(FUNCTION_MAIN, "resource", "aws_lambda_function", "this")

    assert isinstance(default, int) and default > 0
    assert module_call("proxy")["reserved_concurrency"] == "${var.reserved_concurrency}"
    assert function["reserved_concurrent_executions"] == "${var.reserved_concurrency}"


# -- environment ------------------------------------------------------------------


def test_proxy_always_sets_the_core_settings_over_extra_environment():
    merged = local(ROOT_MAIN, "proxy_environment")

    assert CORE_SETTINGS <= proxy_environment_names()
    # merge() lets later maps win: extra_environment must come first.
    assert re.match(r"\$\{merge\(var\.extra_environment,", merged)


def test_terraform_never_sets_local_only_or_lambda_reserved_names():
    set_by_terraform = proxy_environment_names() | extra_environment_names() | rotation_environment_names()

    assert not set_by_terraform & NEVER_SET_BY_TERRAFORM
    assert not extra_environment_names() & CORE_SETTINGS


def test_upstream_fallbacks_and_metrics_namespace_come_from_their_inputs():
    merged = local(ROOT_MAIN, "proxy_environment")
    api = variable(ROOT_VARIABLES, "bedrock_api")
    fallbacks = variable(ROOT_VARIABLES, "model_fallbacks")
    namespace = variable(ROOT_VARIABLES, "metrics_namespace")

    assert re.search(r"\bBEDROCK_API\s*=\s*var\.bedrock_api\b", merged)
    assert re.search(r"\bMODEL_FALLBACKS\s*=\s*jsonencode\(var\.model_fallbacks\)", merged)
    assert re.search(r"\bMETRICS_NAMESPACE\s*=\s*var\.metrics_namespace\b", merged)
    assert unquote(api["default"]) == "invoke"
    assert set(validation_strings(api)) == {"invoke", "mantle"}
    assert fallbacks["type"] == "${map(list(string))}" and fallbacks["default"] == {}
    assert unquote(namespace["default"]) == "BedrockAnthropicProxy"


def test_oidc_issuers_come_from_their_input_as_a_json_array_defaulting_to_none():
    merged = local(ROOT_MAIN, "proxy_environment")
    issuers = variable(ROOT_VARIABLES, "oidc_issuers")

    assert re.search(r"\bOIDC_ISSUERS\s*=\s*jsonencode\(var\.oidc_issuers\)", merged)
    assert issuers["default"] == []
    assert "list(object(" in issuers["type"]
    # The shared CI issuers are refused without required claims, as the binary refuses them.
    assert "https://token.actions.githubusercontent.com" in validation_strings(issuers)


def test_usage_table_is_set_only_with_budgets():
    usage = module_call("usage")

    assert "local.usage_environment" in local(ROOT_MAIN, "proxy_environment")
    assert local(ROOT_MAIN, "usage_environment") == '${{for usage in module.usage : "USAGE_TABLE" => usage.table_name}}'
    assert usage["count"] == "${var.enable_budgets ? 1 : 0}"
    assert variable(ROOT_VARIABLES, "enable_budgets")["default"] is False
    assert OPTIONAL_SETTINGS <= proxy_environment_names()


def test_deployment_caps_are_set_only_when_given_and_with_budgets():
    caps = local(ROOT_MAIN, "deployment_budget_environment")

    assert "local.deployment_budget_environment" in local(ROOT_MAIN, "proxy_environment")
    assert {"DEPLOYMENT_DAILY_USD", "DEPLOYMENT_MONTHLY_USD"} <= set(ENV_NAME.findall(caps))
    assert "dollars != null && var.enable_budgets" in caps
    for name in ("deployment_daily_usd", "deployment_monthly_usd"):
        assert variable(ROOT_VARIABLES, name)["default"] is None


def config_rs() -> str:
    assert CONFIG_RS.exists(), f"{CONFIG_RS.relative_to(REPO)} does not exist yet: the binary's settings live there"
    return CONFIG_RS.read_text()


def reads_rust_log_through_env_filter() -> bool:
    """tracing-subscriber's EnvFilter::*from_default_env reads RUST_LOG itself."""
    return any(re.search(r"EnvFilter::(try_)?from_default_env\(", p.read_text()) for p in (REPO / "src").rglob("*.rs"))


def test_every_environment_name_terraform_sets_is_read_by_the_binary():
    names = proxy_environment_names() | extra_environment_names() | rotation_environment_names()
    config = config_rs()

    missing = sorted(name for name in names if f'"{name}"' not in config)
    if "RUST_LOG" in missing and reads_rust_log_through_env_filter():
        missing.remove("RUST_LOG")

    assert len(names) >= 12
    assert not missing, f"set by Terraform but no string literal in src/config.rs: {missing}"


def configuration_table_names() -> set:
    """Variable names in the first column of docs/configuration.md's table under "## Environment variables"."""
    section = CONFIGURATION_MD.read_text().split("\n## Environment variables\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]{2,})`", row.split("|")[1])}


def test_configuration_page_has_a_row_for_every_setting_the_binary_reads_and_no_other():
    code = config_rs().split("#[cfg(test)]")[0]
    read = set(re.findall(r'"([A-Z][A-Z0-9_]{2,})"', code))
    documented = configuration_table_names()

    undocumented = sorted(read - documented)
    unread = sorted(
        n
        for n in documented - read
        if not ENDPOINT_OVERRIDE.match(n) and not (n == "RUST_LOG" and reads_rust_log_through_env_filter())
    )

    assert len(read) >= 20
    assert not undocumented, f"src/config.rs reads these but docs/configuration.md has no row for them: {undocumented}"
    assert not unread, f"docs/configuration.md documents these but src/config.rs does not read them: {unread}"


def test_every_setting_the_binary_reads_can_be_set_from_terraform():
    code = config_rs().split("#[cfg(test)]")[0]
    read = set(re.findall(r'"([A-Z][A-Z0-9_]{2,})"', code))
    settable = proxy_environment_names() | extra_environment_names()

    unaccounted = sorted(n for n in read - settable - LOCAL_OR_SET_BY_LAMBDA if not ENDPOINT_OVERRIDE.match(n))

    assert {"BEARER_TOKEN_SECRET_ID", "TOKEN_REFRESH_SECONDS"} <= read
    assert not unaccounted, f"src/config.rs reads these but terraform/ can't set them: {unaccounted}"


# -- IAM ----------------------------------------------------------------------------


def test_proxy_may_call_exactly_what_it_uses():
    document = proxy_policy()
    always = set().union(*(actions_of(s) for c, s in statements(document) if not c))
    conditional = sorted((c, sorted(actions_of(s))) for c, s in statements(document) if c)

    assert always == PROXY_ACTIONS
    assert conditional == sorted(
        [
            ('${var.bedrock_api == "invoke" ? [1] : []}', sorted(RUNTIME_ACTIONS)),
            ('${var.bedrock_api == "invoke" ? [1] : []}', sorted(RUNTIME_ACTIONS)),
            ('${var.bedrock_api == "mantle" ? [local.mantle_project_arn] : []}', ["bedrock-mantle:CreateInference"]),
            (GUARDRAIL_CONDITION, ["bedrock:ApplyGuardrail"]),
            ("${var.kms_key_arn == null ? [] : [var.kms_key_arn]}", ["kms:Decrypt"]),
            ("${module.usage[*].table_arn}", ["dynamodb:GetItem", "dynamodb:UpdateItem"]),
        ]
    )


def test_mantle_may_create_inference_only_in_mantle_mode_and_count_tokens_always():
    document = proxy_policy()
    create_condition, create = statement_by_sid(document, "InvokeAllowedClaudeModelsOnMantle")
    count_condition, count = statement_by_sid(document, "CountTokensOfAllowedClaudeModelsOnMantle")

    assert create_condition == '${var.bedrock_api == "mantle" ? [local.mantle_project_arn] : []}'
    assert actions_of(create) == {"bedrock-mantle:CreateInference"}
    assert create["resources"] == ["${statement.value}"]
    assert count_condition is False
    assert actions_of(count) == {"bedrock-mantle:CountTokens"}
    assert count["resources"] == ["${local.mantle_project_arn}"]
    for statement in (create, count):
        (condition,) = statement["condition"]
        assert unquote(condition["test"]) == "StringLike"
        assert unquote(condition["variable"]) == "bedrock-mantle:Model"
        assert condition["values"] == "${local.mantle_models}"


GUARDRAIL_CONDITION = '${var.bedrock_api == "invoke" && length(var.guardrail_arns) > 0 ? [var.guardrail_arns] : []}'


def test_the_guardrails_callers_name_may_be_applied_exactly_and_only_in_invoke_mode():
    condition, statement = statement_by_sid(proxy_policy(), "ApplyCallerGuardrails")
    arns = variable(ROOT_VARIABLES, "guardrail_arns")
    pattern = re.search(r'regex\(\\?"(.+?)\\?", arn\)', arns["validation"][0]["condition"]).group(1)
    pattern = pattern.replace("\\\\", "\\")

    # Default empty: no statement at all; and none on Mantle, which refuses guarded callers.
    assert condition == GUARDRAIL_CONDITION
    assert unquote(arns["default"]) == []
    assert actions_of(statement) == {"bedrock:ApplyGuardrail"}
    assert statement["resources"] == "${statement.value}"
    for accepted in (
        "arn:aws:bedrock:us-east-1:123456789012:guardrail/abc123def456",
        "arn:aws-us-gov:bedrock:us-gov-west-1:123456789012:guardrail/x1",
    ):
        assert re.search(pattern, accepted), accepted
    for rejected in (
        "*",
        "abc123def456",
        "arn:aws:bedrock:us-east-1:123456789012:guardrail/*",
        "arn:aws:bedrock:us-east-1:123456789012:guardrail/abc:1",
        "arn:aws:bedrock:us-east-1:*:guardrail/abc",
        "arn:aws:bedrock:us-east-1:123456789012:foundation-model/abc",
    ):
        assert not re.search(pattern, rejected), rejected


def test_mantle_grants_name_one_project_of_this_region_and_account():
    project = variable(ROOT_VARIABLES, "mantle_project")
    pattern = re.search(r'regex\(\\?"(.+?)\\?", var', project["validation"][0]["condition"]).group(1)

    assert unquote(local(ROOT_MAIN, "mantle_project_arn")) == (
        "arn:${local.partition}:bedrock-mantle:${local.region}:${local.account_id}:project/${var.mantle_project}"
    )
    assert unquote(project["default"]) == "default"
    for accepted in ("default", "proj_Ab12"):
        assert re.search(pattern, accepted), accepted
    for rejected in ("*", "proj_*", "default/x", "other"):
        assert not re.search(pattern, rejected), rejected


def test_mantle_models_are_the_allowed_models_without_date_and_version():
    expression = local(ROOT_MAIN, "mantle_models")
    suffix = re.compile(hcl_regex(expression, "replace"))

    def mantle_models(allowed):
        stripped = [suffix.sub("", m) for m in allowed if m != "anthropic.claude-*"]
        return list(dict.fromkeys(allowed + stripped))

    assert "concat(var.allowed_models," in expression
    assert mantle_models(["anthropic.claude-*"]) == ["anthropic.claude-*"]
    assert mantle_models(["anthropic.claude-sonnet-4-5-*"]) == ["anthropic.claude-sonnet-4-5-*", "anthropic.claude-sonnet-4-5"]
    assert mantle_models(["anthropic.claude-haiku-4-5-20251001-v1:0"])[1] == "anthropic.claude-haiku-4-5"
    assert mantle_models(["anthropic.claude-opus-5-5"]) == ["anthropic.claude-opus-5-5"]


def test_fallback_targets_and_model_map_profiles_widen_the_bedrock_regions():
    targets = local(ROOT_MAIN, "bedrock_targets")
    prefix = re.compile(hcl_regex(local(ROOT_MAIN, "target_profiles"), "regexall"))
    profiles = set(local(ROOT_MAIN, "profile_regions")) - {"none"}

    def profile(target):
        match = prefix.search(target)
        return match.group(1) if match else None

    assert "values(var.model_map)" in targets and "values(var.model_fallbacks)" in targets
    assert "local.target_regions" in local(ROOT_MAIN, "bedrock_regions")
    assert "local.profile_regions[profile]" in local(ROOT_MAIN, "target_regions")
    assert set(re.search(r"\(((?:\w+\|)+\w+)\)", prefix.pattern).group(1).split("|")) == profiles
    assert profile("global.anthropic.claude-sonnet-4-5-20250929-v1:0") == "global"
    assert profile("arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.anthropic.claude-haiku-4-5") == "eu"
    assert profile("apac.anthropic.claude-sonnet-4-5") == "apac"
    for none in ("claude-haiku-4-5", "anthropic.claude-haiku-4-5-20251001-v1:0", "us-gov.anthropic.claude-x"):
        assert profile(none) is None, none


def test_application_inference_profiles_named_as_targets_are_granted_and_routed():
    arns = local(ROOT_MAIN, "application_profile_arns")
    pattern = re.compile(hcl_regex(arns, "regex"))

    assert "local.application_profile_arns" in local(ROOT_MAIN, "inference_profile_arns")
    assert "for target in local.bedrock_targets" in arns
    assert pattern.search("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3")
    assert not pattern.search("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/*")


def test_budget_table_and_its_iam_exist_only_with_budgets():
    table = one(USAGE_MAIN, "resource", "aws_dynamodb_table", "this")
    condition, statement = statement_by_sid(proxy_policy(), "CountCallerUsage")
    attributes = {unquote(a["name"]): unquote(a["type"]) for a in table["attribute"]}

    assert module_call("usage")["count"] == "${var.enable_budgets ? 1 : 0}"
    assert condition == "${module.usage[*].table_arn}"
    assert actions_of(statement) == {"dynamodb:GetItem", "dynamodb:UpdateItem"}
    assert statement["resources"] == ["${statement.value}"]
    assert unquote(table["billing_mode"]) == "PAY_PER_REQUEST"
    assert (unquote(table["hash_key"]), unquote(table["range_key"])) == ("pk", "sk")
    assert attributes == {"pk": "S", "sk": "S"}
    assert unquote(table["ttl"][0]["attribute_name"]) == "expires_at" and table["ttl"][0]["enabled"] is True
    assert table["point_in_time_recovery"][0]["enabled"] is True
    assert table["server_side_encryption"][0]["enabled"] is True


def test_rotation_may_call_exactly_what_it_uses():
    document = one(ROOT_MAIN, "data", "aws_iam_policy_document", "rotation")
    always = set().union(*(actions_of(s) for c, s in statements(document) if not c))
    conditional = [(c, actions_of(s)) for c, s in statements(document) if c]

    assert always == ROTATION_ACTIONS
    assert conditional == [
        ("${var.kms_key_arn == null ? [] : [var.kms_key_arn]}", {"kms:Decrypt", "kms:GenerateDataKey"})
    ]


def test_functions_write_only_their_own_log_group():
    document = one(FUNCTION_MAIN, "data", "aws_iam_policy_document", "this")
    (conditional, statement), = statements(document)

    assert actions_of(statement) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert unquote(statement["resources"]) == ["${aws_cloudwatch_log_group.this.arn}:*"]


def test_no_policy_grants_wildcard_actions_or_get_random_password():
    for path, name, document in all_policy_documents():
        for _, statement in statements(document):
            for action in actions_of(statement):
                assert "*" not in action, f"{path.name} {name}: {action}"
                assert action != "secretsmanager:GetRandomPassword", f"{path.name} {name}"


def test_bedrock_and_secret_statements_have_no_bare_wildcard_resource():
    scoped = []
    for path, name, document in all_policy_documents():
        for _, statement in statements(document):
            services = {a.split(":")[0] for a in actions_of(statement)}
            if services & {"bedrock", "bedrock-mantle", "dynamodb", "secretsmanager"}:
                scoped.append((path, name, statement))

    assert len(scoped) == 8
    for path, name, statement in scoped:
        resources = statement["resources"]
        values = resources if isinstance(resources, list) else [resources]
        assert all(unquote(v) != "*" for v in values), f"{path.name} {name}: {resources}"
    secret = [s for _, n, s in scoped if any(a.startswith("secretsmanager:") for a in actions_of(s))]
    assert [s["resources"] for s in secret] == [["${local.secret_arn}"], ["${local.secret_arn}"]]


def test_bedrock_resources_are_claude_models_and_profiles_only():
    proxy = one(ROOT_MAIN, "data", "aws_iam_policy_document", "proxy")
    bedrock = [s for c, s in statements(proxy) if "bedrock:InvokeModel" in actions_of(s)]
    direct, routed = bedrock
    models = variable(ROOT_VARIABLES, "allowed_models")
    pattern = re.search(r'regex\(\\?"(.+?)\\?", m\)', models["validation"][0]["condition"]).group(1)
    pattern = pattern.replace("\\\\", "\\")

    assert direct["resources"] == "${concat(local.inference_profile_arns, local.local_model_arns)}"
    assert routed["resources"] == "${local.foundation_model_arns}"
    # Other regions' models (region * for global) only as part of a profile's request.
    (condition,) = routed["condition"]
    assert unquote(condition["test"]) == "ArnLike"
    assert unquote(condition["variable"]) == "bedrock:InferenceProfileArn"
    assert condition["values"] == "${local.inference_profile_arns}"
    assert "arn:${local.partition}:bedrock:${local.region}::foundation-model/${model}" in local(ROOT_MAIN, "local_model_arns")
    assert "arn:${local.partition}:bedrock:${pair[0]}::foundation-model/${pair[1]}" in local(ROOT_MAIN, "foundation_model_arns")
    assert (
        "arn:${local.partition}:bedrock:${local.region}:${local.account_id}:inference-profile/*.${model}"
        in local(ROOT_MAIN, "inference_profile_arns")
    )
    assert unquote(models["default"]) == ["anthropic.claude-*"]
    assert re.search(pattern, "anthropic.claude-*")
    assert re.search(pattern, "anthropic.claude-sonnet-4-5-20250929-v1:0")
    for rejected in ("*", "anthropic.*", "amazon.titan-*", "anthropic.claude-*/x"):
        assert not re.search(pattern, rejected), rejected


def test_every_inference_profile_has_its_bedrock_regions():
    regions = local(ROOT_MAIN, "profile_regions")
    profiles = set(validation_strings(variable(ROOT_VARIABLES, "inference_profile"))) - {""}
    # The defaults per region come from the table the binary compiles in (src/models.rs).
    table = json.loads((ROOT_MAIN.parent / "region-profiles.json").read_text())
    derived = set(table["exact"].values()) | {name for _, name in table["prefixes"]} | {table["otherwise"]}

    assert "region-profiles.json" in local(ROOT_MAIN, "region_profiles")
    assert "local.region_profiles" in local(ROOT_MAIN, "region_geography")
    assert set(regions) == profiles
    assert len(derived) == 7 and derived <= profiles
    assert unquote(regions["global"]) == ["*"]
    assert regions["none"] == ["${local.region}"]
    assert all(unquote(r) != ["*"] for name, r in regions.items() if name != "global")


def test_rotation_is_invocable_only_by_secrets_manager_for_the_one_secret():
    permission = one(ROTATION_MAIN, "resource", "aws_lambda_permission", "this")
    rotation = one(ROTATION_MAIN, "resource", "aws_secretsmanager_secret_rotation", "this")

    assert unquote(permission["principal"]) == "secretsmanager.amazonaws.com"
    assert unquote(permission["action"]) == "lambda:InvokeFunction"
    assert permission["source_arn"] == "${var.secret_arn}"
    assert rotation["rotation_rules"][0]["schedule_expression"] == "${var.schedule_expression}"
    assert variable(ROOT_VARIABLES, "enable_rotation")["default"] is False


# -- dashboard and alarms ----------------------------------------------------------------


def alarms() -> dict:
    return {name: body for type_, name, body in typed(OBSERVABILITY_MAIN, "resource") if type_ == "aws_cloudwatch_metric_alarm"}


def test_observability_module_gets_the_proxy_and_the_alarm_inputs():
    call = module_call("observability")

    assert call["count"] == "${var.enable_monitoring ? 1 : 0}"
    assert call["function_name"] == "${module.proxy.function_name}"
    assert call["function_timeout"] == "${var.timeout}"
    assert call["log_group_name"] == "${module.proxy.log_group_name}"
    assert call["metrics_namespace"] == "${var.metrics_namespace}"
    assert call["rotation_function_name"] == "${one(module.rotation_function[*].function_name)}"
    assert call["alarm_sns_topic_arn"] == "${var.alarm_sns_topic_arn}"
    for name, _ in labelled(OBSERVABILITY_VARIABLES, "variable"):
        if name.endswith("_threshold") or name.endswith("_threshold_percent") or name.startswith("alarm_"):
            assert call[name] == f"${{var.{name}}}", name


def test_alarms_notify_the_sns_input_and_treat_missing_data_as_fine():
    found = alarms()
    actions = local(OBSERVABILITY_MAIN, "alarm_actions")

    assert set(found) == {"error_rate", "throttles", "duration", "rotation_errors"}
    assert actions == "${var.alarm_sns_topic_arn == null ? [] : [var.alarm_sns_topic_arn]}"
    assert variable(ROOT_VARIABLES, "alarm_sns_topic_arn")["default"] is None
    for name, alarm in found.items():
        assert alarm["alarm_actions"] == "${local.alarm_actions}", name
        assert alarm["ok_actions"] == "${local.alarm_actions}", name
        assert unquote(alarm["treat_missing_data"]) == "notBreaching", name


def test_error_rate_alarm_divides_errors_by_requests():
    alarm = alarms()["error_rate"]
    queries = {unquote(q["id"]): q for q in alarm["metric_query"]}
    totals = local(OBSERVABILITY_MAIN, "totals")

    (returned,) = [q for q in queries.values() if q.get("return_data") is True]
    assert re.search(r"100 \* FILL\(errors, 0\) / requests", returned["expression"])
    assert "requests >= ${var.error_rate_alarm_min_requests}" in returned["expression"]
    assert alarm["threshold"] == "${var.error_rate_alarm_threshold}"
    for query_id, total in (("requests", "TotalRequests"), ("errors", "TotalErrors")):
        metric = queries[query_id]["metric"][0]
        assert metric["metric_name"] == f'${{aws_cloudwatch_log_metric_filter.this["{total}"].metric_transformation[0].name}}'
        assert unquote(metric["stat"]) == "Sum" and metric["namespace"] == "${var.metrics_namespace}"
    # The totals are the proxy's own metrics, counted from its log lines.
    assert {unquote(v) for v in totals.values()} == {"Requests", "Errors", "Throttles"}
    assert set(totals) == {"TotalRequests", "TotalErrors", "TotalThrottles"}


def test_metric_filters_count_the_totals_from_the_proxy_log_lines():
    (name, _, metric_filter), = [(t, n, b) for t, n, b in typed(OBSERVABILITY_MAIN, "resource") if t == "aws_cloudwatch_log_metric_filter"]
    transformation = metric_filter["metric_transformation"][0]

    assert metric_filter["for_each"] == "${local.totals}"
    assert metric_filter["log_group_name"] == "${var.log_group_name}"
    assert unquote(metric_filter["pattern"]) == "{ $.${each.value} > 0 }"
    assert unquote(transformation["value"]) == "$.${each.value}"
    assert transformation["name"] == "${each.key}" and transformation["namespace"] == "${var.metrics_namespace}"


def test_throttle_duration_and_rotation_alarms_watch_the_right_metrics():
    found = alarms()
    throttles, duration, rotation = found["throttles"], found["duration"], found["rotation_errors"]

    assert "TotalThrottles" in throttles["metric_name"] and unquote(throttles["statistic"]) == "Sum"
    assert throttles["threshold"] == "${var.throttles_alarm_threshold}"
    assert unquote(duration["namespace"]) == "AWS/Lambda" and unquote(duration["metric_name"]) == "Duration"
    assert duration["dimensions"] == {"FunctionName": "${var.function_name}"}
    assert unquote(duration["statistic"]) == "Maximum" and duration["threshold"] == "${local.duration_threshold_ms}"
    assert local(OBSERVABILITY_MAIN, "duration_threshold_ms") == (
        "${var.function_timeout * 1000 * var.duration_alarm_threshold_percent / 100}"
    )
    assert variable(ROOT_VARIABLES, "duration_alarm_threshold_percent")["default"] == 80
    assert rotation["count"] == "${var.rotation_function_name == null ? 0 : 1}"
    assert unquote(rotation["namespace"]) == "AWS/Lambda" and unquote(rotation["metric_name"]) == "Errors"
    assert rotation["dimensions"] == {"FunctionName": "${var.rotation_function_name}"}
    assert rotation["threshold"] == 0 and unquote(rotation["comparison_operator"]) == "GreaterThanThreshold"


def test_dashboard_shows_every_proxy_metric_by_caller_and_model_and_its_url_is_an_output():
    text = OBSERVABILITY_MAIN.read_text()
    dashboards = [n for t, n, _ in typed(OBSERVABILITY_MAIN, "resource") if t == "aws_cloudwatch_dashboard"]
    root_outputs = dict(labelled(ROOT_OUTPUTS, "output"))
    literal = set(re.findall(r'MetricName=\\"(\w+)\\"', text))
    looped = set(unquote(local(OBSERVABILITY_MAIN, "token_metrics")))

    assert dashboards == ["this"]
    assert unquote(local(OBSERVABILITY_MAIN, "token_metrics")) == [
        "InputTokens",
        "OutputTokens",
        "CacheReadInputTokens",
        "CacheWriteInputTokens",
    ]
    assert 'for row, dimension in ["caller", "model"]' in text
    assert "${local.search_prefix}caller,model}" in text
    assert '${local.search_prefix}${dimension}} MetricName=\\"${metric}\\"' in text
    assert EMF_METRICS <= literal | looped
    assert '"AWS/Lambda", "Duration", "FunctionName", var.function_name' in text
    assert '"AWS/Lambda", "ConcurrentExecutions", "FunctionName", var.function_name' in text
    assert "${var.metrics_namespace}" in local(OBSERVABILITY_MAIN, "search_prefix")
    assert root_outputs["dashboard_url"]["value"] == "${one(module.observability[*].dashboard_url)}"
    assert "aws_cloudwatch_dashboard.this.dashboard_name" in dict(
        labelled(TERRAFORM / "modules" / "observability" / "outputs.tf", "output")
    )["dashboard_url"]["value"]


# -- the secret ----------------------------------------------------------------------


def test_token_is_owned_by_secrets_manager_after_creation():
    version = one(SECRET_MAIN, "resource", "aws_secretsmanager_secret_version", "this")
    ignored = version["lifecycle"][0]["ignore_changes"]

    assert any("secret_string" in item for item in ignored)


def test_generated_token_is_long_and_url_safe():
    password = one(SECRET_MAIN, "resource", "random_password", "this")
    length = variable(TERRAFORM / "modules" / "secret" / "variables.tf", "token_length")

    assert unquote(password["override_special"]) == "-_"
    assert length["default"] >= 43
    assert "var.token_length >= 43" in length["validation"][0]["condition"]


def test_outputs_are_described_and_never_carry_the_token():
    for path in tf_files():
        for name, body in labelled(path, "output"):
            assert unquote(body.get("description", "")), f"{path}: output {name} has no description"
            value = str(body["value"])
            assert "random_password" not in value and "secret_string" not in value, f"{path}: {name}"
    secret_arn = [b for n, b in labelled(TERRAFORM / "outputs.tf", "output") if n == "secret_arn"][0]
    assert not secret_arn.get("sensitive", False)
    curl = [b for n, b in labelled(TERRAFORM / "outputs.tf", "output") if n == "curl_command"][0]
    assert "aws secretsmanager get-secret-value" in curl["value"]


def test_every_variable_is_typed_and_described():
    for path in tf_files():
        for name, body in labelled(path, "variable"):
            assert "type" in body, f"{path}: variable {name} has no type"
            assert unquote(body.get("description", "")), f"{path}: variable {name} has no description"


# -- documentation ---------------------------------------------------------------------


# The inputs and outputs table lives in terraform/README.md only; the top-level README links to it.
@pytest.mark.parametrize("kind, source", [("variable", "variables.tf"), ("output", "outputs.tf")])
def test_readme_lists_every_root_input_and_output(kind, source):
    readme_path = TERRAFORM / "README.md"
    readme = readme_path.read_text()

    missing = [name for name, _ in labelled(TERRAFORM / source, kind) if f"`{name}`" not in readme]

    assert not missing, f"{readme_path} does not list: {missing}"


@pytest.mark.parametrize("module", MODULES + [TERRAFORM / "examples" / "complete"], ids=lambda p: p.name)
def test_every_module_has_the_standard_files_and_documents_its_inputs_and_outputs(module):
    readme = (module / "README.md").read_text()

    for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
        assert (module / name).exists(), f"{module.relative_to(REPO)} has no {name}"
    for kind, source in (("variable", "variables.tf"), ("output", "outputs.tf")):
        missing = [name for name, _ in labelled(module / source, kind) if f"`{name}`" not in readme]
        assert not missing, f"{module.relative_to(REPO)}/README.md does not list: {missing}"


def test_ci_validates_every_module():
    workflow = (REPO / ".github" / "workflows" / "ci.yml").read_text()
    loop = re.search(r"for module in ([\w ]+); do", workflow).group(1).split()

    assert sorted(loop) == sorted(m.name for m in MODULES)
    assert "working-directory: terraform/examples/complete" in workflow
