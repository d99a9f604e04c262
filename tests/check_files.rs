//! Issue 24, the files around the camera bytes: what `check`, `run` and
//! `status` do with the files a configuration names when they are not what
//! they should be. Each test runs the real binary on copies of the real base
//! and M-Packages, every child under a time limit (a regression that blocks
//! fails the test instead of hanging the suite).
//!
//! Set `MAINSTREAM_BIN` to run these against another build (that is how they
//! were seen to fail on main before the fixes).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{bin, root, scratch_dir, shared_profile};

/// Runs `cmd` to completion, killing it and failing if it takes over `limit`.
fn guarded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("STATE_DIRECTORY")
        .env("MAINSTREAM_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    // Drain both pipes on threads so a chatty child cannot block on them.
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let out = drain(child.stdout.take().map(|r| Box::new(r) as _));
    let err = drain(child.stderr.take().map(|r| Box::new(r) as _));
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not finish within {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&err.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

fn mainstream(cmd: &str, dir: &Path, extra: &[&str]) -> Output {
    let mut c = Command::new(bin());
    c.arg(cmd)
        .arg("--config")
        .arg(dir.join("config.toml"))
        .args(extra)
        .current_dir(dir);
    guarded(c, Duration::from_secs(120))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    )
}

/// A scratch config: the real base, the demo clip as camera "campus", state
/// in `dir/state` (with the shared cost profile), and one app "birds" on a
/// copy of the real birds package cut down to its branch-20 head.
fn setup(name: &str) -> PathBuf {
    let dir = scratch_dir("ms-check-files", name);
    let r = root();
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[device]\nbudget_cores = 1.0\nstate_dir = \"state\"\nthreads = 1\n\
             base = \"{}/models/mobilenet_v2/manifest.toml\"\n\n\
             [[camera]]\nname = \"campus\"\nsource = \"{}/models/demo/demo.mjpeg\"\nfps = 10\nloop = true\n",
            r.display(),
            r.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::create_dir_all(dir.join("pkg")).unwrap();
    std::fs::copy(
        r.join("models/apps/birds/head_bp20.onnx"),
        dir.join("pkg/head_bp20.onnx"),
    )
    .unwrap();
    write_package(&dir, 20, "bp20_pool", "head_bp20.onnx", Some(BP20_SHA256));
    std::fs::write(
        dir.join("apps.d/birds.toml"),
        "camera = \"campus\"\npackage = \"../pkg\"\n",
    )
    .unwrap();
    dir
}

const BP20_SHA256: &str = "426f03700fce07476f5d7b6f2802df9cc25cdd2cff1ec53f71034689019f66df";

/// Line of `model =` in the package [`write_package`] writes.
const MODEL_LINE: usize = 15;

fn write_package(dir: &Path, branch: usize, tensor: &str, model: &str, sha256: Option<&str>) {
    let sha = sha256.map_or(String::new(), |s| format!("sha256 = \"{s}\"\n"));
    std::fs::write(
        dir.join("pkg/package.toml"),
        format!(
            r#"format = 1
name = "birds"
base_sha256 = "893bfc8f402d17113a0881d0fda982883b6c7be84d36a38f1b9a7ba421e2c42d"
classes = ["other", "bird"]
positive = ["bird"]

[event]
length_ms = 2480.0
frequency = 0.6667
correlation = 0.6759

[[head]]
branch = {branch}
tensor = "{tensor}"
model = "{model}"
{sha}accuracy = 0.8317
fpr = 0.1400
"#
        ),
    )
    .unwrap();
}

fn mkfifo(p: &Path) {
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
}

#[test]
fn the_unmodified_scratch_config_passes_check() {
    let dir = setup("good");
    let o = mainstream("check", &dir, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
}

// A FIFO named *.toml in apps.d made `check` (and the service's reload, and
// `status`) block forever in open(2).
#[test]
fn a_fifo_named_toml_in_apps_d_is_refused_by_check_at_once() {
    let dir = setup("fifo-dropin");
    let fifo = dir.join("apps.d/evil.toml");
    mkfifo(&fifo);
    let o = mainstream("check", &dir, &[]);
    assert_eq!(o.status.code(), Some(78), "{}", show(&o));
    let want = format!(
        "{}: error: is a FIFO (named pipe), not a regular file",
        fifo.display()
    );
    assert!(text(&o.stderr).contains(&want), "{}", show(&o));
}

// The same for every other file the config names: the base manifest, the
// package's metadata and calibration, a head file, the replay source.
#[test]
fn a_fifo_or_directory_in_place_of_any_named_file_is_refused_by_check_at_once() {
    let r = root();
    for (rel, what) in [
        ("base/manifest.toml", "fifo"),
        ("pkg/package.toml", "fifo"),
        ("pkg/calibration.toml", "fifo"),
        ("pkg/head_bp20.onnx", "fifo"),
        ("clip.mjpeg", "fifo"),
        ("pkg/head_bp20.onnx", "dir"),
    ] {
        let dir = setup(&format!("fifo-{}-{what}", rel.replace('/', "-")));
        std::fs::create_dir_all(dir.join("base")).unwrap();
        let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
        let config = if rel == "clip.mjpeg" {
            config.replace(
                &format!("{}/models/demo/demo.mjpeg", r.display()),
                "clip.mjpeg",
            )
        } else if rel.starts_with("base/") {
            config.replace(
                &format!("{}/models/mobilenet_v2/manifest.toml", r.display()),
                "base/manifest.toml",
            )
        } else {
            config
        };
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let p = dir.join(rel);
        let _ = std::fs::remove_file(&p);
        if what == "dir" {
            std::fs::create_dir_all(&p).unwrap();
        } else {
            mkfifo(&p);
        }
        let o = mainstream("check", &dir, &[]);
        assert_eq!(o.status.code(), Some(78), "{rel}: {}", show(&o));
        let want = if what == "dir" {
            "is a directory, not a regular file"
        } else {
            "is a FIFO (named pipe), not a regular file"
        };
        assert!(text(&o.stderr).contains(want), "{rel}: {}", show(&o));
    }
}

/// Damage done to the package's one head file.
enum Damage {
    Truncated,
    BitFlipped,
    Empty,
    Directory,
    DevZero,
    /// Not damaged, but no `sha256` recorded: only parsing can tell.
    GarbageWithoutHash,
    /// The branch-20 head declared at branch 15, whose tensor it cannot take.
    WrongBranch,
}

fn damage(dir: &Path, d: &Damage) {
    let head = dir.join("pkg/head_bp20.onnx");
    let good = std::fs::read(&head).unwrap();
    match d {
        Damage::Truncated => std::fs::write(&head, &good[..good.len() / 2]).unwrap(),
        Damage::BitFlipped => {
            let mut b = good.clone();
            let i = b.len() - 100;
            b[i] ^= 0x10;
            std::fs::write(&head, b).unwrap();
        }
        Damage::Empty => std::fs::write(&head, b"").unwrap(),
        Damage::Directory => {
            std::fs::remove_file(&head).unwrap();
            std::fs::create_dir(&head).unwrap();
        }
        Damage::DevZero => write_package(dir, 20, "bp20_pool", "/dev/zero", None),
        Damage::GarbageWithoutHash => {
            std::fs::write(&head, &good[..good.len() / 3]).unwrap();
            write_package(dir, 20, "bp20_pool", "head_bp20.onnx", None);
        }
        Damage::WrongBranch => write_package(dir, 15, "bp15_features.14", "head_bp20.onnx", None),
    }
}

const DAMAGES: [Damage; 7] = [
    Damage::Truncated,
    Damage::BitFlipped,
    Damage::Empty,
    Damage::Directory,
    Damage::DevZero,
    Damage::GarbageWithoutHash,
    Damage::WrongBranch,
];

// `check` opened head files but never hashed or parsed them: all of these
// passed `check`, and `run` then exited 1 (so systemd restarted it every 2 s)
// instead of 78.
#[test]
fn check_refuses_every_damaged_head_at_its_model_line_and_exits_78() {
    for (i, d) in DAMAGES.iter().enumerate() {
        let dir = setup(&format!("head-{i}"));
        damage(&dir, d);
        let o = mainstream("check", &dir, &[]);
        assert_eq!(o.status.code(), Some(78), "damage {i}: {}", show(&o));
        let at = format!(
            "{}:{MODEL_LINE}:9: error: ",
            dir.join("apps.d/../pkg/package.toml").display()
        );
        assert!(text(&o.stderr).contains(&at), "damage {i}: {}", show(&o));
    }
}

// replay and calibrate load the heads as run does, so they refuse them the
// same way (they exited 1 before).
#[test]
fn replay_and_calibrate_exit_78_for_a_damaged_head_at_its_model_line() {
    let dir = setup("replay-head");
    std::fs::copy(shared_profile(), dir.join("state/profile.bin")).unwrap();
    damage(&dir, &Damage::BitFlipped);
    let at = format!(
        "{}:{MODEL_LINE}:9: error: ",
        dir.join("apps.d/../pkg/package.toml").display()
    );
    for cmd in ["replay", "calibrate"] {
        let o = mainstream(cmd, &dir, &[]);
        assert_eq!(o.status.code(), Some(78), "{cmd}: {}", show(&o));
        assert!(text(&o.stderr).contains(&at), "{cmd}: {}", show(&o));
    }
}

#[test]
fn run_exits_78_for_a_damaged_head_instead_of_1() {
    for (i, d) in [
        Damage::BitFlipped,
        Damage::GarbageWithoutHash,
        Damage::WrongBranch,
    ]
    .iter()
    .enumerate()
    {
        let dir = setup(&format!("run-head-{i}"));
        std::fs::copy(shared_profile(), dir.join("state/profile.bin")).unwrap();
        damage(&dir, d);
        let o = mainstream("run", &dir, &[]);
        assert_eq!(o.status.code(), Some(78), "damage {i}: {}", show(&o));
    }
}

// Errors in the base manifest were reported at the manifest only, not at
// the `base =` line that named it.
#[test]
fn a_broken_base_manifest_is_reported_at_its_line_and_at_the_base_line() {
    let dir = setup("base-note");
    let r = root();
    let manifest = std::fs::read_to_string(r.join("models/mobilenet_v2/manifest.toml")).unwrap();
    // Line 3 of the copy: a key without a value.
    let broken = format!("# copy\n\nformat =\n{manifest}");
    std::fs::create_dir_all(dir.join("base")).unwrap();
    std::fs::write(dir.join("base/manifest.toml"), broken).unwrap();
    let config = std::fs::read_to_string(dir.join("config.toml"))
        .unwrap()
        .replace(
            &format!("{}/models/mobilenet_v2/manifest.toml", r.display()),
            "base/manifest.toml",
        );
    std::fs::write(dir.join("config.toml"), config).unwrap();
    let o = mainstream("check", &dir, &[]);
    assert_eq!(o.status.code(), Some(78), "{}", show(&o));
    let err = text(&o.stderr);
    let at_manifest = format!("{}:3:", dir.join("base/manifest.toml").display());
    assert!(err.contains(&at_manifest), "{}", show(&o));
    // `base = "base/manifest.toml"` is line 5 of the config; its value starts at column 8.
    let at_base = format!(
        "{}:5:8: error: the base network named here",
        dir.join("config.toml").display()
    );
    assert!(err.contains(&at_base), "{}", show(&o));
}

// A file name with a newline split a diagnostic across two lines.
#[test]
fn a_newline_in_a_drop_in_name_does_not_split_its_diagnostic() {
    let dir = setup("newline");
    let bad = dir.join("apps.d/evil\nfake.toml:1:1: error: forged.toml");
    std::fs::write(&bad, "camera = \"campus\"\nvoting = \"two\"\n").unwrap();
    let o = mainstream("check", &dir, &[]);
    assert_eq!(o.status.code(), Some(78), "{}", show(&o));
    let err = text(&o.stderr);
    for line in err.lines() {
        assert!(
            !line.starts_with("fake.toml"),
            "a diagnostic split by the newline in its file name:\n{}",
            show(&o)
        );
    }
    assert!(
        err.contains("apps.d/evil\\nfake.toml:1:1: error: forged.toml:2:10: error: "),
        "{}",
        show(&o)
    );
}

/// Writes a durable state (3 boots, birds counters) and an event log of two
/// events into `dir/state`, as the service would have.
fn write_state_and_events(dir: &Path) {
    use mainstream::daemon::{eventlog::EventLog, events::Event, state};
    let sd = dir.join("state");
    let mut st = state::State {
        boots: 3,
        ..state::State::default()
    };
    st.totals_mut("birds").samples = 4321;
    state::save_state(&sd, &st).unwrap();
    let (mut log, _) = EventLog::open(&sd.join("events.log")).unwrap();
    for k in 0..2u64 {
        log.append(&Event {
            app: "birds".into(),
            camera: "campus".into(),
            start_unix_ms: 1_700_000_000_000 + k * 10_000,
            end_unix_ms: 1_700_000_002_000 + k * 10_000,
            start_frame: 100 * k,
            end_frame: 100 * k + 20,
            peak_score: 0.9,
            samples: 7,
        })
        .unwrap();
    }
}

// A damaged status.bin made `status` exit 1 although state.bin and
// events.log were intact.
#[test]
fn status_shows_the_state_and_events_when_status_bin_is_damaged() {
    let dir = setup("status-damaged");
    write_state_and_events(&dir);
    std::fs::write(dir.join("state/status.bin"), b"MSSU\x01\x00garbage").unwrap();
    for extra in [&[][..], &["--json"][..]] {
        let o = mainstream("status", &dir, extra);
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
        let out = text(&o.stdout);
        if extra.is_empty() {
            assert!(out.contains("live status is unreadable"), "{out}");
            assert!(out.contains("3 boots"), "{out}");
            assert!(out.contains("birds 4321 samples"), "{out}");
            assert!(out.contains("event log: 2 events"), "{out}");
        } else {
            let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
            assert_eq!(v["state"]["boots"], 3, "{v}");
            assert_eq!(v["events_total"], 2, "{v}");
            assert!(v["status_problem"].as_str().is_some(), "{v}");
        }
    }
}

/// A running service, killed when dropped (a failing test leaves nothing behind).
struct Service(Child, std::sync::Arc<std::sync::Mutex<String>>);

impl Service {
    fn start(dir: &Path) -> Service {
        let mut child = Command::new(bin())
            .arg("run")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .current_dir(dir)
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env("MAINSTREAM_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let l = log.clone();
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                l.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Service(child, log)
    }

    fn log(&self) -> String {
        self.1.lock().unwrap().clone()
    }

    fn wait_log(&self, needle: &str, limit: Duration) {
        let t0 = Instant::now();
        while !self.log().contains(needle) {
            assert!(
                t0.elapsed() < limit,
                "no {needle:?} in the log within {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        nix::sys::signal::kill(pid, sig).expect("signal");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// A FIFO drop-in blocked the running service's reload: status stopped being
// written and SIGTERM was ignored. And while any drop-in was broken, `status`
// exited 78 instead of showing the running service with the problem beside it.
#[test]
fn a_fifo_drop_in_is_refused_by_the_running_service_which_status_shows_and_sigterm_stops() {
    use nix::sys::signal::Signal;
    let dir = setup("service-fifo");
    std::fs::copy(shared_profile(), dir.join("state/profile.bin")).unwrap();
    let mut svc = Service::start(&dir);
    svc.wait_log("first frame analysed", Duration::from_secs(60));
    let fifo = dir.join("apps.d/evil.toml");
    mkfifo(&fifo);
    svc.signal(Signal::SIGHUP);
    svc.wait_log("keeping the running plan", Duration::from_secs(30));
    assert!(
        svc.log()
            .contains("is a FIFO (named pipe), not a regular file"),
        "{}",
        svc.log()
    );
    // The status keeps being rewritten and `status` shows it with the problem.
    std::thread::sleep(Duration::from_millis(2500));
    let o = mainstream("status", &dir, &["--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let v: serde_json::Value = serde_json::from_str(text(&o.stdout).trim()).expect("JSON");
    assert_eq!(v["running"], true, "{v}");
    let problems = v["config_problems"].as_array().expect("config_problems");
    assert!(
        problems.iter().any(|p| p
            .as_str()
            .unwrap_or("")
            .contains("evil.toml: error: is a FIFO")),
        "{v}"
    );
    let o = mainstream("status", &dir, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = text(&o.stdout);
    assert!(out.contains("mainstream is running"), "{out}");
    assert!(out.contains("configuration: 1 problem"), "{out}");
    // SIGTERM stops it.
    svc.signal(Signal::SIGTERM);
    let t0 = Instant::now();
    let code = loop {
        if let Some(s) = svc.0.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "SIGTERM did not stop the service within 10 s:\n{}",
            svc.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0), "{}", svc.log());
}
