//! The MQTT publisher thread: events from the log to the broker, at least
//! once and in order.
//!
//! One connection at a time, each a fresh `rumqttc` client with a clean
//! session: on connect it publishes `online` (retained; the last will says
//! `offline`), the Home Assistant discovery of every app and the state of
//! every sensor, then the events after the cursor, at most [`WINDOW`] of them
//! unacknowledged. Each PUBACK marks its event delivered; the cursor moves
//! over the acknowledged prefix and is saved at most every
//! [`CURSOR_SAVE_EVERY`] (and when the thread stops). Any connection error
//! drops the client: the events in flight are published again from the
//! cursor on the next connection (duplicates carry the same id), after a
//! backoff of 1 s doubling to [`MAX_BACKOFF`]. A failure is logged once per
//! distinct cause, its recovery once.
//!
//! `event_start` and `state` messages are live notices from the service, not
//! log records: published once connected, never queued across an outage
//! (the `event` message, which is, carries everything they do). A snapshot
//! (`snapshot`, retained) written during an outage is published when the
//! connection comes back, the latest one per app.

use super::cursor::{self, Cursor};
use super::payload;
use super::tail::{LogEnd, Tail};
use super::{MqttStatus, Notice};
use crate::config::output::Mqtt;
use crate::error::{Result, ResultExt};
use rumqttc::{
    Client, ConnectReturnCode, ConnectionError, Event, LastWill, MqttOptions, Outgoing, Packet,
    QoS, RecvTimeoutError, TlsConfiguration, Transport,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError as ChanTimeout, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most events published and not yet acknowledged.
const WINDOW: usize = 32;
/// Longest wait between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Most often the cursor is saved (each save is an fsync'd rename).
const CURSOR_SAVE_EVERY: Duration = Duration::from_millis(200);
/// How long one poll of the connection waits for network activity; new
/// events in the log are noticed at least this often.
const POLL: Duration = Duration::from_millis(20);
/// Requests queued for the connection: the window, and discovery and state
/// for every app the configuration allows.
const REQUESTS: usize = WINDOW + 2 * crate::config::MAX_APPS + 64;
/// At a stop, how long events already in the log may take to go out
/// before `offline` is published and the connection closed (the events
/// that close at the stop, a replayed clip's last ones, are among them; on
/// a loaded box their acknowledgements take a while).
pub const STOP_FLUSH: Duration = Duration::from_secs(2);
/// Largest snapshot published (a bigger JPEG stays on disk only).
const MAX_SNAPSHOT_PUBLISH: usize = 4 << 20;
/// How long a connection attempt may take (TCP, TLS, CONNACK).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a session ended without an error.
enum Ended {
    Stop,
}

/// One event published and not yet acknowledged.
struct InFlight {
    pkid: Option<u16>,
    acked: bool,
    next: Cursor,
}

/// What one `try_publish` was for, in the order they go out (rumqttc
/// reports each outgoing publish's packet id in that order).
#[derive(Clone, Copy)]
enum Sent {
    /// The event at this sequence number in the window.
    Event(u64),
    Other,
}

/// The client of the current connection with the record of what was sent.
struct Link<'a> {
    client: &'a Client,
    sent: &'a mut VecDeque<Sent>,
}

impl Link<'_> {
    /// Publishes a message that is not an event record (QoS 1).
    fn other(&mut self, topic: String, retain: bool, body: impl Into<Vec<u8>>) {
        if self
            .client
            .try_publish(topic, QoS::AtLeastOnce, retain, body)
            .is_ok()
        {
            self.sent.push_back(Sent::Other);
        }
    }
}

/// The publisher thread's state.
pub(crate) struct Publisher {
    cfg: Mqtt,
    state_dir: PathBuf,
    end: Arc<LogEnd>,
    rx: Receiver<Notice>,
    status: Arc<Mutex<MqttStatus>>,
    tail: Tail,
    /// The acknowledged position.
    acked: Cursor,
    saved: Cursor,
    /// Sensors (camera, app) and whether each has an event open.
    sensors: BTreeMap<(String, String), bool>,
    /// The last failure logged (so that each cause is logged once).
    last_error: Option<String>,
    stopping: bool,
    /// The snapshot directory, if snapshots are kept.
    snapshots: Option<PathBuf>,
    /// Snapshots written while not connected: the latest per sensor.
    pending_snapshots: BTreeMap<(String, String), PathBuf>,
}

