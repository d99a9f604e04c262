//! Exact planners: branch and bound on the exact cost values.
//!
//! Nothing is discretised: every leaf of every search is costed with the cost
//! model's exact arithmetic, and cuts only use valid bounds, so the result is
//! the optimum (to [`EPS`] in summed F1). Tests compare every search with
//! brute force on hundreds of random instances (1-5 apps, 1-2 streams,
//! X-voting, both unit modes).
//!
//! **Preprocessing.** An option is dropped if another option of the same app
//! needs no more stem (branch point and fps both no higher), costs no more on
//! its own branch and predicts at least the same F1 (`prune_dominated`).
//!
//! **App by app** (small searches). Apps are assigned depth-first; per stream
//! the search keeps the stem built so far, the fps `g[k]` at which each shared
//! segment runs (a non-increasing staircase over depth). An option (branch
//! level `j`, fps `f`) adds its own branch cost and the stem increment
//! `sum_{k<=j} seg[k] * max(0, f - g[k])`; these add up exactly to the cost
//! model's total. Bound: the joint stem increment of the unassigned apps of a
//! stream is `sum_l lat[l] * max_i (h_i(l) - g(l))^+`, at least the mean of
//! their individual increments (a maximum is at least a mean), so charging each
//! `own + increment / (apps left on its stream)` never over-charges; the LP
//! relaxation of that multiple-choice knapsack (upper concave hulls per app,
//! increments merged by slope) bounds the completion's F1.
//!
//! **Over stem staircases** (what the paper's oracle enumerates), used above
//! [`APP_FIRST_MAX_APPS`] apps or when the app-by-app search needs more than
//! [`APP_FIRST_WORK`] work units. The search decides, per stream from shallow
//! (expensive) to deep (cheap) levels, the fps at which each shared segment
//! runs, interleaving streams by the most a segment can cost; only fps some
//! option below needs are candidates, highest first. Given the staircase, the apps decouple into a
//! multiple-choice knapsack over their own branch costs (each app limited to
//! options the staircase covers); undecided deeper segments are charged with
//! the mean split above. Each node is first tested with the Lagrangian bound
//! at its parent's LP price (one pass, no sorting), then with the LP bound. At
//! a complete staircase the knapsack is solved exactly by depth-first search
//! over the apps' (cost, F1) Pareto frontiers with the LP bound.
//!
//! Every search counts work (one unit per node plus one per eight options a
//! bound reads, so units track time) and answers
//! [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) past its limit
//! rather than run unbounded. Single-camera problems of the paper's shape
//! finish in milliseconds; several 30 fps cameras with the fine fps grid can
//! exceed [`DEFAULT_WORK_LIMIT`] (the joint staircase space of several streams
//! is large), which is why [`Strategy::Auto`](super::Strategy::Auto) bounds
//! the exact attempt and falls back to the heuristic.
//!
//! **Min-cost** (admission control, max-min) uses the same staircases: given a
//! complete staircase the apps decouple entirely (each takes its cheapest
//! covered option), and the mean-split charge makes the per-node sum a lower
//! bound. **Max-min** bisects on the candidate F1 values with a min-cost
//! feasibility test, then maximises summed F1 above the best threshold.

use super::cost::tolerance;
use super::{CStream, Compiled};
use crate::error::Result;

/// Differences in summed F1 below this are ties.
const EPS: f64 = 1e-12;
/// Work limit of [`Strategy::Exact`](super::Strategy::Exact) and friends
/// (roughly 30-60 s on a 2-core x86 box; see the module docs for the unit).
pub(crate) const DEFAULT_WORK_LIMIT: u64 = 500_000_000;
/// Work limit of [`Strategy::Auto`](super::Strategy::Auto) before it falls
/// back to the heuristic (roughly 0.2-0.5 s).
pub(crate) const AUTO_WORK_LIMIT: u64 = 5_000_000;

/// Per-stream staircase of required stem fps and the undo log.
struct Stems {
    g: Vec<Vec<f64>>,
    left: Vec<usize>,
    undo: Vec<f64>,
}

impl Stems {
    fn new(c: &Compiled) -> Stems {
        let mut left = vec![0; c.streams.len()];
        for a in &c.apps {
            left[a.stream] += 1;
        }
        Stems {
            g: c.streams
                .iter()
                .map(|s| vec![0.0; s.levels.len()])
                .collect(),
            left,
            undo: Vec::new(),
        }
    }

    fn incr(&self, st: &CStream, s: usize, level: usize, fps: f64) -> f64 {
        let mut acc = 0.0;
        for (gk, seg) in self.g[s].iter().zip(&st.seg).take(level + 1) {
            let d = fps - gk;
            if d > 0.0 {
                acc += seg * d;
            }
        }
        acc
    }

    fn apply(&mut self, s: usize, level: usize, fps: f64) {
        let g = &mut self.g[s];
        for slot in g.iter_mut().take(level + 1) {
            self.undo.push(*slot);
            if fps > *slot {
                *slot = fps;
            }
        }
        self.left[s] -= 1;
    }

    fn restore(&mut self, s: usize, level: usize) {
        let g = &mut self.g[s];
        for k in (0..=level).rev() {
            // `apply` pushed exactly level + 1 values.
            g[k] = self.undo.pop().unwrap_or(g[k]);
        }
        self.left[s] += 1;
    }

    /// `tab[gi * K + k]`: increment of fps `grid[gi]` at level `k` on stream `s`.
    fn fill(&self, st: &CStream, s: usize, tab: &mut Vec<f64>) {
        let kn = st.levels.len();
        tab.clear();
        tab.resize(st.grid.len() * kn, 0.0);
        let g = &self.g[s];
        for (gi, gf) in st.grid.iter().enumerate() {
            let mut acc = 0.0;
            for k in 0..kn {
                let d = gf.fps - g[k];
                if d > 0.0 {
                    acc += st.seg[k] * d;
                }
                tab[gi * kn + k] = acc;
            }
        }
    }
}

/// DFS order: apps grouped by stream, apps whose F1 varies most first.
fn dfs_order(c: &Compiled) -> Vec<usize> {
    let spread = |i: usize| {
        let o = &c.apps[i].opts;
        let hi = o.iter().map(|x| x.f1).fold(0.0, f64::max);
        let lo = o.iter().map(|x| x.f1).fold(1.0, f64::min);
        hi - lo
    };
    let mut order: Vec<usize> = (0..c.apps.len()).collect();
    order.sort_by(|&a, &b| {
        c.apps[a]
            .stream
            .cmp(&c.apps[b].stream)
            .then(spread(b).total_cmp(&spread(a)))
            .then(a.cmp(&b))
    });
    order
}

