variable "secret_arn" {
  type        = string
  description = "ARN of the secret to rotate."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.secret_arn))
    error_message = "secret_arn must be a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX)."
  }
}

variable "function_name" {
  type        = string
  description = "Name of the rotation Lambda function (the rotate-token binary)."
}

variable "function_arn" {
  type        = string
  description = "ARN of the rotation Lambda function."
}

variable "schedule_expression" {
  type        = string
  description = "When Secrets Manager rotates the token: rate(N days) / rate(N hours) or cron(...) in Secrets Manager's schedule syntax, e.g. rate(30 days)."
  default     = "rate(30 days)"

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.schedule_expression))
    error_message = "schedule_expression must be rate(...) or cron(...)."
  }
}

variable "rotate_immediately" {
  type        = bool
  description = "Whether Secrets Manager rotates once as soon as rotation is configured (the secret must already have an AWSCURRENT value)."
  default     = true
}
