//! NTP clock correction: four-timestamp samples, a minimum-delay filter, slewing and stepping.
//!
//! The arithmetic is that of NTP and SNTP, [RFC 5905] §8 ("On-Wire Protocol") and §10 ("Clock
//! Filter Algorithm"). A sample is one request/response exchange with a reference clock:
//!
//! ```text
//!   t1 request leaves (local raw clock)      t2 request arrives (reference clock)
//!   t4 response arrives (local raw clock)    t3 response leaves (reference clock)
//!
//!   offset θ = ((t2 − t1) + (t3 − t4)) / 2   the reference minus the raw clock
//!   delay  δ = (t4 − t1) − (t3 − t2)         the round trip spent on the network
//! ```
//!
//! If the two network legs take `d1` and `d2`, θ is off by `(d1 − d2) / 2`, which is at most
//! `δ / 2`: the sample with the smallest delay is the most trustworthy. [`ClockCorrector`] keeps
//! the last [`SAMPLE_WINDOW`] (8) samples, like NTP's clock filter, and trusts the one with the
//! smallest *distance* `δ/2 + PHI·age`, where `PHI` = [`PHI_PPM`] (15 ppm) is RFC 5905's bound on
//! how fast an undisciplined quartz clock wanders away. Ageing favours fresher samples: an old
//! sample loses to a newer one whose half-delay is larger by less than 15 ppm of their age
//! difference. With 8 samples a minute apart the oldest is 7 minutes older than the newest, worth
//! 6.3 ms of distance, about what a 15 ppm drift accumulates in that time; so a stale low-delay
//! sample cannot pin the estimate while the raw clock drifts away from it. With samples seconds
//! apart, ageing only breaks near-ties (towards the newest). Unlike full NTP there is no
//! popcorn-spike suppressor, no clustering of several servers and no frequency (drift)
//! estimation: one reference, minimum distance wins.
//!
//! Samples are measured against the **raw** clock (t1 and t4 come from the uncorrected clock), so
//! the estimate `θ` is "reference − raw" and the corrected time is `raw + applied correction`.
//! Because the raw clock itself is never adjusted, samples stay valid across steps (NTP has to
//! flush its filter when it steps the system clock; this corrector does not).
//!
//! The applied correction follows the estimate (the *target*) in one of two ways:
//! - **slew**: move towards the target by at most `max_slew_ppm` of the raw time that passes
//!   (RFC 5905 and `adjtime`: 500 ppm, i.e. 0.5 ms per second), so the corrected clock speeds up
//!   or slows down but never jumps;
//! - **step**: when the target is more than `step_threshold` away (RFC 5905: 128 ms), jump to it.
//!
//! The corrected clock **never runs backwards**: after a negative step it stands still until the
//! computed time catches up (the hybrid logical clock on top keeps timestamps strictly increasing
//! meanwhile with its logical counter).
//!
//! Finally the corrector judges its own health: when the remaining error of the corrected clock
//! exceeds `tolerance`, the clock is [`ClockHealth::Fenced`], and a leader refuses to stamp writes
//! ([`LeaderClock`](super::LeaderClock)). The remaining error is the estimate minus the applied
//! correction, minus the time the clock still has to stand still after a negative step: a clock
//! that was 2 s fast and stepped back stays fenced until its readings are back within tolerance of
//! the reference (about 1.6 s), because any timestamp issued before then would be in the future
//! too (and peers would reject it). The default
//! tolerance, 400 ms, is 80% of the default `max_offset` of 500 ms, as in CockroachDB.
//!
//! [RFC 5905]: https://www.rfc-editor.org/rfc/rfc5905

use core::fmt;
use core::time::Duration;

use heapless::Deque;
use serde::{Deserialize, Serialize};

use super::error::{ClockError, HumanDuration, SignedNs};
use crate::time::WallTime;

/// How many samples the clock filter keeps (RFC 5905 §10: eight stages).
pub const SAMPLE_WINDOW: usize = 8;

/// The rate at which a sample's trustworthiness decays with age, in parts per million of its age
/// (RFC 5905 `PHI`, the frequency tolerance: 15 ppm).
pub const PHI_PPM: u32 = 15;

/// Default step threshold: 128 ms (RFC 5905 `STEPT`).
pub const DEFAULT_STEP_THRESHOLD: Duration = Duration::from_millis(128);

/// Default maximum slew rate: 500 ppm, 0.5 ms per second (RFC 5905 and the kernel `adjtime`).
pub const DEFAULT_MAX_SLEW_PPM: u32 = 500;

/// Default tolerance before a leader fences itself: 400 ms, 80% of the default `max_offset` of
/// 500 ms (as CockroachDB does).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_millis(400);

const PPM: u64 = 1_000_000;

/// One NTP exchange: four timestamps, two from each clock (RFC 5905 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NtpSample {
    /// Client send time, by the local **raw** (uncorrected) clock (`T1`, origin timestamp).
    pub t1: WallTime,
    /// Server receive time, by the reference clock (`T2`, receive timestamp).
    pub t2: WallTime,
    /// Server send time, by the reference clock (`T3`, transmit timestamp).
    pub t3: WallTime,
    /// Client receive time, by the local raw clock (`T4`, destination timestamp).
    pub t4: WallTime,
}

impl NtpSample {
    /// A sample from its four timestamps (see the field docs for which clock reads which).
    #[must_use]
    pub const fn new(t1: WallTime, t2: WallTime, t3: WallTime, t4: WallTime) -> Self {
        NtpSample { t1, t2, t3, t4 }
    }

    /// Offset θ = ((t2 − t1) + (t3 − t4)) / 2: how far the reference is ahead of the raw clock, in
    /// nanoseconds (rounded towards negative infinity, saturating at the `i64` range).
    #[must_use]
    pub fn offset_ns(&self) -> i64 {
        let theta = (diff(self.t2, self.t1) + diff(self.t3, self.t4)).div_euclid(2);
        clamp_i64(theta)
    }

