//! Recorded traffic: what Anthropic's own client (Claude Code) sent Amazon Bedrock. Each
//! file under `tests/data/claude-code/<version>/*.json` holds one request in three forms
//! (`first_party`, `bedrock`, `mantle`). The `bedrock` part went to Bedrock Runtime's
//! InvokeModelWithResponseStream ([`load`], from which [`crate::validate`] learns) and the
//! `mantle` part to Bedrock's Anthropic Messages endpoint ([`load_mantle`], from which
//! [`crate::mantle`] learns). The `first_party` part is what the proxy receives, so the
//! emulator never reads it: its rules must not come from the proxy's side of the wire.

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

/// One recorded Mantle request: the `mantle` part of a capture file.
#[derive(Debug, Clone, PartialEq)]
pub struct MantleCapture {
    /// The file it came from, for messages that name it.
    pub file: PathBuf,
    /// The request path with its query, e.g. `/anthropic/v1/messages?beta=true`.
    pub path: String,
    /// The HTTP headers as recorded, in the recorder's order. The recorder ran with
    /// `CLAUDE_CODE_SKIP_MANTLE_AUTH=1`, so there is no `authorization` among them.
    pub headers: Vec<(String, String)>,
    /// The `anthropic-beta` HTTP header as sent, if it was.
    pub beta_header: Option<String>,
    /// The first-party-shaped Messages body.
    pub body: Value,
}

/// Reads the `bedrock` part of every `<dir>/*/*.json`, sorted by path so the order is
/// the same everywhere. An empty result is an error: rules learned from nothing would
/// refuse everything.
pub fn load(dir: &Path) -> Result<Vec<Capture>, String> {
    capture_files(dir)?.iter().map(|file| read(file)).collect()
}

/// Reads the `mantle` part of every `<dir>/*/*.json` that has one (a capture of a CLI
/// version without a Mantle mode may not), sorted by path. None at all is an error.
pub fn load_mantle(dir: &Path) -> Result<Vec<MantleCapture>, String> {
    let mut captures = Vec::new();
    for file in capture_files(dir)? {
        if let Some(capture) = read_mantle(&file)? {
            captures.push(capture);
        }
    }
    if captures.is_empty() {
        return Err(format!("no `mantle` request in {}/*/*.json", dir.display()));
    }
    Ok(captures)
}

/// Every `<dir>/*/*.json`, sorted; none is an error.
fn capture_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
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
    Ok(files)
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
    let capture = read_json(file)?;
    let bedrock = capture.get("bedrock").ok_or_else(|| fail("no `bedrock` part"))?;
    let path = bedrock
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("no `bedrock.path`"))?;
    let model_id = model_id_of_path(path).ok_or_else(|| fail(&format!("no model id in path {path:?}")))?;
    Ok(Capture {
        file: file.to_owned(),
        model_id,
        beta_header: beta_header(bedrock),
        body: body_of(bedrock).map_err(|what| fail(&format!("bedrock.{what}")))?,
    })
}

/// Parses the `mantle` part of one capture file; `None` if the file has none.
pub fn read_mantle(file: &Path) -> Result<Option<MantleCapture>, String> {
    let fail = |what: &str| format!("{}: {what}", file.display());
    let capture = read_json(file)?;
    let Some(mantle) = capture.get("mantle") else {
        return Ok(None);
    };
    let path = mantle
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("no `mantle.path`"))?;
    let headers = mantle
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
        .collect();
    Ok(Some(MantleCapture {
        file: file.to_owned(),
        path: path.to_owned(),
        headers,
        beta_header: beta_header(mantle),
        body: body_of(mantle).map_err(|what| fail(&format!("mantle.{what}")))?,
    }))
}

fn read_json(file: &Path) -> Result<Value, String> {
    let fail = |what: &str| format!("{}: {what}", file.display());
    let text = fs::read_to_string(file).map_err(|error| fail(&error.to_string()))?;
    serde_json::from_str(&text).map_err(|error| fail(&error.to_string()))
}

/// The `anthropic-beta` header of one part. HTTP header names are case-insensitive; a
/// recorder may keep either case.
fn beta_header(part: &Value) -> Option<String> {
    part.get("headers")
        .and_then(Value::as_object)
        .and_then(|headers| {
            headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("anthropic-beta"))
        })
        .and_then(|(_, value)| value.as_str())
        .map(str::to_owned)
}

/// The body of one part. It is a JSON object in today's files; a recorder that kept the
/// raw bytes would store a string, so take that too. The error names the field.
fn body_of(part: &Value) -> Result<Value, String> {
    match part.get("body") {
        Some(Value::String(raw)) => serde_json::from_str(raw).map_err(|error| format!("body: {error}")),
        Some(body @ Value::Object(_)) => Ok(body.clone()),
        _ => Err("body: not a JSON object".to_owned()),
    }
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
    fn every_capture_file_has_a_mantle_request() {
        let bedrock = load(Path::new(CAPTURES_DIR)).expect("captures load");
        let mantle = load_mantle(Path::new(CAPTURES_DIR)).expect("mantle captures load");
        assert_eq!(mantle.len(), bedrock.len());
        for capture in &mantle {
            let file = capture.file.display();
            assert!(capture.path.starts_with("/anthropic/v1/messages"), "{file}");
            assert!(capture.body["model"]
                .as_str()
                .is_some_and(|model| model.starts_with("anthropic.claude-")));
            assert!(capture.beta_header.is_some(), "{file}");
            assert!(
                capture.headers.iter().any(|(name, _)| name == "anthropic-version"),
                "{file}"
            );
        }
    }

    #[test]
    fn a_file_without_a_mantle_part_is_skipped_not_an_error() {
        let dir = std::env::temp_dir().join(format!("emulator-captures-{}", std::process::id()));
        let version = dir.join("0.0.1");
        fs::create_dir_all(&version).expect("temp dir");
        let file = version.join("old.json");
        fs::write(
            &file,
            r#"{"bedrock": {"path": "/model/anthropic.claude-x/invoke", "body": {}}}"#,
        )
        .expect("write");

        let single = read_mantle(&file);
        let all = load_mantle(&dir);

        fs::remove_dir_all(&dir).expect("clean up");
        assert_eq!(single, Ok(None));
        assert!(all.is_err_and(|error| error.contains("no `mantle` request")));
    }

    #[test]
    fn a_missing_directory_is_an_error_not_an_empty_rule_set() {
        let error = load(Path::new("/nonexistent/claude-code")).expect_err("no directory");
        assert!(error.contains("/nonexistent/claude-code"), "{error}");
        assert!(load_mantle(Path::new("/nonexistent/claude-code")).is_err());
    }
}
