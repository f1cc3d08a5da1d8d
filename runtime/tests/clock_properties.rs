//! Property tests of the clock module: the hybrid logical clock's guarantees (Kulkarni et al.
//! 2014), its compact form, NTP correction (RFC 5905 arithmetic, slew and step) and fencing.
//!
//! Every test runs at least 256 cases; on failure proptest prints the minimal failing input, and
//! running the test again replays it first (proptest saves the seed in
//! `clock_properties.proptest-regressions` next to this file; commit that file).

use core::time::Duration;

use proptest::prelude::*;
use roundtable_runtime::clock::{
    ClockCorrector, ClockError, ClockHealth, CorrectionConfig, CorrectionMode, Hlc, HlcTimestamp, LeaderClock,
    LeaderClockConfig, NtpSample, SimulatedClock, DEFAULT_MAX_OFFSET, MAX_TICKS, TICKS_PER_SEC,
};
use roundtable_runtime::{LeaderId, WallTime};

/// 2026-01-01T00:00:00Z, in nanoseconds: where simulated true time starts.
const BASE_NS: u64 = 1_767_225_600_000_000_000;
const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;
/// A step that always moves every clock to a later HLC tick (one tick is 15,258.79 ns).
const ONE_TICK_NS: u64 = 15_259;
/// The most events in one generated run.
const EVENTS_MAX: usize = 300;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

fn leader(i: usize) -> LeaderId {
    LeaderId::new(i % 64).expect("leader id below 64")
}

fn ticks_at_ns(ns: u64) -> u64 {
    HlcTimestamp::ticks_at(WallTime::from_nanos(ns))
}

/// One step of a generated cluster history.
#[derive(Debug, Clone)]
enum Event {
    /// A local write (or send) at `node`.
    Local { node: usize },
    /// `node` sends a message to `to` (a send event, then the message is in flight).
    Send { node: usize, to: usize },
    /// The in-flight message number `pick` (modulo how many there are) is delivered.
    Deliver { pick: usize },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        1 => (0usize..8).prop_map(|node| Event::Local { node }),
        1 => (0usize..8, 0usize..8).prop_map(|(node, to)| Event::Send { node, to }),
        2 => any::<usize>().prop_map(|pick| Event::Deliver { pick }),
    ]
}

