//! The service (`mainstream run`) end to end, as systemd and an operator
//! drive it: the real binary on the bundled demo clip and M-Packages, real
//! signals, a real notification socket, and its files in a state directory.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{bin, root, scratch_dir, shared_profile, status_json};

/// A scratch directory with a config for the demo clip and the given apps
/// (`(name, package, voting)`), pacing `pace`.
fn setup(name: &str, pace: &str, apps: &[(&str, &str, u32)]) -> PathBuf {
    let dir = scratch_dir("ms-service", name);
    let r = root();
    std::fs::write(
        dir.join("config.toml"),
        format!(
            r#"[device]
budget_cores = 1.0
state_dir = "state"
threads = 1
base = "{}/models/mobilenet_v2/manifest.toml"

[[camera]]
name = "campus"
source = "{}/models/demo/demo.mjpeg"
fps = 10
pace = "{pace}"
loop = {looping}
"#,
            r.display(),
            r.display(),
            looping = pace == "realtime"
        ),
    )
    .unwrap();
    for (app, pkg, voting) in apps {
        write_app(&dir, app, pkg, *voting);
    }
    // One measured cost profile for every test here: the same base on the
    // same CPU (the first boot of a fresh box measures it the same way).
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::copy(shared_profile(), dir.join("state/profile.bin")).unwrap();
    dir
}

fn write_app(dir: &Path, app: &str, pkg: &str, voting: u32) {
    std::fs::write(
        dir.join("apps.d").join(format!("{app}.toml")),
        format!(
            "camera = \"campus\"\npackage = \"{}/models/apps/{pkg}\"\nvoting = {voting}\n",
            root().display()
        ),
    )
    .unwrap();
}

struct Running {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn collect(r: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            match line {
                Ok(s) => l.lock().unwrap().push(s),
                Err(_) => break,
            }
        }
    });
    lines
}

