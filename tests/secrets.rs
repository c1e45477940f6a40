//! The token store and the `rotate-token` steps against moto's Secrets Manager: cold start,
//! console edits, periodic and on-miss re-reads, a flood of bad tokens, named callers in the
//! logs, Secrets Manager going away (after start and before it), and full rotations.
//!
//! `MOTO_ENDPOINT` (e.g. `http://127.0.0.1:5000`) points at a running `moto_server`; without
//! it, one is started from `.venv/bin/moto_server` for this test binary and stopped with it.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::config::Credentials;
use aws_sdk_secretsmanager::types::RotationRulesType;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use bedrock_anthropic_proxy::{app, config::Config, AppState};
use common::moto::moto;
use http_body_util::BodyExt;
use rotate_token::{RotationError, RotationEvent, Rotator, Step};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// AWS configuration pointing at `endpoint` with dummy credentials (moto does not check them).
async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .load()
        .await
}

/// A Secrets Manager client talking to moto directly (for setting up and inspecting secrets).
async fn secrets() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&sdk_config(moto()).await)
}

fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh token as the proxy would generate it.
fn token() -> String {
    bedrock_anthropic_proxy::auth::tokens::generate_token().expect("OS random source")
}

/// A ClientRequestToken shaped like the UUIDs Secrets Manager sends.
fn version_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("OS random source");
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

async fn create_secret(sm: &aws_sdk_secretsmanager::Client, name: &str, value: &str) {
    sm.create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("CreateSecret");
}

/// What a console edit does: a new version that becomes AWSCURRENT.
async fn put_value(sm: &aws_sdk_secretsmanager::Client, name: &str, value: &str) {
    sm.put_secret_value()
        .secret_id(name)
        .secret_string(value)
        .send()
        .await
        .expect("PutSecretValue");
}

// ---------------------------------------------------------------------------------------------
// the proxy

/// A proxy reading `secret` through `endpoint`, with `env` on top of the secret id.
async fn proxy(endpoint: &str, secret: &str, env: &[(&str, &str)]) -> (Router, Arc<AppState>) {
    let mut vars: HashMap<String, String> = HashMap::from([("BEARER_TOKEN_SECRET_ID".into(), secret.into())]);
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = Config::from_vars(&vars).expect("config");
    let state = AppState::new(config, &sdk_config(endpoint).await).await.expect("state");
    (app(state.clone()), state)
}

#[derive(Clone, Copy, Debug)]
enum Via {
    Bearer,
    ApiKey,
}

struct Reply {
    status: StatusCode,
    body: Value,
}

impl Reply {
    fn error_type(&self) -> &str {
        self.body["error"]["type"].as_str().unwrap_or_default()
    }

    fn error_message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }
}

/// `GET /v1/models` (authenticated, never touches Bedrock) with `token`.
async fn models(app: &Router, token: &str, via: Via) -> Reply {
    let req = Request::get("/v1/models");
    let req = match via {
        Via::Bearer => req.header("authorization", format!("Bearer {token}")),
        Via::ApiKey => req.header("x-api-key", token),
    };
    let response = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, body }
}

async fn status(app: &Router, token: &str) -> StatusCode {
    models(app, token, Via::Bearer).await.status
}

