//! Running the proxy for a team: per-caller policy in the token secret (models, max_tokens,
//! the model list), failover to `MODEL_FALLBACKS` targets when Bedrock throttles, and token
//! budgets in DynamoDB (moto's, see `common::moto`).

mod common;

use std::time::Duration;

use axum::body::Body;
use bedrock_anthropic_proxy::auth::policy::CallerPolicy;
use bedrock_anthropic_proxy::usage::budgets::Budgets;
use common::{harness, message, send};
use serde_json::{json, Value};

const ALICE: &str = "alice-token-0123456789";
const CI: &str = "ci-token-0123456789";

fn team_secret() -> String {
    json!({"tokens": {
        "alice": {"token": ALICE, "models": ["claude-haiku-*", "*.anthropic.claude-sonnet-4-5*"], "max_tokens": 1000},
        "ci": CI
    }})
    .to_string()
}

async fn post_as(app: &axum::Router, token: &str, uri: &str, body: &Value) -> common::Reply {
    let req = axum::http::Request::builder()
        .method("POST")
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(app, req).await
}

#[tokio::test]
async fn a_model_outside_the_callers_list_is_a_403_naming_the_list() {
    let h = harness(&[("BEARER_TOKEN", &team_secret())]).await;
    let mut body = message("hi", false);
    body["model"] = "claude-opus-5-5".into();
    let reply = post_as(&h.app, ALICE, "/v1/messages", &body).await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert_eq!(reply.error_type(), "permission_error");
    assert!(reply.text().contains("claude-haiku-*"));
    assert!(h.emulator.requests().is_empty(), "nothing may reach Bedrock");
    // Allowed by the resolved Bedrock ID; and another caller has no list at all.
    body["model"] = "claude-sonnet-4-5".into();
    assert_eq!(post_as(&h.app, ALICE, "/v1/messages", &body).await.status, 200);
    body["model"] = "claude-opus-5-5".into();
    assert_eq!(post_as(&h.app, CI, "/v1/messages", &body).await.status, 200);
    // count_tokens follows the same list.
    let count = json!({"model": "claude-opus-5-5", "messages": [{"role": "user", "content": "x"}]});
    assert_eq!(
        post_as(&h.app, ALICE, "/v1/messages/count_tokens", &count).await.status,
        403
    );
}

#[tokio::test]
async fn max_tokens_above_the_callers_cap_is_refused() {
    let h = harness(&[("BEARER_TOKEN", &team_secret())]).await;
    let mut body = message("hi", false);
    body["model"] = "claude-haiku-4-5".into();
    body["max_tokens"] = 4000.into();
    let reply = post_as(&h.app, ALICE, "/v1/messages", &body).await;
    assert_eq!(reply.status, 400);
    assert!(reply.text().contains("limit of 1000"), "{}", reply.text());
    body["max_tokens"] = 1000.into();
    assert_eq!(post_as(&h.app, ALICE, "/v1/messages", &body).await.status, 200);
}

