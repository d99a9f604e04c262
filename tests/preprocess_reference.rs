//! Preprocessing against independent references on real footage.
//!
//! The fixtures in `tests/fixtures/preprocess/` are frames of vtest.avi (a fixed
//! campus camera) and ffmpeg's `testsrc2` pattern, with reference outputs made by
//! Pillow 13 and ffmpeg 5.1; `trainer/make_preprocess_fixtures.sh` regenerates them.
//! Differences are in 8-bit units (0..=255) before normalisation unless stated.

use mainstream::frame::PixelFormat;
use mainstream::preprocess::{Fit, InputSpec, Preprocessor};
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/preprocess")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn spec(width: u32, height: u32) -> InputSpec {
    InputSpec {
        width,
        height,
        ..InputSpec::IMAGENET_224
    }
}

/// Runs `run_rgb8` on one frame.
fn rgb8(frame: &[u8], src: (u32, u32), format: PixelFormat, spec: &InputSpec, fit: Fit) -> Vec<u8> {
    let mut p = Preprocessor::new(src.0, src.1, format, spec, fit).expect("valid preprocessor");
    let mut out = vec![0u8; spec.tensor_len()];
    p.run_rgb8(frame, &mut out).expect("frame converts");
    out
}

/// Difference statistics between two 8-bit images.
#[derive(Debug)]
struct Diff {
    max: u8,
    mean: f64,
    /// Fraction of samples that differ by more than 1.
    over1: f64,
}

fn diff(a: &[u8], b: &[u8]) -> Diff {
    assert_eq!(a.len(), b.len());
    let mut max = 0;
    let mut sum = 0u64;
    let mut over1 = 0usize;
    for (&x, &y) in a.iter().zip(b) {
        let d = x.abs_diff(y);
        max = max.max(d);
        sum += u64::from(d);
        over1 += usize::from(d > 1);
    }
    Diff {
        max,
        mean: sum as f64 / a.len() as f64,
        over1: over1 as f64 / a.len() as f64,
    }
}

#[test]
fn rgb24_frames_resize_exactly_like_pillow_bilinear() {
    let frame = fixture("vtest_0300_320x240.ffmpeg.rgb");
    let want = fixture("vtest_0300_320x240.pil224.rgb");
    let got = rgb8(
        &frame,
        (320, 240),
        PixelFormat::Rgb24,
        &spec(224, 224),
        Fit::Stretch,
    );
    assert_eq!(diff(&got, &want).max, 0, "{:?}", diff(&got, &want));
}

#[test]
fn grey_frames_resize_exactly_like_pillow_and_fill_all_three_channels() {
    let yuyv = fixture("vtest_0300_320x240.yuyv");
    let luma: Vec<u8> = yuyv.iter().step_by(2).copied().collect();
    let want = fixture("vtest_0300_320x240_y.pil224.grey");
    let got = rgb8(
        &luma,
        (320, 240),
        PixelFormat::Grey,
        &spec(224, 224),
        Fit::Stretch,
    );
    for c in 0..3 {
        let chan: Vec<u8> = got.iter().skip(c).step_by(3).copied().collect();
        assert_eq!(chan, want, "channel {c}");
    }
}

#[test]
fn center_crop_matches_pillow_resize_of_the_middle_square() {
    let frame = fixture("vtest_0300_320x240.ffmpeg.rgb");
    let want = fixture("vtest_0300_320x240.pil112crop.rgb");
    let got = rgb8(
        &frame,
        (320, 240),
        PixelFormat::Rgb24,
        &spec(112, 112),
        Fit::CenterCrop,
    );
    assert_eq!(diff(&got, &want).max, 0, "{:?}", diff(&got, &want));
    // And it is not the stretched frame.
    let stretched = rgb8(
        &frame,
        (320, 240),
        PixelFormat::Rgb24,
        &spec(112, 112),
        Fit::Stretch,
    );
    assert!(diff(&stretched, &want).max > 20);
}

#[test]
fn yuyv_conversion_is_within_one_of_ffmpeg_bt601_limited_range() {
    // At the source size the resampler is the identity, so this compares the colour
    // conversion alone. testsrc2's saturated bars catch a wrong matrix or range.
    for (name, w, h) in [
        ("vtest_0300_320x240", 320, 240),
        ("testsrc2_160x120", 160, 120),
    ] {
        let frame = fixture(&format!("{name}.yuyv"));
        let want = fixture(&format!("{name}.ffmpeg.rgb"));
        let got = rgb8(&frame, (w, h), PixelFormat::Yuyv, &spec(w, h), Fit::Stretch);
        let d = diff(&got, &want);
        eprintln!("{name}: yuyv vs ffmpeg {d:?}");
        assert!(d.max <= 1, "{name}: {d:?}");
    }
}

