//! im2col: a 2D convolution's input laid out as the `(c * kh * kw) x
//! (oh * ow)` matrix that the pointwise kernel multiplies, written into a
//! per-thread buffer allocated once.
#![allow(
    unsafe_code,
    reason = "the parts of a split fill write disjoint columns of one matrix"
)]

use super::pointwise::SPLIT_ALIGN;
use super::pool::{par_ranges, SharedSlice};

/// A 2D convolution's input as a matrix: row `(c * kh + ky) * kw + kx`,
/// column `oy * ow + ox` holds input pixel `(c, oy * sy + ky - pt,
/// ox * sx + kx - pl)`, zero outside the plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Im2Col {
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    sy: usize,
    sx: usize,
    pt: usize,
    pl: usize,
    oh: usize,
    ow: usize,
}

/// Largest im2col matrix we build (bytes); bigger convolutions keep tract's.
const IM2COL_MAX_BYTES: usize = 8 << 20;

/// One matrix row's input channel, tap, and the output columns `lo..hi`
/// whose input column is inside the plane.
#[derive(Clone, Copy)]
struct RowTap {
    c: usize,
    ky: usize,
    kx: usize,
    lo: usize,
    hi: usize,
}

thread_local! {
    /// Per-thread im2col matrix, grown to the largest layer once and then
    /// kept around to re-use the backing allocation (no allocation per frame).
    static COLS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Im2Col {
    /// The geometry of a convolution of a `c x h x w` input with a `kh x kw`
    /// kernel, `stride` (y, x) and `pad` (top, left) whose output is
    /// `out_hw`; `None` where it does not fit or the matrix would exceed
    /// [`IM2COL_MAX_BYTES`].
    pub(crate) fn new(
        (c, h, w): (usize, usize, usize),
        (kh, kw): (usize, usize),
        (sy, sx): (usize, usize),
        (pt, pl): (usize, usize),
        (oh, ow): (usize, usize),
    ) -> Option<Im2Col> {
        if [c, h, w, kh, kw, sy, sx, oh, ow].contains(&0)
            || kh > h + 2 * pt
            || kw > w + 2 * pl
            || pt >= kh
            || pl >= kw
        {
            return None;
        }
        // Every output must start inside the padded input (im2col reads
        // zeros for the padding, whatever the trailing padding is).
        if (oh - 1) * sy >= h + pt || (ow - 1) * sx >= w + pl {
            return None;
        }
        let geo = Im2Col {
            c,
            h,
            w,
            kh,
            kw,
            sy,
            sx,
            pt,
            pl,
            oh,
            ow,
        };
        if geo.len().checked_mul(4)? > IM2COL_MAX_BYTES {
            return None;
        }
        Some(geo)
    }

    /// Rows of the matrix (`c * kh * kw`).
    pub(crate) fn rows(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// `kernel KHxKW stride SYxSX ` for the op's description.
    pub(crate) fn describe(&self) -> String {
        format!(
            "kernel {}x{} stride {}x{} ",
            self.kh, self.kw, self.sy, self.sx
        )
    }

    /// Elements of the matrix.
    pub(crate) fn len(&self) -> usize {
        self.rows() * self.oh * self.ow
    }

    /// Calls `f` with the matrix of input `x` (`c x h x w`), written into
    /// this thread's buffer.
    pub(crate) fn with_matrix<R>(&self, x: &[f32], f: impl FnOnce(&[f32]) -> R) -> R {
        COLS.with_borrow_mut(|cols| {
            if cols.len() < self.len() {
                cols.resize(self.len(), 0.0);
            }
            let cols = &mut cols[..self.len()];
            self.fill(x, cols);
            f(cols)
        })
    }

    /// Writes the matrix for input `x` (`c x h x w`) into `col` (`len()`),
    /// its columns split over the intra-op pool installed on this thread
    /// (`kernels::pool`) as the pointwise kernel it feeds splits them (by
    /// pixels, whole tiles), so that each core writes the columns it then
    /// reads; inline when there is no pool.
    fn fill(&self, x: &[f32], col: &mut [f32]) {
        let (p, ow) = (self.oh * self.ow, self.ow);
        let rows = self.rows();
        let col = SharedSlice::new(col);
        // The work of the product it feeds with 32 output channels (a
        // network's first convolution); the closure never fails.
        let _ = par_ranges(p, SPLIT_ALIGN, self.len() * 32, |cols| {
            for k in 0..rows {
                let tap = self.row_tap(k);
                let mut c = cols.start;
                while c < cols.end {
                    let (oy, x0) = (c / ow, c % ow);
                    let x1 = ow.min(x0 + cols.end - c);
                    // SAFETY: columns `cols` of row `k`, inside the matrix
                    // (checked by `part`); `par_ranges` gives each call
                    // columns no other call gets, `col` borrowed until all
                    // have returned.
                    let dst = unsafe { col.part(k * p + c..k * p + c + (x1 - x0)) };
                    self.fill_segment(x, &tap, oy, x0..x1, dst);
                    c += x1 - x0;
                }
            }
            Ok(())
        });
    }

    /// Matrix row `k = (c * kh + ky) * kw + kx`'s channel, tap and the
    /// output columns whose input column is inside the plane (computed once
    /// per row, not per segment: divisions).
    #[inline(always)]
    fn row_tap(&self, k: usize) -> RowTap {
        let (c, kyx) = (k / (self.kh * self.kw), k % (self.kh * self.kw));
        let (ky, kx) = (kyx / self.kw, kyx % self.kw);
        let lo = self.pl.saturating_sub(kx).div_ceil(self.sx);
        let hi = match (self.w - 1 + self.pl).checked_sub(kx) {
            Some(last) => last / self.sx + 1,
            None => 0,
        };
        RowTap { c, ky, kx, lo, hi }
    }

    /// Writes output columns `xs` of output row `oy` of the matrix row
    /// `tap` describes into `dst` (`xs.len()`).
    #[inline(always)]
    fn fill_segment(
        &self,
        x: &[f32],
        tap: &RowTap,
        oy: usize,
        xs: std::ops::Range<usize>,
        dst: &mut [f32],
    ) {
        let RowTap { c, ky, kx, lo, hi } = *tap;
        let iy = (oy * self.sy + ky).checked_sub(self.pt);
        let Some(iy) = iy.filter(|&iy| iy < self.h) else {
            dst.fill(0.0);
            return;
        };
        // Output columns whose input column is inside the plane:
        // lo <= ox < hi, cut to `xs`.
        let lo = lo.clamp(xs.start, xs.end);
        let hi = hi.clamp(lo, xs.end);
        dst[..lo - xs.start].fill(0.0);
        dst[hi - xs.start..].fill(0.0);
        if hi > lo {
            let start = lo * self.sx + kx - self.pl;
            let src = &x[(c * self.h + iy) * self.w..][..self.w];
            let dst = &mut dst[lo - xs.start..hi - xs.start];
            if self.sx == 1 {
                dst.copy_from_slice(&src[start..][..dst.len()]);
            } else {
                // Whole strides first (the compiler vectorises a zip over
                // chunks, not a `step_by`), then the last point, whose
                // stride may be cut short.
                let last = dst.len() - 1;
                let (body, tail) = dst.split_at_mut(last);
                let from = &src[start..];
                if self.sx == 2 {
                    for (d, c) in body.iter_mut().zip(from.chunks_exact(2)) {
                        *d = c[0];
                    }
                } else {
                    for (d, c) in body.iter_mut().zip(from.chunks_exact(self.sx)) {
                        *d = c[0];
                    }
                }
                tail[0] = src[start + last * self.sx];
            }
        }
    }
}
