//! The one error type of the clock module, and the duration formatting its messages use.

use core::fmt;
use core::time::Duration;

use super::hlc::HlcTimestamp;

/// What went wrong in a clock operation. Every variant names what the caller can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// A simulated drift rate of ±1,000,000 ppm or more would stop the clock or run it backwards.
    /// Fix the simulation config.
    #[error("drift of {drift_ppm} ppm is out of range (|drift| must be below 1,000,000 ppm)")]
    InvalidDrift {
        /// The rejected drift rate, in parts per million.
        drift_ppm: i32,
    },

    /// A [`CorrectionConfig`](super::CorrectionConfig) that cannot work. Fix the config.
    #[error("invalid clock correction config: {reason}")]
    InvalidConfig {
        /// Which setting is wrong and why.
        reason: &'static str,
    },

    /// An NTP sample whose timestamps are out of order (e.g. a negative round-trip delay). The
    /// sample was not used; drop it and count it. Repeated invalid samples point at a broken
    /// reference server or a broken raw clock.
    #[error("invalid NTP sample: {reason} (round-trip delay {})", SignedNs(*.delay_ns))]
    InvalidSample {
        /// Which timestamps are out of order.
        reason: &'static str,
        /// The sample's round-trip delay δ = (t4 − t1) − (t3 − t2), in nanoseconds.
        delay_ns: i64,
    },

    /// A remote hybrid-logical-clock timestamp is further ahead of local physical time than
    /// `max_offset` allows. It did not enter the local clock (whose state is unchanged). Report the
    /// sender, fence it and quarantine what it sent — unless this leader is itself fenced, in which
    /// case the local clock is the more likely culprit.
    #[error(
        "remote timestamp {remote} is {} ahead of local physical time, beyond max_offset {}",
        HumanDuration(*.ahead_by),
        HumanDuration(*.max_offset)
    )]
    RemoteTooFarAhead {
        /// The rejected timestamp.
        remote: HlcTimestamp,
        /// How far the remote timestamp is ahead of local physical time.
        ahead_by: Duration,
        /// The configured limit.
        max_offset: Duration,
    },

    /// This leader's own clock is off by more than its tolerance, as measured against the NTP
    /// reference. It refuses to stamp writes until the correction brings it back (or the operator
    /// fixes the clock), so that no acknowledged write carries a bad timestamp.
    #[error(
        "clock fenced: corrected time is still {} off the reference, beyond the tolerance {}; \
         refusing to stamp writes",
        SignedNs(*.residual_ns),
        HumanDuration(*.tolerance)
    )]
    Fenced {
        /// The remaining error of the corrected clock (reference − corrected), in nanoseconds.
        residual_ns: i64,
        /// The configured tolerance.
        tolerance: Duration,
    },

    /// The clock went without a sample for longer than `max_sample_age`: its time server stopped
    /// answering (or every answer was refused), so nothing bounds its drift. It stamps writes
    /// again after the next accepted sample.
    #[error(
        "clock stale: no NTP sample for {}, longer than {}; refusing to stamp writes until a time server answers",
        HumanDuration(*.age),
        HumanDuration(*.limit)
    )]
    Stale {
        /// How long since the last sample.
        age: Duration,
        /// The configured limit.
        limit: Duration,
    },

    /// No NTP sample has been taken yet and the config asks to fence an unsynchronized clock. Wait
    /// for the first sample.
    #[error(
        "clock unsynchronized: no NTP sample yet and fence_when_unsynchronized is set; \
         refusing to stamp writes"
    )]
    Unsynchronized,

    /// The hybrid logical clock has reached the largest representable timestamp (physical part
    /// 2^48 − 1 ticks, around the year 2106, with the logical counter at its maximum). Only a
    /// physical clock far in the future gets here; fix the clock.
    #[error(
        "hybrid logical clock exhausted: it reached the largest representable timestamp \
         (around the year 2106); the physical clock is far off"
    )]
    Exhausted,

    /// An HLC physical part of 2^48 ticks or more (only possible from a bad encoding or a bad
    /// argument). Reject the input.
    #[error("HLC time of {ticks} ticks is out of range (must be below 2^48)")]
    TimeOutOfRange {
        /// The rejected physical part, in units of 2^-16 s.
        ticks: u64,
    },
}

/// A duration rendered for humans: `2.000s`, `500ms`, `1.250ms`, `15.259µs`, `800ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_ns(f, self.0.as_nanos())
    }
}

/// A signed nanosecond count rendered for humans: `-2.000s`, `+500ms`... (see [`HumanDuration`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SignedNs(pub(crate) i64);

impl fmt::Display for SignedNs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 0 {
            f.write_str("-")?;
        }
        fmt_ns(f, u128::from(self.0.unsigned_abs()))
    }
}

fn fmt_ns(f: &mut fmt::Formatter<'_>, ns: u128) -> fmt::Result {
    const NS_PER_US: u128 = 1_000;
    const NS_PER_MS: u128 = 1_000_000;
    const NS_PER_S: u128 = 1_000_000_000;
    let (unit, scale) = if ns >= NS_PER_S {
        ("s", NS_PER_S)
    } else if ns >= NS_PER_MS {
        ("ms", NS_PER_MS)
    } else if ns >= NS_PER_US {
        ("µs", NS_PER_US)
    } else {
        return write!(f, "{ns}ns");
    };
    let whole = ns / scale;
    // Milliseconds: write whole ones plainly (`500ms`); everything else to three decimals.
    if unit == "ms" && ns.is_multiple_of(scale) {
        return write!(f, "{whole}ms");
    }
    let thousandths = (ns % scale) * 1_000 / scale;
    write!(f, "{whole}.{thousandths:03}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_render_for_humans() {
        let cases = [
            (Duration::from_secs(2), "2.000s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(1_250), "1.250ms"),
            (Duration::from_nanos(15_259), "15.259µs"),
            (Duration::from_nanos(800), "800ns"),
            (Duration::from_millis(2_345), "2.345s"),
        ];
        for (d, want) in cases {
            assert_eq!(HumanDuration(d).to_string(), want);
        }
        assert_eq!(SignedNs(-2_000_000_000).to_string(), "-2.000s");
        assert_eq!(SignedNs(i64::MIN).to_string(), "-9223372036.854s");
    }
}
