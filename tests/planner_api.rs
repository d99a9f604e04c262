//! The planner's public API as `mainstream plan` and `mainstream simulate` use
//! it: build a problem from M-Package-like curves, plan, report, keep a
//! compiled table in a state directory and re-plan from it.

use mainstream::planner::table::PlannerTable;
use mainstream::planner::{
    self, paper, report, simulate, AppSpec, EventParams, FpsGrid, Problem, Strategy, StreamSpec,
    Units,
};

/// Two cameras, five apps on the paper's curves, a budget in the paper's units.
fn two_camera_problem(budget: f64) -> Problem {
    let curves = paper::curves().expect("embedded curves");
    let pick = |name: &str| {
        let c = curves
            .iter()
            .find(|c| c.name == name)
            .expect("curve exists");
        paper::monotone(&c.points)
    };
    let app = |name: &str, curve: &str, stream: usize, length_ms: f64, min_f1: f64| AppSpec {
        name: name.into(),
        stream,
        curve: pick(curve),
        event: EventParams {
            length_ms,
            lengths: Default::default(),
            frequency: 0.3,
            correlation: 0.4,
            voting: 1,
        },
        min_f1,
    };
    Problem {
        segment_costs: paper::layer_costs().expect("embedded costs"),
        streams: vec![
            StreamSpec {
                name: "gate".into(),
                fps: 10.0,
                frame_cost: 0.0,
            },
            StreamSpec {
                name: "yard".into(),
                fps: 15.0,
                frame_cost: 0.0,
            },
        ],
        apps: vec![
            app("trucks", "bus", 0, 800.0, 0.5),
            app("cars", "cars", 0, 600.0, 0.5),
            app("people", "pedestrian", 0, 1000.0, 0.5),
            app("trains", "trains", 1, 2000.0, 0.5),
            app("red", "redcar", 1, 400.0, 0.99),
        ],
        budget,
        units: Units::Physical,
        fps_grid: FpsGrid::Fine,
        share_margin: 0.0,
    }
}

#[test]
fn plan_report_names_every_admitted_app_and_turns_away_the_unreachable_one() {
    let p = two_camera_problem(150.0);
    let cmp = report::compare(&p, Strategy::Auto).expect("plannable");
    let adm = cmp.admission.as_ref().expect("admission ran");
    let rejected: Vec<&str> = adm.rejected.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(rejected, ["red"]);
    assert!(cmp.plan.feasible);
    assert!(cmp.plan.cost <= p.budget * (1.0 + 1e-9));
    let text = report::render_text(&p, &cmp);
    for name in ["trucks", "cars", "people", "trains"] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    assert!(
        text.contains("gate (10 fps)") && text.contains("yard (15 fps)"),
        "{text}"
    );
    let json = report::render_json(&p, &cmp);
    assert!(json.contains("\"reason\":\"unreachable\""), "{json}");
    // App indices in the plan refer to the full problem.
    let planned: Vec<usize> = cmp.plan.apps.iter().map(|a| a.app).collect();
    assert_eq!(planned, [0, 1, 2, 3]);
}

#[test]
fn table_in_a_state_directory_replans_like_the_direct_planner() {
    let mut p = two_camera_problem(120.0);
    p.apps.pop();
    let table = PlannerTable::compile(&p).expect("valid problem");
    let dir = std::env::temp_dir().join(format!("mainstream-planner-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("planner.table");
    std::fs::write(&path, table.to_bytes().expect("encodes")).expect("write");
    let bytes = std::fs::read(&path).expect("read");
    let _ = std::fs::remove_dir_all(&dir);
    let loaded = PlannerTable::from_bytes(&bytes).expect("decodes");
    for budget in [60.0, 120.0, 300.0] {
        let mut q = p.clone();
        q.budget = budget;
        for s in [Strategy::Greedy, Strategy::Exact, Strategy::MaxMin] {
            let direct = planner::plan(&q, s).expect("plan");
            let via = loaded.evaluate(budget, s).expect("table plan");
            assert_eq!(direct.feasible, via.feasible, "{s:?} at {budget}");
            assert!(
                (direct.mean_f1 - via.mean_f1).abs() < 1e-4,
                "{s:?} at {budget}: {} vs {}",
                direct.mean_f1,
                via.mean_f1
            );
        }
    }
}

#[test]
fn simulate_json_lists_apps_budget_and_the_three_strategies() {
    let opts = simulate::SimOptions {
        workloads: 3,
        points: vec![simulate::SimPoint {
            apps: 3,
            budget: 100.0,
        }],
        ..simulate::SimOptions::physical_exact()
    };
    let rows = simulate::run(&opts).expect("simulates");
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert!(r.mainstream >= r.max_sharing - 1e-12 && r.mainstream >= r.no_sharing - 1e-12);
    let json = simulate::render_json(&rows);
    for key in [
        "\"apps\":3",
        "\"budget\":100",
        "\"mainstream\":",
        "\"max_sharing\":",
        "\"no_sharing\":",
    ] {
        assert!(json.contains(key), "{key} missing in {json}");
    }
}
