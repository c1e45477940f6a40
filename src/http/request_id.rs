//! Request ids: unique per request, shaped like Anthropic's, and cheap to make.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// A request id like Anthropic's (`req_` and 24 base-62 characters). Ids only have to be
/// unique, not secret, so they come from a counter mixed with one random seed per process,
/// instead of a system call per request.
pub fn new() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        let mut bytes = [0u8; 8];
        // Without randomness ids still differ within the process; only cross-process
        // uniqueness would suffer, so a failed read is not fatal.
        let _ = getrandom::fill(&mut bytes);
        u64::from_le_bytes(bytes)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut state = [
        splitmix64(seed ^ n),
        splitmix64(seed.rotate_left(32) ^ n ^ 0x5851_f42d_4c95_7f2d),
    ];
    let mut id = String::with_capacity(28);
    id.push_str("req_");
    for i in 0..24 {
        let word = &mut state[i / 12];
        id.push(ALPHABET[(*word % 62) as usize] as char);
        *word /= 62;
    }
    id
}

/// SplitMix64: a bijective mix, so distinct counters give distinct ids.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_look_like_anthropics_and_never_repeat() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| super::new()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids
            .iter()
            .all(|id| id.starts_with("req_") && id.len() == 28 && id[4..].bytes().all(|b| b.is_ascii_alphanumeric())));
    }
}
