//! The wire format's size goal (issue 6): a replicated put, and an entry of a batch, take at most
//! 0.3× the bytes of `serde_json` of the same message.
//!
//! The messages are those of `benches/benches/wire.rs` (which prints the figures): consecutive
//! writes of leader 2 in a 5-leader cluster, sequence numbers around 10,000, keys like
//! `user/000123`, 16-byte ASCII values. A second test varies the value (empty to 4 KiB, text and
//! binary), since values dominate large frames.

use std::time::Duration;

use roundtable::runtime::causality::{Dot, Seq, VersionVector};
use roundtable::runtime::clock::HlcTimestamp;
use roundtable::runtime::wire::{self, Envelope, PeerMessage, ReplicatedEntry};
use roundtable::runtime::{Entry, Key, LeaderId, LeaderSet, Op, Value, WallTime};

/// The goal: postcard bytes ÷ JSON bytes.
const RATIO_MAX: f64 = 0.3;
/// The leader that wrote the entries.
const ORIGIN: usize = 2;

fn leader(i: usize) -> LeaderId {
    LeaderId::new(i).expect("leader id in range")
}

/// The `k`-th consecutive write at leader [`ORIGIN`] of a 5-leader cluster, carrying `value`.
fn entry(k: u64, value: Vec<u8>) -> ReplicatedEntry {
    let seq = 10_000 + k;
    let mut deps = VersionVector::new();
    for (i, base) in [9_871, 10_112, 0, 9_954, 10_033].into_iter().enumerate() {
        let count = if i == ORIGIN { seq - 1 } else { base + k / 3 };
        deps.set(leader(i), Seq(count));
    }
    let written_at = WallTime::from_secs(1_767_225_600).saturating_add(Duration::from_micros(37 * k));
    let entry = Entry {
        dot: Dot::new(leader(ORIGIN), Seq(seq)),
        hlc: HlcTimestamp::from_wall_time(written_at, 0, leader(ORIGIN)),
        deps,
        key: Key::new(format!("user/{:06}", (k * 7_919) % 1_000_000)).expect("short key"),
        op: Op::Put(Value::new(value).expect("value within bounds")),
    };
    ReplicatedEntry { entry: entry.into(), seen_by: LeaderSet::single(leader(ORIGIN)) }
}

/// The 16-byte ASCII value of the `k`-th write.
fn text_value(k: u64) -> Vec<u8> {
    format!("value-{:010}", 10_000 + k).into_bytes()
}

/// A frame of `count` consecutive writes, with values from `value`.
fn frame(count: usize, value: impl Fn(u64) -> Vec<u8>) -> Envelope {
    let entries = (0..count as u64).map(|k| entry(k, value(k))).collect();
    Envelope::new(leader(ORIGIN), PeerMessage::Replicate { entries, catch_up: false })
}

/// `(postcard bytes, JSON bytes)` of `envelope`, after checking that both decode back to it.
fn sizes(envelope: &Envelope) -> (usize, usize) {
    let postcard = wire::encode(envelope).expect("the frame fits");
    let json = serde_json::to_vec(envelope).expect("serializable");
    assert_eq!(&wire::decode(&postcard).expect("postcard decodes"), envelope);
    assert_eq!(&serde_json::from_slice::<Envelope>(&json).expect("JSON decodes"), envelope);
    (postcard.len(), json.len())
}

fn check(what: &str, envelope: &Envelope) {
    let (postcard, json) = sizes(envelope);
    let ratio = postcard as f64 / json as f64;
    assert!(ratio <= RATIO_MAX, "{what}: postcard {postcard} B ÷ JSON {json} B = {ratio:.3}, above {RATIO_MAX}");
}

#[test]
fn a_put_and_a_batched_entry_take_at_most_three_tenths_of_json() {
    check("a lone put", &frame(1, text_value));
    for count in [16, 64] {
        // Per entry, both sides are divided by the same count: the ratio of the frames is the
        // ratio per entry.
        check(&format!("a batch of {count}"), &frame(count, text_value));
    }
}

#[test]
fn the_goal_holds_for_empty_to_large_text_and_binary_values() {
    for len in [0_usize, 1, 16, 256, 4_096] {
        let text = |k: u64| (0..len).map(|i| b'a' + ((i as u64 + k) % 26) as u8).collect::<Vec<u8>>();
        let binary = |k: u64| (0..len).map(|i| ((i as u64 * 131 + k * 7) % 256) as u8).collect::<Vec<u8>>();
        check(&format!("a put of {len} text bytes"), &frame(1, text));
        check(&format!("a put of {len} binary bytes"), &frame(1, binary));
        check(&format!("a batch of 16 with {len} text bytes each"), &frame(16, text));
        check(&format!("a batch of 16 with {len} binary bytes each"), &frame(16, binary));
    }
}
