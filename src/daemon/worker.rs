//! One camera's thread: capture, drop what analysis cannot keep up with,
//! hand the rest to the [`Analyser`] (the per-frame step replay and calibrate
//! run too), and report its event changes to the main thread.
//!
//! The thread owns its [`Camera`] for the service's lifetime, so re-planning
//! never reopens a device: a new [`Assignment`] (tree and apps) arrives on a
//! channel and is swapped in between two frames. After warm-up the loop
//! allocates nothing of its own (events, which are rare, excepted): counters
//! are plain numbers, the preprocessor and the tree own their buffers.
//!
//! **Never queue without bound.** A V4L2 camera keeps only its few mmap
//! buffers: when the loop is slow, the driver overwrites frames and the
//! sequence gap is counted. A replay at its nominal pace would instead hand
//! out late frames one after another; the loop drops every frame that is more
//! than one frame interval behind the stream's clock, as a live camera would
//! have, before decoding it. An app that was due on a dropped frame is
//! sampled on the next analysed frame instead and the miss is counted for it.

use super::events::{unix_ms_now, Closed, Opened};
use crate::camera::{Camera, FrameSource, Pace};
use crate::error::Result;
use crate::model::tree::StemTree;
use crate::pipeline::{Analyser, AnalysisClock, AppRun, BadFrames, Change, Frame};
use crate::preprocess::{Fit, InputSpec};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The work of one camera under a plan.
pub(crate) struct Assignment {
    /// Plan generation (increases with every re-plan).
    pub generation: u64,
    /// The tree (`None`: no apps on this camera now).
    pub tree: Option<StemTree>,
    /// The tree's apps, in the tree's order.
    pub apps: Vec<AppRun>,
    /// When the re-plan that made it started (to report the swap latency).
    pub started: Instant,
}

/// Live counters of one app on this camera.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct AppLive {
    /// Samples analysed.
    pub samples: u64,
    /// Due samples missed because their frame was dropped.
    pub dropped: u64,
    /// Events closed.
    pub events: u64,
    /// An event is open.
    pub in_event: bool,
}

/// Live counters of a camera, shared with the main thread.
#[derive(Clone, Debug, Default)]
pub(crate) struct CameraLive {
    /// Generation of the assignment the counters in `apps` belong to.
    pub generation: u64,
    /// Capture statistics.
    pub stats: crate::camera::CameraStats,
    /// A source is open.
    pub connected: bool,
    /// The replay ended (or the camera failed for good).
    pub ended: bool,
    /// `describe()` of the open source.
    pub source: String,
    /// Frames dropped for lateness.
    pub late_dropped: u64,
    /// Frames the preprocessor could not decode (damaged JPEG data).
    pub bad_decodes: u64,
    /// Frames analysed.
    pub analysed: u64,
    /// Total analysis time (preprocess + tree), ms.
    pub analysis_ms: f64,
    /// Per app of the current assignment.
    pub apps: Vec<AppLive>,
}

/// What the camera thread tells the main thread.
#[derive(Debug)]
pub(crate) enum CameraReport {
    /// An event was confirmed.
    Opened {
        /// Camera index.
        camera: usize,
        /// App name.
        app: String,
        /// The event so far.
        opened: Opened,
        /// Whether a snapshot of the frame that confirmed it was queued.
        snapshot: bool,
    },
    /// An event ended.
    Closed {
        /// Camera index.
        camera: usize,
        /// App name.
        app: String,
        /// The event.
        event: Closed,
    },
    /// The first frame was analysed.
    FirstFrame {
        /// Camera index.
        camera: usize,
    },
    /// An assignment took effect.
    Swapped {
        /// Camera index.
        camera: usize,
        /// Its generation.
        generation: u64,
        /// The frame it first ran on (`None`: before any frame).
        at_frame: Option<u64>,
        /// From the start of the re-plan to the swap, ms.
        latency_ms: f64,
    },
    /// The source ended (replay) or the thread stopped.
    Ended {
        /// Camera index.
        camera: usize,
    },
    /// The thread failed with an error retrying cannot fix.
    Failed {
        /// Camera index.
        camera: usize,
        /// The error.
        error: crate::Error,
    },
}

