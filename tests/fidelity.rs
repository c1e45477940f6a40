//! Fidelity: for every request pair Claude Code recorded (`tests/data/claude-code/VERSION/*.json`),
//! the proxy, given the `first_party` request, must send Bedrock what Claude Code itself sends
//! it in Bedrock mode (the `bedrock` part), in structure: the model ID in the URL, the
//! top-level keys, the betas in the body and in the header, each message's keys, each tool's
//! keys, `cache_control`, `thinking`, `output_config` and the shape of `metadata`.
//!
//! The only differences allowed are what the first-party request cannot carry: Claude Code adds
//! `eager_input_streaming` and `thinking-binding-controls-2026-08-01` only when it talks to a
//! real AWS host. New pairs are picked up by the directory walk, so a refresh with
//! `scripts/capture-claude-code.sh` is tested without touching this file.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use axum::body::Body;
use common::{harness, send, TOKEN};
use serde_json::Value;

/// What the first-party request cannot carry (see the module comment).
const ONLY_AT_AWS_HOSTS_BETA: &str = "thinking-binding-controls-2026-08-01";
const ONLY_AT_AWS_HOSTS_TOOL_KEY: &str = "eager_input_streaming";

fn pairs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/claude-code");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/data/claude-code exists")
        .flatten()
        .filter(|dir| dir.path().is_dir())
        .flat_map(|dir| std::fs::read_dir(dir.path()).expect("readable").flatten())
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn flags(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => s
            .split(',')
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty())
            .collect(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// Collects every structural difference between what the proxy sent and what Claude Code sent.
struct Diff(Vec<String>);

impl Diff {
    fn check<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, ours: T, theirs: T) {
        if ours != theirs {
            self.0
                .push(format!("{what}: proxy sent {ours:?}, Claude Code sent {theirs:?}"));
        }
    }
}

fn compare_blocks(diff: &mut Diff, what: &str, ours: &Value, theirs: &Value) {
    let (Some(ours), Some(theirs)) = (ours.as_array(), theirs.as_array()) else {
        diff.check(&format!("{what} (not an array)"), ours, theirs);
        return;
    };
    diff.check(&format!("{what}: number of blocks"), ours.len(), theirs.len());
    for (i, (o, t)) in ours.iter().zip(theirs).enumerate() {
        diff.check(&format!("{what}.{i}: keys"), keys(o), keys(t));
        diff.check(&format!("{what}.{i}.type"), &o["type"], &t["type"]);
        diff.check(
            &format!("{what}.{i}.cache_control"),
            &o["cache_control"],
            &t["cache_control"],
        );
    }
}

/// The upstreams a pair records, with the operation name the emulator logs for each.
const UPSTREAMS: &[(&str, &str, &str)] = &[
    // (part of the pair, BEDROCK_API, operation in the emulator's log)
    ("bedrock", "invoke", "invoke-with-response-stream"),
    ("mantle", "mantle", "mantle-messages"),
];