    /// Round-trip delay δ = (t4 − t1) − (t3 − t2), in nanoseconds (saturating). Negative only for
    /// an invalid sample.
    #[must_use]
    pub fn delay_ns(&self) -> i64 {
        clamp_i64(diff(self.t4, self.t1) - diff(self.t3, self.t2))
    }

    /// Checks that the timestamps are in a possible order.
    ///
    /// # Errors
    /// [`ClockError::InvalidSample`] when the reply reached the client before the request left it
    /// (`t4 < t1`), the server replied before it received (`t3 < t2`), or the round-trip delay is
    /// negative (the server claims to have spent longer than the whole round trip).
    pub fn validate(&self) -> Result<(), ClockError> {
        let delay_ns = self.delay_ns();
        let reason = if self.t4 < self.t1 {
            "client receive time t4 is before client send time t1"
        } else if self.t3 < self.t2 {
            "server send time t3 is before server receive time t2"
        } else if delay_ns < 0 {
            "negative round-trip delay (the server's turnaround exceeds the client's round trip)"
        } else {
            return Ok(());
        };
        Err(ClockError::InvalidSample { reason, delay_ns })
    }
}

fn diff(a: WallTime, b: WallTime) -> i128 {
    i128::from(a.as_nanos()) - i128::from(b.as_nanos())
}

fn clamp_i64(x: i128) -> i64 {
    i64::try_from(x).unwrap_or(if x < 0 { i64::MIN } else { i64::MAX })
}

/// How the corrector may change the clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CorrectionMode {
    /// Measure the offset only; never correct. Health still reports (and fences on) the error.
    Observe,
    /// Only slew: the corrected clock changes rate by at most `max_slew_ppm`, never jumps.
    SlewOnly,
    /// Slew small errors, step errors beyond `step_threshold` (what `ntpd` does).
    #[default]
    SlewAndStep,
}

/// Settings of a [`ClockCorrector`]. `Default` gives the RFC 5905 / CockroachDB values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CorrectionConfig {
    /// Errors larger than this are stepped (in [`CorrectionMode::SlewAndStep`]). Default 128 ms.
    pub step_threshold: Duration,
    /// The fastest slew, in ppm of elapsed raw time; must be in `1..1_000_000`. Default 500.
    pub max_slew_ppm: u32,
    /// A remaining error (|target − applied|) beyond this fences the clock. Default 400 ms.
    pub tolerance: Duration,
    /// How the clock may be corrected. Default [`CorrectionMode::SlewAndStep`].
    pub mode: CorrectionMode,
    /// Whether a clock that has no sample yet is fenced. Default `false`: a fresh cluster (or a
    /// simulation without a time server) can write before the first NTP exchange; set it where the
    /// raw clock is not trusted at all.
    pub fence_when_unsynchronized: bool,
    /// The longest a clock may go without a sample before it is fenced as stale
    /// ([`ClockHealth::Stale`]): a time server that stops answering leaves the clock's drift
    /// unchecked. Default `None`: never (the simulator's time server always answers).
    pub max_sample_age: Option<Duration>,
}

impl Default for CorrectionConfig {
    fn default() -> Self {
        CorrectionConfig {
            step_threshold: DEFAULT_STEP_THRESHOLD,
            max_slew_ppm: DEFAULT_MAX_SLEW_PPM,
            tolerance: DEFAULT_TOLERANCE,
            mode: CorrectionMode::SlewAndStep,
            fence_when_unsynchronized: false,
            max_sample_age: None,
        }
    }
}

impl CorrectionConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`ClockError::InvalidConfig`] when `max_slew_ppm` is 0 (slewing would never finish) or
    /// 1,000,000 or more (a negative slew would stop the clock).
    pub fn validate(&self) -> Result<(), ClockError> {
        if self.max_slew_ppm == 0 {
            return Err(ClockError::InvalidConfig { reason: "max_slew_ppm is 0, so slewing would never finish" });
        }
        if u64::from(self.max_slew_ppm) >= PPM {
            return Err(ClockError::InvalidConfig {
                reason: "max_slew_ppm must be below 1,000,000 (a faster slew stops the clock)",
            });
        }
        Ok(())
    }
}

/// What a new sample did to the correction; trace it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[must_use]
pub enum CorrectionEvent {
    /// The correction jumped by `by_ns` nanoseconds (negative: the clock was ahead). The corrected
    /// clock still never runs backwards: after a negative step it pauses until it catches up.
    Stepped {
        /// The size of the jump (new applied − old applied), in nanoseconds.
        by_ns: i64,
    },
    /// The correction is slewing towards `target_ns` (reference − raw, in nanoseconds).
    Slewing {
        /// The estimate the applied correction is moving towards.
        target_ns: i64,
    },
    /// Nothing changes: the correction already equals the estimate, or the mode is
    /// [`CorrectionMode::Observe`].
    Unchanged,
}

/// `stepped by +2.000s`, `slewing towards -1.250ms`, `unchanged`.
impl fmt::Display for CorrectionEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CorrectionEvent::Stepped { by_ns } => write!(f, "stepped by {}", Signed(by_ns)),
            CorrectionEvent::Slewing { target_ns } => {
                write!(f, "slewing towards {}", Signed(target_ns))
            }
            CorrectionEvent::Unchanged => f.write_str("unchanged"),
        }
    }
}

/// How far the corrected clock can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClockHealth {
    /// No sample yet: nothing is known about the raw clock's error. Not fenced unless the config
    /// says [`fence_when_unsynchronized`](CorrectionConfig::fence_when_unsynchronized).
    Unsynchronized,
    /// The corrected clock is within tolerance of the reference.
    Synchronized {
        /// Remaining error, reference − corrected, in nanoseconds.
        residual_ns: i64,
    },
    /// No sample for longer than [`CorrectionConfig::max_sample_age`]: the time server stopped
    /// answering (or every answer was refused), so nothing bounds the clock's drift any more.
    Stale {
        /// How long since the last sample.
        age: Duration,
        /// The configured limit.
        limit: Duration,
    },
    /// The corrected clock is further from the reference than the tolerance allows.
    Fenced {
        /// Remaining error, reference − corrected, in nanoseconds.
        residual_ns: i64,
        /// The configured tolerance.
        tolerance: Duration,
    },
}

