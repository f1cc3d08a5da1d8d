//! Real NTP (feature `ntp`): one SNTP exchange with a server over UDP (RFC 4330), turned into
//! the [`NtpSample`] the clock corrector takes, with what the server said about itself.
//!
//! The packet codec and its checks are [rsntp](https://docs.rs/rsntp)'s, a maintained SNTP
//! client: it rejects a reply that is not a server's answer to this request (mode, version,
//! origin timestamp), a kiss-of-death (stratum 0), and a server that says it is not synchronised
//! (leap indicator 3). On top, [`query`] refuses an offset beyond a limit instead of handing it
//! on: a server ten minutes off is a fault, not a correction.

use std::time::{Duration, SystemTime};

use roundtable_runtime::clock::NtpSample;
use roundtable_runtime::WallTime;

use crate::clock_sync::ClockSample;

/// What one exchange with a server measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtpReading {
    /// The server, as asked.
    pub server: String,
    /// The exchange, for [`roundtable_runtime::clock::ClockCorrector::add_sample`]: `t1` and `t4`
    /// by the local system clock around the exchange, `t2` and `t3` rebuilt from the offset and
    /// delay the server's timestamps give.
    pub sample: NtpSample,
    /// The server's clock minus this one, in nanoseconds.
    pub offset_ns: i64,
    /// The round trip, less the server's own turnaround.
    pub delay: Duration,
    /// The server's stratum (1: a reference clock; 16: unsynchronised).
    pub stratum: u8,
    /// The server's reference (an IP address, or a reference clock's code such as `LOCL`).
    pub reference: String,
}

/// Why an exchange gave no reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NtpError {
    /// The server could not be reached or did not answer in time.
    #[error("NTP server {server}: no answer: {reason}")]
    Unreachable {
        /// The server.
        server: String,
        /// What the socket said.
        reason: String,
    },
    /// The server answered with a kiss-of-death: it asks clients to stop or slow down.
    #[error("NTP server {server} sent a kiss-of-death ({code}): not used")]
    KissOfDeath {
        /// The server.
        server: String,
        /// Its code (`RATE`, `DENY`, …).
        code: String,
    },
    /// The answer is not a valid SNTP reply to this request, or the server says it is not
    /// synchronised.
    #[error("NTP server {server}: reply refused: {reason}")]
    Refused {
        /// The server.
        server: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server's time is further from this clock than the limit: a fault, not a correction.
    #[error("NTP server {server} is {offset_ms} ms away from this clock, beyond the limit of {limit_ms} ms: not used")]
    TooFarOff {
        /// The server.
        server: String,
        /// Its offset, in milliseconds.
        offset_ms: i64,
        /// The limit, in milliseconds.
        limit_ms: u128,
    },
}

/// The largest offset a reading may show before it is refused ([`NtpError::TooFarOff`]).
pub const DEFAULT_MAX_STEP: Duration = Duration::from_secs(60);

/// One SNTP exchange with `server` (`host:port`), waiting at most `timeout`; an offset beyond
/// `max_step` is refused.
pub async fn query(server: &str, timeout: Duration, max_step: Duration) -> Result<NtpReading, NtpError> {
    let mut client = rsntp::AsyncSntpClient::new();
    client.set_timeout(timeout);
    let t1 = system_now();
    let result = client.synchronize(server).await;
    let t4 = system_now();
    let reply = result.map_err(|e| classify(server, &e))?;
    let offset_ns = (reply.clock_offset().as_secs_f64() * 1e9) as i64;
    let delay_ns = (reply.round_trip_delay().as_secs_f64().max(0.0) * 1e9) as i64;
    let limit_ns = i64::try_from(max_step.as_nanos()).unwrap_or(i64::MAX);
    if offset_ns.abs() > limit_ns {
        return Err(NtpError::TooFarOff {
            server: server.to_owned(),
            offset_ms: offset_ns / 1_000_000,
            limit_ms: max_step.as_millis(),
        });
    }
    Ok(NtpReading {
        server: server.to_owned(),
        sample: rebuild(t1, t4, offset_ns, delay_ns),
        offset_ns,
        delay: Duration::from_nanos(u64::try_from(delay_ns).unwrap_or(0)),
        stratum: reply.stratum(),
        reference: reply.reference_identifier().to_string(),
    })
}

