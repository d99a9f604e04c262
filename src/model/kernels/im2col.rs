//! im2col: a 2D convolution's input laid out as the `(c * kh * kw) x
//! (oh * ow)` matrix that the pointwise kernel multiplies, written into a
//! per-thread buffer allocated once.

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
    /// its rows split over the intra-op pool installed on this thread
    /// (`kernels::pool`), inline when there is none.
    fn fill(&self, x: &[f32], col: &mut [f32]) {
        let p = self.oh * self.ow;
        // Rows are independent copies; the work counts one per element,
        // like a multiply-add. (The closure never fails: nothing to return.)
        let _ = super::pool::par_chunks_mut(col, p, col.len(), |first, rows| {
            for (i, dst) in rows.chunks_exact_mut(p).enumerate() {
                self.fill_row(x, first + i, dst);
            }
            Ok(())
        });
    }

    /// Writes row `k = (c * kh + ky) * kw + kx` of the matrix into `dst`
    /// (`oh * ow`).
    fn fill_row(&self, x: &[f32], k: usize, dst: &mut [f32]) {
        let ow = self.ow;
        let (c, kyx) = (k / (self.kh * self.kw), k % (self.kh * self.kw));
        let (ky, kx) = (kyx / self.kw, kyx % self.kw);
        let plane = &x[c * self.h * self.w..][..self.h * self.w];
        // Output columns whose input column is inside the plane:
        // lo <= ox < hi.
        let lo = self.pl.saturating_sub(kx).div_ceil(self.sx).min(ow);
        let hi = match (self.w - 1 + self.pl).checked_sub(kx) {
            Some(last) => (last / self.sx + 1).min(ow),
            None => 0,
        }
        .max(lo);
        for (oy, row) in dst.chunks_exact_mut(ow).enumerate() {
            let iy = (oy * self.sy + ky).checked_sub(self.pt);
            let Some(iy) = iy.filter(|&iy| iy < self.h) else {
                row.fill(0.0);
                continue;
            };
            row[..lo].fill(0.0);
            row[hi..].fill(0.0);
            if hi > lo {
                let start = lo * self.sx + kx - self.pl;
                let src = &plane[iy * self.w..][..self.w];
                let dst = &mut row[lo..hi];
                if self.sx == 1 {
                    dst.copy_from_slice(&src[start..][..dst.len()]);
                } else {
                    // Whole strides first (the compiler vectorises a
                    // zip over chunks, not a `step_by`), then the
                    // last point, whose stride may be cut short.
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
}
