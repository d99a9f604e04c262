//! The JPEG marker walk, written once: the camera's framing checks
//! (`camera/jpeg.rs`), the preprocessor's header check (`preprocess/jpeg.rs`)
//! and the baseline decoder (`preprocess/jpegdec.rs`) all read a JPEG's
//! header segments through [`Segments`], and the camera's stream splitter
//! steps through markers with [`marker_at`].
//!
//! A header is SOI, then segments `FF m LL LL body...` up to and including the
//! first SOS, whose body is the scan header; the entropy-coded data follows.
//! Any number of `FF` fill bytes may precede a marker; the stand-alone
//! markers (TEM, RST0..RST7) carry no length. Nothing here allocates or
//! decodes pixels.

use super::Reject;

/// Start of image.
pub const SOI: u8 = 0xD8;
/// End of image.
pub const EOI: u8 = 0xD9;
/// Start of scan.
pub const SOS: u8 = 0xDA;
/// Define Huffman tables.
pub const DHT: u8 = 0xC4;

/// Whether `m` is a start-of-frame marker (SOF0..SOF15 except DHT, JPG and DAC).
pub(crate) fn is_sof(m: u8) -> bool {
    (0xC0..=0xCF).contains(&m) && m != DHT && m != 0xC8 && m != 0xCC
}

/// Markers that stand alone, without a length field (TEM, RST0..RST7).
pub(crate) fn is_standalone(m: u8) -> bool {
    m == 0x01 || (0xD0..=0xD7).contains(&m)
}

/// What [`marker_at`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// No `FF` at the position: the walk went astray.
    Astray,
    /// The data ends before the marker (or its length field, or its segment) does.
    NeedMore,
    /// A marker without a length: stand-alone, SOI, EOI, or the invalid `FF 00`.
    /// The next marker is expected at `next`.
    Bare {
        /// The marker byte.
        marker: u8,
        /// Offset just after it.
        next: usize,
    },
    /// A segment with a length field.
    Segment {
        /// The marker byte.
        marker: u8,
        /// Offset of the segment's body (after the length field).
        body: usize,
        /// Offset just after the segment.
        end: usize,
    },
    /// A segment whose length field is below 2.
    BadLength {
        /// The marker byte.
        marker: u8,
    },
}

/// Reads the marker at `pos` (after any fill bytes) and, for a segment, its
/// length; checks that the whole segment is inside `data`.
pub(crate) fn marker_at(data: &[u8], pos: usize) -> Marker {
    if data.get(pos) != Some(&0xFF) {
        return if pos >= data.len() {
            Marker::NeedMore
        } else {
            Marker::Astray
        };
    }
    let mut p = pos;
    while data.get(p) == Some(&0xFF) {
        p += 1;
    }
    let Some(&marker) = data.get(p) else {
        return Marker::NeedMore;
    };
    p += 1;
    if is_standalone(marker) || matches!(marker, SOI | EOI | 0x00) {
        return Marker::Bare { marker, next: p };
    }
    let Some(lb) = data.get(p..p + 2) else {
        return Marker::NeedMore;
    };
    let len = usize::from(u16::from_be_bytes([lb[0], lb[1]]));
    if len < 2 {
        return Marker::BadLength { marker };
    }
    if p + len > data.len() {
        return Marker::NeedMore;
    }
    Marker::Segment {
        marker,
        body: p + 2,
        end: p + len,
    }
}

/// One header segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment<'a> {
    /// The marker byte (`0xC0` for SOF0, ...).
    pub marker: u8,
    /// Offset of the marker's `FF` in the frame.
    pub at: usize,
    /// The segment's body, after the length field.
    pub body: &'a [u8],
    /// Offset just after the segment: for SOS, where the scan data starts.
    pub end: usize,
}

/// The header segments of a whole JPEG, from SOI to the first SOS inclusive.
///
/// Yields `Err` (and then ends) for a frame without SOI, a marker missing
/// where one is due, SOI, EOI or `FF 00` before the scan, or a segment length
/// that is below 2 or runs past the data.
#[derive(Clone, Debug)]
pub(crate) struct Segments<'a> {
    data: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> Segments<'a> {
    /// The walk over `data`, which must start with SOI.
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Segments {
            data,
            pos: 0,
            done: false,
        }
    }

    fn fail(&mut self, what: &'static str, at: usize) -> Option<Result<Segment<'a>, Reject>> {
        self.done = true;
        Some(Err(Reject::Header { what, at }))
    }
}

