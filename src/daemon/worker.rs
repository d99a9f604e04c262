//! One camera's thread: capture, drop what analysis cannot keep up with,
//! preprocess, run the stem tree for the apps that are due, X-voting, events.
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

use super::events::{unix_ms_now, Change, Closed, Detector, Opened};
use crate::camera::{Camera, FrameSource, Pace};
use crate::error::{ErrorKind, Result};
use crate::frame::{FrameMeta, RateLimit};
use crate::model::tree::StemTree;
use crate::preprocess::{Fit, InputSpec, Preprocessor};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// At most one log line per camera per this interval reports undecodable frames.
const BAD_DECODE_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// What an app needs on the camera thread.
#[derive(Clone, Debug, PartialEq)]
pub struct AppRun {
    /// App name.
    pub name: String,
    /// X-voting count.
    pub voting: u32,
    /// Planned frame rate.
    pub fps: f64,
}

/// The work of one camera under a plan.
pub struct Assignment {
    /// Plan generation (increases with every re-plan).
    pub generation: u64,
    /// The tree (`None`: no apps on this camera now).
    pub tree: Option<StemTree>,
    /// The tree's apps, in the tree's order.
    pub apps: Vec<AppRun>,
    /// When the re-plan that made it started (to report the swap latency).
    pub started: Instant,
}

/// Samples an app at a planned rate that need not divide the camera's.
///
/// With `interval = stream fps / app fps` frames between samples, the app is
/// due on the first frame at or after each multiple of `interval`; frames
/// skipped past a due point count as missed samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampler {
    interval: f64,
    phase: f64,
    next: Option<f64>,
}

impl Sampler {
    /// A sampler for `app_fps` on a `stream_fps` stream.
    pub fn new(stream_fps: f64, app_fps: f64) -> Sampler {
        let interval = if app_fps > 0.0 && stream_fps > 0.0 {
            (stream_fps / app_fps).max(1.0)
        } else {
            f64::INFINITY
        };
        Sampler {
            interval,
            phase: 0.0,
            next: None,
        }
    }

    /// The same sampler with its first sample `phase` frames after the first
    /// frame seen (the paper's random phase; 0 = the first frame).
    pub fn with_phase(self, phase: f64) -> Sampler {
        Sampler {
            phase: if phase.is_finite() {
                phase.max(0.0)
            } else {
                0.0
            },
            ..self
        }
    }

    /// Frames between samples (infinite for a zero rate).
    pub fn interval(&self) -> f64 {
        self.interval
    }

    /// Whether frame `seq` is a sample, and how many due points before it
    /// were skipped. The first frame seen is a sample unless a phase is set.
    pub fn due(&mut self, seq: u64) -> (bool, u64) {
        if !self.interval.is_finite() {
            return (false, 0);
        }
        let s = seq as f64;
        let next = *self.next.get_or_insert(s + self.phase);
        if s + 1e-9 < next {
            return (false, 0);
        }
        let owed = ((s - next) / self.interval).floor() as u64 + 1;
        self.next = Some(next + owed as f64 * self.interval);
        (true, owed - 1)
    }

    /// Whether frame `seq` would be a sample, without taking it.
    pub fn would_be_due(&self, seq: u64) -> bool {
        self.interval.is_finite() && self.next.is_none_or(|n| seq as f64 + 1e-9 >= n)
    }

    /// Starts again from the next frame seen (the source was reopened and
    /// its sequence numbers restarted).
    pub fn restart(&mut self) {
        self.next = None;
    }
}

/// Live counters of one app on this camera.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AppLive {
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
pub struct CameraLive {
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
pub enum Report {
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
pub struct CameraThread {
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
    pub reports: Sender<Report>,
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

struct Current {
    tree: Option<StemTree>,
    apps: Vec<AppRun>,
    samplers: Vec<Sampler>,
    detectors: Vec<Detector>,
    due: Vec<bool>,
    missed: Vec<u64>,
}

impl CameraThread {
    /// Runs until the stop flag is set, the replay ends or an unfixable error.
    pub fn run(mut self) {
        let camera = self.index;
        let reports = self.reports.clone();
        let outcome = self.run_loop();
        if let Ok(mut live) = self.live.lock() {
            live.ended = true;
            live.connected = false;
        }
        let _ = match outcome {
            Ok(()) => reports.send(Report::Ended { camera }),
            Err(error) => reports.send(Report::Failed { camera, error }),
        };
    }

