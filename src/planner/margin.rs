//! How far a shared head's predicted gain must go before the planners trust
//! it: the per-head sharing margins and the normal quantile behind them.

/// The chance the planner accepts of sharing a head for a gain its
/// calibration shows by chance: per app, over all its shared heads together
/// (see [`gain_z`]).
pub(crate) const GAIN_ALPHA: f64 = 0.05;

/// How many standard deviations of its calibrated uncertainty
/// ([`CurvePoint::gain_sd`](super::CurvePoint::gain_sd)) a shared head's predicted gain must exceed when
/// the app has `shared_heads` heads besides its least-shared one: the
/// one-sided normal quantile at `GAIN_ALPHA / shared_heads` (1.645 for one
/// head, 1.960 for two, 2.128 for three). The planner takes an app's best
/// head, so every shared head is one more chance of a gain that is only
/// noise; dividing the chance among them (Bonferroni) keeps the planner's
/// promise per app: it shares a gain that its calibration would show by
/// chance in fewer than 1 in 20 clips of other object instances of the same
/// categories (docs/eval.md, "Session 8: resampling object instances, and
/// a margin per app").
pub fn gain_z(shared_heads: usize) -> f64 {
    let tail = GAIN_ALPHA / shared_heads.max(1) as f64;
    // Bisection on the upper tail, which falls monotonically in z.
    let (mut lo, mut hi) = (0.0f64, 10.0f64);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if upper_tail(mid) > tail {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// `P(Z > z)` of a standard normal for `z >= 0`, from the complementary
/// error function's rational approximation of Abramowitz and Stegun 7.1.26
/// (absolute error below 1.5e-7, far below what a margin can tell apart).
fn upper_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    0.5 * poly * (-x * x).exp()
}

/// Each curve point's sharing margin, in the points' (ascending) order: none
/// on the first (least shared) point, `max(share_margin, gain_z(m) *
/// gain_sd)` on the other `m`.
pub(crate) fn point_margins(share_margin: f64, gain_sd: impl Iterator<Item = f64>) -> Vec<f64> {
    let sds: Vec<f64> = gain_sd.collect();
    let z = gain_z(sds.len().saturating_sub(1));
    sds.iter()
        .enumerate()
        .map(|(i, sd)| {
            if i == 0 {
                0.0
            } else {
                share_margin.max(z * sd).min(1.0)
            }
        })
        .collect()
}