struct Max<'a> {
    c: &'a Compiled,
    order: Vec<usize>,
    by_f1: Vec<Vec<usize>>,
    suffix_max: Vec<f64>,
    stems: Stems,
    choice: Vec<usize>,
    best: Option<Vec<usize>>,
    best_value: f64,
    limit_cost: f64,
    /// Options of the apps `order[d..]` (work accounting).
    opts_left: Vec<u64>,
    work: u64,
    work_limit: u64,
    tab: Vec<f64>,
    pts: Vec<(f64, f64)>,
    hull: Vec<(f64, f64)>,
    incs: Vec<(f64, f64, f64)>,
}

impl<'a> Max<'a> {
    /// A search over `c` within `limit_cost`, with no incumbent and empty stems.
    fn new(c: &'a Compiled, limit_cost: f64, work_limit: u64) -> Max<'a> {
        let order = dfs_order(c);
        let by_f1: Vec<Vec<usize>> = c
            .apps
            .iter()
            .map(|a| {
                let mut v: Vec<usize> = (0..a.opts.len()).collect();
                v.sort_by(|&x, &y| {
                    a.opts[y]
                        .f1
                        .total_cmp(&a.opts[x].f1)
                        .then(a.opts[x].own.total_cmp(&a.opts[y].own))
                });
                v
            })
            .collect();
        let mut suffix_max = vec![0.0; order.len() + 1];
        let mut opts_left = vec![0u64; order.len() + 1];
        for d in (0..order.len()).rev() {
            let opts = &c.apps[order[d]].opts;
            let m = opts.iter().map(|o| o.f1).fold(0.0, f64::max);
            suffix_max[d] = suffix_max[d + 1] + m;
            opts_left[d] = opts_left[d + 1] + opts.len() as u64;
        }
        Max {
            c,
            order,
            by_f1,
            suffix_max,
            stems: Stems::new(c),
            choice: vec![0; c.apps.len()],
            best: None,
            best_value: f64::NEG_INFINITY,
            limit_cost,
            opts_left,
            work: 0,
            work_limit,
            tab: Vec::new(),
            pts: Vec::new(),
            hull: Vec::new(),
            incs: Vec::new(),
        }
    }
}

impl Max<'_> {
    fn dfs(&mut self, d: usize, cost: f64, value: f64) -> Result<()> {
        self.work += 1 + self.opts_left[d] / 8;
        if self.work > self.work_limit {
            crate::bail!(
                Unsupported,
                "planner: exact search gave up after {} work units ({} apps)",
                self.work_limit,
                self.c.apps.len()
            );
        }
        if d == self.order.len() {
            if value > self.best_value + EPS {
                self.best_value = value;
                self.best = Some(self.choice.clone());
            }
            return Ok(());
        }
        if value + self.suffix_max[d] <= self.best_value + EPS {
            return Ok(());
        }
        let ub = self.bound(d, self.limit_cost - cost);
        if ub == f64::NEG_INFINITY || value + ub <= self.best_value + EPS {
            return Ok(());
        }
        let app = self.order[d];
        let s = self.c.apps[app].stream;
        let st = &self.c.streams[s];
        for idx in 0..self.by_f1[app].len() {
            let j = self.by_f1[app][idx];
            let o = self.c.apps[app].opts[j];
            if self.best.is_some() && value + o.f1 + self.suffix_max[d + 1] <= self.best_value + EPS
            {
                break;
            }
            let level = o.level as usize;
            let nc = cost + o.own + self.stems.incr(st, s, level, o.fps);
            if nc > self.limit_cost {
                continue;
            }
            self.stems.apply(s, level, o.fps);
            self.choice[app] = j;
            let r = self.dfs(d + 1, nc, value + o.f1);
            self.stems.restore(s, level);
            r?;
        }
        Ok(())
    }

    /// LP bound on the F1 the apps `order[d..]` can add within `r`.
    fn bound(&mut self, d: usize, r: f64) -> f64 {
        if r < 0.0 {
            return f64::NEG_INFINITY;
        }
        let mut v0 = 0.0;
        let mut c0 = 0.0;
        self.incs.clear();
        let mut tab_stream = usize::MAX;
        for idx in d..self.order.len() {
            let app = self.order[idx];
            let a = &self.c.apps[app];
            let s = a.stream;
            let st = &self.c.streams[s];
            if s != tab_stream {
                self.stems.fill(st, s, &mut self.tab);
                tab_stream = s;
            }
            let kn = st.levels.len();
            let share = self.stems.left[s].max(1) as f64;
            self.pts.clear();
            for o in &a.opts {
                let inc = self.tab[o.grid as usize * kn + o.level as usize];
                if o.own + inc <= r {
                    self.pts.push((o.own + inc / share, o.f1));
                }
            }
            if self.pts.is_empty() {
                return f64::NEG_INFINITY;
            }
            self.pts
                .sort_unstable_by(|x, y| x.0.total_cmp(&y.0).then(y.1.total_cmp(&x.1)));
            upper_hull(&self.pts, &mut self.hull);
            v0 += self.hull[0].1;
            c0 += self.hull[0].0;
            for w in self.hull.windows(2) {
                let (dc, dv) = (w[1].0 - w[0].0, w[1].1 - w[0].1);
                self.incs.push((dv / dc, dc, dv));
            }
        }
        if c0 > r {
            return f64::NEG_INFINITY;
        }
        self.incs.sort_unstable_by(|x, y| y.0.total_cmp(&x.0));
        let mut rem = r - c0;
        let mut ub = v0;
        for &(slope, dc, dv) in &self.incs {
            if dc <= rem {
                ub += dv;
                rem -= dc;
            } else {
                ub += slope * rem;
                break;
            }
        }
        ub
    }
}

/// Upper concave hull of points sorted by x ascending (ties: y descending),
/// keeping only points that raise y.
fn upper_hull(pts: &[(f64, f64)], hull: &mut Vec<(f64, f64)>) {
    hull.clear();
    for &p in pts {
        if let Some(&last) = hull.last() {
            if p.1 <= last.1 {
                continue;
            }
        }
        while hull.len() >= 2 {
            let a = hull[hull.len() - 2];
            let b = hull[hull.len() - 1];
            if (b.1 - a.1) * (p.0 - a.0) <= (p.1 - a.1) * (b.0 - a.0) {
                hull.pop();
            } else {
                break;
            }
        }
        hull.push(p);
    }
}

