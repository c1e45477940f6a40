//! The Anthropic request as Bedrock takes it, and Bedrock's answer as Anthropic's: the
//! request rewrite, the rules table it follows, healing from Bedrock's refusals, and model
//! names.

pub(crate) mod answer;
pub(crate) mod catalogue;
pub(crate) mod heal;
pub(crate) mod models;
pub(crate) mod profile;
pub mod request;
pub mod rules;
