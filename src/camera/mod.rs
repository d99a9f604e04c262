//! Frame sources: V4L2 cameras and replay files behind one trait, and the
//! supervisor that keeps a camera running through unplugs.
//!
//! - [`FrameSource`]: grab a frame, then borrow its bytes until the next grab.
//!   Implemented by [`v4l2::V4l2Source`] (memory-mapped V4L2 streaming),
//!   [`replay::MjpegFile`], [`replay::Y4mFile`] and [`replay::ImageDir`].
//! - [`open_source`]: picks the implementation for a [`SourceSpec`] by its path.
//! - [`Camera`]: owns a [`SourceOpener`], reopens the source with capped
//!   exponential backoff when it reports [`ErrorKind::DeviceGone`] or a
//!   timeout, skips and counts bad frames, and counts frames the driver dropped
//!   (sequence gaps). A bad frame is also one beyond the accepted sizes or of
//!   another size than its stream's ([`crate::frame`], "Frame sizes
//!   accepted"). A file is never reopened for its bad frames (it would start
//!   again at frame 0): it is read on to its next good frame or its end. Each reopen resolves the configured path again, so a
//!   camera configured as `/dev/v4l/by-id/...` is found when it comes back as
//!   another `/dev/videoN`. One `Camera` per device; cameras do not share state,
//!   so one camera's outage does not touch the others.
//! - [`list`]: what `mainstream cameras` prints.
//! - [`probe`]: `mainstream cameras --test`, one camera streamed through
//!   preprocessing with a report of what was negotiated and measured.
//!
//! Frames are delivered raw, in one of the product's [`PixelFormat`]s, with a
//! [`FrameMeta`]; decoding and conversion are the preprocessing stage's job.

pub mod clock;
pub mod jpeg;
pub mod list;
pub mod probe;
pub mod replay;
pub mod v4l2;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, Result};
use crate::frame::{FrameMeta, PixelFormat, RateLimit, Reject};

pub use clock::{Clock, SimClock, SystemClock};
pub use list::{list_devices, render_devices, DeviceInfo};
pub use probe::{probe, render_probe, ProbeOptions, ProbeReport};
pub use replay::Faults;

/// How a replay source releases frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pace {
    /// At the stream's nominal rate: frame `n` is released `n / fps` seconds
    /// after the first (late frames are released at once, never skipped).
    Nominal,
    /// As fast as the consumer takes them.
    Fast,
}

/// What to open and what to ask of it. Built by the configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceSpec {
    /// A V4L2 node (anything under `/dev`, including the stable
    /// `/dev/v4l/by-id/...` and `/dev/v4l/by-path/...` links), a directory of
    /// JPEG files, an MJPEG stream file (`.mjpeg`, `.mjpg`, `.mjp`) or a `.y4m` file.
    pub path: PathBuf,
    /// Wanted width in pixels (V4L2: negotiated; replay: the file decides).
    pub width: u32,
    /// Wanted height in pixels.
    pub height: u32,
    /// Wanted frame rate. V4L2: set on the device as a frame interval. Replay:
    /// the nominal rate of MJPEG files and image directories (a Y4M file's
    /// header rate wins), used for pacing and timestamps.
    pub fps: f64,
    /// Wanted pixel format (V4L2: negotiated, with fallback; replay: the file decides).
    pub format: PixelFormat,
    /// Replay pacing; ignored for V4L2, where the camera sets the pace.
    pub pace: Pace,
}

/// Which implementation is behind a [`FrameSource`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A V4L2 capture device.
    V4l2,
    /// A file of concatenated JPEG frames.
    MjpegFile,
    /// A YUV4MPEG2 file.
    Y4mFile,
    /// A directory of JPEG files.
    ImageDir,
}

