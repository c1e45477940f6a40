//! Healing: when Bedrock still refuses a request that the rules table let through (a field a
//! newer client sends, a flag a model does not take), learn from its 400 and try once more
//! before the caller sees any byte.
//!
//! Two refusals are understood, in Bedrock's own words:
//! - `<path>: Extra inputs are not permitted` (older: `#/<path>: extraneous key [<key>] is not
//!   permitted`): that field is removed;
//! - `invalid beta flag`: only the flags Claude Code itself sends Bedrock are kept.
//!
//! What is learned holds for the life of the process, per model and set of body flags (a field
//! may be refused only without the flag that enables it, like `defer_loading` without tool
//! search), so the next such request goes out right the first time. One warning names the
//! field (never a value), and the request's log line says `healed`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::RwLock;

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::error::ProxyError;
use crate::sync::IgnorePoison;
use crate::translate::request::UpstreamRequest;
use crate::translate::rules;
use crate::usage::request_log::RequestLog;

/// One step of a learned field path: a key, or any element of an array.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    AnyIndex,
}

/// What one model has taught us.
#[derive(Debug, Default)]
struct Learned {
    removed: Vec<Vec<Step>>,
    verified_betas_only: bool,
}

/// Fields a refusal may never remove: the request's structure, without which it would be
/// meaningless, and the fields whose silent loss would change what the caller asked for (its
/// system prompt, tools, thinking, metadata, sampling). A caller can provoke a refusal that
/// seems to name one (an extra key `"x system"`); it must not teach the healer to strip it for
/// everyone.
const PROTECTED: &[&str] = &[
    "messages",
    "max_tokens",
    "anthropic_version",
    "role",
    "content",
    "type",
    "model",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "metadata",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "name",
    "input_schema",
];

/// Path segments Bedrock names that are not keys of the body: the union variant in
/// `tools.0.custom.x`. Only these may be skipped when a refused path is located.
const VARIANT_SEGMENTS: &[&str] = &["custom"];

/// At most this many lesson keys (model × body flags) are kept, and this many fields per key:
/// a caller sending a fresh unknown key on every request must not grow the process.
const MAX_KEYS: usize = 64;
const MAX_PATHS_PER_KEY: usize = 16;

/// What was learned from each model's refusals.
#[derive(Debug, Default)]
pub struct Healer {
    learned: RwLock<HashMap<String, Learned>>,
}

impl Healer {
    /// Applies what earlier refusals taught for requests like this one, and returns what the
    /// lessons about it are filed under (taken before any change, so that they are found again).
    pub fn apply(&self, request: &mut UpstreamRequest) -> String {
        let key = lesson_key(request);
        let learned = self.learned.read().ignore_poison();
        if let Some(learned) = learned.get(&key) {
            for path in &learned.removed {
                remove(&mut request.body, path);
            }
            if learned.verified_betas_only {
                keep_verified_betas(request);
            }
        }
        key
    }

    /// Learns from Bedrock's refusal `message` and fixes `request` to match. Returns what was
    /// changed, for the log, or `None` when the message is not one we can act on or the fix
    /// would change nothing (so the retry would fail the same way).
    pub fn learn(&self, request: &mut UpstreamRequest, key: String, message: &str) -> Option<String> {
        if message.contains("invalid beta flag") {
            let before = request.clone();
            keep_verified_betas(request);
            if *request == before {
                return None;
            }
            let mut learned = self.learned.write().ignore_poison();
            if !learned.contains_key(&key) && learned.len() >= MAX_KEYS {
                return Some("anthropic_beta".into());
            }
            let entry = learned.entry(key).or_default();
            if !entry.verified_betas_only {
                entry.verified_betas_only = true;
                tracing::warn!(
                    model_id = %request.model_id,
                    "bedrock refused a beta flag; this model now gets only the flags Claude Code itself sends"
                );
            }
            return Some("anthropic_beta".into());
        }
        let path = refused_paths(message)
            .into_iter()
            .find_map(|refused| locate_in(&request.body, &refused))?;
        if matches!(path.last(), Some(Step::Key(last)) if PROTECTED.contains(&last.as_str())) {
            return None;
        }
        if !remove(&mut request.body, &path) {
            return None;
        }
        let shown = display(&path);
        let mut learned = self.learned.write().ignore_poison();
        if !learned.contains_key(&key) && learned.len() >= MAX_KEYS {
            // Healed for this request, not remembered.
            return Some(shown);
        }
        let entry = learned.entry(key).or_default();
        if !entry.removed.contains(&path) && entry.removed.len() < MAX_PATHS_PER_KEY {
            entry.removed.push(path);
            tracing::warn!(
                model_id = %request.model_id,
                field = %shown,
                "bedrock refused a field; it is left out for this model from now on"
            );
        }
        Some(shown)
    }
}

