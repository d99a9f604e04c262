//! `mainstream plan` output: a plan beside the No-Sharing and Max-Sharing
//! baselines at the same budget, and the admission-control verdict, as text a
//! person can read at a glance or as JSON for scripts.
//!
//! [`compare`] computes everything; [`render_text`] and [`render_json`] are
//! pure functions of the problem and that result.

use super::json::to_json;
use super::{
    admit, plan, Admission, BaselineFps, Plan, PlannedApp, PlannedTree, Problem, RejectReason,
    Strategy,
};
use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// A plan, the two baselines at the same budget and admission control.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The requested strategy's plan.
    pub plan: Plan,
    /// Max-Sharing at the same budget (fps as the paper's code chooses them).
    pub max_sharing: Plan,
    /// No-Sharing at the same budget (fps as the paper's code chooses them).
    pub no_sharing: Plan,
    /// Admission control; `None` if its search gave up (very many apps).
    pub admission: Option<Admission>,
}

/// Runs admission control, then plans the admitted apps with `strategy` and
/// with the two baselines. Apps turned away are listed in the admission
/// result and left out of the plans; app indices in the plans refer to
/// `problem.apps`.
pub fn compare(problem: &Problem, strategy: Strategy) -> Result<Comparison> {
    let admission = match admit(problem) {
        Ok(a) => Some(a),
        Err(e) if e.kind() == crate::ErrorKind::Unsupported => None,
        Err(e) => return Err(e),
    };
    let kept: Vec<usize> = match &admission {
        Some(a) => a.admitted.clone(),
        None => (0..problem.apps.len()).collect(),
    };
    let sub = problem.subset(&kept);
    let run = |s: Strategy| -> Result<Plan> { Ok(renumber(plan(&sub, s)?, &kept)) };
    Ok(Comparison {
        plan: run(strategy)?,
        max_sharing: run(Strategy::MaxSharing(BaselineFps::Greedy))?,
        no_sharing: run(Strategy::NoSharing(BaselineFps::Greedy))?,
        admission,
    })
}

/// Maps app indices of a plan of a subset back to the full problem's.
fn renumber(mut p: Plan, kept: &[usize]) -> Plan {
    let map = |i: usize| kept.get(i).copied().unwrap_or(i);
    for a in &mut p.apps {
        a.app = map(a.app);
    }
    for t in &mut p.trees {
        for seg in &mut t.stem {
            for i in &mut seg.apps {
                *i = map(*i);
            }
        }
    }
    p
}

fn fmt_fps(f: f64) -> String {
    if f.fract() == 0.0 {
        format!("{f:.0}")
    } else {
        format!("{f:.1}")
    }
}

fn app_name(problem: &Problem, i: usize) -> &str {
    problem.apps.get(i).map_or("?", |a| a.name.as_str())
}

