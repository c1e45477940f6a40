variable "name" {
  type        = string
  description = "Name of the Lambda function; also used for its IAM role, inline policy and the /aws/lambda/NAME log group. 1-64 letters, digits, hyphens or underscores."

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.name))
    error_message = "name must be 1-64 characters of letters, digits, hyphens or underscores."
  }
}

variable "description" {
  type        = string
  description = "Description shown on the Lambda function."
  default     = ""
}

variable "zip_path" {
  type        = string
  description = "Path of the bootstrap.zip built by scripts/build.sh (an arm64 provided.al2023 custom runtime). Its hash is the source_code_hash, so a rebuild redeploys."
}

variable "memory_size" {
  type        = number
  description = "Memory in MB, 128 to 10240. CPU is allocated in proportion."
  default     = 128

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240
    error_message = "memory_size must be between 128 and 10240 MB."
  }
}

variable "timeout" {
  type        = number
  description = "Timeout in seconds, 1 to 900."
  default     = 30

  validation {
    condition     = var.timeout >= 1 && var.timeout <= 900
    error_message = "timeout must be between 1 and 900 seconds."
  }
}

variable "reserved_concurrency" {
  type        = number
  description = "Concurrent executions reserved for (and capping) the function, its reserved_concurrent_executions; null leaves it unreserved, 0 disables it. The root module passes its reserved_concurrency (default 50) for the proxy and nothing for rotate-token."
  default     = null

  validation {
    condition     = var.reserved_concurrency == null ? true : var.reserved_concurrency >= 0 && floor(var.reserved_concurrency) == var.reserved_concurrency
    error_message = "reserved_concurrency must be null or a whole number >= 0."
  }
}

variable "environment" {
  type        = map(string)
  description = "Environment variables of the function. Empty sets none."
  default     = {}
}

variable "policy_json" {
  type        = string
  description = "IAM policy document (JSON) with the permissions the function needs besides writing its own logs, which this module adds."
}

variable "log_retention_days" {
  type        = number
  description = "Days CloudWatch keeps the function's logs: one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653, or 0 to keep them forever."
  default     = 30

  validation {
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653) or 0."
  }
}

variable "log_kms_key_arn" {
  type        = string
  description = "ARN of a customer managed KMS key to encrypt the log group with; its key policy must let logs.REGION.amazonaws.com use it. null uses CloudWatch Logs' own encryption."
  default     = null

  validation {
    condition     = var.log_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.log_kms_key_arn))
    error_message = "log_kms_key_arn must be null or a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource this module creates."
  default     = {}
}
