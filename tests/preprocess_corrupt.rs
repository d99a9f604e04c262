//! Damaged frames are errors of kind `BadFrame`, never panics, and do not disturb
//! the frames that follow.
//!
//! The damage is applied to real camera-like MJPEG frames (the vtest fixtures):
//! truncation at many offsets (what a USB camera delivers when it drops packets),
//! truncation with an end-of-image marker appended (a frame cut short but
//! terminated), random byte flips, garbage and frames of the wrong size.

use mainstream::error::ErrorKind;
use mainstream::frame::PixelFormat;
use mainstream::preprocess::{Fit, InputSpec, Preprocessor};
use std::path::PathBuf;

use crate::frames::with_declared_size;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/preprocess")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const JPEGS: [&str; 2] = [
    "vtest_0100_640x480_420.jpg",
    "vtest_0200_640x480_422std.jpg",
];

/// Damaged copies of each fixture per random-damage test.
const FLIPS: usize = 600;

/// A small network input keeps the resize cheap in these many-frame tests.
fn small_spec() -> InputSpec {
    InputSpec {
        width: 32,
        height: 32,
        ..InputSpec::IMAGENET_224
    }
}

struct Harness {
    p: Preprocessor,
    out: Vec<u8>,
}

impl Harness {
    fn mjpeg() -> Harness {
        let spec = small_spec();
        Harness {
            p: Preprocessor::new(640, 480, PixelFormat::Mjpeg, &spec, Fit::Stretch)
                .expect("preprocessor"),
            out: vec![0; spec.tensor_len()],
        }
    }

    /// `Ok(())` or the error kind; panics propagate and fail the test.
    fn run(&mut self, frame: &[u8]) -> Result<(), ErrorKind> {
        self.p.run_rgb8(frame, &mut self.out).map_err(|e| e.kind())
    }
}

/// xorshift32: deterministic noise without a dependency.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        self.next() as usize % n
    }
}

#[test]
fn truncated_mjpeg_frames_are_bad_frames_at_every_offset() {
    let mut h = Harness::mjpeg();
    for name in JPEGS {
        let frame = fixture(name);
        // Every offset in the headers, then every 37th byte through the scan data.
        let cuts = (0..1024).chain((1024..frame.len()).step_by(37));
        for cut in cuts {
            assert_eq!(
                h.run(&frame[..cut]),
                Err(ErrorKind::BadFrame),
                "{name} cut at {cut}"
            );
        }
    }
}

#[test]
fn truncated_mjpeg_frames_with_an_end_marker_are_bad_frames() {
    // A frame cut short but terminated with EOI (a camera that closes the frame
    // after losing packets). Cut inside the headers, the headers do not parse. Cut
    // inside the scan data, the decoder runs out of data before the last block
    // (libjpeg and zune-jpeg would substitute zero bits and show a damaged lower
    // part).
    let mut h = Harness::mjpeg();
    for name in JPEGS {
        let frame = fixture(name);
        let scan = frame
            .windows(2)
            .position(|w| w == [0xFF, 0xDA])
            .expect("SOS");
        let cuts = (2..frame.len() - 2).step_by(211).chain(2..scan + 14);
        // The last bytes too: losing even the final byte of scan data is seen.
        let cuts = cuts.chain(frame.len() - 12..frame.len() - 2);
        for cut in cuts {
            let mut f = frame[..cut].to_vec();
            f.extend_from_slice(&[0xFF, 0xD9]);
            assert_eq!(h.run(&f), Err(ErrorKind::BadFrame), "{name} cut at {cut}");
        }
    }
}

#[test]
fn random_byte_flips_are_errors_or_frames_but_never_panics() {
    let mut h = Harness::mjpeg();
    let mut rng = Rng(0x1234_5678);
    for name in JPEGS {
        let frame = fixture(name);
        let (mut ok, mut bad) = (0, 0);
        for _ in 0..FLIPS {
            let mut f = frame.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(f.len());
                f[at] ^= 1 << rng.below(8);
            }
            match h.run(&f) {
                Ok(()) => ok += 1,
                Err(kind) => {
                    assert_eq!(kind, ErrorKind::BadFrame);
                    bad += 1;
                }
            }
        }
        eprintln!("{name}: {ok} flipped frames decoded, {bad} rejected");
    }
}

