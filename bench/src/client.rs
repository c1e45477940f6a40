//! One measured request against one path: straight to the emulator (Bedrock Runtime's event
//! stream, decoded here, or Bedrock's Anthropic Messages endpoint, "Mantle", which answers
//! server-sent events), or through an Anthropic-format proxy (server-sent events), with the
//! times a caller sees: first text delta, each stamped delta's delay, the end.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bedrock_anthropic_proxy::sse;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// The Bedrock model id every path ends up calling.
pub const BEDROCK_MODEL: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

/// The Anthropic model name the proxies are asked for (both map it to `BEDROCK_MODEL`, or in
/// the proxy's Mantle mode to `MANTLE_MODEL`).
pub const ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";

/// The same model's id on Mantle (no region prefix there).
pub const MANTLE_MODEL: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";

/// A pooled HTTP/1.1 client with TCP_NODELAY, like the proxies' own upstream clients.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Builds the client. Idle connections are kept, so each path is measured on warm connections.
pub fn http_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(usize::MAX)
        .pool_idle_timeout(Duration::from_secs(600))
        .build(connector)
}

/// How a path is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Bedrock Runtime's InvokeModel / InvokeModelWithResponseStream (the emulator itself).
    Bedrock,
    /// Anthropic's `POST /v1/messages`.
    Anthropic,
    /// Bedrock's Anthropic Messages endpoint ("Mantle", the emulator itself):
    /// `POST /anthropic/v1/messages?beta=true`, SigV4 for `bedrock-mantle`, Anthropic SSE back.
    Mantle,
}

/// One of the compared paths.
#[derive(Debug, Clone)]
pub struct Target {
    /// `direct`, `direct (mantle)`, `proxy`, `proxy (mantle)` or `litellm`.
    pub name: String,
    /// What it speaks.
    pub protocol: Protocol,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Bearer token for Anthropic-format paths.
    pub token: String,
}

/// What to ask for: the user text (which carries the emulator's directives) and the mode.
#[derive(Debug, Clone)]
pub struct Ask {
    /// The last user message's text.
    pub text: String,
    /// Streaming or not.
    pub stream: bool,
    /// Close the response after this many events (a caller that goes away mid-stream).
    pub drop_after_events: Option<usize>,
    /// Give up (and close the connection) after this long.
    pub timeout: Duration,
}

impl Ask {
    /// A complete streaming or non-streaming request with a 60 s limit.
    pub fn new(text: impl Into<String>, stream: bool) -> Self {
        Self {
            text: text.into(),
            stream,
            drop_after_events: None,
            timeout: Duration::from_secs(60),
        }
    }
}

/// What happened to one request.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// HTTP status (0 when no response came).
    pub status: u16,
    /// Request sent → first text delta received.
    pub ttfd: Option<Duration>,
    /// Request sent → body ended (or was dropped).
    pub total: Duration,
    /// For `emulator:stamp`: receive time − the emulator's send stamp, per delta, in µs.
    pub chunk_delays_us: Vec<i64>,
    /// Stream events received.
    pub events: usize,
    /// A `message_stop` arrived (streams), or a complete message (non-streaming).
    pub complete: bool,
    /// The stream carried an error event (`event: error`, or an exception frame).
    pub error_event: bool,
    /// Transport failure, timeout, or unreadable body.
    pub failure: Option<String>,
    /// We closed the response early on purpose (`drop_after_events` or the timeout).
    pub dropped: bool,
}

