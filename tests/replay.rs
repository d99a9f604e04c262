//! `mainstream replay` end to end: the real binary, the bundled demo clip and
//! M-Packages, scored against the clip's ground truth under a budget.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{root, run_with_config, scratch_dir, shared_profile, write_demo_camera_config};

/// A scratch config for the demo clip with birds, vehicles and mammals, and a
/// cost profile measured once for all tests here.
fn setup(name: &str) -> PathBuf {
    let dir = scratch_dir("ms-replay", name);
    let r = root();
    write_demo_camera_config(&dir);
    for app in ["birds", "vehicles", "mammals"] {
        std::fs::write(
            dir.join("apps.d").join(format!("{app}.toml")),
            format!(
                "camera = \"campus\"\npackage = \"{}/models/apps/{app}\"\n",
                r.display()
            ),
        )
        .unwrap();
    }
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::copy(shared_profile(), dir.join("state/profile.bin")).unwrap();
    dir
}

fn replay(dir: &Path, args: &[&str]) -> Output {
    run_with_config("replay", dir, args)
}

fn runs(out: &Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn every_strategy_is_scored_per_app_against_the_ground_truth_within_its_budget() {
    let dir = setup("strategies");
    let out = replay(
        &dir,
        &[
            "--strategy",
            "no-sharing,max-sharing,mainstream",
            "--budget",
            "0.1",
            "--json",
        ],
    );
    let runs = runs(&out);
    assert_eq!(runs.len(), 3);
    let names: Vec<&str> = runs
        .iter()
        .map(|r| r["run"]["strategy"].as_str().unwrap())
        .collect();
    assert_eq!(names[..2], ["no-sharing", "max-sharing"]);
    for line in &runs {
        assert!(line["truth"]
            .as_str()
            .unwrap()
            .ends_with("models/demo/ground_truth.toml"));
        let r = &line["run"];
        assert_eq!(r["frames"], 295);
        let video = r["video_s"].as_f64().unwrap();
        assert!((video - 29.5).abs() < 1e-9, "{video}");
        // The budget holds over the clip: before its last charge the box
        // was never booked beyond half a frame interval past the end.
        let charged = r["charged_s"].as_f64().unwrap();
        let last = r["max_frame_s"].as_f64().unwrap();
        assert!(last > 0.0);
        assert!(
            charged <= 0.1 * (video + 0.05) + last + 1e-9,
            "charged {charged} s, largest frame {last} s"
        );
        assert!(r["network_s"].as_f64().unwrap() > 0.0);
        let analysed = r["analysed"].as_u64().unwrap();
        let dropped = r["dropped"].as_u64().unwrap();
        assert!(analysed > 0 && analysed + dropped <= 295);
        let apps = r["apps"].as_array().unwrap();
        assert_eq!(apps.len(), 3);
        for a in apps {
            let m = &a["measured"];
            assert_eq!(m["truth"], 2, "{a}");
            let f1 = m["f1"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&f1));
            assert!(a["samples"].as_u64().unwrap() > 0, "{a}");
        }
        let mean = r["measured_mean_f1"].as_f64().unwrap();
        let by_hand: f64 = apps
            .iter()
            .map(|a| a["measured"]["f1"].as_f64().unwrap())
            .sum::<f64>()
            / 3.0;
        assert!((mean - by_hand).abs() < 1e-12);
    }
    // The baselines differ in where they branch.
    let branches = |i: usize| -> Vec<u64> {
        runs[i]["run"]["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["branch"].as_u64().unwrap())
            .collect()
    };
    assert!(branches(0).iter().zip(branches(1)).all(|(n, m)| *n < m));
}

#[test]
fn an_ample_budget_loses_no_sample_and_finds_every_labelled_event() {
    let dir = setup("ample");
    let out = replay(
        &dir,
        &[
            "--strategy",
            "max-sharing",
            "--budget",
            "4",
            "--apps",
            "vehicles",
            "--json",
        ],
    );
    let runs = runs(&out);
    let r = &runs[0]["run"];
    assert_eq!(r["dropped"], 0);
    let a = &r["apps"][0];
    assert_eq!(a["app"], "vehicles");
    // Exactly the planned rate: one sample every 10 / fps frames of 295.
    let fps = a["fps"].as_f64().unwrap();
    let want = (295.0 / (10.0 / fps)).ceil() as u64;
    assert_eq!(a["samples"].as_u64().unwrap(), want, "{a}");
    assert_eq!(a["missed"], 0);
    // The committed vehicles heads find both vehicles of the demo clip at
    // full rate (the demo's own result).
    assert_eq!(a["measured"]["found"], 2, "{a}");
    // Per-frame counts split the samples by the labelled spans.
    let f = &a["frames"];
    let (es, os) = (
        f["event_samples"].as_u64().unwrap(),
        f["other_samples"].as_u64().unwrap(),
    );
    assert_eq!(es + os, a["samples"].as_u64().unwrap());
    assert!(es > 0 && os > 0, "{f}");
    assert!(f["event_positives"].as_u64().unwrap() <= es);
    let pkg_fpr = f["package_fpr"].as_f64().unwrap();
    assert!(pkg_fpr > 0.0 && pkg_fpr < 1.0);
}

#[test]
fn a_phase_seed_moves_each_apps_samples_and_is_reproducible() {
    let dir = setup("phase");
    let args = [
        "--strategy",
        "max-sharing",
        "--budget",
        "0.05",
        "--phase-seed",
        "11",
        "--json",
    ];
    let a = runs(&replay(&dir, &args));
    let phases: Vec<f64> = a[0]["run"]["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["phase"].as_f64().unwrap())
        .collect();
    assert!(phases.iter().any(|&p| p > 0.0), "{phases:?}");
    let b = runs(&replay(&dir, &args));
    for (x, y) in a[0]["run"]["apps"]
        .as_array()
        .unwrap()
        .iter()
        .zip(b[0]["run"]["apps"].as_array().unwrap())
    {
        assert_eq!(x["phase"], y["phase"]);
    }
}

#[test]
fn sharers_with_random_phases_are_analysed_only_on_the_fastest_apps_frames() {
    // Issue 22: each app samples its parent's frames, so a frame is decoded
    // (and the shared stem run) only when the fastest app is due, whatever
    // the phases; before, every app's own phase added frames.
    let dir = setup("grid");
    let out = replay(
        &dir,
        &[
            "--strategy",
            "max-sharing,no-sharing",
            "--budget",
            "0.02,4",
            "--phase-seed",
            "11,12",
            "--json",
        ],
    );
    let runs = runs(&out);
    assert_eq!(runs.len(), 8);
    let mut slower_apps = 0;
    for line in &runs {
        let r = &line["run"];
        assert_eq!(r["charge"], "all", "the budget pays for the decoding too");
        let samples: Vec<u64> = r["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["samples"].as_u64().unwrap())
            .collect();
        let most = *samples.iter().max().unwrap();
        assert_eq!(r["analysed"].as_u64().unwrap(), most, "{r}");
        slower_apps += samples.iter().filter(|&&n| n < most).count();
    }
    assert!(slower_apps > 0, "some plan runs apps at different rates");
}

#[test]
fn an_unknown_app_is_a_configuration_error_that_names_it() {
    let dir = setup("unknown");
    let out = replay(&dir, &["--apps", "birds,zebras"]);
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("zebras") && err.contains("birds"), "{err}");
}

#[test]
fn a_bad_strategy_is_a_usage_error() {
    let dir = setup("usage");
    let out = replay(&dir, &["--strategy", "fastest"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fastest"));
}

#[test]
fn text_output_shows_each_app_and_the_mean_beside_the_prediction() {
    let dir = setup("text");
    let out = replay(&dir, &["--budget", "0.2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout);
    for w in [
        "birds",
        "vehicles",
        "mammals",
        "mean event F1",
        "predicted",
        "dropped",
    ] {
        assert!(s.contains(w), "{w} missing from:\n{s}");
    }
}

#[test]
fn a_fixed_branch_and_rate_is_replayed_once_per_phase_seed_with_its_own_prediction() {
    let dir = setup("fixed");
    let out = replay(
        &dir,
        &[
            "--apps",
            "vehicles",
            "--branch",
            "20",
            "--fps",
            "2.5",
            "--phase-seed",
            "1,2,3",
            "--budget",
            "4",
            "--json",
        ],
    );
    let runs = runs(&out);
    assert_eq!(runs.len(), 3);
    let mut phases = Vec::new();
    for (i, line) in runs.iter().enumerate() {
        let r = &line["run"];
        assert_eq!(r["strategy"], "fixed");
        assert_eq!(r["phase_seed"], i as u64 + 1);
        let a = &r["apps"][0];
        assert_eq!(a["branch"], 20);
        assert_eq!(a["fps"].as_f64().unwrap(), 2.5);
        // One sample every 4 frames from the phase on: 73 or 74 of 295.
        let n = a["samples"].as_u64().unwrap();
        assert!((73..=74).contains(&n), "{n}");
        let p = a["predicted_recall"].as_f64().unwrap();
        assert!(p > 0.0 && p <= 1.0);
        phases.push(a["phase"].as_f64().unwrap());
    }
    assert!(phases.iter().all(|p| (0.0..4.0).contains(p)));
    assert!(phases[0] != phases[1] || phases[1] != phases[2]);
}

#[test]
fn a_branch_an_app_lacks_is_a_configuration_error_listing_what_it_has() {
    let dir = setup("nobranch");
    let out = replay(&dir, &["--apps", "mammals", "--branch", "3"]);
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--branch 3") && err.contains("0, 15, 20"),
        "{err}"
    );
}

#[test]
fn frames_limits_the_replay_and_scores_only_the_events_it_covers() {
    let dir = setup("frames");
    // The demo clip's first vehicle spans frames 70-83, the second 205-226.
    let out = replay(
        &dir,
        &[
            "--apps", "vehicles", "--budget", "4", "--frames", "150", "--json",
        ],
    );
    let runs = runs(&out);
    let r = &runs[0]["run"];
    assert_eq!(r["frames"], 150);
    assert!((r["video_s"].as_f64().unwrap() - 15.0).abs() < 1e-9);
    assert_eq!(r["apps"][0]["measured"]["truth"], 1);
}

#[test]
fn a_plan_repeated_at_a_larger_budget_that_dropped_nothing_is_reused_not_replayed() {
    let dir = setup("reuse");
    let out = replay(
        &dir,
        &[
            "--strategy",
            "max-sharing",
            "--budget",
            "2,4,0.001",
            "--apps",
            "vehicles",
            "--frames",
            "80",
            "--json",
        ],
    );
    let runs = runs(&out);
    assert_eq!(runs.len(), 3);
    let (a, b, c) = (&runs[0]["run"], &runs[1]["run"], &runs[2]["run"]);
    assert_eq!(a["budget_cores"], 2.0);
    assert_eq!(b["budget_cores"], 4.0);
    assert_eq!(a["dropped"], 0);
    assert_eq!(a["replayed"], true);
    // Same plan, more cores, nothing dropped at 2: the run at 4 is the same
    // samples and detections, not replayed again.
    assert_eq!(a["apps"][0]["branch"], b["apps"][0]["branch"]);
    assert_eq!(a["apps"][0]["fps"], b["apps"][0]["fps"]);
    assert_eq!(b["replayed"], false);
    assert_eq!(a["apps"][0]["detections"], b["apps"][0]["detections"]);
    // A thousandth of a core cannot keep up with the plan: that run is
    // replayed, and loses samples.
    assert_eq!(c["replayed"], true);
    assert!(c["dropped"].as_u64().unwrap() > 0, "{c}");
}

#[test]
fn all_cameras_plans_every_cameras_apps_under_one_budget_and_replays_one_camera_with_its_share() {
    // A second camera on the same clip with mammals; birds and vehicles stay
    // on campus.
    let dir = setup("all-cameras");
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    let gate = config
        .split("[[camera]]")
        .nth(1)
        .unwrap()
        .replace("\"campus\"", "\"gate\"");
    std::fs::write(
        dir.join("config.toml"),
        format!("{config}\n[[camera]]{gate}"),
    )
    .unwrap();
    let mammals = dir.join("apps.d/mammals.toml");
    let text = std::fs::read_to_string(&mammals).unwrap();
    std::fs::write(&mammals, text.replace("\"campus\"", "\"gate\"")).unwrap();

    let args = [
        "--strategy",
        "no-sharing",
        "--budget",
        "1",
        "--frames",
        "60",
        "--json",
    ];
    let alone = runs(&replay(&dir, &args));
    let mut joint_args = args.to_vec();
    joint_args.push("--all-cameras");
    let joint = runs(&replay(&dir, &joint_args));
    let (alone, joint) = (&alone[0]["run"], &joint[0]["run"]);
    let names = |r: &serde_json::Value| -> Vec<String> {
        r["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["app"].as_str().unwrap().to_owned())
            .collect()
    };
    // Only campus's apps are replayed either way ...
    assert_eq!(names(alone), ["birds", "vehicles"]);
    assert_eq!(names(joint), ["birds", "vehicles"]);
    // ... but the joint plan also holds mammals on gate: it costs more, and
    // campus's share is its own part (no budget binds at 1 core, so each
    // app's plan is the same in both).
    let (pa, pj) = (
        alone["predicted_cores"].as_f64().unwrap(),
        joint["predicted_cores"].as_f64().unwrap(),
    );
    assert!(pj > pa * 1.2, "joint {pj} vs campus alone {pa}");
    assert_eq!(alone["camera_share"].as_f64(), Some(1.0));
    let share = joint["camera_share"].as_f64().unwrap();
    assert!(
        (share - pa / pj).abs() < 1e-9,
        "share {share} vs {}",
        pa / pj
    );
    // An app of another camera may be named only with --all-cameras.
    let other = ["--apps", "birds,mammals", "--frames", "30", "--json"];
    let out = replay(&dir, &other);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("watches camera \"gate\""));
    let mut other = other.to_vec();
    other.push("--all-cameras");
    let run = &runs(&replay(&dir, &other))[0]["run"];
    assert_eq!(names(run), ["birds"]);
}

#[test]
fn each_prediction_carries_the_calibrations_own_doubt_in_json_and_in_the_plan() {
    // The demo packages' calibrations record their rates' bootstrap spread.
    let dir = setup("band");
    let run = &runs(&replay(
        &dir,
        &[
            "--strategy",
            "no-sharing",
            "--budget",
            "1",
            "--frames",
            "30",
            "--json",
        ],
    ))[0]["run"];
    for app in run["apps"].as_array().unwrap() {
        let f1 = app["predicted_f1"].as_f64().unwrap();
        let band = app["predicted_f1_band"]
            .as_array()
            .unwrap_or_else(|| panic!("no band: {app}"));
        let (lo, hi) = (band[0].as_f64().unwrap(), band[1].as_f64().unwrap());
        assert!(lo < f1 && f1 < hi, "{} not in ({lo}, {hi})", f1);
    }
    let out = run_with_config("plan", &dir, &["--budget", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("one\n   bootstrap standard deviation worse and better"),
        "{text}"
    );
    let leaf = text
        .lines()
        .find(|l| l.contains("birds: "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(leaf.ends_with(')') && leaf.contains(", F1 0."), "{leaf}");
}
