//! The checks Bedrock's Anthropic Messages endpoint ("Mantle",
//! `https://bedrock-mantle.{region}.api.aws/anthropic/v1/messages[/count_tokens]`) makes
//! before answering: the SigV4 signature's credential scope, the `anthropic-version`
//! header, the `anthropic-beta` header and the first-party-shaped body, each failing in
//! the Anthropic API's error shape ([`AnthropicError`]).
//!
//! As on the Runtime side ([`crate::validate`]), what Mantle accepts is not copied from
//! the proxy: it is learned from the `mantle` part of every recorded Claude Code request
//! ([`crate::captures::load_mantle`]) and widened only by facts with a named source, cited
//! beside each constant. The per-level checks are the Runtime side's `Shape`, so the
//! error messages use the same dotted paths.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

use axum::http::HeaderMap;
use serde_json::{Map, Value};

use crate::anthropic_error::AnthropicError;
use crate::captures::{self, MantleCapture};
use crate::error::BedrockError;
use crate::validate::{
    self, beta_flags, field_required, invalid_beta, strings, ModelRef, Shape, CLAUDE_CODE_BODY_BETAS,
    CLAUDE_CODE_HEADER_BETAS, TOOL_SEARCH_BETA,
};

/// The SigV4 signing name Mantle's credential scope must carry (AWS user guide,
/// "Inference using Anthropic Messages API": SigV4 for `bedrock-mantle`; its IAM actions
/// are `bedrock-mantle:*` and CloudTrail logs it as `bedrock-mantle.amazonaws.com`, as
/// BerriAI/litellm#31475 shows).
pub const SIGNING_NAME: &str = "bedrock-mantle";

/// The `anthropic-version` header Mantle requires (AWS, same page: "set
/// `anthropic-version: 2023-06-01` as an HTTP header"); the body's Bedrock
/// `anthropic_version` is not taken here.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Anthropic API reference, "Messages": the documented top-level request parameters.
/// Not among them, so refused unless a capture shows one: Bedrock's own `anthropic_version`
/// and `anthropic_beta` (betas go in the header here), and the features Anthropic's
/// "Claude on Amazon Bedrock" page says Mantle lacks: `mcp_servers` (MCP connector),
/// `container` (code execution, skills), `output_format` (structured outputs).
const FIRST_PARTY_BODY_KEYS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "context_management",
    "service_tier",
];

/// Anthropic API reference, "Count tokens in a Message": its parameters. Generation
/// settings are not among them: the first-party endpoint answers `max_tokens: Extra inputs
/// are not permitted` (Wei-Shaw/sub2api#4913 strips `max_tokens` for that reason), and
/// Mantle serves the same API. Captures do not widen this list: they are Messages calls.
const FIRST_PARTY_COUNT_TOKENS_KEYS: &[&str] = &[
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "context_management",
];

/// Claude Code 2.1.332 keeps this beta (and `context_management`) for Mantle while it
/// drops both for InvokeModel: the issue that asked for Mantle, and the captures.
const CONTEXT_MANAGEMENT_BETA: &str = "context-management-2025-06-27";

/// The two Mantle operations; they differ in the top-level keys they take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /anthropic/v1/messages`.
    Messages,
    /// `POST /anthropic/v1/messages/count_tokens`.
    CountTokens,
}

/// What Mantle accepts: what the `mantle` captures show, plus the documented facts above.
#[derive(Debug, Clone)]
pub struct MantleRules {
    /// The recorded requests the rules were learned from.
    pub captures: Vec<MantleCapture>,
    shape: Shape,
    header_betas: BTreeSet<String>,
}

static RULES: OnceLock<Result<MantleRules, String>> = OnceLock::new();

/// The rules, learned from the `mantle` part of every capture under
/// [`captures::CAPTURES_DIR`] on first use. An error (unreadable captures) is kept.
pub fn rules() -> Result<&'static MantleRules, String> {
    RULES
        .get_or_init(|| captures::load_mantle(Path::new(captures::CAPTURES_DIR)).map(MantleRules::learn))
        .as_ref()
        .map_err(Clone::clone)
}

