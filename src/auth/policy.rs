//! Per-caller policy, kept in the token secret next to each caller's token: which models the
//! caller may use, the largest `max_tokens` it may ask for, its token and dollar budgets, and
//! the Bedrock guardrail applied to its answers.
//!
//! ```json
//! {"tokens": {"alice": {"token": "…", "models": ["claude-sonnet-*", "claude-haiku-*"],
//!                       "max_tokens": 64000, "daily_tokens": 5000000, "monthly_tokens": 90000000,
//!                       "daily_usd": 25, "monthly_usd": 400,
//!                       "guardrail": {"id": "abc123def456", "version": "1"}},
//!             "ci": "…"}}
//! ```
//! A caller given as a plain string has no limits.
//!
//! JWT callers get their policy from the secret's `groups` instead ([`GroupPolicy`],
//! [`membership`]): the most permissive of the groups they are in.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::auth::guardrail::Guardrail;
use crate::error::ProxyError;
use crate::usage::cost::Usd;

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
    /// Dollars per UTC day, at the proxy's prices (`usage::prices`), e.g. `25` or `2.5`.
    #[serde(default)]
    pub daily_usd: Option<Usd>,
    /// Dollars per UTC calendar month.
    #[serde(default)]
    pub monthly_usd: Option<Usd>,
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
        self.daily_tokens.is_some()
            || self.monthly_tokens.is_some()
            || self.daily_usd.is_some()
            || self.monthly_usd.is_some()
    }
}

/// One entry of the secret's `"groups"`: what each member may do, and optionally what all
/// members may spend together.
///
/// ```json
/// {"groups": {"eng": {"models": ["claude-*"], "daily_tokens": 5000000,
///                     "pool": {"monthly_tokens": 900000000}}}}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPolicy {
    /// The same fields as a caller's policy, applied to each member; its budgets are each
    /// member's own (counted per caller).
    pub member: Arc<CallerPolicy>,
    /// The group's shared budget (`"pool"`, budget fields only), counted for the group as a
    /// whole: every member's spend is added to it.
    pub pool: Option<Arc<CallerPolicy>>,
}

/// Why a JWT caller gets no policy from its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAMember {
    /// It is in none of the secret's groups.
    NoGroup,
    /// Its groups name different guardrails (these groups), and a request can go through only
    /// one.
    GuardrailConflict(Vec<String>),
}

/// What a JWT caller gets from the groups it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The most permissive of the member policies (see [`most_permissive`]).
    pub policy: Arc<CallerPolicy>,
    /// The shared budgets of the caller's groups that have one, by group name.
    pub pools: Vec<(String, Arc<CallerPolicy>)>,
}

/// The policy of a caller in the groups `names` (unknown names are ignored).
///
/// When the secret defines no groups, every caller has no limits (the issuer's `claims` decide
/// who may call). When it defines some, a caller must be in at least one of them, or it is
/// refused.
///
/// A guardrail is not a permission one group can waive for another: the caller gets the
/// guardrail any of its groups names, and is refused when two of them name different ones
/// (InvokeModel takes one guardrail), rather than sent with one of them or none.
pub fn membership(groups: &BTreeMap<String, GroupPolicy>, names: &[String]) -> Result<Membership, NotAMember> {
    if groups.is_empty() {
        return Ok(Membership {
            policy: Arc::new(CallerPolicy::default()),
            pools: Vec::new(),
        });
    }
    let matched: Vec<(&String, &GroupPolicy)> = groups.iter().filter(|(name, _)| names.contains(name)).collect();
    let policy = match matched.as_slice() {
        [] => return Err(NotAMember::NoGroup),
        // One group (the usual case): its policy is shared, not copied.
        [(_, only)] => only.member.clone(),
        several => {
            let mut combined = most_permissive(several.iter().map(|(_, g)| g.member.as_ref()));
            combined.guardrail = required_guardrail(several)?;
            Arc::new(combined)
        }
    };
    let pools = matched
        .iter()
        .filter_map(|(name, group)| group.pool.clone().map(|pool| ((*name).clone(), pool)))
        .collect();
    Ok(Membership { policy, pools })
}

/// The one guardrail the groups name, if any; several different ones are a conflict.
fn required_guardrail(groups: &[(&String, &GroupPolicy)]) -> Result<Option<Guardrail>, NotAMember> {
    let named: Vec<(&String, &Guardrail)> = groups
        .iter()
        .filter_map(|(name, group)| group.member.guardrail.as_ref().map(|g| (*name, g)))
        .collect();
    match named.first() {
        None => Ok(None),
        Some((_, first)) if named.iter().all(|(_, g)| g == first) => Ok(Some((*first).clone())),
        Some(_) => Err(NotAMember::GuardrailConflict(
            named.iter().map(|(name, _)| (*name).clone()).collect(),
        )),
    }
}

/// The combination of several groups' policies: what any one of them allows. Models are the
/// union of the lists (and every model if one list is empty); `max_tokens` and each budget are
/// the largest (and unlimited if one group leaves them unlimited). A guardrail is a requirement,
/// not an allowance, so none is combined here: [`membership`] decides it.
pub fn most_permissive<'a>(policies: impl IntoIterator<Item = &'a CallerPolicy>) -> CallerPolicy {
    let mut policies = policies.into_iter();
    let Some(first) = policies.next() else {
        return CallerPolicy::default();
    };
    let largest = |a: Option<u64>, b: Option<u64>| a.zip(b).map(|(a, b)| a.max(b));
    policies.fold(first.clone(), |mut combined, next| {
        if combined.models.is_empty() || next.models.is_empty() {
            combined.models.clear();
        } else {
            for model in &next.models {
                if !combined.models.contains(model) {
                    combined.models.push(model.clone());
                }
            }
        }
        combined.max_tokens = largest(combined.max_tokens, next.max_tokens);
        combined.daily_tokens = largest(combined.daily_tokens, next.daily_tokens);
        combined.monthly_tokens = largest(combined.monthly_tokens, next.monthly_tokens);
        combined.daily_usd = combined.daily_usd.zip(next.daily_usd).map(|(a, b)| a.max(b));
        combined.monthly_usd = combined.monthly_usd.zip(next.monthly_usd).map(|(a, b)| a.max(b));
        combined.guardrail = None;
        combined
    })
}

