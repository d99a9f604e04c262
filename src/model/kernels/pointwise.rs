//! The pointwise (1x1 convolution) kernel: `out = clamp(W * X + b [+ out])`
//! for one image, `W` packed once into panels, `X` read in place.
//!
//! For one image (NCHW, batch 1, `f32`) a 1x1 convolution is the matrix
//! product `out[co, p] = bias[co] + sum_ci W[co, ci] * X[ci, p]`, `p` running
//! over the `h * w` pixels. tract packs `X` into its kernel's panel layout on
//! every frame and runs it at ~60 GFLOP/s on the layer shapes of MobileNetV2
//! (docs/engine.md). This kernel packs the weights once, when it is built,
//! and reads `X` in place: every row of `X` is contiguous along `p`, so one
//! microkernel tile loads three 16-lane vectors of a row per step and
//! multiplies them by 8 broadcast weights (24 accumulators in registers,
//! AVX-512F; the last tile of a row is masked, so every shape is exact).
//! Pixels are processed in blocks whose slice of `X` stays in L2 while every
//! panel of 8 output channels passes over it. Planes under 64 pixels
//! (MobileNetV2's 7x7) with whole vectors of output channels use a
//! transposed tile instead: 48 output channels x 8 pixels, vectors along
//! the channels, results transposed in registers and stored as rows of
//! pixels, so no lane idles at the plane's edge.
//!
//! A clamp (ReLU6) and a residual (added in place into `out`) are applied
//! in the tile, before the store.
//!
//! Arithmetic differs from tract's in the order of the sum (fused
//! multiply-adds, bias first); the logits stay within 1e-4 of tract's
//! (docs/engine.md, "Checks"). x86_64 with AVX-512F runs the tiles above;
//! with AVX2+FMA only, a 4-channel x 24-pixel tile of 12 ymm accumulators
//! (same order of the sum, so the same bits); aarch64 an 8-channel x
//! 12-pixel NEON tile of 24 q accumulators (same order again; `neon.rs`);
//! anything else, or a forced `MAINSTREAM_KERNEL=portable`, the portable
//! rows ([`Simd`], `kernels::path`).
// The AVX-512F tiles take raw pointers, and the output tensor is allocated
// uninitialised because the kernel writes every element.
#![allow(
    unsafe_code,
    reason = "AVX-512F and AVX2 intrinsics on raw pointers; uninitialised outputs it fully writes"
)]

mod gemv;

// The NEON tiles, in a file of their own; a child module, so that they see
// the private panels whose lengths their unsafe loads rely on.
#[cfg(target_arch = "aarch64")]
#[path = "neon.rs"]
mod neon;

use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// Output channels per weight panel: the rows of one microkernel tile.
const MR: usize = 8;
/// Pixels per full microkernel tile (three 16-lane vectors); blocks of
/// pixels are whole multiples of it, so of the AVX2 and NEON tiles' too.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const NR: usize = 48;
/// Bytes of `X` one block of pixels may occupy (about a quarter of Zen 4's
/// L2, leaving room for the weights and the output tiles).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const BLOCK_BYTES: usize = 256 * 1024;
/// Planes of at least this many pixels (56x56) are split over the
/// intra-op pool by pixels, each thread computing every output channel of
/// its columns: it reads only its columns of `X` and writes only its
/// columns of `out`, the parts of the neighbouring ops' tensors its core
/// already holds (the depthwise op splits the same planes by rows). Split
/// by output channels instead, every thread reads all of `X`, half of it
/// from the other core's cache: on MobileNetV2 two threads were then slower
/// than one. Smaller planes are split by output channels, like the
/// depthwise op's there (docs/engine.md, "Two cores: our fork-join pool").
const SPLIT_PIXELS_FROM: usize = 3136;
/// Boundaries of a split by pixels: whole tiles of every kernel (48 pixels
/// AVX-512F, 24 AVX2, 8 transposed).
pub(crate) const SPLIT_ALIGN: usize = 48;
/// Planes smaller than this (MobileNetV2's 7x7 = 49 pixels) use the
/// transposed kernel when `co` is a multiple of 16: vectors along output
/// channels instead of pixels, so no lane is idle at the plane's edge.
const TRANSPOSED_BELOW: usize = 64;

/// Which tiles a kernel runs: chosen when the network is built
/// ([`super::path::KernelPath`]) and checked again on every call, so a
/// kernel never runs instructions the CPU lacks (it falls back to the
/// portable rows instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Simd {
    /// The AVX-512F tiles (pixel vectors, or the transposed tile).
    Avx512,
    /// The AVX2+FMA tiles (4 output channels x 24 pixels).
    Avx2,
    /// The NEON tiles (8 output channels x 12 pixels, aarch64).
    Neon,
    /// Plain Rust rows.
    Portable,
}

/// The packed weights and biases of one 1x1 convolution (`ci` input
/// channels, `co` output channels, `p` pixels), with its fused clamp and
/// residual. The lengths of `packed` and `bias` are what the unsafe tiles
/// rely on, so the fields are private and set only by [`PackedGemm::new`].
#[derive(Debug, Clone)]
pub(crate) struct PackedGemm {
    /// Input channels (the sum's length).
    ci: usize,
    /// Output channels.
    co: usize,
    /// Pixels per channel.
    p: usize,
    /// A fused `min(max(x, lo), hi)` applied last.
    clamp: Option<(f32, f32)>,
    /// Whether `out` holds a residual on entry, added before the clamp.
    residual: bool,
    /// Output channels per weight panel: [`MR`], or 16 for the transposed
    /// kernel (one vector of output channels).
    mr: usize,
    /// Weights in panels of `mr` output channels: `W[q * mr + r, k]` at
    /// `(q * ci + k) * mr + r`; rows past `co` are zero.
    packed: Arc<Vec<f32>>,
    /// Biases, zero-padded to whole panels.
    bias: Arc<Vec<f32>>,
    /// The tiles that run it.
    simd: Simd,
}

