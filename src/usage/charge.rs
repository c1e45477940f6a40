//! A request's charge: its admission to the budgets, settled once with what it used.
//!
//! Every path that ends a request settles while the request is still running: the whole
//! answer before it is returned, a stream before its last frame leaves (so the charge is in
//! the table when the caller has read the last byte, and inside Lambda the invocation is still
//! running). Only a caller that leaves mid-stream drops the body before it ends; that charge
//! is written by a tracked task, and inside Lambda the next invocation waits for such tasks
//! before it starts ([`flush_first`]), so a frozen environment delays the write but does not
//! lose it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use crate::usage::budgets::{Admission, Budgets, Spend};
use crate::usage::request_log::RequestLog;

/// A request let in by the budgets, to be settled once.
#[derive(Debug)]
pub struct Charge {
    budgets: Arc<Budgets>,
    admission: Admission,
}

impl Charge {
    /// The charge of an admitted request.
    pub fn new(budgets: Arc<Budgets>, admission: Admission) -> Self {
        Self { budgets, admission }
    }

    /// Writes what the request used (less its reservation) to its accounts.
    pub async fn settle(self, used: Spend) {
        self.budgets.settle(&self.admission, used).await;
    }
}

/// Settles the request's charge, if it has one, with what its log says it used.
pub async fn settle(log: &RequestLog) {
    if let Some(charge) = log.take_charge() {
        charge.settle(log.spend()).await;
    }
}

/// Charges being written by tasks, for [`flush`].
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static SETTLED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Settles `charge` in a tracked task: for a body dropped before its end, which cannot wait.
pub fn settle_later(charge: Charge, used: Spend) {
    track(charge.settle(used));
}

/// Runs a charge's write in a tracked task, so that [`flush`] can wait for it.
pub fn track(write: impl std::future::Future<Output = ()> + Send + 'static) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no runtime to write a charge on; it is lost");
        return;
    };
    IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
    runtime.spawn(async move {
        write.await;
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
        SETTLED.notify_waiters();
    });
}

/// Charges still being written by tasks.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Acquire)
}

/// Waits, at most `limit`, until no charge is being written by a task.
pub async fn flush(limit: Duration) {
    let wait = async {
        loop {
            let settled = SETTLED.notified();
            if in_flight() == 0 {
                return;
            }
            settled.await;
        }
    };
    if tokio::time::timeout(limit, wait).await.is_err() {
        tracing::warn!(
            in_flight = in_flight(),
            "charges of earlier requests are still being written"
        );
    }
}

/// Inside Lambda, each invocation first waits (at most 2 s) for the charges of earlier ones
/// whose callers left mid-stream: the environment may have been frozen before they were written.
pub async fn flush_first(req: Request, next: Next) -> Response {
    if in_flight() > 0 {
        flush(Duration::from_secs(2)).await;
    }
    next.run(req).await
}
