//! Where a request goes: one [`Upstream`] that sends, streams and counts, with Bedrock
//! Runtime's InvokeModel ([`invoke`]) or Bedrock's Anthropic Messages endpoint ([`mantle`])
//! behind it, retries ([`retry`]), failover to `MODEL_FALLBACKS` targets, and the Lambda
//! deadline ([`deadline`]). The HTTP layer hands a request here and gets an [`Answer`] back;
//! it never knows which API ran.

pub(crate) mod deadline;
pub(crate) mod invoke;
pub(crate) mod mantle;
pub(crate) mod retry;

use std::pin::Pin;
use std::time::Duration;

use axum::http::HeaderMap;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ProxyError;
use crate::translate::heal::{send_healing, Healer};
use crate::translate::models::{self, ModelFallbacks, ModelResolver};
use crate::translate::request::{to_upstream, BetaFilter, MessagesRequest, UpstreamRequest};
use crate::usage::request_log::RequestLog;
use deadline::Deadline;
use invoke::{Bedrock, Invocation};
use mantle::Mantle;

/// Which Bedrock API a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Bedrock Runtime's InvokeModel / InvokeModelWithResponseStream / CountTokens.
    Invoke,
    /// Bedrock's Anthropic Messages endpoint (bedrock-mantle), which takes the first-party shape.
    Mantle,
}

/// One item of an upstream's event stream: an Anthropic event's JSON, or the error that ended it.
pub type StreamItem = Result<Bytes, ProxyError>;

/// Bedrock's events, in order; ends after the last event or after an error item.
pub type EventStream = Pin<Box<dyn Stream<Item = StreamItem> + Send>>;

/// A stream that has produced its first event (or has gone quiet long enough that the caller
/// should start getting pings).
pub struct StartedStream {
    /// The first item, if it came before the ping interval (`None` also when the stream ended
    /// without any event).
    pub first: Option<StreamItem>,
    /// True when Bedrock stayed silent for the whole first wait: the caller is owed a ping now.
    pub silent: bool,
    /// The rest of the stream. Dropping it closes Bedrock's connection.
    pub rest: EventStream,
}

impl StartedStream {
    /// Waits at most `first_event_wait` for the first event of `rest`, so that errors the
    /// upstream reports at once still get a real HTTP status and can be retried, while a long
    /// silence never delays the caller's first byte (a ping). Shared by both upstreams.
    pub async fn begin(mut rest: EventStream, first_event_wait: Duration) -> Result<Self, ProxyError> {
        match tokio::time::timeout(first_event_wait, rest.next()).await {
            Ok(Some(Err(e))) => Err(e),
            // Ended before any event: nothing reached the caller, so this is an error with a
            // status (and worth another attempt), not an empty 200.
            Ok(None) => Err(ProxyError::EmptyStream),
            Ok(first) => Ok(Self {
                first,
                silent: false,
                rest,
            }),
            Err(_elapsed) => Ok(Self {
                first: None,
                silent: true,
                rest,
            }),
        }
    }
}

/// What the upstream gave: a stream that has begun, or the whole answer (Anthropic's JSON, as
/// the upstream sent it; `translate::request::from_bedrock_response` finishes it).
pub enum Answer {
    /// A streamed answer whose first event has come (or whose first wait ran out).
    Stream(StartedStream),
    /// A whole answer.
    Whole(Bytes),
}

/// One request as the upstream needs it besides its body: who asks, the caller's headers (for
/// `anthropic-beta`), its log line, and inside Lambda the invocation's deadline.
pub struct Call<'a> {
    /// The authenticated caller, whose policy fallback targets must pass too.
    pub caller: &'a Caller,
    /// The caller's request headers.
    pub headers: &'a HeaderMap,
    /// The request's log line.
    pub log: &'a RequestLog,
    /// When the answer must be done (Lambda only).
    pub deadline: Option<Deadline>,
}

/// Everything that talks to Bedrock, built once per process.
pub struct Upstream {
    api: Api,
    bedrock: Bedrock,
    mantle: Mantle,
    /// What Messages refusals taught, and separately what count_tokens refusals taught: one
    /// endpoint's refusals say nothing about the other's body.
    healer: Healer,
    count_healer: Healer,
    betas: BetaFilter,
    models: ModelResolver,
    fallbacks: ModelFallbacks,
    ping: Duration,
}

