//! The cost profile's per-frame half: what a camera's frames cost outside
//! the networks, per camera mode (pixel format, size, and for a replay file
//! the file, since JPEG decoding depends on what the frames hold).
//!
//! Two costs, in this thread's CPU milliseconds (as the segments):
//!
//! - **preprocessing** (`preprocess_ms`): decoding or converting one frame
//!   and resizing and normalising it into the network input
//!   ([`Preprocessor::run`]). Paid once per frame any app analyses, whoever
//!   else analyses it: the planner charges it at the highest rate of the
//!   camera's apps (`planner::cost`).
//! - **capture** (`capture_ms`): taking one frame from the source as the
//!   camera thread does for every frame the camera delivers, analysed or
//!   not (reading a replay file and walking its JPEG markers; for a V4L2
//!   device the marker walk on a frame of its mode, the buffer exchange
//!   itself is not timed). Not part of any plan's choice: the service adds
//!   it, at the camera's rate, to the plan's cost when it compares its
//!   predicted CPU use with what it measures.
//!
//! A replay file is timed on its own first frames; a device, which cannot be
//! read while the service may own it, on a synthetic frame of its configured
//! mode (for MJPEG, a textured image encoded at quality 90, about what a
//! webcam sends).

use crate::camera::{Camera, FrameSource, Pace};
use crate::config::{CameraConfig, Source};
use crate::error::Result;
use crate::frame::{FrameMeta, PixelFormat};
use crate::preprocess::{Fit, InputSpec, Preprocessor};
use serde::{Deserialize, Serialize};

/// Frames read from a replay file to time its capture.
const CAPTURE_FRAMES: usize = 40;
/// Of those, frames kept to time the preprocessing on.
const SAMPLE_FRAMES: usize = 8;
/// Timed passes over the kept frames (the median pass counts).
const PASSES: usize = 7;

/// What a camera's frames cost outside the networks depends on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameMode {
    /// Pixel format.
    pub format: PixelFormat,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// For a replay file, the file and its size (`PATH (N bytes)`), whose
    /// frames were timed; empty for a device (timed on a synthetic frame).
    pub sample: String,
}

impl std::fmt::Display for FrameMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}x{}", self.format, self.width, self.height)?;
        if self.sample.is_empty() {
            write!(f, " (device, synthetic frame)")
        } else {
            write!(f, " from {}", self.sample)
        }
    }
}

/// One camera mode's measured costs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameCost {
    /// The mode.
    pub mode: FrameMode,
    /// CPU ms to preprocess one frame into the network input.
    pub preprocess_ms: f64,
    /// CPU ms to capture one frame.
    pub capture_ms: f64,
}

/// The mode of camera `c`'s frames: a replay file's own (from its first
/// frame, which opening it reads), a device's configured one.
pub fn mode_of(c: &CameraConfig) -> Result<FrameMode> {
    match &c.source {
        Source::Device(_) => Ok(FrameMode {
            format: c.format.unwrap_or(PixelFormat::Mjpeg),
            width: c.width.unwrap_or(0),
            height: c.height.unwrap_or(0),
            sample: String::new(),
        }),
        Source::Replay(p) => {
            let mut spec = c.source_spec();
            spec.pace = Pace::Fast;
            let source = crate::camera::open_source(&spec)?;
            let info = source.describe();
            let bytes = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            let path = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
            Ok(FrameMode {
                format: info.format,
                width: info.width,
                height: info.height,
                sample: format!("{} ({bytes} bytes)", path.display()),
            })
        }
    }
}

/// This thread's CPU time, seconds.
fn cpu_s() -> f64 {
    super::thread_cpu_s()
}

