//! Bedrock's Anthropic Messages endpoint ("Mantle"): the first-party request shape at
//! `https://bedrock-mantle.{region}.api.aws/anthropic/v1/messages[/count_tokens]`, signed with
//! SigV4 under the service name `bedrock-mantle`, answered with Anthropic SSE.
//!
//! The answer is already what the caller's SDK expects, so the stream is only split at event
//! boundaries: the SSE writer (`sse`) then adds pings, turns failures into `event: error`, and
//! the events' `usage` goes to the log line. No event-stream frames, CRCs or base64 to undo.
//!
//! The client is the same hyper and rustls the AWS SDK uses, with one connection pool per
//! process; credentials come from the same aws-config chain as Bedrock Runtime's.

use std::collections::HashSet;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use axum::http::{header, Method, Request, StatusCode};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http_body_util::{BodyExt, BodyStream, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::error::ProxyError;
use crate::sync::IgnorePoison;
use crate::upstream::retry::RetryPolicy;
use crate::upstream::{EventStream, StartedStream, StreamItem};
use crate::usage::request_log::{RequestLog, Usage};

/// The SigV4 service name Mantle checks (signing as `bedrock` is refused with a permission error).
pub const SIGNING_NAME: &str = "bedrock-mantle";

/// The `anthropic-version` Mantle takes, as the first-party API does.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Where Claude Code's own Mantle client sends messages (the `beta` query is the Anthropic SDK's
/// beta client's marker).
const MESSAGES_PATH: &str = "/anthropic/v1/messages?beta=true";

/// Credentials are fetched again this long before they expire.
const CREDENTIALS_REFRESH_MARGIN: Duration = Duration::from_secs(300);

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The Mantle client: endpoint, signing, retries, and which models Runtime cannot count.
#[derive(Debug)]
pub struct Mantle {
    http: HttpsClient,
    endpoint: String,
    region: String,
    credentials: Option<SharedCredentialsProvider>,
    cached: Mutex<Option<Credentials>>,
    counted_here: RwLock<HashSet<String>>,
}

impl Mantle {
    /// A client for `endpoint` (or the region's public one), with the AWS configuration's
    /// credentials.
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: Option<&str>, region: &str) -> Result<Self, String> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| format!("loading the system's root certificates for Mantle: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let endpoint = endpoint
            .map(str::to_string)
            .unwrap_or_else(|| format!("https://bedrock-mantle.{region}.api.aws"));
        Ok(Self {
            http: Client::builder(TokioExecutor::new()).build(connector),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            region: region.to_string(),
            credentials: sdk.credentials_provider(),
            cached: Mutex::new(None),
            counted_here: RwLock::new(HashSet::new()),
        })
    }

    /// `POST /anthropic/v1/messages`, the whole answer at once, retried and bounded by `policy`
    /// (the same one InvokeModel uses for this request).
    pub async fn messages(
        &self,
        policy: &RetryPolicy,
        body: &Bytes,
        betas: Option<String>,
    ) -> Result<Bytes, ProxyError> {
        policy
            .run(|| async {
                let response = self.send(policy, MESSAGES_PATH, body, betas.as_deref()).await?;
                let collected = policy.timed(response.into_body().collect()).await?;
                collected
                    .map(|c| c.to_bytes())
                    .map_err(|e| ProxyError::Upstream(format!("mantle's answer was cut: {e}")))
            })
            .await
    }

    /// `POST /anthropic/v1/messages` with `stream: true`. Like InvokeModelWithResponseStream,
    /// waits at most `first_event_wait` for the first event, so that an error Mantle reports at
    /// once still gets a real status and a retry.
    pub async fn messages_stream(
        &self,
        policy: &RetryPolicy,
        body: &Bytes,
        betas: Option<String>,
        first_event_wait: Duration,
        log: &RequestLog,
    ) -> Result<StartedStream, ProxyError> {
        policy
            .run(|| async {
                let response = self.send(policy, MESSAGES_PATH, body, betas.as_deref()).await?;
                StartedStream::begin(events(response.into_body(), log.clone()), first_event_wait).await
            })
            .await
    }

    /// `POST /anthropic/v1/messages/count_tokens`: counts for every model, including those
    /// Bedrock Runtime's CountTokens refuses.
    pub async fn count_tokens(
        &self,
        policy: &RetryPolicy,
        body: &Bytes,
        betas: Option<String>,
    ) -> Result<u64, ProxyError> {
        policy
            .run(|| async {
                let response = self
                    .send(
                        policy,
                        "/anthropic/v1/messages/count_tokens?beta=true",
                        body,
                        betas.as_deref(),
                    )
                    .await?;
                let collected = policy.timed(response.into_body().collect()).await?;
                let bytes = collected
                    .map_err(|e| ProxyError::Upstream(format!("mantle's answer was cut: {e}")))?
                    .to_bytes();
                serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .and_then(|v| v.get("input_tokens").and_then(Value::as_u64))
                    .ok_or_else(|| ProxyError::Upstream("mantle's count_tokens answer has no input_tokens".into()))
            })
            .await
    }

    /// True once Bedrock Runtime has refused to count this model: it is counted here from then on.
    pub fn counts(&self, model_id: &str) -> bool {
        let set = self.counted_here.read().ignore_poison();
        set.contains(model_id)
    }

    /// Remembers, for the life of the process, that Runtime does not count this model.
    pub fn count_here_from_now_on(&self, model_id: &str) {
        let mut set = self.counted_here.write().ignore_poison();
        if set.insert(model_id.to_string()) {
            tracing::info!(
                model_id,
                "bedrock runtime does not count this model; counting on mantle from now on"
            );
        }
    }

    /// Signs and sends one request; a non-2xx answer becomes the matching error.
    async fn send(
        &self,
        policy: &RetryPolicy,
        path: &str,
        body: &Bytes,
        betas: Option<&str>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ProxyError> {
        let uri = format!("{}{}", self.endpoint, path);
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(&uri)
            .header(header::CONTENT_TYPE, "application/json")
            .header("anthropic-version", ANTHROPIC_VERSION);
        if let Some(betas) = betas {
            request = request.header("anthropic-beta", betas);
        }
        let mut request = request
            .body(Full::new(body.clone()))
            .map_err(|e| ProxyError::Internal(format!("building the mantle request: {e}")))?;
        self.sign(&mut request, body).await?;
        let response = policy
            .timed_stream_start(self.http.request(request))
            .await?
            .map_err(|e| ProxyError::Upstream(format!("could not reach bedrock mantle at {}: {e}", self.endpoint)))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let bytes = match policy.timed(response.into_body().collect()).await? {
            Ok(collected) => collected.to_bytes(),
            Err(_) => Bytes::new(),
        };
        Err(error_from_answer(status, &bytes))
    }

    async fn sign(&self, request: &mut Request<Full<Bytes>>, body: &[u8]) -> Result<(), ProxyError> {
        let credentials = self.credentials().await?;
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SIGNING_NAME)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| ProxyError::Internal(format!("mantle signing parameters: {e}")))?
            .into();
        let uri = request.uri().to_string();
        let headers = request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
        let signable = SignableRequest::new("POST", uri.as_str(), headers, SignableBody::Bytes(body))
            .map_err(|e| ProxyError::Internal(format!("mantle request not signable: {e}")))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| ProxyError::Internal(format!("signing the mantle request: {e}")))?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }

    /// The chain's credentials, fetched again only near expiry: the chain itself does not
    /// cache (the SDK clients cache in their own runtime, which this client does not use).
    async fn credentials(&self) -> Result<Credentials, ProxyError> {
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_none_or(|at| at > SystemTime::now() + CREDENTIALS_REFRESH_MARGIN)
        };
        if let Some(c) = self.cached.lock().ignore_poison().as_ref() {
            if fresh(c) {
                return Ok(c.clone());
            }
        }
        let provider = self.credentials.as_ref().ok_or_else(|| {
            ProxyError::Upstream("could not reach bedrock mantle: no AWS credentials are configured".into())
        })?;
        let credentials = provider.provide_credentials().await.map_err(|e| {
            tracing::warn!(error = %aws_sdk_bedrockruntime::error::DisplayErrorContext(&e), "loading AWS credentials for mantle");
            ProxyError::Upstream(
                "could not reach bedrock mantle: no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID)".into(),
            )
        })?;
        *self.cached.lock().ignore_poison() = Some(credentials.clone());
        Ok(credentials)
    }
}

