//! Our 1x1 ("pointwise") convolution for MobileNet-style networks, installed
//! in place of tract's `EinSum` (later `OptMatMulPack` + `OptMatMul`) on the
//! decluttered model by [`rewrite`], before tract's optimiser runs.
//!
//! For one image (NCHW, batch 1, `f32`) a 1x1 convolution is the matrix
//! product `out[co, p] = bias[co] + sum_ci W[co, ci] * X[ci, p]`, `p` running
//! over the `h * w` pixels. tract packs `X` into its kernel's panel layout on
//! every frame and runs it at ~60 GFLOP/s on the layer shapes of MobileNetV2
//! (docs/engine.md). This op packs the weights once, when the op is built,
//! and reads `X` in place: every row of `X` is contiguous along `p`, so one
//! microkernel tile loads three 16-lane vectors of a row per step and
//! multiplies them by 8 broadcast weights (24 accumulators in registers,
//! AVX-512F; the last tile of a row is masked, so every shape is exact).
//! Pixels are processed in blocks whose slice of `X` stays in L2 while every
//! panel of 8 output channels passes over it. Planes under 64 pixels
//! (MobileNetV2's 7x7) with whole vectors of output channels use a
//! transposed tile instead: 48 output channels x 8 pixels, vectors along
//! the channels, results scattered, so no lane idles at the plane's edge.
//!
//! The same op, behind an im2col into a per-thread buffer allocated once,
//! runs full (group 1) convolutions such as MobileNetV2's 3x3 stride-2 stem
//! (`MainstreamConvIm2col`).
//!
//! A following ReLU6 (`Max` then `Min` with constants) and a following
//! residual `Add` are folded in; the residual is added in place into the
//! skip tensor (tract hands over its last reference, so no copy).
//!
//! Arithmetic differs from tract's in the order of the sum (fused
//! multiply-adds, bias first); the logits stay within 1e-4 of tract's
//! (docs/engine.md, "Checks").
//!
//! Only on x86_64 with AVX-512F: elsewhere [`rewrite`] changes nothing and
//! tract's own kernels run (aarch64 builds compile this module, but only its
//! portable code, which the op would use only if it were ever evaluated on a
//! CPU without AVX-512F).

use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::nn::DataFormat;

/// Output channels per weight panel: the rows of one microkernel tile.
const MR: usize = 8;
/// Pixels per full microkernel tile (three 16-lane vectors).
#[cfg(target_arch = "x86_64")]
const NR: usize = 48;
/// Bytes of `X` one block of pixels may occupy (about a quarter of Zen 4's
/// L2, leaving room for the weights and the output tiles).
#[cfg(target_arch = "x86_64")]
const BLOCK_BYTES: usize = 256 * 1024;
/// Smaller planes keep tract's kernels (see `for_einsum`).
const MIN_PIXELS: usize = 16;
/// Planes smaller than this (MobileNetV2's 7x7 = 49 pixels) use the
/// transposed kernel when `co` is a multiple of 16: vectors along output
/// channels instead of pixels, so no lane is idle at the plane's edge.
const TRANSPOSED_BELOW: usize = 64;

/// Whether this CPU runs our kernel (x86_64 with AVX-512F). The rewrite is
/// skipped everywhere else.
pub fn kernel_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A 1x1 convolution (no padding, stride 1, batch 1, `f32`) with its bias,
/// an optional ReLU6-style clamp and an optional residual input.
#[derive(Debug, Clone)]
pub struct PointWise {
    /// Input channels (the sum's length).
    ci: usize,
    /// Output channels.
    co: usize,
    /// Pixels per channel.
    p: usize,
    /// Input and output tensor shapes (the channel axis differs).
    in_shape: TVec<usize>,
    out_shape: TVec<usize>,
    /// A fused `min(max(x, lo), hi)` applied last.
    clamp: Option<(f32, f32)>,
    /// Whether the op has a second input, added to the result before the
    /// clamp (a residual connection).
    residual: bool,
    /// Output channels per weight panel: [`MR`], or 16 for the transposed
    /// kernel (one vector of output channels).
    mr: usize,
    /// Weights in panels of `mr` output channels: `W[q * mr + r, k]` at
    /// `(q * ci + k) * mr + r`; rows past `co` are zero.
    packed: Arc<Vec<f32>>,
    /// Biases, zero-padded to whole panels.
    bias: Arc<Vec<f32>>,
    /// For a k x k convolution: how its input becomes the `ci x p` matrix
    /// (then `ci` is `channels * kh * kw`); `None` for a 1x1 convolution.
    im2col: Option<Im2Col>,
}

