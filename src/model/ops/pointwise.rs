//! `MainstreamPointWise` and `MainstreamConvIm2col`: tract ops for 1x1
//! convolutions and (behind an im2col) full group-1 convolutions of one
//! image, run by the pointwise kernel with its bias, ReLU6-style clamp and
//! residual `Add` fused in.
//!
//! The rules in `model::rules` install this op in place of tract's `EinSum`
//! (a decluttered 1x1 convolution; later tract's `OptMatMulPack` +
//! `OptMatMul`) and of full convolutions such as MobileNetV2's 3x3 stride-2
//! stem, before tract's optimiser runs. The residual is added in place into
//! the skip tensor (tract hands over its last reference, so no copy).

use crate::model::kernels::im2col::Im2Col;
use crate::model::kernels::pointwise::{PackedGemm, Simd};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// A 1x1 convolution (no padding, stride 1, batch 1, `f32`) with its bias,
/// an optional ReLU6-style clamp and an optional residual input; or a full
/// convolution when `im2col` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PointWise {
    /// Input and output tensor shapes.
    in_shape: TVec<usize>,
    out_shape: TVec<usize>,
    /// The kernel: weights, biases, clamp, residual.
    gemm: PackedGemm,
    /// For a k x k convolution: how its input becomes the `ci x p` matrix
    /// (then `ci` is `channels * kh * kw`); `None` for a 1x1 convolution.
    im2col: Option<Im2Col>,
}

impl PointWise {
    /// The op for `weights` (`co x ci`, row-major) and `bias` (`co`, or empty
    /// for none) on an input of shape `in_shape` whose channel axis is
    /// `c_axis` (every axis before it must have extent 1). `None` if the
    /// shapes do not fit together.
    pub(crate) fn new(
        in_shape: &[usize],
        c_axis: usize,
        co: usize,
        weights: &[f32],
        bias: &[f32],
    ) -> Option<PointWise> {
        let ci = *in_shape.get(c_axis)?;
        if in_shape[..c_axis].iter().any(|&d| d != 1) {
            return None;
        }
        let p: usize = in_shape[c_axis + 1..].iter().product();
        let gemm = PackedGemm::new(ci, co, p, weights, bias)?;
        let mut out_shape: TVec<usize> = in_shape.into();
        out_shape[c_axis] = co;
        Some(PointWise {
            in_shape: in_shape.into(),
            out_shape,
            gemm,
            im2col: None,
        })
    }

