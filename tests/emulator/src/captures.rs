//! Recorded traffic: what Anthropic's own client (Claude Code) sent the real Bedrock
//! Runtime. Each file under `tests/data/claude-code/<version>/*.json` holds one request
//! in three forms (`first_party`, `bedrock`, `mantle`); only the `bedrock` part is read,
//! because only it went to InvokeModelWithResponseStream. [`crate::validate`] learns
//! from these what Bedrock accepts.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The directory of captures, one subdirectory per Claude Code version. Every `*.json`
/// in every subdirectory is read, so a new capture widens the rules without code.
pub const CAPTURES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/claude-code");

/// One recorded Bedrock request: the `bedrock` part of a capture file.
#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    /// The file it came from, for messages that name it.
    pub file: PathBuf,
    /// The model id from the request path (`/model/{modelId}/...`), percent-decoded.
    pub model_id: String,
    /// The `anthropic-beta` HTTP header as sent, if it was.
    pub beta_header: Option<String>,
    /// The InvokeModel body.
    pub body: Value,
}

/// Reads every `<dir>/*/*.json`, sorted by path so the order is the same everywhere.
/// An empty result is an error: rules learned from nothing would refuse everything.
pub fn load(dir: &Path) -> Result<Vec<Capture>, String> {
    let mut files = Vec::new();
    for version in sorted_entries(dir)? {
        if !version.is_dir() {
            continue;
        }
        for file in sorted_entries(&version)? {
            if file.extension().is_some_and(|ext| ext == "json") {
                files.push(file);
            }
        }
    }
    if files.is_empty() {
        return Err(format!("no captured requests in {}/*/*.json", dir.display()));
    }
    files.iter().map(|file| read(file)).collect()
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = fs::read_dir(dir).map_err(|error| format!("cannot list {}: {error}", dir.display()))?;
    let mut paths = entries
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("cannot list {}: {error}", dir.display()))?;
    paths.sort();
    Ok(paths)
}

/// Parses the `bedrock` part of one capture file.
pub fn read(file: &Path) -> Result<Capture, String> {
    let fail = |what: &str| format!("{}: {what}", file.display());
    let text = fs::read_to_string(file).map_err(|error| fail(&error.to_string()))?;
    let capture: Value = serde_json::from_str(&text).map_err(|error| fail(&error.to_string()))?;
    let bedrock = capture.get("bedrock").ok_or_else(|| fail("no `bedrock` part"))?;
    let path = bedrock
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("no `bedrock.path`"))?;
    let model_id = model_id_of_path(path).ok_or_else(|| fail(&format!("no model id in path {path:?}")))?;
    // HTTP header names are case-insensitive; a recorder may keep either case.
    let beta_header = bedrock
        .get("headers")
        .and_then(Value::as_object)
        .and_then(|headers| {
            headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("anthropic-beta"))
        })
        .and_then(|(_, value)| value.as_str())
        .map(str::to_owned);
    // The body is a JSON object in today's files; a recorder that kept the raw bytes
    // would store a string, so take that too.
    let body = match bedrock.get("body") {
        Some(Value::String(raw)) => serde_json::from_str(raw).map_err(|error| fail(&error.to_string()))?,
        Some(body @ Value::Object(_)) => body.clone(),
        _ => return Err(fail("no `bedrock.body` object")),
    };
    Ok(Capture {
        file: file.to_owned(),
        model_id,
        beta_header,
        body,
    })
}

/// `/model/{modelId}/{operation}` → the decoded `modelId` (ARNs arrive percent-encoded).
fn model_id_of_path(path: &str) -> Option<String> {
    let (label, _operation) = path.strip_prefix("/model/")?.rsplit_once('/')?;
    percent_decode(label).filter(|id| !id.is_empty())
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_capture_file_has_a_bedrock_request() {
        let captures = load(Path::new(CAPTURES_DIR)).expect("captures load");
        assert!(captures.len() >= 2, "{captures:?}");
        for capture in &captures {
            assert!(capture.model_id.contains("anthropic.claude-"), "{capture:?}");
            assert!(capture.body["messages"].is_array(), "{}", capture.file.display());
        }
    }

    #[test]
    fn model_ids_come_from_the_path_percent_decoded() {
        assert_eq!(
            model_id_of_path("/model/us.anthropic.claude-opus-5-5/invoke-with-response-stream").as_deref(),
            Some("us.anthropic.claude-opus-5-5")
        );
        assert_eq!(
            model_id_of_path(
                "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.anthropic.claude-x/invoke"
            )
            .as_deref(),
            Some("arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.claude-x")
        );
        assert_eq!(model_id_of_path("/v1/messages"), None);
        assert_eq!(model_id_of_path("/model/bad%zz/invoke"), None);
    }

    #[test]
    fn a_missing_directory_is_an_error_not_an_empty_rule_set() {
        let error = load(Path::new("/nonexistent/claude-code")).expect_err("no directory");
        assert!(error.contains("/nonexistent/claude-code"), "{error}");
    }
}
