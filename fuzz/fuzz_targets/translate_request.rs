//! Any request body: parsing gives a request or a 400, and a parsed request always becomes a
//! Bedrock body that is a JSON object with the required version and only the top-level fields
//! and beta flags the rules table sends.
#![no_main]

use bedrock_anthropic_proxy::error::ProxyError;
use bedrock_anthropic_proxy::translate::rules::{self, BetaPlace, Level};
use bedrock_anthropic_proxy::upstream::Api;
use bedrock_anthropic_proxy::translate::request::{parse_request, to_upstream, BetaFilter, Endpoint, BEDROCK_ANTHROPIC_VERSION};
use libfuzzer_sys::fuzz_target;

const MODEL_ID: &str = "us.anthropic.claude-opus-5-5";

fuzz_target!(|data: &[u8]| {
    // The first line doubles as an anthropic-beta header, the rest is the body.
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let filter = BetaFilter::default();
    for endpoint in [Endpoint::Messages, Endpoint::CountTokens] {
        match parse_request(body, endpoint) {
            Ok(request) => {
                let out = to_upstream(request, Api::Invoke, MODEL_ID, std::str::from_utf8(header).ok(), &filter);
                let bytes: serde_json::Value = serde_json::from_slice(&out.body_bytes()).expect("valid JSON");
                assert!(bytes.is_object());
                assert_eq!(out.body["anthropic_version"], BEDROCK_ANTHROPIC_VERSION);
                assert!(out.body.keys().all(|k| k == "anthropic_version"
                    || k == "anthropic_beta"
                    || rules::keeps(Level::Top, k, Api::Invoke, MODEL_ID)));
                for flag in out
                    .body_betas()
                    .into_iter()
                    .chain(out.header_betas.iter().map(String::as_str))
                {
                    assert!(rules::beta_rule(flag).is_some_and(|r| !matches!(r.invoke, BetaPlace::Drop)));
                }
            }
            Err(ProxyError::InvalidRequest(_)) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
});
