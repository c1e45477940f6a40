"""The function and its Function URL: runtime, memory, streaming mode, CORS, concurrency."""

import json
import re

from wiring import (
    BROWSER_PREFLIGHT_HEADERS,
    FUNCTION_MAIN,
    REPO,
    ROOT_MAIN,
    ROOT_VARIABLES,
    local,
    module_call,
    one,
    proxy_environment_names,
    tf_files,
    unquote,
    validation_strings,
    variable,
)


def test_function_url_streams_responses():
    url = one(ROOT_MAIN, "resource", "aws_lambda_function_url", "this")

    assert unquote(url["invoke_mode"]) == "RESPONSE_STREAM"
    assert "module.proxy.function_name" in url["function_name"]


def test_functions_are_arm64_custom_runtime_from_the_built_zip():
    function = one(FUNCTION_MAIN, "resource", "aws_lambda_function", "this")

    assert unquote(function["runtime"]) == "provided.al2023"
    assert unquote(function["architectures"]) == ["arm64"]
    assert unquote(function["handler"]) == "bootstrap"
    assert "filebase64sha256(var.zip_path)" in function["source_code_hash"]


def test_zip_paths_default_to_what_build_sh_produces():
    proxy_zip = local(ROOT_MAIN, "proxy_zip_path")
    rotation_zip = local(ROOT_MAIN, "rotation_zip_path")
    build_sh = (REPO / "scripts" / "build.sh").read_text()

    assert "/../target/lambda/bedrock-anthropic-proxy/bootstrap.zip" in proxy_zip
    assert "/../target/lambda/rotate-token/bootstrap.zip" in rotation_zip
    assert "path.module" in proxy_zip and "path.module" in rotation_zip
    assert "cargo lambda build --release --arm64 --output-format zip" in build_sh


def test_proxy_defaults_are_256_mb_and_300_seconds():
    assert variable(ROOT_VARIABLES, "memory_size")["default"] == 256
    assert variable(ROOT_VARIABLES, "timeout")["default"] == 300


def test_authorization_defaults_to_none_and_allows_aws_iam():
    auth = variable(ROOT_VARIABLES, "authorization_type")
    url = one(ROOT_MAIN, "resource", "aws_lambda_function_url", "this")

    assert unquote(auth["default"]) == "NONE"
    assert set(validation_strings(auth)) == {"NONE", "AWS_IAM"}
    assert url["authorization_type"] == "${var.authorization_type}"


def test_cors_lives_only_in_the_function_url_block():
    url = one(ROOT_MAIN, "resource", "aws_lambda_function_url", "this")
    cors = [d for d in url.get("dynamic", []) if "cors" in map(unquote, d)]
    headers = unquote(variable(ROOT_VARIABLES, "cors_allow_headers")["default"])
    cors_blocks = sum(
        len(re.findall(r'(dynamic\s+"cors"|\bcors\s*\{)', p.read_text())) for p in tf_files() if "examples" not in p.parts
    )

    assert cors, "the Function URL has no cors block"
    assert unquote(variable(ROOT_VARIABLES, "cors_allow_origins")["default"]) == ["*"]
    assert {"authorization", "content-type", "x-api-key", "anthropic-version", "anthropic-beta"} <= set(headers)
    assert cors_blocks == 1
    assert "CORS_ALLOW_ORIGINS" not in proxy_environment_names()


def test_cors_default_allows_every_header_the_browser_sdk_sends():
    allowed = {h.lower() for h in unquote(variable(ROOT_VARIABLES, "cors_allow_headers")["default"])}
    seen = {h.lower() for h in json.loads(BROWSER_PREFLIGHT_HEADERS.read_text())["headers"]}

    # An empty or shrunken list would make this pass for the wrong reason.
    assert len(seen) >= 13 and "anthropic-dangerous-direct-browser-access" in seen
    missing = sorted(seen - allowed)
    assert not missing, f"a default deploy blocks the browser SDK; cors_allow_headers lacks {missing}"
    # Sent by Claude Code, earlier SDKs and callers who set them, though not by SDK 1.x's defaults.
    assert {"x-api-key", "anthropic-beta"} <= allowed


def test_cors_default_exposes_what_the_sdk_reads():
    exposed = {h.lower() for h in unquote(variable(ROOT_VARIABLES, "cors_expose_headers")["default"])}

    assert {"request-id", "retry-after", "x-should-retry"} <= exposed


def test_proxy_reserves_concurrency_by_default():
    default = variable(ROOT_VARIABLES, "reserved_concurrency")["default"]
    function = one(FUNCTION_MAIN, "resource", "aws_lambda_function", "this")

    assert isinstance(default, int) and default > 0
    assert module_call("proxy")["reserved_concurrency"] == "${var.reserved_concurrency}"
    assert function["reserved_concurrent_executions"] == "${var.reserved_concurrency}"