/// Mantle answers errors in Anthropic's shape; its `error.type` says which of ours it is. The
/// status decides when the body cannot be read.
fn error_from_answer(status: StatusCode, body: &[u8]) -> ProxyError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().map(|v| v.get("error").unwrap_or(v));
    let kind = error.and_then(|e| e.get("type")).and_then(Value::as_str);
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("bedrock mantle answered {status}"));
    from_anthropic(kind, status.as_u16(), message)
}

fn from_anthropic(kind: Option<&str>, status: u16, message: String) -> ProxyError {
    match (kind, status) {
        (Some("invalid_request_error"), _) | (None, 400 | 422) => ProxyError::InvalidRequest(message),
        // Our own credentials were refused: a deployment problem, not the caller's token.
        (Some("authentication_error" | "permission_error"), _) | (None, 401 | 403) => {
            ProxyError::BedrockAccessDenied(message)
        }
        (Some("not_found_error"), _) | (None, 404) => ProxyError::NotFound(message),
        (Some("request_too_large"), _) | (None, 413) => ProxyError::RequestTooLarge(message),
        (Some("rate_limit_error"), _) | (None, 429) => ProxyError::RateLimited(message),
        (Some("overloaded_error"), _) | (None, 503 | 529) => ProxyError::Overloaded(message),
        (Some("timeout_error"), _) | (None, 408 | 504) => ProxyError::Timeout(message),
        _ => ProxyError::Upstream(message),
    }
}

