//! Where a caller stands against its budgets, said the way Claude Code reads it: the
//! `anthropic-ratelimit-unified-*` headers Anthropic's own gateway sends for spend caps (the
//! protocol page and header code inside Claude Code 2.1.332), and the 429 of a spent budget.
//!
//! - Every answer to a caller with a budget says `status` (`allowed`, `allowed_warning` past
//!   75 % or 95 %, `rejected`), `reset` / `overage-reset` (Unix seconds), `overage-utilization`
//!   (two decimals, kept below 1 while allowed), `overage-surpassed-threshold` (0.75 / 0.95,
//!   the header that makes Claude Code show "You've used NN% …"), and, while allowed,
//!   `representative-claim: overage` and `overage-status`.
//! - A spent budget: 429 with `retry-after` (seconds to the reset), `x-should-retry: false`,
//!   `overage-period` (`daily` / `monthly`), `overage-disabled-reason: org_spend_cap_reached`,
//!   `overage-scope: group_pool` for a group's budget, and no `representative-claim` /
//!   `overage-status`, so that Claude Code prints our message as it is.
//! - Several budgets: the spent one that resets last, else the fullest (as Claude Code's
//!   gateway picks).

use super::period::{in_words, Period};
use super::{Account, Scope};
use crate::error::BudgetRefusal;
use crate::usage::cost::Usd;

/// The thresholds Claude Code warns at, highest first.
const THRESHOLDS: [f64; 2] = [0.95, 0.75];

/// The day or the month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The UTC day.
    Day,
    /// The UTC calendar month.
    Month,
}

impl Window {
    fn seconds_left(self, period: &Period) -> u64 {
        match self {
            Self::Day => period.day_left,
            Self::Month => period.month_left,
        }
    }
}

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Tokens (input + output, cache included).
    Tokens,
    /// Micro-dollars.
    Usd,
}

/// One limit of one account, and what is used of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gauge {
    /// Index into the admission's accounts.
    pub account: usize,
    /// Day or month.
    pub window: Window,
    /// Tokens or dollars.
    pub kind: Kind,
    /// Used so far (micro-dollars for [`Kind::Usd`]).
    pub used: u64,
    /// The limit.
    pub limit: u64,
}

impl Gauge {
    /// Used up: nothing more is admitted.
    pub fn spent(&self) -> bool {
        self.used >= self.limit
    }

    fn utilization(&self) -> f64 {
        if self.limit == 0 {
            return 1.0;
        }
        self.used as f64 / self.limit as f64
    }

    /// True when less is left than `percent` of the limit, or than `worst` (this request's
    /// worst case): the request must then reserve its worst case before it runs.
    pub fn tight(&self, worst: u64, percent: u64) -> bool {
        let left = self.limit.saturating_sub(self.used);
        let margin = u64::try_from(u128::from(self.limit) * u128::from(percent.min(100)) / 100).unwrap_or(u64::MAX);
        left <= margin.max(worst)
    }
}

/// The gauge the headers describe: a spent one that resets last, else the fullest.
fn binding<'a>(gauges: &'a [Gauge], period: &Period) -> Option<&'a Gauge> {
    gauges.iter().reduce(|a, b| match (a.spent(), b.spent()) {
        (true, false) => a,
        (false, true) => b,
        (true, true) if b.window.seconds_left(period) > a.window.seconds_left(period) => b,
        (true, true) => a,
        _ if b.utilization() > a.utilization() => b,
        _ => a,
    })
}

