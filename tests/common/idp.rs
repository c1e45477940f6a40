//! A small OpenID issuer on loopback for the JWT tests: a discovery document and a JWK set
//! (replaceable, its fetches counted, able to go down), and keys made in the test that sign
//! good and forged tokens with aws-lc-rs directly, so that any header or signature can be sent.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, RsaPublicKeyComponents, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

/// The issuer: its URL (also its `iss`) and what it serves.
pub struct Idp {
    pub url: String,
    state: Arc<IdpState>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct IdpState {
    url: OnceLock<String>,
    keys: Mutex<Vec<Value>>,
    down: AtomicBool,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
}

impl Idp {
    /// An issuer on a free loopback port, publishing `keys`.
    pub async fn start(keys: &[&Key]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let url = format!("http://{addr}");
        let state = Arc::new(IdpState::default());
        let _ = state.url.set(url.clone());
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let idp = Self { url, state, server };
        idp.publish(keys);
        idp
    }

    /// Replaces the published key set.
    pub fn publish(&self, keys: &[&Key]) {
        *self.state.keys.lock().unwrap() = keys.iter().map(|k| k.jwk()).collect();
    }

    /// Every request gets 503 while down (fetches are still counted).
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// GETs of the key set so far.
    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// GETs of the discovery document so far.
    pub fn discovery_fetches(&self) -> usize {
        self.state.discovery_fetches.load(Ordering::SeqCst)
    }

    /// `OIDC_ISSUERS` for this issuer: audience `bedrock-proxy`, caller `email`, groups `groups`,
    /// plus `extra` fields.
    pub fn issuers_env(&self, extra: Value) -> String {
        let mut issuer = json!({
            "issuer": self.url, "audience": "bedrock-proxy", "caller_claim": "email", "groups_claim": "groups"
        });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            issuer[k] = v;
        }
        json!([issuer]).to_string()
    }

    /// Claims of a good token from this issuer for `email`, valid for five minutes.
    pub fn claims(&self, email: &str) -> Value {
        let now = now();
        json!({
            "iss": self.url, "aud": "bedrock-proxy", "sub": format!("sub-{email}"), "email": email,
            "iat": now, "nbf": now, "exp": now + 300
        })
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn discovery(State(state): State<Arc<IdpState>>) -> Response {
    state.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let url = state.url.get().cloned().unwrap_or_default();
    Json(json!({
        "issuer": url, "jwks_uri": format!("{url}/jwks"),
        "id_token_signing_alg_values_supported": ["RS256", "ES256"]
    }))
    .into_response()
}

async fn jwks(State(state): State<Arc<IdpState>>) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let keys = state.keys.lock().unwrap().clone();
    Json(json!({ "keys": keys })).into_response()
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key of the test issuer.
#[derive(Clone)]
pub enum Key {
    Rsa { kid: String, pair: Arc<RsaKeyPair> },
    Ec { kid: String, pair: Arc<EcdsaKeyPair> },
}

/// RSA key generation is slow in a debug build, so each test binary makes a few once.
fn rsa_pair(slot: usize) -> Arc<RsaKeyPair> {
    static PAIRS: OnceLock<Vec<Arc<RsaKeyPair>>> = OnceLock::new();
    PAIRS.get_or_init(|| {
        (0..3)
            .map(|_| Arc::new(RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa key")))
            .collect()
    })[slot]
        .clone()
}

impl Key {
    /// One of three RSA-2048 keys (by `slot`), published as `kid`.
    pub fn rsa(kid: &str, slot: usize) -> Self {
        Self::Rsa {
            kid: kid.into(),
            pair: rsa_pair(slot),
        }
    }

    /// A fresh P-256 key.
    pub fn ec(kid: &str) -> Self {
        Self::Ec {
            kid: kid.into(),
            pair: Arc::new(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec key")),
        }
    }

    pub fn kid(&self) -> &str {
        match self {
            Self::Rsa { kid, .. } | Self::Ec { kid, .. } => kid,
        }
    }

    /// The `alg` this key signs with.
    pub fn alg(&self) -> &'static str {
        match self {
            Self::Rsa { .. } => "RS256",
            Self::Ec { .. } => "ES256",
        }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        match self {
            Self::Rsa { kid, pair } => {
                let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(&public.n), "e": b64(&public.e)})
            }
            Self::Ec { kid, pair } => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "kid": kid, "use": "sig", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])})
            }
        }
    }

    /// The public key's bytes as an attacker could take them from the JWK set (the RSA
    /// modulus, or the EC point), for HMAC forgeries.
    pub fn public_bytes(&self) -> Vec<u8> {
        match self {
            Self::Rsa { pair, .. } => RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key()).n,
            Self::Ec { pair, .. } => pair.public_key().as_ref().to_vec(),
        }
    }

    /// A token with the usual header (`alg`, `kid`, `typ`).
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(&json!({"alg": self.alg(), "kid": self.kid(), "typ": "JWT"}), claims)
    }

    /// A token with exactly this header, signed by this key's own algorithm.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let signature = match self {
            Self::Rsa { pair, .. } => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    input.as_bytes(),
                    &mut signature,
                )
                .expect("rsa sign");
                signature
            }
            Self::Ec { pair, .. } => pair
                .sign(&SystemRandom::new(), input.as_bytes())
                .expect("ec sign")
                .as_ref()
                .to_vec(),
        };
        format!("{input}.{}", b64(&signature))
    }
}

/// `base64url(header).base64url(claims)`.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// A token signed with HMAC-SHA256 under `secret`, as an algorithm-confusion attack would
/// make one.
pub fn sign_hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = signing_input(header, claims);
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}
