//! Percentiles and the small JSON summaries the reports are built from.

use serde_json::{json, Value};

/// The `p`-quantile (0..=1) of sorted values, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// `{n, p50, p99, min, max}` of `values`.
pub fn summary(mut values: Vec<f64>) -> Value {
    values.sort_by(f64::total_cmp);
    json!({
        "n": values.len(),
        "p50": percentile(&values, 0.50),
        "p99": percentile(&values, 0.99),
        "min": values.first().copied().unwrap_or(f64::NAN),
        "max": values.last().copied().unwrap_or(f64::NAN),
    })
}

/// The median of `values`.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    percentile(&values, 0.5)
}

/// `a / b` formatted as `1.23×`, or `n/a`.
pub fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b != 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "n/a".into()
    }
}

/// A number from a JSON summary, NaN when absent.
pub fn num(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer).and_then(Value::as_f64).unwrap_or(f64::NAN)
}
