//! Cross-region inference profiles: the ID prefixes, and the default profile per region
//! (from `terraform/region-profiles.json`, shared with Terraform).

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
    pub(crate) fn fallbacks(self) -> &'static [InferenceProfile] {
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

#[cfg(test)]
mod tests;
