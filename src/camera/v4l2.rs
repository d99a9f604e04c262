//! V4L2 capture: open by path, negotiate format, size and frame interval, and
//! stream through memory-mapped buffers.
//!
//! # How the `v4l` crate is used, and why not all of it
//!
//! We use `v4l` 0.14 with its pure-Rust ioctl backend (`v4l2` feature, no
//! libv4l), so the binary stays static. Its high-level wrappers are not all
//! safe to call in a `panic = "abort"` process that must survive odd cameras:
//!
//! - `io::mmap::Stream`'s `Drop` panics when `VIDIOC_STREAMOFF` fails with
//!   anything but `ENODEV` (an unplug often gives `EIO`), and its `Arena`'s
//!   `Drop` panics the same way when unmapping fails;
//! - `Device::query_caps`, `enum_formats`, `format`/`set_format` and
//!   `query_controls` `unwrap` UTF-8 decoding of driver strings (a USB product
//!   name cut at 32 bytes can split a UTF-8 character) or `expect` known enum
//!   values for colour space, quantisation and transfer function.
//!
//! So this module does those steps itself with `v4l`'s ioctl layer
//! (`v4l::v4l2::ioctl`, `v4l::v4l_sys` structs) and decodes strings lossily,
//! and uses `v4l`'s wrappers only where they cannot panic: `Device::with_path`
//! (we reject paths containing NUL first, which its `CString::new(..).unwrap()`
//! would panic on), `enum_framesizes`, `enum_frameintervals`, `params` and
//! `set_params`. The mmap queue (`Buffers`) is ours: its `Drop` stops the
//! stream and unmaps the buffers, logging failures and never panicking.
//! `Device`'s own `Drop` unwraps `close(2)`, which cannot fail for a V4L2 node:
//! `close` reports only the file's `flush` result and V4L2 nodes have no `flush`.
#![allow(
    unsafe_code,
    reason = "V4L2 ioctls on kernel structs and the mmap of the capture buffers"
)]

use std::ffi::c_void;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::RawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::libc;
use v4l::v4l2 as ll;
use v4l::v4l_sys as sys;
use v4l::video::capture::Parameters;
use v4l::video::Capture;
use v4l::{Device, FourCC, Fraction};

use super::{Capture as Got, FrameSource, SourceInfo, SourceKind, SourceSpec};
use crate::error::{Error, ErrorKind, Result};
use crate::frame::{FrameMeta, PixelFormat, Reject};

/// Buffers requested from the driver (at least [`MIN_BUFFERS`] are required).
const WANT_BUFFERS: u32 = 4;
/// Fewer buffers than this cannot stream without dropping every other frame.
const MIN_BUFFERS: u32 = 2;
const BUF_TYPE: u32 = sys::v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE;
const MEMORY_MMAP: u32 = sys::v4l2_memory_V4L2_MEMORY_MMAP;
const CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
const CAP_STREAMING: u32 = 0x0400_0000;

/// Maps an errno from a device operation to our error kinds: the ones an
/// unplug produces (`ENODEV`, `ENXIO`, `EIO`, `ENOENT` for a vanished node,
/// `ESHUTDOWN`) become [`ErrorKind::DeviceGone`].
pub(crate) fn device_error(op: &str, path: &Path, e: io::Error) -> Error {
    let kind = match e.raw_os_error() {
        Some(libc::ENODEV | libc::ENXIO | libc::EIO | libc::ENOENT | libc::ESHUTDOWN) => {
            ErrorKind::DeviceGone
        }
        Some(libc::ETIMEDOUT) => ErrorKind::Timeout,
        _ => ErrorKind::Io,
    };
    Error::new(kind, format!("{op} on {}", path.display())).with_source(e)
}

