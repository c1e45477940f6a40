"""IAM: least privilege for the proxy and the rotation function, per upstream and feature."""

import json
import re

from wiring import (
    FUNCTION_MAIN,
    PROXY_ACTIONS,
    ROOT_MAIN,
    ROOT_VARIABLES,
    ROTATION_ACTIONS,
    ROTATION_MAIN,
    RUNTIME_ACTIONS,
    USAGE_MAIN,
    actions_of,
    all_policy_documents,
    hcl_regex,
    local,
    module_call,
    one,
    proxy_policy,
    statement_by_sid,
    statements,
    unquote,
    validation_strings,
    variable,
)


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
