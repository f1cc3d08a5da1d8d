//! Clocks: physical clocks (simulated skew and drift), NTP correction and the hybrid logical clock.
//!
//! Time flows upwards through three layers, each a pure state machine fed by its caller:
//!
//! ```text
//!   raw physical time        read by the shell (system clock or simulator), passed in as WallTime
//!         │                  physical: PhysicalClock, SimulatedClock (offset + drift)
//!         ▼
//!   corrected time           ntp: ClockCorrector — RFC 5905 offset/delay, min-delay filter over 8
//!         │                  samples, slew (≤ 500 ppm) or step (> 128 ms), never backwards, health
//!         ▼
//!   HLC timestamps           hlc: Hlc — Kulkarni et al. 2014, (l, c) plus leader id, compact u64
//! ```
//!
//! [`LeaderClock`] stacks the layers for one leader and enforces the trust boundary: a leader
//! whose corrected clock is off by more than its tolerance is fenced and refuses to stamp writes,
//! and a remote timestamp more than `max_offset` ahead of local corrected time is rejected without
//! touching the local clock.
//!
//! **Architecture invariant:** nothing here reads a clock or a random number generator. Every
//! time is an argument.

mod error;
mod hlc;
mod leader;
mod ntp;
mod physical;

pub use error::{ClockError, HumanDuration};
pub use hlc::{Hlc, HlcTimestamp, DEFAULT_MAX_OFFSET, MAX_TICKS, TICKS_PER_SEC};
pub use leader::{LeaderClock, LeaderClockConfig};
pub use ntp::{
    ClockCorrector, ClockHealth, CorrectionConfig, CorrectionEvent, CorrectionMode, NtpSample, DEFAULT_MAX_SLEW_PPM,
    DEFAULT_STEP_THRESHOLD, DEFAULT_TOLERANCE, PHI_PPM, SAMPLE_WINDOW,
};
pub use physical::{PhysicalClock, SimulatedClock, SkewedClock};
