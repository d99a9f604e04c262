//! The per-frame step: one frame in, per-app results and event changes out.
//!
//! An [`Analyser`] owns what a camera's frames go through once a caller has
//! decided to look at them: the preprocessor (rebuilt only when the frame
//! size or format changes), the stem tree, the apps' [`Samplers`] (one
//! nested grid, so that shared work runs at its fastest sharer's rate) and
//! one X-voting [`Detector`] per app. The service's camera thread, `replay` and
//! `calibrate` all call [`Analyser::analyse`]; each keeps only its own clock,
//! its rule for dropping late frames and what it does with the results.
//!
//! After warm-up (the first frame of a size builds the preprocessor) a frame
//! allocates nothing: the per-app steps live in a vector sized when the apps
//! are assigned.

use super::sampler::Samplers;
use super::voting::{Change, Closed, Detector};
use crate::error::{ErrorKind, Result};
use crate::frame::{FrameMeta, Reject};
use crate::model::tree::{AppResult, StemTree};
use crate::preprocess::{Fit, InputSpec, Preprocessor};

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

/// Readings of the caller's clock around the work of one analysed frame, in
/// seconds of whatever the caller measures (wall time, thread CPU time).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timing {
    /// Before decoding.
    pub start: f64,
    /// After decoding and preprocessing, before the networks.
    pub preprocessed: f64,
    /// After the networks.
    pub done: f64,
}

/// The clocks an analysis reads: one for the cost of the work, one for the
/// wall-clock time stamped on events.
pub trait AnalysisClock {
    /// Seconds on the clock that measures the work.
    fn work_s(&self) -> f64;
    /// Milliseconds since the Unix epoch stamped on a sample's event change
    /// (read after the networks ran).
    fn event_unix_ms(&self) -> u64;
}

/// What became of one frame.
#[derive(Debug)]
pub enum Frame {
    /// No app was due (or no app is assigned): nothing ran.
    Idle,
    /// The frame could not be decoded (a refusal of kind
    /// [`ErrorKind::BadFrame`], kept as the small value it is: formatting it
    /// is left to a log line the caller lets through): nothing ran.
    Bad(Reject),
    /// The due apps ran; [`Analyser::steps`] holds their results.
    Analysed(Timing),
}

/// One app's part of the last frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AppStep {
    /// Whether the app was due on the frame.
    pub due: bool,
    /// Due points its sampler passed before this frame (frames dropped or
    /// not analysed).
    pub missed: u64,
    /// The tree's result (`ran` false when it did not run).
    pub result: AppResult,
    /// What X-voting made of the sample.
    pub change: Change,
}

impl AppStep {
    const IDLE: AppStep = AppStep {
        due: false,
        missed: 0,
        result: AppResult {
            ran: false,
            positive: false,
            score: 0.0,
            top1: 0,
        },
        change: Change::None,
    };
}

/// The per-frame pipeline of one camera (see the module docs).
pub struct Analyser {
    input: InputSpec,
    fit: Fit,
    stream_fps: f64,
    pre: Option<Preprocessor>,
    tree: Option<StemTree>,
    apps: Vec<AppRun>,
    samplers: Samplers,
    detectors: Vec<Detector>,
    due: Vec<bool>,
    steps: Vec<AppStep>,
}

impl Analyser {
    /// An analyser with no apps for frames preprocessed into `input` by
    /// `fit`, from a stream at `stream_fps` (which the samplers divide).
    pub fn new(input: InputSpec, fit: Fit, stream_fps: f64) -> Analyser {
        Analyser {
            input,
            fit,
            stream_fps,
            pre: None,
            tree: None,
            apps: Vec::new(),
            samplers: Samplers::new(stream_fps, &[]),
            detectors: Vec::new(),
            due: Vec::new(),
            steps: Vec::new(),
        }
    }

