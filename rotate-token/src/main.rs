//! `rotate-token`: the Secrets Manager rotation function for the proxy's bearer-token secret,
//! run as a Lambda. The steps live in this crate's library ([`rotate_token`]).

use aws_config::BehaviorVersion;
use bedrock_anthropic_proxy::telemetry;
use lambda_runtime::{service_fn, LambdaEvent};
use rotate_token::{RotationEvent, Rotator};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    telemetry::init(in_lambda);
    if !in_lambda {
        tracing::error!(
            "rotate-token runs as a Lambda function that Secrets Manager invokes; deploy it and \
             set it as the rotation function of the token secret"
        );
        return Err("not running inside AWS Lambda (AWS_LAMBDA_RUNTIME_API is not set)".into());
    }
    // Built once per Lambda instance; the region and credentials come from Lambda's environment.
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let rotator = Rotator::new(aws_sdk_secretsmanager::Client::new(&sdk));
    let rotator = &rotator;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<RotationEvent>| async move {
        rotator.run(&event.payload).await
    }))
    .await
}