/// A 2D convolution's input as a matrix: row `(c * kh + ky) * kw + kx`,
/// column `oy * ow + ox` holds input pixel `(c, oy * sy + ky - pt,
/// ox * sx + kx - pl)`, zero outside the plane.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Im2Col {
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
    fn rows(&self) -> usize {
        self.c * self.kh * self.kw
    }

    fn len(&self) -> usize {
        self.rows() * self.oh * self.ow
    }

    /// Writes the matrix for input `x` (`c x h x w`) into `col` (`len()`).
    fn fill(&self, x: &[f32], col: &mut [f32]) {
        let (p, ow) = (self.oh * self.ow, self.ow);
        for c in 0..self.c {
            let plane = &x[c * self.h * self.w..][..self.h * self.w];
            for ky in 0..self.kh {
                for kx in 0..self.kw {
                    let k = (c * self.kh + ky) * self.kw + kx;
                    let dst = &mut col[k * p..][..p];
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
        }
    }
}

/// Bitwise equality (tract's op equality is `Eq`; weights compared by bits).
impl PartialEq for PointWise {
    fn eq(&self, o: &Self) -> bool {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let clamp = |c: Option<(f32, f32)>| c.map(|(a, b)| (a.to_bits(), b.to_bits()));
        (self.ci, self.co, self.p, self.residual, self.mr) == (o.ci, o.co, o.p, o.residual, o.mr)
            && self.in_shape == o.in_shape
            && self.out_shape == o.out_shape
            && clamp(self.clamp) == clamp(o.clamp)
            && bits(&self.packed) == bits(&o.packed)
            && bits(&self.bias) == bits(&o.bias)
            && self.im2col == o.im2col
    }
}

impl Eq for PointWise {}

impl PointWise {
    /// The op for `weights` (`co x ci`, row-major) and `bias` (`co`, or empty
    /// for none) on an input of shape `in_shape` whose channel axis is
    /// `c_axis` (every axis before it must have extent 1). `None` if the
    /// shapes do not fit together.
    pub fn new(
        in_shape: &[usize],
        c_axis: usize,
        co: usize,
        weights: &[f32],
        bias: &[f32],
    ) -> Option<PointWise> {
        let ci = *in_shape.get(c_axis)?;
        if in_shape[..c_axis].iter().any(|&d| d != 1)
            || ci == 0
            || co == 0
            || weights.len() != co.checked_mul(ci)?
            || !(bias.is_empty() || bias.len() == co)
        {
            return None;
        }
        let p: usize = in_shape[c_axis + 1..].iter().product();
        if p == 0 {
            return None;
        }
        let mr = if p < TRANSPOSED_BELOW && co.is_multiple_of(16) {
            16
        } else {
            MR
        };
        let panels = co.div_ceil(mr);
        let mut packed = vec![0f32; panels * mr * ci];
        for (o, row) in weights.chunks_exact(ci).enumerate() {
            let (q, r) = (o / mr, o % mr);
            for (k, &w) in row.iter().enumerate() {
                packed[(q * ci + k) * mr + r] = w;
            }
        }
        let mut padded_bias = vec![0f32; panels * mr];
        padded_bias[..bias.len()].copy_from_slice(bias);
        let mut out_shape: TVec<usize> = in_shape.into();
        out_shape[c_axis] = co;
        Some(PointWise {
            ci,
            co,
            p,
            in_shape: in_shape.into(),
            out_shape,
            clamp: None,
            residual: false,
            mr,
            packed: Arc::new(packed),
            bias: Arc::new(padded_bias),
            im2col: None,
        })
    }

    /// A full 2D convolution on a `[1, c, h, w]` (or `[c, h, w]`) input:
    /// `weights` OIHW (`co x c x kh x kw`), `stride` (y, x), `pad` (top,
    /// left); the output size must be `out_hw`. `None` where it does not fit.
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d(
        in_shape: &[usize],
        co: usize,
        kernel: (usize, usize),
        stride: (usize, usize),
        pad: (usize, usize),
        out_hw: (usize, usize),
        weights: &[f32],
        bias: &[f32],
    ) -> Option<PointWise> {
        let n = in_shape.len();
        if !(n == 3 || (n == 4 && in_shape[0] == 1)) {
            return None;
        }
        let (c, h, w) = (in_shape[n - 3], in_shape[n - 2], in_shape[n - 1]);
        let ((kh, kw), (sy, sx), (pt, pl), (oh, ow)) = (kernel, stride, pad, out_hw);
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
        let mut mat_shape: TVec<usize> = in_shape.into();
        mat_shape[n - 3] = geo.rows();
        mat_shape[n - 2] = oh;
        mat_shape[n - 1] = ow;
        let op = PointWise::new(&mat_shape, n - 3, co, weights, bias)?;
        Some(PointWise {
            in_shape: in_shape.into(),
            im2col: Some(geo),
            ..op
        })
    }

    /// The same op with a clamp applied last.
    pub fn with_clamp(self, lo: f32, hi: f32) -> PointWise {
        PointWise {
            clamp: Some((lo, hi)),
            ..self
        }
    }

    /// The same op with a residual input (shape of the output) added before
    /// the clamp.
    pub fn with_residual(self) -> PointWise {
        PointWise {
            residual: true,
            ..self
        }
    }

    /// Computes the output: `out` holds the residual on entry if the op has
    /// one (it is added in place), anything otherwise; it is fully written.
    /// `x.len()` must be `ci * p` and `out.len()` `co * p` (checked).
    pub fn compute(&self, x: &[f32], out: &mut [f32]) -> TractResult<()> {
        ensure!(x.len() == self.ci * self.p && out.len() == self.co * self.p);
        let p = self.p;
        // Whole panels per chunk when the executor splits the work; one chunk
        // when the last panel is partial.
        let rows_per_chunk = if self.co.is_multiple_of(self.mr) {
            self.mr
        } else {
            self.co
        };
        let total = out.len() * self.ci;
        tract_onnx::tract_core::tract_linalg::multithread::par_chunks_mut(
            out,
            rows_per_chunk * p,
            total,
            |first, chunk| {
                let first_row = first * rows_per_chunk;
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F (checked just above); the
                    // slice lengths were checked at the top of `compute` and
                    // `chunk` is whole rows starting at a panel boundary.
                    unsafe {
                        if self.mr == 16 {
                            self.rows_avx512_transposed(x, first_row, chunk)
                        } else {
                            self.rows_avx512(x, first_row, chunk)
                        }
                    };
                    return Ok(());
                }
                self.rows_portable(x, first_row, chunk);
                Ok(())
            },
        )
    }

    #[cfg(target_arch = "x86_64")]
    /// Pixels per block: the block's slice of `X` fits in [`BLOCK_BYTES`],
    /// blocks are whole tiles except the last.
    fn block_pixels(&self) -> usize {
        let bytes = self.ci * self.p * 4;
        let blocks = bytes.div_ceil(BLOCK_BYTES).max(1);
        self.p.div_ceil(blocks).div_ceil(NR) * NR
    }

    /// Output rows `first_row..first_row + out.len() / p` in plain Rust
    /// (any CPU; bias, then the input channels in order like the SIMD
    /// kernel, but without fused multiply-adds and with the residual added
    /// first, so results differ from it by rounding).
    fn rows_portable(&self, x: &[f32], first_row: usize, out: &mut [f32]) {
        let (ci, p) = (self.ci, self.p);
        for (i, o) in out.chunks_exact_mut(p).enumerate() {
            let row = first_row + i;
            let (q, r) = (row / self.mr, row % self.mr);
            let b = self.bias[row];
            if self.residual {
                o.iter_mut().for_each(|v| *v += b);
            } else {
                o.fill(b);
            }
            for (k, xr) in x.chunks_exact(p).enumerate().take(ci) {
                let w = self.packed[(q * ci + k) * self.mr + r];
                for (v, &xv) in o.iter_mut().zip(xr) {
                    *v += w * xv;
                }
            }
            if let Some((lo, hi)) = self.clamp {
                o.iter_mut().for_each(|v| *v = v.max(lo).min(hi));
            }
        }
    }

    /// Output rows `first_row..` (`first_row` a multiple of [`MR`], `out`
    /// whole rows of `p`) with the AVX-512F microkernel.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX-512F; `x.len() == ci * p`; `out.len()` a
    /// multiple of `p` with `first_row + out.len() / p <= co`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn rows_avx512(&self, x: &[f32], first_row: usize, out: &mut [f32]) {
        let (ci, p) = (self.ci, self.p);
        let rows_total = out.len() / p;
        let panels = rows_total.div_ceil(MR);
        let block = self.block_pixels();
        let first_panel = first_row / MR;
        let mut p0 = 0;
        while p0 < p {
            let pn = block.min(p - p0);
            for q in 0..panels {
                let rows = MR.min(rows_total - q * MR);
                let panel = first_panel + q;
                let w = &self.packed[panel * ci * MR..][..ci * MR];
                let b = &self.bias[panel * MR..][..MR];
                let o = &mut out[q * MR * p..][..rows * p];
                let mut j = 0;
                while j < pn {
                    let n = NR.min(pn - j);
                    let col = p0 + j;
                    let t = Tile {
                        k: ci,
                        w: w.as_ptr(),
                        bias: b.as_ptr(),
                        // SAFETY: col < p, so the pointers stay inside `x`
                        // and `o` (rows of length p).
                        x: unsafe { x.as_ptr().add(col) },
                        ldx: p,
                        n,
                        out: unsafe { o.as_mut_ptr().add(col) },
                        ldo: p,
                        rows,
                        accumulate: self.residual,
                        clamp: self.clamp,
                    };
                    // SAFETY: `w` holds `ci * MR` weights and `b` MR biases;
                    // for k < ci, l < n: x[k * p + col + l] is inside `x`
                    // (col + n <= p, ci rows); for r < rows, l < n:
                    // o[r * p + col + l] is inside `o` (rows rows of p).
                    unsafe {
                        match n.div_ceil(16) {
                            3 => avx512::tile::<3>(&t),
                            2 => avx512::tile::<2>(&t),
                            _ => avx512::tile::<1>(&t),
                        }
                    }
                    j += n;
                }
            }
            p0 += pn;
        }
    }
}

