//! M-Scheduler: the event-F1 model, the cost model and the planners.
//!
//! Everything here is pure: a [`Problem`] (segment costs of the base network
//! on this device, camera streams, apps with their M-Package curves and event
//! parameters, a global budget) goes in, a [`Plan`] (per app a branch point and
//! a frame rate, with predicted recall, precision and event F1, plus the shared
//! stem tree of every stream) comes out. No I/O, no clocks, no panics on bad
//! input: [`Problem::validate`] rejects invalid problems with
//! [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig), and every
//! number in a result is finite.
//!
//! # Model
//!
//! - [`model`]: the event F1 model of MAINSTREAM.md with event length in stream
//!   frames ([`Units::Physical`]) and the authors' code variant
//!   ([`Units::PaperCompat`]), X-voting included.
//! - [`cost`]: the cost model. Apps share stems only with apps on the same
//!   stream; each stream has its own fps; the budget bounds the sum of all
//!   streams' tree costs. Budget and costs share one unit (the product uses
//!   core-milliseconds per second of video: budget = cores * 1000 and segment
//!   costs in ms per frame; the paper simulation uses its normalised units).
//!
//! # Planners ([`plan`] with a [`Strategy`])
//!
//! - [`Strategy::Greedy`]: the paper's greedy exactly as its authors coded it
//!   (score = loss / own branch cost, first found wins ties).
//! - [`Strategy::Exact`]: the maximum mean F1 within the budget, by branch and
//!   bound on the exact cost values ([`exact`] explains the bound).
//! - [`Strategy::MaxMin`]: the maximum of the smallest F1, ties broken by mean F1.
//! - [`Strategy::Heuristic`]: marginal-utility greedy (best F1 gain per added
//!   cost) and hill climbing, or the paper's greedy when that is better; a
//!   fast near-optimal plan.
//! - [`Strategy::Auto`]: exact for up to [`AUTO_EXACT_MAX_APPS`] apps when the
//!   search finishes within its work limit, the heuristic otherwise.
//! - [`Strategy::MaxSharing`] / [`Strategy::NoSharing`]: the paper's baselines
//!   (every app at its most- / least-frozen point), with fps chosen as the
//!   paper's code does ([`BaselineFps::Greedy`]), uniformly, or exactly.
//!
//! Apps' `min_f1` are hard constraints for the exact planners; [`admit`] is the
//! admission control the paper lacks: which apps cannot get their minimum F1
//! within the budget, and what budget would fit them.
//!
//! # Frame-rate options ([`FpsGrid`])
//!
//! - [`FpsGrid::Paper`] (the authors' code): shared plans and Max-Sharing pick
//!   from the integers 1..=F; No-Sharing also from 0.1, 0.2, ..., 0.9.
//! - [`FpsGrid::Fine`] (the product's choice): every strategy picks from
//!   0.1..0.9 and the integers 1..=F (plus F itself when F is not an integer).
//!   A slow sampler is as real for a shared branch as for a full network, and
//!   the same options for all strategies keep comparisons fair.
//!
//! # Public API used by the CLI
//!
//! ```text
//! planner::Problem { segment_costs, streams, apps, budget, units, fps_grid }
//! planner::Problem::{validate, subset}
//! planner::plan(&Problem, Strategy) -> Result<Plan>
//! planner::admit(&Problem) -> Result<Admission>
//! planner::report::compare(&Problem, Strategy) -> Result<Comparison>
//!     (admission control, then the admitted apps planned with the strategy
//!      and with both baselines)
//! planner::report::{render_text, render_json}(&Problem, &Comparison) -> String
//! planner::table::PlannerTable::compile(&Problem) -> Result<PlannerTable>
//! planner::table::PlannerTable::{to_bytes, from_bytes, evaluate(budget, Strategy), admit(budget)}
//! planner::simulate::{suite, run(&SimOptions), render_text, render_json, greedy_gap}
//! planner::paper::{layer_costs, curves, monotone, test_vector, RESULTS}
//! ```
//!
//! Typical use: `mainstream plan` builds a [`Problem`] from the configuration
//! (budget = cores * 1000, segment costs in ms/frame from the device profile,
//! [`Units::Physical`], [`FpsGrid::Fine`]), calls
//! [`report::compare`] with [`Strategy::Auto`] and prints
//! [`report::render_text`] or [`report::render_json`]. The service compiles a
//! [`table::PlannerTable`] whenever the apps change, keeps its bytes in the
//! state directory and calls [`table::PlannerTable::evaluate`] at boot and on
//! every budget change. `mainstream simulate` prints
//! [`simulate::render_text`] (or `render_json`) of [`simulate::run`] over
//! [`simulate::suite`].

pub mod cost;
pub mod exact;
pub mod greedy;
pub(crate) mod json;
pub mod model;
pub mod paper;
pub mod report;
pub mod simulate;
pub mod table;

use crate::error::Result;
use serde::{Deserialize, Serialize};

/// Most segments a base network may have (branch points are stored as `u16`).
pub const MAX_SEGMENTS: usize = u16::MAX as usize;
/// Most streams in one problem.
pub const MAX_STREAMS: usize = 1024;
/// Most apps in one problem.
pub const MAX_APPS: usize = 4096;
/// Highest stream frame rate accepted.
pub const MAX_STREAM_FPS: f64 = 1000.0;
/// Longest event accepted, ms (one hour).
pub const MAX_EVENT_MS: f64 = 3_600_000.0;
/// [`Strategy::Auto`] runs the exact planner up to this many apps.
pub const AUTO_EXACT_MAX_APPS: usize = 12;

/// How the event length is counted (see [`model`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Units {
    /// Event length in stream frames: an event holds `L * f / 1000` samples.
    Physical,
    /// The authors' code: event length in app frames (`L * f^2 / (1000 F)`
    /// samples). Only for reproducing the paper's figures.
    PaperCompat,
}

impl Units {
    /// Lower-case name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Units::Physical => "physical",
            Units::PaperCompat => "paper-compat",
        }
    }
}

/// Which frame rates the planners may choose (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FpsGrid {
    /// Integers 1..=F; No-Sharing also 0.1..0.9 (the authors' code).
    Paper,
    /// 0.1..0.9 and the integers 1..=F for every strategy (the product).
    Fine,
}

impl FpsGrid {
    /// Lower-case name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FpsGrid::Paper => "paper",
            FpsGrid::Fine => "fine",
        }
    }
}

/// An app's event parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventParams {
    /// Event length L in ms, in (0, [`MAX_EVENT_MS`]].
    pub length_ms: f64,
    /// Event frequency phi: fraction of event-length windows holding an event, in [0, 1].
    pub frequency: f64,
    /// Inter-frame correlation c, in [0, 1].
    pub correlation: f64,
    /// X-voting: consecutive positive samples needed to report an event, 1..=16.
    pub voting: u32,
}

/// One kept branch point of an M-Package.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Branch point: number of frozen (shared) segments, `0` = no sharing.
    pub branch: usize,
    /// Per-frame top-1 accuracy p.
    pub accuracy: f64,
    /// Per-frame false-positive rate q.
    pub fpr: f64,
    /// How uncertain the calibration is about this head's predicted event F1
    /// gain over the app's least-shared head: the bootstrap standard
    /// deviation written by `mainstream calibrate` (`0` = not measured). A
    /// planner counts this head's predicted advantage over the least-shared
    /// head at the same frame rate only beyond `max(share_margin, gain_z(m) *
    /// gain_sd)`, `m` the app's number of shared heads ([`gain_z`]).
    #[serde(default)]
    pub gain_sd: f64,
}

/// The chance the planner accepts of sharing a head for a gain its
/// calibration shows by chance: per app, over all its shared heads together
/// (see [`gain_z`]).
pub const GAIN_ALPHA: f64 = 0.05;

/// How many standard deviations of its calibrated uncertainty
/// ([`CurvePoint::gain_sd`]) a shared head's predicted gain must exceed when
/// the app has `shared_heads` heads besides its least-shared one: the
/// one-sided normal quantile at `GAIN_ALPHA / shared_heads` (1.645 for one
/// head, 1.960 for two, 2.128 for three). The planner takes an app's best
/// head, so every shared head is one more chance of a gain that is only
/// noise; dividing the chance among them (Bonferroni) keeps the planner's
/// promise per app: it shares a gain that its calibration would show by
/// chance in fewer than 1 in 20 clips of other object instances of the same
/// categories (docs/eval.md, "Session 8: resampling object instances, and
/// a margin per app").
pub fn gain_z(shared_heads: usize) -> f64 {
    let tail = GAIN_ALPHA / shared_heads.max(1) as f64;
    // Bisection on the upper tail, which falls monotonically in z.
    let (mut lo, mut hi) = (0.0f64, 10.0f64);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if upper_tail(mid) > tail {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// `P(Z > z)` of a standard normal for `z >= 0`, from the complementary
/// error function's rational approximation of Abramowitz and Stegun 7.1.26
/// (absolute error below 1.5e-7, far below what a margin can tell apart).
fn upper_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    0.5 * poly * (-x * x).exp()
}

/// A camera stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamSpec {
    /// Name for reports.
    pub name: String,
    /// Stream frame rate F, in [1, [`MAX_STREAM_FPS`]].
    pub fps: f64,
}