/// What a source is and what was negotiated, for logs and `describe`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceInfo {
    /// The implementation.
    pub kind: SourceKind,
    /// The path as configured.
    pub path: PathBuf,
    /// What the path resolved to when it was opened (e.g. `/dev/video2`).
    pub node: PathBuf,
    /// Pixel format of delivered frames.
    pub format: PixelFormat,
    /// Frame width (MJPEG: of the first frame). Every frame of a stream has
    /// this size; [`Camera`] skips a frame of another size as a bad frame.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// The rate the source delivers at (V4L2: as read back from the device).
    pub fps: f64,
    /// Human-readable notes on what was substituted during negotiation.
    pub notes: Vec<String>,
}

impl std::fmt::Display for SourceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}) {} {}x{} @ {:.3} fps",
            self.path.display(),
            self.node.display(),
            self.format,
            self.width,
            self.height,
            self.fps
        )?;
        for n in &self.notes {
            write!(f, "; {n}")?;
        }
        Ok(())
    }
}

/// What [`FrameSource::capture`] got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capture {
    /// A frame: its bytes are in [`FrameSource::frame`].
    Frame(FrameMeta),
    /// A damaged frame, skipped: calling again continues with the next one.
    /// A small value, so that a stream of them allocates nothing.
    Bad(Reject),
    /// The end of a replay.
    End,
}

/// A source of raw frames. For test injection, replay sources stand in for cameras.
///
/// A frame is fetched with [`grab`](FrameSource::grab) and its bytes borrowed
/// with [`frame`](FrameSource::frame); the bytes stay valid until the next
/// `grab`. They live in a buffer the source reuses (a V4L2 mmap buffer or the
/// replay's buffer), so the steady state allocates nothing.
pub trait FrameSource {
    /// Waits for the next frame and returns its metadata, or `None` at the end
    /// of a replay. Errors: [`ErrorKind::DeviceGone`] (unplugged),
    /// [`ErrorKind::Timeout`] (no frame within the source's timeout; a read
    /// never blocks forever), [`ErrorKind::BadFrame`] (this frame was damaged
    /// and skipped: calling again continues with the next one).
    fn grab(&mut self) -> Result<Option<FrameMeta>>;

    /// The bytes of the frame last grabbed; empty before the first grab and after an error.
    fn frame(&self) -> &[u8];

    /// What this source is and what was negotiated.
    fn describe(&self) -> &SourceInfo;

    /// [`grab`](FrameSource::grab) with a damaged frame as a value,
    /// [`Capture::Bad`], instead of an error: what the supervisor calls, so
    /// that bad frames cost no allocation. The default maps `grab` (whose
    /// bad frames stay errors); the V4L2 and replay sources implement it and
    /// build `grab` on it.
    fn capture(&mut self) -> Result<Capture> {
        Ok(match self.grab()? {
            Some(meta) => Capture::Frame(meta),
            None => Capture::End,
        })
    }

    /// Whether reopening the source can cure a run of bad frames: yes for a
    /// camera (the default); no for a file, which would start again at frame 0
    /// (the supervisor then skips ahead through the file instead).
    fn reopen_cures_bad_frames(&self) -> bool {
        true
    }

    /// [`grab`](FrameSource::grab) and [`frame`](FrameSource::frame) in one call.
    fn next_frame(&mut self) -> Result<Option<(&[u8], FrameMeta)>> {
        match self.grab()? {
            Some(meta) => Ok(Some((self.frame(), meta))),
            None => Ok(None),
        }
    }
}

impl<S: FrameSource + ?Sized> FrameSource for Box<S> {
    fn grab(&mut self) -> Result<Option<FrameMeta>> {
        (**self).grab()
    }
    fn frame(&self) -> &[u8] {
        (**self).frame()
    }
    fn describe(&self) -> &SourceInfo {
        (**self).describe()
    }
    fn reopen_cures_bad_frames(&self) -> bool {
        (**self).reopen_cures_bad_frames()
    }
    fn capture(&mut self) -> Result<Capture> {
        (**self).capture()
    }
}

