//! Wall time as the core sees it: nanoseconds since the Unix epoch, passed in as an argument.
//!
//! **Architecture invariant:** nothing in `roundtable-runtime` reads a clock. Every `handle_*`
//! method takes `now: WallTime`; the shell (`roundtable-actors`) reads the system clock or the
//! simulator's clock and passes the reading in.

use core::fmt;
use core::time::Duration;

use serde::{Deserialize, Serialize};

/// A point in wall time: nanoseconds since 1970-01-01T00:00:00Z (good until the year 2554).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WallTime(u64);

impl WallTime {
    /// The Unix epoch.
    pub const EPOCH: WallTime = WallTime(0);

    /// A wall time from nanoseconds since the Unix epoch.
    #[must_use]
    pub const fn from_nanos(nanos: u64) -> Self {
        WallTime(nanos)
    }

    /// A wall time from whole seconds since the Unix epoch.
    #[must_use]
    pub const fn from_secs(secs: u64) -> Self {
        WallTime(secs.saturating_mul(1_000_000_000))
    }

    /// Nanoseconds since the Unix epoch.
    #[must_use]
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// This time plus `d`, saturating at the far end of the range.
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> Self {
        WallTime(self.0.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
    }

    /// This time minus `d`, saturating at the epoch.
    #[must_use]
    pub fn saturating_sub(self, d: Duration) -> Self {
        WallTime(self.0.saturating_sub(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
    }

    /// This time shifted by a signed number of nanoseconds, saturating at both ends.
    #[must_use]
    pub const fn offset_by_ns(self, offset_ns: i64) -> Self {
        WallTime(self.0.saturating_add_signed(offset_ns))
    }

    /// How far `self` is after `earlier`, in signed nanoseconds (negative when `self` is earlier),
    /// saturating at the `i64` range.
    #[must_use]
    pub fn signed_since_ns(self, earlier: WallTime) -> i64 {
        let diff = self.0 as i128 - earlier.0 as i128;
        diff.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    /// The time elapsed since `earlier`, or zero when `earlier` is later.
    #[must_use]
    pub const fn saturating_duration_since(self, earlier: WallTime) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Debug for WallTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Renders as RFC 3339 with microseconds, e.g. `2026-01-01T00:00:00.000015Z`.
impl fmt::Display for WallTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dt = chrono::DateTime::from_timestamp_nanos(self.0.min(i64::MAX as u64) as i64);
        write!(f, "{}", dt.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc3339_and_saturates() {
        let t = WallTime::from_secs(1_767_225_600).saturating_add(Duration::from_micros(15));
        assert_eq!(t.to_string(), "2026-01-01T00:00:00.000015Z");
        assert_eq!(WallTime::EPOCH.offset_by_ns(-5), WallTime::EPOCH);
        assert_eq!(WallTime::from_nanos(10).signed_since_ns(WallTime::from_nanos(15)), -5);
        assert_eq!(WallTime::from_nanos(u64::MAX).saturating_add(Duration::from_secs(1)).as_nanos(), u64::MAX);
    }
}