#[test]
fn yuyv_frames_are_within_one_of_ffmpeg_conversion_then_pillow_resize() {
    let frame = fixture("vtest_0300_320x240.yuyv");
    let want = fixture("vtest_0300_320x240.pil224.rgb");
    let got = rgb8(
        &frame,
        (320, 240),
        PixelFormat::Yuyv,
        &spec(224, 224),
        Fit::Stretch,
    );
    let d = diff(&got, &want);
    eprintln!("yuyv 320x240 -> 224: {d:?}");
    assert!(d.max <= 1, "{d:?}");
}

#[test]
fn mjpeg_frames_decode_and_resize_exactly_like_pillow() {
    // The baseline decoder follows libjpeg-turbo's arithmetic (Pillow's decoder)
    // and the resize is Pillow's: identical pixels.
    for name in ["vtest_0100_640x480_420", "vtest_0200_640x480_422std"] {
        let frame = fixture(&format!("{name}.jpg"));
        let want = fixture(&format!("{name}.pil224.rgb"));
        let got = rgb8(
            &frame,
            (640, 480),
            PixelFormat::Mjpeg,
            &spec(224, 224),
            Fit::Stretch,
        );
        let d = diff(&got, &want);
        eprintln!("{name}: mjpeg vs pillow {d:?}");
        assert_eq!(d.max, 0, "{name}: {d:?}");
    }
}

/// Removes every DHT segment before the first SOS.
fn strip_huffman_tables(jpeg: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    let mut i = 2;
    loop {
        assert_eq!(jpeg[i], 0xFF);
        let marker = jpeg[i + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if marker == 0xDA {
            out.extend_from_slice(&jpeg[i..]);
            return out;
        }
        if marker != 0xC4 {
            out.extend_from_slice(&jpeg[i..i + 2 + len]);
        }
        i += 2 + len;
    }
}

#[test]
fn mjpeg_frames_without_huffman_tables_decode_with_the_standard_ones() {
    // Like many UVC webcams: 4:2:2, standard tables, tables omitted from the frame.
    let frame = fixture("vtest_0200_640x480_422std.jpg");
    let stripped = strip_huffman_tables(&frame);
    assert!(stripped.len() < frame.len() - 400, "DHT segments removed");
    let s = spec(224, 224);
    let mut p = Preprocessor::new(640, 480, PixelFormat::Mjpeg, &s, Fit::Stretch).unwrap();
    let mut a = vec![0u8; s.tensor_len()];
    let mut b = vec![0u8; s.tensor_len()];
    p.run_rgb8(&frame, &mut a).unwrap();
    p.run_rgb8(&stripped, &mut b).unwrap();
    assert_eq!(a, b);
}

#[test]
fn normalised_output_is_planar_and_matches_the_textbook_formula_on_pillow_pixels() {
    // The whole chain on a real frame, compared in normalised units with Pillow's
    // pixels pushed through torchvision's ToTensor + Normalize arithmetic.
    let s = InputSpec::IMAGENET_224;
    let frame = fixture("vtest_0300_320x240.ffmpeg.rgb");
    let want = fixture("vtest_0300_320x240.pil224.rgb");
    let mut p = Preprocessor::new(320, 240, PixelFormat::Rgb24, &s, Fit::Stretch).unwrap();
    let mut out = vec![f32::NAN; s.tensor_len()];
    p.run(&frame, &mut out).unwrap();
    let plane = 224 * 224;
    let mut max = 0f32;
    for i in 0..plane {
        for c in 0..3 {
            let v = want[i * 3 + c];
            let textbook = (f32::from(v) / 255.0 - s.mean[c]) / s.std[c];
            max = max.max((out[c * plane + i] - textbook).abs());
        }
    }
    eprintln!("normalised: max |ours - textbook| = {max:e}");
    assert!(max <= 2e-6, "{max}");
}

#[test]
fn other_normalisations_are_applied_per_channel() {
    // An `(x - 127) / 128` base, as EfficientNet-Lite uses.
    let s = InputSpec {
        width: 224,
        height: 224,
        scale: 1.0,
        mean: [127.0; 3],
        std: [128.0; 3],
    };
    let frame = fixture("vtest_0300_320x240.ffmpeg.rgb");
    let want = fixture("vtest_0300_320x240.pil224.rgb");
    let mut p = Preprocessor::new(320, 240, PixelFormat::Rgb24, &s, Fit::Stretch).unwrap();
    let mut out = vec![f32::NAN; s.tensor_len()];
    p.run(&frame, &mut out).unwrap();
    let plane = 224 * 224;
    for i in (0..plane).step_by(97) {
        for c in 0..3 {
            let want = (f32::from(want[i * 3 + c]) - 127.0) / 128.0;
            assert!((out[c * plane + i] - want).abs() <= 1e-6);
        }
    }
}

/// Reads a binary PPM or PGM (P6 or P5, maxval 255): `(width, height, rgb)`, grey
/// expanded to RGB.
fn read_ppm(bytes: &[u8]) -> Option<(u32, u32, Vec<u8>)> {
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while bytes.get(i)?.is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while !bytes.get(i)?.is_ascii_whitespace() {
            i += 1;
        }
        fields.push(std::str::from_utf8(&bytes[start..i]).ok()?);
    }
    let (w, h): (u32, u32) = (fields[1].parse().ok()?, fields[2].parse().ok()?);
    let pixels = bytes.get(i + 1..)?;
    let rgb = match (fields[0], fields[3]) {
        ("P6", "255") => pixels.to_vec(),
        ("P5", "255") => pixels.iter().flat_map(|&v| [v, v, v]).collect(),
        _ => return None,
    };
    (rgb.len() == 3 * w as usize * h as usize).then_some((w, h, rgb))
}