/// Mantle's SSE body as a stream of event payloads (the JSON of each `data:`), split at the
/// blank line that ends each event. `event: error` ends the stream with the matching error; the
/// token counts of `message_start` and `message_delta` go to the request's log line. Dropping
/// the stream drops the body, which closes Mantle's connection.
fn events(body: hyper::body::Incoming, log: RequestLog) -> EventStream {
    let reader = SseReader {
        body: BodyStream::new(body),
        buffer: BytesMut::new(),
        usage: Usage::default(),
        log,
        done: false,
    };
    Box::pin(futures_util::stream::unfold(reader, |mut reader| async move {
        let item = reader.next_item().await?;
        Some((item, reader))
    }))
}

/// The state of [`events`]: the body, the bytes of an event not yet complete, and the usage
/// so far.
struct SseReader {
    body: BodyStream<hyper::body::Incoming>,
    buffer: BytesMut,
    usage: Usage,
    log: RequestLog,
    done: bool,
}

impl SseReader {
    /// The next event's payload, an error that ends the stream, or `None` at a clean end.
    async fn next_item(&mut self) -> Option<StreamItem> {
        while !self.done {
            if let Some(end) = memchr::memmem::find(&self.buffer, b"\n\n") {
                let block = self.buffer.split_to(end + 2).freeze();
                // A comment or an event without data has nothing to forward.
                if let Some(event) = parse_event(&block) {
                    return Some(self.forward(event));
                }
                continue;
            }
            match self.body.next().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => return Some(self.fail(format!("mantle's stream was cut: {e}"))),
                None if self.buffer.iter().all(u8::is_ascii_whitespace) => return None,
                None => return Some(self.fail("mantle's stream ended inside an event".into())),
            }
        }
        None
    }

    /// An event to pass on, with its token counts noted; `event: error` ends the stream.
    fn forward(&mut self, Event { name, data }: Event) -> StreamItem {
        if name == "error" || data.starts_with(b"{\"type\":\"error\"") {
            self.done = true;
            return Err(error_event(&data));
        }
        if name == "message_start" || name == "message_delta" {
            record_usage(&mut self.usage, &name, &data);
            self.log.usage(self.usage);
        }
        Ok(data)
    }

    fn fail(&mut self, message: String) -> StreamItem {
        self.done = true;
        Err(ProxyError::Upstream(message))
    }
}

