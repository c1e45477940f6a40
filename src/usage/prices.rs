//! What a model's tokens cost: the built-in table (`prices.json`, read at build time, one row
//! per Claude model on Bedrock with its source and date) and `MODEL_PRICES`, which overrides or
//! adds rows. A model with no row has no price: its cost is logged as unknown, never guessed.
//!
//! Built-in rows hold the global cross-Region profile's price (`global.*`); every other way of
//! calling the same model (geo profiles `us.`, `eu.`, …, in-Region base IDs, Mantle) costs the
//! row's `regional_premium_percent` more, as AWS prices it.

use serde::Deserialize;

use crate::auth::policy::glob;
use crate::translate::models::base_model_id;

/// The built-in table, checked by this module's tests.
const BUILTIN: &str = include_str!("prices.json");

/// USD per million tokens of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    /// Input tokens not read from or written to the cache.
    pub input: f64,
    /// Output tokens (thinking included).
    pub output: f64,
    /// Input tokens read from the prompt cache.
    pub cache_read: f64,
    /// Input tokens written to the 5-minute prompt cache.
    pub cache_write: f64,
    /// Input tokens written to the 1-hour prompt cache.
    pub cache_write_1h: f64,
}

impl Rates {
    fn scaled(self, factor: f64) -> Self {
        Self {
            input: self.input * factor,
            output: self.output * factor,
            cache_read: self.cache_read * factor,
            cache_write: self.cache_write * factor,
            cache_write_1h: self.cache_write_1h * factor,
        }
    }

    fn valid(&self) -> bool {
        [
            self.input,
            self.output,
            self.cache_read,
            self.cache_write,
            self.cache_write_1h,
        ]
        .iter()
        .all(|r| r.is_finite() && *r >= 0.0)
    }
}

/// Higher rates for every token of a request whose prompt (input + cache read + cache write)
/// is over `above_prompt_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct LongContext {
    /// The prompt size past which the long-context rates apply.
    pub above_prompt_tokens: u64,
    /// The rates then.
    #[serde(flatten)]
    pub rates: Rates,
}

/// A model's price as it applies to one Bedrock ID.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// The rates of an ordinary request.
    pub rates: Rates,
    /// The rates of a long prompt, where the model has them.
    pub long_context: Option<LongContext>,
}

#[derive(Debug, Deserialize)]
struct BuiltinRow {
    model: String,
    #[serde(flatten)]
    rates: Rates,
    regional_premium_percent: f64,
    long_context: Option<LongContext>,
    #[allow(dead_code, reason = "read by people and by the tests, not by the lookup")]
    source: String,
    #[allow(dead_code, reason = "read by people and by the tests, not by the lookup")]
    as_of: String,
    #[serde(default)]
    #[allow(dead_code, reason = "read by people")]
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Builtin {
    rows: Vec<BuiltinRow>,
}

/// One `MODEL_PRICES` entry: a glob and the exact rates it means (no premium is added: the
/// operator says what they pay).
#[derive(Debug, Clone)]
struct Override {
    pattern: String,
    price: Price,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideRates {
    input: f64,
    output: f64,
    #[serde(default)]
    cache_read: Option<f64>,
    #[serde(default)]
    cache_write: Option<f64>,
    #[serde(default)]
    cache_write_1h: Option<f64>,
}

/// The prices the proxy knows, built once at start.
#[derive(Debug)]
pub struct PriceTable {
    overrides: Vec<Override>,
    builtin: Vec<BuiltinRow>,
}

impl PriceTable {
    /// The built-in table with `MODEL_PRICES` (JSON: glob → rates, USD per million tokens) on top.
    pub fn new(model_prices: Option<&str>) -> Result<Self, String> {
        let builtin: Builtin =
            serde_json::from_str(BUILTIN).map_err(|e| format!("the built-in price table does not parse: {e}"))?;
        let overrides = match model_prices {
            None => Vec::new(),
            Some(json) => parse_overrides(json)?,
        };
        Ok(Self {
            overrides,
            builtin: builtin.rows,
        })
    }