impl ClockHealth {
    /// Whether this is [`ClockHealth::Fenced`] or [`ClockHealth::Stale`]: the clock may not
    /// stamp writes.
    #[must_use]
    pub const fn is_fenced(&self) -> bool {
        matches!(self, ClockHealth::Fenced { .. } | ClockHealth::Stale { .. })
    }
}

/// `unsynchronized`, `synchronized (residual +1.000ms)`,
/// `fenced (residual -2.000s, tolerance 400ms)`.
impl fmt::Display for ClockHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ClockHealth::Unsynchronized => f.write_str("unsynchronized"),
            ClockHealth::Synchronized { residual_ns } => {
                write!(f, "synchronized (residual {})", Signed(residual_ns))
            }
            ClockHealth::Stale { age, limit } => {
                write!(f, "stale (no sample for {}, limit {})", HumanDuration(age), HumanDuration(limit))
            }
            ClockHealth::Fenced { residual_ns, tolerance } => {
                write!(f, "fenced (residual {}, tolerance {})", Signed(residual_ns), HumanDuration(tolerance))
            }
        }
    }
}

/// Signed nanoseconds with an explicit sign: `+2.000s`, `-500ms`, `+0ns`.
struct Signed(i64);

impl fmt::Display for Signed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 0 {
            f.write_str("+")?;
        }
        fmt::Display::fmt(&SignedNs(self.0), f)
    }
}

/// A sample in the filter, with the raw time at which it was added (for ageing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FilterStage {
    offset_ns: i64,
    delay_ns: i64,
    added_at: WallTime,
}

impl FilterStage {
    /// RFC 5905 synchronization distance of this stage at raw time `now`: δ/2 + PHI·age (ns).
    fn distance_ns(&self, now: WallTime) -> u128 {
        let age_ns = now.saturating_duration_since(self.added_at).as_nanos();
        let half_delay = u128::from(self.delay_ns.max(0).unsigned_abs() / 2);
        half_delay + age_ns * u128::from(PHI_PPM) / u128::from(PPM)
    }
}

/// Disciplines a raw physical clock against NTP samples; sans-IO (all times are arguments).
///
/// Call [`add_sample`](Self::add_sample) after every exchange with the reference and
/// [`now`](Self::now) whenever corrected time is needed; both take the current raw reading.
/// [`health`](Self::health) says whether the corrected time is good enough to stamp writes.
///
/// ```
/// use core::time::Duration;
/// use roundtable_runtime::clock::{ClockCorrector, ClockHealth, CorrectionConfig, CorrectionEvent, NtpSample};
/// use roundtable_runtime::WallTime;
///
/// let mut clock = ClockCorrector::new(CorrectionConfig::default())?;
/// // The raw clock is 2 s behind; the exchange takes 10 ms each way.
/// let raw = WallTime::from_secs(100);
/// let ms = |n: u64| Duration::from_millis(n);
/// let sample = NtpSample::new(
///     raw,
///     raw.saturating_add(ms(2_010)),
///     raw.saturating_add(ms(2_010)),
///     raw.saturating_add(ms(20)),
/// );
/// let event = clock.add_sample(raw.saturating_add(ms(20)), sample)?;
/// assert_eq!(event, CorrectionEvent::Stepped { by_ns: 2_000_000_000 });
/// assert_eq!(clock.now(WallTime::from_secs(101)), WallTime::from_secs(103));
/// assert_eq!(clock.health(), ClockHealth::Synchronized { residual_ns: 0 });
/// # Ok::<(), roundtable_runtime::clock::ClockError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClockCorrector {
    config: CorrectionConfig,
    samples: Deque<FilterStage, SAMPLE_WINDOW>,
    /// The current estimate of reference − raw (the best sample's offset).
    target_ns: Option<i64>,
    /// The correction currently added to raw time.
    applied_ns: i64,
    /// Slew allowance carried between calls, in ns·ppm (always below 10^6).
    slew_credit: u64,
    /// The raw time of the last call, for slewing.
    last_raw: Option<WallTime>,
    /// The raw time of the last sample, for [`CorrectionConfig::max_sample_age`].
    last_sample_at: Option<WallTime>,
    /// The last corrected time handed out; corrected time never goes below it.
    last_output: WallTime,
    /// `config.tolerance` in nanoseconds (computed once: a `Duration` converts by multiplying).
    tolerance_ns: u128,
    /// Whether the last [`now`](Self::now) handed out exactly `raw + applied` (the clock moved
    /// forward, no saturation): the overhang is then 0, and the fencing check of a stamp needs
    /// only the estimate and the applied correction. Cleared by anything else that reads the raw
    /// clock ([`add_sample`](Self::add_sample)).
    forward: bool,
}

impl ClockCorrector {
    /// A corrector with no samples yet (the corrected clock equals the raw clock).
    ///
    /// # Errors
    /// [`ClockError::InvalidConfig`] when the config does not validate
    /// ([`CorrectionConfig::validate`]).
    pub fn new(config: CorrectionConfig) -> Result<Self, ClockError> {
        config.validate()?;
        Ok(ClockCorrector {
            config,
            samples: Deque::new(),
            target_ns: None,
            applied_ns: 0,
            slew_credit: 0,
            last_raw: None,
            last_sample_at: None,
            last_output: WallTime::EPOCH,
            tolerance_ns: config.tolerance.as_nanos(),
            forward: false,
        })
    }

    /// The settings.
    #[must_use]
    pub const fn config(&self) -> &CorrectionConfig {
        &self.config
    }

