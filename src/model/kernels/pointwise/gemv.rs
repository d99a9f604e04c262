//! The matrix-vector case of the pointwise kernel (`p == 1`: a classifier,
//! `out[o] = b[o] + sum_i W[o, i] * x[i]`), which the pixel tiles would run
//! one lane wide. The packed layout already suits it: a panel's `mr`
//! weights for one input channel are contiguous, so per panel the `mr` sums
//! run side by side in vector registers (bias first, then the input
//! channels in order, as in the tiles), the weights read once, in order.
//! One panel's sums alone are bound by the adder's latency; on x86_64
//! eight 8-lane chains run side by side, which leaves the weights' memory
//! bandwidth as the limit (aarch64 and the portable rows still run one
//! panel at a time).

use super::PackedGemm;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use super::Simd;

impl PackedGemm {
    /// `out = clamp(W x + b [+ out])` for one pixel, output rows
    /// `first_row..first_row + out.len()` (`first_row` a multiple of `mr`).
    /// `x.len() == ci`, `first_row + out.len() <= co` (checked by the
    /// caller).
    pub(super) fn gemv(&self, x: &[f32], first_row: usize, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if self.simd != Simd::Portable
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked just above); the
            // function only compiles the safe code below for them.
            unsafe { self.gemv_fma(x, first_row, out) };
            return;
        }
        #[cfg(target_arch = "aarch64")]
        if self.simd != Simd::Portable {
            // aarch64 always has NEON with fused multiply-adds.
            self.gemv_panels::<true>(x, first_row, out);
            return;
        }
        self.gemv_panels::<false>(x, first_row, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn gemv_fma(&self, x: &[f32], first_row: usize, out: &mut [f32]) {
        match self.mr {
            // SAFETY: AVX2 and FMA (this function's target features).
            8 => unsafe { self.gemv_side_by_side::<8>(x, first_row, out) },
            // SAFETY: as above.
            16 => unsafe { self.gemv_side_by_side::<16>(x, first_row, out) },
            _ => self.gemv_panels::<true>(x, first_row, out),
        }
    }

    /// Panels of `M` rows (`M == self.mr`, 8 or 16), [`LANES`] / `M` of
    /// them side by side: one panel's sums are chains of dependent
    /// multiply-adds (one per input channel), which alone wait on the
    /// adder's latency at every step (170 us for MobileNetV2's 1280 x 1000
    /// classifier, latency-bound; 66 us side by side). Each sum still runs
    /// in order: the same bits. The panels left over run one at a time.
    ///
    /// # Safety
    ///
    /// AVX2 and FMA; `first_row` a multiple of `M`, `x.len() == ci`,
    /// `first_row + out.len() <= co` (checked by `compute`).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn gemv_side_by_side<const M: usize>(
        &self,
        x: &[f32],
        first_row: usize,
        out: &mut [f32],
    ) {
        use std::arch::x86_64::*;
        let ci = self.ci;
        assert!(self.mr == M && M.is_multiple_of(8) && x.len() >= ci);
        let (first_panel, rows) = (first_row / M, LANES);
        let whole = (out.len() / rows) * rows;
        let mut chunks = out.chunks_exact_mut(rows);
        for (i, o) in chunks.by_ref().enumerate() {
            let q = first_panel + i * (rows / M);
            let w = &self.packed[q * ci * M..][..(rows / M) * ci * M];
            let bias = &self.bias[q * M..][..rows];
            let mut acc = [_mm256_setzero_ps(); LANES / 8];
            for (j, a) in acc.iter_mut().enumerate() {
                // SAFETY: 8 of the `rows` biases.
                *a = unsafe { _mm256_loadu_ps(bias.as_ptr().add(8 * j)) };
            }
            let wp = w.as_ptr();
            for (k, &xv) in x[..ci].iter().enumerate() {
                let xb = _mm256_set1_ps(xv);
                for (j, a) in acc.iter_mut().enumerate() {
                    // Rows 8 j.. are half h of panel p: its 8 weights of
                    // input channel k < ci, inside `w`.
                    let (p, h) = (8 * j / M, 8 * j % M);
                    // SAFETY: as just above.
                    let wv = unsafe { _mm256_loadu_ps(wp.add((p * ci + k) * M + h)) };
                    *a = _mm256_fmadd_ps(wv, xb, *a);
                }
            }
            let mut sums = [0f32; LANES];
            for (j, a) in acc.iter().enumerate() {
                // SAFETY: 8 of the LANES floats of `sums`.
                unsafe { _mm256_storeu_ps(sums.as_mut_ptr().add(8 * j), *a) };
            }
            self.finish(&sums, o);
        }
        self.gemv_panels::<true>(x, first_row + whole, chunks.into_remainder())
    }

    /// `out = clamp(sums [+ out])`.
    #[inline(always)]
    fn finish(&self, sums: &[f32], out: &mut [f32]) {
        for (v, &s) in out.iter_mut().zip(sums) {
            let mut s = if self.residual { s + *v } else { s };
            if let Some((lo, hi)) = self.clamp {
                s = s.max(lo).min(hi);
            }
            *v = s;
        }
    }

    /// Every panel; `FUSED`: one fused multiply-add per term (the tiles'
    /// rounding), else a multiply and an add (the portable rows').
    #[inline(always)]
    fn gemv_panels<const FUSED: bool>(&self, x: &[f32], first_row: usize, out: &mut [f32]) {
        match self.mr {
            16 => self.gemv_mr::<16, FUSED>(x, first_row / 16, out),
            _ => self.gemv_mr::<{ super::MR }, FUSED>(x, first_row / super::MR, out),
        }
    }

    #[inline(always)]
    fn gemv_mr<const MR: usize, const FUSED: bool>(
        &self,
        x: &[f32],
        first_panel: usize,
        out: &mut [f32],
    ) {
        let ci = self.ci;
        for (i, o) in out.chunks_mut(MR).enumerate() {
            let q = first_panel + i;
            let mut acc = [0f32; MR];
            acc.copy_from_slice(&self.bias[q * MR..][..MR]);
            let panel = &self.packed[q * ci * MR..][..ci * MR];
            for (w, &xv) in panel.chunks_exact(MR).zip(x) {
                for (a, &wv) in acc.iter_mut().zip(w) {
                    *a = if FUSED {
                        wv.mul_add(xv, *a)
                    } else {
                        *a + wv * xv
                    };
                }
            }
            self.finish(&acc, o);
        }
    }
}

/// Rows whose sums run side by side on x86_64: 8 chains of 8-lane
/// multiply-adds cover 4 cycles of latency at 2 per cycle.
#[cfg(target_arch = "x86_64")]
const LANES: usize = 64;
