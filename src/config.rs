//! Typed configuration, read once from the environment at start-up.
//!
//! Every variable the binaries read is named here, so docs/configuration.md's table and the
//! Terraform wiring can be checked against this one file.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;

use crate::auth::issuers::IssuerConfig;
use crate::translate::models::{InferenceProfile, ModelFallbacks, ModelMap};
use crate::upstream::Api;

/// Why the configuration could not be read; the message says what to set.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// Where the bearer tokens come from.
#[derive(Debug, Clone)]
pub enum TokenSourceConfig {
    /// `BEARER_TOKEN_SECRET_ID`: a Secrets Manager secret name or ARN.
    SecretsManager(String),
    /// `BEARER_TOKEN`: static tokens in the secret's format, for local use (never printed).
    Static(SecretString),
    /// Neither is set: allowed only outside Lambda, where a random token is generated and printed.
    Generated,
}

/// Everything the proxy needs to know before it serves a request.
#[derive(Debug, Clone)]
pub struct Config {
    /// True when running inside Lambda (`AWS_LAMBDA_RUNTIME_API` is set).
    pub in_lambda: bool,
    /// Local listen address (`LISTEN_ADDR`).
    pub listen_addr: SocketAddr,
    /// AWS region (`AWS_REGION`, default us-east-1).
    pub region: String,
    /// Token source.
    pub tokens: TokenSourceConfig,
    /// How often tokens are re-read from Secrets Manager (`TOKEN_REFRESH_SECONDS`).
    pub token_refresh: Duration,
    /// Minimum gap between re-reads caused by requests, for an unknown token or while no token
    /// is loaded (`TOKEN_MISS_REFRESH_SECONDS`).
    pub token_miss_refresh: Duration,
    /// Time allowed for one GetSecretValue call (`TOKEN_READ_TIMEOUT_MS`).
    pub token_read_timeout: Duration,
    /// Cross-region inference profile (`INFERENCE_PROFILE`).
    pub inference_profile: InferenceProfile,
    /// Extra or overriding model names (`MODEL_MAP`).
    pub model_map: ModelMap,
    /// Beta flags forwarded on top of the built-in table (`EXTRA_BETA_FLAGS`).
    pub extra_beta_flags: Vec<String>,
    /// Largest accepted request body (`MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Total attempts for throttled or unavailable calls (`UPSTREAM_MAX_ATTEMPTS`).
    pub upstream_max_attempts: u32,
    /// Base delay of the jittered exponential backoff (`UPSTREAM_RETRY_BASE_MS`).
    pub upstream_retry_base: Duration,
    /// Time allowed until Bedrock's first event or full answer (`UPSTREAM_TIMEOUT_SECONDS`).
    pub upstream_timeout: Duration,
    /// Silence on a stream after which a ping is sent (`PING_INTERVAL_MS`).
    pub ping_interval: Duration,
    /// Inside Lambda, how long before the invocation's deadline the proxy ends an answer itself
    /// (`LAMBDA_DEADLINE_MARGIN_MS`).
    pub lambda_deadline_margin: Duration,
    /// Origins for the local CORS layer (`CORS_ALLOW_ORIGINS`); never used inside Lambda.
    pub cors_allow_origins: Vec<String>,
    /// Further targets per model when Bedrock throttles or is unavailable (`MODEL_FALLBACKS`).
    pub model_fallbacks: ModelFallbacks,
    /// Inside Lambda, the CloudWatch namespace of the request lines' metrics (`METRICS_NAMESPACE`).
    pub metrics_namespace: String,
    /// The DynamoDB table of token budgets (`USAGE_TABLE`); budgets are off without it.
    pub usage_table: Option<String>,
    /// How long a read of a caller's usage is trusted (`BUDGET_READ_SECONDS`).
    pub budget_read_every: Duration,
    /// Which Bedrock API serves `/v1/messages` and `count_tokens` (`BEDROCK_API`).
    pub bedrock_api: Api,
    /// Trusted OpenID issuers whose JWTs are accepted beside the static tokens (`OIDC_ISSUERS`,
    /// a JSON array; empty: JWTs are not accepted).
    pub oidc_issuers: Vec<IssuerConfig>,
    /// Mantle's endpoint (`AWS_ENDPOINT_URL_BEDROCK_MANTLE`, aws-config's naming), when not the
    /// region's public one.
    pub mantle_endpoint: Option<String>,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_vars(&vars)
    }

    /// Reads the configuration from a map of variables (what `from_env` and tests use).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let vars = Vars(vars);
        let in_lambda = vars.get("AWS_LAMBDA_RUNTIME_API").is_some();
        let region = vars
            .get("AWS_REGION")
            .or_else(|| vars.get("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_string());
        let inference_profile = match vars.get("INFERENCE_PROFILE") {
            Some(p) => p.parse().map_err(ConfigError)?,
            None => InferenceProfile::default_for_region(&region),
        };
        Ok(Self {
            in_lambda,
            listen_addr: listen_addr(&vars)?,
            tokens: token_source(&vars, in_lambda)?,
            token_refresh: vars.secs("TOKEN_REFRESH_SECONDS", 300)?,
            token_miss_refresh: vars.secs("TOKEN_MISS_REFRESH_SECONDS", 30)?,
            // Secrets Manager answers in well under a second; the cold-start read (two calls)
            // must also fit in Lambda's 10 s init phase.
            token_read_timeout: vars.millis("TOKEN_READ_TIMEOUT_MS", 3000, 1)?,
            inference_profile,
            region,
            model_map: vars.json("MODEL_MAP", ModelMap::parse)?,
            extra_beta_flags: vars.list("EXTRA_BETA_FLAGS"),
            max_body_bytes: vars.number("MAX_BODY_BYTES", 6 * 1024 * 1024)?,
            upstream_max_attempts: vars.number("UPSTREAM_MAX_ATTEMPTS", 3)?.max(1),
            upstream_retry_base: vars.millis("UPSTREAM_RETRY_BASE_MS", 200, 0)?,
            // Lambda's default timeout in our Terraform is 300 s; the first event must come well
            // within it so the caller gets a clean error instead of a killed function.
            upstream_timeout: vars.secs("UPSTREAM_TIMEOUT_SECONDS", 120)?.max(Duration::from_secs(1)),
            ping_interval: vars.millis("PING_INTERVAL_MS", 10_000, 10)?,
            // Enough to write the error event and the log line before Lambda stops the function.
            lambda_deadline_margin: vars.millis("LAMBDA_DEADLINE_MARGIN_MS", 3000, 0)?,
            cors_allow_origins: vars.list("CORS_ALLOW_ORIGINS"),
            bedrock_api: bedrock_api(&vars)?,
            oidc_issuers: vars.json("OIDC_ISSUERS", crate::auth::issuers::parse)?,
            mantle_endpoint: vars
                .get("AWS_ENDPOINT_URL_BEDROCK_MANTLE")
                .or_else(|| vars.get("AWS_ENDPOINT_URL")),
            model_fallbacks: vars.json("MODEL_FALLBACKS", ModelFallbacks::parse)?,
            metrics_namespace: vars
                .get("METRICS_NAMESPACE")
                .unwrap_or_else(|| crate::usage::metrics::DEFAULT_NAMESPACE.into()),
            usage_table: vars.get("USAGE_TABLE"),
            budget_read_every: vars.secs("BUDGET_READ_SECONDS", 10)?,
        })
    }
}