    fn beat(&self) {
        self.heartbeat
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn apply(&self, cur: &mut Current, a: Assignment, at_frame: Option<u64>) {
        // Events of apps that go away end now; apps that stay keep their
        // X-voting state and sampling phase.
        for (i, app) in cur.apps.iter().enumerate() {
            if !a.apps.iter().any(|n| n.name == app.name) {
                if let Some(ev) = cur.detectors[i].finish() {
                    let _ = self.reports.send(Report::Closed {
                        camera: self.index,
                        app: app.name.clone(),
                        event: ev,
                    });
                }
            }
        }
        let mut samplers = Vec::with_capacity(a.apps.len());
        let mut detectors = Vec::with_capacity(a.apps.len());
        for app in &a.apps {
            let old = cur.apps.iter().position(|o| o.name == app.name);
            let mut s = Sampler::new(self.stream_fps, app.fps);
            let mut d = Detector::new(app.voting);
            if let Some(i) = old {
                if cur.apps[i].fps == app.fps {
                    s = cur.samplers[i];
                }
                if cur.apps[i].voting == app.voting {
                    d = cur.detectors[i];
                }
            }
            samplers.push(s);
            detectors.push(d);
        }
        let n = a.apps.len();
        let latency_ms = a.started.elapsed().as_secs_f64() * 1000.0;
        let generation = a.generation;
        // The old tree (and its head threads) is dropped here, between frames.
        *cur = Current {
            tree: a.tree,
            apps: a.apps,
            samplers,
            detectors,
            due: vec![false; n],
            missed: vec![0; n],
        };
        if let Ok(mut live) = self.live.lock() {
            live.generation = generation;
            live.apps = vec![AppLive::default(); n];
            for (i, d) in cur.detectors.iter().enumerate() {
                live.apps[i].in_event = d.is_open();
            }
        }
        let _ = self.reports.send(Report::Swapped {
            camera: self.index,
            generation,
            at_frame,
            latency_ms,
        });
    }

    fn run_loop(&mut self) -> Result<()> {
        let mut cur = Current {
            tree: None,
            apps: Vec::new(),
            samplers: Vec::new(),
            detectors: Vec::new(),
            due: Vec::new(),
            missed: Vec::new(),
        };
        // The first assignment comes with the thread.
        if let Ok(a) = self.control.recv() {
            self.apply(&mut cur, a, None);
        }
        let interval_us = 1e6 / self.stream_fps.max(1e-3);
        let mut origin_us: Option<f64> = None;
        let mut last_seq: Option<u64> = None;
        let mut pre: Option<Preprocessor> = None;
        let mut first_frame_reported = false;
        let mut last_frame: Option<u64> = None;
        let mut carried = crate::camera::CameraStats::default();
        let mut bad_log = RateLimit::new(BAD_DECODE_LOG_EVERY);
        loop {
            self.beat();
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            while let Ok(a) = self.control.try_recv() {
                self.apply(&mut cur, a, last_frame.map(|f| f + 1));
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
                for s in &mut cur.samplers {
                    s.restart();
                }
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
            // Which apps are due (and how many samples each missed).
            let mut any = false;
            for i in 0..cur.samplers.len() {
                let (due, missed) = cur.samplers[i].due(meta.sequence);
                cur.due[i] = due;
                cur.missed[i] = missed;
                any |= due;
            }
            let Some(tree) = cur.tree.as_mut() else {
                continue;
            };
            if !any {
                continue;
            }
            let t0 = Instant::now();
            let p = preprocessor_for(&mut pre, &meta, &self.input, self.fit)?;
            let frame = self.camera.frame();
            match tree.fill_input(|buf| p.run(frame, buf))? {
                Ok(()) => {}
                Err(why) if why.kind() == ErrorKind::BadFrame => {
                    let n = if let Ok(mut live) = self.live.lock() {
                        live.bad_decodes += 1;
                        live.bad_decodes
                    } else {
                        0
                    };
                    if let Some(k) = bad_log.note(self.epoch.elapsed()) {
                        log::warn!(
                            "camera {}: {k} frame(s) not decodable since the last report, \
                             {n} in all; latest: frame {}: {why}",
                            self.name,
                            meta.sequence
                        );
                    }
                    continue;
                }
                Err(why) => return Err(why.into()),
            }
            let results = tree.run_apps(meta.sequence, &cur.due)?;
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            let now_ms = unix_ms_now();
            let mut live = self
                .live
                .lock()
                .map_err(|_| crate::err!(Internal, "camera status lock poisoned"))?;
            live.analysed += 1;
            live.analysis_ms += ms;
            for (i, r) in results.iter().enumerate() {
                let Some(counters) = live.apps.get_mut(i) else {
                    continue;
                };
                counters.dropped += cur.missed[i];
                if !r.ran {
                    continue;
                }
                counters.samples += 1;
                match cur.detectors[i].sample(meta.sequence, now_ms, r.positive, r.score) {
                    Change::None => {}
                    Change::Opened(o) => {
                        counters.in_event = true;
                        let snapshot = self.snapshots.take(&meta, frame, &cur.apps[i].name, &o);
                        let _ = self.reports.send(Report::Opened {
                            camera: self.index,
                            app: cur.apps[i].name.clone(),
                            opened: o,
                            snapshot,
                        });
                    }
                    Change::Closed(c) => {
                        counters.in_event = false;
                        counters.events += 1;
                        let _ = self.reports.send(Report::Closed {
                            camera: self.index,
                            app: cur.apps[i].name.clone(),
                            event: c,
                        });
                    }
                }
            }
            drop(live);
            if !first_frame_reported {
                first_frame_reported = true;
                let _ = self.reports.send(Report::FirstFrame { camera: self.index });
            }
        }
        // Close what is open: the stream ended or the service stops.
        for (i, d) in cur.detectors.iter_mut().enumerate() {
            if let Some(ev) = d.finish() {
                if let Ok(mut live) = self.live.lock() {
                    if let Some(c) = live.apps.get_mut(i) {
                        c.events += 1;
                        c.in_event = false;
                    }
                }
                let _ = self.reports.send(Report::Closed {
                    camera: self.index,
                    app: cur.apps[i].name.clone(),
                    event: ev,
                });
            }
        }
        Ok(())
    }
}

/// The preprocessor for frames of `meta`'s size and format: the one in
/// `slot` if it fits, else a new one built there (once per source; again
/// only when a reopened source has another size or format: [`Camera`]
/// delivers one size per opening, within [`crate::frame::MAX_DIM`]).
pub fn preprocessor_for<'a>(
    slot: &'a mut Option<Preprocessor>,
    meta: &FrameMeta,
    spec: &InputSpec,
    fit: Fit,
) -> Result<&'a mut Preprocessor> {
    let fits = slot
        .as_ref()
        .is_some_and(|p| p.source_size() == (meta.width, meta.height) && p.format() == meta.format);
    if !fits {
        // The old one goes first: never two frames' worth of buffers at once.
        *slot = None;
        let p = Preprocessor::new(meta.width, meta.height, meta.format, spec, fit)?;
        return Ok(slot.insert(p));
    }
    slot.as_mut()
        .ok_or_else(|| crate::err!(Internal, "the preprocessor vanished"))
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