/// Options an exact plan never needs removed, the rest sorted level-major
/// (branch level, then fps). An option is dominated if another one of the same
/// app needs no more stem (branch point and fps both no higher), costs no more
/// on its own branch and predicts at least the same F1: it is then at least as
/// good in every context. Returns the pruned problem, per app the map from
/// original option index to a surviving dominator (itself if kept) and the
/// map back.
pub(crate) fn prune_dominated(c: &Compiled) -> (Compiled, Vec<Vec<usize>>, Vec<Vec<usize>>) {
    let mut out = c.clone();
    let mut fwd = Vec::with_capacity(c.apps.len());
    let mut back = Vec::with_capacity(c.apps.len());
    for (a, pa) in c.apps.iter().zip(out.apps.iter_mut()) {
        let n = a.opts.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&x, &y| {
            let (ox, oy) = (&a.opts[x], &a.opts[y]);
            ox.level.cmp(&oy.level).then(ox.fps.total_cmp(&oy.fps))
        });
        // dom[i]: an option dominating i (i itself if none).
        let mut dom: Vec<usize> = (0..n).collect();
        for &i in &order {
            let o = &a.opts[i];
            for &k in &order {
                if k == i {
                    continue;
                }
                let q = &a.opts[k];
                if q.level > o.level {
                    break;
                }
                if q.fps <= o.fps && q.own <= o.own && q.f1 >= o.f1 {
                    dom[i] = k;
                    break;
                }
            }
        }
        // Follow chains to a kept option (dominance is a strict order).
        let kept: Vec<usize> = order.iter().copied().filter(|&i| dom[i] == i).collect();
        let mut pos = vec![usize::MAX; n];
        for (p, &i) in kept.iter().enumerate() {
            pos[i] = p;
        }
        let map: Vec<usize> = (0..n)
            .map(|i| {
                let mut j = i;
                let mut steps = 0;
                while dom[j] != j && steps <= n {
                    j = dom[j];
                    steps += 1;
                }
                pos[j]
            })
            .collect();
        pa.opts = kept.iter().map(|&i| a.opts[i]).collect();
        fwd.push(map);
        back.push(kept);
    }
    (out, fwd, back)
}

/// The app-by-app search is tried first only up to this many apps (beyond,
/// its work grows too fast to be worth a try).
const APP_FIRST_MAX_APPS: usize = 6;

/// Work budget of the app-by-app search before the staircase search takes over.
const APP_FIRST_WORK: u64 = 4_000;

/// Maximises the summed F1 of `c` within its budget (exactly; see the module
/// docs): app by app for small searches, over stem staircases when that does
/// not finish within [`APP_FIRST_WORK`] work units. `seed`, if given, must be a
/// feasible choice. `None` if nothing fits.
pub(crate) fn maximise(
    c: &Compiled,
    seed: Option<&[usize]>,
    work_limit: u64,
) -> Result<Option<Vec<usize>>> {
    if c.apps.iter().any(|a| a.opts.is_empty()) {
        return Ok(None);
    }
    let (pc, fwd, back) = prune_dominated(c);
    let seed_p: Option<Vec<usize>> = seed.filter(|s| s.len() == c.apps.len()).map(|s| {
        s.iter()
            .zip(&fwd)
            .map(|(&j, m)| m.get(j).copied().unwrap_or(0))
            .collect()
    });
    let first = if c.apps.len() <= APP_FIRST_MAX_APPS {
        maximise_apps(&pc, seed_p.as_deref(), APP_FIRST_WORK.min(work_limit))
    } else {
        Err(crate::err!(
            Unsupported,
            "too many apps for the app-by-app search"
        ))
    };
    let best = match first {
        Ok(b) => b,
        Err(e) if e.kind() == crate::ErrorKind::Unsupported && work_limit > APP_FIRST_WORK => {
            maximise_stairs(&pc, seed_p.as_deref(), work_limit)?
        }
        Err(e) => return Err(e),
    };
    Ok(best.map(|ch| ch.iter().zip(&back).map(|(&j, b)| b[j]).collect()))
}

/// Maximises the summed F1 of `c` app by app. `seed`, if given, must be
/// a feasible choice; it is the starting incumbent. `None` if nothing fits.
pub(crate) fn maximise_apps(
    c: &Compiled,
    seed: Option<&[usize]>,
    work_limit: u64,
) -> Result<Option<Vec<usize>>> {
    if c.apps.iter().any(|a| a.opts.is_empty()) {
        return Ok(None);
    }
    let mut m = Max::new(c, c.budget + tolerance(c.budget), work_limit);
    if let Some(sd) = seed.filter(|sd| sd.len() == c.apps.len()) {
        m.best_value = sd
            .iter()
            .zip(&c.apps)
            .map(|(&j, a)| a.opts.get(j).map_or(0.0, |o| o.f1))
            .sum();
        m.best = Some(sd.to_vec());
    }
    m.dfs(0, 0.0, 0.0)?;
    Ok(m.best)
}

/// Branch and bound over stem staircases (see the module docs): decide, per
/// stream and level from shallow to deep, the fps of the shared segment; at a
/// complete staircase solve the apps' multiple-choice knapsack exactly.
struct Stairs<'a> {
    c: &'a Compiled,
    /// Decisions in order: (stream, level).
    seq: Vec<(usize, usize)>,
    /// Per decision: one past the last level it sets (free levels after it
    /// run at the same fps, at no cost).
    span: Vec<usize>,
    /// Per stream and level: candidate stem fps (descending, 0 last).
    cands: Vec<Vec<Vec<f64>>>,
    /// Per stream and level: chosen stem fps (valid for decided levels).
    g: Vec<Vec<f64>>,
    /// Per stream: number of levels decided.
    decided: Vec<usize>,
    /// Apps per stream.
    per_stream: Vec<usize>,
    best: Option<Vec<usize>>,
    best_value: f64,
    limit_cost: f64,
    work: u64,
    work_limit: u64,
    /// Options of all apps (work accounting).
    opts_total: u64,
    pts: Vec<(f64, f64)>,
    hull: Vec<(f64, f64)>,
    incs: Vec<(f64, f64, f64)>,
    /// Per app, options allowed at the current leaf (indices).
    leaf_opts: Vec<Vec<usize>>,
    leaf_choice: Vec<usize>,
    /// Per app: LP increments (slope, dc, dv) and base (cost, value) at the leaf.
    leaf_incs: Vec<(f64, f64, f64, usize)>,
    leaf_base: Vec<(f64, f64)>,
}