impl MantleRules {
    /// Learns from `captures`: every key, role, `cache_control` key and header beta
    /// Claude Code sent Mantle is accepted, on top of the documented ones. The betas are
    /// also Claude Code's own Bedrock lists (validate.rs), which name what the CLI may
    /// send besides what one `-p` run recorded, and the context-management beta.
    ///
    /// Never accepted unless a capture shows them, because Claude Code strips or renames
    /// them for Mantle: `per-turn-control-2026-07-01`,
    /// `mid-conversation-tool-changes-2026-07-01`, `advanced-tool-use-2025-11-20` (sent as
    /// `tool-search-tool-2025-10-19`), and the first-party-only `prompt-caching-scope-*`,
    /// `tool-provenance-2026-10-26`, `cache-diagnosis-2026-04-07`.
    pub fn learn(captures: Vec<MantleCapture>) -> Self {
        let mut header_betas = strings(CLAUDE_CODE_BODY_BETAS);
        header_betas.extend(strings(CLAUDE_CODE_HEADER_BETAS));
        header_betas.insert(CONTEXT_MANAGEMENT_BETA.to_owned());
        let mut rules = Self {
            captures: Vec::new(),
            shape: Shape::documented(FIRST_PARTY_BODY_KEYS),
            header_betas,
        };
        for capture in &captures {
            if let Some(body) = capture.body.as_object() {
                rules.shape.learn(body);
            }
            if let Some(header) = &capture.beta_header {
                rules.header_betas.extend(beta_flags(header));
            }
        }
        rules.captures = captures;
        rules
    }

    /// Checks one body for `endpoint` with the `anthropic-beta` flags of its request,
    /// returning the model it names. Order: shape and required fields (400), the model
    /// (404), betas, then messages, tools and `cache_control` (400).
    pub fn check(
        &self,
        value: &Value,
        endpoint: Endpoint,
        header_betas: &[String],
    ) -> Result<ModelRef, AnthropicError> {
        let Some(body) = value.as_object() else {
            return Err(AnthropicError::invalid_request("Input should be a valid dictionary"));
        };
        match endpoint {
            Endpoint::Messages => self.shape.check_top_level_keys(body)?,
            Endpoint::CountTokens => {
                if let Some(key) = body
                    .keys()
                    .find(|key| !FIRST_PARTY_COUNT_TOKENS_KEYS.contains(&key.as_str()))
                {
                    return Err(validate::extra_input(key).into());
                }
            }
        }
        let model = required_model(body)?;
        if endpoint == Endpoint::Messages {
            validate::check_max_tokens(body)?;
        }
        let messages = validate::required_messages(body)?;
        let model = model_id(model)?;
        if !header_betas.iter().all(|flag| self.header_betas.contains(flag)) {
            return Err(invalid_beta().into());
        }
        // Betas ride only in the header here, so only the header turns tool search on.
        let tool_search = header_betas.iter().any(|flag| flag == TOOL_SEARCH_BETA);
        self.shape.check_parts(body, messages, tool_search, &model)?;
        Ok(model)
    }
}

fn required_model(body: &Map<String, Value>) -> Result<&str, BedrockError> {
    match body.get("model") {
        None => Err(field_required("model")),
        Some(Value::String(model)) => Ok(model),
        Some(_) => Err(BedrockError::validation("model: Input should be a valid string")),
    }
}

/// Mantle's model ids are `anthropic.claude-*` with no cross-region prefix (captured:
/// `anthropic.claude-opus-5-5`) and no ARN. Anything else is Anthropic's answer for a
/// model it does not serve, 404 `not_found_error` `model: <id>`: Mantle speaks the
/// Anthropic API, and no source shows it wording this differently. An id containing
/// `does-not-exist` is refused too, so tests can watch the proxy pass the answer on.
pub fn model_id(id: &str) -> Result<ModelRef, AnthropicError> {
    if !id.starts_with("anthropic.claude-") || id.contains("does-not-exist") {
        return Err(AnthropicError::not_found(format!("model: {id}")));
    }
    Ok(ModelRef {
        id: id.to_owned(),
        profile: None,
        model: id.to_owned(),
    })
}