/// Sends `request` with what was learned applied; if Bedrock refuses it in a way we can heal,
/// fixes it and sends it once more. `send` gets the body bytes and the `anthropic-beta` header.
///
/// While the request is in flight only its bytes are kept, not also its JSON tree: at 200
/// concurrent Claude Code-sized bodies the tree is most of the proxy's memory. The rare 400
/// worth healing rebuilds the tree from the bytes.
pub async fn send_healing<T, F, Fut>(
    healer: &Healer,
    mut request: UpstreamRequest,
    log: &RequestLog,
    mut send: F,
) -> Result<T, ProxyError>
where
    F: FnMut(Bytes, Option<String>) -> Fut,
    Fut: Future<Output = Result<T, ProxyError>>,
{
    let key = healer.apply(&mut request);
    let body = request.body_bytes();
    request.body = Map::new();
    match send(body.clone(), request.beta_header()).await {
        Err(ProxyError::InvalidRequest(message)) => {
            // The proxy serialised these bytes itself a moment ago, so they parse.
            request.body = serde_json::from_slice(&body).unwrap_or_default();
            drop(body);
            match healer.learn(&mut request, key, &message) {
                Some(fixed) => {
                    log.healed(&fixed);
                    send(request.body_bytes(), request.beta_header()).await
                }
                None => Err(ProxyError::InvalidRequest(message)),
            }
        }
        other => other,
    }
}

/// What a lesson is filed under: the model, and the body flags (which decide what else the
/// body may carry).
fn lesson_key(request: &UpstreamRequest) -> String {
    let mut flags = request.body_betas();
    flags.sort_unstable();
    format!("{} {}", request.model_id, flags.join(","))
}

fn keep_verified_betas(request: &mut UpstreamRequest) {
    let verified = |flag: &str| rules::beta_rule(flag).is_some_and(|rule| rule.source.verified());
    request.header_betas.retain(|flag| verified(flag));
    if let Some(Value::Array(flags)) = request.body.get_mut("anthropic_beta") {
        flags.retain(|flag| flag.as_str().is_some_and(verified));
        if flags.is_empty() {
            request.body.remove("anthropic_beta");
        }
    }
}

/// The dotted paths a refusal may name, longest first: `messages.1.output_config` from
/// `messages.1.output_config: Extra inputs are not permitted`, or `messages.1.output_config`
/// from `#/messages/1: extraneous key [output_config] is not permitted`. Keys may contain
/// spaces, so every suffix of the text before the colon that starts after a separator is a
/// candidate: for `x system: Extra…` the key `x system` is tried before `system`, and only a
/// path that exists in the request is ever learned.
fn refused_paths(message: &str) -> Vec<Vec<String>> {
    let suffixes = |text: &str| -> Vec<String> {
        let separator = |c: char| c.is_whitespace() || matches!(c, ',' | ';' | '"' | '\'');
        let mut out: Vec<String> = text
            .char_indices()
            .filter(|&(_, c)| separator(c))
            .map(|(i, c)| text[i + c.len_utf8()..].to_string())
            .collect();
        out.insert(0, text.to_string());
        out.retain(|t| !t.is_empty() && !t.starts_with(separator));
        out
    };
    if let Some((before, _)) = message.split_once(": Extra inputs are not permitted") {
        return suffixes(before)
            .into_iter()
            .map(|path| path.split('.').map(str::to_string).collect())
            .collect();
    }
    let Some((before, after)) = message.split_once(": extraneous key [") else {
        return Vec::new();
    };
    let Some((key, _)) = after.split_once(']') else {
        return Vec::new();
    };
    suffixes(before)
        .into_iter()
        .filter(|pointer| pointer.starts_with('#'))
        .map(|pointer| {
            let mut path: Vec<String> = pointer
                .trim_start_matches('#')
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            path.push(key.to_string());
            path
        })
        .collect()
}

