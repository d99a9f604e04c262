//! The precomputed planner table: everything the planners need, in one
//! postcard blob for the state directory.
//!
//! [`PlannerTable::compile`] evaluates the event model for every app, branch
//! point and frame rate once (the expensive part with X-voting and long
//! events) and keeps, per stream, only the prefix costs at the branch points
//! its apps can use (the cost profile reduced to what planning needs).
//! [`PlannerTable::evaluate`] runs any [`Strategy`] on it for a given budget,
//! so boot and every budget change re-plan without touching the model or
//! the M-Packages; an app change recompiles (milliseconds).
//!
//! Quantisation: predicted F1 is stored as `u16` in units of 1/65535 (error
//! at most 7.7e-6 per app, three orders of magnitude below what the model can
//! tell apart); accuracies and FPRs as `f32`. Costs, budgets and frame rates
//! stay `f64`/`f32` exact enough that feasibility decisions match the direct
//! planner. The option grid is rebuilt from the stream rate and grid kind,
//! so only F1 values are stored per option. The reported recall, precision
//! and F1 of a plan are recomputed from the model for the chosen options.
//!
//! Layout: `MAGIC`, [`VERSION`], then the [`PlannerTable`] fields in postcard.
//! Version 2 added `share_margin`, version 3 the per-point `gain_sd`, version
//! 4 each stream's `frame_cost` (preprocessing, part of its prefix costs),
//! version 5 each app's event length quantiles; an older table is refused like a damaged one, and the service compiles its table
//! again (it is a cache of the apps).
//! [`PlannerTable::from_bytes`] checks magic, version and every invariant and
//! answers [`ErrorKind::CorruptState`](crate::ErrorKind::CorruptState) for
//! anything else.

use super::{
    build_opts, event_f1, grid_for, point_margins, CApp, CStream, Compiled, EventParams, FpsGrid,
    Plan, Problem, Strategy, Units,
};
use crate::error::Result;
use serde::{Deserialize, Serialize};

/// First bytes of every table.
pub(crate) const MAGIC: [u8; 4] = *b"MSPT";
/// Format version; bump with an upgrade path when the layout changes.
pub(crate) const VERSION: u16 = 5;

const Q: f64 = u16::MAX as f64;

/// One stream's part of the table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableStream {
    /// Stream name.
    pub name: String,
    /// Stream frame rate.
    pub fps: f64,
    /// Branch points usable by the stream's apps, ascending.
    pub levels: Vec<u16>,
    /// Cost per frame of the preprocessing and segments `[0, levels[k])`.
    pub cum_cost: Vec<f64>,
    /// Cost per frame of the preprocessing and the whole network.
    pub total_cost: f64,
    /// Cost per frame of the preprocessing alone (version 4 on).
    pub frame_cost: f64,
}

/// One app's part of the table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableApp {
    /// App name.
    pub name: String,
    /// Stream index.
    pub stream: u16,
    /// Event parameters.
    pub event: EventParams,
    /// Minimum useful F1.
    pub min_f1: f64,
    /// Per curve point: (index into the stream's levels, accuracy, fpr).
    pub points: Vec<(u16, f32, f32)>,
    /// Quantised F1, row-major: `f1[grid_index * points.len() + point]`.
    pub f1: Vec<u16>,
    /// Per curve point: the calibration's [`gain_sd`](super::CurvePoint::gain_sd)
    /// (version 3 on).
    pub gain_sd: Vec<f32>,
}

/// The compiled planning table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannerTable {
    /// [`MAGIC`].
    pub magic: [u8; 4],
    /// [`VERSION`].
    pub version: u16,
    /// Units the F1 values were computed with.
    pub units: Units,
    /// Frame-rate grid.
    pub fps_grid: FpsGrid,
    /// Streams.
    pub streams: Vec<TableStream>,
    /// Apps, in priority order.
    pub apps: Vec<TableApp>,
    /// The problem's `share_margin` (version 2 on).
    pub share_margin: f64,
}