#[tokio::test]
async fn the_model_list_shows_only_what_the_caller_may_use() {
    let h = harness(&[("BEARER_TOKEN", &team_secret())]).await;
    let list = |token: &'static str| {
        let app = h.app.clone();
        async move {
            let req = axum::http::Request::builder()
                .uri("/v1/models?limit=1000")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            let reply = send(&app, req).await;
            reply.json()["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    let alices = list(ALICE).await;
    assert!(
        alices
            .iter()
            .all(|id| id.contains("haiku") || id.starts_with("claude-sonnet-4-5")),
        "{alices:?}"
    );
    assert!(alices.iter().any(|id| id == "claude-haiku-5-5"));
    assert!(list(CI).await.len() > alices.len());
}

#[tokio::test]
async fn a_throttled_model_fails_over_to_its_fallback_before_the_first_byte() {
    let fallbacks = json!({"claude-sonnet-4-5": ["claude-haiku-4-5"]}).to_string();
    let h = harness(&[("MODEL_FALLBACKS", &fallbacks)]).await;
    for stream in [false, true] {
        h.emulator.clear();
        let key = format!("fallback-{stream}");
        let body = message(&format!("emulator:fail_first=3:ThrottlingException:{key}"), stream);
        let reply = common::post(&h.app, "/v1/messages", &body).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let seen: Vec<(String, Value)> = h
            .emulator
            .requests()
            .iter()
            .map(|r| (r["model_id"].as_str().unwrap().to_string(), r["status"].clone()))
            .collect();
        let sonnet = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
        let haiku = "us.anthropic.claude-haiku-4-5-20251001-v1:0";
        assert_eq!(
            seen,
            [
                (sonnet.to_string(), json!(429)),
                (sonnet.to_string(), json!(429)),
                (sonnet.to_string(), json!(429)),
                (haiku.to_string(), json!(200))
            ]
        );
    }
    // A model with no fallback still gets the throttling error.
    let reply = common::post(
        &h.app,
        "/v1/messages",
        &json!({"model": "claude-opus-5-5", "max_tokens": 5, "messages": [{"role": "user", "content": "emulator:error=ThrottlingException"}]}),
    )
    .await;
    assert_eq!(reply.status, 429);
}

#[tokio::test]
async fn a_caller_over_its_daily_budget_gets_a_429_that_says_which_budget_and_when_it_resets() {
    let (client, table) = common::moto::usage_table().await;
    let budgets = Budgets::new(client.clone(), table.clone(), Duration::from_secs(3600));
    let policy = CallerPolicy {
        daily_tokens: Some(1000),
        monthly_tokens: Some(1_000_000),
        ..CallerPolicy::default()
    };
    assert!(budgets.check("alice", &policy).await.is_ok());
    budgets.record("alice", 600).await;
    assert!(budgets.check("alice", &policy).await.is_ok());
    budgets.record("alice", 600).await;
    // Our own writes count at once, although the cached read is an hour old.
    let err = budgets.check("alice", &policy).await.unwrap_err();
    assert_eq!(err.status_and_type().1, "rate_limit_error");
    let message = err.to_string();
    assert!(message.contains("daily token budget of 1000"), "{message}");
    assert!(message.contains("resets at 00:00 UTC"), "{message}");
    // The table holds the atomic totals another instance would read.
    let fresh = Budgets::new(client.clone(), table.clone(), Duration::from_secs(3600));
    assert!(fresh.check("alice", &policy).await.is_err());
    assert!(fresh.check("bob", &policy).await.is_ok());
    let items = client.scan().table_name(&table).send().await.unwrap();
    let totals: Vec<String> = items
        .items()
        .iter()
        .map(|i| i["tokens"].as_n().unwrap().clone())
        .collect();
    assert_eq!(totals, ["1200", "1200"], "one day item and one month item");
    assert!(items.items().iter().all(|i| i.contains_key("expires_at")));
    assert_eq!(budgets.write_failures(), 0);
}

#[tokio::test]
async fn budget_write_failures_never_fail_and_are_counted() {
    let sdk = common::sdk_config(common::moto::moto()).await;
    let budgets = Budgets::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        "no-such-table".into(),
        Duration::from_secs(1),
    );
    budgets.record("alice", 5).await;
    assert_eq!(budgets.write_failures(), 1);
    // An unreadable table lets requests through: budgets guard spend, they do not stop service.
    let policy = CallerPolicy {
        daily_tokens: Some(1),
        ..CallerPolicy::default()
    };
    assert!(budgets.check("alice", &policy).await.is_ok());
}

#[tokio::test]
async fn a_throttled_caller_is_never_answered_by_a_fallback_outside_its_model_list() {
    // alice may use haiku and sonnet 4.5; the fallback for haiku is opus, which she may not.
    let fallbacks = json!({"claude-haiku-4-5": ["claude-opus-5-5", "claude-sonnet-4-5"]}).to_string();
    let h = harness(&[("BEARER_TOKEN", &team_secret()), ("MODEL_FALLBACKS", &fallbacks)]).await;
    let mut body = message("emulator:fail_first=3:ThrottlingException:alice-fallback", false);
    body["model"] = json!("claude-haiku-4-5");
    let reply = post_as(&h.app, ALICE, "/v1/messages", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let models: Vec<String> = h
        .emulator
        .requests()
        .iter()
        .map(|r| r["model_id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        models.iter().all(|m| !m.contains("opus")),
        "opus must be skipped: {models:?}"
    );
    assert!(models.last().unwrap().contains("claude-sonnet-4-5"), "{models:?}");

    // With only opus as a fallback, she gets the throttling error itself.
    let only_opus = json!({"claude-haiku-4-5": ["claude-opus-5-5"]}).to_string();
    let h = harness(&[("BEARER_TOKEN", &team_secret()), ("MODEL_FALLBACKS", &only_opus)]).await;
    let mut body = message("emulator:error=ThrottlingException", false);
    body["model"] = json!("claude-haiku-4-5");
    assert_eq!(post_as(&h.app, ALICE, "/v1/messages", &body).await.status, 429);
    assert!(h
        .emulator
        .requests()
        .iter()
        .all(|r| !r["model_id"].as_str().unwrap().contains("opus")));
}

#[tokio::test]
async fn a_model_outside_the_callers_list_is_not_found_by_id_either() {
    let h = harness(&[("BEARER_TOKEN", &team_secret())]).await;
    let get = |token: &'static str, id: &'static str| {
        let app = h.app.clone();
        async move {
            let req = axum::http::Request::get(format!("/v1/models/{id}"))
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            send(&app, req).await
        }
    };
    let hidden = get(ALICE, "claude-opus-5-5").await;
    assert_eq!(hidden.status, 404, "{}", hidden.text());
    assert_eq!(hidden.error_type(), "not_found_error");
    assert_eq!(get(ALICE, "claude-haiku-4-5").await.status, 200);
    assert_eq!(get(CI, "claude-opus-5-5").await.status, 200);
}
