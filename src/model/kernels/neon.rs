//! The NEON tiles of the pointwise kernel (aarch64): 8 output channels x
//! 12 pixels, 24 q accumulators.
//!
//! A child module of `pointwise` (declared there with `#[path]`), so that it
//! reads the packed panels whose lengths its unsafe loads rely on without
//! making them visible to anyone else. Per input channel a tile loads three
//! q vectors of `X` (12 pixels, `ldp` and `ldr`), the 8 weights
//! of its panel (`ldp`, post-indexed), and does 24 fused multiply-adds by
//! element (`fmla v.4s, x.4s, w.s[r]`): 30 instructions per input channel
//! with the loads and the loop (24 of them `fmla`) for 96 multiply-adds,
//! 29 of the 32 vector registers live. Each output is
//! the bias then one fused multiply-add per input channel in order, then the
//! residual and the clamp, as in the AVX-512F and AVX2 tiles, so the three
//! give the same bits. Panels of 16 channels (the layout packed for small
//! planes) are read by halves, the weights a step of 16 apart.
//!
//! NEON has no masked loads: a tile's last vector, when it holds fewer than
//! four pixels of the row, is read and written lane by lane.
//!
//! The loads and stores are one vector each, never the `vld1q_f32_x3` /
//! `vst1q_f32_x3` register tuples: storing accumulator rows as tuples made
//! LLVM keep them in consecutive registers through the loop, and it spilled
//! half of them to the stack (0.71 instructions per multiply-add in the
//! whole op against 0.32 now; `benches/aarch64-proxy.sh`). The panel step
//! is a constant of the tile so that the weight loads post-increment.
#![allow(
    unsafe_code,
    reason = "NEON intrinsics on raw pointers into the packed panels, X and the output"
)]

use super::PackedGemm;
use std::arch::aarch64::*;

/// Output channels per tile: one panel of [`super::MR`], or half of a
/// 16-channel panel.
const ROWS: usize = 8;
/// Pixels per full tile (three 4-lane vectors).
const NR: usize = 12;

/// One microkernel call: `rows` (<= [`ROWS`]) output rows times `n`
/// (<= [`NR`]) pixels. Raw pointers; the caller vouches for the bounds (see
/// [`tile`]).
struct Tile {
    /// Sum length (input channels).
    k: usize,
    /// Packed weights: row `r`'s weight for input channel `k` at
    /// `w + k * WSTEP + r`, `WSTEP` (the panel height, 8 or 16) a constant
    /// of [`tile`].
    w: *const f32,
    /// One bias per row of the tile.
    bias: *const f32,
    /// `X[0, col]`; row `k` at `x + k * ldx`.
    x: *const f32,
    ldx: usize,
    /// Valid pixels, `4 * (NV - 1) < n <= 4 * NV`.
    n: usize,
    /// `out[0, col]`; row `r` at `out + r * ldo`.
    out: *mut f32,
    ldo: usize,
    /// Valid rows, 1..=ROWS.
    rows: usize,
    /// Add the current contents of `out` (the residual) before the clamp.
    accumulate: bool,
    clamp: Option<(f32, f32)>,
}

