//! The rules table: what each upstream gets of every beta flag and every field a caller sends.
//!
//! Data, not code, so that it can be reviewed line by line against its sources. The ground
//! truth is what Anthropic's own client sends: Claude Code's recorded requests under
//! `tests/data/claude-code/` (`Source::Fixture`) and what its code does for Bedrock
//! (`Source::ClaudeCode`). AWS's documentation and peers' bug reports fill in the rest.
//! `translate` applies the table; `heal` covers what the table does not know yet.
//!
//! Refresh it when Claude Code changes: `scripts/capture-claude-code.sh VERSION` records new
//! pairs, and `tests/fidelity.rs` fails where the table and the client disagree.

use crate::upstream::Api;

/// Where a rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Claude Code 2.1.332's own requests, recorded at the real AWS hosts (`tests/data/claude-code/`).
    Fixture,
    /// Claude Code 2.1.332's code: what it moves, copies, renames or strips for Bedrock and Mantle.
    ClaudeCode,
    /// AWS's Bedrock documentation (the page is named).
    Aws(&'static str),
    /// A public bug report (repository and number).
    Issue(&'static str),
}

impl Source {
    /// True when Anthropic's own client sends this to Bedrock: the set a request falls back
    /// to when Bedrock refuses a beta flag.
    pub fn verified(self) -> bool {
        matches!(self, Self::Fixture | Self::ClaudeCode)
    }
}

/// Where one `anthropic-beta` flag goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BetaPlace {
    /// Moved into the body's `anthropic_beta` (InvokeModel only).
    Body,
    /// Copied: in the `anthropic-beta` HTTP header and in the body.
    Both,
    /// In the `anthropic-beta` HTTP header only.
    Header,
    /// Never sent.
    Drop,
    /// Sent under another name, which the table then places.
    Rename(&'static str),
}

/// One beta flag. A `flag` ending in `*` matches every flag with that prefix.
#[derive(Debug)]
pub struct BetaRule {
    /// The flag as callers send it.
    pub flag: &'static str,
    /// On InvokeModel.
    pub invoke: BetaPlace,
    /// On Mantle, where every flag travels in the header.
    pub mantle: BetaPlace,
    /// Why.
    pub source: Source,
}

use BetaPlace::{Body, Both, Drop, Header, Rename};
use Source::{Aws, ClaudeCode, Fixture, Issue};

const AWS_BETAS: Source = Aws("Bedrock user guide, Anthropic Claude Messages API: supported beta headers");

/// Every beta flag the proxy knows. Flags not listed are dropped: an unknown flag fails the
/// whole request on Bedrock ("invalid beta flag"); `EXTRA_BETA_FLAGS` adds flags to the body.
#[rustfmt::skip]
pub static BETAS: &[BetaRule] = &[
    // Claude Code moves these into the body.
    BetaRule { flag: "interleaved-thinking-2025-05-14", invoke: Body, mantle: Header, source: Fixture },
    BetaRule { flag: "context-1m-2025-08-07", invoke: Body, mantle: Header, source: ClaudeCode },
    BetaRule { flag: "tool-search-tool-2025-10-19", invoke: Body, mantle: Header, source: Fixture },
    // Bedrock's name for the first-party tool-search beta.
    BetaRule { flag: "advanced-tool-use-2025-11-20", invoke: Rename("tool-search-tool-2025-10-19"), mantle: Rename("tool-search-tool-2025-10-19"), source: Fixture },
    // Claude Code copies these into the body and keeps them in the header.
    BetaRule { flag: "thinking-token-count-2026-05-13", invoke: Both, mantle: Header, source: Fixture },
    BetaRule { flag: "thinking-binding-controls-2026-08-01", invoke: Both, mantle: Header, source: Fixture },
    BetaRule { flag: "thinking-display-updates-2026-08-18", invoke: Both, mantle: Header, source: ClaudeCode },
    BetaRule { flag: "dangerous-tool-use-2026-09-03", invoke: Both, mantle: Header, source: ClaudeCode },
    BetaRule { flag: "fallback-credit-2026-06-01", invoke: Both, mantle: Header, source: ClaudeCode },
    BetaRule { flag: "afk-mode-2026-01-31", invoke: Both, mantle: Header, source: ClaudeCode },
    // Header only: effort travels there, never in the body.
    BetaRule { flag: "claude-code-20250219", invoke: Header, mantle: Header, source: Fixture },
    BetaRule { flag: "effort-2025-11-24", invoke: Header, mantle: Header, source: Fixture },
    BetaRule { flag: "structured-outputs-2025-12-15", invoke: Header, mantle: Header, source: ClaudeCode },
    BetaRule { flag: "web-search-2025-03-05", invoke: Header, mantle: Header, source: ClaudeCode },
    // Context management exists on Mantle only; InvokeModel never gets it.
    BetaRule { flag: "context-management-2025-06-27", invoke: Drop, mantle: Header, source: Fixture },
    // Never sent to Bedrock or Mantle.
    BetaRule { flag: "per-turn-control-2026-07-01", invoke: Drop, mantle: Drop, source: Fixture },
    BetaRule { flag: "mid-conversation-tool-changes-2026-07-01", invoke: Drop, mantle: Drop, source: Fixture },
    // First-party only.
    BetaRule { flag: "prompt-caching-scope-*", invoke: Drop, mantle: Drop, source: ClaudeCode },
    BetaRule { flag: "tool-provenance-2026-10-26", invoke: Drop, mantle: Drop, source: ClaudeCode },
    BetaRule { flag: "cache-diagnosis-2026-04-07", invoke: Drop, mantle: Drop, source: ClaudeCode },
    BetaRule { flag: "oauth-*", invoke: Drop, mantle: Drop, source: Issue("claude-code#20031") },
    // Documented by AWS for Claude on Bedrock, not sent by Claude Code.
    BetaRule { flag: "token-efficient-tools-2025-02-19", invoke: Body, mantle: Header, source: AWS_BETAS },
    BetaRule { flag: "output-128k-2025-02-19", invoke: Body, mantle: Header, source: AWS_BETAS },
    BetaRule { flag: "computer-use-2024-10-22", invoke: Body, mantle: Header, source: AWS_BETAS },
    BetaRule { flag: "computer-use-2025-01-24", invoke: Body, mantle: Header, source: AWS_BETAS },
    BetaRule { flag: "dev-full-thinking-2025-05-14", invoke: Body, mantle: Header, source: AWS_BETAS },
    BetaRule { flag: "tool-examples-2025-10-29", invoke: Body, mantle: Header, source: AWS_BETAS },
    BetaRule { flag: "fine-grained-tool-streaming-2025-05-14", invoke: Body, mantle: Header, source: AWS_BETAS },
];

/// The rule for a flag, if the table has one.
pub fn beta_rule(flag: &str) -> Option<&'static BetaRule> {
    BETAS.iter().find(|rule| match rule.flag.strip_suffix('*') {
        Some(prefix) => flag.starts_with(prefix),
        None => rule.flag == flag,
    })
}

