//! The hybrid logical clock (HLC) of Kulkarni, Demirbas, Madappa, Avva and Leone, "Logical
//! Physical Clocks and Consistent Snapshots in Globally Distributed Databases" (OPODIS 2014).
//!
//! An HLC timestamp `(l, c)` pairs `l`, the largest physical time the leader has heard of, with a
//! logical counter `c` that orders events sharing the same `l`. It captures causality like a
//! Lamport clock (if `e` happened before `f` then `ts(e) < ts(f)`) while staying close to physical
//! time (`l − pt` is at most the clock skew ε), so last-write-wins on HLC timestamps behaves
//! sensibly for humans. The rules, exactly as in the paper (`pt` is the corrected physical time):
//!
//! ```text
//! local or send event:        receive event of a message stamped (l.m, c.m):
//!   l' = l                      l' = l
//!   l  = max(l', pt)            l  = max(l', l.m, pt)
//!   c  = l == l' ? c + 1 : 0    c  = l == l' == l.m ? max(c, c.m) + 1
//!                                  : l == l'        ? c + 1
//!                                  : l == l.m       ? c.m + 1
//!                                  :                  0
//! ```
//!
//! Timestamps use the compact form of the paper's §6.2: 48 bits of physical time in units of
//! 2^-16 s (≈ 15.26 µs, a *tick*) since the Unix epoch — enough until the year 2106 — and a 16-bit
//! counter, packed into one `u64` ([`HlcTimestamp::to_compact`]). The leader id is appended as a
//! final tie-breaker, which makes the order total: two leaders never issue equal timestamps.
//!
//! **Counter overflow.** The paper bounds `c` by `N·(ε + 1)` (in ticks), far below 65,535 at
//! realistic rates, but the type must not wrap. When `c` would exceed `u16::MAX`, the clock moves
//! `l` one tick ahead instead and resets `c` to 0. Timestamps stay strictly increasing; the price
//! is that `l` may lead `pt` by one tick per 65,536 events issued within a single tick.
//!
//! **Trusting remote time** (as CockroachDB and uhlc do): [`Hlc::receive`] refuses a remote
//! timestamp more than `max_offset` ([`DEFAULT_MAX_OFFSET`], 500 ms) ahead of local physical time
//! with [`ClockError::RemoteTooFarAhead`], and leaves the clock untouched, so one leader with a
//! clock in the future cannot drag the cluster into the future.

use core::fmt;
use core::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ClockError;
use crate::time::WallTime;
use crate::LeaderId;

/// Ticks of HLC physical time per second: the unit is 2^-16 s (≈ 15.26 µs).
pub const TICKS_PER_SEC: u64 = 1 << 16;

/// The largest physical part of an HLC timestamp: 2^48 − 1 ticks (early 2106).
pub const MAX_TICKS: u64 = (1 << 48) - 1;

/// Default `max_offset`: a remote timestamp further ahead of local physical time is rejected.
/// 500 ms, as in CockroachDB and uhlc.
pub const DEFAULT_MAX_OFFSET: Duration = Duration::from_millis(500);

const NS_PER_SEC: u64 = 1_000_000_000;

/// A hybrid-logical-clock timestamp: physical part, logical counter, and the leader that issued
/// it.
///
/// The order is total and lexicographic on (physical part, logical counter, leader). The
/// physical part is always below 2^48 — constructors saturate or check, and decoding rejects
/// anything larger — so [`to_compact`](Self::to_compact) never loses bits.
///
/// ```
/// use roundtable_runtime::clock::HlcTimestamp;
/// use roundtable_runtime::{LeaderId, WallTime};
///
/// let leader = LeaderId::new(1)?;
/// let ts = HlcTimestamp::new(1_767_225_600 * 65_536 + 1, 3, leader)?;
/// assert_eq!(ts.to_string(), "1767225600.000015+3@L1");
/// assert_eq!(HlcTimestamp::from_compact(ts.to_compact(), leader), ts);
/// assert!(ts.wall_time() <= WallTime::from_nanos(1_767_225_600_000_015_259));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawHlcTimestamp", into = "RawHlcTimestamp")]
pub struct HlcTimestamp {
    // Field order is the comparison order of the derived `Ord`.
    time: u64,
    logical: u16,
    leader: LeaderId,
}

