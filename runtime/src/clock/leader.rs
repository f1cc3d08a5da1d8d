//! One leader's clock: NTP correction underneath, the hybrid logical clock on top, and the trust
//! boundary around both.
//!
//! [`LeaderClock`] is what the replica holds. Raw physical time goes in (read by the shell); the
//! [`ClockCorrector`] turns it into corrected time; the [`Hlc`] turns corrected time into
//! timestamps. Two rules from the design sit here:
//! - a leader whose corrected clock is off by more than its tolerance is fenced:
//!   [`LeaderClock::stamp`] refuses, so no acknowledged write carries a bad timestamp;
//! - a remote timestamp more than `max_offset` ahead of local corrected time never enters the HLC:
//!   [`LeaderClock::observe`] rejects it and the caller reports and fences the sender.

use core::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ClockError;
use super::hlc::{Hlc, HlcTimestamp, DEFAULT_MAX_OFFSET};
use super::ntp::{ClockCorrector, ClockHealth, CorrectionConfig, CorrectionEvent, NtpSample};
use crate::time::WallTime;
use crate::LeaderId;

/// Settings of a [`LeaderClock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaderClockConfig {
    /// How the physical clock is corrected, and when it is fenced.
    pub correction: CorrectionConfig,
    /// How far ahead of local corrected time a remote timestamp may be. Default 500 ms.
    pub max_offset: Duration,
}

impl Default for LeaderClockConfig {
    fn default() -> Self {
        LeaderClockConfig { correction: CorrectionConfig::default(), max_offset: DEFAULT_MAX_OFFSET }
    }
}

/// The clock of one leader: corrected physical time plus a hybrid logical clock, with fencing.
///
/// Call order, for the shell and the replica: [`add_sample`](Self::add_sample) after every NTP
/// exchange; [`stamp`](Self::stamp) for each local write; [`observe`](Self::observe) for each
/// timestamp received from a peer. Each takes the current raw physical time.
///
/// ```
/// use core::time::Duration;
/// use roundtable_runtime::clock::{ClockError, CorrectionConfig, CorrectionMode, LeaderClock, LeaderClockConfig, NtpSample};
/// use roundtable_runtime::{LeaderId, WallTime};
///
/// // A leader that only observes its clock, which is 2 s behind the reference.
/// let config = LeaderClockConfig {
///     correction: CorrectionConfig { mode: CorrectionMode::Observe, ..CorrectionConfig::default() },
///     ..LeaderClockConfig::default()
/// };
/// let mut clock = LeaderClock::new(LeaderId::new(0)?, config)?;
/// let raw = WallTime::from_secs(1_000);
/// assert!(clock.stamp(raw).is_ok(), "unsynchronized is not fenced by default");
/// let reference = raw.saturating_add(Duration::from_secs(2));
/// let _ = clock.add_sample(raw, NtpSample::new(raw, reference, reference, raw))?;
/// assert!(matches!(clock.stamp(raw), Err(ClockError::Fenced { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct LeaderClock {
    corrector: ClockCorrector,
    hlc: Hlc,
    max_offset: Duration,
}

impl LeaderClock {
    /// A clock for `leader` with no samples and a fresh HLC.
    ///
    /// # Errors
    /// [`ClockError::InvalidConfig`] when the correction config is invalid.
    pub fn new(leader: LeaderId, config: LeaderClockConfig) -> Result<Self, ClockError> {
        Ok(LeaderClock {
            corrector: ClockCorrector::new(config.correction)?,
            hlc: Hlc::new(leader),
            max_offset: config.max_offset,
        })
    }

    /// A clock whose HLC resumes after `last` (see [`Hlc::resume`]), e.g. after a restart.
    ///
    /// # Errors
    /// [`ClockError::InvalidConfig`] when the correction config is invalid.
    pub fn resume(last: HlcTimestamp, config: LeaderClockConfig) -> Result<Self, ClockError> {
        Ok(LeaderClock {
            corrector: ClockCorrector::new(config.correction)?,
            hlc: Hlc::resume(last),
            max_offset: config.max_offset,
        })
    }

    /// The leader this clock stamps for.
    #[must_use]
    pub const fn leader(&self) -> LeaderId {
        self.hlc.leader()
    }

    /// The configured `max_offset`.
    #[must_use]
    pub const fn max_offset(&self) -> Duration {
        self.max_offset
    }

    /// Feeds an NTP exchange (see [`ClockCorrector::add_sample`]).
    ///
    /// # Errors
    /// [`ClockError::InvalidSample`] for a sample with impossible timestamps.
    pub fn add_sample(&mut self, raw_now: WallTime, sample: NtpSample) -> Result<CorrectionEvent, ClockError> {
        self.corrector.add_sample(raw_now, sample)
    }

    /// Corrected physical time at raw time `raw_now` (never decreasing).
    pub fn corrected_now(&mut self, raw_now: WallTime) -> WallTime {
        self.corrector.now(raw_now)
    }

