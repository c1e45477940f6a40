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

/// `a / b` to three significant figures (`1.23×`, `0.00063×`, `163×`), or `n/a`.
pub fn ratio(a: f64, b: f64) -> String {
    if !(a.is_finite() && b.is_finite() && b != 0.0) {
        return "n/a".into();
    }
    let r = a / b;
    if r == 0.0 {
        return "0×".into();
    }
    let decimals = (2 - r.abs().log10().floor() as i32).max(0) as usize;
    format!("{r:.decimals$}×")
}

/// A number from a JSON summary, NaN when absent.
pub fn num(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_keep_three_significant_figures() {
        assert_eq!(ratio(1.0, 1.0), "1.00×");
        assert_eq!(ratio(163.4, 1.0), "163×");
        assert_eq!(ratio(0.63, 1000.0), "0.000630×");
        assert_eq!(ratio(1.0, 0.0), "n/a");
    }
}
