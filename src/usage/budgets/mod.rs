//! Budgets in tokens and dollars, on when `USAGE_TABLE` names a DynamoDB table (on demand,
//! made by the Terraform's `enable_budgets`). An account is a caller, a group (JWT callers'
//! shared pools) or the whole deployment (`DEPLOYMENT_DAILY_USD` / `DEPLOYMENT_MONTHLY_USD`);
//! each may have `daily_tokens`, `monthly_tokens`, `daily_usd`, `monthly_usd` (UTC days and
//! calendar months).
//!
//! On admission every account of the request is read (cached for `BUDGET_READ_SECONDS`, one
//! read at a time per account, the last good read kept if the table fails; with no read at all
//! the request is refused). A spent budget is a 429. A budget is *tight* when less than
//! `BUDGET_RESERVE_PERCENT` of it, or less than the request's worst case, is left: the request
//! then reserves its worst case (its input estimate and `max_tokens`, priced) with one conditional
//! `ADD` on the account's month item (`store`) that fails once the day or the month is at its limit, so concurrent requests cannot all slip
//! under it. When the answer is done, [`Budgets::settle`] adds what it really used (less the
//! reservation). How far a caller can overrun: docs/budgets.md.

mod period;
pub mod standing;
mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;

pub use period::Period;
use standing::{Gauge, Kind, Window};
use store::AddError;

use crate::auth::policy::CallerPolicy;
use crate::error::{BudgetRefusal, ProxyError};
use crate::sync::IgnorePoison;
use crate::usage::cost::Usd;

/// How long a read of an account's usage is trusted.
pub const DEFAULT_READ_EVERY: Duration = Duration::from_secs(10);

/// Below this share of a budget left (percent), requests reserve their worst case.
pub const DEFAULT_RESERVE_PERCENT: u64 = 20;

/// Tokens and dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spend {
    /// Tokens (input + output, cache included).
    pub tokens: u64,
    /// Dollars.
    pub usd: Usd,
}

/// An account's limits; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Tokens per UTC day.
    pub daily_tokens: Option<u64>,
    /// Tokens per UTC calendar month.
    pub monthly_tokens: Option<u64>,
    /// Dollars per UTC day.
    pub daily_usd: Option<Usd>,
    /// Dollars per UTC calendar month.
    pub monthly_usd: Option<Usd>,
}

impl Limits {
    /// A policy's budget fields.
    pub fn of(policy: &CallerPolicy) -> Self {
        Self {
            daily_tokens: policy.daily_tokens,
            monthly_tokens: policy.monthly_tokens,
            daily_usd: policy.daily_usd,
            monthly_usd: policy.monthly_usd,
        }
    }

    /// True when any limit is set.
    pub fn any(&self) -> bool {
        *self != Self::default()
    }

    /// True when a dollar limit is set (the request's model must then have a price).
    pub fn in_dollars(&self) -> bool {
        self.daily_usd.is_some() || self.monthly_usd.is_some()
    }

    fn limit(&self, window: Window, kind: Kind) -> Option<u64> {
        match (window, kind) {
            (Window::Day, Kind::Tokens) => self.daily_tokens,
            (Window::Month, Kind::Tokens) => self.monthly_tokens,
            (Window::Day, Kind::Usd) => self.daily_usd.map(|u| u.0),
            (Window::Month, Kind::Usd) => self.monthly_usd.map(|u| u.0),
        }
    }
}

/// Whose budget an account is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The caller's own.
    Caller,
    /// A group's, shared by its members.
    Group(String),
    /// The whole deployment's.
    Deployment,
}

impl Scope {
    fn words(&self) -> String {
        match self {
            Self::Caller => "this token".into(),
            Self::Group(name) => format!("the group {name:?}"),
            Self::Deployment => "this deployment".into(),
        }
    }
}

/// One budget holder of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The table's partition key.
    pub key: String,
    /// Whose it is.
    pub scope: Scope,
    /// Its limits.
    pub limits: Limits,
}

