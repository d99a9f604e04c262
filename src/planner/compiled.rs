//! The compiled form every planner works on: per stream its branch levels,
//! cumulative costs and frame-rate grid; per app its (branch point, fps)
//! options with the model's predictions.

use super::{
    cost, event_f1, greedy, point_margins, EventParams, FpsGrid, Plan, PlannedApp, Problem,
    Strategy, Units,
};

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
    /// `cum[k]`: cost per frame of the frame's preprocessing and segments
    /// `[0, levels[k])`. The preprocessing ([`StreamSpec::frame_cost`](super::StreamSpec::frame_cost))
    /// is the first part of the stem every app of the stream shares, so every
    /// cost below counts it where the stem's first segment is counted.
    pub cum: Vec<f64>,
    /// `seg[k]`: cost of segments `[levels[k-1], levels[k])` per frame (for
    /// `k = 0`, with the preprocessing).
    pub seg: Vec<f64>,
    /// Cost per frame of the preprocessing and the whole network.
    pub total: f64,
    /// Cost per frame of the preprocessing alone (part of `cum` and `total`).
    pub frame: f64,
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
    pub(crate) fn from_problem(p: &Problem) -> Compiled {
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
                let cum: Vec<f64> = levels.iter().map(|&b| s.frame_cost + cum_all[b]).collect();
                CStream::new(
                    s.name.clone(),
                    s.fps,
                    levels,
                    cum,
                    s.frame_cost + acc,
                    s.frame_cost,
                )
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
                    event_f1::predict(acc, fpr, &a.event, st.fps, fps, p.units).f1
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
    pub(crate) fn restrict(&self, keep: impl Fn(&CStream, &CApp, &Opt) -> bool) -> Compiled {
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
    pub(crate) fn for_strategy(&self, strategy: Strategy) -> Compiled {
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

    /// The better feasible plan of the paper's greedy and [`greedy::seed`]: the
    /// exact search's starting incumbent (a good one prunes much more).
    pub(crate) fn best_seed(&self) -> Option<Vec<usize>> {
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

    /// A copy without the options below each app's `min_f1`.
    pub(crate) fn with_min_f1(&self) -> Compiled {
        self.restrict(|_, a, o| o.pred >= a.min_f1)
    }

    /// The apps `idx` (in that order) with the streams unchanged.
    pub(crate) fn subset(&self, idx: &[usize]) -> Compiled {
        Compiled {
            apps: idx
                .iter()
                .filter_map(|&i| self.apps.get(i).cloned())
                .collect(),
            ..self.clone()
        }
    }

    /// Total cost of a choice (one option index per app).
    pub(crate) fn cost_of(&self, choice: &[usize]) -> f64 {
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
    pub(crate) fn build_plan(&self, strategy: Strategy, choice: &[usize], feasible: bool) -> Plan {
        let mut apps = Vec::with_capacity(self.apps.len());
        for (i, (a, &j)) in self.apps.iter().zip(choice).enumerate() {
            let Some(o) = a.opts.get(j) else { continue };
            let st = &self.streams[a.stream];
            let (_, acc, fpr) = a.points[o.point as usize];
            let pr = event_f1::predict(acc, fpr, &a.event, st.fps, o.fps, self.units);
            apps.push(PlannedApp {
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
    pub(crate) fn new(
        name: String,
        fps: f64,
        levels: Vec<usize>,
        cum: Vec<f64>,
        total: f64,
        frame: f64,
    ) -> CStream {
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
            frame,
        }
    }
}

/// How much less than the app's own head at the same frame rate an option on
/// a shared head scores when its predicted advantage is within its margin:
/// ties go to the own head, by far less than any F1 difference a plan can
/// measure (and more than the planner table's quantum, 1.5e-5).
pub(crate) const OWN_HEAD_TIE: f64 = 1e-4;

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
