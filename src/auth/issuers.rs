//! The trusted OpenID issuers (`OIDC_ISSUERS`): what each one's tokens must say to be let in,
//! and which claim names the caller.
//!
//! ```json
//! [{"issuer": "https://login.example.com", "audience": "bedrock-proxy",
//!   "caller_claim": "email", "groups_claim": "groups"},
//!  {"issuer": "https://token.actions.githubusercontent.com", "audience": "bedrock-proxy",
//!   "claims": {"repository_owner": "acme", "ref": "refs/heads/*"}, "groups": ["ci"]}]
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::auth::policy::glob;

/// One trusted issuer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The `iss` its tokens carry, exactly; its discovery document is under
    /// `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// What `aud` must contain (one of these); a string or a list.
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// The claim whose value names the caller (log line, metrics, budgets).
    #[serde(default = "default_caller_claim")]
    pub caller_claim: String,
    /// The claim listing the caller's groups (a list of strings, or one string).
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Groups every caller of this issuer is in, besides any its `groups_claim` names (e.g. a
    /// pipeline issuer whose tokens carry no groups).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Claims each token must carry: name → pattern, or a list of patterns of which one must
    /// match (`*` matches any run of characters). A list-valued claim matches when one of its
    /// strings does.
    #[serde(default, deserialize_with = "patterns")]
    pub claims: BTreeMap<String, Vec<String>>,
}

fn default_caller_claim() -> String {
    "sub".into()
}

/// Issuers whose tokens anyone can have signed for them (any repository's pipeline, any
/// project's job): without required claims they would let in the whole world.
const SHARED_ISSUERS: &[(&str, &str)] = &[
    ("https://token.actions.githubusercontent.com", "repository_owner"),
    ("https://gitlab.com", "namespace_path"),
];

impl IssuerConfig {
    /// The claim checks that fail for these claims, by claim name (never the claim's value).
    pub fn unmet_claim<'a>(&'a self, claims: &serde_json::Map<String, Value>) -> Option<&'a str> {
        self.claims
            .iter()
            .find(|(name, patterns)| !claim_matches(claims.get(name.as_str()), patterns))
            .map(|(name, _)| name.as_str())
    }

    /// The groups a caller with these claims is in: the `groups_claim` values and `groups`.
    pub fn groups_of(&self, claims: &serde_json::Map<String, Value>) -> Vec<String> {
        let mut groups = self.groups.clone();
        if let Some(claim) = &self.groups_claim {
            match claims.get(claim) {
                Some(Value::String(one)) => groups.push(one.clone()),
                Some(Value::Array(many)) => groups.extend(many.iter().filter_map(Value::as_str).map(String::from)),
                _ => {}
            }
        }
        groups
    }
}

fn claim_matches(value: Option<&Value>, patterns: &[String]) -> bool {
    let matches = |text: &str| patterns.iter().any(|p| glob(p, text));
    match value {
        Some(Value::String(text)) => matches(text),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).any(matches),
        _ => false,
    }
}

/// Reads `OIDC_ISSUERS`: a JSON array of issuers. Errors say what to fix.
pub fn parse(json: &str) -> Result<Vec<IssuerConfig>, String> {
    let issuers: Vec<IssuerConfig> = serde_json::from_str(json).map_err(|e| {
        format!(
            "OIDC_ISSUERS must be a JSON array of {{\"issuer\": URL, \"audience\": \"…\" or [\"…\"], \
             \"caller_claim\", \"groups_claim\", \"groups\", \"claims\"}}: {e}"
        )
    })?;
    for (i, issuer) in issuers.iter().enumerate() {
        let name = &issuer.issuer;
        check_url(name).map_err(|e| format!("OIDC_ISSUERS: issuer {name:?}: {e}"))?;
        if issuer.audience.is_empty() || issuer.audience.iter().any(|a| a.trim().is_empty()) {
            return Err(format!("OIDC_ISSUERS: issuer {name:?} needs a non-empty audience"));
        }
        if issuer.caller_claim.trim().is_empty() {
            return Err(format!("OIDC_ISSUERS: issuer {name:?}: caller_claim is empty"));
        }
        if issuer.claims.values().any(Vec::is_empty) {
            return Err(format!(
                "OIDC_ISSUERS: issuer {name:?}: every required claim needs a pattern"
            ));
        }
        if issuers[..i].iter().any(|other| other.issuer == *name) {
            return Err(format!("OIDC_ISSUERS: issuer {name:?} is listed twice"));
        }
        if let Some((_, claim)) = SHARED_ISSUERS.iter().find(|(url, _)| url == name) {
            if issuer.claims.is_empty() {
                return Err(format!(
                    "OIDC_ISSUERS: issuer {name:?} signs tokens for anyone's pipelines; set \"claims\", \
                     e.g. {{\"{claim}\": \"your-org\"}}"
                ));
            }
        }
    }
    Ok(issuers)
}