/// The human-readable report.
pub fn render_text(problem: &Problem, cmp: &Comparison) -> String {
    let p = &cmp.plan;
    let n_seg = problem.segment_costs.len();
    let mut out = String::new();
    let streams_used = p.trees.len();
    let pct = if p.budget > 0.0 {
        format!(" ({:.1}%)", 100.0 * p.cost / p.budget)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "Plan ({}, {} units): {} app{} on {} stream{}, cost {:.2} of budget {:.2}{}, mean F1 {:.3}, min F1 {:.3}{}",
        p.strategy.name(),
        problem.units.as_str(),
        p.apps.len(),
        if p.apps.len() == 1 { "" } else { "s" },
        streams_used,
        if streams_used == 1 { "" } else { "s" },
        p.cost,
        p.budget,
        pct,
        p.mean_f1,
        p.min_f1,
        if p.feasible {
            ""
        } else {
            "  ** INFEASIBLE: over budget or below a minimum F1 **"
        }
    );
    if let Some(fb) = &p.fallback {
        let _ = writeln!(out, "  {} runs {fb}", p.strategy.name());
    }
    if let Some(adm) = cmp.admission.as_ref().filter(|a| !a.rejected.is_empty()) {
        let names: Vec<&str> = adm.rejected.iter().map(|r| r.name.as_str()).collect();
        let _ = writeln!(
            out,
            "  not planned (admission control, below): {}",
            names.join(", ")
        );
    }
    if !p.apps.is_empty() {
        let w = p
            .apps
            .iter()
            .map(|a| a.name.chars().count())
            .max()
            .unwrap_or(3)
            .max(3);
        let sw = p
            .apps
            .iter()
            .map(|a| {
                problem
                    .streams
                    .get(a.stream)
                    .map_or(1, |s| s.name.chars().count())
            })
            .max()
            .unwrap_or(6)
            .max(6);
        out.push('\n');
        let _ = writeln!(
            out,
            "  {:<w$}  {:<sw$}  {:>6}  {:>5}  {:>6}  {:>9}  {:>5}  {:>11}",
            "app", "stream", "branch", "fps", "recall", "precision", "F1", "branch cost"
        );
        for a in &p.apps {
            let stream = problem
                .streams
                .get(a.stream)
                .map_or("?", |s| s.name.as_str());
            let _ = writeln!(
                out,
                "  {:<w$}  {:<sw$}  {:>6}  {:>5}  {:>6.3}  {:>9.3}  {:>5.3}  {:>11.2}",
                a.name,
                stream,
                a.branch,
                fmt_fps(a.fps),
                a.recall,
                a.precision,
                a.f1,
                a.branch_cost
            );
        }
        out.push_str("\nShared stems (segments [start..end) @ fps)\n");
        for t in &p.trees {
            // Decoding and preprocessing: once per frame of the fastest app.
            let frame = problem.streams.get(t.stream).map_or(0.0, |s| s.frame_cost);
            let fastest = p
                .apps
                .iter()
                .filter(|a| a.stream == t.stream)
                .map(|a| a.fps)
                .fold(0.0, f64::max);
            let pre = if frame > 0.0 {
                format!(
                    ", preprocessing {:.2} ({frame:.2} per frame @ {} fps)",
                    frame * fastest,
                    fmt_fps(fastest)
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {} ({} fps): tree cost {:.2}, stem {:.2}{pre}",
                t.name,
                fmt_fps(t.stream_fps),
                t.cost,
                t.stem_cost
            );
            draw_tree(problem, p, t, n_seg, &mut out);
        }
        if p.apps
            .iter()
            .any(|a| calibration_band(problem, a).is_some())
        {
            let _ = writeln!(
                out,
                "  (F1 (a-b): the same plan with each head's calibrated accuracy and fpr one\n   \
                 bootstrap standard deviation worse and better: the calibration's doubt\n   \
                 alone, a lower bound on the prediction's)"
            );
        }
    }
    out.push('\n');
    let _ = writeln!(out, "Same budget, other strategies");
    let _ = writeln!(
        out,
        "  {:<12}  {:>10}  {:>7}  {:>6}  fits",
        "strategy", "cost", "mean F1", "min F1"
    );
    for q in [&cmp.plan, &cmp.max_sharing, &cmp.no_sharing] {
        let _ = writeln!(
            out,
            "  {:<12}  {:>10.2}  {:>7.3}  {:>6.3}  {}",
            q.strategy.name(),
            q.cost,
            q.mean_f1,
            q.min_f1,
            if q.feasible { "yes" } else { "no" }
        );
    }
    if problem.share_margin > 0.0 {
        let _ = writeln!(
            out,
            "  (sharing margin {:.2}: an app leaves its own head only for a head predicted\n   \
             better by more than that, or for the frame rate sharing buys)",
            problem.share_margin
        );
    }
    // Heads whose calibration is unsure enough to raise their margin.
    let raised: Vec<String> = problem
        .apps
        .iter()
        .flat_map(|a| {
            let mut curve: Vec<&super::CurvePoint> = a.curve.iter().collect();
            curve.sort_by_key(|c| c.branch);
            let margins = super::point_margins(0.0, curve.iter().map(|c| c.gain_sd));
            curve
                .into_iter()
                .zip(margins)
                .filter(|(_, m)| *m > problem.share_margin)
                .map(|(c, m)| format!("{}@{} {:.2}", a.name, c.branch, m))
                .collect::<Vec<_>>()
        })
        .collect();
    if !raised.is_empty() {
        let _ = writeln!(
            out,
            "  (calibration uncertainty raises the margin of: {})",
            raised.join(", ")
        );
    }
    if let Some(adm) = &cmp.admission {
        out.push('\n');
        render_admission(problem, adm, &mut out);
    }
    out
}

enum Node {
    Leaf(usize),
    Seg(usize),
}

/// A planned app's F1 with its head's calibrated rates one standard
/// deviation worse and better ([`super::event_f1::f1_band`]).
pub fn calibration_band(problem: &Problem, a: &super::PlannedApp) -> Option<(f64, f64)> {
    let spec = problem.apps.get(a.app).filter(|s| s.name == a.name)?;
    let point = spec.curve.iter().find(|c| c.branch == a.branch)?;
    let stream = problem.streams.get(a.stream)?;
    super::event_f1::f1_band(
        point.accuracy,
        point.fpr,
        point.rate_sd,
        &spec.event,
        stream.fps,
        a.fps,
        problem.units,
    )
}

fn draw_tree(problem: &Problem, p: &Plan, t: &super::PlannedTree, n_seg: usize, out: &mut String) {
    let mine: Vec<usize> = (0..p.apps.len())
        .filter(|&i| p.apps[i].stream == t.stream)
        .collect();
    let children = |after: usize, next_seg: Option<usize>| -> Vec<Node> {
        let mut v: Vec<Node> = mine
            .iter()
            .filter(|&&i| p.apps[i].branch == after)
            .map(|&i| Node::Leaf(i))
            .collect();
        if let Some(k) = next_seg {
            v.push(Node::Seg(k));
        }
        v
    };
    let first = if t.stem.is_empty() { None } else { Some(0) };
    let mut stack: Vec<(Vec<Node>, String)> = vec![(children(0, first), "    ".to_string())];
    // Iterative depth-first drawing; each level's node list is consumed in order.
    while let Some((mut nodes, prefix)) = stack.pop() {
        if nodes.is_empty() {
            continue;
        }
        let node = nodes.remove(0);
        let last = nodes.is_empty();
        let branch = if last { "└─ " } else { "├─ " };
        let child_prefix = format!("{prefix}{}", if last { "   " } else { "│  " });
        stack.push((nodes, prefix.clone()));
        match node {
            Node::Leaf(i) => {
                let a = &p.apps[i];
                let band = calibration_band(problem, a)
                    .map_or(String::new(), |(lo, hi)| format!(" ({lo:.2}-{hi:.2})"));
                let _ = writeln!(
                    out,
                    "{prefix}{branch}{}: {}..{} @ {} fps, cost {:.2}, F1 {:.3}{band}",
                    a.name,
                    a.branch,
                    n_seg,
                    fmt_fps(a.fps),
                    a.branch_cost,
                    a.f1
                );
            }
            Node::Seg(k) => {
                let s = &t.stem[k];
                let names: Vec<&str> = s.apps.iter().map(|&i| app_name(problem, i)).collect();
                let _ = writeln!(
                    out,
                    "{prefix}{branch}stem {}..{} @ {} fps, cost {:.2}, shared by {}",
                    s.start,
                    s.end,
                    fmt_fps(s.fps),
                    s.cost,
                    names.join(", ")
                );
                let next = if k + 1 < t.stem.len() {
                    Some(k + 1)
                } else {
                    None
                };
                stack.push((children(s.end, next), child_prefix));
            }
        }
    }
}

fn render_admission(problem: &Problem, adm: &Admission, out: &mut String) {
    if adm.rejected.is_empty() {
        let _ = writeln!(
            out,
            "Admission: all {} apps fit at their minimum F1 (cheapest {:.2} of budget {:.2})",
            adm.admitted.len(),
            adm.admitted_cost,
            adm.budget
        );
        return;
    }
    let _ = writeln!(
        out,
        "Admission: {} of {} apps do not fit at their minimum F1 (budget {:.2}):",
        adm.rejected.len(),
        adm.rejected.len() + adm.admitted.len(),
        adm.budget
    );
    for r in &adm.rejected {
        let min = problem.apps.get(r.app).map_or(0.0, |a| a.min_f1);
        match r.reason {
            RejectReason::Unreachable { best_f1 } => {
                let _ = writeln!(
                    out,
                    "  {}: min F1 {:.3} is out of reach at any budget (best possible {:.3})",
                    r.name, min, best_f1
                );
            }
            RejectReason::OverBudget { budget_needed } => {
                let _ = writeln!(
                    out,
                    "  {}: needs budget {:.2} together with the apps admitted before it (min F1 {:.3})",
                    r.name, budget_needed, min
                );
            }
        }
    }
    match adm.budget_for_all {
        Some(b) => {
            let _ = writeln!(out, "  budget that fits every app: {b:.2}");
        }
        None => {
            let _ = writeln!(out, "  no budget fits every app");
        }
    }
}

/// A plan as `plan --json` shows it: strategies by name.
#[derive(Serialize)]
struct PlanJson<'a> {
    strategy: &'static str,
    feasible: bool,
    budget: f64,
    cost: f64,
    mean_f1: f64,
    min_f1: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback: Option<FallbackJson>,
    apps: &'a [PlannedApp],
    trees: &'a [PlannedTree],
}

