//! The service's planning glue: the cached planner table, admission and
//! planning of the configured apps, and each camera's tree and threads.

use super::worker::Assignment;
use crate::config::Config;
use crate::error::{ErrorKind, Result};
use crate::model::net::Base;
use crate::pipeline::assignment::TreeKey;

/// What decides whether a re-plan must rebuild a camera's tree: its apps'
/// key and its head threads.
pub(super) type CameraKey = (TreeKey, usize);
use crate::planner::table::PlannerTable;
use crate::planner::{Plan, Problem, Strategy};
use crate::profile::{CameraCost, Profile};
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

/// Plans the enabled apps of `cfg` with the costs of `profile`'s segments
/// and of each camera's frames (`cameras`, by camera index): admission
/// control, then `strategy`.
pub(super) fn plan_for(
    cfg: &Config,
    profile: &Profile,
    cameras: &[CameraCost],
    budget_cores: f64,
    strategy: Strategy,
) -> Result<Planned> {
    let problem = cfg.planning_problem(
        &profile.segment_ms,
        &crate::profile::preprocess_ms(cameras),
        budget_cores,
    );
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
    generation: u64,
    started: Instant,
) -> Result<(Assignment, CameraKey)> {
    let threads = threads_for(cfg, plan, cam);
    let work = crate::pipeline::assignment::for_camera(cfg, base, plan, cam, threads)?;
    Ok((
        Assignment {
            generation,
            tree: work.tree,
            apps: work.apps,
            started,
        },
        (work.key, threads),
    ))
}

/// What the service expects to use, in core-ms per second: the plan's cost
/// (preprocessing and networks) and the capture of every camera that has
/// planned apps (its thread reads every frame; `cameras` by camera index,
/// which are the plan's stream indices).
pub(super) fn predicted_load(plan: &Plan, cameras: &[CameraCost]) -> f64 {
    let capture: f64 = cameras
        .iter()
        .enumerate()
        .filter(|(i, _)| plan.apps.iter().any(|a| a.stream == *i))
        .map(|(_, c)| c.capture_per_s())
        .sum();
    plan.cost + capture
}

/// Predicted work (cores) one thread carries for a camera before its heads
/// get threads of their own.
const ONE_THREAD_CORES: f64 = 0.5;

/// Threads for camera `cam`'s tree (its own thread counts as the first;
/// the tree gives the others heads, or splits every op over all of them
/// when its shared stem is most of the work, `model::tree`):
/// one while the camera's predicted work ([`Plan`]'s tree cost, with the
/// preprocessing) is at most [`ONE_THREAD_CORES`], else as many as that
/// work needs at that rate, at most the camera's share of the device's
/// threads ([`threads_per_tree`]).
///
/// Head threads cost CPU beyond the networks' own: on the demo (4 apps,
/// 6 head runs a second) the process used 0.067-0.071 cores with the heads on
/// two threads against 0.058-0.059 on one (a second allocator heap faulting
/// its pages in each frame, two networks contending for the caches), which
/// the cost model does not count. They only buy latency, which a camera
/// whose apps use half a core at most does not need.
pub(super) fn threads_for(cfg: &Config, plan: &Plan, cam: usize) -> usize {
    let load = plan
        .trees
        .iter()
        .find(|t| t.stream == cam)
        .map_or(0.0, |t| t.cost / 1000.0);
    let needed = (load / ONE_THREAD_CORES).ceil() as usize;
    needed.clamp(1, threads_per_tree(cfg, plan))
}

/// Camera threads per stem tree: the device's threads shared among the
/// cameras that have planned apps.
fn threads_per_tree(cfg: &Config, plan: &Plan) -> usize {
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
