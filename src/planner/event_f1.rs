//! The event F1 model: how well an app detects events at a given per-frame
//! accuracy, false-positive rate and frame rate.
//!
//! This is the model of MAINSTREAM.md ("Event F1 model"), restated:
//!
//! ```text
//! s  = F / f                       stride in stream frames (s >= 1)
//! d  = (L / 1000) * F              event length in stream frames   (Units::Physical)
//! d  = (L / 1000) * f              the authors' code               (Units::PaperCompat)
//! cp = (1 - p) + p * c             P(miss the next sample | missed this one)
//! MissRate(p, d, s):
//!     d < s : 1 - (d / s) * p
//!     else  : m = d mod s, r1 = floor(d/s), r2 = ceil(d/s)
//!             ((s - m)/s) (1 - p) cp^(r1-1) + (m/s) (1 - p) cp^(r2-1)
//! R  = 1 - MissRate(p, d, s)       recall; with event length quantiles
//!                                   d_1..d_K (windows in which the scorer
//!                                   accepts a detection), the mean of
//!                                   1 - MissRate(p, d_k, s)
//! NR = 1 - MissRate(q, d, s)       a non-event window fires
//! P  = phi R / (phi R + (1 - phi) NR)   (1 if the denominator is 0)
//! F1 = 2 / (1/R + 1/P)             (0 if R or P is within 1e-8 of 0)
//! ```
//!
//! [`Units::PaperCompat`] reproduces the authors' code, which counts the event
//! in *app* frames (`d = L f / 1000`) while still striding by `F / f`, so an
//! event holds only `L f^2 / (1000 F)` samples. It exists only to reproduce
//! the paper's figures; the product uses [`Units::Physical`].
//!
//! **X-voting** (`voting = X >= 2`): an event is reported only after X
//! consecutive positive samples. The samples inside the event form a Markov
//! chain: the first is positive with probability p; after a positive the next
//! is positive with p + (1 - p) c; after a negative, with p. The event holds
//! `floor(d/s)` or `ceil(d/s)` samples with the weights above. False triggers
//! use the same chain with q. `voting = 1` (no voting) is the plain model
//! above, whose correlation acts on misses instead; the two coincide for c = 0.
//! Chains longer than [`MATRIX_POWER_FROM`] samples are evaluated by squaring
//! the X-by-X transition matrix, so long events stay cheap.
//!
//! All functions are total: inputs are clamped into their domains (the
//! planner validates them first), and every output is finite.

use super::{EventParams, Units};
use serde::{Deserialize, Serialize};

/// Largest X the voting model accepts (the configuration allows 1..=16).
pub(crate) const MAX_VOTING: u32 = 16;
/// Chains with at least this many samples are evaluated by matrix powers.
const MATRIX_POWER_FROM: u64 = 64;
/// Recall or precision at or below this counts as zero for F1 (as the
/// authors' `np.isclose(x, 0)`).
pub(crate) const ZERO: f64 = 1e-8;

/// The model's prediction for one app at one (branch point, fps).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Prediction {
    /// Fraction of events detected.
    pub recall: f64,
    /// Fraction of reported events that are real.
    pub precision: f64,
    /// Harmonic mean of recall and precision.
    pub f1: f64,
}

