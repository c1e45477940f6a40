//! Who may call: the static tokens (from Secrets Manager or the environment), the secret's
//! format, and each caller's policy (including its Bedrock guardrail).

pub mod guardrail;
pub mod policy;
pub mod secret;
pub mod tokens;

use std::sync::Arc;

use policy::CallerPolicy;

/// An authenticated caller, as the handlers see it: one type for every kind of credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The caller's name, logged with each request and charged for its spend (`default` for a
    /// single-token secret).
    pub name: String,
    /// What the caller may do (shared: every request of the caller reads the same policy).
    pub policy: Arc<CallerPolicy>,
}

impl Caller {
    /// A caller with this name and policy.
    pub fn new(name: impl Into<String>, policy: CallerPolicy) -> Self {
        Self {
            name: name.into(),
            policy: Arc::new(policy),
        }
    }
}
