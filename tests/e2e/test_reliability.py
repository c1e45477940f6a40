"""Where the proxy meets AWS, through the real binary: a machine without AWS credentials.

Dead pooled connections and empty Bedrock streams are router behaviour, tested once, in
tests/proxy/reliability.rs and tests/proxy/streaming.rs (the same SDK against the same emulator)."""

import time

from .conftest import (
    TOKEN,
    Proxy,
    assert_error_shape,
    auth,
    message_body,
    prompt,
)


def test_without_aws_credentials_start_up_warns_and_callers_get_one_sentence(binaries, emulator, workdir):
    # Arrange: nothing the default credentials chain could use: no variables, no config or
    # credentials file, no home with ~/.aws, no instance metadata.
    home = workdir / "home-without-aws"
    home.mkdir(exist_ok=True)
    missing = str(workdir / "no-such-aws-file")
    proxy = Proxy(
        binaries["bedrock-anthropic-proxy"],
        "no-aws-credentials",
        {
            "HOME": str(home),
            "AWS_REGION": "us-east-1",
            "AWS_CONFIG_FILE": missing,
            "AWS_SHARED_CREDENTIALS_FILE": missing,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": emulator.url,
            "BEARER_TOKEN": TOKEN,
            "INFERENCE_PROFILE": "us",
        },
        workdir,
    )
    try:
        # Act
        response = proxy.request("POST", "/v1/messages", headers=auth(), body=message_body(prompt(), stream=False))
        body = response.read_body()
        # The check runs in the background at start; it is quick without instance metadata,
        # and the wait is generous for a loaded machine.
        deadline = time.monotonic() + 30
        while "no AWS credentials found" not in proxy.log_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        log = proxy.log_text()
    finally:
        proxy.stop()

    # Assert: one clear warning at start...
    warnings = [line for line in log.splitlines() if "WARN" in line and "no AWS credentials found" in line]
    assert len(warnings) == 1, log
    assert "AWS_PROFILE" in warnings[0], warnings[0]
    # ...one short sentence for the caller, no Rust Debug output...
    assert response.status == 500, body
    message = assert_error_shape(body, "api_error")["error"]["message"]
    assert message.startswith("could not reach Bedrock: no AWS credentials found (set AWS_PROFILE"), message
    assert len(message) < 300 and "DispatchFailure" not in message and "{" not in message, message
    # ...and the whole chain in the request's log line.
    request_line = next(line for line in log.splitlines() if response.headers["request-id"] in line)
    assert "no credentials found in chain" in request_line and "Ec2InstanceMetadata" in request_line, request_line