/// Opens the source a [`SourceSpec`] names, choosing the implementation by path:
/// under `/dev` (or any character device) → V4L2; a directory → JPEG image
/// directory; `.mjpeg`/`.mjpg`/`.mjp` → MJPEG stream; `.y4m` → Y4M.
///
/// A path that does not exist gives [`ErrorKind::DeviceGone`] for every kind,
/// so that [`Camera`] retries a vanished node; the configuration should reject
/// replay paths that do not exist at startup.
pub fn open_source(spec: &SourceSpec) -> Result<Box<dyn FrameSource + Send>> {
    open_source_with_faults(spec, &Faults::default(), SystemClock::shared())
}

/// [`open_source`] with injected faults and a clock for pacing. For test
/// injection: faults are supported by the replay sources only.
pub fn open_source_with_faults(
    spec: &SourceSpec,
    faults: &Faults,
    clock: Arc<dyn Clock>,
) -> Result<Box<dyn FrameSource + Send>> {
    match source_kind(&spec.path)? {
        SourceKind::V4l2 => {
            if !faults.is_empty() {
                crate::bail!(Unsupported, "fault injection needs a replay source");
            }
            Ok(Box::new(v4l2::V4l2Source::open(spec)?))
        }
        SourceKind::MjpegFile => Ok(Box::new(replay::MjpegFile::open(
            spec,
            faults.clone(),
            clock,
        )?)),
        SourceKind::Y4mFile => Ok(Box::new(replay::Y4mFile::open(
            spec,
            faults.clone(),
            clock,
        )?)),
        SourceKind::ImageDir => Ok(Box::new(replay::ImageDir::open(
            spec,
            faults.clone(),
            clock,
        )?)),
    }
}

/// Checks a frame's bytes against its format: a whole JPEG (see
/// [`jpeg::inspect`]) for MJPEG, at least `width * height * bytes per pixel`
/// bytes for raw formats. Damage gives its [`Reject`] reason.
pub(crate) fn validate_frame(
    format: PixelFormat,
    width: u32,
    height: u32,
    data: &[u8],
) -> std::result::Result<(), Reject> {
    match format.frame_bytes(width, height) {
        None => jpeg::inspect_frame(data).map(|_| ()),
        Some(need) if data.len() < need => Err(Reject::Short {
            len: data.len(),
            need,
        }),
        Some(_) => Ok(()),
    }
}

/// [`FrameSource::grab`] built on a [`Capture`]: a bad frame becomes an
/// error of kind `BadFrame` that names the source.
pub(crate) fn grab_from(path: &Path, c: Capture) -> Result<Option<FrameMeta>> {
    match c {
        Capture::Frame(meta) => Ok(Some(meta)),
        Capture::End => Ok(None),
        Capture::Bad(r) => Err(crate::err!(BadFrame, "{}: {r}", path.display())),
    }
}

/// Which implementation [`open_source`] uses for `path`.
pub(crate) fn source_kind(path: &Path) -> Result<SourceKind> {
    use std::os::unix::fs::FileTypeExt;
    if path.starts_with("/dev") {
        return Ok(SourceKind::V4l2);
    }
    let meta = std::fs::metadata(path).ok();
    if let Some(m) = &meta {
        if m.file_type().is_char_device() {
            return Ok(SourceKind::V4l2);
        }
        if m.is_dir() {
            return Ok(SourceKind::ImageDir);
        }
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("mjpeg" | "mjpg" | "mjp") => Ok(SourceKind::MjpegFile),
        Some("y4m") => Ok(SourceKind::Y4mFile),
        _ if meta.is_none() => Err(crate::err!(
            DeviceGone,
            "{}: no such file, directory or device",
            path.display()
        )),
        _ => Err(crate::err!(
            InvalidConfig,
            "{}: cannot tell the source type: expected a /dev node, a directory of JPEG files, \
             or a .mjpeg/.mjpg/.mjp or .y4m file",
            path.display()
        )),
    }
}