/// The serialized shape of [`HlcTimestamp`], checked on the way in.
#[derive(Serialize, Deserialize)]
#[serde(rename = "HlcTimestamp")]
struct RawHlcTimestamp {
    time: u64,
    logical: u16,
    leader: LeaderId,
}

impl From<HlcTimestamp> for RawHlcTimestamp {
    fn from(ts: HlcTimestamp) -> Self {
        RawHlcTimestamp { time: ts.time, logical: ts.logical, leader: ts.leader }
    }
}

impl TryFrom<RawHlcTimestamp> for HlcTimestamp {
    type Error = ClockError;
    fn try_from(raw: RawHlcTimestamp) -> Result<Self, ClockError> {
        HlcTimestamp::new(raw.time, raw.logical, raw.leader)
    }
}

impl HlcTimestamp {
    /// A timestamp from its parts; `ticks` is the physical part in units of 2^-16 s.
    ///
    /// # Errors
    /// [`ClockError::TimeOutOfRange`] when `ticks > MAX_TICKS`.
    pub const fn new(ticks: u64, logical: u16, leader: LeaderId) -> Result<Self, ClockError> {
        if ticks > MAX_TICKS {
            return Err(ClockError::TimeOutOfRange { ticks });
        }
        Ok(HlcTimestamp { time: ticks, logical, leader })
    }

    /// A timestamp whose physical part is the tick containing `pt` (saturating at
    /// [`MAX_TICKS`]).
    #[must_use]
    pub fn from_wall_time(pt: WallTime, logical: u16, leader: LeaderId) -> Self {
        HlcTimestamp { time: Self::ticks_at(pt), logical, leader }
    }

    /// The tick containing wall time `pt`: `floor(ns · 2^16 / 10^9)`, saturating at
    /// [`MAX_TICKS`].
    #[must_use]
    #[inline]
    pub fn ticks_at(pt: WallTime) -> u64 {
        // In u64, split at whole seconds: with ns = secs · 10^9 + sub (sub < 10^9),
        // ns · 2^16 / 10^9 = secs · 2^16 + sub · 2^16 / 10^9, and since secs · 2^16 is an integer
        // the floor of the sum is secs · 2^16 + floor(sub · 2^16 / 10^9), the latter below 2^16.
        // Ranges: ns < 2^64, so secs < 2^64 / 10^9 < 2^35 and secs · 2^16 < 2^51; sub · 2^16 <
        // 10^9 · 2^16 < 2^46. Nothing overflows, the result is below 2^51, and every division is
        // by a constant (the compiler multiplies instead).
        let ns = pt.as_nanos();
        let (secs, sub) = (ns / NS_PER_SEC, ns % NS_PER_SEC);
        let ticks = secs * TICKS_PER_SEC + sub * TICKS_PER_SEC / NS_PER_SEC;
        ticks.min(MAX_TICKS)
    }

    /// The physical part, in ticks of 2^-16 s since the Unix epoch (below 2^48).
    #[must_use]
    pub const fn ticks(self) -> u64 {
        self.time
    }

    /// The logical counter.
    #[must_use]
    pub const fn logical(self) -> u16 {
        self.logical
    }

    /// The leader that issued this timestamp.
    #[must_use]
    pub const fn leader(self) -> LeaderId {
        self.leader
    }

    /// The first instant of the physical part's tick: `ceil(ticks · 10^9 / 2^16)` ns. For any `pt`,
    /// `from_wall_time(pt, ..).wall_time() <= pt`, and converting back gives the same tick.
    #[must_use]
    pub fn wall_time(self) -> WallTime {
        WallTime::from_nanos(tick_start_ns(self.time))
    }

    /// The compact form of the paper's §6.2: `ticks << 16 | logical`. Preserves the order of
    /// (physical part, logical counter); the leader is not included.
    #[must_use]
    pub const fn to_compact(self) -> u64 {
        (self.time << 16) | self.logical as u64
    }

