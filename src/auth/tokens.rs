//! Bearer tokens: where they come from (a static value or Secrets Manager), how they are kept
//! fresh (periodic and on-miss re-reads, single-flight, rate-limited), and the constant-time
//! check of what a caller presents.
//!
//! Secrets Manager holds either one token (a plain string) or several named callers
//! (`{"tokens": {"alice": "...", "ci": "..."}}`). Both the AWSCURRENT and the AWSPREVIOUS
//! versions are accepted, so a caller holding the previous token survives one rotation.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use secrecy::{ExposeSecret, SecretSlice};
use subtle::ConstantTimeEq;
use tokio::sync::watch;

use std::collections::BTreeMap;

use crate::auth::policy::{CallerPolicy, GroupPolicy};
use crate::auth::secret::TokenEntry;
use crate::auth::Caller;
use crate::error::ProxyError;
use crate::sync::IgnorePoison;

/// One caller's token. The value never appears in `Debug` output or logs.
#[derive(Clone)]
pub struct NamedToken {
    /// Who presents it: the name logged with each request, and the caller's policy.
    pub caller: Caller,
    value: SecretSlice<u8>,
}

impl NamedToken {
    /// A token for the caller `name`, with no limits.
    pub fn new(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            caller: Caller::new(name, CallerPolicy::default()),
            value: value.into().into(),
        }
    }
}

impl From<TokenEntry> for NamedToken {
    fn from(entry: TokenEntry) -> Self {
        Self {
            caller: Caller::new(entry.name, entry.policy),
            value: entry.token.expose_secret().as_bytes().to_vec().into(),
        }
    }
}

impl std::fmt::Debug for NamedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedToken")
            .field("caller", &self.caller.name)
            .finish_non_exhaustive()
    }
}

/// The tokens accepted right now, and the group policies JWT callers get.
#[derive(Debug, Clone, Default)]
pub struct TokenSet {
    tokens: Vec<NamedToken>,
    groups: Arc<BTreeMap<String, GroupPolicy>>,
}

impl TokenSet {
    /// A set holding exactly these tokens, and no groups.
    pub fn new(tokens: Vec<NamedToken>) -> Self {
        Self {
            tokens,
            groups: Arc::default(),
        }
    }

    /// The tokens and groups a secret's value holds (its format: `crate::auth::secret`).
    pub fn parse(value: &str) -> Result<Self, String> {
        let secret = crate::auth::secret::parse_secret(value)?;
        Ok(Self {
            tokens: secret.tokens.into_iter().map(NamedToken::from).collect(),
            groups: Arc::new(secret.groups),
        })
    }

    /// The secret's `groups`: the policies JWT callers get by the groups they are in.
    pub fn groups(&self) -> &Arc<BTreeMap<String, GroupPolicy>> {
        &self.groups
    }

    /// The caller whose token equals `presented`.
    ///
    /// Every stored token is compared, each in constant time, so the time taken does not tell
    /// how much of a token was right or which caller it belongs to.
    pub fn find(&self, presented: &[u8]) -> Option<&Caller> {
        let mut found = None;
        for token in &self.tokens {
            let equal: bool = token.value.expose_secret().ct_eq(presented).into();
            if equal && found.is_none() {
                found = Some(&token.caller);
            }
        }
        found
    }