/// Opens (and reopens) a camera's source. For test injection: tests script
/// failures with [`ScriptedOpener`].
pub trait SourceOpener: Send {
    /// Opens the source anew, resolving its path again.
    fn open(&mut self) -> Result<Box<dyn FrameSource + Send>>;
    /// The configured path, for logs.
    fn path(&self) -> &Path;
}

/// Opens a [`SourceSpec`] with [`open_source`].
pub struct SpecOpener {
    spec: SourceSpec,
}

impl SpecOpener {
    /// An opener for `spec`.
    pub fn new(spec: SourceSpec) -> Self {
        SpecOpener { spec }
    }
}

impl SourceOpener for SpecOpener {
    fn open(&mut self) -> Result<Box<dyn FrameSource + Send>> {
        open_source(&self.spec)
    }
    fn path(&self) -> &Path {
        &self.spec.path
    }
}

/// One step of a [`ScriptedOpener`]'s script.
#[derive(Clone, Debug)]
pub enum OpenStep {
    /// This attempt fails with an error of this kind, as an absent camera would.
    Fail(ErrorKind),
    /// This attempt opens the replay source with these faults.
    Open(Faults),
}

/// An opener that follows a script, then opens without faults. For test
/// injection: "unplug after 5 frames, fail the next 3 reopen attempts, then
/// come back" is `[Open(unplug_after 5), Fail(DeviceGone) x3]`.
pub struct ScriptedOpener {
    spec: SourceSpec,
    steps: std::collections::VecDeque<OpenStep>,
    clock: Arc<dyn Clock>,
    opens: usize,
}

impl ScriptedOpener {
    /// An opener for `spec` following `steps`; replay pacing uses `clock`.
    pub fn new(spec: SourceSpec, steps: Vec<OpenStep>, clock: Arc<dyn Clock>) -> Self {
        ScriptedOpener {
            spec,
            steps: steps.into(),
            clock,
            opens: 0,
        }
    }

    /// How many times `open` was called.
    pub fn attempts(&self) -> usize {
        self.opens
    }
}

impl SourceOpener for ScriptedOpener {
    fn open(&mut self) -> Result<Box<dyn FrameSource + Send>> {
        self.opens += 1;
        match self.steps.pop_front() {
            Some(OpenStep::Fail(kind)) => Err(crate::error::Error::new(
                kind,
                format!("{}: scripted open failure", self.spec.path.display()),
            )),
            Some(OpenStep::Open(faults)) => {
                open_source_with_faults(&self.spec, &faults, self.clock.clone())
            }
            None => open_source_with_faults(&self.spec, &Faults::default(), self.clock.clone()),
        }
    }
    fn path(&self) -> &Path {
        &self.spec.path
    }
}

/// Capped exponential backoff between reopen attempts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// Delay before the first reopen attempt.
    pub initial: Duration,
    /// Upper bound of the delay.
    pub max: Duration,
    /// Each failed attempt multiplies the delay by this.
    pub factor: u32,
}

impl Default for Backoff {
    /// 100 ms, doubling, capped at 10 s.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            factor: 2,
        }
    }
}

impl Backoff {
    /// The delay before attempt `n` (0-based) of a reconnect.
    pub(crate) fn delay(&self, n: u32) -> Duration {
        let mut d = self.initial;
        for _ in 0..n {
            d = d.saturating_mul(self.factor.max(1));
            if d >= self.max {
                return self.max;
            }
        }
        d.min(self.max)
    }
}

/// How a [`Camera`] reacts to failures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CameraOptions {
    /// Delays between reopen attempts.
    pub backoff: Backoff,
    /// After this many bad frames in a row a camera is reopened (a camera
    /// that only sends garbage is treated like one that went away). A file is
    /// not: reopening would start it again at frame 0, so its bad frames are
    /// skipped until a good one or the end of the file.
    pub max_consecutive_bad: u32,
    /// Stop retrying and return the last error after this long without a
    /// source; `None` retries forever (the service's choice).
    pub give_up_after: Option<Duration>,
}