fn unit(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

/// The plain miss rate: probability that an event of `d` stream frames, sampled
/// every `s` frames at a random phase, yields no positive sample when each sample
/// is positive with probability `p` and misses are correlated by `c`.
pub(crate) fn miss_rate(p: f64, d: f64, s: f64, c: f64) -> f64 {
    let (p, c) = (unit(p), unit(c));
    let s = if s.is_finite() && s >= 1.0 { s } else { 1.0 };
    let d = if d.is_finite() && d > 0.0 { d } else { 0.0 };
    if d < s {
        return unit(1.0 - (d / s) * p);
    }
    let cp = (1.0 - p) + p * c;
    let m = d % s;
    let r1 = (d / s).floor();
    let r2 = (d / s).ceil();
    let miss =
        ((s - m) / s) * (1.0 - p) * cp.powf(r1 - 1.0) + (m / s) * (1.0 - p) * cp.powf(r2 - 1.0);
    unit(miss)
}

/// Probability that `n` samples of the voting chain contain no run of `x`
/// consecutive positives. `p` = P(positive) for the first sample and after a
/// negative; `a` = P(positive) after a positive.
fn no_run(p: f64, a: f64, x: usize, n: u64) -> f64 {
    debug_assert!((1..=MAX_VOTING as usize).contains(&x));
    if n < MATRIX_POWER_FROM {
        // dist[r] = P(current run length r, not yet detected).
        let mut dist = [0.0f64; MAX_VOTING as usize];
        let mut next = [0.0f64; MAX_VOTING as usize];
        dist[0] = 1.0;
        for _ in 0..n {
            next[..x].fill(0.0);
            for r in 0..x {
                let pos = if r == 0 { p } else { a };
                next[0] += dist[r] * (1.0 - pos);
                if r + 1 < x {
                    next[r + 1] += dist[r] * pos;
                }
            }
            dist[..x].copy_from_slice(&next[..x]);
        }
        return unit(dist[..x].iter().sum());
    }
    // Row vector times T^n, T[r][r'] the transition among undetected states.
    let mut t = Mat::zero(x);
    for r in 0..x {
        let pos = if r == 0 { p } else { a };
        t.m[r][0] += 1.0 - pos;
        if r + 1 < x {
            t.m[r][r + 1] += pos;
        }
    }
    let mut acc = Mat::identity(x);
    let mut k = n;
    while k > 0 {
        if k & 1 == 1 {
            acc = acc.mul(&t);
        }
        t = t.mul(&t);
        k >>= 1;
    }
    unit(acc.m[0][..x].iter().sum())
}

#[derive(Clone, Copy)]
struct Mat {
    n: usize,
    m: [[f64; MAX_VOTING as usize]; MAX_VOTING as usize],
}

impl Mat {
    fn zero(n: usize) -> Mat {
        Mat {
            n,
            m: [[0.0; MAX_VOTING as usize]; MAX_VOTING as usize],
        }
    }
    fn identity(n: usize) -> Mat {
        let mut z = Mat::zero(n);
        for i in 0..n {
            z.m[i][i] = 1.0;
        }
        z
    }
    fn mul(&self, o: &Mat) -> Mat {
        let mut z = Mat::zero(self.n);
        for i in 0..self.n {
            for k in 0..self.n {
                let v = self.m[i][k];
                if v == 0.0 {
                    continue;
                }
                for j in 0..self.n {
                    z.m[i][j] += v * o.m[k][j];
                }
            }
        }
        z
    }
}

/// The X-voting miss rate: probability that the event yields no run of `x`
/// consecutive positive samples (see the module docs). `x <= 1` is
/// [`miss_rate`].
pub(crate) fn miss_rate_voting(p: f64, d: f64, s: f64, c: f64, x: u32) -> f64 {
    if x <= 1 {
        return miss_rate(p, d, s, c);
    }
    let (p, c) = (unit(p), unit(c));
    let x = x.min(MAX_VOTING) as usize;
    let s = if s.is_finite() && s >= 1.0 { s } else { 1.0 };
    let d = if d.is_finite() && d > 0.0 { d } else { 0.0 };
    let a = p + (1.0 - p) * c;
    let m = d % s;
    // Sample counts are bounded by validated inputs (L <= 1 h, F <= 1000 fps);
    // the saturating cast only guards against unvalidated callers.
    let r1 = (d / s).floor().min(u64::MAX as f64) as u64;
    let r2 = (d / s).ceil().min(u64::MAX as f64) as u64;
    let w2 = m / s;
    let miss1 = no_run(p, a, x, r1);
    let miss2 = if r2 == r1 { miss1 } else { no_run(p, a, x, r2) };
    unit((1.0 - w2) * miss1 + w2 * miss2)
}

/// The stream rate the model counts with (1 if not a positive number).
fn stream_rate(stream_fps: f64) -> f64 {
    if stream_fps.is_finite() && stream_fps > 0.0 {
        stream_fps
    } else {
        1.0
    }
}

/// Event length in stream frames and stride for `units`.
pub(crate) fn geometry(
    event: &EventParams,
    stream_fps: f64,
    app_fps: f64,
    units: Units,
) -> (f64, f64) {
    let big_f = stream_rate(stream_fps);
    let f = if app_fps.is_finite() && app_fps > 0.0 {
        app_fps.min(big_f)
    } else {
        0.0
    };
    let len = if event.length_ms.is_finite() {
        event.length_ms.max(0.0)
    } else {
        0.0
    };
    let stride = if f > 0.0 { big_f / f } else { f64::INFINITY };
    let d = match units {
        Units::Physical => len / 1000.0 * big_f,
        Units::PaperCompat => len / 1000.0 * f,
    };
    (d, stride)
}

/// Recall at stride `s`: over the event length quantiles if there are any
/// (physical units only; the paper's figures use one length), else over one
/// event of `d` stream frames.
fn recall(p: f64, event: &EventParams, d: f64, stream_fps: f64, s: f64, units: Units) -> f64 {
    let hit = |d: f64| 1.0 - miss_rate_voting(p, d, s, event.correlation, event.voting);
    let lengths = event.lengths.as_slice();
    if lengths.is_empty() || units == Units::PaperCompat {
        return unit(hit(d));
    }
    let big_f = stream_rate(stream_fps);
    let sum: f64 = lengths
        .iter()
        .map(|&ms| hit(ms.max(0.0) / 1000.0 * big_f))
        .sum();
    unit(sum / lengths.len() as f64)
}

/// Predicts recall, precision and F1 of an app whose classifier has per-frame
/// accuracy `accuracy` and false-positive rate `fpr`, sampling a `stream_fps`
/// stream at `app_fps`. `app_fps <= 0` means the app does not run (all zero).
pub(crate) fn predict(
    accuracy: f64,
    fpr: f64,
    event: &EventParams,
    stream_fps: f64,
    app_fps: f64,
    units: Units,
) -> Prediction {
    let (d, s) = geometry(event, stream_fps, app_fps, units);
    if !s.is_finite() {
        return Prediction {
            recall: 0.0,
            precision: 0.0,
            f1: 0.0,
        };
    }
    let recall = recall(accuracy, event, d, stream_fps, s, units);
    let false_fire = unit(1.0 - miss_rate_voting(fpr, d, s, event.correlation, event.voting));
    let phi = unit(event.frequency);
    let tp = phi * recall;
    let fp = (1.0 - phi) * false_fire;
    let precision = if tp + fp == 0.0 {
        1.0
    } else {
        unit(tp / (tp + fp))
    };
    let f1 = if recall <= ZERO || precision <= ZERO {
        0.0
    } else {
        unit(2.0 / (1.0 / recall + 1.0 / precision))
    };
    Prediction {
        recall,
        precision,
        f1,
    }
}

/// Predicted F1 with the rates one standard deviation (`sd` of accuracy and
/// of fpr) worse and better: the calibration's own uncertainty about
/// `predict`'s F1 (`None` when nothing was measured).
pub(crate) fn f1_band(
    accuracy: f64,
    fpr: f64,
    sd: (f64, f64),
    event: &EventParams,
    stream_fps: f64,
    app_fps: f64,
    units: Units,
) -> Option<(f64, f64)> {
    if sd.0 <= 0.0 && sd.1 <= 0.0 {
        return None;
    }
    let f1 = |a: f64, q: f64| predict(a, q, event, stream_fps, app_fps, units).f1;
    Some((
        f1(accuracy - sd.0, fpr + sd.1),
        f1(accuracy + sd.0, fpr - sd.1),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::EventLengths;

    fn ev(length_ms: f64, frequency: f64, correlation: f64, voting: u32) -> EventParams {
        EventParams {
            length_ms,
            lengths: Default::default(),
            frequency,
            correlation,
            voting,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn recall_over_length_quantiles_is_the_mean_of_each_lengths_recall() {
        // Stream 10 fps, app 1 fps (stride 10), 2-voting.
        let mut e = ev(1500.0, 0.2, 0.5, 2);
        e.lengths = EventLengths::new(&[700.0, 1500.0, 3100.0]);
        let one = |ms: f64| predict(0.8, 0.05, &ev(ms, 0.2, 0.5, 2), 10.0, 1.0, Units::Physical);
        let mixed = predict(0.8, 0.05, &e, 10.0, 1.0, Units::Physical);
        let mean = (one(700.0).recall + one(1500.0).recall + one(3100.0).recall) / 3.0;
        assert!(close(mixed.recall, mean), "{} vs {mean}", mixed.recall);
        // False triggers keep the mean length's windows, so precision moves
        // with recall alone.
        let tp = 0.2 * mixed.recall;
        let fp = 0.8 * (1.0 - miss_rate_voting(0.05, 15.0, 10.0, 0.5, 2));
        assert!(close(mixed.precision, tp / (tp + fp)));
        // Short events that fit under one sample are missed by 2-voting,
        // long ones are not: the mixture differs from the mean length's.
        assert_eq!(one(700.0).recall, 0.0);
        assert!(mixed.recall > 0.0 && (mixed.recall - one(1500.0).recall).abs() > 0.01);
        // The paper's units ignore the quantiles.
        let paper = predict(0.8, 0.05, &e, 10.0, 1.0, Units::PaperCompat);
        let paper_one = predict(
            0.8,
            0.05,
            &ev(1500.0, 0.2, 0.5, 2),
            10.0,
            1.0,
            Units::PaperCompat,
        );
        assert_eq!(paper, paper_one);
    }

    #[test]
    fn the_calibration_band_holds_the_prediction_and_is_absent_without_a_measured_spread() {
        let e = ev(2000.0, 0.2, 0.5, 2);
        let f1 = predict(0.7, 0.1, &e, 10.0, 2.0, Units::Physical).f1;
        let (lo, hi) = f1_band(0.7, 0.1, (0.1, 0.02), &e, 10.0, 2.0, Units::Physical).unwrap();
        assert!(lo < f1 && f1 < hi, "{lo} {f1} {hi}");
        assert_eq!(
            lo,
            predict(0.6, 0.12, &e, 10.0, 2.0, Units::Physical).f1,
            "worse: lower accuracy, more false positives"
        );
        assert_eq!(
            f1_band(0.7, 0.1, (0.0, 0.0), &e, 10.0, 2.0, Units::Physical),
            None
        );
    }

    #[test]
    fn event_shorter_than_stride_is_sampled_at_most_once() {
        // d = 3, s = 10: the event is sampled with prob 0.3, then hit with p.
        assert!(close(miss_rate(0.8, 3.0, 10.0, 0.5), 1.0 - 0.3 * 0.8));
        // Correlation cannot matter with at most one sample.
        assert!(close(
            miss_rate(0.8, 3.0, 10.0, 0.0),
            miss_rate(0.8, 3.0, 10.0, 1.0)
        ));
    }

    #[test]
    fn integral_event_length_uses_one_sample_count() {
        // d/s = 3 exactly: miss = (1-p) cp^2.
        let (p, c) = (0.7, 0.2);
        let cp = (1.0 - p) + p * c;
        assert!(close(miss_rate(p, 30.0, 10.0, c), (1.0 - p) * cp * cp));
        // d = s: one sample.
        assert!(close(miss_rate(p, 10.0, 10.0, c), 1.0 - p));
    }

    #[test]
    fn fractional_event_length_mixes_floor_and_ceil_sample_counts() {
        // d/s = 2.5: half the phases see 2 samples, half see 3.
        let (p, c) = (0.6, 0.3);
        let cp = (1.0 - p) + p * c;
        let want = 0.5 * (1.0 - p) * cp + 0.5 * (1.0 - p) * cp * cp;
        assert!(close(miss_rate(p, 25.0, 10.0, c), want));
        // d/s = 1.25: weights 0.75 / 0.25.
        let want = 0.75 * (1.0 - p) + 0.25 * (1.0 - p) * cp;
        assert!(close(miss_rate(p, 12.5, 10.0, c), want));
    }

    #[test]
    fn miss_rate_is_continuous_where_the_event_reaches_one_stride() {
        let below = miss_rate(0.9, 10.0 - 1e-9, 10.0, 0.4);
        let at = miss_rate(0.9, 10.0, 10.0, 0.4);
        assert!((below - at).abs() < 1e-9);
    }

    #[test]
    fn p_zero_never_detects_and_p_one_always_detects_when_sampled() {
        assert!(close(miss_rate(0.0, 50.0, 10.0, 0.3), 1.0));
        assert!(close(miss_rate(1.0, 50.0, 10.0, 0.3), 0.0));
        assert!(close(miss_rate(1.0, 5.0, 10.0, 0.3), 0.5));
        let e = ev(1000.0, 0.5, 0.3, 1);
        let zero = predict(0.0, 0.1, &e, 10.0, 10.0, Units::Physical);
        assert_eq!((zero.recall, zero.f1), (0.0, 0.0));
        let perfect = predict(1.0, 0.0, &e, 10.0, 10.0, Units::Physical);
        assert_eq!(
            (perfect.recall, perfect.precision, perfect.f1),
            (1.0, 1.0, 1.0)
        );
    }

    #[test]
    fn full_correlation_makes_extra_samples_useless() {
        let one = miss_rate(0.7, 10.0, 10.0, 1.0);
        let many = miss_rate(0.7, 100.0, 10.0, 1.0);
        assert!(close(one, 0.3) && close(many, 0.3));
    }

    #[test]
    fn no_correlation_makes_samples_independent() {
        assert!(close(miss_rate(0.7, 40.0, 10.0, 0.0), 0.3f64.powi(4)));
    }

    #[test]
    fn phi_one_gives_perfect_precision() {
        let e = ev(500.0, 1.0, 0.2, 1);
        let pr = predict(0.6, 0.9, &e, 10.0, 5.0, Units::Physical);
        assert_eq!(pr.precision, 1.0);
        assert!(pr.f1 > 0.0 && pr.f1 < 1.0);
    }

    #[test]
    fn precision_is_one_when_nothing_ever_fires() {
        let e = ev(500.0, 0.3, 0.2, 1);
        let pr = predict(0.0, 0.0, &e, 10.0, 5.0, Units::Physical);
        assert_eq!((pr.recall, pr.precision, pr.f1), (0.0, 1.0, 0.0));
    }

    #[test]
    fn physical_units_count_samples_as_length_times_app_fps() {
        // L = 1 s, F = 30, f = 3: 3 samples per event, stride 10.
        let e = ev(1000.0, 0.5, 0.0, 1);
        let (d, s) = geometry(&e, 30.0, 3.0, Units::Physical);
        assert!(close(d, 30.0) && close(s, 10.0));
        // The code-compatible variant counts d in app frames: 0.3 samples.
        let (d, s) = geometry(&e, 30.0, 3.0, Units::PaperCompat);
        assert!(close(d, 3.0) && close(s, 10.0));
    }

    #[test]
    fn app_fps_zero_predicts_nothing_and_stays_finite() {
        let e = ev(1000.0, 0.5, 0.2, 1);
        let pr = predict(0.9, 0.1, &e, 10.0, 0.0, Units::Physical);
        assert_eq!((pr.recall, pr.precision, pr.f1), (0.0, 0.0, 0.0));
        let pr = predict(f64::NAN, f64::INFINITY, &e, f64::NAN, 3.0, Units::Physical);
        assert!(pr.recall.is_finite() && pr.precision.is_finite() && pr.f1.is_finite());
    }

    fn voting_monte_carlo(p: f64, a: f64, x: usize, n: usize) -> f64 {
        // Exhaustive enumeration over all 2^n sample outcomes.
        let mut miss = 0.0;
        for bits in 0u32..(1 << n) {
            let mut prob = 1.0;
            let mut prev = false;
            let mut run = 0;
            let mut hit = false;
            for i in 0..n {
                let pos_p = if i > 0 && prev { a } else { p };
                let pos = bits >> i & 1 == 1;
                prob *= if pos { pos_p } else { 1.0 - pos_p };
                run = if pos { run + 1 } else { 0 };
                hit |= run >= x;
                prev = pos;
            }
            if !hit {
                miss += prob;
            }
        }
        miss
    }

    #[test]
    fn voting_chain_matches_enumeration_of_all_sample_outcomes() {
        for &(p, c, x, n) in &[
            (0.7, 0.2, 2usize, 5usize),
            (0.4, 0.6, 3, 8),
            (0.9, 0.0, 2, 1),
        ] {
            let a = p + (1.0 - p) * c;
            let want = voting_monte_carlo(p, a, x, n);
            let got = no_run(p, a, x, n as u64);
            assert!(
                (want - got).abs() < 1e-12,
                "p={p} c={c} x={x} n={n}: {want} vs {got}"
            );
        }
    }

    #[test]
    fn voting_matrix_power_matches_the_step_by_step_chain() {
        let (p, a) = (0.3, 0.5);
        for x in [2usize, 3, 5] {
            for n in [MATRIX_POWER_FROM, MATRIX_POWER_FROM + 37, 500] {
                let mut dist = vec![0.0; x];
                dist[0] = 1.0;
                for _ in 0..n {
                    let mut next = vec![0.0; x];
                    for r in 0..x {
                        let pos = if r == 0 { p } else { a };
                        next[0] += dist[r] * (1.0 - pos);
                        if r + 1 < x {
                            next[r + 1] += dist[r] * pos;
                        }
                    }
                    dist = next;
                }
                let want: f64 = dist.iter().sum();
                assert!((no_run(p, a, x, n) - want).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn two_vote_event_shorter_than_stride_is_always_missed() {
        assert_eq!(miss_rate_voting(0.9, 5.0, 10.0, 0.5, 2), 1.0);
    }

    #[test]
    fn voting_one_is_the_plain_model_and_matches_the_chain_without_correlation() {
        assert_eq!(
            miss_rate_voting(0.6, 25.0, 10.0, 0.3, 1),
            miss_rate(0.6, 25.0, 10.0, 0.3)
        );
        // With c = 0 both models are independent Bernoulli samples.
        let plain = miss_rate(0.6, 30.0, 10.0, 0.0);
        let chain = no_run(0.6, 0.6, 1, 3);
        assert!(close(plain, chain));
    }

    #[test]
    fn more_votes_lower_recall_and_false_triggers() {
        let e1 = ev(2000.0, 0.3, 0.3, 1);
        let e2 = ev(2000.0, 0.3, 0.3, 2);
        let e3 = ev(2000.0, 0.3, 0.3, 3);
        let [a, b, c] = [e1, e2, e3].map(|e| predict(0.8, 0.2, &e, 10.0, 5.0, Units::Physical));
        assert!(b.recall < a.recall && c.recall < b.recall);
        let [fa, fb] = [e1, e2].map(|e| {
            let (d, s) = geometry(&e, 10.0, 5.0, Units::Physical);
            1.0 - miss_rate_voting(0.2, d, s, e.correlation, e.voting)
        });
        assert!(fb < fa);
    }
}
