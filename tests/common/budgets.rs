//! A usage table in moto's DynamoDB, and a harness whose budgets are kept there while Bedrock
//! is the emulator.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use bedrock_anthropic_proxy::app;
use bedrock_anthropic_proxy::usage::budgets::Budgets;

use super::{harness, moto::moto, sdk_config, Harness};

/// A harness (emulator for Bedrock, `env` on top) whose budgets live in `table` at moto.
pub async fn budget_harness(env: &[(&str, &str)], table: &str, reserve_percent: u64) -> Harness {
    let mut env: Vec<(&str, &str)> = env.to_vec();
    // Makes the state build its budgets; they are then pointed at moto below.
    env.push(("USAGE_TABLE", table));
    let h = harness(&env).await;
    let Harness {
        emulator,
        state,
        app: router,
    } = h;
    drop(router);
    let mut state = Arc::try_unwrap(state).unwrap_or_else(|_| panic!("the state is not shared yet"));
    let client = aws_sdk_dynamodb::Client::new(&sdk_config(moto()).await);
    state.budgets = Some(Arc::new(Budgets::with_reserve_percent(
        client,
        table.to_string(),
        state.config.budget_read_every,
        reserve_percent,
    )));
    let state = Arc::new(state);
    Harness {
        app: app(state.clone()),
        state,
        emulator,
    }
}

/// What the table holds for an account today (`window` = "day") or this month ("month"):
/// the number `name` (`tokens` or `usd_micros`), 0 when there is none.
pub async fn stored(client: &aws_sdk_dynamodb::Client, table: &str, account: &str, window: &str, name: &str) -> i64 {
    let period = bedrock_anthropic_proxy::usage::budgets::Period::now();
    let day = period.day.rsplit('-').next().unwrap().to_string();
    let attribute = match window {
        "day" => format!("d{day}_{name}"),
        _ => name.to_string(),
    };
    let items = client.scan().table_name(table).send().await.expect("scan");
    items
        .items()
        .iter()
        .filter(|i| i["pk"] == AttributeValue::S(account.to_string()))
        .filter(|i| i["sk"] == AttributeValue::S(format!("month#{}", period.month)))
        .filter_map(|i| {
            i.get(&attribute)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
        })
        .sum()
}

/// Waits up to `limit` for `check` to hold, polling.
pub async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
