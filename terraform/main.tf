data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  region     = data.aws_region.current.region
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  proxy_zip_path    = coalesce(var.lambda_zip_path, "${path.module}/../target/lambda/bedrock-anthropic-proxy/bootstrap.zip")
  rotation_zip_path = coalesce(var.rotation_lambda_zip_path, "${path.module}/../target/lambda/rotate-token/bootstrap.zip")

  secret_arn = var.secret_arn != null ? var.secret_arn : module.secret[0].secret_arn

  # The settings the binary reads (src/config.rs). AWS_REGION is set by Lambda;
  # BEARER_TOKEN and CORS_ALLOW_ORIGINS are for local runs only and never set here.
  proxy_environment = merge(var.extra_environment, {
    BEARER_TOKEN_SECRET_ID = local.secret_arn
    BEDROCK_API            = var.bedrock_api
    INFERENCE_PROFILE      = var.inference_profile
    METRICS_NAMESPACE      = var.metrics_namespace
    MODEL_FALLBACKS        = jsonencode(var.model_fallbacks)
    MODEL_MAP              = jsonencode(var.model_map)
    MODEL_PRICES           = jsonencode(var.model_prices)
    OIDC_ISSUERS           = jsonencode(var.oidc_issuers)
    RUST_LOG               = var.rust_log
  }, local.usage_environment, local.deployment_budget_environment)
  usage_environment = { for usage in module.usage : "USAGE_TABLE" => usage.table_name }
  # Whole-deployment dollar caps: only the ones set, and only with the usage
  # table, without which the proxy would refuse to start (see the check below).
  deployment_budget_environment = {
    for name, dollars in {
      DEPLOYMENT_DAILY_USD   = var.deployment_daily_usd
      DEPLOYMENT_MONTHLY_USD = var.deployment_monthly_usd
    } : name => tostring(dollars) if dollars != null && var.enable_budgets
  }

  # The profile in use: the one configured, else the one the binary derives
  # from the region, by the same table (region-profiles.json, which the binary
  # compiles in).
  region_profiles = jsondecode(file("${path.module}/region-profiles.json"))
  region_geography = lookup(
    local.region_profiles.exact,
    local.region,
    try([for p in local.region_profiles.prefixes : p[1] if startswith(local.region, p[0])][0], local.region_profiles.otherwise),
  )
  effective_profile = var.inference_profile != "" ? var.inference_profile : local.region_geography

  # Regions a cross-region inference profile may send a request on to, as IAM
  # ARN patterns: the caller needs InvokeModel on the foundation model in each.
  # jp and au fall back to apac for models they don't offer, hence ap-*.
  # https://docs.aws.amazon.com/bedrock/latest/userguide/cross-region-inference.html
  profile_regions = {
    us   = ["us-*"]
    eu   = ["eu-*"]
    apac = ["ap-*"]
    jp   = ["ap-*"]
    au   = ["ap-*"]
    # Global profiles route to any commercial region, and AWS writes the global
    # foundation-model ARN with an empty region (arn:aws:bedrock:::...): only a
    # region of * matches both. The model part stays anthropic.claude-*, and
    # the grant holds only through an inference profile (see the policy).
    # https://docs.aws.amazon.com/bedrock/latest/userguide/global-cross-region-inference.html
    global = ["*"]
    none   = [local.region]
  }
  # MODEL_MAP values and fallback targets may name another geography's profile
  # (us. -> global.): the regions it routes to are granted as well.
  bedrock_targets = concat(values(var.model_map), flatten(values(var.model_fallbacks)))
  target_profiles = distinct(flatten([
    for target in local.bedrock_targets : regexall("^(?:arn:[^/]+:inference-profile/)?(us|eu|apac|jp|au|global)\\.", target)
  ]))
  target_regions  = flatten([for profile in local.target_profiles : local.profile_regions[profile]])
  bedrock_regions = var.bedrock_regions != null ? var.bedrock_regions : distinct(concat([local.region], local.profile_regions[local.effective_profile], local.target_regions))

  # Foundation-model ARNs carry no account; inference profiles live in this
  # region and account, named PREFIX.MODEL_ID (us., eu., global., ...).
  local_model_arns      = [for model in var.allowed_models : "arn:${local.partition}:bedrock:${local.region}::foundation-model/${model}"]
  foundation_model_arns = [for pair in setproduct(local.bedrock_regions, var.allowed_models) : "arn:${local.partition}:bedrock:${pair[0]}::foundation-model/${pair[1]}"]
  inference_profile_arns = concat(
    [for model in var.allowed_models : "arn:${local.partition}:bedrock:${local.region}:${local.account_id}:inference-profile/*.${model}"],
    local.application_profile_arns,
  )
  # Application inference profiles are named only by ARN, so those that
  # MODEL_MAP or MODEL_FALLBACKS name are granted as they are.
  application_profile_arns = distinct([
    for target in local.bedrock_targets : target if can(regex("^arn:[^:]+:bedrock:[a-z0-9-]+:[0-9]{12}:application-inference-profile/[A-Za-z0-9]+$", target))
  ])

  # Mantle names Claude models without the date and version Bedrock Runtime
  # uses (anthropic.claude-sonnet-4-5, not ...-20250929-v1:0), so each allowed
  # pattern is also granted with that suffix, or a trailing -*, removed.
  # https://docs.aws.amazon.com/bedrock/latest/userguide/count-tokens.html#count-tokens-mantle
  mantle_models = distinct(concat(var.allowed_models, [
    for model in var.allowed_models : replace(model, "/-([0-9]{8}-v[0-9]+(:[0-9]+)?|\\*)$/", "") if model != "anthropic.claude-*"
  ]))
  mantle_project_arn = "arn:${local.partition}:bedrock-mantle:${local.region}:${local.account_id}:project/${var.mantle_project}"
}