impl PointWise {
    /// Output rows `first_row..` (`first_row` a multiple of 16, `out` whole
    /// groups of 16 rows of `p`) with the transposed AVX-512F microkernel:
    /// up to 48 output channels (three vectors) times up to 8 pixels.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX-512F; `self.mr == 16` (so `co % 16 == 0` and
    /// `p < 64`); `x.len() == ci * p`; `out.len()` a multiple of `16 * p`
    /// with `first_row + out.len() / p <= co`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn rows_avx512_transposed(&self, x: &[f32], first_row: usize, out: &mut [f32]) {
        let (ci, p) = (self.ci, self.p);
        let groups = out.len() / p / 16;
        let g0 = first_row / 16;
        let mut g = 0;
        while g < groups {
            let nv = (groups - g).min(3);
            let w = &self.packed[(g0 + g) * ci * 16..][..nv * ci * 16];
            let b = &self.bias[(g0 + g) * 16..][..nv * 16];
            let o = &mut out[g * 16 * p..][..nv * 16 * p];
            let mut p0 = 0;
            while p0 < p {
                let mp = (p - p0).min(8);
                let t = TileT {
                    k: ci,
                    w: w.as_ptr(),
                    wstride: ci * 16,
                    bias: b.as_ptr(),
                    // SAFETY: p0 < p: inside row 0 of `x` and of `o`.
                    x: unsafe { x.as_ptr().add(p0) },
                    ldx: p,
                    out: unsafe { o.as_mut_ptr().add(p0) },
                    ldo: p,
                    accumulate: self.residual,
                    clamp: self.clamp,
                };
                macro_rules! by_pixels {
                    ($nv:literal) => {
                        match mp {
                            8 => avx512::tile_transposed::<8, $nv>(&t),
                            7 => avx512::tile_transposed::<7, $nv>(&t),
                            6 => avx512::tile_transposed::<6, $nv>(&t),
                            5 => avx512::tile_transposed::<5, $nv>(&t),
                            4 => avx512::tile_transposed::<4, $nv>(&t),
                            3 => avx512::tile_transposed::<3, $nv>(&t),
                            2 => avx512::tile_transposed::<2, $nv>(&t),
                            _ => avx512::tile_transposed::<1, $nv>(&t),
                        }
                    };
                }
                // SAFETY: `w` holds nv groups of ci * 16 weights, `b` nv * 16
                // biases; x[k * p + p0 + i] for k < ci, i < mp <= p - p0 is
                // inside `x`; o[(16 * j + l) * p + p0 + i] for j < nv,
                // l < 16, i < mp is inside `o` (nv * 16 rows of p); the
                // offsets (< 48 * 64) fit the gathers' i32 indices.
                unsafe {
                    match nv {
                        3 => by_pixels!(3),
                        2 => by_pixels!(2),
                        _ => by_pixels!(1),
                    }
                }
                p0 += mp;
            }
            g += nv;
        }
    }
}

/// One transposed microkernel call: `MP` pixels times `16 * NV` output
/// channels. Raw pointers; the caller vouches for the bounds.
#[cfg(target_arch = "x86_64")]
struct TileT {
    /// Sum length (input channels).
    k: usize,
    /// Group `j`'s weights for input channel `k`: 16 floats at
    /// `w + j * wstride + k * 16`.
    w: *const f32,
    wstride: usize,
    /// `16 * NV` biases.
    bias: *const f32,
    /// `X[0, p0]`; row `k` at `x + k * ldx`.
    x: *const f32,
    ldx: usize,
    /// `out[0, p0]`; row `r` at `out + r * ldo`.
    out: *mut f32,
    ldo: usize,
    /// Add the current contents of `out` (the residual) before the clamp.
    accumulate: bool,
    clamp: Option<(f32, f32)>,
}