impl PackedGemm {
    /// Output rows `first_row..` (`first_row` a multiple of `mr`, `out`
    /// whole rows of `p`) with the NEON microkernel, pixel blocks as in
    /// the x86_64 tiles.
    ///
    /// # Safety
    ///
    /// The CPU must have NEON; `x.len() == ci * p`; `out.len()` a multiple
    /// of `p` with `first_row + out.len() / p <= co`.
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn rows_neon(&self, x: &[f32], first_row: usize, out: &mut [f32]) {
        let (ci, p, mr) = (self.ci, self.p, self.mr);
        let rows_total = out.len() / p;
        let block = self.block_pixels();
        let mut p0 = 0;
        while p0 < p {
            let pn = block.min(p - p0);
            let mut q0 = 0;
            while q0 < rows_total {
                let panel_rows = mr.min(rows_total - q0);
                let mut j = 0;
                while j < pn {
                    let n = NR.min(pn - j);
                    let col = p0 + j;
                    let mut g = 0;
                    while g < panel_rows {
                        let row = first_row + q0 + g;
                        let (q, r) = (row / mr, row % mr);
                        // `r` is 0 or 8 (`mr` is 8 or 16): the tile's 8
                        // weights per input channel and 8 biases stay inside
                        // panel `q` (zero-padded past `co`).
                        let w = &self.packed[q * ci * mr + r..][..(ci - 1) * mr + ROWS];
                        let b = &self.bias[row..][..ROWS];
                        let o = &mut out[(q0 + g) * p..];
                        let t = Tile {
                            k: ci,
                            w: w.as_ptr(),
                            bias: b.as_ptr(),
                            // SAFETY: col < p, inside `x` and `o`.
                            x: unsafe { x.as_ptr().add(col) },
                            ldx: p,
                            n,
                            // SAFETY: as above.
                            out: unsafe { o.as_mut_ptr().add(col) },
                            ldo: p,
                            rows: ROWS.min(panel_rows - g),
                            accumulate: self.residual,
                            clamp: self.clamp,
                        };
                        // SAFETY: NEON (this function's feature); `w` holds
                        // the tile's weights for every input channel at a
                        // step of `mr`, `b` 8 biases; x[k * p + col + l] for
                        // k < ci, l < n is inside `x` (col + n <= p);
                        // o[r * p + col + l] for r < rows, l < n is inside
                        // `o` (rows_total - q0 - g >= rows); the variant
                        // matches n (NV vectors, FULL iff n == 4 * NV) and
                        // the panel step (`mr` is 8 or 16).
                        unsafe {
                            match (mr == 16, n.div_ceil(4), n % 4 == 0) {
                                (false, 3, true) => tile::<3, true, 8>(&t),
                                (false, 3, false) => tile::<3, false, 8>(&t),
                                (false, 2, true) => tile::<2, true, 8>(&t),
                                (false, 2, false) => tile::<2, false, 8>(&t),
                                (false, _, true) => tile::<1, true, 8>(&t),
                                (false, _, false) => tile::<1, false, 8>(&t),
                                (true, 3, true) => tile::<3, true, 16>(&t),
                                (true, 3, false) => tile::<3, false, 16>(&t),
                                (true, 2, true) => tile::<2, true, 16>(&t),
                                (true, 2, false) => tile::<2, false, 16>(&t),
                                (true, _, true) => tile::<1, true, 16>(&t),
                                (true, _, false) => tile::<1, false, 16>(&t),
                            }
                        }
                        g += ROWS;
                    }
                    j += n;
                }
                q0 += mr;
            }
            p0 += pn;
        }
    }
}