/// The accounts a request counts against: the caller's own, each group pool it is in, and the
/// deployment's; only those with a limit.
pub fn accounts(
    caller: &str,
    policy: &CallerPolicy,
    groups: &[(String, Arc<CallerPolicy>)],
    deployment: &Limits,
) -> Vec<Account> {
    let own = std::iter::once(Account {
        key: format!("caller#{caller}"),
        scope: Scope::Caller,
        limits: Limits::of(policy),
    });
    let pools = groups.iter().map(|(name, pool)| Account {
        key: format!("group#{name}"),
        scope: Scope::Group(name.clone()),
        limits: Limits::of(pool),
    });
    let whole = std::iter::once(Account {
        key: "deployment".into(),
        scope: Scope::Deployment,
        limits: *deployment,
    });
    own.chain(pools).chain(whole).filter(|a| a.limits.any()).collect()
}

/// A request let in: what it counts against, what it reserved, and where it stood.
#[derive(Debug)]
pub struct Admission {
    accounts: Vec<Account>,
    reserved: Vec<bool>,
    worst: Spend,
    period: Period,
    gauges: Vec<Gauge>,
}

impl Admission {
    /// The `anthropic-ratelimit-unified-*` headers for the answer (see [`standing`]): where
    /// the caller's own budgets and its groups' pools stand. The deployment's cap is left out:
    /// Claude Code would show everyone the whole organisation's spend as their own (it still
    /// refuses, with a 429 naming it, once spent).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let own: Vec<Gauge> = self
            .gauges
            .iter()
            .filter(|g| self.accounts[g.account].scope != Scope::Deployment)
            .copied()
            .collect();
        standing::allowed_headers(&own, &self.period)
    }

    /// True when the request reserved its worst case on some account.
    pub fn reserved(&self) -> bool {
        self.reserved.iter().any(|r| *r)
    }
}

#[derive(Debug, Clone)]
struct Snapshot {
    fetched: Instant,
    day: String,
    day_used: Spend,
    month_used: Spend,
}

type Slot = Arc<tokio::sync::Mutex<Option<Snapshot>>>;

/// The usage table and what has been read from it.
#[derive(Debug)]
pub struct Budgets {
    client: aws_sdk_dynamodb::Client,
    table: String,
    read_every: Duration,
    reserve_percent: u64,
    /// One slot per account: its lock makes reads single-flight.
    cache: Mutex<HashMap<String, Slot>>,
    write_failures: AtomicU64,
    reads: AtomicU64,
}

impl Budgets {
    /// Budgets kept in `table`, reads trusted for `read_every`, reserving below the default
    /// share left.
    pub fn new(client: aws_sdk_dynamodb::Client, table: String, read_every: Duration) -> Self {
        Self::with_reserve_percent(client, table, read_every, DEFAULT_RESERVE_PERCENT)
    }

    /// Like [`Budgets::new`], reserving once less than `reserve_percent` of a budget is left
    /// (100: always).
    pub fn with_reserve_percent(
        client: aws_sdk_dynamodb::Client,
        table: String,
        read_every: Duration,
        reserve_percent: u64,
    ) -> Self {
        Self {
            client,
            table,
            read_every,
            reserve_percent,
            cache: Mutex::new(HashMap::new()),
            write_failures: AtomicU64::new(0),
            reads: AtomicU64::new(0),
        }
    }