/// One microkernel call: `rows` (<= [`MR`]) output rows times `n` (<= [`NR`])
/// pixels. Raw pointers; the caller vouches for the bounds (see
/// `avx512::tile`).
#[cfg(target_arch = "x86_64")]
struct Tile {
    /// Sum length (input channels).
    k: usize,
    /// `k * MR` packed weights of one panel.
    w: *const f32,
    /// `MR` biases.
    bias: *const f32,
    /// `X[0, col]`; row `k` at `x + k * ldx`.
    x: *const f32,
    ldx: usize,
    /// Valid pixels, 1..=NR.
    n: usize,
    /// `out[0, col]`; row `r` at `out + r * ldo`.
    out: *mut f32,
    ldo: usize,
    /// Valid rows, 1..=MR.
    rows: usize,
    /// Add the current contents of `out` (the residual) before the clamp.
    accumulate: bool,
    clamp: Option<(f32, f32)>,
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Tile, MR};
    use std::arch::x86_64::*;

    /// `MR x (16 * NV)` tile: accumulators start at the bias, then one fused
    /// multiply-add per input channel; residual, clamp, masked store.
    ///
    /// # Safety
    ///
    /// AVX-512F. `t.w` readable for `t.k * MR` floats, `t.bias` for `MR`;
    /// `t.x + k * t.ldx + l` readable for `k < t.k`, `l < t.n`;
    /// `t.out + r * t.ldo + l` readable and writable for `r < t.rows`,
    /// `l < t.n`; `t.n <= 16 * NV`, `t.rows <= MR`. Masked-off lanes are
    /// never touched (masked loads and stores do not fault).
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) unsafe fn tile<const NV: usize>(t: &Tile) {
        let mut masks = [0u16; NV];
        for (j, m) in masks.iter_mut().enumerate() {
            let lanes = t.n.saturating_sub(16 * j).min(16);
            *m = ((1u32 << lanes) - 1) as u16;
        }
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: r < MR and `t.bias` holds MR floats.
            let b = _mm512_set1_ps(unsafe { *t.bias.add(r) });
            for a in row.iter_mut() {
                *a = b;
            }
        }
        let mut xp = t.x;
        let mut wp = t.w;
        for _ in 0..t.k {
            let mut xv = [_mm512_setzero_ps(); NV];
            for j in 0..NV {
                // SAFETY: lanes enabled in masks[j] are < t.n pixels of row k.
                xv[j] = unsafe { _mm512_maskz_loadu_ps(masks[j], xp.add(16 * j)) };
            }
            for (r, row) in acc.iter_mut().enumerate() {
                // SAFETY: the panel holds MR weights per input channel.
                let w = _mm512_set1_ps(unsafe { *wp.add(r) });
                for j in 0..NV {
                    row[j] = _mm512_fmadd_ps(w, xv[j], row[j]);
                }
            }
            // `wrapping_add`: after the last channel these point one row
            // past the end and are never read.
            xp = xp.wrapping_add(t.ldx);
            wp = wp.wrapping_add(MR);
        }
        for (r, row) in acc.iter().enumerate() {
            if r >= t.rows {
                break;
            }
            for j in 0..NV {
                let o = t.out.wrapping_add(r * t.ldo + 16 * j);
                let mut v = row[j];
                if t.accumulate {
                    // SAFETY: enabled lanes are valid pixels of a valid row.
                    v = _mm512_add_ps(v, unsafe { _mm512_maskz_loadu_ps(masks[j], o) });
                }
                if let Some((lo, hi)) = t.clamp {
                    v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(lo)), _mm512_set1_ps(hi));
                }
                // SAFETY: as above.
                unsafe { _mm512_mask_storeu_ps(o, masks[j], v) };
            }
        }
    }

    /// `MP` pixels times `16 * NV` output channels: accumulators start at
    /// the biases, one fused multiply-add per input channel with the pixel
    /// broadcast; the vectors run down output channels, so results are
    /// scattered (and residuals gathered) with a stride of `ldo`.
    ///
    /// # Safety
    ///
    /// AVX-512F. `t.w + j * t.wstride + k * 16 + l` readable for `j < NV`,
    /// `k < t.k`, `l < 16`; `t.bias` for `16 * NV`; `t.x + k * t.ldx + i`
    /// for `k < t.k`, `i < MP`; `t.out + r * t.ldo + i` readable and
    /// writable for `r < 16 * NV`, `i < MP`; `15 * t.ldo` fits an `i32`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) unsafe fn tile_transposed<const MP: usize, const NV: usize>(t: &super::TileT) {
        let mut acc = [[_mm512_setzero_ps(); NV]; MP];
        for j in 0..NV {
            // SAFETY: 16 * NV biases.
            let b = unsafe { _mm512_loadu_ps(t.bias.add(16 * j)) };
            for row in acc.iter_mut() {
                row[j] = b;
            }
        }
        let mut xp = t.x;
        let mut wp = t.w;
        for _ in 0..t.k {
            let mut wv = [_mm512_setzero_ps(); NV];
            for (j, v) in wv.iter_mut().enumerate() {
                // SAFETY: group j's 16 weights of this input channel.
                *v = unsafe { _mm512_loadu_ps(wp.add(j * t.wstride)) };
            }
            for (i, row) in acc.iter_mut().enumerate() {
                // SAFETY: i < MP pixels of this input channel's row.
                let xb = _mm512_set1_ps(unsafe { *xp.add(i) });
                for j in 0..NV {
                    row[j] = _mm512_fmadd_ps(xb, wv[j], row[j]);
                }
            }
            // After the last channel these point past the end, never read.
            xp = xp.wrapping_add(t.ldx);
            wp = wp.wrapping_add(16);
        }
        let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let idx = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(t.ldo as i32));
        for (i, row) in acc.iter().enumerate() {
            for (j, &sum) in row.iter().enumerate() {
                let base = t.out.wrapping_add(16 * j * t.ldo + i);
                let mut v = sum;
                if t.accumulate {
                    // SAFETY: rows 16j..16j+16 of pixel i are valid.
                    v = _mm512_add_ps(v, unsafe { _mm512_i32gather_ps::<4>(idx, base) });
                }
                if let Some((lo, hi)) = t.clamp {
                    v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(lo)), _mm512_set1_ps(hi));
                }
                // SAFETY: as above.
                unsafe { _mm512_i32scatter_ps::<4>(base, idx, v) };
            }
        }
    }
}