fn quantise(x: f64) -> u16 {
    // x is an F1 in [0, 1]; clamp keeps the cast in range.
    (x.clamp(0.0, 1.0) * Q).round() as u16
}

fn corrupt(msg: &str) -> crate::error::Error {
    crate::err!(CorruptState, "planner table: {msg}")
}

impl PlannerTable {
    /// Compiles a problem (validated first).
    pub fn compile(problem: &Problem) -> Result<PlannerTable> {
        problem.validate()?;
        let c = Compiled::from_problem(problem);
        let streams = c
            .streams
            .iter()
            .map(|s| TableStream {
                name: s.name.clone(),
                fps: s.fps,
                levels: s.levels.iter().map(|&b| b as u16).collect(),
                cum_cost: s.cum.clone(),
                total_cost: s.total,
                frame_cost: s.frame,
            })
            .collect();
        let apps = c
            .apps
            .iter()
            .map(|a| {
                let np = a.points.len();
                let ng = c.streams[a.stream].grid.len();
                let mut f1 = vec![0u16; np * ng];
                for o in &a.opts {
                    f1[o.grid as usize * np + o.point as usize] = quantise(o.pred);
                }
                TableApp {
                    name: a.name.clone(),
                    stream: a.stream as u16,
                    event: a.event,
                    min_f1: a.min_f1,
                    points: a
                        .points
                        .iter()
                        .map(|&(l, acc, fpr)| (l, acc as f32, fpr as f32))
                        .collect(),
                    f1,
                    gain_sd: a.gain_sd.iter().map(|&sd| sd as f32).collect(),
                }
            })
            .collect();
        Ok(PlannerTable {
            magic: MAGIC,
            version: VERSION,
            units: problem.units,
            fps_grid: problem.fps_grid,
            streams,
            apps,
            share_margin: problem.share_margin,
        })
    }

