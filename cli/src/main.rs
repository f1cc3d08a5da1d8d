//! `roundtable`: run one simulation, sweep seeds for bugs, or draw a trace.
//!
//! ```text
//! roundtable sim --topology star --resolution lww --leaders 4 --seed 7 --faults standard --trace
//! roundtable sim --seed 7 --trace-out run.json --svg run.svg
//! roundtable sweep --seeds 1000
//! roundtable trace render run.json -o run.svg
//! roundtable keygen --nodes 3 --dir cluster
//! roundtable node --config cluster/n0.toml [--log json]
//! ```
//!
//! `sim` prints the run's report and the invariant checker's verdict (and, with `--trace`, the
//! trace); it exits with status 1 when an invariant was violated. `sweep` runs every topology ×
//! resolution (or those named) over a range of seeds with a progress bar, prints a summary table
//! and, for each failure, the seed, the violated invariant and the command that replays it.

use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use roundtable_actors::Trace;
use roundtable_runtime::clock::{ClockCorrector, CorrectionConfig, CorrectionMode};
use roundtable_sim::svg::{render_svg, SvgOptions};
use roundtable_sim::sweep::{FaultMix, Progress, Scenario, Sweep, SweepResolution, SweepTopology, SWEEP_LEADERS};

/// Simulate, sweep and draw roundtable replication runs.
#[derive(Debug, Parser)]
#[command(name = "roundtable", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one deterministic simulation, check it, and print its report.
    Sim(SimArgs),
    /// Run many seeds of every topology × resolution and report the failures.
    Sweep(SweepArgs),
    /// Work with a saved trace.
    #[command(subcommand)]
    Trace(TraceCommand),
    /// Run one node: its leader, TCP links to the other nodes, and a Redis-protocol front end.
    /// Stops cleanly on SIGTERM or ctrl-c.
    Node(NodeArgs),
    /// Write the keys and configuration files of a local cluster of N nodes.
    Keygen(KeygenArgs),
    /// Work with a leader's disk (a node's `data_dir/NAME.redb`).
    #[command(subcommand)]
    Disk(DiskCommand),
    /// Work with clocks and NTP servers.
    #[command(subcommand)]
    Clock(ClockCommand),
}

#[derive(Debug, Subcommand)]
enum ClockCommand {
    /// Ask an NTP server for the time once (SNTP, RFC 4330): print the offset, delay, stratum
    /// and reference, and whether a leader on this machine's clock, uncorrected, would be
    /// fenced (its offset beyond the tolerance). Exit status 0: within tolerance; 1: a leader
    /// would be fenced; 2: no usable answer (unreachable, garbage, kiss-of-death, unsynchronised,
    /// or further off than --max-step-ms).
    Check {
        /// The server, `host:port` (123 is NTP's port).
        #[arg(long)]
        server: String,
        /// How long to wait for the answer, in milliseconds.
        #[arg(long, default_value_t = 2_000)]
        timeout_ms: u64,
        /// The offset beyond which a leader fences itself, in milliseconds (the default
        /// tolerance: 80% of the default `max_offset` of 500 ms).
        #[arg(long, default_value_t = 400)]
        tolerance_ms: u64,
        /// An offset beyond this is a faulty server, not a correction, in milliseconds.
        #[arg(long, default_value_t = 60_000)]
        max_step_ms: u64,
    },
}