/// Where in a request a field sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// A top-level key of the body.
    Top,
    /// A key of an entry of `messages`.
    Message,
    /// A key of a custom tool (one with no `type`, or `type: "custom"`). Typed server tools
    /// pass as they are.
    CustomTool,
    /// A key of any `cache_control` object (system, tools, content blocks).
    CacheControl,
    /// A key of `metadata`.
    Metadata,
}

/// Whether a field is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Always.
    Yes,
    /// Never.
    No,
    /// Only for these models (names as in [`model_family`]; a trailing `*` matches a prefix).
    ForModels(&'static [&'static str]),
}

/// One field.
#[derive(Debug)]
pub struct FieldRule {
    /// Where it sits.
    pub level: Level,
    /// Its key.
    pub name: &'static str,
    /// On InvokeModel.
    pub invoke: Keep,
    /// On Mantle.
    pub mantle: Keep,
    /// Why.
    pub source: Source,
}

/// The models Claude Code sends `eager_input_streaming` for on Bedrock.
#[rustfmt::skip]
const EAGER_INPUT_MODELS: &[&str] = &[
    "sonnet-4-6",
    "sonnet-5",
    "sonnet-5-5",
    "opus-4-7",
    "opus-4-8",
    "opus-5",
    "opus-5-5",
    "fable-5*",
];

const AWS_PARAMS: Source = Aws("Bedrock user guide, Anthropic Claude Messages API: request parameters");
const MANTLE_UNSUPPORTED: Source = Aws("Claude on Amazon Bedrock: features not supported on the Messages API endpoint");

use Keep::{ForModels, No, Yes};
use Level::{CacheControl, CustomTool, Message, Metadata, Top};