    /// A full 2D convolution on a `[1, c, h, w]` (or `[c, h, w]`) input:
    /// `weights` OIHW (`co x c x kh x kw`), `stride` (y, x), `pad` (top,
    /// left); the output size must be `out_hw`. `None` where it does not fit.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn conv2d(
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
        let chw = (in_shape[n - 3], in_shape[n - 2], in_shape[n - 1]);
        let geo = Im2Col::new(chw, kernel, stride, pad, out_hw)?;
        let mut mat_shape: TVec<usize> = in_shape.into();
        mat_shape[n - 3] = geo.rows();
        mat_shape[n - 2] = out_hw.0;
        mat_shape[n - 1] = out_hw.1;
        let op = PointWise::new(&mat_shape, n - 3, co, weights, bias)?;
        Some(PointWise {
            in_shape: in_shape.into(),
            im2col: Some(geo),
            ..op
        })
    }

    /// The output shape.
    pub(crate) fn out_shape(&self) -> &[usize] {
        &self.out_shape
    }

    /// Output channels.
    pub(crate) fn co(&self) -> usize {
        self.gemm.co()
    }

    /// Pixels per channel of the output.
    pub(crate) fn pixels(&self) -> usize {
        self.gemm.pixels()
    }

    /// The same op with output shape `out_shape` (the same elements in the
    /// same order, e.g. with a unit axis dropped); `None` if the number of
    /// elements differs.
    pub(crate) fn with_out_shape(self, out_shape: &[usize]) -> Option<PointWise> {
        (out_shape.iter().product::<usize>() == self.co() * self.pixels()).then(|| PointWise {
            out_shape: out_shape.into(),
            ..self
        })
    }

    /// Sets the `co` biases to `bias`; false, changing nothing, if the
    /// length differs.
    pub(crate) fn set_bias(&mut self, bias: &[f32]) -> bool {
        self.gemm.set_bias(bias)
    }

    /// Elements of the input it reads.
    pub(crate) fn in_len(&self) -> usize {
        self.in_shape.iter().product()
    }

    /// Whether it takes a residual (its second input, added in place).
    pub(crate) fn residual(&self) -> bool {
        self.gemm.residual()
    }

    /// Runs on `x` into `out` (`co * pixels`), which holds the residual on
    /// entry if the op has one; allocates nothing once this thread's im2col
    /// matrix exists (the fixed-buffer executor, `model::exec`).
    pub(crate) fn run_into(&self, x: &[f32], out: &mut [f32]) -> TractResult<()> {
        ensure!(x.len() == self.in_len());
        match &self.im2col {
            None => self.gemm.compute(x, out),
            Some(geo) => geo.with_matrix(x, |cols| self.gemm.compute(cols, out)),
        }
    }

    /// The same op with a clamp applied last.
    pub(crate) fn with_clamp(self, lo: f32, hi: f32) -> PointWise {
        PointWise {
            gemm: self.gemm.with_clamp(lo, hi),
            ..self
        }
    }

    /// The same op run by the `simd` tiles.
    pub(crate) fn with_simd(self, simd: Simd) -> PointWise {
        PointWise {
            gemm: self.gemm.with_simd(simd),
            ..self
        }
    }

    /// The same op with a residual input (shape of the output) added before
    /// the clamp.
    pub(crate) fn with_residual(self) -> PointWise {
        PointWise {
            gemm: self.gemm.with_residual(),
            ..self
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
            Some(g) => g.describe(),
            None => String::new(),
        };
        let g = &self.gemm;
        Ok(vec![format!(
            "{kernel}ci: {} co: {} pixels: {} clamp: {:?} residual: {} tiles: {:?}",
            g.ci(),
            g.co(),
            g.pixels(),
            g.clamp(),
            g.residual(),
            g.simd()
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for PointWise {
    fn eval(&self, _ctx: &EvalContext, mut inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let residual = self.gemm.residual();
        ensure!(inputs.len() == 1 + usize::from(residual));
        // tract passes its last reference to the skip tensor when this is
        // its last use: `into_tensor` then takes it without a copy.
        let skip = if residual {
            let skip = inputs.pop().context("residual input")?.into_tensor();
            ensure!(skip.datum_type() == f32::datum_type() && skip.shape() == &*self.out_shape);
            Some(skip)
        } else {
            None
        };
        let x = &inputs[0];
        ensure!(x.datum_type() == f32::datum_type() && x.shape() == &*self.in_shape);
        let x = x.try_as_plain_ram()?.as_slice::<f32>()?;
        let run = |x: &[f32]| match skip {
            Some(mut out) => {
                self.gemm
                    .compute(x, out.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?)?;
                Ok(out)
            }
            None => self.gemm.compute_new(x, &self.out_shape),
        };
        let out = match &self.im2col {
            None => run(x)?,
            Some(geo) => geo.with_matrix(x, run)?,
        };
        Ok(tvec!(out.into_tvalue()))
    }

    op_out_of_plan!();
}

impl TypedOp for PointWise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 + usize::from(self.gemm.residual()));
        Ok(tvec!(f32::fact(&*self.out_shape)))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let g = &self.gemm;
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            (g.ci() * g.co() * g.pixels()).into()
        )))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::pointwise::tests::{assert_close, run_op, Rng};
    use crate::model::net::KernelPath;

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
            // Every tiles' path this CPU runs; each gives the same result
            // up to rounding.
            let mut all = vec![];
            for (path, simd) in [
                (KernelPath::Avx512, Simd::Avx512),
                (KernelPath::Avx2, Simd::Avx2),
                (KernelPath::Neon, Simd::Neon),
                (KernelPath::Portable, Simd::Portable),
            ] {
                if path.supported() {
                    let gemm = op.gemm.clone().with_simd(simd);
                    all.push((simd, geo.with_matrix(&x, |cols| run_op(&gemm, cols, None))));
                }
            }
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
            for (simd, got) in all {
                let what = format!("{simd:?}: {c}x{h}x{w} k {kh}x{kw} s {sy}x{sx} p {pt}x{pl}");
                assert_close(&got, &want, c * kh * kw, &what);
            }
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
        assert!(
            op.gemm.compute(&[0.0; 11], &mut out).is_err(),
            "short input"
        );
        assert!(
            op.gemm.compute(&[0.0; 12], &mut out[..7]).is_err(),
            "short output"
        );
        assert!(
            op.gemm.compute_new(&[0.0; 12], &[1, 2, 3]).is_err(),
            "output shape of 6 elements for 8"
        );
    }
}