/// An issuer (and a `jwks_uri`) must be https; plain http only on loopback, for tests and
/// local providers.
pub fn check_url(url: &str) -> Result<(), String> {
    let uri: axum::http::Uri = url.parse().map_err(|_| "is not a URL".to_string())?;
    let host = uri.host().unwrap_or_default();
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(()),
        Some("http") if is_loopback(host) => Ok(()),
        Some("http") => Err("must be https (plain http is accepted only on loopback)".into()),
        _ => Err("must be an https URL".into()),
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

fn patterns<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "one_or_many")] Vec<String>);
    let map = BTreeMap::<String, Wrapped>::deserialize(d)?;
    Ok(map.into_iter().map(|(k, Wrapped(v))| (k, v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn issuers_take_one_or_many_audiences_and_default_to_sub() {
        let issuers = parse(
            r#"[{"issuer": "https://idp.example.com", "audience": "bedrock-proxy"},
                {"issuer": "http://127.0.0.1:9000", "audience": ["a", "b"], "caller_claim": "email",
                 "groups_claim": "groups", "groups": ["everyone"], "claims": {"ref": ["refs/heads/*", "v*"]}}]"#,
        )
        .unwrap();
        assert_eq!(issuers[0].audience, ["bedrock-proxy"]);
        assert_eq!(issuers[0].caller_claim, "sub");
        assert_eq!(issuers[1].audience, ["a", "b"]);
        assert_eq!(issuers[1].claims["ref"], ["refs/heads/*", "v*"]);
        assert_eq!(parse("[]").unwrap(), []);
        // What Terraform's jsonencode writes for optional attributes left unset.
        let terraform = parse(
            r#"[{"issuer": "https://a", "audience": ["x"], "caller_claim": "sub", "groups_claim": null,
                 "groups": [], "claims": {}}]"#,
        )
        .unwrap();
        assert_eq!(terraform[0].groups_claim, None);
    }

    #[test]
    fn bad_issuer_lists_say_what_to_fix() {
        for (json, needle) in [
            ("{}", "JSON array"),
            (r#"[{"issuer": "https://a"}]"#, "audience"),
            (r#"[{"issuer": "https://a", "audience": []}]"#, "non-empty audience"),
            (
                r#"[{"issuer": "https://a", "audience": "x", "extra": 1}]"#,
                "unknown field",
            ),
            (
                r#"[{"issuer": "http://idp.example.com", "audience": "x"}]"#,
                "only on loopback",
            ),
            (r#"[{"issuer": "ftp://a", "audience": "x"}]"#, "https"),
            (
                r#"[{"issuer": "https://a", "audience": "x"}, {"issuer": "https://a", "audience": "y"}]"#,
                "twice",
            ),
            (
                r#"[{"issuer": "https://token.actions.githubusercontent.com", "audience": "x"}]"#,
                "repository_owner",
            ),
            (
                r#"[{"issuer": "https://a", "audience": "x", "claims": {"ref": []}}]"#,
                "pattern",
            ),
        ] {
            let err = parse(json).unwrap_err();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn plain_http_is_for_loopback_only() {
        assert!(check_url("http://127.0.0.1:8080").is_ok());
        assert!(check_url("http://localhost:1/x").is_ok());
        assert!(check_url("http://[::1]:1").is_ok());
        assert!(check_url("http://10.0.0.1").is_err());
        assert!(check_url("http://127.0.0.1.example.com").is_err());
        assert!(check_url("https://idp.example.com/tenant").is_ok());
    }

    #[test]
    fn required_claims_match_by_glob_and_name_the_claim_that_failed() {
        let issuer = &parse(
            r#"[{"issuer": "https://a", "audience": "x",
                 "claims": {"repository_owner": "acme", "ref": ["refs/heads/main", "refs/tags/v*"]}}]"#,
        )
        .unwrap()[0];
        let claims = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            issuer.unmet_claim(&claims(json!({"repository_owner": "acme", "ref": "refs/tags/v1.2"}))),
            None
        );
        assert_eq!(
            issuer.unmet_claim(&claims(json!({"repository_owner": "evil", "ref": "refs/heads/main"}))),
            Some("repository_owner")
        );
        assert_eq!(
            issuer.unmet_claim(&claims(json!({"repository_owner": "acme"}))),
            Some("ref")
        );
        assert_eq!(
            issuer.unmet_claim(&claims(
                json!({"repository_owner": ["x", "acme"], "ref": "refs/heads/main"})
            )),
            None
        );
        assert_eq!(
            issuer.unmet_claim(&claims(json!({"repository_owner": 5, "ref": "refs/heads/main"}))),
            Some("repository_owner")
        );
    }

    #[test]
    fn groups_come_from_the_claim_and_the_issuer() {
        let issuer =
            &parse(r#"[{"issuer": "https://a", "audience": "x", "groups_claim": "g", "groups": ["all"]}]"#).unwrap()[0];
        let groups = |v: Value| issuer.groups_of(v.as_object().unwrap());
        assert_eq!(groups(json!({"g": ["eng", 5, "ops"]})), ["all", "eng", "ops"]);
        assert_eq!(groups(json!({"g": "eng"})), ["all", "eng"]);
        assert_eq!(groups(json!({})), ["all"]);
    }
}