    /// Lets a request in, or refuses it with a 429 naming the spent budget and when it resets.
    /// `worst` is the most the request can use; where a budget is tight it is reserved.
    pub async fn admit(&self, accounts: Vec<Account>, worst: Spend) -> Result<Admission, ProxyError> {
        let period = Period::now();
        let reads = join_all(accounts.iter().map(|a| self.snapshot(&a.key, &period))).await;
        let mut gauges = Vec::new();
        for (i, (account, read)) in accounts.iter().zip(reads).enumerate() {
            let snapshot = read.map_err(|e| {
                tracing::warn!(account = %account.key, error = %e, "could not read the budget; refusing the request");
                ProxyError::BudgetRefused(Box::new(standing::unreadable(account)))
            })?;
            gauges.extend(gauges_of(i, &account.limits, &snapshot));
        }
        if let Some(refusal) = standing::refusal(&gauges, &accounts, &period) {
            return Err(ProxyError::BudgetRefused(Box::new(refusal)));
        }
        let mut reserved = vec![false; accounts.len()];
        for (i, account) in accounts.iter().enumerate() {
            let tight = gauges.iter().filter(|g| g.account == i).any(|g| {
                let worst = match g.kind {
                    Kind::Tokens => worst.tokens,
                    Kind::Usd => worst.usd.0,
                };
                g.tight(worst, self.reserve_percent)
            });
            if !tight {
                continue;
            }
            if let Err(refusal) = self.reserve(account, &period, worst).await {
                self.add_all(&accounts, &reserved, &period, negative(worst)).await;
                return Err(ProxyError::BudgetRefused(Box::new(refusal)));
            }
            reserved[i] = true;
        }
        Ok(Admission {
            accounts,
            reserved,
            worst,
            period,
            gauges,
        })
    }

    /// Adds what the request used to each account, less what it had reserved. Never fails the
    /// request: a failed write is logged and counted.
    pub async fn settle(&self, admission: &Admission, used: Spend) {
        let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let deltas: Vec<(i64, i64)> = admission
            .reserved
            .iter()
            .map(|reserved| {
                let (t, u) = (signed(used.tokens), signed(used.usd.0));
                if *reserved {
                    (t - signed(admission.worst.tokens), u - signed(admission.worst.usd.0))
                } else {
                    (t, u)
                }
            })
            .collect();
        let writes = admission.accounts.iter().zip(&deltas).filter(|(_, d)| **d != (0, 0));
        join_all(writes.map(|(account, delta)| self.add(account, &admission.period, *delta))).await;
    }

    /// Writes that failed since the process started.
    pub fn write_failures(&self) -> u64 {
        self.write_failures.load(Ordering::Relaxed)
    }

    /// Reads of the table since the process started (the cache's misses).
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Reserves `worst` on the account's day and month, only while both are under their
    /// limits. Reservations of one account are made one at a time on this instance (DynamoDB
    /// orders them across instances), so that each sees the ones before it.
    async fn reserve(&self, account: &Account, period: &Period, worst: Spend) -> Result<(), BudgetRefusal> {
        let slot = self.slot(&account.key);
        let mut held = slot.lock().await;
        let delta = (
            i64::try_from(worst.tokens).unwrap_or(i64::MAX),
            i64::try_from(worst.usd.0).unwrap_or(i64::MAX),
        );
        match store::add(
            &self.client,
            &self.table,
            &account.key,
            period,
            delta,
            Some(&account.limits),
        )
        .await
        {
            Ok(()) => {
                if let Some(s) = held.as_mut() {
                    apply(s, period, delta);
                }
                Ok(())
            }
            Err(AddError::AtLimit) => {
                // DynamoDB does not say which limit is full: a fresh read does.
                let read = store::read(&self.client, &self.table, &account.key, period).await;
                let refusal = read.ok().and_then(|(day_used, month_used)| {
                    let snapshot = Snapshot {
                        fetched: Instant::now(),
                        day: period.day.clone(),
                        day_used,
                        month_used,
                    };
                    let gauges = gauges_of(0, &account.limits, &snapshot);
                    *held = Some(snapshot);
                    standing::refusal(&gauges, std::slice::from_ref(account), period)
                });
                Err(refusal.unwrap_or_else(|| {
                    let kind = if account.limits.in_dollars() {
                        Kind::Usd
                    } else {
                        Kind::Tokens
                    };
                    standing::spent(account, Window::Day, kind, None, period)
                }))
            }
            Err(AddError::Failed(detail)) => {
                tracing::warn!(account = %account.key, error = %detail, "could not reserve on the budget; refusing the request");
                Err(standing::unreadable(account))
            }
        }
    }

    async fn add_all(&self, accounts: &[Account], which: &[bool], period: &Period, delta: (i64, i64)) {
        let chosen = accounts.iter().zip(which).filter(|(_, w)| **w);
        join_all(chosen.map(|(account, _)| self.add(account, period, delta))).await;
    }