fn qos1() -> QoS {
    QoS::AtLeastOnce
}

/// This binary links its C library statically (every appliance build), so
/// it looks host names up in /etc/hosts and DNS only. musl has nothing else;
/// static glibc has those two built in, and any other name service
/// `/etc/nsswitch.conf` lists (mDNS, systemd-resolved's nss-resolve, LDAP) is
/// a shared module it loads from the board at run time: skipped when absent,
/// and supported only with the very glibc version the binary was linked with.
const STATIC_LIBC: bool = cfg!(target_feature = "crt-static");

/// What to add to the I/O error `io` of a connection to `host` when the build
/// cannot use every name service of the board (see [`STATIC_LIBC`]). An
/// address is never looked up, and an error the kernel reported (refused,
/// unreachable, reset) came after the name was found: neither needs the note.
fn lookup_note(host: &str, io: &std::io::Error, static_libc: bool) -> &'static str {
    if static_libc && io.raw_os_error().is_none() && host.parse::<std::net::IpAddr>().is_err() {
        " (this static build can rely only on /etc/hosts and DNS to look a host \
         name up: for a name that mDNS or another name service knows, give the \
         broker's address or add the name to /etc/hosts)"
    } else {
        ""
    }
}

/// The message of a connection error, in the operator's terms.
fn explain(cfg: &Mqtt, e: &ConnectionError) -> String {
    let at = format!("{}:{}", cfg.host, cfg.port);
    match e {
        ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword) => format!(
            "the broker at {at} refused user name {:?} with the password in {} (check username and password_file)",
            cfg.username.as_deref().unwrap_or(""),
            cfg.password_file
                .as_ref()
                .map_or("(none)".into(), |p| p.display().to_string())
        ),
        ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized) => format!(
            "the broker at {at} refused client {:?}{}: not authorised (check username, password_file and the broker's ACL)",
            cfg.client_id,
            cfg.username
                .as_ref()
                .map_or(String::new(), |u| format!(" as user {u:?}"))
        ),
        ConnectionError::ConnectionRefused(code) => {
            format!("the broker at {at} refused the connection: {code:?}")
        }
        ConnectionError::Tls(t) => format!(
            "TLS with {at} failed: {t} (the broker's certificate must be signed by a CA in {} and name {:?})",
            cfg.tls_ca_file
                .as_ref()
                .map_or("(none)".into(), |p| p.display().to_string()),
            cfg.host
        ),
        ConnectionError::Io(io) => format!(
            "cannot reach the broker at {at}: {io}{}",
            lookup_note(&cfg.host, io, STATIC_LIBC)
        ),
        ConnectionError::NetworkTimeout => format!("no answer from the broker at {at}"),
        other => format!("connection to the broker at {at} lost: {other}"),
    }
}

impl Publisher {
    /// A publisher reading the log of `state_dir` from the saved cursor.
    pub(crate) fn new(
        cfg: Mqtt,
        state_dir: PathBuf,
        end: Arc<LogEnd>,
        rx: Receiver<Notice>,
        status: Arc<Mutex<MqttStatus>>,
        snapshots: Option<PathBuf>,
    ) -> Result<Publisher> {
        let saved = cursor::load(&state_dir)?;
        let tail = Tail::open(&super::tail::log_path(&state_dir), saved, end.get())?;
        let acked = tail.cursor();
        if saved.is_none() {
            // Delivery starts here: remember it, so that events logged while
            // the broker is unreachable from the very first boot are kept.
            cursor::save(&state_dir, &acked)
                .with_msg(|| "saving the MQTT delivery cursor".to_owned())?;
        }
        Ok(Publisher {
            cfg,
            state_dir,
            end,
            rx,
            status,
            tail,
            acked,
            saved: acked,
            sensors: BTreeMap::new(),
            last_error: None,
            stopping: false,
            snapshots,
            pending_snapshots: BTreeMap::new(),
        })
    }

