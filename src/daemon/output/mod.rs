//! Events leaving the box: the MQTT publisher (`[output.mqtt]`) and event
//! snapshots (`[output.snapshots]`, [`snapshot`]).
//!
//! The event log stays the source of truth. The service appends each
//! finished event to it as before and then publishes the log's new end
//! ([`tail::LogEnd`]); the publisher thread ([`mqtt`]) reads the log from its
//! delivery cursor ([`cursor`]) and sends what it finds, so an event reaches
//! the broker whether it happened a millisecond ago or during a two-day
//! outage. Nothing here runs on a camera thread, and the service's main
//! thread only ever `try_send`s notices into a bounded queue (a full queue
//! drops the notice and counts it; the events themselves are in the log).
//!
//! Backlog bound: the log's own size policy. `events.log` is rotated to
//! `events.log.1` at 64 MiB (replacing the older one), so undelivered events
//! are kept until two rotations have passed them: at least 64 MiB of events
//! (a record is about 40-60 bytes: over a million events). Events rotated
//! away before the broker came back are reported in the log when delivery
//! resumes.

pub mod cursor;
pub mod mqtt;
pub mod payload;
pub mod retention;
pub mod snapshot;
pub mod tail;

use super::events::Opened;
use crate::config::output::Mqtt;
use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tail::{End, LogEnd};

/// Notices queued for the publisher.
const NOTICES: usize = 1024;

/// What the service tells the publisher.
#[derive(Clone, Debug)]
pub enum Notice {
    /// An event was confirmed (live `event_start`, sensor on).
    Opened {
        /// Camera name.
        camera: String,
        /// App name.
        app: String,
        /// What opened it.
        opened: Opened,
        /// Its snapshot, if one is being kept.
        snapshot: Option<PathBuf>,
    },
    /// An event's snapshot was written (`publish = true`).
    Snapshot {
        /// Camera name.
        camera: String,
        /// App name.
        app: String,
        /// The JPEG file.
        path: PathBuf,
    },
    /// An event ended (sensor off; the event itself is in the log).
    Closed {
        /// Camera name.
        camera: String,
        /// App name.
        app: String,
    },
    /// The (camera, app) pairs of the plan now in force.
    Sensors(Vec<(String, String)>),
    /// Publish `offline`, disconnect, save the cursor.
    Stop,
}

/// The publisher's live status (`mqtt.status`, for `mainstream status`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MqttStatus {
    /// `host:port`.
    pub broker: String,
    /// Whether a connection is up.
    pub connected: bool,
    /// Since when `connected` has been what it is.
    pub since_unix_ms: u64,
    /// Connection attempts since start.
    pub attempts: u64,
    /// Events in the log not yet acknowledged by the broker.
    pub backlog: u64,
    /// Events acknowledged since start.
    pub delivered: u64,
    /// When the last one was.
    pub last_delivered_unix_ms: u64,
    /// Why the last connection failed (empty while connected).
    pub last_error: String,
    /// Notices dropped because the publisher's queue was full.
    pub dropped_notices: u64,
}

/// File name of the live status in the state directory.
pub const STATUS_FILE: &str = "mqtt.status";
const STATUS_MAGIC: [u8; 4] = *b"MSMS";
const STATUS_VERSION: u16 = 1;

/// Reads the status the service last wrote (`None`: MQTT not in use).
pub fn load_status(dir: &Path) -> Result<Option<MqttStatus>> {
    crate::store::load(&dir.join(STATUS_FILE), STATUS_MAGIC, STATUS_VERSION)
}

/// One line for `mainstream status`.
pub(crate) fn status_text(m: &MqttStatus, now_unix_ms: u64) -> String {
    let ago = now_unix_ms.saturating_sub(m.since_unix_ms) / 1000;
    let mut s = if m.connected {
        format!("mqtt: connected to {} for {ago} s", m.broker)
    } else if m.since_unix_ms == 0 {
        format!("mqtt: NOT connected to {} yet", m.broker)
    } else {
        format!("mqtt: NOT connected to {} for {ago} s", m.broker)
    };
    s.push_str(&format!(
        "; backlog {} events; {} delivered since start",
        m.backlog, m.delivered
    ));
    if !m.last_error.is_empty() {
        s.push_str(&format!("; last error: {}", m.last_error));
    }
    if m.dropped_notices > 0 {
        s.push_str(&format!("; {} live notices dropped", m.dropped_notices));
    }
    s
}

