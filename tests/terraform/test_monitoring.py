"""The CloudWatch dashboard and alarms, against the metrics the proxy writes."""

import re

from wiring import (
    EMF_METRICS,
    OBSERVABILITY_MAIN,
    OBSERVABILITY_VARIABLES,
    ROOT_OUTPUTS,
    ROOT_VARIABLES,
    TERRAFORM,
    labelled,
    local,
    module_call,
    typed,
    unquote,
    variable,
)


def alarms() -> dict:
    return {name: body for type_, name, body in typed(OBSERVABILITY_MAIN, "resource") if type_ == "aws_cloudwatch_metric_alarm"}


def test_observability_module_gets_the_proxy_and_the_alarm_inputs():
    call = module_call("observability")

    assert call["count"] == "${var.enable_monitoring ? 1 : 0}"
    assert call["function_name"] == "${module.proxy.function_name}"
    assert call["function_timeout"] == "${var.timeout}"
    assert call["log_group_name"] == "${module.proxy.log_group_name}"
    assert call["metrics_namespace"] == "${var.metrics_namespace}"
    assert call["rotation_function_name"] == "${one(module.rotation_function[*].function_name)}"
    assert call["alarm_sns_topic_arn"] == "${var.alarm_sns_topic_arn}"
    for name, _ in labelled(OBSERVABILITY_VARIABLES, "variable"):
        if name.endswith("_threshold") or name.endswith("_threshold_percent") or name.startswith("alarm_"):
            assert call[name] == f"${{var.{name}}}", name


def test_alarms_notify_the_sns_input_and_treat_missing_data_as_fine():
    found = alarms()
    actions = local(OBSERVABILITY_MAIN, "alarm_actions")

    assert set(found) == {"error_rate", "throttles", "duration", "rotation_errors"}
    assert actions == "${var.alarm_sns_topic_arn == null ? [] : [var.alarm_sns_topic_arn]}"
    assert variable(ROOT_VARIABLES, "alarm_sns_topic_arn")["default"] is None
    for name, alarm in found.items():
        assert alarm["alarm_actions"] == "${local.alarm_actions}", name
        assert alarm["ok_actions"] == "${local.alarm_actions}", name
        assert unquote(alarm["treat_missing_data"]) == "notBreaching", name


def test_error_rate_alarm_divides_errors_by_requests():
    alarm = alarms()["error_rate"]
    queries = {unquote(q["id"]): q for q in alarm["metric_query"]}
    totals = local(OBSERVABILITY_MAIN, "totals")

    (returned,) = [q for q in queries.values() if q.get("return_data") is True]
    assert re.search(r"100 \* FILL\(errors, 0\) / requests", returned["expression"])
    assert "requests >= ${var.error_rate_alarm_min_requests}" in returned["expression"]
    assert alarm["threshold"] == "${var.error_rate_alarm_threshold}"
    for query_id, total in (("requests", "TotalRequests"), ("errors", "TotalErrors")):
        metric = queries[query_id]["metric"][0]
        assert metric["metric_name"] == f'${{aws_cloudwatch_log_metric_filter.this["{total}"].metric_transformation[0].name}}'
        assert unquote(metric["stat"]) == "Sum" and metric["namespace"] == "${var.metrics_namespace}"
    # The totals are the proxy's own metrics, counted from its log lines.
    assert {unquote(v) for v in totals.values()} == {"Requests", "Errors", "Throttles"}
    assert set(totals) == {"TotalRequests", "TotalErrors", "TotalThrottles"}


def test_metric_filters_count_the_totals_from_the_proxy_log_lines():
    (name, _, metric_filter), = [(t, n, b) for t, n, b in typed(OBSERVABILITY_MAIN, "resource") if t == "aws_cloudwatch_log_metric_filter"]
    transformation = metric_filter["metric_transformation"][0]

    assert metric_filter["for_each"] == "${local.totals}"
    assert metric_filter["log_group_name"] == "${var.log_group_name}"
    assert unquote(metric_filter["pattern"]) == "{ $.${each.value} > 0 }"
    assert unquote(transformation["value"]) == "$.${each.value}"
    assert transformation["name"] == "${each.key}" and transformation["namespace"] == "${var.metrics_namespace}"


def test_throttle_duration_and_rotation_alarms_watch_the_right_metrics():
    found = alarms()
    throttles, duration, rotation = found["throttles"], found["duration"], found["rotation_errors"]

    assert "TotalThrottles" in throttles["metric_name"] and unquote(throttles["statistic"]) == "Sum"
    assert throttles["threshold"] == "${var.throttles_alarm_threshold}"
    assert unquote(duration["namespace"]) == "AWS/Lambda" and unquote(duration["metric_name"]) == "Duration"
    assert duration["dimensions"] == {"FunctionName": "${var.function_name}"}
    assert unquote(duration["statistic"]) == "Maximum" and duration["threshold"] == "${local.duration_threshold_ms}"
    assert local(OBSERVABILITY_MAIN, "duration_threshold_ms") == (
        "${var.function_timeout * 1000 * var.duration_alarm_threshold_percent / 100}"
    )
    assert variable(ROOT_VARIABLES, "duration_alarm_threshold_percent")["default"] == 80
    assert rotation["count"] == "${var.rotation_function_name == null ? 0 : 1}"
    assert unquote(rotation["namespace"]) == "AWS/Lambda" and unquote(rotation["metric_name"]) == "Errors"
    assert rotation["dimensions"] == {"FunctionName": "${var.rotation_function_name}"}
    assert rotation["threshold"] == 0 and unquote(rotation["comparison_operator"]) == "GreaterThanThreshold"


def test_dashboard_shows_every_proxy_metric_by_caller_and_model_and_its_url_is_an_output():
    text = OBSERVABILITY_MAIN.read_text()
    dashboards = [n for t, n, _ in typed(OBSERVABILITY_MAIN, "resource") if t == "aws_cloudwatch_dashboard"]
    root_outputs = dict(labelled(ROOT_OUTPUTS, "output"))
    literal = set(re.findall(r'MetricName=\\"(\w+)\\"', text))
    looped = set(unquote(local(OBSERVABILITY_MAIN, "token_metrics")))

    assert dashboards == ["this"]
    assert unquote(local(OBSERVABILITY_MAIN, "token_metrics")) == [
        "InputTokens",
        "OutputTokens",
        "CacheReadInputTokens",
        "CacheWriteInputTokens",
    ]
    assert 'for row, dimension in ["caller", "model"]' in text
    assert "${local.search_prefix}caller,model}" in text
    assert '${local.search_prefix}${dimension}} MetricName=\\"${metric}\\"' in text
    assert EMF_METRICS <= literal | looped
    assert '"AWS/Lambda", "Duration", "FunctionName", var.function_name' in text
    assert '"AWS/Lambda", "ConcurrentExecutions", "FunctionName", var.function_name' in text
    assert "${var.metrics_namespace}" in local(OBSERVABILITY_MAIN, "search_prefix")
    assert root_outputs["dashboard_url"]["value"] == "${one(module.observability[*].dashboard_url)}"
    assert "aws_cloudwatch_dashboard.this.dashboard_name" in dict(
        labelled(TERRAFORM / "modules" / "observability" / "outputs.tf", "output")
    )["dashboard_url"]["value"]
