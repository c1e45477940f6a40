//! Model names: Anthropic names and aliases to Bedrock model IDs, inference-profile choice,
//! `MODEL_MAP`, and the catalogue behind `GET /v1/models`.

use std::collections::BTreeMap;
use std::str::FromStr;

/// A cross-region inference profile, the prefix of a Bedrock inference-profile ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InferenceProfile {
    Us,
    Eu,
    Apac,
    Jp,
    Au,
    Global,
    /// Call the base model ID in the function's own region.
    None,
}

impl InferenceProfile {
    /// The ID prefix, e.g. `us`; `None` for base model IDs.
    pub fn prefix(self) -> Option<&'static str> {
        match self {
            Self::Us => Some("us"),
            Self::Eu => Some("eu"),
            Self::Apac => Some("apac"),
            Self::Jp => Some("jp"),
            Self::Au => Some("au"),
            Self::Global => Some("global"),
            Self::None => None,
        }
    }

    /// The geography a region's calls stay in, which is what most users want by default.
    /// Regions with no geographic profile of their own can still reach Claude globally.
    pub fn default_for_region(region: &str) -> Self {
        let table = RegionProfiles::get();
        let name = table.exact.get(region).or_else(|| {
            let mut prefixes = table.prefixes.iter();
            prefixes
                .find(|(prefix, _)| region.starts_with(prefix.as_str()))
                .map(|(_, name)| name)
        });
        // The table is checked by a test; an entry this build cannot read means global.
        name.unwrap_or(&table.otherwise).parse().unwrap_or(Self::Global)
    }

    /// Profiles tried, in order, when a model is not offered in `self`. Geographic fallbacks
    /// keep data in the same geography: jp and au fall back to apac, never to another continent.
    fn fallbacks(self) -> &'static [InferenceProfile] {
        match self {
            Self::Jp | Self::Au => &[Self::Apac],
            _ => &[],
        }
    }
}

/// `terraform/region-profiles.json`: the one table of default profiles per region, shared with
/// Terraform, which grants the regions the chosen profile routes to.
#[derive(serde::Deserialize)]
struct RegionProfiles {
    exact: BTreeMap<String, String>,
    prefixes: Vec<(String, String)>,
    otherwise: String,
}

impl RegionProfiles {
    /// Read once, when the configuration is (the only caller).
    fn get() -> Self {
        let table = include_str!("../../terraform/region-profiles.json");
        // A test reads the same table; should a build still hold one it cannot read, every
        // region defaults to global.
        serde_json::from_str(table).unwrap_or_else(|_| RegionProfiles {
            exact: BTreeMap::new(),
            prefixes: Vec::new(),
            otherwise: "global".into(),
        })
    }
}

impl FromStr for InferenceProfile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "us" => Self::Us,
            "eu" => Self::Eu,
            "apac" => Self::Apac,
            "jp" => Self::Jp,
            "au" => Self::Au,
            "global" => Self::Global,
            "none" | "" => Self::None,
            other => {
                return Err(format!(
                    "INFERENCE_PROFILE must be one of us, eu, apac, jp, au, global, none; got {other:?}"
                ))
            }
        })
    }
}

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
mod tests {
    use super::*;

    fn us() -> ModelResolver {
        ModelResolver::new(InferenceProfile::Us, ModelMap::default())
    }

    #[test]
    fn dated_and_alias_names_map_to_the_same_profile_id() {
        let r = us();
        let want = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
        assert_eq!(r.resolve("claude-sonnet-4-5").unwrap(), want);
        assert_eq!(r.resolve("claude-sonnet-4-5-20250929").unwrap(), want);
        assert_eq!(
            r.resolve("claude-haiku-4-5").unwrap(),
            "us.anthropic.claude-haiku-4-5-20251001-v1:0"
        );
        assert_eq!(
            r.resolve("claude-opus-4-1").unwrap(),
            "us.anthropic.claude-opus-4-1-20250805-v1:0"
        );
        assert_eq!(
            r.resolve("claude-sonnet-4").unwrap(),
            "us.anthropic.claude-sonnet-4-20250514-v1:0"
        );
        assert_eq!(
            r.resolve("claude-3-7-sonnet-20250219").unwrap(),
            "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
        );
        assert_eq!(r.resolve("claude-opus-4-6").unwrap(), "us.anthropic.claude-opus-4-6-v1");
        assert_eq!(
            r.resolve("claude-sonnet-4-6").unwrap(),
            "us.anthropic.claude-sonnet-4-6"
        );
        assert_eq!(
            r.resolve("claude-3-5-haiku-20241022").unwrap(),
            "us.anthropic.claude-3-5-haiku-20241022-v1:0"
        );
    }