    /// Feeds one NTP exchange, taken at raw time `now_raw` (normally the sample's `t4`). The
    /// sample joins the filter (evicting the oldest beyond [`SAMPLE_WINDOW`]), the estimate becomes
    /// the offset of the minimum-distance sample, and the correction steps or starts slewing
    /// towards it.
    ///
    /// # Errors
    /// [`ClockError::InvalidSample`] when the sample is invalid ([`NtpSample::validate`]); the
    /// corrector is then unchanged.
    pub fn add_sample(&mut self, now_raw: WallTime, sample: NtpSample) -> Result<CorrectionEvent, ClockError> {
        sample.validate()?;
        self.advance(now_raw);
        self.forward = false;
        self.last_sample_at = Some(now_raw);
        if self.samples.is_full() {
            self.samples.pop_front();
        }
        let stage = FilterStage { offset_ns: sample.offset_ns(), delay_ns: sample.delay_ns(), added_at: now_raw };
        let pushed = self.samples.push_back(stage).is_ok();
        debug_assert!(pushed, "the filter has room after evicting the oldest stage");

        let Some(target_ns) = self.best_offset_ns(now_raw) else {
            debug_assert!(false, "the filter holds at least the sample just added");
            return Ok(CorrectionEvent::Unchanged);
        };
        self.target_ns = Some(target_ns);

        let gap_ns = i128::from(target_ns) - i128::from(self.applied_ns);
        let event = match self.config.mode {
            CorrectionMode::Observe => CorrectionEvent::Unchanged,
            _ if gap_ns == 0 => CorrectionEvent::Unchanged,
            CorrectionMode::SlewAndStep if gap_ns.unsigned_abs() > self.config.step_threshold.as_nanos() => {
                self.applied_ns = target_ns;
                self.slew_credit = 0;
                CorrectionEvent::Stepped { by_ns: clamp_i64(gap_ns) }
            }
            CorrectionMode::SlewOnly | CorrectionMode::SlewAndStep => CorrectionEvent::Slewing { target_ns },
        };
        Ok(event)
    }

    /// Corrected time at raw time `raw`: `raw + applied correction`, after letting the correction
    /// slew for the raw time elapsed since the previous call. Never less than any earlier result.
    #[inline]
    pub fn now(&mut self, raw: WallTime) -> WallTime {
        self.advance(raw);
        let computed = raw.offset_by_ns(self.applied_ns);
        // computed ≥ last_output makes it the output; unless it saturated at the epoch (raw +
        // applied < 0) it is then exactly raw + applied, so the overhang is 0. (Saturating at the
        // far end leaves raw + applied ≥ the output: overhang 0 as well.)
        self.forward = computed >= self.last_output && computed > WallTime::EPOCH;
        self.last_output = self.last_output.max(computed);
        self.last_output
    }

    /// The best estimate of reference − raw, in nanoseconds; `None` before the first sample.
    #[must_use]
    pub const fn measured_offset_ns(&self) -> Option<i64> {
        self.target_ns
    }

    /// The correction currently added to raw time, in nanoseconds (as of the last call to
    /// [`now`](Self::now) or [`add_sample`](Self::add_sample)).
    #[must_use]
    pub const fn applied_offset_ns(&self) -> i64 {
        self.applied_ns
    }

    /// The error the corrected clock still has, as measured: reference − corrected time, in
    /// nanoseconds (as of the last call to [`now`](Self::now) or
    /// [`add_sample`](Self::add_sample)); `None` before the first sample.
    ///
    /// That is the estimate minus the applied correction, minus the *overhang*: after a negative
    /// step (or a raw clock that jumped back) the corrected clock stands still rather than run
    /// backwards, and until it has caught up it is ahead of the reference by the difference.
    /// Timestamps issued meanwhile would be that far in the future, so the overhang counts towards
    /// fencing.
    #[must_use]
    #[inline]
    pub fn residual_offset_ns(&self) -> Option<i64> {
        self.target_ns.map(|target| clamp_i64(i128::from(target) - i128::from(self.applied_ns) - self.overhang_ns()))
    }

    /// How long since the last sample and the limit, when that is beyond
    /// [`CorrectionConfig::max_sample_age`] (as of the last call to [`now`](Self::now) or
    /// [`add_sample`](Self::add_sample)).
    fn stale(&self) -> Option<(Duration, Duration)> {
        let (limit, at, now) = (self.config.max_sample_age?, self.last_sample_at?, self.last_raw?);
        let age = Duration::from_nanos(now.as_nanos().saturating_sub(at.as_nanos()));
        (age > limit).then_some((age, limit))
    }

    /// How many samples the filter holds (at most [`SAMPLE_WINDOW`]).
    #[must_use]
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// Whether the corrected clock is within tolerance (as of the last call to
    /// [`now`](Self::now) or [`add_sample`](Self::add_sample)).
    ///
    /// Only the measured residual counts: the uncertainty of the estimate (up to half the best
    /// sample's delay) is not added, so a reference reached over a slow, asymmetric path can hide
    /// up to that much error.
    #[must_use]
    pub fn health(&self) -> ClockHealth {
        let Some(residual_ns) = self.residual_offset_ns() else {
            return ClockHealth::Unsynchronized;
        };
        if let Some((age, limit)) = self.stale() {
            return ClockHealth::Stale { age, limit };
        }
        if u128::from(residual_ns.unsigned_abs()) > self.tolerance_ns {
            ClockHealth::Fenced { residual_ns, tolerance: self.config.tolerance }
        } else {
            ClockHealth::Synchronized { residual_ns }
        }
    }

