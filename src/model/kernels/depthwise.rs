//! The 3x3 depthwise convolution kernel (padding 1, stride 1 or 2),
//! vectorised by the compiler: built for AVX-512F on the avx512 kernel path
//! (10% faster than the AVX2 build on this Zen 4 core), for AVX2 on the
//! others where the CPU has it, chosen at run time.
//!
//! tract 0.23.9's x86_64 depthwise kernel is vectorised only along output
//! rows at stride 1 and at least 32 points wide; stride-2 layers and the
//! 14x14 and 7x7 planes run its scalar loop (0.6-6 GFLOP/s, half of a
//! MobileNetV2 frame; docs/engine.md). At stride 1 this kernel treats a
//! channel's plane as one flat row of `h * w` points: a tap is the plane
//! shifted by a constant (`±w` for a row, `±1` for a column), the row above
//! the first and below the last are a zero margin, and the left and right
//! neighbours that would wrap round to the previous or next row are
//! multiplied by a 0/1 column mask. Every output point is then the same
//! nine multiply-adds over contiguous memory, however small the plane
//! (MobileNetV2's 7x7 and 14x14 planes are most of its depthwise channels),
//! written straight into the output with the clamp. At stride 2 it first
//! copies each channel into `2 x 2` phase planes of the output's size (the
//! copy de-interleaves rows and columns), after which the taps are again
//! constant shifts of flat planes and only the kept outputs are computed.
//! Rows (large planes) or channels (small ones) are
//! split over the intra-op pool (`kernels::pool`) when one is installed.
//! Its scratch is per thread, allocated once.
//!
//! Arithmetic per output point is tract's: the bias, then one multiply and
//! one add per tap in row-major order (no fused multiply-add); the logits
//! are bit-identical to tract's own kernel. Padding taps add `w * 0.0`,
//! which leaves every finite sum unchanged.
#![allow(
    unsafe_code,
    reason = "calls its AVX2 build after detection; uninitialised outputs it fully writes"
)]

use super::pool::SharedSlice;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// Planes of at least this many output rows are split over the intra-op
/// pool by rows (each thread every channel of its rows), smaller ones by
/// channels. Measured on MobileNetV2 (docs/engine.md, "Two cores: our
/// fork-join pool"): by rows the 14x14 layers ran 1.25x faster on two
/// cores, by channels 1.72x (a channel's fixed cost, copying it into the
/// padded planes, is not halved by rows); the 28x28 ones 1.5x against
/// 1.74x; at 56x56 and 112x112 rows keep each core on its own half of the
/// 1x1 ops' tensors.
const SPLIT_ROWS_FROM: usize = 56;

