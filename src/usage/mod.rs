//! What each request used and cost: the request log line, CloudWatch EMF metrics, prices and
//! cost, budgets in tokens and dollars, and the charge that settles a request's spend.

pub mod budgets;
pub mod charge;
pub mod cost;
pub(crate) mod metrics;
pub mod prices;
pub mod request_log;
