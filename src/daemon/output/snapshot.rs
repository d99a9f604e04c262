//! Event snapshots (`[output.snapshots]`): the frame that opened an event,
//! kept as `DIR/CAMERA/APP/ID.jpg` (ID: the event's stable id, as on its
//! JSON lines and MQTT messages).
//!
//! The camera thread's part is one [`Snapshotter::take`] per opened event: it
//! copies the frame's bytes into a buffer from the camera's own pool of
//! [`POOL`] buffers, allocated when the camera starts, and `try_send`s it to
//! the writer thread over a queue of [`QUEUE`]. An empty pool (the writer is
//! still busy with this camera's earlier snapshots) or a full queue skips the
//! snapshot and counts it; the camera thread never waits, and once its
//! buffers have grown to the camera's frame size it never allocates either.
//!
//! The writer thread ([`Snapshots`]) keeps an MJPEG frame as it is, after
//! checking that it is one whole JPEG (SOI ... EOI); YUYV, grey and RGB
//! frames are encoded (`jpeg-encoder`, quality `quality`). Each file is
//! written crash-safe (temporary file, fsync, rename, fsync of the
//! directory), then [`Retention`] trims the app to its limits and, with
//! `publish = true`, the MQTT publisher is told to send it (retained) on
//! `PREFIX/CAMERA/APP/snapshot`.

use super::retention::Retention;
use super::Notice;
use crate::config::output::Snapshots as Config;
use crate::daemon::events::{event_id, Opened};
use crate::error::Result;
use crate::frame::{FrameMeta, PixelFormat};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Frame buffers per camera.
pub const POOL: usize = 2;
/// Snapshots queued for the writer (all cameras).
const QUEUE: usize = 8;
/// Bytes reserved for an app name in a buffer (names have at most 64).
const NAME_CAPACITY: usize = 64;

/// One pooled buffer: the frame and what it belongs to.
struct Slot {
    frame: Vec<u8>,
    app: String,
    meta: FrameMeta,
    opened: Opened,
}

/// A snapshot on its way to the writer, with the way back to its pool.
struct Job {
    slot: Slot,
    camera: Arc<str>,
    home: SyncSender<Slot>,
}

/// Counters shared by the cameras' snapshotters and the writer.
#[derive(Debug, Default)]
struct Counters {
    taken: AtomicU64,
    skipped: AtomicU64,
    written: AtomicU64,
    failed: AtomicU64,
    unpublished: AtomicU64,
    removed: AtomicU64,
    kept_files: AtomicU64,
    kept_bytes: AtomicU64,
}

/// The snapshot counters (`snapshots.status`, for `mainstream status`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotStatus {
    /// The snapshot directory.
    pub dir: String,
    /// Snapshots handed to the writer since start.
    pub taken: u64,
    /// Snapshots skipped because the camera's buffers were all in use or the
    /// writer's queue was full.
    pub skipped: u64,
    /// Snapshots written.
    pub written: u64,
    /// Snapshots not written: a damaged MJPEG frame, an encoding or disk
    /// error, a JPEG bigger than `max_bytes`.
    pub failed: u64,
    /// Snapshots removed to stay within `keep` and `max_bytes`.
    pub removed: u64,
    /// Snapshot files kept now.
    pub kept_files: u64,
    /// Their bytes.
    pub kept_bytes: u64,
    /// Snapshots not published because the publisher's queue was full.
    pub unpublished: u64,
}

/// File name of the live counters in the state directory.
pub const STATUS_FILE: &str = "snapshots.status";
const STATUS_MAGIC: [u8; 4] = *b"MSSN";
const STATUS_VERSION: u16 = 1;

/// Reads the counters the service last wrote (`None`: snapshots not in use).
pub fn load_status(dir: &Path) -> Result<Option<SnapshotStatus>> {
    crate::store::load(&dir.join(STATUS_FILE), STATUS_MAGIC, STATUS_VERSION)
}

/// One line for `mainstream status`.
pub fn status_text(s: &SnapshotStatus) -> String {
    format!(
        "snapshots: {} kept ({:.1} MiB) in {}; {} written, {} skipped (busy), {} failed, {} removed by the limits since start{}",
        s.kept_files,
        s.kept_bytes as f64 / (1 << 20) as f64,
        s.dir,
        s.written,
        s.skipped,
        s.failed,
        s.removed,
        if s.unpublished > 0 {
            format!("; {} not published (queue full)", s.unpublished)
        } else {
            String::new()
        }
    )
}

