//! Types shared by everything that handles raw camera frames: the pixel
//! formats, a frame's metadata, the sizes accepted, why a frame is refused
//! ([`Reject`], a small value that costs no allocation), a rate limit for the
//! log lines that report refused frames, and the JPEG marker walk ([`jpeg`])
//! that the camera, the preprocessor and the decoder share.
//!
//! # Frame sizes accepted
//!
//! Width and height each 1..=[`MAX_DIM`] (8192), and one size per stream: a
//! device's negotiated size, a replay file's first frame (a Y4M file's
//! header). A frame of another size, or beyond the limit, is a bad frame:
//! counted and skipped, never a reason to stop or to allocate. What a stream of
//! W x H pixels costs in memory is in `docs/config.md` ("Frame sizes and
//! memory").

pub mod jpeg;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Largest frame width or height accepted anywhere (camera, replay,
/// preprocessing). Bounds every buffer sized by a frame.
pub const MAX_DIM: u32 = 8192;

/// Whether `width` x `height` is within the accepted sizes (1..=[`MAX_DIM`] each).
pub(crate) fn size_accepted(width: u32, height: u32) -> bool {
    (1..=MAX_DIM).contains(&width) && (1..=MAX_DIM).contains(&height)
}

/// Pixel formats the product reads from cameras and replay files.
///
/// Names in config files are V4L2 FourCCs (`MJPG`, `YUYV`, `GREY`, `RGB3`)
/// or the friendly spellings `mjpeg`, `yuyv`, `grey`/`gray`, `rgb24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PixelFormat {
    /// Motion JPEG: each frame a complete baseline JPEG.
    Mjpeg,
    /// Packed YUV 4:2:2, Y0 U Y1 V, 2 bytes per pixel.
    Yuyv,
    /// 8-bit luma only.
    Grey,
    /// Packed 8-bit R, G, B.
    Rgb24,
}

impl PixelFormat {
    /// Every supported format, in the order negotiation prefers them.
    pub(crate) const ALL: [PixelFormat; 4] = [
        PixelFormat::Mjpeg,
        PixelFormat::Yuyv,
        PixelFormat::Rgb24,
        PixelFormat::Grey,
    ];

    /// The V4L2 FourCC code.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Mjpeg => *b"MJPG",
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Grey => *b"GREY",
            PixelFormat::Rgb24 => *b"RGB3",
        }
    }

    /// The format with this FourCC, if we support it. `JPEG` is accepted as MJPEG.
    pub(crate) fn from_fourcc(code: [u8; 4]) -> Option<Self> {
        match &code {
            b"MJPG" | b"JPEG" => Some(PixelFormat::Mjpeg),
            b"YUYV" => Some(PixelFormat::Yuyv),
            b"GREY" => Some(PixelFormat::Grey),
            b"RGB3" => Some(PixelFormat::Rgb24),
            _ => None,
        }
    }

    /// Parses a config spelling (case-insensitive FourCC or friendly name).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mjpg" | "mjpeg" | "jpeg" => Some(PixelFormat::Mjpeg),
            "yuyv" | "yuy2" => Some(PixelFormat::Yuyv),
            "grey" | "gray" | "y8" => Some(PixelFormat::Grey),
            "rgb3" | "rgb24" | "rgb" => Some(PixelFormat::Rgb24),
            _ => None,
        }
    }

    /// Bytes of one uncompressed frame, or `None` for compressed formats.
    pub fn frame_bytes(self, width: u32, height: u32) -> Option<usize> {
        let px = width as usize * height as usize;
        match self {
            PixelFormat::Mjpeg => None,
            PixelFormat::Yuyv => Some(px * 2),
            PixelFormat::Grey => Some(px),
            PixelFormat::Rgb24 => Some(px * 3),
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.fourcc();
        // FourCCs are ASCII by construction.
        f.write_str(std::str::from_utf8(&c).unwrap_or("????"))
    }
}

/// Metadata of one captured frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameMeta {
    /// Sequence number from the driver (or the replay file's frame index).
    pub sequence: u64,
    /// Capture time in microseconds on the source's clock (driver timestamp
    /// for V4L2, presentation time for replay).
    pub timestamp_us: u64,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Pixel format of the bytes.
    pub format: PixelFormat,
}