    /// The timestamp of `leader` with compact form `compact` (every `u64` is valid).
    #[must_use]
    pub const fn from_compact(compact: u64, leader: LeaderId) -> Self {
        HlcTimestamp { time: compact >> 16, logical: (compact & 0xffff) as u16, leader }
    }
}

/// The first nanosecond of tick `ticks` (`ticks ≤ 2^48`): `ceil(ticks · 10^9 / 2^16)`, the
/// smallest `ns` with `ticks_at(ns) ≥ ticks`.
///
/// In u64, split at whole seconds as in [`HlcTimestamp::ticks_at`]: with ticks = secs · 2^16 +
/// frac, ceil(ticks · 10^9 / 2^16) = secs · 10^9 + ceil(frac · 10^9 / 2^16). Ranges: ticks ≤ 2^48,
/// so secs ≤ 2^32 and secs · 10^9 < 2^62; frac · 10^9 < 2^16 · 2^30 = 2^46; the sum is below
/// 2^62 + 10^9 < 2^64.
const fn tick_start_ns(ticks: u64) -> u64 {
    debug_assert!(ticks <= MAX_TICKS + 1);
    let (secs, frac) = (ticks / TICKS_PER_SEC, ticks % TICKS_PER_SEC);
    secs * NS_PER_SEC + (frac * NS_PER_SEC).div_ceil(TICKS_PER_SEC)
}

/// `seconds.micros+logical@leader`, e.g. `1767225600.000015+3@L1` (the micros are those of
/// [`HlcTimestamp::wall_time`]).
impl fmt::Display for HlcTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.wall_time().as_nanos();
        let secs = ns / 1_000_000_000;
        let micros = ns % 1_000_000_000 / 1_000;
        write!(f, "{secs}.{micros:06}+{}@{}", self.logical, self.leader)
    }
}

impl fmt::Debug for HlcTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The hybrid logical clock of one leader: state `(l, c)`, initially `(0, 0)`.
///
/// Feed it the corrected physical time; it never reads a clock. Successive results of
/// [`now`](Self::now) and [`receive`](Self::receive) are strictly increasing (until the
/// representable range runs out around the year 2106, see [`is_exhausted`](Self::is_exhausted)).
///
/// ```
/// use core::time::Duration;
/// use roundtable_runtime::clock::{ClockError, Hlc, HlcTimestamp, DEFAULT_MAX_OFFSET};
/// use roundtable_runtime::{LeaderId, WallTime};
///
/// let mut a = Hlc::new(LeaderId::new(0)?);
/// let mut b = Hlc::new(LeaderId::new(1)?);
/// let pt = WallTime::from_secs(1_000);
/// let sent = a.now(pt.saturating_add(Duration::from_millis(100))); // a's clock is 100 ms ahead
/// let received = b.receive(sent, pt, DEFAULT_MAX_OFFSET)?;
/// assert!(received > sent); // causality, despite b's slower clock
/// assert_eq!((received.ticks(), received.logical()), (sent.ticks(), 1));
///
/// // A timestamp 2 s ahead is refused, and b's clock does not move.
/// let future = HlcTimestamp::from_wall_time(WallTime::from_secs(1_002), 0, LeaderId::new(2)?);
/// assert!(matches!(
///     b.receive(future, pt, DEFAULT_MAX_OFFSET),
///     Err(ClockError::RemoteTooFarAhead { .. })
/// ));
/// assert_eq!(b.last(), received);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hlc {
    l: u64,
    c: u16,
    leader: LeaderId,
    /// The first nanosecond of tick `l + 1`. A physical time before it is in tick `l` or earlier,
    /// so it cannot raise `l`: [`peek`](Self::peek) then skips converting it to ticks — one
    /// comparison instead of a chain of multiplications, on all but the first event of each tick
    /// (a tick is 15 µs). A function of `l`, so equality is unaffected.
    next_tick_ns: u64,
}

impl Hlc {
    /// A fresh clock for `leader`, in state `(0, 0)`.
    #[must_use]
    pub const fn new(leader: LeaderId) -> Self {
        Hlc { l: 0, c: 0, leader, next_tick_ns: tick_start_ns(1) }
    }