/// One app to plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppSpec {
    /// Name for reports.
    pub name: String,
    /// Index into [`Problem::streams`].
    pub stream: usize,
    /// The app's M-Package curve: one point per kept branch point.
    pub curve: Vec<CurvePoint>,
    /// Event parameters.
    pub event: EventParams,
    /// Minimum useful event F1 (0 = none); a hard constraint for the exact
    /// planners and the criterion of [`admit`].
    pub min_f1: f64,
}

/// A planning problem.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Cost of each segment of the base network, per frame (e.g. ms/frame).
    pub segment_costs: Vec<f64>,
    /// Camera streams.
    pub streams: Vec<StreamSpec>,
    /// Apps, in priority order (admission control keeps earlier apps first).
    pub apps: Vec<AppSpec>,
    /// Global budget, in cost units per second of video (e.g. core-ms/s).
    pub budget: f64,
    /// How event length is counted.
    pub units: Units,
    /// Frame-rate options.
    pub fps_grid: FpsGrid,
    /// How much better (in predicted event F1) a more shared head must be than
    /// the app's least-shared head at the same frame rate before a planner
    /// gives the latter up: an option on another head scores its predicted F1
    /// less its predicted advantage over the own head at that frame rate, up
    /// to this margin (a disadvantage, and the frame rate a cheaper head buys
    /// where the budget binds, count in full; `build_opts`). `0`
    /// is the paper's planner; the product uses
    /// [`DEFAULT_SHARE_MARGIN`](crate::config::DEFAULT_SHARE_MARGIN) (see
    /// docs/eval.md, "Sharing margin"). A head whose calibration measured its
    /// uncertainty gets the larger margin `gain_z(m) * gain_sd` where that
    /// is larger ([`CurvePoint::gain_sd`]). Reported F1 and `min_f1` use the
    /// prediction itself.
    #[serde(default)]
    pub share_margin: f64,
}

/// How the baselines choose frame rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BaselineFps {
    /// Per-app fps by the paper's greedy restricted to the baseline's branch
    /// point (what the authors' simulator does).
    Greedy,
    /// The highest single fps (capped by each stream's F) that fits.
    Uniform,
    /// Per-app fps maximising mean F1 exactly.
    Exact,
}

/// Which planner to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Strategy {
    /// The paper's greedy, as its authors coded it.
    Greedy,
    /// Maximum mean F1, exactly.
    Exact,
    /// A fast near-optimal plan: marginal-utility greedy (best F1 gain per
    /// added cost) then hill climbing, or the paper's greedy if that is better.
    Heuristic,
    /// Maximum smallest F1, then maximum mean F1, exactly.
    MaxMin,
    /// [`Strategy::Exact`] for small problems, [`Strategy::Heuristic`] otherwise.
    Auto,
    /// Every app at its most-frozen branch point.
    MaxSharing(BaselineFps),
    /// Every app at its least-frozen branch point (0 = its own full network).
    NoSharing(BaselineFps),
}

impl Strategy {
    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Greedy => "greedy",
            Strategy::Exact => "exact",
            Strategy::Heuristic => "heuristic",
            Strategy::MaxMin => "max-min",
            Strategy::Auto => "auto",
            Strategy::MaxSharing(BaselineFps::Greedy) => "max-sharing",
            Strategy::MaxSharing(BaselineFps::Uniform) => "max-sharing (uniform fps)",
            Strategy::MaxSharing(BaselineFps::Exact) => "max-sharing (exact fps)",
            Strategy::NoSharing(BaselineFps::Greedy) => "no-sharing",
            Strategy::NoSharing(BaselineFps::Uniform) => "no-sharing (uniform fps)",
            Strategy::NoSharing(BaselineFps::Exact) => "no-sharing (exact fps)",
        }
    }
}

/// One app's part of a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppPlan {
    /// Index into [`Problem::apps`].
    pub app: usize,
    /// The app's name.
    pub name: String,
    /// Index into [`Problem::streams`].
    pub stream: usize,
    /// Chosen branch point (number of shared segments).
    pub branch: usize,
    /// Chosen frame rate.
    pub fps: f64,
    /// Predicted event recall.
    pub recall: f64,
    /// Predicted event precision.
    pub precision: f64,
    /// Predicted event F1.
    pub f1: f64,
    /// Cost of the app's own branch (segments `branch..`) at its fps.
    pub branch_cost: f64,
}

/// A run of shared segments `[start, end)` executed once per frame at `fps`
/// for every app in `apps` (their branch points are all `>= end`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StemSegment {
    /// First segment.
    pub start: usize,
    /// One past the last segment.
    pub end: usize,
    /// Frame rate: the highest fps of the apps sharing it.
    pub fps: f64,
    /// Cost of running it.
    pub cost: f64,
    /// Apps (indices into [`Problem::apps`]) sharing it.
    pub apps: Vec<usize>,
}

/// The tree of one stream: a stem of shared segments (deepest last) and each
/// app's own branch from its branch point to the end of the network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StemTree {
    /// Index into [`Problem::streams`].
    pub stream: usize,
    /// Stream name.
    pub name: String,
    /// Stream frame rate.
    pub stream_fps: f64,
    /// Shared segments, shallowest first.
    pub stem: Vec<StemSegment>,
    /// Total cost of the stem.
    pub stem_cost: f64,
    /// Total cost of this stream's tree (stem and branches).
    pub cost: f64,
}

/// A planner's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The planner that produced it ([`Strategy::Auto`] reports the one it ran).
    pub strategy: Strategy,
    /// Whether the plan's cost is within the budget (and, for the exact
    /// planners, every app reaches its `min_f1`). An infeasible plan holds the
    /// cheapest schedule the planner found.
    pub feasible: bool,
    /// Per app, in problem order.
    pub apps: Vec<AppPlan>,
    /// One tree per stream that has apps.
    pub trees: Vec<StemTree>,
    /// Total cost (all streams).
    pub cost: f64,
    /// The budget.
    pub budget: f64,
    /// Mean predicted F1 (0 with no apps).
    pub mean_f1: f64,
    /// Smallest predicted F1 (0 with no apps).
    pub min_f1: f64,
    /// Set when a planner that weighs sharing runs a baseline's plan instead
    /// of its own (see [`Fallback`]); `strategy` still names that planner.
    #[serde(default)]
    pub fallback: Option<Fallback>,
}

/// Why a planner that weighs sharing (greedy, exact, heuristic, auto) runs
/// the No-Sharing or Max-Sharing plan instead of its own: its own plan is not
/// predicted better than that baseline's by more than the calibration can
/// vouch for where the two plans put apps on different heads.
///
/// The doubt is the root-sum-square, over the apps whose head differs, of
/// both heads' sharing margins ([`point_margins`]: 0 for an app's own head,
/// `max(share_margin, gain_z(m) * gain_sd)` for a shared one), divided by
/// the number of apps like the advantage. Frame rates carry no doubt: the
/// calibration measures none for them. A plan that already is a baseline's
/// (every app on the same head at the same frame rate) is kept; of several
/// baselines within doubt the one predicted best runs. With `share_margin` 0
/// and no `gain_sd` (the paper's planner) there is no doubt and no fallback.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fallback {
    /// The baseline whose plan runs.
    pub baseline: Strategy,
    /// The planner's own plan's predicted mean F1 minus the baseline's.
    pub advantage: f64,
    /// How large an advantage the heads' margins leave in doubt (mean F1).
    pub doubt: f64,
}

impl std::fmt::Display for Fallback {
    /// "the max-sharing plan: its own was predicted only +0.026 mean F1
    /// better, within the 0.028 its heads' calibration leaves in doubt"
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the {} plan: its own was predicted only {:+.3} mean F1 better, within the {:.3} its heads' \
             calibration leaves in doubt",
            self.baseline.name(),
            self.advantage,
            self.doubt
        )
    }
}

/// Why an app was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum RejectReason {
    /// No branch point and fps reaches `min_f1`, at any budget; `best_f1` is
    /// the best the app can do.
    Unreachable {
        /// The app's best possible F1.
        best_f1: f64,
    },
    /// The apps admitted before it leave too little budget; `budget_needed` is
    /// the smallest budget that fits them and this app at their `min_f1`.
    OverBudget {
        /// Smallest sufficient budget.
        budget_needed: f64,
    },
}