/// The variables, with the parsing rules every setting shares: blank means unset, and a bad
/// value is an error that names the variable.
struct Vars<'a>(&'a HashMap<String, String>);

impl Vars<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, ConfigError> {
        number(&|n: &str| self.get(n), name, default)
    }

    fn secs(&self, name: &str, default: u64) -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(self.number(name, default)?))
    }

    /// Milliseconds, raised to `min` (a zero timeout or ping interval would spin).
    fn millis(&self, name: &str, default: u64, min: u64) -> Result<Duration, ConfigError> {
        Ok(Duration::from_millis(self.number(name, default)?.max(min)))
    }

    /// A comma-separated list; unset is empty.
    fn list(&self, name: &str) -> Vec<String> {
        self.get(name).map(|v| split_list(&v)).unwrap_or_default()
    }

    /// A JSON setting read by `parse`; unset is the type's default.
    fn json<T: Default>(&self, name: &str, parse: fn(&str) -> Result<T, String>) -> Result<T, ConfigError> {
        self.get(name)
            .map_or(Ok(T::default()), |json| parse(&json).map_err(ConfigError))
    }
}

fn token_source(vars: &Vars<'_>, in_lambda: bool) -> Result<TokenSourceConfig, ConfigError> {
    Ok(match (vars.get("BEARER_TOKEN_SECRET_ID"), vars.get("BEARER_TOKEN")) {
        (Some(id), _) => TokenSourceConfig::SecretsManager(id),
        (None, Some(token)) => TokenSourceConfig::Static(token.into()),
        (None, None) if in_lambda => {
            return Err(ConfigError(
                "no token configured: set BEARER_TOKEN_SECRET_ID to the name or ARN of the \
                 Secrets Manager secret holding the bearer token"
                    .into(),
            ))
        }
        (None, None) => TokenSourceConfig::Generated,
    })
}

