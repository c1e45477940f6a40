output "secret_arn" {
  description = "ARN of the secret holding the bearer token (not sensitive: the ARN grants nothing by itself)."
  value       = aws_secretsmanager_secret.this.arn

  # Whoever uses the ARN (the proxy, rotation) must find the first token there.
  depends_on = [aws_secretsmanager_secret_version.this]
}

output "secret_name" {
  description = "Name of the secret holding the bearer token."
  value       = aws_secretsmanager_secret.this.name
}
