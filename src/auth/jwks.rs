//! One issuer's signing keys: found through its discovery document
//! (`<issuer>/.well-known/openid-configuration` → `jwks_uri`), read at start and cached.
//!
//! A token signed with a key we do not hold (the issuer rotated its keys) makes the cache be
//! refetched, at most once per [`REFETCH_GAP`] and single-flight: a flood of made-up key ids
//! costs one fetch a minute, not one per request. Keys older than [`MAX_KEY_AGE`] are refreshed
//! in the background, so a key the issuer withdrew stops working. A failed fetch never drops
//! the keys held: while the issuer is down, tokens signed with known keys keep working.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::http::{header, Request, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use tokio::sync::watch;

use crate::auth::issuers::check_url;
use crate::sync::IgnorePoison;

/// The least time between two refetches of one issuer's keys (the fetch at start aside).
pub const REFETCH_GAP: Duration = Duration::from_secs(60);
/// Keys older than this are refetched in the background when next used.
pub const MAX_KEY_AGE: Duration = Duration::from_secs(3600);
/// Time allowed for one GET of the discovery document or the key set.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long cold start waits for the first fetch. Lambda allows 10 s for init, and the secret
/// is read meanwhile; a slower issuer finishes in the background (or the first token waits).
const START_WAIT: Duration = Duration::from_secs(3);
/// Key sets are a few KiB; anything much larger is not one.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// The HTTPS client the key fetches share.
pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// An HTTPS client (plain http too, which [`check_url`] allows on loopback only), with the
/// system's root certificates and the crypto provider rustls uses elsewhere in the proxy.
pub fn http_client() -> Result<HttpClient, String> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
        .map_err(|e| format!("loading the system's root certificates for the OIDC key fetches: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// A public key and the algorithms it may verify: those of its type (and curve), narrowed to
/// its `alg` when the key set names one. Never an HMAC algorithm.
pub struct VerifyKey {
    /// The key.
    pub key: DecodingKey,
    /// What a token signed with it may say in `alg`.
    pub algorithms: Vec<Algorithm>,
}

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<VerifyKey>>,
    count: usize,
    /// The one key, when the set holds exactly one: it verifies tokens without a `kid`.
    only: Option<Arc<VerifyKey>>,
}

impl KeySet {
    fn find(&self, kid: Option<&str>) -> Option<Arc<VerifyKey>> {
        match kid {
            Some(kid) => self.by_kid.get(kid).cloned(),
            None => self.only.clone(),
        }
    }
}

/// One issuer's key cache. Clones share it.
#[derive(Clone)]
pub struct Jwks {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    http: HttpClient,
    keys: RwLock<Arc<KeySet>>,
    /// Never held across an await.
    fetches: Mutex<Fetches>,
}

#[derive(Default)]
struct Fetches {
    /// The fetch in flight: whoever needs its outcome waits on it instead of starting another.
    in_flight: Option<watch::Receiver<bool>>,
    /// When the last refetch (any fetch but the one at start) began.
    last_refetch: Option<Instant>,
    /// When the keys held were fetched.
    fetched_at: Option<Instant>,
    /// From the discovery document; forgotten when a fetch from it fails, so the next fetch
    /// looks it up again.
    jwks_uri: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Start,
    UnknownKey,
    Stale,
}

impl Jwks {
    /// The cache for `issuer` (nothing is fetched until [`Jwks::load`] or a token needs it).
    pub fn new(issuer: &str, http: HttpClient) -> Self {
        Self {
            inner: Arc::new(Inner {
                issuer: issuer.to_string(),
                http,
                keys: RwLock::new(Arc::default()),
                fetches: Mutex::new(Fetches::default()),
            }),
        }
    }

    /// The fetch at start, waited for at most [`START_WAIT`]. A failure is logged, not fatal:
    /// the first token that needs a key fetches again.
    pub async fn load(&self) {
        let _ = tokio::time::timeout(START_WAIT, self.fetch_and_wait(Trigger::Start)).await;
    }

    /// The key a token names by `kid` (or the only key, for a token without one), refetching
    /// the set once when it is unknown and a refetch is due.
    pub async fn key(&self, kid: Option<&str>) -> Option<Arc<VerifyKey>> {
        if let Some(key) = self.current().find(kid) {
            let _ = self.start_fetch(Trigger::Stale);
            return Some(key);
        }
        if !self.fetch_and_wait(Trigger::UnknownKey).await {
            return None;
        }
        self.current().find(kid)
    }

    fn current(&self) -> Arc<KeySet> {
        self.inner.keys.read().ignore_poison().clone()
    }

    /// Waits for a fetch: the one in flight, or a new one if `trigger` makes one due. True
    /// when a fetch finished after we asked.
    async fn fetch_and_wait(&self, trigger: Trigger) -> bool {
        let Some(mut done) = self.start_fetch(trigger) else {
            return false;
        };
        // The fetch task always ends (each GET is bounded) and always says so, even if it
        // panics; an error here only means it is gone, which is also "over".
        let _ = done.wait_for(|over| *over).await;
        true
    }

    /// Joins the fetch in flight, or starts one in its own task when due. The task owns the
    /// fetch, so a caller that gives up does not cancel it for the others.
    fn start_fetch(&self, trigger: Trigger) -> Option<watch::Receiver<bool>> {
        let mut fetches = self.inner.fetches.lock().ignore_poison();
        if let Some(in_flight) = &fetches.in_flight {
            return Some(in_flight.clone());
        }
        let now = Instant::now();
        let gap_kept = fetches
            .last_refetch
            .is_none_or(|t| now.duration_since(t) >= REFETCH_GAP);
        let due = match trigger {
            Trigger::Start => true,
            Trigger::UnknownKey => gap_kept,
            Trigger::Stale => gap_kept && fetches.fetched_at.is_some_and(|t| now.duration_since(t) >= MAX_KEY_AGE),
        };
        if !due {
            return None;
        }
        if trigger != Trigger::Start {
            fetches.last_refetch = Some(now);
        }
        let (over, done) = watch::channel(false);
        fetches.in_flight = Some(done.clone());
        drop(fetches);
        let finished = FetchFinished {
            jwks: self.clone(),
            over,
        };
        tokio::spawn(async move {
            finished.jwks.fetch(trigger).await;
            drop(finished);
        });
        Some(done)
    }

    async fn fetch(&self, trigger: Trigger) {
        let issuer = &self.inner.issuer;
        match self.fetch_keys().await {
            Ok(keys) => {
                tracing::info!(issuer, keys = keys.count, ?trigger, "oidc signing keys loaded");
                self.inner.fetches.lock().ignore_poison().fetched_at = Some(Instant::now());
                *self.inner.keys.write().ignore_poison() = Arc::new(keys);
            }
            Err(e) => {
                self.inner.fetches.lock().ignore_poison().jwks_uri = None;
                let held = self.current().count;
                tracing::warn!(issuer, error = %e, keys_kept = held, ?trigger, "could not fetch the oidc signing keys");
            }
        }
    }

    async fn fetch_keys(&self) -> Result<KeySet, String> {
        let known = self.inner.fetches.lock().ignore_poison().jwks_uri.clone();
        let jwks_uri = match known {
            Some(uri) => uri,
            None => self.discover().await?,
        };
        let body = get(&self.inner.http, &jwks_uri).await?;
        parse_key_set(&body).map_err(|e| format!("{jwks_uri}: {e}"))
    }

    async fn discover(&self) -> Result<String, String> {
        let issuer = &self.inner.issuer;
        let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let doc: Value = serde_json::from_slice(&get(&self.inner.http, &url).await?)
            .map_err(|_| format!("{url} is not a JSON document"))?;
        // OpenID Connect Discovery 1.0, section 4.3: the document must name the issuer it was
        // fetched for, exactly.
        if doc.get("issuer").and_then(Value::as_str) != Some(issuer.as_str()) {
            return Err(format!("{url} names another issuer"));
        }
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{url} has no jwks_uri"))?;
        check_url(jwks_uri).map_err(|e| format!("the jwks_uri of {url} {e}"))?;
        self.inner.fetches.lock().ignore_poison().jwks_uri = Some(jwks_uri.to_string());
        Ok(jwks_uri.to_string())
    }
}

/// Ends a fetch whichever way its task ends: the next one may start, and whoever waits on
/// this one stops waiting.
struct FetchFinished {
    jwks: Jwks,
    over: watch::Sender<bool>,
}

impl Drop for FetchFinished {
    fn drop(&mut self) {
        self.jwks.inner.fetches.lock().ignore_poison().in_flight = None;
        let _ = self.over.send(true);
    }
}

async fn get(http: &HttpClient, url: &str) -> Result<Bytes, String> {
    let request = Request::get(url)
        .header(header::ACCEPT, "application/json")
        .body(Empty::new())
        .map_err(|_| format!("{url} is not a URL"))?;
    let exchange = async {
        let response = http
            .request(request)
            .await
            .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
        if response.status() != StatusCode::OK {
            return Err(format!("GET {url} answered {}", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES).collect().await;
        body.map(|b| b.to_bytes())
            .map_err(|e| format!("GET {url}: reading the body: {e}"))
    };
    tokio::time::timeout(FETCH_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("GET {url} did not answer within {} s", FETCH_TIMEOUT.as_secs()))?
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The usable keys of a JWK set. Keys we cannot use (symmetric, for encryption, of an unknown
/// type or curve, malformed) are skipped, not fatal: a set may hold keys for other purposes.
fn parse_key_set(body: &[u8]) -> Result<KeySet, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| "not a JSON document".to_string())?;
    let keys = doc.get("keys").and_then(Value::as_array).ok_or("no \"keys\" array")?;
    let mut set = KeySet::default();
    for key in keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(key.clone()) else {
            continue;
        };
        let Some(key) = verify_key(&jwk) else {
            continue;
        };
        let key = Arc::new(key);
        set.count += 1;
        if let Some(kid) = &jwk.common.key_id {
            set.by_kid.insert(kid.clone(), key.clone());
        }
        set.only = (set.count == 1).then_some(key);
    }
    Ok(set)
}

fn verify_key(jwk: &Jwk) -> Option<VerifyKey> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let mut algorithms: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
        // `oct` keys are HMAC secrets: a key any reader of the set holds verifies nothing.
        _ => return None,
    };
    if let Some(named) = jwk.common.key_algorithm {
        let named = Algorithm::from_str(&named.to_string()).ok()?;
        algorithms.retain(|alg| *alg == named);
    }
    if algorithms.is_empty() {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerifyKey { key, algorithms })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(keys: Value) -> KeySet {
        parse_key_set(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";
    const X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    #[test]
    fn keys_verify_only_the_algorithms_of_their_type() {
        let keys = set(json!([
            {"kty": "RSA", "kid": "r", "n": N, "e": "AQAB"},
            {"kty": "RSA", "kid": "r256", "alg": "RS256", "use": "sig", "n": N, "e": "AQAB"},
            {"kty": "EC", "kid": "e", "crv": "P-256", "x": X, "y": Y},
        ]));
        assert_eq!(keys.count, 3);
        let rsa = keys.find(Some("r")).unwrap();
        assert!(rsa.algorithms.contains(&Algorithm::RS256) && rsa.algorithms.contains(&Algorithm::PS512));
        assert_eq!(keys.find(Some("r256")).unwrap().algorithms, [Algorithm::RS256]);
        assert_eq!(keys.find(Some("e")).unwrap().algorithms, [Algorithm::ES256]);
        assert!(keys.find(None).is_none(), "several keys: a token must say which");
        assert!(keys.find(Some("other")).is_none());
    }

    #[test]
    fn symmetric_encryption_and_mismatched_keys_are_skipped() {
        let keys = set(json!([
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": N, "e": "AQAB"},
            {"kty": "RSA", "kid": "hs", "alg": "HS256", "n": N, "e": "AQAB"},
            {"kty": "EC", "kid": "es384-on-p256", "alg": "ES384", "crv": "P-256", "x": X, "y": Y},
            {"kty": "EC", "kid": "p521", "crv": "P-521", "x": X, "y": Y},
            {"kty": "RSA", "kid": "broken"},
            "not a key",
            {"kty": "RSA", "n": N, "e": "AQAB"},
        ]));
        assert_eq!(keys.count, 1);
        assert!(keys.by_kid.is_empty());
        // The one usable key has no kid, so it serves tokens without one.
        assert!(keys.find(None).is_some());
    }

    #[test]
    fn a_document_without_keys_is_an_error() {
        assert!(parse_key_set(b"{}").is_err());
        assert!(parse_key_set(b"<html>").is_err());
        assert_eq!(set(json!([])).count, 0);
    }
}