/// The four timestamps of an exchange that left at `t1` and came back at `t4` (local clock) and
/// measured `offset_ns` and `delay_ns`: the server's receive and send times, centred in the
/// round trip, `(t4 − t1) − delay` apart.
fn rebuild(t1: WallTime, t4: WallTime, offset_ns: i64, delay_ns: i64) -> NtpSample {
    let span = i64::try_from(t4.as_nanos().saturating_sub(t1.as_nanos())).unwrap_or(i64::MAX);
    let turnaround = (span - delay_ns).clamp(0, span);
    let middle = t1.offset_by_ns(span / 2 + offset_ns);
    NtpSample::new(t1, middle.offset_by_ns(-turnaround / 2), middle.offset_by_ns(turnaround - turnaround / 2), t4)
}

fn system_now() -> WallTime {
    let since = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    WallTime::from_nanos(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
}

fn classify(server: &str, error: &rsntp::SynchronizationError) -> NtpError {
    let server = server.to_owned();
    match error {
        rsntp::SynchronizationError::IOError(e) => NtpError::Unreachable { server, reason: e.to_string() },
        rsntp::SynchronizationError::ProtocolError(rsntp::ProtocolError::KissODeath(code)) => {
            NtpError::KissOfDeath { server, code: format!("{code:?}") }
        }
        rsntp::SynchronizationError::ProtocolError(e) => NtpError::Refused { server, reason: e.to_string() },
    }
}

/// How a leader's clock follows NTP servers ([`crate::ClusterBuilder::ntp`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtpConfig {
    /// The servers, `host:port`.
    pub servers: Vec<String>,
    /// How often all of them are asked (default 16 s, chrony's shortest default poll).
    pub interval: Duration,
    /// How long one answer may take (default 1 s).
    pub timeout: Duration,
    /// How many servers must agree before a reading is used (default 1). With 2 or more, a
    /// single server that is off (a falseticker) is outvoted.
    pub min_agree: usize,
    /// Two readings agree when their offsets differ by at most this plus half their delays
    /// (default 100 ms).
    pub agree_within: Duration,
    /// A reading further off than this is a faulty server, not a correction (default 60 s).
    pub max_step: Duration,
    /// A leader with no usable reading for this long fences itself as stale (default 64 s:
    /// four intervals).
    pub stale_after: Duration,
}

impl NtpConfig {
    /// The defaults, for `servers`.
    #[must_use]
    pub fn new(servers: Vec<String>) -> Self {
        NtpConfig {
            servers,
            interval: Duration::from_secs(16),
            timeout: Duration::from_secs(1),
            min_agree: 1,
            agree_within: Duration::from_millis(100),
            max_step: DEFAULT_MAX_STEP,
            stale_after: Duration::from_secs(64),
        }
    }
}

/// Why a round of readings gave no sample.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectError {
    /// Fewer servers answered than must agree.
    #[error("{answered} of the NTP servers gave a usable reading, {needed} must agree")]
    TooFew {
        /// Usable readings.
        answered: usize,
        /// How many must agree.
        needed: usize,
    },
    /// Enough answered, but not enough of them agree.
    #[error("the NTP servers disagree: no {needed} of their {answered} readings agree")]
    Disagree {
        /// Usable readings.
        answered: usize,
        /// How many must agree.
        needed: usize,
    },
}

/// The reading to use from one round: among the readings that at least `min_agree` readings
/// (itself included) agree with, the one with the smallest delay (NTP's clock-select idea,
/// RFC 5905 §11.2.1, in its simplest form).
pub fn select(readings: &[NtpReading], min_agree: usize, agree_within: Duration) -> Result<&NtpReading, SelectError> {
    let needed = min_agree.max(1);
    let answered = readings.len();
    if answered < needed {
        return Err(SelectError::TooFew { answered, needed });
    }
    let within = i128::try_from(agree_within.as_nanos()).unwrap_or(i128::MAX);
    let agree = |a: &NtpReading, b: &NtpReading| {
        let gap = (i128::from(a.offset_ns) - i128::from(b.offset_ns)).abs();
        gap <= within + (a.delay.as_nanos() as i128 + b.delay.as_nanos() as i128) / 2
    };
    readings
        .iter()
        .filter(|r| readings.iter().filter(|o| agree(r, o)).count() >= needed)
        .min_by_key(|r| r.delay)
        .ok_or(SelectError::Disagree { answered, needed })
}

