//! The built-in table of Claude models on Bedrock: Anthropic IDs and aliases, Bedrock IDs,
//! the profiles each is offered in, and what `/v1/models` shows.

use super::profile::InferenceProfile;
use InferenceProfile::{Apac, Au, Eu, Global, Jp, Us};

/// One Claude model in the built-in table.
#[derive(Debug)]
pub struct ModelInfo {
    /// Anthropic's canonical ID (dated where Anthropic dates it).
    pub id: &'static str,
    /// Other names clients use for the same model.
    pub aliases: &'static [&'static str],
    /// Bedrock base model ID.
    pub bedrock_id: &'static str,
    /// Cross-region profiles the model is offered in.
    pub profiles: &'static [InferenceProfile],
    /// Human-readable name for `/v1/models`.
    pub display_name: &'static str,
    /// Release date (RFC 3339) for `/v1/models`.
    pub created_at: &'static str,
}

/// The profiles Claude Code 2.1.332 itself uses for its newer models: `us.`, `eu.` or `apac.`
/// by region, otherwise `global.` (so `jp` and `au` deployments fall back to `apac`).
const CLAUDE_CODE_PROFILES: &[InferenceProfile] = &[Global, Us, Eu, Apac];

/// Fable 5.1 and 5.2: "regional endpoints are currently available in us-east-1 only"
/// (Anthropic, Claude in Amazon Bedrock); everywhere else through the global profile.
const FABLE_US: &[InferenceProfile] = &[Global, Us];

