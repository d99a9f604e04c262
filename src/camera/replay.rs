//! Replay sources: recorded footage behind the same [`FrameSource`] trait as a
//! camera, for tests, benchmarks and demos.
//!
//! - [`MjpegFile`]: concatenated JPEG frames, what `ffmpeg -f mjpeg` writes and
//!   what a camera sends in MJPG mode. Frames are split by walking their JPEG
//!   markers ([`jpeg::FrameScanner`]); a truncated or damaged frame is skipped
//!   with [`ErrorKind::BadFrame`] and the reader
//!   resynchronises on the next SOI.
//! - [`Y4mFile`]: YUV4MPEG2. 4:2:0, 4:2:2 and 4:4:4 planar frames are
//!   converted to packed YUYV (the product's [`PixelFormat`] set has no planar
//!   format): chroma rows of 4:2:0 are repeated for both luma rows (nearest,
//!   no interpolation) and 4:4:4 chroma pairs are averaged. `mono` is
//!   delivered as GREY without conversion.
//! - [`ImageDir`]: the JPEG files of a directory in file-name order, delivered
//!   as MJPEG frames.
//!
//! Frames are paced at the nominal rate or delivered as fast as possible
//! ([`Pace`]); timestamps are always the nominal presentation times
//! (`sequence / fps`). Each source reads into buffers allocated once when it is
//! opened, with an explicit size limit; a frame beyond the limit is a bad frame,
//! never a reason to grow. [`Faults`] inject unplugs, stalls, drops and damaged
//! frames so that the recovery logic of [`crate::camera::Camera`] can be tested.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::jpeg::{self, FrameScanner, Scan};
use super::{Capture, Clock, FrameSource, Pace, SourceInfo, SourceKind, SourceSpec};
use crate::error::{Error, ErrorKind, Result};
use crate::frame::{FrameMeta, PixelFormat, Reject};

/// Faults a replay source injects. For test injection.
///
/// Sequence numbers count frame slots in the file from 0 (a damaged frame
/// takes a slot too, like a driver's sequence number).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// After this many frames were delivered, every grab fails with
    /// [`ErrorKind::DeviceGone`], as an unplugged camera does.
    pub unplug_after: Option<u64>,
    /// After this many frames were delivered, every grab fails with
    /// [`ErrorKind::Timeout`], as a stalled camera does.
    pub stall_after: Option<u64>,
    /// Frames that are silently not delivered (a driver drop: a sequence gap).
    pub skip: Vec<u64>,
    /// Frames whose bytes are cut to half before validation (a truncated
    /// transfer). Detected for every format.
    pub truncate: Vec<u64>,
    /// Frames whose first bytes are overwritten before validation. Only a JPEG
    /// frame can be told apart from valid data; raw frames pass unchanged.
    pub corrupt: Vec<u64>,
    /// Stand in for a live camera toward the supervisor: a run of bad frames
    /// makes it reopen the source (which, being a file, then starts again at
    /// frame 0). Without it a replay is a file, read on through bad frames.
    pub live: bool,
}

impl Faults {
    /// Whether no fault is configured.
    pub fn is_empty(&self) -> bool {
        *self == Faults::default()
    }
}

/// Pacing, sequence numbers and fault injection shared by every replay source.
struct Player {
    clock: Arc<dyn Clock>,
    pace: Pace,
    fps: f64,
    /// Clock time at which sequence 0 is due.
    origin: Option<Duration>,
    next_seq: u64,
    delivered: u64,
    faults: Faults,
}

impl Player {
    fn new(clock: Arc<dyn Clock>, pace: Pace, fps: f64, faults: Faults) -> Result<Self> {
        if !(fps.is_finite() && fps > 0.0) {
            crate::bail!(
                InvalidConfig,
                "replay needs a frame rate above 0, got {fps}"
            );
        }
        Ok(Player {
            clock,
            pace,
            fps,
            origin: None,
            next_seq: 0,
            delivered: 0,
            faults,
        })
    }