impl Default for CameraOptions {
    fn default() -> Self {
        CameraOptions {
            backoff: Backoff::default(),
            max_consecutive_bad: 30,
            give_up_after: None,
        }
    }
}

/// Counters of a [`Camera`], for logs and status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CameraStats {
    /// Frames delivered.
    pub frames: u64,
    /// Frames the source skipped (sequence gaps not explained by bad frames).
    pub dropped: u64,
    /// Damaged frames skipped.
    pub bad_frames: u64,
    /// Times the source went away (device gone, I/O error) and was closed.
    pub disconnects: u64,
    /// Times a read timed out (the source is then reopened).
    pub timeouts: u64,
    /// Times the source was reopened successfully after a loss.
    pub reconnects: u64,
    /// Open attempts that failed.
    pub failed_opens: u64,
}

/// Slice of a long backoff sleep after which the stop flag is checked again.
const STOP_POLL: Duration = Duration::from_millis(200);

/// At most one log line per camera per this interval reports bad frames.
const BAD_FRAME_LOG_EVERY: Duration = Duration::from_secs(10);

/// The capture supervisor: one camera, reopened as often as needed.
///
/// `grab` blocks until a good frame arrives, the replay ends, the stop flag is
/// set (both give `Ok(None)`), or an error that retrying cannot fix
/// ([`ErrorKind::InvalidConfig`], [`ErrorKind::Unsupported`], ...) occurs.
pub struct Camera {
    opener: Box<dyn SourceOpener>,
    clock: Arc<dyn Clock>,
    opts: CameraOptions,
    source: Option<Box<dyn FrameSource + Send>>,
    info: SourceInfo,
    stats: CameraStats,
    /// Sequence number of the last good frame since the last open.
    last_seq: Option<u64>,
    /// Bad frames since the last good frame (they explain part of a sequence gap).
    bad_since_good: u64,
    consecutive_bad: u32,
    /// The size of every frame of the open source: its described size (a
    /// device's negotiated size, a file's first frame), or, when that is not
    /// an accepted size, the first accepted frame's.
    stream_size: Option<(u32, u32)>,
    /// Limits the log lines about bad frames.
    bad_log: RateLimit,
    ever_opened: bool,
    ended: bool,
    stop: Option<Arc<AtomicBool>>,
}

impl Camera {
    /// A camera that opens its source on the first `grab`.
    pub fn new(opener: Box<dyn SourceOpener>, clock: Arc<dyn Clock>, opts: CameraOptions) -> Self {
        let path = opener.path().to_path_buf();
        Camera {
            opener,
            clock,
            opts,
            source: None,
            info: SourceInfo {
                kind: SourceKind::V4l2,
                node: path.clone(),
                path,
                format: PixelFormat::Mjpeg,
                width: 0,
                height: 0,
                fps: 0.0,
                notes: vec!["not opened yet".into()],
            },
            stats: CameraStats::default(),
            last_seq: None,
            bad_since_good: 0,
            consecutive_bad: 0,
            stream_size: None,
            bad_log: RateLimit::new(BAD_FRAME_LOG_EVERY),
            ever_opened: false,
            ended: false,
            stop: None,
        }
    }

    /// A camera for `spec` with the real clock and default options.
    pub(crate) fn for_spec(spec: SourceSpec) -> Self {
        Camera::new(
            Box::new(SpecOpener::new(spec)),
            SystemClock::shared(),
            CameraOptions::default(),
        )
    }

