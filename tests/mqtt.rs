//! Events to a real MQTT broker: Debian's mosquitto, started here on
//! loopback (a free port, its own config, password file and persistence
//! directory) and stopped at the end of each test.
//!
//! The publisher is driven two ways: directly on an event log (exact counts
//! through a broker outage, TLS, wrong credentials), and through the real
//! binary on the demo clip (topics and payloads as the service emits them,
//! SIGKILL during delivery and with publishes unacknowledged, event
//! snapshots of an MJPEG and of a Y4M camera).

use mainstream::config::output::Mqtt;
use mainstream::daemon::eventlog::EventLog;
use mainstream::daemon::events::Event;
use mainstream::daemon::output::tail::End;
use mainstream::daemon::output::Output;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::common::{bin, root, scratch_dir, shared_profile, status_json};

const USER: &str = "appliance";
const PASSWORD: &str = "s3cret-pw";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A mosquitto broker of our own.
struct Broker {
    dir: PathBuf,
    port: u16,
    tls_port: Option<u16>,
    child: Option<Child>,
}

impl Broker {
    /// A broker requiring USER/PASSWORD, with persistence (so a subscriber's
    /// session survives a restart) and, if `tls`, a TLS listener with a
    /// certificate for 127.0.0.1 signed by `dir/ca.crt`.
    fn start(name: &str, tls: bool) -> Broker {
        let dir = scratch_dir("ms-mqtt-broker", name);
        run(Command::new("mosquitto_passwd")
            .args(["-b", "-c"])
            .arg(dir.join("passwd"))
            .args([USER, PASSWORD]));
        let port = free_port();
        let tls_port = tls.then(|| {
            make_ca(&dir, "ca");
            run(Command::new("openssl")
                .args([
                    "req",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                ])
                .args(["-nodes", "-subj", "/CN=127.0.0.1", "-keyout"])
                .arg(dir.join("server.key"))
                .arg("-out")
                .arg(dir.join("server.csr")));
            std::fs::write(
                dir.join("san.ext"),
                "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
            )
            .unwrap();
            run(Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-CAcreateserial", "-in"])
                .arg(dir.join("server.csr"))
                .arg("-CA")
                .arg(dir.join("ca.crt"))
                .arg("-CAkey")
                .arg(dir.join("ca.key"))
                .arg("-extfile")
                .arg(dir.join("san.ext"))
                .arg("-out")
                .arg(dir.join("server.crt")));
            free_port()
        });
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_owned();
        let mut conf = format!(
            "user {user}\nper_listener_settings false\nallow_anonymous false\npassword_file {d}/passwd\n\
             persistence true\npersistence_location {d}/\nlog_dest file {d}/mosquitto.log\n\
             listener {port} 127.0.0.1\n",
            d = dir.display()
        );
        if let Some(tp) = tls_port {
            conf.push_str(&format!(
                "listener {tp} 127.0.0.1\ncafile {d}/ca.crt\ncertfile {d}/server.crt\nkeyfile {d}/server.key\n",
                d = dir.display()
            ));
        }
        std::fs::write(dir.join("mosquitto.conf"), conf).unwrap();
        let mut b = Broker {
            dir,
            port,
            tls_port,
            child: None,
        };
        b.resume();
        b
    }

