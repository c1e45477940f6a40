# Function

variable "name" {
  type        = string
  description = "Name of the proxy function, its role and log group; the rotation function is NAME-rotate-token and the secret NAME/bearer-token. 1-51 letters, digits, hyphens or underscores."
  default     = "bedrock-anthropic-proxy"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,51}$", var.name))
    error_message = "name must be 1-51 characters of letters, digits, hyphens or underscores (NAME-rotate-token must fit Lambda's 64)."
  }
}

variable "lambda_zip_path" {
  type        = string
  description = "Path of the proxy's bootstrap.zip. null means target/lambda/bedrock-anthropic-proxy/bootstrap.zip in the repository this module sits in, where scripts/build.sh puts it."
  default     = null
}

variable "rotation_lambda_zip_path" {
  type        = string
  description = "Path of the rotate-token bootstrap.zip (used when enable_rotation is true). null means target/lambda/rotate-token/bootstrap.zip in the repository this module sits in."
  default     = null
}

variable "memory_size" {
  type        = number
  description = "Memory of the proxy function in MB, 128 to 10240."
  default     = 256

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240
    error_message = "memory_size must be between 128 and 10240 MB."
  }
}

variable "timeout" {
  type        = number
  description = "Timeout of the proxy function in seconds, 1 to 900: the longest a single (streamed) response may take."
  default     = 300

  validation {
    condition     = var.timeout >= 1 && var.timeout <= 900
    error_message = "timeout must be between 1 and 900 seconds."
  }
}

variable "reserved_concurrency" {
  type        = number
  description = "Concurrent requests reserved for the proxy, which also caps them (and so the Bedrock spend rate and what a leaked token or a flood on the public URL can run up): each streamed answer holds one for its whole length. Lambda keeps 100 of the account's concurrency unreserved, so an account whose limit is still the new-account 10 needs a lower number or null. null leaves it unreserved and uncapped; 0 switches the proxy off."
  default     = 50

  validation {
    condition     = var.reserved_concurrency == null ? true : var.reserved_concurrency >= 0 && floor(var.reserved_concurrency) == var.reserved_concurrency
    error_message = "reserved_concurrency must be null or a whole number >= 0."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Days CloudWatch keeps the functions' logs: one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653, or 0 to keep them forever."
  default     = 30

  validation {
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653) or 0."
  }
}

variable "log_kms_key_arn" {
  type        = string
  description = "ARN of a customer managed KMS key for the log groups; its key policy must let logs.REGION.amazonaws.com use it. null uses CloudWatch Logs' own encryption."
  default     = null

  validation {
    condition     = var.log_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.log_kms_key_arn))
    error_message = "log_kms_key_arn must be null or a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)."
  }
}

# Proxy settings (environment variables of the function)

variable "rust_log" {
  type        = string
  description = "RUST_LOG of both functions: a tracing filter such as info, debug or bedrock_anthropic_proxy=debug,info."
  default     = "info"

  validation {
    condition     = length(trimspace(var.rust_log)) > 0
    error_message = "rust_log must not be empty."
  }
}

variable "inference_profile" {
  type        = string
  description = "INFERENCE_PROFILE: the cross-region inference profile prefix put before Bedrock model IDs: us, eu, apac, jp, au, global, none (call base model IDs), or \"\" to let the function derive it from the region."
  default     = ""

  validation {
    condition     = contains(["", "us", "eu", "apac", "jp", "au", "global", "none"], var.inference_profile)
    error_message = "inference_profile must be one of \"\", us, eu, apac, jp, au, global, none."
  }
}

variable "model_map" {
  type        = map(string)
  description = "MODEL_MAP: extra or overriding mappings from the model names clients send to Bedrock model or inference profile IDs, e.g. { \"claude-sonnet-4-5\" = \"us.anthropic.claude-sonnet-4-5-20250929-v1:0\" }. Passed as a JSON object."
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.model_map : length(k) > 0 && length(v) > 0])
    error_message = "model_map keys and values must not be empty."
  }
}

