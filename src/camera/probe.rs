//! `mainstream cameras --test`: opens one camera the way the service does, streams
//! frames through preprocessing and reports what was negotiated and how it ran.
//!
//! What an installer checks when mounting a camera: which format, size and rate
//! the camera agreed to (and what was substituted), whether it delivers the rate
//! that was set, whether frames are dropped or damaged, and whether the box keeps
//! up with preprocessing. The camera is opened through [`Camera`], so an unplug
//! during the test is retried with backoff exactly as in service, and shows up in
//! the counters.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Camera, CameraOptions, CameraStats, FrameSource, SourceInfo, SourceSpec, SpecOpener};
use super::{Clock, SystemClock};
use crate::error::Result;
use crate::frame::{FrameMeta, PixelFormat};
use crate::preprocess::{Fit, InputSpec, Preprocessor};

/// How long and how a [`probe`] runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProbeOptions {
    /// Frames to stream through preprocessing.
    pub frames: u32,
    /// Stop (and report the error) when no frame could be had for this long,
    /// reopen attempts included.
    pub give_up_after: Duration,
    /// The network input frames are preprocessed into.
    pub input: InputSpec,
    /// How frames are mapped onto the input.
    pub fit: Fit,
}

impl Default for ProbeOptions {
    /// 100 frames into the ImageNet 224x224 input; give up after 10 s without a camera.
    fn default() -> Self {
        ProbeOptions {
            frames: 100,
            give_up_after: Duration::from_secs(10),
            input: InputSpec::IMAGENET_224,
            fit: Fit::Stretch,
        }
    }
}

/// What a [`probe`] saw.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeReport {
    /// What was asked for.
    pub asked: SourceSpec,
    /// What was negotiated (after the last reopen, if any).
    pub source: SourceInfo,
    /// Frames grabbed and preprocessed without error.
    pub frames: u64,
    /// Frames grabbed whose preprocessing failed (damaged JPEG data the capture
    /// layer could not see, or a size that changed).
    preprocess_errors: u64,
    /// Frame rate from the driver's timestamps, over the frames since the last
    /// (re)open; `None` with fewer than two such frames.
    pub measured_fps: Option<f64>,
    /// Wall-clock seconds from the first frame to the last.
    pub seconds: f64,
    /// The supervisor's counters: drops, bad frames, disconnects, reconnects.
    pub stats: CameraStats,
    /// Mean preprocessing time per frame, milliseconds.
    pub preprocess_ms_mean: f64,
    /// Longest preprocessing time of a frame, milliseconds.
    pub preprocess_ms_max: f64,
    /// Preprocessing kernels used (`avx2`, `sse4.1`, `portable`).
    pub kernels: &'static str,
    /// MJPEG frames that were not baseline JPEG and needed the general decoder.
    pub jpeg_fallback_frames: u64,
    /// Why the test ended before all frames were streamed, if it did.
    pub error: Option<String>,
}

impl ProbeReport {
    /// Whether every requested frame was streamed and preprocessed.
    pub fn passed(&self, opts: &ProbeOptions) -> bool {
        self.error.is_none() && self.preprocess_errors == 0 && self.frames >= u64::from(opts.frames)
    }
}

/// Opens `spec` (a V4L2 node, stable link or replay file), streams
/// `opts.frames` frames through preprocessing, and reports. Errors that end the
/// test (camera absent for `give_up_after`, unsupported configuration) are in
/// [`ProbeReport::error`], with what was measured until then.
pub fn probe(spec: &SourceSpec, opts: &ProbeOptions) -> ProbeReport {
    probe_with(
        Box::new(SpecOpener::new(spec.clone())),
        spec,
        opts,
        SystemClock::shared(),
    )
}

