//! The cost model of MAINSTREAM.md, per stream.
//!
//! For one stream with apps at (branch point `b_i`, fps `f_i`), segment `l`
//! of the base network runs once per frame at the highest fps of the apps that
//! share it (those with `b_i > l`), plus once per frame for every app that has
//! already branched (`b_i <= l`):
//!
//! ```text
//! cost = sum_l lat[l] * ( max{f_i : b_i > l} + sum{f_i : b_i <= l} )
//! ```
//!
//! which is the segment-by-segment formula of MAINSTREAM.md ([`schedule_cost`]
//! is that formula, literally). The total cost of a plan is the sum over
//! streams: stems are shared only among apps of the same stream.
//!
//! Issue 22 adds the work outside the networks: each frame an app analyses
//! is decoded and preprocessed once (`frame` per frame,
//! [`StreamSpec::frame_cost`](super::StreamSpec::frame_cost)), whoever else
//! analyses it. The apps of a stream sample on one nested grid
//! (`pipeline::sampler`), so the frames analysed are those of the fastest
//! app, and the preprocessing is a stem segment before segment 0 that every
//! app shares:
//!
//! ```text
//! cost = frame * max{f_i} + sum_l lat[l] * ( max{f_i : b_i > l} + sum{f_i : b_i <= l} )
//! ```
//!
//! The compiled form folds `frame` into each stream's prefix costs, so every
//! planner counts it as it counts the first stem segment.

use super::{CStream, Compiled, Opt, PlannedApp, PlannedTree, StemSegment};

/// Relative slack of budget comparisons: a plan fits if its cost is at most
/// `budget * (1 + 1e-9)` (absolute `1e-9` below a budget of 1). Every planner
/// and every test uses this one rule, so rounding in different summation
/// orders cannot make them disagree.
const FIT_TOLERANCE: f64 = 1e-9;

/// The absolute slack for `budget`.
pub fn tolerance(budget: f64) -> f64 {
    FIT_TOLERANCE * budget.abs().max(1.0)
}

/// Whether `cost` fits `budget` (see [`FIT_TOLERANCE`]).
pub(crate) fn fits(cost: f64, budget: f64) -> bool {
    cost <= budget + tolerance(budget)
}

/// The cost formula for one stream, literally: `schedule` holds (branch
/// point, fps) per app; `lat` the per-frame cost of each segment, `frame` the
/// per-frame cost of the preprocessing (paid at the highest fps).
pub(crate) fn schedule_cost(lat: &[f64], frame: f64, schedule: &[(usize, f64)]) -> f64 {
    let fastest = schedule.iter().map(|&(_, f)| f).fold(0.0, f64::max);
    let mut points: Vec<usize> = schedule.iter().map(|&(b, _)| b.min(lat.len())).collect();
    points.sort_unstable();
    points.dedup();
    points.push(lat.len());
    let mut start = 0;
    let mut cost = 0.0;
    for &end in &points {
        let seg: f64 = lat[start..end].iter().sum();
        let own: f64 = schedule
            .iter()
            .filter(|&&(b, _)| b < end)
            .map(|&(_, f)| f)
            .sum();
        let shared = schedule
            .iter()
            .filter(|&&(b, _)| b >= end)
            .map(|&(_, f)| f)
            .fold(0.0, f64::max);
        cost += seg * (own + shared);
        start = end;
    }
    frame * fastest + cost
}

/// Cost of one stream's tree for the given options, using the compiled
/// stream's prefix costs. `g` is scratch space (kept to reuse its allocation).
pub(crate) fn stream_cost<'a>(
    st: &CStream,
    items: impl Iterator<Item = &'a Opt>,
    g: &mut Vec<f64>,
) -> f64 {
    g.clear();
    g.resize(st.levels.len(), 0.0);
    let mut own = 0.0;
    for o in items {
        own += o.own;
        let k = o.level as usize;
        if let Some(slot) = g.get_mut(k) {
            if o.fps > *slot {
                *slot = o.fps;
            }
        }
    }
    // Segment k (ending at levels[k]) is shared by the apps at level >= k.
    let mut m = 0.0f64;
    let mut stem = 0.0;
    for k in (0..st.levels.len()).rev() {
        m = m.max(g[k]);
        stem += st.seg[k] * m;
    }
    stem + own
}