    /// A clock resuming after `last`, e.g. the largest timestamp this leader persisted before a
    /// restart: every later timestamp is greater than `last`. Its leader is `last.leader()`.
    #[must_use]
    pub const fn resume(last: HlcTimestamp) -> Self {
        Hlc { l: last.time, c: last.logical, leader: last.leader, next_tick_ns: tick_start_ns(last.time + 1) }
    }

    /// `max(l, ticks_at(pt))`: the physical part of the next event at physical time `pt`, before
    /// the remote timestamp of a receive is taken into account.
    #[inline]
    fn l_at(&self, pt: WallTime) -> u64 {
        // pt < tick_start_ns(l + 1) ⟺ ticks_at(pt) ≤ l (tick_start_ns is the least ns of a tick).
        if pt.as_nanos() < self.next_tick_ns {
            self.l
        } else {
            self.l.max(HlcTimestamp::ticks_at(pt))
        }
    }

    /// The leader this clock stamps for.
    #[must_use]
    pub const fn leader(&self) -> LeaderId {
        self.leader
    }

    /// The current state `(l, c)` as a timestamp: the last one issued or received (`(0, 0)` for a
    /// fresh clock).
    #[must_use]
    pub const fn last(&self) -> HlcTimestamp {
        HlcTimestamp { time: self.l, logical: self.c, leader: self.leader }
    }

    /// What [`now`](Self::now) would return at physical time `pt`, without advancing the clock.
    #[must_use]
    #[inline]
    pub fn peek(&self, pt: WallTime) -> HlcTimestamp {
        let l = self.l_at(pt);
        let c = if l == self.l { u32::from(self.c) + 1 } else { 0 };
        self.stamp(l, c)
    }

    /// A local or send event at physical time `pt`: `l = max(l, pt)`, `c = c + 1` if `l` did not
    /// change, else 0. Returns the new timestamp, greater than every earlier one.
    #[inline]
    pub fn now(&mut self, pt: WallTime) -> HlcTimestamp {
        let ts = self.peek(pt);
        self.set(ts);
        ts
    }

    /// A receive event at physical time `pt` of a message stamped `remote`, by the paper's rules.
    /// Returns the new timestamp, greater than both the previous state and `remote`.
    ///
    /// # Errors
    /// [`ClockError::RemoteTooFarAhead`] when `remote` is more than `max_offset` ahead of `pt`
    /// (comparing `remote.wall_time()`, the start of its tick, with `pt` in nanoseconds). The
    /// clock is then exactly as it was.
    pub fn receive(
        &mut self,
        remote: HlcTimestamp,
        pt: WallTime,
        max_offset: Duration,
    ) -> Result<HlcTimestamp, ClockError> {
        let remote_wall = remote.wall_time();
        if remote_wall > pt.saturating_add(max_offset) {
            return Err(ClockError::RemoteTooFarAhead {
                remote,
                ahead_by: remote_wall.saturating_duration_since(pt),
                max_offset,
            });
        }
        let (l_old, lm) = (self.l, remote.time);
        let l = self.l_at(pt).max(lm);
        let c = if l == l_old && l == lm {
            u32::from(self.c.max(remote.logical)) + 1
        } else if l == l_old {
            u32::from(self.c) + 1
        } else if l == lm {
            u32::from(remote.logical) + 1
        } else {
            0
        };
        let ts = self.stamp(l, c);
        self.set(ts);
        Ok(ts)
    }

    /// Whether the clock is at the largest representable timestamp (`l = MAX_TICKS`,
    /// `c = u16::MAX`): from here on it cannot advance, so [`now`](Self::now) would repeat
    /// [`last`](Self::last). Only a physical time beyond the year 2106 gets here.
    #[must_use]
    #[inline]
    pub const fn is_exhausted(&self) -> bool {
        self.l == MAX_TICKS && self.c == u16::MAX
    }

