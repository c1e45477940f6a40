//! The real `aws-sdk-bedrockruntime` client against the emulator: what the proxy
//! will see. If these pass, the emulator's errors and frames parse into the SDK's
//! typed results exactly as Bedrock's do.

use std::time::Duration;

use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_bedrockruntime::error::SdkError;
use aws_sdk_bedrockruntime::operation::count_tokens::CountTokensError;
use aws_sdk_bedrockruntime::operation::invoke_model::InvokeModelError;
use aws_sdk_bedrockruntime::operation::invoke_model_with_response_stream::InvokeModelWithResponseStreamError;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::error::ResponseStreamError;
use aws_sdk_bedrockruntime::types::{CountTokensInput, InvokeModelTokensRequest, ResponseStream};
use aws_sdk_bedrockruntime::Client;
use aws_smithy_types::event_stream::RawMessage;
use aws_smithy_types::retry::ErrorKind;
use bedrock_emulator::Emulator;
use serde_json::{json, Value};

use crate::support::{body, types, MODEL};

fn client(emulator: &Emulator, retry: RetryConfig) -> Client {
    let config = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(emulator.url())
        .credentials_provider(Credentials::new("AKIDEXAMPLE", "not-a-secret", None, None, "test"))
        .retry_config(retry)
        .build();
    Client::from_conf(config)
}

fn no_retries(emulator: &Emulator) -> Client {
    client(emulator, RetryConfig::disabled())
}

fn blob(text: &str) -> Blob {
    Blob::new(body(text).to_string())
}

/// Collects the Anthropic events of a stream, or the first error the SDK reports.
async fn stream_events(
    client: &Client,
    model: &str,
    text: &str,
) -> Result<Vec<Value>, SdkError<ResponseStreamError, RawMessage>> {
    let output = client
        .invoke_model_with_response_stream()
        .model_id(model)
        .content_type("application/json")
        .body(blob(text))
        .send()
        .await
        .expect("stream starts");
    let mut stream = output.body;
    let mut events = Vec::new();
    while let Some(event) = stream.recv().await? {
        match event {
            ResponseStream::Chunk(part) => {
                let bytes = part.bytes.expect("chunk has bytes");
                events.push(serde_json::from_slice(bytes.as_ref()).expect("event json"));
            }
            other => panic!("unexpected stream member {other:?}"),
        }
    }
    Ok(events)
}

#[tokio::test]
async fn sdk_streams_the_anthropic_events() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");

    let events = stream_events(&no_retries(&emulator), MODEL, "emulator:tool_use")
        .await
        .expect("clean stream");

    assert_eq!(types(&events).first(), Some(&"message_start"));
    assert_eq!(types(&events).last(), Some(&"message_stop"));
    assert!(events.iter().any(|event| event["delta"]["type"] == "input_json_delta"));
    let logged = &emulator.requests()[0];
    assert!(logged["headers"]["authorization"]
        .as_str()
        .is_some_and(|value| value.starts_with("AWS4-HMAC-SHA256")));
}

#[tokio::test]
async fn sdk_invokes_and_counts_tokens_with_an_arn() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let client = no_retries(&emulator);
    let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-8";

    let output = client
        .invoke_model()
        .model_id(arn)
        .content_type("application/json")
        .body(blob("hi"))
        .send()
        .await
        .expect("invoke succeeds");
    let counted = client
        .count_tokens()
        .model_id("anthropic.claude-sonnet-4-6")
        .input(CountTokensInput::InvokeModel(
            InvokeModelTokensRequest::builder()
                .body(blob("12345678"))
                .build()
                .expect("body set"),
        ))
        .send()
        .await
        .expect("count succeeds");

    let message: Value = serde_json::from_slice(output.body.as_ref()).expect("json");
    assert_eq!(message["model"], "anthropic.claude-opus-4-8");
    assert_eq!(emulator.requests()[0]["model_id"], arn);
    assert_eq!(counted.input_tokens, 2);
}

