//! Property tests: whatever a caller sends, translation never panics, and what reaches
//! Bedrock is always a JSON object with the required version and only fields and flags the
//! rules table sends.
use super::*;
use proptest::prelude::*;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("cache_control".to_string()),
                    Just("content".to_string()),
                    Just("tools".to_string()),
                    Just("type".to_string()),
                    "[a-z_]{1,10}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_give_a_request_or_a_400(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        match parse_request(&bytes, Endpoint::Messages) {
            Ok(_) | Err(ProxyError::InvalidRequest(_)) => {}
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn any_object_translates_to_a_bedrock_object(
        extra in prop::collection::btree_map("[a-z_]{1,12}", json_value(), 0..8),
        tools in json_value(),
        messages in prop::collection::vec(json_value(), 0..4),
        betas in prop::collection::vec("[a-z0-9,-]{0,30}", 0..4),
    ) {
        let mut body: Map<String, Value> = extra.into_iter().collect();
        body.insert("model".into(), Value::from("claude-sonnet-4-5"));
        body.insert("max_tokens".into(), Value::from(5));
        body.insert("messages".into(), Value::from(messages));
        body.insert("tools".into(), tools);
        body.remove("stream");
        let bytes = serde_json::to_vec(&Value::Object(body)).unwrap();
        let request = parse_request(&bytes, Endpoint::Messages).unwrap();
        let model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
        let out = to_upstream(request, Api::Invoke, model, betas.iter().map(String::as_str), &BetaFilter::default());
        prop_assert_eq!(&out.body["anthropic_version"], BEDROCK_ANTHROPIC_VERSION);
        prop_assert!(out.body.keys().all(|k| k == "anthropic_version" || k == "anthropic_beta"
            || rules::keeps(Level::Top, k, Api::Invoke, model)));
        for flag in out.body_betas().into_iter().chain(out.header_betas.iter().map(String::as_str)) {
            prop_assert!(rules::beta_rule(flag).is_some_and(|r| !matches!(r.invoke, BetaPlace::Drop)));
        }
    }
}
