output "function_url" {
  description = "HTTPS endpoint of the proxy, as Lambda gives it (ends in /)."
  value       = aws_lambda_function_url.this.function_url
}

output "base_url" {
  description = "function_url without the trailing slash: the value for ANTHROPIC_BASE_URL (Claude Code, Anthropic SDKs)."
  value       = trimsuffix(aws_lambda_function_url.this.function_url, "/")
}

output "function_name" {
  description = "Name of the proxy Lambda function."
  value       = module.proxy.function_name
}

output "function_arn" {
  description = "ARN of the proxy Lambda function."
  value       = module.proxy.function_arn
}

output "role_arn" {
  description = "ARN of the proxy's execution role."
  value       = module.proxy.role_arn
}

output "log_group_name" {
  description = "CloudWatch log group of the proxy."
  value       = module.proxy.log_group_name
}

output "secret_arn" {
  description = "ARN of the Secrets Manager secret holding the bearer token. The token itself is never output."
  value       = local.secret_arn
}

output "rotation_function_name" {
  description = "Name of the rotate-token function, or null when rotation is off."
  value       = one(module.rotation_function[*].function_name)
}

output "usage_table_name" {
  description = "Name of the DynamoDB table the proxy counts callers' tokens in (its USAGE_TABLE), or null when enable_budgets is false."
  value       = one(module.usage[*].table_name)
}

output "dashboard_url" {
  description = "Console URL of the CloudWatch dashboard (tokens by caller and model, requests, errors, throttles, time to first token, Lambda duration and concurrency), or null when enable_monitoring is false."
  value       = one(module.observability[*].dashboard_url)
}

output "alarm_arns" {
  description = "ARNs of the CloudWatch alarms by purpose (error_rate, throttles, duration, rotation_errors with rotation on); {} when enable_monitoring is false."
  value       = try(module.observability[0].alarm_arns, {})
}

output "curl_command" {
  description = "A ready-to-paste request that reads the token with the AWS CLI and streams a short answer from the proxy."
  value = join(" \\\n  ", concat(
    ["curl -sN ${trimsuffix(aws_lambda_function_url.this.function_url, "/")}/v1/messages"],
    var.authorization_type == "AWS_IAM" ? ["--aws-sigv4 \"aws:amz:${local.region}:lambda\"", "--user \"$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY\"", "-H \"x-amz-security-token: $AWS_SESSION_TOKEN\""] : [],
    [
      "-H \"x-api-key: $(aws secretsmanager get-secret-value --region ${local.region} --secret-id '${local.secret_arn}' --query SecretString --output text)\"",
      "-H 'anthropic-version: 2023-06-01'",
      "-H 'content-type: application/json'",
      "-d '{\"model\":\"claude-haiku-4-5-20251001\",\"max_tokens\":64,\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Say hello.\"}]}'",
    ],
  ))
}