/// Checks the SigV4 `Authorization` header: `AWS4-HMAC-SHA256 Credential=<key>/<date>/
/// <region>/bedrock-mantle/aws4_request, SignedHeaders=..., Signature=...`, with
/// `host` and `x-amz-date` signed and every signed header present. Only the shape is
/// checked, not the signature's math: the emulator knows no secret key.
///
/// Every failure is 401 `authentication_error`. Real Mantle answered a credential scoped
/// to the wrong service with HTTP 401 "Credential should be scoped to correct service:
/// 'bedrock-mantle'." (BerriAI/litellm#31476, a live test); AWS words it with a trailing
/// space (maximhq/bifrost#2533's raw body), kept here. That test also found Mantle
/// accepting a scope of `bedrock`, the known mistake BerriAI/litellm#31988 fixed: the
/// emulator refuses it anyway, as IAM (`bedrock-mantle:*`) and CloudTrail name the
/// service `bedrock-mantle` and AWS may tighten its check; a proxy that signs for
/// `bedrock` should fail here first.
pub fn authenticate(headers: &HeaderMap) -> Result<(), AnthropicError> {
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let Some(parameters) = authorization.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(AnthropicError::authentication(format!(
            "missing signature: sign the request with SigV4 (AWS4-HMAC-SHA256) for the service '{SIGNING_NAME}'"
        )));
    };
    let parameter = |name: &str| {
        parameters
            .split(',')
            .filter_map(|part| part.trim().split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty())
            .ok_or_else(|| AnthropicError::authentication(format!("Authorization header requires '{name}' parameter.")))
    };
    let credential = parameter("Credential")?;
    let signed_headers = parameter("SignedHeaders")?;
    parameter("Signature")?;
    // <access key>/<yyyymmdd>/<region>/<service>/aws4_request
    let scope: Vec<&str> = credential.split('/').collect();
    let terminator = scope.last().copied().unwrap_or("");
    if scope.len() != 5 || terminator != "aws4_request" {
        return Err(AnthropicError::authentication(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'. "
        )));
    }
    if scope[3] != SIGNING_NAME {
        return Err(AnthropicError::authentication(format!(
            "Credential should be scoped to correct service: '{SIGNING_NAME}'. "
        )));
    }
    // aws-sigv4 always dates a request with x-amz-date, so the emulator does not take
    // the `Date` header AWS would also accept.
    if !headers.contains_key("x-amz-date") {
        return Err(AnthropicError::authentication(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    }
    let signed: Vec<&str> = signed_headers.split(';').collect();
    if !signed.contains(&"host") {
        return Err(AnthropicError::authentication(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    if !signed.contains(&"x-amz-date") {
        return Err(AnthropicError::authentication(
            "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    // A header signed but not sent cannot verify (hyper's client, for one, sends no
    // `host` unless told to).
    if signed.iter().any(|name| !headers.contains_key(*name)) {
        return Err(AnthropicError::authentication(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        ));
    }
    Ok(())
}

/// `anthropic-version: 2023-06-01` is required. The missing-header wording is the
/// first-party API's; the wrong-value one is the emulator's (no source shows Mantle's).
pub fn check_version(headers: &HeaderMap) -> Result<(), AnthropicError> {
    match headers.get("anthropic-version").map(|value| value.to_str()) {
        None => Err(AnthropicError::invalid_request("anthropic-version: header is required")),
        Some(Ok(ANTHROPIC_VERSION)) => Ok(()),
        Some(_) => Err(AnthropicError::invalid_request(format!(
            "anthropic-version: Input should be '{ANTHROPIC_VERSION}'"
        ))),
    }
}

/// Everything Mantle checks before answering, in its order: signature (401), version
/// header (400), JSON, then the [`MantleRules`]. Returns the model and the parsed body.
pub fn admit(endpoint: Endpoint, headers: &HeaderMap, raw_body: &[u8]) -> Result<(ModelRef, Value), AnthropicError> {
    authenticate(headers)?;
    check_version(headers)?;
    let body: Value = serde_json::from_slice(raw_body)
        .map_err(|error| AnthropicError::invalid_request(format!("The request body is not valid JSON: {error}")))?;
    // Unreadable captures are the emulator's fault, not the request's: a 500 that says so.
    let rules =
        rules().map_err(|error| AnthropicError::internal(format!("emulator: cannot learn Mantle's rules: {error}")))?;
    let model = rules.check(&body, endpoint, &validate::header_betas(headers))?;
    Ok((model, body))
}

#[cfg(test)]
mod tests;