    /// Number of tokens (both versions, all callers).
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// True when no token is held.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// The tokens a secret's value holds (its format: `crate::auth::secret`).
pub fn parse_secret(value: &str) -> Result<Vec<NamedToken>, String> {
    Ok(TokenSet::parse(value)?.tokens)
}

/// Generates a fresh URL-safe token with 256 bits from the OS CSPRNG.
pub fn generate_token() -> Result<String, getrandom::Error> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// How often the store goes back to Secrets Manager, and how long it waits for it.
#[derive(Debug, Clone, Copy)]
pub struct RefreshPolicy {
    /// Re-read at least this often (`TOKEN_REFRESH_SECONDS`).
    pub every: Duration,
    /// Reads caused by requests (an unknown token, or no token loaded at all) happen at once
    /// but no more often than this (`TOKEN_MISS_REFRESH_SECONDS`).
    pub on_miss_at_most_every: Duration,
    /// Time allowed for one GetSecretValue call (`TOKEN_READ_TIMEOUT_MS`).
    pub read_timeout: Duration,
}

enum Source {
    Static,
    SecretsManager {
        client: aws_sdk_secretsmanager::Client,
        secret_id: String,
        policy: RefreshPolicy,
    },
}

struct Inner {
    source: Source,
    tokens: RwLock<Option<Arc<TokenSet>>>,
    /// Never held across an await: a hung Secrets Manager must not hold up anyone but the one
    /// task that reads it.
    reads: Mutex<Reads>,
}

#[derive(Default)]
struct Reads {
    /// The read in flight, if any: whoever needs its outcome waits on it (it turns `true` when
    /// the read is over) instead of starting another.
    in_flight: Option<watch::Receiver<bool>>,
    /// When the last read finished, successful or not, except a failed cold-start read: after
    /// one, the first request may try again at once.
    last_attempt: Option<Instant>,
    /// When the last successful read finished, for the periodic refresh.
    last_success: Option<Instant>,
}

/// The token store shared by all requests.
#[derive(Clone)]
pub struct TokenStore {
    inner: Arc<Inner>,
}

impl TokenStore {
    /// A store holding fixed tokens (`BEARER_TOKEN`, or a generated local token).
    pub fn fixed(tokens: TokenSet) -> Self {
        Self::with(Source::Static, Some(tokens))
    }

    /// A store that reads `secret_id` from Secrets Manager. Call [`TokenStore::load`] at start.
    pub fn secrets_manager(client: aws_sdk_secretsmanager::Client, secret_id: String, policy: RefreshPolicy) -> Self {
        Self::with(
            Source::SecretsManager {
                client,
                secret_id,
                policy,
            },
            None,
        )
    }

