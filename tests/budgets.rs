//! Spend in dollars: the cost on each log line, dollar and token budgets in DynamoDB (moto's),
//! the 429 and the headers Claude Code reads, reservations under concurrency, and charges that
//! are written before the answer ends, however it ends.

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::body::Body;
use bedrock_anthropic_proxy::auth::policy::CallerPolicy;
use bedrock_anthropic_proxy::usage::budgets::{accounts, Budgets, Limits, Period, Spend};
use bedrock_anthropic_proxy::usage::charge;
use bedrock_anthropic_proxy::usage::cost::Usd;
use common::budgets::{budget_harness, stored};
use common::moto::usage_table;
use common::{harness, lambda_context, message, parse_sse, send, Logs, Reply};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789";

/// $1000 per million input tokens, $10000 per million output tokens: $0.001 in, $0.01 out per
/// token, round numbers for the assertions.
const PRICES: &str = r#"{"claude-sonnet-4-5": {"input": 1000, "output": 10000, "cache_read": 0, "cache_write": 0, "cache_write_1h": 0}}"#;

fn secret(daily_usd: f64) -> String {
    json!({"tokens": {
        "alice": {"token": ALICE, "daily_usd": daily_usd},
        "bob": {"token": BOB, "daily_tokens": 1000},
    }})
    .to_string()
}

fn post_as(token: &str, body: &Value) -> axum::http::Request<Body> {
    axum::http::Request::builder()
        .method("POST")
        .uri("/v1/messages")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn request_id(reply: &Reply) -> String {
    reply.headers["request-id"].to_str().unwrap().to_string()
}

/// Sets an account's spend today (and this month) to `micros`, as another instance would have
/// left it: one item per month, the day's numbers beside the month's.
async fn seed(client: &aws_sdk_dynamodb::Client, table: &str, account: &str, micros: u64) {
    let period = Period::now();
    let day = period.day.rsplit('-').next().unwrap();
    client
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S(account.into()))
        .item("sk", AttributeValue::S(format!("month#{}", period.month)))
        .item("tokens", AttributeValue::N("0".into()))
        .item("usd_micros", AttributeValue::N(micros.to_string()))
        .item(format!("d{day}_tokens"), AttributeValue::N("0".into()))
        .item(format!("d{day}_usd_micros"), AttributeValue::N(micros.to_string()))
        .send()
        .await
        .unwrap();
}

fn micros(dollars: f64) -> i64 {
    Usd::from_dollars_ceil(dollars).0 as i64
}

