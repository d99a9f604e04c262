//! Cheap JPEG framing: checks that a buffer is one whole JPEG and finds where
//! each JPEG ends in a concatenated MJPEG stream. Nothing here decodes pixels;
//! it walks the marker segments only, so a damaged frame is caught before the
//! decoder sees it (the decoder can still report `BadFrame` for damage inside
//! the entropy-coded data, which only decoding reveals).

use crate::error::Result;
use crate::frame::jpeg::{is_sof, marker_at, sof_size, Marker, Segments, EOI, SOI, SOS};
use crate::frame::Reject;

/// What the frame header of a JPEG says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JpegInfo {
    /// Width in pixels, from the SOF segment.
    pub width: u32,
    /// Height in pixels, from the SOF segment.
    pub height: u32,
}

/// Walks the header segments from just after SOI up to the first SOS and
/// returns the frame size. `data` must start with SOI. Fails on a segment
/// length that runs past `data`, a missing SOF, a zero width or height.
pub fn header_info(data: &[u8]) -> Result<JpegInfo> {
    Ok(frame_header(data)?)
}

/// [`header_info`] without allocating: the reason is a [`Reject`].
pub(crate) fn frame_header(data: &[u8]) -> std::result::Result<JpegInfo, Reject> {
    let mut info: Option<JpegInfo> = None;
    for seg in Segments::new(data) {
        let seg = seg?;
        if is_sof(seg.marker) {
            let at = seg.at;
            let Some((width, height)) = sof_size(seg.body).filter(|_| seg.body.len() >= 6) else {
                return Err(Reject::Header {
                    what: "frame header too short",
                    at,
                });
            };
            if width == 0 || height == 0 {
                return Err(Reject::Header {
                    what: "frame header with a zero width or height",
                    at,
                });
            }
            info = Some(JpegInfo { width, height });
        } else if seg.marker == SOS {
            return info.ok_or(Reject::Header {
                what: "scan before the frame header",
                at: seg.at,
            });
        }
    }
    Err(Reject::Header {
        what: "no scan",
        at: data.len(),
    })
}

/// Checks that `data` is one whole JPEG: SOI first, sane header segments with a
/// frame header and a scan, and EOI last. Trailing zero bytes after EOI, which
/// some UVC cameras leave in the buffer, are tolerated. Cost: the header
/// segments (a few hundred bytes); the entropy-coded data is not scanned.
pub fn inspect(data: &[u8]) -> Result<JpegInfo> {
    Ok(inspect_frame(data)?)
}

/// [`inspect`] without allocating: the reason is a [`Reject`].
pub(crate) fn inspect_frame(data: &[u8]) -> std::result::Result<JpegInfo, Reject> {
    let info = frame_header(data)?;
    let mut end = data.len();
    while end > 4 && data[end - 1] == 0 {
        end -= 1;
    }
    if data[end - 2] != 0xFF || data[end - 1] != EOI {
        return Err(Reject::Truncated { len: data.len() });
    }
    Ok(info)
}

/// Finds the first `FF D8 FF` (SOI followed by another marker) in `data`.
pub fn find_soi(data: &[u8]) -> Option<usize> {
    data.windows(3)
        .position(|w| w[0] == 0xFF && w[1] == SOI && w[2] == 0xFF)
}

/// Outcome of [`FrameScanner::scan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// The frame is `data[..n]`, ending with EOI.
    Complete(usize),
    /// The data ends inside the frame: supply more and scan again.
    NeedMore,
    /// The frame is damaged; the next frame may start at `data[resync..]`:
    /// exactly there when a new SOI cut this frame short, otherwise 2 (search
    /// again from just after this frame's SOI, since a damaged length field
    /// may have carried the walk past the next frame's start).
    Broken {
        /// Offset from which to look for the next SOI.
        resync: usize,
    },
}

/// Finds the end of one JPEG in a stream of concatenated JPEGs by walking its
/// marker segments (so an EOI inside an embedded EXIF thumbnail does not end
/// the frame early). Resumable: when the data runs out it remembers where it
/// was, so each byte is examined once even if the frame arrives in pieces.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameScanner {
    pos: usize,
    in_scan: bool,
}

impl FrameScanner {
    /// A scanner for a new frame.
    pub fn new() -> Self {
        FrameScanner::default()
    }

