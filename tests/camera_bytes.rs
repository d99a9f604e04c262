//! Issue 24, end to end: camera bytes that are damaged or lie about their
//! size cannot hang `replay` or `calibrate`, nor stop them. The real binary on
//! clips made from the bundled demo clip: a run of 40 damaged frames (which
//! looped for ever when a file was reopened after 30 bad frames) and a frame
//! that declares 9000x9000 (which ended the run with a configuration error).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{bin, root, scratch_dir, shared_profile, write_demo_camera_config};
use crate::frames::{split_at_soi, with_declared_size};

/// The demo clip's frames.
fn demo_frames() -> Vec<Vec<u8>> {
    split_at_soi(&std::fs::read(root().join("models/demo/demo.mjpeg")).unwrap())
}

/// A scratch config for the demo camera with the vehicles app, and `clip`.
fn setup(name: &str, clip: &[u8]) -> PathBuf {
    let dir = scratch_dir("ms-camera-bytes", name);
    write_demo_camera_config(&dir);
    std::fs::write(
        dir.join("apps.d/vehicles.toml"),
        format!(
            "camera = \"campus\"\npackage = \"{}/models/apps/vehicles\"\n",
            root().display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::copy(shared_profile(), dir.join("state/profile.bin")).unwrap();
    std::fs::write(dir.join("clip.mjpeg"), clip).unwrap();
    dir
}

/// `mainstream CMD --config DIR/config.toml --clip DIR/clip.mjpeg --truth
/// (the demo's) ARGS...`, killed after `limit` (then `None`: it hung).
fn run_clip(cmd: &str, dir: &Path, args: &[&str], limit: Duration) -> Option<Output> {
    let mut child = Command::new(bin())
        .arg(cmd)
        .arg("--config")
        .arg(dir.join("config.toml"))
        .arg("--clip")
        .arg(dir.join("clip.mjpeg"))
        .arg("--truth")
        .arg(root().join("models/demo/ground_truth.toml"))
        .args(args)
        .env("MAINSTREAM_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(child.wait_with_output().expect("output"))
}

/// The one JSON object a `--json` run printed, after checking it succeeded.
fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().next().expect("a line")).expect("JSON")
}

#[test]
fn issue_24_replay_and_calibrate_read_through_a_run_of_40_bad_frames() {
    let f = demo_frames();
    let mut clip = Vec::new();
    for x in &f[..40] {
        clip.extend_from_slice(&x[..x.len() / 2]); // each cut short by the next SOI
    }
    for x in &f[40..90] {
        clip.extend_from_slice(x);
    }
    let dir = setup("bad-run", &clip);
    let limit = Duration::from_secs(300);
    let args = ["--branch", "0", "--fps", "10", "--json"];
    let out = run_clip("replay", &dir, &args, limit)
        .expect("replay ends; reopening the file after 30 bad frames looped for ever");
    let r = &json(&out)["run"];
    assert_eq!(
        (&r["frames"], &r["analysed"]),
        (&50.into(), &50.into()),
        "{r}"
    );
    let out = run_clip("calibrate", &dir, &["--json"], limit)
        .expect("calibrate ends; reopening the file after 30 bad frames looped for ever");
    let c = json(&out);
    // Frame indices count the bad frames' slots: the labels stay aligned.
    assert_eq!(
        (&c["frames"], &c["bad_frames"]),
        (&90.into(), &40.into()),
        "{c}"
    );
}

#[test]
fn issue_24_replay_skips_a_frame_that_declares_a_size_beyond_the_decoders_limit() {
    let f = demo_frames();
    let mut clip = Vec::new();
    for (k, x) in f[..30].iter().enumerate() {
        if k == 10 {
            clip.extend_from_slice(&with_declared_size(x, 9000, 9000));
        } else {
            clip.extend_from_slice(x);
        }
    }
    let dir = setup("huge-size", &clip);
    // Every frame analysed, so the lying one reaches the preprocessor's turn.
    let args = ["--branch", "0", "--fps", "10", "--json"];
    let out = run_clip("replay", &dir, &args, Duration::from_secs(300)).expect("replay ends");
    let r = &json(&out)["run"];
    assert_eq!(
        (&r["frames"], &r["analysed"]),
        (&29.into(), &29.into()),
        "{r}"
    );
}