    /// The timestamp `(l, c)`, carrying a counter overflow into the next tick (saturating at the
    /// end of the range).
    #[inline]
    fn stamp(&self, l: u64, c: u32) -> HlcTimestamp {
        let (time, logical) = match u16::try_from(c) {
            Ok(c) => (l, c),
            Err(_) if l < MAX_TICKS => (l + 1, 0),
            Err(_) => (MAX_TICKS, u16::MAX),
        };
        debug_assert!(time <= MAX_TICKS);
        HlcTimestamp { time, logical, leader: self.leader }
    }

    #[inline]
    fn set(&mut self, ts: HlcTimestamp) {
        debug_assert!((ts.time, ts.logical) >= (self.l, self.c), "the HLC never moves backwards");
        if ts.time != self.l {
            self.l = ts.time;
            self.next_tick_ns = tick_start_ns(ts.time + 1);
        }
        self.c = ts.logical;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader(i: usize) -> LeaderId {
        LeaderId::new(i).expect("leader id in range")
    }

    fn ts(ticks: u64, logical: u16, from: usize) -> HlcTimestamp {
        HlcTimestamp::new(ticks, logical, leader(from)).expect("ticks in range")
    }

    /// The wall time at the start of tick `ticks`.
    fn at(ticks: u64) -> WallTime {
        ts(ticks, 0, 0).wall_time()
    }

    #[test]
    fn local_events_follow_the_paper() {
        let mut hlc = Hlc::new(leader(0));
        assert_eq!(hlc.now(at(10)), ts(10, 0, 0), "pt moved: c = 0");
        assert_eq!(hlc.now(at(10)), ts(10, 1, 0), "same tick: c + 1");
        assert_eq!(hlc.now(at(7)), ts(10, 2, 0), "pt behind l: l kept, c + 1");
        assert_eq!(hlc.peek(at(11)), ts(11, 0, 0));
        assert_eq!(hlc.last(), ts(10, 2, 0), "peek does not advance");
        assert_eq!(hlc.now(at(11)), ts(11, 0, 0));
    }

    #[test]
    fn receive_events_follow_the_paper() {
        let max = DEFAULT_MAX_OFFSET;
        let mut hlc = Hlc::resume(ts(10, 5, 0));
        // l == l' == l.m: max(c, c.m) + 1.
        assert_eq!(hlc.receive(ts(10, 8, 1), at(9), max), Ok(ts(10, 9, 0)));
        // l == l' only: c + 1.
        assert_eq!(hlc.receive(ts(4, 60, 1), at(9), max), Ok(ts(10, 10, 0)));
        // l == l.m only: c.m + 1.
        assert_eq!(hlc.receive(ts(12, 3, 1), at(11), max), Ok(ts(12, 4, 0)));
        // pt is the largest: 0.
        assert_eq!(hlc.receive(ts(12, 9, 1), at(20), max), Ok(ts(20, 0, 0)));
        // pt equal to l.m and both ahead of l': l == l.m, so c.m + 1.
        assert_eq!(hlc.receive(ts(30, 2, 1), at(30), max), Ok(ts(30, 3, 0)));
    }

    #[test]
    fn counter_overflow_moves_to_the_next_tick() {
        let mut hlc = Hlc::resume(ts(100, u16::MAX - 1, 3));
        assert_eq!(hlc.now(at(100)), ts(100, u16::MAX, 3));
        assert_eq!(hlc.now(at(100)), ts(101, 0, 3), "no wrap: next tick");
        assert_eq!(hlc.now(at(100)), ts(101, 1, 3));

        let mut hlc = Hlc::resume(ts(100, 7, 3));
        let remote = ts(100, u16::MAX, 1);
        assert_eq!(hlc.receive(remote, at(100), DEFAULT_MAX_OFFSET), Ok(ts(101, 0, 3)));
    }

    #[test]
    fn the_end_of_the_range_saturates() {
        let mut hlc = Hlc::resume(ts(MAX_TICKS, u16::MAX - 1, 0));
        assert!(!hlc.is_exhausted());
        assert_eq!(hlc.now(WallTime::from_nanos(u64::MAX)), ts(MAX_TICKS, u16::MAX, 0));
        assert!(hlc.is_exhausted());
        assert_eq!(hlc.now(WallTime::from_nanos(u64::MAX)), ts(MAX_TICKS, u16::MAX, 0));
        assert_eq!(HlcTimestamp::ticks_at(WallTime::from_nanos(u64::MAX)), MAX_TICKS);
    }

    #[test]
    fn far_ahead_remote_time_is_rejected_without_touching_the_clock() {
        let mut hlc = Hlc::new(leader(0));
        let pt = WallTime::from_secs(1_767_225_600);
        let _ = hlc.now(pt);
        let before = hlc.clone();
        let remote = HlcTimestamp::from_wall_time(pt.saturating_add(Duration::from_secs(2)), 4, leader(2));
        let err = hlc.receive(remote, pt, DEFAULT_MAX_OFFSET).expect_err("2 s ahead");
        assert_eq!(hlc, before);
        assert_eq!(
            err,
            ClockError::RemoteTooFarAhead { remote, ahead_by: Duration::from_secs(2), max_offset: DEFAULT_MAX_OFFSET }
        );
        assert_eq!(
            err.to_string(),
            "remote timestamp 1767225602.000000+4@L2 is 2.000s ahead of local physical time, \
             beyond max_offset 500ms"
        );
        // Exactly max_offset ahead is still accepted.
        let edge = HlcTimestamp::from_wall_time(pt.saturating_add(DEFAULT_MAX_OFFSET), 0, leader(2));
        assert!(hlc.receive(edge, pt, DEFAULT_MAX_OFFSET).is_ok());
    }

    #[test]
    fn ticks_and_wall_time_round_trip() {
        for ticks in [0, 1, 65_535, 65_536, 1_767_225_600 * 65_536 + 12_345, MAX_TICKS] {
            let t = ts(ticks, 0, 0);
            assert_eq!(HlcTimestamp::ticks_at(t.wall_time()), ticks);
        }
        for ns in [0, 1, 15_258, 15_259, 1_000_000_000, 1_767_225_600_123_456_789] {
            let pt = WallTime::from_nanos(ns);
            let t = HlcTimestamp::from_wall_time(pt, 0, leader(0));
            assert!(t.wall_time() <= pt);
            assert!(ts(t.ticks() + 1, 0, 0).wall_time() > pt);
        }
    }

    /// The u64 arithmetic of `ticks_at` and `wall_time` agrees with the exact 128-bit formulas
    /// they replaced, at the edges of their ranges and on a spread of values in between.
    #[test]
    fn u64_tick_arithmetic_matches_the_128_bit_formulas() {
        let ticks_u128 = |ns: u64| {
            let ticks = u128::from(ns) * u128::from(TICKS_PER_SEC) / u128::from(NS_PER_SEC);
            u64::try_from(ticks).map_or(MAX_TICKS, |t| t.min(MAX_TICKS))
        };
        let wall_u128 = |ticks: u64| {
            let ns = (u128::from(ticks) * u128::from(NS_PER_SEC)).div_ceil(u128::from(TICKS_PER_SEC));
            u64::try_from(ns).expect("below 2^64")
        };
        let mut values = vec![0, 1, 15_258, 15_259, 999_999_999, 1_000_000_000, u64::MAX, u64::MAX - 1, MAX_TICKS];
        let boundary_ns = wall_u128(MAX_TICKS);
        values.extend([boundary_ns - 1, boundary_ns, boundary_ns + 1]);
        // A multiplicative walk over the whole u64 range.
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            values.push(x);
            values.push(x >> (x % 64));
        }
        for ns in values {
            assert_eq!(HlcTimestamp::ticks_at(WallTime::from_nanos(ns)), ticks_u128(ns), "ticks_at({ns})");
            let ticks = ns & MAX_TICKS;
            assert_eq!(ts(ticks, 0, 0).wall_time().as_nanos(), wall_u128(ticks), "wall_time({ticks})");
        }
    }