    /// `Ok` when this clock may stamp writes.
    ///
    /// # Errors
    /// [`ClockError::Fenced`] when [`health`](Self::health) is fenced;
    /// [`ClockError::Unsynchronized`] when there is no sample yet and the config sets
    /// [`fence_when_unsynchronized`](CorrectionConfig::fence_when_unsynchronized).
    #[inline]
    pub fn ensure_not_fenced(&self) -> Result<(), ClockError> {
        // The stamp path, right after `now` moved the clock forward (no overhang): a residual
        // within tolerance before clamping to i64 is within it after, so a few instructions say
        // yes without computing (or caching) the health. Anything else takes the exact way.
        if let (true, Some(target_ns), None) = (self.forward, self.target_ns, self.config.max_sample_age) {
            debug_assert_eq!(self.overhang_ns(), 0);
            let residual_ns = i128::from(target_ns) - i128::from(self.applied_ns);
            if residual_ns.unsigned_abs() <= self.tolerance_ns {
                return Ok(());
            }
        }
        self.fencing_verdict()
    }

    /// [`ensure_not_fenced`](Self::ensure_not_fenced) from the health, out of the stamp path.
    #[cold]
    #[inline(never)]
    fn fencing_verdict(&self) -> Result<(), ClockError> {
        match self.health() {
            ClockHealth::Fenced { residual_ns, tolerance } => Err(ClockError::Fenced { residual_ns, tolerance }),
            ClockHealth::Stale { age, limit } => Err(ClockError::Stale { age, limit }),
            ClockHealth::Unsynchronized if self.config.fence_when_unsynchronized => Err(ClockError::Unsynchronized),
            ClockHealth::Unsynchronized | ClockHealth::Synchronized { .. } => Ok(()),
        }
    }

    /// How far the last corrected time handed out is ahead of `raw + applied` at the last raw
    /// reading, in nanoseconds (0 unless the corrected clock is standing still to catch up).
    #[inline]
    fn overhang_ns(&self) -> i128 {
        let Some(raw) = self.last_raw else {
            return 0;
        };
        let computed = i128::from(raw.as_nanos()) + i128::from(self.applied_ns);
        (i128::from(self.last_output.as_nanos()) - computed).max(0)
    }

    /// The offset of the stage with the smallest distance at `now` (the newest among equals).
    fn best_offset_ns(&self, now: WallTime) -> Option<i64> {
        let mut best: Option<(u128, i64)> = None;
        for stage in self.samples.iter() {
            let distance = stage.distance_ns(now);
            if best.is_none_or(|(d, _)| distance <= d) {
                best = Some((distance, stage.offset_ns));
            }
        }
        best.map(|(_, offset_ns)| offset_ns)
    }

    /// Lets the applied correction slew towards the target for the raw time elapsed since the last
    /// call. A raw clock that went backwards grants no slew (and restarts the count from `raw`).
    #[inline]
    fn advance(&mut self, raw: WallTime) {
        let elapsed_ns = match self.last_raw {
            Some(previous) => raw.as_nanos().saturating_sub(previous.as_nanos()),
            None => 0,
        };
        self.last_raw = Some(raw);
        let Some(target_ns) = self.target_ns else {
            return;
        };
        if self.config.mode == CorrectionMode::Observe {
            return;
        }
        if target_ns == self.applied_ns {
            self.slew_credit = 0;
            return;
        }
        // The allowance in ns·ppm: credit + elapsed · max_slew_ppm. In u64 whenever it fits —
        // credit < 10^6 and max_slew_ppm < 10^6 (validated), so it does for any elapsed time up to
        // (2^64 − 1 − 10^6) / 10^6 ns, over five hours, i.e. always between stamps — with both
        // divisions by the constant 10^6 (a multiplication, no 128-bit division). The exact u128
        // computation remains for longer gaps.
        match elapsed_ns.checked_mul(u64::from(self.config.max_slew_ppm)).and_then(|c| c.checked_add(self.slew_credit))
        {
            // Less than a nanosecond of slew so far (a stamp's worth of elapsed time): carry it,
            // as the general case would.
            Some(credit) if credit < PPM => self.slew_credit = credit,
            credit => self.slew_step(target_ns, elapsed_ns, credit),
        }
    }

