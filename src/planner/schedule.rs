//! What a planner returns: per app a branch point and a frame rate with its
//! predictions, and the shared stem tree of every stream.

use super::{Fallback, Strategy};
use serde::{Deserialize, Serialize};

/// One app's part of a plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedApp {
    /// Index into [`Problem::apps`](super::Problem::apps).
    pub app: usize,
    /// The app's name.
    pub name: String,
    /// Index into [`Problem::streams`](super::Problem::streams).
    pub stream: usize,
    /// Chosen branch point (number of shared segments).
    pub branch: usize,
    /// Chosen frame rate.
    pub fps: f64,
    /// Predicted event recall.
    pub recall: f64,
    /// Predicted event precision.
    pub precision: f64,
    /// Predicted event F1.
    pub f1: f64,
    /// Cost of the app's own branch (segments `branch..`) at its fps.
    pub branch_cost: f64,
}

/// A run of shared segments `[start, end)` executed once per frame at `fps`
/// for every app in `apps` (their branch points are all `>= end`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct StemSegment {
    /// First segment.
    pub start: usize,
    /// One past the last segment.
    pub end: usize,
    /// Frame rate: the highest fps of the apps sharing it.
    pub fps: f64,
    /// Cost of running it.
    pub cost: f64,
    /// Apps (indices into [`Problem::apps`](super::Problem::apps)) sharing it.
    pub apps: Vec<usize>,
}

/// The tree of one stream: a stem of shared segments (deepest last) and each
/// app's own branch from its branch point to the end of the network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct PlannedTree {
    /// Index into [`Problem::streams`](super::Problem::streams).
    pub stream: usize,
    /// Stream name.
    pub name: String,
    /// Stream frame rate.
    pub stream_fps: f64,
    /// Shared segments, shallowest first.
    pub stem: Vec<StemSegment>,
    /// Total cost of the stem.
    pub stem_cost: f64,
    /// Total cost of this stream's tree (stem and branches).
    pub cost: f64,
}

/// A planner's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The planner that produced it ([`Strategy::Auto`] reports the one it ran).
    pub strategy: Strategy,
    /// Whether the plan's cost is within the budget (and, for the exact
    /// planners, every app reaches its `min_f1`). An infeasible plan holds the
    /// cheapest schedule the planner found.
    pub feasible: bool,
    /// Per app, in problem order.
    pub apps: Vec<PlannedApp>,
    /// One tree per stream that has apps.
    pub(crate) trees: Vec<PlannedTree>,
    /// Total cost (all streams).
    pub cost: f64,
    /// The budget.
    pub budget: f64,
    /// Mean predicted F1 (0 with no apps).
    pub mean_f1: f64,
    /// Smallest predicted F1 (0 with no apps).
    pub min_f1: f64,
    /// Set when a planner that weighs sharing runs a baseline's plan instead
    /// of its own (see [`Fallback`]); `strategy` still names that planner.
    #[serde(default)]
    pub fallback: Option<Fallback>,
}
