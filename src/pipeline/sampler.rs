//! Sampling apps at their planned frame rates on a stream of another rate,
//! on one nested grid per camera.
//!
//! The cost model (`planner::cost`) charges a shared stem segment once per
//! frame of its *fastest* sharer, and the camera's decoding once per frame of
//! its fastest app. That holds only if every sharer's samples are a subset of
//! the fastest sharer's: with independent sampling phases a segment runs on
//! every frame on which *any* sharer is due (up to the sum of their rates).
//! So the apps of a camera sample on one nested grid ([`Samplers`]): the
//! fastest app samples the stream; every other app samples the frames of a
//! *parent*, the fastest app of the deepest stem it shares with a faster one
//! (or of the whole camera, whose decoded frames every app shares), at its
//! own planned rate on average. Each shared segment then runs exactly on its
//! fastest sharer's frames.

use std::cmp::Ordering;

/// Samples at a planned rate on a sequence of positions of another rate: the
/// stream's frames, or the samples of a faster app (its parent's due
/// points, [`Samplers`]).
///
/// With `interval = source rate / planned rate` positions between samples,
/// the sampler is due on the first position at or after each multiple of
/// `interval`; positions skipped past a due point count as missed samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Sampler {
    interval: f64,
    phase: f64,
    next: Option<f64>,
    /// Due points passed so far (sampled or missed).
    passed: u64,
}

impl Sampler {
    /// A sampler for `app_fps` on a source of `source_fps` positions a second.
    pub(crate) fn new(source_fps: f64, app_fps: f64) -> Sampler {
        let interval = if app_fps > 0.0 && source_fps > 0.0 {
            (source_fps / app_fps).max(1.0)
        } else {
            f64::INFINITY
        };
        Sampler {
            interval,
            phase: 0.0,
            next: None,
            passed: 0,
        }
    }

    /// The same sampler with its first sample `phase` positions after the
    /// first position seen (the paper's random phase; 0 = the first one).
    pub(crate) fn with_phase(self, phase: f64) -> Sampler {
        Sampler {
            phase: if phase.is_finite() {
                phase.max(0.0)
            } else {
                0.0
            },
            ..self
        }
    }

    /// Positions between samples (infinite for a zero rate).
    pub(crate) fn interval(&self) -> f64 {
        self.interval
    }

    /// Whether position `pos` is a sample, and how many due points before it
    /// were skipped. The first position seen is a sample unless a phase is set.
    pub(crate) fn due(&mut self, pos: u64) -> (bool, u64) {
        if !self.interval.is_finite() {
            return (false, 0);
        }
        let s = pos as f64;
        let next = *self.next.get_or_insert(s + self.phase);
        if s + 1e-9 < next {
            return (false, 0);
        }
        let owed = ((s - next) / self.interval).floor() as u64 + 1;
        self.next = Some(next + owed as f64 * self.interval);
        self.passed += owed;
        (true, owed - 1)
    }

    /// The index (from 0) of the last due point passed: what a child
    /// sampler counts its positions in.
    fn last_point(&self) -> u64 {
        self.passed.saturating_sub(1)
    }

    /// Whether position `pos` would be a sample, without taking it.
    #[cfg(test)]
    pub(crate) fn would_be_due(&self, pos: u64) -> bool {
        self.interval.is_finite() && self.next.is_none_or(|n| pos as f64 + 1e-9 >= n)
    }

    /// Starts again from the next position seen (the source was reopened and
    /// its sequence numbers restarted).
    pub(crate) fn restart(&mut self) {
        self.next = None;
        self.passed = 0;
    }
}

/// The samplers of one camera's apps on one nested grid (see the module
/// docs): every app but the fastest samples its parent's due points, so its
/// samples are a subset of its parent's, and each shared stem segment (and
/// the camera's decoding) runs exactly on the frames of its fastest sharer.
///
/// Allocated when the apps are assigned; [`Samplers::due`] allocates nothing.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Samplers {
    /// Per app, in the tree's order: its sampler, on its parent's due
    /// points (on the stream's frames for the root).
    samplers: Vec<Sampler>,
    /// Per app: its parent (`None`: the root, which samples the stream).
    parent: Vec<Option<usize>>,
    /// Per app: stream frames per position of its sampler (the root's
    /// positions are frames, a child's are its parent's due points).
    unit_frames: Vec<f64>,
    /// The apps with every parent before its children.
    order: Vec<usize>,
    /// Per app: (due on the current frame, due points missed before it).
    steps: Vec<(bool, u64)>,
}