    /// The price of a request for `asked` (the caller's model name) that went to `bedrock_id`.
    /// `MODEL_PRICES` entries are tried first (exact names, then globs, longest first) against
    /// the name, the Bedrock ID and its base model ID; then the built-in row of the base model ID.
    pub fn lookup(&self, asked: &str, bedrock_id: &str) -> Option<Price> {
        let base = base_model_id(bedrock_id);
        if let Some(o) = self
            .overrides
            .iter()
            .find(|o| [asked, bedrock_id, base].iter().any(|name| glob(&o.pattern, name)))
        {
            return Some(o.price);
        }
        let row = self.builtin.iter().find(|r| r.model == base)?;
        // The global profile is the list price; everything else pays the regional premium.
        let factor = if bedrock_id.starts_with("global.") {
            1.0
        } else {
            1.0 + row.regional_premium_percent / 100.0
        };
        Some(Price {
            rates: row.rates.scaled(factor),
            long_context: row.long_context.map(|l| LongContext {
                above_prompt_tokens: l.above_prompt_tokens,
                rates: l.rates.scaled(factor),
            }),
        })
    }
}

fn parse_overrides(json: &str) -> Result<Vec<Override>, String> {
    let shape = "MODEL_PRICES must be a JSON object of model globs to {\"input\", \"output\", \"cache_read\", \
                 \"cache_write\", \"cache_write_1h\"} in USD per million tokens, e.g. \
                 {\"*claude-sonnet-5-5*\": {\"input\": 2.2, \"output\": 11}}";
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|e| format!("{shape} ({e})"))?;
    let mut overrides = map
        .into_iter()
        .map(|(pattern, value)| {
            let r: OverrideRates = serde_json::from_value(value).map_err(|e| format!("{shape}; {pattern:?}: {e}"))?;
            // Unstated cache rates follow Anthropic's multiples of the input rate.
            let rates = Rates {
                input: r.input,
                output: r.output,
                cache_read: r.cache_read.unwrap_or(r.input * 0.1),
                cache_write: r.cache_write.unwrap_or(r.input * 1.25),
                cache_write_1h: r.cache_write_1h.unwrap_or(r.input * 2.0),
            };
            if !rates.valid() {
                return Err(format!("{shape}; {pattern:?}: rates must be non-negative numbers"));
            }
            Ok(Override {
                pattern,
                price: Price {
                    rates,
                    long_context: None,
                },
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    // JSON objects have no order, so the more specific entry wins: an exact name before any
    // glob, a longer glob before a shorter one.
    overrides.sort_by_key(|o| (o.pattern.contains('*'), std::cmp::Reverse(o.pattern.len())));
    Ok(overrides)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::catalogue::MODELS;

    #[test]
    fn every_builtin_row_cites_its_source_and_date_and_is_a_catalogue_model() {
        let table = PriceTable::new(None).unwrap();
        for row in &table.builtin {
            assert!(row.source.starts_with("https://"), "{}", row.model);
            assert!(row.as_of.len() == 10 && row.as_of.starts_with("20"), "{}", row.model);
            assert!(row.rates.valid() && row.rates.output > 0.0, "{}", row.model);
            assert!(
                MODELS.iter().any(|m| m.bedrock_id == row.model),
                "{} is not in the catalogue",
                row.model
            );
        }
    }

    #[test]
    fn every_catalogue_model_is_priced_or_listed_as_unpriced() {
        let doc: serde_json::Value = serde_json::from_str(BUILTIN).unwrap();
        let unpriced: Vec<&str> = doc["unpriced"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let table = PriceTable::new(None).unwrap();
        for model in MODELS {
            let priced = table.lookup(model.id, model.bedrock_id).is_some();
            assert!(priced != unpriced.contains(&model.bedrock_id), "{}", model.bedrock_id);
        }
    }

    #[test]
    fn regional_profiles_pay_the_premium_and_global_does_not() {
        let table = PriceTable::new(None).unwrap();
        let global = table
            .lookup("claude-haiku-4-5", "global.anthropic.claude-haiku-4-5-20251001-v1:0")
            .unwrap();
        let us = table
            .lookup("claude-haiku-4-5", "us.anthropic.claude-haiku-4-5-20251001-v1:0")
            .unwrap();
        assert!((global.rates.input - 1.0).abs() < 1e-12);
        // AWS's own us. figures for Haiku 4.5: $1.10 input, $0.11 cache read, $2.20 1-hour write.
        assert!((us.rates.input - 1.10).abs() < 1e-9);
        assert!((us.rates.cache_read - 0.11).abs() < 1e-9);
        assert!((us.rates.cache_write_1h - 2.20).abs() < 1e-9);
        // One price everywhere for models before the premium.
        let opus4 = table.lookup("x", "us.anthropic.claude-opus-4-20250514-v1:0").unwrap();
        assert!((opus4.rates.output - 75.0).abs() < 1e-12);
        assert!(table
            .lookup("claude-3-5-sonnet", "us.anthropic.claude-3-5-sonnet-20241022-v2:0")
            .is_none());
        assert!(table.lookup("claude-new", "us.anthropic.claude-new-9").is_none());
    }

    #[test]
    fn model_prices_override_in_order_and_add_models() {
        let table = PriceTable::new(Some(
            r#"{"us.anthropic.claude-haiku-5-5": {"input": 1, "output": 2, "cache_read": 0, "cache_write": 0, "cache_write_1h": 0},
                "*haiku*": {"input": 3, "output": 4}, "my-app-profile": {"input": 5, "output": 6}}"#,
        ))
        .unwrap();
        assert_eq!(
            table
                .lookup("claude-haiku-5-5", "us.anthropic.claude-haiku-5-5")
                .unwrap()
                .rates
                .input,
            1.0
        );
        let broad = table
            .lookup("claude-haiku-4-5", "eu.anthropic.claude-haiku-4-5-20251001-v1:0")
            .unwrap();
        assert_eq!((broad.rates.input, broad.rates.cache_write_1h), (3.0, 6.0));
        let arn = "arn:aws:bedrock:us-east-1:123:application-inference-profile/abc";
        assert_eq!(table.lookup("my-app-profile", arn).unwrap().rates.output, 6.0);
        for bad in [
            r#"[1]"#,
            r#"{"x": {"input": -1, "output": 1}}"#,
            r#"{"x": {"input": 1}}"#,
            r#"{"x": {"input": 1, "output": 1, "cahce_read": 1}}"#,
        ] {
            let err = PriceTable::new(Some(bad)).unwrap_err();
            assert!(err.contains("MODEL_PRICES"), "{err}");
        }
    }
}
