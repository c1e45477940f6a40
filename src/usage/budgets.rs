//! Token budgets per caller, on when `USAGE_TABLE` names a DynamoDB table (on-demand, made by
//! the Terraform's `enable_budgets`). A caller's `daily_tokens` / `monthly_tokens` (its policy,
//! in the token secret) are checked before each request against a cached read, and usage is
//! added after each answer from the counts Bedrock reported.
//!
//! A JWT caller's groups may also share a budget (their `pool`): its spend is then added to
//! each such group's counter too, and a request is refused once any of them is used up.
//!
//! Items: `pk = "caller#<name>"` (or `"group#<name>"` for a pool), `sk = "day#YYYY-MM-DD"` or `"month#YYYY-MM"` (UTC), a number
//! `tokens`, and `expires_at` (epoch seconds) for DynamoDB's TTL. Each write is one atomic
//! `ADD`, so concurrent Lambda instances never lose each other's counts. Reads are cached per
//! caller for `read_every`, so a busy caller costs two reads per interval, not per request; the
//! check may therefore let a caller run over by what it spends within one interval.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::auth::policy::CallerPolicy;
use crate::auth::Caller;
use crate::error::ProxyError;
use crate::sync::IgnorePoison;

/// How long a read of a caller's usage is trusted.
pub const DEFAULT_READ_EVERY: Duration = Duration::from_secs(10);

/// Whose spend a counter holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    /// One caller's own spend.
    Caller(String),
    /// What all members of a group spend together (its `pool`).
    Group(String),
}

impl Account {
    /// The item's partition key.
    fn key(&self) -> String {
        match self {
            Self::Caller(name) => format!("caller#{name}"),
            Self::Group(name) => format!("group#{name}"),
        }
    }

    /// Whose budget a refusal names.
    fn whose(&self) -> String {
        match self {
            Self::Caller(_) => "this token".into(),
            Self::Group(name) => format!("the group {name:?}"),
        }
    }
}

/// The usage table and what has been read from it.
#[derive(Debug)]
pub struct Budgets {
    client: aws_sdk_dynamodb::Client,
    table: String,
    read_every: Duration,
    cache: Mutex<HashMap<String, Cached>>,
    write_failures: AtomicU64,
}

#[derive(Debug, Clone)]
struct Cached {
    fetched: Instant,
    period: Period,
    day_tokens: u64,
    month_tokens: u64,
}

/// The UTC day and month a moment falls in, as the table's sort keys name them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Period {
    day: String,
    month: String,
    /// Seconds until the day ends, and until the month ends.
    day_left: u64,
    month_left: u64,
}