    /// Adds `delta` (tokens, micro-dollars) to the account's day and month, unconditionally.
    async fn add(&self, account: &Account, period: &Period, delta: (i64, i64)) {
        match store::add(&self.client, &self.table, &account.key, period, delta, None).await {
            // Our own spend counts at once, without waiting for the next read.
            Ok(()) => self.adjust(&account.key, period, delta).await,
            Err(AddError::Failed(detail)) => self.failed_write(&account.key, &detail),
            Err(AddError::AtLimit) => self.failed_write(&account.key, "refused by a condition"),
        }
    }

    fn failed_write(&self, account: &str, detail: &str) {
        let failures = self.write_failures.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(account, error = %detail, budget_write_failures = failures, "could not add usage to the budget table");
    }

    fn slot(&self, key: &str) -> Slot {
        let mut cache = self.cache.lock().ignore_poison();
        if cache.len() >= 100_000 && !cache.contains_key(key) {
            // Bounded memory with many JWT callers: start over (reads refill what is used).
            cache.clear();
        }
        cache.entry(key.to_string()).or_default().clone()
    }

    /// The account's usage this day and month: the cached read while fresh, else one read
    /// (others wait for it); if that read fails, the last good one of the same day.
    async fn snapshot(&self, key: &str, period: &Period) -> Result<Snapshot, String> {
        let slot = self.slot(key);
        let mut held = slot.lock().await;
        if let Some(s) = held
            .as_ref()
            .filter(|s| s.day == period.day && s.fetched.elapsed() < self.read_every)
        {
            return Ok(s.clone());
        }
        self.reads.fetch_add(1, Ordering::Relaxed);
        match store::read(&self.client, &self.table, key, period).await {
            Ok((day_used, month_used)) => {
                let fresh = Snapshot {
                    fetched: Instant::now(),
                    day: period.day.clone(),
                    day_used,
                    month_used,
                };
                *held = Some(fresh.clone());
                Ok(fresh)
            }
            Err(e) => match held.as_mut().filter(|s| s.day == period.day) {
                Some(stale) => {
                    tracing::warn!(account = key, error = %e, "could not read the budget; using the last read");
                    // Try the table again in a second, not on every request.
                    let retry_in = self.read_every.saturating_sub(Duration::from_secs(1));
                    stale.fetched = Instant::now().checked_sub(retry_in).unwrap_or_else(Instant::now);
                    Ok(stale.clone())
                }
                None => Err(e),
            },
        }
    }

    async fn adjust(&self, key: &str, period: &Period, delta: (i64, i64)) {
        let slot = self.slot(key);
        let mut held = slot.lock().await;
        if let Some(s) = held.as_mut() {
            apply(s, period, delta);
        }
    }
}

/// Our own spend (or refund) on a snapshot of the same day.
fn apply(s: &mut Snapshot, period: &Period, (t, u): (i64, i64)) {
    if s.day != period.day {
        return;
    }
    for spend in [&mut s.day_used, &mut s.month_used] {
        spend.tokens = spend.tokens.saturating_add_signed(t);
        spend.usd = Usd(spend.usd.0.saturating_add_signed(u));
    }
}

fn negative(spend: Spend) -> (i64, i64) {
    (
        -i64::try_from(spend.tokens).unwrap_or(i64::MAX),
        -i64::try_from(spend.usd.0).unwrap_or(i64::MAX),
    )
}

fn gauges_of(account: usize, limits: &Limits, s: &Snapshot) -> Vec<Gauge> {
    let mut gauges = Vec::new();
    for (window, used) in [(Window::Day, s.day_used), (Window::Month, s.month_used)] {
        for (kind, value) in [(Kind::Tokens, used.tokens), (Kind::Usd, used.usd.0)] {
            if let Some(limit) = limits.limit(window, kind) {
                gauges.push(Gauge {
                    account,
                    window,
                    kind,
                    used: value,
                    limit,
                });
            }
        }
    }
    gauges
}
