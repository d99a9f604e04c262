//! `mjpeg`: a replay file of concatenated JPEGs through [`MjpegReader`], the
//! camera's frame scanner and header checks, and every frame read through a
//! preprocessor.
//!
//! Input: byte 0 picks the reader's frame size limit (1 MiB, 4096, 600 or
//! 64 + byte 0 bytes, so the limit paths are reached with small inputs) and
//! how the same bytes are fed to [`FrameScanner`] in pieces (1 to 64 bytes
//! at a time); the rest is the file.
//!
//! Checks:
//! - the reader ends: every `read` consumes input, so at most one call per
//!   byte before `Ok(None)`, which then stays;
//! - a frame it returns is within the limit, starts with SOI, is a whole
//!   JPEG by [`jpeg::inspect`] with the size `read` reported, and is the
//!   next bytes of the file at or after the previous frame's end;
//! - errors are `BadFrame`;
//! - each frame through a preprocessor of its own size (up to 320x240):
//!   decoded or refused as `BadFrame`;
//! - [`FrameScanner`] gives the same answer fed in pieces as fed at once
//!   (it is resumable), `Complete(n)` ends with EOI, offsets stay inside the
//!   data; [`jpeg::header_info`] and [`jpeg::inspect`] agree.

use mainstream::camera::jpeg::{self, FrameScanner, Scan};
use mainstream::camera::replay::{FrameReader, MjpegReader};
use mainstream::frame::PixelFormat;
use mainstream::preprocess::{Fit, InputSpec, Preprocessor};
use mainstream::ErrorKind;

const MAX_PREPROCESS_AREA: u32 = 320 * 240;
/// The preprocessor's largest frame side (`preprocess::MAX_DIM`, private).
const MAX_DIM: u32 = 8192;

pub fn run(data: &[u8]) {
    let Some((&b0, stream)) = data.split_first() else {
        return;
    };
    check_scanner(stream, 1 + usize::from(b0 >> 2));
    check_header(stream);
    let max_frame = match b0 & 3 {
        0 => 1 << 20,
        1 => 4096,
        2 => 600,
        _ => 64 + usize::from(b0),
    };
    let path = super::scratch::file("in.mjpeg", stream);
    let mut reader = match MjpegReader::open(&path, max_frame) {
        Ok(r) => r,
        Err(e) => panic!("opening a readable file failed: {e}"),
    };
    let spec = InputSpec {
        width: 16,
        height: 16,
        ..InputSpec::IMAGENET_224
    };
    let mut out = vec![0f32; spec.tensor_len()];
    let mut consumed = 0usize;
    for _ in 0..=stream.len() + 1 {
        match reader.read() {
            Ok(None) => {
                assert!(matches!(reader.read(), Ok(None)), "read after the end");
                return;
            }
            Ok(Some((w, h))) => {
                let frame = reader.data();
                assert!(frame.len() <= max_frame, "{} > {max_frame}", frame.len());
                assert_eq!(&frame[..2], [0xFF, 0xD8]);
                let info = jpeg::inspect(frame).expect("a frame read is a whole JPEG");
                assert_eq!((info.width, info.height), (w, h));
                let at = find(&stream[consumed..], frame)
                    .unwrap_or_else(|| panic!("frame is not in the file after byte {consumed}"));
                consumed += at + frame.len();
                // A frame of another size than configured is refused by the
                // preprocessor; one beyond its limits cannot be configured.
                if w <= MAX_DIM && h <= MAX_DIM && w * h <= MAX_PREPROCESS_AREA {
                    let mut p = Preprocessor::new(w, h, PixelFormat::Mjpeg, &spec, Fit::Stretch)
                        .expect("a preprocessor for a frame's own size");
                    if let Err(e) = p.run(frame, &mut out) {
                        assert_eq!(e.kind(), ErrorKind::BadFrame, "{e}");
                    }
                }
            }
            Err(e) => assert_eq!(e.kind(), ErrorKind::BadFrame, "{e}"),
        }
    }
    panic!(
        "MjpegReader did not end after {} reads of a {}-byte file",
        stream.len() + 2,
        stream.len()
    );
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn check_scanner(data: &[u8], step: usize) {
    let whole = FrameScanner::new().scan(data);
    match whole {
        Scan::Complete(n) => {
            assert!(n >= 4 && n <= data.len(), "Complete({n}) of {}", data.len());
            assert_eq!(&data[n - 2..n], [0xFF, 0xD9], "Complete({n}) not at EOI");
        }
        Scan::Broken { resync } => assert!(resync <= data.len().max(2), "resync {resync}"),
        Scan::NeedMore => {}
    }
    let mut s = FrameScanner::new();
    let mut end = 0;
    let pieces = loop {
        end = (end + step).min(data.len());
        let r = s.scan(&data[..end]);
        if r != Scan::NeedMore || end == data.len() {
            break r;
        }
    };
    assert_eq!(
        pieces, whole,
        "fed {step} bytes at a time, stopped at {end}"
    );
}

fn check_header(data: &[u8]) {
    let head = jpeg::header_info(data);
    if let Ok(i) = jpeg::inspect(data) {
        assert_eq!(head.as_ref().ok(), Some(&i));
    }
    if let Err(e) = head {
        assert_eq!(e.kind(), ErrorKind::BadFrame, "{e}");
    }
    if let Some(i) = jpeg::find_soi(data) {
        assert_eq!(data[i..i + 3], [0xFF, 0xD8, 0xFF]);
    }
}
