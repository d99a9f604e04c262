//! The rule that replaces a 3x3 depthwise `Conv` (padding 1, stride 1 or
//! 2, NCHW or CHW, constant `f32` weights) and a following ReLU6 with
//! `MainstreamDepthWise3x3`.

use super::relu6_after;
use crate::model::kernels::depthwise::Depthwise3x3;
use crate::model::ops::depthwise::DepthWise3x3;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// The patch installing the op for `conv` (node `node`), if it is a case
/// the op covers exactly; `wide` selects its AVX-512F build (the avx512
/// path), else its AVX2 build where the CPU has it.
pub(super) fn rule(
    model: &TypedModel,
    node: &TypedNode,
    conv: &Conv,
    wide: bool,
) -> TractResult<Option<TypedModelPatch>> {
    let Some(op) = for_conv(model, node, conv, wide)? else {
        return Ok(None);
    };
    let mut patch = TypedModelPatch::default();
    let input = patch.taps(model, &node.inputs[..1])?;
    // ReLU6 (`Max(x, lo)` then `Min(x, hi)` with constants) folds into the op.
    let (op, last) = match relu6_after(model, node.id)? {
        Some((lo, hi, last)) => (op.with_clamp(lo, hi), last),
        None => (op, node.id),
    };
    let out = patch.wire_node(&node.name, op, &input)?[0];
    patch.shunt_outside(model, OutletId::new(last, 0), out)?;
    Ok(Some(patch))
}

/// This op for `conv` reading `input`, or `None` if it is not a
/// case this op covers exactly.
fn for_conv(
    model: &TypedModel,
    node: &TypedNode,
    conv: &Conv,
    wide: bool,
) -> TractResult<Option<DepthWise3x3>> {
    let ps = &conv.pool_spec;
    let c = ps.input_channels;
    let pad_ok = match &ps.padding {
        PaddingSpec::Explicit(b, a) => b.iter().chain(a.iter()).all(|&p| p == 1),
        _ => false,
    };
    let stride = ps.stride(0);
    let batch = match ps.data_format {
        DataFormat::NCHW => true,
        DataFormat::CHW => false,
        _ => return Ok(None),
    };
    if conv.q_params.is_some()
        || conv.kernel_fmt != KernelFormat::OIHW
        || ps.kernel_shape.as_slice() != [3, 3]
        || !pad_ok
        || ps.dilation(0) != 1
        || ps.dilation(1) != 1
        || stride != ps.stride(1)
        || !(stride == 1 || stride == 2)
        || conv.group != c
        || ps.output_channels != c
        || node.inputs.len() != 3
    {
        return Ok(None);
    }
    let x = model.outlet_fact(node.inputs[0])?;
    let Some(shape) = x.shape.as_concrete() else {
        return Ok(None);
    };
    let chw = if batch {
        if shape.len() != 4 || shape[0] != 1 {
            return Ok(None);
        }
        &shape[1..]
    } else {
        shape
    };
    if x.datum_type != f32::datum_type() || chw.len() != 3 || chw[0] != c {
        return Ok(None);
    }
    let konst = |ix: usize| model.outlet_fact(node.inputs[ix]).map(|f| f.konst.clone());
    let (Some(k), Some(b)) = (konst(1)?, konst(2)?) else {
        return Ok(None);
    };
    if k.datum_type() != f32::datum_type()
        || k.shape() != [c, 1, 3, 3]
        || b.datum_type() != f32::datum_type()
    {
        return Ok(None);
    }
    let kernel = k.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
    let bias = b.try_as_plain_ram()?.as_slice::<f32>()?;
    let bias = match bias.len() {
        1 => vec![bias[0]; c],
        n if n == c => bias.to_vec(),
        _ => return Ok(None),
    };
    Ok(Depthwise3x3::new((c, chw[1], chw[2]), stride, kernel, bias)
        .map(|k| DepthWise3x3::new(batch, k.with_avx512(wide))))
}
