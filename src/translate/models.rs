//! Model names: Anthropic names and aliases to Bedrock model IDs, inference-profile choice,
//! `MODEL_MAP`, and the catalogue behind `GET /v1/models`.

use std::collections::BTreeMap;

pub use super::catalogue::{ModelInfo, MODELS};
pub use super::profile::InferenceProfile;

/// The beta flag that asks Bedrock for the 1M-token context window.
pub const CONTEXT_1M_BETA: &str = "context-1m-2025-08-07";

/// Splits Claude Code's `[1m]` suffix (`claude-opus-4-6[1m]`) off a model name: the name to
/// map, and whether the caller asked for the 1M-token context window.
pub fn split_context_suffix(name: &str) -> (&str, bool) {
    let name = name.trim();
    match name.len().checked_sub(4).and_then(|at| name.get(at..).map(|s| (at, s))) {
        Some((at, suffix)) if suffix.eq_ignore_ascii_case("[1m]") => (name[..at].trim_end(), true),
        _ => (name, false),
    }
}

/// Looks a name up in the built-in table, by canonical ID or alias.
pub fn find(name: &str) -> Option<&'static ModelInfo> {
    MODELS.iter().find(|m| m.id == name || m.aliases.contains(&name))
}

/// `MODEL_MAP`: client model names to Bedrock IDs or to other names in the table.
#[derive(Debug, Clone, Default)]
pub struct ModelMap(BTreeMap<String, String>);

impl ModelMap {
    /// Parses the `MODEL_MAP` JSON object (`{"name": "bedrock-id-or-name", ...}`).
    pub fn parse(json: &str) -> Result<Self, String> {
        let map: BTreeMap<String, String> = serde_json::from_str(json).map_err(|e| {
            format!(
                "MODEL_MAP must be a JSON object of strings, e.g. {{\"my-model\":\"us.anthropic.claude-sonnet-4-5-20250929-v1:0\"}} ({e})"
            )
        })?;
        Ok(Self(map))
    }

