//! Home leaders for conflict avoidance: rendezvous (highest-random-weight) hashing, Thaler &
//! Ravishankar 1998, "Using Name-Based Mappings to Increase Hit Rates".
//!
//! Every key has one home among the live leaders: the leader whose weight `hash(key, leader)` is
//! the greatest. All leaders compute the same home from the same live set, without coordination;
//! when the home dies only its keys move (each to its next-highest leader), and when it returns
//! they move back.

use crate::{LeaderId, LeaderSet};

/// FNV-1a over the key, then the leader id, finished with the SplitMix64 mixer so that weights
/// of one key at different leaders are independent-looking (FNV alone is weak in its low bits).
fn weight(key: &[u8], leader: LeaderId) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key.iter().chain(core::iter::once(&(leader.index() as u8))) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The home leader of `key` among `live` (ties, which need equal 64-bit weights, go to the
/// lower id); `None` when nobody is live.
///
/// ```
/// use roundtable_topologies::{rendezvous_home, LeaderSet};
/// let all = LeaderSet::first(5);
/// let home = rendezvous_home(b"user:42", all).unwrap();
/// // The home dies: the key moves to another live leader, and only keys homed there move.
/// let next = rendezvous_home(b"user:42", all.without(home)).unwrap();
/// assert_ne!(home, next);
/// assert_eq!(rendezvous_home(b"user:42", all), Some(home));
/// ```
#[must_use]
pub fn rendezvous_home(key: &[u8], live: LeaderSet) -> Option<LeaderId> {
    live.iter().max_by(|a, b| weight(key, *a).cmp(&weight(key, *b)).then(b.cmp(a)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homes_spread_and_only_the_dead_leaders_keys_move() {
        let all = LeaderSet::first(5);
        let keys: Vec<Vec<u8>> = (0..1000).map(|i| format!("key{i}").into_bytes()).collect();
        let mut per_leader = [0usize; 5];
        for k in &keys {
            per_leader[rendezvous_home(k, all).expect("live").index()] += 1;
        }
        assert!(per_leader.iter().all(|&n| n > 120), "{per_leader:?}");
        let dead = LeaderId::new(2).expect("id");
        for k in &keys {
            let before = rendezvous_home(k, all).expect("live");
            let after = rendezvous_home(k, all.without(dead)).expect("live");
            if before != dead {
                assert_eq!(before, after, "a key whose home lived must not move");
            } else {
                assert_ne!(after, dead);
            }
        }
        assert_eq!(rendezvous_home(b"k", LeaderSet::EMPTY), None);
    }
}