/// Everything a camera thread is started with.
pub(crate) struct CameraThread {
    /// Camera index in the config.
    pub index: usize,
    /// Camera name.
    pub name: String,
    /// The capture supervisor.
    pub camera: Camera,
    /// Stream frame rate (for the samplers and the lateness rule).
    pub stream_fps: f64,
    /// Replay pacing (`Fast`: never drop for lateness).
    pub pace: Pace,
    /// Replay only: at the end of the file, open it again (`None`: end).
    pub looping: Option<crate::camera::SourceSpec>,
    /// The network input.
    pub input: InputSpec,
    /// How frames map onto it.
    pub fit: Fit,
    /// Assignments from the main thread.
    pub control: Receiver<Assignment>,
    /// Reports to the main thread.
    pub reports: Sender<CameraReport>,
    /// Shared counters.
    pub live: Arc<Mutex<CameraLive>>,
    /// Milliseconds since `epoch` of the last loop iteration (watchdog).
    pub heartbeat: Arc<AtomicU64>,
    /// Set while the thread waits for a frame: a camera that is being
    /// reconnected (with backoff) is not a stuck loop.
    pub capturing: Arc<AtomicBool>,
    /// The service's start.
    pub epoch: Instant,
    /// Stop flag.
    pub stop: Arc<AtomicBool>,
    /// Takes event snapshots without waiting (`[output.snapshots]`).
    pub snapshots: crate::daemon::output::snapshot::Snapshotter,
}

impl CameraThread {
    /// Runs until the stop flag is set, the replay ends or an unfixable error.
    pub(crate) fn run(mut self) {
        let camera = self.index;
        let reports = self.reports.clone();
        let outcome = self.run_loop();
        if let Ok(mut live) = self.live.lock() {
            live.ended = true;
            live.connected = false;
        }
        let _ = match outcome {
            Ok(()) => reports.send(CameraReport::Ended { camera }),
            Err(error) => reports.send(CameraReport::Failed { camera, error }),
        };
    }

