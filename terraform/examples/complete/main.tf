provider "aws" {
  region = var.region

  default_tags {
    tags = var.tags
  }
}

module "bedrock_anthropic_proxy" {
  source = "../../"

  name              = var.name
  inference_profile = var.inference_profile
  rust_log          = "info"

  # Narrow to families, e.g. "anthropic.claude-sonnet-4-5-*", to cap what
  # the token can spend on.
  allowed_models = ["anthropic.claude-*"]

  bedrock_api = var.bedrock_api

  # When Bedrock throttles Sonnet 4.5 in the region's profile, try the global
  # profile, then Haiku 4.5.
  model_fallbacks = {
    "claude-sonnet-4-5" = ["global.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-haiku-4-5"]
  }

  # JWTs from these issuers are accepted beside the static token, e.g. the
  # repository's own GitHub Actions jobs (docs/sso.md).
  oidc_issuers = var.oidc_issuers

  extra_environment = {
    TOKEN_REFRESH_SECONDS = "300"
  }

  memory_size        = 256
  timeout            = 300
  log_retention_days = 30

  authorization_type = "NONE"
  cors_allow_origins = var.cors_allow_origins

  enable_rotation              = var.enable_rotation
  rotation_schedule_expression = "rate(30 days)"
  rotate_immediately           = true

  enable_budgets = var.enable_budgets

  alarm_sns_topic_arn        = var.alarm_sns_topic_arn
  error_rate_alarm_threshold = 5
  throttles_alarm_threshold  = 10
}
