//! Identifiers shaped like Bedrock's: request ids, `msg_bdrk_` / `toolu_bdrk_` ids,
//! thinking signatures and the `p` padding of chunk payloads.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderValue;
use base64::Engine;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Bedrock pads each chunk payload with part of this alphabet so the frame size does
/// not reveal the token length.
const PADDING: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Unpredictable enough for ids without another dependency: std seeds every
/// `RandomState` with fresh keys, and the counter makes each input distinct.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn base62(len: usize) -> String {
    (0..len)
        .map(|_| char::from(BASE62[(random_u64() % 62) as usize]))
        .collect()
}

/// A UUID-shaped request id, as in `x-amzn-requestid`.
pub fn request_id() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        (b >> 48) & 0x3fff | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// [`request_id`] as a header value.
pub fn request_id_header() -> HeaderValue {
    HeaderValue::from_str(&request_id()).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// A message id as Bedrock returns it for Claude: `msg_bdrk_01` + 22 base62 characters.
pub fn message_id() -> String {
    format!("msg_bdrk_01{}", base62(22))
}

/// A tool-use id as Bedrock returns it: `toolu_bdrk_01` + 22 base62 characters.
pub fn tool_use_id() -> String {
    format!("toolu_bdrk_01{}", base62(22))
}

/// An opaque, base64-looking thinking signature.
pub fn signature() -> String {
    let bytes: Vec<u8> = (0..48).flat_map(|_| random_u64().to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The `p` padding for the `seq`-th frame of a stream.
pub fn padding(seq: usize) -> &'static str {
    &PADDING[..1 + (seq * 7) % (PADDING.len() - 1)]
}

/// Microseconds since the Unix epoch, for `emulator:stamp`.
pub fn unix_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_micros())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch, for the stats endpoint.
pub fn unix_millis() -> u64 {
    u64::try_from(unix_micros() / 1000).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_bedrock_prefixes_and_lengths() {
        let message = message_id();
        assert!(message.starts_with("msg_bdrk_01"));
        assert_eq!(message.len(), "msg_bdrk_01".len() + 22);
        assert!(tool_use_id().starts_with("toolu_bdrk_01"));
        assert_ne!(message_id(), message_id());
    }

    #[test]
    fn request_ids_look_like_uuids() {
        let id = request_id();
        let parts: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
    }
}