/// The parts an [`Upstream`] is made of.
pub struct Parts {
    /// `BEDROCK_API`: where messages go.
    pub api: Api,
    /// Bedrock Runtime.
    pub bedrock: Bedrock,
    /// Bedrock's Anthropic Messages endpoint (also where Runtime's uncounted models are counted).
    pub mantle: Mantle,
    /// Which `anthropic-beta` flags reach Bedrock, and where.
    pub betas: BetaFilter,
    /// Model-name mapping.
    pub models: ModelResolver,
    /// `MODEL_FALLBACKS`.
    pub fallbacks: ModelFallbacks,
    /// The first-event wait and keep-alive interval of streams.
    pub ping: Duration,
}

impl Upstream {
    /// Assembles the upstream from its parts.
    pub fn new(parts: Parts) -> Self {
        Self {
            api: parts.api,
            bedrock: parts.bedrock,
            mantle: parts.mantle,
            healer: Healer::default(),
            count_healer: Healer::default(),
            betas: parts.betas,
            models: parts.models,
            fallbacks: parts.fallbacks,
            ping: parts.ping,
        }
    }

    /// Model-name mapping (the caller's names to Bedrock IDs).
    pub fn models(&self) -> &ModelResolver {
        &self.models
    }

    /// The Bedrock model ID a caller's model name resolves to.
    pub fn resolve(&self, name: &str) -> Result<String, ProxyError> {
        let (name, _) = models::split_context_suffix(name);
        self.models.resolve(name).map_err(|e| unknown_model(&e.0))
    }

    /// Sends a Messages request: the caller's model, then its `MODEL_FALLBACKS` targets (those
    /// the caller's policy allows) while Bedrock throttles or is unavailable, after each
    /// target's own retries. Nothing has reached the caller before this returns.
    pub async fn send(&self, request: MessagesRequest, call: &Call<'_>) -> Result<Answer, ProxyError> {
        let bedrock = self.bedrock.for_request(call.deadline, call.log);
        let model = request.model.clone();
        let (name, _) = models::split_context_suffix(&model);
        let policy = &call.caller.policy;
        // A fallback the caller could not ask for itself is no fallback for it.
        let fallbacks: Vec<&str> = self
            .fallbacks
            .targets(name)
            .iter()
            .map(String::as_str)
            .filter(|target| {
                let allowed = self.resolve(target).is_ok_and(|id| policy.allows_model(target, &id));
                if !allowed {
                    tracing::debug!(
                        fallback = target,
                        "fallback target skipped: the caller's policy does not allow it"
                    );
                }
                allowed
            })
            .collect();
        let targets = std::iter::once(model.as_str()).chain(fallbacks.iter().copied());
        // Later targets get the request back from bytes, not from a second tree: a tree can be
        // many times its text, and two of them at once is how a large body runs a 256 MB
        // function out of memory.
        let saved = (!fallbacks.is_empty()).then(|| Saved::of(&request));
        let mut request = Some(request);
        let mut answer = Err(ProxyError::Internal("no model to ask".into()));
        for (i, target) in targets.enumerate() {
            if i > 0 {
                call.log.fell_back();
                tracing::warn!(model = %model, fallback = target, "bedrock throttled or unavailable; trying the next MODEL_FALLBACKS target");
            }
            let this = match (request.take(), &saved) {
                (Some(first), _) => first,
                (None, Some(saved)) => saved.restore(),
                (None, None) => break,
            };
            answer = self.ask(&bedrock, this, call, target).await;
            let busy = matches!(answer, Err(ProxyError::RateLimited(_) | ProxyError::Overloaded(_)));
            if !busy || i == fallbacks.len() {
                break;
            }
        }
        answer
    }