/// `ROWS x (4 * NV)` tile: accumulators start at the bias, then one fused
/// multiply-add per input channel (in order); residual, clamp, store. The
/// last vector is read and written lane by lane unless `FULL`
/// (`t.n == 4 * NV`).
///
/// # Safety
///
/// NEON. `t.w + k * WSTEP + r` readable for `k < t.k`, `r < ROWS`;
/// `t.bias` for `ROWS`; `t.x + k * t.ldx + l` readable for `k < t.k`,
/// `l < t.n`; `t.out + r * t.ldo + l` readable and writable for
/// `r < t.rows`, `l < t.n`; `4 * (NV - 1) < t.n <= 4 * NV`, `t.rows <=
/// ROWS`; `1 <= NV <= 3`. Nothing outside those is touched.
// Not inlined, like the AVX2 tile: the loop keeps its 29 vector registers
// to itself.
#[target_feature(enable = "neon")]
#[inline(never)]
unsafe fn tile<const NV: usize, const FULL: bool, const WSTEP: usize>(t: &Tile) {
    // Lanes of the last vector that are pixels of the row (1..=4).
    let last = t.n - 4 * (NV - 1);
    // SAFETY: `t.bias` holds ROWS = 8 floats.
    let (b_lo, b_hi) = unsafe { (vld1q_f32(t.bias), vld1q_f32(t.bias.add(4))) };
    let b = [
        vdupq_laneq_f32::<0>(b_lo),
        vdupq_laneq_f32::<1>(b_lo),
        vdupq_laneq_f32::<2>(b_lo),
        vdupq_laneq_f32::<3>(b_lo),
        vdupq_laneq_f32::<0>(b_hi),
        vdupq_laneq_f32::<1>(b_hi),
        vdupq_laneq_f32::<2>(b_hi),
        vdupq_laneq_f32::<3>(b_hi),
    ];
    let mut acc = [[vdupq_n_f32(0.0); NV]; ROWS];
    for (row, &bias) in acc.iter_mut().zip(&b) {
        *row = [bias; NV];
    }
    let mut xp = t.x;
    let mut wp = t.w;
    for _ in 0..t.k {
        // SAFETY: the whole vectors are pixels of row k (l < t.n); the
        // last, unless FULL, is read lane by lane below `last`.
        let xv: [float32x4_t; NV] = unsafe { load_row::<NV, FULL>(xp, last) };
        // SAFETY: ROWS = 8 weights of this input channel.
        let (w0, w1) = unsafe { (vld1q_f32(wp), vld1q_f32(wp.add(4))) };
        for (j, &v) in xv.iter().enumerate() {
            acc[0][j] = vfmaq_laneq_f32::<0>(acc[0][j], v, w0);
            acc[1][j] = vfmaq_laneq_f32::<1>(acc[1][j], v, w0);
            acc[2][j] = vfmaq_laneq_f32::<2>(acc[2][j], v, w0);
            acc[3][j] = vfmaq_laneq_f32::<3>(acc[3][j], v, w0);
            acc[4][j] = vfmaq_laneq_f32::<0>(acc[4][j], v, w1);
            acc[5][j] = vfmaq_laneq_f32::<1>(acc[5][j], v, w1);
            acc[6][j] = vfmaq_laneq_f32::<2>(acc[6][j], v, w1);
            acc[7][j] = vfmaq_laneq_f32::<3>(acc[7][j], v, w1);
        }
        // After the last channel these point past the end, never read.
        xp = xp.wrapping_add(t.ldx);
        wp = wp.wrapping_add(WSTEP);
    }
    for (r, row) in acc.iter().enumerate().take(t.rows) {
        let o = t.out.wrapping_add(r * t.ldo);
        let mut v = *row;
        if t.accumulate {
            // SAFETY: the pixels read are valid pixels of a valid output
            // row, as for X.
            let prev: [float32x4_t; NV] = unsafe { load_row::<NV, FULL>(o, last) };
            for (a, p) in v.iter_mut().zip(prev) {
                *a = vaddq_f32(*a, p);
            }
        }
        if let Some((lo, hi)) = t.clamp {
            let (lo, hi) = (vdupq_n_f32(lo), vdupq_n_f32(hi));
            for a in v.iter_mut() {
                *a = vminq_f32(vmaxq_f32(*a, lo), hi);
            }
        }
        // SAFETY: only valid pixels of a valid output row are written.
        unsafe { store_row::<NV, FULL>(o, v, last) };
    }
}

/// `NV` vectors from `p`: whole ones, the last lane by lane (`last` lanes,
/// the others zero) unless `FULL`.
///
/// # Safety
///
/// NEON; `p + l` readable for `l < 4 * (NV - 1) + last` (`l < 4 * NV` if
/// `FULL`).
#[target_feature(enable = "neon")]
#[inline]
unsafe fn load_row<const NV: usize, const FULL: bool>(
    p: *const f32,
    last: usize,
) -> [float32x4_t; NV] {
    let mut v = [vdupq_n_f32(0.0); NV];
    let whole = if FULL { NV } else { NV - 1 };
    for (j, x) in v.iter_mut().enumerate().take(whole) {
        // SAFETY: the first `whole` vectors are readable.
        *x = unsafe { vld1q_f32(p.add(4 * j)) };
    }
    if !FULL {
        let p = p.wrapping_add(4 * whole);
        let mut part = vdupq_n_f32(0.0);
        // SAFETY: lanes below `last` are readable (`last >= 1`).
        unsafe {
            part = vld1q_lane_f32::<0>(p, part);
            if last > 1 {
                part = vld1q_lane_f32::<1>(p.add(1), part);
            }
            if last > 2 {
                part = vld1q_lane_f32::<2>(p.add(2), part);
            }
        }
        v[whole] = part;
    }
    v
}

