//! Separable antialiased resampling with Pillow's `BILINEAR` semantics.
//!
//! # Filter choice
//!
//! A camera frame is shrunk about 3x (640 → 224) before the network sees it. Plain
//! two-tap bilinear interpolation at that ratio reads 2 of every ~3 source pixels and
//! aliases (fine texture turns into moiré, single-pixel detail flickers between
//! frames). Pillow's `BILINEAR` is a triangle filter whose support is widened by the
//! downscale ratio (a tent over ~2x ratio source pixels), i.e. an area-weighted
//! average that is antialiased when shrinking and ordinary bilinear interpolation when
//! enlarging. It is also what torchvision's `transforms.Resize` calls on PIL images,
//! so the base network was trained on exactly this filter's output.
//!
//! We reproduce Pillow's 8-bit path bit for bit (`Resample.c`, `ImagingResample`):
//! the same tap bounds and weights computed in `f64`, the same 22-bit fixed-point
//! weights, a horizontal pass first whose result is rounded to `u8`, then a vertical
//! pass, each rounding half up and clamping to 0..=255. Pillow is therefore an exact
//! independent reference for RGB and grey input.
//!
//! Tap tables are computed once, in [`Taps::new`]; the passes only read them.

/// Fractional bits of the fixed-point weights (Pillow's `PRECISION_BITS`).
pub(crate) const PRECISION_BITS: u32 = 32 - 8 - 2;

/// The rounding offset added before the final shift.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Pillow's bilinear (triangle) filter with support 1.
fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Rounds a fixed-point accumulator to `u8` like Pillow's `clip8` (without
/// branches, which would mispredict on noisy pixels).
#[inline(always)]
pub(crate) fn clip8(acc: i32) -> u8 {
    let v = acc >> PRECISION_BITS;
    (v & !(v >> 31)).min(255) as u8
}

/// Precomputed filter taps for one axis: for output index `o`, the source samples
/// `start[o] .. start[o] + ksize` weighted by `weights[o * ksize ..][..ksize]`.
///
/// Every output has exactly `ksize` taps (unused ones have weight 0 and `start` is
/// moved so that all taps stay inside the source), so inner loops have a fixed length.
#[derive(Clone, Debug)]
pub(crate) struct Taps {
    start: Vec<u32>,
    weights: Vec<i32>,
    ksize: usize,
}

impl Taps {
    /// Taps that map the source interval `[in0, in1)` of an axis of `in_size` samples
    /// onto `out_size` samples. Taps may read outside `[in0, in1)` (but never outside
    /// `0..in_size`), as Pillow's do for a `box`.
    ///
    /// Requires `1 <= out_size`, `1 <= in_size` and `0 <= in0 < in1 <= in_size`; the
    /// caller validates sizes.
    pub(crate) fn new(in_size: usize, in0: f32, in1: f32, out_size: usize) -> Taps {
        debug_assert!(in_size >= 1 && out_size >= 1 && in0 < in1);
        // Same arithmetic, in the same precisions, as Pillow's `precompute_coeffs`.
        let scale = f64::from(in1 - in0) / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filterscale; // the triangle's support is 1
        let pillow_ksize = (support.ceil() as usize) * 2 + 1;
        let ksize = pillow_ksize.min(in_size);

        let mut start = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * ksize];
        let mut k = vec![0f64; pillow_ksize];
        for (o, w_out) in weights.chunks_exact_mut(ksize).enumerate() {
            let center = f64::from(in0) + (o as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            // `as i64` truncates toward zero, like C's `(int)`.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let count = xmax.saturating_sub(xmin).min(pillow_ksize);
            let mut ww = 0.0;
            for (x, kx) in k.iter_mut().take(count).enumerate() {
                let w = triangle(((x + xmin) as f64 - center + 0.5) * ss);
                *kx = w;
                ww += w;
            }
            // Place the taps so that `first + ksize <= in_size`.
            let first = xmin.min(in_size - ksize);
            let shift = xmin - first;
            for (x, &kx) in k.iter().take(count).enumerate() {
                // Pillow normalises, then rounds each weight to 22 fractional bits.
                let kn = if ww != 0.0 { kx / ww } else { kx };
                let scaled = kn * f64::from(1u32 << PRECISION_BITS);
                let q = if kn < 0.0 {
                    -0.5 + scaled
                } else {
                    0.5 + scaled
                };
                w_out[shift + x] = q as i32;
            }
            start.push(first as u32);
        }
        Taps {
            start,
            weights,
            ksize,
        }
    }