/// [`probe`] with another opener and clock. For test injection.
pub fn probe_with(
    opener: Box<dyn super::SourceOpener>,
    spec: &SourceSpec,
    opts: &ProbeOptions,
    clock: Arc<dyn Clock>,
) -> ProbeReport {
    let mut cam = Camera::new(
        opener,
        clock,
        CameraOptions {
            give_up_after: Some(opts.give_up_after),
            ..CameraOptions::default()
        },
    );
    let mut r = ProbeReport {
        asked: spec.clone(),
        source: cam.describe().clone(),
        frames: 0,
        preprocess_errors: 0,
        measured_fps: None,
        seconds: 0.0,
        stats: CameraStats::default(),
        preprocess_ms_mean: 0.0,
        preprocess_ms_max: 0.0,
        kernels: "",
        jpeg_fallback_frames: 0,
        error: None,
    };
    let mut pre: Option<Preprocessor> = None;
    let mut tensor = vec![0f32; opts.input.tensor_len()];
    let (mut t_first, mut t_last) = (None::<Instant>, None::<Instant>);
    let mut busy = Duration::ZERO;
    // Driver timestamps of the first and last frame since the last (re)open.
    let mut span: Option<(FrameMeta, FrameMeta, u64)> = None;
    while r.frames + r.preprocess_errors < u64::from(opts.frames) {
        let meta = match cam.grab() {
            Ok(Some(m)) => m,
            Ok(None) => {
                r.error = Some("the source ended".into());
                break;
            }
            Err(e) => {
                r.error = Some(e.chain().to_string());
                break;
            }
        };
        let now = Instant::now();
        t_first.get_or_insert(now);
        t_last = Some(now);
        let reconnects = cam.stats().reconnects;
        span = match span {
            Some((first, _, rc)) if rc == reconnects => Some((first, meta, rc)),
            _ => Some((meta, meta, reconnects)),
        };
        let fits = pre.as_ref().is_some_and(|p| {
            p.format() == meta.format && p.source_size() == (meta.width, meta.height)
        });
        if !fits {
            pre = None; // never two frames' worth of buffers at once
            match Preprocessor::new(meta.width, meta.height, meta.format, &opts.input, opts.fit) {
                Ok(p) => pre = Some(p),
                Err(e) => {
                    r.error = Some(e.chain().to_string());
                    break;
                }
            }
        }
        let Some(p) = pre.as_mut() else { break };
        let t0 = Instant::now();
        let ok = p.run(cam.frame(), &mut tensor).is_ok();
        let dt = t0.elapsed();
        if ok {
            r.frames += 1;
            busy += dt;
            r.preprocess_ms_max = r.preprocess_ms_max.max(dt.as_secs_f64() * 1e3);
        } else {
            r.preprocess_errors += 1;
        }
    }
    r.source = cam.describe().clone();
    r.stats = cam.stats();
    if let (Some(a), Some(b)) = (t_first, t_last) {
        r.seconds = (b - a).as_secs_f64();
    }
    if let Some((first, last, _)) = span {
        let dt = last.timestamp_us.saturating_sub(first.timestamp_us) as f64 / 1e6;
        let n = last.sequence.saturating_sub(first.sequence);
        if n > 0 && dt > 0.0 {
            r.measured_fps = Some(n as f64 / dt);
        }
    }
    if r.frames > 0 {
        r.preprocess_ms_mean = busy.as_secs_f64() * 1e3 / r.frames as f64;
    }
    if let Some(p) = &pre {
        r.kernels = p.kernels();
        r.jpeg_fallback_frames = p.jpeg_fallback_frames();
    }
    r
}

/// Writes a probe report as text for the operator.
pub fn render_probe(r: &ProbeReport, opts: &ProbeOptions, out: &mut dyn Write) -> Result<()> {
    write_probe(r, opts, out).map_err(|e| crate::err!(Io, source = e, "writing the probe report"))
}

fn write_probe(r: &ProbeReport, opts: &ProbeOptions, out: &mut dyn Write) -> std::io::Result<()> {
    let a = &r.asked;
    writeln!(
        out,
        "asked:       {} {} {}x{} @ {} fps",
        a.path.display(),
        a.format,
        a.width,
        a.height,
        a.fps
    )?;
    writeln!(out, "negotiated:  {}", r.source)?;
    let rate = match r.measured_fps {
        Some(f) => format!("{f:.2} fps by driver timestamps"),
        None => "rate not measured".into(),
    };
    writeln!(
        out,
        "streamed:    {} of {} frames in {:.2} s, {rate}",
        r.frames, opts.frames, r.seconds
    )?;
    let s = &r.stats;
    writeln!(
        out,
        "faults:      {} dropped, {} bad, {} disconnects, {} reconnects, {} timeouts, \
         {} failed opens, {} failed preprocessing",
        s.dropped,
        s.bad_frames,
        s.disconnects,
        s.reconnects,
        s.timeouts,
        s.failed_opens,
        r.preprocess_errors
    )?;
    if r.frames > 0 {
        write!(
            out,
            "preprocess:  to {}x{}, mean {:.2} ms, max {:.2} ms per frame ({} kernels)",
            opts.input.width,
            opts.input.height,
            r.preprocess_ms_mean,
            r.preprocess_ms_max,
            r.kernels
        )?;
        if r.source.format == PixelFormat::Mjpeg {
            write!(
                out,
                "; {} JPEG frames needed the general decoder",
                r.jpeg_fallback_frames
            )?;
        }
        writeln!(out)?;
    }
    match &r.error {
        None if r.passed(opts) => writeln!(out, "result:      ok"),
        None => writeln!(out, "result:      FAILED: frames could not be preprocessed"),
        Some(e) => writeln!(out, "result:      FAILED: {e}"),
    }
}
