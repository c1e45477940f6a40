//! The token secret's format, read and written in this one place: by the proxy (`auth`) and by
//! the rotation function (`rotate-token`).
//!
//! A plain string is one token, for the caller `default`. A JSON object names its callers:
//! `{"tokens": {"alice": "<token>", "ci": {"token": "<token>", "models": […], …}}}`, where an
//! object entry carries the caller's policy (`policy`) beside its token. An optional
//! `"groups": {"<name>": {<policy>, "pool": {<budgets>}}}` holds the policies JWT callers get by
//! their groups (`policy::GroupPolicy`). Other top-level keys are the owner's and are kept by
//! rotation.

use std::collections::BTreeMap;
use std::sync::Arc;

use secrecy::SecretString;
use serde_json::{Map, Value};

use crate::auth::policy::{CallerPolicy, GroupPolicy};

/// One token entry of the secret: a caller's name, token and policy. The token is a
/// [`SecretString`], so it never appears in `Debug` output.
#[derive(Debug, Clone)]
pub struct TokenEntry {
    /// The caller's name, logged with each request (`default` for a plain secret).
    pub name: String,
    /// The bearer token.
    pub token: SecretString,
    /// What the caller may do (everything, for a string entry).
    pub policy: CallerPolicy,
}

/// What a secret value holds: its token entries, and the policies of named groups (which JWT
/// callers get by their `groups` claim).
#[derive(Debug, Clone, Default)]
pub struct Secret {
    /// The static tokens.
    pub tokens: Vec<TokenEntry>,
    /// `"groups": {"<name>": {<policy>, "pool": {<budgets>}}}`.
    pub groups: BTreeMap<String, GroupPolicy>,
}

const SHAPE: &str = "use a plain token, or {\"tokens\": {\"name\": \"token\" or {\"token\": \"…\", \"models\": […]}}}";

/// The token entries a secret value defines. Errors say what is wrong, never what a token is.
pub fn parse(value: &str) -> Result<Vec<TokenEntry>, String> {
    Ok(parse_secret(value)?.tokens)
}

/// Everything a secret value defines: token entries and group policies.
pub fn parse_secret(value: &str) -> Result<Secret, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err("the secret is empty".into());
    }
    if !trimmed.starts_with('{') {
        return Ok(Secret {
            tokens: vec![TokenEntry {
                name: "default".into(),
                token: trimmed.into(),
                policy: CallerPolicy::default(),
            }],
            groups: BTreeMap::new(),
        });
    }
    let doc: Value =
        serde_json::from_str(trimmed).map_err(|_| format!("the secret looks like JSON but does not parse; {SHAPE}"))?;
    let entries = tokens_object(&doc)?;
    if entries.is_empty() {
        return Err("the secret's \"tokens\" object is empty".into());
    }
    let tokens = entries
        .iter()
        .map(|(name, entry)| caller(name, entry))
        .collect::<Result<_, _>>()?;
    Ok(Secret {
        tokens,
        groups: groups(&doc)?,
    })
}

/// The optional `"groups"` object: a member policy per group name, and optionally the group's
/// shared budget under `"pool"`.
fn groups(doc: &Value) -> Result<BTreeMap<String, GroupPolicy>, String> {
    let Some(groups) = doc.get("groups") else {
        return Ok(BTreeMap::new());
    };
    let groups = groups
        .as_object()
        .ok_or("the secret's \"groups\" must be an object: {\"<group>\": {<policy>}}")?;
    groups
        .iter()
        .map(|(name, entry)| group(name, entry).map(|g| (name.clone(), g)))
        .collect()
}