/// The path of an event's snapshot.
pub fn path_for(root: &Path, camera: &str, app: &str, o: &Opened) -> PathBuf {
    root.join(camera).join(app).join(format!(
        "{}.jpg",
        event_id(camera, app, o.start_unix_ms, o.start_frame)
    ))
}

/// A camera thread's handle: takes snapshots without waiting.
pub struct Snapshotter(Option<Taker>);

struct Taker {
    free: Receiver<Slot>,
    home: SyncSender<Slot>,
    jobs: SyncSender<Job>,
    camera: Arc<str>,
    counters: Arc<Counters>,
}

impl Snapshotter {
    /// A snapshotter that takes nothing (snapshots not configured).
    pub fn off() -> Snapshotter {
        Snapshotter(None)
    }

    /// Queues a copy of `frame` as the snapshot of the event `opened` of
    /// `app`. Never waits: with no free buffer or a full queue the snapshot
    /// is skipped and counted. Returns whether it was queued.
    pub fn take(&self, meta: &FrameMeta, frame: &[u8], app: &str, opened: &Opened) -> bool {
        let Some(t) = &self.0 else {
            return false;
        };
        let Ok(mut slot) = t.free.try_recv() else {
            t.counters.skipped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        slot.frame.clear();
        slot.frame.extend_from_slice(frame);
        slot.app.clear();
        slot.app.push_str(app);
        slot.meta = *meta;
        slot.opened = *opened;
        let job = Job {
            slot,
            camera: Arc::clone(&t.camera),
            home: t.home.clone(),
        };
        match t.jobs.try_send(job) {
            Ok(()) => {
                t.counters.taken.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(j) | TrySendError::Disconnected(j)) => {
                let _ = t.home.try_send(j.slot);
                t.counters.skipped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

/// The snapshot writer, as the service holds it.
pub struct Snapshots {
    root: PathBuf,
    jobs: Option<SyncSender<Job>>,
    counters: Arc<Counters>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Snapshots {
    /// Starts the writer for `cfg`; `notices` reach the MQTT publisher
    /// (given when `publish = true`).
    pub fn start(
        cfg: &Config,
        state_dir: &Path,
        notices: Option<SyncSender<Notice>>,
    ) -> Result<Snapshots> {
        let root = cfg.dir_in(state_dir);
        std::fs::create_dir_all(&root).map_err(|e| {
            crate::err!(
                Io,
                source = e,
                "creating the snapshot directory {}",
                root.display()
            )
        })?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let counters = Arc::new(Counters::default());
        let w = Writer {
            retention: Retention::new(&root, cfg.keep, cfg.max_bytes),
            root: root.clone(),
            quality: cfg.quality,
            max_bytes: cfg.max_bytes,
            notices,
            counters: Arc::clone(&counters),
            rgb: Vec::new(),
            jpeg: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("ms-snapshots".into())
            .spawn(move || w.run(rx))
            .map_err(|e| crate::err!(Io, source = e, "starting the snapshot writer thread"))?;
        log::info!(
            "snapshots: kept in {} (per app at most {} files and {} MiB){}",
            root.display(),
            cfg.keep,
            cfg.max_bytes >> 20,
            if cfg.publish {
                ", published on MQTT"
            } else {
                ""
            }
        );
        Ok(Snapshots {
            root,
            jobs: Some(tx),
            counters,
            thread: Some(thread),
        })
    }

    /// The snapshot directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A snapshotter for one camera, its [`POOL`] buffers allocated now with
    /// `frame_bytes` each (they grow once if the camera's frames are bigger).
    pub fn snapshotter(&self, camera: &str, frame_bytes: usize) -> Snapshotter {
        let Some(jobs) = &self.jobs else {
            return Snapshotter::off();
        };
        let (home, free) = mpsc::sync_channel(POOL);
        for _ in 0..POOL {
            let _ = home.try_send(Slot {
                frame: Vec::with_capacity(frame_bytes),
                app: String::with_capacity(NAME_CAPACITY),
                meta: FrameMeta {
                    sequence: 0,
                    timestamp_us: 0,
                    width: 0,
                    height: 0,
                    format: PixelFormat::Mjpeg,
                },
                opened: Opened {
                    start_frame: 0,
                    start_unix_ms: 0,
                    peak_score: 0.0,
                },
            });
        }
        Snapshotter(Some(Taker {
            free,
            home,
            jobs: jobs.clone(),
            camera: Arc::from(camera),
            counters: Arc::clone(&self.counters),
        }))
    }

    /// The counters now.
    pub fn status(&self) -> SnapshotStatus {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SnapshotStatus {
            dir: self.root.display().to_string(),
            taken: g(&c.taken),
            skipped: g(&c.skipped),
            written: g(&c.written),
            failed: g(&c.failed),
            removed: g(&c.removed),
            kept_files: g(&c.kept_files),
            kept_bytes: g(&c.kept_bytes),
            unpublished: g(&c.unpublished),
        }
    }

    /// Writes the live counters (no fsync: rewritten every second).
    pub fn write_status(&self, dir: &Path) {
        let path = dir.join(STATUS_FILE);
        let tmp = dir.join(".snapshots.status.tmp");
        let r = crate::store::encode(STATUS_MAGIC, STATUS_VERSION, &self.status()).and_then(|b| {
            std::fs::write(&tmp, &b)
                .and_then(|_| std::fs::rename(&tmp, &path))
                .map_err(|e| crate::err!(Io, source = e, "writing {}", path.display()))
        });
        if let Err(e) = r {
            log::warn!("{}", e.chain());
        }
    }

    /// Lets the writer finish what is queued, waiting up to `limit` (the
    /// cameras' snapshotters must be gone for it to end).
    pub fn stop(mut self, limit: Duration, state_dir: &Path) {
        self.jobs = None;
        let t0 = Instant::now();
        if let Some(t) = self.thread.take() {
            while !t.is_finished() && t0.elapsed() < limit {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                log::info!("snapshots: still writing at stop; the rest are not kept");
            }
        }
        self.write_status(state_dir);
    }
}

/// The writer thread's state.
struct Writer {
    root: PathBuf,
    retention: Retention,
    quality: u8,
    max_bytes: u64,
    notices: Option<SyncSender<Notice>>,
    counters: Arc<Counters>,
    rgb: Vec<u8>,
    jpeg: Vec<u8>,
}

/// The bytes of a whole JPEG in an MJPEG frame (trailing zero padding some
/// UVC cameras leave after EOI dropped), if it is one.
pub fn whole_jpeg(frame: &[u8]) -> std::result::Result<&[u8], crate::frame::Reject> {
    crate::camera::jpeg::inspect_frame(frame)?;
    let mut end = frame.len();
    while end > 2 && frame[end - 1] == 0 {
        end -= 1;
    }
    Ok(&frame[..end])
}

/// Encodes a raw frame as a baseline JPEG into `out` (`rgb`: scratch).
pub fn encode(
    meta: &FrameMeta,
    frame: &[u8],
    quality: u8,
    rgb: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    use jpeg_encoder::{ColorType, Encoder};
    let (w, h) = (meta.width as usize, meta.height as usize);
    let (Ok(w16), Ok(h16)) = (u16::try_from(w), u16::try_from(h)) else {
        return Err(format!("{w}x{h} is too large for a JPEG"));
    };
    let (data, color): (&[u8], ColorType) = match meta.format {
        PixelFormat::Yuyv => {
            rgb.resize(3 * w * h, 0);
            crate::preprocess::yuyv_to_rgb8(frame, meta.width, meta.height, rgb)
                .map_err(|r| r.to_string())?;
            (&rgb[..], ColorType::Rgb)
        }
        PixelFormat::Rgb24 if frame.len() >= 3 * w * h => (&frame[..3 * w * h], ColorType::Rgb),
        PixelFormat::Grey if frame.len() >= w * h => (&frame[..w * h], ColorType::Luma),
        PixelFormat::Rgb24 | PixelFormat::Grey => {
            return Err(format!(
                "a {w}x{h} {:?} frame of only {} bytes",
                meta.format,
                frame.len()
            ))
        }
        PixelFormat::Mjpeg => return Err("an MJPEG frame is kept as it is".into()),
    };
    out.clear();
    Encoder::new(&mut *out, quality)
        .encode(data, w16, h16, color)
        .map_err(|e| format!("JPEG encoding: {e}"))
}

impl Writer {
    fn run(mut self, rx: Receiver<Job>) {
        self.retention.scan();
        self.publish_totals();
        while let Ok(job) = rx.recv() {
            match self.write(&job) {
                Ok(()) => {
                    self.counters.written.fetch_add(1, Ordering::Relaxed);
                }
                Err(why) => {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    log::warn!(
                        "snapshots: event of {} on camera {} at frame {}: not kept: {why}",
                        job.slot.app,
                        job.camera,
                        job.slot.meta.sequence
                    );
                }
            }
            self.publish_totals();
            let Job { slot, home, .. } = job;
            let _ = home.try_send(slot);
        }
    }

    fn publish_totals(&self) {
        let (n, b) = self.retention.totals();
        self.counters.kept_files.store(n, Ordering::Relaxed);
        self.counters.kept_bytes.store(b, Ordering::Relaxed);
        self.counters
            .removed
            .store(self.retention.removed(), Ordering::Relaxed);
    }

    fn write(&mut self, job: &Job) -> std::result::Result<(), String> {
        let s = &job.slot;
        let bytes: &[u8] = if s.meta.format == PixelFormat::Mjpeg {
            whole_jpeg(&s.frame).map_err(|r| format!("not a whole JPEG: {r}"))?
        } else {
            encode(
                &s.meta,
                &s.frame,
                self.quality,
                &mut self.rgb,
                &mut self.jpeg,
            )?;
            &self.jpeg
        };
        if bytes.len() as u64 > self.max_bytes {
            return Err(format!(
                "{} bytes, more than max_bytes = {}",
                bytes.len(),
                self.max_bytes
            ));
        }
        let path = path_for(&self.root, &job.camera, &s.app, &s.opened);
        crate::store::write_atomic(&path, bytes).map_err(|e| e.chain().to_string())?;
        let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
        else {
            return Ok(());
        };
        self.retention.add(dir, name, bytes.len() as u64);
        if let Some(n) = &self.notices {
            let notice = Notice::Snapshot {
                camera: job.camera.to_string(),
                app: s.app.clone(),
                path,
            };
            if n.try_send(notice).is_err() {
                self.counters.unpublished.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path) -> Config {
        Config {
            dir: Some(dir.to_owned()),
            keep: 3,
            max_bytes: 1 << 20,
            quality: 80,
            publish: false,
        }
    }

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ms-snapshot-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn meta(format: PixelFormat, w: u32, h: u32, seq: u64) -> FrameMeta {
        FrameMeta {
            sequence: seq,
            timestamp_us: 0,
            width: w,
            height: h,
            format,
        }
    }

    fn opened(frame: u64) -> Opened {
        Opened {
            start_frame: frame,
            start_unix_ms: 1_000 + frame,
            peak_score: 0.9,
        }
    }

    #[test]
    fn a_full_pool_skips_the_snapshot_and_counts_it_without_waiting() {
        // No writer thread: the queue fills and nothing comes back.
        let (jobs, rx) = mpsc::sync_channel(QUEUE);
        let s = Snapshots {
            root: tmp("pool"),
            jobs: Some(jobs),
            counters: Arc::new(Counters::default()),
            thread: None,
        };
        let cam = s.snapshotter("gate", 64);
        let m = meta(PixelFormat::Grey, 8, 8, 0);
        let frame = [7u8; 64];
        let t0 = Instant::now();
        let taken: Vec<bool> = (0..5)
            .map(|i| cam.take(&m, &frame, "birds", &opened(i)))
            .collect();
        assert!(t0.elapsed() < Duration::from_millis(100));
        assert_eq!(taken, [true, true, false, false, false]);
        let st = s.status();
        assert_eq!((st.taken, st.skipped), (2, 3));
        // A buffer coming back makes room again.
        let j = rx.try_recv().unwrap();
        assert_eq!(j.slot.app, "birds");
        assert_eq!(j.slot.frame, frame);
        j.home.try_send(j.slot).unwrap();
        assert!(cam.take(&m, &frame, "birds", &opened(9)));
        assert_eq!(s.status().taken, 3);
    }

    #[test]
    fn a_full_queue_skips_and_keeps_the_buffer() {
        let (jobs, _rx) = mpsc::sync_channel(0);
        let s = Snapshots {
            root: tmp("queue"),
            jobs: Some(jobs),
            counters: Arc::new(Counters::default()),
            thread: None,
        };
        let cam = s.snapshotter("gate", 16);
        let m = meta(PixelFormat::Grey, 4, 4, 0);
        for i in 0..2 * POOL as u64 {
            assert!(!cam.take(&m, &[0; 16], "birds", &opened(i)));
        }
        assert_eq!(s.status().skipped, 2 * POOL as u64);
        // The buffers went back to the pool each time.
        let Some(t) = &cam.0 else { panic!("on") };
        assert_eq!(t.free.try_iter().count(), POOL);
    }

    #[test]
    fn the_status_line_says_what_was_kept_and_skipped() {
        let s = SnapshotStatus {
            dir: "/var/lib/mainstream/snapshots".into(),
            taken: 12,
            skipped: 2,
            written: 11,
            failed: 1,
            removed: 4,
            kept_files: 7,
            kept_bytes: 3 << 19,
            unpublished: 0,
        };
        assert_eq!(
            status_text(&s),
            "snapshots: 7 kept (1.5 MiB) in /var/lib/mainstream/snapshots; 11 written, 2 skipped (busy), 1 failed, 4 removed by the limits since start"
        );
        let s = SnapshotStatus {
            unpublished: 3,
            ..s
        };
        assert!(status_text(&s).ends_with("; 3 not published (queue full)"));
    }

    #[test]
    fn switched_off_takes_nothing() {
        let m = meta(PixelFormat::Grey, 4, 4, 0);
        assert!(!Snapshotter::off().take(&m, &[0; 16], "a", &opened(0)));
    }

    #[test]
    fn a_grey_frame_is_encoded_and_a_damaged_mjpeg_frame_refused() {
        let root = tmp("write");
        let s = Snapshots::start(&cfg(&root), &root, None).unwrap();
        let cam = s.snapshotter("gate", 0);
        let (w, h) = (32u32, 16u32);
        let grey: Vec<u8> = (0..w * h).map(|i| (i % 251) as u8).collect();
        assert!(cam.take(
            &meta(PixelFormat::Grey, w, h, 5),
            &grey,
            "birds",
            &opened(5)
        ));
        // Cut short: no EOI.
        let cut = [0xFF, 0xD8, 0xFF, 0xDB, 0x00];
        assert!(cam.take(
            &meta(PixelFormat::Mjpeg, w, h, 6),
            &cut,
            "birds",
            &opened(6)
        ));
        drop(cam);
        s.stop(Duration::from_secs(5), &root);
        let st = load_status(&root).unwrap().unwrap();
        assert_eq!((st.written, st.failed, st.kept_files), (1, 1, 1));
        let path = path_for(&root, "gate", "birds", &opened(5));
        let jpeg = std::fs::read(&path).unwrap();
        let info = crate::camera::jpeg::inspect(&jpeg).unwrap();
        assert_eq!((info.width, info.height), (w, h));
        assert!(!path_for(&root, "gate", "birds", &opened(6)).exists());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_yuyv_frame_encodes_to_a_jpeg_of_its_size() {
        let (w, h) = (16u32, 8u32);
        let yuyv: Vec<u8> = (0..w * h * 2).map(|i| (i * 7 % 256) as u8).collect();
        let (mut rgb, mut out) = (Vec::new(), Vec::new());
        encode(
            &meta(PixelFormat::Yuyv, w, h, 0),
            &yuyv,
            85,
            &mut rgb,
            &mut out,
        )
        .unwrap();
        let info = crate::camera::jpeg::inspect(&out).unwrap();
        assert_eq!((info.width, info.height), (w, h));
        let short = encode(
            &meta(PixelFormat::Yuyv, w, h, 0),
            &yuyv[..10],
            85,
            &mut rgb,
            &mut out,
        );
        assert!(short.is_err());
    }

    #[test]
    fn an_mjpeg_frame_is_kept_byte_for_byte_without_its_padding() {
        let (mut rgb, mut jpeg) = (Vec::new(), Vec::new());
        let grey: Vec<u8> = (0..64u32 * 48).map(|i| (i % 200) as u8).collect();
        encode(
            &meta(PixelFormat::Grey, 64, 48, 0),
            &grey,
            75,
            &mut rgb,
            &mut jpeg,
        )
        .unwrap();
        assert_eq!(whole_jpeg(&jpeg).unwrap(), &jpeg[..]);
        let mut padded = jpeg.clone();
        padded.extend_from_slice(&[0; 32]);
        assert_eq!(whole_jpeg(&padded).unwrap(), &jpeg[..]);
        assert!(whole_jpeg(&jpeg[..jpeg.len() - 10]).is_err());
    }
}
