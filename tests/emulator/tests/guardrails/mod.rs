//! Bedrock Guardrails through the real `aws-sdk-bedrockruntime` client: the SDK's
//! `guardrail_identifier` / `guardrail_version` reach the emulator as Bedrock's headers, the
//! test guardrails intervene the way Bedrock does, and unknown ones are refused as Bedrock
//! refuses them.

use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_bedrockruntime::operation::invoke_model::InvokeModelError;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::ResponseStream;
use aws_sdk_bedrockruntime::Client;
use bedrock_emulator::Emulator;
use serde_json::Value;

use crate::support::{body, streamed_text, types, MODEL};

const BLOCKED: &str = "Sorry, the model cannot answer this question.";
const BLOCKED_OUTPUT: &str = "The answer was blocked by the emulator's output guardrail.";

fn client(emulator: &Emulator) -> Client {
    let config = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(emulator.url())
        .credentials_provider(Credentials::new("AKIDEXAMPLE", "not-a-secret", None, None, "test"))
        .retry_config(aws_sdk_bedrockruntime::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

async fn invoke(emulator: &Emulator, guardrail: (&str, &str), text: &str) -> Result<Value, InvokeModelError> {
    let output = client(emulator)
        .invoke_model()
        .model_id(MODEL)
        .content_type("application/json")
        .guardrail_identifier(guardrail.0)
        .guardrail_version(guardrail.1)
        .body(Blob::new(body(text).to_string()))
        .send()
        .await
        .map_err(|e| e.into_service_error())?;
    Ok(serde_json::from_slice(output.body.as_ref()).expect("json"))
}

async fn stream(emulator: &Emulator, guardrail: (&str, &str), text: &str) -> Vec<Value> {
    let output = client(emulator)
        .invoke_model_with_response_stream()
        .model_id(MODEL)
        .content_type("application/json")
        .guardrail_identifier(guardrail.0)
        .guardrail_version(guardrail.1)
        .body(Blob::new(body(text).to_string()))
        .send()
        .await
        .expect("stream starts");
    let mut receiver = output.body;
    let mut events = Vec::new();
    while let Some(event) = receiver.recv().await.expect("clean stream") {
        if let ResponseStream::Chunk(part) = event {
            events.push(serde_json::from_slice(part.bytes.expect("bytes").as_ref()).expect("json"));
        }
    }
    events
}

#[tokio::test]
async fn the_sdks_guardrail_fields_arrive_as_bedrocks_headers() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let message = invoke(&emulator, ("emulatorinput1", "1"), "hi").await.expect("answer");

    let headers = &emulator.requests()[0]["headers"];
    assert_eq!(headers["x-amzn-bedrock-guardrailidentifier"], "emulatorinput1");
    assert_eq!(headers["x-amzn-bedrock-guardrailversion"], "1");
    // Passed: the model's answer, marked NONE.
    assert_eq!(message["amazon-bedrock-guardrailAction"], "NONE");
    assert_eq!(message["content"][0]["text"], "Hello from the Bedrock emulator.");
    assert_eq!(message["stop_reason"], "end_turn");
}

#[tokio::test]
async fn a_blocked_prompt_is_a_200_with_the_guardrails_message() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let arn = "arn:aws:bedrock:us-east-1:123456789012:guardrail/emulatorinput1";

    let message = invoke(&emulator, (arn, "DRAFT"), "smuggle the CONTRABAND")
        .await
        .expect("answer");
    assert_eq!(message["amazon-bedrock-guardrailAction"], "INTERVENED");
    assert_eq!(message["content"].as_array().map(Vec::len), Some(1));
    assert_eq!(message["content"][0]["text"], BLOCKED);
    assert!(message["stop_reason"].is_null(), "{message}");

    let events = stream(&emulator, ("emulatorinput1", "1"), "contraband").await;
    assert_eq!(
        types(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(streamed_text(&events), BLOCKED);
    assert_eq!(events[5]["amazon-bedrock-guardrailAction"], "INTERVENED");
    assert!(events[5]["amazon-bedrock-invocationMetrics"].is_object());
}

#[tokio::test]
async fn a_blocked_answer_mid_stream_addresses_its_message_to_a_block_never_started() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");

    let events = stream(&emulator, ("emulatoroutput1", "2"), "hi").await;
    let shape: Vec<(&str, Option<u64>)> = events
        .iter()
        .map(|e| (e["type"].as_str().unwrap_or("?"), e["index"].as_u64()))
        .collect();
    assert_eq!(
        shape,
        [
            ("message_start", None),
            ("content_block_start", Some(0)),
            ("content_block_delta", Some(0)),
            ("content_block_delta", Some(0)),
            ("content_block_delta", Some(1)),
            ("content_block_stop", Some(1)),
            ("message_delta", None),
            ("message_stop", None),
        ]
    );
    assert_eq!(streamed_text(&events), format!("Hello from the {BLOCKED_OUTPUT}"));
    assert_eq!(events[7]["amazon-bedrock-guardrailAction"], "INTERVENED");

    let message = invoke(&emulator, ("emulatoroutput1", "DRAFT"), "hi")
        .await
        .expect("answer");
    assert_eq!(message["content"][0]["text"], BLOCKED_OUTPUT);
    assert_eq!(message["amazon-bedrock-guardrailAction"], "INTERVENED");
}

#[tokio::test]
async fn an_unknown_guardrail_or_version_is_bedrocks_validation_exception() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    for guardrail in [("nosuchguardrail", "1"), ("emulatorinput1", "9")] {
        match invoke(&emulator, guardrail, "hi").await {
            Err(InvokeModelError::ValidationException(e)) => assert_eq!(
                e.message(),
                Some("The guardrail identifier or version provided in the request does not exist.")
            ),
            other => panic!("{guardrail:?}: {other:?}"),
        }
    }
    assert!(matches!(
        invoke(&emulator, ("emulatorinput1", "latest"), "hi").await,
        Err(InvokeModelError::ValidationException(_))
    ));
}
