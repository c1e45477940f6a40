//! A request's cost in dollars: its token counts at its model's price (`prices`), and a
//! request's worst case (its input and `max_tokens`), which a tight budget reserves.
//!
//! Budgets count whole micro-dollars ([`Usd`]), so that DynamoDB's atomic `ADD` adds integers
//! and sums never drift; a request's cost is rounded up to the next micro-dollar.

use serde::{Deserialize, Deserializer};

use crate::usage::prices::{Price, Rates};
use crate::usage::request_log::Usage;

/// An amount of US dollars in whole micro-dollars (10⁻⁶ USD).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(pub u64);

impl Usd {
    /// The amount, rounded up to the next micro-dollar (a cost is never rounded away).
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "finite, non-negative and far below u64::MAX micro-dollars by the check above"
    )]
    pub fn from_dollars_ceil(dollars: f64) -> Self {
        if !dollars.is_finite() || dollars <= 0.0 {
            return Self(0);
        }
        Self((dollars * 1e6).ceil().min(1e18) as u64)
    }

    /// The amount in dollars.
    pub fn dollars(self) -> f64 {
        self.0 as f64 / 1e6
    }
}

impl std::fmt::Display for Usd {
    /// `$12.34`; below $10 with up to four decimals where cents would hide the amount
    /// (`$0.1005`, `$0.0042`, but `$0.10`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.dollars();
        if d >= 10.0 {
            return write!(f, "${d:.2}");
        }
        let four = format!("{d:.4}");
        let trimmed = four.trim_end_matches('0');
        let decimals = trimmed.split_once('.').map_or(0, |(_, frac)| frac.len());
        if decimals <= 2 {
            write!(f, "${d:.2}")
        } else {
            write!(f, "${trimmed}")
        }
    }
}

impl<'de> Deserialize<'de> for Usd {
    /// A policy's `daily_usd` / `monthly_usd`: a JSON number of dollars, e.g. `25` or `2.5`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let dollars = f64::deserialize(deserializer)?;
        if !dollars.is_finite() || dollars < 0.0 {
            return Err(serde::de::Error::custom(
                "a dollar budget must be a non-negative number",
            ));
        }
        Ok(Self::from_dollars_ceil(dollars))
    }
}

/// What a request's tokens cost at `price`, in dollars. Cache writes whose 5-minute / 1-hour
/// split the answer did not give are priced at the 1-hour rate when `asked_1h_cache` (the
/// request marked a block `"ttl": "1h"`), else at the 5-minute rate.
pub fn cost_usd(price: &Price, usage: &Usage, asked_1h_cache: bool) -> f64 {
    let prompt = usage
        .input
        .saturating_add(usage.cache_read)
        .saturating_add(usage.cache_write);
    let rates = rates_for(price, prompt);
    let (write_5m, write_1h) = match usage.cache_write_1h {
        Some(one_hour) => (
            usage.cache_write.saturating_sub(one_hour),
            one_hour.min(usage.cache_write),
        ),
        None if asked_1h_cache => (0, usage.cache_write),
        None => (usage.cache_write, 0),
    };
    let per_million = usage.input as f64 * rates.input
        + usage.output as f64 * rates.output
        + usage.cache_read as f64 * rates.cache_read
        + write_5m as f64 * rates.cache_write
        + write_1h as f64 * rates.cache_write_1h;
    per_million / 1e6
}

/// The most a request can cost: `input_tokens` (an estimate) at the dearest input rate (a
/// 1-hour cache write costs twice the input), and every one of its `max_tokens` generated.
pub fn worst_case_usd(price: &Price, input_tokens: u64, max_tokens: u64) -> f64 {
    let rates = rates_for(price, input_tokens);
    let input_rate = rates.input.max(rates.cache_write).max(rates.cache_write_1h);
    (input_tokens as f64 * input_rate + max_tokens as f64 * rates.output) / 1e6
}