/// Why a frame was refused: a small `Copy` value, built and returned without
/// allocating (the hot path meets damaged frames at the camera's rate). Its
/// message is formatted only when it is displayed, e.g. by a log line that
/// [`RateLimit`] let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// A raw frame shorter than its size needs.
    Short {
        /// Bytes received.
        len: usize,
        /// Bytes a whole frame has.
        need: usize,
    },
    /// A frame whose size is not the stream's.
    Size {
        /// The frame's width.
        width: u32,
        /// The frame's height.
        height: u32,
        /// The stream's width.
        want_width: u32,
        /// The stream's height.
        want_height: u32,
    },
    /// A frame beyond the accepted sizes ([`MAX_DIM`]), or a compressed frame
    /// beyond the byte limit of its stream.
    TooLarge {
        /// The frame's width (0: unknown, the byte size was over).
        width: u32,
        /// The frame's height.
        height: u32,
    },
    /// Not a JPEG: no start-of-image marker.
    NotJpeg,
    /// A JPEG without its end-of-image marker (cut short).
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// The JPEG's marker structure before its scan is damaged.
    Header {
        /// What is wrong.
        what: &'static str,
        /// Offset in the frame.
        at: usize,
    },
    /// Damage in the JPEG's tables or compressed data (or a JPEG that no
    /// decoder here reads).
    Data(&'static str),
    /// The source says the frame is damaged, or delivered it broken (a
    /// driver's error flag, an empty buffer, a cut transfer).
    Damaged(&'static str),
    /// The caller's output buffer has the wrong length: a bug of the caller,
    /// not of the frame (kind [`Internal`](crate::error::ErrorKind::Internal)).
    Output {
        /// Values in the buffer given.
        len: usize,
        /// Values needed.
        need: usize,
    },
}

impl Reject {
    /// The error kind this maps to: `BadFrame`, or `Internal` for [`Reject::Output`].
    pub fn kind(self) -> crate::error::ErrorKind {
        match self {
            Reject::Output { .. } => crate::error::ErrorKind::Internal,
            _ => crate::error::ErrorKind::BadFrame,
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Reject::Short { len, need } => write!(f, "short frame: {len} of {need} bytes"),
            Reject::Size {
                width,
                height,
                want_width,
                want_height,
            } => write!(
                f,
                "frame is {width}x{height}, the stream's frames are {want_width}x{want_height}"
            ),
            Reject::TooLarge { width: 0, .. } => {
                write!(f, "frame larger than the stream's byte limit")
            }
            Reject::TooLarge { width, height } => write!(
                f,
                "frame of {width}x{height} is beyond the accepted sizes (1..={MAX_DIM} each side)"
            ),
            Reject::NotJpeg => write!(f, "not a JPEG frame (no start-of-image marker)"),
            Reject::Truncated { len } => write!(
                f,
                "truncated JPEG frame ({len} bytes, no end-of-image marker)"
            ),
            Reject::Header { what, at } => write!(f, "JPEG header: {what} at byte {at}"),
            Reject::Data(what) => write!(f, "JPEG data: {what}"),
            Reject::Damaged(what) => write!(f, "damaged frame: {what}"),
            Reject::Output { len, need } => {
                write!(f, "output buffer has {len} values, expected {need}")
            }
        }
    }
}

impl std::error::Error for Reject {}

impl From<Reject> for crate::error::Error {
    fn from(r: Reject) -> Self {
        crate::error::Error::new(r.kind(), r.to_string())
    }
}

/// Lets one log line through per interval and counts what it held back, so
/// that a stream of bad frames logs a line every few seconds with a count,
/// not a line per frame (and formats nothing for the frames in between).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RateLimit {
    every: Duration,
    last: Option<Duration>,
    held: u64,
}

impl RateLimit {
    /// One line per `every`.
    pub(crate) const fn new(every: Duration) -> Self {
        RateLimit {
            every,
            last: None,
            held: 0,
        }
    }

    /// Counts one occurrence at `now` (any monotonic clock). `Some(n)` when a
    /// line is due: `n` occurrences since the last line, this one included.
    pub(crate) fn note(&mut self, now: Duration) -> Option<u64> {
        self.held += 1;
        let due = self
            .last
            .is_none_or(|l| now.saturating_sub(l) >= self.every);
        if !due {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limit_lets_the_first_line_through_then_one_per_interval_with_a_count() {
        let mut r = RateLimit::new(Duration::from_secs(10));
        let at = |s: u64| Duration::from_secs(s);
        assert_eq!(r.note(at(0)), Some(1));
        assert_eq!(r.note(at(1)), None);
        assert_eq!(r.note(at(9)), None);
        assert_eq!(r.note(at(10)), Some(3));
        assert_eq!(r.note(at(30)), Some(1));
    }

    #[test]
    fn a_reject_maps_to_bad_frame_except_a_wrong_output_buffer() {
        use crate::error::ErrorKind;
        assert_eq!(Reject::NotJpeg.kind(), ErrorKind::BadFrame);
        let e: crate::error::Error = Reject::Short { len: 3, need: 8 }.into();
        assert_eq!(e.kind(), ErrorKind::BadFrame);
        assert!(e.to_string().contains("3 of 8 bytes"), "{e}");
        assert_eq!(
            Reject::Output { len: 1, need: 2 }.kind(),
            ErrorKind::Internal
        );
    }

    #[test]
    fn every_format_round_trips_through_its_fourcc_and_name() {
        for f in PixelFormat::ALL {
            assert_eq!(PixelFormat::from_fourcc(f.fourcc()), Some(f));
            assert_eq!(PixelFormat::parse(&f.to_string()), Some(f));
        }
        assert_eq!(PixelFormat::parse("NV12"), None);
    }
}