/// The headers for an answer that was allowed (none when the caller has no budget).
pub fn allowed_headers(gauges: &[Gauge], period: &Period) -> Vec<(&'static str, String)> {
    let Some(g) = binding(gauges, period) else {
        return Vec::new();
    };
    let reset = (period.now + g.window.seconds_left(period)).to_string();
    let utilization = (g.utilization() * 100.0).round() / 100.0;
    let surpassed = THRESHOLDS.iter().find(|t| g.utilization() > **t);
    let status = if surpassed.is_some() {
        "allowed_warning"
    } else {
        "allowed"
    };
    let mut headers = vec![
        ("anthropic-ratelimit-unified-status", status.to_string()),
        ("anthropic-ratelimit-unified-reset", reset.clone()),
        ("anthropic-ratelimit-unified-overage-reset", reset),
        (
            "anthropic-ratelimit-unified-overage-utilization",
            format!("{}", utilization.min(0.99)),
        ),
        ("anthropic-ratelimit-unified-representative-claim", "overage".into()),
        ("anthropic-ratelimit-unified-overage-status", status.to_string()),
    ];
    if let Some(t) = surpassed {
        headers.push(("anthropic-ratelimit-unified-overage-surpassed-threshold", t.to_string()));
    }
    headers
}

/// The 429 for the first spent budget among `gauges`, if any is spent.
pub fn refusal(gauges: &[Gauge], accounts: &[Account], period: &Period) -> Option<BudgetRefusal> {
    let g = binding(gauges, period).filter(|g| g.spent())?;
    Some(spent(
        &accounts[g.account],
        g.window,
        g.kind,
        Some((g.used, g.limit)),
        period,
    ))
}

/// The 429 for a spent budget of `account`. `counts` (used, limit) are given when known.
pub fn spent(
    account: &Account,
    window: Window,
    kind: Kind,
    counts: Option<(u64, u64)>,
    period: &Period,
) -> BudgetRefusal {
    let limit = counts
        .map(|c| c.1)
        .or_else(|| account.limits.limit(window, kind))
        .unwrap_or(0);
    let amount = |n: u64| match kind {
        Kind::Tokens => n.to_string(),
        Kind::Usd => Usd(n).to_string(),
    };
    let (window_word, kind_word) = (
        match window {
            Window::Day => "daily",
            Window::Month => "monthly",
        },
        match kind {
            Kind::Tokens => "token",
            Kind::Usd => "dollar",
        },
    );
    let used = counts.map_or(String::new(), |(used, _)| match kind {
        Kind::Tokens => format!(" ({} used)", amount(used)),
        Kind::Usd => format!(" ({} spent)", amount(used)),
    });
    let left = window.seconds_left(period);
    let when = match window {
        Window::Day => "at 00:00 UTC",
        Window::Month => "on the 1st at 00:00 UTC",
    };
    let message = format!(
        "the {window_word} {kind_word} budget of {} for {} is used up{used}; it resets {when}, in {}",
        amount(limit),
        account.scope.words(),
        in_words(left)
    );
    let reset = (period.now + left).to_string();
    let mut headers = vec![
        ("retry-after", left.max(1).to_string()),
        ("x-should-retry", "false".to_string()),
        ("anthropic-ratelimit-unified-status", "rejected".to_string()),
        ("anthropic-ratelimit-unified-reset", reset.clone()),
        ("anthropic-ratelimit-unified-overage-reset", reset),
        ("anthropic-ratelimit-unified-overage-utilization", "1".to_string()),
        (
            "anthropic-ratelimit-unified-overage-surpassed-threshold",
            "1".to_string(),
        ),
        ("anthropic-ratelimit-unified-overage-period", window_word.to_string()),
        (
            "anthropic-ratelimit-unified-overage-disabled-reason",
            "org_spend_cap_reached".to_string(),
        ),
    ];
    if matches!(account.scope, Scope::Group(_)) {
        headers.push(("anthropic-ratelimit-unified-overage-scope", "group_pool".to_string()));
    }
    BudgetRefusal { message, headers }
}