variable "bedrock_api" {
  type        = string
  description = "BEDROCK_API: the upstream the proxy calls. invoke (default): Bedrock Runtime's InvokeModel / InvokeModelWithResponseStream. mantle: Bedrock's own Anthropic Messages endpoint, bedrock-mantle.REGION.api.aws, which takes the first-party request shape and answers with Anthropic server-sent events. Each gets only its own IAM actions; count_tokens may use Mantle in both."
  default     = "invoke"

  validation {
    condition     = contains(["invoke", "mantle"], var.bedrock_api)
    error_message = "bedrock_api must be invoke or mantle."
  }
}

variable "model_fallbacks" {
  type        = map(list(string))
  description = "MODEL_FALLBACKS: per model name as callers send it, the further targets to try, in order, when Bedrock throttles or is unavailable after the retries and before the first byte, e.g. { \"claude-sonnet-4-5\" = [\"global.anthropic.claude-sonnet-4-5-20250929-v1:0\", \"claude-haiku-4-5\"] }. Targets are Bedrock IDs, inference profile IDs or ARNs, or names from the model table, and must lie within allowed_models; the regions their profiles (us., eu., apac., jp., au., global.) route to are granted with them. Passed as a JSON object."
  default     = {}

  validation {
    condition     = alltrue([for name, targets in var.model_fallbacks : length(name) > 0 && length(targets) > 0 && alltrue([for target in targets : length(target) > 0])])
    error_message = "model_fallbacks keys must not be empty, and each must list at least one non-empty target."
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
  description = "OIDC_ISSUERS: OpenID issuers whose JWTs the proxy accepts beside its static tokens (SSO for people, keyless CI), e.g. [{ issuer = \"https://token.actions.githubusercontent.com\", audience = [\"bedrock-proxy\"], claims = { repository_owner = [\"acme\"] }, groups = [\"ci\"] }]. issuer is the exact iss (https); the token's aud must hold one of audience; caller_claim names the caller (log, metrics, budgets); groups_claim lists the caller's groups and groups adds fixed ones, for the secret's group policies; every claims entry must match one of its patterns (* globs). Keys come from the issuer's discovery document over HTTPS: no IAM is needed. [] accepts no JWTs. Passed as a JSON array."
  default     = []

  validation {
    condition     = alltrue([for i in var.oidc_issuers : startswith(i.issuer, "https://") && length(i.audience) > 0 && alltrue([for a in i.audience : length(a) > 0])])
    error_message = "Each oidc_issuers entry needs an https:// issuer and at least one non-empty audience."
  }

  validation {
    condition     = alltrue([for i in var.oidc_issuers : !contains(["https://token.actions.githubusercontent.com", "https://gitlab.com"], i.issuer) || length(i.claims) > 0])
    error_message = "GitHub Actions and gitlab.com sign tokens for anyone's pipelines: give those issuers claims, e.g. { repository_owner = [\"your-org\"] } or { namespace_path = [\"your-group\"] }."
  }
}

variable "metrics_namespace" {
  type        = string
  description = "METRICS_NAMESPACE: CloudWatch namespace of the proxy's per-request metrics (embedded metric format in its log lines), which the dashboard and alarms read. 1-255 letters, digits and . _ - / # :, not starting with AWS/."
  default     = "BedrockAnthropicProxy"

  validation {
    condition     = can(regex("^[A-Za-z0-9._/#:-]{1,255}$", var.metrics_namespace)) && !startswith(var.metrics_namespace, "AWS/")
    error_message = "metrics_namespace must be 1-255 characters of letters, digits and . _ - / # :, and must not start with AWS/."
  }
}

variable "extra_environment" {
  type        = map(string)
  description = "Further settings of the proxy, by environment variable name: TOKEN_REFRESH_SECONDS, TOKEN_MISS_REFRESH_SECONDS, TOKEN_READ_TIMEOUT_MS, EXTRA_BETA_FLAGS, MAX_BODY_BYTES, UPSTREAM_MAX_ATTEMPTS, UPSTREAM_RETRY_BASE_MS, UPSTREAM_TIMEOUT_SECONDS, PING_INTERVAL_MS, LAMBDA_DEADLINE_MARGIN_MS, BUDGET_READ_SECONDS, BUDGET_RESERVE_PERCENT. Other names are rejected."
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.extra_environment) : contains(["TOKEN_REFRESH_SECONDS", "TOKEN_MISS_REFRESH_SECONDS", "TOKEN_READ_TIMEOUT_MS", "EXTRA_BETA_FLAGS", "MAX_BODY_BYTES", "UPSTREAM_MAX_ATTEMPTS", "UPSTREAM_RETRY_BASE_MS", "UPSTREAM_TIMEOUT_SECONDS", "PING_INTERVAL_MS", "LAMBDA_DEADLINE_MARGIN_MS", "BUDGET_READ_SECONDS", "BUDGET_RESERVE_PERCENT"], k)])
    error_message = "extra_environment may only set TOKEN_REFRESH_SECONDS, TOKEN_MISS_REFRESH_SECONDS, TOKEN_READ_TIMEOUT_MS, EXTRA_BETA_FLAGS, MAX_BODY_BYTES, UPSTREAM_MAX_ATTEMPTS, UPSTREAM_RETRY_BASE_MS, UPSTREAM_TIMEOUT_SECONDS, PING_INTERVAL_MS, LAMBDA_DEADLINE_MARGIN_MS, BUDGET_READ_SECONDS, BUDGET_RESERVE_PERCENT (the others have their own variables, are set by Lambda, or are for local runs only)."
  }
}