    /// Sends the request to one model (`name`) on the configured API, healing once if needed.
    async fn ask(
        &self,
        bedrock: &Bedrock,
        request: MessagesRequest,
        call: &Call<'_>,
        name: &str,
    ) -> Result<Answer, ProxyError> {
        let stream = request.stream;
        let guardrail = call.caller.policy.guardrail.as_ref();
        refuse_unguarded(self.api, guardrail.is_some(), name)?;
        let upstream = self.prepare(request, call, self.api, name)?;
        let model_id = upstream.model_id.clone();
        let (mantle, policy, ping, log) = (&self.mantle, bedrock.policy(), self.ping, call.log);
        let model_id = &model_id;
        let healer = &self.healer;
        let answer = match (self.api, stream) {
            (Api::Invoke, true) => Answer::Stream(
                send_healing(healer, upstream, log, |body, betas| async move {
                    let invocation = Invocation {
                        model_id,
                        body: &body,
                        betas: betas.as_deref(),
                        guardrail,
                    };
                    bedrock.invoke_stream(invocation, ping).await
                })
                .await?,
            ),
            (Api::Mantle, true) => Answer::Stream(
                send_healing(healer, upstream, log, |body, betas| async move {
                    mantle.messages_stream(policy, &body, betas, ping).await
                })
                .await?,
            ),
            (Api::Invoke, false) => Answer::Whole(
                send_healing(healer, upstream, log, |body, betas| async move {
                    let invocation = Invocation {
                        model_id,
                        body: &body,
                        betas: betas.as_deref(),
                        guardrail,
                    };
                    bedrock.invoke(invocation).await
                })
                .await?,
            ),
            (Api::Mantle, false) => Answer::Whole(
                send_healing(healer, upstream, log, |body, betas| async move {
                    mantle.messages(policy, &body, betas).await
                })
                .await?,
            ),
        };
        Ok(answer)
    }

    /// Resolves the model `name` (the caller's, or a fallback target) and applies the rules
    /// table: the request as `api` should get it.
    fn prepare(
        &self,
        request: MessagesRequest,
        call: &Call<'_>,
        api: Api,
        name: &str,
    ) -> Result<UpstreamRequest, ProxyError> {
        // Claude Code's `[1m]` names ask for the 1M-token context window, which Bedrock takes
        // as a beta flag on the plain model.
        let (name, context_1m) = models::split_context_suffix(name);
        let resolved = self.models.resolve(name).map_err(|e| unknown_model(&e.0))?;
        let model_id = match api {
            Api::Invoke => resolved,
            // Mantle names models without a region prefix (`anthropic.claude-opus-5-5`).
            Api::Mantle => models::base_model_id(&resolved).to_string(),
        };
        call.log.model(&request.model, &model_id, request.stream);
        let extra = context_1m.then_some(models::CONTEXT_1M_BETA);
        let headers = beta_headers(call.headers).chain(extra);
        Ok(to_upstream(request, api, &model_id, headers, &self.betas))
    }

    /// Counts a request's input tokens. On InvokeModel, models Bedrock Runtime's CountTokens
    /// refuses ("AWS counts some newer Claude models only on bedrock-mantle", as Claude Code
    /// puts it) are counted on Mantle, and remembered so that the next count goes there
    /// directly.
    pub async fn count(&self, request: MessagesRequest, call: &Call<'_>) -> Result<u64, ProxyError> {
        match self.api {
            Api::Mantle => self.count_on_mantle(request, call).await,
            Api::Invoke => {
                // Kept as bytes for a second try on Mantle, not as a second tree (see `send`).
                let saved = Saved::of(&request);
                match self.count_on_runtime(request, call).await {
                    Ok(n) => Ok(n),
                    Err(RuntimeCount::NotCounted(model_id)) => {
                        self.mantle.count_here_from_now_on(&model_id);
                        self.count_on_mantle(saved.restore(), call).await
                    }
                    Err(RuntimeCount::CountedOnMantle) => self.count_on_mantle(saved.restore(), call).await,
                    Err(RuntimeCount::Failed(e)) => Err(e),
                }
            }
        }
    }