    /// Number of output samples.
    pub(crate) fn out_len(&self) -> usize {
        self.start.len()
    }

    /// Taps per output sample.
    #[cfg(test)]
    pub(crate) fn ksize(&self) -> usize {
        self.ksize
    }

    /// First source sample read by output `o`.
    pub(crate) fn start(&self, o: usize) -> usize {
        self.start[o] as usize
    }

    /// The `ksize` fixed-point weights of output `o`.
    pub(crate) fn weights(&self, o: usize) -> &[i32] {
        &self.weights[o * self.ksize..(o + 1) * self.ksize]
    }

    /// Source samples `lo..hi` that some output reads.
    pub(crate) fn span(&self) -> (usize, usize) {
        let lo = self.start.iter().copied().min().unwrap_or(0) as usize;
        let hi = self.start.iter().copied().max().unwrap_or(0) as usize + self.ksize;
        (lo, hi)
    }
}

/// Rows resampled together by the blocked horizontal kernel.
pub(crate) const BLOCK_ROWS: usize = 16;

/// Resamples one row of `C`-channel interleaved pixels horizontally, one output
/// pixel at a time (the kernel for targets without fast 32-bit vector multiplies).
///
/// `src` is the whole source row (`in_size * C` bytes); `dst` receives
/// `taps.out_len() * C` bytes.
#[inline(always)]
pub(crate) fn horizontal_row<const C: usize>(taps: &Taps, src: &[u8], dst: &mut [u8]) {
    match taps.ksize {
        // Fixed-length inner loops for the common tap counts, so the compiler can
        // unroll them and drop bounds checks.
        3 => horizontal_row_k::<C, 3>(taps, src, dst),
        5 => horizontal_row_k::<C, 5>(taps, src, dst),
        7 => horizontal_row_k::<C, 7>(taps, src, dst),
        9 => horizontal_row_k::<C, 9>(taps, src, dst),
        _ => horizontal_row_any::<C>(taps, src, dst),
    }
}

#[inline(always)]
fn horizontal_row_k<const C: usize, const K: usize>(taps: &Taps, src: &[u8], dst: &mut [u8]) {
    let weights = taps.weights.chunks_exact(K);
    for ((d, w), &s) in dst.chunks_exact_mut(C).zip(weights).zip(&taps.start) {
        let s = s as usize * C;
        let px = &src[s..s + K * C];
        let mut acc = [HALF; C];
        for t in 0..K {
            for c in 0..C {
                acc[c] += i32::from(px[t * C + c]) * w[t];
            }
        }
        for c in 0..C {
            d[c] = clip8(acc[c]);
        }
    }
}

#[inline(always)]
fn horizontal_row_any<const C: usize>(taps: &Taps, src: &[u8], dst: &mut [u8]) {
    let k = taps.ksize;
    for ((d, w), &s) in dst
        .chunks_exact_mut(C)
        .zip(taps.weights.chunks_exact(k))
        .zip(&taps.start)
    {
        let s = s as usize * C;
        let mut acc = [HALF; C];
        for (p, &wt) in src[s..s + k * C].chunks_exact(C).zip(w) {
            for c in 0..C {
                acc[c] += i32::from(p[c]) * wt;
            }
        }
        for c in 0..C {
            d[c] = clip8(acc[c]);
        }
    }
}

