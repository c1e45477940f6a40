//! `count_tokens` and `/v1/models`.

use super::*;

#[tokio::test]
async fn count_tokens_falls_back_to_the_base_model_id() {
    let h = harness(&[]).await;
    let body =
        json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "count these words please"}]});
    let reply = post(&h.app, "/v1/messages/count_tokens", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.json()["input_tokens"].as_u64().unwrap() >= 1);
    let seen = h.emulator.requests();
    let ids: Vec<&str> = seen.iter().map(|r| r["model_id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic.claude-sonnet-4-5-20250929-v1:0"
        ]
    );
    assert_eq!(seen[1]["operation"], "count-tokens");
}

#[tokio::test]
async fn models_are_listed_and_paged_in_anthropics_shape() {
    let h = harness(&[("MODEL_MAP", r#"{"team-default":"claude-sonnet-4-5"}"#)]).await;
    let list = send(
        &h.app,
        request("GET", "/v1/models?limit=3", None).body(Body::empty()).unwrap(),
    )
    .await
    .json();
    assert_eq!(list["data"].as_array().unwrap().len(), 3);
    assert_eq!(list["has_more"], true);
    assert_eq!(list["first_id"], list["data"][0]["id"]);
    assert_eq!(list["data"][0]["type"], "model");
    for key in ["id", "display_name", "created_at"] {
        assert!(list["data"][0][key].is_string());
    }
    let after = list["last_id"].as_str().unwrap();
    let next = send(
        &h.app,
        request("GET", &format!("/v1/models?limit=1000&after_id={after}"), None)
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .json();
    assert_eq!(next["has_more"], false);
    assert_eq!(next["last_id"], "team-default");
    let before = send(
        &h.app,
        request("GET", &format!("/v1/models?before_id={after}"), None)
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .json();
    assert_eq!(before["data"].as_array().unwrap().len(), 2);

    let one = send(
        &h.app,
        request("GET", "/v1/models/claude-haiku-4-5", None)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["id"], "claude-haiku-4-5-20251001");
    let missing = send(
        &h.app,
        request("GET", "/v1/models/gpt-4o", None).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_type(), "not_found_error");
}

#[tokio::test]
async fn count_tokens_sends_a_max_tokens_above_the_thinking_budget() {
    let h = harness(&[]).await;
    let body = json!({
        "model": "claude-sonnet-4-5",
        "thinking": {"type": "enabled", "budget_tokens": 4096},
        "messages": [{"role": "user", "content": "count these words please"}]
    });
    let reply = post(&h.app, "/v1/messages/count_tokens", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let counted = h.emulator.requests().pop().unwrap();
    assert_eq!(counted["operation"], "count-tokens");
    assert_eq!(counted["body"]["max_tokens"], 4097, "{counted}");
}

/// A stand-in for Bedrock's CountTokens that refuses every request with `message`, and notes
/// the model IDs it was asked for.
async fn refusing_count_tokens(message: &'static str) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::extract::Path;
    use axum::response::IntoResponse;
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = asked.clone();
    let app = axum::Router::new().route(
        "/model/{model_id}/count-tokens",
        axum::routing::post(move |Path(model_id): Path<String>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(model_id);
                (
                    axum::http::StatusCode::BAD_REQUEST,
                    [("x-amzn-errortype", "ValidationException")],
                    axum::Json(json!({ "message": message })),
                )
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, asked)
}

#[tokio::test]
async fn count_tokens_retries_the_base_model_id_only_for_bedrocks_refusal_of_the_profile() {
    let (url, asked) = refusing_count_tokens("messages.0.content: Field required").await;
    let emulator = bedrock_emulator::spawn().await.expect("emulator starts");
    let h = harness_with(emulator, &sdk_config(&url).await, &[]).await;
    let body = json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]});
    let reply = post(&h.app, "/v1/messages/count_tokens", &body).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.error_type(), "invalid_request_error");
    assert_eq!(reply.json()["error"]["message"], "messages.0.content: Field required");
    assert_eq!(
        *asked.lock().unwrap(),
        ["us.anthropic.claude-sonnet-4-5-20250929-v1:0"],
        "a body error is not a refusal of the profile ID"
    );
}
