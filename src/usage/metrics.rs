//! Usage metrics with no API call on the request path: inside Lambda, each request's log line
//! is also a CloudWatch Embedded Metric Format record, which CloudWatch Logs turns into metrics
//! (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
//!
//! Dimension sets are `[]` (the totals, which alarms read), `[model]`, `[group]` and
//! `[group, model]`, and for static tokens also `[caller]` and `[caller, model]`. Every unique
//! dimension value is a metric CloudWatch bills for, so each is drawn from a bounded set:
//! `model` is the Bedrock ID of a model in the built-in catalogue, else `other` (a caller may
//! send any name); `group` is a group of the token secret; `caller` is a dimension only for
//! static tokens (the secret's names), never for JWT callers, who may be thousands. Every
//! metric is present on every line, as a number, so that sums and rates are right over any
//! period.

use serde_json::{json, Map, Value};

/// The namespace when `METRICS_NAMESPACE` is not set.
pub const DEFAULT_NAMESPACE: &str = "BedrockAnthropicProxy";

/// The metrics of one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestMetrics {
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_input_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_input_tokens: u64,
    /// Milliseconds from the request to the first token sent (the whole answer when not streamed).
    pub time_to_first_token_ms: Option<f64>,
    /// Milliseconds from the request to the last byte.
    pub duration_ms: f64,
    /// The Anthropic `error.type` the caller got, if any.
    pub error_type: Option<String>,
    /// Upstream attempts refused for throttling (retried or not).
    pub throttles: u64,
    /// Fallback targets tried after the first model throttled or was unavailable.
    pub fallbacks: u64,
    /// True when the request was healed after a refusal.
    pub healed: bool,
    /// What the request cost in dollars (0 for a model with no price: the log line says so).
    pub cost_usd: f64,
}

/// Which optional dimension sets a line declares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dimensions {
    /// The caller's name is a dimension (static tokens only).
    pub caller: bool,
}

/// The `model` dimension of a Bedrock ID: the ID itself for a model of the built-in catalogue
/// (with any profile prefix), else `other`.
pub fn model_dimension(bedrock_id: Option<&str>) -> &str {
    let Some(id) = bedrock_id else {
        return "-";
    };
    let base = crate::translate::models::base_model_id(id);
    let known = crate::translate::catalogue::MODELS.iter().any(|m| m.bedrock_id == base);
    // Profile prefixes are a fixed set, so a known base ID keeps the set bounded.
    if known && id.len() <= base.len() + 8 {
        id
    } else {
        "other"
    }
}

/// Every metric name with its unit, in the order written.
pub const METRICS: &[(&str, &str)] = &[
    ("Requests", "Count"),
    ("InputTokens", "Count"),
    ("OutputTokens", "Count"),
    ("CacheReadInputTokens", "Count"),
    ("CacheWriteInputTokens", "Count"),
    ("TimeToFirstToken", "Milliseconds"),
    ("Duration", "Milliseconds"),
    ("Errors", "Count"),
    ("Throttles", "Count"),
    ("Fallbacks", "Count"),
    ("Healed", "Count"),
    ("CostUSD", "None"),
];

/// Adds the EMF directive and the metric values to a log record's `fields` (which already
/// hold `caller`, `group` and `model`, the dimensions). `timestamp_ms` is milliseconds since
/// the epoch.
pub fn add_emf(
    fields: &mut Map<String, Value>,
    namespace: &str,
    timestamp_ms: u64,
    m: &RequestMetrics,
    dimensions: Dimensions,
) {
    for dimension in ["caller", "group", "model"] {
        if !fields.get(dimension).is_some_and(Value::is_string) {
            fields.insert(dimension.into(), Value::String("-".into()));
        }
    }
    let metrics: Vec<Value> = METRICS
        .iter()
        .map(|(name, unit)| json!({"Name": name, "Unit": unit}))
        .collect();
    let mut dimension_sets = vec![json!([]), json!(["model"]), json!(["group"]), json!(["group", "model"])];
    if dimensions.caller {
        dimension_sets.extend([json!(["caller"]), json!(["caller", "model"])]);
    }
    fields.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": dimension_sets,
                "Metrics": metrics,
            }],
        }),
    );
    let values: [(&str, f64); 12] = [
        ("Requests", 1.0),
        ("InputTokens", m.input_tokens as f64),
        ("OutputTokens", m.output_tokens as f64),
        ("CacheReadInputTokens", m.cache_read_input_tokens as f64),
        ("CacheWriteInputTokens", m.cache_write_input_tokens as f64),
        ("TimeToFirstToken", m.time_to_first_token_ms.unwrap_or(m.duration_ms)),
        ("Duration", m.duration_ms),
        ("Errors", if m.error_type.is_some() { 1.0 } else { 0.0 }),
        ("Throttles", m.throttles as f64),
        ("Fallbacks", m.fallbacks as f64),
        ("Healed", if m.healed { 1.0 } else { 0.0 }),
        ("CostUSD", m.cost_usd),
    ];
    for (name, value) in values {
        fields.insert(name.into(), json!(value));
    }
    if let Some(kind) = &m.error_type {
        // A property, not a dimension: it would multiply the metrics' cost.
        fields.insert("error_type".into(), Value::String(kind.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_names_every_metric_and_carries_each_as_a_number() {
        let mut fields = Map::new();
        fields.insert("caller".into(), json!("alice"));
        fields.insert("model".into(), json!("us.anthropic.claude-opus-5-5"));
        let m = RequestMetrics {
            input_tokens: 12,
            output_tokens: 40,
            duration_ms: 250.5,
            time_to_first_token_ms: Some(80.0),
            error_type: Some("rate_limit_error".into()),
            throttles: 3,
            ..RequestMetrics::default()
        };
        add_emf(
            &mut fields,
            DEFAULT_NAMESPACE,
            1_700_000_000_000,
            &m,
            Dimensions { caller: true },
        );
        let directive = &fields["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], DEFAULT_NAMESPACE);
        for set in directive["Dimensions"].as_array().unwrap() {
            for key in set.as_array().unwrap() {
                assert!(fields[key.as_str().unwrap()].is_string());
            }
        }
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), METRICS.len());
        for name in names {
            assert!(fields[name].is_number(), "{name}");
        }
        assert_eq!(fields["OutputTokens"], json!(40.0));
        assert_eq!(fields["Errors"], json!(1.0));
        assert_eq!(fields["error_type"], "rate_limit_error");
    }

    #[test]
    fn missing_dimensions_get_a_placeholder() {
        let mut fields = Map::new();
        add_emf(&mut fields, "NS", 0, &RequestMetrics::default(), Dimensions::default());
        assert_eq!(fields["caller"], "-");
        assert_eq!(fields["model"], "-");
        // Without a bounded caller, no dimension set names it.
        let sets = fields["_aws"]["CloudWatchMetrics"][0]["Dimensions"].to_string();
        assert!(!sets.contains("caller"), "{sets}");
    }

    #[test]
    fn only_catalogue_models_become_model_dimensions() {
        assert_eq!(
            model_dimension(Some("us.anthropic.claude-opus-5-5")),
            "us.anthropic.claude-opus-5-5"
        );
        assert_eq!(
            model_dimension(Some("anthropic.claude-haiku-4-5-20251001-v1:0")),
            "anthropic.claude-haiku-4-5-20251001-v1:0"
        );
        assert_eq!(model_dimension(Some("us.anthropic.claude-made-up-1234")), "other");
        assert_eq!(
            model_dimension(Some("arn:aws:bedrock:us-east-1:1:application-inference-profile/x")),
            "other"
        );
        assert_eq!(model_dimension(None), "-");
    }
}