# Bedrock permissions

variable "allowed_models" {
  type        = list(string)
  description = "Bedrock model IDs (IAM wildcards allowed) the proxy may invoke, all of the form anthropic.claude-...; e.g. [\"anthropic.claude-sonnet-4-5-*\", \"anthropic.claude-haiku-4-5-*\"]. Granted as foundation models in bedrock_regions and as inference profiles (any prefix) in this region, and on bedrock-mantle as the bedrock-mantle:Model condition, where model IDs carry no date or version: each pattern also without a trailing -* or -YYYYMMDD-vN:M."
  default     = ["anthropic.claude-*"]

  validation {
    condition     = length(var.allowed_models) > 0 && alltrue([for m in var.allowed_models : can(regex("^anthropic\\.claude-[A-Za-z0-9.:*_-]*$", m))])
    error_message = "allowed_models must be a non-empty list of model IDs starting with anthropic.claude- (letters, digits, . : _ - and * only)."
  }
}

variable "guardrail_arns" {
  type        = list(string)
  description = "ARNs of the Bedrock guardrails that callers' policies in the token secret name (\"guardrail\": {\"id\": ..., \"version\": ...}, see docs/guardrails.md), e.g. [\"arn:aws:bedrock:us-east-1:123456789012:guardrail/abc123def456\"]. InvokeModel with a guardrail needs bedrock:ApplyGuardrail on it, which the proxy gets on exactly these, with bedrock_api = \"invoke\" (on Mantle the proxy refuses guarded callers). Empty (the default): no guardrail permission."
  default     = []

  validation {
    condition     = alltrue([for arn in var.guardrail_arns : can(regex("^arn:aws(-[a-z]+)*:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:guardrail/[a-z0-9]+$", arn))])
    error_message = "guardrail_arns must be guardrail ARNs such as arn:aws:bedrock:us-east-1:123456789012:guardrail/abc123def456 (no wildcards)."
  }
}

variable "bedrock_regions" {
  type        = list(string)
  description = "Regions (IAM patterns such as us-* allowed) whose foundation models the proxy may invoke; inference profiles send requests on to these. null derives them from inference_profile, or from this region as the function does when it is \"\", plus those of the profiles model_map and model_fallbacks name: us → us-*, eu → eu-*, apac, jp and au → ap-* (jp and au fall back to apac), global → *, none → this region."
  default     = null

  validation {
    condition     = var.bedrock_regions == null ? true : length(var.bedrock_regions) > 0 && alltrue([for r in var.bedrock_regions : can(regex("^([a-z]{2}(-[a-z0-9*]+)*|\\*)$", r))])
    error_message = "bedrock_regions must be null or a non-empty list of region names or patterns such as us-east-1, us-* or *."
  }
}