impl Op for PointWise {
    fn name(&self) -> StaticName {
        if self.im2col.is_some() {
            "MainstreamConvIm2col".into()
        } else {
            "MainstreamPointWise".into()
        }
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let kernel = match &self.im2col {
            Some(g) => format!("kernel {}x{} stride {}x{} ", g.kh, g.kw, g.sy, g.sx),
            None => String::new(),
        };
        Ok(vec![format!(
            "{kernel}ci: {} co: {} pixels: {} clamp: {:?} residual: {}",
            self.ci, self.co, self.p, self.clamp, self.residual
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for PointWise {
    fn eval(&self, _ctx: &EvalContext, mut inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs.len() == 1 + usize::from(self.residual));
        let mut out = if self.residual {
            // tract passes its last reference to the skip tensor when this is
            // its last use: `into_tensor` then takes it without a copy.
            let skip = inputs.pop().context("residual input")?.into_tensor();
            ensure!(skip.datum_type() == f32::datum_type() && skip.shape() == &*self.out_shape);
            skip
        } else {
            // SAFETY: `compute` writes every element of the output (every
            // row, every pixel) before anything reads it.
            unsafe { Tensor::uninitialized::<f32>(&self.out_shape)? }
        };
        let x = &inputs[0];
        ensure!(x.datum_type() == f32::datum_type() && x.shape() == &*self.in_shape);
        let x = x.try_as_plain_ram()?.as_slice::<f32>()?;
        let mut view = out.try_as_plain_ram_mut()?;
        let y = view.as_slice_mut::<f32>()?;
        match &self.im2col {
            None => self.compute(x, y)?,
            Some(geo) => COLS.with_borrow_mut(|cols| {
                if cols.len() < geo.len() {
                    cols.resize(geo.len(), 0.0);
                }
                let cols = &mut cols[..geo.len()];
                geo.fill(x, cols);
                self.compute(cols, y)
            })?,
        }
        Ok(tvec!(out.into_tvalue()))
    }

    op_out_of_plan!();
}

impl TypedOp for PointWise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 + usize::from(self.residual));
        Ok(tvec!(f32::fact(&*self.out_shape)))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            (self.ci * self.co * self.p).into()
        )))
    }

    as_op!();
}

/// The `f32` data of a constant outlet, if it is one.
fn konst_f32(model: &TypedModel, outlet: OutletId) -> TractResult<Option<Arc<Tensor>>> {
    let Some(k) = model.outlet_fact(outlet)?.konst.clone() else {
        return Ok(None);
    };
    Ok((k.datum_type() == f32::datum_type()).then_some(k))
}

/// The single consumer of `id`'s only output, if `id`'s output has exactly
/// one consumer and is not a model output.
fn only_succ(model: &TypedModel, id: usize) -> TractResult<Option<&TypedNode>> {
    if model.outputs.contains(&OutletId::new(id, 0)) {
        return Ok(None);
    }
    model.single_succ(id)
}

/// For a binary node reading `id`: its other input.
fn other_input(node: &TypedNode, id: usize) -> Option<OutletId> {
    if node.inputs.len() != 2 {
        return None;
    }
    let mine = node.inputs.iter().filter(|i| i.node == id).count();
    if mine != 1 {
        return None;
    }
    node.inputs.iter().find(|i| i.node != id).copied()
}

/// The scalar constant of binary node `node` (other input than `id`).
fn scalar_other(model: &TypedModel, node: &TypedNode, id: usize) -> TractResult<Option<f32>> {
    let Some(other) = other_input(node, id) else {
        return Ok(None);
    };
    let Some(k) = konst_f32(model, other)? else {
        return Ok(None);
    };
    if k.len() != 1 {
        return Ok(None);
    }
    Ok(Some(k.try_as_plain_ram()?.as_slice::<f32>()?[0]))
}

/// `Max(x, lo)` then `Min(x, hi)` after node `id`: `(lo, hi, Min's id)`.
fn relu6_after(model: &TypedModel, id: usize) -> TractResult<Option<(f32, f32, usize)>> {
    let Some(max) = only_succ(model, id)? else {
        return Ok(None);
    };
    if max.op.name() != "Max" {
        return Ok(None);
    }
    let Some(lo) = scalar_other(model, max, id)? else {
        return Ok(None);
    };
    let Some(min) = only_succ(model, max.id)? else {
        return Ok(None);
    };
    if min.op.name() != "Min" {
        return Ok(None);
    }
    let Some(hi) = scalar_other(model, min, max.id)? else {
        return Ok(None);
    };
    Ok(Some((lo, hi, min.id)))
}

/// Where a 1x1 convolution's channels are in an `EinSum`'s input and output.
#[derive(Debug, PartialEq, Eq)]
struct Conv1x1Axes {
    /// The input's channel axis.
    c_in: usize,
    /// The output's channel axis.
    c_out: usize,
    /// Input axes absent from the output (they must have extent 1).
    dropped: Vec<usize>,
}

/// The axes of an `EinSum` that is a 1x1 convolution
/// (`out[.., o, ..] = sum_i X[.., i, ..] * W[o, i]`, every other axis of `X`
/// passed through in order or dropped), or `None`.
fn conv1x1_axes(op: &EinSum) -> Option<Conv1x1Axes> {
    if op.q_params.is_some() || op.operating_dt != f32::datum_type() {
        return None;
    }
    let (ins, outs) = op.axes.to_strs();
    if ins.len() != 2 || outs.len() != 1 {
        return None;
    }
    let x: Vec<char> = ins[0].chars().collect();
    let w: Vec<char> = ins[1].chars().collect();
    let y: Vec<char> = outs[0].chars().collect();
    let &[o, i] = w.as_slice() else {
        return None;
    };
    let distinct = |v: &[char]| v.iter().enumerate().all(|(a, c)| !v[..a].contains(c));
    if o == i || !distinct(&x) || !distinct(&y) || x.contains(&o) || y.contains(&i) {
        return None;
    }
    let c_in = x.iter().position(|&c| c == i)?;
    let c_out = y.iter().position(|&c| c == o)?;
    // The output is the input with i renamed o, minus the dropped axes.
    let renamed: Vec<char> = x.iter().map(|&c| if c == i { o } else { c }).collect();
    let dropped: Vec<usize> = (0..x.len()).filter(|&a| !y.contains(&renamed[a])).collect();
    let kept: Vec<char> = renamed.iter().copied().filter(|c| y.contains(c)).collect();
    (kept == y).then_some(Conv1x1Axes {
        c_in,
        c_out,
        dropped,
    })
}