/// An app admission control turned away.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    /// Index into [`Problem::apps`].
    pub app: usize,
    /// The app's name.
    pub name: String,
    /// Why.
    pub reason: RejectReason,
}

/// The outcome of admission control ([`admit`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Admission {
    /// Admitted apps (indices into [`Problem::apps`]), in priority order.
    pub admitted: Vec<usize>,
    /// Apps turned away, in priority order.
    pub rejected: Vec<Rejection>,
    /// The budget.
    pub budget: f64,
    /// Smallest budget giving every app its `min_f1` (`None` if some app can
    /// never reach it).
    pub budget_for_all: Option<f64>,
    /// Cheapest cost of the admitted apps at their `min_f1`.
    pub admitted_cost: f64,
}

fn check(ok: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(crate::error::Error::new(
            crate::error::ErrorKind::InvalidConfig,
            msg(),
        ))
    }
}

fn in_unit(x: f64) -> bool {
    x.is_finite() && (0.0..=1.0).contains(&x)
}

impl Problem {
    /// Checks every field; the error message names the offending item.
    pub fn validate(&self) -> Result<()> {
        let n = self.segment_costs.len();
        check(n > 0 && n <= MAX_SEGMENTS, || {
            format!("planner: the base network needs 1..={MAX_SEGMENTS} segment costs, got {n}")
        })?;
        for (i, &c) in self.segment_costs.iter().enumerate() {
            check(c.is_finite() && c >= 0.0, || {
                format!("planner: segment {i} cost {c} is not a finite non-negative number")
            })?;
        }
        let total: f64 = self.segment_costs.iter().sum();
        check(total > 0.0 && total.is_finite(), || {
            format!("planner: the base network's total cost {total} must be positive and finite")
        })?;
        check(self.budget.is_finite() && self.budget >= 0.0, || {
            format!(
                "planner: budget {} is not a finite non-negative number",
                self.budget
            )
        })?;
        check(self.streams.len() <= MAX_STREAMS, || {
            format!(
                "planner: {} streams, at most {MAX_STREAMS}",
                self.streams.len()
            )
        })?;
        for (i, s) in self.streams.iter().enumerate() {
            check(
                s.fps.is_finite() && (1.0..=MAX_STREAM_FPS).contains(&s.fps),
                || {
                    format!(
                        "planner: stream {i} ({}) fps {} is outside 1..={MAX_STREAM_FPS}",
                        s.name, s.fps
                    )
                },
            )?;
        }
        check(self.apps.len() <= MAX_APPS, || {
            format!("planner: {} apps, at most {MAX_APPS}", self.apps.len())
        })?;
        for (i, a) in self.apps.iter().enumerate() {
            let who = || format!("planner: app {i} ({})", a.name);
            check(a.stream < self.streams.len(), || {
                format!("{}: stream index {} does not exist", who(), a.stream)
            })?;
            check(!a.curve.is_empty(), || {
                format!("{}: the curve has no branch points", who())
            })?;
            check(a.curve.len() <= n, || {
                format!("{}: more curve points than segments", who())
            })?;
            let mut seen: Vec<usize> = a.curve.iter().map(|p| p.branch).collect();
            seen.sort_unstable();
            check(seen.windows(2).all(|w| w[0] != w[1]), || {
                format!("{}: a branch point appears twice in the curve", who())
            })?;
            for p in &a.curve {
                check(p.branch < n, || {
                    format!(
                        "{}: branch point {} must leave at least one of the {n} segments to the app",
                        who(),
                        p.branch
                    )
                })?;
                check(in_unit(p.accuracy) && in_unit(p.fpr), || {
                    format!(
                        "{}: accuracy {} and fpr {} at branch point {} must lie in [0, 1]",
                        who(),
                        p.accuracy,
                        p.fpr,
                        p.branch
                    )
                })?;
                check(in_unit(p.gain_sd), || {
                    format!(
                        "{}: gain_sd {} at branch point {} must lie in [0, 1]",
                        who(),
                        p.gain_sd,
                        p.branch
                    )
                })?;
            }
            let e = &a.event;
            check(
                e.length_ms.is_finite() && e.length_ms > 0.0 && e.length_ms <= MAX_EVENT_MS,
                || {
                    format!(
                        "{}: event length {} ms is outside (0, {MAX_EVENT_MS}]",
                        who(),
                        e.length_ms
                    )
                },
            )?;
            check(in_unit(e.frequency), || {
                format!(
                    "{}: event frequency {} is outside [0, 1]",
                    who(),
                    e.frequency
                )
            })?;
            check(in_unit(e.correlation), || {
                format!("{}: correlation {} is outside [0, 1]", who(), e.correlation)
            })?;
            check((1..=model::MAX_VOTING).contains(&e.voting), || {
                format!(
                    "{}: voting {} is outside 1..={}",
                    who(),
                    e.voting,
                    model::MAX_VOTING
                )
            })?;
            check(in_unit(a.min_f1), || {
                format!("{}: min_f1 {} is outside [0, 1]", who(), a.min_f1)
            })?;
        }
        check(in_unit(self.share_margin), || {
            format!(
                "planner: share_margin {} is outside [0, 1]",
                self.share_margin
            )
        })?;
        Ok(())
    }

    /// The same problem restricted to `apps` (indices, in the order given).
    pub fn subset(&self, apps: &[usize]) -> Problem {
        Problem {
            apps: apps
                .iter()
                .filter_map(|&i| self.apps.get(i).cloned())
                .collect(),
            ..self.clone()
        }
    }
}

/// Plans `problem` with `strategy`.
pub fn plan(problem: &Problem, strategy: Strategy) -> Result<Plan> {
    problem.validate()?;
    let c = Compiled::from_problem(problem);
    c.plan(strategy)
}

/// Admission control: admits apps in priority order while the budget can give
/// every admitted app at least its `min_f1`, and says for each rejected app
/// what budget would have fitted it.
pub fn admit(problem: &Problem) -> Result<Admission> {
    problem.validate()?;
    let c = Compiled::from_problem(problem);
    c.admit()
}

// ---------------------------------------------------------------------------
// The compiled form every planner works on.

/// One frame-rate option of a stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct GridFps {
    pub fps: f64,
    /// One of 0.1..0.9 (only No-Sharing may use these on the paper grid).
    pub tenth: bool,
}

/// The frame-rate options of a stream of `fps` frames per second, ascending.
pub(crate) fn grid_for(fps: f64) -> Vec<GridFps> {
    let mut g: Vec<GridFps> = (1..=9)
        .map(|i| GridFps {
            fps: i as f64 / 10.0,
            tenth: true,
        })
        .collect();
    // Stream fps is validated to lie in [1, 1000], so the cast is exact.
    let whole = fps.floor() as u32;
    g.extend((1..=whole).map(|i| GridFps {
        fps: i as f64,
        tenth: false,
    }));
    if fps > whole as f64 {
        g.push(GridFps { fps, tenth: false });
    }
    g
}

#[derive(Clone, Debug)]
pub(crate) struct CStream {
    pub name: String,
    pub fps: f64,
    /// Branch points any app of the stream may use, ascending.
    pub levels: Vec<usize>,
    /// `cum[k]`: cost of segments `[0, levels[k])` per frame.
    pub cum: Vec<f64>,
    /// `seg[k]`: cost of segments `[levels[k-1], levels[k])` per frame.
    pub seg: Vec<f64>,
    /// Cost of the whole network per frame.
    pub total: f64,
    pub grid: Vec<GridFps>,
}

/// One (branch point, fps) option of an app.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Opt {
    /// Index into the stream's `levels`.
    pub level: u16,
    /// Index into the app's `points`.
    pub point: u16,
    /// Index into the stream's `grid`.
    pub grid: u16,
    pub fps: f64,
    /// The planners' objective: the predicted F1, less, on any head but the
    /// app's least-shared one, its predicted advantage over that head at the
    /// same frame rate up to the head's margin ([`build_opts`]).
    pub f1: f64,
    /// The model's predicted event F1 (what `min_f1` is compared with).
    pub pred: f64,
    /// Cost of the app's own branch at this fps.
    pub own: f64,
}

#[derive(Clone, Debug)]
pub(crate) struct CApp {
    pub name: String,
    pub stream: usize,
    pub event: EventParams,
    pub min_f1: f64,
    /// (level index, accuracy, fpr), sorted by level.
    pub points: Vec<(u16, f64, f64)>,
    /// Per point: the calibration's `gain_sd` (kept for the planner table).
    pub gain_sd: Vec<f64>,
    /// Per point: its sharing margin ([`point_margins`]).
    pub margins: Vec<f64>,
    /// Options sorted by fps, then branch point (the greedy's scan order).
    pub opts: Vec<Opt>,
}