impl Stairs<'_> {
    /// Counts `units` of work (one per node, one per eight options a bound
    /// reads) and gives up past the limit.
    fn tick(&mut self, units: u64) -> Result<()> {
        self.work += units;
        if self.work > self.work_limit {
            crate::bail!(
                Unsupported,
                "planner: exact search gave up after {} work units ({} apps)",
                self.work_limit,
                self.c.apps.len()
            );
        }
        Ok(())
    }

    fn reach(&self, s: usize, level: usize, fps: f64) -> (bool, f64) {
        reach(&self.c.streams[s], &self.g[s], self.decided[s], level, fps)
    }

    fn dfs(&mut self, step: usize, stem_cost: f64, lambda: f64) -> Result<()> {
        self.tick(1 + self.opts_total / 8)?;
        let r = self.limit_cost - stem_cost;
        // The parent's budget price usually prunes without the full LP.
        if step > 0 && self.best.is_some() {
            let quick = self.dual(r, lambda);
            if quick <= self.best_value + EPS {
                return Ok(());
            }
        }
        let (ub, lambda) = self.bound(r);
        if ub == f64::NEG_INFINITY || (self.best.is_some() && ub <= self.best_value + EPS) {
            return Ok(());
        }
        if step == self.seq.len() {
            return self.leaf(r);
        }
        let (s, k) = self.seq[step];
        let seg = self.c.streams[s].seg[k];
        let cap = if k == 0 {
            f64::INFINITY
        } else {
            self.g[s][k - 1]
        };
        for ci in 0..self.cands[s][k].len() {
            let f = self.cands[s][k][ci];
            if f > cap {
                continue;
            }
            let cost = stem_cost + seg * f;
            if cost > self.limit_cost {
                continue;
            }
            let end = self.span[step];
            for slot in &mut self.g[s][k..end] {
                *slot = f;
            }
            self.decided[s] = end;
            let res = self.dfs(step + 1, cost, lambda);
            self.decided[s] = k;
            res?;
        }
        Ok(())
    }

    /// LP bound of the apps' knapsack with the staircase decided so far, and
    /// the LP's budget price.
    fn bound(&mut self, r: f64) -> (f64, f64) {
        if r < 0.0 {
            return (f64::NEG_INFINITY, 0.0);
        }
        let (mut v0, mut c0) = (0.0, 0.0);
        self.incs.clear();
        for a in &self.c.apps {
            let s = a.stream;
            let share = self.per_stream[s].max(1) as f64;
            self.pts.clear();
            for o in &a.opts {
                let (ok, undecided) = self.reach(s, o.level as usize, o.fps);
                let need = undecided * o.fps;
                if ok && o.own + need <= r {
                    self.pts.push((o.own + need / share, o.f1));
                }
            }
            if self.pts.is_empty() {
                return (f64::NEG_INFINITY, 0.0);
            }
            // Options are level-major with fps ascending, so `pts` is a few
            // runs sorted by cost; the stable sort merges runs cheaply.
            self.pts
                .sort_by(|x, y| x.0.total_cmp(&y.0).then(y.1.total_cmp(&x.1)));
            upper_hull(&self.pts, &mut self.hull);
            v0 += self.hull[0].1;
            c0 += self.hull[0].0;
            for w in self.hull.windows(2) {
                let (dc, dv) = (w[1].0 - w[0].0, w[1].1 - w[0].1);
                self.incs.push((dv / dc, dc, dv));
            }
        }
        if c0 > r {
            return (f64::NEG_INFINITY, 0.0);
        }
        self.incs.sort_unstable_by(|x, y| y.0.total_cmp(&x.0));
        lp_fill(v0, r - c0, self.incs.iter().map(|&(s, dc, dv)| (s, dc, dv)))
    }

    /// The Lagrangian bound `lambda r + sum_i max_o (f1 - lambda cost)` for a
    /// given budget price: valid for any `lambda >= 0`, one pass, no sorting.
    fn dual(&self, r: f64, lambda: f64) -> f64 {
        if r < 0.0 {
            return f64::NEG_INFINITY;
        }
        let mut total = lambda * r;
        for a in &self.c.apps {
            let s = a.stream;
            let share = self.per_stream[s].max(1) as f64;
            let mut best = f64::NEG_INFINITY;
            for o in &a.opts {
                let (ok, undecided) = self.reach(s, o.level as usize, o.fps);
                let need = undecided * o.fps;
                if ok && o.own + need <= r {
                    best = best.max(o.f1 - lambda * (o.own + need / share));
                }
            }
            if best == f64::NEG_INFINITY {
                return best;
            }
            total += best;
        }
        total
    }

    /// Exact knapsack at a complete staircase with `r` left for own branches.
    fn leaf(&mut self, r: f64) -> Result<()> {
        let n = self.c.apps.len();
        self.leaf_incs.clear();
        self.leaf_base.clear();
        for i in 0..n {
            let a = &self.c.apps[i];
            let mut allowed = std::mem::take(&mut self.leaf_opts[i]);
            allowed.clear();
            for (j, o) in a.opts.iter().enumerate() {
                if o.fps <= self.g[a.stream][o.level as usize] && o.own <= r {
                    allowed.push(j);
                }
            }
            // Keep the Pareto frontier in (own cost, F1): with the stem fixed,
            // a costlier option that is not better can never help.
            allowed.sort_by(|&x, &y| {
                a.opts[x]
                    .own
                    .total_cmp(&a.opts[y].own)
                    .then(a.opts[y].f1.total_cmp(&a.opts[x].f1))
            });
            let mut top = f64::NEG_INFINITY;
            allowed.retain(|&j| {
                let keep = a.opts[j].f1 > top;
                if keep {
                    top = a.opts[j].f1;
                }
                keep
            });
            if allowed.is_empty() {
                self.leaf_opts[i] = allowed;
                return Ok(());
            }
            self.pts.clear();
            self.pts
                .extend(allowed.iter().map(|&j| (a.opts[j].own, a.opts[j].f1)));
            upper_hull(&self.pts, &mut self.hull);
            self.leaf_base.push(self.hull[0]);
            for w in self.hull.windows(2) {
                let (dc, dv) = (w[1].0 - w[0].0, w[1].1 - w[0].1);
                self.leaf_incs.push((dv / dc, dc, dv, i));
            }
            // Depth-first tries the best F1 (the costliest frontier point) first.
            allowed.reverse();
            self.leaf_opts[i] = allowed;
        }
        self.leaf_incs.sort_unstable_by(|x, y| y.0.total_cmp(&x.0));
        self.knap(0, 0.0, 0.0, r)
    }

    /// Knapsack DFS over apps `d..` with `r` budget left.
    fn knap(&mut self, d: usize, cost: f64, value: f64, r: f64) -> Result<()> {
        self.tick(
            1 + (self.leaf_incs.len() + self.leaf_opts.get(d).map_or(0, Vec::len)) as u64 / 8,
        )?;
        let n = self.c.apps.len();
        if d == n {
            if self.best.is_none() || value > self.best_value + EPS {
                self.best_value = value;
                self.best = Some(self.leaf_choice.clone());
            }
            return Ok(());
        }
        // LP bound over apps d.. (their base points plus increments by slope).
        let rem = r - cost;
        let (mut v0, mut c0) = (0.0, 0.0);
        for &(bc, bv) in &self.leaf_base[d..] {
            v0 += bv;
            c0 += bc;
        }
        if c0 > rem {
            return Ok(());
        }
        let (ub, _) = lp_fill(
            v0,
            rem - c0,
            self.leaf_incs
                .iter()
                .filter(|x| x.3 >= d)
                .map(|&(s, dc, dv, _)| (s, dc, dv)),
        );
        if self.best.is_some() && value + ub <= self.best_value + EPS {
            return Ok(());
        }
        for idx in 0..self.leaf_opts[d].len() {
            let j = self.leaf_opts[d][idx];
            let o = self.c.apps[d].opts[j];
            if cost + o.own > r {
                continue;
            }
            self.leaf_choice[d] = j;
            self.knap(d + 1, cost + o.own, value + o.f1, r)?;
        }
        Ok(())
    }
}