    /// Fails as the injected unplug or stall says, before anything is read.
    fn check_outage(&self, path: &Path) -> Result<()> {
        if self
            .faults
            .unplug_after
            .is_some_and(|n| self.delivered >= n)
        {
            crate::bail!(DeviceGone, "{}: unplugged (injected fault)", path.display());
        }
        if self.faults.stall_after.is_some_and(|n| self.delivered >= n) {
            crate::bail!(Timeout, "{}: no frame (injected stall)", path.display());
        }
        Ok(())
    }

    fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    fn timestamp_us(&self, seq: u64) -> u64 {
        (seq as f64 * 1e6 / self.fps).round() as u64
    }

    /// Waits until frame `seq` is due (nominal pace) and counts it delivered.
    fn release(&mut self, seq: u64) {
        if self.pace == Pace::Nominal {
            let offset = Duration::from_secs_f64(seq as f64 / self.fps);
            let now = self.clock.now();
            let origin = *self.origin.get_or_insert(now.saturating_sub(offset));
            let due = origin + offset;
            if due > now {
                self.clock.sleep(due - now);
            }
        }
        self.delivered += 1;
    }
}

/// What [`FrameReader::read_next`] read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// A frame of this width and height, in [`FrameReader::data`].
    Frame(u32, u32),
    /// A damaged frame, skipped: the next call continues after it.
    Bad(Reject),
    /// The end of the file.
    End,
}

/// A reader of one kind of replay file: fills its own buffer with the next frame.
pub trait FrameReader: Send {
    /// Reads the next frame. `Ok(None)` at the end; `BadFrame` for a damaged
    /// frame that was skipped (the next call continues after it).
    fn read(&mut self) -> Result<Option<(u32, u32)>>;
    /// [`read`](FrameReader::read) with a damaged frame as a value,
    /// [`Next::Bad`], instead of an error: what the replay source calls, so
    /// that a run of damaged frames allocates nothing. The default maps
    /// `read` (whose damaged frames stay errors); [`MjpegReader`]
    /// implements it and builds `read` on it.
    fn read_next(&mut self) -> Result<Next> {
        Ok(match self.read()? {
            Some((w, h)) => Next::Frame(w, h),
            None => Next::End,
        })
    }
    /// The bytes of the frame last read.
    fn data(&self) -> &[u8];
    /// The same bytes, writable (fault injection only).
    fn data_mut(&mut self) -> &mut [u8];
    /// Pixel format of the frames.
    fn format(&self) -> PixelFormat;
}

/// A replay source over a [`FrameReader`]. Use the aliases [`MjpegFile`],
/// [`Y4mFile`] and [`ImageDir`].
pub struct Replay<R: FrameReader> {
    reader: R,
    player: Player,
    info: SourceInfo,
    /// Length of the frame to hand out (0 when there is none).
    visible: usize,
}

/// Concatenated JPEG frames.
pub type MjpegFile = Replay<MjpegReader>;
/// A YUV4MPEG2 file, delivered as YUYV (or GREY for `mono`).
pub(crate) type Y4mFile = Replay<Y4mReader>;
/// A directory of JPEG files.
pub type ImageDir = Replay<ImageDirReader>;

impl<R: FrameReader> Replay<R> {
    fn new(reader: R, player: Player, info: SourceInfo) -> Self {
        Replay {
            reader,
            player,
            info,
            visible: 0,
        }
    }
}

impl<R: FrameReader> FrameSource for Replay<R> {
    fn grab(&mut self) -> Result<Option<FrameMeta>> {
        let c = self.capture()?;
        super::grab_from(&self.info.path, c)
    }

