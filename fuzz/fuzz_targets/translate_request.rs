//! Any request body: parsing gives a request or a 400, and a parsed request always becomes a
//! Bedrock body that is a JSON object with only allowed fields.
#![no_main]

use bedrock_anthropic_proxy::error::ProxyError;
use bedrock_anthropic_proxy::translate::{
    parse_request, to_bedrock_body, BetaFilter, Endpoint, BEDROCK_ANTHROPIC_VERSION, BEDROCK_FIELDS,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first line doubles as an anthropic-beta header, the rest is the body.
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let filter = BetaFilter::default();
    let betas = filter.filter(std::str::from_utf8(header).ok());
    for endpoint in [Endpoint::Messages, Endpoint::CountTokens] {
        match parse_request(body, endpoint) {
            Ok(request) => {
                let out: serde_json::Value =
                    serde_json::from_slice(&to_bedrock_body(&request, betas.clone(), &filter)).expect("valid JSON");
                let out = out.as_object().expect("an object");
                assert_eq!(out["anthropic_version"], BEDROCK_ANTHROPIC_VERSION);
                assert!(out.keys().all(|k| BEDROCK_FIELDS.contains(&k.as_str())));
            }
            Err(ProxyError::InvalidRequest(_)) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
});
