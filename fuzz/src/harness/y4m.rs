//! `y4m`: a YUV4MPEG2 replay file through [`Y4mReader`], and every frame read
//! through a preprocessor of its format.
//!
//! Input: the file.
//!
//! Checks: opening fails only as `InvalidConfig` or `Unsupported` (a header
//! problem); the reader ends (every frame consumes at least its `FRAME` line
//! and one byte, so at most one read per byte before `Ok(None)`, which then
//! stays); a frame has the header's size and exactly `width * height * 2`
//! bytes of YUYV (`width * height` of GREY for `mono`); a read error is
//! `BadFrame` and ends the stream; every frame read converts through a
//! preprocessor without error (a whole raw frame is always valid).

use mainstream::camera::replay::{Chroma, FrameReader, Y4mReader};
use mainstream::frame::PixelFormat;
use mainstream::preprocess::{Fit, InputSpec, Preprocessor};
use mainstream::ErrorKind;

pub fn run(data: &[u8]) {
    let path = super::scratch::file("in.y4m", data);
    let mut reader = match Y4mReader::open(&path) {
        Ok(r) => r,
        Err(e) => {
            assert!(
                matches!(e.kind(), ErrorKind::InvalidConfig | ErrorKind::Unsupported),
                "{:?}: {e}",
                e.kind()
            );
            return;
        }
    };
    let header = *reader.header();
    let (w, h) = (header.width, header.height);
    let format = if header.chroma == Chroma::Mono {
        PixelFormat::Grey
    } else {
        PixelFormat::Yuyv
    };
    assert_eq!(reader.format(), format);
    let spec = InputSpec {
        width: 8,
        height: 8,
        ..InputSpec::IMAGENET_224
    };
    let mut out = vec![0f32; spec.tensor_len()];
    let mut pre: Option<Preprocessor> = None;
    for _ in 0..=data.len() {
        match reader.read() {
            Ok(None) => {
                assert!(matches!(reader.read(), Ok(None)), "read after the end");
                return;
            }
            Ok(Some(dims)) => {
                assert_eq!(dims, (w, h));
                let frame = reader.data();
                let want = format.frame_bytes(w, h).expect("raw format");
                assert_eq!(frame.len(), want, "{format} {w}x{h}");
                let p = pre.get_or_insert_with(|| {
                    Preprocessor::new(w, h, format, &spec, Fit::Stretch)
                        .expect("a preprocessor for a Y4M frame read whole")
                });
                if let Err(e) = p.run(frame, &mut out) {
                    panic!("a whole {format} {w}x{h} frame refused: {e}");
                }
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::BadFrame, "{e}");
                assert!(
                    matches!(reader.read(), Ok(None)),
                    "a Y4M stream goes on after damage"
                );
                return;
            }
        }
    }
    panic!("Y4mReader did not end after {} reads", data.len() + 1);
}