    /// Starts (again) on the same ports.
    fn resume(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto runs (tools/setup.sh installs it)");
        self.child = Some(child);
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "mosquitto did not listen on {}: {}",
                self.port,
                std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it the way systemd would (SIGTERM: it saves its persistence).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let t0 = Instant::now();
            while c.try_wait().unwrap().is_none() {
                if t0.elapsed() > Duration::from_secs(5) {
                    let _ = c.kill();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    fn password_file(&self) -> PathBuf {
        let p = self.dir.join("client.pw");
        std::fs::write(&p, format!("{PASSWORD}\n")).unwrap();
        p
    }

    fn config(&self, client_id: &str) -> Mqtt {
        Mqtt {
            host: "127.0.0.1".into(),
            port: self.port,
            client_id: client_id.into(),
            username: Some(USER.into()),
            password_file: Some(self.password_file()),
            tls_ca_file: None,
            topic_prefix: format!("ms-{client_id}"),
            discovery_prefix: None,
            keep_alive_s: 5,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A self-signed CA `dir/NAME.crt` with its key.
fn make_ca(dir: &Path, name: &str) {
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=test {name}"),
            "-keyout",
        ])
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(dir.join(format!("{name}.crt"))));
}

/// `mosquitto_sub` with a persistent session, its lines time-stamped.
struct Sub {
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String, String)>>>,
}

impl Sub {
    fn start(b: &Broker, id: &str, topics: &[&str]) -> Sub {
        let mut cmd = Command::new("mosquitto_sub");
        cmd.args(["-h", "127.0.0.1", "-p", &b.port.to_string()])
            .args(["-u", USER, "-P", PASSWORD, "-q", "1", "-c", "-i", id, "-v"]);
        for t in topics.iter().chain(&["probe/#"]) {
            cmd.args(["-t", t]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub runs (tools/setup.sh installs mosquitto-clients)");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = Arc::clone(&lines);
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let (t, p) = line.split_once(' ').unwrap_or((&line, ""));
                l.lock()
                    .unwrap()
                    .push((Instant::now(), t.to_owned(), p.to_owned()));
            }
        });
        let s = Sub { child, lines };
        // Subscribed once a probe comes back.
        let t0 = Instant::now();
        while !s
            .lines
            .lock()
            .unwrap()
            .iter()
            .any(|(_, t, _)| t == "probe/x")
        {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "mosquitto_sub never subscribed"
            );
            run(Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &b.port.to_string()])
                .args(["-u", USER, "-P", PASSWORD, "-t", "probe/x", "-m", "1"]));
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    fn on(&self, topic: &str) -> Vec<(Instant, String)> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, t, _)| t == topic)
            .map(|(i, _, p)| (*i, p.clone()))
            .collect()
    }

    fn with_suffix(&self, suffix: &str) -> Vec<(Instant, String, String)> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, t, _)| t.ends_with(suffix))
            .cloned()
            .collect()
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Log lines of this test binary (the publisher logs through `log`).
fn logs() -> &'static Mutex<Vec<String>> {
    static LOGS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    struct Capture;
    impl log::Log for Capture {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.level() <= log::Level::Info
        }
        fn log(&self, r: &log::Record) {
            if self.enabled(r.metadata()) {
                logs()
                    .lock()
                    .unwrap()
                    .push(format!("{} {}", r.level(), r.args()));
            }
        }
        fn flush(&self) {}
    }
    static INSTALL: OnceLock<()> = OnceLock::new();
    INSTALL.get_or_init(|| {
        let _ = log::set_boxed_logger(Box::new(Capture));
        log::set_max_level(log::LevelFilter::Info);
    });
    LOGS.get_or_init(|| Mutex::new(Vec::new()))
}

fn log_lines_with(needles: &[&str]) -> Vec<String> {
    logs()
        .lock()
        .unwrap()
        .iter()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .cloned()
        .collect()
}

fn ev(i: u64) -> Event {
    Event {
        app: "birds".into(),
        camera: "gate".into(),
        start_unix_ms: 1_800_000_000_000 + 1_000 * i,
        end_unix_ms: 1_800_000_000_000 + 1_000 * i + 400,
        start_frame: 10 * i,
        end_frame: 10 * i + 4,
        peak_score: 0.75,
        samples: 3,
    }
}

fn id_of(i: u64) -> String {
    let e = ev(i);
    mainstream::daemon::events::event_id(&e.camera, &e.app, e.start_unix_ms, e.start_frame)
}