#[tokio::test]
async fn the_log_line_has_the_cost_of_the_tokens_at_the_models_price_streamed_and_not() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let h = harness(&[("MODEL_PRICES", PRICES)]).await;
    for stream in [false, true] {
        let reply = common::post(&h.app, "/v1/messages", &message("hi there", stream)).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let line = logs.request_line(&request_id(&reply));
        let (input, output) = (
            line["input_tokens"].as_f64().unwrap(),
            line["output_tokens"].as_f64().unwrap(),
        );
        assert!(input > 0.0 && output > 0.0, "{line}");
        let expected = (input * 1000.0 + output * 10000.0) / 1e6;
        let cost = line["cost_usd"].as_f64().unwrap();
        assert!(
            (cost - expected).abs() < 1e-12,
            "stream={stream}: {cost} != {expected}: {line}"
        );
        assert_eq!(line["priced"], true);
    }
    // The built-in table, with the regional premium: Haiku 4.5 on the us. profile is $1.10 / $5.50.
    let mut body = message("hi there", true);
    body["model"] = "claude-haiku-4-5".into();
    let reply = common::post(&h.app, "/v1/messages", &body).await;
    let line = logs.request_line(&request_id(&reply));
    let (input, output) = (
        line["input_tokens"].as_f64().unwrap(),
        line["output_tokens"].as_f64().unwrap(),
    );
    let expected = (input * 1.10 + output * 5.50) / 1e6;
    assert!((line["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-12, "{line}");
    // A model with no price is said to be unpriced, never guessed.
    body["model"] = "claude-3-5-sonnet-20241022".into();
    let reply = common::post(&h.app, "/v1/messages", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let line = logs.request_line(&request_id(&reply));
    assert_eq!(line["priced"], false, "{line}");
}

#[tokio::test]
async fn a_spent_dollar_budget_is_a_429_naming_it_with_retry_after_to_the_reset() {
    let (client, table) = usage_table().await;
    let secret = secret(0.10);
    let h = budget_harness(&[("BEARER_TOKEN", &secret), ("MODEL_PRICES", PRICES)], &table, 20).await;
    seed(&client, &table, "caller#alice", 100_500).await;
    let reply = send(&h.app, post_as(ALICE, &message("hi", false))).await;
    assert_eq!(reply.status, 429, "{}", reply.text());
    assert_eq!(reply.error_type(), "rate_limit_error");
    let text = reply.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        text.starts_with(
            "the daily dollar budget of $0.10 for this token is used up ($0.1005 spent); it resets at 00:00 UTC, in "
        ),
        "{text}"
    );
    let retry_after: u64 = reply.headers["retry-after"].to_str().unwrap().parse().unwrap();
    let left = Period::now().day_left;
    assert!(
        retry_after.abs_diff(left) <= 2,
        "retry-after {retry_after} vs {left} s to midnight"
    );
    assert_eq!(reply.headers["x-should-retry"], "false");
    assert_eq!(reply.headers["anthropic-ratelimit-unified-status"], "rejected");
    assert_eq!(reply.headers["anthropic-ratelimit-unified-overage-period"], "daily");
    assert!(!reply
        .headers
        .contains_key("anthropic-ratelimit-unified-representative-claim"));
    assert!(h.emulator.requests().is_empty(), "nothing may reach Bedrock");
}

#[tokio::test]
async fn near_the_limit_the_answer_says_so_in_the_headers_claude_code_reads() {
    let (client, table) = usage_table().await;
    let secret = secret(1.0);
    let h = budget_harness(&[("BEARER_TOKEN", &secret), ("MODEL_PRICES", PRICES)], &table, 20).await;
    seed(&client, &table, "caller#alice", 100_000).await;
    let quiet = send(&h.app, post_as(ALICE, &message("hi", false))).await;
    assert_eq!(quiet.status, 200, "{}", quiet.text());
    assert_eq!(quiet.headers["anthropic-ratelimit-unified-status"], "allowed");
    assert!(!quiet
        .headers
        .contains_key("anthropic-ratelimit-unified-overage-surpassed-threshold"));
    // Another instance spent: 80 % used by the next read.
    seed(&client, &table, "caller#alice", 800_000).await;
    let h = budget_harness(&[("BEARER_TOKEN", &secret), ("MODEL_PRICES", PRICES)], &table, 20).await;
    for stream in [false, true] {
        let warned = send(&h.app, post_as(ALICE, &message("hi", stream))).await;
        assert_eq!(warned.status, 200, "{}", warned.text());
        assert_eq!(warned.headers["anthropic-ratelimit-unified-status"], "allowed_warning");
        assert_eq!(
            warned.headers["anthropic-ratelimit-unified-overage-surpassed-threshold"],
            "0.75"
        );
        assert_eq!(
            warned.headers["anthropic-ratelimit-unified-representative-claim"],
            "overage"
        );
        let reset: u64 = warned.headers["anthropic-ratelimit-unified-reset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let period = Period::now();
        assert!(reset.abs_diff(period.now + period.day_left) <= 2);
    }
    // A caller with no budget gets none of these.
    let h = harness(&[("BEARER_TOKEN", &secret)]).await;
    let reply = common::post(&h.app, "/v1/messages", &message("hi", false)).await;
    assert!(!reply.headers.contains_key("anthropic-ratelimit-unified-status"));
}

#[tokio::test]
async fn the_charge_is_in_the_table_when_the_caller_has_read_the_last_byte() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let (client, table) = usage_table().await;
    let secret = secret(100.0);
    let h = budget_harness(&[("BEARER_TOKEN", &secret), ("MODEL_PRICES", PRICES)], &table, 20).await;
    let mut charged = 0;
    for stream in [false, true] {
        let reply = send(&h.app, post_as(ALICE, &message("hi there", stream))).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        // No wait: the body ended only after the write.
        let line = logs.request_line(&request_id(&reply));
        charged += micros(line["cost_usd"].as_f64().unwrap());
        assert_eq!(
            stored(&client, &table, "caller#alice", "day", "usd_micros").await,
            charged,
            "stream={stream}"
        );
        assert_eq!(
            stored(&client, &table, "caller#alice", "month", "usd_micros").await,
            charged
        );
    }
    assert!(charged > 0);
    assert_eq!(h.state.budgets.as_ref().unwrap().write_failures(), 0);
}

#[tokio::test]
async fn a_stream_cut_at_the_lambda_deadline_is_charged_what_it_streamed() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let (client, table) = usage_table().await;
    let secret = secret(100.0);
    let env = [
        ("BEARER_TOKEN", secret.as_str()),
        ("MODEL_PRICES", PRICES),
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ("LAMBDA_DEADLINE_MARGIN_MS", "1000"),
    ];
    let h = budget_harness(&env, &table, 20).await;
    let mut req = post_as(ALICE, &message("emulator:chunks=200 emulator:delay_ms=50", true));
    req.extensions_mut().insert(lambda_context(Duration::from_millis(2500)));
    let reply = send(&h.app, req).await;
    let events = parse_sse(&reply.text());
    let deltas = events.iter().filter(|(n, _)| n == "content_block_delta").count();
    assert!(deltas >= 5, "{deltas} deltas");
    assert_eq!(events.last().unwrap().0, "error");
    let line = logs.request_line(&request_id(&reply));
    assert_eq!(line["outcome"], "deadline", "{line}");
    assert_eq!(line["usage_estimated"], true, "{line}");
    // At least a token per delta delivered, and the input.
    let output = line["output_tokens"].as_u64().unwrap();
    assert!(output >= deltas as u64, "{output} output tokens for {deltas} deltas");
    assert!(line["input_tokens"].as_u64().unwrap() > 0);
    let cost = micros(line["cost_usd"].as_f64().unwrap());
    assert_eq!(stored(&client, &table, "caller#alice", "day", "usd_micros").await, cost);
}

#[tokio::test]
async fn streams_that_break_or_lose_their_caller_are_still_charged() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let (client, table) = usage_table().await;
    let secret = secret(100.0);
    let h = budget_harness(&[("BEARER_TOKEN", &secret), ("MODEL_PRICES", PRICES)], &table, 20).await;
    // Bedrock's connection breaks after 12 events: no message_delta, no metrics.
    let reply = send(
        &h.app,
        post_as(ALICE, &message("emulator:chunks=40 emulator:cut_after=12", true)),
    )
    .await;
    assert_eq!(parse_sse(&reply.text()).last().unwrap().0, "error");
    let line = logs.request_line(&request_id(&reply));
    assert_eq!(line["outcome"], "stream_error", "{line}");
    assert!(line["output_tokens"].as_u64().unwrap() >= 9, "{line}");
    let broken = micros(line["cost_usd"].as_f64().unwrap());
    assert_eq!(
        stored(&client, &table, "caller#alice", "day", "usd_micros").await,
        broken
    );

    // The caller reads a few frames, then leaves.
    let response = h
        .app
        .clone()
        .oneshot(post_as(
            ALICE,
            &message("emulator:chunks=200 emulator:delay_ms=20", true),
        ))
        .await
        .unwrap();
    let id = response.headers()["request-id"].to_str().unwrap().to_string();
    let mut body = response.into_body();
    let mut seen = Vec::new();
    while seen.windows(19).filter(|w| w == b"content_block_delta").count() < 6 {
        let frame = body.frame().await.unwrap().unwrap();
        seen.extend_from_slice(frame.data_ref().unwrap());
    }
    drop(body);
    charge::flush(Duration::from_secs(10)).await;
    let line = logs.request_line(&id);
    assert_eq!(line["outcome"], "client_gone", "{line}");
    assert_eq!(line["usage_estimated"], true, "{line}");
    assert!(line["output_tokens"].as_u64().unwrap() >= 6, "{line}");
    let gone = micros(line["cost_usd"].as_f64().unwrap());
    assert_eq!(
        stored(&client, &table, "caller#alice", "day", "usd_micros").await,
        broken + gone
    );
}