/// The error an `event: error` carries, in the proxy's terms.
fn error_event(data: &[u8]) -> ProxyError {
    let value: Option<Value> = serde_json::from_slice(data).ok();
    let error = value.as_ref().and_then(|v| v.get("error"));
    let kind = error.and_then(|e| e.get("type")).and_then(Value::as_str);
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("bedrock mantle sent an error event")
        .to_string();
    from_anthropic(kind, 500, message)
}

/// One SSE event: its name and its data.
struct Event {
    name: String,
    data: Bytes,
}

/// Reads `event:` and `data:` lines of one event block (the data of several `data:` lines is
/// joined with line breaks, as the SSE specification says).
fn parse_event(block: &Bytes) -> Option<Event> {
    let mut name = String::new();
    let mut data: Option<Bytes> = None;
    let mut start = 0;
    while start < block.len() {
        let end = memchr::memchr(b'\n', &block[start..]).map_or(block.len(), |i| start + i);
        let mut line = block.slice(start..end);
        if line.last() == Some(&b'\r') {
            line.truncate(line.len() - 1);
        }
        start = end + 1;
        let field = |prefix: &[u8]| -> Option<Bytes> {
            let rest = line.strip_prefix(prefix)?;
            let offset = line.len() - rest.len();
            let skip = usize::from(rest.first() == Some(&b' '));
            Some(line.slice(offset + skip..))
        };
        if let Some(value) = field(b"event:") {
            name = String::from_utf8_lossy(&value).into_owned();
        } else if let Some(value) = field(b"data:") {
            data = Some(match data {
                None => value,
                Some(previous) => {
                    let mut joined = BytesMut::from(&previous[..]);
                    joined.extend_from_slice(b"\n");
                    joined.extend_from_slice(&value);
                    joined.freeze()
                }
            });
        }
    }
    let data = data?;
    if name.is_empty() {
        // Unnamed events take their name from the JSON's type.
        name = serde_json::from_slice::<Value>(&data)
            .ok()
            .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
    }
    Some(Event { name, data })
}

/// `message_start` carries the input and cache counts, `message_delta` the output so far.
fn record_usage(usage: &mut Usage, event: &str, data: &[u8]) {
    // Typed and borrowing: only the counts are read, the rest of the event is skipped
    // (a whole `Value` here cost more CPU than the rest of the event's handling).
    #[derive(serde::Deserialize)]
    struct Counts {
        input_tokens: Option<u64>,
        output_tokens: Option<u64>,
        cache_read_input_tokens: Option<u64>,
        cache_creation_input_tokens: Option<u64>,
    }
    #[derive(serde::Deserialize)]
    struct Start {
        message: Delta,
    }
    #[derive(serde::Deserialize)]
    struct Delta {
        usage: Option<Counts>,
    }
    let counts = match event {
        "message_start" => serde_json::from_slice::<Start>(data).ok().and_then(|s| s.message.usage),
        _ => serde_json::from_slice::<Delta>(data).ok().and_then(|d| d.usage),
    };
    let Some(counts) = counts else { return };
    let set = |slot: &mut u64, value: Option<u64>| {
        if let Some(value) = value {
            *slot = value;
        }
    };
    set(&mut usage.input, counts.input_tokens);
    set(&mut usage.output, counts.output_tokens);
    set(&mut usage.cache_read, counts.cache_read_input_tokens);
    set(&mut usage.cache_write, counts.cache_creation_input_tokens);
}

#[cfg(test)]
mod tests;