    /// Scans `data`, which starts with the frame's SOI and holds all of the
    /// frame's bytes received so far (the same prefix on every call).
    pub fn scan(&mut self, data: &[u8]) -> Scan {
        if self.pos == 0 {
            if data.len() < 2 {
                return Scan::NeedMore;
            }
            if data[0] != 0xFF || data[1] != SOI {
                return Scan::Broken { resync: 1 };
            }
            self.pos = 2;
        }
        loop {
            if self.in_scan {
                // Entropy-coded data: 0xFF is followed by a stuffed 0x00, a
                // restart marker, fill bytes, or the marker that ends the scan.
                let Some(i) = data[self.pos..].iter().position(|&b| b == 0xFF) else {
                    self.pos = data.len();
                    return Scan::NeedMore;
                };
                let at = self.pos + i;
                let Some(&next) = data.get(at + 1) else {
                    self.pos = at;
                    return Scan::NeedMore;
                };
                if next == 0x00 || (0xD0..=0xD7).contains(&next) {
                    self.pos = at + 2;
                    continue;
                }
                if next == 0xFF {
                    self.pos = at + 1;
                    continue;
                }
                self.pos = at;
                self.in_scan = false;
            }
            // Expect a marker at self.pos.
            match marker_at(data, self.pos) {
                Marker::NeedMore => return Scan::NeedMore,
                // A bad segment length sent us astray, possibly past the next
                // frame's SOI: look for it from the start of this frame.
                Marker::Astray | Marker::BadLength { .. } => return Scan::Broken { resync: 2 },
                Marker::Bare { marker: EOI, next } => return Scan::Complete(next),
                // A new frame starts before this one ended: this one is truncated.
                Marker::Bare { marker: SOI, next } => return Scan::Broken { resync: next - 2 },
                Marker::Bare { next, .. } => self.pos = next,
                Marker::Segment { marker, end, .. } => {
                    self.pos = end;
                    if marker == SOS {
                        self.in_scan = true;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal structurally valid JPEG: SOI, SOF0 (w x h), SOS, 3 bytes of
    /// entropy data with a stuffed 0xFF00 and a restart marker, EOI.
    pub(crate) fn tiny_jpeg(w: u16, h: u16) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8];
        v.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 8]);
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&[1, 1, 0x11, 0]);
        v.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 1, 1, 0, 0, 0x3F, 0]);
        v.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56]);
        v.extend_from_slice(&[0xFF, 0xD9]);
        v
    }

    #[test]
    fn inspect_reads_the_size_and_accepts_zero_padding_after_eoi() {
        let mut j = tiny_jpeg(320, 240);
        assert_eq!(
            inspect(&j).unwrap(),
            JpegInfo {
                width: 320,
                height: 240
            }
        );
        j.extend_from_slice(&[0, 0, 0]);
        assert!(inspect(&j).is_ok());
    }

    #[test]
    fn inspect_rejects_truncation_missing_soi_and_bad_lengths() {
        let j = tiny_jpeg(8, 8);
        for cut in 0..j.len() - 1 {
            let e = inspect(&j[..cut]).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::BadFrame, "cut at {cut}");
        }
        let mut bad = j.clone();
        bad[0] = 0;
        assert!(inspect(&bad).is_err());
        let mut bad = j.clone();
        bad[5] = 0xFF; // SOF length runs past the end
        assert!(inspect(&bad).is_err());
    }

    #[test]
    fn scanner_splits_concatenated_frames_fed_one_byte_at_a_time() {
        let a = tiny_jpeg(16, 16);
        let mut stream = a.clone();
        stream.extend_from_slice(&tiny_jpeg(32, 8));
        let mut sc = FrameScanner::new();
        let mut got = None;
        for n in 1..=stream.len() {
            match sc.scan(&stream[..n]) {
                Scan::NeedMore => continue,
                other => {
                    got = Some(other);
                    break;
                }
            }
        }
        assert_eq!(got, Some(Scan::Complete(a.len())));
    }

    #[test]
    fn scanner_reports_a_truncated_frame_at_the_next_soi() {
        let a = tiny_jpeg(16, 16);
        let cut = a.len() - 5; // inside the entropy data
        let mut stream = a[..cut].to_vec();
        stream.extend_from_slice(&tiny_jpeg(16, 16));
        let mut sc = FrameScanner::new();
        assert_eq!(sc.scan(&stream), Scan::Broken { resync: cut });
    }
}