    /// Runs `apps` (in `tree`'s order) from the next frame on. Apps that stay
    /// keep their sampling phase (if their rate and their place on the
    /// camera's sampling grid are the same) and X-voting state (if their
    /// count is the same); each app that goes away has its open event closed,
    /// which `closed` is given (app index in the old assignment, its name,
    /// the event). The old tree is dropped here.
    pub fn assign(
        &mut self,
        tree: Option<StemTree>,
        apps: Vec<AppRun>,
        mut closed: impl FnMut(usize, &str, Closed),
    ) {
        for (i, app) in self.apps.iter().enumerate() {
            if !apps.iter().any(|n| n.name == app.name) {
                if let Some(ev) = self.detectors[i].finish() {
                    closed(i, &app.name, ev);
                }
            }
        }
        // The grid follows the tree's branch points: apps that share a stem
        // sample on their fastest sharer's frames.
        let grid: Vec<(usize, f64)> = apps
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let branch = tree
                    .as_ref()
                    .and_then(|t| t.apps().get(i))
                    .map_or(0, |p| p.branch);
                (branch, a.fps)
            })
            .collect();
        let old_of: Vec<Option<usize>> = apps
            .iter()
            .map(|a| self.apps.iter().position(|o| o.name == a.name))
            .collect();
        let mut samplers = Samplers::new(self.stream_fps, &grid);
        samplers.inherit(&self.samplers, &old_of);
        let mut detectors = Vec::with_capacity(apps.len());
        for (app, old) in apps.iter().zip(&old_of) {
            let d = match old {
                Some(i) if self.apps[*i].voting == app.voting => self.detectors[*i],
                _ => Detector::new(app.voting),
            };
            detectors.push(d);
        }
        let n = apps.len();
        self.tree = tree;
        self.apps = apps;
        self.samplers = samplers;
        self.detectors = detectors;
        self.due = vec![false; n];
        self.steps = vec![AppStep::IDLE; n];
    }

    /// Gives each app's sampler a phase: `phase(app, interval)` of its
    /// sampler's positions after the first it sees (`interval`: positions
    /// between its samples). The fastest app's positions are the stream's
    /// frames; every other app's are the samples of its parent on the
    /// camera's grid (see [`super::sampler`]), so a phase uniform in
    /// `[0, interval)` is one uniform over the app's own sampling period
    /// either way. Returns the phases in stream frames, in app order.
    pub fn set_phases(&mut self, phase: impl Fn(&AppRun, f64) -> f64) -> Vec<f64> {
        let apps = &self.apps;
        self.samplers
            .set_phases(|i, interval| phase(&apps[i], interval))
    }

    /// The apps, in the tree's order.
    pub fn apps(&self) -> &[AppRun] {
        &self.apps
    }

    /// Whether app `i` has an open event.
    pub fn in_event(&self, i: usize) -> bool {
        self.detectors.get(i).is_some_and(Detector::is_open)
    }

    /// The last frame's per-app steps, in app order.
    pub fn steps(&self) -> &[AppStep] {
        &self.steps
    }

    /// Takes the tree back (the analyser then runs no app).
    pub fn take_tree(&mut self) -> Option<StemTree> {
        self.tree.take()
    }

    /// The source was reopened and its sequence numbers restarted: every
    /// sampler starts again from the next frame seen.
    pub fn restart(&mut self) {
        self.samplers.restart();
    }

    /// Closes every open event now (the stream ended, the service stops):
    /// `closed` is given each (app index, name, event).
    pub fn finish(&mut self, mut closed: impl FnMut(usize, &str, Closed)) {
        for (i, d) in self.detectors.iter_mut().enumerate() {
            if let Some(ev) = d.finish() {
                closed(i, &self.apps[i].name, ev);
            }
        }
    }

    /// Analyses the frame `frame` described by `meta`: marks the apps due at
    /// their planned rates, and if any is, preprocesses the frame into the
    /// tree's input, runs the tree for them and feeds their results to
    /// X-voting. Errors are what retrying cannot fix; an undecodable frame is
    /// [`Frame::Bad`].
    pub fn analyse(
        &mut self,
        meta: &FrameMeta,
        frame: &[u8],
        clock: &impl AnalysisClock,
    ) -> Result<Frame> {
        let seq = meta.sequence;
        let mut any = false;
        for (i, &(due, missed)) in self.samplers.due(seq).iter().enumerate() {
            self.due[i] = due;
            self.steps[i] = AppStep {
                due,
                missed,
                ..AppStep::IDLE
            };
            any |= due;
        }
        let Some(tree) = self.tree.as_mut() else {
            return Ok(Frame::Idle);
        };
        if !any {
            return Ok(Frame::Idle);
        }
        let start = clock.work_s();
        let p = preprocessor_for(&mut self.pre, meta, &self.input, self.fit)?;
        match tree.fill_input(|buf| p.run(frame, buf))? {
            Ok(()) => {}
            Err(why) if why.kind() == ErrorKind::BadFrame => return Ok(Frame::Bad(why)),
            Err(why) => return Err(why.into()),
        }
        let preprocessed = clock.work_s();
        let results = tree.run_apps(seq, &self.due)?;
        let done = clock.work_s();
        let now_ms = clock.event_unix_ms();
        for (i, r) in results.iter().enumerate() {
            let Some(step) = self.steps.get_mut(i) else {
                continue;
            };
            step.result = *r;
            if r.ran {
                step.change = self.detectors[i].sample(seq, now_ms, r.positive, r.score);
            }
        }
        Ok(Frame::Analysed(Timing {
            start,
            preprocessed,
            done,
        }))
    }
}

/// The preprocessor for frames of `meta`'s size and format: the one in
/// `slot` if it fits, else a new one built there (once per source; again
/// only when a reopened source has another size or format: a camera
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