#[tokio::test]
async fn concurrent_requests_cannot_overrun_a_tight_budget_by_more_than_one_worst_case() {
    let (client, table) = usage_table().await;
    let secret = secret(0.10);
    let h = budget_harness(&[("BEARER_TOKEN", &secret), ("MODEL_PRICES", PRICES)], &table, 20).await;
    // 85 % spent elsewhere: under 20 % left, so every request reserves its worst case.
    seed(&client, &table, "caller#alice", 85_000).await;
    // Worst case: 10 output tokens at $0.01 and the input estimate at $0.001 a token.
    let mut body = message("emulator:delay_ms=100", false);
    body["max_tokens"] = 10.into();
    let worst = 10 * 10_000 + (body.to_string().len().div_ceil(4) as i64) * 1_000;
    let replies = futures_util::future::join_all((0..12).map(|_| send(&h.app, post_as(ALICE, &body)))).await;
    let admitted = replies.iter().filter(|r| r.status == 200).count();
    let refused = replies.iter().filter(|r| r.status == 429).count();
    assert_eq!(admitted + refused, 12);
    // The first reservation takes the budget past its limit; the others are refused.
    assert_eq!(admitted, 1, "{admitted} admitted: the reservations must stop them");
    let spent = stored(&client, &table, "caller#alice", "day", "usd_micros").await;
    assert!(
        spent <= 100_000 + worst,
        "{spent} micro-dollars spent of 100000 (+ one worst case {worst})"
    );
    assert!(spent > 85_000);
    // Each refusal named the budget.
    for r in replies.iter().filter(|r| r.status == 429) {
        assert!(r.text().contains("daily dollar budget"), "{}", r.text());
    }
}