    proptest::proptest! {
        /// Skipping the conversion of a physical time inside the clock's current tick changes
        /// nothing: every event's physical part is `max(l, ticks_at(pt))` (and the remote's), over
        /// runs of local and receive events at times around tick boundaries and the range's end.
        #[test]
        fn events_use_the_physical_part_of_the_paper(
            start in proptest::prop_oneof![0u64..1_000_000, 1_767_225_600_000_000_000u64..1_767_225_700_000_000_000, u64::MAX - 1_000_000..u64::MAX],
            steps in proptest::collection::vec((0u64..40_000, proptest::bool::ANY, 0u64..40_000), 1..200),
        ) {
            let mut hlc = Hlc::new(leader(0));
            let mut pt = start;
            for (step, receive, remote_back) in steps {
                pt = pt.saturating_add(step);
                let at = WallTime::from_nanos(pt);
                let before = hlc.last();
                let expected_l = before.ticks().max(HlcTimestamp::ticks_at(at));
                let peeked = hlc.peek(at);
                proptest::prop_assert!(
                    peeked.ticks() == expected_l || (peeked.ticks() == expected_l + 1 && peeked.logical() == 0)
                );
                let ts = if receive {
                    let remote_ticks = HlcTimestamp::ticks_at(WallTime::from_nanos(pt.saturating_sub(remote_back)));
                    let remote = HlcTimestamp::new(remote_ticks, 7, leader(1)).expect("in range");
                    let ts = hlc.receive(remote, at, Duration::MAX).expect("not ahead");
                    let l = expected_l.max(remote_ticks);
                    proptest::prop_assert!(ts.ticks() == l || (ts.ticks() == l + 1 && ts.logical() == 0));
                    ts
                } else {
                    let ts = hlc.now(at);
                    proptest::prop_assert!(ts.ticks() == expected_l || (ts.ticks() == expected_l + 1 && ts.logical() == 0));
                    ts
                };
                proptest::prop_assert!(ts > before || hlc.is_exhausted());
                proptest::prop_assert_eq!(hlc.next_tick_ns, tick_start_ns(hlc.l + 1));
                proptest::prop_assert_eq!(&hlc, &Hlc::resume(hlc.last()));
            }
        }
    }