impl Budgets {
    /// Budgets kept in `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: String, read_every: Duration) -> Self {
        Self {
            client,
            table,
            read_every,
            cache: Mutex::new(HashMap::new()),
            write_failures: AtomicU64::new(0),
        }
    }

    /// Checks the caller's own budget and its groups' pools; returns the accounts the request
    /// is to be charged to (none when nothing is budgeted).
    pub async fn admit(&self, caller: &Caller) -> Result<Vec<Account>, ProxyError> {
        let mut accounts = Vec::new();
        if caller.policy.has_budget() {
            let account = Account::Caller(caller.name.clone());
            self.check_account(&account, &caller.policy).await?;
            accounts.push(account);
        }
        for (group, pool) in &caller.pools {
            let account = Account::Group(group.clone());
            self.check_account(&account, pool).await?;
            accounts.push(account);
        }
        Ok(accounts)
    }

    /// [`Budgets::check_account`] for a caller's own budget.
    pub async fn check(&self, caller: &str, policy: &CallerPolicy) -> Result<(), ProxyError> {
        self.check_account(&Account::Caller(caller.to_string()), policy).await
    }

    /// Refuses with 429 `rate_limit_error` when the account's daily or monthly budget is used
    /// up, saying which budget and when it resets. A failed read lets the request through: the
    /// budget is a guard against runaway spend, not a reason to stop serving.
    pub async fn check_account(&self, account: &Account, policy: &CallerPolicy) -> Result<(), ProxyError> {
        if !policy.has_budget() {
            return Ok(());
        }
        let period = Period::now();
        let key = account.key();
        let usage = match self.cached(&key, &period) {
            Some(usage) => usage,
            None => match self.read(&key, &period).await {
                Ok(usage) => usage,
                Err(e) => {
                    tracing::warn!(account = %key, error = %e, "could not read the usage; letting the request through");
                    return Ok(());
                }
            },
        };
        let over = |limit: Option<u64>, used: u64| limit.filter(|l| used >= *l);
        if let Some(limit) = over(policy.daily_tokens, usage.day_tokens) {
            return Err(ProxyError::RateLimited(format!(
                "the daily token budget of {limit} for {} is used up ({} used); it resets at 00:00 UTC, in {}",
                account.whose(),
                usage.day_tokens,
                in_words(period.day_left)
            )));
        }
        if let Some(limit) = over(policy.monthly_tokens, usage.month_tokens) {
            return Err(ProxyError::RateLimited(format!(
                "the monthly token budget of {limit} for {} is used up ({} used); it resets on the 1st at 00:00 UTC, in {}",
                account.whose(),
                usage.month_tokens,
                in_words(period.month_left)
            )));
        }
        Ok(())
    }

    /// [`Budgets::record_account`] for a caller's own budget.
    pub async fn record(&self, caller: &str, tokens: u64) {
        self.record_account(&Account::Caller(caller.to_string()), tokens).await;
    }

    /// Adds `tokens` to the account's day and month. Never fails the request: a failed write
    /// is logged and counted.
    pub async fn record_account(&self, account: &Account, tokens: u64) {
        if tokens == 0 {
            return;
        }
        let key = account.key();
        let period = Period::now();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        // Kept a little past their period, so a month's total can still be looked at.
        let writes = [
            (format!("day#{}", period.day), now + period.day_left + 8 * 86_400),
            (format!("month#{}", period.month), now + period.month_left + 40 * 86_400),
        ];
        for (sort_key, expires_at) in writes {
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(key.clone()))
                .key("sk", AttributeValue::S(sort_key))
                .update_expression("ADD tokens :n SET expires_at = if_not_exists(expires_at, :exp)")
                .expression_attribute_values(":n", AttributeValue::N(tokens.to_string()))
                .expression_attribute_values(":exp", AttributeValue::N(expires_at.to_string()))
                .send()
                .await;
            if let Err(e) = result {
                let failures = self.write_failures.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    account = %key,
                    error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e),
                    budget_write_failures = failures,
                    "could not add usage to the budget table"
                );
                return;
            }
        }
        // Our own spend counts at once, without waiting for the next read.
        let mut cache = self.cache.lock().ignore_poison();
        if let Some(cached) = cache.get_mut(&key).filter(|c| c.period == period) {
            cached.day_tokens += tokens;
            cached.month_tokens += tokens;
        }
    }

    /// Writes that failed since the process started.
    pub fn write_failures(&self) -> u64 {
        self.write_failures.load(Ordering::Relaxed)
    }

    fn cached(&self, key: &str, period: &Period) -> Option<Cached> {
        let cache = self.cache.lock().ignore_poison();
        cache
            .get(key)
            .filter(|c| c.fetched.elapsed() < self.read_every && c.period == *period)
            .cloned()
    }

    async fn read(&self, key: &str, period: &Period) -> Result<Cached, String> {
        let (day_key, month_key) = (format!("day#{}", period.day), format!("month#{}", period.month));
        let (day, month) = tokio::join!(self.tokens(key, &day_key), self.tokens(key, &month_key));
        let cached = Cached {
            fetched: Instant::now(),
            period: period.clone(),
            day_tokens: day?,
            month_tokens: month?,
        };
        let mut cache = self.cache.lock().ignore_poison();
        cache.insert(key.to_string(), cached.clone());
        Ok(cached)
    }

    async fn tokens(&self, key: &str, sort_key: &str) -> Result<u64, String> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_string()))
            .key("sk", AttributeValue::S(sort_key.to_string()))
            .projection_expression("tokens")
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string())?;
        Ok(item
            .item()
            .and_then(|i| i.get("tokens"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }
}

impl Period {
    fn now() -> Self {
        Self::at(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
        )
    }

    fn at(epoch_seconds: u64) -> Self {
        let days = epoch_seconds / 86_400;
        let (year, month, day) = civil_from_days(days as i64);
        let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
        let month_end = days_from_civil(next_year, next_month, 1) as u64 * 86_400;
        Self {
            day: format!("{year:04}-{month:02}-{day:02}"),
            month: format!("{year:04}-{month:02}"),
            day_left: (days + 1) * 86_400 - epoch_seconds,
            month_left: month_end - epoch_seconds,
        }
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`, http://howardhinnant.github.io/date_algorithms.html).
#[expect(
    clippy::cast_possible_truncation,
    reason = "day is 1..=31 and month 1..=12 by construction"
)]
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The inverse: (year, month, day) → days since 1970-01-01.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn in_words(seconds: u64) -> String {
    let (days, hours, minutes) = (seconds / 86_400, seconds % 86_400 / 3_600, seconds % 3_600 / 60);
    match days {
        0 => format!("{hours} h {minutes} min"),
        _ => format!("{days} d {hours} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_utc_days_and_months_with_the_time_left() {
        // 2026-11-26T16:00:00Z
        let p = Period::at(1_795_651_200 + 16 * 3_600);
        assert_eq!((p.day.as_str(), p.month.as_str()), ("2026-11-26", "2026-11"));
        assert_eq!(p.day_left, 8 * 3_600);
        assert_eq!(p.month_left, 4 * 86_400 + 8 * 3_600);
        // The last second of a leap-year February.
        let feb = Period::at(days_from_civil(2028, 3, 1) as u64 * 86_400 - 1);
        assert_eq!((feb.day.as_str(), feb.day_left, feb.month_left), ("2028-02-29", 1, 1));
        let december = Period::at(days_from_civil(2026, 12, 31) as u64 * 86_400);
        assert_eq!(december.month, "2026-12");
        assert_eq!(december.month_left, 86_400);
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-1, 0, 59, 365, 10_957, 20_000, 20_783, 50_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn time_left_reads_as_words() {
        assert_eq!(in_words(8 * 3_600 + 5 * 60), "8 h 5 min");
        assert_eq!(in_words(4 * 86_400 + 8 * 3_600), "4 d 8 h");
    }
}
