//! The command-line interface, exercised as a user would: by running the
//! binary. Set `MAINSTREAM_BIN` to test another build of it (CI points it at
//! the aarch64 binary) and `MAINSTREAM_RUNNER` to run it through an emulator
//! (`qemu-aarch64`).

use crate::common::root;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mainstream(args: &[&str]) -> Output {
    mainstream_with_env(args, &[])
}

/// [`mainstream`] with environment variables set.
fn mainstream_with_env(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let bin = std::env::var_os("MAINSTREAM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mainstream")));
    let mut cmd = match std::env::var("MAINSTREAM_RUNNER") {
        Ok(runner) if !runner.is_empty() => {
            let mut parts = runner.split_whitespace();
            let mut c = Command::new(parts.next().expect("non-empty runner"));
            c.args(parts).arg(&bin);
            c
        }
        _ => Command::new(&bin),
    };
    cmd.args(args)
        .current_dir(root())
        .env_remove("MAINSTREAM_LOG")
        .env_remove("JOURNAL_STREAM")
        .env_remove("STATE_DIRECTORY")
        .env_remove("MAINSTREAM_KERNEL")
        .env_remove("MAINSTREAM_STOCK_ENGINE")
        .envs(vars.iter().copied());
    cmd.output().expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fixture(rel: &str) -> String {
    Path::new("tests/fixtures/config")
        .join(rel)
        .display()
        .to_string()
}

#[test]
fn check_accepts_a_valid_config_and_summarises_it() {
    let out = mainstream(&["check", "--config", &fixture("good/config.toml")]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("configuration is valid"), "{stdout}");
    assert!(stdout.contains("cameras: 1"), "{stdout}");
    assert!(stdout.contains("apps: 2 (2 enabled)"), "{stdout}");
    assert!(
        stdout.contains("second-cup"),
        "drop-in named after its file: {stdout}"
    );
}

#[test]
fn check_reports_every_problem_with_file_line_and_column_and_exits_78() {
    let out = mainstream(&["check", "--config", &fixture("bad/config.toml")]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    let cfg = fixture("bad/config.toml");
    let dropin = fixture("bad/apps.d/typo.toml");
    for want in [
        format!("{cfg}:3:16: error: budget_cores must be above 0"),
        format!("{cfg}:10:1: error: unknown field `colour`"),
        format!(
            "{cfg}:14:10: error: app \"espresso\" names camera \"kitchen\", which does not exist"
        ),
        format!("{dropin}:3:10: error: voting must be between 1 and 16, not 99"),
    ] {
        assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
    }
    assert!(
        stderr.contains("error: 4 problems in the configuration"),
        "{stderr}"
    );
}

#[test]
fn check_of_a_missing_file_says_which_file_and_exits_78() {
    let out = mainstream(&["check", "--config", "/nonexistent/mainstream.toml"]);
    assert_eq!(out.status.code(), Some(78));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/mainstream.toml: error: cannot open"),
        "{stderr}"
    );
}

#[test]
fn help_teaches_every_command_and_the_exit_codes() {
    for args in [&["--help"][..], &["help"][..], &[][..]] {
        let out = mainstream(args);
        assert_eq!(out.status.code(), Some(0));
        let stdout = text(&out.stdout);
        for word in ["EXIT CODES", "78"] {
            assert!(stdout.contains(word), "{args:?}: {word} missing");
        }
        // The overview names every command the parser accepts.
        for (name, _) in mainstream::cli::COMMANDS {
            assert!(
                stdout
                    .lines()
                    .any(|l| l.starts_with(&format!("    {name} "))),
                "{args:?}: command {name} missing from the overview"
            );
        }
    }
    // Every command has its own help, by `help NAME` and by `NAME --help`.
    for (name, help) in mainstream::cli::COMMANDS {
        for args in [&["help", name][..], &[name, "--help"][..]] {
            let out = mainstream(args);
            assert_eq!(out.status.code(), Some(0), "{args:?}");
            assert_eq!(text(&out.stdout).trim_end(), help.trim_end(), "{args:?}");
        }
    }
    let out = mainstream(&["check", "--help"]);
    assert!(text(&out.stdout).contains("FILE:LINE:COL"));
}

#[test]
fn a_bad_command_line_exits_2_and_names_the_mistake() {
    let out = mainstream(&["check", "--confg", "x.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown option --confg"));
    let out = mainstream(&["launch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown command \"launch\""));
}

#[test]
fn version_prints_the_package_version() {
    let out = mainstream(&["--version"]);
    assert_eq!(
        text(&out.stdout).trim(),
        format!("mainstream {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn cameras_lists_what_is_present_and_exits_0_when_nothing_is() {
    let out = mainstream(&["cameras", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json = text(&out.stdout);
    assert!(json.trim_start().starts_with('['), "{json}");
    if !Path::new("/dev/video0").exists() {
        assert_eq!(json.trim(), "[]");
        let out = mainstream(&["cameras"]);
        assert_eq!(out.status.code(), Some(0));
        assert!(text(&out.stdout).contains("no video devices"));
    }
}

#[test]
fn plan_prints_each_app_and_the_baselines_as_json() {
    let out = mainstream(&[
        "plan",
        "--config",
        &fixture("good/config.toml"),
        "--budget",
        "0.5",
        "--json",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let s = v.to_string();
    for key in ["espresso", "second-cup", "max-sharing", "no-sharing"] {
        assert!(s.contains(key), "{key} missing: {s}");
    }
}

#[test]
fn cameras_test_streams_a_source_through_preprocessing_and_reports_it() {
    let out = mainstream(&[
        "cameras",
        "--test",
        "models/demo/demo.mjpeg",
        "--fps",
        "10",
        "--frames",
        "12",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("result:") && l.trim_end().ends_with(" ok")),
        "{stdout}"
    );
    assert!(stdout.contains("12 of 12 frames"), "{stdout}");
}

#[test]
fn cameras_test_of_an_absent_device_fails_with_a_reason() {
    let out = mainstream(&[
        "cameras",
        "--test",
        "/dev/v4l/by-id/no-such-camera",
        "--frames",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("FAILED"),
        "{}",
        text(&out.stdout)
    );
}

/// The kernel path the binary under test runs unforced: NEON for the
/// aarch64 binary CI runs under qemu-aarch64, portable for another
/// emulated one (armv7 under qemu-arm), else this CPU's best.
fn expected_kernel() -> &'static str {
    match std::env::var("MAINSTREAM_RUNNER").unwrap_or_default() {
        r if r.contains("aarch64") => "neon",
        r if !r.trim().is_empty() => "portable",
        _ => mainstream::model::net::KernelPath::best().name(),
    }
}

#[test]
fn bench_json_names_the_kernel_path_it_ran_and_refuses_an_unknown_one() {
    let args = [
        "bench",
        "--apps",
        "1",
        "--sharing",
        "none",
        "--frames",
        "1",
        "--runs",
        "1",
        "--json",
    ];
    let out = mainstream(&args);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let want = format!(r#""kernel":"{}""#, expected_kernel());
    assert!(stdout.contains(&want), "{want} in {stdout}");
    // A path no CPU has: a configuration error, exit 78, never a run.
    let out = mainstream_with_env(&args, &[("MAINSTREAM_KERNEL", "sve")]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("MAINSTREAM_KERNEL=sve"),
        "{}",
        text(&out.stderr)
    );
}
