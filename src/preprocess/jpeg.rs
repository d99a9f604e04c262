//! Motion-JPEG frame decoding into buffers we own.
//!
//! Each MJPEG frame is a complete JPEG. Before a decoder sees a frame we check its
//! structure ourselves, so damaged frames are rejected rather than shown half grey:
//!
//! - it must start with SOI and contain an EOI marker (a truncated frame has none;
//!   bytes after the last EOI, e.g. a driver's zero padding, are ignored);
//! - the header segments up to the first SOS must be well formed;
//! - the frame size in SOF must equal the configured size.
//!
//! Then the baseline decoder (`jpegdec.rs`) decodes it: what cameras send
//! (baseline Huffman, 8-bit, 4:2:0/4:2:2/4:4:4/grey, restart markers, with or
//! without Huffman tables), into memory allocated once, with libjpeg-turbo's
//! arithmetic. It rejects a frame whose scan data ends before its last block, even
//! when the frame was cut and terminated with EOI.
//!
//! Frames it does not handle (progressive, 12-bit, multi-scan, other subsampling,
//! RGB) go to `zune-jpeg` (pure Rust) in strict mode, up to
//! [`FALLBACK_MAX_PIXELS`] (larger ones are bad frames). Neither decodes arithmetic
//! coding: such frames are bad frames. That path
//! allocates per frame: `zune-jpeg` 0.5 cannot reuse a decoder (a `JpegDecoder` owns
//! its input and per-image state, a few tens of KiB for 640x480); the RGB output
//! still goes into [`Jpeg::rgb`]. Such frames are counted
//! ([`Jpeg::fallback_frames`]) and logged once per stream; the `preprocess_alloc`
//! test bounds their allocations.
//!
//! Many UVC cameras omit the Huffman tables (DHT) from their MJPEG frames and rely on
//! the standard tables of ITU-T T.81 Annex K.3 (the OpenDML MJPEG convention). The
//! baseline decoder starts every frame with them; `zune-jpeg` fills them in only for
//! frames that carry an `AVI1` APP0 segment, so for it we splice the standard tables
//! in after SOI, into a buffer allocated once.

use super::jpegdec::{Baseline, Outcome};
use super::Isa;
use crate::frame::jpeg::{Segments, DHT, EOI, SOI, SOS};
use crate::frame::Reject;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

/// Largest frame, in pixels, left to `zune-jpeg` (4096 x 4096). What it
/// allocates grows with the frame (coefficients of a progressive JPEG: 2 bytes
/// per sample), on top of the 3 bytes per pixel of its output; above this a
/// JPEG that the baseline decoder does not handle is a bad frame, which
/// bounds the memory a stream of large frames can take.
pub(crate) const FALLBACK_MAX_PIXELS: usize = 4096 * 4096;

/// Extra room in the splice buffer beyond a frame as large as raw RGB.
const SPLICE_SLACK: usize = 4096;