    fn beat(&self) {
        self.heartbeat
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn apply(&self, analyser: &mut Analyser, a: Assignment, at_frame: Option<u64>) {
        // Events of apps that go away end now; apps that stay keep their
        // X-voting state and sampling phase.
        let latency_ms = a.started.elapsed().as_secs_f64() * 1000.0;
        let generation = a.generation;
        let n = a.apps.len();
        // The old tree (and its head threads) is dropped here, between frames.
        analyser.assign(a.tree, a.apps, |_, app, event| {
            let _ = self.reports.send(CameraReport::Closed {
                camera: self.index,
                app: app.to_owned(),
                event,
            });
        });
        if let Ok(mut live) = self.live.lock() {
            live.generation = generation;
            live.apps = vec![AppLive::default(); n];
            for (i, c) in live.apps.iter_mut().enumerate() {
                c.in_event = analyser.in_event(i);
            }
        }
        let _ = self.reports.send(CameraReport::Swapped {
            camera: self.index,
            generation,
            at_frame,
            latency_ms,
        });
    }

    fn run_loop(&mut self) -> Result<()> {
        let mut analyser = Analyser::new(self.input, self.fit, self.stream_fps);
        // The first assignment comes with the thread.
        if let Ok(a) = self.control.recv() {
            self.apply(&mut analyser, a, None);
        }
        let interval_us = 1e6 / self.stream_fps.max(1e-3);
        let mut origin_us: Option<f64> = None;
        let mut last_seq: Option<u64> = None;
        let mut first_frame_reported = false;
        let mut last_frame: Option<u64> = None;
        let mut carried = crate::camera::CameraStats::default();
        let mut bad = BadFrames::new();
        loop {
            self.beat();
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            while let Ok(a) = self.control.try_recv() {
                self.apply(&mut analyser, a, last_frame.map(|f| f + 1));
            }
            self.capturing.store(true, Ordering::Relaxed);
            let grabbed = self.camera.grab();
            self.capturing.store(false, Ordering::Relaxed);
            self.beat();
            let meta = match grabbed {
                Ok(Some(m)) => m,
                Ok(None) => match &self.looping {
                    // A pass that delivered no frame would loop without end.
                    Some(_) if self.camera.stats().frames == 0 => {
                        log::warn!(
                            "camera {}: the replay holds no good frame; not looping",
                            self.name
                        );
                        break;
                    }
                    Some(spec) if !self.stop.load(Ordering::Relaxed) => {
                        carried = add_stats(carried, self.camera.stats());
                        self.camera =
                            Camera::for_spec(spec.clone()).with_stop_flag(Arc::clone(&self.stop));
                        continue;
                    }
                    _ => break,
                },
                Err(e) => return Err(e),
            };
            let now_us = self.epoch.elapsed().as_secs_f64() * 1e6;
            {
                let stats = add_stats(carried, self.camera.stats());
                if let Ok(mut live) = self.live.lock() {
                    live.stats = stats;
                    if !live.connected {
                        live.connected = true;
                        live.source = self.camera.describe().to_string();
                    }
                }
            }
            // A reopened source restarts its sequence numbers and clock.
            if last_seq.is_some_and(|l| meta.sequence <= l) {
                origin_us = None;
                analyser.restart();
            }
            last_seq = Some(meta.sequence);
            last_frame = Some(meta.sequence);
            // Lateness against the stream's own clock.
            let offset = now_us - meta.timestamp_us as f64;
            let origin = *origin_us.get_or_insert(offset);
            let lag = offset - origin;
            if lag < 0.0 {
                origin_us = Some(offset);
            } else if lag > 5e6 {
                // Far behind (a stall, a suspended VM): resynchronise rather
                // than drop everything from now on.
                log::warn!(
                    "camera {}: {:.1} s behind the stream; resynchronising",
                    self.name,
                    lag / 1e6
                );
                origin_us = Some(offset);
            } else if self.pace == Pace::Nominal && lag > 1.5 * interval_us {
                if let Ok(mut live) = self.live.lock() {
                    live.late_dropped += 1;
                }
                continue;
            }
            let clock = WallClock { epoch: self.epoch };
            let timing = match analyser.analyse(&meta, self.camera.frame(), &clock)? {
                Frame::Idle => continue,
                Frame::Bad(why) => {
                    if let Ok(mut live) = self.live.lock() {
                        live.bad_decodes += 1;
                    }
                    bad.note(format_args!("camera {}", self.name), meta.sequence, &why);
                    continue;
                }
                Frame::Analysed(t) => t,
            };
            let ms = (timing.done - timing.start) * 1000.0;
            let mut live = self
                .live
                .lock()
                .map_err(|_| crate::err!(Internal, "camera status lock poisoned"))?;
            live.analysed += 1;
            live.analysis_ms += ms;
            for (i, step) in analyser.steps().iter().enumerate() {
                let Some(counters) = live.apps.get_mut(i) else {
                    continue;
                };
                counters.dropped += step.missed;
                if !step.result.ran {
                    continue;
                }
                counters.samples += 1;
                // The analyser's event changes: what the service does with them.
                match step.change {
                    Change::None => {}
                    Change::Opened(o) => {
                        counters.in_event = true;
                        let snapshot = self.snapshots.take(
                            &meta,
                            self.camera.frame(),
                            &analyser.apps()[i].name,
                            &o,
                        );
                        let _ = self.reports.send(CameraReport::Opened {
                            camera: self.index,
                            app: analyser.apps()[i].name.clone(),
                            opened: o,
                            snapshot,
                        });
                    }
                    Change::Closed(c) => {
                        counters.in_event = false;
                        counters.events += 1;
                        let _ = self.reports.send(CameraReport::Closed {
                            camera: self.index,
                            app: analyser.apps()[i].name.clone(),
                            event: c,
                        });
                    }
                }
            }
            drop(live);
            if !first_frame_reported {
                first_frame_reported = true;
                let _ = self
                    .reports
                    .send(CameraReport::FirstFrame { camera: self.index });
            }
        }
        // Close what is open: the stream ended or the service stops.
        analyser.finish(|i, app, event| {
            if let Ok(mut live) = self.live.lock() {
                if let Some(c) = live.apps.get_mut(i) {
                    c.events += 1;
                    c.in_event = false;
                }
            }
            let _ = self.reports.send(CameraReport::Closed {
                camera: self.index,
                app: app.to_owned(),
                event,
            });
        });
        Ok(())
    }
}

/// The service's clocks: wall time since its start for the cost of the
/// work, the Unix time for events.
struct WallClock {
    epoch: Instant,
}

impl AnalysisClock for WallClock {
    fn work_s(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }
    fn event_unix_ms(&self) -> u64 {
        unix_ms_now()
    }
}
/// Counters of a looping replay: the sum over its openings.
fn add_stats(
    a: crate::camera::CameraStats,
    b: crate::camera::CameraStats,
) -> crate::camera::CameraStats {
    crate::camera::CameraStats {
        frames: a.frames + b.frames,
        dropped: a.dropped + b.dropped,
        bad_frames: a.bad_frames + b.bad_frames,
        disconnects: a.disconnects + b.disconnects,
        timeouts: a.timeouts + b.timeouts,
        reconnects: a.reconnects + b.reconnects,
        failed_opens: a.failed_opens + b.failed_opens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::SourceSpec;
    use crate::frame::PixelFormat;
    use std::path::Path;
    use std::sync::mpsc;

    /// A camera thread on the demo clip, replayed as fast as it can be read,
    /// with no apps (so no model is loaded).
    fn thread_on_demo_clip(
        stop: bool,
    ) -> (CameraThread, Sender<Assignment>, Receiver<CameraReport>) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let spec = SourceSpec {
            path: root.join("models/demo/demo.mjpeg"),
            width: 0,
            height: 0,
            fps: 10.0,
            format: PixelFormat::Mjpeg,
            pace: Pace::Fast,
        };
        let manifest = crate::model::manifest::BaseManifest::load(
            &root.join("models/mobilenet_v2/manifest.toml"),
        )
        .unwrap();
        let stop = Arc::new(AtomicBool::new(stop));
        let (control_tx, control) = mpsc::channel();
        let (reports, reports_rx) = mpsc::channel();
        let t = CameraThread {
            index: 3,
            name: "demo".into(),
            camera: Camera::for_spec(spec).with_stop_flag(Arc::clone(&stop)),
            stream_fps: 10.0,
            pace: Pace::Fast,
            looping: None,
            input: manifest.input.preprocess_spec(),
            fit: manifest.input.fit(),
            control,
            reports,
            live: Arc::new(Mutex::new(CameraLive::default())),
            heartbeat: Arc::new(AtomicU64::new(0)),
            capturing: Arc::new(AtomicBool::new(false)),
            epoch: Instant::now(),
            stop,
            snapshots: crate::daemon::output::snapshot::Snapshotter::off(),
        };
        (t, control_tx, reports_rx)
    }

    fn no_apps(generation: u64) -> Assignment {
        Assignment {
            generation,
            tree: None,
            apps: Vec::new(),
            started: Instant::now(),
        }
    }

    #[test]
    fn a_stopped_camera_thread_takes_its_assignment_then_reports_its_end() {
        let (t, control, reports) = thread_on_demo_clip(true);
        let live = Arc::clone(&t.live);
        control.send(no_apps(7)).unwrap();
        t.run();
        let got: Vec<CameraReport> = reports.try_iter().collect();
        assert!(
            matches!(
                got.as_slice(),
                [
                    CameraReport::Swapped {
                        camera: 3,
                        generation: 7,
                        at_frame: None,
                        ..
                    },
                    CameraReport::Ended { camera: 3 }
                ]
            ),
            "{got:?}"
        );
        let live = live.lock().unwrap();
        assert!(live.ended && !live.connected);
        assert_eq!(live.analysed, 0);
    }

    #[test]
    fn a_replay_without_apps_is_read_to_its_end_and_nothing_is_analysed() {
        let (t, control, reports) = thread_on_demo_clip(false);
        let live = Arc::clone(&t.live);
        control.send(no_apps(1)).unwrap();
        t.run();
        let got: Vec<CameraReport> = reports.try_iter().collect();
        assert!(
            matches!(got.last(), Some(CameraReport::Ended { camera: 3 })),
            "{got:?}"
        );
        let live = live.lock().unwrap();
        assert!(live.stats.frames > 100, "{}", live.stats.frames);
        assert_eq!((live.analysed, live.late_dropped), (0, 0));
        assert!(live.ended);
    }
}
