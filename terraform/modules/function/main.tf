data "aws_iam_policy_document" "assume_role" {
  statement {
    sid     = "LambdaAssumeRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = var.name
  description        = "Execution role of the ${var.name} Lambda function"
  assume_role_policy = data.aws_iam_policy_document.assume_role.json
  tags               = var.tags
}

data "aws_iam_policy_document" "this" {
  source_policy_documents = [var.policy_json]

  # The log group exists before the function (below), so no logs:CreateLogGroup.
  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }
}

resource "aws_iam_role_policy" "this" {
  name   = var.name
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days variable (default 30 days); request bodies are not logged, so a year's retention only adds cost. Raise it where audits need it.
  #checkov:skip=CKV_AWS_158:Encryption with a customer managed key is optional (log_kms_key_arn); CloudWatch Logs always encrypts at rest with its own keys.
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_117:The function calls only AWS public endpoints (Bedrock, Secrets Manager) and reaches no private resource; a VPC would need NAT or interface endpoints for nothing.
  #checkov:skip=CKV_AWS_116:A dead-letter queue only receives failed asynchronous invocations; Function URLs and Secrets Manager rotation invoke synchronously and get the error back.
  #checkov:skip=CKV_AWS_173:The environment holds no secret (the token lives in Secrets Manager; only its ARN is here); Lambda encrypts environment variables at rest with an AWS managed key.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile; the zip is built locally by scripts/build.sh and pinned by source_code_hash.
  #checkov:skip=CKV_AWS_50:The Rust binaries carry no X-Ray SDK, and active tracing would need xray:PutTraceSegments on Resource "*" (X-Ray has no resource-level permissions); logs carry the request ids.
  #checkov:skip=CKV_AWS_115:The proxy reserves the root's reserved_concurrency (default 50); rotate-token runs a few times a month and would only take from the account's shared pool.
  function_name                  = var.name
  description                    = var.description
  role                           = aws_iam_role.this.arn
  filename                       = var.zip_path
  source_code_hash               = filebase64sha256(var.zip_path)
  runtime                        = "provided.al2023"
  handler                        = "bootstrap"
  architectures                  = ["arm64"]
  memory_size                    = var.memory_size
  timeout                        = var.timeout
  reserved_concurrent_executions = var.reserved_concurrency
  tags                           = var.tags

  dynamic "environment" {
    for_each = length(var.environment) > 0 ? [var.environment] : []

    content {
      variables = environment.value
    }
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.this.name
  }

  # The role's policy must be in place before the first invocation.
  depends_on = [aws_iam_role_policy.this]
}