    /// Runs until told to stop.
    pub(crate) fn run(mut self) {
        let mut backoff = Duration::from_secs(1);
        self.update_status(|s| s.attempts = 0);
        while !self.stopping {
            self.update_status(|s| s.attempts += 1);
            let t0 = Instant::now();
            match self.session() {
                Ok(Ended::Stop) => break,
                Err(msg) => {
                    self.set_connected(false);
                    if self.last_error.as_deref() != Some(msg.as_str()) {
                        log::warn!(
                            "mqtt: {msg}; events wait in the event log (retrying with backoff up to {} s)",
                            MAX_BACKOFF.as_secs()
                        );
                        self.last_error = Some(msg.clone());
                    } else {
                        log::debug!("mqtt: {msg}");
                    }
                    self.update_status(|s| s.last_error = msg);
                }
            }
            // A connection that lived a while was not a failed attempt.
            if t0.elapsed() > Duration::from_secs(30) {
                backoff = Duration::from_secs(1);
            }
            self.save_cursor();
            if !self.wait(backoff) {
                break;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        self.save_cursor();
        let b = self.tail.backlog(self.acked, self.end.get());
        self.update_status(|s| s.backlog = b);
        self.set_connected(false);
    }

    /// Waits `d`, handling notices; false when told to stop.
    fn wait(&mut self, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return !self.stopping;
            }
            let b = self.tail.backlog(self.acked, self.end.get());
            self.update_status(|s| s.backlog = b);
            match self.rx.recv_timeout(left.min(Duration::from_secs(1))) {
                Ok(n) => {
                    self.offline_notice(n);
                    if self.stopping {
                        return false;
                    }
                }
                Err(ChanTimeout::Timeout) => {}
                Err(ChanTimeout::Disconnected) => {
                    self.stopping = true;
                    return false;
                }
            }
        }
    }

    /// A notice while not connected: only the sensor states are kept.
    fn offline_notice(&mut self, n: Notice) {
        match n {
            Notice::Opened { camera, app, .. } => {
                self.sensors.insert((camera, app), true);
            }
            Notice::Closed { camera, app } => {
                self.sensors.insert((camera, app), false);
            }
            Notice::Snapshot { camera, app, path } => {
                self.pending_snapshots.insert((camera, app), path);
            }
            Notice::Sensors(list) => self.set_sensors(list, None),
            Notice::Stop => self.stopping = true,
        }
    }

    fn set_sensors(&mut self, list: Vec<(String, String)>, mut link: Option<&mut Link>) {
        let new: BTreeSet<(String, String)> = list.into_iter().collect();
        let gone: Vec<_> = self
            .sensors
            .keys()
            .filter(|k| !new.contains(*k))
            .cloned()
            .collect();
        for k in &gone {
            self.sensors.remove(k);
            if let (Some(l), Some(p)) = (link.as_deref_mut(), &self.cfg.discovery_prefix) {
                // An empty retained config removes the entity from Home Assistant.
                l.other(
                    payload::discovery_topic(&self.cfg, p, &k.0, &k.1),
                    true,
                    Vec::new(),
                );
            }
        }
        for k in new {
            if !self.sensors.contains_key(&k) {
                if let Some(l) = link.as_deref_mut() {
                    self.announce(l, &k.0, &k.1, false);
                }
                self.sensors.insert(k, false);
            }
        }
    }

    /// Discovery and state of one sensor.
    fn announce(&self, l: &mut Link, camera: &str, app: &str, on: bool) {
        if let Some(p) = &self.cfg.discovery_prefix {
            l.other(
                payload::discovery_topic(&self.cfg, p, camera, app),
                true,
                payload::discovery_body(&self.cfg, camera, app),
            );
        }
        l.other(
            payload::app_topic(&self.cfg, camera, app, "state"),
            true,
            if on { "ON" } else { "OFF" },
        );
    }

