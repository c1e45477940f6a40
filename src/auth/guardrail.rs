//! A caller's Bedrock guardrail: the policy field `"guardrail": {"id": "…", "version": "…"}`,
//! checked against the patterns Bedrock documents, and the rule that only the operator chooses
//! it: a request that names a guardrail itself (Bedrock's guardrail headers, or an
//! `amazon-bedrock-*` body field) is refused before anything is sent.
//!
//! Bedrock applies a guardrail to InvokeModel and InvokeModelWithResponseStream when the
//! request carries `X-Amzn-Bedrock-GuardrailIdentifier` and `X-Amzn-Bedrock-GuardrailVersion`
//! (AWS API reference, InvokeModel: "If you don't provide a value, no guardrail is applied").

use axum::http::HeaderMap;
use serde::Deserialize;

use crate::error::ProxyError;
use crate::translate::request::MessagesRequest;

/// The guardrail Bedrock applies to every answer for a caller.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, try_from = "Fields")]
pub struct Guardrail {
    /// The guardrail's ID (`abc123def456`) or ARN
    /// (`arn:aws:bedrock:us-east-1:123456789012:guardrail/abc123def456`).
    pub id: String,
    /// A published version number (`1`) or `DRAFT`.
    pub version: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields {
    id: String,
    version: String,
}

impl TryFrom<Fields> for Guardrail {
    type Error = String;

