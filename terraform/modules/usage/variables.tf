variable "name" {
  type        = string
  description = "Name of the DynamoDB table, e.g. bedrock-anthropic-proxy-usage. 3-255 letters, digits, hyphens, underscores or dots."

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,255}$", var.name))
    error_message = "name must be 3-255 characters of letters, digits, hyphens, underscores or dots."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for the table."
  default     = {}
}