    fn options(&self) -> std::result::Result<MqttOptions, String> {
        let c = &self.cfg;
        let mut o = MqttOptions::new(c.client_id.clone(), c.host.clone(), c.port);
        o.set_keep_alive(Duration::from_secs(u64::from(c.keep_alive_s)));
        o.set_clean_session(true);
        o.set_inflight(WINDOW as u16 + 16);
        o.set_max_packet_size(64 * 1024, MAX_SNAPSHOT_PUBLISH + 4096);
        o.set_last_will(LastWill::new(
            payload::status_topic(c),
            "offline",
            qos1(),
            true,
        ));
        if let Some(user) = &c.username {
            let pass = match &c.password_file {
                Some(p) => std::fs::read_to_string(p)
                    .map_err(|e| {
                        format!("cannot read the MQTT password file {}: {e}", p.display())
                    })?
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned(),
                None => String::new(),
            };
            o.set_credentials(user.clone(), pass);
        }
        if let Some(ca) = &c.tls_ca_file {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::new(tls_config(ca)?),
            )));
        }
        Ok(o)
    }

    /// One connection, from connecting until it fails (`Err`, the reason)
    /// or the service stops.
    fn session(&mut self) -> std::result::Result<Ended, String> {
        let opts = self.options()?;
        let (client, mut conn) = Client::new(opts, REQUESTS);
        // Connecting: one long poll (a shorter one would restart the attempt).
        match conn.recv_timeout(CONNECT_TIMEOUT) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {}
            Ok(Ok(other)) => return Err(format!("unexpected first packet {other:?}")),
            Ok(Err(e)) => return Err(explain(&self.cfg, &e)),
            Err(_) => {
                return Err(format!(
                    "no answer from the broker at {}:{} within {} s",
                    self.cfg.host,
                    self.cfg.port,
                    CONNECT_TIMEOUT.as_secs()
                ))
            }
        }
        let end = self.end.get();
        let backlog = self.tail.backlog(self.acked, end);
        if self.last_error.take().is_some() {
            log::info!(
                "mqtt: connected to {}:{} again; delivering {backlog} waiting events",
                self.cfg.host,
                self.cfg.port
            );
        } else {
            log::info!(
                "mqtt: connected to {}:{} as {:?}; {backlog} events waiting",
                self.cfg.host,
                self.cfg.port,
                self.cfg.client_id
            );
        }
        self.set_connected(true);
        self.update_status(|s| s.last_error.clear());
        // Everything after the acknowledged position goes out again.
        self.tail
            .rewind(self.acked, end)
            .map_err(|e| format!("reading the event log: {}", e.chain()))?;
        let mut sent: VecDeque<Sent> = VecDeque::new();
        let mut link = Link {
            client: &client,
            sent: &mut sent,
        };
        link.other(payload::status_topic(&self.cfg), true, "online");
        for ((c, a), on) in &self.sensors {
            self.announce(&mut link, c, a, *on);
        }
        for ((c, a), path) in std::mem::take(&mut self.pending_snapshots) {
            self.snapshot(&mut link, &c, &a, &path);
        }
        let mut window: VecDeque<(u64, InFlight)> = VecDeque::new();
        let mut seq = 0u64;
        let mut last_save = Instant::now();
        let mut last_status = Instant::now();
        let mut stop_sent: Option<Instant> = None;
        let mut held: Option<u16> = None;
        let mut stop_at: Option<Instant> = None;
        let mut drained = false;
        loop {
            // Notices from the service.
            loop {
                match self.rx.try_recv() {
                    Ok(n) => self.live_notice(
                        n,
                        &mut Link {
                            client: &client,
                            sent: &mut sent,
                        },
                    ),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.stopping = true;
                        break;
                    }
                }
            }
            // Events from the log, while the window has room.
            if stop_sent.is_none() {
                let end = self.end.get();
                drained = false;
                while window.len() < WINDOW {
                    let rec = match self.tail.next(end) {
                        Ok(Some(r)) => r,
                        Ok(None) => {
                            drained = true;
                            break;
                        }
                        Err(e) => return Err(format!("reading the event log: {}", e.chain())),
                    };
                    let ev = &rec.event;
                    let body = payload::event_body(ev, self.snapshots.as_deref());
                    if client
                        .try_publish(
                            payload::app_topic(&self.cfg, &ev.camera, &ev.app, "event"),
                            qos1(),
                            false,
                            body,
                        )
                        .is_err()
                    {
                        // The request queue is full: read it again later.
                        let _ = self
                            .tail
                            .rewind(window.back().map_or(self.acked, |(_, f)| f.next), end);
                        break;
                    }
                    sent.push_back(Sent::Event(seq));
                    window.push_back((
                        seq,
                        InFlight {
                            pkid: None,
                            acked: false,
                            next: rec.next,
                        },
                    ));
                    seq += 1;
                }
            }
            // Stopping: the events already logged go out first (briefly).
            // `drained` is from the read just above, against the log's end
            // as it is now: the events that closed at the stop were appended
            // moments before the stop notice, and a `drained` from the
            // previous turn would not have seen them.
            if self.stopping && stop_at.is_none() {
                stop_at = Some(Instant::now());
            }
            let flushed = drained && window.is_empty();
            if stop_at.is_some_and(|t| flushed || t.elapsed() > STOP_FLUSH) && stop_sent.is_none() {
                let mut link = Link {
                    client: &client,
                    sent: &mut sent,
                };
                for ((c, a), on) in &self.sensors {
                    if *on {
                        link.other(payload::app_topic(&self.cfg, c, a, "state"), true, "OFF");
                    }
                }
                link.other(payload::status_topic(&self.cfg), true, "offline");
                let _ = client.try_disconnect();
                stop_sent = Some(Instant::now());
            }
            match conn.recv_timeout(POLL) {
                // A publish whose packet id was still in flight is held
                // (AwaitAck) and sent later under the same id (Publish).
                Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) if held == Some(pkid) => {
                    held = None;
                }
                Ok(Ok(Event::Outgoing(o @ (Outgoing::Publish(_) | Outgoing::AwaitAck(_))))) => {
                    let pkid = match o {
                        Outgoing::AwaitAck(p) => {
                            held = Some(p);
                            p
                        }
                        Outgoing::Publish(p) => p,
                        _ => 0,
                    };
                    if let Some(Sent::Event(s)) = sent.pop_front() {
                        if let Some((_, f)) = window.iter_mut().find(|(q, _)| *q == s) {
                            f.pkid = Some(pkid);
                        }
                    }
                }
                Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                    if let Some((_, f)) = window
                        .iter_mut()
                        .find(|(_, f)| f.pkid == Some(ack.pkid) && !f.acked)
                    {
                        f.acked = true;
                    }
                    let mut n = 0;
                    while window.front().is_some_and(|(_, f)| f.acked) {
                        let (_, f) = window.pop_front().expect("checked");
                        self.acked = f.next;
                        n += 1;
                    }
                    if n > 0 {
                        let b = self.tail.backlog(self.acked, self.end.get());
                        self.update_status(|s| {
                            s.delivered += n;
                            s.backlog = b;
                            s.last_delivered_unix_ms = crate::daemon::events::unix_ms_now();
                        });
                    }
                }
                Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) if stop_sent.is_some() => {
                    // Let the disconnect reach the socket.
                    let _ = conn.recv_timeout(Duration::from_millis(50));
                    return Ok(Ended::Stop);
                }
                Ok(Ok(Event::Incoming(Packet::Disconnect))) => {
                    return Err("the broker closed the connection".into())
                }
                Ok(Ok(_)) | Err(RecvTimeoutError::Timeout) => {}
                Ok(Err(e)) => {
                    if stop_sent.is_some() {
                        return Ok(Ended::Stop);
                    }
                    return Err(explain(&self.cfg, &e));
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(Ended::Stop),
            }
            if stop_sent.is_some_and(|t| t.elapsed() > Duration::from_millis(200)) {
                return Ok(Ended::Stop);
            }
            if last_save.elapsed() >= CURSOR_SAVE_EVERY {
                last_save = Instant::now();
                self.save_cursor();
            }
            if last_status.elapsed() >= Duration::from_secs(1) {
                last_status = Instant::now();
                let b = self.tail.backlog(self.acked, self.end.get());
                self.update_status(|s| s.backlog = b);
            }
        }
    }

    /// A notice while connected: published now.
    fn live_notice(&mut self, n: Notice, l: &mut Link) {
        match n {
            Notice::Opened {
                camera,
                app,
                opened,
                snapshot,
            } => {
                l.other(
                    payload::app_topic(&self.cfg, &camera, &app, "event_start"),
                    false,
                    payload::opened_body(&camera, &app, &opened, snapshot.as_deref()),
                );
                l.other(
                    payload::app_topic(&self.cfg, &camera, &app, "state"),
                    true,
                    "ON",
                );
                self.sensors.insert((camera, app), true);
            }
            Notice::Closed { camera, app } => {
                l.other(
                    payload::app_topic(&self.cfg, &camera, &app, "state"),
                    true,
                    "OFF",
                );
                self.sensors.insert((camera, app), false);
            }
            Notice::Snapshot { camera, app, path } => self.snapshot(l, &camera, &app, &path),
            Notice::Sensors(list) => self.set_sensors(list, Some(l)),
            Notice::Stop => self.stopping = true,
        }
    }

    /// Publishes a snapshot file (retained): gone already (trimmed by the
    /// limits) or too big, it is skipped.
    fn snapshot(&self, l: &mut Link, camera: &str, app: &str, path: &std::path::Path) {
        match std::fs::metadata(path) {
            Ok(m) if m.len() > MAX_SNAPSHOT_PUBLISH as u64 => {
                log::warn!(
                    "mqtt: snapshot {} has {} bytes, more than the {} published; kept on disk only",
                    path.display(),
                    m.len(),
                    MAX_SNAPSHOT_PUBLISH
                );
                return;
            }
            Ok(_) => {}
            Err(_) => return,
        }
        if let Ok(jpeg) = std::fs::read(path) {
            l.other(
                payload::app_topic(&self.cfg, camera, app, "snapshot"),
                true,
                jpeg,
            );
        }
    }

    fn save_cursor(&mut self) {
        if self.acked == self.saved {
            return;
        }
        match cursor::save(&self.state_dir, &self.acked) {
            Ok(()) => self.saved = self.acked,
            Err(e) => log::warn!("mqtt: could not save the delivery cursor: {}", e.chain()),
        }
    }

    fn set_connected(&self, on: bool) {
        self.update_status(|s| {
            if s.connected != on {
                s.connected = on;
                s.since_unix_ms = crate::daemon::events::unix_ms_now();
            }
        });
    }

    fn update_status(&self, f: impl FnOnce(&mut MqttStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }
}

