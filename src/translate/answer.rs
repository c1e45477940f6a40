//! Bedrock's own keys in its answers, which no caller ever sees: `amazon-bedrock-*` (token
//! counts and latencies, the guardrail's action, a guardrail trace) are removed here, and what
//! they said is kept for the log line.
//!
//! Where Bedrock puts them (AWS API reference, InvokeModel, "Use a guardrail" example):
//! `"amazon-bedrock-guardrailAction": "INTERVENED" | "NONE"` and `"amazon-bedrock-trace"` at the
//! top level of the whole answer; in a stream, on `message_stop` next to
//! `amazon-bedrock-invocationMetrics` (Claude Code 2.1.332 reads the action there in its Bedrock
//! stream handling). Some clients look for the action on `message_start`'s message too
//! (maximhq/bifrost's stream tests), so that object is cleaned as well.

use serde_json::{Map, Value};

/// The namespace of Bedrock's own keys.
pub const BEDROCK_PREFIX: &str = "amazon-bedrock-";

/// Bedrock's token counts and latencies, on a stream's `message_stop`.
pub const METRICS_KEY: &str = "amazon-bedrock-invocationMetrics";

/// `"INTERVENED"` when the guardrail blocked the prompt or the answer, `"NONE"` otherwise.
pub const GUARDRAIL_ACTION_KEY: &str = "amazon-bedrock-guardrailAction";

/// The request line's `outcome` when a guardrail replaced the answer (the answer is still a 200).
pub const GUARDRAIL_INTERVENED: &str = "guardrail_intervened";

/// What Bedrock's keys said, once removed.
#[derive(Debug, Default, PartialEq)]
pub struct Removed {
    /// `amazon-bedrock-invocationMetrics`, if there was one.
    pub metrics: Option<Value>,
    /// The guardrail intervened: the answer's text is the guardrail's blocked-input or
    /// blocked-output message, not the model's.
    pub intervened: bool,
}

impl Removed {
    fn take_from(&mut self, object: &mut Map<String, Value>) {
        if !object.keys().any(|key| key.starts_with(BEDROCK_PREFIX)) {
            return;
        }
        if let Some(metrics) = object.remove(METRICS_KEY) {
            self.metrics = Some(metrics);
        }
        if object.get(GUARDRAIL_ACTION_KEY).and_then(Value::as_str) == Some("INTERVENED") {
            self.intervened = true;
        }
        object.retain(|key, _| !key.starts_with(BEDROCK_PREFIX));
    }
}

/// Removes Bedrock's keys from a whole answer (the message object).
///
/// An intervention keeps Bedrock's shape: the guardrail's configured message as the assistant's
/// text, and Bedrock's `stop_reason`. Not `refusal`: Claude Code answers a `refusal` by asking a
/// fallback model again or by ending the turn as interrupted, where the operator's message is
/// what the user should read. Bedrock has been seen to give a blocked prompt `stop_reason: null`
/// (a live InvokeModel test of a guardrail blocking input); a whole Anthropic message always
/// has one, so that becomes `end_turn`, which is what Bedrock gives in the stream.
pub fn strip_message(message: &mut Map<String, Value>) -> Removed {
    let mut removed = Removed::default();
    removed.take_from(message);
    if removed.intervened && message.get("stop_reason").is_some_and(Value::is_null) {
        message.insert("stop_reason".into(), Value::String("end_turn".into()));
    }
    removed
}

/// Removes Bedrock's keys from one stream event: at its top level, and in `message_start`'s
/// message.
pub fn strip_event(event: &mut Value) -> Removed {
    let mut removed = Removed::default();
    let Some(object) = event.as_object_mut() else {
        return removed;
    };
    removed.take_from(object);
    if let Some(Value::Object(message)) = object.get_mut("message") {
        removed.take_from(message);
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        let Value::Object(object) = value else { unreachable!() };
        object
    }

    #[test]
    fn an_intervention_loses_every_bedrock_key_and_gets_a_stop_reason() {
        let mut message = object(json!({
            "type": "message",
            "content": [{"type": "text", "text": "Sorry, the model cannot answer this question."}],
            "stop_reason": null,
            "amazon-bedrock-guardrailAction": "INTERVENED",
            "amazon-bedrock-trace": {"guardrail": {"input": {"abc": {}}}},
        }));
        let removed = strip_message(&mut message);
        assert!(removed.intervened);
        assert!(message.keys().all(|k| !k.starts_with(BEDROCK_PREFIX)), "{message:?}");
        assert_eq!(message["stop_reason"], "end_turn");
        assert_eq!(
            message["content"][0]["text"],
            "Sorry, the model cannot answer this question."
        );
    }

    #[test]
    fn no_intervention_leaves_the_stop_reason_alone() {
        let mut message = object(json!({"stop_reason": null, "amazon-bedrock-guardrailAction": "NONE"}));
        let removed = strip_message(&mut message);
        assert!(!removed.intervened);
        assert!(message["stop_reason"].is_null());
        assert!(!message.contains_key(GUARDRAIL_ACTION_KEY));
    }

    #[test]
    fn stream_events_are_cleaned_at_the_top_and_in_the_message() {
        let mut stop = json!({
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": {"inputTokenCount": 3},
            "amazon-bedrock-guardrailAction": "INTERVENED",
        });
        let removed = strip_event(&mut stop);
        assert!(removed.intervened);
        assert_eq!(removed.metrics, Some(json!({"inputTokenCount": 3})));
        assert_eq!(stop, json!({"type": "message_stop"}));

        let mut start =
            json!({"type": "message_start", "message": {"id": "m", "amazon-bedrock-guardrailAction": "NONE"}});
        assert!(!strip_event(&mut start).intervened);
        assert_eq!(start, json!({"type": "message_start", "message": {"id": "m"}}));
    }
}