    fn capture(&mut self) -> Result<Capture> {
        self.visible = 0;
        self.player.check_outage(&self.info.path)?;
        loop {
            let read = self.reader.read_next();
            let (width, height) = match read {
                Ok(Next::Frame(w, h)) => (w, h),
                Ok(Next::End) => return Ok(Capture::End),
                Ok(Next::Bad(why)) => {
                    self.player.take_seq();
                    return Ok(Capture::Bad(why));
                }
                Err(e) => {
                    if e.kind() == ErrorKind::BadFrame {
                        self.player.take_seq();
                    }
                    return Err(e);
                }
            };
            let seq = self.player.take_seq();
            if self.player.faults.skip.contains(&seq) {
                continue;
            }
            let format = self.reader.format();
            let mut len = self.reader.data().len();
            let damaged = if self.player.faults.truncate.contains(&seq) {
                len /= 2;
                true
            } else if self.player.faults.corrupt.contains(&seq) {
                let d = self.reader.data_mut();
                let n = d.len().min(4);
                d[..n].fill(0);
                true
            } else {
                false
            };
            if damaged {
                let data = &self.reader.data()[..len];
                if let Err(why) = super::validate_frame(format, width, height, data) {
                    return Ok(Capture::Bad(why));
                }
            }
            self.player.release(seq);
            self.visible = len;
            return Ok(Capture::Frame(FrameMeta {
                sequence: seq,
                timestamp_us: self.player.timestamp_us(seq),
                width,
                height,
                format,
            }));
        }
    }

    fn frame(&self) -> &[u8] {
        &self.reader.data()[..self.visible]
    }

    fn describe(&self) -> &SourceInfo {
        &self.info
    }

    fn reopen_cures_bad_frames(&self) -> bool {
        self.player.faults.live
    }
}

/// Maps an error opening or reading a replay file; a missing file counts as a
/// vanished device so that the supervisor retries it.
fn file_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        crate::err!(DeviceGone, source = e, "{what} {}", path.display())
    } else {
        crate::err!(Io, source = e, "{what} {}", path.display())
    }
}

/// Largest JPEG frame a replay accepts: 3 bytes per wanted pixel plus headers,
/// at least 8 MiB (a replay file may be larger than the configured size).
fn jpeg_limit(spec: &SourceSpec) -> usize {
    let px = spec.width as usize * spec.height as usize;
    (px * 3 + (64 << 10)).clamp(8 << 20, 256 << 20)
}

/// Bytes read from a stream file per read call.
const READ_CHUNK: usize = 1 << 20;

/// Splits a file of concatenated JPEGs into frames, in place in one buffer.
pub struct MjpegReader {
    path: PathBuf,
    file: File,
    /// Fixed-size read buffer, allocated once: `max_frame + READ_CHUNK` bytes.
    /// Holds `buf[start..filled]` unread data; a partial frame is moved to the
    /// front before more is read.
    buf: Vec<u8>,
    start: usize,
    filled: usize,
    eof: bool,
    /// Set after a damaged frame was reported: the bytes up to the next SOI
    /// belong to it and are skipped without a second report.
    resyncing: bool,
    max_frame: usize,
    /// The current frame, `buf[frame.0..frame.1]`.
    frame: (usize, usize),
}

impl MjpegReader {
    /// Opens `path`; frames larger than `max_frame` bytes are skipped as bad.
    pub fn open(path: &Path, max_frame: usize) -> Result<Self> {
        let file = File::open(path).map_err(|e| file_error(path, "opening", e))?;
        Ok(MjpegReader {
            path: path.to_path_buf(),
            file,
            buf: vec![0; max_frame + READ_CHUNK],
            start: 0,
            filled: 0,
            eof: false,
            resyncing: false,
            max_frame,
            frame: (0, 0),
        })
    }

    /// Reads more data after the unread bytes. `false` at end of file.
    fn fill(&mut self) -> Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
        let end = (self.filled + READ_CHUNK).min(self.buf.len());
        if end == self.filled {
            return Err(crate::err!(Internal, "MJPEG read buffer full"));
        }
        loop {
            match self.file.read(&mut self.buf[self.filled..end]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.filled += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(file_error(&self.path, "reading", e)),
            }
        }
    }
}

impl FrameReader for MjpegReader {
    fn read(&mut self) -> Result<Option<(u32, u32)>> {
        match self.read_next()? {
            Next::Frame(w, h) => Ok(Some((w, h))),
            Next::End => Ok(None),
            Next::Bad(why) => Err(crate::err!(BadFrame, "{}: {why}", self.path.display())),
        }
    }

