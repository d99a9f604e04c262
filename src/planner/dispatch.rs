//! Strategy dispatch: which planner runs for a [`Strategy`], on which options.

use super::{
    cost, exact, greedy, BaselineFps, Compiled, Plan, Problem, Strategy, AUTO_EXACT_MAX_APPS,
};
use crate::error::Result;

/// Plans `problem` with `strategy`.
pub fn plan(problem: &Problem, strategy: Strategy) -> Result<Plan> {
    problem.validate()?;
    let c = Compiled::from_problem(problem);
    c.plan(strategy)
}

impl Compiled {
    /// Runs a planner on its own.
    pub(super) fn plan_alone(&self, strategy: Strategy) -> Result<Plan> {
        let c = self.for_strategy(strategy);
        if c.apps.is_empty() {
            return Ok(c.build_plan(strategy, &[], true));
        }
        match strategy {
            Strategy::Greedy
            | Strategy::MaxSharing(BaselineFps::Greedy)
            | Strategy::NoSharing(BaselineFps::Greedy) => {
                let choice = greedy::greedy(&c);
                let feasible = cost::fits(c.cost_of(&choice), c.budget);
                Ok(c.build_plan(strategy, &choice, feasible))
            }
            Strategy::MaxSharing(BaselineFps::Uniform)
            | Strategy::NoSharing(BaselineFps::Uniform) => {
                let (choice, feasible) = greedy::uniform(&c);
                Ok(c.build_plan(strategy, &choice, feasible))
            }
            Strategy::Exact
            | Strategy::MaxSharing(BaselineFps::Exact)
            | Strategy::NoSharing(BaselineFps::Exact) => {
                self.plan_exact(&c, strategy, exact::DEFAULT_WORK_LIMIT)
            }
            Strategy::MaxMin => {
                let cm = c.with_min_f1();
                match exact::max_min(&cm, exact::DEFAULT_WORK_LIMIT)? {
                    Some(choice) => Ok(cm.build_plan(strategy, &choice, true)),
                    None => self.infeasible_plan(&cm, strategy),
                }
            }
            Strategy::Auto => {
                if c.apps.len() <= AUTO_EXACT_MAX_APPS {
                    match self.plan_exact(&c, Strategy::Exact, exact::AUTO_WORK_LIMIT) {
                        Ok(p) => return Ok(p),
                        Err(e) if e.kind() == crate::ErrorKind::Unsupported => {}
                        Err(e) => return Err(e),
                    }
                }
                self.plan_heuristic(&c, Strategy::Heuristic)
            }
            Strategy::Heuristic => self.plan_heuristic(&c, strategy),
        }
    }

    fn plan_heuristic(&self, c: &Compiled, strategy: Strategy) -> Result<Plan> {
        let cm = c.with_min_f1();
        match cm.best_seed() {
            Some(choice) => Ok(cm.build_plan(strategy, &choice, true)),
            None => self.infeasible_plan(&cm, strategy),
        }
    }

    fn plan_exact(&self, c: &Compiled, strategy: Strategy, work_limit: u64) -> Result<Plan> {
        let cm = c.with_min_f1();
        let seed = cm.best_seed();
        match exact::maximise(&cm, seed.as_deref(), work_limit)? {
            Some(choice) => Ok(cm.build_plan(strategy, &choice, true)),
            None => self.infeasible_plan(&cm, strategy),
        }
    }

    /// The cheapest schedule meeting the apps' `min_f1` (feasible only if it
    /// fits the budget); if some app cannot reach its `min_f1` at all, the
    /// cheapest schedule of the strategy's options, marked infeasible.
    fn infeasible_plan(&self, cm: &Compiled, strategy: Strategy) -> Result<Plan> {
        let reachable = cm.apps.iter().all(|a| !a.opts.is_empty());
        let c = if reachable {
            cm.clone()
        } else {
            self.for_strategy(strategy)
        };
        let choice = exact::min_cost(&c, None, exact::DEFAULT_WORK_LIMIT)?
            .map(|(_, ch)| ch)
            .unwrap_or_default();
        let feasible =
            reachable && choice.len() == c.apps.len() && cost::fits(c.cost_of(&choice), c.budget);
        Ok(c.build_plan(strategy, &choice, feasible))
    }
}
