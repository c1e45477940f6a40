//! `proxy-bench jwt`: the CPU the JWT check costs per request.
//!
//! Everything runs in this process on one thread: a loopback issuer (discovery document and key
//! set) with an RSA-2048 and a P-256 key made here, and the proxy's own router and state built
//! from `OIDC_ISSUERS`. Two measurements, each in interleaved rounds, CPU time of this thread
//! (`CLOCK_THREAD_CPUTIME_ID`) divided by the operations done:
//! - the signature alone: aws-lc-rs verifying the token's signature, what no JWT check can
//!   go below;
//! - the check alone: `JwtAuth::verify` on an RS256 and on an ES256 token;
//! - a whole request, `GET /v1/models` through the router (auth, policy, the model list; no
//!   Bedrock call), with a static token, an RS256 JWT and an ES256 JWT: the difference is what
//!   a JWT costs a request in place.

use std::collections::HashMap;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, RsaPublicKeyComponents, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bedrock_anthropic_proxy::config::Config;
use bedrock_anthropic_proxy::{app, AppState};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::stats::median;

const STATIC_TOKEN: &str = "bench-static-token-0123456789";

/// How many operations per round, and how many rounds.
pub struct Plan {
    pub n: u32,
    pub rounds: u32,
}

/// CPU time of this thread (rustix's safe clock_gettime: the workspace forbids unsafe code).
fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

struct Keys {
    rsa: RsaKeyPair,
    ec: EcdsaKeyPair,
}

impl Keys {
    fn new() -> Result<Self, String> {
        Ok(Self {
            rsa: RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(|e| format!("rsa key: {e}"))?,
            ec: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|e| format!("ec key: {e}"))?,
        })
    }

    /// Verifies `token`'s signature with aws-lc-rs directly.
    fn verify_signature(&self, token: &str) -> bool {
        use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256};
        let Some((input, signature)) = token.rsplit_once('.') else {
            return false;
        };
        let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        if signature.len() == 64 {
            let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.ec.public_key().as_ref());
            key.verify(input.as_bytes(), &signature).is_ok()
        } else {
            let rsa = RsaPublicKeyComponents::<Vec<u8>>::from(self.rsa.public_key());
            rsa.verify(&RSA_PKCS1_2048_8192_SHA256, input.as_bytes(), &signature)
                .is_ok()
        }
    }

    fn jwks(&self) -> Value {
        let rsa = RsaPublicKeyComponents::<Vec<u8>>::from(self.rsa.public_key());
        let point = self.ec.public_key().as_ref();
        json!({"keys": [
            {"kty": "RSA", "kid": "rsa", "use": "sig", "alg": "RS256", "n": b64(&rsa.n), "e": b64(&rsa.e)},
            {"kty": "EC", "kid": "ec", "use": "sig", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])}
        ]})
    }

    /// A realistic SSO access token: issuer, audience, times, email and groups.
    fn token(&self, alg: &str, issuer: &str) -> Result<String, String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let kid = if alg == "RS256" { "rsa" } else { "ec" };
        let header = json!({"alg": alg, "kid": kid, "typ": "at+jwt"});
        let claims = json!({
            "iss": issuer, "aud": "bedrock-proxy", "sub": "00u1a2b3c4d5e6f7g8h9", "email": "alice@example.com",
            "groups": ["engineering", "everyone"], "scope": "api", "client_id": "claude-code",
            "jti": "Bm-yoO4SL4xFpNg_YIwTGHLFpTsLsqUp26H9YoK6kro", "iat": now, "exp": now + 3600
        });
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = if alg == "RS256" {
            let mut signature = vec![0; self.rsa.public_modulus_len()];
            self.rsa
                .sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    input.as_bytes(),
                    &mut signature,
                )
                .map_err(|e| format!("rsa sign: {e}"))?;
            signature
        } else {
            self.ec
                .sign(&SystemRandom::new(), input.as_bytes())
                .map_err(|e| format!("ec sign: {e}"))?
                .as_ref()
                .to_vec()
        };
        Ok(format!("{input}.{}", b64(&signature)))
    }
}

async fn issuer(jwks: Value) -> Result<String, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let url = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    let discovery = json!({"issuer": url, "jwks_uri": format!("{url}/jwks")});
    let routes = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { Json(discovery) }),
        )
        .route("/jwks", get(move || async move { Json(jwks) }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, routes).await;
    });
    Ok(url)
}

