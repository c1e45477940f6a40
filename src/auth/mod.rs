//! Who may call: the static tokens (from Secrets Manager or the environment), the secret's
//! format, and each caller's policy.

pub mod policy;
pub mod secret;
pub mod tokens;