/// Asks a leader's NTP servers every `interval` and hands the selected reading to the leader as
/// a [`ClockSample`]; what went wrong (a server unreachable, refused, outvoted) is logged.
pub struct NtpSync {
    leader: actix::Recipient<ClockSample>,
    name: String,
    config: NtpConfig,
}

impl NtpSync {
    /// An actor for leader `name`.
    #[must_use]
    pub(crate) fn new(leader: actix::Recipient<ClockSample>, name: String, config: NtpConfig) -> Self {
        NtpSync { leader, name, config }
    }

    fn poll(&mut self, ctx: &mut actix::Context<Self>) {
        use actix::{ActorFutureExt, AsyncContext, WrapFuture};
        let config = self.config.clone();
        let round = async move {
            let mut readings = Vec::new();
            let mut errors = Vec::new();
            for server in &config.servers {
                match query(server, config.timeout, config.max_step).await {
                    Ok(reading) => readings.push(reading),
                    Err(e) => errors.push(e),
                }
            }
            (readings, errors)
        };
        ctx.spawn(round.into_actor(self).map(|(readings, errors), sync, _| {
            for e in &errors {
                tracing::warn!(leader = %sync.name, error = %e, "NTP server not used");
            }
            match select(&readings, sync.config.min_agree, sync.config.agree_within) {
                Ok(reading) => {
                    tracing::debug!(
                        leader = %sync.name, server = %reading.server, offset_ns = reading.offset_ns,
                        delay_us = reading.delay.as_micros() as u64, stratum = reading.stratum, "NTP reading"
                    );
                    sync.leader.do_send(ClockSample(reading.sample));
                }
                Err(e) => tracing::warn!(leader = %sync.name, error = %e, "no NTP sample this round"),
            }
        }));
    }
}

impl actix::Actor for NtpSync {
    type Context = actix::Context<Self>;

    fn started(&mut self, ctx: &mut actix::Context<Self>) {
        use actix::AsyncContext;
        self.poll(ctx);
        ctx.run_interval(self.config.interval, |sync, ctx| sync.poll(ctx));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebuilt_sample_has_the_measured_offset_and_delay() {
        let t1 = WallTime::from_secs(1_767_225_600);
        let t4 = t1.offset_by_ns(3_000_000);
        for (offset_ns, delay_ns) in [(0, 3_000_000), (250_000_000, 2_000_000), (-40_000_000, 1_000_000)] {
            let sample = rebuild(t1, t4, offset_ns, delay_ns);
            assert_eq!(sample.validate(), Ok(()));
            assert!((sample.offset_ns() - offset_ns).abs() <= 1, "{sample:?}");
            assert!((sample.delay_ns() - delay_ns).abs() <= 1, "{sample:?}");
        }
    }

    fn reading(server: &str, offset_ms: i64, delay_ms: u64) -> NtpReading {
        let t1 = WallTime::from_secs(1_767_225_600);
        let offset_ns = offset_ms * 1_000_000;
        let delay_ns = delay_ms as i64 * 1_000_000;
        NtpReading {
            server: server.into(),
            sample: rebuild(t1, t1.offset_by_ns(delay_ns), offset_ns, delay_ns),
            offset_ns,
            delay: Duration::from_millis(delay_ms),
            stratum: 2,
            reference: String::new(),
        }
    }

    #[test]
    fn selection_takes_the_fastest_reading_that_enough_servers_agree_with() {
        let within = Duration::from_millis(100);
        let readings = [reading("a", 5, 20), reading("b", 7, 4), reading("falseticker", 900, 1)];
        // Alone, the falseticker's 1 ms delay wins.
        assert_eq!(select(&readings, 1, within).map(|r| r.server.as_str()), Ok("falseticker"));
        // With two that must agree, it is outvoted: b (4 ms) agrees with a.
        assert_eq!(select(&readings, 2, within).map(|r| r.server.as_str()), Ok("b"));
        assert_eq!(select(&readings, 3, within), Err(SelectError::Disagree { answered: 3, needed: 3 }));
        assert_eq!(select(&readings[..1], 2, within), Err(SelectError::TooFew { answered: 1, needed: 2 }));
        assert_eq!(select(&[], 1, within), Err(SelectError::TooFew { answered: 0, needed: 1 }));
    }
}