/// The running publisher, as the service holds it.
pub struct Output {
    tx: SyncSender<Notice>,
    end: Arc<LogEnd>,
    status: Arc<Mutex<MqttStatus>>,
    dropped: AtomicU64,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Output {
    /// Starts the publisher for the log in `state_dir`, whose current end is
    /// `end`; `snapshots` is the snapshot directory, if snapshots are kept
    /// (an `event` message names its snapshot when the file is there).
    pub fn start(
        cfg: &Mqtt,
        state_dir: &Path,
        end: End,
        snapshots: Option<PathBuf>,
    ) -> Result<Output> {
        let (tx, rx) = mpsc::sync_channel(NOTICES);
        let log_end = Arc::new(LogEnd::default());
        log_end.set(end);
        let status = Arc::new(Mutex::new(MqttStatus {
            broker: format!("{}:{}", cfg.host, cfg.port),
            ..MqttStatus::default()
        }));
        let p = mqtt::Publisher::new(
            cfg.clone(),
            state_dir.to_owned(),
            Arc::clone(&log_end),
            rx,
            Arc::clone(&status),
            snapshots,
        )?;
        let thread = std::thread::Builder::new()
            .name("ms-mqtt".into())
            .spawn(move || p.run())
            .map_err(|e| crate::err!(Io, source = e, "starting the MQTT publisher thread"))?;
        log::info!(
            "mqtt: publishing events to {}:{}{} under {}/",
            cfg.host,
            cfg.port,
            if cfg.tls_ca_file.is_some() {
                " (TLS)"
            } else {
                ""
            },
            cfg.topic_prefix
        );
        let _ = std::fs::remove_file(state_dir.join(STATUS_FILE));
        Ok(Output {
            tx,
            end: log_end,
            status,
            dropped: AtomicU64::new(0),
            thread: Some(thread),
        })
    }

    /// Queues a notice; never blocks (a full queue drops and counts it).
    pub fn notify(&self, n: Notice) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(n) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A sender for other threads' notices (the snapshot writer's).
    pub fn sender(&self) -> SyncSender<Notice> {
        self.tx.clone()
    }

    /// The log has a new durable end.
    pub fn appended(&self, end: End) {
        self.end.set(end);
    }

    /// The publisher's status now.
    pub fn status(&self) -> MqttStatus {
        let mut s = self.status.lock().map(|s| s.clone()).unwrap_or_default();
        s.dropped_notices = self.dropped.load(Ordering::Relaxed);
        s
    }

    /// Writes the live status file (no fsync: rewritten every second).
    pub(crate) fn write_status(&self, dir: &Path) {
        let s = self.status();
        let path = dir.join(STATUS_FILE);
        let tmp = dir.join(".mqtt.status.tmp");
        let r = crate::store::encode(STATUS_MAGIC, STATUS_VERSION, &s).and_then(|b| {
            std::fs::write(&tmp, &b)
                .and_then(|_| std::fs::rename(&tmp, &path))
                .map_err(|e| crate::err!(Io, source = e, "writing {}", path.display()))
        });
        if let Err(e) = r {
            log::warn!("{}", e.chain());
        }
    }

    /// Tells the publisher to say `offline` and stop, waiting up to `limit`
    /// for it (a connection attempt in progress is abandoned).
    pub fn stop(mut self, limit: Duration, state_dir: &Path) {
        // The stop notice must get through even with a full queue.
        let t0 = Instant::now();
        while let Err(TrySendError::Full(_)) = self.tx.try_send(Notice::Stop) {
            if t0.elapsed() > limit {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(t) = self.thread.take() {
            while !t.is_finished() && t0.elapsed() < limit {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                log::info!(
                    "mqtt: still connecting at stop; the unsent events wait in the event log"
                );
            }
        }
        self.write_status(state_dir);
    }
}
