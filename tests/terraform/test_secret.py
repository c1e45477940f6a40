"""The token secret: generated token strength, outputs that never carry it."""

from wiring import (
    SECRET_MAIN,
    TERRAFORM,
    labelled,
    one,
    tf_files,
    unquote,
    variable,
)


def test_token_is_owned_by_secrets_manager_after_creation():
    version = one(SECRET_MAIN, "resource", "aws_secretsmanager_secret_version", "this")
    ignored = version["lifecycle"][0]["ignore_changes"]

    assert any("secret_string" in item for item in ignored)


def test_generated_token_is_long_and_url_safe():
    password = one(SECRET_MAIN, "resource", "random_password", "this")
    length = variable(TERRAFORM / "modules" / "secret" / "variables.tf", "token_length")

    assert unquote(password["override_special"]) == "-_"
    assert length["default"] >= 43
    assert "var.token_length >= 43" in length["validation"][0]["condition"]


def test_outputs_are_described_and_never_carry_the_token():
    for path in tf_files():
        for name, body in labelled(path, "output"):
            assert unquote(body.get("description", "")), f"{path}: output {name} has no description"
            value = str(body["value"])
            assert "random_password" not in value and "secret_string" not in value, f"{path}: {name}"
    secret_arn = [b for n, b in labelled(TERRAFORM / "outputs.tf", "output") if n == "secret_arn"][0]
    assert not secret_arn.get("sensitive", False)
    curl = [b for n, b in labelled(TERRAFORM / "outputs.tf", "output") if n == "curl_command"][0]
    assert "aws secretsmanager get-secret-value" in curl["value"]


def test_every_variable_is_typed_and_described():
    for path in tf_files():
        for name, body in labelled(path, "variable"):
            assert "type" in body, f"{path}: variable {name} has no type"
            assert unquote(body.get("description", "")), f"{path}: variable {name} has no description"