/// A cluster of `offsets.len()` leaders whose physical clocks are `offsets[i]` ns ahead of true
/// time (all within `[0, epsilon_ns]`, so any two differ by at most ε), running `events` with true
/// time advancing by `steps[k] + min_step_ns` before event `k`. Checks, at every event:
/// - timestamps of a leader strictly increase; a receive is later than the message it received;
/// - `l ≥ pt` and `l − pt ≤ ε` (the paper's Theorem 2 and Corollary);
/// - when every event takes at least one tick, `c ≤ ⌊ε/tick⌋ + 1` (see below).
fn run_cluster(
    epsilon_ns: u64,
    offsets: &[u64],
    events: &[(Event, u64)],
    min_step_ns: u64,
) -> Result<(), TestCaseError> {
    let n = offsets.len();
    let mut clocks: Vec<Hlc> = (0..n).map(|i| Hlc::new(leader(i))).collect();
    let mut last: Vec<Option<HlcTimestamp>> = vec![None; n];
    let mut in_flight: Vec<(usize, HlcTimestamp)> = Vec::new();
    let mut true_ns = BASE_NS;
    let epsilon_ticks = u128::from(epsilon_ns) * u128::from(TICKS_PER_SEC) / u128::from(SEC);

    for (event, step_ns) in events {
        true_ns += min_step_ns + step_ns;
        let (node, ts, received) = match *event {
            Event::Local { node } => {
                let node = node % n;
                let pt = WallTime::from_nanos(true_ns + offsets[node]);
                (node, clocks[node].now(pt), None)
            }
            Event::Send { node, to } => {
                let node = node % n;
                let pt = WallTime::from_nanos(true_ns + offsets[node]);
                let ts = clocks[node].now(pt);
                in_flight.push((to % n, ts));
                (node, ts, None)
            }
            Event::Deliver { pick } => {
                if in_flight.is_empty() {
                    continue;
                }
                let (to, remote) = in_flight.swap_remove(pick % in_flight.len());
                let pt = WallTime::from_nanos(true_ns + offsets[to]);
                let ts = clocks[to].receive(remote, pt, DEFAULT_MAX_OFFSET)?;
                (to, ts, Some(remote))
            }
        };
        let pt_ns = true_ns + offsets[node];

        // Strictly increasing per leader; a receive is after the send.
        if let Some(previous) = last[node] {
            prop_assert!(ts > previous, "{ts} after {previous}");
        }
        if let Some(remote) = received {
            prop_assert!(ts.to_compact() > remote.to_compact(), "{ts} after {remote}");
        }
        prop_assert_eq!(ts.leader(), leader(node));
        last[node] = Some(ts);

        // l ≥ pt, and l − pt ≤ ε: l is some leader's earlier physical time, never ahead of the
        // fastest clock, which is at most ε ahead of this one.
        prop_assert!(ts.ticks() >= ticks_at_ns(pt_ns));
        prop_assert!(
            ts.wall_time().as_nanos() <= pt_ns + epsilon_ns,
            "l = {} is more than ε = {epsilon_ns} ns ahead of pt = {pt_ns}",
            ts.wall_time().as_nanos()
        );

        // The counter. The paper's Theorem 3: c of an event ≤ the number of events that happened
        // before it with the same l. Every event with l = L has true time in
        // [L·tick − max offset, (L+1)·tick − min offset), a window shorter than tick + ε; events
        // here are globally at least one tick apart, so at most ⌊ε/tick⌋ + 2 of them fit, and c
        // (which does not count the event itself) is at most ⌊ε/tick⌋ + 1. This is tighter than
        // the paper's N·(ε + 1) because this history has one event per tick in the whole
        // cluster, not per leader.
        if min_step_ns >= ONE_TICK_NS {
            prop_assert!(
                u128::from(ts.logical()) <= epsilon_ticks + 1,
                "c = {} > ⌊ε/tick⌋ + 1 = {}",
                ts.logical(),
                epsilon_ticks + 1
            );
        }
    }
    Ok(())
}

/// Where a leader's clock sits within `[0, ε]`, in millionths of ε; often at either end, so that
/// the skew between some two leaders is the whole of ε.
fn fraction() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0), Just(1_000_000), 0u32..=1_000_000]
}

/// A step of true time between events: often none (many events in one tick), else up to `max_ns`.
fn step(max_ns: u64) -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), 0..=max_ns]
}

/// A logical counter, often at the top of its range (so that it overflows).
fn counter() -> impl Strategy<Value = u16> {
    prop_oneof![Just(u16::MAX), Just(u16::MAX - 1), any::<u16>()]
}

