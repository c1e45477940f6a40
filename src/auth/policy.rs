//! Per-caller policy, kept in the token secret next to each caller's token: which models the
//! caller may use, the largest `max_tokens` it may ask for, its token budgets, and the Bedrock
//! guardrail applied to its answers.
//!
//! ```json
//! {"tokens": {"alice": {"token": "…", "models": ["claude-sonnet-*", "claude-haiku-*"],
//!                       "max_tokens": 64000, "daily_tokens": 5000000, "monthly_tokens": 90000000,
//!                       "guardrail": {"id": "abc123def456", "version": "1"}},
//!             "ci": "…"}}
//! ```
//! A caller given as a plain string has no limits.

use serde::Deserialize;

use crate::auth::guardrail::Guardrail;
use crate::error::ProxyError;

/// What one caller may do. The default allows everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerPolicy {
    /// Glob patterns (`*` matches any run of characters) over the model name the caller sends
    /// and over the Bedrock ID it resolves to; empty allows every model.
    #[serde(default)]
    pub models: Vec<String>,
    /// The largest `max_tokens` the caller may ask for.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Tokens (input + output, cache included) per UTC day.
    #[serde(default)]
    pub daily_tokens: Option<u64>,
    /// Tokens per UTC calendar month.
    #[serde(default)]
    pub monthly_tokens: Option<u64>,
    /// The Bedrock guardrail every answer for this caller goes through (docs/guardrails.md).
    #[serde(default)]
    pub guardrail: Option<Guardrail>,
}

impl CallerPolicy {
    /// True when the caller may use the model asked for as `asked`, which resolved to `resolved`.
    pub fn allows_model(&self, asked: &str, resolved: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|p| glob(p, asked) || glob(p, resolved))
    }

    /// Refuses a model outside the caller's list with 403 `permission_error` naming the list.
    pub fn check_model(&self, asked: &str, resolved: &str) -> Result<(), ProxyError> {
        if self.allows_model(asked, resolved) {
            return Ok(());
        }
        Err(ProxyError::PermissionDenied(format!(
            "this token may not use model {asked:?}; allowed: {}",
            self.models.join(", ")
        )))
    }

    /// Refuses a `max_tokens` above the caller's cap with 400 `invalid_request_error`.
    ///
    /// Refused rather than lowered: a smaller `max_tokens` than asked would silently cut
    /// answers short (and break a `thinking.budget_tokens` that must stay below it), while a
    /// clear 400 tells the caller what to send.
    pub fn check_max_tokens(&self, asked: Option<u64>) -> Result<(), ProxyError> {
        match (self.max_tokens, asked) {
            (Some(cap), Some(asked)) if asked > cap => Err(ProxyError::InvalidRequest(format!(
                "max_tokens: {asked} is above this token's limit of {cap}"
            ))),
            _ => Ok(()),
        }
    }

    /// True when the policy has any budget to enforce.
    pub fn has_budget(&self) -> bool {
        self.daily_tokens.is_some() || self.monthly_tokens.is_some()
    }
}

/// `*` matches any run of characters, everything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_shell_patterns() {
        assert!(glob("claude-sonnet-*", "claude-sonnet-4-5"));
        assert!(glob("*sonnet*", "us.anthropic.claude-sonnet-5-5"));
        assert!(glob("claude-haiku-4-5", "claude-haiku-4-5"));
        assert!(!glob("claude-haiku-4-5", "claude-haiku-4-5-20251001"));
        assert!(!glob("claude-sonnet-*", "claude-opus-5-5"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "abc"));
        assert!(!glob("a*bc*c", "abc"));
    }

    #[test]
    fn models_outside_the_list_are_a_403_naming_the_list() {
        let policy = CallerPolicy {
            models: vec!["claude-sonnet-*".into(), "*.anthropic.claude-haiku-*".into()],
            ..CallerPolicy::default()
        };
        assert!(policy
            .check_model("claude-sonnet-5-5", "us.anthropic.claude-sonnet-5-5")
            .is_ok());
        // The resolved Bedrock ID counts too, so MODEL_MAP names are covered.
        assert!(policy.check_model("cheap", "us.anthropic.claude-haiku-5-5").is_ok());
        let err = policy
            .check_model("claude-opus-5-5", "us.anthropic.claude-opus-5-5")
            .unwrap_err();
        assert_eq!(err.status_and_type().1, "permission_error");
        assert!(err.to_string().contains("claude-sonnet-*"));
        assert!(CallerPolicy::default().check_model("anything", "x").is_ok());
    }

    #[test]
    fn max_tokens_above_the_cap_is_refused() {
        let policy = CallerPolicy {
            max_tokens: Some(64_000),
            ..CallerPolicy::default()
        };
        assert!(policy.check_max_tokens(Some(64_000)).is_ok());
        assert!(policy.check_max_tokens(None).is_ok());
        let err = policy.check_max_tokens(Some(128_000)).unwrap_err();
        assert_eq!(err.status_and_type().0, 400);
    }

    #[test]
    fn unknown_policy_keys_are_refused() {
        let parsed: Result<CallerPolicy, _> = serde_json::from_str(r#"{"modles": ["x"]}"#);
        assert!(parsed.is_err());
    }
}