/// Polls until `token` is accepted, returning how long that took, or None after `limit`.
async fn accepted_within(app: &Router, token: &str, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if status(app, token).await == StatusCode::OK {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

// ---------------------------------------------------------------------------------------------
// a TCP forwarder between the proxy and moto that counts GetSecretValue calls and can be cut

const GET_SECRET_VALUE: &[u8] = b"secretsmanager.GetSecretValue";

struct Forwarder {
    addr: SocketAddr,
    gets: Arc<AtomicUsize>,
    task: Option<JoinHandle<()>>,
}

impl Forwarder {
    /// Listens on `port` (0 for any) and forwards every connection to moto.
    async fn start(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the forwarder");
        let addr = listener.local_addr().expect("local addr");
        let upstream = moto().trim_start_matches("http://").to_string();
        let gets = Arc::new(AtomicUsize::new(0));
        let counter = gets.clone();
        let task = tokio::spawn(async move {
            // Owned here, so that stopping this task also cuts every open connection.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                connections.spawn(forward(client, upstream.clone(), counter.clone()));
            }
        });
        Self {
            addr,
            gets,
            task: Some(task),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn get_secret_value_calls(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }

    /// Closes the port and every connection through it.
    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        // Let the aborted connection tasks be dropped (their sockets closed).
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn forward(client: TcpStream, upstream: String, gets: Arc<AtomicUsize>) {
    let Ok(server) = TcpStream::connect(upstream.as_str()).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        // The end of the previous read, so that a target split across reads is still seen.
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            tail.extend_from_slice(&buf[..n]);
            let found = tail
                .windows(GET_SECRET_VALUE.len())
                .filter(|w| *w == GET_SECRET_VALUE)
                .count();
            gets.fetch_add(found, Ordering::SeqCst);
            let keep = tail.len().min(GET_SECRET_VALUE.len() - 1);
            tail.drain(..tail.len() - keep);
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(up, down);
}

/// How a Secrets Manager outage looks from the proxy.
#[derive(Clone, Copy, Debug)]
enum Outage {
    /// Connections are accepted and requests read, but nothing is ever answered.
    Hang,
    /// Every call fails at once with a 500 InternalServiceError.
    Error,
}

/// A Secrets Manager in an outage; it counts the GetSecretValue calls it receives.
struct DownSecretsManager {
    addr: SocketAddr,
    gets: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl DownSecretsManager {
    async fn start(outage: Outage) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let gets = Arc::new(AtomicUsize::new(0));
        let counter = gets.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let counter = counter.clone();
                connections.spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    // Each request is one small write from the SDK; read until the client
                    // gives up.
                    while let Ok(n @ 1..) = client.read(&mut buf).await {
                        let found = buf[..n]
                            .windows(GET_SECRET_VALUE.len())
                            .filter(|w| *w == GET_SECRET_VALUE)
                            .count();
                        counter.fetch_add(found, Ordering::SeqCst);
                        if let (Outage::Error, 1..) = (outage, found) {
                            let body = r#"{"__type":"InternalServiceError","message":"outage"}"#;
                            let response = format!(
                                "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/x-amz-json-1.1\r\n\
                                 content-length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if client.write_all(response.as_bytes()).await.is_err() {
                                break;
                            }
                        }
                    }
                });
            }
        });
        Self { addr, gets, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn get_secret_value_calls(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }
}

impl Drop for DownSecretsManager {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

// ---------------------------------------------------------------------------------------------
// log capture

/// Collects the JSON log lines (the Lambda format) written on this thread.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Captures everything, at every level, until the guard drops. Use in a current-thread
    /// test so that spawned tasks log here too.
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_writer(move || logs.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).into_owned()
    }

    fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The per-request lines (`message == "request"`).
    fn requests(&self) -> Vec<Value> {
        self.lines().into_iter().filter(|l| l["message"] == "request").collect()
    }
}

// ---------------------------------------------------------------------------------------------
// reading and refreshing

#[tokio::test]
async fn cold_start_reads_the_token_and_refuses_others() {
    let sm = secrets().await;
    let name = unique("cold-start");
    let good = token();
    create_secret(&sm, &name, &good).await;

    let (app, _state) = proxy(moto(), &name, &[]).await;

    assert_eq!(models(&app, &good, Via::Bearer).await.status, StatusCode::OK);
    assert_eq!(models(&app, &good, Via::ApiKey).await.status, StatusCode::OK);
    for via in [Via::Bearer, Via::ApiKey] {
        let wrong = models(&app, &token(), via).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{via:?}");
        assert_eq!(wrong.body["type"], "error");
        assert_eq!(wrong.error_type(), "authentication_error", "{via:?}");
    }
}

