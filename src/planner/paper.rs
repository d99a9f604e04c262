//! The Mainstream paper's reference data, embedded in the binary.
//!
//! Jiang et al., "Mainstream: Dynamic Stem-Sharing for Multi-Tenant Video
//! Processing", USENIX ATC 2018 (see `data/paper/README.md`): the nine
//! M-Package curves of its evaluation (MobileNet-224, 16 branch points each),
//! the normalised per-layer cost profile of MobileNet-224 on an Intel NUC
//! (85 layers, slowest = 1, sum 20.81), the authors' unit-test vector and
//! the paper's simulation results that [`simulate`](super::simulate)
//! reproduces.

use super::CurvePoint;
#[cfg(test)]
use super::{AppSpec, EventParams, FpsGrid, Problem, StreamSpec, Units};
use crate::error::Result;
use serde::{Deserialize, Serialize};

const CURVES_CSV: &str = include_str!("../../data/paper/paper-mobilenets-curves.csv");
const COSTS_CSV: &str = include_str!("../../data/paper/paper-mobilenets-layer-costs.csv");

/// Stream rate of the paper's simulated workloads.
pub(crate) const STREAM_FPS: f64 = 10.0;

/// One of the paper's M-Package curves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaperCurve {
    /// App name (`bus`, `cars`, ...).
    pub name: String,
    /// Points sorted by branch point (number of frozen layers), as published.
    pub points: Vec<CurvePoint>,
}

fn field<T: std::str::FromStr>(s: Option<&str>, line: usize, what: &str) -> Result<T> {
    s.and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| crate::err!(Internal, "embedded paper data, line {line}: bad {what}"))
}

/// MobileNet-224's normalised per-layer costs (85 layers).
pub fn layer_costs() -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for (i, line) in COSTS_CSV.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let mut f = line.split(',');
        let layer: usize = field(f.next(), i + 1, "layer")?;
        if layer != out.len() {
            crate::bail!(
                Internal,
                "embedded paper data, line {}: layer {layer} out of order",
                i + 1
            );
        }
        out.push(field(f.next(), i + 1, "cost")?);
    }
    Ok(out)
}

/// The nine published curves, in file order of first appearance.
pub fn curves() -> Result<Vec<PaperCurve>> {
    let mut out: Vec<PaperCurve> = Vec::new();
    for (i, line) in CURVES_CSV.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let mut f = line.split(',');
        let name = f
            .next()
            .map(str::trim)
            .ok_or_else(|| crate::err!(Internal, "embedded paper data, line {}: no app", i + 1))?;
        let point = CurvePoint {
            branch: field(f.next(), i + 1, "num_frozen")?,
            accuracy: field(f.next(), i + 1, "accuracy")?,
            fpr: field(f.next(), i + 1, "false-positive rate")?,
            gain_sd: 0.0,
            rate_sd: (0.0, 0.0),
        };
        match out.iter_mut().find(|c| c.name == name) {
            Some(c) => c.points.push(point),
            None => out.push(PaperCurve {
                name: name.to_string(),
                points: vec![point],
            }),
        }
    }
    for c in &mut out {
        c.points.sort_by_key(|p| p.branch);
    }
    Ok(out)
}

/// Makes a curve monotone from the most-frozen point to the least-frozen one:
/// a less-frozen point that is not more accurate than its more-frozen
/// neighbour (after that neighbour's own adjustment) is replaced by that
/// neighbour's accuracy and false-positive rate. Input in any order; output
/// sorted by branch point.
pub fn monotone(points: &[CurvePoint]) -> Vec<CurvePoint> {
    let mut pts = points.to_vec();
    pts.sort_by_key(|p| p.branch);
    for k in (0..pts.len().saturating_sub(1)).rev() {
        let deeper = pts[k + 1];
        if pts[k].accuracy <= deeper.accuracy {
            pts[k].accuracy = deeper.accuracy;
            pts[k].fpr = deeper.fpr;
        }
    }
    pts
}