/// Transposes bytes `j0..j1` of `BLOCK_ROWS` rows (`stride` bytes apart in `src`)
/// into `tb`, so that `tb[(j - j0) * BLOCK_ROWS + r]` is byte `j` of row `r`.
///
/// With the rows as lanes, the horizontal filter becomes a vertical one: every tap
/// is one multiply-add over `BLOCK_ROWS` contiguous values, which vectorises.
#[inline(always)]
pub(crate) fn transpose_block(src: &[u8], stride: usize, j0: usize, j1: usize, tb: &mut [u8]) {
    const R: usize = BLOCK_ROWS;
    let mut j = j0;
    while j + 8 <= j1 {
        for half in 0..R / 8 {
            let mut rows = [0u64; 8];
            for (r, row) in rows.iter_mut().enumerate() {
                let at = (half * 8 + r) * stride + j;
                let bytes: [u8; 8] = src[at..at + 8].try_into().expect("8 bytes");
                *row = u64::from_le_bytes(bytes);
            }
            let cols = transpose8x8(rows);
            for (k, col) in cols.iter().enumerate() {
                let at = (j - j0 + k) * R + half * 8;
                tb[at..at + 8].copy_from_slice(&col.to_le_bytes());
            }
        }
        j += 8;
    }
    for j in j..j1 {
        for r in 0..R {
            tb[(j - j0) * R + r] = src[r * stride + j];
        }
    }
}

/// Transposes an 8x8 byte matrix held as eight little-endian rows: on return,
/// byte `r` of word `k` is byte `k` of input word `r`. Three rounds of swapping
/// off-diagonal blocks (1x1 within 2x2, 2x2 within 4x4, 4x4 within 8x8).
#[inline(always)]
fn transpose8x8(mut x: [u64; 8]) -> [u64; 8] {
    const M1: u64 = 0x00FF_00FF_00FF_00FF;
    const M2: u64 = 0x0000_FFFF_0000_FFFF;
    const M4: u64 = 0x0000_0000_FFFF_FFFF;
    for i in [0, 2, 4, 6] {
        let (a, b) = (x[i], x[i + 1]);
        x[i] = (a & M1) | ((b & M1) << 8);
        x[i + 1] = ((a >> 8) & M1) | (b & !M1);
    }
    for i in [0, 1, 4, 5] {
        let (a, b) = (x[i], x[i + 2]);
        x[i] = (a & M2) | ((b & M2) << 16);
        x[i + 2] = ((a >> 16) & M2) | (b & !M2);
    }
    for i in [0, 1, 2, 3] {
        let (a, b) = (x[i], x[i + 4]);
        x[i] = (a & M4) | ((b & M4) << 32);
        x[i + 4] = ((a >> 32) & M4) | (b & !M4);
    }
    x
}

/// Resamples `BLOCK_ROWS` rows horizontally from their transpose `tb` (made by
/// [`transpose_block`] from byte `j0` on) into `dst`, whose rows are `dstride`
/// bytes apart. Same arithmetic, same result, as [`horizontal_row`].
#[inline(always)]
pub(crate) fn horizontal_block<const C: usize>(
    taps: &Taps,
    tb: &[u8],
    j0: usize,
    dst: &mut [u8],
    dstride: usize,
) {
    match taps.ksize {
        3 => horizontal_block_k::<C, 3>(taps, tb, j0, dst, dstride),
        5 => horizontal_block_k::<C, 5>(taps, tb, j0, dst, dstride),
        7 => horizontal_block_k::<C, 7>(taps, tb, j0, dst, dstride),
        9 => horizontal_block_k::<C, 9>(taps, tb, j0, dst, dstride),
        11 => horizontal_block_k::<C, 11>(taps, tb, j0, dst, dstride),
        13 => horizontal_block_k::<C, 13>(taps, tb, j0, dst, dstride),
        _ => horizontal_block_any::<C>(taps, tb, j0, dst, dstride),
    }
}

#[inline(always)]
fn horizontal_block_k<const C: usize, const K: usize>(
    taps: &Taps,
    tb: &[u8],
    j0: usize,
    dst: &mut [u8],
    dstride: usize,
) {
    const R: usize = BLOCK_ROWS;
    for (x, (w, &s)) in taps.weights.chunks_exact(K).zip(&taps.start).enumerate() {
        let w: &[i32; K] = w.try_into().expect("chunks_exact yields K weights");
        for c in 0..C {
            let mut acc = [HALF; R];
            for (t, &wt) in w.iter().enumerate() {
                let j = (s as usize + t) * C + c - j0;
                let col: &[u8; R] = tb[j * R..(j + 1) * R].try_into().expect("R bytes");
                for r in 0..R {
                    acc[r] += i32::from(col[r]) * wt;
                }
            }
            for (r, &a) in acc.iter().enumerate() {
                dst[r * dstride + x * C + c] = clip8(a);
            }
        }
    }
}