    /// Makes `grab` return `Ok(None)` once `flag` is set (checked between
    /// reopen attempts and during backoff sleeps).
    pub fn with_stop_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.stop = Some(flag);
        self
    }

    /// The counters so far.
    pub fn stats(&self) -> CameraStats {
        self.stats
    }

    fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    fn sleep_unless_stopped(&self, d: Duration) -> bool {
        let mut left = d;
        while !left.is_zero() {
            if self.stopped() {
                return false;
            }
            let step = left.min(STOP_POLL);
            self.clock.sleep(step);
            left -= step;
        }
        !self.stopped()
    }

    fn drop_source(&mut self) {
        self.source = None;
        self.last_seq = None;
        self.bad_since_good = 0;
        self.consecutive_bad = 0;
        self.stream_size = None;
    }

    /// Opens the source, retrying with backoff. `Ok(false)`: stopped.
    fn connect(&mut self) -> Result<bool> {
        let since = self.clock.now();
        let reconnect = self.ever_opened;
        let mut attempt: u32 = 0;
        loop {
            if reconnect || attempt > 0 {
                let wait = self
                    .opts
                    .backoff
                    .delay(if reconnect { attempt } else { attempt - 1 });
                if !self.sleep_unless_stopped(wait) {
                    return Ok(false);
                }
            } else if self.stopped() {
                return Ok(false);
            }
            match self.opener.open() {
                Ok(src) => {
                    self.info = src.describe().clone();
                    let (w, h) = (self.info.width, self.info.height);
                    self.stream_size = crate::frame::size_accepted(w, h).then_some((w, h));
                    log::info!(
                        "camera {}: opened {}",
                        self.opener.path().display(),
                        self.info
                    );
                    self.source = Some(src);
                    if reconnect {
                        self.stats.reconnects += 1;
                    }
                    self.ever_opened = true;
                    return Ok(true);
                }
                Err(e) if retryable(e.kind()) => {
                    self.stats.failed_opens += 1;
                    let waited = self.clock.now().saturating_sub(since);
                    if let Some(limit) = self.opts.give_up_after {
                        if waited >= limit {
                            return Err(crate::err!(
                                DeviceGone,
                                source = e,
                                "camera {}: not back after {:.1} s",
                                self.opener.path().display(),
                                waited.as_secs_f64()
                            ));
                        }
                    }
                    // Log the first failure and then every 10th, not every attempt.
                    if attempt.is_multiple_of(10) {
                        log::warn!(
                            "camera {}: open failed ({}), retrying (attempt {})",
                            self.opener.path().display(),
                            e.chain(),
                            attempt + 1
                        );
                    } else {
                        log::debug!(
                            "camera {}: open failed: {}",
                            self.opener.path().display(),
                            e.chain()
                        );
                    }
                    attempt = attempt.saturating_add(1);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Why `meta`'s frame cannot be analysed with the stream's others: beyond
    /// the accepted sizes, or of another size than the stream's. The first
    /// accepted frame fixes the size of a stream whose source did not.
    fn check_size(&mut self, meta: &FrameMeta) -> Option<Reject> {
        let (width, height) = (meta.width, meta.height);
        if !crate::frame::size_accepted(width, height) {
            return Some(Reject::TooLarge { width, height });
        }
        let (want_width, want_height) = *self.stream_size.get_or_insert((width, height));
        ((width, height) != (want_width, want_height)).then_some(Reject::Size {
            width,
            height,
            want_width,
            want_height,
        })
    }

    /// Counts a bad frame; logs at most one line per [`BAD_FRAME_LOG_EVERY`]
    /// (formatting `why` only then). A camera sending nothing but bad frames
    /// is reopened; a file is read on.
    fn note_bad(&mut self, why: &dyn std::fmt::Display) {
        self.stats.bad_frames += 1;
        self.bad_since_good += 1;
        self.consecutive_bad = self.consecutive_bad.saturating_add(1);
        if let Some(n) = self.bad_log.note(self.clock.now()) {
            log::warn!(
                "camera {}: {n} bad frame(s) skipped since the last report, {} in all; latest: {why}",
                self.opener.path().display(),
                self.stats.bad_frames
            );
        }
        if self.consecutive_bad < self.opts.max_consecutive_bad {
            return;
        }
        let cures = self
            .source
            .as_ref()
            .is_some_and(|s| s.reopen_cures_bad_frames());
        if cures {
            log::warn!(
                "camera {}: {} bad frames in a row, reopening",
                self.opener.path().display(),
                self.consecutive_bad
            );
            self.stats.disconnects += 1;
            self.drop_source();
        } else if self.consecutive_bad == self.opts.max_consecutive_bad {
            log::warn!(
                "camera {}: {} bad frames in a row; reading on through the file",
                self.opener.path().display(),
                self.consecutive_bad
            );
        }
    }

    fn note_good(&mut self, meta: &FrameMeta) {
        if let Some(last) = self.last_seq {
            if meta.sequence > last {
                let gap = meta.sequence - last - 1;
                self.stats.dropped += gap.saturating_sub(self.bad_since_good);
            }
        }
        self.last_seq = Some(meta.sequence);
        self.bad_since_good = 0;
        self.consecutive_bad = 0;
        self.stats.frames += 1;
    }
}

/// Kinds after which reopening may help.
fn retryable(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::DeviceGone | ErrorKind::Timeout | ErrorKind::Io
    )
}

impl FrameSource for Camera {
    fn grab(&mut self) -> Result<Option<FrameMeta>> {
        loop {
            if self.ended || self.stopped() {
                return Ok(None);
            }
            let Some(src) = self.source.as_mut() else {
                if !self.connect()? {
                    return Ok(None);
                }
                continue;
            };
            match src.capture() {
                Ok(Capture::Bad(why)) => self.note_bad(&why),
                Ok(Capture::Frame(meta)) => {
                    if let Some(why) = self.check_size(&meta) {
                        self.note_bad(&why);
                        continue;
                    }
                    self.note_good(&meta);
                    return Ok(Some(meta));
                }
                Ok(Capture::End) => {
                    self.ended = true;
                    return Ok(None);
                }
                Err(e) => match e.kind() {
                    ErrorKind::BadFrame => self.note_bad(&e.chain()),
                    ErrorKind::Timeout => {
                        log::warn!(
                            "camera {}: {}; reopening",
                            self.opener.path().display(),
                            e.chain()
                        );
                        self.stats.timeouts += 1;
                        self.drop_source();
                    }
                    ErrorKind::DeviceGone | ErrorKind::Io => {
                        log::warn!(
                            "camera {}: {}; reopening",
                            self.opener.path().display(),
                            e.chain()
                        );
                        self.stats.disconnects += 1;
                        self.drop_source();
                    }
                    _ => return Err(e),
                },
            }
        }
    }

    fn frame(&self) -> &[u8] {
        match &self.source {
            Some(s) => s.frame(),
            None => &[],
        }
    }

    fn describe(&self) -> &SourceInfo {
        &self.info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_initial_and_stops_at_the_cap() {
        let b = Backoff::default();
        let ms: Vec<u128> = (0..10).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(
            ms,
            [100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000]
        );
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn source_kind_follows_the_path() {
        assert_eq!(
            source_kind(Path::new("/dev/video0")).unwrap(),
            SourceKind::V4l2
        );
        assert_eq!(
            source_kind(Path::new("/dev/v4l/by-id/usb-cam-index0")).unwrap(),
            SourceKind::V4l2
        );
        assert_eq!(
            source_kind(Path::new("/tmp")).unwrap(),
            SourceKind::ImageDir
        );
        assert_eq!(
            source_kind(Path::new("x/a.MJPG")).unwrap(),
            SourceKind::MjpegFile
        );
        assert_eq!(
            source_kind(Path::new("x/a.y4m")).unwrap(),
            SourceKind::Y4mFile
        );
        assert_eq!(
            source_kind(Path::new("/nonexistent/a.avi"))
                .unwrap_err()
                .kind(),
            ErrorKind::DeviceGone
        );
        assert_eq!(
            source_kind(Path::new("/etc/hostname")).unwrap_err().kind(),
            ErrorKind::InvalidConfig
        );
    }
}
