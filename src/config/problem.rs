//! The planning problem a configuration poses: its enabled apps, cameras and
//! device settings in the planner's terms.

use super::Config;
use crate::planner::{AppSpec, CurvePoint, FpsGrid, Problem, StreamSpec, Units};

impl Config {
    /// The planning problem of the enabled apps: their curves and event
    /// parameters, the cameras' rates, the segment costs (`segment_ms`, a
    /// cost profile's), each camera's cost per analysed frame outside the
    /// networks (`frame_ms`, by camera index; a camera past its end costs 0)
    /// and a budget of `budget_cores`.
    pub fn planning_problem(
        &self,
        segment_ms: &[f64],
        frame_ms: &[f64],
        budget_cores: f64,
    ) -> Problem {
        let cfg = self;
        Problem {
            segment_costs: segment_ms.to_vec(),
            streams: cfg
                .cameras
                .iter()
                .enumerate()
                .map(|(i, c)| StreamSpec {
                    name: c.name.clone(),
                    fps: c.fps,
                    frame_cost: frame_ms.get(i).copied().unwrap_or(0.0),
                })
                .collect(),
            apps: cfg
                .enabled_apps()
                .map(|a| AppSpec {
                    name: a.name.clone(),
                    stream: a.camera,
                    curve: a
                        .package
                        .heads
                        .iter()
                        .map(|h| CurvePoint {
                            branch: h.branch,
                            accuracy: h.accuracy,
                            fpr: h.fpr,
                            gain_sd: h.gain_sd,
                            rate_sd: h.rate_sd,
                        })
                        .collect(),
                    event: crate::planner::EventParams {
                        length_ms: a.event.length_ms,
                        lengths: a.event.lengths,
                        frequency: a.event.frequency,
                        correlation: a.event.correlation,
                        voting: a.voting,
                    },
                    min_f1: a.min_f1,
                })
                .collect(),
            // Costs are ms per frame, so the budget is core-ms per second.
            budget: budget_cores * 1000.0,
            units: Units::Physical,
            fps_grid: FpsGrid::Fine,
            share_margin: cfg.device.share_margin,
        }
    }
}
