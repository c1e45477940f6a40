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
}