    fn read_next(&mut self) -> Result<Next> {
        self.frame = (0, 0);
        // Find the start of a frame.
        loop {
            let avail = &self.buf[self.start..self.filled];
            if avail.len() >= 3 {
                if avail[..3] == [0xFF, 0xD8, 0xFF] {
                    self.resyncing = false;
                    break;
                }
                match jpeg::find_soi(avail) {
                    Some(i) if self.resyncing => {
                        self.start += i;
                        continue;
                    }
                    Some(i) => {
                        self.start += i;
                        return Ok(Next::Bad(Reject::Damaged(
                            "bytes between frames that are not a JPEG frame",
                        )));
                    }
                    // Keep two bytes: they may be the start of an SOI.
                    None => self.start = self.filled - 2,
                }
            }
            if !self.fill()? {
                let left = self.filled - self.start;
                self.start = self.filled;
                if left > 0 && !std::mem::take(&mut self.resyncing) {
                    return Ok(Next::Bad(Reject::Damaged(
                        "bytes after the last frame that are not a JPEG frame",
                    )));
                }
                return Ok(Next::End);
            }
        }
        // Find its end.
        let mut scanner = FrameScanner::new();
        loop {
            match scanner.scan(&self.buf[self.start..self.filled]) {
                Scan::Complete(n) => {
                    let range = (self.start, self.start + n);
                    self.start += n;
                    if n > self.max_frame {
                        return Ok(Next::Bad(Reject::TooLarge {
                            width: 0,
                            height: 0,
                        }));
                    }
                    let info = match jpeg::inspect_frame(&self.buf[range.0..range.1]) {
                        Ok(info) => info,
                        Err(why) => return Ok(Next::Bad(why)),
                    };
                    self.frame = range;
                    return Ok(Next::Frame(info.width, info.height));
                }
                Scan::Broken { resync } => {
                    self.start += resync.max(1);
                    self.resyncing = true;
                    return Ok(Next::Bad(Reject::Damaged(
                        "broken marker structure, or cut short by the next frame",
                    )));
                }
                Scan::NeedMore => {
                    if self.filled - self.start >= self.max_frame {
                        self.start += 2;
                        self.resyncing = true;
                        return Ok(Next::Bad(Reject::TooLarge {
                            width: 0,
                            height: 0,
                        }));
                    }
                    if !self.fill()? {
                        // Truncated, or a damaged length ran past the end: look
                        // for more frames after this one's SOI.
                        self.start += 2;
                        self.resyncing = true;
                        return Ok(Next::Bad(Reject::Damaged("the file ends inside the frame")));
                    }
                }
            }
        }
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.frame.0..self.frame.1]
    }

    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.frame.0..self.frame.1]
    }

    fn format(&self) -> PixelFormat {
        PixelFormat::Mjpeg
    }
}

/// Reads the first frame's size from the start of a JPEG stream or file.
fn first_jpeg_dims(path: &Path) -> Result<(u32, u32)> {
    let mut head = Vec::with_capacity(64 << 10);
    File::open(path)
        .map_err(|e| file_error(path, "opening", e))?
        .take(64 << 10)
        .read_to_end(&mut head)
        .map_err(|e| file_error(path, "reading", e))?;
    let start = jpeg::find_soi(&head)
        .ok_or_else(|| crate::err!(InvalidConfig, "{}: no JPEG frame found", path.display()))?;
    let info = jpeg::header_info(&head[start..]).map_err(|e| {
        crate::err!(
            InvalidConfig,
            source = e,
            "{}: first JPEG header",
            path.display()
        )
    })?;
    Ok((info.width, info.height))
}

impl Replay<MjpegReader> {
    /// Opens an MJPEG stream file, paced at `spec.fps`.
    pub fn open(spec: &SourceSpec, faults: Faults, clock: Arc<dyn Clock>) -> Result<Self> {
        let (width, height) = first_jpeg_dims(&spec.path)?;
        let reader = MjpegReader::open(&spec.path, jpeg_limit(spec))?;
        let player = Player::new(clock, spec.pace, spec.fps, faults)?;
        let info = SourceInfo {
            kind: SourceKind::MjpegFile,
            path: spec.path.clone(),
            node: resolved(&spec.path),
            format: PixelFormat::Mjpeg,
            width,
            height,
            fps: spec.fps,
            notes: Vec::new(),
        };
        Ok(Replay::new(reader, player, info))
    }
}

