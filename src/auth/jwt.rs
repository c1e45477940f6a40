//! JWT callers: a token signed by one of the `OIDC_ISSUERS` is a credential like a static
//! token, presented the same way (`Authorization: Bearer` or `x-api-key`).
//!
//! A token is let in when its `iss` is a configured issuer (exactly), its `alg` is an
//! asymmetric algorithm the key it names may verify (never `none`, never HMAC), its signature
//! verifies with that issuer's key, its `aud` contains one of the issuer's audiences, and it is
//! within `exp` and `nbf` give or take [`LEEWAY_SECONDS`]. Every such failure gets the same 401
//! as a wrong static token; the log line says which check failed, never the token.
//!
//! A valid token whose required `claims` do not match, which has no caller name, or whose
//! caller is in none of the secret's groups (when it defines any) is the right credential for
//! the wrong caller: 403. The caller's policy comes from its groups (`policy::membership`).

use std::collections::HashMap;
use std::fmt;

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::auth::issuers::IssuerConfig;
use crate::auth::jwks::{http_client, Jwks};
use crate::auth::policy::{membership, NotAMember};
use crate::auth::tokens::TokenStore;
use crate::auth::{unauthorized, Caller};
use crate::error::ProxyError;
use crate::usage::request_log::RequestLog;

/// Clock skew allowed on `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 60;

/// Caller names longer than this are refused: the name goes into log lines, metric dimensions
/// and budget keys.
const MAX_CALLER_NAME: usize = 256;

/// The trusted issuers and their key caches.
pub struct JwtAuth {
    issuers: HashMap<String, Issuer>,
}

struct Issuer {
    config: IssuerConfig,
    jwks: Jwks,
    /// Issuer, audiences, required claims and leeway; the algorithm is set per token.
    validation: Validation,
}

/// Why a token was not accepted, for the log line (the caller gets one sentence for all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not a JWS in compact form, or its parts are not base64url JSON.
    Malformed,
    /// `alg` is `none`, HMAC, unknown, or not one the key may verify.
    Algorithm,
    /// `iss` is missing or not a configured issuer.
    UnknownIssuer,
    /// No key of the issuer has the token's `kid` (after a refetch, when one was due).
    UnknownKey,
    /// The signature does not verify.
    Signature,
    /// Past `exp` (plus the leeway).
    Expired,
    /// Before `nbf` (less the leeway).
    NotYetValid,
    /// `aud` holds none of the issuer's audiences.
    Audience,
    /// `exp`, `iss` or `aud` is missing or not of its type.
    Claims,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed",
            Self::Algorithm => "algorithm not allowed",
            Self::UnknownIssuer => "unknown issuer",
            Self::UnknownKey => "unknown signing key",
            Self::Signature => "bad signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not yet valid",
            Self::Audience => "wrong audience",
            Self::Claims => "missing or malformed exp, iss or aud",
        })
    }
}

impl JwtAuth {
    /// The verifier for `issuers`; `None` when there are none (JWTs are then not accepted).
    pub fn new(issuers: &[IssuerConfig]) -> Result<Option<Self>, String> {
        if issuers.is_empty() {
            return Ok(None);
        }
        let http = http_client()?;
        let issuers = issuers
            .iter()
            .map(|config| {
                let mut validation = Validation::new(Algorithm::RS256);
                validation.set_issuer(&[&config.issuer]);
                validation.set_audience(&config.audience);
                validation.set_required_spec_claims(&["exp", "iss", "aud"]);
                validation.validate_nbf = true;
                validation.leeway = LEEWAY_SECONDS;
                let issuer = Issuer {
                    jwks: Jwks::new(&config.issuer, http.clone()),
                    config: config.clone(),
                    validation,
                };
                (config.issuer.clone(), issuer)
            })
            .collect();
        Ok(Some(Self { issuers }))
    }

    /// Fetches every issuer's keys, all at once (at start; failures are logged).
    pub async fn load(&self) {
        futures_util::future::join_all(self.issuers.values().map(|i| i.jwks.load())).await;
    }

    /// The caller a JWT stands for, or the 401 / 403 it gets.
    pub async fn authenticate(
        &self,
        token: &str,
        tokens: &TokenStore,
        log: Option<&RequestLog>,
    ) -> Result<Caller, ProxyError> {
        let (issuer, claims) = match self.verify(token).await {
            Ok(verified) => verified,
            Err(reason) => {
                if let Some(log) = log {
                    log.error(format!("jwt refused: {reason}"));
                }
                return Err(unauthorized());
            }
        };
        caller(issuer, &claims, tokens, log).await
    }

