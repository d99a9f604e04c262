//! M-Scheduler: the event-F1 model, the cost model and the planners.
//!
//! Everything here is pure: a [`Problem`] (segment costs of the base network
//! on this device, camera streams, apps with their M-Package curves and event
//! parameters, a global budget) goes in, a [`Plan`] (per app a branch point and
//! a frame rate, with predicted recall, precision and event F1, plus the shared
//! stem tree of every stream) comes out. No I/O, no clocks, no panics on bad
//! input: [`Problem::validate`] rejects invalid problems with
//! [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig), and every
//! number in a result is finite.
//!
//! # Model
//!
//! - [`event_f1`]: the event F1 model of MAINSTREAM.md with event length in stream
//!   frames ([`Units::Physical`]) and the authors' code variant
//!   ([`Units::PaperCompat`]), X-voting included.
//! - [`cost`]: the cost model. Apps share stems only with apps on the same
//!   stream; each stream has its own fps; the budget bounds the sum of all
//!   streams' tree costs. Budget and costs share one unit (the product uses
//!   core-milliseconds per second of video: budget = cores * 1000 and segment
//!   costs in ms per frame; the paper simulation uses its normalised units).
//!
//! # Planners ([`plan`] with a [`Strategy`])
//!
//! - [`Strategy::Greedy`]: the paper's greedy exactly as its authors coded it
//!   (score = loss / own branch cost, first found wins ties).
//! - [`Strategy::Exact`]: the maximum mean F1 within the budget, by branch and
//!   bound on the exact cost values ([`exact`] explains the bound).
//! - [`Strategy::MaxMin`]: the maximum of the smallest F1, ties broken by mean F1.
//! - [`Strategy::Heuristic`]: marginal-utility greedy (best F1 gain per added
//!   cost) and hill climbing, or the paper's greedy when that is better; a
//!   fast near-optimal plan.
//! - [`Strategy::Auto`]: exact for up to [`AUTO_EXACT_MAX_APPS`] apps when the
//!   search finishes within its work limit, the heuristic otherwise.
//! - [`Strategy::MaxSharing`] / [`Strategy::NoSharing`]: the paper's baselines
//!   (every app at its most- / least-frozen point), with fps chosen as the
//!   paper's code does ([`BaselineFps::Greedy`]), uniformly, or exactly.
//!
//! Apps' `min_f1` are hard constraints for the exact planners; [`admit`] is the
//! admission control the paper lacks: which apps cannot get their minimum F1
//! within the budget, and what budget would fit them.
//!
//! # Frame-rate options ([`FpsGrid`])
//!
//! - [`FpsGrid::Paper`] (the authors' code): shared plans and Max-Sharing pick
//!   from the integers 1..=F; No-Sharing also from 0.1, 0.2, ..., 0.9.
//! - [`FpsGrid::Fine`] (the product's choice): every strategy picks from
//!   0.1..0.9 and the integers 1..=F (plus F itself when F is not an integer).
//!   A slow sampler is as real for a shared branch as for a full network, and
//!   the same options for all strategies keep comparisons fair.
//!
//! # Public API used by the CLI
//!
//! ```text
//! planner::Problem { segment_costs, streams, apps, budget, units, fps_grid }
//! planner::Problem::{validate, subset}
//! planner::plan(&Problem, Strategy) -> Result<Plan>
//! planner::admit(&Problem) -> Result<Admission>
//! planner::report::compare(&Problem, Strategy) -> Result<Comparison>
//!     (admission control, then the admitted apps planned with the strategy
//!      and with both baselines)
//! planner::report::{render_text, render_json}(&Problem, &Comparison) -> String
//! planner::table::PlannerTable::compile(&Problem) -> Result<PlannerTable>
//! planner::table::PlannerTable::{to_bytes, from_bytes, evaluate(budget, Strategy), admit(budget)}
//! planner::simulate::{suite, run(&SimOptions), render_text, render_json, greedy_gap}
//! planner::paper::{layer_costs, curves, monotone, test_vector, RESULTS}
//! ```
//!
//! # Files
//!
//! The problem types and validation (`problem.rs`), the compiled form
//! the planners search (`compiled.rs`), strategy dispatch (`dispatch.rs`),
//! the fallback rule (`fallback.rs`), sharing margins (`margin.rs`), the plan
//! types (`schedule.rs`), admission control (`admission.rs`); the model, the
//! cost model, each planner, reports, the planner table and the paper's
//! simulation in the public modules below.
//!
//! Typical use: `mainstream plan` builds a [`Problem`] from the configuration
//! (budget = cores * 1000, segment costs in ms/frame from the device profile,
//! [`Units::Physical`], [`FpsGrid::Fine`]), calls
//! [`report::compare`] with [`Strategy::Auto`] and prints
//! [`report::render_text`] or [`report::render_json`]. The service compiles a
//! [`table::PlannerTable`] whenever the apps change, keeps its bytes in the
//! state directory and calls [`table::PlannerTable::evaluate`] at boot and on
//! every budget change. `mainstream simulate` prints
//! [`simulate::render_text`] (or `render_json`) of [`simulate::run`] over
//! [`simulate::suite`].

mod admission;
mod compiled;
pub mod cost;
mod dispatch;
pub mod event_f1;
pub mod exact;
mod fallback;
pub mod greedy;
pub(crate) mod json;
mod margin;
pub mod paper;
mod problem;
pub mod report;
mod schedule;
pub mod simulate;
pub mod table;

pub use admission::{admit, Admission, RejectReason, Rejection};
pub(crate) use compiled::{build_opts, grid_for, CApp, CStream, Compiled, Opt};
pub use dispatch::plan;
pub use fallback::Fallback;
pub use margin::gain_z;
pub(crate) use margin::point_margins;
pub use problem::*;
pub use schedule::{Plan, PlannedApp};
pub(crate) use schedule::{PlannedTree, StemSegment};

#[cfg(test)]
mod tests;