    #[test]
    fn order_is_time_then_counter_then_leader() {
        assert!(ts(1, 9, 9) < ts(2, 0, 0));
        assert!(ts(2, 0, 9) < ts(2, 1, 0));
        assert!(ts(2, 1, 0) < ts(2, 1, 1));
        assert_eq!(ts(5, 7, 1).to_compact(), 5 << 16 | 7);
        assert_eq!(HlcTimestamp::from_compact(u64::MAX, leader(1)), ts(MAX_TICKS, u16::MAX, 1));
    }

    #[test]
    fn display_shows_seconds_micros_counter_and_leader() {
        assert_eq!(ts(1_767_225_600 * 65_536 + 1, 3, 1).to_string(), "1767225600.000015+3@L1");
        assert_eq!(format!("{:?}", ts(0, 0, 63)), "0.000000+0@L63");
        assert_eq!(
            ClockError::TimeOutOfRange { ticks: 1 << 48 }.to_string(),
            "HLC time of 281474976710656 ticks is out of range (must be below 2^48)"
        );
    }

    #[test]
    fn serde_round_trips_and_rejects_out_of_range_time() {
        let t = ts(1_767_225_600 * 65_536, 42, 7);
        let bytes = postcard::to_allocvec(&t).expect("encodes");
        assert_eq!(postcard::from_bytes::<HlcTimestamp>(&bytes), Ok(t));

        let bad = postcard::to_allocvec(&(1u64 << 48, 0u16, 1u8)).expect("encodes");
        assert!(postcard::from_bytes::<HlcTimestamp>(&bad).is_err());
        let bad_leader = postcard::to_allocvec(&(1u64, 0u16, 64u8)).expect("encodes");
        assert!(postcard::from_bytes::<HlcTimestamp>(&bad_leader).is_err());
        let ok = postcard::to_allocvec(&(MAX_TICKS, 0u16, 1u8)).expect("encodes");
        assert_eq!(postcard::from_bytes::<HlcTimestamp>(&ok), Ok(ts(MAX_TICKS, 0, 1)));
    }
}