/// Finds the refused field in the body and returns its general path (array indices become
/// "any", so the lesson applies to every tool or message). Segments that are not keys of the
/// body, such as the `custom` in `tools.0.custom.x` (Bedrock names the union variant), are
/// skipped.
fn locate_in(fields: &Map<String, Value>, path: &[String]) -> Option<Vec<Step>> {
    let (first, rest) = path.split_first()?;
    match fields.get(first) {
        Some(_) if rest.is_empty() => Some(vec![Step::Key(first.clone())]),
        Some(child) => prepend(Step::Key(first.clone()), locate(child, rest)?),
        None if !rest.is_empty() && VARIANT_SEGMENTS.contains(&first.as_str()) => locate_in(fields, rest),
        None => None,
    }
}

fn locate(value: &Value, path: &[String]) -> Option<Vec<Step>> {
    match value {
        Value::Object(fields) => locate_in(fields, path),
        Value::Array(items) => {
            let (first, rest) = path.split_first()?;
            let index: usize = first.parse().ok()?;
            prepend(Step::AnyIndex, locate(items.get(index)?, rest)?)
        }
        _ => None,
    }
}

fn prepend(step: Step, mut tail: Vec<Step>) -> Option<Vec<Step>> {
    tail.insert(0, step);
    Some(tail)
}

/// Removes every field matching `path`; true if one was there.
fn remove(body: &mut Map<String, Value>, path: &[Step]) -> bool {
    fn walk(value: &mut Value, path: &[Step]) -> bool {
        match (path.split_first(), value) {
            (Some((Step::Key(key), [])), Value::Object(fields)) => fields.remove(key).is_some(),
            (Some((Step::Key(key), rest)), Value::Object(fields)) => {
                fields.get_mut(key).is_some_and(|child| walk(child, rest))
            }
            (Some((Step::AnyIndex, rest)), Value::Array(items)) => {
                items.iter_mut().fold(false, |removed, item| walk(item, rest) | removed)
            }
            _ => false,
        }
    }
    match path.split_first() {
        Some((Step::Key(key), [])) => body.remove(key).is_some(),
        Some((Step::Key(key), rest)) => body.get_mut(key).is_some_and(|child| walk(child, rest)),
        _ => false,
    }
}

