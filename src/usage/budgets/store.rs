//! The usage table's two operations: read an account's day and month, and add to them
//! (atomically, optionally only while under a limit).
//!
//! Items: `pk` = the account (`caller#<name>`, `group#<name>`, `deployment`), `sk` =
//! `day#YYYY-MM-DD` or `month#YYYY-MM` (UTC); numbers `tokens` and `usd_micros`; `expires_at`
//! (epoch seconds) for DynamoDB's TTL.

use std::time::Duration;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;

use super::period::Period;
use super::Spend;
use crate::usage::cost::Usd;

/// How long one call to the table may take before it counts as failed: a budget check must
/// never hang a request on a slow table.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// Why an add did not happen.
#[derive(Debug)]
pub enum AddError {
    /// The item was at or over a limit the add was conditional on.
    AtLimit,
    /// The table could not be written; the detail is for the log.
    Failed(String),
}

/// The sort keys of a period's day and month items, with when each may expire (kept a
/// little past the period, so that a month's total can still be looked at).
pub fn items(period: &Period) -> [(String, u64); 2] {
    [
        (format!("day#{}", period.day), period.now + period.day_left + 8 * 86_400),
        (
            format!("month#{}", period.month),
            period.now + period.month_left + 40 * 86_400,
        ),
    ]
}

/// The account's spend this day and this month.
pub async fn read(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    account: &str,
    period: &Period,
) -> Result<(Spend, Spend), String> {
    let [(day, _), (month, _)] = items(period);
    let (day, month) = tokio::join!(get(client, table, account, &day), get(client, table, account, &month));
    Ok((day?, month?))
}

async fn get(client: &aws_sdk_dynamodb::Client, table: &str, account: &str, sort_key: &str) -> Result<Spend, String> {
    let call = client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(account.to_string()))
        .key("sk", AttributeValue::S(sort_key.to_string()))
        .projection_expression("tokens, usd_micros")
        .send();
    let item = tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| format!("the usage table did not answer within {} s", CALL_TIMEOUT.as_secs()))?
        .map_err(|e| DisplayErrorContext(&e).to_string())?;
    let number = |name: &str| {
        item.item()
            .and_then(|i| i.get(name))
            .and_then(|v| v.as_n().ok())
            // A refund may leave an item a hair below zero if a write was lost; read that as 0.
            .and_then(|n| n.parse::<i64>().ok())
            .map_or(0, |n| u64::try_from(n).unwrap_or(0))
    };
    Ok(Spend {
        tokens: number("tokens"),
        usd: Usd(number("usd_micros")),
    })
}

/// Adds `tokens` and `micros` (either may be negative: a refund) to one item. With `limits`
/// (tokens, micro-dollars), only while the item is below each limit given.
pub async fn add(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    account: &str,
    (sort_key, expires_at): &(String, u64),
    tokens: i64,
    micros: i64,
    limits: (Option<u64>, Option<u64>),
) -> Result<(), AddError> {
    let mut call = client
        .update_item()
        .table_name(table)
        .key("pk", AttributeValue::S(account.to_string()))
        .key("sk", AttributeValue::S(sort_key.clone()))
        .update_expression("ADD tokens :t, usd_micros :u SET expires_at = if_not_exists(expires_at, :exp)")
        .expression_attribute_values(":t", AttributeValue::N(tokens.to_string()))
        .expression_attribute_values(":u", AttributeValue::N(micros.to_string()))
        .expression_attribute_values(":exp", AttributeValue::N(expires_at.to_string()));
    let mut conditions = Vec::new();
    if let Some(limit) = limits.0 {
        conditions.push("(attribute_not_exists(tokens) OR tokens < :tl)");
        call = call.expression_attribute_values(":tl", AttributeValue::N(limit.to_string()));
    }
    if let Some(limit) = limits.1 {
        conditions.push("(attribute_not_exists(usd_micros) OR usd_micros < :ul)");
        call = call.expression_attribute_values(":ul", AttributeValue::N(limit.to_string()));
    }
    if !conditions.is_empty() {
        call = call.condition_expression(conditions.join(" AND "));
    }
    match tokio::time::timeout(CALL_TIMEOUT, call.send()).await {
        Err(_) => Err(AddError::Failed(format!(
            "the usage table did not answer within {} s",
            CALL_TIMEOUT.as_secs()
        ))),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e))
            if e.as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
        {
            Err(AddError::AtLimit)
        }
        Ok(Err(e)) => Err(AddError::Failed(DisplayErrorContext(&e).to_string())),
    }
}