/// Leader clock offsets within `[0, epsilon_ns]`, from fractions in millionths.
fn offsets_within(epsilon_ns: u64, fractions: &[u32]) -> Vec<u64> {
    fractions.iter().map(|&f| epsilon_ns * u64::from(f) / 1_000_000).collect()
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary histories, including many events within one tick (steps of 0).
    #[test]
    fn hlc_cluster_is_monotonic_and_close_to_physical_time(
        epsilon_ns in 0..=400 * MS,
        fractions in prop::collection::vec(fraction(), 2..=6),
        events in prop::collection::vec((event(), step(2 * MS)), 1..=EVENTS_MAX),
    ) {
        let offsets = offsets_within(epsilon_ns, &fractions);
        run_cluster(epsilon_ns, &offsets, &events, 0)?;
    }

    /// Histories with at least one tick between events: the counter stays bounded.
    #[test]
    fn hlc_counter_is_bounded_by_skew(
        epsilon_ns in prop_oneof![0..=20 * ONE_TICK_NS, 0..=5 * MS],
        fractions in prop::collection::vec(fraction(), 2..=6),
        events in prop::collection::vec((event(), step(2 * ONE_TICK_NS)), 1..=EVENTS_MAX),
    ) {
        let offsets = offsets_within(epsilon_ns, &fractions);
        run_cluster(epsilon_ns, &offsets, &events, ONE_TICK_NS)?;
    }

    /// One leader receiving arbitrary remote timestamps within `max_offset` (any counter value,
    /// so the counter overflows): strictly increasing, `l ≥ pt`, and `l` leads the largest time
    /// it has heard of by at most one tick per overflow.
    #[test]
    fn hlc_with_arbitrary_remote_timestamps(
        max_offset_ms in 0..=2_000u64,
        steps in prop::collection::vec(
            (step(50 * MS), any::<bool>(), -10_000i64..=2_000, counter(), 0usize..64),
            1..=EVENTS_MAX,
        ),
    ) {
        let max_offset = Duration::from_millis(max_offset_ms);
        let mut hlc = Hlc::new(leader(0));
        let mut previous = hlc.last();
        let mut pt_ns = BASE_NS;
        let mut heard_ticks = 0u64; // the largest physical time heard of, in ticks
        let mut overflows = 0u64;
        for (step_ns, is_receive, remote_ms, logical, from) in steps {
            pt_ns += step_ns;
            let pt = WallTime::from_nanos(pt_ns);
            heard_ticks = heard_ticks.max(ticks_at_ns(pt_ns));
            let ts = if is_receive {
                // Anywhere from 10 s behind to max_offset ahead of pt.
                let remote_ns = pt_ns.saturating_add_signed(
                    remote_ms.clamp(-10_000, max_offset_ms as i64) * MS as i64,
                );
                let remote =
                    HlcTimestamp::from_wall_time(WallTime::from_nanos(remote_ns), logical, leader(from));
                let ts = hlc.receive(remote, pt, max_offset)?;
                prop_assert!(ts.to_compact() > remote.to_compact());
                heard_ticks = heard_ticks.max(remote.ticks());
                ts
            } else {
                hlc.now(pt)
            };
            let floor = previous.ticks().max(heard_ticks);
            prop_assert!(ts.ticks() <= floor + 1, "at most one tick of overflow per event");
            if ts.ticks() > floor {
                overflows += 1;
            }
            prop_assert!(ts > previous);
            prop_assert!(ts.ticks() >= ticks_at_ns(pt_ns));
            prop_assert!(ts.ticks() <= heard_ticks + overflows);
            // l − pt ≤ max_offset (every remote was within it), plus the overflow ticks.
            let lead_ns = ts.wall_time().as_nanos().saturating_sub(pt_ns);
            let overflow_ns = overflows * ONE_TICK_NS;
            prop_assert!(lead_ns <= max_offset_ms * MS + overflow_ns);
            previous = ts;
        }
    }

    /// A remote timestamp beyond `max_offset` is rejected, and the clock is exactly as it was.
    #[test]
    fn hlc_rejects_far_ahead_remote_time_and_stays_put(
        max_offset_ms in 0..=2_000u64,
        history in prop::collection::vec((0..=10 * MS, any::<bool>()), 0..=50),
        beyond_ns in (ONE_TICK_NS + 1)..=60 * SEC,
        logical in any::<u16>(),
        from in 0usize..64,
    ) {
        let max_offset = Duration::from_millis(max_offset_ms);
        let mut hlc = Hlc::new(leader(1));
        let mut pt_ns = BASE_NS;
        for (step_ns, receive) in history {
            pt_ns += step_ns;
            let pt = WallTime::from_nanos(pt_ns);
            if receive {
                let remote = HlcTimestamp::from_wall_time(pt, 7, leader(2));
                hlc.receive(remote, pt, max_offset)?;
            } else {
                let _ = hlc.now(pt);
            }
        }
        let pt = WallTime::from_nanos(pt_ns);
        let remote_ns = pt_ns + max_offset_ms * MS + beyond_ns;
        let remote = HlcTimestamp::from_wall_time(WallTime::from_nanos(remote_ns), logical, leader(from));
        let before = hlc.clone();
        match hlc.receive(remote, pt, max_offset) {
            Err(ClockError::RemoteTooFarAhead { remote: r, ahead_by, max_offset: m }) => {
                prop_assert_eq!(r, remote);
                prop_assert_eq!(m, max_offset);
                prop_assert!(ahead_by > max_offset);
            }
            other => prop_assert!(false, "expected RemoteTooFarAhead, got {:?}", other),
        }
        prop_assert_eq!(&hlc, &before);

        // The same through a leader clock with no correction yet (corrected = raw).
        let mut clock = LeaderClock::new(leader(1), LeaderClockConfig { max_offset, ..LeaderClockConfig::default() })?;
        let _ = clock.stamp(pt)?;
        let hlc_before = clock.hlc().clone();
        let observed = clock.observe(remote, pt);
        prop_assert!(
            matches!(observed, Err(ClockError::RemoteTooFarAhead { .. })),
            "{:?}",
            observed
        );
        prop_assert_eq!(clock.hlc(), &hlc_before);
    }

    /// The compact form round-trips and preserves the order of (physical time, counter).
    #[test]
    fn compact_form_round_trips_and_preserves_order(
        a in (0..=MAX_TICKS, counter(), 0usize..64),
        b in (0..=MAX_TICKS, counter(), 0usize..64),
        near in any::<bool>(),
    ) {
        let a = HlcTimestamp::new(a.0, a.1, leader(a.2))?;
        // Half the cases compare timestamps in the same tick, where the counter decides.
        let b = HlcTimestamp::new(if near { a.ticks() } else { b.0 }, b.1, leader(b.2))?;
        for ts in [a, b] {
            prop_assert_eq!(HlcTimestamp::from_compact(ts.to_compact(), ts.leader()), ts);
            let bytes = postcard::to_allocvec(&ts).expect("encodes");
            prop_assert_eq!(postcard::from_bytes::<HlcTimestamp>(&bytes), Ok(ts));
        }
        prop_assert_eq!(
            a.to_compact().cmp(&b.to_compact()),
            (a.ticks(), a.logical()).cmp(&(b.ticks(), b.logical()))
        );
        if a.to_compact() < b.to_compact() {
            prop_assert!(a < b);
        }
        if a < b {
            prop_assert!(a.to_compact() <= b.to_compact());
        }
    }

    /// Decoding arbitrary bytes never panics and never yields a time of 2^48 ticks or more.
    #[test]
    fn decoding_garbage_never_yields_an_out_of_range_time(
        bytes in prop::collection::vec(any::<u8>(), 0..=16),
        time in any::<u64>(),
        logical in any::<u16>(),
        id in 0u8..64,
    ) {
        if let Ok(ts) = postcard::from_bytes::<HlcTimestamp>(&bytes) {
            prop_assert!(ts.ticks() <= MAX_TICKS);
        }
        let encoded = postcard::to_allocvec(&(time, logical, id)).expect("encodes");
        let decoded = postcard::from_bytes::<HlcTimestamp>(&encoded);
        prop_assert_eq!(decoded.is_ok(), time <= MAX_TICKS);
    }

    /// A simulated clock with a valid drift never runs backwards.
    #[test]
    fn simulated_clock_is_monotonic(
        offset_ns in any::<i64>(),
        drift_ppm in -999_999i32..=999_999,
        start in any::<u64>(),
        t1 in any::<u64>(),
        t2 in any::<u64>(),
    ) {
        let clock = SimulatedClock::new(WallTime::from_nanos(start))
            .with_offset_ns(offset_ns)
            .with_drift_ppm(drift_ppm)?;
        let (early, late) = (t1.min(t2), t1.max(t2));
        prop_assert!(
            clock.reading_at(WallTime::from_nanos(early)) <= clock.reading_at(WallTime::from_nanos(late))
        );
    }
}