#[tokio::test]
async fn a_console_edit_works_within_seconds_and_the_previous_token_survives_one_edit() {
    let sm = secrets().await;
    let name = unique("console-edit");
    let (first, second, third) = (token(), token(), token());
    create_secret(&sm, &name, &first).await;
    // Periodic refresh far away: only the on-miss re-read can pick up the edits.
    let (app, _state) = proxy(
        moto(),
        &name,
        &[("TOKEN_MISS_REFRESH_SECONDS", "1"), ("TOKEN_REFRESH_SECONDS", "3600")],
    )
    .await;
    assert_eq!(status(&app, &first).await, StatusCode::OK);

    put_value(&sm, &name, &second).await;
    // Within about a second (the miss rate limit); the margin is for a busy moto.
    let took = accepted_within(&app, &second, Duration::from_secs(10)).await;
    println!("a console edit was accepted after {took:?}");
    assert!(took.is_some(), "the new token was not accepted within 10 s");
    assert_eq!(
        status(&app, &first).await,
        StatusCode::OK,
        "AWSPREVIOUS must still be accepted"
    );

    put_value(&sm, &name, &third).await;
    assert!(accepted_within(&app, &third, Duration::from_secs(10)).await.is_some());
    assert_eq!(
        status(&app, &second).await,
        StatusCode::OK,
        "the new AWSPREVIOUS must be accepted"
    );
    let oldest = models(&app, &first, Via::Bearer).await;
    assert_eq!(oldest.status, StatusCode::UNAUTHORIZED, "two edits ago must be refused");
    assert_eq!(oldest.error_type(), "authentication_error");
}

#[tokio::test]
async fn periodic_refresh_picks_up_a_change_without_any_miss_refresh() {
    let sm = secrets().await;
    let name = unique("periodic");
    let (old, new) = (token(), token());
    create_secret(&sm, &name, &old).await;
    let (app, _state) = proxy(
        moto(),
        &name,
        &[("TOKEN_REFRESH_SECONDS", "1"), ("TOKEN_MISS_REFRESH_SECONDS", "3600")],
    )
    .await;

    put_value(&sm, &name, &new).await;
    // Right after start the miss re-read is rate-limited for an hour, so this must fail...
    assert_eq!(status(&app, &new).await, StatusCode::UNAUTHORIZED);
    // ...and only the periodic re-read (every second, started by any request) can let it in.
    let took = accepted_within(&app, &new, Duration::from_secs(10)).await;
    println!("the periodic refresh picked up a change after {took:?}");
    assert!(
        took.is_some(),
        "a changed value was not picked up by the periodic refresh within 10 s"
    );
    assert_eq!(status(&app, &old).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_bad_tokens_reads_the_secret_a_bounded_number_of_times() {
    let sm = secrets().await;
    let name = unique("flood");
    let (old, good) = (token(), token());
    create_secret(&sm, &name, &old).await;
    put_value(&sm, &name, &good).await; // so that each read is two calls (AWSCURRENT + AWSPREVIOUS)
    let forwarder = Forwarder::start(0).await;
    let (app, _state) = proxy(
        &forwarder.url(),
        &name,
        &[("TOKEN_MISS_REFRESH_SECONDS", "1"), ("TOKEN_REFRESH_SECONDS", "3600")],
    )
    .await;
    assert_eq!(
        forwarder.get_secret_value_calls(),
        2,
        "the cold-start read is AWSCURRENT + AWSPREVIOUS"
    );
    // Past the miss rate limit, so the flood may (and should) cause one re-read.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    const FLOOD: usize = 300;
    let started = Instant::now();
    let requests: Vec<_> = (0..FLOOD)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { status(&app, &token()).await })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.expect("request task"), StatusCode::UNAUTHORIZED);
    }
    let flood_took = started.elapsed();
    let calls = forwarder.get_secret_value_calls() - 2;
    println!("{FLOOD} concurrent bad tokens caused {calls} GetSecretValue calls in {flood_took:?}");
    assert!(
        calls >= 2,
        "the first miss after the rate limit should re-read the secret (saw {calls} calls)"
    );
    assert!(
        calls <= 4,
        "{FLOOD} bad tokens caused {calls} GetSecretValue calls; at most 2 reads (4 calls) expected"
    );
    assert_eq!(status(&app, &good).await, StatusCode::OK);
}