    /// The rest of [`advance`](Self::advance), once the allowance reaches a nanosecond: moves the
    /// applied correction towards the target. `credit` is the allowance in ns·ppm if it fits a
    /// u64 (`None` for more than five hours' worth).
    #[inline(never)]
    fn slew_step(&mut self, target_ns: i64, elapsed_ns: u64, credit: Option<u64>) {
        // Both are i64, so the difference fits an i128 exactly; it is not 0 (`advance` checked).
        let gap_ns = i128::from(target_ns) - i128::from(self.applied_ns);
        let (allowed_ns, credit_left) = match credit {
            Some(credit) => (u128::from(credit / PPM), credit % PPM),
            None => {
                let credit =
                    u128::from(self.slew_credit) + u128::from(elapsed_ns) * u128::from(self.config.max_slew_ppm);
                // credit % 10^6 < 10^6 fits a u64.
                (credit / u128::from(PPM), (credit % u128::from(PPM)) as u64)
            }
        };
        if allowed_ns >= gap_ns.unsigned_abs() {
            self.applied_ns = target_ns;
            self.slew_credit = 0;
        } else {
            // `allowed_ns` < |gap|, so the new correction lies strictly between the old one and
            // the target: no overflow.
            let step = allowed_ns as i128;
            let moved = i128::from(self.applied_ns) + if gap_ns > 0 { step } else { -step };
            self.applied_ns = clamp_i64(moved);
            self.slew_credit = credit_left;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn t(ns: u64) -> WallTime {
        WallTime::from_nanos(ns)
    }

    /// A sample against a reference `true_minus_raw_ns` ahead of the raw clock, sent at raw
    /// `raw_ns`, with the given one-way delays.
    fn sample(raw_ns: u64, true_minus_raw_ns: i64, up_ns: u64, down_ns: u64) -> NtpSample {
        let t1 = t(raw_ns);
        let t2 = t1.offset_by_ns(true_minus_raw_ns + up_ns as i64);
        let t3 = t2;
        let t4 = t(raw_ns + up_ns + down_ns);
        NtpSample::new(t1, t2, t3, t4)
    }

    #[test]
    fn offset_and_delay_follow_rfc_5905() {
        // Reference 1 s ahead, 30 ms up, 10 ms down, 5 ms server turnaround.
        let s = NtpSample::new(t(1_000 * MS), t(2_030 * MS), t(2_035 * MS), t(1_045 * MS));
        assert_eq!(s.delay_ns(), 40 * MS as i64);
        // θ is off by (up − down)/2 = 10 ms.
        assert_eq!(s.offset_ns(), 1_010 * MS as i64);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn samples_with_impossible_timestamps_are_rejected() {
        let back_in_time = NtpSample::new(t(10), t(5), t(6), t(9));
        assert!(matches!(back_in_time.validate(), Err(ClockError::InvalidSample { .. })));
        let server_reversed = NtpSample::new(t(10), t(6), t(5), t(20));
        assert!(server_reversed.validate().is_err());
        // Turnaround of 20 ns within a 10 ns round trip.
        let negative_delay = NtpSample::new(t(10), t(100), t(120), t(20));
        assert_eq!(negative_delay.delay_ns(), -10);
        assert_eq!(
            negative_delay.validate(),
            Err(ClockError::InvalidSample {
                reason: "negative round-trip delay (the server's turnaround exceeds the client's \
                         round trip)",
                delay_ns: -10
            })
        );
        let mut clock = ClockCorrector::new(CorrectionConfig::default()).expect("valid config");
        assert!(clock.add_sample(t(20), negative_delay).is_err());
        assert_eq!(clock.sample_count(), 0);
        assert_eq!(clock.health(), ClockHealth::Unsynchronized);
    }

    #[test]
    fn extreme_timestamps_saturate() {
        let s = NtpSample::new(t(0), t(u64::MAX), t(u64::MAX), t(0));
        assert_eq!(s.offset_ns(), i64::MAX);
        assert_eq!(s.delay_ns(), 0);
        let mut clock = ClockCorrector::new(CorrectionConfig::default()).expect("valid config");
        assert!(clock.add_sample(t(0), s).is_ok());
        assert_eq!(clock.now(t(u64::MAX)), t(u64::MAX));
        let s = NtpSample::new(t(u64::MAX), t(0), t(0), t(u64::MAX));
        assert_eq!(s.offset_ns(), i64::MIN);
        assert!(clock.add_sample(t(u64::MAX), s).is_ok());
        assert_eq!(clock.now(t(u64::MAX)), t(u64::MAX), "never backwards");
    }

    #[test]
    fn config_is_validated() {
        for max_slew_ppm in [0, 1_000_000, u32::MAX] {
            let config = CorrectionConfig { max_slew_ppm, ..CorrectionConfig::default() };
            assert!(matches!(ClockCorrector::new(config), Err(ClockError::InvalidConfig { .. })));
        }
    }

    #[test]
    fn the_minimum_delay_sample_wins() {
        let mut clock =
            ClockCorrector::new(CorrectionConfig { mode: CorrectionMode::Observe, ..CorrectionConfig::default() })
                .expect("valid config");
        let truth = 50 * MS as i64;
        // Asymmetric delays; the 2 ms round trip (1 ms + 1 ms) is exact.
        let delays = [(80, 5), (3, 40), (1, 1), (60, 60), (10, 0)];
        for (i, (up, down)) in delays.into_iter().enumerate() {
            let raw = (i as u64 + 1) * 1_000 * MS;
            let s = sample(raw, truth, up * MS, down * MS);
            assert_eq!(clock.add_sample(s.t4, s), Ok(CorrectionEvent::Unchanged));
        }
        assert_eq!(clock.measured_offset_ns(), Some(truth));
        assert_eq!(clock.applied_offset_ns(), 0, "Observe never corrects");
    }

    #[test]
    fn the_filter_keeps_eight_samples_and_ages_them() {
        let mut clock =
            ClockCorrector::new(CorrectionConfig { mode: CorrectionMode::Observe, ..CorrectionConfig::default() })
                .expect("valid config");
        // A perfect sample (zero delay) saying +7 ms, then eight worse ones saying +9 ms.
        let s = sample(0, 7 * MS as i64, 0, 0);
        let _ = clock.add_sample(s.t4, s);
        for i in 1..=SAMPLE_WINDOW as u64 {
            let s = sample(i * 1_000 * MS, 9 * MS as i64, MS / 2, MS / 2);
            let _ = clock.add_sample(s.t4, s);
            let want = if i < SAMPLE_WINDOW as u64 { 7 } else { 9 };
            assert_eq!(clock.measured_offset_ns(), Some(want * MS as i64), "{i}");
        }
        assert_eq!(clock.sample_count(), SAMPLE_WINDOW);

        // Ageing: a zero-delay sample 200 s old (distance 3 ms) loses to a fresh one with a 4 ms
        // round trip (distance 2 ms).
        let mut clock =
            ClockCorrector::new(CorrectionConfig { mode: CorrectionMode::Observe, ..CorrectionConfig::default() })
                .expect("valid config");
        let old = sample(0, 1, 0, 0);
        let _ = clock.add_sample(old.t4, old);
        let fresh = sample(200_000 * MS, 2, 2 * MS, 2 * MS);
        let _ = clock.add_sample(fresh.t4, fresh);
        assert_eq!(clock.measured_offset_ns(), Some(2));
    }

    #[test]
    fn large_offsets_step_small_ones_slew() {
        let mut clock = ClockCorrector::new(CorrectionConfig::default()).expect("valid config");
        let s = sample(1_000 * MS, 300 * MS as i64, 0, 0);
        assert_eq!(clock.add_sample(s.t4, s), Ok(CorrectionEvent::Stepped { by_ns: 300 * MS as i64 }));
        assert_eq!(clock.now(t(2_000 * MS)), t(2_300 * MS));

        // 100 ms more: below the step threshold, so slew at 500 ppm (0.5 ms per s): 200 s.
        let s = sample(3_000 * MS, 400 * MS as i64, 0, 0);
        assert_eq!(clock.add_sample(s.t4, s), Ok(CorrectionEvent::Slewing { target_ns: 400 * MS as i64 }));
        assert_eq!(clock.residual_offset_ns(), Some(100 * MS as i64));
        // 10 s later: 5 ms slewed.
        assert_eq!(clock.now(t(13_000 * MS)), t(13_305 * MS));
        assert_eq!(clock.residual_offset_ns(), Some(95 * MS as i64));
        // Reading every microsecond still slews (the allowance carries over).
        let mut raw = 13_000 * MS;
        for _ in 0..4_000 {
            raw += 1_000;
            let _ = clock.now(t(raw));
        }
        assert_eq!(clock.applied_offset_ns(), 305 * MS as i64 + 2_000);
        assert_eq!(clock.now(t(300_000 * MS)), t(300_400 * MS));
        assert_eq!(clock.residual_offset_ns(), Some(0));
        let again = sample(301_000 * MS, 400 * MS as i64, 0, 0);
        assert_eq!(clock.add_sample(again.t4, again), Ok(CorrectionEvent::Unchanged));
    }

    #[test]
    fn slew_only_never_jumps() {
        let mut clock =
            ClockCorrector::new(CorrectionConfig { mode: CorrectionMode::SlewOnly, ..CorrectionConfig::default() })
                .expect("valid config");
        let base = 10_000_000 * MS;
        let s = sample(base, -2_000 * MS as i64, 0, 0);
        assert_eq!(clock.add_sample(s.t4, s), Ok(CorrectionEvent::Slewing { target_ns: -2_000 * MS as i64 }));
        assert_eq!(clock.now(t(base + 1_000 * MS)), t(base + 1_000 * MS - MS / 2));
        // 2 s at 0.5 ms/s takes 4000 s.
        assert_eq!(clock.now(t(base + 3_999_000 * MS)), t(base + 3_997_000 * MS + MS / 2));
        assert_eq!(clock.now(t(base + 5_000_000 * MS)), t(base + 4_998_000 * MS));
    }

    #[test]
    fn a_negative_step_pauses_the_clock_instead_of_reversing_it() {
        let mut clock = ClockCorrector::new(CorrectionConfig::default()).expect("valid config");
        assert_eq!(clock.now(t(10_000 * MS)), t(10_000 * MS));
        let s = sample(10_000 * MS, -1_000 * MS as i64, 0, 0);
        assert_eq!(clock.add_sample(s.t4, s), Ok(CorrectionEvent::Stepped { by_ns: -1_000 * MS as i64 }));
        // Until it has caught up, the corrected clock is ahead of the reference: fenced.
        let fenced = |residual_ms: i64| ClockHealth::Fenced {
            residual_ns: residual_ms * MS as i64,
            tolerance: DEFAULT_TOLERANCE,
        };
        assert_eq!(clock.health(), fenced(-1_000));
        assert_eq!(clock.now(t(10_500 * MS)), t(10_000 * MS), "paused");
        assert_eq!(clock.health(), fenced(-500));
        assert_eq!(clock.now(t(10_700 * MS)), t(10_000 * MS), "paused");
        assert_eq!(clock.health(), ClockHealth::Synchronized { residual_ns: -300 * MS as i64 });
        assert_eq!(clock.now(t(11_000 * MS)), t(10_000 * MS), "paused");
        assert_eq!(clock.now(t(11_001 * MS)), t(10_001 * MS), "running again");
        assert_eq!(clock.health(), ClockHealth::Synchronized { residual_ns: 0 });
        // A raw clock that jumps back does not move corrected time back either.
        assert_eq!(clock.now(t(5_000 * MS)), t(10_001 * MS));
        assert!(clock.health().is_fenced(), "6 s ahead of raw + correction");
    }

    #[test]
    fn health_fences_beyond_tolerance() {
        let mut observe =
            ClockCorrector::new(CorrectionConfig { mode: CorrectionMode::Observe, ..CorrectionConfig::default() })
                .expect("valid config");
        assert_eq!(observe.health(), ClockHealth::Unsynchronized);
        assert_eq!(observe.ensure_not_fenced(), Ok(()));
        let s = sample(0, 2_000 * MS as i64, 5 * MS, 5 * MS);
        let _ = observe.add_sample(s.t4, s);
        let fenced = ClockHealth::Fenced { residual_ns: 2_000 * MS as i64, tolerance: DEFAULT_TOLERANCE };
        assert_eq!(observe.health(), fenced);
        assert!(observe.health().is_fenced());
        let err = observe.ensure_not_fenced().expect_err("fenced");
        assert_eq!(
            err.to_string(),
            "clock fenced: corrected time is still 2.000s off the reference, beyond the tolerance \
             400ms; refusing to stamp writes"
        );

        let mut step = ClockCorrector::new(CorrectionConfig::default()).expect("valid config");
        let _ = step.add_sample(s.t4, s);
        assert_eq!(step.health(), ClockHealth::Synchronized { residual_ns: 0 });
    }

    #[test]
    fn events_and_health_render_for_traces() {
        let cases = [
            (CorrectionEvent::Stepped { by_ns: 2_000 * MS as i64 }.to_string(), "stepped by +2.000s"),
            (CorrectionEvent::Slewing { target_ns: -1_250_000 }.to_string(), "slewing towards -1.250ms"),
            (CorrectionEvent::Unchanged.to_string(), "unchanged"),
            (ClockHealth::Unsynchronized.to_string(), "unsynchronized"),
            (ClockHealth::Synchronized { residual_ns: 0 }.to_string(), "synchronized (residual +0ns)"),
            (
                ClockHealth::Fenced { residual_ns: -2_000 * MS as i64, tolerance: DEFAULT_TOLERANCE }.to_string(),
                "fenced (residual -2.000s, tolerance 400ms)",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn unsynchronized_fences_only_when_asked() {
        let clock =
            ClockCorrector::new(CorrectionConfig { fence_when_unsynchronized: true, ..CorrectionConfig::default() })
                .expect("valid config");
        assert_eq!(clock.health(), ClockHealth::Unsynchronized);
        assert_eq!(clock.ensure_not_fenced(), Err(ClockError::Unsynchronized));
    }

    /// The slew step as it was computed before the u64 fast path: all in u128. Returns the new
    /// applied correction and credit.
    fn slew_u128(applied_ns: i64, credit: u64, target_ns: i64, elapsed_ns: u64, ppm: u32) -> (i64, u64) {
        let gap_ns = i128::from(target_ns) - i128::from(applied_ns);
        if gap_ns == 0 {
            return (applied_ns, 0);
        }
        let credit = u128::from(credit) + u128::from(elapsed_ns) * u128::from(ppm);
        let allowed_ns = credit / 1_000_000;
        if allowed_ns >= gap_ns.unsigned_abs() {
            (target_ns, 0)
        } else {
            let step = allowed_ns as i128;
            let moved = i128::from(applied_ns) + if gap_ns > 0 { step } else { -step };
            (clamp_i64(moved), (credit % 1_000_000) as u64)
        }
    }

    proptest::proptest! {
        /// The corrector's slew (u64 fast path, u128 for long gaps) follows the u128 reference
        /// exactly, and the quick fencing check of the stamp path says what the health says,
        /// through steps, slews, backwards raw clocks, gaps of hours and extreme tolerances.
        #[test]
        fn slewing_matches_the_u128_reference_and_fencing_matches_health(
            mode in proptest::sample::select(vec![CorrectionMode::SlewOnly, CorrectionMode::SlewAndStep]),
            tolerance in proptest::sample::select(vec![
                DEFAULT_TOLERANCE,
                Duration::ZERO,
                Duration::from_millis(1),
                Duration::from_nanos(i64::MAX as u64),
                Duration::from_nanos(u64::MAX),
                Duration::MAX,
            ]),
            max_slew_ppm in proptest::prop_oneof![proptest::strategy::Just(500u32), 1u32..1_000_000],
            offsets_ms in proptest::collection::vec(-3_000i64..3_000, 1..4),
            steps in proptest::collection::vec(
                proptest::prop_oneof![0u64..100, 0u64..100_000_000, 0u64..40_000_000_000_000, 0u64..u64::MAX / 256],
                1..60,
            ),
            backwards in proptest::collection::vec(0u64..2_000_000_000, 0..3),
        ) {
            let config = CorrectionConfig { mode, max_slew_ppm, tolerance, ..CorrectionConfig::default() };
            let mut clock = ClockCorrector::new(config).expect("valid config");
            let mut raw = 1_767_225_600 * 1_000 * MS;
            let mut samples = offsets_ms.iter().cycle();
            let mut back = backwards.iter();
            for (i, &step) in steps.iter().enumerate() {
                if i % 20 == 0 {
                    let offset = samples.next().copied().unwrap_or(0) * MS as i64;
                    let s = sample(raw, offset, MS, MS);
                    raw = s.t4.as_nanos();
                    let _ = clock.add_sample(s.t4, s);
                }
                let before = (clock.applied_offset_ns(), clock.slew_credit, clock.last_raw);
                raw = raw.saturating_add(step);
                if i % 17 == 16 {
                    raw = raw.saturating_sub(back.next().copied().unwrap_or(0));
                }
                let _ = clock.now(t(raw));
                let elapsed = before.2.map_or(0, |prev: WallTime| raw.saturating_sub(prev.as_nanos()));
                let target = clock.measured_offset_ns().expect("sampled");
                let want = slew_u128(before.0, before.1, target, elapsed, max_slew_ppm);
                proptest::prop_assert_eq!((clock.applied_offset_ns(), clock.slew_credit), want);
                let expected = match clock.health() {
                    ClockHealth::Fenced { residual_ns, tolerance } => Err(ClockError::Fenced { residual_ns, tolerance }),
                    ClockHealth::Stale { age, limit } => Err(ClockError::Stale { age, limit }),
                    ClockHealth::Synchronized { .. } | ClockHealth::Unsynchronized => Ok(()),
                };
                proptest::prop_assert_eq!(clock.ensure_not_fenced(), expected);
            }
        }
    }

    #[test]
    fn a_clock_without_samples_for_longer_than_max_sample_age_is_stale_until_the_next_one() {
        let ms = Duration::from_millis;
        let config = CorrectionConfig { max_sample_age: Some(ms(1_500)), ..CorrectionConfig::default() };
        let mut clock = ClockCorrector::new(config).expect("valid");
        let t = |ms_: u64| WallTime::from_secs(1_000).saturating_add(ms(ms_));
        let sample = |at: u64| NtpSample::new(t(at), t(at + 1), t(at + 1), t(at + 2));
        let _ = clock.add_sample(t(2), sample(0)).expect("valid sample");
        let _ = clock.now(t(1_000));
        assert!(matches!(clock.health(), ClockHealth::Synchronized { .. }), "{}", clock.health());
        assert_eq!(clock.ensure_not_fenced(), Ok(()));
        let _ = clock.now(t(1_503));
        assert_eq!(clock.health(), ClockHealth::Stale { age: ms(1_501), limit: ms(1_500) });
        assert!(clock.health().is_fenced());
        let refused = clock.ensure_not_fenced();
        assert_eq!(refused, Err(ClockError::Stale { age: ms(1_501), limit: ms(1_500) }));
        assert!(refused.expect_err("stale").to_string().contains("no NTP sample for 1.501s"));
        let _ = clock.add_sample(t(1_602), sample(1_600)).expect("valid sample");
        let _ = clock.now(t(1_700));
        assert_eq!(clock.ensure_not_fenced(), Ok(()), "the next sample lifts it");
    }
}
