//! Guardrails per caller (issue 21): a caller's policy names a Bedrock guardrail, which the
//! proxy sends on every InvokeModel of that caller (seen at the emulator, which intervenes the
//! way Bedrock does, see tests/emulator/src/guardrail.rs); a caller can neither choose nor
//! remove it; an intervention reaches the caller in Anthropic's shape with none of Bedrock's
//! guardrail fields; and Bedrock's Anthropic endpoint (Mantle), which applies none, is refused.

mod common;

use axum::body::Body;
use common::idp::{Idp, Key};
use common::{harness, message, parse_sse, send, Logs, Reply};
use serde_json::{json, Value};

const GUARDED: &str = "guarded-token-0123456789";
const GUARDED_OUTPUT: &str = "output-guarded-token-0123456789";
const OPEN: &str = "open-token-0123456789";
const MISCONFIGURED: &str = "misconfigured-token-0123456789";
const BLOCKED: &str = "Sorry, the model cannot answer this question.";
const BLOCKED_OUTPUT: &str = "The answer was blocked by the emulator's output guardrail.";

/// Callers with the emulator's test guardrails (one by ARN), one without, and one whose
/// guardrail version does not exist in the "account".
fn secret() -> String {
    json!({"tokens": {
        "guarded": {"token": GUARDED, "guardrail": {"id": "emulatorinput1", "version": "1"}},
        "guarded-output": {"token": GUARDED_OUTPUT, "guardrail": {
            "id": "arn:aws:bedrock:us-east-1:123456789012:guardrail/emulatoroutput1", "version": "2"}},
        "open": OPEN,
        "misconfigured": {"token": MISCONFIGURED, "guardrail": {"id": "emulatorinput1", "version": "9"}}
    }})
    .to_string()
}

async fn post_as(app: &axum::Router, token: &str, uri: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
    let mut req = axum::http::Request::builder()
        .method("POST")
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    send(app, req.body(Body::from(body.to_string())).unwrap()).await
}

/// The guardrail headers of every request the emulator saw.
fn guardrail_headers(emulator: &bedrock_emulator::Emulator) -> Vec<(Value, Value)> {
    emulator
        .requests()
        .iter()
        .map(|r| {
            let h = &r["headers"];
            (
                h["x-amzn-bedrock-guardrailidentifier"].clone(),
                h["x-amzn-bedrock-guardrailversion"].clone(),
            )
        })
        .collect()
}

/// The caller must never see Bedrock's own keys, whatever the answer.
fn assert_no_bedrock_fields(reply: &Reply) {
    let text = reply.text();
    assert!(!text.contains("amazon-bedrock"), "Bedrock's fields leaked: {text}");
    assert!(!text.contains("guardrailAction"), "{text}");
}