    fn with(source: Source, tokens: Option<TokenSet>) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                tokens: RwLock::new(tokens.map(Arc::new)),
                reads: Mutex::new(Reads::default()),
            }),
        }
    }

    /// The first read, at cold start. A failure is logged, not fatal: requests then get 503
    /// and the read is retried on the next request.
    pub async fn load(&self) {
        self.refresh(Trigger::Start).await;
    }

    /// Checks the tokens a caller presented and returns the caller.
    pub async fn authenticate(&self, presented: &[&str]) -> Result<Caller, ProxyError> {
        let presented: Vec<&str> = presented.iter().copied().filter(|t| !t.is_empty()).collect();
        if presented.is_empty() {
            return Err(ProxyError::Authentication(
                "missing bearer token: send 'Authorization: Bearer <token>' or 'x-api-key: <token>'".into(),
            ));
        }

        let set = self.loaded().await?;
        if let Some(name) = find_any(&set, &presented) {
            return Ok(name);
        }
        // Unknown token: it may have just been set in the console. Re-read, rate-limited.
        if self.refresh(Trigger::Miss).await {
            if let Some(set) = self.current() {
                if let Some(name) = find_any(&set, &presented) {
                    return Ok(name);
                }
            }
        }
        Err(crate::auth::unauthorized())
    }

    /// The secret's groups, for a JWT caller's policy; 503 like a static token when the secret
    /// was never read.
    pub async fn groups(&self) -> Result<Arc<BTreeMap<String, GroupPolicy>>, ProxyError> {
        Ok(self.loaded().await?.groups.clone())
    }

    /// The set held now (refreshed in the background when due), or, when none was ever read,
    /// the outcome of one more read.
    async fn loaded(&self) -> Result<Arc<TokenSet>, ProxyError> {
        if let Some(set) = self.current() {
            self.maybe_refresh_in_background();
            return Ok(set);
        }
        // No token was ever read. Try again, single-flight and rate-limited like a miss
        // (anyone can send a token, so anyone could otherwise drive Secrets Manager
        // calls), and never let anyone in without tokens to compare against.
        self.refresh(Trigger::Empty).await;
        self.current().ok_or_else(|| {
            ProxyError::TokenStoreUnavailable(
                "the token store (Secrets Manager) is unavailable, so no request can be authenticated; try again shortly"
                    .into(),
            )
        })
    }

    fn current(&self) -> Option<Arc<TokenSet>> {
        self.inner.tokens.read().ignore_poison().clone()
    }

    fn maybe_refresh_in_background(&self) {
        // The read runs in its own task; nobody waits for it.
        let _ = self.start_read(Trigger::Periodic);
    }

    /// Waits for a read: one already in flight, or a new one if `trigger` makes one due.
    /// Returns true when a read finished after we asked.
    async fn refresh(&self, trigger: Trigger) -> bool {
        let Some(mut done) = self.start_read(trigger) else {
            return false;
        };
        // The read task always ends (it is bounded by the read timeout) and always says so,
        // even if it panics; an error here only means it is gone, which is also "over".
        let _ = done.wait_for(|over| *over).await;
        true
    }

    /// Joins the read in flight, or starts one in its own task if `trigger` makes one due.
    /// The task, not the caller, owns the read: a caller that gives up (its client left) does
    /// not cancel a read others are waiting for.
    fn start_read(&self, trigger: Trigger) -> Option<watch::Receiver<bool>> {
        let Source::SecretsManager { policy, .. } = &self.inner.source else {
            return None;
        };
        let mut reads = self.inner.reads.lock().ignore_poison();
        if let Some(in_flight) = &reads.in_flight {
            return Some(in_flight.clone());
        }
        let since = |t: Option<Instant>| t.map(|t| t.elapsed());
        let due = match trigger {
            Trigger::Start => true,
            Trigger::Empty | Trigger::Miss => {
                since(reads.last_attempt).is_none_or(|gap| gap >= policy.on_miss_at_most_every)
            }
            Trigger::Periodic => {
                // A failed read is retried no sooner than the shorter of the two intervals, so
                // a miss limit longer than the refresh interval does not stop the refresh.
                let retry_gap = policy.every.min(policy.on_miss_at_most_every);
                since(reads.last_success).is_none_or(|age| age >= policy.every)
                    && since(reads.last_attempt).is_none_or(|gap| gap >= retry_gap)
            }
        };
        if !due {
            return None;
        }
        let (over, done) = watch::channel(false);
        reads.in_flight = Some(done.clone());
        drop(reads);
        let finished = ReadFinished {
            store: self.clone(),
            over,
        };
        tokio::spawn(async move {
            finished.store.read(trigger).await;
            drop(finished);
        });
        Some(done)
    }

    /// One read of the secret (AWSCURRENT and AWSPREVIOUS), each call bounded by the read
    /// timeout, and what follows from it.
    async fn read(&self, trigger: Trigger) {
        let Source::SecretsManager {
            client,
            secret_id,
            policy,
        } = &self.inner.source
        else {
            return;
        };
        let result = read_secret(client, secret_id, policy.read_timeout).await;
        let now = Instant::now();
        {
            let mut reads = self.inner.reads.lock().ignore_poison();
            if trigger != Trigger::Start || result.is_ok() {
                reads.last_attempt = Some(now);
            }
            if result.is_ok() {
                reads.last_success = Some(now);
            }
        }
        match result {
            Ok(set) => {
                tracing::info!(
                    tokens = set.len(),
                    ?trigger,
                    "bearer tokens loaded from secrets manager"
                );
                *self.inner.tokens.write().ignore_poison() = Some(Arc::new(set));
            }
            Err(message) if self.current().is_some() => {
                tracing::warn!(error = %message, ?trigger, "could not re-read bearer tokens; keeping the last good ones");
            }
            Err(message) => {
                tracing::error!(error = %message, ?trigger, "could not read bearer tokens; requests get 503 until a read succeeds");
            }
        }
    }
}

/// Ends a read whichever way its task ends (normally, or by a panic): the next read may
/// start, and whoever waits on this one stops waiting.
struct ReadFinished {
    store: TokenStore,
    over: watch::Sender<bool>,
}