#[derive(Clone, Debug)]
pub(crate) struct Compiled {
    pub units: Units,
    pub fps_grid: FpsGrid,
    pub budget: f64,
    pub streams: Vec<CStream>,
    pub apps: Vec<CApp>,
}

impl Compiled {
    /// Compiles a validated problem: every option's F1 from the model.
    pub fn from_problem(p: &Problem) -> Compiled {
        let mut cum_all = Vec::with_capacity(p.segment_costs.len() + 1);
        let mut acc = 0.0;
        cum_all.push(0.0);
        for &c in &p.segment_costs {
            acc += c;
            cum_all.push(acc);
        }
        let streams: Vec<CStream> = p
            .streams
            .iter()
            .enumerate()
            .map(|(si, s)| {
                let mut levels: Vec<usize> = p
                    .apps
                    .iter()
                    .filter(|a| a.stream == si)
                    .flat_map(|a| a.curve.iter().map(|c| c.branch))
                    .collect();
                levels.sort_unstable();
                levels.dedup();
                let cum: Vec<f64> = levels.iter().map(|&b| cum_all[b]).collect();
                CStream::new(s.name.clone(), s.fps, levels, cum, acc)
            })
            .collect();
        let apps = p
            .apps
            .iter()
            .map(|a| {
                let st = &streams[a.stream];
                let mut curve: Vec<(u16, f64, f64, f64)> = a
                    .curve
                    .iter()
                    .map(|c| {
                        // Every curve branch point is one of the stream's levels.
                        let level = st.levels.binary_search(&c.branch).unwrap_or(0);
                        (level as u16, c.accuracy, c.fpr, c.gain_sd)
                    })
                    .collect();
                curve.sort_by_key(|x| x.0);
                let points: Vec<(u16, f64, f64)> = curve
                    .iter()
                    .map(|&(l, acc, fpr, _)| (l, acc, fpr))
                    .collect();
                let gain_sd: Vec<f64> = curve.iter().map(|x| x.3).collect();
                let margins = point_margins(p.share_margin, gain_sd.iter().copied());
                let f1 = |point: usize, fps: f64| {
                    let (_, acc, fpr) = points[point];
                    model::predict(acc, fpr, &a.event, st.fps, fps, p.units).f1
                };
                let opts = build_opts(st, &points, &margins, f1);
                CApp {
                    name: a.name.clone(),
                    stream: a.stream,
                    event: a.event,
                    min_f1: a.min_f1,
                    points,
                    gain_sd,
                    margins,
                    opts,
                }
            })
            .collect();
        Compiled {
            units: p.units,
            fps_grid: p.fps_grid,
            budget: p.budget,
            streams,
            apps,
        }
    }

    /// A copy keeping only the options `keep` accepts.
    pub fn restrict(&self, keep: impl Fn(&CStream, &CApp, &Opt) -> bool) -> Compiled {
        let mut c = self.clone();
        for a in &mut c.apps {
            let st = &self.streams[a.stream];
            let app = &*a;
            let kept: Vec<Opt> = app
                .opts
                .iter()
                .filter(|o| keep(st, app, o))
                .copied()
                .collect();
            a.opts = kept;
        }
        c
    }

    /// The options a strategy may use.
    pub fn for_strategy(&self, strategy: Strategy) -> Compiled {
        let paper = self.fps_grid == FpsGrid::Paper;
        match strategy {
            Strategy::Greedy
            | Strategy::Exact
            | Strategy::Heuristic
            | Strategy::MaxMin
            | Strategy::Auto => {
                self.restrict(|st, _, o| !(paper && st.grid[o.grid as usize].tenth))
            }
            // The baselines have one head per app: nothing to weigh against
            // sharing, so they plan on the predicted F1 itself.
            Strategy::MaxSharing(_) => self
                .restrict(|st, a, o| {
                    let deepest = a.points.last().map_or(0, |p| p.0);
                    o.level == deepest && !(paper && st.grid[o.grid as usize].tenth)
                })
                .without_margin(),
            Strategy::NoSharing(_) => self
                .restrict(|_, a, o| {
                    let shallowest = a.points.first().map_or(0, |p| p.0);
                    o.level == shallowest
                })
                .without_margin(),
        }
    }

    /// A copy whose objective is the predicted F1 (no sharing margin).
    fn without_margin(mut self) -> Compiled {
        for a in &mut self.apps {
            for o in &mut a.opts {
                o.f1 = o.pred;
            }
        }
        self
    }

    /// Runs a planner; one that weighs sharing runs a baseline's plan where
    /// its own is not predicted better by more than the doubt ([`Fallback`]).
    pub fn plan(&self, strategy: Strategy) -> Result<Plan> {
        let own = self.plan_alone(strategy)?;
        let weighs_sharing = matches!(
            strategy,
            Strategy::Greedy | Strategy::Exact | Strategy::Heuristic | Strategy::Auto
        );
        if !weighs_sharing || !own.feasible {
            return Ok(own);
        }
        let baselines = [
            Strategy::NoSharing(BaselineFps::Greedy),
            Strategy::MaxSharing(BaselineFps::Greedy),
        ]
        .map(|s| self.plan_alone(s).map(|p| (s, p)));
        let mut best: Option<(Plan, Fallback)> = None;
        for b in baselines {
            let (baseline, b) = b?;
            if same_schedule(&own, &b) {
                // Already a baseline's plan: nothing to hedge.
                return Ok(own);
            }
            let Some(fb) = self.doubtful_advantage(&own, &b, baseline) else {
                continue;
            };
            if best.as_ref().is_none_or(|(q, _)| b.mean_f1 > q.mean_f1) {
                best = Some((b, fb));
            }
        }
        Ok(match best {
            Some((b, fb)) => Plan {
                strategy: own.strategy,
                fallback: Some(fb),
                ..b
            },
            None => own,
        })
    }

    /// The [`Fallback`] to `baseline`'s plan `b` if `own` is not predicted
    /// better than `b` by more than the doubt and `b` may run (it fits the
    /// budget and gives every app at least its `min_f1`).
    fn doubtful_advantage(&self, own: &Plan, b: &Plan, baseline: Strategy) -> Option<Fallback> {
        let n = own.apps.len();
        if !b.feasible || n == 0 || b.apps.len() != n {
            return None;
        }
        let mut advantage = 0.0;
        let mut doubt2 = 0.0;
        for (x, y) in own.apps.iter().zip(&b.apps) {
            let a = self.apps.get(x.app)?;
            if y.app != x.app || y.f1 < a.min_f1 {
                return None;
            }
            advantage += x.f1 - y.f1;
            if x.branch != y.branch {
                doubt2 += self.margin_at(x.app, x.branch).powi(2)
                    + self.margin_at(y.app, y.branch).powi(2);
            }
        }
        let (advantage, doubt) = (advantage / n as f64, doubt2.sqrt() / n as f64);
        (doubt > 0.0 && advantage < doubt).then_some(Fallback {
            baseline,
            advantage,
            doubt,
        })
    }

    /// The sharing margin of app `app`'s head at branch point `branch`.
    fn margin_at(&self, app: usize, branch: usize) -> f64 {
        let a = &self.apps[app];
        let levels = &self.streams[a.stream].levels;
        a.points
            .iter()
            .zip(&a.margins)
            .find(|((level, _, _), _)| levels.get(*level as usize) == Some(&branch))
            .map_or(0.0, |(_, &m)| m)
    }

    /// Runs a planner on its own.
    fn plan_alone(&self, strategy: Strategy) -> Result<Plan> {
        let c = self.for_strategy(strategy);
        if c.apps.is_empty() {
            return Ok(c.build_plan(strategy, &[], true));
        }
        match strategy {
            Strategy::Greedy
            | Strategy::MaxSharing(BaselineFps::Greedy)
            | Strategy::NoSharing(BaselineFps::Greedy) => {
                let choice = greedy::greedy(&c);
                let feasible = cost::fits(c.cost_of(&choice), c.budget);
                Ok(c.build_plan(strategy, &choice, feasible))
            }
            Strategy::MaxSharing(BaselineFps::Uniform)
            | Strategy::NoSharing(BaselineFps::Uniform) => {
                let (choice, feasible) = greedy::uniform(&c);
                Ok(c.build_plan(strategy, &choice, feasible))
            }
            Strategy::Exact
            | Strategy::MaxSharing(BaselineFps::Exact)
            | Strategy::NoSharing(BaselineFps::Exact) => {
                self.plan_exact(&c, strategy, exact::DEFAULT_WORK_LIMIT)
            }
            Strategy::MaxMin => {
                let cm = c.with_min_f1();
                match exact::max_min(&cm, exact::DEFAULT_WORK_LIMIT)? {
                    Some(choice) => Ok(cm.build_plan(strategy, &choice, true)),
                    None => self.infeasible_plan(&cm, strategy),
                }
            }
            Strategy::Auto => {
                if c.apps.len() <= AUTO_EXACT_MAX_APPS {
                    match self.plan_exact(&c, Strategy::Exact, exact::AUTO_WORK_LIMIT) {
                        Ok(p) => return Ok(p),
                        Err(e) if e.kind() == crate::ErrorKind::Unsupported => {}
                        Err(e) => return Err(e),
                    }
                }
                self.plan_heuristic(&c, Strategy::Heuristic)
            }
            Strategy::Heuristic => self.plan_heuristic(&c, strategy),
        }
    }