variable "mantle_project" {
  type        = string
  description = "The Bedrock project (bedrock-mantle project resource) the bedrock-mantle grants are scoped to: default, the project Mantle uses for requests that name none (as the proxy's do), or a project ID proj_... when requests reach Mantle under that project."
  default     = "default"

  validation {
    condition     = can(regex("^(default|proj_[A-Za-z0-9]+)$", var.mantle_project))
    error_message = "mantle_project must be default or a project ID of the form proj_ followed by letters and digits."
  }
}

# Function URL

variable "authorization_type" {
  type        = string
  description = "Function URL auth: NONE (default; anyone can reach the URL and the function checks the bearer token itself) or AWS_IAM (callers must also SigV4-sign; send the token in x-api-key then)."
  default     = "NONE"

  validation {
    condition     = contains(["NONE", "AWS_IAM"], var.authorization_type)
    error_message = "authorization_type must be NONE or AWS_IAM."
  }
}

variable "cors_allow_origins" {
  type        = list(string)
  description = "Origins browsers may call the URL from, e.g. [\"https://app.example.com\"]; [\"*\"] allows any. [] configures no CORS at all (server-side clients only). The function itself sets no CORS headers."
  default     = ["*"]
}

variable "cors_allow_methods" {
  type        = list(string)
  description = "HTTP methods allowed cross-origin: GET, POST, or [\"*\"]. Preflight OPTIONS requests are answered by Lambda."
  default     = ["GET", "POST"]

  validation {
    condition     = alltrue([for m in var.cors_allow_methods : contains(["*", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"], m)])
    error_message = "cors_allow_methods may contain *, GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS."
  }
}

variable "cors_allow_headers" {
  type        = list(string)
  description = "Request headers allowed cross-origin. The default is every header the official TypeScript SDK sends from a browser (its preflights ask for anthropic-dangerous-direct-browser-access and the x-stainless-* headers too), plus x-api-key and anthropic-beta; a list that lacks one makes the browser refuse the request. [\"*\"] allows any."
  default = [
    "authorization",
    "x-api-key",
    "content-type",
    "anthropic-version",
    "anthropic-beta",
    "anthropic-dangerous-direct-browser-access",
    "x-stainless-arch",
    "x-stainless-lang",
    "x-stainless-os",
    "x-stainless-package-version",
    "x-stainless-retry-count",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-timeout",
    "x-stainless-helper-method",
  ]
}

variable "cors_expose_headers" {
  type        = list(string)
  description = "Response headers browser code may read: request-id (the SDK's request_id), retry-after and x-should-retry (the SDK's retry decision)."
  default     = ["request-id", "retry-after", "x-should-retry"]
}

variable "cors_max_age" {
  type        = number
  description = "Seconds browsers may cache a preflight answer, 0 to 86400."
  default     = 3600

  validation {
    condition     = var.cors_max_age >= 0 && var.cors_max_age <= 86400
    error_message = "cors_max_age must be between 0 and 86400."
  }
}

# Bearer token secret

variable "secret_arn" {
  type        = string
  description = "ARN of an existing Secrets Manager secret holding the bearer token (its SecretString is the token). null creates one (see generate_initial_token)."
  default     = null

  validation {
    condition     = var.secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.secret_arn))
    error_message = "secret_arn must be null or a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX)."
  }
}

variable "generate_initial_token" {
  type        = bool
  description = "When Terraform creates the secret: true writes a random first token (random_password; it is then in Terraform state), false leaves the secret empty until you put the first value (the proxy answers 503 until then)."
  default     = true
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the customer managed KMS key that encrypts the secret: used when Terraform creates it, and granted to the functions (also set it when bringing a secret encrypted with your own key). null means the AWS managed key aws/secretsmanager."
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)."
  }
}