#[tokio::test]
async fn sdk_sees_the_count_tokens_refusal_of_a_model_counted_only_on_mantle() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");

    let refused = no_retries(&emulator)
        .count_tokens()
        .model_id("anthropic.claude-opus-5-5")
        .input(CountTokensInput::InvokeModel(
            InvokeModelTokensRequest::builder()
                .body(blob("hi"))
                .build()
                .expect("body set"),
        ))
        .send()
        .await
        .expect_err("refused");

    match refused.into_service_error() {
        CountTokensError::ValidationException(error) => {
            assert_eq!(
                error.message(),
                Some("The provided model doesn't support counting tokens.")
            );
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[tokio::test]
async fn sdk_reads_pre_stream_errors_as_typed_exceptions() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let client = no_retries(&emulator);

    let throttled = client
        .invoke_model_with_response_stream()
        .model_id(MODEL)
        .body(blob("emulator:error=ThrottlingException"))
        .send()
        .await
        .expect_err("throttled");
    let invalid = client
        .invoke_model()
        .model_id("us.anthropic.claude-does-not-exist")
        .body(blob("hi"))
        .send()
        .await
        .expect_err("invalid model");

    assert!(matches!(
        throttled.into_service_error(),
        InvokeModelWithResponseStreamError::ThrottlingException(_)
    ));
    match invalid.into_service_error() {
        InvokeModelError::ValidationException(error) => {
            assert_eq!(error.message(), Some("The provided model identifier is invalid."));
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[tokio::test]
async fn sdk_retries_through_fail_first() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let retry = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(5));

    let output = client(&emulator, retry)
        .invoke_model()
        .model_id(MODEL)
        .body(blob("emulator:fail_first=2:ServiceUnavailableException:sdk-retry"))
        .send()
        .await
        .expect("third attempt succeeds");

    assert!(!output.body.as_ref().is_empty());
    let statuses: Vec<Value> = emulator
        .requests()
        .iter()
        .map(|request| request["status"].clone())
        .collect();
    assert_eq!(statuses, [503, 503, 200]);
}

#[tokio::test]
async fn sdk_reads_exception_frames_as_typed_stream_errors() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");

    let error = stream_events(
        &no_retries(&emulator),
        MODEL,
        "emulator:stream_exception_after=2:modelStreamErrorException",
    )
    .await
    .expect_err("exception frame");

    assert!(matches!(
        error.into_service_error(),
        ResponseStreamError::ModelStreamErrorException(_)
    ));
}

#[tokio::test]
async fn sdk_fails_on_garbage_and_cut_streams() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let client = no_retries(&emulator);

    let garbage = stream_events(&client, MODEL, "emulator:garbage_after=2").await;
    let cut = stream_events(&client, MODEL, "emulator:cut_after=2").await;

    assert!(garbage.is_err(), "garbage accepted: {garbage:?}");
    assert!(cut.is_err(), "truncated body accepted: {cut:?}");
}

#[tokio::test]
async fn sdk_sees_an_empty_stream_end_at_once() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");

    let mut output = no_retries(&emulator)
        .invoke_model_with_response_stream()
        .model_id(MODEL)
        .body(blob("emulator:empty_stream"))
        .send()
        .await
        .expect("the stream starts");
    let first = tokio::time::timeout(Duration::from_secs(2), output.body.recv())
        .await
        .expect("recv returns at once");

    assert!(matches!(first, Ok(None)), "{first:?}");
    assert_eq!(emulator.requests()[0]["status"], 200);
}

/// What the SDK reports for a connection closed with no response: a dispatch failure
/// (the request may not have been processed), classified as transient.
fn assert_closed_connection<E: std::fmt::Debug, R: std::fmt::Debug>(error: &SdkError<E, R>) {
    let SdkError::DispatchFailure(failure) = error else {
        panic!("expected a dispatch failure, got {error:?}");
    };
    assert_eq!(failure.as_other(), Some(ErrorKind::TransientError), "{failure:?}");
    assert!(!failure.is_timeout() && !failure.is_user(), "{failure:?}");
}

#[tokio::test]
async fn sdk_reports_a_closed_connection_as_a_transient_dispatch_failure() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let client = no_retries(&emulator);

    let invoked = client
        .invoke_model()
        .model_id(MODEL)
        .body(blob("emulator:close"))
        .send()
        .await
        .expect_err("connection closed");
    let streamed = client
        .invoke_model_with_response_stream()
        .model_id(MODEL)
        .body(blob("emulator:close"))
        .send()
        .await
        .expect_err("connection closed");

    assert_closed_connection(&invoked);
    assert_closed_connection(&streamed);
    let statuses: Vec<Value> = emulator
        .requests()
        .iter()
        .map(|request| request["status"].clone())
        .collect();
    assert_eq!(statuses, [Value::Null, Value::Null]);
}

#[tokio::test]
async fn sdk_retries_a_closed_connection() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let retry = RetryConfig::standard()
        .with_max_attempts(2)
        .with_initial_backoff(Duration::from_millis(5));
    let client = client(&emulator, retry);

    let invoked = client
        .invoke_model()
        .model_id(MODEL)
        .body(blob("emulator:fail_first=1:close:sdk-close-invoke"))
        .send()
        .await;
    let streamed = client
        .invoke_model_with_response_stream()
        .model_id(MODEL)
        .body(blob("emulator:fail_first=1:close:sdk-close-stream"))
        .send()
        .await;

    assert!(invoked.is_ok(), "{invoked:?}");
    let mut stream = streamed.expect("second attempt streams").body;
    assert!(matches!(stream.recv().await, Ok(Some(_))));
    let statuses: Vec<Value> = emulator
        .requests()
        .iter()
        .map(|request| request["status"].clone())
        .collect();
    assert_eq!(statuses, [Value::Null, json!(200), Value::Null, json!(200)]);
}
