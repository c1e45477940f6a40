//! Where a request goes: Bedrock Runtime's InvokeModel or Bedrock's Anthropic Messages
//! endpoint (Mantle), with retries and the Lambda deadline.

pub mod deadline;
pub mod invoke;
pub mod mantle;
