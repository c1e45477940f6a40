//! Who may call: the static tokens (from Secrets Manager or the environment), the secret's
//! format, JWTs from trusted OpenID issuers, and each caller's policy (including its Bedrock
//! guardrail).

pub mod guardrail;
pub mod issuers;
pub mod jwks;
pub mod jwt;
pub mod policy;
pub mod secret;
pub mod tokens;

use std::sync::Arc;

use policy::CallerPolicy;

use crate::error::ProxyError;
use crate::usage::request_log::RequestLog;

/// An authenticated caller, as the handlers see it: one type for every kind of credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The caller's name, logged with each request and charged for its spend (`default` for a
    /// single-token secret; the `caller_claim` value for a JWT caller).
    pub name: String,
    /// What the caller may do (shared: every request of the caller reads the same policy).
    pub policy: Arc<CallerPolicy>,
    /// The shared budgets (`pool`) of the groups a JWT caller is in, by group name; its spend
    /// counts towards each.
    pub pools: Vec<(String, Arc<CallerPolicy>)>,
}

impl Caller {
    /// A caller with this name and policy.
    pub fn new(name: impl Into<String>, policy: CallerPolicy) -> Self {
        Self {
            name: name.into(),
            policy: Arc::new(policy),
            pools: Vec::new(),
        }
    }
}

/// The one answer to every credential that is not accepted, static token or JWT alike, so that
/// a refusal tells nothing about why.
pub fn unauthorized() -> ProxyError {
    ProxyError::Authentication(
        "invalid bearer token: send it as 'Authorization: Bearer <token>' or 'x-api-key: <token>'".into(),
    )
}

/// The caller behind the credential presented (at most one, already de-duplicated): a JWT
/// when OIDC issuers are configured and it has a JWT's shape, else a static token.
pub async fn authenticate(
    tokens: &tokens::TokenStore,
    jwt: Option<&jwt::JwtAuth>,
    presented: &[&str],
    log: Option<&RequestLog>,
) -> Result<Caller, ProxyError> {
    match (jwt, presented) {
        (Some(jwt), [token]) if jwt::looks_like_jwt(token) => jwt.authenticate(token, tokens, log).await,
        _ => tokens.authenticate(presented).await,
    }
}
