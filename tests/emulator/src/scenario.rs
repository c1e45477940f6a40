//! Test directives: `emulator:<name>` / `emulator:<name>=<value>` tokens in the text of
//! the last user message choose how the emulator answers. Tests drive it through the
//! proxy this way, because the message text is the one thing that surely reaches Bedrock.

use std::time::Duration;

use serde_json::Value;

/// How many text deltas a streamed answer has when no `emulator:chunks` is given.
pub const DEFAULT_CHUNKS: usize = 3;

/// `emulator:fail_first=<count>:<exception>:<key>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailFirst {
    /// How many requests carrying `key` fail before the rest succeed.
    pub count: u32,
    /// The exception those requests get.
    pub exception: String,
    /// Groups the requests of one test, so tests do not share counters.
    pub key: String,
}

/// Everything the directives of one request ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// Number of text deltas (streaming) or pieces of the text (non-streaming).
    pub chunks: usize,
    /// Pause between consecutive frames.
    pub delay: Duration,
    /// Silence between the response headers and the first frame.
    pub first_delay: Duration,
    /// Text deltas carry their send time instead of words.
    pub stamp: bool,
    /// Answer with a text block and then a `tool_use` block.
    pub tool_use: bool,
    /// Start the answer with a `thinking` block.
    pub thinking: bool,
    /// Fail before any frame with this exception.
    pub error: Option<String>,
    /// Fail the first requests of a group, then succeed.
    pub fail_first: Option<FailFirst>,
    /// After this many chunk frames, send an exception frame of this type and end.
    pub stream_exception_after: Option<(usize, String)>,
    /// After this many chunk frames, drop the connection mid-body.
    pub cut_after: Option<usize>,
    /// After this many chunk frames, send bytes that fail the frame checksum.
    pub garbage_after: Option<usize>,
    /// Never answer.
    pub hang: bool,
    /// Close the connection without writing any response byte.
    pub close: bool,
    /// Stream: answer 200 with the event-stream headers, then end the body with no frame.
    pub empty_stream: bool,
    /// Answer with the JSON of the request body as text.
    pub echo: bool,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            chunks: DEFAULT_CHUNKS,
            delay: Duration::ZERO,
            first_delay: Duration::ZERO,
            stamp: false,
            tool_use: false,
            thinking: false,
            error: None,
            fail_first: None,
            stream_exception_after: None,
            cut_after: None,
            garbage_after: None,
            hang: false,
            close: false,
            empty_stream: false,
            echo: false,
        }
    }
}

impl Scenario {
    /// Reads the directives of the last user message of an InvokeModel body. Tokens that
    /// do not parse are ignored: the text is also a prompt, and a prompt may say anything.
    pub fn from_body(body: &Value) -> Self {
        let mut scenario = Self::default();
        for text in last_user_texts(body) {
            for token in text.split_whitespace() {
                if let Some(directive) = token.strip_prefix("emulator:") {
                    scenario.apply(directive);
                }
            }
        }
        scenario
    }

    fn apply(&mut self, directive: &str) {
        let (name, value) = match directive.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (directive, None),
        };
        let millis = |value: Option<&str>| value.and_then(|v| v.parse().ok()).map(Duration::from_millis);
        let count = |value: Option<&str>| value.and_then(|v| v.parse::<usize>().ok());
        match name {
            "chunks" => {
                if let Some(chunks) = count(value) {
                    self.chunks = chunks.max(1);
                }
            }
            "delay_ms" => self.delay = millis(value).unwrap_or(self.delay),
            "first_delay_ms" => self.first_delay = millis(value).unwrap_or(self.first_delay),
            "stamp" => self.stamp = true,
            "tool_use" => self.tool_use = true,
            "thinking" => self.thinking = true,
            "hang" => self.hang = true,
            "close" => self.close = true,
            "empty_stream" => self.empty_stream = true,
            "echo" => self.echo = true,
            "error" => self.error = value.filter(|v| !v.is_empty()).map(str::to_owned),
            "fail_first" => self.fail_first = value.and_then(parse_fail_first),
            "stream_exception_after" => {
                self.stream_exception_after = value.and_then(|value| {
                    let (after, kind) = value.split_once(':')?;
                    Some((after.parse().ok()?, kind.to_owned()))
                });
            }
            "cut_after" => self.cut_after = count(value),
            "garbage_after" => self.garbage_after = count(value),
            _ => {}
        }
    }
}

fn parse_fail_first(value: &str) -> Option<FailFirst> {
    let mut parts = value.splitn(3, ':');
    let count = parts.next()?.parse().ok()?;
    let exception = parts.next().filter(|name| !name.is_empty())?.to_owned();
    let key = parts.next().unwrap_or("").to_owned();
    Some(FailFirst { count, exception, key })
}

/// The texts of the last `user` message: its string content, or each of its `text` blocks.
fn last_user_texts(body: &Value) -> Vec<&str> {
    let last_user = body.get("messages").and_then(Value::as_array).and_then(|messages| {
        messages
            .iter()
            .rev()
            .find(|message| message.get("role").and_then(Value::as_str) == Some("user"))
    });
    match last_user.and_then(|message| message.get("content")) {
        Some(Value::String(text)) => vec![text.as_str()],
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter(|block| block.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|block| block.get("text").and_then(Value::as_str))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scenario_of(content: Value) -> Scenario {
        Scenario::from_body(&json!({ "messages": [{ "role": "user", "content": content }] }))
    }

    #[test]
    fn plain_prompts_get_the_default_answer() {
        assert_eq!(scenario_of(json!("hello there")), Scenario::default());
    }

    #[test]
    fn directives_combine() {
        let scenario = scenario_of(json!(
            "hi emulator:chunks=5 emulator:delay_ms=20 emulator:stamp emulator:fail_first=2:ThrottlingException:t1"
        ));
        assert_eq!(scenario.chunks, 5);
        assert_eq!(scenario.delay, Duration::from_millis(20));
        assert!(scenario.stamp);
        assert_eq!(
            scenario.fail_first,
            Some(FailFirst {
                count: 2,
                exception: "ThrottlingException".into(),
                key: "t1".into()
            })
        );
    }

    #[test]
    fn directives_are_read_from_text_blocks_of_the_last_user_message_only() {
        let body = json!({ "messages": [
            { "role": "user", "content": "emulator:hang" },
            { "role": "assistant", "content": "ok" },
            { "role": "user", "content": [
                { "type": "image", "source": {} },
                { "type": "text", "text": "emulator:stream_exception_after=2:throttlingException" }
            ] }
        ] });
        let scenario = Scenario::from_body(&body);
        assert!(!scenario.hang);
        assert_eq!(scenario.stream_exception_after, Some((2, "throttlingException".into())));
    }

    #[test]
    fn close_and_empty_stream_are_flags_and_close_fits_fail_first() {
        let scenario = scenario_of(json!(
            "emulator:close emulator:empty_stream emulator:fail_first=1:close:k1"
        ));
        assert!(scenario.close);
        assert!(scenario.empty_stream);
        assert_eq!(
            scenario.fail_first,
            Some(FailFirst {
                count: 1,
                exception: "close".into(),
                key: "k1".into()
            })
        );
    }

    #[test]
    fn malformed_values_are_ignored() {
        let scenario = scenario_of(json!("emulator:chunks=lots emulator:cut_after= emulator:error="));
        assert_eq!(scenario, Scenario::default());
    }
}
