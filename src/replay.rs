//! `mainstream replay`: the real pipeline on a labelled clip, as fast as the
//! machine allows, under a simulated clock that honours a compute budget.
//!
//! Everything a live camera's frames go through runs for real: the MJPEG
//! decoder, preprocessing into the tree's input, the stem tree cut from the
//! loaded base, every app's head, the per-app samplers and X-voting. Only
//! time is simulated. Frame `n` of a stream at F fps arrives at `n / F`
//! seconds of video time. The box has B cores: analysing a frame that costs
//! `c` core-seconds of measured CPU time (this thread's, so other processes do
//! not count) keeps the simulated analyser busy for `c / B` seconds of video
//! time. A frame that arrives while the analyser is busy waits; one that is
//! more than 1.5 frame intervals old by the time the analyser is free is
//! dropped before decoding, exactly the rule the service's camera threads
//! apply to a live stream (a camera's few V4L2 buffers would have been
//! overwritten). So over any stretch of video the analysis gets at most B
//! core-seconds per second, and what does not fit costs samples, as on the
//! box, while the run itself takes as long as the work takes.
//!
//! By default the charge is the CPU time of decoding and preprocessing the
//! frame and of the networks (stem segments and heads), which is what the
//! planner's budget and cost profile count (issue 22: the profile times each
//! camera mode's preprocessing, and the camera's apps sample on one grid, so
//! a frame is decoded once per frame of the fastest app); `--charge network`
//! leaves the preprocessing out, as runs before issue 22 did. The
//! detections are scored against the
//! clip's ground truth per app: event recall, precision and F1, the paper's
//! metrics, beside the F1 the planner predicted for the same plan.

use crate::camera::{Camera, FrameSource, Pace};
use crate::config::{Config, Source};
use crate::error::{Result, ResultExt};
use crate::model::net::Base;
use crate::model::tree::StemTree;
use crate::pipeline::{Analyser, AnalysisClock, AppRun, BadFrames, Change, Frame};
use crate::planner::{Plan, Strategy};
use crate::profile::thread_cpu_s;
use crate::rng::Rng;
use crate::truth::{self, Score, Truth};
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// What the simulated clock charges for an analysed frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Charge {
    /// The stem segments and heads that ran.
    Network,
    /// Decoding and preprocessing as well (what the planner budgets).
    All,
}

/// Options of `mainstream replay`.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayArgs {
    /// Configuration (apps, base, camera).
    pub config: PathBuf,
    /// Camera whose apps are replayed (default: the only camera, else the first).
    pub camera: Option<String>,
    /// Clip replacing the camera's source.
    pub clip: Option<PathBuf>,
    /// Ground truth (default: beside the clip).
    pub truth: Option<PathBuf>,
    /// Only these apps (default: every enabled app of the camera, or of
    /// every camera with `all_cameras`).
    pub apps: Option<Vec<String>>,
    /// Plan every camera's apps under the one budget, as the service does,
    /// and replay `camera`'s frames with its share of that budget (see
    /// [`RunOutcome::camera_share`]).
    pub all_cameras: bool,
    /// Budgets in cores, one set of runs each (default: the config's).
    pub budgets: Vec<f64>,
    /// Planners to run, one replay each.
    pub strategies: Vec<Strategy>,
    /// Seeds for each app's random sampling phase, one run per seed
    /// (empty: every app samples the first frame).
    pub phase_seeds: Vec<u64>,
    /// Every app at this branch point instead of the planner's choice.
    pub branch: Option<usize>,
    /// Every app at this frame rate instead of the planner's choice.
    pub fps: Option<f64>,
    /// Only the first this many frames of the clip (labelled events are cut
    /// there too).
    pub frames: Option<u64>,
    /// What the clock charges.
    pub charge: Charge,
    /// Frames of slack on each side of a labelled event when matching.
    pub tolerance: u64,
    /// Print one JSON object per run.
    pub json: bool,
}