#[inline(always)]
fn horizontal_block_any<const C: usize>(
    taps: &Taps,
    tb: &[u8],
    j0: usize,
    dst: &mut [u8],
    dstride: usize,
) {
    const R: usize = BLOCK_ROWS;
    let k = taps.ksize;
    for (x, (w, &s)) in taps.weights.chunks_exact(k).zip(&taps.start).enumerate() {
        for c in 0..C {
            let mut acc = [HALF; R];
            for (t, &wt) in w.iter().enumerate() {
                let j = (s as usize + t) * C + c - j0;
                let col: &[u8; R] = tb[j * R..(j + 1) * R].try_into().expect("R bytes");
                for r in 0..R {
                    acc[r] += i32::from(col[r]) * wt;
                }
            }
            for (r, &a) in acc.iter().enumerate() {
                dst[r * dstride + x * C + c] = clip8(a);
            }
        }
    }
}

/// Computes output row `o` of the vertical pass into `dst`.
///
/// `rows` holds consecutive intermediate rows of `dst.len()` bytes, the first being
/// source row `row0`. Works on `LANES` columns at a time so the accumulators stay
/// in registers across all taps.
#[inline(always)]
pub(crate) fn vertical_row(taps: &Taps, o: usize, rows: &[u8], row0: usize, dst: &mut [u8]) {
    const LANES: usize = 32;
    let n = dst.len();
    let first = taps.start(o) - row0;
    let weights = taps.weights(o);
    let taps_rows = &rows[first * n..(first + weights.len()) * n];
    let mut x = 0;
    while x + LANES <= n {
        let mut acc = [HALF; LANES];
        for (row, &w) in taps_rows.chunks_exact(n).zip(weights) {
            let px: &[u8; LANES] = row[x..x + LANES].try_into().expect("LANES bytes");
            for i in 0..LANES {
                acc[i] += i32::from(px[i]) * w;
            }
        }
        for (d, &a) in dst[x..x + LANES].iter_mut().zip(&acc) {
            *d = clip8(a);
        }
        x += LANES;
    }
    for (i, d) in dst.iter_mut().enumerate().skip(x) {
        let mut acc = HALF;
        for (row, &w) in taps_rows.chunks_exact(n).zip(weights) {
            acc += i32::from(row[i]) * w;
        }
        *d = clip8(acc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_of_every_output_sum_to_one_within_rounding() {
        for &(inn, out) in &[
            (640, 224),
            (480, 224),
            (768, 224),
            (320, 224),
            (100, 224),
            (7, 3),
        ] {
            let t = Taps::new(inn, 0.0, inn as f32, out);
            for o in 0..out {
                let sum: i64 = t.weights(o).iter().map(|&w| i64::from(w)).sum();
                let one = 1i64 << PRECISION_BITS;
                // Each weight is rounded to the nearest 2^-22.
                assert!(
                    (sum - one).abs() <= t.ksize() as i64,
                    "{inn}->{out} o={o} sum={sum}"
                );
            }
        }
    }

    #[test]
    fn taps_never_read_outside_the_source() {
        for &(inn, out) in &[(640, 224), (3, 224), (1, 5), (224, 224), (5, 1)] {
            let t = Taps::new(inn, 0.0, inn as f32, out);
            assert_eq!(t.out_len(), out);
            for o in 0..out {
                assert!(t.start(o) + t.ksize() <= inn);
            }
        }
    }

    #[test]
    fn downscale_support_grows_with_the_ratio() {
        // 640 -> 224 is a ratio of 2.86: the tent spans +-2.86 source pixels.
        let t = Taps::new(640, 0.0, 640.0, 224);
        assert_eq!(t.ksize(), 7);
        let nonzero = t.weights(100).iter().filter(|&&w| w > 0).count();
        assert!(nonzero >= 5, "{:?}", t.weights(100));
    }

    #[test]
    fn same_size_resampling_is_the_identity() {
        let t = Taps::new(5, 0.0, 5.0, 5);
        let src = [0u8, 17, 255, 128, 3];
        let mut dst = [0u8; 5];
        horizontal_row::<1>(&t, &src, &mut dst);
        assert_eq!(dst, src);
    }

    #[test]
    fn constant_rows_stay_constant() {
        let t = Taps::new(640, 0.0, 640.0, 224);
        let src = vec![77u8; 640 * 3];
        let mut dst = vec![0u8; 224 * 3];
        horizontal_row::<3>(&t, &src, &mut dst);
        assert!(dst.iter().all(|&v| v == 77));
    }

    #[test]
    fn halving_averages_pixel_pairs_with_their_neighbours() {
        // 4 -> 2: scale 2, tent of half-width 2 centred between pixels 0,1 and 2,3.
        let t = Taps::new(4, 0.0, 4.0, 2);
        let src = [0u8, 100, 200, 40];
        let mut dst = [0u8; 2];
        horizontal_row::<1>(&t, &src, &mut dst);
        // Output 0: centre 1.0, weights at x=0,1,2 are 0.75,0.75,0.25 (normalised /1.75).
        let expect0 = ((0.0 * 0.75 + 100.0 * 0.75 + 200.0 * 0.25) / 1.75_f64).round();
        assert_eq!(f64::from(dst[0]), expect0);
    }

    #[test]
    fn transpose8x8_swaps_rows_and_columns() {
        let rows: [u64; 8] =
            std::array::from_fn(|r| u64::from_le_bytes(std::array::from_fn(|k| (r * 8 + k) as u8)));
        let cols = transpose8x8(rows);
        for (k, col) in cols.iter().enumerate() {
            for (r, &b) in col.to_le_bytes().iter().enumerate() {
                assert_eq!(usize::from(b), r * 8 + k);
            }
        }
    }

    #[test]
    fn blocked_and_per_pixel_kernels_agree_bit_for_bit() {
        // Noise-like rows of an odd width, so both the 8-byte transpose and its tail
        // run, through every specialised tap count and the generic one.
        let (w, c) = (203usize, 3usize);
        let mut seed = 0x2545_f491u32;
        let src: Vec<u8> = (0..BLOCK_ROWS * w * c)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                (seed >> 24) as u8
            })
            .collect();
        for out in [300usize, 200, 101, 68, 60, 50, 40, 30, 17] {
            let t = Taps::new(w, 0.0, w as f32, out);
            let (lo, hi) = t.span();
            let (j0, j1) = (lo * c, hi * c);
            let mut tb = vec![0u8; (j1 - j0) * BLOCK_ROWS];
            transpose_block(&src, w * c, j0, j1, &mut tb);
            let mut blocked = vec![0u8; BLOCK_ROWS * out * c];
            horizontal_block::<3>(&t, &tb, j0, &mut blocked, out * c);
            for r in 0..BLOCK_ROWS {
                let mut row = vec![0u8; out * c];
                horizontal_row::<3>(&t, &src[r * w * c..(r + 1) * w * c], &mut row);
                assert_eq!(
                    row,
                    blocked[r * out * c..(r + 1) * out * c],
                    "out={out} row={r}"
                );
            }
        }
    }

    #[test]
    fn vertical_rows_match_a_direct_sum() {
        let (h, w, out) = (50usize, 70usize, 23usize);
        let rows: Vec<u8> = (0..h * w).map(|i| (i * 37 % 251) as u8).collect();
        let t = Taps::new(h, 0.0, h as f32, out);
        for o in 0..out {
            let mut dst = vec![0u8; w];
            vertical_row(&t, o, &rows, 0, &mut dst);
            for (x, &d) in dst.iter().enumerate() {
                let mut acc = HALF;
                for (k, &wt) in t.weights(o).iter().enumerate() {
                    acc += i32::from(rows[(t.start(o) + k) * w + x]) * wt;
                }
                assert_eq!(d, clip8(acc));
            }
        }
    }
}