# Bearer token secret

module "secret" {
  source = "./modules/secret"
  count  = var.secret_arn == null ? 1 : 0

  name                    = "${var.name}/bearer-token"
  generate_initial_token  = var.generate_initial_token
  kms_key_arn             = var.kms_key_arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = var.tags
}

# Proxy function and its URL

data "aws_iam_policy_document" "proxy" {
  # Bedrock Runtime, in invoke mode only: directly in this region, and through
  # this region's inference profiles.
  dynamic "statement" {
    for_each = var.bedrock_api == "invoke" ? [1] : []

    content {
      sid       = "InvokeAllowedClaudeModels"
      actions   = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream", "bedrock:CountTokens"]
      resources = concat(local.inference_profile_arns, local.local_model_arns)
    }
  }

  # In the regions a profile routes to, only as part of a profile's request.
  dynamic "statement" {
    for_each = var.bedrock_api == "invoke" ? [1] : []

    content {
      sid       = "InvokeAllowedClaudeModelsThroughProfiles"
      actions   = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream", "bedrock:CountTokens"]
      resources = local.foundation_model_arns

      condition {
        test     = "ArnLike"
        variable = "bedrock:InferenceProfileArn"
        values   = local.inference_profile_arns
      }
    }
  }

  # The guardrails callers' policies name: InvokeModel with a guardrail needs
  # bedrock:ApplyGuardrail on it. Mantle applies none (the proxy refuses guarded
  # callers there), so invoke mode only.
  # https://docs.aws.amazon.com/bedrock/latest/userguide/guardrails-permissions.html
  dynamic "statement" {
    for_each = var.bedrock_api == "invoke" && length(var.guardrail_arns) > 0 ? [var.guardrail_arns] : []

    content {
      sid       = "ApplyCallerGuardrails"
      actions   = ["bedrock:ApplyGuardrail"]
      resources = statement.value
    }
  }

  # Bedrock's Anthropic Messages endpoint, bedrock-mantle.REGION.api.aws. Its
  # CreateInference and CountTokens actions take the project resource
  # arn:PARTITION:bedrock-mantle:REGION:ACCOUNT:project/ID and the condition key
  # bedrock-mantle:Model:
  # https://docs.aws.amazon.com/service-authorization/latest/reference/list_bedrock-mantle.html
  # CountTokens in both modes: in invoke mode the proxy counts there the models
  # Bedrock Runtime's CountTokens refuses. Its project is named default unless
  # the request names another:
  # https://docs.aws.amazon.com/bedrock/latest/userguide/count-tokens.html
  statement {
    sid       = "CountTokensOfAllowedClaudeModelsOnMantle"
    actions   = ["bedrock-mantle:CountTokens"]
    resources = [local.mantle_project_arn]

    condition {
      test     = "StringLike"
      variable = "bedrock-mantle:Model"
      values   = local.mantle_models
    }
  }

  dynamic "statement" {
    for_each = var.bedrock_api == "mantle" ? [local.mantle_project_arn] : []

    content {
      sid       = "InvokeAllowedClaudeModelsOnMantle"
      actions   = ["bedrock-mantle:CreateInference"]
      resources = [statement.value]

      condition {
        test     = "StringLike"
        variable = "bedrock-mantle:Model"
        values   = local.mantle_models
      }
    }
  }

  statement {
    sid       = "ReadBearerToken"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.secret_arn]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]

    content {
      sid       = "DecryptBearerToken"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${local.region}.amazonaws.com"]
      }
    }
  }

  dynamic "statement" {
    for_each = module.usage[*].table_arn

    content {
      sid       = "CountCallerUsage"
      actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
      resources = [statement.value]
    }
  }
}