    /// The mapped names, for `/v1/models`.
    pub fn names(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// `MODEL_FALLBACKS`: per model name (as callers send it), the ordered further targets to try
/// when Bedrock throttles or is unavailable after the retries. Targets are Bedrock IDs, ARNs or
/// names from the table.
#[derive(Debug, Clone, Default)]
pub struct ModelFallbacks(BTreeMap<String, Vec<String>>);

impl ModelFallbacks {
    /// Parses the JSON object, e.g. `{"claude-sonnet-4-5": ["global.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-haiku-4-5"]}`.
    pub fn parse(json: &str) -> Result<Self, String> {
        let map: BTreeMap<String, Vec<String>> = serde_json::from_str(json).map_err(|e| {
            format!(
                "MODEL_FALLBACKS must be a JSON object of string lists, e.g. {{\"claude-sonnet-4-5\":[\"global.anthropic.claude-sonnet-4-5-20250929-v1:0\"]}} ({e})"
            )
        })?;
        Ok(Self(map))
    }

    /// The further targets for `name`, in order (none when it has no entry).
    pub fn targets(&self, name: &str) -> &[String] {
        self.0.get(name).map_or(&[], Vec::as_slice)
    }
}

/// Why a model name could not be mapped; becomes a 404 `not_found_error`.
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownModel(pub String);

/// Resolves client model names to the Bedrock ID to call.
#[derive(Debug, Clone)]
pub struct ModelResolver {
    profile: InferenceProfile,
    map: ModelMap,
}

const PROFILE_PREFIXES: &[&str] = &["global.", "us.", "eu.", "apac.", "jp.", "au.", "us-gov.", "ca."];

impl ModelResolver {
    /// A resolver for one profile and `MODEL_MAP`.
    pub fn new(profile: InferenceProfile, map: ModelMap) -> Self {
        Self { profile, map }
    }

    /// The `MODEL_MAP` this resolver uses.
    pub fn map(&self) -> &ModelMap {
        &self.map
    }

    /// The Bedrock model ID for a client's model name.
    pub fn resolve(&self, name: &str) -> Result<String, UnknownModel> {
        let name = name.trim();
        if let Some(target) = self.map.get(name) {
            // A mapping may name a Bedrock ID directly or another (table) name.
            return match self.resolve_unmapped(target) {
                Ok(id) => Ok(id),
                Err(_) => Ok(target.to_string()),
            };
        }
        self.resolve_unmapped(name)
    }

    fn resolve_unmapped(&self, name: &str) -> Result<String, UnknownModel> {
        if is_bedrock_id(name) {
            return Ok(name.to_string());
        }
        if let Some(model) = find(name) {
            return Ok(self.with_profile(model.bedrock_id, model.profiles));
        }
        if let Some(base) = future_claude_base_id(name) {
            // Models newer than the table are offered through inference profiles only; assume
            // the configured one exists, as it has for every model since Sonnet 4.5.
            return Ok(match self.profile.prefix() {
                Some(p) => format!("{p}.{base}"),
                None => base,
            });
        }
        Err(UnknownModel(name.to_string()))
    }

    fn with_profile(&self, base: &str, offered: &[InferenceProfile]) -> String {
        if self.profile == InferenceProfile::None {
            return base.to_string();
        }
        std::iter::once(self.profile)
            .chain(self.profile.fallbacks().iter().copied())
            .find(|p| offered.contains(p))
            .and_then(InferenceProfile::prefix)
            .map(|p| format!("{p}.{base}"))
            // Not offered in this geography: the base ID in the function's own region.
            .unwrap_or_else(|| base.to_string())
    }
}

/// True for IDs Bedrock understands as they are: base model IDs, inference-profile IDs and ARNs.
pub fn is_bedrock_id(name: &str) -> bool {
    if name.starts_with("arn:") {
        return true;
    }
    let rest = PROFILE_PREFIXES
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name);
    rest.starts_with("anthropic.")
}

/// The base model ID behind an inference-profile ID (`us.anthropic.x` → `anthropic.x`).
/// Other IDs come back unchanged.
pub fn base_model_id(id: &str) -> &str {
    PROFILE_PREFIXES
        .iter()
        .find_map(|p| id.strip_prefix(p))
        .filter(|rest| rest.starts_with("anthropic."))
        .unwrap_or(id)
}

/// Maps a Claude name not in the table using Bedrock's naming: undated names
/// (`claude-opus-4-8`) keep their name, dated ones (`claude-x-20270101`) gain `-v1:0`.
fn future_claude_base_id(name: &str) -> Option<String> {
    let rest = name.strip_prefix("claude-")?;
    let valid = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && rest.chars().any(|c| c.is_ascii_digit())
        && !rest.ends_with('-');
    if !valid {
        return None;
    }
    let dated = rest
        .rsplit('-')
        .next()
        .is_some_and(|last| last.len() == 8 && last.starts_with("20") && last.chars().all(|c| c.is_ascii_digit()));
    Some(if dated {
        format!("anthropic.{name}-v1:0")
    } else {
        format!("anthropic.{name}")
    })
}

/// One item of `GET /v1/models`, in Anthropic's shape.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelEntry {
    #[serde(rename = "type")]
    kind: &'static str,
    /// The model's ID as a caller sends it.
    pub id: String,
    /// Human-readable name.
    pub display_name: String,
    /// Release date, RFC 3339.
    pub created_at: String,
}

impl ModelEntry {
    fn new(id: &str, display_name: &str, created_at: &str) -> Self {
        Self {
            kind: "model",
            id: id.into(),
            display_name: display_name.into(),
            created_at: created_at.into(),
        }
    }

    fn from_info(m: &ModelInfo) -> Self {
        Self::new(m.id, m.display_name, m.created_at)
    }
}

// Names with no release date of their own (MODEL_MAP entries, models newer than the table).
const UNKNOWN_DATE: &str = "1970-01-01T00:00:00Z";

/// The catalogue: the built-in table, newest first, then `MODEL_MAP` names it does not hold.
pub fn catalog(map: &ModelMap) -> Vec<ModelEntry> {
    let mut entries: Vec<ModelEntry> = MODELS.iter().map(ModelEntry::from_info).collect();
    for (name, target) in map.names() {
        if find(name).is_none() {
            let created = find(target).map_or(UNKNOWN_DATE, |m| m.created_at);
            entries.push(ModelEntry::new(name, name, created));
        }
    }
    entries
}

/// One model by ID or alias. Names newer than the table that still resolve get an entry too,
/// so a client that checks a model before using it is not refused one that would work.
pub fn catalog_entry(id: &str, resolver: &ModelResolver) -> Option<ModelEntry> {
    let (id, _) = split_context_suffix(id);
    if let Some(m) = find(id) {
        return Some(ModelEntry::from_info(m));
    }
    if let Some(target) = resolver.map.get(id) {
        return Some(ModelEntry::new(
            id,
            id,
            find(target).map_or(UNKNOWN_DATE, |m| m.created_at),
        ));
    }
    future_claude_base_id(id).map(|_| ModelEntry::new(id, id, UNKNOWN_DATE))
}

#[cfg(test)]
mod tests;