/// The op for EinSum node `node` if it is a 1x1 convolution this op covers.
fn for_einsum(
    model: &TypedModel,
    node: &TypedNode,
    axes: &Conv1x1Axes,
) -> TractResult<Option<PointWise>> {
    if node.inputs.len() != 2 {
        return Ok(None);
    }
    let x = model.outlet_fact(node.inputs[0])?;
    let (Some(shape), Some(out_shape)) = (
        x.shape.as_concrete(),
        node.outputs[0].fact.shape.as_concrete(),
    ) else {
        return Ok(None);
    };
    // Matrix-vector products (the classifier) and tiny planes stay with
    // tract: a tile would use a few of its 16 lanes.
    let pixels = shape
        .get(axes.c_in + 1..)
        .map(|s| s.iter().product::<usize>());
    if pixels.is_none_or(|p| p < MIN_PIXELS)
        || x.datum_type != f32::datum_type()
        || axes.dropped.iter().any(|&a| shape.get(a) != Some(&1))
    {
        return Ok(None);
    }
    let Some(w) = konst_f32(model, node.inputs[1])? else {
        return Ok(None);
    };
    let (&[co, ci], Some(&xc)) = (w.shape(), shape.get(axes.c_in)) else {
        return Ok(None);
    };
    if ci != xc || out_shape.get(axes.c_out) != Some(&co) {
        return Ok(None);
    }
    let weights = w.try_as_plain_ram()?.as_slice::<f32>()?;
    let Some(op) = PointWise::new(shape, axes.c_in, co, weights, &[]) else {
        return Ok(None);
    };
    // Dropped axes have extent 1: the output's layout is the same.
    if out_shape.iter().product::<usize>() != co * op.p {
        return Ok(None);
    }
    Ok(Some(PointWise {
        out_shape: out_shape.into(),
        ..op
    }))
}

/// The op for a full (group 1) 2D convolution node, if this op covers it:
/// NCHW or CHW, `f32`, constant OIHW weights and bias, explicit padding,
/// no dilation, a kernel larger than 1x1 (1x1 ones are `EinSum`s).
fn for_conv(model: &TypedModel, node: &TypedNode, conv: &Conv) -> TractResult<Option<PointWise>> {
    let ps = &conv.pool_spec;
    let pads = match &ps.padding {
        PaddingSpec::Explicit(b, a) if b.len() == 2 && a.len() == 2 => (b[0], b[1]),
        PaddingSpec::Valid => (0, 0),
        _ => return Ok(None),
    };
    if conv.q_params.is_some()
        || conv.group != 1
        || conv.kernel_fmt != KernelFormat::OIHW
        || !matches!(ps.data_format, DataFormat::NCHW | DataFormat::CHW)
        || ps.kernel_shape.len() != 2
        || ps.kernel_shape.iter().product::<usize>() <= 1
        || ps.dilation(0) != 1
        || ps.dilation(1) != 1
        || node.inputs.len() != 3
    {
        return Ok(None);
    }
    let x = model.outlet_fact(node.inputs[0])?;
    let y = &node.outputs[0].fact;
    let (Some(xs), Some(ys)) = (x.shape.as_concrete(), y.shape.as_concrete()) else {
        return Ok(None);
    };
    if x.datum_type != f32::datum_type() || xs.len() != ys.len() || xs.len() < 3 {
        return Ok(None);
    }
    let (Some(k), Some(b)) = (
        konst_f32(model, node.inputs[1])?,
        konst_f32(model, node.inputs[2])?,
    ) else {
        return Ok(None);
    };
    let n = ys.len();
    let (co, oh, ow) = (ys[n - 3], ys[n - 2], ys[n - 1]);
    let (kh, kw) = (ps.kernel_shape[0], ps.kernel_shape[1]);
    if k.shape() != [co, xs[n - 3], kh, kw] {
        return Ok(None);
    }
    let bias = b.try_as_plain_ram()?.as_slice::<f32>()?;
    let bias = match bias.len() {
        1 => vec![bias[0]; co],
        m if m == co => bias.to_vec(),
        _ => return Ok(None),
    };
    Ok(PointWise::conv2d(
        xs,
        co,
        (kh, kw),
        (ps.stride(0), ps.stride(1)),
        pads,
        (oh, ow),
        k.try_as_plain_ram()?.as_slice::<f32>()?,
        &bias,
    ))
}

/// If `add` adds a per-channel constant to `id`'s output (shape all ones but
/// `co` at `c_axis`, or a single value): the `co` biases.
fn bias_of(
    model: &TypedModel,
    add: &TypedNode,
    id: usize,
    rank: usize,
    c_axis: usize,
    co: usize,
) -> TractResult<Option<Vec<f32>>> {
    if add.op.name() != "Add" {
        return Ok(None);
    }
    let Some(other) = other_input(add, id) else {
        return Ok(None);
    };
    let Some(k) = konst_f32(model, other)? else {
        return Ok(None);
    };
    let s = k.shape();
    let v = k.try_as_plain_ram()?.as_slice::<f32>()?;
    let per_channel = s.len() == rank
        && s.iter()
            .enumerate()
            .all(|(a, &d)| d == 1 || (a == c_axis && d == co));
    if !(per_channel || s.is_empty()) {
        return Ok(None);
    }
    Ok(Some(match v.len() {
        1 => vec![v[0]; co],
        n if n == co => v.to_vec(),
        _ => return Ok(None),
    }))
}