#[tokio::test]
async fn the_instance_that_spent_a_budget_refuses_its_next_request_at_once() {
    let (client, table) = usage_table().await;
    let secret = secret(0.05);
    let h = budget_harness(&[("BEARER_TOKEN", &secret), ("MODEL_PRICES", PRICES)], &table, 20).await;
    let _ = client;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let reply = send(&h.app, post_as(ALICE, &message("hi", false))).await;
        statuses.push(reply.status.as_u16());
        if reply.status == 429 {
            break;
        }
    }
    // Each answer costs about $0.08 (8 output tokens): the second must be refused.
    assert_eq!(statuses, [200, 429], "{statuses:?}");
}

#[tokio::test]
async fn a_dollar_budget_refuses_a_model_that_has_no_price() {
    let (_, table) = usage_table().await;
    let secret = secret(10.0);
    let h = budget_harness(&[("BEARER_TOKEN", &secret)], &table, 20).await;
    let mut body = message("hi", false);
    body["model"] = "claude-3-5-sonnet-20241022".into();
    let reply = send(&h.app, post_as(ALICE, &body)).await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert!(reply.text().contains("MODEL_PRICES"), "{}", reply.text());
}

#[tokio::test]
async fn a_caller_over_its_daily_token_budget_gets_a_429_that_says_which_budget_and_when_it_resets() {
    let (client, table) = usage_table().await;
    let secret = secret(10.0);
    let h = budget_harness(&[("BEARER_TOKEN", &secret)], &table, 20).await;
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..400 {
        let reply = send(&h.app, post_as(BOB, &message("hello there, emulator", false))).await;
        statuses.push(reply.status.as_u16());
        if reply.status != 200 {
            last = Some(reply);
            break;
        }
    }
    let refused = last.expect("the token budget must run out");
    assert_eq!(refused.status, 429, "{}", refused.text());
    let text = refused.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(text.contains("daily token budget of 1000 for this token"), "{text}");
    assert!(text.contains("resets at 00:00 UTC"), "{text}");
    // The table holds the atomic totals another instance would read: the day's and the month's.
    let day = stored(&client, &table, "caller#bob", "day", "tokens").await;
    assert_eq!(day, stored(&client, &table, "caller#bob", "month", "tokens").await);
    assert!(day >= 1000, "{day}");
    let items = client.scan().table_name(&table).send().await.unwrap();
    assert!(items.items().iter().all(|i| i.contains_key("expires_at")));
}

#[tokio::test]
async fn group_and_deployment_budgets_count_every_members_spend() {
    let (client, table) = usage_table().await;
    let budgets = Budgets::new(client.clone(), table.clone(), Duration::from_secs(3600));
    let pool = CallerPolicy {
        daily_usd: Some(Usd(1_000)),
        ..CallerPolicy::default()
    };
    let groups = [("eng".to_string(), std::sync::Arc::new(pool))];
    let whole = Limits {
        monthly_usd: Some(Usd(1_000_000)),
        ..Limits::default()
    };
    let of = |caller: &str| accounts(caller, &CallerPolicy::default(), &groups, &whole);
    assert_eq!(of("alice").len(), 2, "the caller has no limit of its own");
    let spend = Spend {
        tokens: 10,
        usd: Usd(600),
    };
    let first = budgets.admit(of("alice"), spend).await.unwrap();
    budgets.settle(&first, spend).await;
    let second = budgets.admit(of("bob"), spend).await.unwrap();
    budgets.settle(&second, spend).await;
    let err = budgets.admit(of("carol"), spend).await.unwrap_err();
    let response = axum::response::IntoResponse::into_response(err);
    assert_eq!(response.status(), 429);
    assert_eq!(
        response.headers()["anthropic-ratelimit-unified-overage-scope"],
        "group_pool"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("daily dollar budget of $0.001 for the group \\\"eng\\\""),
        "{body:?}"
    );
    assert_eq!(
        stored(&client, &table, "deployment", "month", "usd_micros").await,
        1_200
    );
}