#[derive(Serialize)]
struct FallbackJson {
    baseline: &'static str,
    advantage: f64,
    doubt: f64,
}

impl<'a> PlanJson<'a> {
    fn of(p: &'a Plan) -> PlanJson<'a> {
        PlanJson {
            strategy: p.strategy.name(),
            feasible: p.feasible,
            budget: p.budget,
            cost: p.cost,
            mean_f1: p.mean_f1,
            min_f1: p.min_f1,
            fallback: p.fallback.map(|fb| FallbackJson {
                baseline: fb.baseline.name(),
                advantage: fb.advantage,
                doubt: fb.doubt,
            }),
            apps: &p.apps,
            trees: &p.trees,
        }
    }
}

#[derive(Serialize)]
struct RejectionJson<'a> {
    app: usize,
    name: &'a str,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    best_f1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    budget_needed: Option<f64>,
}

#[derive(Serialize)]
struct AdmissionJson<'a> {
    budget: f64,
    admitted: &'a [usize],
    admitted_cost: f64,
    rejected: Vec<RejectionJson<'a>>,
    budget_for_all: Option<f64>,
}

/// The report as one JSON object: `units`, `segments`, `plan`, `max_sharing`,
/// `no_sharing` (plans with `strategy`, `feasible`, `budget`, `cost`,
/// `mean_f1`, `min_f1`, `apps` and `trees`) and `admission` (or null).
pub fn render_json(problem: &Problem, cmp: &Comparison) -> String {
    #[derive(Serialize)]
    struct ReportJson<'a> {
        units: &'static str,
        fps_grid: &'static str,
        segments: usize,
        share_margin: f64,
        plan: PlanJson<'a>,
        max_sharing: PlanJson<'a>,
        no_sharing: PlanJson<'a>,
        admission: Option<AdmissionJson<'a>>,
    }
    let admission = cmp.admission.as_ref().map(|a| AdmissionJson {
        budget: a.budget,
        admitted: &a.admitted,
        admitted_cost: a.admitted_cost,
        rejected: a
            .rejected
            .iter()
            .map(|r| {
                let (reason, best_f1, budget_needed) = match r.reason {
                    RejectReason::Unreachable { best_f1 } => ("unreachable", Some(best_f1), None),
                    RejectReason::OverBudget { budget_needed } => {
                        ("over_budget", None, Some(budget_needed))
                    }
                };
                RejectionJson {
                    app: r.app,
                    name: &r.name,
                    reason,
                    best_f1,
                    budget_needed,
                }
            })
            .collect(),
        budget_for_all: a.budget_for_all,
    });
    to_json(&ReportJson {
        units: problem.units.as_str(),
        fps_grid: problem.fps_grid.as_str(),
        segments: problem.segment_costs.len(),
        share_margin: problem.share_margin,
        plan: PlanJson::of(&cmp.plan),
        max_sharing: PlanJson::of(&cmp.max_sharing),
        no_sharing: PlanJson::of(&cmp.no_sharing),
        admission,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::{simulate, Units};

    #[test]
    fn text_report_shows_apps_tree_baselines_and_admission() {
        let mut p = simulate::random_paper_problem(5, 4, 150.0, Units::Physical);
        p.apps[3].min_f1 = 0.999;
        let cmp = compare(&p, Strategy::Exact).unwrap();
        let text = render_text(&p, &cmp);
        for a in &p.apps {
            assert!(text.contains(&a.name), "{text}");
        }
        assert!(text.contains("stem 0.."), "{text}");
        assert!(
            text.contains("max-sharing") && text.contains("no-sharing"),
            "{text}"
        );
        assert!(
            text.contains("out of reach") || text.contains("needs budget"),
            "{text}"
        );
    }

    #[test]
    fn text_report_names_the_heads_whose_calibration_raises_the_margin() {
        let mut p = simulate::random_paper_problem(5, 2, 150.0, Units::Physical);
        p.share_margin = 0.05;
        let before = render_text(&p, &compare(&p, Strategy::Exact).unwrap());
        assert!(!before.contains("calibration uncertainty"), "{before}");
        let last = p.apps[1].curve.len() - 1;
        p.apps[1].curve[last].gain_sd = 0.05;
        // The least-shared head's value is never a margin.
        p.apps[0].curve[0].gain_sd = 0.5;
        let text = render_text(&p, &compare(&p, Strategy::Exact).unwrap());
        // Its margin: z for the app's `last` shared heads times 0.05.
        let want = format!(
            "(calibration uncertainty raises the margin of: {}@{} {:.2})",
            p.apps[1].name,
            p.apps[1].curve[last].branch,
            crate::planner::gain_z(last) * 0.05
        );
        assert!(text.contains(&want), "{text}");
    }

    #[test]
    fn json_report_is_balanced_and_names_every_field() {
        let p = simulate::random_paper_problem(6, 3, 150.0, Units::Physical);
        let cmp = compare(&p, Strategy::Greedy).unwrap();
        let js = render_json(&p, &cmp);
        let opens = js.matches(['{', '[']).count();
        let closes = js.matches(['}', ']']).count();
        assert_eq!(opens, closes);
        for k in [
            "\"plan\":{",
            "\"max_sharing\":{",
            "\"no_sharing\":{",
            "\"branch\":",
            "\"recall\":",
            "\"stem\":[",
        ] {
            assert!(js.contains(k), "{k} missing");
        }
    }

    #[test]
    fn reports_say_when_the_planner_runs_a_baselines_plan() {
        // The first small random workload whose exact plan falls back.
        let (p, cmp) = (0..64u64)
            .flat_map(|seed| [20.0, 60.0, 150.0].map(|b| (seed, b)))
            .find_map(|(seed, budget)| {
                let mut p = simulate::random_paper_problem(seed, 4, budget, Units::Physical);
                p.share_margin = 0.05;
                let cmp = compare(&p, Strategy::Exact).unwrap();
                cmp.plan.fallback.is_some().then_some((p, cmp))
            })
            .expect("a workload whose plan falls back");
        let fb = cmp.plan.fallback.unwrap();
        let text = render_text(&p, &cmp);
        let want = format!(
            "exact runs the {} plan: its own was predicted only",
            fb.baseline.name()
        );
        assert!(text.contains(&want), "{text}");
        let js = render_json(&p, &cmp);
        let want = format!("\"fallback\":{{\"baseline\":\"{}\"", fb.baseline.name());
        assert!(js.contains(&want), "{js}");
    }

    #[test]
    fn empty_problem_renders_without_panicking() {
        let mut p = simulate::random_paper_problem(6, 0, 0.0, Units::Physical);
        p.apps.clear();
        let cmp = compare(&p, Strategy::Auto).unwrap();
        assert!(render_text(&p, &cmp).contains("0 apps"));
        assert!(render_json(&p, &cmp).starts_with('{'));
    }
}