/// The authors' unit-test vector: 3 apps, 41 layers of cost 1, stream 15 fps,
/// budget 400, branch points {1, 10, 21, 30, 40}, FPR 0.1, L = 5000 ms,
/// phi = 0.3, c = 0.1, code-compatible units. Their greedy reaches a mean loss
/// (1 - F1) of 0.129.
#[cfg(test)]
pub(crate) fn test_vector() -> Problem {
    let branches = [1usize, 10, 21, 30, 40];
    let accs: [[f64; 5]; 3] = [
        [1.0, 0.8, 0.6, 0.6, 0.2],
        [1.0, 1.0, 0.8, 0.6, 0.1],
        [1.0, 1.0, 1.0, 0.8, 0.6],
    ];
    Problem {
        segment_costs: vec![1.0; 41],
        streams: vec![StreamSpec {
            name: "stream".into(),
            fps: 15.0,
            frame_cost: 0.0,
        }],
        apps: accs
            .iter()
            .enumerate()
            .map(|(i, acc)| AppSpec {
                name: format!("app{}", i + 1),
                stream: 0,
                curve: branches
                    .iter()
                    .zip(acc)
                    .map(|(&branch, &accuracy)| CurvePoint {
                        branch,
                        accuracy,
                        fpr: 0.1,
                        gain_sd: 0.0,
                        rate_sd: (0.0, 0.0),
                    })
                    .collect(),
                event: EventParams {
                    length_ms: 5000.0,
                    lengths: Default::default(),
                    frequency: 0.3,
                    correlation: 0.1,
                    voting: 1,
                },
                min_f1: 0.0,
            })
            .collect(),
        budget: 400.0,
        units: Units::PaperCompat,
        fps_grid: FpsGrid::Paper,
        share_margin: 0.0,
    }
}

/// One row of the paper's simulation results (mean event F1).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaperRow {
    /// Number of apps.
    pub apps: usize,
    /// Budget (normalised units; 300 is about one NUC).
    pub budget: f64,
    /// Mainstream (greedy).
    pub mainstream: f64,
    /// Max-Sharing baseline.
    pub max_sharing: f64,
    /// No-Sharing baseline.
    pub no_sharing: f64,
}

const fn row(
    apps: usize,
    budget: f64,
    mainstream: f64,
    max_sharing: f64,
    no_sharing: f64,
) -> PaperRow {
    PaperRow {
        apps,
        budget,
        mainstream,
        max_sharing,
        no_sharing,
    }
}

/// The paper's results: budget 150 for 2, 5, 10, 25 apps; 3 apps at budgets
/// 50..300.
pub(crate) const RESULTS: [PaperRow; 10] = [
    row(2, 150.0, 0.813, 0.552, 0.588),
    row(5, 150.0, 0.789, 0.550, 0.146),
    row(10, 150.0, 0.780, 0.554, 0.049),
    row(25, 150.0, 0.701, 0.561, 0.008),
    row(3, 50.0, 0.306, 0.177, 0.062),
    row(3, 100.0, 0.688, 0.418, 0.141),
    row(3, 150.0, 0.798, 0.548, 0.365),
    row(3, 200.0, 0.828, 0.579, 0.502),
    row(3, 250.0, 0.837, 0.591, 0.660),
    row(3, 300.0, 0.838, 0.591, 0.734),
];

/// The paper's result for (apps, budget), if it reports one.
pub fn reference(apps: usize, budget: f64) -> Option<PaperRow> {
    RESULTS
        .iter()
        .copied()
        .find(|r| r.apps == apps && r.budget == budget)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_cost_profile_has_85_layers_summing_to_20_81() {
        let c = layer_costs().unwrap();
        assert_eq!(c.len(), 85);
        let total: f64 = c.iter().sum();
        assert!((total - 20.81).abs() < 0.01, "{total}");
        assert_eq!(c.iter().copied().fold(0.0, f64::max), 1.0);
    }

    #[test]
    fn embedded_curves_are_the_nine_apps_with_sixteen_points() {
        let c = curves().unwrap();
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "bus",
                "cars",
                "cats",
                "flowers",
                "pedestrian",
                "redcar",
                "schoolbus",
                "scramble",
                "trains"
            ]
        );
        for curve in &c {
            let b: Vec<usize> = curve.points.iter().map(|p| p.branch).collect();
            assert_eq!(b[0], 0);
            assert_eq!(b[b.len() - 1], 84);
            assert_eq!(b.len(), 16, "{}", curve.name);
        }
    }

    #[test]
    fn monotone_curves_never_lose_accuracy_when_unfreezing() {
        for curve in curves().unwrap() {
            let m = monotone(&curve.points);
            for w in m.windows(2) {
                assert!(w[0].accuracy >= w[1].accuracy, "{}", curve.name);
            }
            // The most-frozen point is kept as published.
            assert_eq!(m.last(), curve.points.last());
        }
        // cats at 39 frozen (0.7620) is below 33 frozen (0.7957): 33 keeps its value
        // and every shallower point takes 33's values.
        let cats = curves()
            .unwrap()
            .into_iter()
            .find(|c| c.name == "cats")
            .unwrap();
        let m = monotone(&cats.points);
        let at = |b: usize| m.iter().find(|p| p.branch == b).unwrap();
        assert_eq!((at(33).accuracy, at(33).fpr), (0.7957, 0.0825));
        assert_eq!((at(0).accuracy, at(0).fpr), (0.7957, 0.0825));
    }

    #[test]
    fn test_vector_is_valid() {
        test_vector().validate().unwrap();
    }
}
