//! What a stream used, counted as it goes, the same way for InvokeModel and Mantle:
//! `message_start` carries the input and cache counts, `message_delta` the output, and on
//! InvokeModel Bedrock's metrics on `message_stop` have the last word. A stream that ends
//! early (the deadline, a departed caller, an upstream error) may never send the final counts;
//! its output is then estimated from the content it streamed, so that it is charged what it
//! delivered rather than nothing.

use crate::usage::request_log::Usage;

/// About four bytes of streamed text a token.
const BYTES_PER_TOKEN: u64 = 4;

/// The JSON around a content delta's text (`{"type":"content_block_delta","index":0,
/// "delta":{"type":"text_delta","text":""}}` is 77 bytes), not counted as text.
const DELTA_ENVELOPE_BYTES: u64 = 77;

/// The counts of one stream so far.
#[derive(Debug, Default, Clone)]
pub struct Meter {
    usage: Usage,
    /// `message_delta` or Bedrock's metrics came: the output count is final.
    final_counts: bool,
    /// Output tokens the content deltas streamed so far amount to, at least one each.
    streamed_estimate: u64,
}

impl Meter {
    /// Reads the counts of a `message_start` or `message_delta` event.
    pub fn event(&mut self, kind: &str, data: &[u8]) {
        if record_usage(&mut self.usage, kind, data) && kind == "message_delta" {
            self.final_counts = true;
        }
    }

    /// Counts a content delta of `len` bytes.
    pub fn content(&mut self, len: usize) {
        let text = u64::try_from(len)
            .unwrap_or(u64::MAX)
            .saturating_sub(DELTA_ENVELOPE_BYTES);
        self.streamed_estimate = self
            .streamed_estimate
            .saturating_add(text.div_ceil(BYTES_PER_TOKEN).max(1));
    }

    /// Bedrock's own counts (InvokeModel's `message_stop`): final. The 1-hour cache split,
    /// which Bedrock's metrics lack, is kept from the events.
    pub fn metrics(&mut self, metrics: Usage) {
        let split = self.usage.cache_write_1h;
        self.usage = Usage {
            cache_write_1h: metrics.cache_write_1h.or(split),
            ..metrics
        };
        self.final_counts = true;
    }

    /// The counts as reported so far.
    pub fn reported(&self) -> Usage {
        self.usage
    }

    /// What to charge, and whether it is an estimate: the reported counts when final, else
    /// the output that was streamed if more than reported.
    pub fn at_end(&self) -> (Usage, bool) {
        if self.final_counts || self.streamed_estimate <= self.usage.output {
            return (self.usage, false);
        }
        let mut usage = self.usage;
        usage.output = self.streamed_estimate;
        (usage, true)
    }
}

/// `message_start` carries the input and cache counts, `message_delta` the output so far.
/// Returns true when the event had counts.
pub fn record_usage(usage: &mut Usage, event: &str, data: &[u8]) -> bool {
    // Typed and borrowing: only the counts are read, the rest of the event is skipped
    // (a whole `Value` here cost more CPU than the rest of the event's handling).
    #[derive(serde::Deserialize)]
    struct Split {
        ephemeral_1h_input_tokens: Option<u64>,
    }
    #[derive(serde::Deserialize)]
    struct Counts {
        input_tokens: Option<u64>,
        output_tokens: Option<u64>,
        cache_read_input_tokens: Option<u64>,
        cache_creation_input_tokens: Option<u64>,
        cache_creation: Option<Split>,
    }
    #[derive(serde::Deserialize)]
    struct Start {
        message: Delta,
    }
    #[derive(serde::Deserialize)]
    struct Delta {
        usage: Option<Counts>,
    }
    let counts = match event {
        "message_start" => serde_json::from_slice::<Start>(data).ok().and_then(|s| s.message.usage),
        "message_delta" => serde_json::from_slice::<Delta>(data).ok().and_then(|d| d.usage),
        _ => None,
    };
    let Some(counts) = counts else { return false };
    let set = |slot: &mut u64, value: Option<u64>| {
        if let Some(value) = value {
            *slot = value;
        }
    };
    set(&mut usage.input, counts.input_tokens);
    set(&mut usage.output, counts.output_tokens);
    set(&mut usage.cache_read, counts.cache_read_input_tokens);
    set(&mut usage.cache_write, counts.cache_creation_input_tokens);
    if let Some(one_hour) = counts.cache_creation.and_then(|s| s.ephemeral_1h_input_tokens) {
        usage.cache_write_1h = Some(one_hour);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_comes_from_message_start_and_message_delta() {
        let mut meter = Meter::default();
        meter.event(
            "message_start",
            br#"{"type":"message_start","message":{"usage":{"input_tokens":12,"cache_read_input_tokens":3,"output_tokens":1,"cache_creation":{"ephemeral_1h_input_tokens":5}}}}"#,
        );
        meter.event(
            "message_delta",
            br#"{"type":"message_delta","usage":{"output_tokens":40}}"#,
        );
        assert_eq!(
            meter.at_end(),
            (
                Usage {
                    input: 12,
                    output: 40,
                    cache_read: 3,
                    cache_write: 0,
                    cache_write_1h: Some(5),
                },
                false
            )
        );
    }

    #[test]
    fn a_stream_cut_before_its_final_counts_is_charged_what_it_streamed() {
        let mut meter = Meter::default();
        meter.event(
            "message_start",
            br#"{"type":"message_start","message":{"usage":{"input_tokens":100,"output_tokens":1}}}"#,
        );
        // 36 deltas of 4 to 8 bytes of text: at least one token each.
        for i in 0..36 {
            meter.content(77 + 4 + i % 5);
        }
        let (usage, estimated) = meter.at_end();
        assert!(estimated);
        assert_eq!(usage.input, 100);
        assert!((36..=72).contains(&usage.output), "{}", usage.output);
        // Bedrock's metrics, when they come, are the counts.
        meter.metrics(Usage {
            input: 100,
            output: 50,
            ..Usage::default()
        });
        assert_eq!(meter.at_end().0.output, 50);
        assert!(!meter.at_end().1);
    }
}