/// One NTP exchange in the simulation.
#[derive(Debug, Clone, Copy)]
struct Exchange {
    /// Network delay client → server, ns.
    up_ns: u64,
    /// Network delay server → client, ns.
    down_ns: u64,
    /// Time the server takes to answer, ns.
    turnaround_ns: u64,
    /// Raw times at which the corrected clock is read before this exchange, as offsets (ns) from
    /// the previous exchange's end.
    reads: [u64; 3],
}

fn exchange() -> impl Strategy<Value = Exchange> {
    (0..=200 * MS, 0..=200 * MS, 0..=MS, [0..=SEC, 0..=SEC, 0..=SEC]).prop_map(
        |(up_ns, down_ns, turnaround_ns, mut reads)| {
            reads.sort_unstable();
            Exchange { up_ns, down_ns, turnaround_ns, reads }
        },
    )
}

/// What [`run_ntp`] saw.
struct NtpRun {
    /// Every corrected reading, in order.
    readings: Vec<WallTime>,
    /// The raw time at the end.
    raw_end_ns: u64,
    /// The smallest round trip of all exchanges.
    min_rtt_ns: u64,
}

/// The largest error of one sample's offset, |up − down| / 2 with each leg at most 200 ms.
const SAMPLE_ERROR_MAX_NS: u64 = 100 * MS;

