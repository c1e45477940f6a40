resource "aws_secretsmanager_secret" "this" {
  #checkov:skip=CKV_AWS_149:A customer managed key is optional (kms_key_arn); without one Secrets Manager encrypts with the AWS managed key aws/secretsmanager.
  #checkov:skip=CKV2_AWS_57:Rotation is opt-in (enable_rotation in the root module) because it deploys a second function; the token can also be changed by hand at any time.
  name                    = var.name
  description             = "Bearer token clients present to the Bedrock Anthropic proxy (x-api-key or Authorization: Bearer)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days
  tags                    = var.tags
}

resource "random_password" "this" {
  count = var.generate_initial_token ? 1 : 0

  length           = var.token_length
  special          = true
  override_special = "-_"
}

resource "aws_secretsmanager_secret_version" "this" {
  count = var.generate_initial_token ? 1 : 0

  secret_id     = aws_secretsmanager_secret.this.id
  secret_string = random_password.this[0].result

  # The extra label keeps this version from being garbage-collected after two
  # rotations or console edits; otherwise Terraform would see it gone and put
  # the old token back as AWSCURRENT.
  # https://github.com/hashicorp/terraform-provider-aws/issues/37302
  version_stages = ["AWSCURRENT", "TERRAFORM_INITIAL"]

  # After creation the token belongs to Secrets Manager: console edits and
  # rotations must never be reverted by an apply.
  lifecycle {
    ignore_changes = [secret_string, version_stages]
  }
}
