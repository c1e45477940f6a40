locals {
  alarm_actions = var.alarm_sns_topic_arn == null ? [] : [var.alarm_sns_topic_arn]
  period        = 300

  console_host = (
    startswith(var.region, "cn-") ? "console.amazonaws.cn" :
    startswith(var.region, "us-gov-") ? "console.amazonaws-us-gov.com" : "${var.region}.console.aws.amazon.com"
  )

  duration_threshold_ms = var.function_timeout * 1000 * var.duration_alarm_threshold_percent / 100

  # The proxy's metrics carry the dimension sets [model], [group], [group, model]
  # and, for static tokens, [caller] and [caller, model]; alarms cannot use SEARCH.
  # The alarms' totals are therefore counted from the same log lines (the
  # embedded-metric-format values are top-level JSON fields) by metric filters.
  # https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/using-search-expressions.html
  totals = {
    TotalRequests  = "Requests"
    TotalErrors    = "Errors"
    TotalThrottles = "Throttles"
  }

  token_metrics = ["InputTokens", "OutputTokens", "CacheReadInputTokens", "CacheWriteInputTokens"]

  # SEARCH over one exact dimension set of the namespace: one line per caller,
  # model, or caller and model seen.
  search_prefix = "SEARCH('{\"${var.metrics_namespace}\","
  labels = {
    caller         = "$${PROP('Dim.caller')}"
    model          = "$${PROP('Dim.model')}"
    group          = "$${PROP('Dim.group')}"
    "caller,model" = "$${PROP('Dim.caller')} / $${PROP('Dim.model')}"
    "group,model"  = "$${PROP('Dim.group')} / $${PROP('Dim.model')}"
  }

  header_widget = {
    type   = "text"
    x      = 0
    y      = 0
    width  = 24
    height = 2
    properties = {
      markdown = "## ${var.function_name}\nPer caller and model: from the proxy's log lines (embedded metric format, namespace `${var.metrics_namespace}`), summed per ${local.period / 60} minutes. Per function: AWS/Lambda. The caller / model bars add up the whole time range picked above."
    }
  }

  traffic_widgets = [
    {
      type   = "metric"
      x      = 0
      y      = 2
      width  = 8
      height = 6
      properties = {
        title  = "Requests by model"
        region = var.region
        view   = "timeSeries"
        period = local.period
        stat   = "Sum"
        metrics = [
          [var.metrics_namespace, "TotalRequests", { label = "All" }],
          [{ id = "bymodel", expression = "${local.search_prefix}model} MetricName=\"Requests\"', 'Sum', ${local.period})", label = local.labels.model }],
        ]
      }
    },
    {
      type   = "metric"
      x      = 8
      y      = 2
      width  = 8
      height = 6
      properties = {
        title  = "Errors and throttles"
        region = var.region
        view   = "timeSeries"
        period = local.period
        stat   = "Sum"
        metrics = [
          [{ id = "errors", expression = "${local.search_prefix}model} MetricName=\"Errors\"', 'Sum', ${local.period})", label = "Errors $${PROP('Dim.model')}" }],
          [{ id = "throttles", expression = "${local.search_prefix}model} MetricName=\"Throttles\"', 'Sum', ${local.period})", label = "Throttles $${PROP('Dim.model')}" }],
          [var.metrics_namespace, "TotalErrors", { id = "totalerrors", visible = false }],
          [var.metrics_namespace, "TotalRequests", { id = "totalrequests", visible = false }],
          [{ id = "rate", expression = "IF(totalrequests > 0, 100 * FILL(totalerrors, 0) / totalrequests, 0)", label = "Error rate (%)", yAxis = "right" }],
        ]
        annotations = {
          horizontal = [{ label = "Error-rate alarm", value = var.error_rate_alarm_threshold, yAxis = "right" }]
        }
      }
    },
    {
      type   = "metric"
      x      = 16
      y      = 2
      width  = 8
      height = 6
      properties = {
        title  = "Time to first token (ms)"
        region = var.region
        view   = "timeSeries"
        period = local.period
        metrics = [
          [{ id = "p50", expression = "${local.search_prefix}model} MetricName=\"TimeToFirstToken\"', 'p50', ${local.period})", label = "p50 $${PROP('Dim.model')}" }],
          [{ id = "p99", expression = "${local.search_prefix}model} MetricName=\"TimeToFirstToken\"', 'p99', ${local.period})", label = "p99 $${PROP('Dim.model')}" }],
        ]
      }
    },
  ]

  token_widgets = flatten([
    for row, dimension in ["caller", "model"] : [
      for column, metric in local.token_metrics : {
        type   = "metric"
        x      = column * 6
        y      = 8 + row * 6
        width  = 6
        height = 6
        properties = {
          title   = "${metric} by ${dimension}"
          region  = var.region
          view    = "timeSeries"
          stacked = true
          period  = local.period
          metrics = [
            [{ id = "tokens", expression = "${local.search_prefix}${dimension}} MetricName=\"${metric}\"', 'Sum', ${local.period})", label = local.labels[dimension] }],
          ]
        }
      }
    ]
  ])

  spend_widgets = [
    for column, metric in ["InputTokens", "OutputTokens", "Requests"] : {
      type   = "metric"
      x      = column * 8
      y      = 20
      width  = 8
      height = 6
      properties = {
        title                = "${metric} by caller and model (time range)"
        region               = var.region
        view                 = "bar"
        setPeriodToTimeRange = true
        period               = local.period
        metrics = [
          [{ id = "total", expression = "${local.search_prefix}caller,model} MetricName=\"${metric}\"', 'Sum', ${local.period})", label = local.labels["caller,model"] }],
        ]
      }
    }
  ]

  # Dollars (CostUSD, the log line's cost_usd) by group and model. JWT callers are
  # never a dimension (there may be thousands); spend per caller is a Logs
  # Insights query (docs/budgets.md).
  cost_widgets = [
    {
      type   = "metric"
      x      = 0
      y      = 26
      width  = 12
      height = 6
      properties = {
        title   = "Spend (USD) by group and model"
        region  = var.region
        view    = "timeSeries"
        stacked = true
        period  = local.period
        metrics = [
          [{ id = "cost", expression = "${local.search_prefix}group,model} MetricName=\"CostUSD\"', 'Sum', ${local.period})", label = local.labels["group,model"] }],
        ]
      }
    },
    {
      type   = "metric"
      x      = 12
      y      = 26
      width  = 12
      height = 6
      properties = {
        title                = "Spend (USD) by group and model (time range)"
        region               = var.region
        view                 = "bar"
        setPeriodToTimeRange = true
        period               = local.period
        metrics = [
          [{ id = "total", expression = "${local.search_prefix}group,model} MetricName=\"CostUSD\"', 'Sum', ${local.period})", label = local.labels["group,model"] }],
        ]
      }
    },
  ]

  health_widgets = [
    {
      type   = "metric"
      x      = 0
      y      = 32
      width  = 8
      height = 6
      properties = {
        title  = "Fallbacks and healed requests"
        region = var.region
        view   = "timeSeries"
        period = local.period
        metrics = [
          [{ id = "fallbacks", expression = "${local.search_prefix}model} MetricName=\"Fallbacks\"', 'Sum', ${local.period})", label = "Fallbacks $${PROP('Dim.model')}" }],
          [{ id = "healed", expression = "${local.search_prefix}model} MetricName=\"Healed\"', 'Sum', ${local.period})", label = "Healed $${PROP('Dim.model')}" }],
        ]
      }
    },
    {
      type   = "metric"
      x      = 8
      y      = 32
      width  = 8
      height = 6
      properties = {
        title  = "Lambda duration (ms)"
        region = var.region
        view   = "timeSeries"
        period = local.period
        metrics = [
          for stat in ["p50", "p99", "Maximum"] : ["AWS/Lambda", "Duration", "FunctionName", var.function_name, { stat = stat, label = stat }]
        ]
        annotations = {
          horizontal = [
            { label = "Timeout", value = var.function_timeout * 1000 },
            { label = "Duration alarm", value = local.duration_threshold_ms },
          ]
        }
        yAxis = { left = { min = 0 } }
      }
    },
    {
      type   = "metric"
      x      = 16
      y      = 32
      width  = 8
      height = 6
      properties = {
        title  = "Lambda concurrency, throttles and errors"
        region = var.region
        view   = "timeSeries"
        period = local.period
        metrics = [
          ["AWS/Lambda", "ConcurrentExecutions", "FunctionName", var.function_name, { stat = "Maximum", label = "Concurrent executions (max)" }],
          ["AWS/Lambda", "Throttles", "FunctionName", var.function_name, { stat = "Sum", label = "Invocations throttled", yAxis = "right" }],
          ["AWS/Lambda", "Errors", "FunctionName", var.function_name, { stat = "Sum", label = "Invocation errors", yAxis = "right" }],
        ]
      }
    },
  ]

  alarm_widget = {
    type   = "alarm"
    x      = 0
    y      = 38
    width  = 24
    height = 3
    properties = {
      title  = "Alarms"
      alarms = values(local.alarm_arns)
    }
  }

  alarm_arns = merge(
    {
      error_rate = aws_cloudwatch_metric_alarm.error_rate.arn
      throttles  = aws_cloudwatch_metric_alarm.throttles.arn
      duration   = aws_cloudwatch_metric_alarm.duration.arn
    },
    { for alarm in aws_cloudwatch_metric_alarm.rotation_errors : "rotation_errors" => alarm.arn },
  )
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name
  dashboard_body = jsonencode({
    widgets = concat([local.header_widget], local.traffic_widgets, local.token_widgets, local.spend_widgets, local.cost_widgets, local.health_widgets, [local.alarm_widget])
  })
}