    /// Serialises the table.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        postcard::to_allocvec(self)
            .map_err(|e| crate::err!(Internal, source = e, "planner table: encoding failed"))
    }

    /// Deserialises and checks a table.
    pub fn from_bytes(bytes: &[u8]) -> Result<PlannerTable> {
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            return Err(corrupt("bad magic"));
        }
        let t: PlannerTable = postcard::from_bytes(bytes)
            .map_err(|e| crate::err!(CorruptState, source = e, "planner table: undecodable"))?;
        t.check_invariants()?;
        Ok(t)
    }

    /// Checks everything [`evaluate`](Self::evaluate) relies on.
    pub fn check_invariants(&self) -> Result<()> {
        if self.magic != MAGIC {
            return Err(corrupt("bad magic"));
        }
        if self.version != VERSION {
            return Err(crate::err!(
                CorruptState,
                "planner table: version {} (this build reads {VERSION})",
                self.version
            ));
        }
        if !(0.0..=1.0).contains(&self.share_margin) {
            return Err(corrupt("share_margin outside [0, 1]"));
        }
        for s in &self.streams {
            let ok = s.fps.is_finite()
                && (1.0..=super::MAX_STREAM_FPS).contains(&s.fps)
                && s.levels.len() == s.cum_cost.len()
                && s.levels.windows(2).all(|w| w[0] < w[1])
                && s.cum_cost.iter().all(|c| c.is_finite() && *c >= 0.0)
                && s.cum_cost.windows(2).all(|w| w[0] <= w[1])
                && s.total_cost.is_finite()
                && s.total_cost > 0.0
                && s.frame_cost.is_finite()
                && s.frame_cost >= 0.0
                && s.cum_cost.first().is_none_or(|&c| c >= s.frame_cost)
                && s.frame_cost < s.total_cost
                && s.cum_cost.last().is_none_or(|&c| c <= s.total_cost);
            if !ok {
                return Err(corrupt("inconsistent stream"));
            }
        }
        for a in &self.apps {
            let Some(s) = self.streams.get(a.stream as usize) else {
                return Err(corrupt("app on a missing stream"));
            };
            let ng = grid_for(s.fps).len();
            let e = &a.event;
            let ok = !a.points.is_empty()
                && a.points.windows(2).all(|w| w[0].0 < w[1].0)
                && a.points.iter().all(|&(l, acc, fpr)| {
                    (l as usize) < s.levels.len()
                        && (0.0..=1.0).contains(&acc)
                        && (0.0..=1.0).contains(&fpr)
                })
                && a.f1.len() == a.points.len() * ng
                && a.gain_sd.len() == a.points.len()
                && a.gain_sd.iter().all(|sd| (0.0..=1.0).contains(sd))
                && (0.0..=1.0).contains(&a.min_f1)
                && e.length_ms.is_finite()
                && e.length_ms > 0.0
                && e.length_ms <= super::MAX_EVENT_MS
                && e.lengths.valid()
                && (0.0..=1.0).contains(&e.frequency)
                && (0.0..=1.0).contains(&e.correlation)
                && (1..=event_f1::MAX_VOTING).contains(&e.voting);
            if !ok {
                return Err(corrupt("inconsistent app"));
            }
        }
        Ok(())
    }

    fn compiled(&self, budget: f64) -> Result<Compiled> {
        if !(budget.is_finite() && budget >= 0.0) {
            crate::bail!(
                InvalidConfig,
                "planner: budget {budget} is not a finite non-negative number"
            );
        }
        self.check_invariants()?;
        let streams: Vec<CStream> = self
            .streams
            .iter()
            .map(|s| {
                CStream::new(
                    s.name.clone(),
                    s.fps,
                    s.levels.iter().map(|&l| l as usize).collect(),
                    s.cum_cost.clone(),
                    s.total_cost,
                    s.frame_cost,
                )
            })
            .collect();
        let apps = self
            .apps
            .iter()
            .map(|a| {
                let st = &streams[a.stream as usize];
                let np = a.points.len();
                let points: Vec<(u16, f64, f64)> = a
                    .points
                    .iter()
                    .map(|&(l, acc, fpr)| (l, acc as f64, fpr as f64))
                    .collect();
                // Index the stored F1 by (point, fps) through the grid position.
                let grid = &st.grid;
                let margins =
                    point_margins(self.share_margin, a.gain_sd.iter().map(|&sd| sd as f64));
                let opts = build_opts(st, &points, &margins, |pi, fps| {
                    let gi = grid.iter().position(|g| g.fps == fps).unwrap_or(0);
                    a.f1[gi * np + pi] as f64 / Q
                });
                CApp {
                    name: a.name.clone(),
                    stream: a.stream as usize,
                    event: a.event,
                    min_f1: a.min_f1,
                    points,
                    gain_sd: a.gain_sd.iter().map(|&sd| sd as f64).collect(),
                    margins,
                    opts,
                }
            })
            .collect();
        Ok(Compiled {
            units: self.units,
            fps_grid: self.fps_grid,
            budget,
            streams,
            apps,
        })
    }

    /// Plans the table's apps for `budget` with `strategy`.
    pub fn evaluate(&self, budget: f64, strategy: Strategy) -> Result<Plan> {
        self.compiled(budget)?.plan(strategy)
    }

    /// Admission control on the table's apps for `budget`.
    pub(crate) fn admit(&self, budget: f64) -> Result<super::Admission> {
        self.compiled(budget)?.admit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::{plan, simulate};

    #[test]
    fn table_round_trips_through_postcard() {
        let p = simulate::random_paper_problem(11, 6, 150.0, Units::Physical);
        let t = PlannerTable::compile(&p).unwrap();
        let bytes = t.to_bytes().unwrap();
        assert_eq!(&bytes[..4], b"MSPT");
        let back = PlannerTable::from_bytes(&bytes).unwrap();
        assert_eq!(back, t);
        let mut p = p;
        p.share_margin = 0.05;
        let t = PlannerTable::compile(&p).unwrap();
        let back = PlannerTable::from_bytes(&t.to_bytes().unwrap()).unwrap();
        assert_eq!(back.share_margin, 0.05);
        p.apps[0].curve[0].gain_sd = 0.25;
        let t = PlannerTable::compile(&p).unwrap();
        let back = PlannerTable::from_bytes(&t.to_bytes().unwrap()).unwrap();
        assert_eq!(back.apps[0].gain_sd.len(), p.apps[0].curve.len());
        assert!(back.apps[0].gain_sd.contains(&0.25));
    }

    #[test]
    fn table_plans_match_direct_plans() {
        for seed in 0..20 {
            let mut p = simulate::random_paper_problem(
                seed,
                2 + (seed % 5) as usize,
                150.0,
                Units::Physical,
            );
            // Half of them with the product's sharing margin, some with
            // calibrated per-head uncertainties on top.
            p.share_margin = if seed % 2 == 0 { 0.0 } else { 0.05 };
            if seed % 3 == 0 {
                for (i, a) in p.apps.iter_mut().enumerate() {
                    for (k, c) in a.curve.iter_mut().enumerate() {
                        c.gain_sd = 0.01 * ((i + k) % 5) as f64;
                    }
                }
            }
            let t = PlannerTable::compile(&p).unwrap();
            let t = PlannerTable::from_bytes(&t.to_bytes().unwrap()).unwrap();
            for s in [Strategy::Greedy, Strategy::Exact] {
                let direct = plan(&p, s).unwrap();
                let via = t.evaluate(p.budget, s).unwrap();
                assert_eq!(direct.feasible, via.feasible);
                // Quantisation may only change choices between options whose F1
                // differ by less than the quantum.
                assert!(
                    (direct.mean_f1 - via.mean_f1).abs() < 1e-4,
                    "seed {seed} {s:?}: {} vs {}",
                    direct.mean_f1,
                    via.mean_f1
                );
                assert!(
                    (direct.cost - via.cost).abs() <= 1e-6 * direct.cost.max(1.0)
                        || direct.cost <= p.budget
                );
            }
        }
    }

    #[test]
    fn corrupt_tables_are_rejected_with_corrupt_state() {
        let p = simulate::random_paper_problem(3, 3, 150.0, Units::Physical);
        let t = PlannerTable::compile(&p).unwrap();
        let bytes = t.to_bytes().unwrap();
        let kind = |b: &[u8]| PlannerTable::from_bytes(b).unwrap_err().kind();
        assert_eq!(kind(b"nope"), crate::ErrorKind::CorruptState);
        assert_eq!(
            kind(&bytes[..bytes.len() / 2]),
            crate::ErrorKind::CorruptState
        );
        let mut bad = t.clone();
        bad.version = 99;
        assert_eq!(
            kind(&bad.to_bytes().unwrap()),
            crate::ErrorKind::CorruptState
        );
        let mut bad = t.clone();
        bad.apps[0].f1.pop();
        assert_eq!(
            kind(&bad.to_bytes().unwrap()),
            crate::ErrorKind::CorruptState
        );
        let mut bad = t;
        bad.streams[0].cum_cost[1] = f64::NAN;
        assert_eq!(
            kind(&bad.to_bytes().unwrap()),
            crate::ErrorKind::CorruptState
        );
        // Every truncation fails cleanly.
        for n in 0..bytes.len() {
            assert!(PlannerTable::from_bytes(&bytes[..n]).is_err());
        }
    }

    #[test]
    fn evaluate_rejects_a_bad_budget() {
        let p = simulate::random_paper_problem(3, 3, 150.0, Units::Physical);
        let t = PlannerTable::compile(&p).unwrap();
        assert_eq!(
            t.evaluate(f64::NAN, Strategy::Greedy).unwrap_err().kind(),
            crate::ErrorKind::InvalidConfig
        );
        assert_eq!(
            t.evaluate(-1.0, Strategy::Greedy).unwrap_err().kind(),
            crate::ErrorKind::InvalidConfig
        );
    }
}