#[test]
fn random_header_damage_never_panics() {
    // Flips concentrated in the header segments (tables, frame and scan headers),
    // where a decoder's size arithmetic lives.
    let mut h = Harness::mjpeg();
    let mut rng = Rng(0xdead_beef);
    for name in JPEGS {
        let frame = fixture(name);
        let sos = frame
            .windows(2)
            .position(|w| w == [0xFF, 0xDA])
            .expect("SOS")
            + 16;
        for _ in 0..FLIPS {
            let mut f = frame.clone();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(sos);
                f[at] = rng.next() as u8;
            }
            if let Err(kind) = h.run(&f) {
                assert_eq!(kind, ErrorKind::BadFrame);
            }
        }
    }
}

#[test]
fn garbage_and_wrongly_sized_frames_are_bad_frames() {
    let mut h = Harness::mjpeg();
    let mut rng = Rng(42);
    let noise: Vec<u8> = (0..60_000).map(|_| rng.next() as u8).collect();
    let mut soi_noise = vec![0xFF, 0xD8];
    soi_noise.extend_from_slice(&noise);
    soi_noise.extend_from_slice(&[0xFF, 0xD9]);
    let huge_segment = [0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xFF, 0, 0, 0xFF, 0xD9];
    for f in [
        &[][..],
        &[0xFF, 0xD8][..],
        &[0xFF, 0xD8, 0xFF, 0xD9][..],
        &noise[..],
        &soi_noise[..],
        &huge_segment[..],
    ] {
        assert_eq!(h.run(f), Err(ErrorKind::BadFrame), "{} bytes", f.len());
    }
    // A real frame of another size than configured.
    let spec = small_spec();
    let mut p = Preprocessor::new(320, 240, PixelFormat::Mjpeg, &spec, Fit::Stretch).unwrap();
    let mut out = vec![0u8; spec.tensor_len()];
    let e = p.run_rgb8(&fixture(JPEGS[0]), &mut out).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadFrame);
    assert_eq!(
        e.to_string(),
        "frame is 640x480, the stream's frames are 320x240"
    );
}

#[test]
fn a_bad_frame_does_not_change_the_next_good_frames_output() {
    let mut h = Harness::mjpeg();
    let good = fixture(JPEGS[0]);
    h.run(&good).unwrap();
    let before = h.out.clone();
    // The first single-byte flip in the scan data that the decoder rejects: the
    // failure happens part-way through decoding.
    let scan = good
        .windows(2)
        .position(|w| w == [0xFF, 0xDA])
        .expect("SOS")
        + 20;
    let broken = (scan..good.len() - 2)
        .step_by(101)
        .map(|at| {
            let mut f = good.clone();
            f[at] ^= 0x5A;
            f
        })
        .find(|f| h.run(f).is_err())
        .expect("some flip is rejected");
    assert_eq!(h.run(&broken), Err(ErrorKind::BadFrame));
    h.run(&good).unwrap();
    assert_eq!(h.out, before);
    // And after a truncated one.
    assert_eq!(h.run(&good[..good.len() / 2]), Err(ErrorKind::BadFrame));
    h.run(&good).unwrap();
    assert_eq!(h.out, before);
}

#[test]
fn a_large_jpeg_the_baseline_decoder_leaves_to_the_general_one_is_refused_not_decoded() {
    // A progressive JPEG that says 5000x5000: beyond the general decoder's
    // 4096x4096, whose memory grows with the frame. Refused before it runs.
    let small = fixture("jpeg/crop97x61_420_progressive.jpg");
    let big = with_declared_size(&small, 5000, 5000);
    let spec = small_spec();
    let mut out = vec![0u8; spec.tensor_len()];
    let mut p = Preprocessor::new(5000, 5000, PixelFormat::Mjpeg, &spec, Fit::Stretch).unwrap();
    let e = p.run_rgb8(&big, &mut out).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadFrame);
    assert!(e.to_string().contains("too large"), "{e}");
    assert_eq!(p.jpeg_fallback_frames(), 0);
    // The same JPEG at its own size still goes to the general decoder.
    let mut p = Preprocessor::new(97, 61, PixelFormat::Mjpeg, &spec, Fit::Stretch).unwrap();
    p.run_rgb8(&small, &mut out).unwrap();
    assert_eq!(p.jpeg_fallback_frames(), 1);
}
