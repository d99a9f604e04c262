//! The fallback rule: a planner that weighs sharing runs a baseline's plan
//! where its own is not predicted better by more than its heads' doubt.

use super::{BaselineFps, Compiled, Plan, Strategy};
use crate::error::Result;
use serde::{Deserialize, Serialize};

/// Why a planner that weighs sharing (greedy, exact, heuristic, auto) runs
/// the No-Sharing or Max-Sharing plan instead of its own: its own plan is not
/// predicted better than that baseline's by more than the calibration can
/// vouch for where the two plans put apps on different heads.
///
/// The doubt is the root-sum-square, over the apps whose head differs, of
/// both heads' sharing margins (`point_margins`: 0 for an app's own head,
/// `max(share_margin, gain_z(m) * gain_sd)` for a shared one), divided by
/// the number of apps like the advantage. Frame rates carry no doubt: the
/// calibration measures none for them. A plan that already is a baseline's
/// (every app on the same head at the same frame rate) is kept; of several
/// baselines within doubt the one predicted best runs. With `share_margin` 0
/// and no `gain_sd` (the paper's planner) there is no doubt and no fallback.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fallback {
    /// The baseline whose plan runs.
    pub baseline: Strategy,
    /// The planner's own plan's predicted mean F1 minus the baseline's.
    pub advantage: f64,
    /// How large an advantage the heads' margins leave in doubt (mean F1).
    pub doubt: f64,
}

impl std::fmt::Display for Fallback {
    /// "the max-sharing plan: its own was predicted only +0.026 mean F1
    /// better, within the 0.028 its heads' calibration leaves in doubt"
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the {} plan: its own was predicted only {:+.3} mean F1 better, within the {:.3} its heads' \
             calibration leaves in doubt",
            self.baseline.name(),
            self.advantage,
            self.doubt
        )
    }
}

impl Compiled {
    /// Runs a planner; one that weighs sharing runs a baseline's plan where
    /// its own is not predicted better by more than the doubt ([`Fallback`]).
    pub(crate) fn plan(&self, strategy: Strategy) -> Result<Plan> {
        let own = self.plan_alone(strategy)?;
        let weighs_sharing = matches!(
            strategy,
            Strategy::Greedy | Strategy::Exact | Strategy::Heuristic | Strategy::Auto
        );
        if !weighs_sharing || !own.feasible {
            return Ok(own);
        }
        let baselines = [
            Strategy::NoSharing(BaselineFps::Greedy),
            Strategy::MaxSharing(BaselineFps::Greedy),
        ]
        .map(|s| self.plan_alone(s).map(|p| (s, p)));
        let mut best: Option<(Plan, Fallback)> = None;
        for b in baselines {
            let (baseline, b) = b?;
            if same_schedule(&own, &b) {
                // Already a baseline's plan: nothing to hedge.
                return Ok(own);
            }
            let Some(fb) = self.doubtful_advantage(&own, &b, baseline) else {
                continue;
            };
            if best.as_ref().is_none_or(|(q, _)| b.mean_f1 > q.mean_f1) {
                best = Some((b, fb));
            }
        }
        Ok(match best {
            Some((b, fb)) => Plan {
                strategy: own.strategy,
                fallback: Some(fb),
                ..b
            },
            None => own,
        })
    }

    /// The [`Fallback`] to `baseline`'s plan `b` if `own` is not predicted
    /// better than `b` by more than the doubt and `b` may run (it fits the
    /// budget and gives every app at least its `min_f1`).
    fn doubtful_advantage(&self, own: &Plan, b: &Plan, baseline: Strategy) -> Option<Fallback> {
        let n = own.apps.len();
        if !b.feasible || n == 0 || b.apps.len() != n {
            return None;
        }
        let mut advantage = 0.0;
        let mut doubt2 = 0.0;
        for (x, y) in own.apps.iter().zip(&b.apps) {
            let a = self.apps.get(x.app)?;
            if y.app != x.app || y.f1 < a.min_f1 {
                return None;
            }
            advantage += x.f1 - y.f1;
            if x.branch != y.branch {
                doubt2 += self.margin_at(x.app, x.branch).powi(2)
                    + self.margin_at(y.app, y.branch).powi(2);
            }
        }
        let (advantage, doubt) = (advantage / n as f64, doubt2.sqrt() / n as f64);
        (doubt > 0.0 && advantage < doubt).then_some(Fallback {
            baseline,
            advantage,
            doubt,
        })
    }

    /// The sharing margin of app `app`'s head at branch point `branch`.
    fn margin_at(&self, app: usize, branch: usize) -> f64 {
        let a = &self.apps[app];
        let levels = &self.streams[a.stream].levels;
        a.points
            .iter()
            .zip(&a.margins)
            .find(|((level, _, _), _)| levels.get(*level as usize) == Some(&branch))
            .map_or(0.0, |(_, &m)| m)
    }
}

/// Whether two plans run every app at the same branch point and frame rate.
pub(crate) fn same_schedule(a: &Plan, b: &Plan) -> bool {
    a.apps.len() == b.apps.len()
        && a.apps
            .iter()
            .zip(&b.apps)
            .all(|(x, y)| x.app == y.app && x.branch == y.branch && x.fps == y.fps)
}