impl Outcome {
    /// A 200 that ended the way a complete answer ends.
    pub fn ok(&self) -> bool {
        self.status == 200 && self.complete && !self.error_event && self.failure.is_none()
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn request_for(target: &Target, ask: &Ask) -> Request<Full<Bytes>> {
    let messages = json!([{ "role": "user", "content": ask.text }]);
    let builder = Request::post("/").header("content-type", "application/json");
    let (uri, body, builder) = match target.protocol {
        Protocol::Bedrock => {
            let op = if ask.stream {
                "invoke-with-response-stream"
            } else {
                "invoke"
            };
            let model = BEDROCK_MODEL.replace(':', "%3A");
            let body = json!({ "anthropic_version": "bedrock-2023-05-31", "max_tokens": 256, "messages": messages });
            // The emulator checks that a SigV4 header is present, not what it says.
            let builder = builder.header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/bedrock/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=0000",
            );
            (format!("{}/model/{model}/{op}", target.base), body, builder)
        }
        Protocol::Anthropic => {
            let body =
                json!({ "model": ANTHROPIC_MODEL, "max_tokens": 256, "stream": ask.stream, "messages": messages });
            let builder = builder
                .header("authorization", format!("Bearer {}", target.token))
                .header("anthropic-version", "2023-06-01");
            (format!("{}/v1/messages", target.base), body, builder)
        }
        Protocol::Mantle => {
            // The first-party shape with Mantle's model id, as the proxy's Mantle mode sends it.
            let body = json!({ "model": MANTLE_MODEL, "max_tokens": 256, "stream": ask.stream, "messages": messages });
            // As on Runtime, the emulator checks the SigV4 header's shape (scope `bedrock-mantle`,
            // `host` and `x-amz-date` signed and sent), never the signature itself.
            let builder = builder
                .header(
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/bedrock-mantle/aws4_request, \
                     SignedHeaders=host;x-amz-date, Signature=0",
                )
                .header("x-amz-date", "20260101T000000Z")
                .header("anthropic-version", "2023-06-01");
            (
                format!("{}/anthropic/v1/messages?beta=true", target.base),
                body,
                builder,
            )
        }
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut req = builder
        .body(Full::new(Bytes::from(bytes)))
        .unwrap_or_else(|_| Request::new(Full::new(Bytes::new())));
    if let Ok(parsed) = uri.parse() {
        *req.uri_mut() = parsed;
    }
    req
}

/// Sends one request and reads its answer as a caller would.
pub async fn send(client: &HttpClient, target: &Target, ask: &Ask) -> Outcome {
    let started = Instant::now();
    let mut out = Outcome::default();
    let work = exchange(client, target, ask, started, &mut out);
    if tokio::time::timeout(ask.timeout, work).await.is_err() {
        out.dropped = true;
        if ask.drop_after_events.is_none() {
            out.failure
                .get_or_insert_with(|| format!("timed out after {:?}", ask.timeout));
        }
    }
    out.total = started.elapsed();
    out
}

async fn exchange(client: &HttpClient, target: &Target, ask: &Ask, started: Instant, out: &mut Outcome) {
    let response = match client.request(request_for(target, ask)).await {
        Ok(response) => response,
        Err(e) => {
            out.failure = Some(format!("request failed: {e}"));
            return;
        }
    };
    out.status = response.status().as_u16();
    let event_stream = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/vnd.amazon.eventstream"));
    let mut body = response.into_body();
    let mut whole = Vec::new();
    let mut sse = SseParser::default();
    let mut frames = EventStreamParser::default();
    while let Some(frame) = body.frame().await {
        let data = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
            Err(e) => {
                out.failure = Some(format!("body failed: {e}"));
                return;
            }
        };
        if !ask.stream || out.status != 200 {
            whole.extend_from_slice(&data);
            continue;
        }
        let received = Instant::now();
        let received_us = now_us();
        let events = if event_stream {
            frames.feed(&data)
        } else {
            sse.feed(&data)
        };
        for event in events {
            out.events += 1;
            match event.kind.as_str() {
                "content_block_delta" => {
                    out.ttfd.get_or_insert(received - started);
                    if let Some(stamp) = stamp_of(&event.data) {
                        out.chunk_delays_us.push(received_us - stamp);
                    }
                }
                "message_stop" => out.complete = true,
                "error" | "exception" | "malformed" => out.error_event = true,
                _ => {}
            }
        }
        if ask.drop_after_events.is_some_and(|n| out.events >= n) {
            out.dropped = true;
            return;
        }
    }
    if !ask.stream && out.status == 200 {
        let message: Value = serde_json::from_slice(&whole).unwrap_or(Value::Null);
        out.complete = message["type"] == "message" && message["content"].as_array().is_some_and(|c| !c.is_empty());
        out.ttfd = Some(started.elapsed());
    }
}

/// The `t=<µs>;` stamp the emulator writes into each text delta.
fn stamp_of(data: &[u8]) -> Option<i64> {
    let at = data.windows(2).position(|w| w == b"t=")? + 2;
    let digits: &[u8] = &data[at..];
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// One event of either wire format: its type and its JSON.
#[derive(Debug)]
pub struct Event {
    /// `content_block_delta`, `message_stop`, `error`, `exception`, ...
    pub kind: String,
    /// The event's bytes: the SSE frame, or for Bedrock the decoded chunk payload.
    pub data: Vec<u8>,
}

/// Splits server-sent events as they arrive, frame by frame, with the proxy's own SSE checker
/// (`bedrock_anthropic_proxy::sse`): a frame that breaks the framing the proxy promises
/// becomes a `malformed` event, which counts as an error.
#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
}

impl SseParser {
    /// Feeds bytes, returns the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(len) = sse::frame_len(&self.buf[start..]) {
            let frame = &self.buf[start..start + len];
            let kind = match sse::parse_frame(frame) {
                Ok((name, _)) => name,
                Err(_) => "malformed".to_string(),
            };
            events.push(Event {
                kind,
                data: frame.to_vec(),
            });
            start += len;
        }
        self.buf.drain(..start);
        events
    }
}

/// Splits AWS event-stream frames (`total len | headers len | prelude crc | headers |
/// payload | crc`) and unwraps Bedrock's `{"bytes": "<base64 event>"}` chunk payloads.
#[derive(Default)]
pub struct EventStreamParser {
    buf: Vec<u8>,
}

