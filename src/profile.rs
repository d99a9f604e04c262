//! The device cost profile: how long each segment of the base network takes
//! on this machine, measured with tract, kept in the state directory.
//!
//! Times are the measuring thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not
//! wall-clock time: a budget of B cores is B CPU-seconds per second, the
//! replay charges frames on the same clock, and other processes on a busy
//! machine do not inflate the costs. (Version 1 profiles held wall-clock
//! medians; on a loaded machine they came out twice the CPU time, so plans
//! that fit the budget twice over looked full.)
//!
//! Segment `k` runs from branch point `k` to `k + 1`; the planner's cost of a
//! schedule is built from these (ms per frame). The profile is keyed by the
//! base network's SHA-256 and the CPU model: either changing means measuring
//! again.

use crate::error::Result;
use crate::model::net::{Base, Net};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
const MAGIC: [u8; 4] = *b"MSPF";
/// 2: thread CPU time (1 was wall-clock time).
const VERSION: u16 = 2;
/// File name in the state directory.
pub const FILE: &str = "profile.bin";

/// Measured per-segment costs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// SHA-256 of the base ONNX file profiled.
    pub base_sha256: String,
    /// CPU model (from /proc/cpuinfo) it was measured on.
    pub cpu: String,
    /// Median CPU milliseconds per frame of each segment.
    pub segment_ms: Vec<f64>,
    /// Timed runs per segment.
    pub runs: u32,
}

/// The CPU architecture and model name, for keying profiles. The
/// architecture is part of the key because an emulated binary (qemu-user)
/// sees the host's /proc/cpuinfo but runs other kernels entirely.
pub fn cpu_model() -> String {
    format!("{}: {}", std::env::consts::ARCH, cpu_model_name())
}

fn cpu_model_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("CPU part"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned())
}

/// This thread's CPU time, seconds (0 if the clock is unavailable).
pub fn thread_cpu_s() -> f64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
        .unwrap_or(0.0)
}

/// Where the profile lives in a state directory.
pub fn path_in(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// Times every segment of `base` in this thread's CPU time: 2 warm-up runs
/// then `runs` timed runs each, reporting progress through
/// `progress(done, total)`.
pub fn measure(base: &Base, runs: u32, mut progress: impl FnMut(usize, usize)) -> Result<Profile> {
    let n = base.manifest.segments();
    let mut segment_ms = Vec::with_capacity(n);
    for k in 0..n {
        let mut net = base.cut(k, k + 1)?;
        let shape = base.manifest.points[k].shape.clone();
        let len: usize = shape.iter().product();
        // Real-looking activations are not needed for timing: the work of a
        // convolution does not depend on its values.
        let input = crate::model::net::tensor_from(&shape, &vec![0.5f32; len])?;
        let time_one = |net: &mut Net| -> Result<f64> {
            let x = input.clone();
            let t0 = thread_cpu_s();
            net.run_once(x)?;
            Ok((thread_cpu_s() - t0) * 1000.0)
        };
        for _ in 0..2 {
            time_one(&mut net)?;
        }
        let mut times = Vec::with_capacity(runs as usize);
        for _ in 0..runs.max(1) {
            times.push(time_one(&mut net)?);
        }
        times.sort_by(f64::total_cmp);
        segment_ms.push(times[times.len() / 2]);
        progress(k + 1, n);
    }
    Ok(Profile {
        base_sha256: base.manifest.sha256.clone(),
        cpu: cpu_model(),
        segment_ms,
        runs,
    })
}

/// Loads the profile for `sha256` on this CPU from `state_dir`, if there is
/// a valid one. A damaged file is moved aside with a warning.
pub fn load(state_dir: &Path, sha256: &str) -> Result<Option<Profile>> {
    let path = path_in(state_dir);
    match crate::store::load::<Profile>(&path, MAGIC, VERSION) {
        Ok(Some(p)) if p.base_sha256 == sha256 && p.cpu == cpu_model() => Ok(Some(p)),
        Ok(Some(p)) => {
            log::info!(
                "{}: profile is for base {} on {:?}; measuring again for this base and CPU",
                path.display(),
                &p.base_sha256[..p.base_sha256.len().min(12)],
                p.cpu
            );
            Ok(None)
        }
        Ok(None) => Ok(None),
        Err(e) if e.kind() == crate::ErrorKind::CorruptState => {
            let aside = crate::store::quarantine(&path)?;
            log::warn!(
                "{}; moved to {} and measuring again",
                e.chain(),
                aside.display()
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Saves a profile into `state_dir`.
pub fn save(state_dir: &Path, p: &Profile) -> Result<()> {
    crate::store::save(&path_in(state_dir), MAGIC, VERSION, p)
}

/// Measures the cost profile of the base network whose manifest is
/// `base_manifest` (`runs` per segment) and saves it in `state_dir` (a
/// failure to save is a warning: the plan still works).
pub fn measure_and_save(base_manifest: &Path, state_dir: &Path, runs: u32) -> Result<Profile> {
    let manifest = crate::model::manifest::BaseManifest::load(base_manifest)?;
    let base = Base::load(manifest)?;
    let n = base.manifest.segments();
    log::info!(
        "measuring the cost of the {n} segments of {} on this CPU",
        base.manifest.name
    );
    let p = measure(&base, runs, |done, total| {
        log::info!("profile: segment {done}/{total}");
    })?;
    if let Err(e) = save(state_dir, &p) {
        log::warn!("could not save the cost profile: {}", e.chain());
    }
    Ok(p)
}