/// The stem tree of every stream that has apps in `apps`.
pub(crate) fn trees(c: &Compiled, apps: &[PlannedApp]) -> Vec<PlannedTree> {
    let mut out = Vec::new();
    for (si, st) in c.streams.iter().enumerate() {
        let mine: Vec<&PlannedApp> = apps.iter().filter(|a| a.stream == si).collect();
        if mine.is_empty() {
            continue;
        }
        // Network cost per frame of segments `[0, b)` (without the
        // preprocessing the prefix costs include).
        let cum_at = |b: usize| -> f64 {
            match st.levels.binary_search(&b) {
                Ok(k) if b > 0 => st.cum[k] - st.frame,
                _ => 0.0,
            }
        };
        let mut points: Vec<usize> = mine.iter().map(|a| a.branch).filter(|&b| b > 0).collect();
        points.sort_unstable();
        points.dedup();
        let mut stem = Vec::with_capacity(points.len());
        let mut start = 0;
        for &end in &points {
            let sharing: Vec<&&PlannedApp> = mine.iter().filter(|a| a.branch >= end).collect();
            let fps = sharing.iter().map(|a| a.fps).fold(0.0, f64::max);
            let cost = (cum_at(end) - cum_at(start)) * fps;
            stem.push(StemSegment {
                start,
                end,
                fps,
                cost,
                apps: sharing.iter().map(|a| a.app).collect(),
            });
            start = end;
        }
        // `+ 0.0`: an empty f64 sum is -0.0, which reports would print as "-0.00".
        let stem_cost: f64 = stem.iter().map(|s| s.cost).sum::<f64>() + 0.0;
        let branches: f64 = mine.iter().map(|a| a.branch_cost).sum();
        // Every frame some app analyses is preprocessed once.
        let fastest = mine.iter().map(|a| a.fps).fold(0.0, f64::max);
        out.push(PlannedTree {
            stream: si,
            name: st.name.clone(),
            stream_fps: st.fps,
            stem,
            stem_cost,
            cost: st.frame * fastest + stem_cost + branches,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::{
        plan, AppSpec, CurvePoint, EventParams, FpsGrid, Problem, Strategy, StreamSpec, Units,
    };

    #[test]
    fn literal_formula_matches_hand_computation() {
        // 4 segments of cost 1, 2, 3, 4 (total 10).
        let lat = [1.0, 2.0, 3.0, 4.0];
        // App A: branch 2 at 5 fps; app B: branch 3 at 2 fps.
        // Segments 0-1 shared by both at 5 fps: 3 * 5 = 15.
        // Segment 2: A's own at 5 (15) + shared by B at 2 (6) = 21.
        // Segment 3: A's own 5*4 = 20 + B's own 2*4 = 8.
        let c = schedule_cost(&lat, 0.0, &[(2, 5.0), (3, 2.0)]);
        assert!((c - (15.0 + 21.0 + 28.0)).abs() < 1e-12, "{c}");
        // No sharing: each app runs the full network.
        assert!((schedule_cost(&lat, 0.0, &[(0, 1.0), (0, 2.0)]) - 30.0).abs() < 1e-12);
        // Preprocessing at 0.5 per frame is paid once per frame of the
        // fastest app (5 fps), whoever else shares the frame.
        let c2 = schedule_cost(&lat, 0.5, &[(2, 5.0), (3, 2.0)]);
        assert!((c2 - (c + 2.5)).abs() < 1e-12, "{c2}");
        // Nothing to run costs nothing.
        assert_eq!(schedule_cost(&lat, 0.0, &[]), 0.0);
    }

    #[test]
    fn fits_allows_only_rounding_slack() {
        assert!(fits(150.0, 150.0));
        assert!(fits(150.0 + 1e-10, 150.0));
        assert!(!fits(150.001, 150.0));
        assert!(fits(0.0, 0.0));
        assert!(!fits(1e-6, 0.0));
    }

    fn random_problem(seed: u64) -> (Problem, Vec<f64>) {
        let mut rng = crate::rng::Rng::new(seed);
        let n = 2 + rng.below(8) as usize;
        let lat: Vec<f64> = (0..n).map(|_| rng.unit() * 3.0).collect();
        let apps = (0..1 + rng.below(5))
            .map(|i| {
                let mut bps: Vec<usize> = (0..n).filter(|_| rng.unit() < 0.5).collect();
                if bps.is_empty() {
                    bps.push(0);
                }
                AppSpec {
                    name: format!("a{i}"),
                    stream: 0,
                    curve: bps
                        .iter()
                        .map(|&b| CurvePoint {
                            branch: b,
                            accuracy: rng.unit(),
                            fpr: rng.unit() * 0.3,
                            gain_sd: 0.0,
                            rate_sd: (0.0, 0.0),
                        })
                        .collect(),
                    event: EventParams {
                        length_ms: 500.0,
                        lengths: Default::default(),
                        frequency: 0.5,
                        correlation: 0.3,
                        voting: 1,
                    },
                    min_f1: 0.0,
                }
            })
            .collect();
        // Half the problems preprocess their frames at a cost.
        let frame_cost = if seed.is_multiple_of(2) {
            rng.unit() * 2.0
        } else {
            0.0
        };
        let p = Problem {
            segment_costs: lat.clone(),
            streams: vec![StreamSpec {
                name: "s".into(),
                fps: 4.0,
                frame_cost,
            }],
            apps,
            budget: 1e9,
            units: Units::Physical,
            fps_grid: FpsGrid::Fine,
            share_margin: 0.0,
        };
        (p, lat)
    }

    #[test]
    fn compiled_cost_and_trees_match_the_literal_formula() {
        for seed in 0..200 {
            let (p, lat) = random_problem(seed);
            for strategy in [
                Strategy::Greedy,
                Strategy::NoSharing(crate::planner::BaselineFps::Greedy),
            ] {
                let plan = plan(&p, strategy).unwrap();
                let sched: Vec<(usize, f64)> =
                    plan.apps.iter().map(|a| (a.branch, a.fps)).collect();
                let want = schedule_cost(&lat, p.streams[0].frame_cost, &sched);
                assert!(
                    (plan.cost - want).abs() < 1e-9 * want.max(1.0),
                    "seed {seed}: {} vs {want}",
                    plan.cost
                );
                let c = Compiled::from_problem(&p).for_strategy(strategy);
                let choice: Vec<usize> = plan
                    .apps
                    .iter()
                    .map(|a| {
                        c.apps[a.app]
                            .opts
                            .iter()
                            .position(|o| {
                                c.streams[0].levels[o.level as usize] == a.branch && o.fps == a.fps
                            })
                            .unwrap()
                    })
                    .collect();
                assert!((c.cost_of(&choice) - want).abs() < 1e-9 * want.max(1.0));
            }
        }
    }

    #[test]
    fn tree_lists_shared_segments_at_the_fps_of_their_fastest_sharer() {
        let p = Problem {
            segment_costs: vec![1.0; 6],
            streams: vec![StreamSpec {
                name: "cam".into(),
                fps: 10.0,
                frame_cost: 0.0,
            }],
            apps: [(2usize, 0.9), (4, 0.8), (4, 0.85)]
                .iter()
                .enumerate()
                .map(|(i, &(b, acc))| AppSpec {
                    name: format!("app{i}"),
                    stream: 0,
                    curve: vec![CurvePoint {
                        branch: b,
                        accuracy: acc,
                        fpr: 0.0,
                        gain_sd: 0.0,
                        rate_sd: (0.0, 0.0),
                    }],
                    event: EventParams {
                        length_ms: 1000.0,
                        lengths: Default::default(),
                        frequency: 0.5,
                        correlation: 0.1,
                        voting: 1,
                    },
                    min_f1: 0.0,
                })
                .collect(),
            budget: 1e6,
            units: Units::Physical,
            fps_grid: FpsGrid::Paper,
            share_margin: 0.0,
        };
        let plan = plan(&p, Strategy::Exact).unwrap();
        let t = &plan.trees[0];
        assert_eq!(t.stem.len(), 2);
        assert_eq!((t.stem[0].start, t.stem[0].end), (0, 2));
        assert_eq!(t.stem[0].apps, vec![0, 1, 2]);
        assert_eq!((t.stem[1].start, t.stem[1].end), (2, 4));
        assert_eq!(t.stem[1].apps, vec![1, 2]);
        // Without false positives F1 grows with fps, so with an unlimited budget
        // every app runs at the stream rate.
        assert!(t.stem.iter().all(|s| s.fps == 10.0));
        assert!((t.cost - plan.cost).abs() < 1e-9);
    }
}