fn resolved(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Chroma layout of a Y4M file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chroma {
    /// 4:2:0 (`420jpeg`, `420paldv`, `420mpeg2`, `420`): chroma planes of
    /// ceil(W/2) x ceil(H/2).
    C420,
    /// 4:2:2: chroma planes of ceil(W/2) x H.
    C422,
    /// 4:4:4: full-size chroma planes.
    C444,
    /// Luma only.
    Mono,
}

impl Chroma {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "420jpeg" | "420paldv" | "420mpeg2" | "420" => Some(Chroma::C420),
            "422" => Some(Chroma::C422),
            "444" => Some(Chroma::C444),
            "mono" => Some(Chroma::Mono),
            _ => None,
        }
    }

    /// (width, height) of each chroma plane.
    fn plane(self, w: usize, h: usize) -> (usize, usize) {
        match self {
            Chroma::C420 => (w.div_ceil(2), h.div_ceil(2)),
            Chroma::C422 => (w.div_ceil(2), h),
            Chroma::C444 => (w, h),
            Chroma::Mono => (0, 0),
        }
    }
}

/// The parsed stream header of a Y4M file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Y4mHeader {
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Frame rate from `F`, if present.
    pub fps: Option<f64>,
    /// Chroma layout from `C` (default 4:2:0).
    pub chroma: Chroma,
}

/// Longest header line accepted.
const Y4M_MAX_HEADER: usize = 4096;
/// Largest Y4M frame accepted (a 4:4:4 8K frame is about 100 MB).
const Y4M_MAX_FRAME: usize = 256 << 20;

/// Parses a Y4M stream header line (without the newline).
pub fn parse_y4m_header(line: &str) -> Result<Y4mHeader> {
    let mut tokens = line.split(' ');
    if tokens.next() != Some("YUV4MPEG2") {
        crate::bail!(InvalidConfig, "not a YUV4MPEG2 file");
    }
    let (mut width, mut height, mut fps, mut chroma) = (0u32, 0u32, None, Chroma::C420);
    for t in tokens.filter(|t| !t.is_empty()) {
        // The tag is the first character, which need not be ASCII.
        let (tag, val) = t.split_at(t.chars().next().map_or(0, char::len_utf8));
        match tag {
            "W" => {
                width = val
                    .parse()
                    .map_err(|_| crate::err!(InvalidConfig, "Y4M: bad width {val:?}"))?
            }
            "H" => {
                height = val
                    .parse()
                    .map_err(|_| crate::err!(InvalidConfig, "Y4M: bad height {val:?}"))?
            }
            "F" => {
                let (n, d) = val
                    .split_once(':')
                    .and_then(|(n, d)| Some((n.parse::<u32>().ok()?, d.parse::<u32>().ok()?)))
                    .ok_or_else(|| crate::err!(InvalidConfig, "Y4M: bad frame rate {val:?}"))?;
                if n > 0 && d > 0 {
                    fps = Some(f64::from(n) / f64::from(d));
                }
            }
            "C" => {
                chroma = Chroma::parse(val).ok_or_else(|| {
                    crate::err!(
                        Unsupported,
                        "Y4M colour space {val:?} (8-bit 420/422/444/mono only)"
                    )
                })?
            }
            _ => {} // I (interlacing), A (aspect), X (extensions): not needed
        }
    }
    if width == 0 || height == 0 {
        crate::bail!(InvalidConfig, "Y4M header without a frame size");
    }
    if chroma != Chroma::Mono && width % 2 != 0 {
        crate::bail!(
            Unsupported,
            "Y4M width {width} is odd: YUYV needs an even width"
        );
    }
    Ok(Y4mHeader {
        width,
        height,
        fps,
        chroma,
    })
}

