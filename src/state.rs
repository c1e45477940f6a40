//! The process state: configuration, the upstream (AWS clients and caches), the token store
//! and budgets, built once per process (once per Lambda instance) and shared by every request.

use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::timeout::TimeoutConfig;
use aws_sdk_bedrockruntime::config::StalledStreamProtectionConfig;
use secrecy::ExposeSecret;

use crate::auth::jwt::JwtAuth;
use crate::auth::tokens::{NamedToken, RefreshPolicy, TokenSet, TokenStore};
use crate::config::{Config, TokenSourceConfig};
use crate::translate::models::ModelResolver;
use crate::translate::request::BetaFilter;
use crate::upstream::invoke::Bedrock;
use crate::upstream::mantle::Mantle;
use crate::upstream::retry::RetryPolicy;
use crate::upstream::{Parts, Upstream};
use crate::usage::budgets::Budgets;

/// Why the proxy could not start; each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A setting is missing or malformed.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// `BEARER_TOKEN` is not in the secret's format.
    #[error("BEARER_TOKEN: {0}")]
    BearerToken(String),
    /// The OS gave no randomness for a generated token.
    #[error("generating a token: {0}")]
    Random(String),
    /// The Mantle client could not be built (its TLS roots).
    #[error("{0}")]
    Mantle(String),
    /// The client for the OIDC issuers' keys could not be built (its TLS roots).
    #[error("{0}")]
    Oidc(String),
}

/// Everything a request needs, built once per process (once per Lambda instance).
pub struct AppState {
    /// The configuration read at start.
    pub config: Config,
    /// Where requests go: InvokeModel or Mantle, with retries, failover and healing.
    pub upstream: Upstream,
    /// The accepted bearer tokens (and the secret's groups).
    pub tokens: TokenStore,
    /// JWT callers, when `OIDC_ISSUERS` names issuers.
    pub jwt: Option<JwtAuth>,
    /// Token budgets, when `USAGE_TABLE` is set.
    pub budgets: Option<Arc<Budgets>>,
}

impl AppState {
    /// Builds the AWS clients and reads the tokens (from Secrets Manager at cold start, when
    /// configured). Outside Lambda with no token configured, a random one is generated and
    /// printed once.
    pub async fn from_config(config: Config) -> Result<Arc<Self>, StartupError> {
        let sdk = load_sdk_config(&config.region).await;
        if !config.in_lambda {
            warn_without_credentials(&sdk);
        }
        Self::new(config, &sdk).await
    }

    /// Like [`AppState::from_config`], with the AWS configuration given (tests point it at
    /// the Bedrock emulator and moto).
    pub async fn new(config: Config, sdk: &aws_config::SdkConfig) -> Result<Arc<Self>, StartupError> {
        let upstream = upstream(&config, sdk)?;
        let jwt = JwtAuth::new(&config.oidc_issuers).map_err(StartupError::Oidc)?;
        // The secret and the issuers' keys are read side by side, so cold start waits for the
        // slower of the two, not both.
        let load_keys = async {
            if let Some(jwt) = &jwt {
                jwt.load().await;
            }
        };
        let (tokens, ()) = tokio::join!(token_store(&config, sdk), load_keys);
        let tokens = tokens?;
        let budgets = config.usage_table.clone().map(|table| {
            Arc::new(Budgets::new(
                aws_sdk_dynamodb::Client::new(sdk),
                table,
                config.budget_read_every,
            ))
        });
        Ok(Arc::new(Self {
            upstream,
            tokens,
            jwt,
            budgets,
            config,
        }))
    }
}

/// Bedrock Runtime's client, with our retries instead of the SDK's.
fn bedrock(config: &Config, sdk: &aws_config::SdkConfig) -> Bedrock {
    let bedrock_config = aws_sdk_bedrockruntime::config::Builder::from(sdk)
        // Retries are ours (upstream/retry.rs), so that errors in a stream's first event are
        // retried the same way as HTTP errors, and so attempts are not multiplied.
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .build(),
        )
        // Bedrock may pause between events while the model thinks; our own ping keeps the
        // caller's connection alive, and the stall guard only has to catch dead sockets.
        .stalled_stream_protection(
            StalledStreamProtectionConfig::enabled()
                .grace_period(config.upstream_timeout)
                .build(),
        )
        .build();
    let policy = RetryPolicy {
        max_attempts: config.upstream_max_attempts,
        base_delay: config.upstream_retry_base,
        timeout: config.upstream_timeout,
        // Set per request, from the Lambda invocation (`Bedrock::for_request`).
        deadline: None,
        log: None,
    };
    Bedrock::new(aws_sdk_bedrockruntime::Client::from_conf(bedrock_config), policy)
}