/// Times camera `c`'s frames: capture and preprocessing into `input` by
/// `fit` (see the module docs).
pub fn measure(c: &CameraConfig, input: &InputSpec, fit: Fit) -> Result<FrameCost> {
    let mode = mode_of(c)?;
    let (frames, capture_ms) = match &c.source {
        Source::Replay(_) => replay_frames(c)?,
        Source::Device(_) => {
            let frame = synthetic_frame(&mode)?;
            let meta = meta_of(&mode);
            let ms = median_ms(PASSES, 200, || {
                let _ = crate::camera::validate_frame(meta.format, meta.width, meta.height, &frame);
            });
            (vec![frame], ms)
        }
    };
    if frames.is_empty() {
        crate::bail!(
            InvalidConfig,
            "camera {}: no frame to time the preprocessing on",
            c.name
        );
    }
    let mut pre = Preprocessor::new(mode.width, mode.height, mode.format, input, fit)?;
    let mut out = vec![0f32; input.tensor_len()];
    // Warm-up, and a damaged sample is a bad sample: leave it out.
    let mut good = Vec::with_capacity(frames.len());
    for f in &frames {
        if pre.run(f, &mut out).is_ok() {
            good.push(f);
        }
    }
    if good.is_empty() {
        crate::bail!(
            InvalidConfig,
            "camera {}: none of its first frames could be decoded",
            c.name
        );
    }
    // The median over passes of the mean over the frames (timed as the
    // segments are).
    let preprocess_ms = median_ms(PASSES, 1, || {
        for f in &good {
            let _ = pre.run(f, &mut out);
        }
    }) / good.len() as f64;
    Ok(FrameCost {
        mode,
        preprocess_ms,
        capture_ms,
    })
}