#[tokio::test]
async fn an_unreadable_table_fails_closed_in_the_shape_claude_code_knows() {
    let sdk = common::sdk_config(common::moto::moto()).await;
    let budgets = Budgets::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        "no-such-table".into(),
        Duration::from_secs(1),
    );
    let policy = CallerPolicy {
        daily_usd: Some(Usd(1_000_000)),
        ..CallerPolicy::default()
    };
    let err = budgets
        .admit(accounts("alice", &policy, &[], &Limits::default()), Spend::default())
        .await
        .unwrap_err();
    let response = axum::response::IntoResponse::into_response(err);
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["x-should-retry"], "false");
    assert_eq!(
        response.headers()["anthropic-ratelimit-unified-overage-disabled-reason"],
        "fetch_error"
    );
}

#[tokio::test]
async fn budget_reads_are_cached_and_single_flight() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let (client, table) = usage_table().await;
    let budgets = Budgets::new(client, table, Duration::from_secs(3600));
    let policy = CallerPolicy {
        daily_usd: Some(Usd(1_000_000)),
        ..CallerPolicy::default()
    };
    let admit = || budgets.admit(accounts("alice", &policy, &[], &Limits::default()), Spend::default());
    // Twenty requests at once, with nothing read yet: one read, the others wait for it.
    let results = futures_util::future::join_all((0..20).map(|_| admit())).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(budgets.reads(), 1);
    // Later ones use the cached read.
    for _ in 0..5 {
        admit().await.unwrap();
    }
    assert_eq!(budgets.reads(), 1);
}

#[tokio::test]
async fn a_failed_read_falls_back_to_the_last_read_of_the_day_and_without_one_fails_closed() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let (client, table) = usage_table().await;
    // Reads trusted for no time at all: every admission reads.
    let budgets = Budgets::new(client.clone(), table.clone(), Duration::ZERO);
    let policy = CallerPolicy {
        daily_usd: Some(Usd(1_000_000)),
        ..CallerPolicy::default()
    };
    let of = || accounts("alice", &policy, &[], &Limits::default());
    budgets.admit(of(), Spend::default()).await.unwrap();
    client.delete_table().table_name(&table).send().await.unwrap();
    // The table is gone: the last read of the day stands in, and says so in the log.
    budgets.admit(of(), Spend::default()).await.unwrap();
    assert!(
        logs.lines()
            .iter()
            .any(|l| l["message"] == "could not read the budget; using the last read"),
        "{:?}",
        logs.lines()
    );
    // An instance that never read it refuses.
    let fresh = Budgets::new(client, table, Duration::ZERO);
    let err = fresh.admit(of(), Spend::default()).await.unwrap_err();
    assert_eq!(err.status_and_type().0, 429);
}

#[tokio::test]
async fn the_headers_say_where_the_callers_own_budget_stands_not_the_deployments() {
    let (client, table) = usage_table().await;
    let budgets = Budgets::new(client, table, Duration::from_secs(3600));
    let whole = Limits {
        daily_usd: Some(Usd(1_000)),
        ..Limits::default()
    };
    let own = CallerPolicy {
        daily_usd: Some(Usd(1_000)),
        ..CallerPolicy::default()
    };
    let spend = Spend {
        tokens: 1,
        usd: Usd(900),
    };
    let first = budgets
        .admit(accounts("alice", &own, &[], &whole), spend)
        .await
        .unwrap();
    budgets.settle(&first, spend).await;
    let header =
        |headers: &[(&str, String)], name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
    // bob has no budget of his own: the deployment at 90 % is not his to be warned about.
    let bob = budgets
        .admit(accounts("bob", &CallerPolicy::default(), &[], &whole), Spend::default())
        .await
        .unwrap();
    assert!(bob.headers().is_empty(), "{:?}", bob.headers());
    // alice's own budget is at 90 %.
    let alice = budgets
        .admit(accounts("alice", &own, &[], &whole), Spend::default())
        .await
        .unwrap();
    let headers = alice.headers();
    assert_eq!(
        header(&headers, "anthropic-ratelimit-unified-status").as_deref(),
        Some("allowed_warning")
    );
    assert_eq!(
        header(&headers, "anthropic-ratelimit-unified-overage-surpassed-threshold").as_deref(),
        Some("0.75")
    );
}