/// Reads Y4M frames and converts them to YUYV (or passes GREY through).
pub struct Y4mReader {
    path: PathBuf,
    file: BufReader<File>,
    header: Y4mHeader,
    /// One planar frame as stored in the file; allocated once.
    raw: Vec<u8>,
    /// The converted frame (YUYV); allocated once, empty for `mono`, whose
    /// frames are handed out from `raw`.
    out: Vec<u8>,
    ended: bool,
}

impl Y4mReader {
    /// Opens `path` and parses its header.
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| file_error(path, "opening", e))?;
        let mut file = BufReader::new(f);
        let mut line = Vec::with_capacity(256);
        (&mut file)
            .take(Y4M_MAX_HEADER as u64)
            .read_until(b'\n', &mut line)
            .map_err(|e| file_error(path, "reading", e))?;
        if line.last() != Some(&b'\n') {
            crate::bail!(InvalidConfig, "{}: no Y4M header line", path.display());
        }
        line.pop();
        let text = std::str::from_utf8(&line).map_err(|_| {
            crate::err!(InvalidConfig, "{}: Y4M header is not text", path.display())
        })?;
        let header = parse_y4m_header(text)
            .map_err(|e| Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let (w, h) = (header.width as usize, header.height as usize);
        let (cw, ch) = header.chroma.plane(w, h);
        let size = w * h + 2 * cw * ch;
        if size > Y4M_MAX_FRAME {
            crate::bail!(
                Unsupported,
                "{}: Y4M frame of {size} bytes is too large",
                path.display()
            );
        }
        let out = if header.chroma == Chroma::Mono {
            Vec::new()
        } else {
            vec![0; w * h * 2]
        };
        Ok(Y4mReader {
            path: path.to_path_buf(),
            file,
            header,
            raw: vec![0; size],
            out,
            ended: false,
        })
    }

    /// The stream header.
    pub fn header(&self) -> &Y4mHeader {
        &self.header
    }

    /// Reads one `FRAME...\n` line. `false` at a clean end of file.
    fn frame_line(&mut self) -> Result<bool> {
        let mut tag = [0u8; 5];
        let mut got = 0;
        while got < tag.len() {
            match self.file.read(&mut tag[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => crate::bail!(
                    BadFrame,
                    "{}: file ends inside a FRAME tag",
                    self.path.display()
                ),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(file_error(&self.path, "reading", e)),
            }
        }
        if &tag != b"FRAME" {
            crate::bail!(
                BadFrame,
                "{}: expected FRAME, found damaged data",
                self.path.display()
            );
        }
        // Skip frame parameters up to the newline, with a bound.
        for _ in 0..Y4M_MAX_HEADER {
            let mut b = [0u8; 1];
            match self.file.read(&mut b) {
                Ok(0) => crate::bail!(
                    BadFrame,
                    "{}: file ends inside a FRAME line",
                    self.path.display()
                ),
                Ok(_) if b[0] == b'\n' => return Ok(true),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(file_error(&self.path, "reading", e)),
            }
        }
        crate::bail!(BadFrame, "{}: FRAME line too long", self.path.display())
    }

    fn convert(&mut self) {
        let (w, h) = (self.header.width as usize, self.header.height as usize);
        let (cw, ch) = self.header.chroma.plane(w, h);
        let (y, rest) = self.raw.split_at(w * h);
        let (u, v) = rest.split_at(cw * ch);
        for row in 0..h {
            let yr = &y[row * w..(row + 1) * w];
            let out = &mut self.out[row * w * 2..(row + 1) * w * 2];
            match self.header.chroma {
                Chroma::C420 | Chroma::C422 => {
                    let cr = if self.header.chroma == Chroma::C420 {
                        row / 2
                    } else {
                        row
                    };
                    let ur = &u[cr * cw..(cr + 1) * cw];
                    let vr = &v[cr * cw..(cr + 1) * cw];
                    for (i, px) in out.chunks_exact_mut(4).enumerate() {
                        px.copy_from_slice(&[yr[2 * i], ur[i], yr[2 * i + 1], vr[i]]);
                    }
                }
                Chroma::C444 => {
                    let ur = &u[row * w..(row + 1) * w];
                    let vr = &v[row * w..(row + 1) * w];
                    for (i, px) in out.chunks_exact_mut(4).enumerate() {
                        let avg = |a: u8, b: u8| (u16::from(a) + u16::from(b)).div_ceil(2) as u8;
                        px.copy_from_slice(&[
                            yr[2 * i],
                            avg(ur[2 * i], ur[2 * i + 1]),
                            yr[2 * i + 1],
                            avg(vr[2 * i], vr[2 * i + 1]),
                        ]);
                    }
                }
                Chroma::Mono => {}
            }
        }
    }
}