/// `*` matches any run of characters, everything else itself.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
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

    fn group(member: CallerPolicy, pool: Option<CallerPolicy>) -> GroupPolicy {
        GroupPolicy {
            member: Arc::new(member),
            pool: pool.map(Arc::new),
        }
    }

    #[test]
    fn several_groups_combine_to_what_any_of_them_allows() {
        let haiku = CallerPolicy {
            models: vec!["claude-haiku-*".into()],
            max_tokens: Some(8_000),
            daily_tokens: Some(1_000),
            monthly_tokens: None,
            daily_usd: Some(Usd(1_000_000)),
            monthly_usd: Some(Usd(20_000_000)),
            guardrail: None,
        };
        let sonnet = CallerPolicy {
            models: vec!["claude-sonnet-*".into(), "claude-haiku-*".into()],
            max_tokens: Some(64_000),
            daily_tokens: Some(5_000),
            monthly_tokens: Some(90_000),
            daily_usd: Some(Usd(5_000_000)),
            monthly_usd: None,
            guardrail: None,
        };
        let combined = most_permissive([&haiku, &sonnet]);
        assert_eq!(combined.models, ["claude-haiku-*", "claude-sonnet-*"]);
        assert_eq!(combined.max_tokens, Some(64_000));
        assert_eq!(combined.daily_tokens, Some(5_000));
        // One group without a monthly budget leaves the caller without one.
        assert_eq!(combined.monthly_tokens, None);
        assert_eq!((combined.daily_usd, combined.monthly_usd), (Some(Usd(5_000_000)), None));
        // An empty model list allows every model, so it wins.
        let any = most_permissive([&haiku, &CallerPolicy::default()]);
        assert!(any.models.is_empty() && any.max_tokens.is_none() && any.daily_tokens.is_none());
    }

    #[test]
    fn a_caller_in_no_listed_group_gets_nothing_when_groups_are_defined() {
        let mut groups = BTreeMap::new();
        // No groups at all: no limits.
        let open = membership(&groups, &["anything".into()]).unwrap();
        assert_eq!(*open.policy, CallerPolicy::default());
        let eng = CallerPolicy {
            models: vec!["claude-*".into()],
            ..CallerPolicy::default()
        };
        let pool = CallerPolicy {
            daily_tokens: Some(10),
            ..CallerPolicy::default()
        };
        groups.insert("eng".to_string(), group(eng.clone(), Some(pool.clone())));
        groups.insert("ops".to_string(), group(CallerPolicy::default(), None));
        assert_eq!(membership(&groups, &["sales".into()]), Err(NotAMember::NoGroup));
        assert_eq!(membership(&groups, &[]), Err(NotAMember::NoGroup));
        let member = membership(&groups, &["sales".into(), "eng".into()]).unwrap();
        assert_eq!(*member.policy, eng);
        assert_eq!(member.pools, [("eng".to_string(), Arc::new(pool))]);
        let both = membership(&groups, &["eng".into(), "ops".into(), "eng".into()]).unwrap();
        assert!(both.policy.models.is_empty());
        assert_eq!(both.pools.len(), 1);
    }

    #[test]
    fn a_guardrail_of_any_group_applies_and_two_different_ones_refuse_the_caller() {
        let guardrail = |version: &str| Guardrail {
            id: "abc123".into(),
            version: version.into(),
        };
        let guarded = |version: &str| CallerPolicy {
            guardrail: Some(guardrail(version)),
            ..CallerPolicy::default()
        };
        let mut groups = BTreeMap::new();
        // "a-open" sorts first: the combination must not take the first group's (absent) one.
        groups.insert("a-open".to_string(), group(CallerPolicy::default(), None));
        groups.insert("contractors".to_string(), group(guarded("1"), None));
        groups.insert("vendors".to_string(), group(guarded("1"), None));
        groups.insert("testers".to_string(), group(guarded("2"), None));
        let names = |list: &[&str]| list.iter().map(|n| n.to_string()).collect::<Vec<_>>();

        let open_and_guarded = membership(&groups, &names(&["a-open", "contractors"])).unwrap();
        assert_eq!(open_and_guarded.policy.guardrail, Some(guardrail("1")));
        let same_twice = membership(&groups, &names(&["contractors", "vendors", "a-open"])).unwrap();
        assert_eq!(same_twice.policy.guardrail, Some(guardrail("1")));
        assert_eq!(
            membership(&groups, &names(&["contractors", "testers"])),
            Err(NotAMember::GuardrailConflict(vec![
                "contractors".into(),
                "testers".into()
            ]))
        );
        assert_eq!(membership(&groups, &names(&["a-open"])).unwrap().policy.guardrail, None);
        assert_eq!(most_permissive([&guarded("1"), &guarded("1")]).guardrail, None);
    }

    #[test]
    fn unknown_policy_keys_are_refused() {
        let parsed: Result<CallerPolicy, _> = serde_json::from_str(r#"{"modles": ["x"]}"#);
        assert!(parsed.is_err());
    }
}