/// The median over `passes` of `reps` calls of `f`, in CPU ms per call.
fn median_ms(passes: usize, reps: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..passes.max(1))
        .map(|_| {
            let t0 = cpu_s();
            for _ in 0..reps {
                f();
            }
            (cpu_s() - t0) * 1000.0 / reps.max(1) as f64
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// The first frames of a replay camera (a spread of up to
/// [`SAMPLE_FRAMES`]) and the CPU ms its capture took per frame.
fn replay_frames(c: &CameraConfig) -> Result<(Vec<Vec<u8>>, f64)> {
    let mut spec = c.source_spec();
    spec.pace = Pace::Fast;
    let mut camera = Camera::for_spec(spec);
    let mut kept = Vec::new();
    let mut grabbed = 0usize;
    let mut spent = 0.0;
    let every = CAPTURE_FRAMES / SAMPLE_FRAMES;
    while grabbed < CAPTURE_FRAMES {
        let t0 = cpu_s();
        let got = camera.grab();
        spent += cpu_s() - t0;
        match got {
            Ok(Some(_)) => {}
            Ok(None) => break,
            // A damaged frame is skipped, as the camera thread does.
            Err(e) if e.kind() == crate::ErrorKind::BadFrame => continue,
            Err(e) => return Err(e),
        }
        if grabbed.is_multiple_of(every) {
            kept.push(camera.frame().to_vec());
        }
        grabbed += 1;
    }
    let capture_ms = if grabbed == 0 {
        0.0
    } else {
        spent * 1000.0 / grabbed as f64
    };
    Ok((kept, capture_ms))
}

fn meta_of(mode: &FrameMode) -> FrameMeta {
    FrameMeta {
        sequence: 0,
        timestamp_us: 0,
        width: mode.width,
        height: mode.height,
        format: mode.format,
    }
}

/// A frame of `mode` with the texture of a scene: smooth shading, edges and
/// fine noise (so that a JPEG of it carries about as much detail as a
/// camera's).
fn synthetic_frame(mode: &FrameMode) -> Result<Vec<u8>> {
    let (w, h) = (mode.width as usize, mode.height as usize);
    if w == 0 || h == 0 {
        crate::bail!(
            InvalidConfig,
            "a {}x{} frame has no pixels to time",
            mode.width,
            mode.height
        );
    }
    let mut rng = crate::rng::Rng::new(22);
    let mut rgb = vec![0u8; 3 * w * h];
    for y in 0..h {
        for x in 0..w {
            let shade = (x * 160 / w + y * 80 / h) as i32;
            let block = if (x / 37 + y / 23) % 3 == 0 { 50 } else { 0 };
            for ch in 0..3 {
                let noise = (rng.below(41) as i32) - 20;
                let v = shade + block + noise + 20 * ch as i32;
                rgb[3 * (y * w + x) + ch] = v.clamp(0, 255) as u8;
            }
        }
    }
    Ok(match mode.format {
        PixelFormat::Rgb24 => rgb,
        PixelFormat::Grey => rgb.chunks_exact(3).map(|p| p[1]).collect(),
        PixelFormat::Yuyv => rgb
            .chunks_exact(6)
            .flat_map(|p| [p[1], 128, p[4], 128])
            .collect(),
        PixelFormat::Mjpeg => {
            let (Ok(w16), Ok(h16)) = (u16::try_from(w), u16::try_from(h)) else {
                crate::bail!(InvalidConfig, "{w}x{h} is too large for a JPEG");
            };
            let mut out = Vec::new();
            jpeg_encoder::Encoder::new(&mut out, 90)
                .encode(&rgb, w16, h16, jpeg_encoder::ColorType::Rgb)
                .map_err(|e| crate::err!(Internal, "encoding a synthetic JPEG: {e}"))?;
            out
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn demo_camera() -> CameraConfig {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        CameraConfig {
            name: "campus".into(),
            source: Source::Replay(root.join("models/demo/demo.mjpeg")),
            width: None,
            height: None,
            fps: 10.0,
            format: None,
            pace: Pace::Nominal,
            looping: false,
        }
    }

    #[test]
    fn a_replay_file_is_timed_on_its_own_frames_and_keyed_by_it() {
        let c = demo_camera();
        let cost = measure(&c, &InputSpec::IMAGENET_224, Fit::Stretch).unwrap();
        assert_eq!(cost.mode.format, PixelFormat::Mjpeg);
        assert_eq!((cost.mode.width, cost.mode.height), (384, 288));
        assert!(cost.mode.sample.contains("demo.mjpeg"), "{}", cost.mode);
        assert!(cost.preprocess_ms > 0.0 && cost.preprocess_ms < 1000.0);
        assert!(cost.capture_ms >= 0.0 && cost.capture_ms < cost.preprocess_ms);
        assert_eq!(mode_of(&c).unwrap(), cost.mode);
    }

    #[test]
    fn a_device_is_timed_on_a_synthetic_frame_of_its_configured_mode() {
        for format in [PixelFormat::Mjpeg, PixelFormat::Yuyv, PixelFormat::Grey] {
            let c = CameraConfig {
                source: Source::Device("/dev/video-not-there".into()),
                width: Some(320),
                height: Some(240),
                format: Some(format),
                ..demo_camera()
            };
            let cost = measure(&c, &InputSpec::IMAGENET_224, Fit::Stretch).unwrap();
            assert_eq!(cost.mode.format, format);
            assert_eq!((cost.mode.width, cost.mode.height), (320, 240));
            assert!(cost.mode.sample.is_empty());
            assert!(cost.preprocess_ms > 0.0, "{format}: {cost:?}");
        }
    }

    #[test]
    fn a_synthetic_jpeg_decodes_to_its_mode() {
        let mode = FrameMode {
            format: PixelFormat::Mjpeg,
            width: 64,
            height: 48,
            sample: String::new(),
        };
        let jpeg = synthetic_frame(&mode).unwrap();
        let meta = meta_of(&mode);
        assert!(crate::camera::validate_frame(meta.format, 64, 48, &jpeg).is_ok());
        // Textured, not flat: far more than a flat frame's few hundred bytes.
        assert!(jpeg.len() > 2000, "{}", jpeg.len());
    }
}
