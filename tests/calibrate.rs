//! `mainstream calibrate` end to end: the real binary measures every head of
//! the bundled M-Packages on the labelled demo clip, writes each package's
//! calibration, and the loader applies it (or refuses a stale one).

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{root, run_with_config, scratch_dir, write_demo_camera_config};

// Every app has an event before this frame; the birds' second one is cut here.
const FRAMES: u64 = 250;
const TOLERANCE: u64 = 2;

/// A scratch config over copies of the three demo packages (without any
/// calibration they carry), so that `--write` touches only the copies.
fn setup(name: &str) -> PathBuf {
    let dir = scratch_dir("ms-calibrate", name);
    let r = root();
    write_demo_camera_config(&dir);
    for app in ["birds", "vehicles", "mammals"] {
        let pkg = dir.join("packages").join(app);
        std::fs::create_dir_all(&pkg).unwrap();
        for e in std::fs::read_dir(r.join("models/apps").join(app)).unwrap() {
            let e = e.unwrap();
            if e.file_name() != "calibration.toml" {
                std::fs::copy(e.path(), pkg.join(e.file_name())).unwrap();
            }
        }
        std::fs::write(
            dir.join("apps.d").join(format!("{app}.toml")),
            format!("camera = \"campus\"\npackage = \"{}\"\n", pkg.display()),
        )
        .unwrap();
    }
    dir
}

fn mainstream(dir: &Path, cmd: &str, args: &[&str]) -> Output {
    run_with_config(cmd, dir, args)
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "calibrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// The demo clip's labelled spans of `package`, cut at `frames`.
fn spans(package: &str, frames: u64) -> Vec<[u64; 2]> {
    let text = std::fs::read_to_string(root().join("models/demo/ground_truth.toml")).unwrap();
    let t: toml::Value = toml::from_str(&text).unwrap();
    t["app"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"].as_str() == Some(package))
        .unwrap()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let e = e.as_array().unwrap();
            [
                e[0].as_integer().unwrap() as u64,
                e[1].as_integer().unwrap() as u64,
            ]
        })
        .filter(|e| e[0] < frames)
        .map(|e| [e[0], e[1].min(frames - 1)])
        .collect()
}

#[test]
fn every_head_is_measured_on_the_labelled_frames_and_its_rates_are_the_counts_ratios() {
    let dir = setup("measure");
    let o = json(&mainstream(
        &dir,
        "calibrate",
        &["--frames", &FRAMES.to_string(), "--json"],
    ));
    assert_eq!(o["frames"], FRAMES);
    let packages = o["packages"].as_array().unwrap();
    assert_eq!(packages.len(), 3);
    for p in packages {
        let name = p["package"].as_str().unwrap();
        let sp = spans(name, FRAMES);
        let in_event: u64 = sp.iter().map(|s| s[1] - s[0] + 1).sum();
        let near: u64 = (0..FRAMES)
            .filter(|&f| {
                sp.iter()
                    .any(|s| f + TOLERANCE >= s[0] && f <= s[1] + TOLERANCE)
            })
            .count() as u64;
        assert_eq!(p["events"], sp.len(), "{name}");
        let pkg_toml =
            std::fs::read_to_string(dir.join("packages").join(name).join("package.toml")).unwrap();
        let heads = p["heads"].as_array().unwrap();
        assert_eq!(heads.len(), pkg_toml.matches("[[head]]").count(), "{name}");
        for h in heads {
            let n = |k: &str| h[k].as_u64().unwrap();
            let x = |k: &str| h[k].as_f64().unwrap();
            assert_eq!(n("event_frames"), in_event, "{name}");
            assert_eq!(n("negative_frames"), FRAMES - near, "{name}");
            assert!(n("event_positives") <= n("event_frames"));
            assert!(n("false_positives") <= n("negative_frames"));
            assert!(
                (x("accuracy") - n("event_positives") as f64 / n("event_frames") as f64).abs()
                    < 1e-12
            );
            assert!(
                (x("fpr") - n("false_positives") as f64 / n("negative_frames") as f64).abs()
                    < 1e-12
            );
            // The trained values are the package's own.
            assert!(pkg_toml.contains(&format!("accuracy = {:.4}", x("trained_accuracy"))));
        }
        // Detectors that work: most frames of a labelled bird/vehicle/mammal
        // are detected by at least one of the app's heads.
        let best = heads
            .iter()
            .map(|h| h["accuracy"].as_f64().unwrap())
            .fold(0.0, f64::max);
        assert!(
            best > 0.5,
            "{name}: best head detects {best} of event frames"
        );
    }
    // Nothing written without --write.
    assert!(!dir.join("packages/birds/calibration.toml").exists());
}

