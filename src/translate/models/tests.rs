use super::*;
use InferenceProfile::Us;

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