fn upstream(config: &Config, sdk: &aws_config::SdkConfig) -> Result<Upstream, StartupError> {
    // aws-config has no Mantle client, so its endpoint variable is read by us; a global
    // endpoint override (tests, emulators) applies to Mantle too.
    let mantle_endpoint = config.mantle_endpoint.as_deref().or(sdk.endpoint_url());
    let mantle = Mantle::new(sdk, mantle_endpoint, &config.region).map_err(StartupError::Mantle)?;
    Ok(Upstream::new(Parts {
        api: config.bedrock_api,
        bedrock: bedrock(config, sdk),
        mantle,
        betas: BetaFilter::new(config.extra_beta_flags.clone()),
        models: ModelResolver::new(config.inference_profile, config.model_map.clone()),
        fallbacks: config.model_fallbacks.clone(),
        ping: config.ping_interval,
    }))
}

async fn token_store(config: &Config, sdk: &aws_config::SdkConfig) -> Result<TokenStore, StartupError> {
    Ok(match &config.tokens {
        TokenSourceConfig::SecretsManager(secret_id) => {
            // No SDK retries: the store's own rate-limited re-reads are the retries, and an
            // outage then costs one call per read instead of three.
            let secrets_config = aws_sdk_secretsmanager::config::Builder::from(sdk)
                .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled())
                .build();
            let store = TokenStore::secrets_manager(
                aws_sdk_secretsmanager::Client::from_conf(secrets_config),
                secret_id.clone(),
                RefreshPolicy {
                    every: config.token_refresh,
                    on_miss_at_most_every: config.token_miss_refresh,
                    read_timeout: config.token_read_timeout,
                },
            );
            store.load().await;
            store
        }
        // The same format as the secret, so named callers and their policies work locally.
        TokenSourceConfig::Static(token) => {
            TokenStore::fixed(TokenSet::parse(token.expose_secret()).map_err(StartupError::BearerToken)?)
        }
        TokenSourceConfig::Generated => {
            let token = crate::auth::tokens::generate_token().map_err(|e| StartupError::Random(e.to_string()))?;
            // Printed once, on purpose, to the terminal only (not through the logger), so
            // that a local user can copy it.
            eprintln!(
                "No BEARER_TOKEN or BEARER_TOKEN_SECRET_ID set; generated a token for this run:\n\n    {token}\n\n\
                 Use it as ANTHROPIC_AUTH_TOKEN (Authorization: Bearer) or ANTHROPIC_API_KEY (x-api-key)."
            );
            TokenStore::fixed(TokenSet::new(vec![NamedToken::new("default", token)]))
        }
    })
}

/// How long the start-up check waits for AWS credentials. The default chain can spend seconds
/// on an unreachable instance metadata service; that must not look like missing credentials.
const CREDENTIALS_CHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// Locally, missing AWS credentials are the usual first-run mistake, and every Bedrock call
/// would fail on them: say so once, at start. Checked in the background, so that start-up
/// never waits on a slow credentials provider. (Inside Lambda the role always provides them.)
fn warn_without_credentials(sdk: &aws_config::SdkConfig) {
    use aws_credential_types::provider::ProvideCredentials;
    let Some(provider) = sdk.credentials_provider() else {
        tracing::warn!("no AWS credentials provider is configured; requests to Bedrock will fail");
        return;
    };
    tokio::spawn(async move {
        match tokio::time::timeout(CREDENTIALS_CHECK, provider.provide_credentials()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(
                detail = %aws_sdk_bedrockruntime::error::DisplayErrorContext(&e),
                "{}; requests to Bedrock will fail until that is fixed",
                crate::upstream::invoke::credentials_advice(&e)
            ),
            Err(_) => tracing::warn!(
                "no AWS credentials within {} s (the credentials provider chain is still trying, \
                 e.g. an unreachable instance metadata service); requests to Bedrock may fail",
                CREDENTIALS_CHECK.as_secs()
            ),
        }
    });
}

/// The AWS configuration from the usual sources (environment, profile, IMDS/Lambda role),
/// including the `AWS_ENDPOINT_URL_*` overrides.
pub async fn load_sdk_config(region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .load()
        .await
}