/// Bitwise equality (tract's op equality is `Eq`; weights compared by bits).
impl PartialEq for PackedGemm {
    fn eq(&self, o: &Self) -> bool {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let clamp = |c: Option<(f32, f32)>| c.map(|(a, b)| (a.to_bits(), b.to_bits()));
        (self.ci, self.co, self.p, self.residual, self.mr, self.simd)
            == (o.ci, o.co, o.p, o.residual, o.mr, o.simd)
            && clamp(self.clamp) == clamp(o.clamp)
            && bits(&self.packed) == bits(&o.packed)
            && bits(&self.bias) == bits(&o.bias)
    }
}

impl Eq for PackedGemm {}

impl PackedGemm {
    /// The kernel for `weights` (`co x ci`, row-major) and `bias` (`co`, or
    /// empty for none) on `p` pixels. `None` if a size is zero or the
    /// lengths do not fit together.
    pub(crate) fn new(
        ci: usize,
        co: usize,
        p: usize,
        weights: &[f32],
        bias: &[f32],
    ) -> Option<PackedGemm> {
        if ci == 0
            || co == 0
            || p == 0
            || weights.len() != co.checked_mul(ci)?
            || !(bias.is_empty() || bias.len() == co)
        {
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
        Some(PackedGemm {
            ci,
            co,
            p,
            clamp: None,
            residual: false,
            mr,
            packed: Arc::new(packed),
            bias: Arc::new(padded_bias),
            simd: Simd::Portable,
        })
    }

    /// The same kernel run by the `simd` tiles (portable rows where the CPU
    /// lacks them).
    pub(crate) fn with_simd(self, simd: Simd) -> PackedGemm {
        PackedGemm { simd, ..self }
    }

    /// The tiles that run it.
    pub(crate) fn simd(&self) -> Simd {
        self.simd
    }

    /// The same kernel with a clamp applied last.
    pub(crate) fn with_clamp(self, lo: f32, hi: f32) -> PackedGemm {
        PackedGemm {
            clamp: Some((lo, hi)),
            ..self
        }
    }

    /// The same kernel adding the residual that `out` holds on entry, before
    /// the clamp.
    pub(crate) fn with_residual(self) -> PackedGemm {
        PackedGemm {
            residual: true,
            ..self
        }
    }

    /// Sets the `co` biases to `bias` (a following `Add` folded in); false,
    /// changing nothing, if `bias` is not `co` long.
    pub(crate) fn set_bias(&mut self, bias: &[f32]) -> bool {
        if bias.len() != self.co {
            return false;
        }
        Arc::make_mut(&mut self.bias)[..self.co].copy_from_slice(bias);
        true
    }

    /// Input channels.
    pub(crate) fn ci(&self) -> usize {
        self.ci
    }

    /// Output channels.
    pub(crate) fn co(&self) -> usize {
        self.co
    }

    /// Pixels per channel.
    pub(crate) fn pixels(&self) -> usize {
        self.p
    }

    /// The fused clamp, if any.
    pub(crate) fn clamp(&self) -> Option<(f32, f32)> {
        self.clamp
    }

    /// Whether a residual is added.
    pub(crate) fn residual(&self) -> bool {
        self.residual
    }

    /// A new tensor of `shape` (`co * p` elements) holding the output for
    /// `x` (`ci * p`); for a kernel without a residual.
    pub(crate) fn compute_new(&self, x: &[f32], shape: &[usize]) -> TractResult<Tensor> {
        ensure!(!self.residual && shape.iter().product::<usize>() == self.co * self.p);
        // SAFETY: `compute` writes every element of `out` (every row, every
        // pixel) before anything reads it, or fails before returning it.
        let mut out = unsafe { Tensor::uninitialized::<f32>(shape)? };
        self.compute(x, out.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?)?;
        Ok(out)
    }
    /// Computes the output: `out` holds the residual on entry if the op has
    /// one (it is added in place), anything otherwise; it is fully written.
    /// `x.len()` must be `ci * p` and `out.len()` `co * p` (checked).
    pub(crate) fn compute(&self, x: &[f32], out: &mut [f32]) -> TractResult<()> {
        ensure!(x.len() == self.ci * self.p && out.len() == self.co * self.p);
        let p = self.p;
        if p == 1 {
            // A classifier: its weight panels split over the pool (each
            // thread reads half of them, the product being memory-bound).
            let rows = if self.co.is_multiple_of(self.mr) {
                self.mr
            } else {
                self.co
            };
            return super::pool::par_chunks_mut(out, rows, self.co * self.ci, |first, chunk| {
                self.gemv(x, first * rows, chunk);
                Ok(())
            });
        }
        if p >= SPLIT_PIXELS_FROM && matches!(self.simd, Simd::Avx512 | Simd::Avx2 | Simd::Portable)
        {
            return self.compute_by_pixels(x, out);
        }
        // Whole panels per chunk when the pool splits the work; one chunk
        // when the last panel is partial.
        let rows_per_chunk = if self.co.is_multiple_of(self.mr) {
            self.mr
        } else {
            self.co
        };
        let multiply_adds = out.len() * self.ci;
        crate::model::kernels::pool::par_chunks_mut(
            out,
            rows_per_chunk * p,
            multiply_adds,
            |first, chunk| {
                let first_row = first * rows_per_chunk;
                #[cfg(target_arch = "x86_64")]
                match self.simd {
                    Simd::Avx512 if std::arch::is_x86_feature_detected!("avx512f") => {
                        // SAFETY: the CPU has AVX-512F (checked just above);
                        // the slice lengths were checked at the top of
                        // `compute` and `chunk` is whole rows starting at a
                        // panel boundary.
                        unsafe {
                            if self.mr == 16 {
                                self.rows_avx512_transposed(x, first_row, chunk)
                            } else {
                                self.rows_avx512(x, first_row, chunk)
                            }
                        };
                        return Ok(());
                    }
                    Simd::Avx2
                        if std::arch::is_x86_feature_detected!("avx2")
                            && std::arch::is_x86_feature_detected!("fma") =>
                    {
                        // SAFETY: the CPU has AVX2 and FMA (checked just
                        // above); lengths and the panel boundary as above.
                        unsafe { self.rows_avx2(x, first_row, chunk) };
                        return Ok(());
                    }
                    _ => {}
                }
                #[cfg(target_arch = "aarch64")]
                if self.simd == Simd::Neon && std::arch::is_aarch64_feature_detected!("neon") {
                    // SAFETY: the CPU has NEON (checked just above); lengths
                    // and the panel boundary as above.
                    unsafe { self.rows_neon(x, first_row, chunk) };
                    return Ok(());
                }
                self.rows_portable(x, first_row, chunk);
                Ok(())
            },
        )
    }

    #[cfg(target_arch = "aarch64")]
    /// Pixels per block of the whole plane (the NEON rows).
    fn block_pixels(&self) -> usize {
        self.block_pixels_of(self.p)
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    /// Pixels per block of a range of `n`: the block's slice of `X` fits in
    /// [`BLOCK_BYTES`], blocks are whole tiles except the last.
    fn block_pixels_of(&self, n: usize) -> usize {
        let bytes = self.ci * n * 4;
        let blocks = bytes.div_ceil(BLOCK_BYTES).max(1);
        n.div_ceil(blocks).div_ceil(NR) * NR
    }

    /// [`PackedGemm::compute`] split over the intra-op pool by pixels
    /// ([`SPLIT_PIXELS_FROM`]): each part computes every output channel of
    /// its columns, whole tiles ([`SPLIT_ALIGN`]). The same sums in the same
    /// order per output as a split by channels or none: the same bits.
    fn compute_by_pixels(&self, x: &[f32], out: &mut [f32]) -> TractResult<()> {
        let out = super::pool::SharedSlice::new(out);
        let multiply_adds = self.co * self.p * self.ci;
        super::pool::par_ranges(self.p, SPLIT_ALIGN, multiply_adds, |cols| {
            let b = Block {
                first_row: 0,
                rows: self.co,
                cols,
                out: out.ptr(),
            };
            // SAFETY: `x` and `out` have the lengths `compute` checked; the
            // block is every row, columns inside `0..p`; `par_ranges` hands
            // each call columns no other call gets, so no other thread
            // touches this block's elements, and `out` stays borrowed until
            // every call has returned.
            unsafe { self.block(x, b) };
            Ok(())
        })
    }

    /// Dispatches a block to the tiles `simd` names (the portable rows
    /// where the CPU lacks them).
    ///
    /// # Safety
    ///
    /// As for [`PackedGemm::block_portable`], and `b.first_row` a multiple
    /// of `mr`.
    unsafe fn block(&self, x: &[f32], b: Block) {
        #[cfg(target_arch = "x86_64")]
        match self.simd {
            Simd::Avx512 if std::arch::is_x86_feature_detected!("avx512f") => {
                // SAFETY: the CPU has AVX-512F (checked just above); the
                // block's promises are the caller's.
                unsafe {
                    if self.mr == 16 {
                        self.block_avx512_transposed(x, b)
                    } else {
                        self.block_avx512(x, b)
                    }
                };
                return;
            }
            Simd::Avx2
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma") =>
            {
                // SAFETY: the CPU has AVX2 and FMA (checked just above);
                // the block's promises are the caller's.
                unsafe { self.block_avx2(x, b) };
                return;
            }
            _ => {}
        }
        // SAFETY: the caller's promises.
        unsafe { self.block_portable(x, b) }
    }

    /// Output rows `first_row..first_row + out.len() / p` in plain Rust
    /// (any CPU; bias, then the input channels in order like the SIMD
    /// kernel, but without fused multiply-adds and with the residual added
    /// first, so results differ from it by rounding).
    fn rows_portable(&self, x: &[f32], first_row: usize, out: &mut [f32]) {
        assert!(x.len() == self.ci * self.p && first_row + out.len() / self.p <= self.co);
        let b = Block::rows(first_row, out, self.p);
        // SAFETY: lengths checked just above; the block is exactly `out`,
        // which this call borrows mutably.
        unsafe { self.block_portable(x, b) }
    }

    /// [`PackedGemm::rows_portable`] on a block.
    ///
    /// # Safety
    ///
    /// `x.len() == ci * p`; `b.first_row + b.rows <= co`; `b.cols` inside
    /// `0..p`; `b.out + r * p + c` valid for reads and writes for
    /// `r < b.rows`, `c` in `b.cols`, and no other thread or reference
    /// touches those elements during the call.
    unsafe fn block_portable(&self, x: &[f32], b: Block) {
        let (ci, p) = (self.ci, self.p);
        for i in 0..b.rows {
            let row = b.first_row + i;
            // SAFETY: row `i`'s columns `b.cols` of the block: valid and
            // ours alone (the caller's promise).
            let o = unsafe {
                std::slice::from_raw_parts_mut(b.out.add(i * p + b.cols.start), b.cols.len())
            };
            let (q, r) = (row / self.mr, row % self.mr);
            let bias = self.bias[row];
            if self.residual {
                o.iter_mut().for_each(|v| *v += bias);
            } else {
                o.fill(bias);
            }
            for (k, xr) in x.chunks_exact(p).enumerate().take(ci) {
                let w = self.packed[(q * ci + k) * self.mr + r];
                for (v, &xv) in o.iter_mut().zip(&xr[b.cols.clone()]) {
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
        // SAFETY: the caller's promises; the block is exactly `out`.
        unsafe { self.block_avx512(x, Block::rows(first_row, out, self.p)) }
    }

    /// [`PackedGemm::rows_avx512`] on a block.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX-512F; `b.first_row` a multiple of [`MR`]; the
    /// rest as for [`PackedGemm::block_portable`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn block_avx512(&self, x: &[f32], b: Block) {
        let (ci, p) = (self.ci, self.p);
        let panels = b.rows.div_ceil(MR);
        let block = self.block_pixels_of(b.cols.len());
        let first_panel = b.first_row / MR;
        let mut p0 = b.cols.start;
        while p0 < b.cols.end {
            let pn = block.min(b.cols.end - p0);
            for q in 0..panels {
                let rows = MR.min(b.rows - q * MR);
                let panel = first_panel + q;
                let w = &self.packed[panel * ci * MR..][..ci * MR];
                let bias = &self.bias[panel * MR..][..MR];
                // Row q * MR of the block, column 0.
                let o = b.out.wrapping_add(q * MR * p);
                let mut j = 0;
                while j < pn {
                    let n = NR.min(pn - j);
                    let col = p0 + j;
                    let t = Tile {
                        k: ci,
                        w: w.as_ptr(),
                        wstep: MR,
                        bias: bias.as_ptr(),
                        // SAFETY: col < p, so the pointer stays inside `x`.
                        x: unsafe { x.as_ptr().add(col) },
                        ldx: p,
                        n,
                        out: o.wrapping_add(col),
                        ldo: p,
                        rows,
                        accumulate: self.residual,
                        clamp: self.clamp,
                    };
                    // SAFETY: `w` holds `ci * MR` weights and `bias` MR
                    // biases; for k < ci, l < n: x[k * p + col + l] is
                    // inside `x` (col + n <= p, ci rows); for r < rows,
                    // l < n: row q * MR + r, column col + l is in the block
                    // (col + n <= b.cols.end), which is ours to write.
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

impl PackedGemm {
    /// Output rows `first_row..` (`first_row` a multiple of `mr`, `out`
    /// whole rows of `p`) with the AVX2+FMA microkernel: 4 output channels
    /// (a quarter or half of a weight panel, whichever layout it was packed
    /// in) times up to 24 pixels, 12 ymm accumulators. Each output is the
    /// bias then one fused multiply-add per input channel in order, as in
    /// the AVX-512F tiles, so both paths give the same bits.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX2 and FMA; `x.len() == ci * p`; `out.len()` a
    /// multiple of `p` with `first_row + out.len() / p <= co`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows_avx2(&self, x: &[f32], first_row: usize, out: &mut [f32]) {
        // SAFETY: the caller's promises; the block is exactly `out`.
        unsafe { self.block_avx2(x, Block::rows(first_row, out, self.p)) }
    }

    /// [`PackedGemm::rows_avx2`] on a block.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX2 and FMA; `b.first_row` a multiple of `mr`;
    /// the rest as for [`PackedGemm::block_portable`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block_avx2(&self, x: &[f32], b: Block) {
        let (ci, p, mr) = (self.ci, self.p, self.mr);
        let block = self.block_pixels_of(b.cols.len());
        let mut p0 = b.cols.start;
        while p0 < b.cols.end {
            let pn = block.min(b.cols.end - p0);
            let mut q0 = 0;
            while q0 < b.rows {
                let panel_rows = mr.min(b.rows - q0);
                let mut j = 0;
                while j < pn {
                    let n = avx2::NR.min(pn - j);
                    let col = p0 + j;
                    let mut g = 0;
                    while g < panel_rows {
                        let row = b.first_row + q0 + g;
                        let (q, r) = (row / mr, row % mr);
                        // `r` is a multiple of 4 (so is `mr`): the group's 4
                        // weights per input channel and 4 biases stay
                        // inside panel `q` (zero-padded past `co`).
                        let w = &self.packed[q * ci * mr + r..][..(ci - 1) * mr + avx2::ROWS];
                        let bias = &self.bias[row..][..avx2::ROWS];
                        // Row q0 + g of the block, column 0.
                        let o = b.out.wrapping_add((q0 + g) * p);
                        let t = Tile {
                            k: ci,
                            w: w.as_ptr(),
                            wstep: mr,
                            bias: bias.as_ptr(),
                            // SAFETY: col < p, inside `x`.
                            x: unsafe { x.as_ptr().add(col) },
                            ldx: p,
                            n,
                            out: o.wrapping_add(col),
                            ldo: p,
                            rows: avx2::ROWS.min(panel_rows - g),
                            accumulate: self.residual,
                            clamp: self.clamp,
                        };
                        // SAFETY: `w` holds the group's weights for every
                        // input channel at a step of `mr`, `bias` 4 biases;
                        // x[k * p + col + l] for k < ci, l < n is inside `x`
                        // (col + n <= p); rows q0 + g + r < b.rows for
                        // r < rows, columns col + l < b.cols.end: in the
                        // block, ours to write.
                        unsafe {
                            match (n.div_ceil(8), n.is_multiple_of(8)) {
                                (3, true) => avx2::tile::<3, true>(&t),
                                (3, false) => avx2::tile::<3, false>(&t),
                                (2, true) => avx2::tile::<2, true>(&t),
                                (2, false) => avx2::tile::<2, false>(&t),
                                (_, true) => avx2::tile::<1, true>(&t),
                                (_, false) => avx2::tile::<1, false>(&t),
                            }
                        }
                        g += avx2::ROWS;
                    }
                    j += n;
                }
                q0 += mr;
            }
            p0 += pn;
        }
    }

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
        // SAFETY: the caller's promises; the block is exactly `out`.
        unsafe { self.block_avx512_transposed(x, Block::rows(first_row, out, self.p)) }
    }

    /// [`PackedGemm::rows_avx512_transposed`] on a block.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX-512F; `self.mr == 16`; `b.first_row` and
    /// `b.rows` multiples of 16; the rest as for
    /// [`PackedGemm::block_portable`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn block_avx512_transposed(&self, x: &[f32], b: Block) {
        let (ci, p) = (self.ci, self.p);
        let groups = b.rows / 16;
        let g0 = b.first_row / 16;
        let mut g = 0;
        while g < groups {
            let nv = (groups - g).min(3);
            let w = &self.packed[(g0 + g) * ci * 16..][..nv * ci * 16];
            let bias = &self.bias[(g0 + g) * 16..][..nv * 16];
            // Row 16 * g of the block, column 0.
            let o = b.out.wrapping_add(g * 16 * p);
            // The next groups' weights, fetched towards L2 during the first
            // pixel tile (read from L3 otherwise when their turn comes:
            // MobileNetV2's 7x7 layers hold 0.6-1.6 MB of weights each).
            let next = (groups - g - nv).min(3) * ci;
            let mut p0 = b.cols.start;
            while p0 < b.cols.end {
                // Tiles of equal width (7 x 7 for 49 pixels, not 6 x 8 and
                // a 1-pixel tile whose 3 accumulator chains wait on latency).
                let left = b.cols.end - p0;
                let mp = left.div_ceil(left.div_ceil(8));
                let t = TileT {
                    k: ci,
                    prefetch: if p0 == b.cols.start {
                        self.packed[(g0 + g + nv) * ci * 16..].as_ptr()
                    } else {
                        std::ptr::null()
                    },
                    prefetch_lines: if p0 == b.cols.start { next } else { 0 },
                    w: w.as_ptr(),
                    wstride: ci * 16,
                    bias: bias.as_ptr(),
                    // SAFETY: p0 < p: inside row 0 of `x`.
                    x: unsafe { x.as_ptr().add(p0) },
                    ldx: p,
                    out: o.wrapping_add(p0),
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
                // SAFETY: `w` holds nv groups of ci * 16 weights, `bias`
                // nv * 16 biases; x[k * p + p0 + i] for k < ci,
                // i < mp <= b.cols.end - p0 is inside `x`; rows
                // 16 * (g + j) + l < b.rows for j < nv, l < 16, columns
                // p0 + i < b.cols.end: in the block, ours to write.
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

/// The part of the output one kernel call writes: rows `first_row` to
/// `first_row + rows`, columns `cols` of each; `out` points at row
/// `first_row`, column 0 (rows of `p` floats). Raw, because the parts of a split by pixels
/// interleave within every row.
struct Block {
    first_row: usize,
    rows: usize,
    cols: std::ops::Range<usize>,
    out: *mut f32,
}

impl Block {
    /// Every column of the whole rows `out` holds, the first being `first_row`.
    fn rows(first_row: usize, out: &mut [f32], p: usize) -> Block {
        Block {
            first_row,
            rows: out.len() / p,
            cols: 0..p,
            out: out.as_mut_ptr(),
        }
    }
}

/// One transposed microkernel call: `MP` pixels times `16 * NV` output
/// channels. Raw pointers; the caller vouches for the bounds.
#[cfg(target_arch = "x86_64")]
struct TileT {
    /// Sum length (input channels).
    k: usize,
    /// Cache lines (16 floats) from `prefetch` to fetch towards L2 while
    /// computing, up to three per input channel (a hint: never faults).
    prefetch: *const f32,
    prefetch_lines: usize,
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
    /// Packed weights: row `r`'s weight for input channel `k` at
    /// `w + k * wstep + r`.
    w: *const f32,
    /// Floats between one input channel's weights and the next's (the
    /// panel height; the AVX-512F tile uses [`MR`]).
    wstep: usize,
    /// One bias per row of the tile.
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
mod avx2 {
    use super::Tile;
    use std::arch::x86_64::*;

    /// Output channels per tile.
    pub(super) const ROWS: usize = 4;
    /// Pixels per full tile (three 8-lane vectors).
    pub(super) const NR: usize = 24;

    /// `ROWS x (8 * NV)` tile: accumulators start at the bias, then one
    /// fused multiply-add per input channel; residual, clamp, store (masked
    /// unless `FULL`, i.e. `t.n == 8 * NV`).
    ///
    /// # Safety
    ///
    /// AVX2 and FMA. `t.w + k * t.wstep + r` readable for `k < t.k`,
    /// `r < ROWS`; `t.bias` for `ROWS`; `t.x + k * t.ldx + l` readable for
    /// `k < t.k`, `l < t.n`; `t.out + r * t.ldo + l` readable and writable
    /// for `r < t.rows`, `l < t.n`; `8 * (NV - 1) < t.n <= 8 * NV`,
    /// `t.rows <= ROWS`. Masked-off lanes are never touched.
    // Not inlined: inside `rows_avx2` with its six variants, LLVM kept
    // loop-invariant biases in registers and spilled an accumulator to the
    // stack (a store and reload on every input channel, 2.5x slower).
    #[target_feature(enable = "avx2,fma")]
    #[inline(never)]
    pub(super) unsafe fn tile<const NV: usize, const FULL: bool>(t: &Tile) {
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let mut masks = [_mm256_setzero_si256(); NV];
        for (j, m) in masks.iter_mut().enumerate() {
            let valid = t.n.saturating_sub(8 * j).min(8) as i32;
            *m = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), lane);
        }
        let mut acc = [[_mm256_setzero_ps(); NV]; ROWS];
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: r < ROWS biases.
            let b = _mm256_set1_ps(unsafe { *t.bias.add(r) });
            for a in row.iter_mut() {
                *a = b;
            }
        }
        let mut xp = t.x;
        let mut wp = t.w;
        for _ in 0..t.k {
            let mut xv = [_mm256_setzero_ps(); NV];
            for j in 0..NV {
                let at = xp.wrapping_add(8 * j);
                // SAFETY: FULL: all 8 lanes are pixels of row k; else only
                // the lanes enabled in masks[j] are read.
                xv[j] = unsafe {
                    if FULL {
                        _mm256_loadu_ps(at)
                    } else {
                        _mm256_maskload_ps(at, masks[j])
                    }
                };
            }
            for (r, row) in acc.iter_mut().enumerate() {
                // SAFETY: ROWS weights per input channel.
                let w = _mm256_set1_ps(unsafe { *wp.add(r) });
                for j in 0..NV {
                    row[j] = _mm256_fmadd_ps(w, xv[j], row[j]);
                }
            }
            // The row 8 channels ahead, into L1 (a hint: never faults,
            // even past the end).
            let ahead = xp.wrapping_add(8 * t.ldx) as *const i8;
            _mm_prefetch::<_MM_HINT_T0>(ahead);
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
            // After the last channel these point past the end, never read.
            xp = xp.wrapping_add(t.ldx);
            wp = wp.wrapping_add(t.wstep);
        }
        for (r, row) in acc.iter().enumerate() {
            if r >= t.rows {
                break;
            }
            for j in 0..NV {
                let o = t.out.wrapping_add(r * t.ldo + 8 * j);
                let mut v = row[j];
                if t.accumulate {
                    // SAFETY: the enabled lanes (all of them if FULL) are
                    // valid pixels of a valid output row.
                    let prev = unsafe {
                        if FULL {
                            _mm256_loadu_ps(o)
                        } else {
                            _mm256_maskload_ps(o, masks[j])
                        }
                    };
                    v = _mm256_add_ps(v, prev);
                }
                if let Some((lo, hi)) = t.clamp {
                    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(lo)), _mm256_set1_ps(hi));
                }
                // SAFETY: as for the load: only enabled lanes, valid pixels
                // of a valid output row, are written.
                unsafe {
                    if FULL {
                        _mm256_storeu_ps(o, v)
                    } else {
                        _mm256_maskstore_ps(o, masks[j], v)
                    }
                }
            }
        }
    }
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
    /// broadcast; the vectors run down output channels, so results (and
    /// residuals) are transposed in registers to rows of up to 8 pixels.
    /// While it computes, it fetches `t.prefetch_lines` cache lines from
    /// `t.prefetch` towards L2 (the next weight groups: a hint, which never
    /// faults).
    ///
    /// # Safety
    ///
    /// AVX-512F. `t.w + j * t.wstride + k * 16 + l` readable for `j < NV`,
    /// `k < t.k`, `l < 16`; `t.bias` for `16 * NV`; `t.x + k * t.ldx + i`
    /// for `k < t.k`, `i < MP`; `t.out + r * t.ldo + i` readable and
    /// writable for `r < 16 * NV`, `i < MP`.
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
        for k in 0..t.k {
            for m in 0..3 {
                let line = 3 * k + m;
                if line < t.prefetch_lines {
                    _mm_prefetch::<_MM_HINT_T1>(t.prefetch.wrapping_add(16 * line) as *const i8);
                }
            }
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
        // Transposed in registers, 16 channels x 8 pixels at a time, and
        // stored (residuals loaded) as rows of 8 pixels, two channels per
        // vector: gathers and scatters cost Zen 4 several times more.
        let zero = _mm512_setzero_ps();
        // Pixel lanes `0..MP` of a channel's 8 (the low half of a vector)
        // and the same of the high half.
        let lo = ((1u32 << MP) - 1) as u16;
        let hi = lo << 8;
        // From `u[c]` (pixels 0-3) and `u[c + 4]` (pixels 4-7), lane L
        // holding channel 4L + c: `first` joins lanes 0 and 1 (channels c
        // and c + 4, 8 pixels each), `second` lanes 2 and 3 (c + 8, c + 12).
        let first = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
        let second =
            _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
        for j in 0..NV {
            let mut r = [zero; 8];
            for (i, row) in acc.iter().enumerate() {
                r[i] = row[j];
            }
            // Per 128-bit lane L (channels 4L..4L+3): pairs of pixels,
            // then quads: u[c] lane L = channel 4L + c, pixels 0-3;
            // u[c + 4] the same, pixels 4-7.
            let mut t2 = [zero; 8];
            for q in 0..4 {
                t2[2 * q] = _mm512_unpacklo_ps(r[2 * q], r[2 * q + 1]);
                t2[2 * q + 1] = _mm512_unpackhi_ps(r[2 * q], r[2 * q + 1]);
            }
            let mut u = [zero; 8];
            for half in 0..2 {
                let (a, b) = (4 * half, 4 * half + 2);
                u[4 * half] = _mm512_shuffle_ps::<0x44>(t2[a], t2[b]);
                u[4 * half + 1] = _mm512_shuffle_ps::<0xEE>(t2[a], t2[b]);
                u[4 * half + 2] = _mm512_shuffle_ps::<0x44>(t2[a + 1], t2[b + 1]);
                u[4 * half + 3] = _mm512_shuffle_ps::<0xEE>(t2[a + 1], t2[b + 1]);
            }
            for c in 0..4 {
                for (v, ch) in [
                    (_mm512_permutex2var_ps(u[c], first, u[c + 4]), c),
                    (_mm512_permutex2var_ps(u[c], second, u[c + 4]), c + 8),
                ] {
                    // Channel `ch` in the low half, `ch + 4` in the high.
                    let low = t.out.wrapping_add((16 * j + ch) * t.ldo);
                    // Lane 8 of `high` is pixel 0 of channel ch + 4; lanes
                    // below 8 are masked off in every access through it.
                    let high = t
                        .out
                        .wrapping_add((16 * j + ch + 4) * t.ldo)
                        .wrapping_sub(8);
                    let mut v = v;
                    if t.accumulate {
                        // SAFETY: pixels 0..MP of two valid rows; masked-off
                        // lanes are not accessed (no fault).
                        let prev = unsafe {
                            _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(lo, low), hi, high)
                        };
                        v = _mm512_add_ps(v, prev);
                    }
                    if let Some((lo, hi)) = t.clamp {
                        v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(lo)), _mm512_set1_ps(hi));
                    }
                    // SAFETY: as for the load.
                    unsafe {
                        _mm512_mask_storeu_ps(low, lo, v);
                        _mm512_mask_storeu_ps(high, hi, v);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Test data from the crate's generator: `n` values in [-1, 1).
    pub(crate) struct Rng(pub(crate) crate::rng::Rng);

    impl Rng {
        pub(crate) fn vec(&mut self, n: usize) -> Vec<f32> {
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

    pub(crate) fn run_op(op: &PackedGemm, x: &[f32], res: Option<&[f32]>) -> Vec<f32> {
        let mut out = match res {
            Some(r) => r.to_vec(),
            None => vec![f32::NAN; op.co * op.p],
        };
        op.compute(x, &mut out).expect("shapes match");
        out
    }

    pub(crate) fn assert_close(got: &[f32], want: &[f32], ci: usize, what: &str) {
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
            // Classifiers (one pixel): panels side by side and left over.
            (1280, 1000, 1),
            (37, 77, 1),
            (19, 96, 1),
            (5, 208, 1),
        ];
        for (ci, co, p) in shapes {
            let x = rng.vec(ci * p);
            let w = rng.vec(co * ci);
            let b = rng.vec(co);
            let op = PackedGemm::new(ci, co, p, &w, &b).expect("valid shape");
            // Small planes with whole vectors of output channels take the
            // channel-vector (transposed) kernel; the others the pixel one.
            let transposed = p < TRANSPOSED_BELOW && co.is_multiple_of(16);
            assert_eq!(op.mr == 16, transposed, "kernel choice for {ci} {co} {p}");
            let want = reference(ci, co, p, &x, &w, &b, None, None);
            for simd in simd_paths() {
                let got = run_op(&op.clone().with_simd(simd), &x, None);
                assert_close(&got, &want, ci, &format!("{simd:?}: ci {ci} co {co} p {p}"));
            }
        }
    }

    /// Every SIMD path this CPU runs, with its name.
    fn simd_paths() -> Vec<Simd> {
        use crate::model::net::KernelPath;
        let mut v = vec![];
        for (path, simd) in [
            (KernelPath::Avx512, Simd::Avx512),
            (KernelPath::Avx2, Simd::Avx2),
            (KernelPath::Neon, Simd::Neon),
        ] {
            if path.supported() {
                v.push(simd);
            } else {
                eprintln!("skipping {simd:?} tiles: this CPU lacks them");
            }
        }
        v
    }

    #[test]
    fn avx2_tiles_equal_the_portable_rows_and_avx512_on_odd_shapes() {
        let mut rng = Rng(crate::rng::Rng::new(0x05ee_da2f));
        // Tails of every kind: pixels 1..=25 around the 8-lane vectors and
        // the 24-pixel tile, channel counts not a multiple of 4 or 8, the
        // 16-row panels of small planes (co % 16 == 0, p < 64), residual
        // and clamp.
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
            (3, 32, 12544 / 16 + 3),
        ];
        if !simd_paths().contains(&Simd::Avx2) {
            return;
        }
        for (ci, co, p) in shapes {
            for (residual, clamp) in [(false, None), (true, Some((-0.25, 0.5)))] {
                let x = rng.vec(ci * p);
                let w = rng.vec(co * ci);
                let b = rng.vec(co);
                let r = rng.vec(co * p);
                let mut op = PackedGemm::new(ci, co, p, &w, &b).expect("valid shape");
                if residual {
                    op = op.with_residual();
                }
                if let Some((lo, hi)) = clamp {
                    op = op.with_clamp(lo, hi);
                }
                let res = residual.then_some(&r[..]);
                let avx2 = run_op(&op.clone().with_simd(Simd::Avx2), &x, res);
                let portable = run_op(&op.clone().with_simd(Simd::Portable), &x, res);
                let what = format!("ci {ci} co {co} p {p} residual {residual}");
                // The portable rows do not fuse the multiply-adds: equal up
                // to rounding.
                assert_close(&avx2, &portable, ci, &what);
                let want = reference(ci, co, p, &x, &w, &b, res, clamp);
                assert_close(&avx2, &want, ci, &what);
                if simd_paths().contains(&Simd::Avx512) {
                    // Same order of the sum, both fused: the same bits.
                    let avx512 = run_op(&op.clone().with_simd(Simd::Avx512), &x, res);
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&avx2), bits(&avx512), "{what}");
                }
            }
        }
    }

    #[test]
    fn portable_path_matches_the_definition() {
        let mut rng = Rng(crate::rng::Rng::new(7));
        for (ci, co, p) in [(5, 11, 33), (16, 8, 49), (24, 17, 100), (16, 32, 49)] {
            let x = rng.vec(ci * p);
            let w = rng.vec(co * ci);
            let b = rng.vec(co);
            let op = PackedGemm::new(ci, co, p, &w, &b)
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
        // on small planes, whose residual is transposed in registers).
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
            let op = PackedGemm::new(ci, co, p, &w, &b)
                .expect("valid shape")
                .with_residual();
            for simd in simd_paths() {
                let op = op.clone().with_simd(simd);
                let got = run_op(&op, &x, Some(&r));
                let want = reference(ci, co, p, &x, &w, &b, Some(&r), None);
                assert_close(&got, &want, ci, &format!("{simd:?} residual"));
                let clamped = op.with_clamp(0.0, 0.5);
                let got = run_op(&clamped, &x, Some(&r));
                let want = reference(ci, co, p, &x, &w, &b, Some(&r), Some((0.0, 0.5)));
                assert_close(&got, &want, ci, &format!("{simd:?} residual then clamp"));
                assert!(got.iter().all(|v| (0.0..=0.5).contains(v)));
            }
        }
    }

    #[test]
    fn a_classifier_gives_the_bits_of_the_tiles() {
        // One pixel runs the matrix-vector code (panels side by side on
        // x86_64); the same input as two equal pixels runs the tiles. Both
        // sum bias then input channels in order with fused multiply-adds.
        let mut rng = Rng(crate::rng::Rng::new(0x51de_b1de));
        for (ci, co) in [(1280, 1000), (37, 77), (19, 96), (5, 208)] {
            let x = rng.vec(ci);
            let w = rng.vec(co * ci);
            let b = rng.vec(co);
            let one = PackedGemm::new(ci, co, 1, &w, &b).expect("valid shape");
            let two = PackedGemm::new(ci, co, 2, &w, &b).expect("valid shape");
            let x2: Vec<f32> = x.iter().flat_map(|&v| [v, v]).collect();
            for simd in simd_paths() {
                let got = run_op(&one.clone().with_simd(simd), &x, None);
                let tiles = run_op(&two.clone().with_simd(simd), &x2, None);
                for (o, (g, t)) in got.iter().zip(tiles.chunks_exact(2)).enumerate() {
                    assert!(
                        g.to_bits() == t[0].to_bits(),
                        "{simd:?} {ci}x{co}: output {o}: {g} against the tiles' {}",
                        t[0]
                    );
                }
            }
        }
    }

    #[test]
    fn relu6_clamp_bounds_every_output() {
        let mut rng = Rng(crate::rng::Rng::new(3));
        let (ci, co, p) = (32, 24, 61);
        let x: Vec<f32> = rng.vec(ci * p).iter().map(|v| 10.0 * v).collect();
        let w = rng.vec(co * ci);
        let op = PackedGemm::new(ci, co, p, &w, &[])
            .expect("valid shape")
            .with_clamp(0.0, 6.0);
        let want = reference(ci, co, p, &x, &w, &[], None, Some((0.0, 6.0)));
        for simd in simd_paths() {
            let got = run_op(&op.clone().with_simd(simd), &x, None);
            assert_close(&got, &want, ci, &format!("{simd:?} relu6"));
            assert!(got.contains(&0.0) && got.contains(&6.0));
        }
    }
}
