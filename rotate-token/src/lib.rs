//! Rotation of the bearer-token secret: the four steps Secrets Manager asks a rotation function
//! to run (`createSecret`, `setSecret`, `testSecret`, `finishSecret`), each safe to repeat.
//!
//! The new value keeps the secret's format: a plain string gets one new token; a JSON secret
//! `{"tokens": {...}}` gets a new token for every caller, under the same names. The proxy reads
//! the secret itself, so `setSecret` has nothing to change elsewhere, and callers holding the
//! previous tokens keep working (AWSPREVIOUS) until the next rotation.

use std::collections::HashMap;

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use secrecy::ExposeSecret;
use serde::Deserialize;

use bedrock_anthropic_proxy::auth::secret::{self, FreshTokensError};
use bedrock_anthropic_proxy::auth::tokens::generate_token;

/// The staging label of the version callers use now.
pub const AWSCURRENT: &str = "AWSCURRENT";
/// The staging label of the version being rotated in.
pub const AWSPENDING: &str = "AWSPENDING";
/// The shortest token `testSecret` accepts: 256 bits in URL-safe base64 without padding.
pub const MIN_TOKEN_LEN: usize = 43;

/// The rotation step Secrets Manager asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    /// Store new tokens as the AWSPENDING version.
    CreateSecret,
    /// Install the pending tokens wherever they are checked (nothing to do: the proxy reads them).
    SetSecret,
    /// Check that the pending version is a token secret the proxy accepts.
    TestSecret,
    /// Make the pending version AWSCURRENT.
    FinishSecret,
}

/// The event Secrets Manager sends to a rotation function.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotationEvent {
    /// Which step to run.
    pub step: Step,
    /// The secret's name or ARN.
    pub secret_id: String,
    /// The version ID of the new (AWSPENDING) version.
    pub client_request_token: String,
    /// Proof of origin Secrets Manager asks to be passed back on PutSecretValue when the
    /// function runs under an assumed role or in another account. Sensitive: never logged.
    #[serde(default)]
    pub rotation_token: Option<String>,
}

impl std::fmt::Debug for RotationEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotationEvent")
            .field("step", &self.step)
            .field("secret_id", &self.secret_id)
            .field("client_request_token", &self.client_request_token)
            .field("rotation_token", &self.rotation_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why a rotation step failed. Messages name the secret and version, never a token.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// DescribeSecret says rotation is off.
    #[error("rotation is not enabled for secret {secret}; turn it on (console, or `aws secretsmanager rotate-secret --rotation-lambda-arn ...`) before this function is invoked")]
    RotationNotEnabled {
        /// The secret.
        secret: String,
    },
    /// The version in the event is not one of the secret's versions.
    #[error("version {version} of secret {secret} has no staging label; start rotations with RotateSecret, which creates it")]
    UnknownVersion {
        /// The secret.
        secret: String,
        /// The event's ClientRequestToken.
        version: String,
    },
    /// The version exists but is neither AWSCURRENT nor AWSPENDING.
    #[error(
        "version {version} of secret {secret} is not AWSPENDING, so it is not being rotated in; start a new rotation"
    )]
    NotPending {
        /// The secret.
        secret: String,
        /// The event's ClientRequestToken.
        version: String,
    },
    /// A version holds binary data or nothing.
    #[error("the {stage} version of secret {secret} has no string value; the secret must hold a plain token or {{\"tokens\": {{\"name\": \"token\"}}}}")]
    NoStringValue {
        /// The secret.
        secret: String,
        /// AWSCURRENT or AWSPENDING.
        stage: &'static str,
    },
    /// A version's value is not a token secret the proxy can read.
    #[error("the {stage} version of secret {secret} is not a valid token secret: {reason}")]
    InvalidValue {
        /// The secret.
        secret: String,
        /// AWSCURRENT or AWSPENDING.
        stage: &'static str,
        /// What is wrong with it (no token values).
        reason: String,
    },
    /// A pending token is too short to be one this function generated.
    #[error("the AWSPENDING token for caller {name:?} in secret {secret} has {len} characters; at least {MIN_TOKEN_LEN} are required, so delete that version and rotate again")]
    TokenTooShort {
        /// The secret.
        secret: String,
        /// The caller the token belongs to.
        name: String,
        /// Its length.
        len: usize,
    },
    /// The OS random source failed.
    #[error("could not generate a token from the OS random source: {0}")]
    Random(String),
    /// A Secrets Manager call failed.
    #[error("secrets manager {operation} on {secret} failed: {message}")]
    SecretsManager {
        /// The API operation.
        operation: &'static str,
        /// The secret.
        secret: String,
        /// The service's error code and message, or the transport error.
        message: String,
    },
}

