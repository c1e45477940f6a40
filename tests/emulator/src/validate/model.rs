//! Model identifiers as Bedrock resolves them: base ids, profile prefixes, ARNs, and what
//! each model family may do (eager tool streaming, Runtime token counting).

use super::*;

/// A model identifier Bedrock would resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    /// The identifier as it arrived in the URI, percent-decoded.
    pub id: String,
    /// The cross-region profile prefix (`us`, `global`, ...) when the id has one.
    pub profile: Option<String>,
    /// The id without profile prefix or ARN, reported as the answer's `model`.
    pub model: String,
}

/// Checks a model identifier the way Bedrock resolves it: `anthropic.claude-*`,
/// `<profile>.anthropic.claude-*`, or a Bedrock ARN of a foundation model or an
/// (application) inference profile.
pub fn model_id(id: &str) -> Result<ModelRef, BedrockError> {
    // Tests use this marker to see the proxy hand Bedrock's message through.
    if id.contains("does-not-exist") {
        return Err(BedrockError::invalid_model());
    }
    if let Some(rest) = id.strip_prefix("arn:") {
        return arn_model(id, rest);
    }
    if id.starts_with("anthropic.claude-") {
        return Ok(ModelRef {
            id: id.to_owned(),
            profile: None,
            model: id.to_owned(),
        });
    }
    match id.split_once('.') {
        Some((prefix, base)) if PROFILE_PREFIXES.contains(&prefix) && base.starts_with("anthropic.claude-") => {
            Ok(ModelRef {
                id: id.to_owned(),
                profile: Some(prefix.to_owned()),
                model: base.to_owned(),
            })
        }
        _ => Err(BedrockError::invalid_model()),
    }
}

/// `arn:<partition>:bedrock:<region>:<account>:<type>/<resource>`; `rest` follows `arn:`.
pub(super) fn arn_model(id: &str, rest: &str) -> Result<ModelRef, BedrockError> {
    let fields: Vec<&str> = rest.splitn(5, ':').collect();
    let [partition, "bedrock", _region, _account, resource] = fields.as_slice() else {
        return Err(BedrockError::invalid_model());
    };
    if !partition.starts_with("aws") {
        return Err(BedrockError::invalid_model());
    }
    let model = match resource.split_once('/') {
        Some(("foundation-model", base)) if base.starts_with("anthropic.claude-") => base,
        Some(("inference-profile", profile)) => match model_id(profile) {
            Ok(inner) => {
                return Ok(ModelRef {
                    id: id.to_owned(),
                    ..inner
                })
            }
            Err(error) => return Err(error),
        },
        // Application profiles have opaque ids; any non-empty one resolves.
        Some(("application-inference-profile", profile_id)) if !profile_id.is_empty() => profile_id,
        _ => return Err(BedrockError::invalid_model()),
    };
    Ok(ModelRef {
        id: id.to_owned(),
        profile: None,
        model: model.to_owned(),
    })
}

/// Claude Code's name for a model (`opus-5-5`, `sonnet-4-5`, `3-haiku`): the resolved
/// id without `anthropic.claude-`, version suffix (`-v1:0`, `-v1`) or date. `None` for
/// ids that do not name the model, such as application inference profiles.
pub(crate) fn model_family(model: &str) -> Option<&str> {
    let mut name = model.strip_prefix("anthropic.claude-")?;
    let all_digits = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    if let Some((head, version)) = name.rsplit_once("-v") {
        if version.split(':').all(all_digits) {
            name = head;
        }
    }
    if let Some((head, date)) = name.rsplit_once('-') {
        if date.len() == 8 && all_digits(date) {
            name = head;
        }
    }
    Some(name)
}

/// Claude Code 2.1.332 adds `eager_input_streaming` to custom tools only for these
/// models; Bedrock is taken to refuse it for the others.
pub(super) fn streams_tool_input_eagerly(model: &ModelRef) -> bool {
    model_family(&model.model).is_some_and(|family| in_families(family, CLAUDE_CODE_EAGER_STREAMING_MODELS))
}

/// `family` is listed, or is a point release of a listed `fable-5` (`fable-5-1`, ...).
pub(super) fn in_families(family: &str, listed: &[&str]) -> bool {
    let fable_point_release = family
        .strip_prefix("fable-5-")
        .is_some_and(|minor| !minor.is_empty() && minor.bytes().all(|byte| byte.is_ascii_digit()));
    listed.contains(&family) || (fable_point_release && listed.contains(&"fable-5"))
}

/// Whether Runtime's CountTokens counts for `model`. It refuses inference profiles,
/// prefixed ids and ARNs alike (pydantic/pydantic-ai#4001 got the refusal for an
/// application inference profile ARN; pydantic-ai#3367 strips the `eu.` prefix because
/// of it), and the models AWS counts only on Mantle (`COUNTED_ONLY_ON_MANTLE`).
/// Base ids and foundation-model ARNs of the other models count.
pub fn runtime_counts_tokens(model: &ModelRef) -> bool {
    let application_profile = model.id.starts_with("arn:") && model.id.contains(":application-inference-profile/");
    let counted_only_on_mantle =
        model_family(&model.model).is_some_and(|family| in_families(family, COUNTED_ONLY_ON_MANTLE));
    model.profile.is_none() && !application_profile && !counted_only_on_mantle
}
