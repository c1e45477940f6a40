variable "name" {
  type        = string
  description = "Name of the Secrets Manager secret that holds the bearer token, e.g. bedrock-anthropic-proxy/bearer-token."

  validation {
    condition     = can(regex("^[A-Za-z0-9/_+=.@-]{1,512}$", var.name))
    error_message = "name must be 1-512 characters of letters, digits and /_+=.@-."
  }
}

variable "generate_initial_token" {
  type        = bool
  description = "true: Terraform writes a random first token (random_password; it is then in Terraform state). false: the secret is created empty and you put the first value yourself."
  default     = true
}

variable "token_length" {
  type        = number
  description = "Length of the generated token: URL-safe characters (A-Z a-z 0-9 - _), 43 to 256."
  default     = 48

  validation {
    condition     = var.token_length >= 43 && var.token_length <= 256
    error_message = "token_length must be between 43 and 256."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of a customer managed KMS key to encrypt the secret with. null uses the AWS managed key aws/secretsmanager."
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)."
  }
}

variable "recovery_window_in_days" {
  type        = number
  description = "Days a deleted secret can still be restored: 0 (delete at once) or 7 to 30."
  default     = 7

  validation {
    condition     = var.recovery_window_in_days == 0 || (var.recovery_window_in_days >= 7 && var.recovery_window_in_days <= 30)
    error_message = "recovery_window_in_days must be 0 or between 7 and 30."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for the secret."
  default     = {}
}