/// A decoded frame.
pub(crate) enum Decoded<'a> {
    /// In the baseline decoder's planes: [`Baseline::rgb_row`] gives each row.
    Rows(&'a mut Baseline),
    /// Packed RGB, `width * height * 3` bytes (`zune-jpeg`'s output).
    Frame(&'a [u8]),
}

/// Decodes JPEG frames of one fixed size to packed RGB.
pub(crate) struct Jpeg {
    width: usize,
    height: usize,
    options: DecoderOptions,
    /// `zune-jpeg`'s output, `width * height * 3` bytes; reused for every frame
    /// it decodes. Allocated up front but touched only by such frames (the
    /// baseline decoder hands out rows), so it costs no resident memory
    /// before the first one.
    rgb: Vec<u8>,
    /// A frame with the standard Huffman tables spliced in; reused, never grown.
    spliced: Vec<u8>,
    /// The allocation-free decoder for camera JPEGs.
    baseline: Baseline,
    /// Frames the baseline decoder left to `zune-jpeg`.
    fallbacks: u64,
}

impl Jpeg {
    /// A decoder for `width` x `height` frames; allocates every buffer it needs.
    pub(crate) fn new(width: usize, height: usize) -> Jpeg {
        let options = DecoderOptions::default()
            .jpeg_set_out_colorspace(ColorSpace::RGB)
            .set_strict_mode(true)
            .set_max_width(width)
            .set_max_height(height);
        let rgb_len = width * height * 3;
        Jpeg {
            width,
            height,
            options,
            rgb: vec![0; rgb_len],
            spliced: Vec::with_capacity(rgb_len + SPLICE_SLACK),
            baseline: Baseline::new(width, height),
            fallbacks: 0,
        }
    }

    /// Frames decoded by `zune-jpeg` because the baseline decoder does not handle
    /// them (see the module documentation).
    pub(crate) fn fallback_frames(&self) -> u64 {
        self.fallbacks
    }

    /// Decodes one frame; on success its RGB pixels are row by row in the
    /// baseline decoder, or (a frame left to `zune-jpeg`) in one slice.
    ///
    /// A refused frame gives its [`Reject`] reason, without allocating. After a
    /// refusal the decoder is ready for the next frame. `isa` selects the build
    /// of the baseline decoder's loops.
    pub(crate) fn decode(&mut self, frame: &[u8], isa: Isa) -> Result<Decoded<'_>, Reject> {
        let data = check_structure(frame)?;
        let header = walk_header(data)?;
        match header.size {
            Some(size) if size == (self.width, self.height) => {}
            Some((w, h)) => {
                return Err(Reject::Size {
                    width: w as u32,
                    height: h as u32,
                    want_width: self.width as u32,
                    want_height: self.height as u32,
                })
            }
            None => {
                return Err(Reject::Header {
                    what: "no frame header before the scan",
                    at: 2,
                })
            }
        }
        match self.baseline.decode(data, isa)? {
            Outcome::Decoded => return Ok(Decoded::Rows(&mut self.baseline)),
            Outcome::Unsupported(_) if self.width * self.height > FALLBACK_MAX_PIXELS => {
                return Err(Reject::Data(
                    "not a baseline JPEG, and too large for the general decoder",
                ));
            }
            Outcome::Unsupported(why) => {
                self.fallbacks += 1;
                if self.fallbacks == 1 {
                    log::info!(
                        "MJPEG frames are {why}: decoding them with zune-jpeg, which \
                         allocates per frame"
                    );
                }
            }
        }
        let data = if header.has_dht {
            data
        } else {
            if data.len() + STANDARD_DHT.len() > self.spliced.capacity() {
                return Err(Reject::TooLarge {
                    width: 0,
                    height: 0,
                });
            }
            self.spliced.clear();
            self.spliced.extend_from_slice(&data[..2]);
            self.spliced.extend_from_slice(&STANDARD_DHT);
            self.spliced.extend_from_slice(&data[2..]);
            &self.spliced[..]
        };
        // zune-jpeg's own errors are values with messages; it allocates per
        // frame anyway, but its message is dropped unformatted.
        let mut dec = JpegDecoder::new_with_options(ZCursor::new(data), self.options);
        if dec.decode_headers().is_err() {
            return Err(Reject::Data("zune-jpeg refused the headers"));
        }
        let (w, h) = dec.dimensions().unwrap_or((0, 0));
        if (w, h) != (self.width, self.height) {
            return Err(Reject::Size {
                width: w as u32,
                height: h as u32,
                want_width: self.width as u32,
                want_height: self.height as u32,
            });
        }
        if dec.output_buffer_size() != Some(self.rgb.len()) {
            return Err(Reject::Data("does not decode to RGB"));
        }
        if dec.decode_into(&mut self.rgb).is_err() {
            return Err(Reject::Data("zune-jpeg refused the data"));
        }
        Ok(Decoded::Frame(&self.rgb))
    }
}

/// Checks SOI and EOI; returns the frame up to and including its last EOI.
fn check_structure(frame: &[u8]) -> Result<&[u8], Reject> {
    if frame.len() < 4 || frame[0] != 0xFF || frame[1] != SOI {
        return Err(Reject::NotJpeg);
    }
    // Inside entropy-coded data an 0xFF byte is always followed by 0x00 or a restart
    // marker, so FF D9 can only be the EOI marker (or lie inside a header segment,
    // which the decoder's own checks catch if the frame stops there).
    match frame.windows(2).rposition(|w| w == [0xFF, EOI]) {
        Some(i) if i >= 2 => Ok(&frame[..i + 2]),
        _ => Err(Reject::Truncated { len: frame.len() }),
    }
}

/// What the header segments before the first scan say.
#[derive(Debug, PartialEq)]
struct Header {
    /// A DHT segment is present.
    has_dht: bool,
    /// `(width, height)` from the SOF segment, if there is one.
    size: Option<(usize, usize)>,
}

/// Walks the header segments from SOI to the first SOS.
fn walk_header(data: &[u8]) -> Result<Header, Reject> {
    let mut header = Header {
        has_dht: false,
        size: None,
    };
    for seg in Segments::new(data) {
        let seg = seg?;
        match seg.marker {
            DHT => header.has_dht = true,
            // SOF0..SOF2 (baseline, extended, progressive): P, Y, X, ...
            0xC0..=0xC2 if seg.body.len() >= 6 => {
                if let Some((w, h)) = crate::frame::jpeg::sof_size(seg.body) {
                    header.size = Some((w as usize, h as usize));
                }
            }
            SOS => return Ok(header),
            _ => {}
        }
    }
    Err(Reject::Header {
        what: "no scan",
        at: data.len(),
    })
}

