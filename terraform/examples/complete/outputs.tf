output "base_url" {
  description = "Base URL of the proxy, for ANTHROPIC_BASE_URL."
  value       = module.bedrock_anthropic_proxy.base_url
}

output "function_name" {
  description = "Name of the proxy Lambda function."
  value       = module.bedrock_anthropic_proxy.function_name
}

output "log_group_name" {
  description = "CloudWatch log group of the proxy."
  value       = module.bedrock_anthropic_proxy.log_group_name
}

output "secret_arn" {
  description = "ARN of the secret holding the bearer token."
  value       = module.bedrock_anthropic_proxy.secret_arn
}

output "dashboard_url" {
  description = "Console URL of the proxy's CloudWatch dashboard."
  value       = module.bedrock_anthropic_proxy.dashboard_url
}

output "curl_command" {
  description = "A ready-to-paste streaming request against the proxy."
  value       = module.bedrock_anthropic_proxy.curl_command
}