impl Drop for ReadFinished {
    fn drop(&mut self) {
        self.store.inner.reads.lock().ignore_poison().in_flight = None;
        let _ = self.over.send(true);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Start,
    Empty,
    Periodic,
    Miss,
}

fn find_any(set: &TokenSet, presented: &[&str]) -> Option<Caller> {
    presented.iter().find_map(|p| set.find(p.as_bytes())).cloned()
}

/// Reads AWSCURRENT and, if there is one, AWSPREVIOUS, giving each call `timeout`.
async fn read_secret(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
    timeout: Duration,
) -> Result<TokenSet, String> {
    let get = |stage: &'static str| {
        let call = client
            .get_secret_value()
            .secret_id(secret_id)
            .version_stage(stage)
            .send();
        async move {
            tokio::time::timeout(timeout, call).await.map_err(|_| {
                format!(
                    "GetSecretValue ({stage}) did not answer within {} ms (TOKEN_READ_TIMEOUT_MS)",
                    timeout.as_millis()
                )
            })
        }
    };
    let current = get("AWSCURRENT").await?.map_err(|e| describe(&e))?;
    // Groups come from the current version only: the previous one is kept for its tokens.
    let mut set =
        TokenSet::parse(current.secret_string().unwrap_or_default()).map_err(|e| format!("AWSCURRENT: {e}"))?;
    match get("AWSPREVIOUS").await {
        Ok(Ok(previous)) => match parse_secret(previous.secret_string().unwrap_or_default()) {
            Ok(old) => set.tokens.extend(old),
            Err(e) => tracing::warn!(error = %e, "ignoring the AWSPREVIOUS version of the token secret"),
        },
        // A secret that was never changed has no previous version.
        Ok(Err(e)) if e.code() == Some("ResourceNotFoundException") => {}
        Ok(Err(e)) => tracing::warn!(error = %describe(&e), "could not read the AWSPREVIOUS token version"),
        Err(timed_out) => tracing::warn!(error = %timed_out, "could not read the AWSPREVIOUS token version"),
    }
    Ok(set)
}

fn describe<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    e: &aws_sdk_secretsmanager::error::SdkError<E, R>,
) -> String {
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        _ => aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_secret_is_one_default_token() {
        let tokens = parse_secret("  abc123\n").unwrap();
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].caller.name, "default");
        assert_eq!(
            TokenSet::new(tokens).find(b"abc123").map(|c| c.name.as_str()),
            Some("default")
        );
    }

    #[test]
    fn a_json_secret_names_each_caller() {
        let set = TokenSet::new(parse_secret(r#"{"tokens": {"alice": "a-token", "ci": "c-token"}}"#).unwrap());
        assert_eq!(set.find(b"a-token").map(|c| c.name.as_str()), Some("alice"));
        assert_eq!(set.find(b"c-token").map(|c| c.name.as_str()), Some("ci"));
        assert_eq!(set.find(b"a-toke"), None);
        assert_eq!(set.find(b""), None);
    }

    #[test]
    fn malformed_json_secrets_are_rejected() {
        assert!(parse_secret(r#"{"token": "x"}"#).is_err());
        assert!(parse_secret(r#"{"tokens": {"a": 5}}"#).is_err());
        assert!(parse_secret(r#"{"tokens": {}}"#).is_err());
        assert!(parse_secret("{broken").is_err());
        assert!(parse_secret("   ").is_err());
    }

    #[test]
    fn token_values_never_show_in_debug() {
        let set = TokenSet::new(vec![NamedToken::new("alice", "sekrit-value")]);
        assert!(!format!("{set:?}").contains("sekrit"));
    }

    #[test]
    fn generated_tokens_are_long_and_url_safe() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[tokio::test]
    async fn fixed_store_accepts_either_header_and_refuses_others() {
        let store = TokenStore::fixed(TokenSet::new(vec![NamedToken::new("default", "good")]));
        assert_eq!(store.authenticate(&["good"]).await.unwrap().name, "default");
        assert_eq!(store.authenticate(&["bad", "good"]).await.unwrap().name, "default");
        assert!(matches!(
            store.authenticate(&["bad"]).await,
            Err(ProxyError::Authentication(_))
        ));
        assert!(matches!(store.authenticate(&[]).await, Err(ProxyError::Authentication(m)) if m.contains("missing")));
    }
}