/// Simulates a raw clock `true_minus_raw_ns` behind true time taking `exchanges` against a perfect
/// reference, about one a second, reading the corrected clock in between. Checks at every reading
/// that a clock reporting itself synchronized is within its tolerance (plus the sample error) of
/// the truth: the promise fencing rests on.
fn run_ntp(
    clock: &mut ClockCorrector,
    true_minus_raw_ns: i64,
    exchanges: &[Exchange],
) -> Result<NtpRun, TestCaseError> {
    let mut readings = Vec::new();
    let mut raw_ns = BASE_NS;
    let mut min_rtt_ns = u64::MAX;
    let tolerance_ns = clock.config().tolerance.as_nanos() as u64;
    let mut read = |clock: &mut ClockCorrector, raw_ns: u64| -> Result<(), TestCaseError> {
        let raw = WallTime::from_nanos(raw_ns);
        let corrected = clock.now(raw);
        readings.push(corrected);
        if let ClockHealth::Synchronized { .. } = clock.health() {
            let error_ns = corrected.signed_since_ns(raw.offset_by_ns(true_minus_raw_ns)).unsigned_abs();
            prop_assert!(
                error_ns <= tolerance_ns + SAMPLE_ERROR_MAX_NS,
                "synchronized, yet {error_ns} ns off the truth: {:?}",
                clock.health()
            );
        }
        Ok(())
    };
    for x in exchanges {
        for offset_ns in x.reads {
            read(clock, raw_ns + offset_ns)?;
        }
        raw_ns += SEC + x.reads[2];
        let t1 = WallTime::from_nanos(raw_ns);
        let t2 = t1.offset_by_ns(true_minus_raw_ns + x.up_ns as i64);
        let t3 = WallTime::from_nanos(t2.as_nanos() + x.turnaround_ns);
        raw_ns += x.up_ns + x.turnaround_ns + x.down_ns;
        let t4 = WallTime::from_nanos(raw_ns);
        let sample = NtpSample::new(t1, t2, t3, t4);
        prop_assert_eq!(sample.delay_ns(), (x.up_ns + x.down_ns) as i64);
        min_rtt_ns = min_rtt_ns.min(x.up_ns + x.down_ns);
        let _ = clock.add_sample(t4, sample)?;
        read(clock, raw_ns)?;
    }
    // Keep reading for 3 s (long enough to catch up after any negative step).
    for _ in 0..30 {
        raw_ns += 100 * MS;
        read(clock, raw_ns)?;
    }
    Ok(NtpRun { readings, raw_end_ns: raw_ns, min_rtt_ns })
}

fn mode() -> impl Strategy<Value = CorrectionMode> {
    prop_oneof![Just(CorrectionMode::SlewAndStep), Just(CorrectionMode::SlewOnly)]
}

