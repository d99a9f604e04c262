//! The service's planning glue: the cached planner table, admission and
//! planning of the configured apps, and each camera's tree and threads.

use super::worker::Assignment;
use crate::config::Config;
use crate::error::{ErrorKind, Result};
use crate::model::net::Base;
use crate::pipeline::assignment::TreeKey;
use crate::planner::table::PlannerTable;
use crate::planner::{Plan, Problem, Strategy};
use std::path::Path;
use std::time::Instant;

/// A plan with what it was made from.
pub(super) struct Planned {
    /// What was planned.
    pub(super) problem: Problem,
    /// The plan.
    pub(super) plan: Plan,
    /// Apps admission control turned away, each with why.
    pub(super) rejected: Vec<String>,
}

const TABLE_FILE: &str = "planner.bin";
const TABLE_MAGIC: [u8; 4] = *b"MSPC";
const TABLE_VERSION: u16 = 1;

/// The planner table for `problem`: the one cached in the state directory if
/// it was compiled from the same problem, else compiled now and cached.
fn table_for(problem: &Problem, state_dir: &Path) -> Result<PlannerTable> {
    let key = postcard::to_stdvec(problem)
        .map(|b| crate::store::crc32(&b))
        .map_err(|e| crate::err!(Internal, "encoding the planning problem: {e}"))?;
    let path = state_dir.join(TABLE_FILE);
    match crate::store::load::<(u32, Vec<u8>)>(&path, TABLE_MAGIC, TABLE_VERSION) {
        Ok(Some((k, bytes))) if k == key => match PlannerTable::from_bytes(&bytes) {
            Ok(t) => return Ok(t),
            Err(e) => log::warn!("{}: {}; compiling it again", path.display(), e.chain()),
        },
        Ok(_) => {}
        Err(e) => log::warn!("{}; compiling the planner table again", e.chain()),
    }
    let table = PlannerTable::compile(problem)?;
    let bytes = table.to_bytes()?;
    if let Err(e) = crate::store::save(&path, TABLE_MAGIC, TABLE_VERSION, &(key, bytes)) {
        log::warn!("could not cache the planner table: {}", e.chain());
    }
    Ok(table)
}

/// Plans the enabled apps of `cfg`: admission control, then `strategy`.
pub(super) fn plan_for(
    cfg: &Config,
    segment_ms: &[f64],
    budget_cores: f64,
    strategy: Strategy,
) -> Result<Planned> {
    let problem = cfg.planning_problem(segment_ms, budget_cores);
    if problem.apps.is_empty() {
        return Ok(Planned {
            plan: Plan {
                strategy,
                feasible: true,
                apps: Vec::new(),
                trees: Vec::new(),
                cost: 0.0,
                budget: problem.budget,
                mean_f1: 0.0,
                min_f1: 0.0,
                fallback: None,
            },
            problem,
            rejected: Vec::new(),
        });
    }
    let table = table_for(&problem, &cfg.device.state_dir)?;
    let admission = match table.admit(problem.budget) {
        Ok(a) => Some(a),
        Err(e) if e.kind() == ErrorKind::Unsupported => None,
        Err(e) => return Err(e),
    };
    let mut rejected = Vec::new();
    let plan = match &admission {
        Some(a) if !a.rejected.is_empty() => {
            for r in &a.rejected {
                let why = match r.reason {
                    crate::planner::RejectReason::Unreachable { best_f1 } => {
                        format!("its min_f1 is out of reach (best F1 {best_f1:.3})")
                    }
                    crate::planner::RejectReason::OverBudget { budget_needed } => format!(
                        "the budget is too small for it (needs {:.2} cores)",
                        budget_needed / 1000.0
                    ),
                };
                rejected.push(format!("{}: {why}", r.name));
            }
            let sub = problem.subset(&a.admitted);
            crate::planner::plan(&sub, strategy)?
        }
        _ => table.evaluate(problem.budget, strategy)?,
    };
    Ok(Planned {
        problem,
        plan,
        rejected,
    })
}

/// The tree and thread assignment of camera `cam` under `plan`, as
/// generation `generation` of a re-plan that started at `started`.
pub(super) fn assignment_for(
    cfg: &Config,
    base: &Base,
    plan: &Plan,
    cam: usize,
    threads: usize,
    generation: u64,
    started: Instant,
) -> Result<(Assignment, TreeKey)> {
    let work = crate::pipeline::assignment::for_camera(cfg, base, plan, cam, threads)?;
    Ok((
        Assignment {
            generation,
            tree: work.tree,
            apps: work.apps,
            started,
        },
        work.key,
    ))
}

/// Camera threads per stem tree: the device's threads shared among the
/// cameras that have planned apps.
pub(super) fn threads_per_tree(cfg: &Config, plan: &Plan) -> usize {
    let busy = cfg
        .cameras
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            plan.apps
                .iter()
                .any(|p| cfg.apps.iter().any(|a| a.name == p.name && a.camera == *i))
        })
        .count()
        .max(1);
    (cfg.device.threads / busy).max(1)
}