/// Every Claude model on Bedrock, newest first (the order `/v1/models` lists them in).
pub static MODELS: &[ModelInfo] = &[
    ModelInfo {
        id: "claude-fable-5-2",
        aliases: &[],
        bedrock_id: "anthropic.claude-fable-5-2",
        profiles: FABLE_US,
        display_name: "Claude Fable 5.2",
        created_at: "2026-11-09T00:00:00Z",
    },
    ModelInfo {
        id: "claude-haiku-5-5",
        aliases: &[],
        bedrock_id: "anthropic.claude-haiku-5-5",
        profiles: CLAUDE_CODE_PROFILES,
        display_name: "Claude Haiku 5.5",
        created_at: "2026-10-07T00:00:00Z",
    },
    ModelInfo {
        id: "claude-sonnet-5-5",
        aliases: &[],
        bedrock_id: "anthropic.claude-sonnet-5-5",
        profiles: CLAUDE_CODE_PROFILES,
        display_name: "Claude Sonnet 5.5",
        created_at: "2026-09-28T00:00:00Z",
    },
    ModelInfo {
        id: "claude-opus-5-5",
        aliases: &[],
        bedrock_id: "anthropic.claude-opus-5-5",
        profiles: CLAUDE_CODE_PROFILES,
        display_name: "Claude Opus 5.5",
        created_at: "2026-09-22T00:00:00Z",
    },
    ModelInfo {
        id: "claude-fable-5-1",
        aliases: &[],
        bedrock_id: "anthropic.claude-fable-5-1",
        profiles: FABLE_US,
        display_name: "Claude Fable 5.1",
        created_at: "2026-09-01T00:00:00Z",
    },
    ModelInfo {
        id: "claude-opus-5",
        aliases: &[],
        bedrock_id: "anthropic.claude-opus-5",
        profiles: CLAUDE_CODE_PROFILES,
        display_name: "Claude Opus 5",
        created_at: "2026-07-24T00:00:00Z",
    },
    ModelInfo {
        id: "claude-sonnet-5",
        aliases: &[],
        bedrock_id: "anthropic.claude-sonnet-5",
        profiles: CLAUDE_CODE_PROFILES,
        display_name: "Claude Sonnet 5",
        created_at: "2026-06-30T00:00:00Z",
    },
    ModelInfo {
        id: "claude-fable-5",
        aliases: &[],
        bedrock_id: "anthropic.claude-fable-5",
        profiles: CLAUDE_CODE_PROFILES,
        display_name: "Claude Fable 5",
        created_at: "2026-06-09T00:00:00Z",
    },
    ModelInfo {
        id: "claude-opus-4-8",
        aliases: &[],
        bedrock_id: "anthropic.claude-opus-4-8",
        profiles: CLAUDE_CODE_PROFILES,
        display_name: "Claude Opus 4.8",
        created_at: "2026-05-28T00:00:00Z",
    },
    ModelInfo {
        id: "claude-opus-4-7",
        aliases: &[],
        bedrock_id: "anthropic.claude-opus-4-7",
        profiles: CLAUDE_CODE_PROFILES,
        display_name: "Claude Opus 4.7",
        created_at: "2026-04-16T00:00:00Z",
    },
    ModelInfo {
        id: "claude-sonnet-4-6",
        aliases: &[],
        bedrock_id: "anthropic.claude-sonnet-4-6",
        profiles: &[Global, Us, Eu, Jp],
        display_name: "Claude Sonnet 4.6",
        created_at: "2026-02-17T00:00:00Z",
    },
    ModelInfo {
        id: "claude-opus-4-6",
        aliases: &[],
        bedrock_id: "anthropic.claude-opus-4-6-v1",
        profiles: &[Global, Us, Eu, Jp, Apac],
        display_name: "Claude Opus 4.6",
        created_at: "2026-02-05T00:00:00Z",
    },
    ModelInfo {
        id: "claude-opus-4-5-20251101",
        aliases: &["claude-opus-4-5"],
        bedrock_id: "anthropic.claude-opus-4-5-20251101-v1:0",
        profiles: &[Global, Us, Eu],
        display_name: "Claude Opus 4.5",
        created_at: "2025-11-24T00:00:00Z",
    },
    ModelInfo {
        id: "claude-haiku-4-5-20251001",
        aliases: &["claude-haiku-4-5"],
        bedrock_id: "anthropic.claude-haiku-4-5-20251001-v1:0",
        profiles: &[Global, Us, Eu, Jp, Apac, Au],
        display_name: "Claude Haiku 4.5",
        created_at: "2025-10-15T00:00:00Z",
    },
    ModelInfo {
        id: "claude-sonnet-4-5-20250929",
        aliases: &["claude-sonnet-4-5"],
        bedrock_id: "anthropic.claude-sonnet-4-5-20250929-v1:0",
        profiles: &[Global, Us, Eu, Jp],
        display_name: "Claude Sonnet 4.5",
        created_at: "2025-09-29T00:00:00Z",
    },
    ModelInfo {
        id: "claude-opus-4-1-20250805",
        aliases: &["claude-opus-4-1"],
        bedrock_id: "anthropic.claude-opus-4-1-20250805-v1:0",
        profiles: &[Us],
        display_name: "Claude Opus 4.1",
        created_at: "2025-08-05T00:00:00Z",
    },
    ModelInfo {
        id: "claude-opus-4-20250514",
        aliases: &["claude-opus-4-0", "claude-opus-4"],
        bedrock_id: "anthropic.claude-opus-4-20250514-v1:0",
        profiles: &[Us],
        display_name: "Claude Opus 4",
        created_at: "2025-05-22T00:00:00Z",
    },
    ModelInfo {
        id: "claude-sonnet-4-20250514",
        aliases: &["claude-sonnet-4-0", "claude-sonnet-4"],
        bedrock_id: "anthropic.claude-sonnet-4-20250514-v1:0",
        profiles: &[Global, Us, Eu, Apac],
        display_name: "Claude Sonnet 4",
        created_at: "2025-05-22T00:00:00Z",
    },
    ModelInfo {
        id: "claude-3-7-sonnet-20250219",
        aliases: &["claude-3-7-sonnet-latest"],
        bedrock_id: "anthropic.claude-3-7-sonnet-20250219-v1:0",
        profiles: &[Us, Eu, Apac],
        display_name: "Claude Sonnet 3.7",
        created_at: "2025-02-24T00:00:00Z",
    },
    ModelInfo {
        id: "claude-3-5-haiku-20241022",
        aliases: &["claude-3-5-haiku-latest"],
        bedrock_id: "anthropic.claude-3-5-haiku-20241022-v1:0",
        profiles: &[Us],
        display_name: "Claude Haiku 3.5",
        created_at: "2024-10-22T00:00:00Z",
    },
    ModelInfo {
        id: "claude-3-5-sonnet-20241022",
        aliases: &["claude-3-5-sonnet-latest"],
        bedrock_id: "anthropic.claude-3-5-sonnet-20241022-v2:0",
        profiles: &[Us, Apac],
        display_name: "Claude Sonnet 3.5 (New)",
        created_at: "2024-10-22T00:00:00Z",
    },
    ModelInfo {
        id: "claude-3-haiku-20240307",
        aliases: &[],
        bedrock_id: "anthropic.claude-3-haiku-20240307-v1:0",
        profiles: &[Us, Eu, Apac],
        display_name: "Claude Haiku 3",
        created_at: "2024-03-07T00:00:00Z",
    },
    ModelInfo {
        id: "claude-3-opus-20240229",
        aliases: &["claude-3-opus-latest"],
        bedrock_id: "anthropic.claude-3-opus-20240229-v1:0",
        profiles: &[Us],
        display_name: "Claude Opus 3",
        created_at: "2024-02-29T00:00:00Z",
    },
    ModelInfo {
        id: "claude-3-sonnet-20240229",
        aliases: &[],
        bedrock_id: "anthropic.claude-3-sonnet-20240229-v1:0",
        profiles: &[Us, Eu, Apac],
        display_name: "Claude Sonnet 3",
        created_at: "2024-02-29T00:00:00Z",
    },
];