/// Every field the proxy has a rule for. What a level does with keys not listed is
/// [`unknown_field`].
#[rustfmt::skip]
pub static FIELDS: &[FieldRule] = &[
    // Top level. `anthropic_version` and `anthropic_beta` are written by the proxy itself.
    FieldRule { level: Top, name: "max_tokens", invoke: Yes, mantle: Yes, source: Fixture },
    FieldRule { level: Top, name: "messages", invoke: Yes, mantle: Yes, source: Fixture },
    FieldRule { level: Top, name: "system", invoke: Yes, mantle: Yes, source: Fixture },
    FieldRule { level: Top, name: "tools", invoke: Yes, mantle: Yes, source: Fixture },
    FieldRule { level: Top, name: "thinking", invoke: Yes, mantle: Yes, source: Fixture },
    FieldRule { level: Top, name: "metadata", invoke: Yes, mantle: Yes, source: Fixture },
    FieldRule { level: Top, name: "output_config", invoke: Yes, mantle: Yes, source: Fixture },
    FieldRule { level: Top, name: "stop_sequences", invoke: Yes, mantle: Yes, source: AWS_PARAMS },
    FieldRule { level: Top, name: "temperature", invoke: Yes, mantle: Yes, source: AWS_PARAMS },
    FieldRule { level: Top, name: "top_p", invoke: Yes, mantle: Yes, source: AWS_PARAMS },
    FieldRule { level: Top, name: "top_k", invoke: Yes, mantle: Yes, source: AWS_PARAMS },
    FieldRule { level: Top, name: "tool_choice", invoke: Yes, mantle: Yes, source: AWS_PARAMS },
    // InvokeModel takes the model from the URL and streaming from the operation.
    FieldRule { level: Top, name: "model", invoke: No, mantle: Yes, source: AWS_PARAMS },
    FieldRule { level: Top, name: "stream", invoke: No, mantle: Yes, source: AWS_PARAMS },
    FieldRule { level: Top, name: "context_management", invoke: No, mantle: Yes, source: Fixture },
    FieldRule { level: Top, name: "diagnostics", invoke: No, mantle: No, source: ClaudeCode },
    FieldRule { level: Top, name: "mcp_servers", invoke: No, mantle: No, source: Issue("LiteLLM#26148") },
    FieldRule { level: Top, name: "container", invoke: No, mantle: No, source: MANTLE_UNSUPPORTED },
    FieldRule { level: Top, name: "output_format", invoke: No, mantle: No, source: MANTLE_UNSUPPORTED },
    FieldRule { level: Top, name: "service_tier", invoke: No, mantle: No, source: Issue("LiteLLM#22847") },
    FieldRule { level: Top, name: "speed", invoke: No, mantle: No, source: Issue("LiteLLM#22847") },
    // Messages carry only role and content; Claude Code strips its per-turn effort.
    FieldRule { level: Message, name: "role", invoke: Yes, mantle: Yes, source: Fixture },
    FieldRule { level: Message, name: "content", invoke: Yes, mantle: Yes, source: Fixture },
    FieldRule { level: Message, name: "output_config", invoke: No, mantle: No, source: Fixture },
    // Custom tools.
    FieldRule { level: CustomTool, name: "name", invoke: Yes, mantle: Yes, source: Fixture },
    FieldRule { level: CustomTool, name: "description", invoke: Yes, mantle: Yes, source: Fixture },
    FieldRule { level: CustomTool, name: "input_schema", invoke: Yes, mantle: Yes, source: Fixture },
    FieldRule { level: CustomTool, name: "type", invoke: Yes, mantle: Yes, source: AWS_PARAMS },
    FieldRule { level: CustomTool, name: "cache_control", invoke: Yes, mantle: Yes, source: AWS_PARAMS },
    FieldRule { level: CustomTool, name: "defer_loading", invoke: Yes, mantle: Yes, source: Fixture },
    FieldRule { level: CustomTool, name: "eager_input_streaming", invoke: ForModels(EAGER_INPUT_MODELS), mantle: No, source: ClaudeCode },
    FieldRule { level: CustomTool, name: "input_examples", invoke: Yes, mantle: Yes, source: AWS_BETAS },
    FieldRule { level: CustomTool, name: "strict", invoke: Yes, mantle: Yes, source: ClaudeCode },
    // cache_control: the scope is first-party only.
    FieldRule { level: CacheControl, name: "type", invoke: Yes, mantle: Yes, source: Fixture },
    FieldRule { level: CacheControl, name: "ttl", invoke: Yes, mantle: Yes, source: AWS_PARAMS },
    FieldRule { level: CacheControl, name: "scope", invoke: No, mantle: No, source: ClaudeCode },
    // metadata.user_id is a JSON string in Claude Code's requests, and passes as it is.
    FieldRule { level: Metadata, name: "user_id", invoke: Yes, mantle: Yes, source: Fixture },
];

/// What happens to a key the table does not list. InvokeModel's schema refuses unknown keys,
/// so they are dropped there; Mantle is Anthropic's own API and takes the first-party shape,
/// so they pass (and `heal` removes one if Mantle refuses it).
pub fn unknown_field(upstream: Api) -> Keep {
    match upstream {
        Api::Invoke => No,
        Api::Mantle => Yes,
    }
}

