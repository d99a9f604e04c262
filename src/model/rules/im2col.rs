//! The rule that replaces a full (group 1) 2D `Conv` with
//! `MainstreamConvIm2col`, folding in a residual `Add` and a ReLU6 that
//! follow it.

use super::konst_f32;
use crate::model::kernels::pointwise::Simd;
use crate::model::ops::pointwise::PointWise;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// The patch installing the op for `conv` (node `node`), if it covers it.
pub(super) fn rule(
    model: &TypedModel,
    node: &TypedNode,
    conv: &Conv,
    simd: Simd,
) -> TractResult<Option<TypedModelPatch>> {
    let Some(op) = for_conv(model, node, conv)? else {
        return Ok(None);
    };
    super::pointwise::with_tail(model, node, op.with_simd(simd), node.id).map(Some)
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
