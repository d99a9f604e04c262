//! Types shared by everything that handles raw camera frames.

use serde::{Deserialize, Serialize};
use std::fmt;

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
    pub const ALL: [PixelFormat; 4] = [
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
    pub fn from_fourcc(code: [u8; 4]) -> Option<Self> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_round_trips_through_its_fourcc_and_name() {
        for f in PixelFormat::ALL {
            assert_eq!(PixelFormat::from_fourcc(f.fourcc()), Some(f));
            assert_eq!(PixelFormat::parse(&f.to_string()), Some(f));
        }
        assert_eq!(PixelFormat::parse("NV12"), None);
    }
}