/// `ioctl` that retries on `EINTR`.
///
/// # Safety
/// `arg` must be the argument type the kernel expects for `req`.
unsafe fn xioctl<T>(fd: RawFd, req: ll::vidioc::_IOC_TYPE, arg: &mut T) -> io::Result<()> {
    loop {
        // SAFETY: forwarded from the caller: `arg` matches `req`.
        match unsafe { ll::ioctl(fd, req, arg as *mut T as *mut c_void) } {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// A NUL-terminated byte array from the kernel, decoded lossily.
pub(crate) fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// FourCC code as text, with non-printable bytes replaced.
pub(crate) fn fourcc_str(code: [u8; 4]) -> String {
    code.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

/// What `VIDIOC_QUERYCAP` says about a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Caps {
    pub driver: String,
    pub card: String,
    pub bus: String,
    /// The node's own capabilities (`device_caps` when the driver reports them).
    pub caps: u32,
}

impl Caps {
    pub(crate) fn can_capture(&self) -> bool {
        self.caps & CAP_VIDEO_CAPTURE != 0 && self.caps & CAP_STREAMING != 0
    }
}

pub(crate) fn query_caps(fd: RawFd) -> io::Result<Caps> {
    // SAFETY: v4l2_capability is plain data; all-zero is a valid value.
    let mut c: sys::v4l2_capability = unsafe { std::mem::zeroed() };
    // SAFETY: QUERYCAP takes a v4l2_capability.
    unsafe { xioctl(fd, ll::vidioc::VIDIOC_QUERYCAP, &mut c)? };
    let caps = if c.capabilities & sys::V4L2_CAP_DEVICE_CAPS != 0 {
        c.device_caps
    } else {
        c.capabilities
    };
    Ok(Caps {
        driver: c_string(&c.driver),
        card: c_string(&c.card),
        bus: c_string(&c.bus_info),
        caps,
    })
}

/// The capture formats a node offers: (FourCC, description).
pub(crate) fn enum_formats(fd: RawFd) -> io::Result<Vec<([u8; 4], String)>> {
    let mut out = Vec::new();
    for index in 0..256 {
        // SAFETY: plain data.
        let mut d: sys::v4l2_fmtdesc = unsafe { std::mem::zeroed() };
        d.index = index;
        d.type_ = BUF_TYPE;
        // SAFETY: ENUM_FMT takes a v4l2_fmtdesc.
        match unsafe { xioctl(fd, ll::vidioc::VIDIOC_ENUM_FMT, &mut d) } {
            Ok(()) => out.push((d.pixelformat.to_le_bytes(), c_string(&d.description))),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// A range of frame sizes (a discrete size has min = max).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SizeRange {
    /// Smallest width.
    pub min_width: u32,
    /// Largest width.
    pub max_width: u32,
    /// Width increment (1 for discrete sizes).
    pub step_width: u32,
    /// Smallest height.
    pub min_height: u32,
    /// Largest height.
    pub max_height: u32,
    /// Height increment.
    pub step_height: u32,
}

impl SizeRange {
    /// One discrete size.
    pub(crate) fn discrete(w: u32, h: u32) -> Self {
        SizeRange {
            min_width: w,
            max_width: w,
            step_width: 1,
            min_height: h,
            max_height: h,
            step_height: 1,
        }
    }

    /// Whether this is a single size.
    pub(crate) fn is_discrete(&self) -> bool {
        self.min_width == self.max_width && self.min_height == self.max_height
    }

    /// The size in this range nearest to `want`.
    fn nearest(&self, want_w: u32, want_h: u32) -> (u32, u32) {
        fn snap(v: u32, min: u32, max: u32, step: u32) -> u32 {
            let v = v.clamp(min, max.max(min));
            let step = step.max(1);
            let k = (v - min + step / 2) / step;
            (min + k * step).min(max.max(min))
        }
        (
            snap(want_w, self.min_width, self.max_width, self.step_width),
            snap(want_h, self.min_height, self.max_height, self.step_height),
        )
    }
}

/// A range of frame intervals in seconds as (numerator, denominator) fractions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IntervalRange {
    /// Shortest interval (fastest rate).
    pub min: (u32, u32),
    /// Longest interval (slowest rate).
    pub max: (u32, u32),
}

fn rate(frac: (u32, u32)) -> f64 {
    if frac.0 == 0 {
        0.0
    } else {
        f64::from(frac.1) / f64::from(frac.0)
    }
}

impl IntervalRange {
    /// Fastest rate in frames per second.
    pub(crate) fn max_fps(&self) -> f64 {
        rate(self.min)
    }
    /// Slowest rate in frames per second.
    pub(crate) fn min_fps(&self) -> f64 {
        rate(self.max)
    }
}

pub(crate) fn frame_sizes(dev: &Device, code: [u8; 4]) -> Vec<SizeRange> {
    use v4l::framesize::FrameSizeEnum;
    let Ok(sizes) = dev.enum_framesizes(FourCC::new(&code)) else {
        return Vec::new();
    };
    sizes
        .into_iter()
        .map(|s| match s.size {
            FrameSizeEnum::Discrete(d) => SizeRange::discrete(d.width, d.height),
            FrameSizeEnum::Stepwise(s) => SizeRange {
                min_width: s.min_width,
                max_width: s.max_width,
                step_width: s.step_width.max(1),
                min_height: s.min_height,
                max_height: s.max_height,
                step_height: s.step_height.max(1),
            },
        })
        .collect()
}

pub(crate) fn frame_intervals(dev: &Device, code: [u8; 4], w: u32, h: u32) -> Vec<IntervalRange> {
    use v4l::frameinterval::FrameIntervalEnum;
    let Ok(ivals) = dev.enum_frameintervals(FourCC::new(&code), w, h) else {
        return Vec::new();
    };
    ivals
        .into_iter()
        .map(|i| match i.interval {
            FrameIntervalEnum::Discrete(f) => IntervalRange {
                min: (f.numerator, f.denominator),
                max: (f.numerator, f.denominator),
            },
            FrameIntervalEnum::Stepwise(s) => IntervalRange {
                min: (s.min.numerator, s.min.denominator),
                max: (s.max.numerator, s.max.denominator),
            },
        })
        .filter(|r| r.min.0 > 0 && r.min.1 > 0 && r.max.0 > 0 && r.max.1 > 0)
        .collect()
}

/// Picks the format to ask for: the wanted one if offered, else the first
/// offered in [`PixelFormat::ALL`]'s order of preference.
pub(crate) fn choose_format(offered: &[PixelFormat], want: PixelFormat) -> Option<PixelFormat> {
    if offered.contains(&want) {
        return Some(want);
    }
    PixelFormat::ALL.into_iter().find(|f| offered.contains(f))
}

/// Picks the frame size to ask for: the wanted size if offered; else the
/// smallest offered size that covers it in both dimensions (preprocessing
/// scales down); else the largest offered. No ranges: the wanted size.
pub(crate) fn choose_size(ranges: &[SizeRange], want_w: u32, want_h: u32) -> (u32, u32) {
    let cands: Vec<(u32, u32)> = ranges.iter().map(|r| r.nearest(want_w, want_h)).collect();
    if cands.is_empty() || cands.contains(&(want_w, want_h)) {
        return (want_w, want_h);
    }
    let area = |&(w, h): &(u32, u32)| u64::from(w) * u64::from(h);
    cands
        .iter()
        .filter(|&&(w, h)| w >= want_w && h >= want_h)
        .min_by_key(|c| area(c))
        .or_else(|| cands.iter().max_by_key(|c| area(c)))
        .copied()
        .unwrap_or((want_w, want_h))
}

/// `fps` as a frame interval fraction (seconds per frame).
pub(crate) fn fps_to_interval(fps: f64) -> (u32, u32) {
    if (fps - fps.round()).abs() < 1e-6 && fps >= 1.0 {
        return (1, fps.round() as u32);
    }
    let den = (fps * 1000.0).round().clamp(1.0, u32::MAX as f64) as u32;
    let g = gcd(1000, den);
    (1000 / g, den / g)
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a.max(1)
    } else {
        gcd(b, a % b)
    }
}

/// Picks the frame interval to set so the camera itself delivers the rate we
/// need: the slowest offered rate that is at least `fps` (0.5% tolerance, so
/// 29.97 satisfies 30); if the camera is slower than `fps`, its fastest rate.
/// A stepwise range yields `fps` itself when it lies inside the range.
pub(crate) fn choose_interval(ranges: &[IntervalRange], fps: f64) -> Option<(u32, u32)> {
    let want = fps_to_interval(fps);
    let mut cands: Vec<((u32, u32), f64)> = Vec::new();
    for r in ranges {
        if r.min == r.max {
            cands.push((r.min, rate(r.min)));
        } else if fps <= r.max_fps() && fps >= r.min_fps() {
            cands.push((want, fps));
        } else if fps > r.max_fps() {
            cands.push((r.min, r.max_fps()));
        } else {
            cands.push((r.max, r.min_fps()));
        }
    }
    let ok = |r: f64| r >= fps * 0.995;
    let slowest_enough = cands
        .iter()
        .filter(|c| ok(c.1))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    slowest_enough
        .or_else(|| cands.iter().max_by(|a, b| a.1.total_cmp(&b.1)))
        .map(|c| c.0)
}

/// One memory-mapped driver buffer.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

/// The mmap buffer queue. Never panics on drop: stops the stream and unmaps
/// the buffers, logging (not propagating) failures, which are expected after
/// an unplug. Must be dropped before the [`Device`] whose descriptor it uses
/// (field order in [`V4l2Source`] ensures this).
struct Buffers {
    fd: RawFd,
    maps: Vec<Mapping>,
    streaming: bool,
}

// SAFETY: the mappings are owned by this struct alone and only accessed
// through `&self`/`&mut self`; moving them to another thread is sound.
unsafe impl Send for Buffers {}

impl Buffers {
    fn allocate(fd: RawFd, path: &Path) -> Result<Self> {
        // SAFETY: plain data.
        let mut req: sys::v4l2_requestbuffers = unsafe { std::mem::zeroed() };
        req.count = WANT_BUFFERS;
        req.type_ = BUF_TYPE;
        req.memory = MEMORY_MMAP;
        // SAFETY: REQBUFS takes a v4l2_requestbuffers.
        unsafe { xioctl(fd, ll::vidioc::VIDIOC_REQBUFS, &mut req) }
            .map_err(|e| device_error("VIDIOC_REQBUFS", path, e))?;
        let mut bufs = Buffers {
            fd,
            maps: Vec::with_capacity(req.count as usize),
            streaming: false,
        };
        if req.count < MIN_BUFFERS {
            crate::bail!(
                Unsupported,
                "{}: driver gave {} mmap buffers, need at least {MIN_BUFFERS}",
                path.display(),
                req.count
            );
        }
        for index in 0..req.count {
            let mut b = buffer_desc();
            b.index = index;
            // SAFETY: QUERYBUF takes a v4l2_buffer.
            unsafe { xioctl(fd, ll::vidioc::VIDIOC_QUERYBUF, &mut b) }
                .map_err(|e| device_error("VIDIOC_QUERYBUF", path, e))?;
            let len = b.length as usize;
            // SAFETY: mapping a region the driver just described; for MMAP
            // buffers the union holds `offset`.
            let ptr = unsafe {
                ll::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    b.m.offset as libc::off_t,
                )
            }
            .map_err(|e| device_error("mmap", path, e))?;
            bufs.maps.push(Mapping {
                ptr: ptr as *mut u8,
                len,
            });
        }
        Ok(bufs)
    }

    fn queue(&self, index: u32) -> io::Result<()> {
        let mut b = buffer_desc();
        b.index = index;
        // SAFETY: QBUF takes a v4l2_buffer.
        unsafe { xioctl(self.fd, ll::vidioc::VIDIOC_QBUF, &mut b) }
    }

    fn stream(&mut self, on: bool) -> io::Result<()> {
        let mut typ = BUF_TYPE as libc::c_int;
        let req = if on {
            ll::vidioc::VIDIOC_STREAMON
        } else {
            ll::vidioc::VIDIOC_STREAMOFF
        };
        // SAFETY: STREAMON/OFF take an int buffer type.
        unsafe { xioctl(self.fd, req, &mut typ)? };
        self.streaming = on;
        Ok(())
    }

    fn bytes(&self, index: usize, len: usize) -> &[u8] {
        let m = &self.maps[index];
        // SAFETY: the mapping is live until drop and `len <= m.len` is checked
        // by the caller; the driver does not write a dequeued buffer.
        unsafe { std::slice::from_raw_parts(m.ptr, len.min(m.len)) }
    }
}

impl Drop for Buffers {
    fn drop(&mut self) {
        if self.streaming {
            if let Err(e) = self.stream(false) {
                log::debug!("VIDIOC_STREAMOFF while closing: {e}");
            }
        }
        for m in self.maps.drain(..) {
            // SAFETY: unmapping exactly what `allocate` mapped, once.
            if let Err(e) = unsafe { ll::munmap(m.ptr as *mut c_void, m.len) } {
                log::debug!("munmap of a V4L2 buffer failed: {e}");
            }
        }
    }
}

fn buffer_desc() -> sys::v4l2_buffer {
    // SAFETY: plain data; all-zero is valid.
    let mut b: sys::v4l2_buffer = unsafe { std::mem::zeroed() };
    b.type_ = BUF_TYPE;
    b.memory = MEMORY_MMAP;
    b
}

/// Where the current frame's bytes are.
#[derive(Clone, Copy, Debug)]
enum Current {
    None,
    Mapped { index: usize, len: usize },
    Compact { len: usize },
}

/// A V4L2 capture device streaming through memory-mapped buffers.
pub struct V4l2Source {
    // Field order matters: `bufs` must drop before `dev` closes the descriptor.
    bufs: Buffers,
    dev: Device,
    info: SourceInfo,
    format: PixelFormat,
    width: u32,
    height: u32,
    /// Bytes per line as the driver lays rows out (raw formats).
    stride: usize,
    /// Bytes per line without padding (raw formats).
    row: usize,
    /// Rows copied without their padding when `stride > row`; allocated once
    /// at open, empty otherwise.
    compact: Vec<u8>,
    timeout: Duration,
    /// Buffer to give back to the driver on the next grab.
    held: Option<u32>,
    current: Current,
    last_raw_seq: Option<u32>,
    seq_epoch: u64,
}

impl V4l2Source {
    /// Opens and configures the device at `spec.path` (following symlinks
    /// such as `/dev/v4l/by-id/...` anew on every call), negotiates format,
    /// size and frame interval, and maps the buffers. Streaming starts on the
    /// first grab. What was chosen is in [`FrameSource::describe`].
    pub fn open(spec: &SourceSpec) -> Result<Self> {
        let path = &spec.path;
        if path.as_os_str().as_bytes().contains(&0) {
            crate::bail!(InvalidConfig, "device path contains a NUL byte");
        }
        let node = std::fs::canonicalize(path).map_err(|e| device_error("resolving", path, e))?;
        let dev = Device::with_path(&node).map_err(|e| device_error("opening", path, e))?;
        let fd = dev.handle().fd();
        let caps = query_caps(fd).map_err(|e| device_error("VIDIOC_QUERYCAP", path, e))?;
        if !caps.can_capture() {
            crate::bail!(
                Unsupported,
                "{} ({}, {}) is not a streaming video capture device",
                path.display(),
                node.display(),
                caps.card
            );
        }
        let offered = enum_formats(fd).map_err(|e| device_error("VIDIOC_ENUM_FMT", path, e))?;
        let ours: Vec<PixelFormat> = offered
            .iter()
            .filter_map(|(c, _)| PixelFormat::from_fourcc(*c))
            .collect();
        let mut notes = Vec::new();
        let Some(chosen) = choose_format(&ours, spec.format) else {
            let list: Vec<String> = offered.iter().map(|(c, _)| fourcc_str(*c)).collect();
            crate::bail!(
                Unsupported,
                "{}: offers {} but none of MJPG, YUYV, RGB3, GREY",
                path.display(),
                list.join(", ")
            );
        };
        if chosen != spec.format {
            notes.push(format!(
                "asked {}, device lacks it: using {chosen}",
                spec.format
            ));
        }
        // Some drivers offer MJPEG as "JPEG": ask with the code they listed.
        let code = offered
            .iter()
            .map(|(c, _)| *c)
            .find(|c| PixelFormat::from_fourcc(*c) == Some(chosen))
            .unwrap_or(chosen.fourcc());
        let sizes = frame_sizes(&dev, code);
        let (w, h) = choose_size(&sizes, spec.width, spec.height);
        let pix = set_format(fd, w, h, code).map_err(|e| device_error("VIDIOC_S_FMT", path, e))?;
        let got_code = pix.pixelformat.to_le_bytes();
        let Some(format) = PixelFormat::from_fourcc(got_code) else {
            crate::bail!(
                Unsupported,
                "{}: asked {}, driver substituted {}",
                path.display(),
                fourcc_str(code),
                fourcc_str(got_code)
            );
        };
        if format != chosen {
            notes.push(format!("driver substituted {format} for {chosen}"));
        }
        let (width, height) = (pix.width, pix.height);
        if width == 0 || height == 0 {
            crate::bail!(
                Unsupported,
                "{}: driver set a {width}x{height} format",
                path.display()
            );
        }
        if (width, height) != (spec.width, spec.height) {
            notes.push(format!(
                "asked {}x{}, got {width}x{height}",
                spec.width, spec.height
            ));
        }
        let row = format.frame_bytes(width, 1).unwrap_or(0);
        let stride = (pix.bytesperline as usize).max(row);
        let compact = if format != PixelFormat::Mjpeg && stride > row {
            vec![0; row * height as usize]
        } else {
            Vec::new()
        };

        // Frame interval: let the camera deliver the rate we need.
        let mut fps = 0.0;
        if spec.fps > 0.0 {
            let ranges = frame_intervals(&dev, code, width, height);
            let want = choose_interval(&ranges, spec.fps).unwrap_or(fps_to_interval(spec.fps));
            match dev.params() {
                Ok(p)
                    if p.capabilities
                        .contains(v4l::parameters::Capabilities::TIME_PER_FRAME) =>
                {
                    let set = dev
                        .set_params(&Parameters::new(Fraction::new(want.0, want.1)))
                        .map_err(|e| device_error("VIDIOC_S_PARM", path, e))?;
                    fps = rate((set.interval.numerator, set.interval.denominator));
                }
                Ok(p) => {
                    fps = rate((p.interval.numerator, p.interval.denominator));
                    notes.push("device cannot set its frame rate".into());
                }
                Err(e) => notes.push(format!("VIDIOC_G_PARM failed: {e}")),
            }
            if fps > 0.0 && fps < spec.fps * 0.995 {
                notes.push(format!(
                    "device delivers at most {fps:.2} fps, asked {}",
                    spec.fps
                ));
            }
        } else if let Ok(p) = dev.params() {
            // No rate asked for: report the device's own.
            fps = rate((p.interval.numerator, p.interval.denominator));
        }
        let period = if fps > 0.0 {
            Duration::from_secs_f64(1.0 / fps)
        } else {
            Duration::from_millis(100)
        };
        let timeout = (period * 4).clamp(Duration::from_secs(2), Duration::from_secs(10));

        let bufs = Buffers::allocate(fd, path)?;
        notes.push(format!("{} mmap buffers", bufs.maps.len()));
        let info = SourceInfo {
            kind: SourceKind::V4l2,
            path: path.clone(),
            node,
            format,
            width,
            height,
            fps,
            notes,
        };
        Ok(V4l2Source {
            bufs,
            dev,
            info,
            format,
            width,
            height,
            stride,
            row,
            compact,
            timeout,
            held: None,
            current: Current::None,
            last_raw_seq: None,
            seq_epoch: 0,
        })
    }

    fn fail(&self, op: &str, e: io::Error) -> Error {
        device_error(op, &self.info.path, e)
    }

    fn dequeue(&mut self) -> Result<sys::v4l2_buffer> {
        let deadline = Instant::now() + self.timeout;
        let handle = self.dev.handle();
        loop {
            let now = Instant::now();
            if now >= deadline {
                crate::bail!(
                    Timeout,
                    "{}: no frame within {:.1} s",
                    self.info.path.display(),
                    self.timeout.as_secs_f64()
                );
            }
            let ms = (deadline - now).as_millis().clamp(1, i32::MAX as u128) as i32;
            match handle.poll(libc::POLLIN, ms) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.fail("poll", e)),
            }
            let mut b = buffer_desc();
            // SAFETY: DQBUF takes a v4l2_buffer.
            match unsafe { xioctl(handle.fd(), ll::vidioc::VIDIOC_DQBUF, &mut b) } {
                Ok(()) => return Ok(b),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(self.fail("VIDIOC_DQBUF", e)),
            }
        }
    }

    fn extend_sequence(&mut self, raw: u32) -> u64 {
        if let Some(last) = self.last_raw_seq {
            if raw < last && last - raw > u32::MAX / 2 {
                self.seq_epoch += 1 << 32;
            }
        }
        self.last_raw_seq = Some(raw);
        self.seq_epoch + u64::from(raw)
    }
}