/// Stores `NV` vectors at `p`: whole ones, the last lane by lane (`last`
/// lanes) unless `FULL`.
///
/// # Safety
///
/// NEON; `p + l` writable for `l < 4 * (NV - 1) + last` (`l < 4 * NV` if
/// `FULL`).
#[target_feature(enable = "neon")]
#[inline]
unsafe fn store_row<const NV: usize, const FULL: bool>(
    p: *mut f32,
    v: [float32x4_t; NV],
    last: usize,
) {
    let whole = if FULL { NV } else { NV - 1 };
    for (j, x) in v.iter().enumerate().take(whole) {
        // SAFETY: the first `whole` vectors are writable.
        unsafe { vst1q_f32(p.add(4 * j), *x) };
    }
    if !FULL {
        let p = p.wrapping_add(4 * whole);
        let part = v[whole];
        // SAFETY: lanes below `last` are writable (`last >= 1`).
        unsafe {
            vst1q_lane_f32::<0>(p, part);
            if last > 1 {
                vst1q_lane_f32::<1>(p.add(1), part);
            }
            if last > 2 {
                vst1q_lane_f32::<2>(p.add(2), part);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_close, run_op, Rng};
    use super::super::{PackedGemm, Simd};

    /// The tiles' arithmetic in scalar code: the bias, one fused
    /// multiply-add per input channel in order, the residual, the clamp
    /// (what the x86_64 tiles compute too).
    #[allow(clippy::too_many_arguments)]
    fn fused(
        ci: usize,
        co: usize,
        p: usize,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        res: Option<&[f32]>,
        clamp: Option<(f32, f32)>,
    ) -> Vec<f32> {
        let mut out = vec![0f32; co * p];
        for o in 0..co {
            for q in 0..p {
                let mut s = b[o];
                for i in 0..ci {
                    s = w[o * ci + i].mul_add(x[i * p + q], s);
                }
                if let Some(r) = res {
                    s += r[o * p + q];
                }
                if let Some((lo, hi)) = clamp {
                    s = s.max(lo).min(hi);
                }
                out[o * p + q] = s;
            }
        }
        out
    }

    #[test]
    fn neon_tiles_give_the_fused_sum_bit_for_bit_on_odd_shapes() {
        let mut rng = Rng(crate::rng::Rng::new(0x0a64_0e0e));
        // Pixel tails 1..=3 lanes and 1..=3 vectors around the 12-pixel
        // tile, channel counts not a multiple of 8, the 16-channel panels
        // of small planes (co % 16 == 0, p < 64, read by halves), residual
        // and clamp, and a plane split into pixel blocks.
        let shapes = [
            (1, 1, 1),
            (3, 5, 7),
            (5, 3, 9),
            (7, 13, 23),
            (9, 6, 25),
            (16, 16, 49),
            (17, 32, 15),
            (24, 12, 100),
            (33, 19, 61),
            (8, 48, 13),
            (27, 32, 12544 / 16 + 3),
            (96, 24, 3136),
        ];
        for (ci, co, p) in shapes {
            for (residual, clamp) in [(false, None), (true, Some((-0.25, 0.5)))] {
                let x = rng.vec(ci * p);
                let w = rng.vec(co * ci);
                let b = rng.vec(co);
                let r = rng.vec(co * p);
                let mut op = PackedGemm::new(ci, co, p, &w, &b)
                    .expect("valid shape")
                    .with_simd(Simd::Neon);
                if residual {
                    op = op.with_residual();
                }
                if let Some((lo, hi)) = clamp {
                    op = op.with_clamp(lo, hi);
                }
                let res = residual.then_some(&r[..]);
                let neon = run_op(&op, &x, res);
                let what = format!("ci {ci} co {co} p {p} residual {residual}");
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                let want = fused(ci, co, p, &x, &w, &b, res, clamp);
                assert_eq!(bits(&neon), bits(&want), "{what}");
                // And the portable rows (not fused) up to rounding.
                let portable = run_op(&op.clone().with_simd(Simd::Portable), &x, res);
                assert_close(&neon, &portable, ci, &what);
            }
        }
    }
}