resource "aws_cloudwatch_log_metric_filter" "this" {
  for_each = local.totals

  name           = "${var.name}-${each.key}"
  log_group_name = var.log_group_name
  pattern        = "{ $.${each.value} > 0 }"

  metric_transformation {
    name      = each.key
    namespace = var.metrics_namespace
    value     = "$.${each.value}"
    unit      = "Count"
  }
}

resource "aws_cloudwatch_metric_alarm" "error_rate" {
  alarm_name          = "${var.name}-error-rate"
  alarm_description   = "More than ${var.error_rate_alarm_threshold}% of the proxy's requests ended in an error within ${var.alarm_period_seconds} s (counted from ${var.error_rate_alarm_min_requests} requests on). The log lines name the caller, model and error type; dashboard ${var.name} shows them by model."
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = 1
  threshold           = var.error_rate_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  metric_query {
    id          = "rate"
    expression  = "IF(requests >= ${var.error_rate_alarm_min_requests}, 100 * FILL(errors, 0) / requests, 0)"
    label       = "Error rate (%)"
    return_data = true
  }

  metric_query {
    id = "requests"

    metric {
      namespace   = var.metrics_namespace
      metric_name = aws_cloudwatch_log_metric_filter.this["TotalRequests"].metric_transformation[0].name
      period      = var.alarm_period_seconds
      stat        = "Sum"
    }
  }

  metric_query {
    id = "errors"

    metric {
      namespace   = var.metrics_namespace
      metric_name = aws_cloudwatch_log_metric_filter.this["TotalErrors"].metric_transformation[0].name
      period      = var.alarm_period_seconds
      stat        = "Sum"
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "throttles" {
  alarm_name          = "${var.name}-bedrock-throttles"
  alarm_description   = "Bedrock throttled the proxy more than ${var.throttles_alarm_threshold} times within ${var.alarm_period_seconds} s. Raise the Bedrock quotas for the models concerned (dashboard ${var.name}: Errors and throttles), or give them fallbacks (model_fallbacks)."
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = 1
  namespace           = var.metrics_namespace
  metric_name         = aws_cloudwatch_log_metric_filter.this["TotalThrottles"].metric_transformation[0].name
  statistic           = "Sum"
  period              = var.alarm_period_seconds
  threshold           = var.throttles_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "duration" {
  alarm_name          = "${var.name}-duration-near-timeout"
  alarm_description   = "An invocation of ${var.function_name} ran longer than ${var.duration_alarm_threshold_percent}% of its ${var.function_timeout} s timeout within ${var.alarm_period_seconds} s; at the timeout Lambda cuts the answer off. Raise timeout or lower max_tokens."
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = 1
  namespace           = "AWS/Lambda"
  metric_name         = "Duration"
  dimensions          = { FunctionName = var.function_name }
  statistic           = "Maximum"
  period              = var.alarm_period_seconds
  threshold           = local.duration_threshold_ms
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "rotation_errors" {
  count = var.rotation_function_name == null ? 0 : 1

  alarm_name          = "${var.name}-rotation-errors"
  alarm_description   = "The token rotation function ${var.rotation_function_name} failed, so the token was not rotated. Its log group /aws/lambda/${var.rotation_function_name} says which step (createSecret, setSecret, testSecret, finishSecret) failed."
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = 1
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = var.rotation_function_name }
  statistic           = "Sum"
  period              = var.alarm_period_seconds
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}