fn display(path: &[Step]) -> String {
    path.iter()
        .map(|step| match step {
            Step::Key(key) => key.as_str(),
            Step::AnyIndex => "*",
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn learn(healer: &Healer, request: &mut UpstreamRequest, message: &str) -> Option<String> {
        let key = lesson_key(request);
        healer.learn(request, key, message)
    }

    fn request(body: Value) -> UpstreamRequest {
        UpstreamRequest {
            model_id: "us.anthropic.claude-opus-5-5".into(),
            body: body.as_object().unwrap().clone(),
            header_betas: vec!["claude-code-20250219".into(), "brand-new-2027-01-01".into()],
        }
    }

    fn tool_body() -> Value {
        json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5,
               "messages": [{"role": "user", "content": "hi"}],
               "tools": [{"name": "a", "input_schema": {}, "future_flag": true},
                         {"name": "b", "input_schema": {}, "future_flag": false}]})
    }

    #[test]
    fn a_refused_tool_field_is_removed_from_every_tool_and_remembered() {
        let healer = Healer::default();
        let mut req = request(tool_body());
        let fixed = learn(
            &healer,
            &mut req,
            "tools.0.custom.future_flag: Extra inputs are not permitted",
        );
        assert_eq!(fixed.as_deref(), Some("tools.*.future_flag"));
        assert!(req.body["tools"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("future_flag").is_none()));
        // The next request for the model is fixed before it is sent.
        let mut next = request(tool_body());
        healer.apply(&mut next);
        assert!(next.body["tools"][1].get("future_flag").is_none());
        // Another model, or the same one with other body flags, has learned nothing.
        let mut other = request(tool_body());
        other.model_id = "us.anthropic.claude-haiku-5-5".into();
        healer.apply(&mut other);
        assert!(other.body["tools"][0].get("future_flag").is_some());
        let mut flagged = request(tool_body());
        flagged
            .body
            .insert("anthropic_beta".into(), json!(["tool-search-tool-2025-10-19"]));
        healer.apply(&mut flagged);
        assert!(flagged.body["tools"][0].get("future_flag").is_some());
    }

    #[test]
    fn message_fields_and_the_old_wording_are_understood() {
        let healer = Healer::default();
        let mut body = tool_body();
        body["messages"] =
            json!([{"role": "user", "content": "a"}, {"role": "system", "content": "b", "output_config": {}}]);
        let mut req = request(body.clone());
        assert_eq!(
            learn(
                &healer,
                &mut req,
                "messages.1.output_config: Extra inputs are not permitted"
            )
            .as_deref(),
            Some("messages.*.output_config")
        );
        let mut req = request(body);
        req.body.insert("stream".into(), json!(true));
        assert_eq!(
            learn(
                &Healer::default(),
                &mut req,
                "#: extraneous key [stream] is not permitted"
            )
            .as_deref(),
            Some("stream")
        );
        assert!(!req.body.contains_key("stream"));
    }

    #[test]
    fn refusals_that_cannot_be_healed_are_left_alone() {
        let healer = Healer::default();
        let mut req = request(tool_body());
        let before = req.clone();
        for message in [
            "messages: Extra inputs are not permitted",
            "tools.0.custom.missing: Extra inputs are not permitted",
            "max_tokens: Input should be greater than or equal to 1",
            "The provided model identifier is invalid.",
        ] {
            assert_eq!(learn(&healer, &mut req, message), None, "{message}");
        }
        assert_eq!(req, before);
    }

    #[test]
    fn a_caller_cannot_teach_the_healer_to_strip_a_protected_field() {
        let healer = Healer::default();
        let mut body = tool_body();
        body["system"] = json!("be brief");
        body["x system"] = json!(1);
        body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
        let mut req = request(body.clone());
        // The key that exists and was refused is removed; `system` itself is untouched.
        assert_eq!(
            learn(&healer, &mut req, "x system: Extra inputs are not permitted").as_deref(),
            Some("x system")
        );
        assert_eq!(req.body["system"], "be brief");
        // A refusal naming a protected field directly, or through a made-up parent, is not healed.
        for message in [
            "system: Extra inputs are not permitted",
            "foo.system: Extra inputs are not permitted",
            "thinking: Extra inputs are not permitted",
            "tools: Extra inputs are not permitted",
            "metadata: Extra inputs are not permitted",
        ] {
            let mut req = request(body.clone());
            assert_eq!(learn(&healer, &mut req, message), None, "{message}");
        }
        let mut next = request(body);
        healer.apply(&mut next);
        assert_eq!(next.body["system"], "be brief");
        assert!(next.body.contains_key("thinking"));
    }

    #[test]
    fn lessons_are_bounded_however_many_fresh_keys_are_refused() {
        let healer = Healer::default();
        for i in 0..(MAX_KEYS * 2) {
            let mut body = tool_body();
            body[format!("junk{i}")] = json!(1);
            let mut req = request(body);
            req.model_id = format!("us.anthropic.claude-fake-{i}");
            assert!(learn(&healer, &mut req, &format!("junk{i}: Extra inputs are not permitted")).is_some());
        }
        let mut one = tool_body();
        for i in 0..(MAX_PATHS_PER_KEY * 2) {
            one[format!("k{i}")] = json!(1);
        }
        for i in 0..(MAX_PATHS_PER_KEY * 2) {
            let mut req = request(one.clone());
            learn(&healer, &mut req, &format!("k{i}: Extra inputs are not permitted"));
        }
        let learned = healer.learned.read().unwrap();
        assert!(learned.len() <= MAX_KEYS, "{} keys", learned.len());
        assert!(learned.values().all(|l| l.removed.len() <= MAX_PATHS_PER_KEY));
    }

    #[test]
    fn an_invalid_beta_flag_falls_back_to_the_flags_claude_code_sends() {
        let healer = Healer::default();
        let mut body = tool_body();
        body["anthropic_beta"] = json!(["interleaved-thinking-2025-05-14", "output-128k-2025-02-19"]);
        let mut req = request(body.clone());
        assert!(learn(&healer, &mut req, "invalid beta flag").is_some());
        assert_eq!(req.body_betas(), ["interleaved-thinking-2025-05-14"]);
        assert_eq!(req.header_betas, ["claude-code-20250219"]);
        // Nothing left to remove: no second retry.
        assert_eq!(learn(&healer, &mut req, "invalid beta flag"), None);
        let mut next = request(body);
        healer.apply(&mut next);
        assert_eq!(next.body_betas(), ["interleaved-thinking-2025-05-14"]);
    }
}
