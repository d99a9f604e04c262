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
//!
//! Since version 3 (issue 22) it also holds what each camera mode's frames
//! cost outside the networks ([`frames`]: decoding and preprocessing per
//! analysed frame, capture per delivered frame), measured the first time a
//! configuration names that mode. A version 2 profile is read as one
//! without frame costs: its segments are kept and the frame costs measured.

pub mod frames;

use crate::config::{CameraConfig, Config};
use crate::error::Result;
use crate::model::manifest::BaseManifest;
use crate::model::net::{Base, Net};
pub use frames::{FrameCost, FrameMode};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
const MAGIC: [u8; 4] = *b"MSPF";
/// 3: frame costs (2: thread CPU time; 1 was wall-clock time).
const VERSION: u16 = 3;
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
    /// Per camera mode timed so far, its costs outside the networks
    /// (version 3 on).
    pub frames: Vec<FrameCost>,
}

/// A version 2 profile: the segments alone.
#[derive(Deserialize)]
struct ProfileV2 {
    base_sha256: String,
    cpu: String,
    segment_ms: Vec<f64>,
    runs: u32,
}

impl Profile {
    /// The costs measured for camera mode `mode`, if any.
    pub fn frame_cost(&self, mode: &FrameMode) -> Option<&FrameCost> {
        self.frames.iter().find(|f| &f.mode == mode)
    }

    /// Per camera of `cfg`, its costs outside the networks: those of its
    /// mode in this profile, or zero (with a warning) for a camera whose mode
    /// is unknown or was never timed.
    pub fn camera_costs(&self, cfg: &Config) -> Vec<CameraCost> {
        cfg.cameras
            .iter()
            .map(|c| {
                let cost = frames::mode_of(c)
                    .ok()
                    .and_then(|m| self.frame_cost(&m).cloned());
                if cost.is_none() {
                    log::warn!(
                        "camera {}: no frame cost in the profile; planning without its decoding",
                        c.name
                    );
                }
                CameraCost {
                    fps: c.fps,
                    preprocess_ms: cost.as_ref().map_or(0.0, |f| f.preprocess_ms),
                    capture_ms: cost.as_ref().map_or(0.0, |f| f.capture_ms),
                }
            })
            .collect()
    }

    /// Times the frames of every camera of `cameras` whose mode this profile
    /// lacks, with `measure`, and adds them. Returns how many it added. A
    /// camera whose mode cannot be told now (its replay file missing) or
    /// whose frames cannot be timed is left out with a warning: the plan
    /// then counts no preprocessing for it.
    pub fn add_missing_frames(
        &mut self,
        cameras: &[CameraConfig],
        mut measure: impl FnMut(&CameraConfig) -> Result<FrameCost>,
    ) -> usize {
        let mut added = 0;
        for c in cameras {
            let known = match frames::mode_of(c) {
                Ok(m) => self.frame_cost(&m).is_some(),
                Err(e) => {
                    log::warn!("camera {}: {}; its frames are not timed", c.name, e.chain());
                    continue;
                }
            };
            if known {
                continue;
            }
            match measure(c) {
                Ok(f) => {
                    log::info!(
                        "camera {}: {}: preprocessing {:.2} ms, capture {:.3} ms per frame",
                        c.name,
                        f.mode,
                        f.preprocess_ms,
                        f.capture_ms
                    );
                    self.frames.retain(|x| x.mode != f.mode);
                    self.frames.push(f);
                    added += 1;
                }
                Err(e) => log::warn!("camera {}: timing its frames failed: {}", c.name, e.chain()),
            }
        }
        added
    }
}

/// One camera's costs outside the networks, from the profile.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CameraCost {
    /// The camera's frame rate.
    pub fps: f64,
    /// CPU ms to preprocess one analysed frame (the planner's frame cost).
    pub preprocess_ms: f64,
    /// CPU ms to capture one delivered frame.
    pub capture_ms: f64,
}

impl CameraCost {
    /// The capture's CPU use while the camera runs, in core-ms per second.
    pub fn capture_per_s(&self) -> f64 {
        self.capture_ms * self.fps
    }
}

/// Per camera of `costs`, the planner's cost per analysed frame.
pub fn preprocess_ms(costs: &[CameraCost]) -> Vec<f64> {
    costs.iter().map(|c| c.preprocess_ms).collect()
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
        frames: Vec::new(),
    })
}

/// Times camera `c`'s frames into the input of the base network whose
/// manifest is `base` (see [`frames`]).
pub fn measure_frames(base: &BaseManifest, c: &CameraConfig) -> Result<FrameCost> {
    frames::measure(c, &base.input.preprocess_spec(), base.input.fit())
}