impl FrameReader for Y4mReader {
    fn read(&mut self) -> Result<Option<(u32, u32)>> {
        if self.ended {
            return Ok(None);
        }
        let r = self.frame_line().and_then(|more| {
            if !more {
                return Ok(false);
            }
            let mut got = 0;
            while got < self.raw.len() {
                match self.file.read(&mut self.raw[got..]) {
                    Ok(0) => crate::bail!(
                        BadFrame,
                        "{}: last frame truncated ({got} of {} bytes)",
                        self.path.display(),
                        self.raw.len()
                    ),
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(file_error(&self.path, "reading", e)),
                }
            }
            Ok(true)
        });
        match r {
            Ok(true) => {
                if self.header.chroma != Chroma::Mono {
                    self.convert();
                }
                Ok(Some((self.header.width, self.header.height)))
            }
            Ok(false) => {
                self.ended = true;
                Ok(None)
            }
            Err(e) => {
                // Y4M has no resync marker: after damage, the stream ends.
                self.ended = true;
                Err(e)
            }
        }
    }

    fn data(&self) -> &[u8] {
        if self.header.chroma == Chroma::Mono {
            &self.raw
        } else {
            &self.out
        }
    }

    fn data_mut(&mut self) -> &mut [u8] {
        if self.header.chroma == Chroma::Mono {
            &mut self.raw
        } else {
            &mut self.out
        }
    }

    fn format(&self) -> PixelFormat {
        if self.header.chroma == Chroma::Mono {
            PixelFormat::Grey
        } else {
            PixelFormat::Yuyv
        }
    }
}

impl Replay<Y4mReader> {
    /// Opens a Y4M file, paced at its header's rate (or `spec.fps` without one).
    pub fn open(spec: &SourceSpec, faults: Faults, clock: Arc<dyn Clock>) -> Result<Self> {
        let reader = Y4mReader::open(&spec.path)?;
        let h = *reader.header();
        let fps = h.fps.unwrap_or(spec.fps);
        let player = Player::new(clock, spec.pace, fps, faults)?;
        let mut notes = Vec::new();
        if h.chroma != Chroma::Mono {
            notes.push(format!("{:?} planar converted to YUYV", h.chroma));
        }
        let info = SourceInfo {
            kind: SourceKind::Y4mFile,
            path: spec.path.clone(),
            node: resolved(&spec.path),
            format: reader.format(),
            width: h.width,
            height: h.height,
            fps,
            notes,
        };
        Ok(Replay::new(reader, player, info))
    }
}

/// Reads the JPEG files of a directory in file-name order.
pub struct ImageDirReader {
    files: Vec<PathBuf>,
    next: usize,
    /// The current file's bytes; capacity reserved once for the size limit.
    buf: Vec<u8>,
    max_frame: usize,
}

impl ImageDirReader {
    /// Lists `dir`'s `.jpg`/`.jpeg` files (any case), sorted by name.
    pub fn open(dir: &Path, max_frame: usize) -> Result<Self> {
        let entries = std::fs::read_dir(dir).map_err(|e| file_error(dir, "listing", e))?;
        let mut names: Vec<OsString> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| file_error(dir, "listing", e))?;
            let name = entry.file_name();
            let ext = Path::new(&name)
                .extension()
                .and_then(|e| e.to_str())
                .map(|e| e.to_ascii_lowercase());
            if matches!(ext.as_deref(), Some("jpg" | "jpeg")) {
                names.push(name);
            }
        }
        if names.is_empty() {
            crate::bail!(InvalidConfig, "{}: no .jpg or .jpeg files", dir.display());
        }
        names.sort();
        Ok(ImageDirReader {
            files: names.iter().map(|n| dir.join(n)).collect(),
            next: 0,
            buf: Vec::with_capacity(max_frame + 1),
            max_frame,
        })
    }

    /// The files in delivery order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

