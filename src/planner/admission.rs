//! Admission control: which apps the budget can give at least their `min_f1`,
//! and what budget would fit the ones turned away.

use super::{cost, exact, Compiled, Problem, Strategy};
use crate::error::Result;
use serde::{Deserialize, Serialize};

/// Why an app was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum RejectReason {
    /// No branch point and fps reaches `min_f1`, at any budget; `best_f1` is
    /// the best the app can do.
    Unreachable {
        /// The app's best possible F1.
        best_f1: f64,
    },
    /// The apps admitted before it leave too little budget; `budget_needed` is
    /// the smallest budget that fits them and this app at their `min_f1`.
    OverBudget {
        /// Smallest sufficient budget.
        budget_needed: f64,
    },
}

/// An app admission control turned away.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    /// Index into [`Problem::apps`].
    pub app: usize,
    /// The app's name.
    pub name: String,
    /// Why.
    pub reason: RejectReason,
}

/// The outcome of admission control ([`admit`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Admission {
    /// Admitted apps (indices into [`Problem::apps`]), in priority order.
    pub admitted: Vec<usize>,
    /// Apps turned away, in priority order.
    pub rejected: Vec<Rejection>,
    /// The budget.
    pub budget: f64,
    /// Smallest budget giving every app its `min_f1` (`None` if some app can
    /// never reach it).
    pub budget_for_all: Option<f64>,
    /// Cheapest cost of the admitted apps at their `min_f1`.
    pub admitted_cost: f64,
}

/// Admission control: admits apps in priority order while the budget can give
/// every admitted app at least its `min_f1`, and says for each rejected app
/// what budget would have fitted it.
pub fn admit(problem: &Problem) -> Result<Admission> {
    problem.validate()?;
    let c = Compiled::from_problem(problem);
    c.admit()
}

impl Compiled {
    /// Admission control (see [`admit`]).
    pub(crate) fn admit(&self) -> Result<Admission> {
        let shared = self.for_strategy(Strategy::Exact);
        let cm = shared.with_min_f1();
        let mut admitted: Vec<usize> = Vec::new();
        let mut rejected = Vec::new();
        let mut admitted_cost = 0.0;
        let mut all_reachable = true;
        for i in 0..cm.apps.len() {
            if cm.apps[i].opts.is_empty() {
                all_reachable = false;
                let best_f1 = shared.apps[i]
                    .opts
                    .iter()
                    .map(|o| o.pred)
                    .fold(0.0, f64::max);
                rejected.push(Rejection {
                    app: i,
                    name: cm.apps[i].name.clone(),
                    reason: RejectReason::Unreachable { best_f1 },
                });
                continue;
            }
            let mut trial = admitted.clone();
            trial.push(i);
            let sub = cm.subset(&trial);
            let cost = exact::min_cost(&sub, None, exact::DEFAULT_WORK_LIMIT)?
                .map_or(f64::INFINITY, |(c, _)| c);
            if cost::fits(cost, cm.budget) {
                admitted = trial;
                admitted_cost = cost;
            } else {
                rejected.push(Rejection {
                    app: i,
                    name: cm.apps[i].name.clone(),
                    reason: RejectReason::OverBudget {
                        budget_needed: cost,
                    },
                });
            }
        }
        let budget_for_all = if all_reachable {
            exact::min_cost(&cm, None, exact::DEFAULT_WORK_LIMIT)?.map(|(c, _)| c)
        } else {
            None
        };
        Ok(Admission {
            admitted,
            rejected,
            budget: cm.budget,
            budget_for_all,
            admitted_cost,
        })
    }
}