/// Compares what the proxy sent (the emulator's log entry) with `part` (`bedrock` or `mantle`)
/// of a recorded pair.
fn compare(sent: &Value, pair: &Value, part: &str) -> Vec<String> {
    let mut diff = Diff(Vec::new());
    let recorded = &pair[part];
    let theirs = &recorded["body"];
    let ours = &sent["body"];

    let path = recorded["path"].as_str().expect("path");
    let (model_id, operation) = match part {
        "bedrock" => (
            path.trim_start_matches("/model/").split('/').next().unwrap_or_default(),
            path.rsplit('/').next().unwrap_or_default(),
        ),
        _ => (theirs["model"].as_str().unwrap_or_default(), "mantle-messages"),
    };
    diff.check("model id", sent["model_id"].as_str().unwrap_or_default(), model_id);
    diff.check("operation", sent["operation"].as_str().unwrap_or_default(), operation);
    diff.check("top-level keys", keys(ours), keys(theirs));

    let without_aws_only =
        |list: Vec<String>| -> Vec<String> { list.into_iter().filter(|f| f != ONLY_AT_AWS_HOSTS_BETA).collect() };
    diff.check(
        "body anthropic_beta",
        without_aws_only(flags(ours.get("anthropic_beta"))),
        without_aws_only(flags(theirs.get("anthropic_beta"))),
    );
    diff.check(
        "anthropic-beta header",
        without_aws_only(flags(sent["headers"].get("anthropic-beta"))),
        without_aws_only(flags(recorded["headers"].get("anthropic-beta"))),
    );

    for key in [
        "thinking",
        "output_config",
        "anthropic_version",
        "max_tokens",
        "stream",
        "context_management",
    ] {
        diff.check(key, &ours[key], &theirs[key]);
    }
    diff.check("metadata keys", keys(&ours["metadata"]), keys(&theirs["metadata"]));
    let user_id_shape = |v: &Value| {
        v["metadata"]["user_id"]
            .as_str()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .map(|parsed| keys(&parsed))
    };
    diff.check(
        "metadata.user_id (a JSON string) keys",
        user_id_shape(ours),
        user_id_shape(theirs),
    );

    compare_blocks(&mut diff, "system", &ours["system"], &theirs["system"]);

    let empty = Vec::new();
    let our_messages = ours["messages"].as_array().unwrap_or(&empty);
    let their_messages = theirs["messages"].as_array().unwrap_or(&empty);
    diff.check("number of messages", our_messages.len(), their_messages.len());
    for (i, (o, t)) in our_messages.iter().zip(their_messages).enumerate() {
        diff.check(&format!("messages.{i}: keys"), keys(o), keys(t));
        diff.check(&format!("messages.{i}.role"), &o["role"], &t["role"]);
        if t["content"].is_array() {
            compare_blocks(
                &mut diff,
                &format!("messages.{i}.content"),
                &o["content"],
                &t["content"],
            );
        }
    }

    let our_tools = ours["tools"].as_array().unwrap_or(&empty);
    let their_tools = theirs["tools"].as_array().unwrap_or(&empty);
    diff.check("number of tools", our_tools.len(), their_tools.len());
    for (o, t) in our_tools.iter().zip(their_tools) {
        let name = t["name"].as_str().unwrap_or("?");
        diff.check(&format!("tool {name}: name"), &o["name"], &t["name"]);
        let mut their_keys = keys(t);
        their_keys.remove(ONLY_AT_AWS_HOSTS_TOOL_KEY);
        let mut our_keys = keys(o);
        our_keys.remove(ONLY_AT_AWS_HOSTS_TOOL_KEY);
        diff.check(&format!("tool {name}: keys"), our_keys, their_keys);
        diff.check(
            &format!("tool {name}: defer_loading"),
            &o["defer_loading"],
            &t["defer_loading"],
        );
        diff.check(
            &format!("tool {name}: cache_control"),
            &o["cache_control"],
            &t["cache_control"],
        );
    }
    diff.0
}