/// Whether a field at `level` named `name` is sent to `upstream` for `model_id`.
pub fn keeps(level: Level, name: &str, upstream: Api, model_id: &str) -> bool {
    let keep = FIELDS
        .iter()
        .find(|rule| rule.level == level && rule.name == name)
        .map_or_else(
            || unknown_field(upstream),
            |rule| match upstream {
                Api::Invoke => rule.invoke,
                Api::Mantle => rule.mantle,
            },
        );
    match keep {
        Yes => true,
        No => false,
        ForModels(models) => model_family(model_id).is_some_and(|family| matches_any(models, family)),
    }
}

fn matches_any(patterns: &[&str], name: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => *p == name,
    })
}

/// The model's family name from a Bedrock ID: `us.anthropic.claude-opus-4-6-v1` → `opus-4-6`,
/// `anthropic.claude-haiku-4-5-20251001-v1:0` → `haiku-4-5`. `None` for IDs that do not name a
/// model (application inference-profile ARNs): model-gated fields are then left out.
pub fn model_family(model_id: &str) -> Option<&str> {
    let id = model_id.rsplit('/').next().unwrap_or(model_id);
    let start = id.find("anthropic.claude-")? + "anthropic.claude-".len();
    let mut name = &id[start..];
    if let Some((stem, _)) = name.split_once(":") {
        name = stem;
    }
    for suffix in ["-v1", "-v2"] {
        name = name.strip_suffix(suffix).unwrap_or(name);
    }
    let dated = name
        .rsplit_once('-')
        .filter(|(_, last)| last.len() == 8 && last.bytes().all(|b| b.is_ascii_digit()));
    Some(dated.map_or(name, |(stem, _)| stem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_and_field_has_one_rule() {
        let mut flags: Vec<&str> = BETAS.iter().map(|b| b.flag).collect();
        flags.sort_unstable();
        let n = flags.len();
        flags.dedup();
        assert_eq!(flags.len(), n, "a beta flag is listed twice");
        let mut fields: Vec<(String, &str)> = FIELDS.iter().map(|f| (format!("{:?}", f.level), f.name)).collect();
        fields.sort_unstable();
        let n = fields.len();
        fields.dedup();
        assert_eq!(fields.len(), n, "a field is listed twice");
    }

    #[test]
    fn renames_land_on_a_flag_the_table_places() {
        for rule in BETAS {
            for place in [rule.invoke, rule.mantle] {
                if let Rename(to) = place {
                    let target = beta_rule(to).expect("rename target in the table");
                    assert!(!matches!(target.invoke, Rename(_) | Drop), "{}", rule.flag);
                }
            }
        }
    }

    #[test]
    fn prefix_rules_match_dated_variants() {
        assert_eq!(beta_rule("prompt-caching-scope-2026-01-05").unwrap().invoke, Drop);
        assert!(beta_rule("brand-new-2027-01-01").is_none());
    }

    #[test]
    fn model_families_come_from_every_id_shape() {
        assert_eq!(model_family("us.anthropic.claude-opus-5-5"), Some("opus-5-5"));
        assert_eq!(model_family("anthropic.claude-opus-4-6-v1"), Some("opus-4-6"));
        assert_eq!(
            model_family("global.anthropic.claude-haiku-4-5-20251001-v1:0"),
            Some("haiku-4-5")
        );
        assert_eq!(
            model_family("anthropic.claude-3-5-sonnet-20241022-v2:0"),
            Some("3-5-sonnet")
        );
        assert_eq!(
            model_family("arn:aws:bedrock:us-east-1:1:inference-profile/eu.anthropic.claude-fable-5-1"),
            Some("fable-5-1")
        );
        assert_eq!(
            model_family("arn:aws:bedrock:us-east-1:1:application-inference-profile/abc"),
            None
        );
    }

    #[test]
    fn eager_input_streaming_is_kept_only_for_the_models_claude_code_sends_it_for() {
        let eager = |id| keeps(CustomTool, "eager_input_streaming", Api::Invoke, id);
        assert!(eager("us.anthropic.claude-sonnet-5-5"));
        assert!(eager("us.anthropic.claude-fable-5-2"));
        assert!(!eager("us.anthropic.claude-haiku-4-5-20251001-v1:0"));
        assert!(!eager("us.anthropic.claude-opus-4-6-v1"));
        assert!(!keeps(
            CustomTool,
            "eager_input_streaming",
            Api::Mantle,
            "anthropic.claude-sonnet-5-5"
        ));
    }

    #[test]
    fn unknown_keys_are_dropped_on_invoke_and_kept_on_mantle() {
        assert!(!keeps(Top, "brand_new", Api::Invoke, "x"));
        assert!(keeps(Top, "brand_new", Api::Mantle, "x"));
        assert!(!keeps(Message, "output_config", Api::Mantle, "x"));
        assert!(keeps(Top, "context_management", Api::Mantle, "x"));
        assert!(!keeps(Top, "context_management", Api::Invoke, "x"));
    }
}