    /// The same constraints Bedrock puts on the two headers (AWS API reference, InvokeModel:
    /// `guardrailIdentifier` at most 2048 characters matching
    /// `([a-z0-9]+)|(arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:guardrail/[a-z0-9]+)`,
    /// `guardrailVersion` matching `([1-9][0-9]{0,7})|(DRAFT)`), so that a typo in the secret
    /// is found when it is loaded, not as a 400 on every request of that caller.
    fn try_from(fields: Fields) -> Result<Self, String> {
        if !valid_id(&fields.id) {
            return Err(format!(
                "guardrail.id {:?} is not a Bedrock guardrail ID (lowercase letters and digits) or ARN \
                 (arn:aws:bedrock:<region>:<account>:guardrail/<id>)",
                fields.id
            ));
        }
        if !valid_version(&fields.version) {
            return Err(format!(
                "guardrail.version {:?} must be a published version number (\"1\") or \"DRAFT\"",
                fields.version
            ));
        }
        Ok(Self {
            id: fields.id,
            version: fields.version,
        })
    }
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn valid_id(id: &str) -> bool {
    if id.len() > 2048 || id.is_empty() {
        return false;
    }
    if id.chars().all(is_id_char) {
        return true;
    }
    // arn:aws(-partition)?:bedrock:<region>:<12 digits>:guardrail/<id>
    let parts: Vec<&str> = id.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts[..] else {
        return false;
    };
    let partition_ok = partition == "aws"
        || partition
            .strip_prefix("aws-")
            .is_some_and(|rest| !rest.is_empty() && !rest.contains(':'));
    let region_ok = (1..=20).contains(&region.len())
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let account_ok = account.len() == 12 && account.chars().all(|c| c.is_ascii_digit());
    let resource_ok = resource
        .strip_prefix("guardrail/")
        .is_some_and(|name| !name.is_empty() && name.chars().all(is_id_char));
    arn == "arn" && partition_ok && service == "bedrock" && region_ok && account_ok && resource_ok
}

fn valid_version(version: &str) -> bool {
    version == "DRAFT"
        || (!version.is_empty()
            && version.len() <= 8
            && !version.starts_with('0')
            && version.chars().all(|c| c.is_ascii_digit()))
}

/// Bedrock's own request headers for guardrails and traces; `X-Amzn-Bedrock-Trace` would show
/// the guardrail's assessment (and the text it matched) in the answer.
const HEADER_PREFIXES: &[&str] = &["x-amzn-bedrock-guardrail", "x-amzn-bedrock-trace"];

/// Bedrock reads `amazon-bedrock-guardrailConfig` from the InvokeModel body (input tags, and
/// `streamProcessingMode`, whose `ASYNCHRONOUS` lets text out before the guardrail has seen
/// it: AWS user guide, "Configure streaming response behavior"); the whole `amazon-bedrock-`
/// namespace is Bedrock's, not the caller's.
const BODY_PREFIX: &str = "amazon-bedrock-";

/// Refuses a request that tries to choose, change or remove a guardrail itself, whoever the
/// caller is: the guardrail comes from the caller's policy only. A 400 rather than a silent
/// drop, so that a client configured to send its own guardrail (Claude Code's
/// `ANTHROPIC_CUSTOM_HEADERS` recipe for Bedrock) learns that the proxy does not take it,
/// instead of believing it is guarded.
pub fn refuse_caller_choice(headers: &HeaderMap, request: &MessagesRequest) -> Result<(), ProxyError> {
    if let Some(name) = headers
        .keys()
        .map(|name| name.as_str())
        .find(|name| HEADER_PREFIXES.iter().any(|prefix| name.starts_with(prefix)))
    {
        return Err(ProxyError::InvalidRequest(format!(
            "header {name}: this proxy does not take Bedrock guardrail headers from callers; the \
             guardrail is set per caller by the proxy's operator (docs/guardrails.md)"
        )));
    }
    if let Some(key) = request.body.keys().find(|key| key.starts_with(BODY_PREFIX)) {
        return Err(ProxyError::InvalidRequest(format!(
            "{key}: Bedrock's own request fields are not accepted from callers; the guardrail is \
             set per caller by the proxy's operator (docs/guardrails.md)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: serde_json::Value) -> Result<Guardrail, serde_json::Error> {
        serde_json::from_value(value)
    }

    #[test]
    fn ids_and_arns_bedrock_documents_are_accepted() {
        for id in [
            "abc123def456",
            "arn:aws:bedrock:us-east-1:123456789012:guardrail/abc123def456",
            "arn:aws-us-gov:bedrock:us-gov-west-1:123456789012:guardrail/x1",
        ] {
            for version in ["1", "DRAFT", "12345678"] {
                let parsed = parse(serde_json::json!({"id": id, "version": version}));
                assert!(parsed.is_ok(), "{id} {version}: {parsed:?}");
            }
        }
    }

    #[test]
    fn ids_and_versions_bedrock_would_refuse_are_refused_at_load() {
        for (id, version) in [
            ("ABC", "1"),
            ("abc-123", "1"),
            ("", "1"),
            ("arn:aws:bedrock:us-east-1:12345:guardrail/abc", "1"),
            ("arn:aws:s3:us-east-1:123456789012:guardrail/abc", "1"),
            ("arn:aws:bedrock:us-east-1:123456789012:guardrail/", "1"),
            ("abc", "0"),
            ("abc", "01"),
            ("abc", "draft"),
            ("abc", "123456789"),
            ("abc", ""),
        ] {
            let parsed = parse(serde_json::json!({"id": id, "version": version}));
            assert!(parsed.is_err(), "{id:?} {version:?} was accepted");
        }
        let missing = parse(serde_json::json!({"id": "abc"})).unwrap_err();
        assert!(missing.to_string().contains("version"), "{missing}");
        assert!(parse(serde_json::json!({"id": "abc", "version": "1", "trace": "enabled"})).is_err());
        assert!(parse(serde_json::json!({"id": "abc", "version": 1})).is_err());
    }

    fn request(body: serde_json::Value) -> MessagesRequest {
        let serde_json::Value::Object(body) = body else {
            unreachable!()
        };
        MessagesRequest {
            model: "claude-sonnet-4-5".into(),
            stream: false,
            body,
        }
    }

    #[test]
    fn a_caller_may_not_name_a_guardrail_in_headers_or_body() {
        let plain = request(serde_json::json!({"messages": []}));
        assert!(refuse_caller_choice(&HeaderMap::new(), &plain).is_ok());
        for header in [
            "x-amzn-bedrock-guardrailidentifier",
            "x-amzn-bedrock-guardrailversion",
            "x-amzn-bedrock-guardrailtrace",
            "x-amzn-bedrock-trace",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(
                axum::http::HeaderName::from_static(header),
                axum::http::HeaderValue::from_static("x"),
            );
            let err = refuse_caller_choice(&headers, &plain).unwrap_err();
            assert_eq!(err.status_and_type().0, 400);
            assert_eq!(err.status_and_type().1, "invalid_request_error");
            assert!(err.to_string().contains(header), "{err}");
        }
        let body = request(serde_json::json!({
            "messages": [],
            "amazon-bedrock-guardrailConfig": {"streamProcessingMode": "ASYNCHRONOUS"}
        }));
        let err = refuse_caller_choice(&HeaderMap::new(), &body).unwrap_err();
        assert!(err.to_string().contains("amazon-bedrock-guardrailConfig"), "{err}");
    }
}
