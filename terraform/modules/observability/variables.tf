variable "name" {
  type        = string
  description = "Name of the dashboard and prefix of the alarms (NAME-error-rate, NAME-bedrock-throttles, NAME-duration-near-timeout, NAME-rotation-errors) and metric filters. 1-200 letters, digits, hyphens or underscores."

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,200}$", var.name))
    error_message = "name must be 1-200 characters of letters, digits, hyphens or underscores."
  }
}

variable "region" {
  type        = string
  description = "Region of the function and its metrics, e.g. us-east-1: the dashboard's widgets and URL use it."

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.region))
    error_message = "region must be an AWS region name such as us-east-1."
  }
}

variable "metrics_namespace" {
  type        = string
  description = "CloudWatch namespace the proxy writes its metrics to (its METRICS_NAMESPACE); the alarms' totals are written there too. 1-255 letters, digits and . _ - / # :, not starting with AWS/."

  validation {
    condition     = can(regex("^[A-Za-z0-9._/#:-]{1,255}$", var.metrics_namespace)) && !startswith(var.metrics_namespace, "AWS/")
    error_message = "metrics_namespace must be 1-255 characters of letters, digits and . _ - / # :, and must not start with AWS/."
  }
}

variable "function_name" {
  type        = string
  description = "Name of the proxy Lambda function, for its AWS/Lambda metrics."

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.function_name))
    error_message = "function_name must be a Lambda function name: 1-64 letters, digits, hyphens or underscores."
  }
}

variable "function_timeout" {
  type        = number
  description = "Timeout of the proxy function in seconds, 1 to 900: the duration alarm fires at duration_alarm_threshold_percent of it."

  validation {
    condition     = var.function_timeout >= 1 && var.function_timeout <= 900
    error_message = "function_timeout must be between 1 and 900 seconds."
  }
}

variable "log_group_name" {
  type        = string
  description = "Log group of the proxy function, e.g. /aws/lambda/bedrock-anthropic-proxy: the metric filters that count the alarms' totals read it."

  validation {
    condition     = can(regex("^[A-Za-z0-9._/#-]{1,512}$", var.log_group_name))
    error_message = "log_group_name must be a CloudWatch Logs log group name (1-512 letters, digits and . _ - / #)."
  }
}

variable "rotation_function_name" {
  type        = string
  description = "Name of the token rotation function, whose errors raise an alarm; null when there is none (no alarm)."
  default     = null

  validation {
    condition     = var.rotation_function_name == null || can(regex("^[A-Za-z0-9_-]{1,64}$", var.rotation_function_name))
    error_message = "rotation_function_name must be null or a Lambda function name: 1-64 letters, digits, hyphens or underscores."
  }
}

variable "alarm_sns_topic_arn" {
  type        = string
  description = "ARN of an SNS topic the alarms notify when they go into ALARM and back to OK. null: the alarms only change state (console, dashboard), with no action. A topic encrypted with a customer managed KMS key must let cloudwatch.amazonaws.com use the key."
  default     = null

  validation {
    condition     = var.alarm_sns_topic_arn == null || can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$", var.alarm_sns_topic_arn))
    error_message = "alarm_sns_topic_arn must be null or a standard SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)."
  }
}

variable "alarm_period_seconds" {
  type        = number
  description = "Length in seconds of the window each alarm looks at (one window decides): a multiple of 60, up to 86400."
  default     = 300

  validation {
    condition     = var.alarm_period_seconds >= 60 && var.alarm_period_seconds <= 86400 && var.alarm_period_seconds % 60 == 0
    error_message = "alarm_period_seconds must be a multiple of 60 between 60 and 86400."
  }
}

variable "error_rate_alarm_threshold" {
  type        = number
  description = "Percentage of requests ending in an error within one window above which the error-rate alarm fires, more than 0 and at most 100."
  default     = 5

  validation {
    condition     = var.error_rate_alarm_threshold > 0 && var.error_rate_alarm_threshold <= 100
    error_message = "error_rate_alarm_threshold must be more than 0 and at most 100 (percent)."
  }
}

variable "error_rate_alarm_min_requests" {
  type        = number
  description = "Fewest requests in a window for its error rate to count (1 failure in 2 requests is no outage), at least 1."
  default     = 10

  validation {
    condition     = var.error_rate_alarm_min_requests >= 1
    error_message = "error_rate_alarm_min_requests must be at least 1."
  }
}

variable "throttles_alarm_threshold" {
  type        = number
  description = "Number of Bedrock throttles within one window above which the throttles alarm fires, 0 or more (0: any throttle)."
  default     = 10

  validation {
    condition     = var.throttles_alarm_threshold >= 0
    error_message = "throttles_alarm_threshold must be 0 or more."
  }
}

variable "duration_alarm_threshold_percent" {
  type        = number
  description = "Percentage of the function timeout that the longest invocation in a window may reach before the duration alarm fires, 1 to 100."
  default     = 80

  validation {
    condition     = var.duration_alarm_threshold_percent >= 1 && var.duration_alarm_threshold_percent <= 100
    error_message = "duration_alarm_threshold_percent must be between 1 and 100."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for the alarms (dashboards and metric filters take none)."
  default     = {}
}