fn group(name: &str, entry: &Value) -> Result<GroupPolicy, String> {
    let mut fields = entry
        .as_object()
        .cloned()
        .ok_or_else(|| format!("group {name:?} must be an object of policy fields"))?;
    let pool = match fields.remove("pool") {
        None => None,
        Some(pool) => {
            let pool: CallerPolicy =
                serde_json::from_value(pool).map_err(|e| format!("the pool of group {name:?} is not valid: {e}"))?;
            // A pool is spend shared by the members; which models they use is the member policy's.
            if !pool.models.is_empty() || pool.max_tokens.is_some() || !pool.has_budget() {
                return Err(format!(
                    "the pool of group {name:?} takes budget fields only (daily_tokens, monthly_tokens)"
                ));
            }
            Some(Arc::new(pool))
        }
    };
    let member = serde_json::from_value(Value::Object(fields))
        .map_err(|e| format!("the policy of group {name:?} is not valid: {e}"))?;
    Ok(GroupPolicy {
        member: Arc::new(member),
        pool,
    })
}

fn tokens_object(doc: &Value) -> Result<&Map<String, Value>, String> {
    doc.get("tokens")
        .and_then(Value::as_object)
        .ok_or_else(|| format!("a JSON secret needs a \"tokens\" object; {SHAPE}"))
}

fn caller(name: &str, entry: &Value) -> Result<TokenEntry, String> {
    let (token, policy) = match entry {
        Value::String(token) => (token.as_str(), CallerPolicy::default()),
        Value::Object(fields) => {
            let token = fields.get("token").and_then(Value::as_str).unwrap_or_default();
            let mut rest = fields.clone();
            rest.remove("token");
            let policy = serde_json::from_value(Value::Object(rest))
                .map_err(|e| format!("the policy of caller {name:?} is not valid: {e}"))?;
            (token, policy)
        }
        _ => {
            return Err(format!(
                "caller {name:?} must be a token string or an object with a \"token\""
            ))
        }
    };
    let token = token.trim();
    if token.is_empty() {
        return Err(format!("token for caller {name:?} must be a non-empty string"));
    }
    Ok(TokenEntry {
        name: name.to_string(),
        token: token.into(),
        policy,
    })
}

/// Why a rotated value could not be made.
#[derive(Debug, PartialEq, Eq)]
pub enum FreshTokensError {
    /// The current value is not a valid secret; the message says why.
    Invalid(String),
    /// No randomness for a new token.
    Random(String),
}