#[test]
fn a_written_calibration_replaces_the_trained_rates_as_the_planner_input() {
    let dir = setup("write");
    let before = mainstream(&dir, "check", &[]);
    assert!(before.status.success());
    assert!(String::from_utf8_lossy(&before.stdout).contains("trained values, not calibrated"));
    let o = json(&mainstream(
        &dir,
        "calibrate",
        &["--frames", &FRAMES.to_string(), "--write", "--json"],
    ));
    let check = mainstream(&dir, "check", &[]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(
        text.matches(&format!("calibrated on demo.mjpeg ({FRAMES} frames)"))
            .count(),
        3,
        "{text}"
    );
    // The planner now predicts from the measured rates: every head's
    // accuracy and fpr in calibration.toml are the measured ones.
    for p in o["packages"].as_array().unwrap() {
        let path = PathBuf::from(p["written"].as_str().unwrap());
        let cal = std::fs::read_to_string(&path).unwrap();
        for h in p["heads"].as_array().unwrap() {
            assert!(cal.contains(&format!("branch = {}", h["branch"])));
            assert!(cal.contains(&format!(
                "accuracy = {:.4}",
                h["accuracy"].as_f64().unwrap()
            )));
            assert!(cal.contains(&format!("fpr = {:.4}", h["fpr"].as_f64().unwrap())));
        }
        // The least-shared head has no gain to doubt; every other head's
        // uncertainty is written when measured.
        let heads = p["heads"].as_array().unwrap();
        assert_eq!(heads[0]["gain_sd"].as_f64(), Some(0.0));
        for h in &heads[1..] {
            let sd = h["gain_sd"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&sd), "{h}");
            assert_eq!(
                cal.contains(&format!("gain_sd = {sd:.4}")),
                sd > 0.0,
                "{cal}"
            );
        }
    }
    // Calibrating again (vehicles, whose first event ends at frame 83)
    // reports the trained values, not the calibrated ones, as "trained".
    let again = json(&mainstream(
        &dir,
        "calibrate",
        &["--apps", "vehicles", "--frames", "90", "--json"],
    ));
    let vehicles = |v: &serde_json::Value| {
        v["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["package"] == "vehicles")
            .cloned()
            .unwrap()
    };
    {
        let (a, b) = (vehicles(&again), vehicles(&o));
        for (ha, hb) in a["heads"]
            .as_array()
            .unwrap()
            .iter()
            .zip(b["heads"].as_array().unwrap())
        {
            assert_eq!(ha["trained_accuracy"], hb["trained_accuracy"]);
            assert_eq!(ha["trained_fpr"], hb["trained_fpr"]);
        }
    }
}

#[test]
fn a_calibration_of_other_head_files_is_refused_at_its_line() {
    let dir = setup("stale");
    let out = mainstream(
        &dir,
        "calibrate",
        &["--frames", &FRAMES.to_string(), "--write"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join("packages/vehicles/calibration.toml");
    let cal = std::fs::read_to_string(&path).unwrap();
    let line = cal
        .lines()
        .position(|l| l.starts_with("sha256 = "))
        .unwrap()
        + 1;
    // Another digest of the same length: flip the first hex digit.
    let i = cal.find("\nsha256 = \"").unwrap() + "\nsha256 = \"".len();
    let mut bytes = cal.into_bytes();
    bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
    std::fs::write(&path, bytes).unwrap();
    let check = mainstream(&dir, "check", &[]);
    assert_eq!(check.status.code(), Some(78));
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(
        err.contains(&format!("vehicles/calibration.toml:{line}:")),
        "{err}"
    );
    assert!(err.contains("another head file"), "{err}");
}

#[test]
fn calibrating_on_a_clip_without_ground_truth_is_a_configuration_error() {
    let dir = setup("no-truth");
    let clip = dir.join("unlabelled.mjpeg");
    std::fs::copy(root().join("models/demo/demo.mjpeg"), &clip).unwrap();
    let out = mainstream(&dir, "calibrate", &["--clip", clip.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no ground truth"), "{err}");
    assert!(err.contains("unlabelled.mjpeg"), "{err}");
}
