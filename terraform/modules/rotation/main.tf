resource "aws_lambda_permission" "this" {
  statement_id   = "AllowSecretsManagerRotation"
  action         = "lambda:InvokeFunction"
  function_name  = var.function_name
  principal      = "secretsmanager.amazonaws.com"
  source_arn     = var.secret_arn
  source_account = split(":", var.secret_arn)[4]
}

resource "aws_secretsmanager_secret_rotation" "this" {
  #checkov:skip=CKV_AWS_304:The schedule is the rotation_schedule_expression variable (default rate(30 days)); checkov cannot follow a value passed down through two module levels.
  secret_id           = var.secret_arn
  rotation_lambda_arn = var.function_arn
  rotate_immediately  = var.rotate_immediately

  rotation_rules {
    schedule_expression = var.schedule_expression
  }

  # Secrets Manager checks that it may invoke the function when rotation is set.
  depends_on = [aws_lambda_permission.this]
}
