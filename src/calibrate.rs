//! `mainstream calibrate`: measure the planner's inputs where the apps run.
//!
//! The event-F1 model predicts an app's events from three per-head numbers:
//! the probability `p` that a frame inside an event is classified positive,
//! the probability `q` that a frame away from any event is, and the
//! correlation `c` of misses inside an event; plus the event length and
//! frequency. The M-Trainer measures `p` and `q` on its balanced test images,
//! whose negatives are mostly empty scenes. On a camera the negatives are the
//! other objects that pass (a bird is a hard negative for a mammal detector),
//! so the test-image rates can be off by a factor of several and the planner
//! optimises the wrong thing.
//!
//! This command runs every head of every app's package on every frame of a
//! labelled clip through the real pipeline (the same decoder, preprocessing
//! and stem tree as the service) and measures, per head:
//!
//! - `accuracy` (`p`): positive frames / frames inside labelled events;
//! - `fpr` (`q`): positive frames / frames more than `tolerance` frames away
//!   from every labelled event (frames at an event's edge, where the object
//!   is half in view, are neither);
//! - the miss correlation inside events, pooled over the package's heads
//!   (`c` from `P(miss | miss) = (1 - p) + p c`);
//!
//! and per package the mean labelled event length, the fraction of
//! event-length windows tiling the clip that overlap an event, and the
//! quantiles of the windows in which a detection finds an event (each
//! labelled event plus `tolerance` frames on each side, as `replay` scores;
//! recall is predicted over them, not over the mean alone); and, per head
//! but the least-shared, how uncertain its predicted F1 gain over that head
//! is (`gain_sd`: a bootstrap over the object instances that cross the clip
//! and blocks of the scene between them, see [`resampling_units`]),
//! which the planner turns into a per-head sharing margin. With
//! `--write` each package gets a `calibration.toml` (atomically replaced)
//! that the loader applies over the trained values (see `package`).
//!
//! The clip should look like the deployment and must not be the footage the
//! evaluation scores on: the M-Trainer makes one from its validation split
//! (`trainer/mtrainer.py --eval-stream NAME --eval-split val`).

use crate::camera::{Camera, FrameSource, Pace};
use crate::error::{ErrorKind, Result, ResultExt};
use crate::model::net::Base;
use crate::model::tree::{AppPlan as TreeApp, StemTree};
use crate::package::{EventDefaults, Package};
use crate::pipeline::{Analyser, AnalysisClock, AppRun, BadFrames, Frame};
use crate::planner::{event_f1, EventLengths, EventParams, Units, MAX_EVENT_LENGTHS};
use crate::replay::ReplayArgs;
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Options of `mainstream calibrate`.
#[derive(Clone, Debug, PartialEq)]
pub struct CalibrateArgs {
    /// Config, camera, apps, clip, truth, frames, tolerance and json, as
    /// `replay` reads them (its planner options are unused).
    pub select: ReplayArgs,
    /// Write each package's `calibration.toml`.
    pub write: bool,
}

/// One head's measurement.
#[derive(Clone, Debug, Serialize)]
pub struct HeadCalibration {
    /// Branch point.
    pub branch: usize,
    /// The head file's SHA-256 (`base` for the base's own remainder).
    pub sha256: String,
    /// Trained per-frame accuracy (`package.toml`).
    pub trained_accuracy: f64,
    /// Trained false-positive rate.
    pub trained_fpr: f64,
    /// Frames inside labelled events.
    pub event_frames: u64,
    /// Of those, positive.
    pub event_positives: u64,
    /// Frames away from every labelled event.
    pub negative_frames: u64,
    /// Of those, positive.
    pub false_positives: u64,
    /// event_positives / event_frames.
    pub accuracy: f64,
    /// false_positives / negative_frames.
    pub fpr: f64,
    /// The bootstrap standard deviation of this head's predicted event-F1
    /// gain over the package's least-shared head (`0` for that head); see
    /// [`bootstrap`].
    pub gain_sd: f64,
    /// The bootstrap standard deviation of `accuracy` (object instances and
    /// scene blocks resampled, as for `gain_sd`).
    pub accuracy_sd: f64,
    /// The bootstrap standard deviation of `fpr`.
    pub fpr_sd: f64,
    /// Accuracy inside the events of each of the app's own object instances
    /// (the ground truth's `[[object]]` list), lowest first: whether the
    /// head recognises some instances nearly always and others almost
    /// never, which one accuracy cannot say.
    pub instances: Vec<InstanceAccuracy>,
    /// Consecutive in-event frame pairs whose first is a miss.
    pub pairs_after_miss: u64,
    /// Of those, the second is a miss too.
    pub miss_after_miss: u64,
}

/// One package's measurement.
#[derive(Clone, Debug, Serialize)]
pub struct PackageCalibration {
    /// Package name (the ground truth's key).
    pub package: String,
    /// Package directory.
    pub dir: PathBuf,
    /// Labelled events in the measured frames.
    pub events: usize,
    /// Mean labelled event length, ms.
    pub length_ms: f64,
    /// Fraction of event-length windows overlapping an event.
    pub frequency: f64,
    /// Quantiles of the windows in which a detection finds an event (the
    /// labelled event and `tolerance` frames on each side), ms ascending.
    pub lengths_ms: Vec<f64>,
    /// Miss correlation pooled over the heads (`None`: no misses to measure
    /// it on; the package's value is kept).
    pub correlation: Option<f64>,
    /// The trained event defaults.
    #[serde(skip)]
    pub trained_event: EventDefaults,
    /// Per head, by branch point.
    pub heads: Vec<HeadCalibration>,
    /// Where the calibration was written (`--write`).
    pub written: Option<PathBuf>,
}

/// The command's result.
#[derive(Clone, Debug, Serialize)]
pub struct Calibration {
    /// The clip.
    pub clip: PathBuf,
    /// Its ground truth.
    pub truth: PathBuf,
    /// Frames measured.
    pub frames: u64,
    /// Frames skipped as bad: damaged or of another size (the camera's
    /// count), or undecodable.
    pub bad_frames: u64,
    /// Stream frame rate.
    pub fps: f64,
    /// Event-edge slack, frames.
    pub tolerance: u64,
    /// Wall-clock time, seconds.
    pub wall_s: f64,
    /// Per package.
    pub packages: Vec<PackageCalibration>,
}

