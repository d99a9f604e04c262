//! The planners' unit tests.

use super::compiled::OWN_HEAD_TIE;
use super::fallback::same_schedule;
use super::*;
use crate::planner::simulate;

pub(crate) fn tiny_problem() -> Problem {
    Problem {
        segment_costs: vec![1.0, 2.0, 3.0, 0.5],
        streams: vec![StreamSpec {
            name: "cam".into(),
            fps: 5.0,
            frame_cost: 0.0,
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
                    rate_sd: (0.0, 0.0),
                },
                CurvePoint {
                    branch: 3,
                    accuracy: 0.7,
                    fpr: 0.1,
                    gain_sd: 0.0,
                    rate_sd: (0.0, 0.0),
                },
            ],
            event: EventParams {
                length_ms: 1000.0,
                lengths: Default::default(),
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
        frame_cost: 0.0,
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

#[test]
fn a_strategy_parses_from_the_name_reports_give_it() {
    use crate::planner::BaselineFps::Greedy;
    for s in [
        Strategy::Greedy,
        Strategy::Exact,
        Strategy::Heuristic,
        Strategy::MaxMin,
        Strategy::Auto,
        Strategy::MaxSharing(Greedy),
        Strategy::NoSharing(Greedy),
    ] {
        assert_eq!(Strategy::parse(s.name()), Some(s), "{}", s.name());
    }
    assert_eq!(Strategy::parse("mainstream"), Some(Strategy::Auto));
    assert_eq!(Strategy::parse("Greedy"), None);
    assert_eq!(Strategy::parse(""), None);
}
