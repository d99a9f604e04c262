//! The planning problem: streams, apps with their M-Package curves and event
//! parameters, the budget and the strategies, and the problem's validation.

use super::event_f1;
use crate::error::Result;
use serde::{Deserialize, Serialize};

/// Most segments a base network may have (branch points are stored as `u16`).
pub(crate) const MAX_SEGMENTS: usize = u16::MAX as usize;
/// Most streams in one problem.
const MAX_STREAMS: usize = 1024;
/// Most apps in one problem.
pub const MAX_APPS: usize = 4096;
/// Highest stream frame rate accepted.
pub(crate) const MAX_STREAM_FPS: f64 = 1000.0;
/// Longest event accepted, ms (one hour).
pub(crate) const MAX_EVENT_MS: f64 = 3_600_000.0;
/// [`Strategy::Auto`] runs the exact planner up to this many apps.
pub(crate) const AUTO_EXACT_MAX_APPS: usize = 12;

/// How the event length is counted (see [`event_f1`](super::event_f1)).
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

/// Most quantiles an [`EventLengths`] holds.
pub const MAX_EVENT_LENGTHS: usize = 8;

/// How long events are, as equally likely quantiles (ms, ascending): the
/// lengths of the windows in which a positive sample finds an event, as the
/// scorer counts it (the labelled event plus its tolerance on each side),
/// measured by `mainstream calibrate`. Empty: every event is one window of
/// [`EventParams::length_ms`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventLengths {
    len: u8,
    ms: [f64; MAX_EVENT_LENGTHS],
}

impl EventLengths {
    /// The quantiles in `ms` (at most [`MAX_EVENT_LENGTHS`]; the rest are
    /// ignored), sorted ascending. Values are checked by
    /// [`Problem::validate`], not here.
    pub fn new(ms: &[f64]) -> EventLengths {
        let mut e = EventLengths::default();
        for &m in ms.iter().take(MAX_EVENT_LENGTHS) {
            e.ms[e.len as usize] = m;
            e.len += 1;
        }
        e.ms[..e.len as usize].sort_by(f64::total_cmp);
        e
    }

    /// The quantiles, ms.
    pub fn as_slice(&self) -> &[f64] {
        &self.ms[..(self.len as usize).min(MAX_EVENT_LENGTHS)]
    }

    /// Whether there are none (one window of the mean length).
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// Whether every quantile is a valid event length.
    pub(crate) fn valid(&self) -> bool {
        (self.len as usize) <= MAX_EVENT_LENGTHS
            && self
                .as_slice()
                .iter()
                .all(|&m| m.is_finite() && m > 0.0 && m <= MAX_EVENT_MS)
    }
}

/// An app's event parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventParams {
    /// Event length L in ms, in (0, [`MAX_EVENT_MS`]]: the mean labelled
    /// length. It sizes the windows of [`frequency`](Self::frequency) and of
    /// false triggers, and the events when [`lengths`](Self::lengths) is empty.
    pub length_ms: f64,
    /// The distribution recall integrates over (empty: `length_ms` alone).
    #[serde(default)]
    pub lengths: EventLengths,
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
    /// gain_sd)`, `m` the app's number of shared heads ([`gain_z`](super::gain_z)).
    #[serde(default)]
    pub gain_sd: f64,
    /// How uncertain the calibration is about `accuracy` and `fpr` (their
    /// bootstrap standard deviations over the clip's object instances, `0`
    /// = not measured). Plans report each app's F1 at one standard
    /// deviation worse and better ([`calibration_band`](super::report::calibration_band));
    /// planning does not use it.
    #[serde(default)]
    pub rate_sd: (f64, f64),
}

/// A camera stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamSpec {
    /// Name for reports.
    pub name: String,
    /// Stream frame rate F, in [1, [`MAX_STREAM_FPS`]].
    pub fps: f64,
    /// Cost per analysed frame outside the networks, in the unit of the
    /// segment costs: decoding the camera's frame and preprocessing it into
    /// the network input. Every app of the stream shares it (the camera's
    /// apps sample on one grid), so it is paid at the highest fps of the
    /// stream's apps, like a stem segment before segment 0. `0` = not
    /// counted (the paper's model).
    #[serde(default)]
    pub frame_cost: f64,
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
    /// planners and the criterion of [`admit`](super::admit).
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
    /// A planner named on the command line or in a config: `mainstream` (or
    /// `auto`), `greedy`, `exact`, `heuristic`, `max-min`, `max-sharing`,
    /// `no-sharing`.
    pub fn parse(s: &str) -> Option<Strategy> {
        Some(match s {
            "mainstream" | "auto" => Strategy::Auto,
            "greedy" => Strategy::Greedy,
            "exact" => Strategy::Exact,
            "heuristic" => Strategy::Heuristic,
            "max-min" => Strategy::MaxMin,
            "max-sharing" => Strategy::MaxSharing(BaselineFps::Greedy),
            "no-sharing" => Strategy::NoSharing(BaselineFps::Greedy),
            _ => return None,
        })
    }

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
    pub(crate) fn validate(&self) -> Result<()> {
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
            check(s.frame_cost.is_finite() && s.frame_cost >= 0.0, || {
                format!(
                    "planner: stream {i} ({}) frame cost {} is not a finite non-negative number",
                    s.name, s.frame_cost
                )
            })?;
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
                check(in_unit(p.rate_sd.0) && in_unit(p.rate_sd.1), || {
                    format!(
                        "{}: accuracy and fpr standard deviations {:?} at branch point {} must lie in [0, 1]",
                        who(),
                        p.rate_sd,
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
            check(e.lengths.valid(), || {
                format!(
                    "{}: event lengths {:?} ms must each lie in (0, {MAX_EVENT_MS}]",
                    who(),
                    e.lengths.as_slice()
                )
            })?;
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
            check((1..=event_f1::MAX_VOTING).contains(&e.voting), || {
                format!(
                    "{}: voting {} is outside 1..={}",
                    who(),
                    e.voting,
                    event_f1::MAX_VOTING
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
