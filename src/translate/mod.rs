//! The Anthropic request as Bedrock takes it, and Bedrock's answer as Anthropic's: the
//! request rewrite, the rules table it follows, healing from Bedrock's refusals, and model
//! names.

pub mod answer;
pub mod catalogue;
pub mod heal;
pub mod models;
pub mod profile;
pub mod request;
pub mod rules;