/// Greedy LP fill: start at `v0`, spend `room` on increments sorted by slope.
/// Returns the bound and the LP's budget price (the slope at which the budget
/// runs out; 0 if every increment fits).
fn lp_fill(v0: f64, mut room: f64, incs: impl Iterator<Item = (f64, f64, f64)>) -> (f64, f64) {
    let mut ub = v0;
    for (slope, dc, dv) in incs {
        if dc <= room {
            ub += dv;
            room -= dc;
        } else {
            ub += slope * room;
            return (ub, slope);
        }
    }
    (ub, 0.0)
}

/// Maximises summed F1 by branch and bound over stem staircases.
pub(crate) fn maximise_stairs(
    c: &Compiled,
    seed: Option<&[usize]>,
    work_limit: u64,
) -> Result<Option<Vec<usize>>> {
    if c.apps.iter().any(|a| a.opts.is_empty()) {
        return Ok(None);
    }
    let lad = Ladder::new(c);
    let (best, best_value) = match seed {
        Some(sd) if sd.len() == c.apps.len() => (
            Some(sd.to_vec()),
            sd.iter()
                .zip(&c.apps)
                .map(|(&j, a)| a.opts.get(j).map_or(0.0, |o| o.f1))
                .sum(),
        ),
        _ => (None, f64::NEG_INFINITY),
    };
    let n = c.apps.len();
    let mut m = Stairs {
        c,
        seq: lad.seq,
        span: lad.span,
        cands: lad.cands,
        g: lad.g,
        decided: lad.decided,
        per_stream: lad.per_stream,
        best,
        best_value,
        limit_cost: c.budget + tolerance(c.budget),
        work: 0,
        work_limit,
        opts_total: c.apps.iter().map(|a| a.opts.len() as u64).sum(),
        pts: Vec::new(),
        hull: Vec::new(),
        incs: Vec::new(),
        leaf_opts: vec![Vec::new(); n],
        leaf_choice: vec![0; n],
        leaf_incs: Vec::new(),
        leaf_base: Vec::new(),
    };
    m.dfs(0, 0.0, 0.0)?;
    Ok(m.best)
}

/// Branch and bound over stem staircases for the cheapest plan. Given a
/// complete staircase the apps decouple: each takes its cheapest option the
/// staircase covers. Undecided deeper segments are charged with the mean split
/// (see the module docs), which makes the per-node sum a lower bound.
struct MinStairs<'a> {
    c: &'a Compiled,
    seq: Vec<(usize, usize)>,
    span: Vec<usize>,
    cands: Vec<Vec<Vec<f64>>>,
    g: Vec<Vec<f64>>,
    decided: Vec<usize>,
    per_stream: Vec<usize>,
    pick: Vec<usize>,
    best: Option<Vec<usize>>,
    best_cost: f64,
    stop_at_first: bool,
    work: u64,
    work_limit: u64,
    opts_total: u64,
}

impl MinStairs<'_> {
    fn dfs(&mut self, step: usize, stem_cost: f64) -> Result<()> {
        self.work += 1 + self.opts_total / 8;
        if self.work > self.work_limit {
            crate::bail!(
                Unsupported,
                "planner: min-cost search gave up after {} work units ({} apps)",
                self.work_limit,
                self.c.apps.len()
            );
        }
        let lb = stem_cost + self.bound();
        if lb >= self.best_cost {
            return Ok(());
        }
        if step == self.seq.len() {
            // Every level is decided: the bound is the exact cost of `pick`.
            self.best_cost = lb;
            self.best = Some(self.pick.clone());
            return Ok(());
        }
        let (s, k) = self.seq[step];
        let seg = self.c.streams[s].seg[k];
        let cap = if k == 0 {
            f64::INFINITY
        } else {
            self.g[s][k - 1]
        };
        // Cheapest stems first: good plans early.
        for ci in (0..self.cands[s][k].len()).rev() {
            if self.stop_at_first && self.best.is_some() {
                break;
            }
            let f = self.cands[s][k][ci];
            if f > cap {
                continue;
            }
            let cost = stem_cost + seg * f;
            if cost >= self.best_cost {
                // Candidates are visited by increasing fps: the rest cost more.
                break;
            }
            let end = self.span[step];
            for slot in &mut self.g[s][k..end] {
                *slot = f;
            }
            self.decided[s] = end;
            let res = self.dfs(step + 1, cost);
            self.decided[s] = k;
            res?;
        }
        Ok(())
    }

    /// Sum over apps of their cheapest reachable option, undecided stem
    /// charged by the mean split; records the choice in `pick`.
    fn bound(&mut self) -> f64 {
        let mut total = 0.0;
        for (i, a) in self.c.apps.iter().enumerate() {
            let s = a.stream;
            let share = self.per_stream[s].max(1) as f64;
            let mut best = f64::INFINITY;
            for (j, o) in a.opts.iter().enumerate() {
                let (ok, undecided) = reach(
                    &self.c.streams[s],
                    &self.g[s],
                    self.decided[s],
                    o.level as usize,
                    o.fps,
                );
                if ok {
                    let v = o.own + undecided * o.fps / share;
                    if v < best {
                        best = v;
                        self.pick[i] = j;
                    }
                }
            }
            if best == f64::INFINITY {
                return best;
            }
            total += best;
        }
        total
    }
}