/// How a JPEG compared with its reference decode.
#[derive(Debug)]
struct JpegResult {
    name: String,
    /// Decoded by zune-jpeg, not by the baseline decoder.
    fallback: bool,
    diff: Diff,
}

/// Decodes every `NAME.jpg` in `dir` that has a reference decode `NAME.ref.ppm`
/// at its own size (the resize is then the identity) and compares.
fn compare_jpeg_directory(dir: &std::path::Path) -> Vec<JpegResult> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("readable directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    names.sort();
    let mut results = Vec::new();
    for jpg in names {
        let Ok(reference) = std::fs::read(jpg.with_extension("ref.ppm")) else {
            continue;
        };
        let name = jpg.file_name().unwrap().to_string_lossy().into_owned();
        let (w, h, want) = read_ppm(&reference).unwrap_or_else(|| panic!("{name}: bad PPM"));
        let s = spec(w, h);
        let mut p = Preprocessor::new(w, h, PixelFormat::Mjpeg, &s, Fit::Stretch).unwrap();
        let mut got = vec![0u8; s.tensor_len()];
        let frame = std::fs::read(&jpg).unwrap();
        if let Err(e) = p.run_rgb8(&frame, &mut got) {
            panic!("{name}: {e}");
        }
        let r = JpegResult {
            name,
            fallback: p.jpeg_fallback_frames() > 0,
            diff: diff(&got, &want),
        };
        eprintln!("{r:?}");
        results.push(r);
    }
    results
}

#[test]
fn camera_jpeg_variants_decode_exactly_like_libjpeg_turbo() {
    // Restart markers, 4:2:0, 4:2:2, 4:4:4 and grey at a size that is a multiple of
    // neither 8 nor 16 go through the baseline decoder and match djpeg exactly;
    // progressive and 4:4:0 go to zune-jpeg, within a few units.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess/jpeg");
    let results = compare_jpeg_directory(&dir);
    assert_eq!(results.len(), 6);
    for r in &results {
        let general = r.name.contains("progressive") || r.name.contains("440");
        assert_eq!(
            r.fallback, general,
            "{}: decoded by the wrong decoder",
            r.name
        );
        if general {
            assert!(
                r.diff.max <= 8 && r.diff.mean < 1.0 && r.diff.over1 < 0.1,
                "{r:?}"
            );
        } else {
            assert_eq!(r.diff.max, 0, "{r:?}");
        }
    }
}

/// Every `NAME.jpg` in `$MAINSTREAM_JPEG_DIR` with a reference decode `NAME.ref.ppm`
/// (libjpeg-turbo: Pillow or `djpeg -ppm`): frames the baseline decoder takes must
/// match exactly. Manual, for large sets of real frames:
/// `MAINSTREAM_JPEG_DIR=dir cargo test --test it preprocess_reference -- --ignored
/// --nocapture`.
#[test]
#[ignore = "needs MAINSTREAM_JPEG_DIR with JPEGs and reference decodes"]
fn jpeg_directory_matches_its_reference_decodes() {
    let dir = PathBuf::from(std::env::var_os("MAINSTREAM_JPEG_DIR").expect("MAINSTREAM_JPEG_DIR"));
    let results = compare_jpeg_directory(&dir);
    let worst = |fallback: bool| {
        results
            .iter()
            .filter(|r| r.fallback == fallback)
            .map(|r| r.diff.max)
            .max()
    };
    eprintln!(
        "{} files: max diff baseline {:?}, fallback {:?}",
        results.len(),
        worst(false),
        worst(true)
    );
    assert!(!results.is_empty());
    assert_eq!(worst(false).unwrap_or(0), 0);
}