/// `mainstream calibrate`.
pub fn run(args: &CalibrateArgs, out: &mut dyn Write) -> Result<()> {
    let o = calibrate(args)?;
    let text = if args.select.json {
        let mut s = serde_json::to_string(&o)
            .map_err(|e| crate::err!(Internal, "cannot encode the result as JSON: {e}"))?;
        s.push('\n');
        s
    } else {
        render(&o)
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// Calibrate measures rates, not time: its frames are not timed and its
/// samples carry no wall-clock time.
struct Untimed;

impl AnalysisClock for Untimed {
    fn work_s(&self) -> f64 {
        0.0
    }
    fn event_unix_ms(&self) -> u64 {
        0
    }
}

/// Measures every head of every selected app's package on the clip and, with
/// `--write`, saves each package's calibration.
pub fn calibrate(args: &CalibrateArgs) -> Result<Calibration> {
    let a = &args.select;
    let cfg = crate::config::load_verified_reporting(&a.config, crate::config::DiagSink::Stderr)?;
    let (cfg, cam) = crate::replay::select(&cfg, a)?;
    let camera = &cfg.cameras[cam];
    let (clip, truth) = crate::replay::clip_and_truth(camera, a)?;
    let Some((truth_path, truth)) = truth else {
        crate::bail!(
            InvalidConfig,
            "no ground truth for {}: calibrate needs labelled events (give --truth FILE)",
            clip.display()
        );
    };
    // One entry per package (two apps may share one).
    let mut packages: Vec<&Package> = Vec::new();
    for app in cfg.enabled_apps() {
        if !packages.iter().any(|p| p.dir == app.package.dir) {
            packages.push(&app.package);
        }
    }
    let missing: Vec<&str> = packages
        .iter()
        .filter(|p| truth.events_of(&p.name).is_none_or(|e| e.is_empty()))
        .map(|p| p.name.as_str())
        .collect();
    if !missing.is_empty() {
        crate::bail!(
            InvalidConfig,
            "{} labels no event of {}: calibrating a head needs its app's events in the clip",
            truth_path.display(),
            missing.join(", ")
        );
    }
    let base = Base::load(crate::model::manifest::BaseManifest::load(
        &cfg.device.base,
    )?)?;
    let labels = base.manifest.load_labels()?;
    let mut tree_apps = Vec::new();
    let mut owners = Vec::new();
    for (pi, p) in packages.iter().enumerate() {
        let positive = crate::pipeline::assignment::positive_outputs(&p.name, p, &labels)?;
        for (hi, h) in p.heads.iter().enumerate() {
            tree_apps.push(TreeApp {
                name: format!("{}@{}", p.name, h.branch),
                branch: h.branch,
                stride: 1,
                head: h.model.clone(),
                positive: positive.clone(),
            });
            owners.push((pi, hi));
        }
    }
    log::info!(
        "calibrate: {} heads of {} packages on {}",
        tree_apps.len(),
        packages.len(),
        clip.display()
    );
    let names: Vec<String> = tree_apps.iter().map(|t| t.name.clone()).collect();
    let tree = StemTree::build(&base, tree_apps).context(ErrorKind::Model, || {
        "building the stem tree of every head".to_owned()
    })?;

    let wall = Instant::now();
    let mut spec = camera.source_spec();
    spec.path = clip.clone();
    spec.pace = Pace::Fast;
    let fps = spec.fps;
    let mut source = Camera::for_spec(spec);
    let input = &base.manifest.input;
    // Every head on every frame: each at the stream's rate, voting unused.
    let runs = names
        .into_iter()
        .map(|name| AppRun {
            name,
            voting: 1,
            fps,
        })
        .collect();
    let mut analyser = Analyser::new(input.preprocess_spec(), input.fit(), fps);
    analyser.assign(Some(tree), runs, |_, _, _| {});
    let limit = a.frames.unwrap_or(u64::MAX).min(truth.frames.max(1));
    // Per head, per frame: 0 negative, 1 positive, 2 not analysed.
    let mut hits: Vec<Vec<u8>> = vec![Vec::new(); owners.len()];
    let (mut frames, mut bad) = (0u64, 0u64);
    let mut bad_log = BadFrames::new();
    while frames < limit {
        let Some(meta) = source.grab()? else { break };
        // A clip's frame index: bad frames take their slot, so the ground
        // truth stays aligned even when the clip starts with damaged frames.
        let seq = meta.sequence;
        if seq >= limit {
            break;
        }
        frames = seq + 1;
        for h in &mut hits {
            h.resize(seq as usize, 2);
        }
        match analyser.analyse(&meta, source.frame(), &Untimed)? {
            Frame::Analysed(_) => {}
            Frame::Idle => continue,
            Frame::Bad(e) => {
                bad = bad_log.note(clip.display(), seq, &e);
                continue;
            }
        }
        for (h, step) in hits.iter_mut().zip(analyser.steps()) {
            h.push(u8::from(step.result.positive));
        }
        if frames % 500 == 0 {
            log::info!(
                "calibrate: {frames} frames ({:.1} frames/s)",
                frames as f64 / wall.elapsed().as_secs_f64().max(1e-9)
            );
        }
    }
    for h in &mut hits {
        h.resize(frames as usize, 2);
    }
    if frames == 0 {
        crate::bail!(InvalidConfig, "{} holds no frame", clip.display());
    }

    // Bootstrap blocks: about BLOCK_EVENTS mean event lengths each, cut only
    // between labelled events (of any app) so that no crossing is split.
    let all_spans: Vec<[u64; 2]> = truth
        .apps
        .iter()
        .flat_map(|app| app.events.iter().copied())
        .filter(|e| e[0] < frames)
        .map(|e| [e[0], e[1].min(frames - 1)])
        .collect();
    let blocks = bootstrap_blocks(&all_spans, frames);
    log::info!(
        "calibrate: {} bootstrap blocks of about {} frames",
        blocks.len(),
        blocks.first().map_or(0, |b| b[1] - b[0])
    );
    // The first enabled app of a package: its X-voting (and correlation
    // when the clip cannot measure one) is what the planner will use.
    let app_of = |p: &Package| cfg.enabled_apps().find(|app| app.package.dir == p.dir);
    let mut result = Vec::new();
    for (pi, p) in packages.iter().enumerate() {
        let spans: Vec<[u64; 2]> = truth
            .events_of(&p.name)
            .unwrap_or(&[])
            .iter()
            .filter(|e| e[0] < frames)
            .map(|e| [e[0], e[1].min(frames - 1)])
            .collect();
        if spans.is_empty() {
            crate::bail!(
                InvalidConfig,
                "{}: no event of {} within the first {frames} frames",
                truth_path.display(),
                p.name
            );
        }
        let (length_ms, frequency) = event_shape(&spans, frames, fps);
        let lengths_ms = window_quantiles(&spans, a.tolerance, fps);
        let mut heads = Vec::new();
        for (k, &(owner, hi)) in owners.iter().enumerate() {
            if owner != pi {
                continue;
            }
            let h = &p.heads[hi];
            let (trained_accuracy, trained_fpr) = p
                .calibration
                .as_ref()
                .and_then(|c| c.trained.iter().find(|t| t.0 == h.branch))
                .map_or((h.accuracy, h.fpr), |t| (t.1, t.2));
            heads.push(measure_head(
                &hits[k],
                &spans,
                a.tolerance,
                h.branch,
                crate::package::head_identity(&h.model).to_owned(),
                (trained_accuracy, trained_fpr),
            ));
        }
        let correlation = pooled_correlation(&heads);
        let event = EventParams {
            length_ms,
            lengths: EventLengths::new(&lengths_ms),
            frequency: frequency.max(1e-4),
            correlation: correlation
                .or(app_of(p).map(|app| app.event.correlation))
                .unwrap_or(0.0),
            voting: app_of(p).map_or(crate::config::DEFAULT_VOTING, |app| app.voting),
        };
        let own: Vec<&[u8]> = owners
            .iter()
            .zip(&hits)
            .filter(|((owner, _), _)| *owner == pi)
            .map(|(_, h)| h.as_slice())
            .collect();
        let units = resampling_units(&blocks, &truth.objects, &p.name, frames);
        log::info!(
            "calibrate: {}: bootstrap over {} of its object instances, {} other objects' and {} blocks without objects",
            p.name,
            units.strata.own_instances,
            units.strata.other_instances,
            units.strata.background_blocks
        );
        for (h, hits) in heads.iter_mut().zip(&own) {
            h.instances = instance_accuracy(hits, &spans, &units);
        }
        let spread = bootstrap(&own, &spans, a.tolerance, &units, &event, fps);
        for (hi, h) in heads.iter_mut().enumerate() {
            h.gain_sd = spread.gain_sd[hi];
            h.accuracy_sd = spread.accuracy_sd[hi];
            h.fpr_sd = spread.fpr_sd[hi];
        }
        result.push(PackageCalibration {
            package: p.name.clone(),
            dir: p.dir.clone(),
            events: spans.len(),
            length_ms,
            frequency,
            lengths_ms,
            correlation,
            trained_event: p.calibration.as_ref().map_or(p.event, |c| c.trained_event),
            heads,
            written: None,
        });
    }
    let mut o = Calibration {
        clip,
        truth: truth_path,
        frames,
        bad_frames: bad + source.stats().bad_frames,
        fps,
        tolerance: a.tolerance,
        wall_s: wall.elapsed().as_secs_f64(),
        packages: result,
    };
    if args.write {
        let clip_sha256 = crate::model::net::sha256_hex(
            &std::fs::read(&o.clip).context(ErrorKind::Io, || {
                format!("cannot read {}", o.clip.display())
            })?,
        );
        for p in &mut o.packages {
            let path = p.dir.join(crate::package::CALIBRATION_FILE);
            let text = calibration_toml(p, &o.clip, &clip_sha256, o.frames, o.tolerance);
            crate::store::write_atomic(&path, text.as_bytes())?;
            // What was written must load: read the package back.
            let mut diags = crate::diag::Diagnostics::default();
            if crate::package::load(&p.dir, &mut diags).is_none() {
                let msgs: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
                crate::bail!(
                    Internal,
                    "{} does not load back: {}",
                    path.display(),
                    msgs.join("; ")
                );
            }
            log::info!("calibrate: wrote {}", path.display());
            p.written = Some(path);
        }
    }
    Ok(o)
}

/// Mean event length (ms) and the fraction of back-to-back windows of that
/// length, tiling `frames`, that overlap an event.
fn event_shape(spans: &[[u64; 2]], frames: u64, fps: f64) -> (f64, f64) {
    let mean_frames =
        spans.iter().map(|s| (s[1] - s[0] + 1) as f64).sum::<f64>() / spans.len() as f64;
    let w = (mean_frames.round() as u64).max(1);
    let (mut windows, mut hit) = (0u64, 0u64);
    let mut start = 0;
    while start + w <= frames {
        windows += 1;
        if spans.iter().any(|s| s[0] < start + w && start <= s[1]) {
            hit += 1;
        }
        start += w;
    }
    let frequency = if windows == 0 {
        1.0
    } else {
        hit as f64 / windows as f64
    };
    (mean_frames / fps * 1000.0, frequency)
}

/// The `min(events, MAX_EVENT_LENGTHS)` quantiles, at the middles of equal
/// shares, of the windows in which a detection finds each event as the
/// scorer counts it (`crate::truth::score`: the span widened by `tolerance`
/// frames on each side), in ms, ascending; interpolated between events.
fn window_quantiles(spans: &[[u64; 2]], tolerance: u64, fps: f64) -> Vec<f64> {
    let mut frames: Vec<f64> = spans
        .iter()
        .map(|s| (s[1] - s[0] + 1 + 2 * tolerance) as f64)
        .collect();
    frames.sort_by(f64::total_cmp);
    let n = frames.len();
    let k = n.min(MAX_EVENT_LENGTHS);
    (0..k)
        .map(|i| {
            let at = ((i as f64 + 0.5) / k as f64 * n as f64 - 0.5).clamp(0.0, (n - 1) as f64);
            let (lo, w) = (at.floor() as usize, at.fract());
            let hi = (lo + 1).min(n - 1);
            (frames[lo] * (1.0 - w) + frames[hi] * w) / fps * 1000.0
        })
        .collect()
}

/// Whether frame `f` is within `tolerance` frames of a span (or in one):
/// such a frame is never a negative.
fn near_an_event(spans: &[[u64; 2]], f: u64, tolerance: u64) -> bool {
    spans
        .iter()
        .any(|s| f + tolerance >= s[0] && f <= s[1] + tolerance)
}

/// One head's rates from its per-frame outputs (`2`: not analysed).
fn measure_head(
    hits: &[u8],
    spans: &[[u64; 2]],
    tolerance: u64,
    branch: usize,
    sha256: String,
    trained: (f64, f64),
) -> HeadCalibration {
    let mut m = HeadCalibration {
        branch,
        sha256,
        trained_accuracy: trained.0,
        trained_fpr: trained.1,
        event_frames: 0,
        event_positives: 0,
        negative_frames: 0,
        false_positives: 0,
        accuracy: 0.0,
        fpr: 0.0,
        gain_sd: 0.0,
        accuracy_sd: 0.0,
        fpr_sd: 0.0,
        instances: Vec::new(),
        pairs_after_miss: 0,
        miss_after_miss: 0,
    };
    for s in spans {
        let mut prev: Option<u8> = None;
        for f in s[0]..=s[1] {
            let v = hits.get(f as usize).copied().unwrap_or(2);
            if v == 2 {
                prev = None;
                continue;
            }
            m.event_frames += 1;
            m.event_positives += u64::from(v);
            if prev == Some(0) {
                m.pairs_after_miss += 1;
                m.miss_after_miss += u64::from(v == 0);
            }
            prev = Some(v);
        }
    }
    for (f, &v) in hits.iter().enumerate() {
        let f = f as u64;
        if v == 2 || near_an_event(spans, f, tolerance) {
            continue;
        }
        m.negative_frames += 1;
        m.false_positives += u64::from(v);
    }
    let ratio = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    m.accuracy = ratio(m.event_positives, m.event_frames);
    m.fpr = ratio(m.false_positives, m.negative_frames);
    m
}

/// One object instance's accuracy inside its events.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InstanceAccuracy {
    /// The instance (the ground truth's `instance`, else its stamp's name).
    pub instance: String,
    /// Analysed frames inside labelled events while it was on screen.
    pub event_frames: u64,
    /// Of those, positive / event_frames.
    pub accuracy: f64,
}

/// A head's accuracy inside the events of each of the app's own instances
/// (`units.own_names`), lowest first; instances without an event frame are
/// left out.
fn instance_accuracy(
    hits: &[u8],
    spans: &[[u64; 2]],
    units: &ResamplingUnits,
) -> Vec<InstanceAccuracy> {
    let mut out: Vec<InstanceAccuracy> = units
        .own_names
        .iter()
        .filter_map(|(u, name)| {
            let (mut n, mut pos) = (0u64, 0u64);
            for s in spans {
                for f in s[0]..=s[1] {
                    let v = hits.get(f as usize).copied().unwrap_or(2);
                    if v != 2 && units.of_frame.get(f as usize) == Some(u) {
                        n += 1;
                        pos += u64::from(v);
                    }
                }
            }
            (n > 0).then(|| InstanceAccuracy {
                instance: name.clone(),
                event_frames: n,
                accuracy: pos as f64 / n as f64,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        a.accuracy
            .total_cmp(&b.accuracy)
            .then(a.instance.cmp(&b.instance))
    });
    out
}

/// Bootstrap blocks hold about this many mean event lengths of frames.
const BLOCK_EVENTS: f64 = 5.0;
/// Bootstrap resamples per package.
const RESAMPLES: usize = 1000;
/// The bootstrap's fixed seed: a calibration is reproducible byte for byte.
const SEED: u64 = 0x6d61_696e_7374_726d;

/// Consecutive half-open frame ranges `[start, end)` tiling `0..frames`,
/// each at least `BLOCK_EVENTS` mean event lengths long (the last may be
/// shorter) and ending only outside every span, so that an event, and the
/// crossing it belongs to, falls in one block.
fn bootstrap_blocks(spans: &[[u64; 2]], frames: u64) -> Vec<[u64; 2]> {
    let mean = if spans.is_empty() {
        1.0
    } else {
        spans.iter().map(|s| (s[1] - s[0] + 1) as f64).sum::<f64>() / spans.len() as f64
    };
    let len = ((BLOCK_EVENTS * mean).round() as u64).max(1);
    let mut blocks = Vec::new();
    let mut start = 0;
    while start < frames {
        let mut end = (start + len).min(frames);
        // Move the cut past any span that holds both frame end - 1 and end.
        while let Some(s) = spans.iter().find(|s| s[0] < end && end <= s[1]) {
            end = (s[1] + 1).min(frames);
        }
        blocks.push([start, end]);
        start = end;
    }
    blocks
}

/// How many units of each kind one app's bootstrap resamples.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct StrataSizes {
    own_instances: usize,
    other_instances: usize,
    background_blocks: usize,
}

/// The units one app's bootstrap resamples: every frame belongs to one, and
/// units fall into strata that are each resampled to their own size.
struct ResamplingUnits {
    /// Per frame, its unit.
    of_frame: Vec<usize>,
    /// The app's own instances: (unit, instance name).
    own_names: Vec<(usize, String)>,
    /// Unit numbers per stratum (no empty unit, no empty stratum).
    groups: Vec<Vec<usize>>,
    /// Number of unit numbers in use (some may hold no frame).
    count: usize,
    strata: StrataSizes,
}

/// The bootstrap's units for the app `app` of a clip of `frames` frames.
///
/// What the calibration cannot know is how the heads do on object
/// instances it has not seen (the evaluation and the camera show other
/// ones), and the 27 crossings of one app come from only a handful of
/// instances, each several times. So a frame on which an object is on
/// screen belongs to that object's instance (the app's own objects win
/// where two overlap, so that its events are its instances'), and the
/// frames with no object on screen to their block of `blocks`. Three
/// strata are resampled separately, each to its size: the app's own
/// instances (its events and their misses), other categories' instances
/// (its hard negatives) and the blocks without objects (the scene). With no
/// objects listed (hand-labelled ground truth) the units are the blocks.
fn resampling_units(
    blocks: &[[u64; 2]],
    objects: &[crate::truth::TruthObject],
    app: &str,
    frames: u64,
) -> ResamplingUnits {
    let mut of_frame = vec![0usize; frames as usize];
    for (bi, b) in blocks.iter().enumerate() {
        for f in b[0]..b[1].min(frames) {
            of_frame[f as usize] = bi;
        }
    }
    let mut keys: Vec<(&str, &str)> = Vec::new();
    let mut own = Vec::new();
    for pass_own in [false, true] {
        for o in objects.iter().filter(|o| (o.category == app) == pass_own) {
            let key = (o.category.as_str(), o.instance());
            let k = match keys.iter().position(|x| *x == key) {
                Some(k) => k,
                None => {
                    keys.push(key);
                    own.push(pass_own);
                    keys.len() - 1
                }
            };
            for f in o.on_screen[0]..=o.on_screen[1].min(frames.saturating_sub(1)) {
                of_frame[f as usize] = blocks.len() + k;
            }
        }
    }
    let count = blocks.len() + keys.len();
    let mut used = vec![false; count];
    for &u in &of_frame {
        used[u] = true;
    }
    let background: Vec<usize> = (0..blocks.len()).filter(|&u| used[u]).collect();
    let (mut mine, mut others) = (Vec::new(), Vec::new());
    let mut own_names = Vec::new();
    for (k, &is_own) in own.iter().enumerate() {
        let u = blocks.len() + k;
        if used[u] {
            if is_own {
                own_names.push((u, keys[k].1.to_owned()));
            }
            if is_own { &mut mine } else { &mut others }.push(u);
        }
    }
    let strata = StrataSizes {
        own_instances: mine.len(),
        other_instances: others.len(),
        background_blocks: background.len(),
    };
    let groups = [background, mine, others]
        .into_iter()
        .filter(|g| !g.is_empty())
        .collect();
    ResamplingUnits {
        of_frame,
        own_names,
        groups,
        count,
        strata,
    }
}

/// What the bootstrap over the clip's object instances and blocks says of
/// each head (see [`bootstrap`]).
#[derive(Debug, Default, PartialEq)]
struct Spread {
    /// Per head, the sd of its predicted F1 gain over the first head.
    gain_sd: Vec<f64>,
    /// Per head, the sd of its measured accuracy.
    accuracy_sd: Vec<f64>,
    /// Per head, the sd of its measured false-positive rate.
    fpr_sd: Vec<f64>,
}

/// How much each head's predicted event-F1 gain over the first head
/// (`heads[0]`, the package's least-shared) could be chance: the standard
/// deviation, over `RESAMPLES` bootstrap resamples of the clip's `units`,
/// of `F1(head) - F1(first head)` with both heads' accuracy and FPR
/// measured on the same resampled units, at the frame rate (of the
/// planner's grid for a `stream_fps` stream) where it is largest. `0` for
/// the first head.
///
/// The frames of one crossing are strongly correlated (one object, one
/// path), and so are the crossings of one object instance, so the unit of
/// resampling is an instance or a block, never a frame (see
/// [`resampling_units`]): a gain that one instance or one distractor makes
/// shows up as a large spread. The event shape is held at its measured
/// value (it is the same for every head of the package).
///
/// The same resamples give each head's `accuracy_sd` and `fpr_sd`: the
/// spread of its rates (all zero without resampling units).
fn bootstrap(
    heads: &[&[u8]],
    spans: &[[u64; 2]],
    tolerance: u64,
    units: &ResamplingUnits,
    event: &EventParams,
    stream_fps: f64,
) -> Spread {
    let nh = heads.len();
    if nh == 0 || units.groups.is_empty() {
        return Spread {
            gain_sd: vec![0.0; nh],
            accuracy_sd: vec![0.0; nh],
            fpr_sd: vec![0.0; nh],
        };
    }
    // Per unit, per head: [event frames, event positives, negatives, false positives].
    let mut counts = vec![[0u64; 4]; units.count * nh];
    for (f, &u) in units.of_frame.iter().enumerate() {
        let f = f as u64;
        let inside = spans.iter().any(|s| s[0] <= f && f <= s[1]);
        let near = near_an_event(spans, f, tolerance);
        for (hi, h) in heads.iter().enumerate() {
            let v = h.get(f as usize).copied().unwrap_or(2);
            if v == 2 {
                continue;
            }
            let c = &mut counts[u * nh + hi];
            if inside {
                c[0] += 1;
                c[1] += u64::from(v);
            } else if !near {
                c[2] += 1;
                c[3] += u64::from(v);
            }
        }
    }
    let grid: Vec<f64> = crate::planner::grid_for(stream_fps)
        .iter()
        .map(|g| g.fps)
        .collect();
    let ratio = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    // Running sums and sums of squares: of the gain per (head, fps), of
    // each head's accuracy and false-positive rate.
    let mut gain = Moments::new(nh * grid.len());
    let (mut acc, mut fpr) = (Moments::new(nh), Moments::new(nh));
    let mut rng = crate::rng::Rng::new(SEED);
    let mut total = vec![[0u64; 4]; nh];
    let mut f1 = vec![0.0f64; nh];
    // Per head, this resample's (accuracy, false-positive rate).
    let mut rates = vec![(0.0f64, 0.0f64); nh];
    for _ in 0..RESAMPLES {
        total.iter_mut().for_each(|t| *t = [0; 4]);
        for g in &units.groups {
            for _ in 0..g.len() {
                let u = g[rng.below(g.len() as u64) as usize];
                for (hi, t) in total.iter_mut().enumerate() {
                    let c = &counts[u * nh + hi];
                    for k in 0..4 {
                        t[k] += c[k];
                    }
                }
            }
        }
        for (hi, t) in total.iter().enumerate() {
            rates[hi] = (ratio(t[1], t[0]), ratio(t[3], t[2]));
            acc.add(hi, rates[hi].0);
            fpr.add(hi, rates[hi].1);
        }
        if nh < 2 {
            continue;
        }
        for (gi, &fps) in grid.iter().enumerate() {
            for (hi, &(p, q)) in rates.iter().enumerate() {
                f1[hi] = event_f1::predict(p, q, event, stream_fps, fps, Units::Physical).f1;
            }
            for hi in 1..nh {
                gain.add(hi * grid.len() + gi, f1[hi] - f1[0]);
            }
        }
    }
    Spread {
        gain_sd: (0..nh)
            .map(|hi| {
                (0..grid.len())
                    .map(|gi| gain.sd(hi * grid.len() + gi))
                    .fold(0.0, f64::max)
                    .min(1.0)
            })
            .collect(),
        accuracy_sd: (0..nh).map(|hi| acc.sd(hi).min(1.0)).collect(),
        fpr_sd: (0..nh).map(|hi| fpr.sd(hi).min(1.0)).collect(),
    }
}

/// Running sums and sums of squares of `RESAMPLES` values per slot.
struct Moments {
    sum: Vec<f64>,
    sq: Vec<f64>,
}

impl Moments {
    fn new(slots: usize) -> Moments {
        Moments {
            sum: vec![0.0; slots],
            sq: vec![0.0; slots],
        }
    }

    fn add(&mut self, k: usize, x: f64) {
        self.sum[k] += x;
        self.sq[k] += x * x;
    }

    /// The sample standard deviation of slot `k` over `RESAMPLES` values.
    fn sd(&self, k: usize) -> f64 {
        let n = RESAMPLES as f64;
        let mean = self.sum[k] / n;
        let var = self.sq[k] / n - mean * mean;
        // A constant's variance comes out as rounding noise, not zero.
        if var < 1e-12 {
            return 0.0;
        }
        var.sqrt() * (n / (n - 1.0)).sqrt()
    }
}

/// `c` from `P(miss | miss) = (1 - p) + p c`, pooled over heads.
fn pooled_correlation(heads: &[HeadCalibration]) -> Option<f64> {
    let (frames, pos, pairs, mm) = heads.iter().fold((0, 0, 0, 0), |acc, h| {
        (
            acc.0 + h.event_frames,
            acc.1 + h.event_positives,
            acc.2 + h.pairs_after_miss,
            acc.3 + h.miss_after_miss,
        )
    });
    if frames == 0 || pos == 0 || pairs == 0 {
        return None;
    }
    let p = pos as f64 / frames as f64;
    let cp = mm as f64 / pairs as f64;
    Some(((cp - (1.0 - p)) / p).clamp(0.0, 1.0))
}

/// The `calibration.toml` of one package.
fn calibration_toml(
    p: &PackageCalibration,
    clip: &std::path::Path,
    clip_sha256: &str,
    frames: u64,
    tolerance: u64,
) -> String {
    let name = clip.file_name().map_or_else(
        || clip.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Calibration of the M-Package {:?}, written by `mainstream calibrate`; do not\n\
         # edit by hand. Every head ran on every frame of the labelled clip below through\n\
         # the real pipeline. These values replace package.toml's accuracy, fpr and [event]\n\
         # as the planner's inputs; delete this file to go back to the trained ones.\n\
         #   accuracy: positive frames / frames inside labelled events\n\
         #   fpr:      positive frames / frames more than `tolerance` frames from every event",
        p.package
    );
    let _ = writeln!(s, "format = {}", crate::package::CALIBRATION_FORMAT);
    let _ = writeln!(s, "clip = {:?}", name);
    let _ = writeln!(s, "clip_sha256 = {clip_sha256:?}");
    let _ = writeln!(s, "frames = {frames}");
    let _ = writeln!(s, "tolerance = {tolerance}");
    let _ = writeln!(s, "\n# {} labelled events.", p.events);
    let _ = writeln!(s, "[event]");
    let _ = writeln!(s, "length_ms = {:.1}", p.length_ms);
    let _ = writeln!(s, "frequency = {:.4}", p.frequency.max(1e-4));
    if let Some(c) = p.correlation {
        let _ = writeln!(s, "correlation = {c:.4}");
    }
    let _ = writeln!(
        s,
        "# Quantiles of the windows in which a detection finds an event (each event plus\n\
         # `tolerance` frames on each side): predicted recall is their mean."
    );
    let lengths: Vec<String> = p.lengths_ms.iter().map(|m| format!("{m:.1}")).collect();
    let _ = writeln!(s, "lengths_ms = [{}]", lengths.join(", "));
    for h in &p.heads {
        let _ = writeln!(s, "\n[[head]]");
        let _ = writeln!(s, "branch = {}", h.branch);
        let _ = writeln!(s, "sha256 = {:?}", h.sha256);
        let _ = writeln!(s, "accuracy = {:.4}", h.accuracy);
        let _ = writeln!(s, "fpr = {:.4}", h.fpr);
        if h.gain_sd > 0.0 {
            let _ = writeln!(s, "gain_sd = {:.4}", h.gain_sd);
        }
        let _ = writeln!(s, "accuracy_sd = {:.4}", h.accuracy_sd);
        let _ = writeln!(s, "fpr_sd = {:.4}", h.fpr_sd);
        let _ = writeln!(s, "event_frames = {}", h.event_frames);
        let _ = writeln!(s, "negative_frames = {}", h.negative_frames);
    }
    s
}

/// The result as text.
pub fn render(o: &Calibration) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "calibrate: {} ({} frames at {} fps{}), ground truth {}, {:.0} s",
        o.clip.display(),
        o.frames,
        o.fps,
        if o.bad_frames > 0 {
            format!(", {} undecodable", o.bad_frames)
        } else {
            String::new()
        },
        o.truth.display(),
        o.wall_s
    );
    let _ = writeln!(
        s,
        "accuracy: positive frames inside labelled events; fpr: positive frames more than {} frames from every event",
        o.tolerance
    );
    let opt = |v: Option<f64>, prec: usize| v.map_or("-".to_owned(), |x| format!("{x:.prec$}"));
    for p in &o.packages {
        let t = &p.trained_event;
        let _ = writeln!(
            s,
            "\n{}: {} events, length {:.0} ms (trained {}), frequency {:.3} (trained {}), correlation {} (trained {})",
            p.package,
            p.events,
            p.length_ms,
            opt(t.length_ms, 0),
            p.frequency,
            opt(t.frequency, 3),
            opt(p.correlation, 3),
            opt(t.correlation, 3)
        );
        let _ = writeln!(
            s,
            "  {:>6}  {:>8} {:>8}  {:>6} {:>6}  {:>12} {:>15}  {:>7}",
            "branch",
            "accuracy",
            "trained",
            "fpr",
            "trained",
            "event frames",
            "negative frames",
            "gain sd"
        );
        for (i, h) in p.heads.iter().enumerate() {
            let _ = writeln!(
                s,
                "  {:>6}  {:>8.3} {:>8.3}  {:>6.3} {:>6.3}  {:>12} {:>15}  {:>7}",
                h.branch,
                h.accuracy,
                h.trained_accuracy,
                h.fpr,
                h.trained_fpr,
                h.event_frames,
                h.negative_frames,
                if i == 0 {
                    "-".to_owned()
                } else {
                    format!("{:.3}", h.gain_sd)
                }
            );
        }
        if let Some(h) = p.heads.first().filter(|h| !h.instances.is_empty()) {
            let each: Vec<String> = h
                .instances
                .iter()
                .map(|i| format!("{} {:.2} ({})", i.instance, i.accuracy, i.event_frames))
                .collect();
            let _ = writeln!(
                s,
                "  accuracy per object instance, branch {} (event frames): {}",
                h.branch,
                each.join(", ")
            );
        }
        if let Some(w) = &p.written {
            let _ = writeln!(s, "  written: {}", w.display());
        }
    }
    if o.packages.iter().all(|p| p.written.is_none()) {
        let _ = writeln!(
            s,
            "\n(nothing written: add --write to save each package's calibration.toml)"
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::truth::TruthObject;

    #[test]
    fn rates_count_event_frames_and_only_negatives_clear_of_the_event_edges() {
        // 20 frames, one event at 5..=9, tolerance 2: frames 3..=11 are not negatives.
        let mut hits = vec![0u8; 20];
        for f in [5, 6, 8, 3, 11, 15] {
            hits[f] = 1;
        }
        let m = measure_head(&hits, &[[5, 9]], 2, 12, "x".into(), (0.9, 0.1));
        assert_eq!((m.event_frames, m.event_positives), (5, 3));
        // Negatives: 0..=2 and 12..=19, 11 frames; 15 is the only false positive
        // (3 and 11 are at the event's edge).
        assert_eq!((m.negative_frames, m.false_positives), (11, 1));
        assert!((m.accuracy - 0.6).abs() < 1e-12);
        assert!((m.fpr - 1.0 / 11.0).abs() < 1e-12);
        // In-event pairs after a miss: 7->8 (hit), 9 is last: one pair, no miss after miss.
        assert_eq!((m.pairs_after_miss, m.miss_after_miss), (1, 0));
    }

    #[test]
    fn frames_not_analysed_are_neither_hits_nor_misses() {
        let hits = vec![2u8, 1, 2, 0, 2, 2];
        let m = measure_head(&hits, &[[0, 3]], 0, 0, "x".into(), (0.0, 0.0));
        assert_eq!((m.event_frames, m.event_positives), (2, 1));
        assert_eq!(m.negative_frames, 0);
        assert_eq!(m.fpr, 0.0);
    }

    #[test]
    fn event_frequency_is_the_share_of_event_length_windows_that_overlap_an_event() {
        // Events of 4 frames at 0..=3 and 10..=13 in 20 frames: windows of 4
        // frames [0,4) [4,8) [8,12) [12,16) [16,20): three overlap.
        let (len, freq) = event_shape(&[[0, 3], [10, 13]], 20, 10.0);
        assert!((len - 400.0).abs() < 1e-9);
        assert!((freq - 0.6).abs() < 1e-12);
    }

    #[test]
    fn window_quantiles_widen_each_event_by_the_tolerance_and_split_them_into_equal_shares() {
        // Two events of 4 and 8 frames, tolerance 2, 10 fps: windows of 8
        // and 12 frames; two quantiles, one per event.
        assert_eq!(
            window_quantiles(&[[0, 3], [10, 17]], 2, 10.0),
            [800.0, 1200.0]
        );
        // 16 events of 1..=16 frames, tolerance 0: 8 quantiles at the
        // middles of 8 equal shares, between the 2k-th and (2k+1)-th event.
        let spans: Vec<[u64; 2]> = (0..16u64).map(|i| [100 * i, 100 * i + i]).collect();
        let q = window_quantiles(&spans, 0, 10.0);
        let want: Vec<f64> = (0..8).map(|k| (2 * k) as f64 * 100.0 + 150.0).collect();
        assert_eq!(q.len(), 8);
        for (a, b) in q.iter().zip(&want) {
            assert!((a - b).abs() < 1e-9, "{q:?} vs {want:?}");
        }
    }

    #[test]
    fn bootstrap_blocks_tile_the_clip_and_never_cut_an_event() {
        // Events of 4 frames: blocks of 5 * 4 = 20 frames, moved past events.
        let spans = [[18, 21], [40, 43], [95, 98]];
        let blocks = bootstrap_blocks(&spans, 100);
        assert_eq!(blocks, [[0, 22], [22, 44], [44, 64], [64, 84], [84, 100]]);
        assert_eq!(blocks.first().map(|b| b[0]), Some(0));
        assert_eq!(blocks.last().map(|b| b[1]), Some(100));
        assert!(blocks.windows(2).all(|w| w[0][1] == w[1][0]));
        for b in &blocks {
            assert!(
                !spans.iter().any(|s| s[0] < b[1] && b[1] <= s[1]),
                "{b:?} cuts an event"
            );
        }
    }

    /// 40 blocks of 50 frames, one 10-frame event in each (frames 20..=29).
    fn forty_crossings() -> (Vec<[u64; 2]>, Vec<[u64; 2]>, EventParams) {
        let spans: Vec<[u64; 2]> = (0..40).map(|b| [b * 50 + 20, b * 50 + 29]).collect();
        let blocks = bootstrap_blocks(&spans, 2000);
        assert_eq!(blocks.len(), 40);
        let event = EventParams {
            length_ms: 1000.0,
            lengths: Default::default(),
            frequency: 0.2,
            correlation: 0.5,
            voting: 2,
        };
        (spans, blocks, event)
    }

    /// Hits with 8 of 10 event frames positive in every event and the given
    /// false positives.
    fn head(spans: &[[u64; 2]], false_positives: &[usize]) -> Vec<u8> {
        let mut h = vec![0u8; 2000];
        for s in spans {
            for f in s[0]..s[0] + 8 {
                h[f as usize] = 1;
            }
        }
        for &f in false_positives {
            h[f] = 1;
        }
        h
    }

    #[test]
    fn a_gain_one_distractor_makes_is_uncertain_and_a_steady_one_is_not() {
        let (spans, blocks, event) = forty_crossings();
        // The least-shared head fires falsely 40 times: on one crossing
        // (frames 1005..1045 of block 20) or once in every block (frame 5).
        let clean = head(&spans, &[]);
        let one_crossing = head(&spans, &(1005..1045).collect::<Vec<_>>());
        let spread = head(&spans, &(0..40).map(|b| b * 50 + 5).collect::<Vec<_>>());
        let units = resampling_units(&blocks, &[], "a", 2000);
        assert_eq!(units.groups.len(), 1, "no objects listed: blocks only");
        let sd = |own: &[u8]| bootstrap(&[own, &clean], &spans, 2, &units, &event, 10.0).gain_sd;
        let (lumpy, steady) = (sd(&one_crossing), sd(&spread));
        assert_eq!((lumpy[0], steady[0]), (0.0, 0.0));
        // The same 40 false positives, hence the same predicted gain, but
        // resampling whole crossings shows one distractor is chance.
        assert!(lumpy[1] > 3.0 * steady[1], "{lumpy:?} vs {steady:?}");
        assert!(lumpy[1] > 0.01, "{lumpy:?}");
        // One false positive in every block: every resample has 40 of them
        // over the same negatives, so that gain does not move at all.
        assert_eq!(steady[1], 0.0);
        // Identical heads: no uncertainty about a gain of zero.
        assert_eq!(
            bootstrap(&[&clean, &clean], &spans, 2, &units, &event, 10.0).gain_sd,
            [0.0, 0.0]
        );
        // Reproducible: a fixed seed.
        assert_eq!(sd(&one_crossing), lumpy);
    }

    fn object(category: &str, instance: &str, on_screen: [u64; 2]) -> TruthObject {
        TruthObject {
            stamp: format!("photos/{instance}"),
            category: category.into(),
            instance: None,
            on_screen,
        }
    }

    #[test]
    fn frames_belong_to_the_instance_on_screen_and_the_apps_own_objects_win() {
        let blocks = [[0, 10], [10, 20], [20, 30]];
        let objects = [
            object("fish", "carp", [2, 6]),
            object("birds", "lark", [5, 8]),
            object("birds", "lark_mirror", [12, 13]),
            object("birds", "crow", [25, 26]),
            object("fish", "carp", [27, 29]),
        ];
        let u = resampling_units(&blocks, &objects, "birds", 30);
        // Units 0..3 are the blocks, then carp, lark, crow in order of use.
        let (carp, lark, crow) = (3, 4, 5);
        assert_eq!(
            &u.of_frame[..10],
            &[0, 0, carp, carp, carp, lark, lark, lark, lark, 0]
        );
        assert_eq!(
            &u.of_frame[10..15],
            &[1, 1, lark, lark, 1],
            "a mirror is the same lark"
        );
        assert_eq!(&u.of_frame[25..30], &[crow, crow, carp, carp, carp]);
        assert_eq!(u.groups, [vec![0, 1, 2], vec![lark, crow], vec![carp]]);
        let sizes = StrataSizes {
            own_instances: 2,
            other_instances: 1,
            background_blocks: 3,
        };
        assert_eq!(u.strata, sizes);
        // Objects past the clip's end are cut off, not a panic.
        let late = resampling_units(&blocks, &[object("birds", "lark", [28, 40])], "birds", 30);
        assert_eq!(late.of_frame.len(), 30);
    }

    /// The crossings of `spans` made by four bird instances in turn.
    fn four_instances(spans: &[[u64; 2]]) -> Vec<TruthObject> {
        spans
            .iter()
            .enumerate()
            .map(|(i, s)| {
                object(
                    "birds",
                    ["lark", "crow", "owl", "gull"][i % 4],
                    [s[0] - 3, s[1] + 3],
                )
            })
            .collect()
    }

    /// `clean` missing every crossing of the first of [`four_instances`].
    fn blind_to_the_first_instance(clean: &[u8], spans: &[[u64; 2]]) -> Vec<u8> {
        let mut blind = clean.to_vec();
        for s in spans.iter().step_by(4) {
            blind[s[0] as usize..=s[1] as usize].fill(0);
        }
        blind
    }

    #[test]
    fn a_gain_on_one_object_instance_is_uncertain_however_often_it_crosses() {
        let (spans, blocks, event) = forty_crossings();
        // Forty crossings of four instances, ten each; the least-shared head
        // misses every crossing of the first one, the other head none.
        let objects = four_instances(&spans);
        let clean = head(&spans, &[]);
        let blind = blind_to_the_first_instance(&clean, &spans);
        let by_blocks = resampling_units(&blocks, &[], "birds", 2000);
        let by_instances = resampling_units(&blocks, &objects, "birds", 2000);
        assert_eq!(by_instances.strata.own_instances, 4);
        let sd = |u: &ResamplingUnits| {
            bootstrap(&[&blind, &clean], &spans, 2, u, &event, 10.0).gain_sd[1]
        };
        let (blocks_sd, instances_sd) = (sd(&by_blocks), sd(&by_instances));
        // Ten crossings looked like ten chances; they are one object.
        assert!(
            instances_sd > 2.0 * blocks_sd,
            "{instances_sd} vs {blocks_sd}"
        );
    }

    #[test]
    fn a_head_that_misses_one_object_instance_has_an_uncertain_accuracy_and_a_steady_one_not() {
        let (spans, blocks, event) = forty_crossings();
        let objects = four_instances(&spans);
        let units = resampling_units(&blocks, &objects, "birds", 2000);
        let clean = head(&spans, &[]);
        let blind = blind_to_the_first_instance(&clean, &spans);
        // One head alone still gets its rates' spread (no gain to measure).
        let alone = bootstrap(&[&clean], &spans, 2, &units, &event, 10.0);
        assert_eq!(alone.gain_sd, [0.0]);
        assert_eq!((alone.accuracy_sd, alone.fpr_sd), (vec![0.0], vec![0.0]));
        // Missing every crossing of one of four instances: accuracy 0.6
        // (0.8 on the other three), and resampling the four instances
        // moves it by about 0.8 * sqrt(0.75 * 0.25 / 4) = 0.17.
        let s = bootstrap(&[&clean, &blind], &spans, 2, &units, &event, 10.0);
        assert_eq!(s.accuracy_sd[0], 0.0);
        assert!(
            (0.15..0.3).contains(&s.accuracy_sd[1]),
            "{:?}",
            s.accuracy_sd
        );
        assert_eq!(s.fpr_sd, [0.0, 0.0]);
        assert!(s.gain_sd[1] > 0.0);
    }

    #[test]
    fn accuracy_is_also_measured_per_object_instance_lowest_first() {
        let (spans, blocks, _) = forty_crossings();
        let units = resampling_units(&blocks, &four_instances(&spans), "birds", 2000);
        let clean = head(&spans, &[]);
        let blind = blind_to_the_first_instance(&clean, &spans);
        let per = instance_accuracy(&blind, &spans, &units);
        let got: Vec<(&str, u64, f64)> = per
            .iter()
            .map(|i| (i.instance.as_str(), i.event_frames, i.accuracy))
            .collect();
        // Ten crossings of 10 frames each; 8 of 10 frames positive where seen.
        assert_eq!(
            got,
            [
                ("lark", 100, 0.0),
                ("crow", 100, 0.8),
                ("gull", 100, 0.8),
                ("owl", 100, 0.8)
            ]
        );
        // Without an object list there is nothing per instance.
        let blocks_only = resampling_units(&blocks, &[], "birds", 2000);
        assert!(instance_accuracy(&blind, &spans, &blocks_only).is_empty());
    }

    #[test]
    fn correlation_follows_from_how_often_a_miss_follows_a_miss() {
        let mut h = measure_head(&[0, 0, 0, 1, 1, 1], &[[0, 5]], 0, 0, "x".into(), (0.0, 0.0));
        // p = 0.5, P(miss | miss) = 2/3 -> c = (2/3 - 0.5) / 0.5 = 1/3.
        let c = pooled_correlation(std::slice::from_ref(&h)).expect("measurable");
        assert!((c - 1.0 / 3.0).abs() < 1e-12);
        h.pairs_after_miss = 0;
        assert_eq!(pooled_correlation(&[h]), None);
    }
}
