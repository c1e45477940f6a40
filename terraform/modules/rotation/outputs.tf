output "rotation_lambda_arn" {
  description = "ARN of the function Secrets Manager invokes to rotate the secret."
  value       = aws_secretsmanager_secret_rotation.this.rotation_lambda_arn
}

output "schedule_expression" {
  description = "The rotation schedule in force."
  value       = aws_secretsmanager_secret_rotation.this.rotation_rules[0].schedule_expression
}