#[derive(Debug, Subcommand)]
enum DiskCommand {
    /// Check a leader's disk: redb's integrity check (every page's checksum), then a decode of
    /// every record. Exit status 0 when it passes, 1 when it does not, 2 when it cannot be read.
    /// The node must be stopped (a running node holds the file).
    Check {
        /// The file.
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
struct NodeArgs {
    /// The node's configuration file (TOML; `roundtable keygen` writes them).
    #[arg(long)]
    config: PathBuf,
    /// Log format: `text` (human-readable) or `json` (one JSON object per line).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log: String,
}

#[derive(Debug, Args)]
struct KeygenArgs {
    /// How many nodes (1–64), named n0, n1, …
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// The directory to write into (created if missing): nI.key (private) and nI.toml per node.
    #[arg(long)]
    dir: PathBuf,
    /// The address every node listens on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Node I listens for its peers on this port + I.
    #[arg(long, default_value_t = 7400)]
    peer_port: u16,
    /// Node I listens for Redis clients on this port + I.
    #[arg(long, default_value_t = 6400)]
    redis_port: u16,
    /// all-to-all, circle or star.
    #[arg(long, default_value = "all-to-all")]
    topology: String,
}

#[derive(Debug, Args)]
struct SimArgs {
    /// circle, star, all-to-all or custom.
    #[arg(long, default_value = "star")]
    topology: SweepTopology,
    /// lww, home-leader, siblings, crdt-state or crdt-op.
    #[arg(long, default_value = "lww")]
    resolution: SweepResolution,
    /// Number of leaders (2–64).
    #[arg(long, default_value_t = SWEEP_LEADERS as u8, value_parser = clap::value_parser!(u8).range(2..=64))]
    leaders: u8,
    /// The seed: it decides the workload, the faults' times and victims, and the clocks.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// `standard`, `none`, or items like `drop=0.1,duplicate=0.1,reorder=0.1,partition,crash,offset=500,drift=100,ntp`.
    #[arg(long, default_value = "standard")]
    faults: FaultMix,
    /// Print the whole trace and final states before the report.
    #[arg(long)]
    trace: bool,
    /// Save the trace (its typed records) as JSON, for `roundtable trace render`.
    #[arg(long, value_name = "FILE")]
    trace_out: Option<PathBuf>,
    /// Draw the run's space-time diagram to this SVG file.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Break one mechanism on purpose (needs `--features fault-injection`):
    /// skip-dependency-check, skip-duplicate-suppression, accept-far-future-timestamps.
    #[cfg(feature = "fault-injection")]
    #[arg(long, value_parser = roundtable_sim::sweep::parse_sabotage)]
    sabotage: Option<roundtable_sim::sweep::Sabotage>,
}

#[derive(Debug, Args)]
struct SweepArgs {
    /// Seeds per topology × resolution pair.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Only these topologies (repeat the flag; default all).
    #[arg(long)]
    topology: Vec<SweepTopology>,
    /// Only these resolutions (repeat the flag; default all).
    #[arg(long)]
    resolution: Vec<SweepResolution>,
    /// Number of leaders (2–64).
    #[arg(long, default_value_t = SWEEP_LEADERS as u8, value_parser = clap::value_parser!(u8).range(2..=64))]
    leaders: u8,
    /// The fault mix (as for `sim`).
    #[arg(long, default_value = "standard")]
    faults: FaultMix,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Break one mechanism on purpose in every run (needs `--features fault-injection`).
    #[cfg(feature = "fault-injection")]
    #[arg(long, value_parser = roundtable_sim::sweep::parse_sabotage)]
    sabotage: Option<roundtable_sim::sweep::Sabotage>,
}

#[derive(Debug, Subcommand)]
enum TraceCommand {
    /// Draw a trace saved by `roundtable sim --trace-out` as an SVG space-time diagram.
    Render {
        /// The trace (JSON).
        input: PathBuf,
        /// Where to write the SVG (default: standard output).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// A title above the diagram.
        #[arg(long)]
        title: Option<String>,
    },
}

/// See `Cargo.toml` for why.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(args) => sim(args),
        Command::Sweep(args) => sweep(&args),
        Command::Trace(TraceCommand::Render { input, output, title }) => render(&input, output, title),
        Command::Node(args) => node(&args),
        Command::Keygen(args) => keygen(&args),
        Command::Disk(DiskCommand::Check { file }) => disk_check(&file),
        Command::Clock(ClockCommand::Check { server, timeout_ms, tolerance_ms, max_step_ms }) => clock_check(
            &server,
            Duration::from_millis(timeout_ms),
            Duration::from_millis(tolerance_ms),
            Duration::from_millis(max_step_ms),
        ),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

type CliResult = Result<ExitCode, Box<dyn std::error::Error>>;

fn node(args: &NodeArgs) -> CliResult {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if args.log == "json" {
        logs.json().init();
    } else {
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
    let config = roundtable_node::NodeConfig::load(&args.config)?;
    actix::System::new().block_on(roundtable_node::run(config, stop_signal()))?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on ctrl-c or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn clock_check(server: &str, timeout: Duration, tolerance: Duration, max_step: Duration) -> CliResult {
    let answer = actix::System::new().block_on(roundtable_actors::ntp::query(server, timeout, max_step));
    let reading = match answer {
        Ok(reading) => reading,
        Err(e) => {
            println!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let offset_ms = reading.offset_ns as f64 / 1e6;
    println!(
        "server {}: offset {offset_ms:+.3} ms, delay {:.3} ms, stratum {}, reference {}",
        reading.server,
        reading.delay.as_secs_f64() * 1e3,
        reading.stratum,
        if reading.reference.is_empty() { "(none)" } else { reading.reference.as_str() }
    );
    // What a leader that only observes its clock would conclude from this one sample.
    let config = CorrectionConfig { tolerance, mode: CorrectionMode::Observe, ..CorrectionConfig::default() };
    let mut corrector = ClockCorrector::new(config)?;
    let _ = corrector.add_sample(reading.sample.t4, reading.sample)?;
    if corrector.health().is_fenced() {
        println!(
            "this clock is {offset_ms:+.3} ms off, beyond the tolerance of {} ms: a leader on it, uncorrected, would be fenced",
            tolerance.as_millis()
        );
        Ok(ExitCode::from(1))
    } else {
        println!("within the tolerance of {} ms: a leader on this clock would not be fenced", tolerance.as_millis());
        Ok(ExitCode::SUCCESS)
    }
}

fn disk_check(file: &std::path::Path) -> CliResult {
    if !file.is_file() {
        return Err(format!("{} is not a file", file.display()).into());
    }
    let (mut disk, stored) = roundtable_actors::storage::Disk::open(file)?;
    let intact = disk.check_integrity()?;
    let image =
        stored.image.as_ref().map_or_else(|| "no checkpoint".to_owned(), |i| format!("checkpoint {}", i.applied));
    println!("{}: {image}, {} records after it", file.display(), stored.records.len());
    if intact {
        println!("integrity check passed");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("integrity check FAILED");
        Ok(ExitCode::from(1))
    }
}

fn keygen(args: &KeygenArgs) -> CliResult {
    let files = roundtable_node::config::cluster_files(
        args.nodes,
        &args.host,
        args.peer_port,
        args.redis_port,
        &args.topology,
    )?;
    std::fs::create_dir_all(&args.dir)?;
    for (name, text) in &files {
        let path = args.dir.join(name);
        std::fs::write(&path, text)?;
        #[cfg(unix)]
        if name.ends_with(".key") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    println!("wrote {} files for {} nodes to {}", files.len(), args.nodes, args.dir.display());
    for i in 0..args.nodes {
        println!("  roundtable node --config {}", args.dir.join(format!("n{i}.toml")).display());
    }
    Ok(ExitCode::SUCCESS)
}

fn sim(args: SimArgs) -> CliResult {
    #[allow(unused_mut)]
    let mut scenario = Scenario::new(args.topology, args.resolution, usize::from(args.leaders), args.seed);
    scenario.faults = args.faults;
    #[cfg(feature = "fault-injection")]
    if let Some(sabotage) = args.sabotage {
        scenario.sabotage = sabotage;
    }
    let run = scenario.simulation().try_run()?;
    let check = run.check();
    if args.trace {
        print!("{}", run.render());
    } else {
        print!("{}", run.report());
    }
    println!("--- invariants");
    println!("{check}");
    println!("replay: {}", scenario.replay_command());
    if let Some(path) = &args.trace_out {
        std::fs::write(path, serde_json::to_vec(run.trace())?)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("trace written to {}", path.display());
    }
    if let Some(path) = &args.svg {
        let options = SvgOptions {
            title: Some(format!("{} · {} · seed {}", scenario.topology, scenario.resolution, scenario.seed)),
            leaders: Some(scenario.leaders),
            ..SvgOptions::default()
        };
        std::fs::write(path, render_svg(run.trace(), &options))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("diagram written to {}", path.display());
    }
    Ok(if check.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn sweep(args: &SweepArgs) -> CliResult {
    let end = args.from.checked_add(args.seeds).ok_or("--from + --seeds overflows")?;
    #[allow(unused_mut)]
    let mut sweep = Sweep::new(args.from..end).leaders(usize::from(args.leaders)).faults(args.faults);
    if !args.topology.is_empty() {
        sweep = sweep.topologies(&args.topology);
    }
    if !args.resolution.is_empty() {
        sweep = sweep.resolutions(&args.resolution);
    }
    if let Some(threads) = args.threads {
        sweep = sweep.threads(threads);
    }
    #[cfg(feature = "fault-injection")]
    if let Some(sabotage) = args.sabotage {
        sweep = sweep.sabotage(sabotage);
    }
    let bar = ProgressBar::new();
    let result = sweep.run(|p| bar.show(p));
    bar.finish();
    print!("{}", result.summary());
    Ok(if result.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn render(input: &PathBuf, output: Option<PathBuf>, title: Option<String>) -> CliResult {
    let bytes = std::fs::read(input).map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    let trace: Trace = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is not a trace saved by `roundtable sim --trace-out`: {e}", input.display()))?;
    let svg = render_svg(&trace, &SvgOptions { title, ..SvgOptions::default() });
    match output {
        Some(path) => {
            std::fs::write(&path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!("diagram written to {}", path.display());
        }
        None => print!("{svg}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// A one-line progress bar on standard error: redrawn in place on a terminal, a line per tenth
/// of the work otherwise (logs stay short).
struct ProgressBar {
    terminal: bool,
    started: std::time::Instant,
}

impl ProgressBar {
    const WIDTH: u64 = 30;

    fn new() -> Self {
        ProgressBar { terminal: std::io::stderr().is_terminal(), started: std::time::Instant::now() }
    }

    fn show(&self, p: Progress) {
        let total = p.total.max(1);
        let tenth = (total / 10).max(1);
        if !self.terminal && !p.done.is_multiple_of(tenth) && p.done != total {
            return;
        }
        let filled = p.done * Self::WIDTH / total;
        let bar: String = (0..Self::WIDTH).map(|i| if i < filled { '#' } else { '-' }).collect();
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { p.done as f64 / secs } else { 0.0 };
        let line = format!("[{bar}] {}/{} runs, {} failed, {rate:.0} runs/s", p.done, p.total, p.failed);
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal { write!(err, "\r{line}") } else { writeln!(err, "{line}") };
        let _ = err.flush();
    }

    fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}
