//! Where a leader's raw physical time comes from: the system clock (through chrono) in real runs,
//! or a simulated clock with its own offset and drift over the simulator's paused tokio time.

use std::time::Duration;

use roundtable_runtime::clock::{PhysicalClock, SimulatedClock};
use roundtable_runtime::WallTime;

/// The operating system's wall clock, read through chrono.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl PhysicalClock for SystemClock {
    fn now(&self) -> WallTime {
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
        WallTime::from_nanos(u64::try_from(nanos).unwrap_or(0))
    }
}

/// The true time of a simulation: a fixed wall time at the start plus the tokio time elapsed
/// since (paused in simulation, so it advances only when every actor is idle).
#[derive(Debug, Clone, Copy)]
pub struct SimEpoch {
    start: tokio::time::Instant,
    wall: WallTime,
}

impl SimEpoch {
    /// An epoch that maps the current tokio instant to `wall`.
    #[must_use]
    pub fn starting_now(wall: WallTime) -> Self {
        SimEpoch { start: tokio::time::Instant::now(), wall }
    }

    /// The time elapsed since the epoch.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        tokio::time::Instant::now().saturating_duration_since(self.start)
    }

    /// True wall time now.
    #[must_use]
    pub fn now(&self) -> WallTime {
        self.wall.saturating_add(self.elapsed())
    }

    /// The tokio instant at `offset` after the epoch.
    #[must_use]
    pub fn instant_at(&self, offset: Duration) -> tokio::time::Instant {
        self.start + offset
    }
}

/// A leader's physical clock: the system clock, or a simulated one over simulated true time.
#[derive(Debug, Clone)]
pub enum LeaderClockSource {
    /// The operating system's clock.
    System(SystemClock),
    /// A simulated clock (offset and drift) over the simulation's true time.
    Simulated {
        /// The simulation's true time.
        epoch: SimEpoch,
        /// This leader's skew.
        clock: SimulatedClock,
    },
}

impl PhysicalClock for LeaderClockSource {
    fn now(&self) -> WallTime {
        match self {
            LeaderClockSource::System(c) => c.now(),
            LeaderClockSource::Simulated { epoch, clock } => clock.reading_at(epoch.now()),
        }
    }
}

/// Checks `condition` every 10 ms (tokio time: paused in a simulation) until it holds —
/// `Ok(true)` — or `limit` has passed — `Ok(false)`.
pub(crate) async fn poll_until<F, E>(limit: Duration, mut condition: impl FnMut() -> F) -> Result<bool, E>
where
    F: std::future::Future<Output = Result<bool, E>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if condition().await? {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