/// Whether an option (level, fps) of stream `st` fits under the staircase `g`
/// decided for levels below `decided`, and the per-frame cost of the
/// undecided segments it needs.
fn reach(st: &CStream, g: &[f64], decided: usize, level: usize, fps: f64) -> (bool, f64) {
    if level < decided {
        (fps <= g[level], 0.0)
    } else {
        let cap = if decided == 0 {
            f64::INFINITY
        } else {
            g[decided - 1]
        };
        let before = if decided == 0 {
            0.0
        } else {
            st.cum[decided - 1]
        };
        (fps <= cap, st.cum[level] - before)
    }
}

/// The decision structure of a staircase search over `c`.
struct Ladder {
    seq: Vec<(usize, usize)>,
    span: Vec<usize>,
    cands: Vec<Vec<Vec<f64>>>,
    g: Vec<Vec<f64>>,
    decided: Vec<usize>,
    per_stream: Vec<usize>,
}

impl Ladder {
    fn new(c: &Compiled) -> Ladder {
        let mut per_stream = vec![0usize; c.streams.len()];
        for a in &c.apps {
            per_stream[a.stream] += 1;
        }
        // Per stream, the levels that need a decision, shallow to deep.
        let mut todo: Vec<Vec<usize>> = Vec::with_capacity(c.streams.len());
        let mut cands = Vec::with_capacity(c.streams.len());
        let mut g = Vec::with_capacity(c.streams.len());
        for (s, st) in c.streams.iter().enumerate() {
            let kn = st.levels.len();
            let mut per_level = Vec::with_capacity(kn);
            let mut mine = Vec::new();
            for k in 0..kn {
                // Only fps some option at or below this level needs, highest first.
                let mut v: Vec<f64> = c
                    .apps
                    .iter()
                    .filter(|a| a.stream == s)
                    .flat_map(|a| {
                        a.opts
                            .iter()
                            .filter(|o| o.level as usize >= k)
                            .map(|o| o.fps)
                    })
                    .collect();
                v.push(0.0);
                v.sort_by(|x, y| y.total_cmp(x));
                v.dedup();
                if st.seg[k] > 0.0 && v.len() > 1 {
                    mine.push(k);
                } else {
                    // Free or unused segment: no decision to make.
                    v.truncate(1);
                }
                per_level.push(v);
            }
            todo.push(mine);
            cands.push(per_level);
            g.push(vec![f64::INFINITY; kn]);
        }
        // Interleave the streams: next, the pending level whose segment can
        // cost the most (its cost times the highest fps it may run at).
        let weight = |s: usize, k: usize| c.streams[s].seg[k] * cands[s][k][0];
        let mut next = vec![0usize; c.streams.len()];
        let mut seq = Vec::new();
        let mut span = Vec::new();
        loop {
            let pick = (0..c.streams.len())
                .filter(|&s| next[s] < todo[s].len())
                .max_by(|&a, &b| {
                    weight(a, todo[a][next[a]])
                        .total_cmp(&weight(b, todo[b][next[b]]))
                        .then(b.cmp(&a))
                });
            let Some(s) = pick else { break };
            let k = todo[s][next[s]];
            next[s] += 1;
            seq.push((s, k));
            // A decision covers the free levels up to the stream's next one.
            span.push(
                todo[s]
                    .get(next[s])
                    .copied()
                    .unwrap_or(c.streams[s].levels.len()),
            );
        }
        // Free levels before a stream's first decision are unconstrained.
        let decided = c
            .streams
            .iter()
            .enumerate()
            .map(|(s, st)| todo[s].first().copied().unwrap_or(st.levels.len()))
            .collect();
        Ladder {
            seq,
            span,
            cands,
            g,
            decided,
            per_stream,
        }
    }
}

/// The cheapest choice for `c` (ignoring its budget). With `stop_at = Some(b)`
/// only choices costing at most `b` (with the fit tolerance) count and the
/// search stops at the first one. `None` if there is none.
pub(crate) fn min_cost(
    c: &Compiled,
    stop_at: Option<f64>,
    work_limit: u64,
) -> Result<Option<(f64, Vec<usize>)>> {
    if c.apps.iter().any(|a| a.opts.is_empty()) {
        return Ok(None);
    }
    let (pc, _, back) = prune_dominated(c);
    let lad = Ladder::new(&pc);
    let best_cost = match stop_at {
        // Strictly below this means "fits".
        Some(b) => b + tolerance(b) + f64::EPSILON * b.abs().max(1.0),
        None => f64::INFINITY,
    };
    let mut m = MinStairs {
        c: &pc,
        seq: lad.seq,
        span: lad.span,
        cands: lad.cands,
        g: lad.g,
        decided: lad.decided,
        per_stream: lad.per_stream,
        pick: vec![0; pc.apps.len()],
        best: None,
        best_cost,
        stop_at_first: stop_at.is_some(),
        work: 0,
        work_limit,
        opts_total: pc.apps.iter().map(|a| a.opts.len() as u64).sum(),
    };
    m.dfs(0, 0.0)?;
    Ok(m.best.map(|ch| {
        let ch: Vec<usize> = ch.iter().zip(&back).map(|(&j, b)| b[j]).collect();
        (c.cost_of(&ch), ch)
    }))
}

