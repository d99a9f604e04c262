//! `preprocess`: one frame of any pixel format through [`Preprocessor`], the
//! baseline JPEG decoder included.
//!
//! Input: 5 bytes of parameters, then the frame.
//!
//! - byte 0: bits 0-1 the pixel format (MJPEG, YUYV, GREY, RGB24), bits 2-3
//!   the fit (stretch, centre crop, resize 256 crop 224, resize/crop from
//!   bytes 3 and 4, nonsense included), bits 4-5 the kernels (best the CPU
//!   has, SSE4.1, portable), bit 6: an MJPEG preprocessor is built for the
//!   size the frame's own header says (so mutated real frames reach the
//!   decoder) instead of bytes 1 and 2;
//! - bytes 1, 2: source width and height, 1 to 64 (raw formats; MJPEG
//!   without bit 6: 1 to 256, mostly not the frame's size);
//! - bytes 3, 4: network input width and height, 1 to 48.
//!
//! Checks: a preprocessor is refused only for an odd YUYV width, as
//! `InvalidConfig`; a frame is refused only as `BadFrame`, and a raw frame
//! only when it is shorter than its size; `run` and `run_rgb8` agree on the
//! outcome and on every pixel (the normalised value of the 8-bit one),
//! values are finite and inside the normalised range of 0..=255, GREY comes
//! out grey, and running the same frame again gives the same bits (no state
//! left behind by a frame, good or bad).

use mainstream::camera::jpeg;
use mainstream::frame::PixelFormat;
use mainstream::preprocess::{Fit, InputSpec, Preprocessor, ISA_ENV};
use mainstream::ErrorKind;

/// Largest MJPEG frame area decoded at the header's own size (keeps one
/// execution under a few milliseconds; larger headers take the fallback size).
const MAX_HEADER_AREA: u32 = 320 * 240;

/// The preprocessor's largest frame side (`preprocess::MAX_DIM`, private).
const MAX_DIM: u32 = 8192;

/// The kernel choices of bits 4-5 (`None`: what the CPU supports best).
const ISAS: [Option<&str>; 4] = [None, Some("sse4.1"), Some("portable"), None];

pub fn run(data: &[u8]) {
    let Some((&[b0, b1, b2, b3, b4], frame)) = data.split_first_chunk::<5>() else {
        return;
    };
    let format = [
        PixelFormat::Mjpeg,
        PixelFormat::Yuyv,
        PixelFormat::Grey,
        PixelFormat::Rgb24,
    ][usize::from(b0 & 3)];
    let fit = match (b0 >> 2) & 3 {
        0 => Fit::Stretch,
        1 => Fit::CenterCrop,
        2 => Fit::ResizeCrop {
            resize_short_side: 256,
            crop: 224,
        },
        _ => Fit::ResizeCrop {
            resize_short_side: u32::from(b3),
            crop: u32::from(b4),
        },
    };
    let isa = ISAS[usize::from((b0 >> 4) & 3)];
    let (w, h) = match format {
        PixelFormat::Mjpeg => {
            let own = jpeg::header_info(frame).ok().filter(|i| {
                b0 & 0x40 != 0
                    && i.width <= MAX_DIM
                    && i.height <= MAX_DIM
                    && i.width * i.height <= MAX_HEADER_AREA
            });
            match own {
                Some(i) => (i.width, i.height),
                None => (1 + u32::from(b1), 1 + u32::from(b2)),
            }
        }
        _ => (1 + u32::from(b1 % 64), 1 + u32::from(b2 % 64)),
    };
    let spec = InputSpec {
        width: 1 + u32::from(b3 % 48),
        height: 1 + u32::from(b4 % 48),
        ..InputSpec::IMAGENET_224
    };
    // The kernels are chosen from the environment when a preprocessor is
    // built. The fuzz targets are single-threaded; the replay test's other
    // threads read the environment only through std, which locks it.
    match isa {
        Some(v) => std::env::set_var(ISA_ENV, v),
        None => std::env::remove_var(ISA_ENV),
    }
    let built = Preprocessor::new(w, h, format, &spec, fit);
    std::env::remove_var(ISA_ENV);
    let mut p = match built {
        Ok(p) => p,
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
            assert!(
                format == PixelFormat::Yuyv && w % 2 == 1,
                "{format} {w}x{h} -> {}x{} refused: {e}",
                spec.width,
                spec.height
            );
            return;
        }
    };
    if let Some(isa) = isa {
        if isa == "portable" {
            assert_eq!(p.kernels(), "portable");
        }
    }
    check_frame(&mut p, &spec, format, (w, h), frame);
}

fn check_frame(
    p: &mut Preprocessor,
    spec: &InputSpec,
    format: PixelFormat,
    (w, h): (u32, u32),
    frame: &[u8],
) {
    let plane = spec.width as usize * spec.height as usize;
    let mut out = vec![f32::NAN; 3 * plane];
    let mut rgb = vec![0u8; 3 * plane];
    let first = p.run(frame, &mut out);
    let second = p.run_rgb8(frame, &mut rgb);
    if let Some(need) = format.frame_bytes(w, h) {
        assert_eq!(
            first.is_ok(),
            frame.len() >= need,
            "{format} {w}x{h}: {} bytes, need {need}: {first:?}",
            frame.len()
        );
    }
    match (&first, &second) {
        (Ok(()), Ok(())) => {}
        (Err(a), Err(b)) => {
            assert_eq!(a.kind(), ErrorKind::BadFrame, "{a}");
            assert_eq!(b.kind(), ErrorKind::BadFrame, "{b}");
            assert!(!a.to_string().is_empty());
            return;
        }
        _ => panic!("run and run_rgb8 disagree on one frame: {first:?} / {second:?}"),
    }
    for c in 0..3 {
        let (lo, hi) = (spec.normalise(c, 0), spec.normalise(c, 255));
        let tol = 1e-4 * (1.0 + lo.abs().max(hi.abs()));
        for i in 0..plane {
            let v = out[c * plane + i];
            let want = spec.normalise(c, rgb[3 * i + c]);
            assert!(
                v.is_finite() && v >= lo - tol && v <= hi + tol,
                "channel {c} value {v} outside [{lo}, {hi}]"
            );
            assert!(
                (v - want).abs() <= tol,
                "pixel {i} channel {c}: run gives {v}, run_rgb8 {} (normalised {want})",
                rgb[3 * i + c]
            );
        }
    }
    if format == PixelFormat::Grey {
        for px in rgb.chunks_exact(3) {
            assert!(
                px[0] == px[1] && px[1] == px[2],
                "GREY frame not grey: {px:?}"
            );
        }
    }
    let mut again = vec![0f32; 3 * plane];
    let third = p.run(frame, &mut again);
    assert!(third.is_ok(), "the same frame now fails: {third:?}");
    let same = out
        .iter()
        .zip(&again)
        .all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(same, "the same frame gives other values the third time");
}
