use super::*;
use InferenceProfile::{Apac, Au, Eu, Global, Jp, Us};

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
    let table: RegionProfiles = serde_json::from_str(include_str!("../../../terraform/region-profiles.json"))
        .expect("the table is JSON of this shape");
    assert!(!table.exact.is_empty() && !table.prefixes.is_empty());
    let names = table.exact.values().chain(table.prefixes.iter().map(|(_, name)| name));
    for name in names.chain([&table.otherwise]) {
        assert!(name.parse::<InferenceProfile>().is_ok(), "{name:?} is not a profile");
        assert_ne!(name, "", "an empty name would mean none by accident");
    }
}