fn start(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Running {
    let mut cmd = Command::new(bin());
    cmd.arg("run")
        .arg("--config")
        .arg(dir.join("config.toml"))
        .args(extra)
        .current_dir(dir)
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env("MAINSTREAM_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the binary starts");
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    Running {
        child,
        stdout,
        stderr,
    }
}

impl Running {
    fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits until a log line contains `needle`.
    fn wait_log(&self, needle: &str, limit: Duration) {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(needle))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "no log line with {needle:?} within {limit:?}; log:\n{}",
            self.log()
        );
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }

    fn wait_exit(&mut self, limit: Duration) -> (i32, Duration) {
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                return (s.code().unwrap_or(-1), t0.elapsed());
            }
            if t0.elapsed() > limit {
                let _ = self.child.kill();
                panic!("did not exit within {limit:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    }
}

#[test]
fn a_replayed_clip_is_analysed_to_the_end_with_events_on_stdout_and_in_the_log() {
    let dir = setup(
        "replay",
        "fast",
        &[("birds", "birds", 2), ("vehicles", "vehicles", 2)],
    );
    let mut svc = start(&dir, &[], &[]);
    let (code, _) = svc.wait_exit(Duration::from_secs(600));
    let log = svc.log();
    assert_eq!(code, 0, "log:\n{log}");
    assert!(log.contains("first frame analysed"), "{log}");
    assert!(log.contains("every camera source has ended"), "{log}");
    let lines = svc.json_lines();
    let ends: Vec<&serde_json::Value> = lines.iter().filter(|v| v["type"] == "event").collect();
    let starts = lines.iter().filter(|v| v["type"] == "event_start").count();
    assert_eq!(ends.len(), starts, "every confirmed event ends: {lines:?}");
    for e in &ends {
        assert!(e["start_frame"].as_u64() <= e["end_frame"].as_u64());
        assert!(e["end_frame"].as_u64().unwrap() < 295);
        assert!(["birds", "vehicles"].contains(&e["app"].as_str().unwrap()));
    }
    // The clip has events of both apps; at least one is found.
    assert!(!ends.is_empty(), "no events; log:\n{log}");
    let st = status_json(&dir);
    assert_eq!(st["running"], false);
    assert_eq!(st["events_total"].as_u64().unwrap() as usize, ends.len());
    let cam = &st["status"]["cameras"][0];
    assert_eq!(cam["frames"], 295, "{cam}");
    let apps = st["status"]["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 2);
    for a in apps {
        assert!(a["samples"].as_u64().unwrap() > 0, "{a}");
    }
    assert_eq!(st["state"]["clean_shutdown"], true);
    assert_eq!(st["state"]["boots"], 1);
}

#[test]
fn apps_added_and_removed_with_sighup_swap_trees_without_reopening_the_camera() {
    let dir = setup("sighup", "realtime", &[("birds", "birds", 2)]);
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut svc = start(
        &dir,
        &["--no-watch"],
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "2000000"),
        ],
    );
    let mut notes = Vec::new();
    let t0 = Instant::now();
    let mut buf = [0u8; 512];
    while !notes.iter().any(|n: &String| n.contains("READY=1")) {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no READY=1: {notes:?}\n{}",
            svc.log()
        );
        if let Ok(n) = sock.recv(&mut buf) {
            notes.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    svc.wait_log("first frame analysed", Duration::from_secs(30));

    // Add an app: a re-plan and a tree swap, the camera stays open.
    write_app(&dir, "mammals", "mammals", 2);
    svc.signal("HUP");
    svc.wait_log("re-planned in", Duration::from_secs(30));
    svc.wait_log("new stem tree (plan 2)", Duration::from_secs(30));

    // A broken drop-in is rejected with its location and the plan stays.
    std::fs::write(
        dir.join("apps.d/broken.toml"),
        "camera = \"campus\"\nvoting = \"two\"\n",
    )
    .unwrap();
    svc.signal("HUP");
    svc.wait_log("keeping the running plan", Duration::from_secs(30));
    assert!(svc.log().contains("broken.toml:2:"), "{}", svc.log());
    std::fs::remove_file(dir.join("apps.d/broken.toml")).unwrap();

    // Remove the first app.
    std::fs::remove_file(dir.join("apps.d/birds.toml")).unwrap();
    svc.signal("HUP");
    svc.wait_log("new stem tree (plan 3)", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));
    let st = status_json(&dir);
    assert_eq!(st["running"], true, "{st}");
    let apps: Vec<&str> = st["status"]["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(apps, vec!["mammals"], "{st}");
    let cam = &st["status"]["cameras"][0];
    assert_eq!(cam["disconnects"], 0, "{cam}");
    assert_eq!(cam["reconnects"], 0, "{cam}");
    assert_eq!(st["status"]["replans"], 2, "{st}");

    // The watchdog is pinged while frames flow.
    let t1 = Instant::now();
    while !notes.iter().any(|n| n.contains("WATCHDOG=1")) {
        assert!(
            t1.elapsed() < Duration::from_secs(10),
            "no WATCHDOG=1: {notes:?}"
        );
        if let Ok(n) = sock.recv(&mut buf) {
            notes.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }

    // SIGTERM: STOPPING=1 and a clean exit within a second.
    svc.signal("TERM");
    let (code, took) = svc.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 0, "{}", svc.log());
    assert!(took < Duration::from_millis(1500), "stopping took {took:?}");
    while let Ok(n) = sock.recv(&mut buf) {
        notes.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(notes.iter().any(|n| n.contains("STOPPING=1")), "{notes:?}");
    let st = status_json(&dir);
    assert_eq!(st["state"]["clean_shutdown"], true);
}

#[test]
fn a_damaged_state_file_is_moved_aside_and_the_service_still_boots() {
    let dir = setup("corrupt", "fast", &[("vehicles", "vehicles", 2)]);
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::write(
        dir.join("state/state.bin"),
        b"MSST\x01\x00garbage after a bad sector",
    )
    .unwrap();
    // And an event log whose last record was torn by a power cut.
    std::fs::write(
        dir.join("state/events.log"),
        b"MSEL\x01\x00\x00\x00\x20\x00\x00\x00\x01\x02",
    )
    .unwrap();
    let mut svc = start(&dir, &[], &[]);
    let (code, _) = svc.wait_exit(Duration::from_secs(600));
    let log = svc.log();
    assert_eq!(code, 0, "{log}");
    assert!(dir.join("state/state.bin.corrupt").exists());
    assert!(log.contains("starting from an empty state"), "{log}");
    assert!(log.contains("torn last record"), "{log}");
    let st = status_json(&dir);
    assert_eq!(st["state"]["boots"], 1);
}

#[test]
fn a_broken_config_exits_78_naming_file_line_and_column() {
    let dir = setup("badconfig", "fast", &[("birds", "birds", 2)]);
    std::fs::write(
        dir.join("apps.d/typo.toml"),
        "camera = \"campus\"\nvotting = 2\n",
    )
    .unwrap();
    let mut svc = start(&dir, &[], &[]);
    let (code, _) = svc.wait_exit(Duration::from_secs(60));
    assert_eq!(code, 78, "{}", svc.log());
    assert!(svc.log().contains("typo.toml:2:1"), "{}", svc.log());
}