module "proxy" {
  source = "./modules/function"

  name                 = var.name
  description          = "Anthropic Messages API in front of Claude on Amazon Bedrock"
  zip_path             = local.proxy_zip_path
  memory_size          = var.memory_size
  timeout              = var.timeout
  reserved_concurrency = var.reserved_concurrency
  environment          = local.proxy_environment
  policy_json          = data.aws_iam_policy_document.proxy.json
  log_retention_days   = var.log_retention_days
  log_kms_key_arn      = var.log_kms_key_arn
  tags                 = var.tags
}

# With NONE, the AWS provider (>= 6.28) adds the two resource-policy statements
# a public URL needs: lambda:InvokeFunctionUrl (FunctionUrlAuthType NONE) and
# lambda:InvokeFunction (InvokedViaFunctionUrl true). Since October 2025 Lambda
# answers 403 without the second.
# https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html
resource "aws_lambda_function_url" "this" {
  #checkov:skip=CKV_AWS_258:NONE is the default on purpose: Anthropic clients cannot SigV4-sign, and the function rejects any request without the bearer token from Secrets Manager. AWS_IAM is available through authorization_type.
  function_name      = module.proxy.function_name
  authorization_type = var.authorization_type
  invoke_mode        = "RESPONSE_STREAM"

  # The only place CORS is configured: Lambda answers preflights and adds the
  # headers, and the function adds none of its own.
  dynamic "cors" {
    for_each = length(var.cors_allow_origins) > 0 ? [1] : []

    content {
      allow_credentials = false
      allow_origins     = var.cors_allow_origins
      allow_methods     = var.cors_allow_methods
      allow_headers     = var.cors_allow_headers
      expose_headers    = var.cors_expose_headers
      max_age           = var.cors_max_age
    }
  }
}

# Budgets

module "usage" {
  source = "./modules/usage"
  count  = var.enable_budgets ? 1 : 0

  name = "${var.name}-usage"
  tags = var.tags
}

# Rotation

data "aws_iam_policy_document" "rotation" {
  statement {
    sid = "RotateBearerToken"
    actions = [
      "secretsmanager:DescribeSecret",
      "secretsmanager:GetSecretValue",
      "secretsmanager:PutSecretValue",
      "secretsmanager:UpdateSecretVersionStage",
    ]
    resources = [local.secret_arn]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]

    content {
      sid       = "EncryptBearerToken"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${local.region}.amazonaws.com"]
      }
    }
  }
}

module "rotation_function" {
  source = "./modules/function"
  count  = var.enable_rotation ? 1 : 0

  name               = "${var.name}-rotate-token"
  description        = "Rotates the bearer token of ${var.name} for Secrets Manager"
  zip_path           = local.rotation_zip_path
  memory_size        = 128
  timeout            = 30
  environment        = { RUST_LOG = var.rust_log }
  policy_json        = data.aws_iam_policy_document.rotation.json
  log_retention_days = var.log_retention_days
  log_kms_key_arn    = var.log_kms_key_arn
  tags               = var.tags
}

module "rotation" {
  source = "./modules/rotation"
  count  = var.enable_rotation ? 1 : 0

  secret_arn          = local.secret_arn
  function_name       = module.rotation_function[0].function_name
  function_arn        = module.rotation_function[0].function_arn
  schedule_expression = var.rotation_schedule_expression
  # Rotation keeps the current value's format, so it needs a first value.
  rotate_immediately = var.rotate_immediately && (var.secret_arn != null || var.generate_initial_token)
}

# Dashboard and alarms

module "observability" {
  source = "./modules/observability"
  count  = var.enable_monitoring ? 1 : 0

  name                             = var.name
  region                           = local.region
  metrics_namespace                = var.metrics_namespace
  function_name                    = module.proxy.function_name
  function_timeout                 = var.timeout
  log_group_name                   = module.proxy.log_group_name
  rotation_function_name           = one(module.rotation_function[*].function_name)
  alarm_sns_topic_arn              = var.alarm_sns_topic_arn
  alarm_period_seconds             = var.alarm_period_seconds
  error_rate_alarm_threshold       = var.error_rate_alarm_threshold
  error_rate_alarm_min_requests    = var.error_rate_alarm_min_requests
  throttles_alarm_threshold        = var.throttles_alarm_threshold
  duration_alarm_threshold_percent = var.duration_alarm_threshold_percent
  tags                             = var.tags
}

check "deployment_caps_need_budgets" {
  assert {
    condition     = var.enable_budgets || (var.deployment_daily_usd == null && var.deployment_monthly_usd == null)
    error_message = "deployment_daily_usd / deployment_monthly_usd are set but enable_budgets is false: the caps are not applied."
  }
}