    /// Lets the correction slew up to raw time `raw_now` and returns the health as of then. Call it
    /// on every timer tick, so that [`health`](Self::health) follows the slew between samples.
    pub fn tick(&mut self, raw_now: WallTime) -> ClockHealth {
        let _ = self.corrector.now(raw_now);
        self.corrector.health()
    }

    /// A timestamp for a local write at raw time `raw_now`: an HLC local event over corrected time.
    ///
    /// # Errors
    /// - [`ClockError::Fenced`] when the corrected clock is off by more than its tolerance;
    /// - [`ClockError::Unsynchronized`] when there is no sample yet and the config fences that;
    /// - [`ClockError::Exhausted`] when the HLC has reached the end of its range.
    ///
    /// The HLC is then unchanged: no timestamp was issued.
    // Inlined into the caller: the hot path is a few dozen instructions (the slow paths are
    // out of line), and a call returns the `Result` through memory, which the caller then
    // copies — reading back what was just written costs more than the stamp's own logic.
    #[inline(always)]
    pub fn stamp(&mut self, raw_now: WallTime) -> Result<HlcTimestamp, ClockError> {
        let pt = self.corrector.now(raw_now);
        self.corrector.ensure_not_fenced()?;
        if self.hlc.is_exhausted() {
            return Err(ClockError::Exhausted);
        }
        Ok(self.hlc.now(pt))
    }

    /// A timestamp for an entry whose stamp decides nothing (a void: it touches no key, and
    /// peers never merge it into their clocks), issued even while fenced: a fenced leader that
    /// restarted must still fill the gaps in its sequence, or its peers' later entries wait for
    /// ever. The HLC is not advanced.
    pub fn stamp_inert(&mut self, raw_now: WallTime) -> HlcTimestamp {
        let pt = self.corrector.now(raw_now);
        self.hlc.peek(pt)
    }

    /// Merges a timestamp received from a peer at raw time `raw_now` (an HLC receive event over
    /// corrected time). Works while fenced: a fenced leader still learns causality.
    ///
    /// # Errors
    /// [`ClockError::RemoteTooFarAhead`] when `remote` is more than `max_offset` ahead of local
    /// corrected time; the HLC is then unchanged. If this leader is itself fenced
    /// ([`health`](Self::health)), its own clock may be the one at fault.
    pub fn observe(&mut self, remote: HlcTimestamp, raw_now: WallTime) -> Result<HlcTimestamp, ClockError> {
        let pt = self.corrector.now(raw_now);
        self.hlc.receive(remote, pt, self.max_offset)
    }

    /// [`observe`](Self::observe) at corrected time `corrected`, as [`corrected_now`] just
    /// returned it for the same raw time (which it returns again: reading the corrected clock
    /// twice at one raw time changes nothing), so that a receiver reads the clock once.
    ///
    /// [`corrected_now`]: Self::corrected_now
    ///
    /// # Errors
    /// As [`observe`](Self::observe).
    pub fn observe_corrected(&mut self, remote: HlcTimestamp, corrected: WallTime) -> Result<HlcTimestamp, ClockError> {
        self.hlc.receive(remote, corrected, self.max_offset)
    }

    /// [`observe`](Self::observe) without the `max_offset` bound: a far-future timestamp drags
    /// the HLC along. Only for showing that a checker catches it (`fault-injection` feature).
    ///
    /// # Errors
    /// None in practice; the signature matches [`observe`](Self::observe).
    #[cfg(feature = "fault-injection")]
    pub fn observe_unbounded(&mut self, remote: HlcTimestamp, raw_now: WallTime) -> Result<HlcTimestamp, ClockError> {
        let pt = self.corrector.now(raw_now);
        self.hlc.receive(remote, pt, Duration::MAX)
    }

    /// The health of the corrected clock (see [`ClockCorrector::health`]).
    #[must_use]
    pub fn health(&self) -> ClockHealth {
        self.corrector.health()
    }

    /// The best estimate of reference − raw time, in nanoseconds (see
    /// [`ClockCorrector::measured_offset_ns`]).
    #[must_use]
    pub const fn measured_offset_ns(&self) -> Option<i64> {
        self.corrector.measured_offset_ns()
    }

    /// The error the corrected clock still has, in nanoseconds (see
    /// [`ClockCorrector::residual_offset_ns`]).
    #[must_use]
    pub fn residual_offset_ns(&self) -> Option<i64> {
        self.corrector.residual_offset_ns()
    }

    /// Resumes after `last` (the newest timestamp a durable leader persisted): every later
    /// timestamp is greater, so a restart never stamps a write below one made before it.
    pub fn resume_after(&mut self, last: HlcTimestamp) {
        let mine = HlcTimestamp::new(last.ticks(), last.logical(), self.hlc.leader()).unwrap_or(last);
        if mine > self.hlc.last() {
            self.hlc = Hlc::resume(mine);
        }
    }

    /// The last timestamp issued or observed.
    #[must_use]
    pub const fn last(&self) -> HlcTimestamp {
        self.hlc.last()
    }