    async fn count_on_runtime(&self, request: MessagesRequest, call: &Call<'_>) -> Result<u64, RuntimeCount> {
        let model = request.model.clone();
        let mut upstream = self
            .prepare(request, call, Api::Invoke, &model)
            .map_err(RuntimeCount::Failed)?;
        // CountTokens takes a complete InvokeModel body, which needs max_tokens; the value does
        // not change the count, but it must exceed any thinking budget or Bedrock refuses it.
        // Saturating: the budget is the caller's number, and may be u64::MAX.
        let budget = upstream
            .body
            .get("thinking")
            .and_then(|t| t.get("budget_tokens"))
            .and_then(Value::as_u64);
        upstream
            .body
            .entry("max_tokens")
            .or_insert(json!(budget.map_or(1, |b| b.saturating_add(1))));
        let model_id = upstream.model_id.clone();
        if self.mantle.counts(&model_id) {
            return Err(RuntimeCount::CountedOnMantle);
        }
        let bedrock = &self.bedrock.for_request(None, call.log);
        // CountTokens reads only the body; flags for the header have no effect there.
        let counted = send_healing(&self.count_healer, upstream, call.log, |body, _betas| {
            let model_id = &model_id;
            async move { bedrock.count_tokens(model_id, &body).await }
        })
        .await;
        match counted {
            Ok(n) => Ok(n),
            // Bedrock Runtime's refusal of a model it does not count (pydantic-ai#4001,
            // bifrost#2169), under its profile ID and its base ID (`Bedrock::count_tokens`
            // tried both).
            Err(ProxyError::CountTokensUnsupported(_)) => Err(RuntimeCount::NotCounted(model_id)),
            Err(e) => Err(RuntimeCount::Failed(e)),
        }
    }

    async fn count_on_mantle(&self, request: MessagesRequest, call: &Call<'_>) -> Result<u64, ProxyError> {
        let model = request.model.clone();
        let upstream = self.prepare(request, call, Api::Mantle, &model)?;
        let mantle = &self.mantle;
        let policy = &self.bedrock.policy().for_request(None, call.log);
        send_healing(&self.count_healer, upstream, call.log, |body, betas| async move {
            mantle.count_tokens(policy, &body, betas).await
        })
        .await
    }
}

/// A request kept as its bytes while an attempt holds its tree.
struct Saved {
    model: String,
    stream: bool,
    body: Bytes,
}

impl Saved {
    fn of(request: &MessagesRequest) -> Self {
        Self {
            model: request.model.clone(),
            stream: request.stream,
            // A map of JSON values always serialises.
            body: serde_json::to_vec(&request.body).unwrap_or_default().into(),
        }
    }

    fn restore(&self) -> MessagesRequest {
        MessagesRequest {
            model: self.model.clone(),
            stream: self.stream,
            // These bytes were serialised from a map a moment ago, so they parse.
            body: serde_json::from_slice(&self.body).unwrap_or_default(),
        }
    }
}

/// Why Bedrock Runtime gave no count.
enum RuntimeCount {
    /// Runtime does not count this model (its ID is given).
    NotCounted(String),
    /// An earlier request learned that this model is counted on Mantle.
    CountedOnMantle,
    /// Any other failure, for the caller.
    Failed(ProxyError),
}

/// Bedrock's Anthropic Messages endpoint takes no guardrail: guardrails are applied through
/// InvokeModel's (and Converse's) guardrail parameters (AWS user guide, "Use cases for Amazon
/// Bedrock Guardrails"), and Mantle's Anthropic API has none. A guarded caller's request that
/// would go there, as the configured API or as a `MODEL_FALLBACKS` target, is refused rather
/// than answered unguarded. Checked for every target, so failover cannot route around it.
fn refuse_unguarded(api: Api, guarded: bool, model: &str) -> Result<(), ProxyError> {
    if guarded && api == Api::Mantle {
        return Err(ProxyError::PermissionDenied(format!(
            "this token's requests must go through a Bedrock guardrail, which Bedrock's Anthropic \
             Messages endpoint (BEDROCK_API=mantle) cannot apply, so the proxy did not send this \
             request for model {model:?}; the proxy's operator can serve this caller with \
             BEDROCK_API=invoke (docs/guardrails.md)"
        )));
    }
    Ok(())
}

fn beta_headers(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers.get_all("anthropic-beta").iter().filter_map(|v| v.to_str().ok())
}

/// The 404 for a model name this proxy cannot map.
pub fn unknown_model(name: &str) -> ProxyError {
    ProxyError::NotFound(format!(
        "model {name:?} is not a Claude model this proxy can map to Bedrock; use a Claude model name \
         (e.g. claude-sonnet-4-5), a Bedrock model or inference-profile ID, or map it with MODEL_MAP, \
         e.g. MODEL_MAP='{{\"{name}\": \"us.anthropic.claude-sonnet-4-5-20250929-v1:0\"}}'"
    ))
}