/// Whether app `a` ranks above app `b` (of `(branch point, fps)` pairs): the
/// faster, then the more shared, then the earlier. A total order, so that
/// every set of apps has one leader.
fn ranks_above(apps: &[(usize, f64)], a: usize, b: usize) -> bool {
    let ((ba, fa), (bb, fb)) = (apps[a], apps[b]);
    match fa.total_cmp(&fb) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => match ba.cmp(&bb) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => a < b,
        },
    }
}

/// Each app's parent on the grid, for apps given as `(branch point, fps)`.
///
/// The apps with branch point at least `t` share the stem up to `t` (all of
/// them, `t = 0`, share the decoded frame); each such set's leader is its
/// highest-ranked app ([`ranks_above`]). An app's parent is the leader of
/// the deepest set it belongs to and does not lead. So the leader of every
/// set it belongs to is an ancestor of it (or itself), and with each app's
/// samples a subset of its parent's, every set's frames are its leader's.
pub(crate) fn parents(apps: &[(usize, f64)]) -> Vec<Option<usize>> {
    let mut cuts: Vec<usize> = apps.iter().map(|a| a.0).collect();
    cuts.push(0);
    cuts.sort_unstable();
    cuts.dedup();
    let leader = |t: usize| {
        (0..apps.len()).filter(|&j| apps[j].0 >= t).reduce(|x, y| {
            if ranks_above(apps, x, y) {
                x
            } else {
                y
            }
        })
    };
    (0..apps.len())
        .map(|j| {
            cuts.iter()
                .rev()
                .filter(|&&t| t <= apps[j].0)
                .filter_map(|&t| leader(t))
                .find(|&l| l != j)
        })
        .collect()
}