    #[test]
    fn a_sampler_takes_fractional_rates_on_average() {
        // 3 fps out of 10: 30 samples in 100 frames, spaced 3 or 4 apart.
        let mut s = Sampler::new(10.0, 3.0);
        let due: Vec<u64> = (0..100).filter(|&f| s.due(f).0).collect();
        assert_eq!(due.len(), 30);
        assert!(due.windows(2).all(|w| (3..=4).contains(&(w[1] - w[0]))));
        assert_eq!(due[0], 0);
    }

    #[test]
    fn a_sampler_counts_due_points_skipped_by_dropped_frames() {
        let mut s = Sampler::new(10.0, 5.0); // every 2nd frame
        assert_eq!(s.due(0), (true, 0));
        assert!(!s.would_be_due(1));
        // Frames 1..=6 dropped: due points 2, 4, 6 passed; 7 takes the sample.
        assert_eq!(s.due(7), (true, 2));
        assert_eq!(s.due(8), (true, 0));
        assert_eq!(s.due(9), (false, 0));
    }

    #[test]
    fn a_sampler_restarts_with_the_source() {
        let mut s = Sampler::new(30.0, 1.0);
        assert!(s.due(500).0);
        assert!(!s.due(501).0);
        s.restart();
        assert!(s.due(3).0);
    }

    #[test]
    fn a_phase_delays_the_first_sample_and_keeps_the_rate() {
        let mut s = Sampler::new(10.0, 2.5).with_phase(2.5);
        let due: Vec<u64> = (0..20).filter(|&q| s.due(q).0).collect();
        assert_eq!(due, vec![3, 7, 11, 15, 19]);
    }

    #[test]
    fn a_zero_rate_never_samples() {
        let mut s = Sampler::new(10.0, 0.0);
        assert_eq!(s.due(0), (false, 0));
        assert!(!s.would_be_due(5));
    }
}