fn bedrock_api(vars: &Vars<'_>) -> Result<Api, ConfigError> {
    match vars.get("BEDROCK_API").as_deref() {
        None | Some("invoke") => Ok(Api::Invoke),
        Some("mantle") => Ok(Api::Mantle),
        Some(other) => Err(ConfigError(format!(
            "BEDROCK_API must be invoke (Bedrock Runtime's InvokeModel) or mantle (Bedrock's Anthropic \
             Messages endpoint); got {other:?}"
        ))),
    }
}

fn listen_addr(vars: &Vars<'_>) -> Result<SocketAddr, ConfigError> {
    vars.get("LISTEN_ADDR")
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()
        .map_err(|e| ConfigError(format!("LISTEN_ADDR must be host:port, e.g. 127.0.0.1:8080 ({e})")))
}

/// `WORKER_THREADS` (local mode): how many threads serve requests. Read on its own because the
/// runtime must exist before [`Config::from_env`] runs in it.
pub fn worker_threads() -> Result<usize, ConfigError> {
    let get = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    number(&get, "WORKER_THREADS", 1)
}

fn number<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> Result<T, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| ConfigError(format!("{name} must be a non-negative integer, got {v:?}"))),
    }
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn lambda_without_a_token_refuses_to_start() {
        let err = Config::from_vars(&vars(&[("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")])).unwrap_err();
        assert!(err.0.contains("BEARER_TOKEN_SECRET_ID"), "{}", err.0);
    }

    #[test]
    fn local_without_a_token_generates_one() {
        let cfg = Config::from_vars(&vars(&[])).unwrap();
        assert!(matches!(cfg.tokens, TokenSourceConfig::Generated));
        assert_eq!(cfg.listen_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(cfg.region, "us-east-1");
    }

    #[test]
    fn secret_id_wins_over_static_token() {
        let cfg = Config::from_vars(&vars(&[("BEARER_TOKEN_SECRET_ID", "s"), ("BEARER_TOKEN", "t")])).unwrap();
        assert!(matches!(cfg.tokens, TokenSourceConfig::SecretsManager(ref s) if s == "s"));
    }

    #[test]
    fn static_token_is_redacted_in_debug() {
        let cfg = Config::from_vars(&vars(&[("BEARER_TOKEN", "hunter2-secret")])).unwrap();
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn the_deadline_margin_and_the_secret_read_timeout_default_to_three_seconds() {
        let cfg = Config::from_vars(&vars(&[])).unwrap();
        assert_eq!(cfg.lambda_deadline_margin, Duration::from_secs(3));
        assert_eq!(cfg.token_read_timeout, Duration::from_secs(3));
        let cfg = Config::from_vars(&vars(&[
            ("LAMBDA_DEADLINE_MARGIN_MS", "500"),
            ("TOKEN_READ_TIMEOUT_MS", "250"),
        ]))
        .unwrap();
        assert_eq!(cfg.lambda_deadline_margin, Duration::from_millis(500));
        assert_eq!(cfg.token_read_timeout, Duration::from_millis(250));
    }

    #[test]
    fn oidc_issuers_are_read_and_checked_at_start() {
        assert!(Config::from_vars(&vars(&[])).unwrap().oidc_issuers.is_empty());
        let cfg = Config::from_vars(&vars(&[(
            "OIDC_ISSUERS",
            r#"[{"issuer": "https://idp.example.com", "audience": "bedrock-proxy", "caller_claim": "email"}]"#,
        )]))
        .unwrap();
        assert_eq!(cfg.oidc_issuers[0].caller_claim, "email");
        let err =
            Config::from_vars(&vars(&[("OIDC_ISSUERS", r#"[{"issuer": "http://idp.example.com"}]"#)])).unwrap_err();
        assert!(err.0.contains("OIDC_ISSUERS"), "{}", err.0);
    }

    #[test]
    fn bad_numbers_say_which_variable() {
        let err = Config::from_vars(&vars(&[("MAX_BODY_BYTES", "lots")])).unwrap_err();
        assert!(err.0.contains("MAX_BODY_BYTES"));
    }
}