#[tokio::test]
async fn named_callers_are_logged_by_name_and_tokens_never_are() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let sm = secrets().await;
    let name = unique("named");
    let (alice, ci) = (token(), token());
    let secret = serde_json::json!({"tokens": {"alice": alice, "ci": ci}}).to_string();
    create_secret(&sm, &name, &secret).await;
    let (app, _state) = proxy(moto(), &name, &[]).await;

    assert_eq!(status(&app, &alice).await, StatusCode::OK);
    assert_eq!(models(&app, &ci, Via::ApiKey).await.status, StatusCode::OK);
    let stranger = token();
    assert_eq!(status(&app, &stranger).await, StatusCode::UNAUTHORIZED);

    let callers: Vec<(String, u64)> = logs
        .requests()
        .iter()
        .map(|l| {
            (
                l["caller"].as_str().unwrap_or_default().to_string(),
                l["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        callers,
        [
            ("alice".to_string(), 200),
            ("ci".to_string(), 200),
            ("-".to_string(), 401)
        ],
        "one line per request naming the caller"
    );
    let text = logs.text();
    assert!(
        text.contains("bearer tokens loaded from secrets manager"),
        "the cold-start read is logged"
    );
    for (who, value) in [("alice", &alice), ("ci", &ci), ("the stranger", &stranger)] {
        assert!(!text.contains(value.as_str()), "the token of {who} appears in the logs");
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets Manager unreachable

#[tokio::test]
async fn known_tokens_keep_working_when_secrets_manager_goes_away() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let sm = secrets().await;
    let name = unique("goes-away");
    let good = token();
    create_secret(&sm, &name, &good).await;
    let mut forwarder = Forwarder::start(0).await;
    let (app, _state) = proxy(
        &forwarder.url(),
        &name,
        &[("TOKEN_REFRESH_SECONDS", "1"), ("TOKEN_MISS_REFRESH_SECONDS", "1")],
    )
    .await;
    assert_eq!(status(&app, &good).await, StatusCode::OK);

    forwarder.stop().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // This request finds the tokens stale and starts a background re-read, which fails.
    assert_eq!(status(&app, &good).await, StatusCode::OK);
    assert_eq!(status(&app, &token()).await, StatusCode::UNAUTHORIZED);

    let deadline = Instant::now() + Duration::from_secs(20);
    let warned = loop {
        let warning = logs.lines().into_iter().find(|l| {
            l["level"] == "WARN"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("keeping the last good ones"))
        });
        if warning.is_some() || Instant::now() > deadline {
            break warning;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let warned = warned.expect("a warning that the re-read failed");
    assert!(warned["error"].as_str().is_some_and(|e| !e.is_empty()), "{warned}");
    assert_eq!(status(&app, &good).await, StatusCode::OK, "known tokens keep working");
    assert_eq!(models(&app, &good, Via::ApiKey).await.status, StatusCode::OK);
}

#[tokio::test]
async fn no_request_gets_through_until_the_first_read_succeeds() {
    let sm = secrets().await;
    let name = unique("unreachable-at-start");
    let good = token();
    create_secret(&sm, &name, &good).await;
    let port = closed_port();
    let (app, _state) = proxy(
        &format!("http://127.0.0.1:{port}"),
        &name,
        &[("TOKEN_MISS_REFRESH_SECONDS", "1")],
    )
    .await;

    for (token, via) in [
        (good.as_str(), Via::Bearer),
        (good.as_str(), Via::ApiKey),
        ("some-other-token", Via::Bearer),
    ] {
        let reply = models(&app, token, via).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{via:?}: {}", reply.body);
        assert_eq!(reply.error_type(), "api_error");
        let message = reply.error_message();
        assert!(
            message.contains("token store") && message.contains("unavailable"),
            "{message}"
        );
    }

    // Secrets Manager comes back on the same address: the first request once the rate limit
    // allows another read reads and succeeds.
    let _forwarder = Forwarder::start(port).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(status(&app, &good).await, StatusCode::OK);
    assert_eq!(status(&app, "some-other-token").await, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_at_cold_start_costs_at_most_two_reads_for_300_requests_and_lets_none_in() {
    for outage in [Outage::Hang, Outage::Error] {
        let down = DownSecretsManager::start(outage).await;
        // Without a bound on the call, start-up itself would wait forever on a hung one.
        let (app, _state) = tokio::time::timeout(
            Duration::from_secs(30),
            proxy(&down.url(), "bedrock-proxy/tokens", &[("TOKEN_READ_TIMEOUT_MS", "500")]),
        )
        .await
        .expect("start-up must not wait on a hung Secrets Manager");
        assert_eq!(down.get_secret_value_calls(), 1, "{outage:?}: the cold-start read");

        const FLOOD: usize = 300;
        let started = Instant::now();
        let requests: Vec<_> = (0..FLOOD)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move { models(&app, &token(), Via::Bearer).await })
            })
            .collect();
        // Generous bound, for a loaded machine: each caller waits at most for the one read in
        // flight (0.5 s); callers queued behind a lock, one hung read each, would take minutes.
        let replies = tokio::time::timeout(Duration::from_secs(60), futures_util::future::join_all(requests))
            .await
            .expect("no caller may wait on a hung Secrets Manager for long");
        let took = started.elapsed();
        for reply in replies {
            let reply = reply.expect("request task");
            assert_eq!(
                reply.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{outage:?}: {}",
                reply.body
            );
            assert_eq!(reply.error_type(), "api_error");
        }
        let calls = down.get_secret_value_calls();
        println!(
            "{outage:?}: {FLOOD} concurrent requests during the outage; {calls} GetSecretValue calls in all, \
             answered in {took:?}"
        );
        assert!(
            calls <= 2,
            "{outage:?}: {FLOOD} requests during an outage caused {calls} GetSecretValue calls; at most 2 expected"
        );
        // Within TOKEN_MISS_REFRESH_SECONDS (30 s by default) no request causes another read.
        assert_eq!(status(&app, &token()).await, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.get_secret_value_calls(), calls, "{outage:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// rotation

/// The staging labels of every version, and each version's value (None without one).
#[derive(Debug, PartialEq, Eq)]
struct Versions {
    stages: BTreeMap<String, BTreeSet<String>>,
    values: BTreeMap<String, Option<String>>,
}

impl Versions {
    async fn read(sm: &aws_sdk_secretsmanager::Client, name: &str) -> Self {
        let metadata = sm
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .expect("DescribeSecret");
        let stages: BTreeMap<String, BTreeSet<String>> = metadata
            .version_ids_to_stages()
            .expect("versions")
            .iter()
            .map(|(id, stages)| (id.clone(), stages.iter().cloned().collect()))
            .collect();
        let mut values = BTreeMap::new();
        for id in stages.keys() {
            let value = sm.get_secret_value().secret_id(name).version_id(id).send().await.ok();
            values.insert(id.clone(), value.and_then(|v| v.secret_string().map(str::to_string)));
        }
        Self { stages, values }
    }

    fn with(&self, stage: &str) -> Vec<&str> {
        self.stages
            .iter()
            .filter(|(_, s)| s.contains(stage))
            .map(|(id, _)| id.as_str())
            .collect()
    }

    fn value(&self, id: &str) -> &str {
        self.values[id]
            .as_deref()
            .unwrap_or_else(|| panic!("version {id} has no value"))
    }
}

/// What Secrets Manager does before it invokes the rotation function: turn rotation on and
/// create the AWSPENDING version (without a value) under a fresh ClientRequestToken. moto does
/// this in RotateSecret and then invokes the configured Lambda, so a do-nothing Lambda is
/// registered with moto ("use_docker": false) and our steps are run here instead.
async fn start_rotation(sm: &aws_sdk_secretsmanager::Client, name: &str) -> String {
    let function = rotation_function().await;
    let version = version_id();
    sm.rotate_secret()
        .secret_id(name)
        .client_request_token(&version)
        .rotation_lambda_arn(function)
        .rotation_rules(RotationRulesType::builder().automatically_after_days(30).build())
        .send()
        .await
        .expect("RotateSecret");
    let metadata = sm
        .describe_secret()
        .secret_id(name)
        .send()
        .await
        .expect("DescribeSecret");
    assert_eq!(metadata.rotation_enabled(), Some(true), "moto marks rotation enabled");
    let stages = &metadata.version_ids_to_stages().expect("versions")[&version];
    assert_eq!(
        stages,
        &["AWSPENDING".to_string()],
        "RotateSecret leaves a pending version"
    );
    version
}

/// Registers (once per moto, idempotently) the do-nothing Lambda moto invokes on RotateSecret,
/// and returns its ARN.
async fn rotation_function() -> &'static str {
    const ROLE: &str = "arn:aws:iam::123456789012:role/rotate-token-test";
    const FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotate-token-test";
    let config = moto_call(
        None,
        "POST",
        "/moto-api/config",
        "application/json",
        r#"{"lambda": {"use_docker": false}}"#,
    )
    .await;
    assert!(
        (200..300).contains(&config.0),
        "moto-api config: {} {}",
        config.0,
        config.1
    );
    let role = moto_call(
        Some("iam"),
        "POST",
        "/",
        "application/x-www-form-urlencoded",
        "Action=CreateRole&Version=2010-05-08&RoleName=rotate-token-test&AssumeRolePolicyDocument=%7B%7D",
    )
    .await;
    assert!(
        role.0 == 200 || role.1.contains("EntityAlreadyExists"),
        "CreateRole: {} {}",
        role.0,
        role.1
    );
    // An empty zip archive: moto stores the code but never runs it.
    let zip = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
    );
    let body = serde_json::json!({
        "FunctionName": "rotate-token-test",
        "Runtime": "provided.al2023",
        "Role": ROLE,
        "Handler": "bootstrap",
        "Code": {"ZipFile": zip},
    });
    let function = moto_call(
        Some("lambda"),
        "POST",
        "/2015-03-31/functions",
        "application/json",
        &body.to_string(),
    )
    .await;
    assert!(
        function.0 == 201 || function.1.contains("ResourceConflictException") || function.1.contains("already exist"),
        "CreateFunction: {} {}",
        function.0,
        function.1
    );
    FUNCTION
}

/// One HTTP/1.1 request to moto for the services this crate has no SDK for. moto routes by the
/// credential scope of the Authorization header and does not check the signature.
async fn moto_call(service: Option<&str>, method: &str, path: &str, content_type: &str, body: &str) -> (u16, String) {
    let host = moto().trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).await.expect("connect to moto");
    let mut request = Vec::new();
    let _ = write!(
        request,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
    );
    if let Some(service) = service {
        let _ = write!(
            request,
            "Authorization: AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0\r\n"
        );
    }
    let _ = write!(
        request,
        "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(&request).await.expect("send to moto");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read from moto");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn event(name: &str, version: &str, step: Step) -> RotationEvent {
    let step_name = match step {
        Step::CreateSecret => "createSecret",
        Step::SetSecret => "setSecret",
        Step::TestSecret => "testSecret",
        Step::FinishSecret => "finishSecret",
    };
    // Built from JSON, as the Lambda runtime does, so the field names are tested too.
    serde_json::from_value(serde_json::json!({"Step": step_name, "SecretId": name, "ClientRequestToken": version}))
        .expect("event")
}

const STEPS: [Step; 4] = [
    Step::CreateSecret,
    Step::SetSecret,
    Step::TestSecret,
    Step::FinishSecret,
];

/// Runs the four steps as Secrets Manager would, each twice: the second run must change nothing.
async fn rotate(
    sm: &aws_sdk_secretsmanager::Client,
    rotator: &Rotator,
    name: &str,
    rotation_token: Option<&str>,
) -> String {
    let version = start_rotation(sm, name).await;
    for step in STEPS {
        let mut event = event(name, &version, step);
        event.rotation_token = rotation_token.map(str::to_string);
        rotator.run(&event).await.unwrap_or_else(|e| panic!("{step:?}: {e}"));
        let after_first = Versions::read(sm, name).await;
        rotator
            .run(&event)
            .await
            .unwrap_or_else(|e| panic!("{step:?} again: {e}"));
        assert_eq!(
            Versions::read(sm, name).await,
            after_first,
            "re-running {step:?} changed the secret"
        );
    }
    version
}

/// After a finished rotation: the new version is AWSCURRENT and nothing else, the old one is
/// AWSPREVIOUS, nothing is AWSPENDING, and every step run again changes nothing.
async fn assert_rotated(sm: &aws_sdk_secretsmanager::Client, rotator: &Rotator, name: &str, version: &str, old: &str) {
    let versions = Versions::read(sm, name).await;
    assert_eq!(versions.with("AWSCURRENT"), [version], "{versions:?}");
    assert_eq!(
        versions.stages[version],
        BTreeSet::from(["AWSCURRENT".to_string()]),
        "{versions:?}"
    );
    assert_eq!(versions.with("AWSPREVIOUS"), [old], "{versions:?}");
    assert!(versions.with("AWSPENDING").is_empty(), "{versions:?}");
    for step in STEPS {
        rotator
            .run(&event(name, version, step))
            .await
            .unwrap_or_else(|e| panic!("{step:?} after finish: {e}"));
    }
    assert_eq!(
        Versions::read(sm, name).await,
        versions,
        "steps after the rotation changed the secret"
    );
}

#[tokio::test]
async fn rotate_token_rotates_a_plain_secret_through_all_four_steps() {
    let sm = secrets().await;
    let rotator = Rotator::new(sm.clone());
    let name = unique("rotate-plain");
    let first = token();
    create_secret(&sm, &name, &first).await;
    let first_version = Versions::read(&sm, &name).await.with("AWSCURRENT")[0].to_string();
    let (app, _state) = proxy(
        moto(),
        &name,
        &[("TOKEN_MISS_REFRESH_SECONDS", "0"), ("TOKEN_REFRESH_SECONDS", "3600")],
    )
    .await;
    assert_eq!(status(&app, &first).await, StatusCode::OK);

    let version = rotate(&sm, &rotator, &name, None).await;
    assert_rotated(&sm, &rotator, &name, &version, &first_version).await;
    let second = Versions::read(&sm, &name).await.value(&version).to_string();
    assert_ne!(second, first);
    assert!(!second.trim_start().starts_with('{'), "a plain secret stays plain");
    assert_eq!(second.len(), 43);

    // The running proxy picks the new token up on its first use; the old one still works.
    assert_eq!(status(&app, &second).await, StatusCode::OK);
    assert_eq!(models(&app, &first, Via::ApiKey).await.status, StatusCode::OK);
    let (fresh, _state) = proxy(moto(), &name, &[]).await;
    assert_eq!(status(&fresh, &second).await, StatusCode::OK);
    assert_eq!(status(&fresh, &first).await, StatusCode::OK);

    // A second rotation retires the first token.
    let next = rotate(&sm, &rotator, &name, None).await;
    assert_rotated(&sm, &rotator, &name, &next, &version).await;
    let third = Versions::read(&sm, &name).await.value(&next).to_string();
    assert_eq!(status(&app, &third).await, StatusCode::OK);
    assert_eq!(status(&app, &second).await, StatusCode::OK);
    assert_eq!(status(&app, &first).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn rotate_token_rotates_a_json_secret_keeping_the_names_and_policies() {
    let sm = secrets().await;
    let rotator = Rotator::new(sm.clone());
    let name = unique("rotate-json");
    let (alice, ci) = (token(), token());
    create_secret(
        &sm,
        &name,
        &serde_json::json!({"tokens": {"alice": alice, "ci": {"token": ci, "models": ["claude-*"], "max_tokens": 64000}}})
            .to_string(),
    )
    .await;
    let first_version = Versions::read(&sm, &name).await.with("AWSCURRENT")[0].to_string();
    let (app, _state) = proxy(
        moto(),
        &name,
        &[("TOKEN_MISS_REFRESH_SECONDS", "0"), ("TOKEN_REFRESH_SECONDS", "3600")],
    )
    .await;

    // A RotationToken, as Secrets Manager sends for assumed-role rotation, is passed along.
    let version = rotate(&sm, &rotator, &name, Some("rotation-token-from-secrets-manager")).await;
    assert_rotated(&sm, &rotator, &name, &version, &first_version).await;

    let value: Value = serde_json::from_str(Versions::read(&sm, &name).await.value(&version)).expect("JSON stays JSON");
    let tokens = value["tokens"].as_object().expect("a tokens object");
    assert_eq!(tokens.keys().collect::<Vec<_>>(), ["alice", "ci"], "names are kept");
    let new_alice = tokens["alice"].as_str().unwrap();
    let new_ci = tokens["ci"]["token"].as_str().unwrap();
    assert_eq!(
        tokens["ci"]["models"],
        serde_json::json!(["claude-*"]),
        "a caller's policy is kept"
    );
    assert_eq!(tokens["ci"]["max_tokens"], 64000);
    assert!(new_alice.len() >= 43 && new_ci.len() >= 43);
    assert!(new_alice != alice && new_ci != ci && new_alice != new_ci);

    for token in [new_alice, new_ci, &alice, &ci] {
        assert_eq!(status(&app, token).await, StatusCode::OK);
    }
    let (fresh, _state) = proxy(moto(), &name, &[]).await;
    for token in [new_alice, new_ci, &alice, &ci] {
        assert_eq!(status(&fresh, token).await, StatusCode::OK);
    }
}

#[tokio::test]
async fn rotate_token_refuses_secrets_that_are_not_being_rotated() {
    let sm = secrets().await;
    let rotator = Rotator::new(sm.clone());

    let name = unique("not-enabled");
    create_secret(&sm, &name, &token()).await;
    let err = rotator
        .run(&event(&name, &version_id(), Step::CreateSecret))
        .await
        .unwrap_err();
    assert!(matches!(err, RotationError::RotationNotEnabled { .. }), "{err}");

    let name = unique("bad-versions");
    create_secret(&sm, &name, &token()).await;
    let version = start_rotation(&sm, &name).await;
    let err = rotator
        .run(&event(&name, &version_id(), Step::CreateSecret))
        .await
        .unwrap_err();
    assert!(matches!(err, RotationError::UnknownVersion { .. }), "{err}");

    // A pending value too short to be one of ours fails testSecret, and nothing is promoted.
    sm.put_secret_value()
        .secret_id(&name)
        .client_request_token(&version)
        .secret_string("tiny-sekrit")
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("PutSecretValue");
    let err = rotator
        .run(&event(&name, &version, Step::TestSecret))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RotationError::TokenTooShort { ref name, len: 11, .. } if name == "default"),
        "{err}"
    );
    assert!(!err.to_string().contains("sekrit"), "{err}");

    // A version that is neither AWSCURRENT nor AWSPENDING (here the old AWSPREVIOUS after an edit).
    let name = unique("not-pending");
    create_secret(&sm, &name, &token()).await;
    let old = Versions::read(&sm, &name).await.with("AWSCURRENT")[0].to_string();
    put_value(&sm, &name, &token()).await;
    start_rotation(&sm, &name).await;
    let err = rotator.run(&event(&name, &old, Step::FinishSecret)).await.unwrap_err();
    assert!(matches!(err, RotationError::NotPending { .. }), "{err}");
}