/// The 429 when a budget could not be read: the proxy fails closed, in the shape Claude Code's
/// gateway protocol gives for it (`overage-disabled-reason: fetch_error`).
pub fn unreadable(account: &Account) -> BudgetRefusal {
    BudgetRefusal {
        message: format!(
            "the budget of {} could not be read (the proxy's usage table did not answer), so the request was \
             refused rather than let spend go unchecked; try again in a minute",
            account.scope.words()
        ),
        headers: vec![
            ("x-should-retry", "false".to_string()),
            (
                "anthropic-ratelimit-unified-overage-disabled-reason",
                "fetch_error".to_string(),
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::budgets::Limits;

    fn period() -> Period {
        Period::at(1_795_651_200 + 16 * 3_600)
    }

    fn gauge(window: Window, used: u64, limit: u64) -> Gauge {
        Gauge {
            account: 0,
            window,
            kind: Kind::Usd,
            used,
            limit,
        }
    }

    fn header<'a>(headers: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn past_75_and_95_percent_the_answer_says_so_as_claude_code_reads_it() {
        let p = period();
        let quiet = allowed_headers(&[gauge(Window::Day, 50, 100)], &p);
        assert_eq!(header(&quiet, "anthropic-ratelimit-unified-status"), Some("allowed"));
        assert_eq!(
            header(&quiet, "anthropic-ratelimit-unified-overage-surpassed-threshold"),
            None
        );
        let warn = allowed_headers(&[gauge(Window::Day, 10, 100), gauge(Window::Month, 80, 100)], &p);
        assert_eq!(
            header(&warn, "anthropic-ratelimit-unified-status"),
            Some("allowed_warning")
        );
        assert_eq!(
            header(&warn, "anthropic-ratelimit-unified-overage-surpassed-threshold"),
            Some("0.75")
        );
        assert_eq!(
            header(&warn, "anthropic-ratelimit-unified-overage-utilization"),
            Some("0.8")
        );
        // The month is the fuller one, so its reset is given.
        let month_end = (p.now + p.month_left).to_string();
        assert_eq!(
            header(&warn, "anthropic-ratelimit-unified-reset"),
            Some(month_end.as_str())
        );
        let nearly = allowed_headers(&[gauge(Window::Day, 999, 1000)], &p);
        assert_eq!(
            header(&nearly, "anthropic-ratelimit-unified-overage-surpassed-threshold"),
            Some("0.95")
        );
        assert_eq!(
            header(&nearly, "anthropic-ratelimit-unified-overage-utilization"),
            Some("0.99")
        );
        assert!(allowed_headers(&[], &p).is_empty());
    }

    #[test]
    fn a_spent_budget_is_a_429_naming_it_with_the_seconds_to_its_reset() {
        let p = period();
        let account = Account {
            key: "caller#alice".into(),
            scope: Scope::Caller,
            limits: Limits {
                daily_usd: Some(Usd(5_000_000)),
                ..Limits::default()
            },
        };
        let r = refusal(&[gauge(Window::Day, 5_020_000, 5_000_000)], &[account], &p).unwrap();
        assert_eq!(
            r.message,
            "the daily dollar budget of $5.00 for this token is used up ($5.02 spent); it resets at 00:00 UTC, in 8 h 0 min"
        );
        assert_eq!(header(&r.headers, "retry-after"), Some("28800"));
        assert_eq!(header(&r.headers, "x-should-retry"), Some("false"));
        assert_eq!(
            header(&r.headers, "anthropic-ratelimit-unified-overage-period"),
            Some("daily")
        );
        // Without these Claude Code prints the message as it is.
        assert_eq!(
            header(&r.headers, "anthropic-ratelimit-unified-representative-claim"),
            None
        );
        assert_eq!(header(&r.headers, "anthropic-ratelimit-unified-overage-status"), None);
    }

    #[test]
    fn a_budget_is_tight_below_the_margin_or_the_worst_case() {
        assert!(!gauge(Window::Day, 50, 100).tight(10, 20));
        assert!(gauge(Window::Day, 81, 100).tight(10, 20));
        assert!(gauge(Window::Day, 50, 100).tight(60, 20));
        assert!(gauge(Window::Day, 0, 100).tight(1, 100));
    }
}
