output "table_name" {
  description = "Name of the usage table: the proxy's USAGE_TABLE."
  value       = aws_dynamodb_table.this.name
}

output "table_arn" {
  description = "ARN of the usage table, for IAM policies."
  value       = aws_dynamodb_table.this.arn
}
