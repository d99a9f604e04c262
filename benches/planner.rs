//! Planner benchmarks (plain `main`, no harness): `cargo bench --bench planner`.
//!
//! Workloads are the paper's (its nine curves, its MobileNet cost profile,
//! stream 10 fps, budget 150; see `planner::simulate`). Each timing is the
//! median over workloads of the fastest of a few runs per workload; the
//! worst workload is shown too.

use mainstream::planner::{self, simulate, table::PlannerTable, FpsGrid, Problem, Strategy, Units};
use std::time::{Duration, Instant};

fn fastest<T>(runs: usize, mut f: impl FnMut() -> T) -> (T, Duration) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed());
        out = Some(v);
    }
    (out.expect("at least one run"), best)
}

fn summary(mut v: Vec<Duration>) -> String {
    v.sort();
    let med = v[v.len() / 2];
    let max = v[v.len() - 1];
    format!(
        "median {med:>10.3?}  max {max:>10.3?}  ({} workloads)",
        v.len()
    )
}

fn problem(seed: u64, apps: usize, units: Units, grid: FpsGrid) -> Problem {
    let mut p = simulate::random_paper_problem(seed, apps, 150.0, units);
    p.fps_grid = grid;
    p
}

fn main() {
    let cases = [
        ("physical, paper grid", Units::Physical, FpsGrid::Paper),
        (
            "code-compatible, paper grid",
            Units::PaperCompat,
            FpsGrid::Paper,
        ),
        ("physical, fine grid", Units::Physical, FpsGrid::Fine),
    ];

    println!("== plan() wall time, budget 150");
    for (name, units, grid) in cases {
        for (apps, strategy, workloads, runs) in [
            (10, Strategy::Exact, 15, 3),
            (10, Strategy::Greedy, 15, 5),
            (10, Strategy::Heuristic, 15, 3),
            (30, Strategy::Greedy, 15, 5),
            (30, Strategy::Heuristic, 15, 3),
            (30, Strategy::Exact, 5, 1),
        ] {
            let mut times = Vec::new();
            for seed in 0..workloads {
                let p = problem(seed, apps, units, grid);
                let (plan, t) = fastest(runs, || planner::plan(&p, strategy));
                if let Err(e) = plan {
                    println!("   seed {seed}: {e}");
                }
                times.push(t);
            }
            println!(
                "{name:<28} {apps:>2} apps {:<7} {}",
                strategy.name(),
                summary(times)
            );
        }
    }

    println!("\n== shortfall against exact (mean F1), budget 150, 50 workloads per row");
    println!("units          apps | greedy: mean rel. max rel. optimal | heuristic: mean rel. max rel. optimal");
    for units in [Units::PaperCompat, Units::Physical] {
        for apps in [2, 3, 5, 10] {
            match simulate::greedy_gap(apps, 150.0, units, 50, simulate::DEFAULT_SEED) {
                Ok(g) => println!(
                    "{:<14} {:>4} |         {:>7.2}% {:>7.2}% {:>3}/{:<3} |            {:>7.3}% {:>7.3}% {:>3}/{}",
                    units.as_str(),
                    apps,
                    100.0 * g.greedy.mean_relative,
                    100.0 * g.greedy.max_relative,
                    g.greedy.optimal,
                    g.workloads,
                    100.0 * g.heuristic.mean_relative,
                    100.0 * g.heuristic.max_relative,
                    g.heuristic.optimal,
                    g.workloads
                ),
                Err(e) => println!("{:<14} {apps:>4}  error: {e}", units.as_str()),
            }
        }
    }

    println!("\n== planner table (postcard), physical units");
    for grid in [FpsGrid::Paper, FpsGrid::Fine] {
        for (apps, strategy) in [
            (10, Strategy::Exact),
            (10, Strategy::Auto),
            (30, Strategy::Greedy),
            (30, Strategy::Heuristic),
        ] {
            let mut sizes = Vec::new();
            let mut compile = Vec::new();
            let mut decode = Vec::new();
            let mut eval = Vec::new();
            for seed in 0..10 {
                let p = problem(seed, apps, Units::Physical, grid);
                let (t, tc) = fastest(3, || PlannerTable::compile(&p).expect("valid problem"));
                let bytes = t.to_bytes().expect("encodable");
                let (back, td) =
                    fastest(3, || PlannerTable::from_bytes(&bytes).expect("round trip"));
                let (_, te) = fastest(3, || back.evaluate(150.0, strategy).expect("plan"));
                sizes.push(bytes.len());
                compile.push(tc);
                decode.push(td);
                eval.push(te);
            }
            sizes.sort_unstable();
            println!(
                "{:<5} grid {apps:>2} apps: {} .. {} bytes; compile {}; decode {}; evaluate({}) {}",
                grid.as_str(),
                sizes[0],
                sizes[sizes.len() - 1],
                summary(compile).split("  (").next().unwrap_or(""),
                summary(decode).split("  (").next().unwrap_or(""),
                strategy.name(),
                summary(eval)
            );
        }
    }

    println!("\n== simulate suite (3 tables x 10 points x 100 workloads)");
    let t = Instant::now();
    for opts in simulate::suite() {
        let t1 = Instant::now();
        match simulate::run(&opts) {
            Ok(rows) => {
                let worst = rows
                    .iter()
                    .filter_map(|r| {
                        r.paper.map(|p| {
                            [
                                r.mainstream - p.mainstream,
                                r.max_sharing - p.max_sharing,
                                r.no_sharing - p.no_sharing,
                            ]
                            .iter()
                            .fold(0.0f64, |m, d| m.max(d.abs()))
                        })
                    })
                    .fold(0.0f64, f64::max);
                println!(
                    "{:<52} {:>8.2?}  worst |ours - paper| {worst:.4}",
                    opts.name,
                    t1.elapsed()
                );
            }
            Err(e) => println!("{}: {e}", opts.name),
        }
    }
    println!("total {:.2?}", t.elapsed());
}