    #[test]
    fn claude_codes_current_names_map_to_the_ids_it_uses_on_bedrock() {
        let r = us();
        for (name, id) in [
            ("claude-opus-5-5", "us.anthropic.claude-opus-5-5"),
            ("claude-sonnet-5-5", "us.anthropic.claude-sonnet-5-5"),
            ("claude-haiku-5-5", "us.anthropic.claude-haiku-5-5"),
            ("claude-opus-4-8", "us.anthropic.claude-opus-4-8"),
            ("claude-fable-5-1", "us.anthropic.claude-fable-5-1"),
        ] {
            assert_eq!(r.resolve(name).unwrap(), id);
        }
        // Claude Code uses apac. in Japan for these models.
        let jp = ModelResolver::new(InferenceProfile::Jp, ModelMap::default());
        assert_eq!(jp.resolve("claude-opus-5-5").unwrap(), "apac.anthropic.claude-opus-5-5");
    }

    #[test]
    fn fallbacks_are_listed_per_name_in_order() {
        let f = ModelFallbacks::parse(
            r#"{"claude-sonnet-4-5": ["global.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-haiku-4-5"]}"#,
        )
        .unwrap();
        assert_eq!(f.targets("claude-sonnet-4-5").len(), 2);
        assert!(f.targets("claude-opus-5-5").is_empty());
        assert!(ModelFallbacks::parse(r#"{"a": "b"}"#)
            .unwrap_err()
            .contains("MODEL_FALLBACKS"));
    }

    #[test]
    fn the_1m_suffix_is_split_off() {
        assert_eq!(split_context_suffix("claude-opus-4-6[1m]"), ("claude-opus-4-6", true));
        assert_eq!(split_context_suffix(" claude-opus-5-5[1M] "), ("claude-opus-5-5", true));
        assert_eq!(split_context_suffix("claude-opus-5-5"), ("claude-opus-5-5", false));
        assert_eq!(split_context_suffix("[1m]"), ("", true));
        assert_eq!(split_context_suffix("é[1m"), ("é[1m", false));
    }

    #[test]
    fn models_newer_than_the_table_use_bedrock_naming() {
        let r = us();
        assert_eq!(r.resolve("claude-opus-4-8").unwrap(), "us.anthropic.claude-opus-4-8");
        assert_eq!(r.resolve("claude-sonnet-5").unwrap(), "us.anthropic.claude-sonnet-5");
        let none = ModelResolver::new(InferenceProfile::None, ModelMap::default());
        assert_eq!(none.resolve("claude-sonnet-5").unwrap(), "anthropic.claude-sonnet-5");
        assert_eq!(
            none.resolve("claude-foo-6-20270101").unwrap(),
            "anthropic.claude-foo-6-20270101-v1:0"
        );
    }

    #[test]
    fn bedrock_ids_and_arns_pass_through() {
        let r = us();
        for id in [
            "anthropic.claude-3-haiku-20240307-v1:0",
            "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "global.anthropic.claude-opus-4-7",
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123",
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
        ] {
            assert_eq!(r.resolve(id).unwrap(), id);
        }
    }

    #[test]
    fn non_claude_names_are_unknown() {
        assert_eq!(us().resolve("gpt-4o"), Err(UnknownModel("gpt-4o".into())));
        assert!(us().resolve("claude-").is_err());
        assert!(us().resolve("").is_err());
    }

    #[test]
    fn model_map_adds_and_overrides_names() {
        let map = ModelMap::parse(
            r#"{"gpt-4o":"claude-haiku-4-5","claude-sonnet-4-5":"arn:aws:bedrock:us-east-1:1:application-inference-profile/x"}"#,
        )
        .unwrap();
        let r = ModelResolver::new(InferenceProfile::Eu, map);
        assert_eq!(
            r.resolve("gpt-4o").unwrap(),
            "eu.anthropic.claude-haiku-4-5-20251001-v1:0"
        );
        assert_eq!(
            r.resolve("claude-sonnet-4-5").unwrap(),
            "arn:aws:bedrock:us-east-1:1:application-inference-profile/x"
        );
    }

    #[test]
    fn a_model_without_the_profile_falls_back_within_its_geography() {
        let jp = ModelResolver::new(InferenceProfile::Jp, ModelMap::default());
        // Sonnet 3.7 has no jp profile but has apac, which covers Japan.
        assert_eq!(
            jp.resolve("claude-3-7-sonnet-20250219").unwrap(),
            "apac.anthropic.claude-3-7-sonnet-20250219-v1:0"
        );
        // Opus 4.1 is US-only: an EU deployment calls the base ID in its own region.
        let eu = ModelResolver::new(InferenceProfile::Eu, ModelMap::default());
        assert_eq!(
            eu.resolve("claude-opus-4-1").unwrap(),
            "anthropic.claude-opus-4-1-20250805-v1:0"
        );
    }

    #[test]
    fn the_default_profile_follows_the_region() {
        assert_eq!(InferenceProfile::default_for_region("us-west-2"), Us);
        assert_eq!(InferenceProfile::default_for_region("eu-central-1"), Eu);
        assert_eq!(InferenceProfile::default_for_region("ap-northeast-1"), Jp);
        assert_eq!(InferenceProfile::default_for_region("ap-southeast-2"), Au);
        assert_eq!(InferenceProfile::default_for_region("ap-south-1"), Apac);
        assert_eq!(InferenceProfile::default_for_region("sa-east-1"), Global);
        assert_eq!(
            InferenceProfile::default_for_region("us-gov-west-1"),
            InferenceProfile::None
        );
        assert!("mars".parse::<InferenceProfile>().is_err());
    }

    #[test]
    fn the_region_table_shared_with_terraform_names_only_real_profiles() {
        let table: RegionProfiles = serde_json::from_str(include_str!("../../terraform/region-profiles.json"))
            .expect("the table is JSON of this shape");
        assert!(!table.exact.is_empty() && !table.prefixes.is_empty());
        let names = table.exact.values().chain(table.prefixes.iter().map(|(_, name)| name));
        for name in names.chain([&table.otherwise]) {
            assert!(name.parse::<InferenceProfile>().is_ok(), "{name:?} is not a profile");
            assert_ne!(name, "", "an empty name would mean none by accident");
        }
    }

    #[test]
    fn base_model_id_strips_the_profile() {
        assert_eq!(
            base_model_id("us.anthropic.claude-sonnet-5"),
            "anthropic.claude-sonnet-5"
        );
        assert_eq!(base_model_id("anthropic.claude-sonnet-5"), "anthropic.claude-sonnet-5");
        assert_eq!(base_model_id("arn:aws:bedrock:x"), "arn:aws:bedrock:x");
    }

    #[test]
    fn the_catalog_lists_the_table_then_mapped_names() {
        let map = ModelMap::parse(r#"{"my-model":"claude-haiku-4-5","claude-sonnet-4-5":"x"}"#).unwrap();
        let list = catalog(&map);
        assert_eq!(list.len(), MODELS.len() + 1);
        assert_eq!(list[0].id, "claude-fable-5-2");
        let last = list.last().unwrap();
        assert_eq!(
            (last.id.as_str(), last.created_at.as_str()),
            ("my-model", "2025-10-15T00:00:00Z")
        );
        let r = ModelResolver::new(Us, map);
        assert_eq!(
            catalog_entry("claude-sonnet-4-5", &r).unwrap().id,
            "claude-sonnet-4-5-20250929"
        );
        assert_eq!(catalog_entry("claude-opus-4-8", &r).unwrap().id, "claude-opus-4-8");
        assert!(catalog_entry("gpt-4o", &r).is_none());
    }

    #[test]
    fn every_table_name_is_unique() {
        let mut names: Vec<&str> = MODELS
            .iter()
            .flat_map(|m| std::iter::once(m.id).chain(m.aliases.iter().copied()))
            .collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