/// A rustls client configuration trusting the CAs in `ca_file`, with the
/// `ring` crypto provider.
pub(crate) fn tls_config(
    ca_file: &std::path::Path,
) -> std::result::Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| format!("cannot read the CA file {}: {e}", ca_file.display()))?;
    for c in certs {
        let c = c.map_err(|e| format!("CA file {}: {e}", ca_file.display()))?;
        roots
            .add(c)
            .map_err(|e| format!("CA file {}: {e}", ca_file.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "CA file {}: no certificate in it",
            ca_file.display()
        ));
    }
    // Deprecated since rustls 0.23.48 only because ring has no post-quantum
    // key exchange; the alternative back end (aws-lc-rs) needs cmake and a C
    // toolchain per target, which the static cross builds do without.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::lookup_note;
    use std::io;

    /// What std reports when getaddrinfo finds no address for a name.
    fn not_found() -> io::Error {
        io::Error::other("failed to lookup address information: Name or service not known")
    }

    #[test]
    fn a_static_build_says_which_name_services_it_uses_when_a_name_is_not_found() {
        let note = lookup_note("broker.local", &not_found(), true);
        assert!(note.contains("only on /etc/hosts and DNS"), "{note}");
        assert_eq!(lookup_note("broker.local", &not_found(), false), "");
    }

    #[test]
    fn an_address_needs_no_note_about_name_services() {
        assert_eq!(lookup_note("192.168.1.5", &not_found(), true), "");
        assert_eq!(lookup_note("fd00::5", &not_found(), true), "");
    }

    #[test]
    fn a_refused_connection_to_a_name_needs_no_note_about_name_services() {
        let refused = io::Error::from_raw_os_error(nix::libc::ECONNREFUSED);
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(lookup_note("broker.local", &refused, true), "");
    }
}