fn end_of(log: &EventLog) -> End {
    End {
        inode: log.inode(),
        bytes: log.bytes(),
        records: log.records(),
    }
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// The ids in `payloads`, in arrival order.
fn ids(payloads: &[(Instant, String)]) -> Vec<String> {
    payloads
        .iter()
        .map(|(_, p)| {
            let v: serde_json::Value = serde_json::from_str(p).unwrap();
            v["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn events_logged_while_the_broker_is_down_all_arrive_in_order_when_it_returns() {
    logs(); // capture from the start
    let mut broker = Broker::start("outage", false);
    let sub = Sub::start(&broker, "sub-outage", &["ms-outage/#"]);
    let dir = scratch_dir("ms-mqtt", "outage");
    let (mut log, _) = EventLog::open(&dir.join("events.log")).unwrap();
    let cfg = broker.config("outage");
    let out = Output::start(&cfg, &dir, end_of(&log), None).unwrap();
    wait_for("the first connection", Duration::from_secs(10), || {
        out.status().connected
    });
    let topic = "ms-outage/gate/birds/event";
    let n = 100u64;
    let mut appended_at = HashMap::new();
    let mut append = |log: &mut EventLog, i: u64| {
        log.append(&ev(i)).unwrap();
        out.appended(end_of(log));
        appended_at.insert(id_of(i), Instant::now());
    };
    // Broker up: one event every 20 ms.
    for i in 0..n {
        append(&mut log, i);
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for("the first events", Duration::from_secs(10), || {
        sub.on(topic).len() >= n as usize
    });
    // Broker down while N more happen.
    broker.stop();
    for i in n..2 * n {
        append(&mut log, i);
        std::thread::sleep(Duration::from_millis(10));
    }
    wait_for("the backlog in the status", Duration::from_secs(5), || {
        out.status().backlog == n
    });
    assert!(!out.status().connected);
    broker.resume();
    // And N more while it comes back.
    for i in 2 * n..3 * n {
        append(&mut log, i);
        std::thread::sleep(Duration::from_millis(10));
    }
    wait_for("every event", Duration::from_secs(60), || {
        let got: std::collections::HashSet<String> = ids(&sub.on(topic)).into_iter().collect();
        (0..3 * n).all(|i| got.contains(&id_of(i)))
    });
    std::thread::sleep(Duration::from_millis(300));
    let got = sub.on(topic);
    let arrived = ids(&got);
    let mut first: Vec<u64> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let index: HashMap<String, u64> = (0..3 * n).map(|i| (id_of(i), i)).collect();
    for id in &arrived {
        if seen.insert(id.clone()) {
            first.push(index[id]);
        }
    }
    let produced = 3 * n;
    let delivered = seen.len() as u64;
    let duplicated = arrived.len() as u64 - delivered;
    let lost = produced - delivered;
    // Latency of the events sent while the broker was up: appended to the
    // log (durable) until the subscriber has it.
    let mut lat: Vec<f64> = got
        .iter()
        .zip(&arrived)
        .filter(|(_, id)| index[*id] < n)
        .map(|((t, _), id)| t.duration_since(appended_at[id]).as_secs_f64() * 1000.0)
        .collect();
    lat.sort_by(f64::total_cmp);
    eprintln!(
        "outage: produced {produced}, delivered {delivered}, duplicated {duplicated}, lost {lost}; \
         event-to-subscriber latency (broker up, {} events) median {:.1} ms, p99 {:.1} ms",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    assert_eq!(lost, 0);
    assert!(
        first.windows(2).all(|w| w[0] < w[1]),
        "events arrived out of order: {first:?}"
    );
    // Duplicates only of events in flight when the broker went away.
    assert!(duplicated <= 32, "{duplicated} duplicates");
    wait_for("an empty backlog", Duration::from_secs(5), || {
        out.status().backlog == 0
    });
    assert_eq!(out.status().delivered, 3 * n);
    // The payload is the service's stdout line, id included.
    let v: serde_json::Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(v["type"], "event");
    assert_eq!(v["start_frame"], 0);
    assert_eq!(v["id"], id_of(0));
    // Availability: retained "online", and the will after a stop is "offline".
    assert_eq!(sub.on("ms-outage/status").last().unwrap().1, "online");
    out.stop(Duration::from_secs(2), &dir);
    wait_for("offline", Duration::from_secs(5), || {
        sub.on("ms-outage/status").last().unwrap().1 == "offline"
    });
}

#[test]
fn a_wrong_password_is_one_log_line_and_retries_until_it_is_fixed() {
    logs(); // capture from the start
    let broker = Broker::start("password", false);
    let sub = Sub::start(&broker, "sub-password", &["ms-password/#"]);
    let dir = scratch_dir("ms-mqtt", "password");
    let (mut log, _) = EventLog::open(&dir.join("events.log")).unwrap();
    let cfg = broker.config("password");
    let pw = cfg.password_file.clone().unwrap();
    std::fs::write(&pw, "wrong\n").unwrap();
    let out = Output::start(&cfg, &dir, end_of(&log), None).unwrap();
    for i in 0..5 {
        log.append(&ev(i)).unwrap();
        out.appended(end_of(&log));
    }
    wait_for("three attempts", Duration::from_secs(15), || {
        out.status().attempts >= 3
    });
    let port = broker.port.to_string();
    let refused = log_lines_with(&["refused", &port]);
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert!(refused[0].starts_with("WARN"), "{refused:?}");
    let st = out.status();
    assert!(!st.connected && st.backlog == 5, "{st:?}");
    assert!(st.last_error.contains("password_file"), "{st:?}");
    // Fixed: the next attempt connects and delivers.
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    wait_for("delivery", Duration::from_secs(20), || {
        sub.on("ms-password/gate/birds/event").len() == 5
    });
    assert_eq!(log_lines_with(&["connected to", &port, "again"]).len(), 1);
    out.stop(Duration::from_secs(2), &dir);
}

#[test]
fn events_go_over_tls_and_an_unknown_ca_is_one_log_line() {
    logs(); // capture from the start
    let broker = Broker::start("tls", true);
    let sub = Sub::start(&broker, "sub-tls", &["ms-tls/#", "ms-tls-bad/#"]);
    let tls_port = broker.tls_port.unwrap();
    // The right CA.
    let dir = scratch_dir("ms-mqtt", "tls");
    let (mut log, _) = EventLog::open(&dir.join("events.log")).unwrap();
    let mut cfg = broker.config("tls");
    cfg.port = tls_port;
    cfg.tls_ca_file = Some(broker.dir.join("ca.crt"));
    let out = Output::start(&cfg, &dir, end_of(&log), None).unwrap();
    log.append(&ev(1)).unwrap();
    out.appended(end_of(&log));
    wait_for("an event over TLS", Duration::from_secs(10), || {
        sub.on("ms-tls/gate/birds/event").len() == 1
    });
    out.stop(Duration::from_secs(2), &dir);
    // A CA that did not sign the broker's certificate.
    make_ca(&broker.dir, "other");
    let dir = scratch_dir("ms-mqtt", "tls-bad");
    let (mut log, _) = EventLog::open(&dir.join("events.log")).unwrap();
    let mut cfg = broker.config("tls-bad");
    cfg.port = tls_port;
    cfg.tls_ca_file = Some(broker.dir.join("other.crt"));
    let out = Output::start(&cfg, &dir, end_of(&log), None).unwrap();
    log.append(&ev(2)).unwrap();
    out.appended(end_of(&log));
    wait_for("three attempts", Duration::from_secs(15), || {
        out.status().attempts >= 3
    });
    let port = tls_port.to_string();
    let failed = log_lines_with(&["TLS with", &port]);
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert!(failed[0].contains("other.crt"), "{failed:?}");
    assert_eq!(out.status().backlog, 1);
    assert!(sub.on("ms-tls-bad/gate/birds/event").is_empty());
    out.stop(Duration::from_secs(2), &dir);
}

// ---- the real binary on the demo clip ----

/// A scratch directory with the demo clip (fast) and `apps`, publishing to
/// `broker` as client `id` under topic prefix `id`.
fn service_dir(name: &str, broker: &Broker, id: &str, apps: &[&str]) -> PathBuf {
    let dir = scratch_dir("ms-mqtt-svc", name);
    let r = root();
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[device]\nbudget_cores = 1.0\nstate_dir = \"state\"\nthreads = 1\nbase = \"{r}/models/mobilenet_v2/manifest.toml\"\n\n\
             [[camera]]\nname = \"campus\"\nsource = \"{r}/models/demo/demo.mjpeg\"\nfps = 10\npace = \"fast\"\n\n\
             [output.mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"{id}\"\nusername = \"{USER}\"\n\
             password_file = \"{pw}\"\ntopic_prefix = \"{id}\"\n",
            r = r.display(),
            port = broker.port,
            pw = broker.password_file().display(),
        ),
    )
    .unwrap();
    for app in apps {
        std::fs::write(
            dir.join("apps.d").join(format!("{app}.toml")),
            format!(
                "camera = \"campus\"\npackage = \"{}/models/apps/{app}\"\nvoting = 2\n",
                r.display()
            ),
        )
        .unwrap();
    }
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::copy(shared_profile(), dir.join("state/profile.bin")).unwrap();
    dir
}

struct Svc {
    child: Child,
    stdout: Arc<Mutex<Vec<(Instant, String)>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn start_service(dir: &Path) -> Svc {
    let mut child = Command::new(bin())
        .arg("run")
        .arg("--config")
        .arg(dir.join("config.toml"))
        .current_dir(dir)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .env("MAINSTREAM_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let o = Arc::clone(&stdout);
    let so = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(so).lines().map_while(|l| l.ok()) {
            o.lock().unwrap().push((Instant::now(), l));
        }
    });
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let e = Arc::clone(&stderr);
    let se = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(se).lines().map_while(|l| l.ok()) {
            e.lock().unwrap().push(l);
        }
    });
    Svc {
        child,
        stdout,
        stderr,
    }
}

impl Svc {
    fn wait(&mut self, limit: Duration) -> i32 {
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return s.code().unwrap_or(-1);
            }
            if t0.elapsed() > limit {
                let _ = self.child.kill();
                panic!("did not exit in {limit:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    fn lines_of(&self, ty: &str) -> Vec<(Instant, serde_json::Value, String)> {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(t, l)| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                (v["type"] == ty).then(|| (*t, v, l.clone()))
            })
            .collect()
    }
}

impl Drop for Svc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every event id in the state directory's event log.
fn logged_ids(dir: &Path) -> Vec<String> {
    let (events, _) =
        mainstream::daemon::eventlog::tail(&dir.join("state/events.log"), 1_000_000).unwrap();
    events
        .iter()
        .map(|e| {
            mainstream::daemon::events::event_id(&e.camera, &e.app, e.start_unix_ms, e.start_frame)
        })
        .collect()
}

#[test]
fn the_service_publishes_each_event_as_its_stdout_line_with_discovery_and_availability() {
    let broker = Broker::start("service", false);
    let id = "ms-e2e";
    let sub = Sub::start(&broker, "sub-e2e", &["ms-e2e/#", "homeassistant/#"]);
    let dir = service_dir("e2e", &broker, id, &["birds", "vehicles"]);
    let mut svc = start_service(&dir);
    assert_eq!(svc.wait(Duration::from_secs(600)), 0, "{}", svc.log());
    let log = svc.log();
    assert!(log.contains("mqtt: connected to 127.0.0.1"), "{log}");
    let ends = svc.lines_of("event");
    let starts = svc.lines_of("event_start");
    assert!(!ends.is_empty(), "no events:\n{log}");
    wait_for("every event", Duration::from_secs(10), || {
        sub.with_suffix("/event").len() >= ends.len()
    });
    // Each event on PREFIX/CAMERA/APP/event with its stdout line as payload.
    let mut by_topic: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, t, p) in sub.lines.lock().unwrap().iter() {
        by_topic.entry(t.clone()).or_default().push(p.clone());
    }
    let mut lat = Vec::new();
    for (t, v, line) in &ends {
        let topic = format!("ms-e2e/campus/{}/event", v["app"].as_str().unwrap());
        assert!(
            by_topic.get(&topic).is_some_and(|ps| ps.contains(line)),
            "{line} not on {topic}: {by_topic:#?}"
        );
        let got = sub
            .on(&topic)
            .into_iter()
            .find(|(_, p)| p == line)
            .unwrap()
            .0;
        lat.push(got.saturating_duration_since(*t).as_secs_f64() * 1000.0);
    }
    for (_, v, line) in &starts {
        let topic = format!("ms-e2e/campus/{}/event_start", v["app"].as_str().unwrap());
        assert!(
            by_topic.get(&topic).is_some_and(|ps| ps.contains(line)),
            "{line} not on {topic}"
        );
    }
    lat.sort_by(f64::total_cmp);
    eprintln!(
        "service: {} events; stdout-to-subscriber latency median {:.1} ms, p99 {:.1} ms",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    // Home Assistant discovery: one binary sensor per app and camera.
    for app in ["birds", "vehicles"] {
        let t = format!("homeassistant/binary_sensor/ms-e2e/campus_{app}/config");
        let cfg = by_topic.get(&t).unwrap_or_else(|| panic!("no {t}"));
        let v: serde_json::Value = serde_json::from_str(&cfg[0]).unwrap();
        assert_eq!(v["state_topic"], format!("ms-e2e/campus/{app}/state"));
        assert_eq!(v["availability_topic"], "ms-e2e/status");
    }
    // Sensors went on with events and are off at the end.
    let state = by_topic
        .get("ms-e2e/campus/birds/state")
        .cloned()
        .unwrap_or_default();
    assert_eq!(state.last().map(String::as_str), Some("OFF"), "{state:?}");
    let status = &by_topic["ms-e2e/status"];
    assert_eq!(status.first().map(String::as_str), Some("online"));
    assert_eq!(status.last().map(String::as_str), Some("offline"));
    let st = status_json(&dir);
    assert_eq!(st["mqtt"]["backlog"], 0, "{st}");
    assert_eq!(st["mqtt"]["delivered"], ends.len(), "{st}");
}

#[test]
fn a_service_killed_during_delivery_resumes_from_its_cursor() {
    let mut broker = Broker::start("sigkill", false);
    let sub = Sub::start(&broker, "sub-kill", &["ms-kill/#"]);
    let dir = service_dir("kill", &broker, "ms-kill", &["birds", "vehicles"]);
    // 1. Broker down: the clip's events wait in the log.
    broker.stop();
    let mut svc = start_service(&dir);
    assert_eq!(svc.wait(Duration::from_secs(600)), 0, "{}", svc.log());
    let backlog = logged_ids(&dir);
    assert!(!backlog.is_empty());
    let st = status_json(&dir);
    assert_eq!(st["mqtt"]["backlog"], backlog.len(), "{st}");
    assert!(
        svc.log().contains("cannot reach the broker"),
        "{}",
        svc.log()
    );
    // 2. Broker back; SIGKILL while it delivers (once the first PUBACK has
    //    had time to reach the cursor file).
    broker.resume();
    let mut svc = start_service(&dir);
    wait_for("the first delivery", Duration::from_secs(120), || {
        !sub.with_suffix("/event").is_empty()
    });
    std::thread::sleep(Duration::from_millis(400));
    svc.child.kill().unwrap();
    svc.child.wait().unwrap();
    let before_restart = sub.with_suffix("/event").len();
    let cursor = mainstream::daemon::output::cursor::load(&dir.join("state"))
        .unwrap()
        .expect("a cursor");
    assert!(
        cursor.index >= 1,
        "nothing acknowledged was saved: {cursor:?}"
    );
    // 3. Restarted: everything in the log arrives, nothing before the cursor again.
    let mut svc = start_service(&dir);
    assert_eq!(svc.wait(Duration::from_secs(600)), 0, "{}", svc.log());
    let all = logged_ids(&dir);
    let event_ids = |sub: &Sub| -> Vec<String> {
        sub.with_suffix("/event")
            .into_iter()
            .map(|(_, _, p)| {
                serde_json::from_str::<serde_json::Value>(&p).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    wait_for("every logged event", Duration::from_secs(20), || {
        let got: std::collections::HashSet<String> = event_ids(&sub).into_iter().collect();
        all.iter().all(|id| got.contains(id))
    });
    let arrived = event_ids(&sub);
    let unique: std::collections::HashSet<&String> = arrived.iter().collect();
    let duplicated = arrived.len() - unique.len();
    eprintln!(
        "sigkill: logged {}, delivered {}, duplicated {duplicated}, lost {}; {before_restart} delivered before the kill, cursor at record {}",
        all.len(),
        unique.len(),
        all.len() - unique.len(),
        cursor.index
    );
    assert_eq!(unique.len(), all.len());
    let acked: std::collections::HashSet<&String> =
        all.iter().take(cursor.index as usize).collect();
    let again: Vec<&String> = arrived[before_restart..]
        .iter()
        .filter(|id| acked.contains(id))
        .collect();
    assert!(
        again.is_empty(),
        "events before the cursor were delivered again: {again:?}"
    );
}

/// Sends `sig` (`STOP`, `CONT`) to the broker process.
fn signal_broker(b: &Broker, sig: &str) {
    let pid = b.child.as_ref().expect("broker running").id().to_string();
    run(Command::new("kill").args([&format!("-{sig}"), &pid]));
}

/// The event ids of the `/event` messages `sub` received, in arrival order.
fn event_ids(sub: &Sub) -> Vec<String> {
    sub.with_suffix("/event")
        .into_iter()
        .map(|(_, _, p)| {
            serde_json::from_str::<serde_json::Value>(&p).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn a_service_killed_with_publishes_unacknowledged_delivers_every_event_in_order_after_restart() {
    let broker = Broker::start("unacked", false);
    let sub = Sub::start(&broker, "sub-unacked", &["ms-unacked/+/+/event"]);
    let dir = service_dir("unacked", &broker, "ms-unacked", &["birds", "vehicles"]);
    // The clip in a loop, so that events keep coming while the broker is
    // frozen.
    let cfg = dir.join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("pace = \"fast\"\n", "pace = \"fast\"\nloop = true\n"),
    )
    .unwrap();
    let mut svc = start_service(&dir);
    wait_for("two delivered events", Duration::from_secs(300), || {
        assert!(
            svc.child.try_wait().unwrap().is_none(),
            "the service ended:\n{}",
            svc.log()
        );
        sub.with_suffix("/event").len() >= 2
    });
    // 1. Broker frozen (SIGSTOP): the service's connection stays up, its
    //    PUBLISHes go into the socket and no PUBACK comes back.
    signal_broker(&broker, "STOP");
    let at_stop = svc.lines_of("event").len();
    wait_for(
        "three events while the broker is frozen",
        Duration::from_secs(300),
        || svc.lines_of("event").len() >= at_stop + 3,
    );
    // Let the publisher send them (it reads the log every 20 ms).
    std::thread::sleep(Duration::from_millis(500));
    // 2. SIGKILL inside the unacknowledged window.
    svc.child.kill().unwrap();
    svc.child.wait().unwrap();
    let logged_at_kill = logged_ids(&dir).len();
    let cursor = mainstream::daemon::output::cursor::load(&dir.join("state"))
        .unwrap()
        .expect("a cursor");
    assert!(
        (cursor.index as usize) < logged_at_kill,
        "every event was acknowledged before the kill: cursor {cursor:?}, {logged_at_kill} logged"
    );
    // 3. The broker thaws (and may deliver what the dead connection sent),
    //    the service restarts (the clip once more, no loop) and resumes from
    //    its cursor.
    signal_broker(&broker, "CONT");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("loop = true\n", "")).unwrap();
    let mut svc = start_service(&dir);
    assert_eq!(svc.wait(Duration::from_secs(600)), 0, "{}", svc.log());
    let all = logged_ids(&dir);
    wait_for("every logged event", Duration::from_secs(30), || {
        let got: std::collections::HashSet<String> = event_ids(&sub).into_iter().collect();
        all.iter().all(|id| got.contains(id))
    });
    std::thread::sleep(Duration::from_millis(300));
    let arrived = event_ids(&sub);
    let position: HashMap<&String, usize> = all.iter().enumerate().map(|(i, id)| (id, i)).collect();
    let mut first = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for id in &arrived {
        let i = *position
            .get(id)
            .unwrap_or_else(|| panic!("{id} arrived but is not in the log"));
        if seen.insert(id) {
            first.push(i);
        }
    }
    let (produced, delivered) = (all.len(), seen.len());
    let duplicated = arrived.len() - delivered;
    eprintln!(
        "unacked sigkill: produced {produced}, delivered {delivered}, duplicated {duplicated}, lost {}; \
         {logged_at_kill} logged at the kill, cursor at record {} (so {} unacknowledged)",
        produced - delivered,
        cursor.index,
        logged_at_kill - cursor.index as usize
    );
    assert_eq!(delivered, produced, "events lost");
    assert!(
        first.windows(2).all(|w| w[0] < w[1]),
        "first arrivals out of log order: {first:?}"
    );
}

/// The frames of an MJPEG file, split at each EOI that a SOI follows (the
/// demo clip's frames are plain baseline JPEGs without thumbnails).
fn mjpeg_frames(path: &Path) -> Vec<Vec<u8>> {
    let b = std::fs::read(path).unwrap();
    let mut frames = Vec::new();
    let mut start = 0;
    let mut i = 2;
    while i + 1 < b.len() {
        if b[i] == 0xFF
            && b[i + 1] == 0xD9
            && (i + 2 == b.len() || b[i + 2..].starts_with(&[0xFF, 0xD8]))
        {
            frames.push(b[start..i + 2].to_vec());
            start = i + 2;
            i += 4;
        } else {
            i += 1;
        }
    }
    assert_eq!(start, b.len(), "trailing bytes in {}", path.display());
    frames
}

/// One retained message on `topic`, as raw bytes.
fn retained(b: &Broker, topic: &str) -> Vec<u8> {
    let out = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &b.port.to_string()])
        .args([
            "-u", USER, "-P", PASSWORD, "-t", topic, "-C", "1", "-W", "10", "-N",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "no retained message on {topic}");
    out.stdout
}

#[test]
fn event_snapshots_are_the_opening_mjpeg_frames_named_in_the_events_trimmed_and_published() {
    let broker = Broker::start("snapshots", false);
    let sub = Sub::start(
        &broker,
        "sub-snapshots",
        &["ms-snap/+/+/event", "ms-snap/+/+/event_start"],
    );
    let dir = service_dir("snapshots", &broker, "ms-snap", &["birds", "vehicles"]);
    // voting = 1: the frame that confirms an event is its first one.
    for app in ["birds", "vehicles"] {
        let p = dir.join("apps.d").join(format!("{app}.toml"));
        let t = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, t.replace("voting = 2", "voting = 1")).unwrap();
    }
    let keep = 3;
    let cfg = dir.join("config.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[output.snapshots]\nkeep = {keep}\npublish = true\n"
    ));
    std::fs::write(&cfg, text).unwrap();
    let mut svc = start_service(&dir);
    assert_eq!(svc.wait(Duration::from_secs(600)), 0, "{}", svc.log());
    let frames = mjpeg_frames(&root().join("models/demo/demo.mjpeg"));
    let starts = svc.lines_of("event_start");
    let ends = svc.lines_of("event");
    let snapshot_dir = dir.join("state/snapshots/campus");
    let mut named: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for (_, v, line) in &starts {
        let (app, id) = (v["app"].as_str().unwrap(), v["id"].as_str().unwrap());
        let Some(shot) = v["snapshot"].as_str() else {
            continue;
        };
        // Named DIR/CAMERA/APP/ID.jpg, in the event_start line ...
        assert_eq!(
            Path::new(shot),
            snapshot_dir.join(app).join(format!("{id}.jpg")),
            "{line}"
        );
        // ... and in the event line of the same event.
        let end = ends
            .iter()
            .find(|(_, e, _)| e["id"] == v["id"])
            .unwrap_or_else(|| panic!("no event line for {line}"));
        assert_eq!(end.1["snapshot"], v["snapshot"], "{}", end.2);
        named
            .entry(app.to_owned())
            .or_default()
            .push((id.to_owned(), v["start_frame"].as_u64().unwrap()));
    }
    let taken: usize = named.values().map(Vec::len).sum();
    assert!(
        named.get("birds").is_some_and(|v| v.len() > keep),
        "too few birds snapshots to see the limit: {named:?}\n{}",
        svc.log()
    );
    // Trimmed to the newest `keep` per app, each byte for byte the frame
    // of the clip that opened its event.
    for (app, shots) in &named {
        let mut want: Vec<String> = shots
            .iter()
            .rev()
            .take(keep)
            .map(|(id, _)| format!("{id}.jpg"))
            .collect();
        want.sort();
        let mut have: Vec<String> = std::fs::read_dir(snapshot_dir.join(app))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        have.sort();
        assert_eq!(have, want, "{app}");
        for (id, frame) in shots.iter().rev().take(keep) {
            let jpeg = std::fs::read(snapshot_dir.join(app).join(format!("{id}.jpg"))).unwrap();
            assert!(
                jpeg == frames[*frame as usize],
                "{app} {id}: not frame {frame} of the clip ({} bytes vs {})",
                jpeg.len(),
                frames[*frame as usize].len()
            );
        }
    }
    let st = status_json(&dir);
    eprintln!(
        "snapshots: {} events, {taken} snapshots taken ({}), {} kept; status {}",
        starts.len(),
        named
            .iter()
            .map(|(a, v)| format!("{a} {}", v.len()))
            .collect::<Vec<_>>()
            .join(", "),
        named.values().map(|v| v.len().min(keep)).sum::<usize>(),
        st["snapshots"]
    );
    assert_eq!(st["snapshots"]["written"], taken, "{st}");
    assert_eq!(st["snapshots"]["failed"], 0, "{st}");
    let kept: usize = named.values().map(|v| v.len().min(keep)).sum();
    assert_eq!(st["snapshots"]["kept_files"], kept, "{st}");
    assert_eq!(st["snapshots"]["removed"], taken - kept, "{st}");
    // The MQTT event messages name the snapshot as the stdout line does
    // (when the file was still there as they went out).
    wait_for("every event", Duration::from_secs(10), || {
        sub.with_suffix("/event").len() >= ends.len()
    });
    let mut named_on_mqtt = 0;
    for (_, _, p) in sub.with_suffix("/event") {
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        if let Some(shot) = v["snapshot"].as_str() {
            let line = ends.iter().find(|(_, e, _)| e["id"] == v["id"]).unwrap();
            assert_eq!(line.1["snapshot"].as_str(), Some(shot));
            named_on_mqtt += 1;
        }
    }
    assert!(named_on_mqtt > 0, "no MQTT event named its snapshot");
    // The newest snapshot of each app is retained on PREFIX/CAMERA/APP/snapshot.
    for (app, shots) in &named {
        let (id, _) = shots.last().unwrap();
        let newest = std::fs::read(snapshot_dir.join(app).join(format!("{id}.jpg"))).unwrap();
        let got = retained(&broker, &format!("ms-snap/campus/{app}/snapshot"));
        assert!(got == newest, "{app}: retained snapshot is not {id}.jpg");
    }
}

/// `frame` (a JPEG of the demo clip's size) decoded to packed RGB by the
/// service's own decoder, at full size.
fn decode_rgb(jpeg: &[u8], w: u32, h: u32) -> Vec<u8> {
    use mainstream::frame::PixelFormat;
    use mainstream::preprocess::{Fit, InputSpec, Preprocessor};
    let spec = InputSpec {
        width: w,
        height: h,
        ..InputSpec::IMAGENET_224
    };
    let mut p = Preprocessor::new(w, h, PixelFormat::Mjpeg, &spec, Fit::Stretch).unwrap();
    let mut rgb = vec![0u8; 3 * (w * h) as usize];
    p.run_rgb8(jpeg, &mut rgb).unwrap();
    rgb
}

/// The demo clip as a 4:4:4 YUV4MPEG2 file (BT.601 limited range), and
/// each frame's RGB.
fn demo_as_y4m(path: &Path) -> Vec<Vec<u8>> {
    use std::io::Write;
    let (w, h) = (384u32, 288u32);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C444").unwrap();
    let mut rgbs = Vec::new();
    for jpeg in mjpeg_frames(&root().join("models/demo/demo.mjpeg")) {
        let rgb = decode_rgb(&jpeg, w, h);
        let n = (w * h) as usize;
        let (mut y, mut u, mut v) = (vec![0u8; n], vec![0u8; n], vec![0u8; n]);
        for (i, px) in rgb.chunks_exact(3).enumerate() {
            let (r, g, b) = (px[0] as f64, px[1] as f64, px[2] as f64);
            y[i] = (16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0).round() as u8;
            u[i] = (128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0).round() as u8;
            v[i] = (128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0).round() as u8;
        }
        out.write_all(b"FRAME\n").unwrap();
        for plane in [&y, &u, &v] {
            out.write_all(plane).unwrap();
        }
        rgbs.push(rgb);
    }
    out.flush().unwrap();
    rgbs
}

#[test]
fn event_snapshots_of_a_y4m_camera_are_encoded_jpegs_of_the_opening_frames() {
    let broker = Broker::start("snapshots-y4m", false);
    let dir = service_dir(
        "snapshots-y4m",
        &broker,
        "ms-snap-y4m",
        &["birds", "vehicles"],
    );
    let clip = dir.join("demo.y4m");
    let rgbs = demo_as_y4m(&clip);
    for app in ["birds", "vehicles"] {
        let p = dir.join("apps.d").join(format!("{app}.toml"));
        let t = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, t.replace("voting = 2", "voting = 1")).unwrap();
    }
    let cfg = dir.join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        &format!("{}/models/demo/demo.mjpeg", root().display()),
        &clip.display().to_string(),
    );
    std::fs::write(&cfg, format!("{text}\n[output.snapshots]\n")).unwrap();
    let mut svc = start_service(&dir);
    assert_eq!(svc.wait(Duration::from_secs(600)), 0, "{}", svc.log());
    let starts = svc.lines_of("event_start");
    let mut checked = 0;
    for (_, v, line) in &starts {
        let shot = v["snapshot"]
            .as_str()
            .unwrap_or_else(|| panic!("no snapshot in {line}"));
        let jpeg = std::fs::read(shot).unwrap();
        let info = mainstream::camera::jpeg::inspect(&jpeg).unwrap();
        assert_eq!((info.width, info.height), (384, 288), "{shot}");
        // Encoded from the frame that opened the event: close to it (YUV
        // 4:2:2 from the camera, JPEG 4:2:0 at quality 85) and far from
        // other frames of the clip.
        let got = decode_rgb(&jpeg, 384, 288);
        let mad = |a: &[u8], b: &[u8]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (*x as f64 - *y as f64).abs())
                .sum::<f64>()
                / a.len() as f64
        };
        let f = v["start_frame"].as_u64().unwrap() as usize;
        let here = mad(&got, &rgbs[f]);
        let best_other = (0..rgbs.len())
            .filter(|&o| o.abs_diff(f) > 5)
            .map(|o| mad(&got, &rgbs[o]))
            .fold(f64::INFINITY, f64::min);
        eprintln!("y4m snapshot of frame {f}: mean abs difference {here:.2}, nearest other frame {best_other:.2}");
        assert!(here < 6.0, "{shot}: {here:.2} from frame {f}");
        assert!(here < best_other, "{shot}: closer to another frame");
        checked += 1;
    }
    assert!(checked > 0, "no events:\n{}", svc.log());
    let st = status_json(&dir);
    assert_eq!(st["snapshots"]["written"], checked, "{st}");
    let _ = std::fs::remove_file(&clip); // 100 MB
}