/// Replaces every 1x1 convolution (`EinSum` after declutter) this op covers,
/// with the bias `Add`, ReLU6 or residual `Add` that follows it; returns how
/// many. Changes nothing where the kernel is not available.
pub fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    if !kernel_available() {
        return Ok(0);
    }
    let mut done = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let mut last = id;
        let mut op = if let Some(conv) = node.op_as::<Conv>() {
            let Some(op) = for_conv(model, node, conv)? else {
                continue;
            };
            op
        } else if let Some(einsum) = node.op_as::<EinSum>() {
            let Some(axes) = conv1x1_axes(einsum) else {
                continue;
            };
            let Some(mut op) = for_einsum(model, node, &axes)? else {
                continue;
            };
            let rank = op.out_shape.len();
            if let Some(add) = only_succ(model, last)? {
                if let Some(bias) = bias_of(model, add, last, rank, axes.c_out, op.co)? {
                    Arc::make_mut(&mut op.bias)[..op.co].copy_from_slice(&bias);
                    last = add.id;
                }
            }
            op
        } else {
            continue;
        };
        let mut skip = None;
        if let Some(add) = only_succ(model, last)? {
            if add.op.name() == "Add" {
                if let Some(other) = other_input(add, last) {
                    let f = model.outlet_fact(other)?;
                    if f.konst.is_none()
                        && f.datum_type == f32::datum_type()
                        && f.shape.as_concrete() == Some(&*op.out_shape)
                    {
                        skip = Some(other);
                        op = op.with_residual();
                        last = add.id;
                    }
                }
            }
        }
        if let Some((lo, hi, min)) = relu6_after(model, last)? {
            op = op.with_clamp(lo, hi);
            last = min;
        }
        let mut patch = TypedModelPatch::default();
        let mut taps = patch.taps(model, &node.inputs[..1])?;
        if let Some(s) = skip {
            taps.push(patch.tap_model(model, s)?);
        }
        let out = patch.wire_node(&node.name, op, &taps)?[0];
        patch.shunt_outside(model, OutletId::new(last, 0), out)?;
        patch.apply(model)?;
        done += 1;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test data from the crate's generator: `n` values in [-1, 1).
    struct Rng(crate::rng::Rng);

    impl Rng {
        fn vec(&mut self, n: usize) -> Vec<f32> {
            (0..n).map(|_| self.0.unit() as f32 * 2.0 - 1.0).collect()
        }
    }

    /// The definition, in f64.
    #[allow(clippy::too_many_arguments)]
    fn reference(
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
                let mut s = b.get(o).copied().unwrap_or(0.0) as f64;
                for i in 0..ci {
                    s += w[o * ci + i] as f64 * x[i * p + q] as f64;
                }
                if let Some(r) = res {
                    s += r[o * p + q] as f64;
                }
                let mut v = s as f32;
                if let Some((lo, hi)) = clamp {
                    v = v.max(lo).min(hi);
                }
                out[o * p + q] = v;
            }
        }
        out
    }

    fn run_op(op: &PointWise, x: &[f32], res: Option<&[f32]>) -> Vec<f32> {
        let mut out = match res {
            Some(r) => r.to_vec(),
            None => vec![f32::NAN; op.co * op.p],
        };
        op.compute(x, &mut out).expect("shapes match");
        out
    }

    fn assert_close(got: &[f32], want: &[f32], ci: usize, what: &str) {
        assert_eq!(got.len(), want.len());
        // Sums of `ci` products of values in [-1, 1): f32 rounding grows with ci.
        let tol = 1e-5 * (ci as f32).sqrt().max(1.0) * 4.0;
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol * w.abs().max(1.0),
                "{what}: element {i}: got {g}, want {w}"
            );
        }
    }

    #[test]
    fn matches_the_definition_on_awkward_and_mobilenet_shapes() {
        let mut rng = Rng(crate::rng::Rng::new(0x9e37_79b9_7f4a_7c15));
        // (ci, co, pixels): edges of the tile (1, 15, 16, 17, 47, 48, 49, 97),
        // partial weight panels (co not a multiple of 8), and MobileNetV2 layers.
        let shapes = [
            (1, 1, 1),
            (3, 5, 17),
            (16, 8, 47),
            (17, 13, 48),
            (8, 9, 49),
            (32, 16, 97),
            (24, 144, 196),
            (160, 960, 49),
            (960, 160, 49),
            (320, 1280, 49),
            (96, 24, 3136),
            (16, 96, 12544),
            (7, 3, 1000),
        ];
        for (ci, co, p) in shapes {
            let x = rng.vec(ci * p);
            let w = rng.vec(co * ci);
            let b = rng.vec(co);
            let op = PointWise::new(&[1, ci, p, 1], 1, co, &w, &b).expect("valid shape");
            // Small planes with whole vectors of output channels take the
            // channel-vector (transposed) kernel; the others the pixel one.
            let transposed = p < TRANSPOSED_BELOW && co.is_multiple_of(16);
            assert_eq!(op.mr == 16, transposed, "kernel choice for {ci} {co} {p}");
            let got = run_op(&op, &x, None);
            let want = reference(ci, co, p, &x, &w, &b, None, None);
            assert_close(&got, &want, ci, &format!("ci {ci} co {co} p {p}"));
        }
    }

    #[test]
    fn portable_path_matches_the_definition() {
        let mut rng = Rng(crate::rng::Rng::new(7));
        for (ci, co, p) in [(5, 11, 33), (16, 8, 49), (24, 17, 100), (16, 32, 49)] {
            let x = rng.vec(ci * p);
            let w = rng.vec(co * ci);
            let b = rng.vec(co);
            let op = PointWise::new(&[1, ci, p], 1, co, &w, &b)
                .expect("valid shape")
                .with_clamp(-0.5, 0.5);
            let mut got = vec![f32::NAN; co * p];
            op.rows_portable(&x, 0, &mut got);
            let want = reference(ci, co, p, &x, &w, &b, None, Some((-0.5, 0.5)));
            assert_close(&got, &want, ci, "portable");
        }
    }

    #[test]
    fn residual_is_added_before_the_clamp() {
        let mut rng = Rng(crate::rng::Rng::new(42));
        // Pixel-vector kernel (co 24, 13) and channel-vector kernel (co 32, 48
        // on small planes, whose residual is gathered and scattered).
        for (ci, co, p) in [
            (24, 24, 49),
            (9, 13, 50),
            (144, 24, 3136),
            (24, 32, 49),
            (40, 48, 13),
        ] {
            let x = rng.vec(ci * p);
            let w = rng.vec(co * ci);
            let b = rng.vec(co);
            let r: Vec<f32> = rng.vec(co * p).iter().map(|v| 3.0 * v).collect();
            let op = PointWise::new(&[1, ci, 1, p], 1, co, &w, &b)
                .expect("valid shape")
                .with_residual();
            let got = run_op(&op, &x, Some(&r));
            let want = reference(ci, co, p, &x, &w, &b, Some(&r), None);
            assert_close(&got, &want, ci, "residual");
            let clamped = op.with_clamp(0.0, 0.5);
            let got = run_op(&clamped, &x, Some(&r));
            let want = reference(ci, co, p, &x, &w, &b, Some(&r), Some((0.0, 0.5)));
            assert_close(&got, &want, ci, "residual then clamp");
            assert!(got.iter().all(|v| (0.0..=0.5).contains(v)));
        }
    }

    #[test]
    fn relu6_clamp_bounds_every_output() {
        let mut rng = Rng(crate::rng::Rng::new(3));
        let (ci, co, p) = (32, 24, 61);
        let x: Vec<f32> = rng.vec(ci * p).iter().map(|v| 10.0 * v).collect();
        let w = rng.vec(co * ci);
        let op = PointWise::new(&[1, ci, p], 1, co, &w, &[])
            .expect("valid shape")
            .with_clamp(0.0, 6.0);
        let got = run_op(&op, &x, None);
        let want = reference(ci, co, p, &x, &w, &[], None, Some((0.0, 6.0)));
        assert_close(&got, &want, ci, "relu6");
        assert!(got.contains(&0.0) && got.contains(&6.0));
    }

    /// A 2D convolution by its definition (f64), zero padding.
    #[allow(clippy::too_many_arguments)]
    fn conv_reference(
        (c, h, w): (usize, usize, usize),
        co: usize,
        (kh, kw): (usize, usize),
        (sy, sx): (usize, usize),
        (pt, pl): (usize, usize),
        (oh, ow): (usize, usize),
        x: &[f32],
        wt: &[f32],
        b: &[f32],
    ) -> Vec<f32> {
        let mut out = vec![0f32; co * oh * ow];
        for o in 0..co {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = b[o] as f64;
                    for ci in 0..c {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * sy + ky) as isize - pt as isize;
                                let ix = (ox * sx + kx) as isize - pl as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let xv = x[(ci * h + iy as usize) * w + ix as usize];
                                s += wt[((o * c + ci) * kh + ky) * kw + kx] as f64 * xv as f64;
                            }
                        }
                    }
                    out[(o * oh + oy) * ow + ox] = s as f32;
                }
            }
        }
        out
    }

    #[test]
    fn im2col_convolution_matches_the_definition_with_padding_and_strides() {
        let mut rng = Rng(crate::rng::Rng::new(0x5eed));
        // (c, h, w), co, kernel, stride, pad: the MobileNetV2 stem at a
        // reduced size, odd and even planes, no padding, 5x5, a 2x3 kernel.
        let cases = [
            ((3, 32, 32), 32, (3, 3), (2, 2), (1, 1)),
            ((3, 33, 31), 16, (3, 3), (2, 2), (1, 1)),
            ((4, 9, 10), 13, (3, 3), (1, 1), (1, 1)),
            ((2, 11, 12), 8, (3, 3), (2, 2), (0, 0)),
            ((5, 14, 15), 7, (5, 5), (2, 2), (2, 2)),
            ((3, 8, 9), 9, (2, 3), (1, 2), (1, 1)),
        ];
        for ((c, h, w), co, (kh, kw), (sy, sx), (pt, pl)) in cases {
            let oh = (h + 2 * pt - kh) / sy + 1;
            let ow = (w + 2 * pl - kw) / sx + 1;
            let x = rng.vec(c * h * w);
            let wt = rng.vec(co * c * kh * kw);
            let b = rng.vec(co);
            let op = PointWise::conv2d(
                &[1, c, h, w],
                co,
                (kh, kw),
                (sy, sx),
                (pt, pl),
                (oh, ow),
                &wt,
                &b,
            )
            .expect("valid convolution");
            let geo = op.im2col.clone().expect("an im2col op");
            let mut cols = vec![f32::NAN; geo.len()];
            geo.fill(&x, &mut cols);
            let got = run_op(&op, &cols, None);
            let want = conv_reference(
                (c, h, w),
                co,
                (kh, kw),
                (sy, sx),
                (pt, pl),
                (oh, ow),
                &x,
                &wt,
                &b,
            );
            let what = format!("{c}x{h}x{w} k {kh}x{kw} s {sy}x{sx} p {pt}x{pl}");
            assert_close(&got, &want, c * kh * kw, &what);
        }
    }

    #[test]
    fn mismatched_shapes_are_refused_not_computed() {
        let w = vec![0.5f32; 6];
        assert!(
            PointWise::new(&[1, 3, 4], 1, 3, &w, &[]).is_none(),
            "weights 6 != 3x3"
        );
        assert!(
            PointWise::new(&[2, 3, 4], 1, 2, &w, &[]).is_none(),
            "batch 2"
        );
        assert!(
            PointWise::new(&[1, 3, 0], 1, 2, &w, &[]).is_none(),
            "no pixels"
        );
        assert!(
            PointWise::new(&[1, 3, 4], 1, 2, &w, &[1.0]).is_none(),
            "one bias of two"
        );
        let op = PointWise::new(&[1, 3, 4], 1, 2, &w, &[]).expect("valid shape");
        let mut out = vec![0f32; 8];
        assert!(op.compute(&[0.0; 11], &mut out).is_err(), "short input");
        assert!(
            op.compute(&[0.0; 12], &mut out[..7]).is_err(),
            "short output"
        );
    }

    #[test]
    fn einsum_of_a_1x1_convolution_is_recognised_and_others_are_not() {
        let es = |i: &[&str], o: &str| EinSum {
            axes: AxesMapping::from_strs(i, &[o]).expect("valid mapping"),
            operating_dt: f32::datum_type(),
            q_params: None,
        };
        let axes = |c_in, c_out, dropped: &[usize]| {
            Some(Conv1x1Axes {
                c_in,
                c_out,
                dropped: dropped.to_vec(),
            })
        };
        assert_eq!(conv1x1_axes(&es(&["abcd", "eb"], "aecd")), axes(1, 1, &[]));
        assert_eq!(conv1x1_axes(&es(&["bcd", "eb"], "ecd")), axes(0, 0, &[]));
        // The batch axis dropped from the output (a cut at a branch point).
        assert_eq!(conv1x1_axes(&es(&["NIHW", "OI"], "OHW")), axes(1, 0, &[0]));
        assert_eq!(conv1x1_axes(&es(&["abcd", "ed"], "abce")), axes(3, 3, &[]));
        // Transposed weights, a transposed output, the channel dropped.
        assert_eq!(conv1x1_axes(&es(&["abcd", "be"], "aecd")), None);
        assert_eq!(conv1x1_axes(&es(&["abcd", "eb"], "acde")), None);
        assert_eq!(conv1x1_axes(&es(&["abcd", "eb"], "acd")), None);
    }
}