fn set_format(fd: RawFd, w: u32, h: u32, code: [u8; 4]) -> io::Result<sys::v4l2_pix_format> {
    // SAFETY: plain data.
    let mut f: sys::v4l2_format = unsafe { std::mem::zeroed() };
    f.type_ = BUF_TYPE;
    // SAFETY: plain data; all-zero is valid.
    let mut pix: sys::v4l2_pix_format = unsafe { std::mem::zeroed() };
    pix.width = w;
    pix.height = h;
    pix.pixelformat = u32::from_le_bytes(code);
    pix.field = sys::v4l2_field_V4L2_FIELD_ANY;
    f.fmt.pix = pix;
    // SAFETY: S_FMT takes a v4l2_format; the driver writes back what it chose.
    unsafe { xioctl(fd, ll::vidioc::VIDIOC_S_FMT, &mut f)? };
    // SAFETY: for a VIDEO_CAPTURE format the kernel fills `pix`.
    Ok(unsafe { f.fmt.pix })
}

impl FrameSource for V4l2Source {
    fn grab(&mut self) -> Result<Option<FrameMeta>> {
        let c = self.capture()?;
        super::grab_from(&self.info.path, c)
    }

    fn capture(&mut self) -> Result<Got> {
        self.current = Current::None;
        if let Some(index) = self.held.take() {
            self.bufs
                .queue(index)
                .map_err(|e| device_error("VIDIOC_QBUF", &self.info.path, e))?;
        }
        if !self.bufs.streaming {
            for index in 0..self.bufs.maps.len() as u32 {
                self.bufs
                    .queue(index)
                    .map_err(|e| device_error("VIDIOC_QBUF", &self.info.path, e))?;
            }
            self.bufs
                .stream(true)
                .map_err(|e| device_error("VIDIOC_STREAMON", &self.info.path, e))?;
        }
        let b = self.dequeue()?;
        let index = b.index as usize;
        if index >= self.bufs.maps.len() {
            crate::bail!(Internal, "driver returned buffer index {index}");
        }
        self.held = Some(b.index);
        let sequence = self.extend_sequence(b.sequence);
        let timestamp_us =
            (b.timestamp.tv_sec.max(0) as u64) * 1_000_000 + (b.timestamp.tv_usec.max(0) as u64);
        if b.flags & sys::V4L2_BUF_FLAG_ERROR != 0 {
            return Ok(Got::Bad(Reject::Damaged("the driver flagged it")));
        }
        let len = b.bytesused as usize;
        if len == 0 || len > self.bufs.maps[index].len {
            return Ok(Got::Bad(Reject::Damaged(
                "empty, or more bytes than its buffer holds",
            )));
        }
        let data = self.bufs.bytes(index, len);
        let (width, height) = match self.format {
            PixelFormat::Mjpeg => {
                let info = match super::jpeg::inspect_frame(data) {
                    Ok(info) => info,
                    Err(why) => return Ok(Got::Bad(why)),
                };
                self.current = Current::Mapped { index, len };
                (info.width, info.height)
            }
            _ => {
                let h = self.height as usize;
                let need = self.stride * (h - 1) + self.row;
                if len < need {
                    return Ok(Got::Bad(Reject::Short { len, need }));
                }
                if self.compact.is_empty() {
                    self.current = Current::Mapped {
                        index,
                        len: self.row * h,
                    };
                } else {
                    for (y, out) in self.compact.chunks_exact_mut(self.row).enumerate() {
                        out.copy_from_slice(&data[y * self.stride..y * self.stride + self.row]);
                    }
                    self.current = Current::Compact {
                        len: self.compact.len(),
                    };
                }
                (self.width, self.height)
            }
        };
        Ok(Got::Frame(FrameMeta {
            sequence,
            timestamp_us,
            width,
            height,
            format: self.format,
        }))
    }

