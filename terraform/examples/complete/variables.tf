variable "region" {
  type        = string
  description = "AWS region to deploy to, e.g. us-east-1 or eu-central-1. Claude must be enabled in Bedrock there."
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.region))
    error_message = "region must be an AWS region name such as us-east-1."
  }
}

variable "name" {
  type        = string
  description = "Name of the proxy function and prefix of everything else, 1-51 letters, digits, hyphens or underscores."
  default     = "bedrock-anthropic-proxy"
}

variable "inference_profile" {
  type        = string
  description = "Cross-region inference profile prefix: us, eu, apac, jp, au, global, none, or \"\" to derive it from the region."
  default     = ""

  validation {
    condition     = contains(["", "us", "eu", "apac", "jp", "au", "global", "none"], var.inference_profile)
    error_message = "inference_profile must be one of \"\", us, eu, apac, jp, au, global, none."
  }
}

variable "bedrock_api" {
  type        = string
  description = "Upstream of the proxy: invoke (Bedrock Runtime InvokeModel) or mantle (Bedrock's Anthropic Messages endpoint, bedrock-mantle)."
  default     = "invoke"

  validation {
    condition     = contains(["invoke", "mantle"], var.bedrock_api)
    error_message = "bedrock_api must be invoke or mantle."
  }
}

variable "oidc_issuers" {
  type = list(object({
    issuer       = string
    audience     = list(string)
    caller_claim = optional(string, "sub")
    groups_claim = optional(string)
    groups       = optional(list(string), [])
    claims       = optional(map(list(string)), {})
  }))
  description = "OpenID issuers whose JWTs the proxy accepts (SSO, keyless CI), e.g. [{ issuer = \"https://token.actions.githubusercontent.com\", audience = [\"bedrock-proxy\"], claims = { repository = [\"acme/app\"] } }]; [] for static tokens only."
  default     = []
}

variable "enable_budgets" {
  type        = bool
  description = "Whether to create the DynamoDB usage table that enforces callers' daily_tokens / monthly_tokens."
  default     = false
}

variable "alarm_sns_topic_arn" {
  type        = string
  description = "SNS topic ARN the alarms notify, or null for alarms without actions."
  default     = null

  validation {
    condition     = var.alarm_sns_topic_arn == null || can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$", var.alarm_sns_topic_arn))
    error_message = "alarm_sns_topic_arn must be null or a standard SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)."
  }
}

variable "enable_rotation" {
  type        = bool
  description = "Whether to deploy the rotate-token function and rotate the token Terraform generated right after creating it."
  default     = true
}

variable "cors_allow_origins" {
  type        = list(string)
  description = "Origins browsers may call the proxy from; [] for server-side clients only."
  default     = []
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource created."
  default     = { Project = "bedrock-anthropic-proxy" }
}