/// One app's result in one run.
#[derive(Clone, Debug, Serialize)]
pub struct AppOutcome {
    /// App name.
    pub app: String,
    /// Its M-Package (the ground truth is keyed by it).
    pub package: String,
    /// Planned branch point.
    pub branch: usize,
    /// Planned frame rate.
    pub fps: f64,
    /// Predicted event recall, precision and F1.
    pub predicted_recall: f64,
    /// Predicted precision.
    pub predicted_precision: f64,
    /// Predicted F1.
    pub predicted_f1: f64,
    /// Predicted F1 with the head's calibrated accuracy and fpr one
    /// bootstrap standard deviation worse and better (`None`: not measured).
    pub predicted_f1_band: Option<(f64, f64)>,
    /// Sampling phase, frames.
    pub phase: f64,
    /// Samples analysed.
    pub samples: u64,
    /// Due samples lost to dropped frames.
    pub missed: u64,
    /// Detected events as inclusive frame spans.
    pub detections: Vec<[u64; 2]>,
    /// Measured against ground truth (`None`: no labels for its package).
    pub measured: Option<Score>,
    /// Per-frame view of the same samples (`None` without labels): how the
    /// head did on this clip, to set beside the package's test-split
    /// accuracy and false-positive rate that the model is given.
    pub frames: Option<FrameStats>,
}

/// Per-frame counts of one app's samples against the labelled spans.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct FrameStats {
    /// Samples inside a labelled event.
    pub event_samples: u64,
    /// Of those, positive.
    pub event_positives: u64,
    /// Samples outside every labelled event.
    pub other_samples: u64,
    /// Of those, positive (false positives).
    pub other_positives: u64,
    /// event_positives / event_samples.
    pub tpr: Option<f64>,
    /// other_positives / other_samples.
    pub fpr: Option<f64>,
    /// The package's test-split accuracy at the planned branch point.
    pub package_accuracy: f64,
    /// The package's test-split false-positive rate there.
    pub package_fpr: f64,
}

/// One replay of the clip under one plan.
#[derive(Clone, Debug, Serialize)]
pub struct RunOutcome {
    /// Planner (`fixed` with --branch or --fps).
    pub strategy: String,
    /// Phase seed (`None`: every app sampled the first frame).
    pub phase_seed: Option<u64>,
    /// Budget, cores (of the whole box: every camera's, with
    /// `--all-cameras`).
    pub budget_cores: f64,
    /// The plan's predicted cost, cores (every camera's).
    pub predicted_cores: f64,
    /// The replayed camera's part of the plan: its tree's predicted cost
    /// over the plan's (1 with one camera planned). With `--all-cameras`
    /// the simulated analyser of this camera has this share of the budget:
    /// its planned work and the budget's unplanned rest in proportion.
    pub camera_share: f64,
    /// Mean predicted F1.
    pub predicted_mean_f1: f64,
    /// The baseline whose plan the planner ran instead of its own, if it
    /// did (`planner::Fallback`).
    pub fallback: Option<String>,
    /// Mean measured F1 over the apps with ground truth.
    pub measured_mean_f1: Option<f64>,
    /// Mean measured recall.
    pub measured_mean_recall: Option<f64>,
    /// Mean measured precision.
    pub measured_mean_precision: Option<f64>,
    /// Frames in the clip.
    pub frames: u64,
    /// Frames analysed (some app was due).
    pub analysed: u64,
    /// Frames dropped because the simulated analyser was busy.
    pub dropped: u64,
    /// Video time, seconds.
    pub video_s: f64,
    /// What the clock charged (`all` unless `--charge network`).
    pub charge: Charge,
    /// CPU time charged to the budget, seconds.
    pub charged_s: f64,
    /// Charged CPU time per second of video (at most the budget, plus the
    /// last frame's charge spread over the clip).
    pub used_cores: f64,
    /// The largest charge of one frame, seconds.
    pub max_frame_s: f64,
    /// Networks' CPU time, seconds.
    pub network_s: f64,
    /// Decoding and preprocessing CPU time, seconds.
    pub decode_s: f64,
    /// Wall-clock time of the replay, seconds.
    pub wall_s: f64,
    /// Whether this run was replayed (`false`: an identical plan's run under
    /// an equal budget, or a smaller one that dropped nothing, was reused).
    pub replayed: bool,
    /// Per app.
    pub apps: Vec<AppOutcome>,
}

/// The whole command's result: one run per strategy.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// The clip.
    pub clip: String,
    /// Its ground truth.
    pub truth: Option<String>,
    /// Camera name.
    pub camera: String,
    /// Stream frame rate.
    pub stream_fps: f64,
    /// Runs, in the order of `--strategy`.
    pub runs: Vec<RunOutcome>,
}