thread_local! {
    /// Per-thread scratch: the phase planes, then one block's
    /// accumulator. Kept around to re-use the backing allocation.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Scratch floats an intra-op worker reserves when it starts
/// ([`reserve_scratch`]): a 3x3 layer on planes up to 224x224 needs no more,
/// so a worker that first takes a chunk of a layer late (the caller took
/// its chunks until then) does not allocate in the middle of a frame.
const WORKER_SCRATCH: usize = 1 << 16;

/// Grows this thread's scratch to [`WORKER_SCRATCH`] floats (256 KiB);
/// `kernels::pool` calls it when a worker starts.
pub(crate) fn reserve_scratch() {
    SCRATCH.with_borrow_mut(|scratch| {
        if scratch.len() < WORKER_SCRATCH {
            scratch.resize(WORKER_SCRATCH, 0.0);
        }
    });
}

/// One depthwise layer's taps, biases and geometry.
#[derive(Debug, Clone)]
pub(crate) struct Depthwise3x3 {
    /// Channels.
    c: usize,
    /// Input height and width.
    h: usize,
    w: usize,
    /// 1 or 2.
    stride: usize,
    /// A fused `min(max(x, lo), hi)` (ReLU6) on the output.
    clamp: Option<(f32, f32)>,
    /// `c * 9` taps, row-major per channel.
    kernel: Vec<f32>,
    /// `c` biases.
    bias: Vec<f32>,
    /// Run the AVX-512F build where the CPU has it (the avx512 path).
    avx512: bool,
}

/// Bitwise equality (tract's op equality is `Eq`; weights are compared by bits).
impl PartialEq for Depthwise3x3 {
    fn eq(&self, o: &Self) -> bool {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let clamp = |c: Option<(f32, f32)>| c.map(|(a, b)| (a.to_bits(), b.to_bits()));
        (self.c, self.h, self.w, self.stride) == (o.c, o.h, o.w, o.stride)
            && clamp(self.clamp) == clamp(o.clamp)
            && bits(&self.kernel) == bits(&o.kernel)
            && bits(&self.bias) == bits(&o.bias)
            && self.avx512 == o.avx512
    }
}

impl Eq for Depthwise3x3 {}

impl Depthwise3x3 {
    /// The kernel for `c` channels of `h x w` at `stride` (1 or 2) with
    /// `kernel` (`c * 9` taps, row-major per channel) and `bias` (`c`).
    /// `None` if the sizes do not fit together.
    pub(crate) fn new(
        (c, h, w): (usize, usize, usize),
        stride: usize,
        kernel: Vec<f32>,
        bias: Vec<f32>,
    ) -> Option<Depthwise3x3> {
        let fits = c > 0
            && h > 0
            && w > 0
            && (stride == 1 || stride == 2)
            && Some(kernel.len()) == c.checked_mul(9)
            && bias.len() == c;
        fits.then_some(Depthwise3x3 {
            c,
            h,
            w,
            stride,
            clamp: None,
            kernel,
            bias,
            avx512: false,
        })
    }

    /// The same kernel, run by its AVX-512F build where the CPU has it
    /// (`true`; the avx512 kernel path) or by its AVX2 build (`false`).
    pub(crate) fn with_avx512(self, avx512: bool) -> Depthwise3x3 {
        Depthwise3x3 { avx512, ..self }
    }

    /// The same kernel with a clamp on the output.
    pub(crate) fn with_clamp(self, lo: f32, hi: f32) -> Depthwise3x3 {
        Depthwise3x3 {
            clamp: Some((lo, hi)),
            ..self
        }
    }

    /// Channels.
    pub(crate) fn channels(&self) -> usize {
        self.c
    }

    /// Input height and width.
    pub(crate) fn in_hw(&self) -> (usize, usize) {
        (self.h, self.w)
    }

    /// `c: .. input: HxW stride: .. clamp: ..` for the op's description.
    pub(crate) fn describe(&self) -> String {
        format!(
            "c: {} input: {}x{} stride: {} clamp: {:?}",
            self.c, self.h, self.w, self.stride, self.clamp
        )
    }

    /// Output height and width.
    pub(crate) fn out_hw(&self) -> (usize, usize) {
        // Padding 1 each side, kernel 3: (n + 2 - 3) / s + 1.
        (
            (self.h - 1) / self.stride + 1,
            (self.w - 1) / self.stride + 1,
        )
    }

    /// A new tensor of `shape` (`c * oh * ow` elements) holding the output
    /// for `input` (`c * h * w`).
    pub(crate) fn compute_new(&self, input: &[f32], shape: &[usize]) -> TractResult<Tensor> {
        let (oh, ow) = self.out_hw();
        ensure!(shape.iter().product::<usize>() == self.c * oh * ow);
        // SAFETY: `compute` writes every element of every output plane (each
        // channel's `oh x ow` points) before anything reads them, or fails
        // before returning the tensor.
        let mut out = unsafe { Tensor::uninitialized::<f32>(shape)? };
        self.compute(input, out.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?)?;
        Ok(out)
    }

    /// Output rows `rows` of one channel at stride 1: `input` is its
    /// `h x w` plane, `output` those rows of its (equally sized) output
    /// plane. `plane` holds the input plane flat after a margin of `w + 1`
    /// points and before one of `w + 1`; the margins must be zero, and stay
    /// so (this function writes only the plane rows that `rows` read).
    /// `masks` are the column masks of [`Depthwise3x3::column_masks`].
    #[inline(always)]
    fn channel_s1(
        &self,
        ch: usize,
        input: &[f32],
        output: &mut [f32],
        rows: std::ops::Range<usize>,
        plane: &mut [f32],
        masks: &[f32],
    ) {
        let (h, w) = (self.h, self.w);
        let margin = w + 1;
        // Output rows `rows` read input rows rows.start - 1 ..= rows.end.
        let (y0, y1) = (rows.start.saturating_sub(1), (rows.end + 1).min(h));
        plane[margin + y0 * w..margin + y1 * w].copy_from_slice(&input[y0 * w..y1 * w]);
        let first = rows.start * w;
        let n = rows.len() * w;
        // Point i of the plane is at `margin + i`; its tap (ky, kx) at
        // `margin + i + (ky - 1) * w + kx - 1`, i.e. `i + ky * w + kx` from
        // the start of `plane`.
        let tap = |ky: usize, kx: usize| &plane[first + ky * w + kx..][..n];
        let (a0, a1, a2) = (tap(0, 0), tap(0, 1), tap(0, 2));
        let (a3, a4, a5) = (tap(1, 0), tap(1, 1), tap(1, 2));
        let (a6, a7, a8) = (tap(2, 0), tap(2, 1), tap(2, 2));
        let (left, right) = masks.split_at(h * w);
        let (left, right) = (&left[first..][..n], &right[first..][..n]);
        let t = &self.kernel[ch * 9..][..9];
        let bias = self.bias[ch];
        let (lo, hi) = self.clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let out = &mut output[..n];
        for i in 0..n {
            // A left tap of column 0 and a right tap of column w - 1 would
            // read the neighbouring row's end: masked to zero, as the
            // padding would be.
            let (l, r) = (left[i], right[i]);
            let mut v = bias;
            v += t[0] * (a0[i] * l);
            v += t[1] * a1[i];
            v += t[2] * (a2[i] * r);
            v += t[3] * (a3[i] * l);
            v += t[4] * a4[i];
            v += t[5] * (a5[i] * r);
            v += t[6] * (a6[i] * l);
            v += t[7] * a7[i];
            v += t[8] * (a8[i] * r);
            out[i] = clamp(v, lo, hi);
        }
    }

    /// The column masks over the flat output plane, `oh * ow` floats each:
    /// 1.0 where point `i` has a left neighbour (column above 0), then, at
    /// stride 1 only (stride 2 reads no right neighbour past the input),
    /// 1.0 where it has a right one (column below `ow - 1`); 0.0 elsewhere.
    fn column_masks(&self, masks: &mut [f32]) {
        let (oh, ow) = self.out_hw();
        let (left, right) = masks.split_at_mut(oh * ow);
        for l in left.chunks_exact_mut(ow) {
            l.fill(1.0);
            l[0] = 0.0;
        }
        if self.stride == 1 {
            for r in right[..oh * ow].chunks_exact_mut(ow) {
                r.fill(1.0);
                r[ow - 1] = 0.0;
            }
        }
    }

    /// Output rows `rows` of one channel at stride 2: `input` is its
    /// `h x w` plane, `output` those rows of its `oh x ow` plane. `planes`
    /// holds four phase planes (input rows even/odd x columns even/odd),
    /// each `oh x ow` flat after a margin of `ow + 1` points; everything
    /// this function does not write must be zero (margins, and an odd plane's
    /// last row or column when `h` or `w` is odd), and stays so. `masks` are
    /// the column masks of [`Depthwise3x3::column_masks`].
    #[inline(always)]
    fn channel_s2(
        &self,
        ch: usize,
        input: &[f32],
        output: &mut [f32],
        rows: std::ops::Range<usize>,
        planes: &mut [f32],
        masks: &[f32],
    ) {
        let (h, w) = (self.h, self.w);
        let (oh, ow) = self.out_hw();
        let margin = ow + 1;
        let plane = margin + oh * ow;
        // Output row oy reads input rows 2 oy - 1 ..= 2 oy + 1. Input row y
        // goes to row y / 2 of the even or odd row planes; its even columns
        // 2 i to column i of the even column plane, odd ones 2 i + 1 to
        // column i of the odd one (de-interleaved as a zip over pairs, which
        // the compiler vectorises).
        let (y0, y1) = ((2 * rows.start).saturating_sub(1), (2 * rows.end).min(h));
        for y in y0..y1 {
            let src = &input[y * w..][..w];
            let at = (y % 2) * 2 * plane + margin + (y / 2) * ow;
            let (even, odd) = planes[at..].split_at_mut(plane);
            let (even, odd) = (&mut even[..w.div_ceil(2)], &mut odd[..w / 2]);
            for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(src.chunks_exact(2)) {
                *e = pair[0];
                *o = pair[1];
            }
            if w % 2 == 1 {
                even[w / 2] = src[w - 1];
            }
        }
        let first = rows.start * ow;
        let n = rows.len() * ow;
        // Tap (ky, kx) of output point j reads row phase 1, 0, 1 (ky = 0,
        // 1, 2) one row up for ky = 0, and column phase 1, 0, 1 one column
        // left for kx = 0: plane (ry, rx) from `margin + j - up * ow - left`.
        let tap = |ry: usize, rx: usize, up: usize, left: usize| {
            &planes[(ry * 2 + rx) * plane + margin + first - up * ow - left..][..n]
        };
        let (a0, a1, a2) = (tap(1, 1, 1, 1), tap(1, 0, 1, 0), tap(1, 1, 1, 0));
        let (a3, a4, a5) = (tap(0, 1, 0, 1), tap(0, 0, 0, 0), tap(0, 1, 0, 0));
        let (a6, a7, a8) = (tap(1, 1, 0, 1), tap(1, 0, 0, 0), tap(1, 1, 0, 0));
        let left = &masks[first..][..n];
        let t = &self.kernel[ch * 9..][..9];
        let bias = self.bias[ch];
        let (lo, hi) = self.clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let out = &mut output[..n];
        for i in 0..n {
            // A left tap of column 0 would read the row above's end: masked
            // to zero, as the padding would be. A right tap past the input
            // reads the zero column of an odd width.
            let l = left[i];
            let mut v = bias;
            v += t[0] * (a0[i] * l);
            v += t[1] * a1[i];
            v += t[2] * a2[i];
            v += t[3] * (a3[i] * l);
            v += t[4] * a4[i];
            v += t[5] * a5[i];
            v += t[6] * (a6[i] * l);
            v += t[7] * a7[i];
            v += t[8] * a8[i];
            out[i] = clamp(v, lo, hi);
        }
    }

    /// Scratch lengths: the input plane(s) with their margins (one at
    /// stride 1, four phase planes at stride 2), then the column masks
    /// (left and right at stride 1, left only at stride 2).
    fn scratch_lens(&self) -> (usize, usize) {
        let (oh, ow) = self.out_hw();
        if self.stride == 1 {
            (self.h * self.w + 2 * (self.w + 1), 2 * oh * ow)
        } else {
            (4 * (ow + 1 + oh * ow), oh * ow)
        }
    }

    /// Channels `chs`, output rows `rows` of each, into `out` (the whole
    /// output). `planes` must be zero (the channel functions keep it so
    /// outside what they write); both scratch slices have the lengths of
    /// `scratch_lens`, the second holding the column masks at stride 1.
    ///
    /// # Safety
    ///
    /// `chs` inside `0..c`, `rows` inside `0..oh`, `out` the whole output
    /// (`c * oh * ow`); no other thread touches rows `rows` of channels
    /// `chs` of it during the call.
    #[inline(always)]
    unsafe fn run_part(
        &self,
        input: &[f32],
        chs: std::ops::Range<usize>,
        rows: std::ops::Range<usize>,
        out: &SharedSlice<f32>,
        planes: &mut [f32],
        masks: &[f32],
    ) {
        let (oh, ow) = self.out_hw();
        for ch in chs {
            let first = ch * oh * ow;
            // SAFETY: rows `rows` of channel `ch`, inside the output
            // (checked by `part`), are this call's alone (the caller's
            // promise).
            let output = unsafe { out.part(first + rows.start * ow..first + rows.end * ow) };
            let input = &input[ch * self.h * self.w..][..self.h * self.w];
            if self.stride == 1 {
                self.channel_s1(ch, input, output, rows.clone(), planes, masks);
            } else {
                self.channel_s2(ch, input, output, rows.clone(), planes, masks);
            }
        }
    }

    /// [`Depthwise3x3::run_part`] built for AVX-512F.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX-512F; as for [`Depthwise3x3::run_part`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn run_part_avx512(
        &self,
        input: &[f32],
        chs: std::ops::Range<usize>,
        rows: std::ops::Range<usize>,
        out: &SharedSlice<f32>,
        planes: &mut [f32],
        masks: &[f32],
    ) {
        // SAFETY: the caller's promises.
        unsafe { self.run_part(input, chs, rows, out, planes, masks) }
    }

    /// [`Depthwise3x3::run_part`] built for AVX2.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX2; as for [`Depthwise3x3::run_part`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn run_part_avx2(
        &self,
        input: &[f32],
        chs: std::ops::Range<usize>,
        rows: std::ops::Range<usize>,
        out: &SharedSlice<f32>,
        planes: &mut [f32],
        masks: &[f32],
    ) {
        // SAFETY: the caller's promises.
        unsafe { self.run_part(input, chs, rows, out, planes, masks) }
    }

    /// The output for `input` (`c * h * w`) into `output` (`c * oh * ow`,
    /// fully written), split over the intra-op pool installed on this
    /// thread (`kernels::pool`), inline when there is none: by output rows
    /// where the plane has at least [`SPLIT_ROWS_FROM`] of them (each core
    /// reads and writes the rows of every channel that it handled in the
    /// ops before and after, plus a row at the edges), else by channels.
    pub(crate) fn compute(&self, input: &[f32], output: &mut [f32]) -> TractResult<()> {
        let (oh, ow) = self.out_hw();
        ensure!(input.len() == self.c * self.h * self.w && output.len() == self.c * oh * ow);
        let multiply_adds = output.len() * 9;
        let (planes_len, masks_len) = self.scratch_lens();
        let by_rows = oh >= SPLIT_ROWS_FROM;
        let out = SharedSlice::new(output);
        let n = if by_rows { oh } else { self.c };
        super::pool::par_ranges(n, 1, multiply_adds, |range| {
            let (chs, rows) = if by_rows {
                (0..self.c, range)
            } else {
                (range, 0..oh)
            };
            SCRATCH.with_borrow_mut(|scratch| {
                // Grows to the largest layer once per thread, then is
                // reused: no allocation per frame.
                if scratch.len() < planes_len + masks_len {
                    scratch.resize(planes_len + masks_len, 0.0);
                }
                let (planes, rest) = scratch.split_at_mut(planes_len);
                let masks = &mut rest[..masks_len];
                // An earlier layer of another geometry (or rows) may have
                // left values anywhere.
                planes.fill(0.0);
                self.column_masks(masks);
                // (The kernels are called from here, not from inside a
                // closure of theirs: closures do not inherit
                // `target_feature`.)
                #[cfg(target_arch = "x86_64")]
                if self.avx512 && std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F (checked just above); the
                    // ranges and `out` as for the AVX2 build below.
                    unsafe { self.run_part_avx512(input, chs, rows, &out, planes, masks) };
                    return Ok(());
                }
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2 (checked just above); `chs`
                    // and `rows` are inside the output, and `par_ranges`
                    // gives each call a range no other call gets (rows of
                    // every channel, or channels), `out` borrowed until all
                    // have returned.
                    unsafe { self.run_part_avx2(input, chs, rows, &out, planes, masks) };
                    return Ok(());
                }
                // SAFETY: as just above, without AVX2.
                unsafe { self.run_part(input, chs, rows, &out, planes, masks) };
                Ok(())
            })
        })
    }
}