impl RotationError {
    /// The variant's name, reported to Lambda as the error type.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RotationNotEnabled { .. } => "RotationNotEnabled",
            Self::UnknownVersion { .. } => "UnknownVersion",
            Self::NotPending { .. } => "NotPending",
            Self::NoStringValue { .. } => "NoStringValue",
            Self::InvalidValue { .. } => "InvalidValue",
            Self::TokenTooShort { .. } => "TokenTooShort",
            Self::Random(_) => "Random",
            Self::SecretsManager { .. } => "SecretsManager",
        }
    }

    fn service<E, R>(operation: &'static str, secret: &str, e: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let message = match (e.code(), e.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_string(),
            _ => aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
        };
        Self::SecretsManager {
            operation,
            secret: secret.to_string(),
            message,
        }
    }
}

impl From<RotationError> for lambda_runtime::Diagnostic {
    fn from(e: RotationError) -> Self {
        Self {
            error_type: e.kind().to_string(),
            error_message: e.to_string(),
        }
    }
}

/// Runs rotation steps against one Secrets Manager client.
#[derive(Debug, Clone)]
pub struct Rotator {
    client: aws_sdk_secretsmanager::Client,
}

impl Rotator {
    /// A rotator using `client` (built once per Lambda instance).
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        Self { client }
    }

    /// Runs one step. Checks first, as AWS's rotation template does, that rotation is enabled
    /// and that the event's version is AWSPENDING; a version already AWSCURRENT means the
    /// rotation is over, so the step does nothing.
    pub async fn run(&self, event: &RotationEvent) -> Result<(), RotationError> {
        let result = self.run_step(event).await;
        if let Err(e) = &result {
            tracing::error!(
                step = ?event.step,
                secret_id = %event.secret_id,
                version = %event.client_request_token,
                error = %e,
                "rotation step failed"
            );
        }
        result
    }

    async fn run_step(&self, event: &RotationEvent) -> Result<(), RotationError> {
        let secret = event.secret_id.as_str();
        let version = event.client_request_token.as_str();
        tracing::info!(step = ?event.step, secret_id = %secret, version = %version, "rotation step");

        let metadata = self
            .client
            .describe_secret()
            .secret_id(secret)
            .send()
            .await
            .map_err(|e| RotationError::service("DescribeSecret", secret, &e))?;
        if metadata.rotation_enabled() != Some(true) {
            return Err(RotationError::RotationNotEnabled {
                secret: secret.to_string(),
            });
        }
        let empty = HashMap::new();
        let versions = metadata.version_ids_to_stages().unwrap_or(&empty);
        let Some(stages) = versions.get(version) else {
            return Err(RotationError::UnknownVersion {
                secret: secret.to_string(),
                version: version.to_string(),
            });
        };
        if has(stages, AWSCURRENT) {
            tracing::info!(step = ?event.step, secret_id = %secret, version = %version, "version is already AWSCURRENT; nothing to do");
            return Ok(());
        }
        if !has(stages, AWSPENDING) {
            return Err(RotationError::NotPending {
                secret: secret.to_string(),
                version: version.to_string(),
            });
        }

        match event.step {
            Step::CreateSecret => self.create(event).await,
            Step::SetSecret => {
                // The proxy reads the secret on its own (on a miss within seconds, or every
                // TOKEN_REFRESH_SECONDS), so there is no other system to update.
                tracing::info!(secret_id = %secret, version = %version, "setSecret: nothing to set; the proxy reads the secret itself");
                Ok(())
            }
            Step::TestSecret => self.test(secret, version).await,
            Step::FinishSecret => self.finish(secret, version, versions).await,
        }
    }

    /// Stores new tokens under the event's version, unless that version already has a value.
    async fn create(&self, event: &RotationEvent) -> Result<(), RotationError> {
        let secret = event.secret_id.as_str();
        let version = event.client_request_token.as_str();
        let current = self
            .client
            .get_secret_value()
            .secret_id(secret)
            .version_stage(AWSCURRENT)
            .send()
            .await
            .map_err(|e| RotationError::service("GetSecretValue", secret, &e))?;

        match self
            .client
            .get_secret_value()
            .secret_id(secret)
            .version_id(version)
            .version_stage(AWSPENDING)
            .send()
            .await
        {
            Ok(_) => {
                tracing::info!(secret_id = %secret, version = %version, "createSecret: the pending version already has a value; keeping it");
                return Ok(());
            }
            // RotateSecret created the version without a value; that is the normal case.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) => {}
            Err(e) => return Err(RotationError::service("GetSecretValue", secret, &e)),
        }

        let current = current.secret_string().ok_or_else(|| RotationError::NoStringValue {
            secret: secret.to_string(),
            stage: AWSCURRENT,
        })?;
        let (new_value, callers) = rotated_value(current).map_err(|e| match e {
            FreshTokensError::Invalid(reason) => RotationError::InvalidValue {
                secret: secret.to_string(),
                stage: AWSCURRENT,
                reason,
            },
            FreshTokensError::Random(e) => RotationError::Random(e),
        })?;
        self.client
            .put_secret_value()
            .secret_id(secret)
            .client_request_token(version)
            .secret_string(new_value)
            .version_stages(AWSPENDING)
            .set_rotation_token(event.rotation_token.clone())
            .send()
            .await
            .map_err(|e| RotationError::service("PutSecretValue", secret, &e))?;
        tracing::info!(secret_id = %secret, version = %version, callers, "createSecret: new tokens stored as AWSPENDING");
        Ok(())
    }

    /// Checks that the pending version parses as the proxy parses it and holds long tokens.
    async fn test(&self, secret: &str, version: &str) -> Result<(), RotationError> {
        let pending = self
            .client
            .get_secret_value()
            .secret_id(secret)
            .version_id(version)
            .version_stage(AWSPENDING)
            .send()
            .await
            .map_err(|e| RotationError::service("GetSecretValue", secret, &e))?;
        let value = pending.secret_string().ok_or_else(|| RotationError::NoStringValue {
            secret: secret.to_string(),
            stage: AWSPENDING,
        })?;
        let lengths = token_lengths(value).map_err(|reason| RotationError::InvalidValue {
            secret: secret.to_string(),
            stage: AWSPENDING,
            reason,
        })?;
        if let Some((name, len)) = lengths.iter().find(|(_, len)| *len < MIN_TOKEN_LEN) {
            return Err(RotationError::TokenTooShort {
                secret: secret.to_string(),
                name: name.clone(),
                len: *len,
            });
        }
        tracing::info!(secret_id = %secret, version = %version, callers = lengths.len(), "testSecret: pending tokens are valid");
        Ok(())
    }

    /// Moves AWSCURRENT to the event's version (Secrets Manager moves AWSPREVIOUS to the old
    /// one), then takes AWSPENDING off it, as AWS's rotation template does.
    async fn finish(
        &self,
        secret: &str,
        version: &str,
        versions: &HashMap<String, Vec<String>>,
    ) -> Result<(), RotationError> {
        let current = versions
            .iter()
            .find(|(_, stages)| has(stages, AWSCURRENT))
            .map(|(id, _)| id.clone());
        if current.as_deref() == Some(version) {
            tracing::info!(secret_id = %secret, version = %version, "finishSecret: already AWSCURRENT");
            return Ok(());
        }
        self.client
            .update_secret_version_stage()
            .secret_id(secret)
            .version_stage(AWSCURRENT)
            .move_to_version_id(version)
            .set_remove_from_version_id(current.clone())
            .send()
            .await
            .map_err(|e| RotationError::service("UpdateSecretVersionStage", secret, &e))?;
        self.client
            .update_secret_version_stage()
            .secret_id(secret)
            .version_stage(AWSPENDING)
            .remove_from_version_id(version)
            .send()
            .await
            .map_err(|e| RotationError::service("UpdateSecretVersionStage", secret, &e))?;
        tracing::info!(
            secret_id = %secret,
            version = %version,
            previous = current.as_deref().unwrap_or("-"),
            "finishSecret: version is now AWSCURRENT"
        );
        Ok(())
    }
}