    fn frame(&self) -> &[u8] {
        match self.current {
            Current::None => &[],
            Current::Mapped { index, len } => self.bufs.bytes(index, len),
            Current::Compact { len } => &self.compact[..len],
        }
    }

    fn describe(&self) -> &SourceInfo {
        &self.info
    }
}

/// Finds a control by its name (e.g. vivid's "Disconnect") on the node at
/// `path` and sets it to `value` (any value presses a button control).
/// Returns `false` when the node has no such control. For the vivid test
/// harness, which uses it to emulate an unplug.
pub fn set_control_by_name(path: &Path, name: &str, value: i32) -> Result<bool> {
    if path.as_os_str().as_bytes().contains(&0) {
        crate::bail!(InvalidConfig, "device path contains a NUL byte");
    }
    let dev = Device::with_path(path).map_err(|e| device_error("opening", path, e))?;
    let fd = dev.handle().fd();
    let mut id = sys::V4L2_CTRL_FLAG_NEXT_CTRL;
    for _ in 0..4096 {
        // SAFETY: plain data.
        let mut q: sys::v4l2_queryctrl = unsafe { std::mem::zeroed() };
        q.id = id;
        // SAFETY: QUERYCTRL takes a v4l2_queryctrl.
        match unsafe { xioctl(fd, ll::vidioc::VIDIOC_QUERYCTRL, &mut q) } {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(false),
            Err(e) => return Err(device_error("VIDIOC_QUERYCTRL", path, e)),
        }
        if c_string(&q.name) == name {
            let mut c = sys::v4l2_control { id: q.id, value };
            // SAFETY: S_CTRL takes a v4l2_control.
            unsafe { xioctl(fd, ll::vidioc::VIDIOC_S_CTRL, &mut c) }
                .map_err(|e| device_error("VIDIOC_S_CTRL", path, e))?;
            return Ok(true);
        }
        id = q.id | sys::V4L2_CTRL_FLAG_NEXT_CTRL;
    }
    Ok(false)
}