proptest! {
    #![proptest_config(config())]

    /// After 8 samples and enough time to slew, the corrected clock is within 1 ms + half the
    /// minimum round trip of the truth; it never runs backwards, negative steps included.
    #[test]
    fn ntp_correction_converges_and_never_runs_backwards(
        true_minus_raw_ns in -2_000 * MS as i64..=2_000 * MS as i64,
        exchanges in prop::collection::vec(exchange(), 8),
        mode in mode(),
    ) {
        let mut clock = ClockCorrector::new(CorrectionConfig { mode, ..CorrectionConfig::default() })?;
        let NtpRun { mut readings, raw_end_ns, min_rtt_ns } = run_ntp(&mut clock, true_minus_raw_ns, &exchanges)?;

        // The error left to slew is at most 2.1 s (SlewOnly): 4,200 s at 500 ppm.
        let settled_raw_ns = raw_end_ns + 5_000 * SEC;
        for raw_ns in [raw_end_ns + SEC, raw_end_ns + 100 * SEC, settled_raw_ns] {
            readings.push(clock.now(WallTime::from_nanos(raw_ns)));
        }
        for pair in readings.windows(2) {
            prop_assert!(pair[0] <= pair[1], "corrected time ran backwards: {} then {}", pair[0], pair[1]);
        }

        let corrected = clock.now(WallTime::from_nanos(settled_raw_ns));
        let truth = WallTime::from_nanos(settled_raw_ns).offset_by_ns(true_minus_raw_ns);
        let error_ns = corrected.signed_since_ns(truth).unsigned_abs();
        prop_assert!(
            error_ns <= MS + min_rtt_ns / 2,
            "corrected clock is {error_ns} ns off the truth (min round trip {min_rtt_ns} ns)"
        );
        prop_assert_eq!(clock.residual_offset_ns(), Some(0));
        prop_assert_eq!(clock.health(), ClockHealth::Synchronized { residual_ns: 0 });
        let measured = clock.measured_offset_ns().expect("sampled");
        prop_assert!(measured.abs_diff(true_minus_raw_ns) <= MS + min_rtt_ns / 2);
    }

    /// Observing a clock more than the tolerance off fences it; stepping it does not.
    #[test]
    fn fencing_follows_the_residual(
        magnitude_ns in 600 * MS as i64..=2_000 * MS as i64,
        negative in any::<bool>(),
        exchanges in prop::collection::vec(exchange(), 1..=8),
    ) {
        let true_minus_raw_ns = if negative { -magnitude_ns } else { magnitude_ns };
        // Each sample's error is at most SAMPLE_ERROR_MAX_NS (100 ms), so every measurement is
        // 500 ms or more off: beyond the 400 ms tolerance.
        let mut observe = ClockCorrector::new(CorrectionConfig {
            mode: CorrectionMode::Observe,
            ..CorrectionConfig::default()
        })?;
        let _ = run_ntp(&mut observe, true_minus_raw_ns, &exchanges)?;
        prop_assert!(observe.health().is_fenced(), "{:?}", observe.health());
        prop_assert!(observe.ensure_not_fenced().is_err());

        // Stepping leaves at most the step threshold to slew; after a negative step the clock
        // stands still (fenced) until it is within tolerance, which run_ntp waits out.
        let mut step = ClockCorrector::new(CorrectionConfig::default())?;
        let _ = run_ntp(&mut step, true_minus_raw_ns, &exchanges)?;
        prop_assert!(
            matches!(step.health(), ClockHealth::Synchronized { .. }),
            "{:?}",
            step.health()
        );
        prop_assert_eq!(step.ensure_not_fenced(), Ok(()));
    }

    /// Arbitrary (even absurd) samples and raw readings never panic, and corrected time never
    /// runs backwards.
    #[test]
    fn ntp_corrector_survives_arbitrary_input(
        steps in prop::collection::vec(
            (any::<u64>(), any::<[u64; 4]>(), any::<bool>()),
            1..=64,
        ),
    ) {
        let modes = [CorrectionMode::Observe, CorrectionMode::SlewOnly, CorrectionMode::SlewAndStep];
        for mode in modes {
            let mut clock = ClockCorrector::new(CorrectionConfig { mode, ..CorrectionConfig::default() })?;
            let mut last = WallTime::EPOCH;
            for &(raw, [t1, t2, t3, t4], sample) in &steps {
                let raw = WallTime::from_nanos(raw);
                if sample {
                    let s = NtpSample::new(
                        WallTime::from_nanos(t1),
                        WallTime::from_nanos(t2),
                        WallTime::from_nanos(t3),
                        WallTime::from_nanos(t4),
                    );
                    let accepted = clock.add_sample(raw, s).is_ok();
                    prop_assert_eq!(accepted, s.validate().is_ok());
                }
                let now = clock.now(raw);
                prop_assert!(now >= last);
                last = now;
                let _ = clock.health();
            }
        }
    }
}