impl<'a> Iterator for Segments<'a> {
    type Item = Result<Segment<'a>, Reject>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.pos == 0 {
            if self.data.len() < 4 || self.data[0] != 0xFF || self.data[1] != SOI {
                self.done = true;
                return Some(Err(Reject::NotJpeg));
            }
            self.pos = 2;
        }
        loop {
            let at = self.pos;
            match marker_at(self.data, at) {
                Marker::Astray => return self.fail("no marker where one is due", at),
                Marker::NeedMore => return self.fail("the header ends inside a segment", at),
                Marker::BadLength { .. } => return self.fail("segment length below 2", at),
                Marker::Bare { marker, next } if is_standalone(marker) => self.pos = next,
                Marker::Bare { marker: SOI, .. } => return self.fail("a second SOI", at),
                Marker::Bare { marker: EOI, .. } => return self.fail("EOI before the scan", at),
                Marker::Bare { .. } => return self.fail("an invalid marker FF00", at),
                Marker::Segment { marker, body, end } => {
                    self.pos = end;
                    self.done = marker == SOS;
                    return Some(Ok(Segment {
                        marker,
                        at,
                        body: &self.data[body..end],
                        end,
                    }));
                }
            }
        }
    }
}

/// Width and height from a SOF segment's body (`P Y Y X X ...`), if it is long
/// enough.
pub(crate) fn sof_size(body: &[u8]) -> Option<(u32, u32)> {
    let b = body.get(..5)?;
    let height = u32::from(u16::from_be_bytes([b[1], b[2]]));
    let width = u32::from(u16::from_be_bytes([b[3], b[4]]));
    Some((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SOI, APP0 after fill bytes, RST0 (stand-alone), SOF0 (w x h), SOS, data, EOI.
    fn header(w: u16, h: u16) -> Vec<u8> {
        let mut v = vec![0xFF, SOI];
        v.extend_from_slice(&[0xFF, 0xFF, 0xE0, 0x00, 0x04, b'J', b'F']);
        v.extend_from_slice(&[0xFF, 0xD0]);
        v.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 8]);
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&[1, 1, 0x11, 0]);
        v.extend_from_slice(&[0xFF, SOS, 0x00, 0x08, 1, 1, 0, 0, 0x3F, 0]);
        v.extend_from_slice(&[0x12, 0xFF, 0x00, 0xFF, EOI]);
        v
    }

    #[test]
    fn segments_are_walked_from_soi_to_the_scan_past_fill_bytes_and_restarts() {
        let j = header(640, 480);
        let segs: Vec<Segment> = Segments::new(&j).map(|s| s.unwrap()).collect();
        let markers: Vec<u8> = segs.iter().map(|s| s.marker).collect();
        assert_eq!(markers, [0xE0, 0xC0, SOS]);
        assert_eq!(segs[0].body, b"JF");
        assert_eq!(sof_size(segs[1].body), Some((640, 480)));
        assert_eq!(&j[segs[2].end..segs[2].end + 1], &[0x12]);
    }

    #[test]
    fn every_cut_and_a_bad_length_end_the_walk_with_an_error() {
        let j = header(8, 8);
        let sos_end = Segments::new(&j).last().unwrap().unwrap().end;
        for cut in 0..sos_end {
            let r: Result<Vec<_>, _> = Segments::new(&j[..cut]).collect();
            assert!(r.is_err(), "cut at {cut}");
        }
        let mut bad = j.clone();
        bad[5] = 0x01; // APP0 length 1
        assert!(Segments::new(&bad).any(|s| s.is_err()));
        let mut eoi = j.clone();
        eoi[3] = EOI; // FF FF D9: EOI where APP0 was
        assert!(Segments::new(&eoi).any(|s| s.is_err()));
        assert_eq!(
            Segments::new(b"\0\0\0\0").next(),
            Some(Err(Reject::NotJpeg))
        );
    }
}