#[tokio::test]
async fn a_guarded_callers_invocations_carry_its_guardrail_and_others_do_not() {
    let h = harness(&[("BEARER_TOKEN", &secret())]).await;
    for stream in [false, true] {
        h.emulator.clear();
        let reply = post_as(&h.app, GUARDED, "/v1/messages", &message("hi", stream), &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_no_bedrock_fields(&reply);
        let reply = post_as(&h.app, OPEN, "/v1/messages", &message("hi", stream), &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let operation = if stream {
            "invoke-with-response-stream"
        } else {
            "invoke"
        };
        assert!(h.emulator.requests().iter().all(|r| r["operation"] == operation));
        assert_eq!(
            guardrail_headers(&h.emulator),
            [(json!("emulatorinput1"), json!("1")), (Value::Null, Value::Null)],
            "stream={stream}"
        );
    }
    // An ARN is sent as it is configured.
    h.emulator.clear();
    let reply = post_as(&h.app, GUARDED_OUTPUT, "/", &message("hi", false), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        guardrail_headers(&h.emulator),
        [(
            json!("arn:aws:bedrock:us-east-1:123456789012:guardrail/emulatoroutput1"),
            json!("2")
        )]
    );
}

#[tokio::test]
async fn a_caller_cannot_choose_change_or_remove_a_guardrail() {
    let h = harness(&[("BEARER_TOKEN", &secret())]).await;
    let attempts: [(&[(&str, &str)], Value); 5] = [
        (
            &[("X-Amzn-Bedrock-GuardrailIdentifier", "emulatoroutput1")],
            message("hi", false),
        ),
        (&[("X-Amzn-Bedrock-GuardrailVersion", "DRAFT")], message("hi", true)),
        (&[("X-Amzn-Bedrock-GuardrailIdentifier", "")], message("hi", false)),
        (&[("X-Amzn-Bedrock-Trace", "ENABLED_FULL")], message("hi", true)),
        (&[], {
            let mut body = message("hi", true);
            body["amazon-bedrock-guardrailConfig"] = json!({"streamProcessingMode": "ASYNCHRONOUS"});
            body
        }),
    ];
    for token in [GUARDED, OPEN] {
        for (headers, body) in &attempts {
            for uri in ["/v1/messages", "/v1/messages/count_tokens"] {
                let reply = post_as(&h.app, token, uri, body, headers).await;
                assert_eq!(reply.status, 400, "{uri} {headers:?}: {}", reply.text());
                assert_eq!(reply.error_type(), "invalid_request_error");
                assert!(reply.text().contains("docs/guardrails.md"), "{}", reply.text());
            }
        }
    }
    assert!(
        h.emulator.requests().is_empty(),
        "nothing the caller chose may reach Bedrock"
    );
}

#[tokio::test]
async fn a_blocked_prompt_is_the_guardrails_message_in_anthropics_shape() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let h = harness(&[("BEARER_TOKEN", &secret())]).await;

    let reply = post_as(
        &h.app,
        GUARDED,
        "/v1/messages",
        &message("smuggle contraband", false),
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_no_bedrock_fields(&reply);
    let answer = reply.json();
    assert_eq!(answer["type"], "message");
    assert_eq!(answer["role"], "assistant");
    assert_eq!(answer["content"], json!([{"type": "text", "text": BLOCKED}]));
    // Bedrock gives a blocked prompt `stop_reason: null`; a whole Anthropic message has one.
    assert_eq!(answer["stop_reason"], "end_turn");
    let line = logs.request_line(reply.headers["request-id"].to_str().unwrap());
    assert_eq!(line["outcome"], "guardrail_intervened", "{line}");
    assert_eq!(line["caller"], "guarded");

    let reply = post_as(
        &h.app,
        GUARDED,
        "/v1/messages",
        &message("smuggle contraband", true),
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_no_bedrock_fields(&reply);
    let events = parse_sse(&reply.text());
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(events[2].1["delta"]["text"], BLOCKED);
    assert_eq!(events[4].1["delta"]["stop_reason"], "end_turn");
    let line = logs.request_line(reply.headers["request-id"].to_str().unwrap());
    assert_eq!(line["outcome"], "guardrail_intervened", "{line}");

    // The same prompt from a caller without the guardrail is answered by the model.
    let reply = post_as(&h.app, OPEN, "/v1/messages", &message("smuggle contraband", false), &[]).await;
    assert_eq!(reply.json()["content"][0]["text"], "Hello from the Bedrock emulator.");
}

#[tokio::test]
async fn an_answer_blocked_mid_stream_arrives_as_well_formed_anthropic_blocks() {
    let h = harness(&[("BEARER_TOKEN", &secret())]).await;
    let reply = post_as(&h.app, GUARDED_OUTPUT, "/v1/messages", &message("hi", true), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_no_bedrock_fields(&reply);
    let events = parse_sse(&reply.text());
    // Bedrock addressed its message to a block that never started; the caller gets it in the
    // open text block, which is then stopped, as Anthropic's SDKs need.
    let shape: Vec<(&str, Option<u64>)> = events.iter().map(|(k, v)| (k.as_str(), v["index"].as_u64())).collect();
    assert_eq!(
        shape,
        [
            ("message_start", None),
            ("content_block_start", Some(0)),
            ("content_block_delta", Some(0)),
            ("content_block_delta", Some(0)),
            ("content_block_delta", Some(0)),
            ("content_block_stop", Some(0)),
            ("message_delta", None),
            ("message_stop", None),
        ]
    );
    let text: String = events.iter().filter_map(|(_, v)| v["delta"]["text"].as_str()).collect();
    assert_eq!(text, format!("Hello from the {BLOCKED_OUTPUT}"));

    let reply = post_as(&h.app, GUARDED_OUTPUT, "/v1/messages", &message("hi", false), &[]).await;
    assert_no_bedrock_fields(&reply);
    assert_eq!(
        reply.json()["content"],
        json!([{"type": "text", "text": BLOCKED_OUTPUT}])
    );
}

#[tokio::test]
async fn a_guardrail_bedrock_does_not_know_is_bedrocks_400_never_an_unguarded_answer() {
    let h = harness(&[("BEARER_TOKEN", &secret())]).await;
    for stream in [false, true] {
        let reply = post_as(&h.app, MISCONFIGURED, "/v1/messages", &message("hi", stream), &[]).await;
        assert_eq!(reply.status, 400, "{}", reply.text());
        assert_eq!(reply.error_type(), "invalid_request_error");
        assert!(
            reply.text().contains("guardrail identifier or version"),
            "{}",
            reply.text()
        );
    }
}

#[tokio::test]
async fn fallback_targets_carry_the_callers_guardrail_too() {
    let fallbacks = json!({"claude-sonnet-4-5": ["claude-haiku-4-5"]}).to_string();
    let h = harness(&[("BEARER_TOKEN", &secret()), ("MODEL_FALLBACKS", &fallbacks)]).await;
    for stream in [false, true] {
        h.emulator.clear();
        let prompt = format!("emulator:fail_first=3:ThrottlingException:guarded-{stream}");
        let reply = post_as(&h.app, GUARDED, "/v1/messages", &message(&prompt, stream), &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let models: Vec<Value> = h.emulator.requests().iter().map(|r| r["model_id"].clone()).collect();
        assert_eq!(
            models.last(),
            Some(&json!("us.anthropic.claude-haiku-4-5-20251001-v1:0"))
        );
        assert_eq!(models.len(), 4, "three throttled attempts, then the fallback");
        let headers = guardrail_headers(&h.emulator);
        assert!(
            headers.iter().all(|h| *h == (json!("emulatorinput1"), json!("1"))),
            "{headers:?}"
        );
    }
}

#[tokio::test]
async fn on_mantle_a_guarded_caller_is_refused_and_nothing_is_sent() {
    let fallbacks = json!({"claude-sonnet-4-5": ["claude-haiku-4-5"]}).to_string();
    let h = harness(&[
        ("BEARER_TOKEN", &secret()),
        ("BEDROCK_API", "mantle"),
        ("MODEL_FALLBACKS", &fallbacks),
    ])
    .await;
    for stream in [false, true] {
        let reply = post_as(&h.app, GUARDED, "/v1/messages", &message("hi", stream), &[]).await;
        assert_eq!(reply.status, 403, "{}", reply.text());
        assert_eq!(reply.error_type(), "permission_error");
        let text = reply.text();
        assert!(
            text.contains("guardrail") && text.contains("BEDROCK_API=mantle"),
            "{text}"
        );
    }
    assert!(
        h.emulator.requests().is_empty(),
        "a guarded request never goes unguarded"
    );
    // A caller without a guardrail is served there as before.
    let reply = post_as(&h.app, OPEN, "/v1/messages", &message("hi", false), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(h.emulator.requests()[0]["operation"], "mantle-messages");
}

#[tokio::test]
async fn counting_tokens_is_not_guarded_and_needs_no_guardrail() {
    // CountTokens takes no guardrail (it generates nothing), on Runtime or on Mantle.
    for api in ["invoke", "mantle"] {
        let h = harness(&[("BEARER_TOKEN", &secret()), ("BEDROCK_API", api)]).await;
        let count = json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "contraband"}]});
        let reply = post_as(&h.app, GUARDED, "/v1/messages/count_tokens", &count, &[]).await;
        assert_eq!(reply.status, 200, "{api}: {}", reply.text());
        assert!(reply.json()["input_tokens"].as_u64().is_some());
        assert!(guardrail_headers(&h.emulator).iter().all(|h| h.0.is_null()));
    }
}

#[tokio::test]
async fn a_jwt_callers_groups_bring_their_guardrail_and_two_different_ones_refuse_it() {
    let key = Key::ec("ec-guard");
    let idp = Idp::start(&[&key]).await;
    // "a-everyone" sorts first and has no guardrail: it must not lift the contractors' one.
    let secret = json!({
        "tokens": {"ops": OPEN},
        "groups": {
            "a-everyone": {},
            "contractors": {"guardrail": {"id": "emulatorinput1", "version": "1"}},
            "vendors": {"guardrail": {"id": "emulatorinput1", "version": "1"}},
            "testers": {"guardrail": {"id": "emulatoroutput1", "version": "2"}}
        }
    })
    .to_string();
    let issuers = idp.issuers_env(json!({}));
    let h = harness(&[("OIDC_ISSUERS", &issuers), ("BEARER_TOKEN", &secret)]).await;
    let token = |email: &str, groups: Value| {
        let mut claims = idp.claims(email);
        claims["groups"] = groups;
        key.sign(&claims)
    };

    for groups in [json!(["a-everyone", "contractors"]), json!(["contractors", "vendors"])] {
        h.emulator.clear();
        let jwt = token("dana@example.com", groups.clone());
        let reply = post_as(&h.app, &jwt, "/v1/messages", &message("contraband", false), &[]).await;
        assert_eq!(reply.status, 200, "{groups}: {}", reply.text());
        assert_eq!(reply.json()["content"][0]["text"], BLOCKED, "{groups}");
        assert_eq!(guardrail_headers(&h.emulator), [(json!("emulatorinput1"), json!("1"))]);
    }
    h.emulator.clear();
    let everyone = token("erin@example.com", json!(["a-everyone"]));
    let reply = post_as(&h.app, &everyone, "/v1/messages", &message("contraband", false), &[]).await;
    assert_eq!(reply.json()["content"][0]["text"], "Hello from the Bedrock emulator.");
    assert_eq!(guardrail_headers(&h.emulator), [(Value::Null, Value::Null)]);

    // One request goes through one guardrail: two different ones are refused, not chosen between.
    h.emulator.clear();
    let both = token("frank@example.com", json!(["contractors", "testers"]));
    let reply = post_as(&h.app, &both, "/v1/messages", &message("hi", true), &[]).await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert_eq!(reply.error_type(), "permission_error");
    assert!(reply.text().contains("contractors, testers"), "{}", reply.text());
    assert!(h.emulator.requests().is_empty());
}

#[test]
fn a_guardrail_bedrock_would_refuse_fails_the_secret_at_load() {
    let bad =
        json!({"tokens": {"a": {"token": "t0123456789", "guardrail": {"id": "emulatorinput1", "version": "draft"}}}});
    let err = bedrock_anthropic_proxy::auth::secret::parse(&bad.to_string()).unwrap_err();
    assert!(
        err.contains("caller \"a\"") && err.contains("guardrail.version"),
        "{err}"
    );
    assert!(!err.contains("t0123456789"), "no token in errors: {err}");
}