/// Loads the profile for `sha256` on this CPU from `state_dir`, if there is
/// a valid one. A damaged file is moved aside with a warning.
pub fn load(state_dir: &Path, sha256: &str) -> Result<Option<Profile>> {
    let path = path_in(state_dir);
    let loaded = match crate::store::load::<Profile>(&path, MAGIC, VERSION) {
        Err(e) if e.kind() == crate::ErrorKind::CorruptState => {
            // A version 2 profile: keep its segments, time the frames anew.
            match crate::store::load::<ProfileV2>(&path, MAGIC, 2) {
                Ok(Some(p)) => {
                    log::info!(
                        "{}: a profile without frame costs (version 2); keeping its segment costs",
                        path.display()
                    );
                    Ok(Some(Profile {
                        base_sha256: p.base_sha256,
                        cpu: p.cpu,
                        segment_ms: p.segment_ms,
                        runs: p.runs,
                        frames: Vec::new(),
                    }))
                }
                _ => Err(e),
            }
        }
        other => other,
    };
    match loaded {
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
/// `base_manifest` (`runs` per segment) and the frames of every camera of
/// `cameras`, and saves it in `state_dir` (a failure to save is a warning:
/// the plan still works).
pub fn measure_and_save(
    base_manifest: &Path,
    state_dir: &Path,
    runs: u32,
    cameras: &[CameraConfig],
) -> Result<Profile> {
    let manifest = crate::model::manifest::BaseManifest::load(base_manifest)?;
    let base = Base::load(manifest)?;
    let n = base.manifest.segments();
    log::info!(
        "measuring the cost of the {n} segments of {} on this CPU",
        base.manifest.name
    );
    let mut p = measure(&base, runs, |done, total| {
        log::info!("profile: segment {done}/{total}");
    })?;
    p.add_missing_frames(cameras, |c| measure_frames(&base.manifest, c));
    if let Err(e) = save(state_dir, &p) {
        log::warn!("could not save the cost profile: {}", e.chain());
    }
    Ok(p)
}

/// The cost profile of `cfg`'s base network on this machine, with the
/// frame costs of every camera of `cfg`: the one stored in its state
/// directory, measured there first if there is none (`mainstream profile`
/// does it ahead of time), completed with the frames of camera modes it has
/// not timed yet (and saved again if it was).
pub fn for_config(cfg: &Config) -> Result<Profile> {
    let dir = &cfg.device.state_dir;
    let manifest = BaseManifest::load(&cfg.device.base)?;
    let Some(mut p) = load(dir, &manifest.sha256)? else {
        log::info!(
            "no cost profile for this base and CPU in {}; measuring it now (`mainstream profile` does this ahead of time)",
            dir.display()
        );
        return measure_and_save(&cfg.device.base, dir, 5, &cfg.cameras);
    };
    if p.add_missing_frames(&cfg.cameras, |c| measure_frames(&manifest, c)) > 0 {
        if let Err(e) = save(dir, &p) {
            log::warn!("could not save the cost profile: {}", e.chain());
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ms-profile-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn demo_camera() -> CameraConfig {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        CameraConfig {
            name: "campus".into(),
            source: crate::config::Source::Replay(root.join("models/demo/demo.mjpeg")),
            width: None,
            height: None,
            fps: 10.0,
            format: None,
            pace: crate::camera::Pace::Nominal,
            looping: false,
        }
    }

    #[test]
    fn a_version_2_profile_keeps_its_segments_and_is_read_without_frame_costs() {
        #[derive(Serialize)]
        struct V2 {
            base_sha256: String,
            cpu: String,
            segment_ms: Vec<f64>,
            runs: u32,
        }
        let dir = scratch("v2");
        let v2 = V2 {
            base_sha256: "ab".repeat(32),
            cpu: cpu_model(),
            segment_ms: vec![1.5, 2.5],
            runs: 5,
        };
        crate::store::save(&path_in(&dir), MAGIC, 2, &v2).unwrap();
        let p = load(&dir, &v2.base_sha256).unwrap().unwrap();
        assert_eq!((p.segment_ms, p.runs), (vec![1.5, 2.5], 5));
        assert!(p.frames.is_empty());
        // Another base's version 2 profile is not this one's.
        assert!(load(&dir, &"cd".repeat(32)).unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_the_camera_modes_a_profile_lacks_are_timed_and_a_lookup_finds_them() {
        let mut p = Profile {
            base_sha256: String::new(),
            cpu: cpu_model(),
            segment_ms: vec![1.0],
            runs: 1,
            frames: Vec::new(),
        };
        let cam = demo_camera();
        let timed = std::cell::Cell::new(0);
        let mut fake = |c: &CameraConfig| {
            timed.set(timed.get() + 1);
            Ok(FrameCost {
                mode: frames::mode_of(c)?,
                preprocess_ms: 1.25,
                capture_ms: 0.125,
            })
        };
        assert_eq!(
            p.add_missing_frames(&[cam.clone(), cam.clone()], &mut fake),
            1
        );
        assert_eq!(
            p.add_missing_frames(std::slice::from_ref(&cam), &mut fake),
            0
        );
        assert_eq!(timed.get(), 1);
        let mode = frames::mode_of(&cam).unwrap();
        assert_eq!(p.frame_cost(&mode).unwrap().preprocess_ms, 1.25);
        // A camera whose source is gone is left out, not an error.
        let gone = CameraConfig {
            source: crate::config::Source::Replay("/nonexistent/clip.mjpeg".into()),
            ..cam
        };
        assert_eq!(p.add_missing_frames(&[gone], &mut fake), 0);
        let c = CameraCost {
            fps: 10.0,
            preprocess_ms: 1.25,
            capture_ms: 0.125,
        };
        assert_eq!(c.capture_per_s(), 1.25);
        assert_eq!(preprocess_ms(&[c, CameraCost::default()]), vec![1.25, 0.0]);
    }
}
