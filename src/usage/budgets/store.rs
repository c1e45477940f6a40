//! The usage table's two operations: read an account's day and month, and add to both at once
//! (atomically, optionally only while under its limits).
//!
//! One item per account and month: `pk` = the account (`caller#<name>`, `group#<name>`,
//! `deployment`), `sk` = `month#YYYY-MM` (UTC); numbers `tokens` and `usd_micros` (the month's
//! totals) and `dDD_tokens`, `dDD_usd_micros` (day DD's); `expires_at` (epoch seconds) for
//! DynamoDB's TTL. Day and month in one item make a charge one `UpdateItem`, and a reservation
//! one conditional `UpdateItem` that checks the day's and the month's limits together.

use std::time::Duration;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;

use super::period::Period;
use super::{Limits, Spend};
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

/// The month item's sort key, and when it may expire (kept 40 days past the month, so that a
/// month's total can still be looked at).
fn item(period: &Period) -> (String, u64) {
    (
        format!("month#{}", period.month),
        period.now + period.month_left + 40 * 86_400,
    )
}

/// The day's attribute names: `dDD_tokens`, `dDD_usd_micros`.
fn day_attributes(period: &Period) -> (String, String) {
    let day = period.day.rsplit('-').next().unwrap_or("00");
    (format!("d{day}_tokens"), format!("d{day}_usd_micros"))
}

/// The account's spend this day and this month.
pub async fn read(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    account: &str,
    period: &Period,
) -> Result<(Spend, Spend), String> {
    let (sort_key, _) = item(period);
    let (day_tokens, day_usd) = day_attributes(period);
    let call = client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(account.to_string()))
        .key("sk", AttributeValue::S(sort_key))
        .projection_expression("tokens, usd_micros, #dt, #du")
        .expression_attribute_names("#dt", &day_tokens)
        .expression_attribute_names("#du", &day_usd)
        .send();
    let item = tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| format!("the usage table did not answer within {} s", CALL_TIMEOUT.as_secs()))?
        .map_err(|e| DisplayErrorContext(&e).to_string())?;
    let number = |name: &str| {
        item.item()
            .and_then(|i| i.get(name))
            .and_then(|v| v.as_n().ok())
            // A refund may leave a number a hair below zero if a write was lost; read that as 0.
            .and_then(|n| n.parse::<i64>().ok())
            .map_or(0, |n| u64::try_from(n).unwrap_or(0))
    };
    let day = Spend {
        tokens: number(&day_tokens),
        usd: Usd(number(&day_usd)),
    };
    let month = Spend {
        tokens: number("tokens"),
        usd: Usd(number("usd_micros")),
    };
    Ok((day, month))
}

/// Adds `tokens` and `micros` (either may be negative: a refund) to the account's day and
/// month. With `limits`, only while the day and the month are below each limit set.
pub async fn add(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    account: &str,
    period: &Period,
    (tokens, micros): (i64, i64),
    limits: Option<&Limits>,
) -> Result<(), AddError> {
    let (sort_key, expires_at) = item(period);
    let (day_tokens, day_usd) = day_attributes(period);
    let mut call = client
        .update_item()
        .table_name(table)
        .key("pk", AttributeValue::S(account.to_string()))
        .key("sk", AttributeValue::S(sort_key))
        .update_expression(
            "ADD tokens :t, usd_micros :u, #dt :t, #du :u SET expires_at = if_not_exists(expires_at, :exp)",
        )
        .expression_attribute_names("#dt", day_tokens)
        .expression_attribute_names("#du", day_usd)
        .expression_attribute_values(":t", AttributeValue::N(tokens.to_string()))
        .expression_attribute_values(":u", AttributeValue::N(micros.to_string()))
        .expression_attribute_values(":exp", AttributeValue::N(expires_at.to_string()));
    if let Some(l) = limits {
        let checks = [
            ("#dt", ":dtl", l.daily_tokens),
            ("#du", ":dul", l.daily_usd.map(|u| u.0)),
            ("tokens", ":mtl", l.monthly_tokens),
            ("usd_micros", ":mul", l.monthly_usd.map(|u| u.0)),
        ];
        let mut conditions = Vec::new();
        for (attribute, value, limit) in checks {
            if let Some(limit) = limit {
                conditions.push(format!("(attribute_not_exists({attribute}) OR {attribute} < {value})"));
                call = call.expression_attribute_values(value, AttributeValue::N(limit.to_string()));
            }
        }
        if !conditions.is_empty() {
            call = call.condition_expression(conditions.join(" AND "));
        }
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