variable "secret_recovery_window_days" {
  type        = number
  description = "Days a deleted secret (one Terraform created) can still be restored: 0 (delete at once, so the name can be reused) or 7 to 30."
  default     = 7

  validation {
    condition     = var.secret_recovery_window_days == 0 || (var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30)
    error_message = "secret_recovery_window_days must be 0 or between 7 and 30."
  }
}

# Rotation

variable "enable_rotation" {
  type        = bool
  description = "Whether to deploy the rotate-token function and let Secrets Manager rotate the token on rotation_schedule_expression."
  default     = false
}

variable "rotation_schedule_expression" {
  type        = string
  description = "When the token is rotated, in Secrets Manager's schedule syntax: rate(N days), rate(N hours) or cron(...)."
  default     = "rate(30 days)"

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.rotation_schedule_expression))
    error_message = "rotation_schedule_expression must be rate(...) or cron(...)."
  }
}

variable "rotate_immediately" {
  type        = bool
  description = "Whether the token is rotated once as soon as rotation is enabled. The token Terraform generated then stays valid as AWSPREVIOUS until the next rotation. Not done while the secret is empty (generate_initial_token = false): rotation needs a first value."
  default     = true
}

# Budgets

variable "enable_budgets" {
  type        = bool
  description = "Whether to create the DynamoDB table (on demand, NAME-usage) in which the proxy counts each caller's, group's and the deployment's tokens and dollars per day and month, set USAGE_TABLE to it, and allow the proxy dynamodb:GetItem and dynamodb:UpdateItem on it and nothing else. The daily_tokens / monthly_tokens / daily_usd / monthly_usd limits in the secret and the deployment caps are enforced only then (docs/budgets.md)."
  default     = false
}

variable "deployment_daily_usd" {
  type        = number
  description = "DEPLOYMENT_DAILY_USD: a dollar cap on everyone's spend together per UTC day, at the proxy's prices (docs/budgets.md), e.g. 500; null for none. Needs enable_budgets (without it the cap is not set, and a check warns)."
  default     = null

  validation {
    condition     = var.deployment_daily_usd == null || try(var.deployment_daily_usd >= 0, false)
    error_message = "deployment_daily_usd must be a non-negative number of dollars."
  }
}

variable "deployment_monthly_usd" {
  type        = number
  description = "DEPLOYMENT_MONTHLY_USD: a dollar cap on everyone's spend together per UTC calendar month, e.g. 10000; null for none. Needs enable_budgets (without it the cap is not set, and a check warns)."
  default     = null

  validation {
    condition     = var.deployment_monthly_usd == null || try(var.deployment_monthly_usd >= 0, false)
    error_message = "deployment_monthly_usd must be a non-negative number of dollars."
  }
}

variable "model_prices" {
  type = map(object({
    input          = number
    output         = number
    cache_read     = optional(number)
    cache_write    = optional(number)
    cache_write_1h = optional(number)
  }))
  description = "MODEL_PRICES: prices over the built-in table (src/usage/prices.json), by glob over the model name callers send, the Bedrock ID or its base ID, in USD per million tokens, e.g. { \"*claude-sonnet-5-5*\" = { input = 1.8, output = 9 } }; unset cache rates are 0.1x, 1.25x and 2x the input. Passed as a JSON object."
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.model_prices : length(k) > 0 && v.input >= 0 && v.output >= 0])
    error_message = "model_prices keys must not be empty and prices must be non-negative."
  }
}

# Monitoring

variable "enable_monitoring" {
  type        = bool
  description = "Whether to create the CloudWatch dashboard, the alarms and the three metric filters that count the alarms' totals (modules/observability)."
  default     = true
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
  description = "Percentage of the proxy's timeout that the longest invocation in a window may reach before the duration alarm fires, 1 to 100."
  default     = 80

  validation {
    condition     = var.duration_alarm_threshold_percent >= 1 && var.duration_alarm_threshold_percent <= 100
    error_message = "duration_alarm_threshold_percent must be between 1 and 100."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource created."
  default     = {}
}