/// The same secret with a fresh token for every caller, from `fresh`: same format, same names,
/// same policies, same other keys. Returns the new value and the number of callers.
pub fn with_fresh_tokens(
    value: &str,
    mut fresh: impl FnMut() -> Result<String, String>,
) -> Result<(String, usize), FreshTokensError> {
    let callers = parse(value).map_err(FreshTokensError::Invalid)?.len();
    let trimmed = value.trim();
    if !trimmed.starts_with('{') {
        return Ok((fresh().map_err(FreshTokensError::Random)?, callers));
    }
    let mut doc: Value =
        serde_json::from_str(trimmed).map_err(|_| FreshTokensError::Invalid("the JSON does not parse".into()))?;
    let entries = doc
        .get_mut("tokens")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| FreshTokensError::Invalid("no \"tokens\" object".into()))?;
    for entry in entries.values_mut() {
        let token = Value::String(fresh().map_err(FreshTokensError::Random)?);
        match entry {
            Value::Object(fields) => {
                fields.insert("token".into(), token);
            }
            other => *other = token,
        }
    }
    let value = serde_json::to_string_pretty(&doc).map_err(|e| FreshTokensError::Invalid(e.to_string()))?;
    Ok((value, callers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn a_plain_secret_is_one_default_caller_without_limits() {
        let callers = parse("  tok-1  ").unwrap();
        assert_eq!(callers.len(), 1);
        assert_eq!(
            (callers[0].name.as_str(), callers[0].token.expose_secret()),
            ("default", "tok-1")
        );
        assert_eq!(callers[0].policy, CallerPolicy::default());
    }

    #[test]
    fn named_callers_may_carry_a_policy() {
        let callers = parse(
            r#"{"tokens": {"alice": {"token": "a-tok", "models": ["claude-sonnet-*"], "max_tokens": 64000,
                "daily_tokens": 5000000}, "ci": "c-tok"}, "owner": "team-x"}"#,
        )
        .unwrap();
        let alice = callers.iter().find(|c| c.name == "alice").unwrap();
        assert_eq!(alice.token.expose_secret(), "a-tok");
        assert_eq!(alice.policy.models, ["claude-sonnet-*"]);
        assert_eq!(alice.policy.daily_tokens, Some(5_000_000));
        let ci = callers.iter().find(|c| c.name == "ci").unwrap();
        assert_eq!(ci.policy, CallerPolicy::default());
    }

    #[test]
    fn groups_carry_a_member_policy_and_an_optional_pool() {
        let secret = parse_secret(
            r#"{"tokens": {"ci": "c-tok"}, "groups": {
                "eng": {"models": ["claude-*"], "daily_tokens": 100, "pool": {"monthly_tokens": 9000}},
                "everyone": {}}}"#,
        )
        .unwrap();
        let eng = &secret.groups["eng"];
        assert_eq!(eng.member.models, ["claude-*"]);
        assert_eq!(eng.member.daily_tokens, Some(100));
        assert_eq!(eng.pool.as_ref().unwrap().monthly_tokens, Some(9000));
        assert_eq!(*secret.groups["everyone"].member, CallerPolicy::default());
        assert!(secret.groups["everyone"].pool.is_none());
        for (groups, needle) in [
            (r#"[]"#, "must be an object"),
            (r#"{"eng": 5}"#, "group \"eng\" must be an object"),
            (r#"{"eng": {"modles": []}}"#, "policy of group \"eng\""),
            (
                r#"{"eng": {"pool": {"models": ["x"], "daily_tokens": 1}}}"#,
                "budget fields only",
            ),
            (r#"{"eng": {"pool": {}}}"#, "budget fields only"),
        ] {
            let err = parse_secret(&format!(r#"{{"tokens": {{"a": "t"}}, "groups": {groups}}}"#)).unwrap_err();
            assert!(err.contains(needle), "{groups}: {err}");
        }
    }

    #[test]
    fn bad_secrets_say_what_is_wrong_without_the_token() {
        for (value, needle) in [
            ("", "empty"),
            ("{not json", "does not parse"),
            (r#"{"callers": {}}"#, "\"tokens\""),
            (r#"{"tokens": {}}"#, "empty"),
            (r#"{"tokens": {"a": ""}}"#, "non-empty"),
            (r#"{"tokens": {"a": 5}}"#, "token string"),
            (
                r#"{"tokens": {"a": {"token": "secret-value", "modles": []}}}"#,
                "policy of caller \"a\"",
            ),
        ] {
            let err = parse(value).unwrap_err();
            assert!(err.contains(needle), "{value}: {err}");
            assert!(!err.contains("secret-value"), "{err}");
        }
    }

    #[test]
    fn rotation_keeps_names_policies_and_other_keys() {
        let current =
            r#"{"tokens": {"alice": {"token": "a-old", "models": ["claude-*"]}, "ci": "c-old"}, "owner": "team-x"}"#;
        let mut n = 0;
        let (value, callers) = with_fresh_tokens(current, || {
            n += 1;
            Ok(format!("new-{n}"))
        })
        .unwrap();
        assert_eq!(callers, 2);
        let doc: Value = serde_json::from_str(&value).unwrap();
        assert_eq!(doc["owner"], "team-x");
        assert_eq!(doc["tokens"]["alice"]["models"], serde_json::json!(["claude-*"]));
        assert!(doc["tokens"]["alice"]["token"].as_str().unwrap().starts_with("new-"));
        assert!(doc["tokens"]["ci"].as_str().unwrap().starts_with("new-"));
        let (plain, _) = with_fresh_tokens("old", || Ok("fresh".into())).unwrap();
        assert_eq!(plain, "fresh");
    }
}