impl Samplers {
    /// The samplers of apps given as `(branch point, fps)`, in the tree's
    /// order, on a stream of `stream_fps`.
    pub(crate) fn new(stream_fps: f64, apps: &[(usize, f64)]) -> Samplers {
        let parent = parents(apps);
        let mut order: Vec<usize> = (0..apps.len()).collect();
        order.sort_by(|&a, &b| {
            if a == b {
                Ordering::Equal
            } else if ranks_above(apps, a, b) {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        });
        // The rate at which an app's sampler really takes positions.
        let effective = |i: usize| apps[i].1.min(stream_fps);
        let mut samplers = Vec::with_capacity(apps.len());
        let mut unit_frames = Vec::with_capacity(apps.len());
        for (i, p) in parent.iter().enumerate() {
            let source = p.map_or(stream_fps, effective);
            samplers.push(Sampler::new(source, apps[i].1));
            unit_frames.push(if source > 0.0 {
                (stream_fps / source).max(1.0)
            } else {
                1.0
            });
        }
        Samplers {
            samplers,
            parent,
            unit_frames,
            order,
            steps: vec![(false, 0); apps.len()],
        }
    }

    /// Takes over the state (phase, next due point) of the apps that stay
    /// from `old`: `old_of[i]` is app `i`'s index in `old`, if it was there.
    /// An app keeps its state if its sampler is the same (same rate on the
    /// same parent's rate) and its parent is the same app and kept its own.
    pub(crate) fn inherit(&mut self, old: &Samplers, old_of: &[Option<usize>]) {
        let mut kept = vec![false; self.samplers.len()];
        for &i in &self.order {
            let Some(o) = old_of.get(i).copied().flatten() else {
                continue;
            };
            let Some(prev) = old.samplers.get(o) else {
                continue;
            };
            let same_parent = match (self.parent[i], old.parent[o]) {
                (None, None) => true,
                (Some(p), Some(op)) => kept[p] && old_of.get(p).copied().flatten() == Some(op),
                _ => false,
            };
            if same_parent && prev.interval == self.samplers[i].interval {
                self.samplers[i] = *prev;
                kept[i] = true;
            }
        }
    }

    /// Gives each app's sampler a phase: `phase(app, interval)` positions of
    /// its sampler (`interval`: positions between its samples; frames for
    /// the root, its parent's samples for the others). Returns the phases
    /// in stream frames, in app order.
    pub(crate) fn set_phases(&mut self, phase: impl Fn(usize, f64) -> f64) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.samplers.len());
        for (i, s) in self.samplers.iter_mut().enumerate() {
            *s = s.with_phase(phase(i, s.interval()));
            out.push(s.phase * self.unit_frames[i]);
        }
        out
    }

    /// Per app, whether frame `seq` is one of its samples and how many of its
    /// due points before it were skipped (frames dropped, or a parent's
    /// samples lost to them).
    pub(crate) fn due(&mut self, seq: u64) -> &[(bool, u64)] {
        for &i in &self.order {
            self.steps[i] = match self.parent[i] {
                None => self.samplers[i].due(seq),
                Some(p) if self.steps[p].0 => {
                    let pos = self.samplers[p].last_point();
                    self.samplers[i].due(pos)
                }
                Some(_) => (false, 0),
            };
        }
        &self.steps
    }

    /// Every sampler starts again from the next frame seen (the source was
    /// reopened and its sequence numbers restarted).
    pub(crate) fn restart(&mut self) {
        for s in &mut self.samplers {
            s.restart();
        }
    }

    /// Each app's parent on the grid (`None`: the root).
    #[cfg(test)]
    pub(crate) fn parent_of(&self) -> &[Option<usize>] {
        &self.parent
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
        assert_eq!(s.last_point(), 4);
    }

    #[test]
    fn a_sampler_restarts_with_the_source() {
        let mut s = Sampler::new(30.0, 1.0);
        assert!(s.due(500).0);
        assert!(!s.due(501).0);
        s.restart();
        assert!(s.due(3).0);
        assert_eq!(s.last_point(), 0);
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

    /// Per app, the frames of `0..frames` it samples.
    fn sampled(g: &mut Samplers, frames: u64) -> Vec<Vec<u64>> {
        let mut out = vec![Vec::new(); g.samplers.len()];
        for f in 0..frames {
            for (i, &(due, _)) in g.due(f).iter().enumerate() {
                if due {
                    out[i].push(f);
                }
            }
        }
        out
    }

    /// The frames on which any of `apps` is due.
    fn union(per_app: &[Vec<u64>], apps: impl Iterator<Item = usize>) -> Vec<u64> {
        let mut v: Vec<u64> = apps.flat_map(|i| per_app[i].iter().copied()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    #[test]
    fn three_sharers_at_10_5_and_2_5_fps_run_the_stem_on_the_fastest_ones_frames() {
        // Three apps sharing the stem up to branch point 12 on a 10 fps
        // stream, listed slowest first, each with a phase that would put it
        // off the others' frames if they sampled independently.
        let apps = [(12, 2.5), (12, 5.0), (12, 10.0)];
        let mut g = Samplers::new(10.0, &apps);
        assert_eq!(g.parent_of(), &[Some(2), Some(2), None]);
        g.set_phases(|i, interval| [0.7, 0.3, 0.0][i] * interval);
        let per_app = sampled(&mut g, 1000);
        let fastest = &per_app[2];
        assert_eq!(fastest.len(), 1000);
        assert_eq!(union(&per_app, 0..3), *fastest);
        assert_eq!(per_app[1].len(), 500);
        assert_eq!(per_app[0].len(), 250);
        // Regular spacing: every 2nd and every 4th frame.
        assert!(per_app[1].windows(2).all(|w| w[1] - w[0] == 2));
        assert!(per_app[0].windows(2).all(|w| w[1] - w[0] == 4));
    }

    #[test]
    fn two_sharers_at_5_and_2_5_fps_run_the_stem_at_5_fps_not_at_the_sum() {
        let apps = [(12, 2.5), (12, 5.0)];
        let phases = [0.5, 0.3];
        let mut g = Samplers::new(10.0, &apps);
        g.set_phases(|i, interval| phases[i] * interval);
        let per_app = sampled(&mut g, 1000);
        assert_eq!(union(&per_app, 0..2), per_app[1]);
        assert_eq!(per_app[1].len(), 500);
        assert_eq!(per_app[0].len(), 250);
        // Sampled independently at the same phases (the 5 fps app on odd
        // frames, the 2.5 fps one on frames 2 mod 4), the stem would run on
        // 750 frames: 1.5 times what the cost model charges.
        let mut alone: Vec<Sampler> = apps
            .iter()
            .zip(phases)
            .map(|(&(_, fps), u)| {
                let s = Sampler::new(10.0, fps);
                s.with_phase(u * s.interval())
            })
            .collect();
        let ran = (0..1000)
            .filter(|&f| alone.iter_mut().fold(false, |any, s| s.due(f).0 | any))
            .count();
        assert_eq!(ran, 750);
    }

    #[test]
    fn each_shared_set_runs_on_its_leaders_frames_whatever_the_rates_and_phases() {
        let grid = [0.1, 0.3, 0.5, 0.7, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 10.0];
        let frames = 3000u64;
        for seed in 0..300 {
            let mut rng = crate::rng::Rng::new(seed);
            let n = 1 + rng.below(7) as usize;
            let apps: Vec<(usize, f64)> = (0..n)
                .map(|_| {
                    let b = [0, 0, 5, 12, 12, 15, 20][rng.below(7) as usize];
                    (b, grid[rng.below(grid.len() as u64) as usize])
                })
                .collect();
            let mut g = Samplers::new(10.0, &apps);
            let phases: Vec<f64> = (0..n).map(|_| rng.unit()).collect();
            g.set_phases(|i, interval| phases[i] * interval);
            let per_app = sampled(&mut g, frames);
            // A sampler's count is within 1 of its rate times its source's
            // count, so each level of the grid adds at most 1 of error.
            let depth = |mut i: usize| {
                let mut d = 1.0;
                while let Some(p) = g.parent_of()[i] {
                    d += 1.0;
                    i = p;
                }
                d
            };
            for t in [0, 5, 12, 15, 20] {
                let members: Vec<usize> = (0..n).filter(|&j| apps[j].0 >= t).collect();
                let Some(&lead) = members
                    .iter()
                    .max_by(|&&a, &&b| apps[a].1.total_cmp(&apps[b].1))
                else {
                    continue;
                };
                // The set runs at its fastest member's rate (the cost model).
                let ran = union(&per_app, members.iter().copied());
                let want = apps[lead].1 * frames as f64 / 10.0;
                assert!(
                    (ran.len() as f64 - want).abs() <= depth(lead),
                    "seed {seed}, apps {apps:?}, cut {t}: {} frames, want {want}",
                    ran.len()
                );
            }
            // Every app keeps its planned rate on average.
            for (i, &(_, fps)) in apps.iter().enumerate() {
                let want = fps * frames as f64 / 10.0;
                assert!(
                    (per_app[i].len() as f64 - want).abs() <= depth(i),
                    "seed {seed}, app {i} at {fps} fps: {} samples",
                    per_app[i].len()
                );
            }
        }
    }

    #[test]
    fn the_grid_runs_each_stem_segment_and_the_decoding_as_often_as_the_cost_model_charges() {
        use crate::planner::{
            plan, AppSpec, BaselineFps, CurvePoint, EventParams, FpsGrid, Problem, Strategy,
            StreamSpec, Units,
        };
        let (fps, seconds) = (10.0, 600.0);
        let frames = (fps * seconds) as u64;
        for seed in 0..30 {
            let mut rng = crate::rng::Rng::new(seed);
            let n = 2 + rng.below(5) as usize;
            let apps = (0..n)
                .map(|i| {
                    let mut curve = vec![CurvePoint {
                        branch: 0,
                        accuracy: 0.6 + 0.3 * rng.unit(),
                        fpr: 0.1 * rng.unit(),
                        gain_sd: 0.0,
                        rate_sd: (0.0, 0.0),
                    }];
                    for b in [5, 12, 15, 20] {
                        if rng.unit() < 0.5 {
                            curve.push(CurvePoint {
                                branch: b,
                                accuracy: 0.5 + 0.4 * rng.unit(),
                                fpr: 0.1 * rng.unit(),
                                gain_sd: 0.0,
                                rate_sd: (0.0, 0.0),
                            });
                        }
                    }
                    AppSpec {
                        name: format!("app{i}"),
                        stream: 0,
                        curve,
                        event: EventParams {
                            length_ms: 1000.0 + 2000.0 * rng.unit(),
                            lengths: Default::default(),
                            frequency: 0.2,
                            correlation: 0.5,
                            voting: 1 + rng.below(2) as u32,
                        },
                        min_f1: 0.0,
                    }
                })
                .collect();
            let problem = Problem {
                segment_costs: (0..21).map(|_| 0.1 + rng.unit()).collect(),
                streams: vec![StreamSpec {
                    name: "cam".into(),
                    fps,
                    frame_cost: 1.5,
                }],
                apps,
                budget: 20.0 + 300.0 * rng.unit(),
                units: Units::Physical,
                fps_grid: FpsGrid::Fine,
                share_margin: 0.0,
            };
            for strategy in [
                Strategy::Greedy,
                Strategy::MaxSharing(BaselineFps::Greedy),
                Strategy::NoSharing(BaselineFps::Greedy),
            ] {
                let plan = plan(&problem, strategy).unwrap();
                let grid: Vec<(usize, f64)> = plan.apps.iter().map(|a| (a.branch, a.fps)).collect();
                let mut g = Samplers::new(fps, &grid);
                let phases: Vec<f64> = grid.iter().map(|_| rng.unit()).collect();
                g.set_phases(|i, interval| phases[i] * interval);
                let per_app = sampled(&mut g, frames);
                // What the pipeline ran, charged at the plan's per-frame costs.
                let of_problem = |j: usize| plan.apps.iter().position(|a| a.app == j).unwrap();
                let mut spent = 0.0;
                let tree = &plan.trees[0];
                for s in &tree.stem {
                    let ran = union(&per_app, s.apps.iter().map(|&j| of_problem(j)));
                    let want = s.fps * seconds;
                    assert!(
                        (ran.len() as f64 - want).abs() <= n as f64,
                        "seed {seed} {strategy:?}: stem {}..{} ran {} times, the model charges {want}",
                        s.start,
                        s.end,
                        ran.len()
                    );
                    spent += ran.len() as f64 * s.cost / s.fps;
                }
                for (i, a) in plan.apps.iter().enumerate() {
                    spent += per_app[i].len() as f64 * a.branch_cost / a.fps;
                }
                let analysed = union(&per_app, 0..grid.len());
                let fastest = grid.iter().map(|a| a.1).fold(0.0, f64::max);
                assert!((analysed.len() as f64 - fastest * seconds).abs() <= n as f64);
                spent += analysed.len() as f64 * 1.5;
                let predicted = plan.cost * seconds;
                assert!(
                    (spent - predicted).abs() <= 0.01 * predicted,
                    "seed {seed} {strategy:?}: ran {spent:.1}, the plan predicted {predicted:.1}"
                );
            }
        }
    }

    #[test]
    fn a_child_misses_the_due_points_its_parent_lost_to_dropped_frames() {
        // 5 fps parent (every 2nd frame), 2.5 fps child (every 2nd of those).
        let mut g = Samplers::new(10.0, &[(12, 5.0), (12, 2.5)]);
        assert_eq!(g.due(0), &[(true, 0), (true, 0)]);
        assert_eq!(g.due(1), &[(false, 0), (false, 0)]);
        assert_eq!(g.due(2), &[(true, 0), (false, 0)]);
        // Frames 3..=8 dropped: the parent's points 4, 6, 8 are gone, the
        // child's at 4 and 8 with them; frame 9 is a sample of both.
        assert_eq!(g.due(9), &[(true, 2), (true, 1)]);
        assert_eq!(g.due(10), &[(true, 0), (false, 0)]);
        assert_eq!(g.due(12), &[(true, 0), (true, 0)]);
    }

    #[test]
    fn apps_on_their_own_networks_still_share_the_decoded_frames() {
        // Branch 0 everywhere: no stem is shared, but every app's frames are
        // the fastest app's, so each frame is decoded once.
        let apps = [(0, 2.0), (0, 1.0), (0, 0.5), (0, 2.0)];
        let mut g = Samplers::new(10.0, &apps);
        assert_eq!(g.parent_of(), &[None, Some(0), Some(0), Some(0)]);
        g.set_phases(|i, interval| [0.3, 0.5, 0.9, 0.8][i] * interval);
        let per_app = sampled(&mut g, 1000);
        assert_eq!(union(&per_app, 0..4), per_app[0]);
        assert_eq!(per_app[0].len(), 200);
        // The other 2 fps app takes the same frames (its phase, 0.8 of one
        // of its parent's samples, only skips the first).
        assert_eq!(per_app[3], per_app[0][1..]);
    }

    #[test]
    fn the_deepest_sharer_leads_among_equals() {
        // Equal rates: the app that shares most is the parent, so that the
        // deeper stem's leader is an ancestor of the shallower sharers.
        let apps = [(5, 2.0), (20, 2.0), (0, 2.0), (20, 1.0)];
        assert_eq!(parents(&apps), vec![Some(1), None, Some(1), Some(1)]);
    }

    #[test]
    fn apps_that_stay_keep_their_place_on_the_grid() {
        let mut old = Samplers::new(10.0, &[(12, 5.0), (12, 2.5)]);
        old.set_phases(|i, interval| [0.5, 0.5][i] * interval);
        let _ = sampled(&mut old, 7);
        // A third app joins below them; the two keep their state.
        let mut new = Samplers::new(10.0, &[(12, 5.0), (12, 2.5), (15, 1.0)]);
        new.inherit(&old, &[Some(0), Some(1), None]);
        assert_eq!(new.samplers[..2], old.samplers[..]);
        // The first app's rate changes: its child starts afresh too.
        let mut new = Samplers::new(10.0, &[(12, 10.0), (12, 2.5)]);
        new.inherit(&old, &[Some(0), Some(1)]);
        assert_eq!(new.samplers[1].next, None);
    }
}