    fn plan_heuristic(&self, c: &Compiled, strategy: Strategy) -> Result<Plan> {
        let cm = c.with_min_f1();
        match cm.best_seed() {
            Some(choice) => Ok(cm.build_plan(strategy, &choice, true)),
            None => self.infeasible_plan(&cm, strategy),
        }
    }

    fn plan_exact(&self, c: &Compiled, strategy: Strategy, work_limit: u64) -> Result<Plan> {
        let cm = c.with_min_f1();
        let seed = cm.best_seed();
        match exact::maximise(&cm, seed.as_deref(), work_limit)? {
            Some(choice) => Ok(cm.build_plan(strategy, &choice, true)),
            None => self.infeasible_plan(&cm, strategy),
        }
    }

    /// The better feasible plan of the paper's greedy and [`greedy::seed`]: the
    /// exact search's starting incumbent (a good one prunes much more).
    pub fn best_seed(&self) -> Option<Vec<usize>> {
        let value = |ch: &[usize]| -> f64 {
            ch.iter()
                .zip(&self.apps)
                .map(|(&j, a)| a.opts.get(j).map_or(0.0, |o| o.f1))
                .sum()
        };
        let paper = greedy::greedy(self);
        let paper = (paper.len() == self.apps.len()
            && cost::fits(self.cost_of(&paper), self.budget))
        .then_some(paper);
        let better = greedy::seed(self);
        match (paper, better) {
            (Some(a), Some(b)) => Some(if value(&b) > value(&a) { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// The cheapest schedule meeting the apps' `min_f1` (feasible only if it
    /// fits the budget); if some app cannot reach its `min_f1` at all, the
    /// cheapest schedule of the strategy's options, marked infeasible.
    fn infeasible_plan(&self, cm: &Compiled, strategy: Strategy) -> Result<Plan> {
        let reachable = cm.apps.iter().all(|a| !a.opts.is_empty());
        let c = if reachable {
            cm.clone()
        } else {
            self.for_strategy(strategy)
        };
        let choice = exact::min_cost(&c, None, exact::DEFAULT_WORK_LIMIT)?
            .map(|(_, ch)| ch)
            .unwrap_or_default();
        let feasible =
            reachable && choice.len() == c.apps.len() && cost::fits(c.cost_of(&choice), c.budget);
        Ok(c.build_plan(strategy, &choice, feasible))
    }

    /// A copy without the options below each app's `min_f1`.
    pub fn with_min_f1(&self) -> Compiled {
        self.restrict(|_, a, o| o.pred >= a.min_f1)
    }

    /// Admission control (see [`admit`]).
    pub fn admit(&self) -> Result<Admission> {
        let shared = self.for_strategy(Strategy::Exact);
        let cm = shared.with_min_f1();
        let mut admitted: Vec<usize> = Vec::new();
        let mut rejected = Vec::new();
        let mut admitted_cost = 0.0;
        let mut all_reachable = true;
        for i in 0..cm.apps.len() {
            if cm.apps[i].opts.is_empty() {
                all_reachable = false;
                let best_f1 = shared.apps[i]
                    .opts
                    .iter()
                    .map(|o| o.pred)
                    .fold(0.0, f64::max);
                rejected.push(Rejection {
                    app: i,
                    name: cm.apps[i].name.clone(),
                    reason: RejectReason::Unreachable { best_f1 },
                });
                continue;
            }
            let mut trial = admitted.clone();
            trial.push(i);
            let sub = cm.subset(&trial);
            let cost = exact::min_cost(&sub, None, exact::DEFAULT_WORK_LIMIT)?
                .map_or(f64::INFINITY, |(c, _)| c);
            if cost::fits(cost, cm.budget) {
                admitted = trial;
                admitted_cost = cost;
            } else {
                rejected.push(Rejection {
                    app: i,
                    name: cm.apps[i].name.clone(),
                    reason: RejectReason::OverBudget {
                        budget_needed: cost,
                    },
                });
            }
        }
        let budget_for_all = if all_reachable {
            exact::min_cost(&cm, None, exact::DEFAULT_WORK_LIMIT)?.map(|(c, _)| c)
        } else {
            None
        };
        Ok(Admission {
            admitted,
            rejected,
            budget: cm.budget,
            budget_for_all,
            admitted_cost,
        })
    }

    /// The apps `idx` (in that order) with the streams unchanged.
    pub fn subset(&self, idx: &[usize]) -> Compiled {
        Compiled {
            apps: idx
                .iter()
                .filter_map(|&i| self.apps.get(i).cloned())
                .collect(),
            ..self.clone()
        }
    }

    /// Total cost of a choice (one option index per app).
    pub fn cost_of(&self, choice: &[usize]) -> f64 {
        let mut total = 0.0;
        let mut g = Vec::new();
        for (si, st) in self.streams.iter().enumerate() {
            let items = self
                .apps
                .iter()
                .zip(choice)
                .filter(|(a, _)| a.stream == si)
                .filter_map(|(a, &j)| a.opts.get(j));
            total += cost::stream_cost(st, items, &mut g);
        }
        total
    }

    /// Builds the report of a choice: predictions, costs and trees.
    pub fn build_plan(&self, strategy: Strategy, choice: &[usize], feasible: bool) -> Plan {
        let mut apps = Vec::with_capacity(self.apps.len());
        for (i, (a, &j)) in self.apps.iter().zip(choice).enumerate() {
            let Some(o) = a.opts.get(j) else { continue };
            let st = &self.streams[a.stream];
            let (_, acc, fpr) = a.points[o.point as usize];
            let pr = model::predict(acc, fpr, &a.event, st.fps, o.fps, self.units);
            apps.push(AppPlan {
                app: i,
                name: a.name.clone(),
                stream: a.stream,
                branch: st.levels[o.level as usize],
                fps: o.fps,
                recall: pr.recall,
                precision: pr.precision,
                f1: pr.f1,
                branch_cost: o.own,
            });
        }
        let trees = cost::trees(self, &apps);
        let total = trees.iter().map(|t| t.cost).sum();
        let n = apps.len();
        let mean_f1 = if n == 0 {
            0.0
        } else {
            apps.iter().map(|a| a.f1).sum::<f64>() / n as f64
        };
        let min_f1 = if n == 0 {
            0.0
        } else {
            apps.iter().map(|a| a.f1).fold(1.0, f64::min)
        };
        Plan {
            strategy,
            feasible,
            apps,
            trees,
            cost: total,
            budget: self.budget,
            mean_f1,
            min_f1,
            fallback: None,
        }
    }
}

impl CStream {
    pub fn new(name: String, fps: f64, levels: Vec<usize>, cum: Vec<f64>, total: f64) -> CStream {
        let seg = cum
            .iter()
            .enumerate()
            .map(|(k, &c)| if k == 0 { c } else { c - cum[k - 1] })
            .collect();
        CStream {
            name,
            fps,
            grid: grid_for(fps),
            levels,
            cum,
            seg,
            total,
        }
    }
}

/// Whether two plans run every app at the same branch point and frame rate.
fn same_schedule(a: &Plan, b: &Plan) -> bool {
    a.apps.len() == b.apps.len()
        && a.apps
            .iter()
            .zip(&b.apps)
            .all(|(x, y)| x.app == y.app && x.branch == y.branch && x.fps == y.fps)
}

/// Each curve point's sharing margin, in the points' (ascending) order: none
/// on the first (least shared) point, `max(share_margin, gain_z(m) *
/// gain_sd)` on the other `m`.
pub(crate) fn point_margins(share_margin: f64, gain_sd: impl Iterator<Item = f64>) -> Vec<f64> {
    let sds: Vec<f64> = gain_sd.collect();
    let z = gain_z(sds.len().saturating_sub(1));
    sds.iter()
        .enumerate()
        .map(|(i, sd)| {
            if i == 0 {
                0.0
            } else {
                share_margin.max(z * sd).min(1.0)
            }
        })
        .collect()
}

/// How much less than the app's own head at the same frame rate an option on
/// a shared head scores when its predicted advantage is within its margin:
/// ties go to the own head, by far less than any F1 difference a plan can
/// measure (and more than the planner table's quantum, 1.5e-5).
const OWN_HEAD_TIE: f64 = 1e-4;

/// All (point, fps) options of an app, sorted by fps then branch point.
///
/// An option on a point other than the first (the app's own, least-shared
/// head) scores its predicted F1 less the part of its predicted advantage
/// over the own head *at the same frame rate* that is within the point's
/// margin (`margins`, see [`point_margins`]), less [`OWN_HEAD_TIE`] (with a
/// margin of 0, the paper's planner, the prediction itself): an
/// advantage counts only beyond the margin, a disadvantage counts in full,
/// and the frame rate a cheaper head buys where the budget binds is never
/// discounted (the model's frame-rate effect does not come from the
/// calibration's few objects).
pub(crate) fn build_opts(
    st: &CStream,
    points: &[(u16, f64, f64)],
    margins: &[f64],
    mut f1: impl FnMut(usize, f64) -> f64,
) -> Vec<Opt> {
    let mut opts = Vec::with_capacity(points.len() * st.grid.len());
    for (gi, g) in st.grid.iter().enumerate() {
        // The own head's prediction at this frame rate (point 0 comes first).
        let mut base = 0.0;
        for (pi, &(level, _, _)) in points.iter().enumerate() {
            let own = g.fps * (st.total - st.cum[level as usize]);
            let pred = f1(pi, g.fps);
            let score = if pi == 0 {
                base = pred;
                pred
            } else {
                let margin = margins.get(pi).copied().unwrap_or(0.0);
                if margin > 0.0 {
                    let doubt = (pred - base).clamp(0.0, margin);
                    // Objectives stay in [0, 1], as the planners' bounds assume.
                    (pred - doubt - OWN_HEAD_TIE).max(0.0)
                } else {
                    // No margin: the paper's planner.
                    pred
                }
            };
            opts.push(Opt {
                level,
                point: pi as u16,
                grid: gi as u16,
                fps: g.fps,
                f1: score,
                pred,
                own,
            });
        }
    }
    opts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::simulate;

    pub(crate) fn tiny_problem() -> Problem {
        Problem {
            segment_costs: vec![1.0, 2.0, 3.0, 0.5],
            streams: vec![StreamSpec {
                name: "cam".into(),
                fps: 5.0,
            }],
            apps: vec![AppSpec {
                name: "a".into(),
                stream: 0,
                curve: vec![
                    CurvePoint {
                        branch: 0,
                        accuracy: 0.9,
                        fpr: 0.05,
                        gain_sd: 0.0,
                    },
                    CurvePoint {
                        branch: 3,
                        accuracy: 0.7,
                        fpr: 0.1,
                        gain_sd: 0.0,
                    },
                ],
                event: EventParams {
                    length_ms: 1000.0,
                    frequency: 0.3,
                    correlation: 0.2,
                    voting: 1,
                },
                min_f1: 0.0,
            }],
            budget: 20.0,
            units: Units::Physical,
            fps_grid: FpsGrid::Fine,
            share_margin: 0.0,
        }
    }

    /// Two apps on one camera whose shared head (branch 3) is predicted a
    /// little better than their own (branch 0).
    fn two_apps_with_a_slightly_better_shared_head(share_margin: f64, budget: f64) -> Problem {
        let mut p = tiny_problem();
        p.apps[0].curve[0].accuracy = 0.85;
        p.apps[0].curve[1].accuracy = 0.88;
        p.apps[0].curve[1].fpr = 0.05;
        let mut b = p.apps[0].clone();
        b.name = "b".into();
        p.apps.push(b);
        p.share_margin = share_margin;
        p.budget = budget;
        p
    }

    /// The exact plan's predicted mean F1 less the No-Sharing plan's.
    fn predicted_gain_of_sharing(p: &Problem) -> f64 {
        plan(p, Strategy::Exact).unwrap().mean_f1
            - plan(p, Strategy::NoSharing(BaselineFps::Exact))
                .unwrap()
                .mean_f1
    }

    fn branches(plan: &Plan) -> Vec<usize> {
        plan.apps.iter().map(|a| a.branch).collect()
    }

    #[test]
    fn a_shared_head_must_beat_the_apps_own_head_by_the_sharing_margin() {
        // Budget to spare: the shared head's predicted gain is below the margin.
        let free = two_apps_with_a_slightly_better_shared_head(0.0, 1e6);
        let shared = plan(&free, Strategy::Exact).unwrap();
        let own = plan(&free, Strategy::NoSharing(BaselineFps::Exact)).unwrap();
        assert_eq!(branches(&shared), [3, 3]);
        let gain = shared.mean_f1 - own.mean_f1;
        assert!(gain > 0.0 && gain < 0.05, "gain {gain}");
        for s in [Strategy::Exact, Strategy::Greedy] {
            let with_margin = two_apps_with_a_slightly_better_shared_head(0.05, 1e6);
            let p = plan(&with_margin, s).unwrap();
            assert_eq!(branches(&p), [0, 0], "{s:?}");
            // Reported F1 is the prediction, not the objective.
            assert!((p.mean_f1 - own.mean_f1).abs() < 1e-12, "{s:?}");
        }
        // A budget that binds: sharing buys frame rate, far more than the margin.
        let tight = two_apps_with_a_slightly_better_shared_head(0.05, 7.0);
        let p = plan(&tight, Strategy::Exact).unwrap();
        let own = plan(&tight, Strategy::NoSharing(BaselineFps::Exact)).unwrap();
        assert_eq!(branches(&p), [3, 3]);
        assert!(
            p.mean_f1 > own.mean_f1 + 0.05,
            "{} vs {}",
            p.mean_f1,
            own.mean_f1
        );
    }

    #[test]
    fn a_shared_head_must_also_beat_its_calibrated_uncertainty() {
        // The shared head's predicted gain (below 0.05) without a global
        // margin: shared, unless its calibration is uncertain enough.
        let sure = two_apps_with_a_slightly_better_shared_head(0.0, 1e6);
        let gain = predicted_gain_of_sharing(&sure);
        assert!(gain > 0.0, "gain {gain}");
        let mut unsure = sure.clone();
        for a in &mut unsure.apps {
            a.curve[1].gain_sd = gain / gain_z(1) + 0.001;
        }
        let mut one_unsure = sure.clone();
        one_unsure.apps[1].curve[1].gain_sd = gain / gain_z(1) + 0.001;
        // The least-shared head's own gain_sd is never a margin.
        let mut own_unsure = sure.clone();
        own_unsure.apps[0].curve[0].gain_sd = 0.5;
        for s in [Strategy::Exact, Strategy::Greedy] {
            assert_eq!(branches(&plan(&sure, s).unwrap()), [3, 3], "{s:?}");
            assert_eq!(branches(&plan(&unsure, s).unwrap()), [0, 0], "{s:?}");
            // The planner's own choice; what runs is Max-Sharing's plan
            // (a_mixed_plan_within_doubt_of_a_baseline_runs_the_baseline).
            let own_choice = Compiled::from_problem(&one_unsure).plan_alone(s).unwrap();
            assert_eq!(branches(&own_choice), [3, 0], "{s:?}");
            assert_eq!(branches(&plan(&own_unsure, s).unwrap()), [3, 3], "{s:?}");
        }
        // Below the global margin, an uncertainty changes nothing.
        let mut small = two_apps_with_a_slightly_better_shared_head(0.05, 1e6);
        small.apps[0].curve[1].gain_sd = 0.01;
        assert_eq!(
            plan(&small, Strategy::Exact).unwrap(),
            plan(
                &two_apps_with_a_slightly_better_shared_head(0.05, 1e6),
                Strategy::Exact
            )
            .unwrap()
        );
    }

    #[test]
    fn the_evidence_a_shared_head_needs_grows_with_the_apps_shared_heads() {
        assert!((gain_z(1) - 1.645).abs() < 1e-3, "{}", gain_z(1));
        assert!((gain_z(2) - 1.960).abs() < 1e-3, "{}", gain_z(2));
        assert!((gain_z(3) - 2.128).abs() < 1e-3, "{}", gain_z(3));
        assert_eq!(gain_z(0), gain_z(1));
        // One shared head whose gain clears its single-head margin: shared.
        let one = two_apps_with_a_slightly_better_shared_head(0.0, 1e6);
        let gain = predicted_gain_of_sharing(&one);
        assert!(gain > 0.005, "gain {gain}");
        let mut one = one;
        for a in &mut one.apps {
            a.curve[1].gain_sd = (gain - 0.0005) / gain_z(1);
        }
        // The same head among two more (worse, equally uncertain) shared
        // heads: the best of three gains is likelier chance, so it is not.
        let mut three = one.clone();
        for a in &mut three.apps {
            let mut worse = a.curve[1];
            worse.accuracy = 0.80;
            for branch in [1, 2] {
                a.curve.push(CurvePoint { branch, ..worse });
            }
        }
        for s in [Strategy::Exact, Strategy::Greedy] {
            assert_eq!(branches(&plan(&one, s).unwrap()), [3, 3], "{s:?}");
            assert_eq!(branches(&plan(&three, s).unwrap()), [0, 0], "{s:?}");
        }
    }

    #[test]
    fn a_mixed_plan_within_doubt_of_a_baseline_runs_the_baseline() {
        // Budget to spare; app a's shared head is surely better, app b's is
        // predicted better by less than its margin, so the planner keeps b on
        // its own head: a mixed plan predicted worse than Max-Sharing's by
        // b's (uncertain) gain. It runs Max-Sharing's plan.
        let mut p = two_apps_with_a_slightly_better_shared_head(0.0, 1e6);
        let gain = predicted_gain_of_sharing(&p);
        p.apps[1].curve[1].gain_sd = gain / gain_z(1) + 0.001;
        let ms = plan(&p, Strategy::MaxSharing(BaselineFps::Greedy)).unwrap();
        for s in [Strategy::Exact, Strategy::Greedy, Strategy::Auto] {
            let q = plan(&p, s).unwrap();
            assert_eq!(branches(&q), [3, 3], "{s:?}");
            assert_eq!(q.apps, ms.apps, "{s:?}");
            assert_eq!(
                q.strategy,
                if s == Strategy::Auto {
                    Strategy::Exact
                } else {
                    s
                }
            );
            let fb = q.fallback.expect("a fallback");
            assert_eq!(fb.baseline, Strategy::MaxSharing(BaselineFps::Greedy));
            // Its own plan was predicted worse (b's gain, halved by the mean).
            assert!(
                (fb.advantage + gain / 2.0).abs() < 1e-9,
                "{fb:?} gain {gain}"
            );
            assert!((fb.doubt - gain_z(1) * p.apps[1].curve[1].gain_sd / 2.0).abs() < 1e-9);
        }
        // The table evaluates to the same plan.
        let t = table::PlannerTable::compile(&p).unwrap();
        let q = t.evaluate(p.budget, Strategy::Exact).unwrap();
        assert_eq!(branches(&q), [3, 3]);
        assert!(q.fallback.is_some());
    }

    #[test]
    fn a_plan_that_is_a_baselines_or_clearly_better_runs_as_planned() {
        // Every app on its own head because of the margins: No-Sharing's
        // plan, kept although Max-Sharing is predicted better within doubt.
        let p = two_apps_with_a_slightly_better_shared_head(0.05, 1e6);
        let q = plan(&p, Strategy::Exact).unwrap();
        assert_eq!(branches(&q), [0, 0]);
        assert_eq!(q.fallback, None);
        // Sharing that buys frame rate far beyond the doubt.
        let tight = two_apps_with_a_slightly_better_shared_head(0.05, 7.0);
        let q = plan(&tight, Strategy::Exact).unwrap();
        assert_eq!(branches(&q), [3, 3]);
        assert_eq!(q.fallback, None);
    }

    #[test]
    fn every_fallback_runs_a_baseline_its_plan_could_not_clearly_beat() {
        let mut fallbacks = 0;
        let mut mixed_kept = 0;
        for seed in 0..8u64 {
            for budget in [20.0, 60.0, 150.0, 400.0] {
                let mut p = simulate::random_paper_problem(seed, 4, budget, Units::Physical);
                // The paper's planner (no margin, no gain_sd) never falls back.
                let paper = plan(&p, Strategy::Exact).unwrap();
                assert_eq!(paper.fallback, None, "seed {seed} budget {budget}");
                p.share_margin = 0.05;
                let c = Compiled::from_problem(&p);
                let own = c.plan_alone(Strategy::Exact).unwrap();
                let q = plan(&p, Strategy::Exact).unwrap();
                let base = |s| plan(&p, s).unwrap();
                let ns = base(Strategy::NoSharing(BaselineFps::Greedy));
                let ms = base(Strategy::MaxSharing(BaselineFps::Greedy));
                match q.fallback {
                    Some(fb) => {
                        fallbacks += 1;
                        let b = if fb.baseline == ms.strategy { &ms } else { &ns };
                        assert_eq!(q.apps, b.apps, "seed {seed} budget {budget}");
                        assert!(q.feasible && fb.advantage < fb.doubt, "{fb:?}");
                        let adv = own.mean_f1 - b.mean_f1;
                        assert!((fb.advantage - adv).abs() < 1e-9, "{fb:?} vs {adv}");
                    }
                    None => {
                        assert_eq!(q, own, "seed {seed} budget {budget}");
                        if !same_schedule(&q, &ns) && !same_schedule(&q, &ms) {
                            mixed_kept += 1;
                        }
                    }
                }
            }
        }
        // Both outcomes occur in the sample (else this checks nothing).
        assert!(fallbacks > 0 && mixed_kept > 0, "{fallbacks} {mixed_kept}");
    }

    #[test]
    fn a_gain_sd_outside_the_unit_interval_is_refused() {
        let mut p = tiny_problem();
        p.apps[0].curve[1].gain_sd = 1.5;
        let e = p.validate().unwrap_err();
        assert!(
            e.to_string().contains("gain_sd 1.5 at branch point 3"),
            "{e}"
        );
    }

    #[test]
    fn the_margin_discounts_a_heads_advantage_not_the_frame_rate_it_buys() {
        // A shared head predicted worse than the own head at any frame rate,
        // with a large margin, on a budget where only sharing buys frame rate.
        let mut p = tiny_problem();
        p.apps[0].curve[1].accuracy = 0.85;
        p.apps[0].curve[1].fpr = 0.05;
        let mut b = p.apps[0].clone();
        b.name = "b".into();
        p.apps.push(b);
        p.share_margin = 0.3;
        p.budget = 7.0;
        let shared = plan(&p, Strategy::Exact).unwrap();
        let own = plan(&p, Strategy::NoSharing(BaselineFps::Exact)).unwrap();
        // The frame rate sharing buys is worth less than the margin, and
        // still taken: the margin is on the head's advantage, and it has none.
        let gain = shared.mean_f1 - own.mean_f1;
        assert!(gain > 0.0 && gain < 0.3, "gain {gain}");
        assert!(branches(&shared).contains(&3), "{:?}", branches(&shared));
    }

    #[test]
    fn the_sharing_margin_leaves_the_baselines_and_min_f1_alone() {
        for budget in [3.0, 7.0, 20.0, 1e6] {
            let plain = two_apps_with_a_slightly_better_shared_head(0.0, budget);
            let margin = two_apps_with_a_slightly_better_shared_head(0.3, budget);
            for s in [
                Strategy::NoSharing(BaselineFps::Exact),
                Strategy::MaxSharing(BaselineFps::Exact),
                Strategy::NoSharing(BaselineFps::Greedy),
                Strategy::MaxSharing(BaselineFps::Greedy),
            ] {
                assert_eq!(
                    plan(&plain, s).unwrap(),
                    plan(&margin, s).unwrap(),
                    "{s:?} at {budget}"
                );
                // Their objective is the prediction itself (a shifted one
                // would be clamped at 0 where the prediction is low).
                let c = Compiled::from_problem(&margin).for_strategy(s);
                assert!(c.apps.iter().flat_map(|a| &a.opts).all(|o| o.f1 == o.pred));
            }
        }
        let c = Compiled::from_problem(&two_apps_with_a_slightly_better_shared_head(0.3, 1.0));
        let shared = c.for_strategy(Strategy::Exact);
        // Per frame rate: the own head's prediction, and the shared head's
        // less its advantage over it up to the margin, less the tie-break.
        for pair in shared.apps[0].opts.chunks(2) {
            let (own, other) = (&pair[0], &pair[1]);
            assert_eq!((own.point, other.point, own.fps), (0, 1, other.fps));
            assert_eq!(own.f1, own.pred);
            let doubt = (other.pred - own.pred).clamp(0.0, 0.3);
            assert!((other.f1 - (other.pred - doubt - OWN_HEAD_TIE).max(0.0)).abs() < 1e-15);
        }
        // min_f1 is met on the prediction: a shared option predicted above
        // it stays allowed even when its objective (less the margin) is not.
        let mut p = two_apps_with_a_slightly_better_shared_head(0.3, 1e6);
        p.apps[0].curve[0].accuracy = 0.2;
        let best_shared = plan(&p, Strategy::MaxSharing(BaselineFps::Exact))
            .unwrap()
            .apps[0]
            .f1;
        p.apps[0].min_f1 = best_shared - 0.01;
        let planned = plan(&p, Strategy::Exact).unwrap();
        assert!(planned.feasible);
        assert_eq!(planned.apps[0].branch, 3);
        assert!(planned.apps[0].f1 >= p.apps[0].min_f1);
    }

    #[test]
    fn validation_names_the_bad_field() {
        let mut p = tiny_problem();
        p.apps[0].curve[1].branch = 4;
        let e = p.validate().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidConfig);
        assert!(e.to_string().contains("branch point 4"), "{e}");
        let mut p = tiny_problem();
        p.budget = f64::NAN;
        assert!(p.validate().is_err());
        let mut p = tiny_problem();
        p.apps[0].event.voting = 0;
        assert!(p.validate().is_err());
        let mut p = tiny_problem();
        p.share_margin = -0.1;
        let e = p.validate().unwrap_err();
        assert!(e.to_string().contains("share_margin"), "{e}");
        let mut p = tiny_problem();
        p.streams[0].fps = 0.5;
        assert!(p.validate().is_err());
        let mut p = tiny_problem();
        p.apps[0].curve[0].branch = 3;
        assert!(p.validate().unwrap_err().to_string().contains("twice"));
        assert!(tiny_problem().validate().is_ok());
    }

    #[test]
    fn empty_app_list_plans_to_an_empty_feasible_plan() {
        let mut p = tiny_problem();
        p.apps.clear();
        for s in [
            Strategy::Greedy,
            Strategy::Exact,
            Strategy::MaxMin,
            Strategy::Auto,
        ] {
            let plan = plan(&p, s).unwrap();
            assert!(plan.feasible && plan.apps.is_empty() && plan.cost == 0.0);
            assert_eq!((plan.mean_f1, plan.min_f1), (0.0, 0.0));
        }
        let adm = admit(&p).unwrap();
        assert!(adm.admitted.is_empty() && adm.rejected.is_empty());
        assert_eq!(adm.budget_for_all, Some(0.0));
    }

    #[test]
    fn zero_budget_yields_an_infeasible_plan_not_an_error() {
        let mut p = tiny_problem();
        p.budget = 0.0;
        for s in [Strategy::Greedy, Strategy::Exact, Strategy::MaxMin] {
            let plan = plan(&p, s).unwrap();
            assert!(!plan.feasible, "{s:?}");
            assert!(plan.cost > 0.0 && plan.mean_f1.is_finite());
        }
    }

    #[test]
    fn grid_has_tenths_integers_and_a_fractional_stream_rate() {
        let g = grid_for(2.5);
        let f: Vec<f64> = g.iter().map(|x| x.fps).collect();
        assert_eq!(
            f,
            vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 2.0, 2.5]
        );
        assert_eq!(g.iter().filter(|x| x.tenth).count(), 9);
    }

    #[test]
    fn paper_grid_keeps_tenths_for_no_sharing_only() {
        let mut p = tiny_problem();
        p.fps_grid = FpsGrid::Paper;
        let c = Compiled::from_problem(&p);
        let shared = c.for_strategy(Strategy::Exact);
        assert!(shared.apps[0].opts.iter().all(|o| o.fps >= 1.0));
        let ns = c.for_strategy(Strategy::NoSharing(BaselineFps::Greedy));
        assert!(ns.apps[0].opts.iter().any(|o| o.fps < 1.0));
        assert!(ns.apps[0].opts.iter().all(|o| o.level == 0));
        let ms = c.for_strategy(Strategy::MaxSharing(BaselineFps::Greedy));
        assert!(ms.apps[0].opts.iter().all(|o| o.level == 1 && o.fps >= 1.0));
    }

    #[test]
    fn admission_turns_away_what_does_not_fit_and_prices_it() {
        let mut p = simulate::random_paper_problem(21, 6, 40.0, Units::Physical);
        for a in &mut p.apps {
            a.min_f1 = 0.7;
        }
        let adm = admit(&p).unwrap();
        assert!(!adm.rejected.is_empty(), "{adm:?}");
        assert!(cost::fits(adm.admitted_cost, p.budget));
        // The admitted apps can all be planned at their minimum.
        let plan_ok = plan(&p.subset(&adm.admitted), Strategy::Exact).unwrap();
        assert!(plan_ok.feasible);
        assert!(plan_ok.apps.iter().all(|a| a.f1 >= 0.7 - 1e-12));
        for r in &adm.rejected {
            match r.reason {
                RejectReason::Unreachable { best_f1 } => assert!(best_f1 < 0.7),
                RejectReason::OverBudget { budget_needed } => {
                    assert!(budget_needed > p.budget);
                    // With that budget, the app fits next to the ones admitted before it.
                    let mut before: Vec<usize> = adm
                        .admitted
                        .iter()
                        .copied()
                        .filter(|&i| i < r.app)
                        .collect();
                    before.push(r.app);
                    let mut q = p.subset(&before);
                    q.budget = budget_needed;
                    let with = plan(&q, Strategy::Exact).unwrap();
                    assert!(with.feasible, "{} at {budget_needed}", r.name);
                    q.budget = budget_needed * 0.999;
                    assert!(!plan(&q, Strategy::Exact).unwrap().feasible);
                }
            }
        }
        // The budget that fits everyone reachable admits them all.
        if let Some(b) = adm.budget_for_all {
            p.budget = b;
            assert!(admit(&p).unwrap().rejected.is_empty());
        }
    }

    #[test]
    fn unreachable_minimum_is_reported_with_the_best_possible_f1() {
        let mut p = tiny_problem();
        p.apps[0].min_f1 = 1.0;
        let adm = admit(&p).unwrap();
        assert_eq!(adm.admitted, Vec::<usize>::new());
        assert!(
            matches!(adm.rejected[0].reason, RejectReason::Unreachable { best_f1 } if best_f1 < 1.0)
        );
        assert_eq!(adm.budget_for_all, None);
        // The exact planner reports the cheapest schedule, marked infeasible.
        let plan = plan(&p, Strategy::Exact).unwrap();
        assert!(!plan.feasible);
    }

    #[test]
    fn max_min_raises_the_worst_app_at_some_cost_in_the_mean() {
        let mut raised = 0;
        for seed in 0..10 {
            let p = simulate::random_paper_problem(seed, 5, 100.0, Units::Physical);
            let mean = plan(&p, Strategy::Exact).unwrap();
            let fair = plan(&p, Strategy::MaxMin).unwrap();
            assert!(fair.feasible && mean.feasible);
            assert!(fair.min_f1 >= mean.min_f1 - 1e-12, "seed {seed}");
            assert!(fair.mean_f1 <= mean.mean_f1 + 1e-12, "seed {seed}");
            if fair.min_f1 > mean.min_f1 + 1e-9 {
                raised += 1;
            }
        }
        assert!(raised > 0);
    }

    #[test]
    fn exact_is_never_worse_than_greedy_on_paper_workloads() {
        for seed in 0..10 {
            for units in [Units::Physical, Units::PaperCompat] {
                let p = simulate::random_paper_problem(seed, 8, 150.0, units);
                let g = plan(&p, Strategy::Greedy).unwrap();
                let e = plan(&p, Strategy::Exact).unwrap();
                assert!(e.feasible && cost::fits(e.cost, p.budget));
                assert!(e.mean_f1 >= g.mean_f1 - 1e-12, "seed {seed} {units:?}");
            }
        }
    }

    #[test]
    fn heuristic_fits_and_lies_between_greedy_and_exact() {
        for seed in 0..10 {
            let p = simulate::random_paper_problem(seed, 8, 150.0, Units::Physical);
            let g = plan(&p, Strategy::Greedy).unwrap();
            let h = plan(&p, Strategy::Heuristic).unwrap();
            let e = plan(&p, Strategy::Exact).unwrap();
            assert!(h.feasible && cost::fits(h.cost, p.budget));
            assert!(h.mean_f1 >= g.mean_f1 - 1e-12, "seed {seed}");
            assert!(h.mean_f1 <= e.mean_f1 + 1e-12, "seed {seed}");
        }
    }

    #[test]
    fn streams_share_nothing_but_the_budget() {
        // Two identical apps on two streams cost twice one app; on one stream
        // they share a stem.
        let mut p = tiny_problem();
        p.fps_grid = FpsGrid::Paper;
        p.budget = 1e6;
        let mut b = p.apps[0].clone();
        b.name = "b".into();
        p.apps.push(b);
        let one = plan(&p, Strategy::MaxSharing(BaselineFps::Uniform)).unwrap();
        p.streams.push(StreamSpec {
            name: "cam2".into(),
            fps: 5.0,
        });
        p.apps[1].stream = 1;
        let two = plan(&p, Strategy::MaxSharing(BaselineFps::Uniform)).unwrap();
        assert_eq!(two.trees.len(), 2);
        // One stream: stem (segments 0..3, cost 6) once + two branches (0.5 each), at 5 fps.
        assert!(
            (one.cost - 5.0 * (6.0 + 0.5 + 0.5)).abs() < 1e-9,
            "{}",
            one.cost
        );
        assert!(
            (two.cost - 2.0 * 5.0 * (6.0 + 0.5)).abs() < 1e-9,
            "{}",
            two.cost
        );
    }
}
