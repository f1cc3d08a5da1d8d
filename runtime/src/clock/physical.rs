//! Physical clocks: where wall time comes from, and a simulated clock with skew and drift.
//!
//! **Architecture invariant:** nothing in `roundtable-runtime` reads a clock. [`PhysicalClock`] is
//! the seam: the shell (`roundtable-actors`) implements it over the operating system's clock (via
//! chrono) or over the simulator's virtual time, reads it, and passes the reading into the core as
//! a [`WallTime`] argument. The system-clock implementation therefore lives in the actors crate,
//! not here.
//!
//! [`SimulatedClock`] models an imperfect quartz clock as a pure function of true time:
//!
//! ```text
//! reading(t) = t + offset + (t − start) · drift_ppm / 1,000,000
//! ```
//!
//! A constant `offset` is skew; `drift_ppm` is the rate error (real quartz is typically under
//! 100 ppm, about 8.6 ms a day per 100 ppm). For `|drift_ppm| < 1,000,000` the reading is
//! monotonic (non-decreasing) in true time.

use super::error::ClockError;
use crate::time::WallTime;

/// One million: parts per million.
const PPM: i128 = 1_000_000;

/// A source of wall time for the shell. The core never calls it; it takes the reading as an
/// argument.
///
/// The operating-system implementation (over chrono's `Utc::now`) lives in `roundtable-actors`,
/// because the runtime crate must not read clocks.
pub trait PhysicalClock {
    /// The current reading of this clock.
    fn now(&self) -> WallTime;
}

impl<C: PhysicalClock + ?Sized> PhysicalClock for &C {
    fn now(&self) -> WallTime {
        (**self).now()
    }
}

/// A simulated physical clock: true time, shifted by a constant offset and stretched by a drift
/// rate, both measured from a start instant.
///
/// ```
/// use roundtable_runtime::clock::SimulatedClock;
/// use roundtable_runtime::WallTime;
///
/// let start = WallTime::from_secs(1_000);
/// // 2 ms fast, and gaining 100 µs per second (100 ppm).
/// let clock = SimulatedClock::new(start).with_offset_ns(2_000_000).with_drift_ppm(100)?;
/// assert_eq!(clock.reading_at(start), WallTime::from_nanos(1_000_002_000_000));
/// assert_eq!(
///     clock.reading_at(WallTime::from_secs(1_010)),
///     WallTime::from_nanos(1_010_003_000_000) // 10 s later: 2 ms + 1 ms of drift
/// );
/// # Ok::<(), roundtable_runtime::clock::ClockError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SimulatedClock {
    offset_ns: i64,
    drift_ppm: i32,
    start: WallTime,
}

impl SimulatedClock {
    /// A perfect clock (no offset, no drift); drift, once set, accumulates from `start`.
    #[must_use]
    pub const fn new(start: WallTime) -> Self {
        SimulatedClock { offset_ns: 0, drift_ppm: 0, start }
    }

    /// This clock with a constant offset (positive: the clock is ahead of true time).
    #[must_use]
    pub const fn with_offset_ns(self, offset_ns: i64) -> Self {
        SimulatedClock { offset_ns, ..self }
    }

    /// This clock with a drift rate in parts per million (positive: the clock runs fast).
    ///
    /// # Errors
    /// [`ClockError::InvalidDrift`] when `|drift_ppm| >= 1_000_000`: such a clock would stand
    /// still or run backwards.
    pub fn with_drift_ppm(self, drift_ppm: i32) -> Result<Self, ClockError> {
        if i128::from(drift_ppm).abs() >= PPM {
            return Err(ClockError::InvalidDrift { drift_ppm });
        }
        Ok(SimulatedClock { drift_ppm, ..self })
    }

    /// The constant offset, in nanoseconds.
    #[must_use]
    pub const fn offset_ns(&self) -> i64 {
        self.offset_ns
    }

    /// The drift rate, in parts per million.
    #[must_use]
    pub const fn drift_ppm(&self) -> i32 {
        self.drift_ppm
    }

    /// The instant (in true time) from which drift accumulates.
    #[must_use]
    pub const fn start(&self) -> WallTime {
        self.start
    }