/// Number of codes of each length 1..=16, then the symbols, of the four standard
/// Huffman tables of ITU-T T.81 Annex K.3 (tables K.3 to K.6).
pub(super) const DC_LUMA_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
pub(super) const DC_CHROMA_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
pub(super) const DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
pub(super) const AC_LUMA_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D];
pub(super) const AC_LUMA_VALUES: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
    0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5,
    0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2,
    0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];
pub(super) const AC_CHROMA_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
pub(super) const AC_CHROMA_VALUES: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0,
    0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26,
    0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5,
    0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3,
    0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA,
    0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];

/// Length of the DHT segment holding all four standard tables, marker included.
const STANDARD_DHT_LEN: usize = 2 + 2 + 4 * 17 + 2 * 12 + 2 * 162;

/// The standard tables as one DHT segment (class/id 0x00, 0x10, 0x01, 0x11).
const STANDARD_DHT: [u8; STANDARD_DHT_LEN] = standard_dht();

const fn standard_dht() -> [u8; STANDARD_DHT_LEN] {
    let mut out = [0u8; STANDARD_DHT_LEN];
    out[0] = 0xFF;
    out[1] = 0xC4;
    let len = (STANDARD_DHT_LEN - 2) as u16;
    out[2] = (len >> 8) as u8;
    out[3] = len as u8;
    let mut at = 4;
    at = put_table(&mut out, at, 0x00, &DC_LUMA_BITS, &DC_VALUES);
    at = put_table(&mut out, at, 0x10, &AC_LUMA_BITS, &AC_LUMA_VALUES);
    at = put_table(&mut out, at, 0x01, &DC_CHROMA_BITS, &DC_VALUES);
    at = put_table(&mut out, at, 0x11, &AC_CHROMA_BITS, &AC_CHROMA_VALUES);
    assert!(at == STANDARD_DHT_LEN);
    out
}

const fn put_table(
    out: &mut [u8; STANDARD_DHT_LEN],
    mut at: usize,
    class_id: u8,
    bits: &[u8; 16],
    values: &[u8],
) -> usize {
    out[at] = class_id;
    at += 1;
    let mut i = 0;
    while i < 16 {
        out[at] = bits[i];
        at += 1;
        i += 1;
    }
    i = 0;
    while i < values.len() {
        out[at] = values[i];
        at += 1;
        i += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_tables_have_as_many_symbols_as_codes() {
        let sum = |b: &[u8; 16]| b.iter().map(|&n| usize::from(n)).sum::<usize>();
        assert_eq!(sum(&DC_LUMA_BITS), DC_VALUES.len());
        assert_eq!(sum(&DC_CHROMA_BITS), DC_VALUES.len());
        assert_eq!(sum(&AC_LUMA_BITS), AC_LUMA_VALUES.len());
        assert_eq!(sum(&AC_CHROMA_BITS), AC_CHROMA_VALUES.len());
    }

    #[test]
    fn frames_without_start_or_end_marker_are_rejected() {
        assert!(check_structure(b"").is_err());
        assert!(check_structure(&[0xFF, 0xD8, 0xFF, 0xDB, 0, 4]).is_err());
        assert!(check_structure(&[0x00, 0xD8, 0xFF, 0xD9]).is_err());
        let ok = [0xFF, 0xD8, 0xFF, 0xD9, 0, 0, 0];
        assert_eq!(check_structure(&ok).map(<[u8]>::len).ok(), Some(4));
    }

    #[test]
    fn header_walk_finds_dht_and_frame_size_before_sos_and_rejects_bad_lengths() {
        let soi = [0xFF, 0xD8];
        let sos = [0xFF, 0xDA, 0x00, 0x02];
        // SOF0: length 11, precision 8, height 480, width 640, one component.
        let sof = [
            0xFF, 0xC0, 0x00, 0x0B, 8, 0x01, 0xE0, 0x02, 0x80, 1, 1, 0x11, 0,
        ];
        let with: Vec<u8> = [&soi[..], &[0xFF, 0xC4, 0x00, 0x02], &sof, &sos].concat();
        let h = walk_header(&with).unwrap();
        assert_eq!(
            h,
            Header {
                has_dht: true,
                size: Some((640, 480))
            }
        );
        let without: Vec<u8> = [&soi[..], &[0xFF, 0xFE, 0x00, 0x03, 0x41], &sos].concat();
        assert_eq!(
            walk_header(&without).unwrap(),
            Header {
                has_dht: false,
                size: None
            }
        );
        let bad: Vec<u8> = [&soi[..], &[0xFF, 0xFE, 0x00, 0x40, 0x41], &sos].concat();
        assert!(walk_header(&bad).is_err());
        assert!(walk_header(&[0xFF, 0xD8, 0xFF]).is_err());
    }
}