#[tokio::test]
async fn every_recorded_first_party_request_reaches_bedrock_and_mantle_as_claude_code_sends_it() {
    let files = pairs();
    assert!(
        files.len() >= 2,
        "expected the recorded pairs under tests/data/claude-code, found {files:?}"
    );
    let mut failures = Vec::new();
    for file in &files {
        let pair: Value = serde_json::from_slice(&std::fs::read(file).expect("readable")).expect("JSON");
        let first = &pair["first_party"];
        for (part, api, operation) in UPSTREAMS {
            let h = harness(&[("BEDROCK_API", api)]).await;
            let mut request = axum::http::Request::builder()
                .method(first["method"].as_str().unwrap_or("POST"))
                .uri(first["path"].as_str().expect("first_party.path"))
                .header("authorization", format!("Bearer {TOKEN}"))
                .header("content-type", "application/json");
            for (name, value) in first["headers"].as_object().expect("first_party.headers") {
                request = request.header(name.as_str(), value.as_str().expect("string header"));
            }
            let reply = send(&h.app, request.body(Body::from(first["body"].to_string())).unwrap()).await;
            let name = file
                .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                .unwrap_or(file)
                .display()
                .to_string();
            let logged = h.emulator.requests();
            // Zero rejections: one request, answered 200, never a 400 followed by a retry.
            if reply.status != 200
                || logged.len() != 1
                || logged[0]["status"] != 200
                || logged[0]["operation"] != *operation
            {
                failures.push(format!(
                    "{name} ({part}): status {}, emulator saw {:?}: {}",
                    reply.status,
                    logged
                        .iter()
                        .map(|r| (r["operation"].clone(), r["status"].clone()))
                        .collect::<Vec<_>>(),
                    reply.text()
                ));
                continue;
            }
            let diffs = compare(&logged[0], &pair, part);
            if !diffs.is_empty() {
                failures.push(format!("{name} ({part}):\n  {}", diffs.join("\n  ")));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_comparison_sees_a_difference_in_every_checked_part() {
    // The test above is only as good as `compare`: each mutation of Claude Code's own request
    // must be reported.
    let pair: Value =
        serde_json::from_slice(&std::fs::read(pairs().first().expect("a recorded pair")).expect("readable"))
            .expect("JSON");
    let bedrock = &pair["bedrock"];
    let faithful = serde_json::json!({
        "operation": "invoke-with-response-stream",
        "model_id": bedrock["path"].as_str().unwrap().trim_start_matches("/model/").split('/').next().unwrap(),
        "headers": bedrock["headers"],
        "body": bedrock["body"],
    });
    assert_eq!(compare(&faithful, &pair, "bedrock"), Vec::<String>::new());
    type Mutation = Box<dyn Fn(&mut Value)>;
    let mutations: Vec<(&str, Mutation)> = vec![
        ("model", Box::new(|v| v["model_id"] = "us.anthropic.claude-x".into())),
        (
            "top-level",
            Box::new(|v| v["body"]["context_management"] = serde_json::json!({})),
        ),
        (
            "body beta",
            Box::new(|v| v["body"]["anthropic_beta"] = serde_json::json!(["effort-2025-11-24"])),
        ),
        (
            "header beta",
            Box::new(|v| v["headers"]["anthropic-beta"] = "claude-code-20250219".into()),
        ),
        (
            "message key",
            Box::new(|v| v["body"]["messages"][1]["output_config"] = serde_json::json!({})),
        ),
        (
            "tool key",
            Box::new(|v| {
                v["body"]["tools"][0].as_object_mut().unwrap().remove("description");
            }),
        ),
        (
            "defer_loading",
            Box::new(|v| {
                for tool in v["body"]["tools"].as_array_mut().unwrap() {
                    tool.as_object_mut().unwrap().remove("defer_loading");
                }
            }),
        ),
        (
            "cache_control",
            Box::new(|v| v["body"]["system"][1]["cache_control"]["scope"] = "global".into()),
        ),
        (
            "thinking",
            Box::new(|v| v["body"]["thinking"] = serde_json::json!({"type": "enabled"})),
        ),
        (
            "metadata",
            Box::new(|v| v["body"]["metadata"]["user_id"] = "plain".into()),
        ),
    ];
    for (what, mutate) in mutations {
        let mut sent = faithful.clone();
        mutate(&mut sent);
        assert!(
            !compare(&sent, &pair, "bedrock").is_empty(),
            "a change to {what} went unseen"
        );
    }
}

/// Claude Code's turn 1 from a recorded pair, continued with the turns a session produces:
/// replayed thinking with its signature, ToolSearch answered with a `tool_reference`, a Bash
/// call answered with text, an image and a document, and another mid-conversation `system`
/// message with its per-turn effort.
fn later_turns(pair: &Value) -> Value {
    let mut body = pair["first_party"]["body"].clone();
    let turns = serde_json::json!([
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "", "signature": "EqQBCkYIBxgCKkDsig0"},
            {"type": "text", "text": "Looking for the right tool."},
            {"type": "tool_use", "id": "toolu_01", "name": "ToolSearch", "input": {"query": "select:DeferredToolPlaceholder"}}
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": [
                {"type": "tool_reference", "tool_name": "DeferredToolPlaceholder"}
            ]}
        ]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "", "signature": "EqQBCkYIBxgCKkDsig1"},
            {"type": "tool_use", "id": "toolu_02", "name": "Bash", "input": {"command": "ls"}}
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_02", "content": [
                {"type": "text", "text": "README.md", "cache_control": {"type": "ephemeral"}}
            ]},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQ="},
             "title": "spec.pdf"},
            {"type": "text", "text": "Summarise these."}
        ]},
        {"role": "system", "content": [{"type": "text", "text": "Effort changed."}], "output_config": {"effort": "high"}}
    ]);
    let messages = body["messages"].as_array_mut().expect("messages");
    messages.extend(turns.as_array().cloned().unwrap_or_default());
    body
}