/// Runs the plan; the JSON has CPU µs per operation (median of the rounds) for each case.
pub async fn run(plan: &Plan) -> Result<Value, String> {
    let keys = Keys::new()?;
    let url = issuer(keys.jwks()).await?;
    let issuers =
        json!([{"issuer": url, "audience": "bedrock-proxy", "caller_claim": "email", "groups_claim": "groups"}]);
    let secret = json!({"tokens": {"ci": STATIC_TOKEN}, "groups": {"engineering": {"models": ["claude-*"]}}});
    let vars: HashMap<String, String> = [
        ("OIDC_ISSUERS", issuers.to_string()),
        ("BEARER_TOKEN", secret.to_string()),
        ("INFERENCE_PROFILE", "us".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let config = Config::from_vars(&vars).map_err(|e| e.to_string())?;
    let state = AppState::from_config(config).await.map_err(|e| e.to_string())?;
    let router = app(state.clone());
    let jwt = state.jwt.as_ref().ok_or("OIDC_ISSUERS was not read")?;
    let tokens = [
        ("static", STATIC_TOKEN.to_string()),
        ("RS256", keys.token("RS256", &url)?),
        ("ES256", keys.token("ES256", &url)?),
    ];
    // Each token once, so that the key set is loaded and every path is warm.
    for (name, token) in &tokens {
        if request(&router, token).await != StatusCode::OK {
            return Err(format!("GET /v1/models with the {name} token was not 200"));
        }
    }

    let mut signature: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut verify: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut requests: HashMap<&str, Vec<f64>> = HashMap::new();
    for _round in 0..plan.rounds {
        for (name, token) in &tokens[1..] {
            let started = thread_cpu_ns();
            for _ in 0..plan.n {
                if !keys.verify_signature(token) {
                    return Err(format!("{name}: the signature does not verify"));
                }
            }
            signature.entry(name).or_default().push(per_op_us(started, plan.n));
        }
        for (name, token) in &tokens[1..] {
            let started = thread_cpu_ns();
            for _ in 0..plan.n {
                jwt.verify(token).await.map_err(|e| format!("{name}: {e}"))?;
            }
            verify.entry(name).or_default().push(per_op_us(started, plan.n));
        }
        for (name, token) in &tokens {
            let started = thread_cpu_ns();
            for _ in 0..plan.n {
                request(&router, token).await;
            }
            requests.entry(name).or_default().push(per_op_us(started, plan.n));
        }
    }
    let medians = |m: HashMap<&str, Vec<f64>>| -> Value {
        m.into_iter()
            .map(|(k, v)| (k.to_string(), json!({"median_us": median(v.clone()), "rounds_us": v})))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    Ok(json!({
        "n": plan.n, "rounds": plan.rounds,
        "token_bytes": {"RS256": tokens[1].1.len(), "ES256": tokens[2].1.len()},
        "signature": medians(signature),
        "verify": medians(verify),
        "request": medians(requests),
    }))
}

fn per_op_us(started_ns: u64, n: u32) -> f64 {
    (thread_cpu_ns() - started_ns) as f64 / 1000.0 / f64::from(n.max(1))
}

async fn request(router: &Router, token: &str) -> StatusCode {
    let req = Request::builder()
        .uri("/v1/models")
        .header("x-api-key", token)
        .body(Body::empty())
        .expect("a valid request");
    match router.clone().oneshot(req).await {
        Ok(response) => {
            let status = response.status();
            // The body is read, as a client would, so the request's whole cost is counted.
            let _ = http_body_util::BodyExt::collect(response.into_body()).await;
            status
        }
        Err(never) => match never {},
    }
}

/// The Markdown table of a run.
pub fn report(result: &Value) -> String {
    let f = |pointer: &str| result.pointer(pointer).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let base = f("/request/static/median_us");
    let mut out = format!(
        "JWT check, CPU per operation (median of {} rounds × {} operations, one thread):\n\n\
         | | signature alone (aws-lc-rs) | check alone (`JwtAuth::verify`) | whole `GET /v1/models` | over a static token |\n\
         |---|---|---|---|---|\n",
        result["rounds"], result["n"]
    );
    out.push_str(&format!("| static token | – | – | {base:.1} µs | – |\n"));
    for alg in ["RS256", "ES256"] {
        let request = f(&format!("/request/{alg}/median_us"));
        out.push_str(&format!(
            "| {alg} JWT ({} bytes) | {:.1} µs | {:.1} µs | {request:.1} µs | +{:.1} µs |\n",
            result["token_bytes"][alg],
            f(&format!("/signature/{alg}/median_us")),
            f(&format!("/verify/{alg}/median_us")),
            request - base
        ));
    }
    out
}