/// The simulated analyser: a box of `budget` cores that a stream's frames
/// arrive at, one every `interval` seconds of video time.
#[derive(Clone, Copy, Debug, PartialEq)]
struct BudgetClock {
    interval: f64,
    budget: f64,
    busy_until: f64,
}

impl BudgetClock {
    /// A clock for a stream at `fps` and a budget of `cores`.
    pub(crate) fn new(fps: f64, cores: f64) -> BudgetClock {
        BudgetClock {
            interval: 1.0 / fps,
            budget: cores,
            busy_until: 0.0,
        }
    }

    /// Video time at which frame `seq` arrives.
    pub(crate) fn arrival(&self, seq: u64) -> f64 {
        seq as f64 * self.interval
    }

    /// Whether frame `seq` is still there when the analyser is free: one
    /// more than 1.5 intervals old by then is gone (the service's rule).
    pub(crate) fn available(&self, seq: u64) -> bool {
        self.busy_until - self.arrival(seq) <= 1.5 * self.interval
    }

    /// Charges the analysis of frame `seq`: `cpu_s` core-seconds.
    pub(crate) fn charge(&mut self, seq: u64, cpu_s: f64) {
        self.busy_until = self.busy_until.max(self.arrival(seq)) + cpu_s / self.budget;
    }
}

/// Replay charges this thread's CPU time; its events carry no wall-clock time.
struct CpuClock;

impl AnalysisClock for CpuClock {
    fn work_s(&self) -> f64 {
        thread_cpu_s()
    }
    fn event_unix_ms(&self) -> u64 {
        0
    }
}

/// Phase of app `name` for `seed`: uniform in [0, interval) frames, the same
/// for an app whatever else is replayed with it.
fn phase_for(seed: u64, name: &str, interval: f64) -> f64 {
    let mut r = Rng::new(seed);
    for b in name.bytes() {
        r = Rng::new(r.state().rotate_left(5) ^ u64::from(b));
        r.next_u64();
    }
    let u = r.unit();
    if interval.is_finite() {
        u * interval
    } else {
        0.0
    }
}