/// `v` clamped to `lo..=hi`. On x86_64 as a compare and select each way,
/// one `vmaxps` and one `vminps` per vector (`f32::max` and `min` add a NaN
/// test and a blend each there); elsewhere `f32::max` and `min` (aarch64's
/// `fmaxnm` and `fminnm` are single instructions; the compare and select
/// cost the depthwise op 4% more instructions under the aarch64 proxy).
/// The same value either way, NaN included (`lo` with both), but for the
/// sign of a zero (`-0.0` against a bound of `0.0` may come out either way).
#[inline(always)]
fn clamp(v: f32, lo: f32, hi: f32) -> f32 {
    if cfg!(target_arch = "x86_64") {
        let v = if v > lo { v } else { lo };
        if v < hi {
            v
        } else {
            hi
        }
    } else {
        v.max(lo).min(hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3x3 depthwise convolution, padding 1, by its definition, in
    /// the op's order of operations (bias, then taps row-major).
    fn reference(op: &Depthwise3x3, x: &[f32]) -> Vec<f32> {
        let (oh, ow) = op.out_hw();
        let (h, w, s) = (op.h as isize, op.w as isize, op.stride as isize);
        let mut out = Vec::with_capacity(op.c * oh * ow);
        for c in 0..op.c {
            for oy in 0..oh as isize {
                for ox in 0..ow as isize {
                    let mut v = op.bias[c];
                    for ky in 0..3isize {
                        for kx in 0..3isize {
                            let (iy, ix) = (s * oy + ky - 1, s * ox + kx - 1);
                            if (0..h).contains(&iy) && (0..w).contains(&ix) {
                                let xv = x[c * op.h * op.w + (iy * w + ix) as usize];
                                v += op.kernel[c * 9 + (ky * 3 + kx) as usize] * xv;
                            }
                        }
                    }
                    if let Some((lo, hi)) = op.clamp {
                        v = v.max(lo).min(hi);
                    }
                    out.push(v);
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition_bit_for_bit_at_both_strides_on_odd_and_tiny_planes() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        // (c, h, w, stride, clamp): odd and even widths and heights,
        // single rows and columns, MobileNetV2's 7x7 and a 112-wide row.
        let cases = [
            (3, 7, 7, 2, None),
            (2, 5, 8, 2, Some((0.0, 0.5))),
            (4, 9, 1, 2, None),
            (2, 1, 9, 2, None),
            (3, 1, 1, 1, None),
            (5, 14, 13, 1, Some((0.0, 6.0))),
            (2, 3, 112, 2, None),
            (6, 7, 7, 1, None),
            (3, 15, 14, 2, Some((-0.25, 0.25))),
            (2, 1, 9, 1, None),
            (2, 9, 1, 1, Some((0.0, 0.5))),
            (3, 2, 2, 1, None),
            (2, 2, 17, 1, None),
            (4, 56, 56, 1, Some((0.0, 6.0))),
        ];
        for (c, h, w, stride, clamp) in cases {
            let op = Depthwise3x3 {
                c,
                h,
                w,
                stride,
                clamp,
                kernel: (0..c * 9).map(|_| next()).collect(),
                bias: (0..c).map(|_| next()).collect(),
                avx512: false,
            };
            let x: Vec<f32> = (0..c * h * w).map(|_| next()).collect();
            let (oh, ow) = op.out_hw();
            let want = reference(&op, &x);
            // Both builds (the AVX-512F one where this CPU has it).
            for avx512 in [false, true] {
                let op = op.clone().with_avx512(avx512);
                let mut got = vec![f32::NAN; c * oh * ow];
                op.compute(&x, &mut got).expect("single-threaded run");
                // The same operations in the same order: the same bits (a
                // padding tap adds a zero, which changes no sum that is not
                // itself zero).
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        g.to_bits() == e.to_bits(),
                        "{c}x{h}x{w} stride {stride} avx512 {avx512}: output {i}: got {g}, want {e}"
                    );
                }
            }
        }
    }
}
