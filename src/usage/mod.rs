//! What each request used and cost: the request log line, CloudWatch EMF metrics, and
//! budgets.

pub mod budgets;
pub(crate) mod metrics;
pub mod request_log;
