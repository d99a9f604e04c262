//! What the service keeps across restarts (`state.bin`, durable) and what it
//! publishes while running (`status.bin`, rewritten every second), both
//! postcard in the checksummed envelope of [`crate::store`].
//!
//! `state.bin` is replaced atomically (temporary file, fsync, rename, fsync
//! of the directory), so after a power cut it is either the old or the new
//! state. A file that fails its checks is moved aside (`state.bin.corrupt`)
//! with a warning and the service starts from an empty state: counters from
//! zero, the plan recomputed. It never refuses to boot over its own state.

use crate::error::{ErrorKind, Result};
use crate::planner::Plan;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// File name of the durable state.
const STATE_FILE: &str = "state.bin";
/// File name of the live status.
pub const STATUS_FILE: &str = "status.bin";
/// Magic of `state.bin`.
pub const STATE_MAGIC: [u8; 4] = *b"MSST";
/// Format version of `state.bin`.
pub const STATE_VERSION: u16 = 1;
const STATUS_MAGIC: [u8; 4] = *b"MSSU";
const STATUS_VERSION: u16 = 1;

/// Lifetime counters of one app (by name).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppTotals {
    /// App name.
    pub name: String,
    /// Frames the app analysed.
    pub samples: u64,
    /// Samples it was due but missed because the frame was dropped.
    pub dropped: u64,
    /// Events reported.
    pub events: u64,
}

/// The durable state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Times the service has booted with this state.
    pub boots: u64,
    /// Whether the last run ended with a clean shutdown.
    pub clean_shutdown: bool,
    /// The plan in force when the state was written.
    pub plan: Option<Plan>,
    /// Per-app lifetime counters.
    pub totals: Vec<AppTotals>,
    /// Records in the event log when the state was written.
    pub event_log_records: u64,
    /// Size of the event log then (its append position).
    pub event_log_bytes: u64,
}

impl State {
    /// The totals of `app`, created if new.
    pub fn totals_mut(&mut self, app: &str) -> &mut AppTotals {
        match self.totals.iter().position(|t| t.name == app) {
            Some(i) => &mut self.totals[i],
            None => {
                self.totals.push(AppTotals {
                    name: app.to_owned(),
                    ..AppTotals::default()
                });
                let last = self.totals.len() - 1;
                &mut self.totals[last]
            }
        }
    }
}

/// Path of the state file in `dir`.
pub fn state_path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

/// Path of the status file in `dir`.
pub fn status_path(dir: &Path) -> PathBuf {
    dir.join(STATUS_FILE)
}

/// Loads the state, or an empty one if there is none. A damaged or unknown
/// file is moved aside with a warning and an empty state returned.
pub fn load_state(dir: &Path) -> Result<State> {
    let path = state_path(dir);
    match crate::store::load::<State>(&path, STATE_MAGIC, STATE_VERSION) {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Ok(State::default()),
        Err(e) if e.kind() == ErrorKind::CorruptState => {
            let aside = crate::store::quarantine(&path)?;
            log::warn!(
                "{}; moved it to {} and starting from an empty state (counters from zero, plan recomputed)",
                e.chain(),
                aside.display()
            );
            Ok(State::default())
        }
        Err(e) => Err(e),
    }
}

/// Saves the state durably.
pub fn save_state(dir: &Path, s: &State) -> Result<()> {
    crate::store::save(&state_path(dir), STATE_MAGIC, STATE_VERSION, s)
}

/// One app in the live status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppStatus {
    /// App name.
    pub name: String,
    /// Camera name.
    pub camera: String,
    /// Planned branch point.
    pub branch: u16,
    /// Planned frame rate.
    pub planned_fps: f64,
    /// Predicted event F1 of the plan.
    pub predicted_f1: f64,
    /// Frame rate achieved over the last status window.
    pub fps: f64,
    /// Samples analysed since boot.
    pub samples: u64,
    /// Samples missed because their frame was dropped, since boot.
    pub dropped: u64,
    /// Events since boot.
    pub events: u64,
    /// Whether an event is open now.
    pub in_event: bool,
}

/// One camera in the live status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CameraStatus {
    /// Camera name.
    pub name: String,
    /// The source as opened (`describe()`), or why it is not open.
    pub source: String,
    /// Whether a source is open.
    pub connected: bool,
    /// Whether a replay source has ended.
    pub ended: bool,
    /// Frames delivered by the source.
    pub frames: u64,
    /// Frames the source skipped (sequence gaps).
    pub source_dropped: u64,
    /// Frames dropped because analysis fell behind.
    pub late_dropped: u64,
    /// Damaged frames skipped.
    pub bad_frames: u64,
    /// Disconnects so far.
    pub disconnects: u64,
    /// Successful reconnects.
    pub reconnects: u64,
    /// Frames analysed (at least one app due).
    pub analysed: u64,
    /// Milliseconds of analysis per analysed frame (last window).
    pub ms_per_frame: f64,
}

