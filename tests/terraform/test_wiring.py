"""Static checks that terraform/ is wired to what the binaries read and call.

Parses the HCL with python-hcl2 (no provider, no AWS account needed) and reads
src/config.rs for the environment variable names the proxy understands.
"""

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

PROXY_ACTIONS = {
    "bedrock:InvokeModel",
    "bedrock:InvokeModelWithResponseStream",
    "bedrock:CountTokens",
    "secretsmanager:GetSecretValue",
}
ROTATION_ACTIONS = {
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecretVersionStage",
}
CORE_SETTINGS = {"BEARER_TOKEN_SECRET_ID", "INFERENCE_PROFILE", "MODEL_MAP", "RUST_LOG"}
NEVER_SET_BY_TERRAFORM = {"BEARER_TOKEN", "AWS_REGION", "CORS_ALLOW_ORIGINS"}
# Read by the binary but not Terraform's to set: local runs only, or set by Lambda.
LOCAL_OR_SET_BY_LAMBDA = NEVER_SET_BY_TERRAFORM | {"LISTEN_ADDR", "AWS_DEFAULT_REGION", "AWS_LAMBDA_RUNTIME_API"}
ENV_NAME = re.compile(r"\b([A-Z][A-Z0-9_]{2,})\s*=")


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
FUNCTION_MAIN = TERRAFORM / "modules" / "function" / "main.tf"
SECRET_MAIN = TERRAFORM / "modules" / "secret" / "main.tf"
ROTATION_MAIN = TERRAFORM / "modules" / "rotation" / "main.tf"


def proxy_environment_names() -> set:
    return set(ENV_NAME.findall(local(ROOT_MAIN, "proxy_environment")))


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


def test_every_setting_the_binary_reads_can_be_set_from_terraform():
    code = config_rs().split("#[cfg(test)]")[0]
    read = set(re.findall(r'"([A-Z][A-Z0-9_]{2,})"', code))
    settable = proxy_environment_names() | extra_environment_names()

    unaccounted = sorted(read - settable - LOCAL_OR_SET_BY_LAMBDA)

    assert {"BEARER_TOKEN_SECRET_ID", "TOKEN_REFRESH_SECONDS"} <= read
    assert not unaccounted, f"src/config.rs reads these but terraform/ can't set them: {unaccounted}"


# -- IAM ----------------------------------------------------------------------------


def test_proxy_may_call_exactly_what_it_uses():
    document = one(ROOT_MAIN, "data", "aws_iam_policy_document", "proxy")
    always = set().union(*(actions_of(s) for c, s in statements(document) if not c))
    conditional = [(c, actions_of(s)) for c, s in statements(document) if c]

    assert always == PROXY_ACTIONS
    assert conditional == [("${var.kms_key_arn == null ? [] : [var.kms_key_arn]}", {"kms:Decrypt"})]


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
            if services & {"bedrock", "secretsmanager"}:
                scoped.append((path, name, statement))

    assert len(scoped) == 4
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
    derived = set(re.findall(r'\? "([a-z]+)"', local(ROOT_MAIN, "region_geography")))
    derived |= set(re.findall(r': "([a-z]+)"\)', local(ROOT_MAIN, "region_geography")))

    assert set(regions) == profiles
    assert len(derived) == 5 and derived <= profiles
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


@pytest.mark.parametrize("readme_path", [TERRAFORM / "README.md", TERRAFORM.parent / "README.md"])
@pytest.mark.parametrize("kind, source", [("variable", "variables.tf"), ("output", "outputs.tf")])
def test_readme_lists_every_root_input_and_output(kind, source, readme_path):
    readme = readme_path.read_text()

    missing = [name for name, _ in labelled(TERRAFORM / source, kind) if f"`{name}`" not in readme]

    assert not missing, f"{readme_path} does not list: {missing}"