fn has(stages: &[String], stage: &str) -> bool {
    stages.iter().any(|s| s == stage)
}

/// A new secret value in the format of `current`, with fresh tokens under the same names, and
/// the number of callers it holds. Policies and other top-level JSON fields are kept as they are.
fn rotated_value(current: &str) -> Result<(String, usize), FreshTokensError> {
    secret::with_fresh_tokens(current, || generate_token().map_err(|e| e.to_string()))
}

/// Each caller's name and token length, after checking the value as the proxy would read it.
fn token_lengths(value: &str) -> Result<Vec<(String, usize)>, String> {
    Ok(secret::parse(value)?
        .into_iter()
        .map(|c| (c.name, c.token.expose_secret().len()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_from_secrets_manager_deserialize() {
        let event: RotationEvent = serde_json::from_str(
            r#"{"Step":"createSecret","SecretId":"arn:aws:secretsmanager:us-east-1:1:secret:t","ClientRequestToken":"3c7a2c9e-0000-4000-8000-000000000000","RotationToken":"rt-sekrit"}"#,
        )
        .unwrap();
        assert_eq!(event.step, Step::CreateSecret);
        assert_eq!(event.client_request_token, "3c7a2c9e-0000-4000-8000-000000000000");
        assert!(!format!("{event:?}").contains("rt-sekrit"));
        for (name, step) in [
            ("setSecret", Step::SetSecret),
            ("testSecret", Step::TestSecret),
            ("finishSecret", Step::FinishSecret),
        ] {
            let json = format!(r#"{{"Step":"{name}","SecretId":"s","ClientRequestToken":"v"}}"#);
            let event: RotationEvent = serde_json::from_str(&json).unwrap();
            assert_eq!(event.step, step);
            assert!(event.rotation_token.is_none());
        }
        assert!(
            serde_json::from_str::<RotationEvent>(r#"{"Step":"bogus","SecretId":"s","ClientRequestToken":"v"}"#)
                .is_err()
        );
    }

    #[test]
    fn a_plain_secret_gets_one_new_long_token() {
        let (value, callers) = rotated_value("old-token\n").unwrap();
        assert_eq!(callers, 1);
        assert_ne!(value, "old-token");
        assert_eq!(value.len(), MIN_TOKEN_LEN);
        assert_eq!(
            token_lengths(&value).unwrap(),
            vec![("default".to_string(), MIN_TOKEN_LEN)]
        );
    }

    #[test]
    fn a_json_secret_keeps_names_and_other_fields() {
        let current = r#"{"tokens": {"alice": "a-old", "ci": "c-old"}, "owner": "team-x"}"#;
        let (value, callers) = rotated_value(current).unwrap();
        assert_eq!(callers, 2);
        let doc: serde_json::Value = serde_json::from_str(&value).unwrap();
        assert_eq!(doc["owner"], "team-x");
        let tokens = doc["tokens"].as_object().unwrap();
        assert_eq!(tokens.keys().collect::<Vec<_>>(), ["alice", "ci"]);
        assert_ne!(tokens["alice"], tokens["ci"]);
        assert!(!value.contains("a-old") && !value.contains("c-old"));
        let lengths = token_lengths(&value).unwrap();
        assert!(lengths.iter().all(|(_, len)| *len == MIN_TOKEN_LEN), "{lengths:?}");
    }

    #[test]
    fn an_unreadable_current_value_is_not_rotated() {
        assert!(matches!(
            rotated_value(r#"{"token": "x"}"#),
            Err(FreshTokensError::Invalid(_))
        ));
        assert!(matches!(rotated_value("  "), Err(FreshTokensError::Invalid(_))));
    }

    #[test]
    fn short_tokens_are_measured_per_caller() {
        let lengths = token_lengths(r#"{"tokens": {"alice": "short", "ci": " padded "}}"#).unwrap();
        assert_eq!(lengths, vec![("alice".to_string(), 5), ("ci".to_string(), 6)]);
    }

    #[test]
    fn errors_name_their_kind_and_never_carry_values() {
        let e = RotationError::TokenTooShort {
            secret: "s".into(),
            name: "alice".into(),
            len: 5,
        };
        let d: lambda_runtime::Diagnostic = e.into();
        assert_eq!(d.error_type, "TokenTooShort");
        assert!(d.error_message.contains("alice") && d.error_message.contains("43"));
    }
}
