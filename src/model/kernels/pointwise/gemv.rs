//! The matrix-vector case of the pointwise kernel (`p == 1`: a classifier,
//! `out[o] = b[o] + sum_i W[o, i] * x[i]`), which the pixel tiles would run
//! one lane wide. The packed layout already suits it: a panel's `mr`
//! weights for one input channel are contiguous, so per panel the `mr` sums
//! run side by side in vector registers (bias first, then the input
//! channels in order, as in the tiles), the weights read once, in order.
//! Memory-bound: the weights are read once per frame.

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
        self.gemv_panels::<true>(x, first_row, out)
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
            for (v, &s) in o.iter_mut().zip(&acc) {
                let mut s = if self.residual { s + *v } else { s };
                if let Some((lo, hi)) = self.clamp {
                    s = s.max(lo).min(hi);
                }
                *v = s;
            }
        }
    }
}