    /// The NTP corrector, for its measurements.
    #[must_use]
    pub const fn corrector(&self) -> &ClockCorrector {
        &self.corrector
    }

    /// The hybrid logical clock.
    #[must_use]
    pub const fn hlc(&self) -> &Hlc {
        &self.hlc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::CorrectionMode;

    const MS: u64 = 1_000_000;

    fn leader(i: usize) -> LeaderId {
        LeaderId::new(i).expect("leader id in range")
    }

    /// A zero-delay sample saying the reference is `offset_ns` ahead of raw time `raw`.
    fn exact_sample(raw: WallTime, offset_ns: i64) -> NtpSample {
        let reference = raw.offset_by_ns(offset_ns);
        NtpSample::new(raw, reference, reference, raw)
    }

    fn clock(mode: CorrectionMode) -> LeaderClock {
        let config = LeaderClockConfig {
            correction: CorrectionConfig { mode, ..CorrectionConfig::default() },
            ..LeaderClockConfig::default()
        };
        LeaderClock::new(leader(1), config).expect("valid config")
    }

    #[test]
    fn stamps_follow_corrected_time() {
        let mut clock = clock(CorrectionMode::SlewAndStep);
        let raw = WallTime::from_secs(1_000);
        let _ = clock.add_sample(raw, exact_sample(raw, 2_000 * MS as i64));
        let ts = clock.stamp(raw).expect("synchronized");
        assert_eq!(ts.wall_time(), WallTime::from_secs(1_002));
        assert_eq!(ts.leader(), leader(1));
        let next = clock.stamp(raw).expect("synchronized");
        assert!(next > ts);
        assert_eq!(clock.last(), next);
    }

    #[test]
    fn a_fenced_leader_refuses_to_stamp_and_its_hlc_stays_put() {
        let mut clock = clock(CorrectionMode::Observe);
        let raw = WallTime::from_secs(1_000);
        let first = clock.stamp(raw).expect("unsynchronized is not fenced");
        let _ = clock.add_sample(raw, exact_sample(raw, -2_000 * MS as i64));
        let err = clock.stamp(raw).expect_err("fenced");
        assert_eq!(err, ClockError::Fenced { residual_ns: -2_000 * MS as i64, tolerance: Duration::from_millis(400) });
        assert_eq!(clock.last(), first);
        assert!(clock.health().is_fenced());
    }

    #[test]
    fn unsynchronized_can_be_fenced() {
        let config = LeaderClockConfig {
            correction: CorrectionConfig { fence_when_unsynchronized: true, ..CorrectionConfig::default() },
            ..LeaderClockConfig::default()
        };
        let mut clock = LeaderClock::new(leader(0), config).expect("valid config");
        let raw = WallTime::from_secs(1);
        assert_eq!(clock.stamp(raw), Err(ClockError::Unsynchronized));
        let _ = clock.add_sample(raw, exact_sample(raw, 0));
        assert!(clock.stamp(raw).is_ok());
    }

    #[test]
    fn observe_uses_corrected_time_for_the_max_offset_check() {
        // Raw clock 1 s behind; a peer stamps at the true time. Without correction the peer would
        // look 1 s ahead and be rejected.
        let mut clock = clock(CorrectionMode::SlewAndStep);
        let raw = WallTime::from_secs(1_000);
        let peer = HlcTimestamp::from_wall_time(WallTime::from_secs(1_001), 0, leader(2));
        let before = clock.hlc().clone();
        assert!(matches!(clock.observe(peer, raw), Err(ClockError::RemoteTooFarAhead { .. })));
        assert_eq!(clock.hlc(), &before);
        let _ = clock.add_sample(raw, exact_sample(raw, 1_000 * MS as i64));
        let merged = clock.observe(peer, raw).expect("within max_offset");
        assert!(merged > peer);
    }

    #[test]
    fn tick_lets_the_slew_catch_up_with_health() {
        let mut clock = clock(CorrectionMode::SlewOnly);
        let raw = WallTime::from_secs(10_000);
        let _ = clock.add_sample(raw, exact_sample(raw, 500 * MS as i64));
        assert!(clock.health().is_fenced(), "500 ms off, tolerance 400 ms");
        assert_eq!(clock.residual_offset_ns(), Some(500 * MS as i64));
        // 100 ms at 0.5 ms/s: 200 s.
        let later = raw.saturating_add(Duration::from_secs(200));
        assert_eq!(clock.tick(later), ClockHealth::Synchronized { residual_ns: 400 * MS as i64 });
        assert_eq!(clock.measured_offset_ns(), Some(500 * MS as i64));
    }

    #[test]
    fn an_exhausted_hlc_refuses_to_stamp() {
        let last = HlcTimestamp::new(super::super::hlc::MAX_TICKS, u16::MAX, leader(0)).expect("in range");
        let mut clock = LeaderClock::resume(last, LeaderClockConfig::default()).expect("valid");
        assert_eq!(clock.stamp(WallTime::from_secs(1)), Err(ClockError::Exhausted));
    }
}