#[tokio::test]
async fn later_turns_of_a_session_reach_bedrock_unchanged_but_for_per_turn_effort() {
    for file in pairs() {
        let pair: Value = serde_json::from_slice(&std::fs::read(&file).expect("readable")).expect("JSON");
        let first = &pair["first_party"];
        let body = later_turns(&pair);
        let h = harness(&[]).await;
        let mut request = axum::http::Request::builder()
            .method("POST")
            .uri(first["path"].as_str().expect("path"))
            .header("authorization", format!("Bearer {TOKEN}"));
        for (name, value) in first["headers"].as_object().expect("headers") {
            request = request.header(name.as_str(), value.as_str().expect("string header"));
        }
        let reply = send(&h.app, request.body(Body::from(body.to_string())).unwrap()).await;
        assert_eq!(reply.status, 200, "{}: {}", file.display(), reply.text());
        let logged = h.emulator.requests();
        assert_eq!(logged.len(), 1, "{}: a request was refused: {logged:?}", file.display());
        // Every message arrives as sent, content blocks included (signatures, tool_reference,
        // images, documents), except the per-turn `output_config` Claude Code never sends Bedrock.
        let mut expected = body["messages"].clone();
        for message in expected.as_array_mut().unwrap() {
            message.as_object_mut().unwrap().remove("output_config");
        }
        assert_eq!(logged[0]["body"]["messages"], expected, "{}", file.display());
    }
}

#[tokio::test]
async fn defer_loading_without_tool_search_is_healed_once_then_left_out() {
    // Without the tool-search flag Bedrock refuses `defer_loading`; the proxy removes the field,
    // retries once, and leaves it out of the next such request from the start.
    let pair: Value = serde_json::from_slice(&std::fs::read(&pairs()[0]).expect("readable")).expect("JSON");
    let body = pair["first_party"]["body"].clone();
    let h = harness(&[]).await;
    for _ in 0..2 {
        let reply = common::post(&h.app, "/v1/messages", &body).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let statuses: Vec<Value> = h.emulator.requests().iter().map(|r| r["status"].clone()).collect();
    assert_eq!(
        statuses,
        [serde_json::json!(400), serde_json::json!(200), serde_json::json!(200)]
    );
}

#[tokio::test]
async fn a_beta_flag_bedrock_refuses_falls_back_to_the_flags_claude_code_sends() {
    let h = harness(&[("EXTRA_BETA_FLAGS", "brand-new-2027-01-01")]).await;
    let mut body = common::message("hello", false);
    body["model"] = "claude-opus-5-5".into();
    let req = common::request("POST", "/v1/messages", Some(&body))
        .header("anthropic-beta", "brand-new-2027-01-01,interleaved-thinking-2025-05-14")
        .body(Body::from(body.to_string()))
        .unwrap();
    let reply = send(&h.app, req).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = h.emulator.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0]["status"], 400);
    assert_eq!(
        seen[1]["body"]["anthropic_beta"],
        serde_json::json!(["interleaved-thinking-2025-05-14"])
    );
}