/// Max-min: the largest `t` such that every app can get F1 >= t within the
/// budget, then the best summed F1 among such plans. `None` if nothing fits.
pub(crate) fn max_min(c: &Compiled, work_limit: u64) -> Result<Option<Vec<usize>>> {
    if c.apps.iter().any(|a| a.opts.is_empty()) {
        return Ok(None);
    }
    let cap = c
        .apps
        .iter()
        .map(|a| a.opts.iter().map(|o| o.f1).fold(0.0, f64::max))
        .fold(1.0, f64::min);
    let mut cands: Vec<f64> = c
        .apps
        .iter()
        .flat_map(|a| a.opts.iter().map(|o| o.f1))
        .filter(|&v| v <= cap)
        .collect();
    cands.sort_by(f64::total_cmp);
    cands.dedup();
    let at = |t: f64| c.restrict(|_, _, o| o.f1 >= t);
    let feasible = |t: f64| -> Result<Option<Vec<usize>>> {
        Ok(min_cost(&at(t), Some(c.budget), work_limit)?.map(|(_, ch)| ch))
    };
    // Every app has an option at or above the smallest candidate, so
    // `cands` is non-empty; the lowest threshold allows everything.
    let Some(&lowest) = cands.first() else {
        return Ok(None);
    };
    let Some(mut seed) = feasible(lowest)? else {
        return Ok(None);
    };
    let (mut lo, mut hi) = (0usize, cands.len());
    // Invariant: cands[lo] feasible (seed holds its plan), cands[hi..] infeasible.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match feasible(cands[mid])? {
            Some(ch) => {
                lo = mid;
                seed = ch;
            }
            None => hi = mid,
        }
    }
    let t = cands[lo];
    let restricted = at(t);
    // The cheap feasible plan is a poor incumbent; prefer a heuristic one.
    let value = |ch: &[usize]| -> f64 {
        ch.iter()
            .zip(&restricted.apps)
            .map(|(&j, a)| a.opts.get(j).map_or(0.0, |o| o.f1))
            .sum()
    };
    let seed = match restricted.best_seed() {
        Some(h) if value(&h) > value(&seed) => h,
        _ => seed,
    };
    let best = maximise(&restricted, Some(&seed), work_limit)?;
    // Map option indices of `restricted` back to `c`.
    Ok(best.map(|ch| {
        ch.iter()
            .enumerate()
            .map(|(i, &j)| {
                let o = restricted.apps[i].opts[j];
                c.apps[i].opts.iter().position(|x| *x == o).unwrap_or(0)
            })
            .collect()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::cost::fits;
    use crate::planner::{
        plan, AppSpec, BaselineFps, CurvePoint, EventParams, FpsGrid, Problem, Strategy,
        StreamSpec, Units,
    };
    use crate::rng::Rng;

    /// A small random instance: 1-5 apps on 1-2 streams, 3 branch points, F = 3.
    fn small(seed: u64) -> Problem {
        let mut rng = Rng::new(seed);
        let n_seg = 3 + rng.below(4) as usize;
        let segment_costs: Vec<f64> = (0..n_seg).map(|_| 0.05 + rng.unit() * 2.0).collect();
        let n_streams = 1 + rng.below(2) as usize;
        let streams = (0..n_streams)
            .map(|i| StreamSpec {
                name: format!("s{i}"),
                fps: 2.0 + rng.below(2) as f64,
                frame_cost: 0.0,
            })
            .collect();
        let n_apps = 1 + rng.below(5) as usize;
        let apps = (0..n_apps)
            .map(|i| {
                let mut bps = vec![0usize];
                for b in 1..n_seg {
                    if bps.len() < 3 && rng.unit() < 0.5 {
                        bps.push(b);
                    }
                }
                let mut acc = 0.5 + 0.5 * rng.unit();
                let curve = bps
                    .iter()
                    .map(|&b| {
                        acc = (acc - 0.2 * rng.unit()).max(0.0);
                        CurvePoint {
                            branch: b,
                            accuracy: acc,
                            fpr: 0.3 * rng.unit(),
                            gain_sd: 0.0,
                            rate_sd: (0.0, 0.0),
                        }
                    })
                    .collect();
                AppSpec {
                    name: format!("app{i}"),
                    stream: rng.below(n_streams as u64) as usize,
                    curve,
                    event: EventParams {
                        length_ms: [300.0, 800.0, 2000.0][rng.below(3) as usize],
                        lengths: Default::default(),
                        frequency: 0.1 + 0.9 * rng.unit(),
                        correlation: rng.unit(),
                        voting: 1 + rng.below(2) as u32,
                    },
                    min_f1: 0.0,
                }
            })
            .collect();
        let total: f64 = segment_costs.iter().sum();
        Problem {
            segment_costs,
            streams,
            apps,
            budget: total * (0.5 + 6.0 * rng.unit()),
            units: if rng.below(2) == 0 {
                Units::Physical
            } else {
                Units::PaperCompat
            },
            fps_grid: FpsGrid::Paper,
            share_margin: 0.0,
        }
    }

    /// Every combination of options: (best summed F1, best min F1 then sum, min cost).
    fn brute(c: &Compiled) -> (Option<f64>, Option<(f64, f64)>, Option<f64>) {
        let n = c.apps.len();
        let mut idx = vec![0usize; n];
        let mut best_sum: Option<f64> = None;
        let mut best_mm: Option<(f64, f64)> = None;
        let mut min_cost: Option<f64> = None;
        loop {
            let cost = c.cost_of(&idx);
            min_cost = Some(min_cost.map_or(cost, |m: f64| m.min(cost)));
            if fits(cost, c.budget) {
                let vals: Vec<f64> = idx
                    .iter()
                    .zip(&c.apps)
                    .map(|(&j, a)| a.opts[j].f1)
                    .collect();
                let sum: f64 = vals.iter().sum();
                let mn = vals.iter().copied().fold(1.0, f64::min);
                best_sum = Some(best_sum.map_or(sum, |b: f64| b.max(sum)));
                best_mm = Some(match best_mm {
                    None => (mn, sum),
                    Some((bm, bs)) => {
                        if mn > bm || (mn == bm && sum > bs) {
                            (mn, sum)
                        } else {
                            (bm, bs)
                        }
                    }
                });
            }
            let mut k = 0;
            loop {
                if k == n {
                    return (best_sum, best_mm, min_cost);
                }
                idx[k] += 1;
                if idx[k] < c.apps[k].opts.len() {
                    break;
                }
                idx[k] = 0;
                k += 1;
            }
        }
    }

    fn check_against_brute_force(
        name: &str,
        seeds: std::ops::Range<u64>,
        search: impl Fn(&Compiled) -> Result<Option<Vec<usize>>>,
    ) {
        let mut feasible = 0;
        for seed in seeds.clone() {
            let p = small(seed);
            let c = Compiled::from_problem(&p).for_strategy(Strategy::Exact);
            let (want, _, _) = brute(&c);
            match (want, search(&c).unwrap()) {
                (None, None) => {}
                (Some(w), Some(ch)) => {
                    assert!(
                        fits(c.cost_of(&ch), c.budget),
                        "{name} seed {seed}: over budget"
                    );
                    let v: f64 = ch.iter().zip(&c.apps).map(|(&j, a)| a.opts[j].f1).sum();
                    assert!(
                        (v - w).abs() < 1e-9,
                        "{name} seed {seed}: {v} vs brute force {w}"
                    );
                    feasible += 1;
                }
                (w, g) => panic!("{name} seed {seed}: brute force {w:?} vs {g:?}"),
            }
        }
        let n = (seeds.end - seeds.start) as usize;
        assert!(
            feasible * 2 > n,
            "{name}: only {feasible} of {n} instances feasible"
        );
    }

    #[test]
    fn exact_equals_brute_force_on_random_small_instances() {
        check_against_brute_force("portfolio", 0..400, |c| {
            maximise(c, None, DEFAULT_WORK_LIMIT)
        });
    }

    #[test]
    fn app_by_app_search_equals_brute_force_on_random_small_instances() {
        check_against_brute_force("app-first", 400..800, |c| {
            maximise_apps(c, None, DEFAULT_WORK_LIMIT)
        });
    }

    #[test]
    fn staircase_search_equals_brute_force_on_random_small_instances() {
        check_against_brute_force("stairs", 800..1200, |c| {
            maximise_stairs(c, None, DEFAULT_WORK_LIMIT)
        });
    }

    #[test]
    fn pruning_dominated_options_keeps_the_optimum() {
        check_against_brute_force("pruned stairs", 1200..1500, |c| {
            let (pc, _, back) = prune_dominated(c);
            Ok(maximise_stairs(&pc, None, DEFAULT_WORK_LIMIT)?
                .map(|ch| ch.iter().zip(&back).map(|(&j, b)| b[j]).collect()))
        });
    }

    #[test]
    fn exact_with_greedy_seed_equals_brute_force() {
        for seed in 1500..1700 {
            let p = small(seed);
            let c = Compiled::from_problem(&p).for_strategy(Strategy::Exact);
            let (want, _, _) = brute(&c);
            let plan = plan(&p, Strategy::Exact).unwrap();
            match want {
                None => assert!(!plan.feasible, "seed {seed}"),
                Some(w) => {
                    assert!(plan.feasible, "seed {seed}");
                    let n = plan.apps.len() as f64;
                    // The plan's F1s come from the model, the objective from the same model.
                    assert!(
                        (plan.mean_f1 * n - w).abs() < 1e-9,
                        "seed {seed}: {} vs {w}",
                        plan.mean_f1 * n
                    );
                    let greedy = crate::planner::plan(&p, Strategy::Greedy).unwrap();
                    if greedy.feasible {
                        assert!(
                            greedy.mean_f1 <= plan.mean_f1 + 1e-12,
                            "seed {seed}: greedy beat exact"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn exact_baselines_equal_brute_force_over_their_options() {
        for seed in 1700..1800 {
            let p = small(seed);
            for s in [
                Strategy::MaxSharing(BaselineFps::Exact),
                Strategy::NoSharing(BaselineFps::Exact),
            ] {
                let c = Compiled::from_problem(&p).for_strategy(s);
                let (want, _, _) = brute(&c);
                let got = plan(&p, s).unwrap();
                if let Some(w) = want {
                    assert!(got.feasible);
                    assert!(
                        (got.mean_f1 * got.apps.len() as f64 - w).abs() < 1e-9,
                        "seed {seed} {s:?}"
                    );
                } else {
                    assert!(!got.feasible);
                }
            }
        }
    }

    #[test]
    fn max_min_equals_brute_force_on_random_small_instances() {
        for seed in 1000..1300 {
            let p = small(seed);
            let c = Compiled::from_problem(&p).for_strategy(Strategy::MaxMin);
            let (_, want, _) = brute(&c);
            let got = max_min(&c, DEFAULT_WORK_LIMIT).unwrap();
            match (want, got) {
                (None, None) => {}
                (Some((wm, ws)), Some(ch)) => {
                    assert!(fits(c.cost_of(&ch), c.budget));
                    let vals: Vec<f64> =
                        ch.iter().zip(&c.apps).map(|(&j, a)| a.opts[j].f1).collect();
                    let mn = vals.iter().copied().fold(1.0, f64::min);
                    let sum: f64 = vals.iter().sum();
                    assert!((mn - wm).abs() < 1e-12, "seed {seed}: min {mn} vs {wm}");
                    assert!((sum - ws).abs() < 1e-9, "seed {seed}: sum {sum} vs {ws}");
                }
                (w, g) => panic!("seed {seed}: brute force {w:?} vs max-min {g:?}"),
            }
        }
    }

    #[test]
    fn min_cost_equals_brute_force_on_random_small_instances() {
        for seed in 2000..2300 {
            let p = small(seed);
            let c = Compiled::from_problem(&p).for_strategy(Strategy::Exact);
            let (_, _, want) = brute(&c);
            let (got, ch) = min_cost(&c, None, DEFAULT_WORK_LIMIT).unwrap().unwrap();
            let w = want.unwrap();
            assert!(
                (got - w).abs() < 1e-9 * w.max(1.0),
                "seed {seed}: {got} vs {w}"
            );
            assert!((c.cost_of(&ch) - got).abs() < 1e-12);
            // Stopping at the budget finds a plan iff the cheapest one fits.
            let stop = min_cost(&c, Some(c.budget), DEFAULT_WORK_LIMIT).unwrap();
            assert_eq!(stop.is_some(), fits(w, c.budget), "seed {seed}");
        }
    }

    #[test]
    fn work_limit_turns_into_an_unsupported_error() {
        let p = crate::planner::simulate::random_paper_problem(7, 8, 150.0, Units::PaperCompat);
        let c = Compiled::from_problem(&p).for_strategy(Strategy::Exact);
        let e = maximise(&c, None, 10).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Unsupported);
    }

    #[test]
    fn upper_hull_drops_points_below_the_chords() {
        let mut h = Vec::new();
        upper_hull(
            &[
                (0.0, 0.0),
                (1.0, 0.1),
                (2.0, 1.0),
                (2.0, 0.5),
                (3.0, 0.9),
                (4.0, 1.2),
            ],
            &mut h,
        );
        assert_eq!(h, vec![(0.0, 0.0), (2.0, 1.0), (4.0, 1.2)]);
    }
}