/// The configuration restricted to the replayed camera and apps.
pub(crate) fn select(cfg: &Config, args: &ReplayArgs) -> Result<(Config, usize)> {
    let cam = match &args.camera {
        Some(name) => cfg
            .cameras
            .iter()
            .position(|c| &c.name == name)
            .ok_or_else(|| {
                crate::err!(
                    InvalidConfig,
                    "--camera {name:?}: {} has no such camera (it has: {})",
                    args.config.display(),
                    cfg.cameras
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?,
        None => 0,
    };
    if cfg.cameras.is_empty() {
        crate::bail!(
            InvalidConfig,
            "{} defines no camera to replay",
            args.config.display()
        );
    }
    let mut out = cfg.clone();
    if let Some(names) = &args.apps {
        for n in names {
            let Some(a) = cfg.apps.iter().find(|a| &a.name == n) else {
                crate::bail!(
                    InvalidConfig,
                    "--apps: {} has no app {n:?} (it has: {})",
                    args.config.display(),
                    cfg.apps
                        .iter()
                        .map(|a| a.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            };
            if a.camera != cam && !args.all_cameras {
                crate::bail!(
                    InvalidConfig,
                    "--apps: app {n:?} watches camera {:?}, not {:?}",
                    cfg.cameras[a.camera].name,
                    cfg.cameras[cam].name
                );
            }
        }
        for a in &mut out.apps {
            a.enabled = names.contains(&a.name);
        }
    }
    if !args.all_cameras {
        for a in &mut out.apps {
            a.enabled &= a.camera == cam;
        }
    }
    if !out.enabled_apps().any(|a| a.camera == cam) {
        crate::bail!(
            InvalidConfig,
            "no enabled app watches camera {:?} in {}",
            cfg.cameras[cam].name,
            args.config.display()
        );
    }
    Ok((out, cam))
}

/// `mainstream replay`.
pub fn run(args: &ReplayArgs, out: &mut dyn Write) -> Result<()> {
    let outcome = replay(args)?;
    let text = if args.json {
        let mut s = String::new();
        for r in &outcome.runs {
            let line = serde_json::json!({
                "clip": outcome.clip,
                "truth": outcome.truth,
                "camera": outcome.camera,
                "stream_fps": outcome.stream_fps,
                "run": r,
            });
            let _ = writeln!(s, "{line}");
        }
        s
    } else {
        render(&outcome)
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// The clip to replay (`--clip`, else the camera's replay file) and its
/// ground truth (`--truth`, else the file beside the clip, if any).
pub(crate) fn clip_and_truth(
    camera: &crate::config::CameraConfig,
    args: &ReplayArgs,
) -> Result<(PathBuf, Option<(PathBuf, Truth)>)> {
    let clip = match (&args.clip, &camera.source) {
        (Some(p), _) => p.clone(),
        (None, Source::Replay(p)) => p.clone(),
        (None, Source::Device(p)) => crate::bail!(
            InvalidConfig,
            "camera {:?} reads the device {}; replay needs a file: give --clip FILE",
            camera.name,
            p.display()
        ),
    };
    if !clip.is_file() && !clip.is_dir() {
        crate::bail!(InvalidConfig, "clip {} does not exist", clip.display());
    }
    let truth = match &args.truth {
        Some(p) => Some((p.clone(), Truth::load(p)?)),
        None => Truth::beside(&clip),
    };
    Ok((clip, truth))
}

/// Replays the clip once per strategy and scores each run.
pub fn replay(args: &ReplayArgs) -> Result<Outcome> {
    let cfg =
        crate::config::load_verified_reporting(&args.config, crate::config::DiagSink::Stderr)?;
    let (cfg, cam) = select(&cfg, args)?;
    let camera = &cfg.cameras[cam];
    let (clip, truth) = clip_and_truth(camera, args)?;
    if truth.is_none() {
        log::warn!(
            "no ground truth for {} (give --truth FILE): detections are reported unscored",
            clip.display()
        );
    }
    let manifest = crate::model::manifest::BaseManifest::load(&cfg.device.base)?;
    let base = Base::load(manifest)?;
    // The profile's frame costs of the clip replayed (not of the camera's
    // own source: decoding depends on the frames), on the replayed camera;
    // with --all-cameras the other cameras' from their own sources.
    let mut timed = cfg.clone();
    timed.cameras[cam].source = Source::Replay(clip.clone());
    let planned: Vec<usize> = (0..cfg.cameras.len())
        .filter(|&i| i == cam || args.all_cameras)
        .collect();
    timed.cameras = planned.iter().map(|&i| timed.cameras[i].clone()).collect();
    let profile = crate::profile::for_config(&timed)?;
    let mut frame_ms = vec![0.0; cfg.cameras.len()];
    for (&i, c) in planned.iter().zip(profile.camera_costs(&timed)) {
        frame_ms[i] = c.preprocess_ms;
    }
    let budgets = if args.budgets.is_empty() {
        vec![cfg.device.budget_cores]
    } else {
        args.budgets.clone()
    };
    let mut spec = camera.source_spec();
    spec.path = clip.clone();
    spec.pace = Pace::Fast;
    let ctx = Ctx {
        cfg: &cfg,
        base: &base,
        spec: &spec,
        truth: truth.as_ref(),
        args,
    };
    let mut runs: Vec<RunOutcome> = Vec::new();
    let seeds: Vec<Option<u64>> = if args.phase_seeds.is_empty() {
        vec![None]
    } else {
        args.phase_seeds.iter().copied().map(Some).collect()
    };
    for &budget in &budgets {
        let problem = cfg.planning_problem(&profile.segment_ms, &frame_ms, budget);
        for &strategy in &args.strategies {
            let mut plan = crate::planner::plan(&problem, strategy)?;
            if args.branch.is_some() || args.fps.is_some() {
                fix_plan(&mut plan, &problem, args.branch, args.fps)?;
                // A fixed schedule is no longer the baseline's plan.
                plan.fallback = None;
            }
            log::info!(
                "{}: {} apps, predicted {:.3} of {:.2} cores, mean F1 {:.3}{}",
                plan.strategy.name(),
                plan.apps.len(),
                plan.cost / 1000.0,
                budget,
                plan.mean_f1,
                plan.fallback
                    .map_or(String::new(), |fb| format!(" (runs {fb})"))
            );
            // One tree per plan, built only if some seed's run is not reused.
            let mut tree: Option<(Vec<AppRun>, Option<StemTree>)> = None;
            for &seed in &seeds {
                let mut run = match reusable(&runs, &plan, seed, budget) {
                    Some(prev) => RunOutcome {
                        strategy: plan.strategy.name().to_owned(),
                        budget_cores: budget,
                        predicted_cores: plan.cost / 1000.0,
                        predicted_mean_f1: plan.mean_f1,
                        fallback: fallback_name(&plan),
                        replayed: false,
                        ..prev.clone()
                    },
                    None => {
                        if tree.is_none() {
                            let work = crate::pipeline::assignment::for_camera(
                                &cfg, &base, &plan, cam, 1,
                            )?;
                            let Some(t) = work.tree else {
                                crate::bail!(Internal, "the plan gives camera {cam} no apps");
                            };
                            tree = Some((work.apps, Some(t)));
                        }
                        let (apps, t) = tree.as_mut().expect("built above");
                        replay_plan(&ctx, &problem, &plan, cam, apps, t, seed).with_msg(|| {
                            format!("replaying {} under {}", clip.display(), strategy.name())
                        })?
                    }
                };
                if args.branch.is_some() || args.fps.is_some() {
                    run.strategy = "fixed".into();
                }
                runs.push(run);
            }
        }
    }
    Ok(Outcome {
        clip: clip.display().to_string(),
        truth: truth.as_ref().map(|(p, _)| p.display().to_string()),
        camera: camera.name.clone(),
        stream_fps: camera.fps,
        runs,
    })
}

/// A run already replayed that `plan` at `budget` would repeat exactly: the
/// same apps at the same branch points and rates with the same phase seed,
/// at the same budget, or at a smaller one without a dropped frame (a larger
/// budget only frees the simulated analyser sooner, so it drops nothing
/// either and every app sees the same samples).
fn reusable<'r>(
    runs: &'r [RunOutcome],
    plan: &Plan,
    seed: Option<u64>,
    budget: f64,
) -> Option<&'r RunOutcome> {
    runs.iter().find(|r| {
        r.replayed
            && r.phase_seed == seed
            && (r.budget_cores == budget || (r.budget_cores < budget && r.dropped == 0))
            && r.apps.len() == plan.apps.len()
            && plan.apps.iter().all(|p| {
                r.apps.iter().any(|a| {
                    a.app == p.name && a.branch == p.branch && a.fps.to_bits() == p.fps.to_bits()
                })
            })
    })
}

/// Puts every app of `plan` at `branch` and/or `fps` and predicts again with
/// the event-F1 model, so that measured and predicted values stay paired.
fn fix_plan(
    plan: &mut Plan,
    problem: &crate::planner::Problem,
    branch: Option<usize>,
    fps: Option<f64>,
) -> Result<()> {
    use crate::planner::event_f1::predict;
    for p in &mut plan.apps {
        let spec = &problem.apps[p.app];
        if let Some(b) = branch {
            if !spec.curve.iter().any(|c| c.branch == b) {
                crate::bail!(
                    InvalidConfig,
                    "--branch {b}: app {} has no head there (its package has: {})",
                    p.name,
                    spec.curve
                        .iter()
                        .map(|c| c.branch.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            p.branch = b;
        }
        if let Some(f) = fps {
            p.fps = f;
        }
        let Some(point) = spec.curve.iter().find(|c| c.branch == p.branch) else {
            crate::bail!(Internal, "app {}: no curve point at {}", p.name, p.branch);
        };
        let stream_fps = problem.streams[spec.stream].fps;
        let pr = predict(
            point.accuracy,
            point.fpr,
            &spec.event,
            stream_fps,
            p.fps,
            problem.units,
        );
        p.recall = pr.recall;
        p.precision = pr.precision;
        p.f1 = pr.f1;
    }
    let schedule: Vec<(usize, f64)> = plan.apps.iter().map(|p| (p.branch, p.fps)).collect();
    // Every app of a replay watches the one replayed camera.
    let frame = plan
        .apps
        .first()
        .and_then(|p| problem.streams.get(p.stream))
        .map_or(0.0, |s| s.frame_cost);
    plan.cost = crate::planner::cost::schedule_cost(&problem.segment_costs, frame, &schedule);
    let n = plan.apps.len().max(1) as f64;
    plan.mean_f1 = plan.apps.iter().map(|p| p.f1).sum::<f64>() / n;
    plan.min_f1 = plan.apps.iter().map(|p| p.f1).fold(f64::INFINITY, f64::min);
    plan.feasible = crate::planner::cost::fits(plan.cost, plan.budget);
    Ok(())
}

/// What every run of one `replay` shares.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    cfg: &'a Config,
    base: &'a Base,
    spec: &'a crate::camera::SourceSpec,
    truth: Option<&'a (PathBuf, Truth)>,
    args: &'a ReplayArgs,
}

/// One replay under `plan`, whose apps (in the tree's order) are `apps`;
/// the tree in `slot` is put back after the run for the next one.
fn replay_plan(
    ctx: &Ctx<'_>,
    problem: &crate::planner::Problem,
    plan: &Plan,
    cam: usize,
    apps: &[AppRun],
    slot: &mut Option<StemTree>,
    phase_seed: Option<u64>,
) -> Result<RunOutcome> {
    let Some(tree) = slot.take() else {
        crate::bail!(Internal, "the stem tree of a replay went missing");
    };
    let Ctx {
        cfg,
        base,
        spec,
        truth,
        args,
    } = *ctx;
    let wall = Instant::now();
    let stream_fps = spec.fps;
    let budget = plan.budget / 1000.0;
    let share = camera_share(plan, cam);
    let mut clock = BudgetClock::new(stream_fps, budget * share);
    let input = &base.manifest.input;
    let mut analyser = Analyser::new(input.preprocess_spec(), input.fit(), stream_fps);
    analyser.assign(Some(tree), apps.to_vec(), |_, _, _| {});
    let phases = analyser.set_phases(|a, interval| {
        phase_seed.map_or(0.0, |seed| phase_for(seed, &a.name, interval))
    });
    let mut detections: Vec<Vec<[u64; 2]>> = vec![Vec::new(); apps.len()];
    let mut samples = vec![0u64; apps.len()];
    let mut missed = vec![0u64; apps.len()];
    // Each app's labelled events, cut at --frames.
    let limit = args.frames.unwrap_or(u64::MAX);
    let mut spans: Vec<Option<Vec<[u64; 2]>>> = Vec::new();
    for a in apps {
        let pkg = cfg
            .apps
            .iter()
            .find(|x| x.name == a.name)
            .map(|x| x.package.name.as_str());
        spans.push(
            pkg.and_then(|p| truth.and_then(|(_, t)| t.events_of(p)))
                .map(|ev| {
                    ev.iter()
                        .filter(|e| e[0] < limit)
                        .map(|e| [e[0], e[1].min(limit - 1)])
                        .collect()
                }),
        );
    }
    let mut fstats = vec![FrameStats::default(); apps.len()];
    let mut camera = Camera::for_spec(spec.clone());
    let (mut frames, mut analysed, mut dropped) = (0u64, 0u64, 0u64);
    let (mut network_s, mut decode_s, mut charged_s) = (0.0f64, 0.0f64, 0.0f64);
    let mut max_frame_s = 0.0f64;
    let mut last_seq = 0u64;
    let mut bad = BadFrames::new();
    while frames < limit {
        let Some(meta) = camera.grab()? else { break };
        frames += 1;
        // A clip's frame index: bad frames take their slot, so the ground
        // truth stays aligned even when the clip starts with damaged frames.
        let seq = meta.sequence;
        last_seq = seq;
        if !clock.available(seq) {
            dropped += 1;
            continue;
        }
        let step = analyser.analyse(&meta, camera.frame(), &CpuClock)?;
        for (m, s) in missed.iter_mut().zip(analyser.steps()) {
            *m += s.missed;
        }
        let t = match step {
            Frame::Idle => continue,
            Frame::Bad(e) => {
                bad.note(spec.path.display(), seq, &e);
                continue;
            }
            Frame::Analysed(t) => t,
        };
        let (c0, c1, c2) = (t.start, t.preprocessed, t.done);
        analysed += 1;
        network_s += c2 - c1;
        decode_s += c1 - c0;
        let charge = match args.charge {
            Charge::Network => c2 - c1,
            Charge::All => c2 - c0,
        };
        charged_s += charge;
        max_frame_s = max_frame_s.max(charge);
        clock.charge(seq, charge);
        for (i, st) in analyser.steps().iter().enumerate() {
            let r = st.result;
            if !r.ran {
                continue;
            }
            samples[i] += 1;
            if let Some(sp) = &spans[i] {
                let f = &mut fstats[i];
                if sp.iter().any(|s| s[0] <= seq && seq <= s[1]) {
                    f.event_samples += 1;
                    f.event_positives += u64::from(r.positive);
                } else {
                    f.other_samples += 1;
                    f.other_positives += u64::from(r.positive);
                }
            }
            if let Change::Closed(c) = st.change {
                detections[i].push([c.start_frame, c.end_frame]);
            }
        }
    }
    analyser.finish(|i, _, c| detections[i].push([c.start_frame, c.end_frame]));
    *slot = analyser.take_tree();
    let video_s = if frames == 0 {
        0.0
    } else {
        clock.arrival(last_seq + 1)
    };
    let mut outcomes = Vec::new();
    for (i, a) in apps.iter().enumerate() {
        let Some(app) = cfg.apps.iter().find(|x| x.name == a.name) else {
            crate::bail!(Internal, "app {} vanished from the config", a.name);
        };
        let Some(p) = plan.apps.iter().find(|p| p.name == a.name) else {
            crate::bail!(Internal, "app {} is not in the plan", a.name);
        };
        let measured = spans[i]
            .as_ref()
            .map(|t| truth::score(t, &detections[i], args.tolerance));
        let head = app.package.heads.iter().find(|h| h.branch == p.branch);
        let frames = spans[i].as_ref().map(|_| {
            let f = fstats[i];
            let ratio = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
            FrameStats {
                tpr: ratio(f.event_positives, f.event_samples),
                fpr: ratio(f.other_positives, f.other_samples),
                package_accuracy: head.map_or(0.0, |h| h.accuracy),
                package_fpr: head.map_or(0.0, |h| h.fpr),
                ..f
            }
        });
        outcomes.push(AppOutcome {
            app: a.name.clone(),
            package: app.package.name.clone(),
            branch: p.branch,
            fps: p.fps,
            predicted_recall: p.recall,
            predicted_precision: p.precision,
            predicted_f1: p.f1,
            predicted_f1_band: crate::planner::report::calibration_band(problem, p),
            phase: phases[i],
            samples: samples[i],
            missed: missed[i],
            detections: std::mem::take(&mut detections[i]),
            measured,
            frames,
        });
    }
    let mean = |f: fn(&Score) -> f64| {
        let v: Vec<f64> = outcomes
            .iter()
            .filter_map(|o| o.measured.as_ref().map(f))
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    Ok(RunOutcome {
        strategy: plan.strategy.name().to_owned(),
        phase_seed,
        budget_cores: budget,
        predicted_cores: plan.cost / 1000.0,
        camera_share: share,
        predicted_mean_f1: plan.mean_f1,
        fallback: fallback_name(plan),
        measured_mean_f1: mean(|s| s.f1),
        measured_mean_recall: mean(|s| s.recall),
        measured_mean_precision: mean(|s| s.precision),
        frames,
        analysed,
        dropped,
        video_s,
        charge: args.charge,
        charged_s,
        used_cores: if video_s > 0.0 {
            charged_s / video_s
        } else {
            0.0
        },
        max_frame_s,
        network_s,
        decode_s,
        wall_s: wall.elapsed().as_secs_f64(),
        replayed: true,
        apps: outcomes,
    })
}

/// Camera `cam`'s part of `plan`: its tree's cost over the plan's (1 if
/// the plan costs nothing or has no other camera).
fn camera_share(plan: &Plan, cam: usize) -> f64 {
    let own: f64 = plan
        .trees
        .iter()
        .filter(|t| t.stream == cam)
        .map(|t| t.cost)
        .sum();
    if plan.cost > 0.0 && plan.trees.iter().any(|t| t.stream != cam) {
        (own / plan.cost).clamp(0.0, 1.0)
    } else {
        1.0
    }
}

/// The baseline a plan fell back to, by name.
fn fallback_name(plan: &Plan) -> Option<String> {
    plan.fallback.map(|fb| fb.baseline.name().to_owned())
}

/// The result as text.
pub fn render(o: &Outcome) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "replay of {} (camera {}, {} fps){}",
        o.clip,
        o.camera,
        o.stream_fps,
        o.truth
            .as_ref()
            .map_or(" - no ground truth".to_owned(), |t| format!(
                ", scored against {t}"
            ))
    );
    for r in &o.runs {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{}{}: budget {:.2} cores{}, predicted {:.3}, used {:.3} (charged {:.2} s of CPU for {:.1} s of video; decode {:.2} s)",
            r.strategy,
            r.phase_seed.map_or(String::new(), |s| format!(" (phase seed {s})")),
            r.budget_cores,
            if r.camera_share < 1.0 {
                format!(
                    " for every camera (this one's share {:.1}%)",
                    r.camera_share * 100.0
                )
            } else {
                String::new()
            },
            r.predicted_cores,
            r.used_cores,
            r.charged_s,
            r.video_s,
            r.decode_s
        );
        let _ = writeln!(
            s,
            "  {} frames, {} analysed, {} dropped; {}",
            r.frames,
            r.analysed,
            r.dropped,
            if r.replayed {
                format!("replayed in {:.1} s", r.wall_s)
            } else {
                "reused: the same plan ran above at this budget, or at a smaller one dropping nothing".to_owned()
            }
        );
        let _ = writeln!(
            s,
            "  {:<16} {:>6} {:>6} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7}",
            "app",
            "branch",
            "fps",
            "samples",
            "missed",
            "events",
            "recall",
            "prec",
            "F1",
            "pred F1"
        );
        for a in &r.apps {
            let (ev, rec, prec, f1) = match &a.measured {
                Some(m) => (
                    format!("{}/{}", m.found, m.truth),
                    format!("{:.3}", m.recall),
                    format!("{:.3}", m.precision),
                    format!("{:.3}", m.f1),
                ),
                None => (
                    a.detections.len().to_string(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ),
            };
            let _ = writeln!(
                s,
                "  {:<16} {:>6} {:>6.2} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7.3}",
                a.app, a.branch, a.fps, a.samples, a.missed, ev, rec, prec, f1, a.predicted_f1
            );
        }
        match r.measured_mean_f1 {
            Some(m) => {
                let _ = writeln!(
                    s,
                    "  mean event F1 {:.3} (recall {:.3}, precision {:.3}); predicted {:.3}",
                    m,
                    r.measured_mean_recall.unwrap_or(0.0),
                    r.measured_mean_precision.unwrap_or(0.0),
                    r.predicted_mean_f1
                );
            }
            None => {
                let _ = writeln!(s, "  predicted mean F1 {:.3}", r.predicted_mean_f1);
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_lie_inside_the_interval_and_depend_only_on_seed_and_app() {
        for seed in 0..50u64 {
            let p = phase_for(seed, "birds", 4.0);
            assert!((0.0..4.0).contains(&p), "{p}");
            assert_eq!(p, phase_for(seed, "birds", 4.0));
        }
        assert_ne!(phase_for(1, "birds", 4.0), phase_for(1, "vehicles", 4.0));
        assert_ne!(phase_for(1, "birds", 4.0), phase_for(2, "birds", 4.0));
        assert_eq!(phase_for(3, "birds", f64::INFINITY), 0.0);
    }

    #[test]
    fn a_box_too_slow_for_the_stream_drops_frames_and_spends_exactly_its_budget() {
        // 10 fps, half a core, 0.1 core-s per frame: the box needs 0.2 s per
        // frame, so every other frame is gone when it is free again.
        let mut c = BudgetClock::new(10.0, 0.5);
        let mut kept = Vec::new();
        for seq in 0..100 {
            if c.available(seq) {
                c.charge(seq, 0.1);
                kept.push(seq);
            }
        }
        // The first frame is free, then one in two: 51 of 100.
        assert_eq!(kept.len(), 51);
        assert_eq!(&kept[..4], &[0, 1, 3, 5]);
        // What was spent never exceeds the budget over the video plus the
        // one frame still being analysed at its end.
        let spent = kept.len() as f64 * 0.1;
        assert!(spent <= 0.5 * (c.arrival(100) + 0.2) + 1e-9, "{spent}");
    }

    #[test]
    fn a_box_fast_enough_keeps_every_frame() {
        let mut c = BudgetClock::new(10.0, 0.25);
        for seq in 0..1000 {
            assert!(c.available(seq), "frame {seq} dropped");
            c.charge(seq, 0.024);
        }
    }

    #[test]
    fn phases_spread_over_the_whole_interval() {
        let mut bins = [0u32; 4];
        for seed in 0..400u64 {
            bins[phase_for(seed, "x", 4.0) as usize] += 1;
        }
        assert!(bins.iter().all(|&b| b > 60), "{bins:?}");
    }
}
