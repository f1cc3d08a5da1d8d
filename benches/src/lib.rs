//! The benches of roundtable (`benches/*.rs`, `BENCHMARKS.md`), each against a baseline measured
//! in the same run, in a crate of their own so that building roundtable's examples and tests does
//! not compile criterion and the baselines.
//!
//! This library holds what they share: reading criterion's estimates, for the benches that print
//! ratios from them (`crdt`, `hlc`, `wire`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// Where criterion writes its estimates, found the way criterion finds it: `$CRITERION_HOME`,
/// else `$CARGO_TARGET_DIR/criterion`, else the target directory from `cargo metadata`, else
/// `target/criterion`.
pub fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    let from_metadata = std::env::var_os("CARGO").and_then(|cargo| {
        let output = Command::new(cargo).args(["metadata", "--format-version", "1", "--no-deps"]).output().ok()?;
        let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        Some(PathBuf::from(metadata.get("target_directory")?.as_str()?).join("criterion"))
    });
    from_metadata.unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// Criterion's median time per iteration of `group/id`, in ns, if this run (after `started`)
/// measured it.
pub fn median_ns(dir: &Path, group: &str, id: &str, started: SystemTime) -> Option<f64> {
    let path = dir.join(filename_safe(group)).join(filename_safe(id)).join("new").join("estimates.json");
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    if modified < started {
        return None; // left over from an earlier run
    }
    let estimates: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    estimates.get("median")?.get("point_estimate")?.as_f64()
}

/// A benchmark id as criterion names its directory (it replaces these characters by `_`).
pub fn filename_safe(id: &str) -> String {
    id.chars().map(|c| if "?\"/\\*<>:|^".contains(c) { '_' } else { c }).collect()
}

/// A ratio with three significant digits (at least two decimals): `6.42`, `0.840`, `0.00173`.
#[must_use]
pub fn significant(ratio: f64) -> String {
    let decimals = if ratio > 0.0 { (2 - ratio.log10().floor() as i32).max(2) } else { 2 };
    format!("{ratio:.*}", decimals as usize)
}