    /// Checks a token's algorithm, signature, issuer, audience and times; returns its issuer
    /// and claims.
    pub async fn verify(&self, token: &str) -> Result<(&IssuerConfig, Map<String, Value>), Rejection> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            // `none`, or a name that is no algorithm at all.
            ErrorKind::Json(_) => Rejection::Algorithm,
            _ => Rejection::Malformed,
        })?;
        if !is_asymmetric(header.alg) {
            return Err(Rejection::Algorithm);
        }
        #[derive(Deserialize)]
        struct Peek {
            iss: Option<String>,
        }
        // Which issuer's keys to use; `decode` below checks `iss` again, after the signature.
        let peek: Peek = jsonwebtoken::dangerous::insecure_decode_claims(token).map_err(|_| Rejection::Malformed)?;
        let issuer = peek
            .iss
            .and_then(|iss| self.issuers.get(&iss))
            .ok_or(Rejection::UnknownIssuer)?;
        let key = issuer
            .jwks
            .key(header.kid.as_deref())
            .await
            .ok_or(Rejection::UnknownKey)?;
        if !key.algorithms.contains(&header.alg) {
            return Err(Rejection::Algorithm);
        }
        let mut validation = issuer.validation.clone();
        validation.algorithms = vec![header.alg];
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation).map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => Rejection::Signature,
                ErrorKind::ExpiredSignature => Rejection::Expired,
                ErrorKind::ImmatureSignature => Rejection::NotYetValid,
                ErrorKind::InvalidAudience => Rejection::Audience,
                ErrorKind::InvalidIssuer | ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
                    Rejection::Claims
                }
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidKeyFormat => Rejection::Algorithm,
                _ => Rejection::Malformed,
            })?;
        Ok((&issuer.config, data.claims))
    }
}

/// The caller a verified token names, with the policy of its groups.
async fn caller(
    issuer: &IssuerConfig,
    claims: &Map<String, Value>,
    tokens: &TokenStore,
    log: Option<&RequestLog>,
) -> Result<Caller, ProxyError> {
    if let Some(claim) = issuer.unmet_claim(claims) {
        return Err(ProxyError::PermissionDenied(format!(
            "this token's {claim:?} claim is not one this proxy accepts"
        )));
    }
    let name = claims
        .get(&issuer.caller_claim)
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty() && n.len() <= MAX_CALLER_NAME && !n.chars().any(char::is_control))
        .ok_or_else(|| {
            ProxyError::PermissionDenied(format!(
                "this token has no usable {:?} claim to name its caller",
                issuer.caller_claim
            ))
        })?;
    if let Some(log) = log {
        log.caller(name);
    }
    let groups = tokens.groups().await?;
    let member = membership(&groups, &issuer.groups_of(claims)).map_err(|why| match why {
        NotAMember::NoGroup => ProxyError::PermissionDenied(format!(
            "{name} is in none of the groups this proxy serves{}",
            issuer
                .groups_claim
                .as_ref()
                .map(|c| format!(" (by the token's {c:?} claim)"))
                .unwrap_or_default()
        )),
        NotAMember::GuardrailConflict(groups) => ProxyError::PermissionDenied(format!(
            "{name} is in groups that name different Bedrock guardrails ({}), and a request can go \
             through only one; the proxy's operator must give them the same guardrail (docs/guardrails.md)",
            groups.join(", ")
        )),
    })?;
    Ok(Caller {
        name: name.to_string(),
        policy: member.policy,
        pools: member.pools,
    })
}

fn is_asymmetric(alg: Algorithm) -> bool {
    !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// True when `token` has a JWS's compact shape: three dot-separated parts, the first a
/// base64url JSON object. Anything else is checked as a static token.
pub fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .is_ok_and(|json| json.trim_ascii_start().starts_with(b"{"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_compact_jws_shapes_go_to_the_jwt_check() {
        // {"alg":"RS256"}
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"));
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.."));
        assert!(!looks_like_jwt("tok-0123456789"));
        assert!(!looks_like_jwt("my.static.token"));
        assert!(!looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.e30"));
        assert!(!looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.e30.c2ln.x"));
    }

    #[test]
    fn hmac_is_never_asymmetric() {
        assert!(!is_asymmetric(Algorithm::HS256));
        assert!(is_asymmetric(Algorithm::RS256));
        assert!(is_asymmetric(Algorithm::ES256));
        assert!(is_asymmetric(Algorithm::EdDSA));
    }
}