impl EventStreamParser {
    /// Feeds bytes, returns the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        while self.buf.len() >= 12 {
            let total = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
            if total < 16 {
                // Not a frame; report it as an error event and stop reading.
                events.push(Event {
                    kind: "error".into(),
                    data: Vec::new(),
                });
                self.buf.clear();
                break;
            }
            if self.buf.len() < total {
                break;
            }
            let frame: Vec<u8> = self.buf.drain(..total).collect();
            events.push(decode_frame(&frame));
        }
        events
    }
}

fn decode_frame(frame: &[u8]) -> Event {
    let headers_len = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]) as usize;
    let headers_end = (12 + headers_len).min(frame.len() - 4);
    let headers = read_headers(&frame[12..headers_end]);
    let payload = &frame[headers_end..frame.len() - 4];
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if header(":message-type") != Some("event") || header(":event-type") != Some("chunk") {
        return Event {
            kind: "exception".into(),
            data: payload.to_vec(),
        };
    }
    let inner = serde_json::from_slice::<Value>(payload)
        .ok()
        .and_then(|v| v["bytes"].as_str().map(String::from))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .unwrap_or_default();
    let kind = serde_json::from_slice::<Value>(&inner)
        .ok()
        .and_then(|v| v["type"].as_str().map(String::from))
        .unwrap_or_else(|| "error".into());
    Event { kind, data: inner }
}

/// The string-valued headers of a frame (the only kind Bedrock sends on chunks).
fn read_headers(mut bytes: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Some((&name_len, rest)) = bytes.split_first() {
        let name_len = name_len as usize;
        if rest.len() < name_len + 1 {
            break;
        }
        let name = String::from_utf8_lossy(&rest[..name_len]).into_owned();
        let kind = rest[name_len];
        let rest = &rest[name_len + 1..];
        let fixed = match kind {
            0 | 1 => Some(0),
            2 => Some(1),
            3 => Some(2),
            4 => Some(4),
            5 | 8 => Some(8),
            9 => Some(16),
            _ => None,
        };
        if let Some(n) = fixed {
            if rest.len() < n {
                break;
            }
            bytes = &rest[n..];
            continue;
        }
        if rest.len() < 2 {
            break;
        }
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        if rest.len() < 2 + len {
            break;
        }
        if kind == 7 {
            out.push((name, String::from_utf8_lossy(&rest[2..2 + len]).into_owned()));
        }
        bytes = &rest[2 + len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_split_across_reads_are_reassembled() {
        let mut p = SseParser::default();
        assert!(p
            .feed(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"t\":\"t=12;\"")
            .is_empty());
        let events = p.feed(b"}\n\n");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "content_block_delta");
        assert_eq!(stamp_of(&events[0].data), Some(12));
        assert!(p.feed(b"event: content_block_delta\ndata: {\"t=12;\"").is_empty());
        let events =
            p.feed(b"}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\nevent: ping\ndata: {}\n\n");
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].kind, "malformed", "data.type must name the event");
        assert_eq!(events[1].kind, "message_stop");
        assert_eq!(events[2].kind, "malformed");
    }

    #[test]
    fn mantle_requests_carry_the_first_party_body_and_a_bedrock_mantle_signature_shape() {
        let target = Target {
            name: "direct (mantle)".into(),
            protocol: Protocol::Mantle,
            base: "http://127.0.0.1:1".into(),
            token: String::new(),
        };
        let req = request_for(&target, &Ask::new("hi", true));
        assert_eq!(req.uri(), "http://127.0.0.1:1/anthropic/v1/messages?beta=true");
        let header = |k: &str| req.headers()[k].to_str().unwrap().to_string();
        assert!(
            header("authorization").contains("/us-east-1/bedrock-mantle/aws4_request, SignedHeaders=host;x-amz-date,")
        );
        assert_eq!(header("x-amz-date"), "20260101T000000Z");
        assert_eq!(header("anthropic-version"), "2023-06-01");
    }

    #[test]
    fn event_stream_frames_are_unwrapped() {
        let inner = br#"{"type":"content_block_delta","delta":{"text":"t=99;"}}"#;
        let payload = json!({ "bytes": base64::engine::general_purpose::STANDARD.encode(inner) }).to_string();
        let mut headers = Vec::new();
        for (k, v) in [(":message-type", "event"), (":event-type", "chunk")] {
            headers.push(k.len() as u8);
            headers.extend_from_slice(k.as_bytes());
            headers.push(7);
            headers.extend_from_slice(&(v.len() as u16).to_be_bytes());
            headers.extend_from_slice(v.as_bytes());
        }
        let total = 12 + headers.len() + payload.len() + 4;
        let mut frame = Vec::new();
        frame.extend_from_slice(&(total as u32).to_be_bytes());
        frame.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        frame.extend_from_slice(&[0; 4]);
        frame.extend_from_slice(&headers);
        frame.extend_from_slice(payload.as_bytes());
        frame.extend_from_slice(&[0; 4]);
        let mut p = EventStreamParser::default();
        assert!(p.feed(&frame[..10]).is_empty());
        let events = p.feed(&frame[10..]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "content_block_delta");
        assert_eq!(stamp_of(&events[0].data), Some(99));
    }
}
