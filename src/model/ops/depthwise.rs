//! `MainstreamDepthWise3x3`: a tract op for the 3x3 depthwise convolutions
//! (NCHW or CHW, f32, padding 1, stride 1 or 2) of MobileNet-style networks,
//! with a following ReLU6 fused in; it replaces tract's `DepthWiseConv`
//! (see `kernels::depthwise` for why and how).

use crate::model::kernels::depthwise::Depthwise3x3;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// The op: the kernel and whether the tensors have a leading batch axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DepthWise3x3 {
    /// Whether the tensors have a leading batch axis of 1 (NCHW, else CHW).
    batch: bool,
    /// Taps, biases, geometry and clamp.
    kernel: Depthwise3x3,
}

impl DepthWise3x3 {
    /// The op running `kernel` on tensors with (`batch`) or without a
    /// leading batch axis of 1.
    pub(crate) fn new(batch: bool, kernel: Depthwise3x3) -> DepthWise3x3 {
        DepthWise3x3 { batch, kernel }
    }

    /// The same op with a clamp on the output (a fused ReLU6).
    pub(crate) fn with_clamp(self, lo: f32, hi: f32) -> DepthWise3x3 {
        DepthWise3x3 {
            kernel: self.kernel.with_clamp(lo, hi),
            ..self
        }
    }

    /// Elements of its input and of its output.
    pub(crate) fn lens(&self) -> (usize, usize) {
        let c = self.kernel.channels();
        let ((h, w), (oh, ow)) = (self.kernel.in_hw(), self.kernel.out_hw());
        (c * h * w, c * oh * ow)
    }

    /// Runs on `x` into `out` (the fixed-buffer executor, `model::exec`).
    pub(crate) fn run_into(&self, x: &[f32], out: &mut [f32]) -> TractResult<()> {
        self.kernel.compute(x, out)
    }

    fn shape(&self, h: usize, w: usize) -> TVec<usize> {
        let c = self.kernel.channels();
        if self.batch {
            tvec![1, c, h, w]
        } else {
            tvec![c, h, w]
        }
    }
}

impl Op for DepthWise3x3 {
    fn name(&self) -> StaticName {
        "MainstreamDepthWise3x3".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![self.kernel.describe()])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for DepthWise3x3 {
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let (h, w) = self.kernel.in_hw();
        let (oh, ow) = self.kernel.out_hw();
        ensure!(x.shape() == self.shape(h, w).as_slice());
        let input = x.try_as_plain_ram()?.as_slice::<f32>()?;
        let out = self.kernel.compute_new(input, &self.shape(oh, ow))?;
        Ok(tvec!(out.into_tvalue()))
    }

    op_out_of_plan!();
}

impl TypedOp for DepthWise3x3 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1);
        let (oh, ow) = self.kernel.out_hw();
        Ok(tvec!(f32::fact(self.shape(oh, ow))))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let (oh, ow) = self.kernel.out_hw();
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            (self.kernel.channels() * oh * ow * 9).into()
        )))
    }

    as_op!();
}
