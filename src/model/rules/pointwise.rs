//! The rule that replaces an `EinSum` that is a 1x1 convolution (after
//! declutter) with `MainstreamPointWise`, folding in the bias `Add`, a
//! residual `Add` and a ReLU6 that follow it; and that tail, shared with the
//! im2col rule.

use super::{konst_f32, only_succ, other_input, relu6_after};
use crate::model::kernels::pointwise::Simd;
use crate::model::ops::pointwise::PointWise;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::einsum::EinSum;

/// Smaller planes keep tract's kernels (see `for_einsum`).
const MIN_PIXELS: usize = 16;

/// The patch installing the op for `einsum` (node `node`), if it is a 1x1
/// convolution the op covers.
pub(super) fn rule(
    model: &TypedModel,
    node: &TypedNode,
    einsum: &EinSum,
    simd: Simd,
) -> TractResult<Option<TypedModelPatch>> {
    let Some(axes) = conv1x1_axes(einsum) else {
        return Ok(None);
    };
    let Some(mut op) = for_einsum(model, node, &axes)? else {
        return Ok(None);
    };
    let mut last = node.id;
    let rank = op.out_shape().len();
    if let Some(add) = only_succ(model, last)? {
        let bias = bias_of(model, add, last, rank, axes.c_out, op.co())?;
        if bias.is_some_and(|bias| op.set_bias(&bias)) {
            last = add.id;
        }
    }
    with_tail(model, node, op.with_simd(simd), last).map(Some)
}

/// The patch replacing `node` (and the nodes up to `last`) with `op`, with
/// a residual `Add` and then a ReLU6 after `last` folded in where present.
pub(super) fn with_tail(
    model: &TypedModel,
    node: &TypedNode,
    mut op: PointWise,
    mut last: usize,
) -> TractResult<TypedModelPatch> {
    let mut skip = None;
    if let Some(add) = only_succ(model, last)? {
        if add.op.name() == "Add" {
            if let Some(other) = other_input(add, last) {
                let f = model.outlet_fact(other)?;
                if f.konst.is_none()
                    && f.datum_type == f32::datum_type()
                    && f.shape.as_concrete() == Some(op.out_shape())
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
    Ok(patch)
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
    Ok(op.with_out_shape(out_shape))
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

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::internal::AxesMapping;

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