fn rates_for(price: &Price, prompt_tokens: u64) -> Rates {
    match price.long_context {
        Some(long) if prompt_tokens > long.above_prompt_tokens => long.rates,
        _ => price.rates,
    }
}

/// A conservative estimate of a request body's input tokens from its size: about four bytes
/// a token for JSON text (images and documents are overestimated, which only makes a tight
/// budget's reservation larger).
pub fn estimate_input_tokens(body_bytes: usize) -> u64 {
    u64::try_from(body_bytes.div_ceil(4)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::prices::{LongContext, PriceTable};

    fn usage(input: u64, output: u64, cache_read: u64, cache_write: u64, one_hour: Option<u64>) -> Usage {
        Usage {
            input,
            output,
            cache_read,
            cache_write,
            cache_write_1h: one_hour,
        }
    }

    #[test]
    fn cost_is_each_kind_of_token_at_its_rate() {
        let table = PriceTable::new(None).unwrap();
        let price = table
            .lookup("claude-opus-5-5", "global.anthropic.claude-opus-5-5")
            .unwrap();
        // $4 in, $20 out, $0.20 read, $5 / $8 write per million.
        let cost = cost_usd(&price, &usage(1_000, 2_000, 10_000, 3_000, Some(1_000)), false);
        let expected = (1_000.0 * 4.0 + 2_000.0 * 20.0 + 10_000.0 * 0.20 + 2_000.0 * 5.0 + 1_000.0 * 8.0) / 1e6;
        assert!((cost - expected).abs() < 1e-12, "{cost} != {expected}");
        // Without the split, the request's own cache_control decides.
        let unsplit = usage(0, 0, 0, 1_000_000, None);
        assert!((cost_usd(&price, &unsplit, false) - 5.0).abs() < 1e-9);
        assert!((cost_usd(&price, &unsplit, true) - 8.0).abs() < 1e-9);
    }

    #[test]
    fn a_long_prompt_is_billed_at_the_long_context_rates() {
        let price = Price {
            rates: Rates {
                input: 1.0,
                output: 2.0,
                cache_read: 0.1,
                cache_write: 1.25,
                cache_write_1h: 2.0,
            },
            long_context: Some(LongContext {
                above_prompt_tokens: 100,
                rates: Rates {
                    input: 10.0,
                    output: 20.0,
                    cache_read: 1.0,
                    cache_write: 12.5,
                    cache_write_1h: 20.0,
                },
            }),
        };
        assert!((cost_usd(&price, &usage(100, 1_000_000, 0, 0, None), false) - 2.000_1).abs() < 1e-9);
        // Cache reads count towards the prompt's size.
        assert!((cost_usd(&price, &usage(100, 1_000_000, 1, 0, None), false) - 20.001_001).abs() < 1e-9);
        // Input at the 1-hour cache write's rate, the dearest way to send it.
        assert!((worst_case_usd(&price, 1_000, 1_000_000) - 20.02).abs() < 1e-9);
    }

    #[test]
    fn dollars_round_up_to_whole_micro_dollars_and_read_from_json() {
        assert_eq!(Usd::from_dollars_ceil(0.000_000_1), Usd(1));
        assert_eq!(Usd::from_dollars_ceil(2.5), Usd(2_500_000));
        assert_eq!(Usd::from_dollars_ceil(f64::NAN), Usd(0));
        assert_eq!(serde_json::from_str::<Usd>("25").unwrap(), Usd(25_000_000));
        assert!(serde_json::from_str::<Usd>("-1").is_err());
        assert_eq!(Usd(12_340_000).to_string(), "$12.34");
        assert_eq!(Usd(4_200).to_string(), "$0.0042");
        assert_eq!(Usd(100_500).to_string(), "$0.1005");
        assert_eq!(Usd(100_000).to_string(), "$0.10");
        assert_eq!(Usd(5_020_000).to_string(), "$5.02");
    }
}