/// The stable links (`/dev/v4l/by-id`, `/dev/v4l/by-path`) under `v4l_dir`
/// that resolve to `node`.
pub(crate) fn links_to(v4l_dir: &Path, node: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["by-id", "by-path"] {
        let Ok(rd) = std::fs::read_dir(v4l_dir.join(sub)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if std::fs::canonicalize(&p).is_ok_and(|t| t == node) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_fallback_prefers_the_wanted_format_then_the_product_order() {
        use PixelFormat::*;
        assert_eq!(choose_format(&[Yuyv, Mjpeg], Yuyv), Some(Yuyv));
        assert_eq!(choose_format(&[Grey, Yuyv], Mjpeg), Some(Yuyv));
        assert_eq!(choose_format(&[Grey], Rgb24), Some(Grey));
        assert_eq!(choose_format(&[], Rgb24), None);
    }

    #[test]
    fn size_choice_takes_exact_then_smallest_covering_then_largest() {
        let d = SizeRange::discrete;
        let sizes = [d(160, 120), d(640, 480), d(1280, 720), d(1920, 1080)];
        assert_eq!(choose_size(&sizes, 640, 480), (640, 480));
        assert_eq!(choose_size(&sizes, 800, 600), (1280, 720));
        assert_eq!(choose_size(&sizes, 4000, 3000), (1920, 1080));
        let step = SizeRange {
            min_width: 16,
            max_width: 1920,
            step_width: 16,
            min_height: 16,
            max_height: 1080,
            step_height: 8,
        };
        assert_eq!(choose_size(&[step], 700, 500), (704, 504));
        assert_eq!(choose_size(&[], 320, 240), (320, 240));
    }

    #[test]
    fn interval_choice_sets_the_slowest_rate_that_still_suffices() {
        let d = |n, den| IntervalRange {
            min: (n, den),
            max: (n, den),
        };
        let offered = [d(1, 30), d(1, 15), d(1, 5)];
        assert_eq!(choose_interval(&offered, 10.0), Some((1, 15)));
        assert_eq!(choose_interval(&offered, 15.0), Some((1, 15)));
        assert_eq!(choose_interval(&offered, 60.0), Some((1, 30)));
        assert_eq!(choose_interval(&offered, 2.0), Some((1, 5)));
        assert_eq!(
            choose_interval(&[d(1001, 30000)], 30.0),
            Some((1001, 30000))
        );
        let cont = IntervalRange {
            min: (1, 60),
            max: (1, 1),
        };
        assert_eq!(choose_interval(&[cont], 12.5), Some((2, 25)));
        assert_eq!(choose_interval(&[], 12.5), None);
        assert_eq!(fps_to_interval(29.97), (100, 2997));
    }

    #[test]
    fn unplug_errnos_map_to_device_gone() {
        let p = Path::new("/dev/video9");
        for errno in [libc::ENODEV, libc::EIO, libc::ENOENT, libc::ENXIO] {
            let e = device_error("x", p, io::Error::from_raw_os_error(errno));
            assert_eq!(e.kind(), ErrorKind::DeviceGone, "errno {errno}");
        }
        let e = device_error("x", p, io::Error::from_raw_os_error(libc::EBUSY));
        assert_eq!(e.kind(), ErrorKind::Io);
    }

    #[test]
    fn opening_a_missing_node_is_device_gone_and_a_regular_file_is_not_a_camera() {
        let spec = SourceSpec {
            path: "/dev/video-does-not-exist".into(),
            width: 640,
            height: 480,
            fps: 10.0,
            format: PixelFormat::Yuyv,
            pace: super::super::Pace::Fast,
        };
        let e = V4l2Source::open(&spec).err().expect("no such node");
        assert_eq!(e.kind(), ErrorKind::DeviceGone);
        let file = std::env::temp_dir().join(format!("mainstream-v4l2-{}", std::process::id()));
        std::fs::write(&file, b"not a camera").unwrap();
        let spec = SourceSpec {
            path: file.clone(),
            ..spec
        };
        let e = V4l2Source::open(&spec).err().expect("not a device");
        std::fs::remove_file(&file).unwrap();
        assert_eq!(e.kind(), ErrorKind::Io, "{e:?}"); // ENOTTY from QUERYCAP
    }
}
