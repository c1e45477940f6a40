"""The function's environment: every variable the binary reads that Terraform may set, and nothing else."""

import re

from wiring import (
    CONFIGURATION_MD,
    CONFIG_RS,
    CORE_SETTINGS,
    ENDPOINT_OVERRIDE,
    ENV_NAME,
    LOCAL_OR_SET_BY_LAMBDA,
    NEVER_SET_BY_TERRAFORM,
    OPTIONAL_SETTINGS,
    REPO,
    ROOT_MAIN,
    ROOT_VARIABLES,
    extra_environment_names,
    local,
    module_call,
    proxy_environment_names,
    rotation_environment_names,
    unquote,
    validation_strings,
    variable,
)


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