    /// What this clock reads when true time is `true_time`:
    /// `true + offset + (true − start) · drift_ppm / 10^6`, rounded down, saturating at the ends
    /// of the `WallTime` range. Non-decreasing in `true_time`.
    #[must_use]
    pub fn reading_at(&self, true_time: WallTime) -> WallTime {
        let t = i128::from(true_time.as_nanos());
        let since_start = t - i128::from(self.start.as_nanos());
        let drift = (since_start * i128::from(self.drift_ppm)).div_euclid(PPM);
        let reading = t + i128::from(self.offset_ns) + drift;
        WallTime::from_nanos(u64::try_from(reading.max(0)).unwrap_or(u64::MAX))
    }

    /// A [`PhysicalClock`] that reads `truth` (the simulator's true time) through this clock.
    #[must_use]
    pub const fn over<C: PhysicalClock>(self, truth: C) -> SkewedClock<C> {
        SkewedClock { clock: self, truth }
    }
}

/// A [`SimulatedClock`] applied to a source of true time; see [`SimulatedClock::over`].
#[derive(Debug, Clone)]
pub struct SkewedClock<C> {
    clock: SimulatedClock,
    truth: C,
}

impl<C> SkewedClock<C> {
    /// The simulated clock's parameters.
    #[must_use]
    pub const fn clock(&self) -> &SimulatedClock {
        &self.clock
    }
}

impl<C: PhysicalClock> PhysicalClock for SkewedClock<C> {
    fn now(&self) -> WallTime {
        self.clock.reading_at(self.truth.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    struct Manual(Cell<WallTime>);
    impl PhysicalClock for Manual {
        fn now(&self) -> WallTime {
            self.0.get()
        }
    }

    #[test]
    fn perfect_clock_reads_true_time() {
        let clock = SimulatedClock::new(WallTime::from_secs(5));
        for t in [0, 1, 5_000_000_000, u64::MAX] {
            assert_eq!(clock.reading_at(WallTime::from_nanos(t)), WallTime::from_nanos(t));
        }
    }

    #[test]
    fn offset_and_drift_add_up() -> Result<(), ClockError> {
        let start = WallTime::from_secs(100);
        let clock = SimulatedClock::new(start).with_offset_ns(-1_000).with_drift_ppm(-50)?;
        // 1000 s later: -50 ppm is -50 ms.
        assert_eq!(
            clock.reading_at(WallTime::from_secs(1_100)),
            WallTime::from_nanos(1_100_000_000_000 - 1_000 - 50_000_000)
        );
        // Before start, drift runs the other way (still the same straight line).
        assert_eq!(clock.reading_at(WallTime::from_secs(0)), WallTime::from_nanos(5_000_000 - 1_000));
        Ok(())
    }

    #[test]
    fn drift_of_a_million_ppm_is_rejected() {
        let clock = SimulatedClock::new(WallTime::EPOCH);
        for drift_ppm in [1_000_000, -1_000_000, i32::MAX, i32::MIN] {
            assert_eq!(clock.with_drift_ppm(drift_ppm), Err(ClockError::InvalidDrift { drift_ppm }));
        }
        assert!(clock.with_drift_ppm(999_999).is_ok());
        assert!(clock.with_drift_ppm(-999_999).is_ok());
        assert_eq!(
            ClockError::InvalidDrift { drift_ppm: 1_000_000 }.to_string(),
            "drift of 1000000 ppm is out of range (|drift| must be below 1,000,000 ppm)"
        );
    }

    #[test]
    fn readings_saturate_instead_of_wrapping() -> Result<(), ClockError> {
        let fast = SimulatedClock::new(WallTime::EPOCH).with_offset_ns(i64::MAX).with_drift_ppm(999_999)?;
        assert_eq!(fast.reading_at(WallTime::from_nanos(u64::MAX)), WallTime::from_nanos(u64::MAX));
        let slow = SimulatedClock::new(WallTime::EPOCH).with_offset_ns(i64::MIN);
        assert_eq!(slow.reading_at(WallTime::from_secs(1)), WallTime::EPOCH);
        Ok(())
    }

    #[test]
    fn skewed_clock_reads_truth_through_the_simulation() {
        let truth = Manual(Cell::new(WallTime::from_secs(10)));
        let skewed = SimulatedClock::new(WallTime::EPOCH).with_offset_ns(7).over(&truth);
        assert_eq!(skewed.now(), WallTime::from_nanos(10_000_000_007));
        truth.0.set(WallTime::from_secs(11));
        assert_eq!(skewed.now(), WallTime::from_nanos(11_000_000_007));
        assert_eq!(skewed.clock().offset_ns(), 7);
    }
}