impl FrameReader for ImageDirReader {
    fn read(&mut self) -> Result<Option<(u32, u32)>> {
        self.buf.clear();
        let Some(path) = self.files.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        let file = match File::open(path) {
            Ok(f) => f,
            // A file that vanished since the listing is one lost frame.
            Err(e) => {
                return Err(crate::err!(
                    BadFrame,
                    source = e,
                    "opening {}",
                    path.display()
                ));
            }
        };
        // Read at most the limit + 1 bytes into the reserved capacity: no growth.
        let limit = self.max_frame;
        let mut src = file.take(limit as u64 + 1);
        loop {
            let len = self.buf.len();
            if len > limit {
                self.buf.clear();
                crate::bail!(
                    BadFrame,
                    "{}: larger than the {limit} byte limit",
                    path.display()
                );
            }
            let spare = self.buf.capacity() - len;
            self.buf.resize(len + spare.min(64 << 10), 0);
            match src.read(&mut self.buf[len..]) {
                Ok(0) => {
                    self.buf.truncate(len);
                    break;
                }
                Ok(n) => self.buf.truncate(len + n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.buf.truncate(len),
                Err(e) => {
                    self.buf.clear();
                    return Err(crate::err!(
                        BadFrame,
                        source = e,
                        "reading {}",
                        path.display()
                    ));
                }
            }
        }
        match jpeg::inspect(&self.buf) {
            Ok(info) => Ok(Some((info.width, info.height))),
            Err(e) => {
                self.buf.clear();
                Err(Error::new(e.kind(), format!("{}: {e}", path.display())))
            }
        }
    }

    fn data(&self) -> &[u8] {
        &self.buf
    }

    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    fn format(&self) -> PixelFormat {
        PixelFormat::Mjpeg
    }
}

impl Replay<ImageDirReader> {
    /// Opens a directory of JPEG files, paced at `spec.fps`.
    pub fn open(spec: &SourceSpec, faults: Faults, clock: Arc<dyn Clock>) -> Result<Self> {
        let reader = ImageDirReader::open(&spec.path, jpeg_limit(spec))?;
        let (width, height) = first_jpeg_dims(&reader.files()[0])?;
        let player = Player::new(clock, spec.pace, spec.fps, faults)?;
        let info = SourceInfo {
            kind: SourceKind::ImageDir,
            path: spec.path.clone(),
            node: resolved(&spec.path),
            format: PixelFormat::Mjpeg,
            width,
            height,
            fps: spec.fps,
            notes: vec![format!("{} files", reader.files().len())],
        };
        Ok(Replay::new(reader, player, info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn y4m_header_parses_size_rate_and_chroma() {
        let h = parse_y4m_header("YUV4MPEG2 W64 H48 F30000:1001 Ip A1:1 C420jpeg XYSCSS=420JPEG")
            .unwrap();
        assert_eq!((h.width, h.height, h.chroma), (64, 48, Chroma::C420));
        assert!((h.fps.unwrap() - 29.97).abs() < 0.001);
        assert_eq!(
            parse_y4m_header("YUV4MPEG2 W8 H8").unwrap().chroma,
            Chroma::C420
        );
        assert_eq!(
            parse_y4m_header("YUV4MPEG2 W8 H8 C420p10")
                .unwrap_err()
                .kind(),
            ErrorKind::Unsupported
        );
        assert_eq!(
            parse_y4m_header("YUV4MPEG2 W7 H8 C422").unwrap_err().kind(),
            ErrorKind::Unsupported
        );
        assert_eq!(
            parse_y4m_header("YUV4MPEG2 H8").unwrap_err().kind(),
            ErrorKind::InvalidConfig
        );
        assert_eq!(
            parse_y4m_header("RIFF").unwrap_err().kind(),
            ErrorKind::InvalidConfig
        );
    }
}