/// The live status the service rewrites every second.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Service process id.
    pub pid: u32,
    /// When this snapshot was taken, ms since the epoch.
    pub(crate) updated_unix_ms: u64,
    /// When the service started.
    pub(crate) started_unix_ms: u64,
    /// Milliseconds from start to the first analysed frame (0: none yet).
    pub(crate) first_frame_ms: u64,
    /// The configuration file.
    pub config: String,
    /// Budget in cores.
    pub budget_cores: f64,
    /// Planner that made the plan.
    pub strategy: String,
    /// Predicted cost of the plan, in cores.
    pub(crate) predicted_cores: f64,
    /// Measured CPU use of the service over the last feedback window, in cores.
    pub(crate) measured_cores: f64,
    /// Mean predicted F1.
    pub mean_f1: f64,
    /// Re-plans since boot.
    pub replans: u64,
    /// Milliseconds the last re-plan took (config to new plan).
    pub(crate) last_replan_ms: f64,
    /// Re-profiles triggered by the feedback loop.
    pub(crate) reprofiles: u64,
    /// Apps rejected by admission control, with the reason.
    pub rejected: Vec<String>,
    /// Apps.
    pub apps: Vec<AppStatus>,
    /// Cameras.
    pub cameras: Vec<CameraStatus>,
    /// Resident memory, KiB.
    pub(crate) rss_kib: u64,
}

/// Writes the status (atomic rename; no fsync: it is rewritten every second
/// and worthless after a power cut).
pub fn save_status(dir: &Path, s: &Status) -> Result<()> {
    let bytes = crate::store::encode(STATUS_MAGIC, STATUS_VERSION, s)?;
    let path = status_path(dir);
    let tmp = dir.join(".status.bin.tmp");
    std::fs::write(&tmp, &bytes)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| crate::err!(Io, source = e, "writing {}", path.display()))
}

/// Reads the status the service last wrote (`None` if there is none).
pub fn load_status(dir: &Path) -> Result<Option<Status>> {
    crate::store::load(&status_path(dir), STATUS_MAGIC, STATUS_VERSION)
}

/// Resident set size of this process in KiB (0 if unknown).
pub(crate) fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (user + system) this process has used, in seconds.
pub(crate) fn process_cpu_seconds() -> f64 {
    // /proc/self/stat: fields 14 and 15 (utime, stime) in clock ticks, after
    // the parenthesised command name (which may contain spaces).
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(rest) = s.rfind(')').map(|i| &s[i + 1..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // Fields after ')' start at field 3, so utime (14) is index 11.
    let total = ticks(11) + ticks(12);
    // USER_HZ is 100 on every Linux ABI this builds for.
    total as f64 / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ms-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn sample(boots: u64) -> State {
        let mut s = State {
            boots,
            clean_shutdown: true,
            event_log_records: 7 * boots,
            event_log_bytes: 300 * boots,
            ..State::default()
        };
        s.totals_mut("birds").samples = 1234 * boots;
        s.totals_mut("vehicles").events = 5;
        s
    }

    #[test]
    fn state_round_trips_and_totals_are_found_by_name() {
        let d = tmpdir("roundtrip");
        assert_eq!(load_state(&d).unwrap(), State::default());
        let s = sample(3);
        save_state(&d, &s).unwrap();
        let mut back = load_state(&d).unwrap();
        assert_eq!(back, s);
        back.totals_mut("birds").events += 1;
        assert_eq!(back.totals.len(), 2);
    }

    #[test]
    fn a_truncated_or_corrupted_state_file_boots_with_a_fresh_state_every_time() {
        let d = tmpdir("corrupt");
        let s = sample(2);
        save_state(&d, &s).unwrap();
        let good = std::fs::read(state_path(&d)).unwrap();
        for cut in 0..good.len() {
            std::fs::write(state_path(&d), &good[..cut]).unwrap();
            assert_eq!(load_state(&d).unwrap(), State::default(), "cut at {cut}");
            assert!(d.join("state.bin.corrupt").exists() || cut == 0);
        }
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0xff;
            std::fs::write(state_path(&d), &bad).unwrap();
            assert_eq!(load_state(&d).unwrap(), State::default(), "flip at {at}");
        }
    }

    #[test]
    fn a_power_cut_while_saving_leaves_the_old_state_at_every_byte() {
        // save_state writes `.state.bin.tmp` and renames it over state.bin:
        // a cut before the rename leaves a partial temporary file beside the
        // old state, a cut after it leaves the new state.
        let d = tmpdir("powercut");
        let old = sample(1);
        let new = sample(2);
        save_state(&d, &old).unwrap();
        let new_bytes = crate::store::encode(STATE_MAGIC, STATE_VERSION, &new).unwrap();
        let tmp = d.join(".state.bin.tmp");
        for cut in 0..=new_bytes.len() {
            std::fs::write(&tmp, &new_bytes[..cut]).unwrap();
            assert_eq!(load_state(&d).unwrap(), old, "cut at {cut}");
        }
        // The next save replaces the stale temporary file.
        save_state(&d, &new).unwrap();
        assert_eq!(load_state(&d).unwrap(), new);
    }

    #[test]
    fn process_counters_read_from_proc() {
        // RSS: touching 64 MiB shows up in VmRSS.
        let before = rss_kib();
        let block = vec![1u8; 64 << 20];
        let after = rss_kib();
        assert!(block.iter().step_by(4096).all(|&b| b == 1));
        assert!(before > 0, "VmRSS not read");
        assert!(
            after >= before + (32 << 10),
            "64 MiB touched, VmRSS {before} -> {after} KiB"
        );
        // CPU: at least what this thread spent (other threads only add), in
        // seconds (USER_HZ ticks of 10 ms).
        let p0 = process_cpu_seconds();
        let t0 = crate::profile::thread_cpu_s();
        let mut x = 0u64;
        while crate::profile::thread_cpu_s() - t0 < 0.3 {
            for i in 0..1_000_000u64 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
            }
        }
        assert!(x != 1);
        let spent = crate::profile::thread_cpu_s() - t0;
        let counted = process_cpu_seconds() - p0;
        assert!(
            counted >= spent - 0.03,
            "this thread spent {spent:.3} s of CPU, the process counter moved {counted:.3} s"
        );
    }
}
