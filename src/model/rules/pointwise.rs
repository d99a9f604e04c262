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
    /// Output axes absent from the input (they must have extent 1): a cut
    /// segment's last convolution puts the batch axis back.
    added: Vec<usize>,
    /// Whether the weights are stored `W[i, o]` (a classifier's `Gemm`
    /// without `transB`) rather than `W[o, i]`.
    transposed: bool,
}

/// The axes of an `EinSum` that is a 1x1 convolution
/// (`out[.., o, ..] = sum_i X[.., i, ..] * W[o, i]` or `* W[i, o]`, every
/// other axis of `X` passed through in order or dropped, unit axes added),
/// or `None`.
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
    let &[w0, w1] = w.as_slice() else {
        return None;
    };
    // `W[o, i]`, or `W[i, o]` if its first axis is the input's.
    let transposed = x.contains(&w0);
    let (o, i) = if transposed { (w1, w0) } else { (w0, w1) };
    let distinct = |v: &[char]| v.iter().enumerate().all(|(a, c)| !v[..a].contains(c));
    if o == i || !distinct(&x) || !distinct(&y) || x.contains(&o) || y.contains(&i) {
        return None;
    }
    let c_in = x.iter().position(|&c| c == i)?;
    let c_out = y.iter().position(|&c| c == o)?;
    // The output is the input with i renamed o, minus the dropped axes,
    // plus the added ones.
    let renamed: Vec<char> = x.iter().map(|&c| if c == i { o } else { c }).collect();
    let dropped: Vec<usize> = (0..x.len()).filter(|&a| !y.contains(&renamed[a])).collect();
    let added: Vec<usize> = (0..y.len()).filter(|&a| !renamed.contains(&y[a])).collect();
    let kept: Vec<char> = renamed.iter().copied().filter(|c| y.contains(c)).collect();
    let common: Vec<char> = y.iter().copied().filter(|c| renamed.contains(c)).collect();
    (kept == common).then_some(Conv1x1Axes {
        c_in,
        c_out,
        dropped,
        added,
        transposed,
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
    // Tiny planes stay with tract: a tile would use a few of its 16 lanes.
    // One pixel (the classifier, a matrix-vector product) is ours: the
    // kernel runs it along its weight panels instead.
    let pixels = shape
        .get(axes.c_in + 1..)
        .map(|s| s.iter().product::<usize>());
    if pixels.is_none_or(|p| p < MIN_PIXELS && p != 1)
        || x.datum_type != f32::datum_type()
        || axes.dropped.iter().any(|&a| shape.get(a) != Some(&1))
        || axes.added.iter().any(|&a| out_shape.get(a) != Some(&1))
    {
        return Ok(None);
    }
    let Some(w) = konst_f32(model, node.inputs[1])? else {
        return Ok(None);
    };
    let (&[w0, w1], Some(&xc)) = (w.shape(), shape.get(axes.c_in)) else {
        return Ok(None);
    };
    let (co, ci) = if axes.transposed { (w1, w0) } else { (w0, w1) };
    if ci != xc || out_shape.get(axes.c_out) != Some(&co) {
        return Ok(None);
    }
    let stored = w.try_as_plain_ram()?.as_slice::<f32>()?;
    // `co x ci` row-major, as the op packs it.
    let transposed: Vec<f32>;
    let weights = if axes.transposed {
        transposed = (0..co * ci)
            .map(|j| stored[(j % ci) * co + j / ci])
            .collect();
        &transposed[..]
    } else {
        stored
    };
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
        let axes = |c_in, c_out, dropped: &[usize], added: &[usize], transposed| {
            Some(Conv1x1Axes {
                c_in,
                c_out,
                dropped: dropped.to_vec(),
                added: added.to_vec(),
                transposed,
            })
        };
        let plain = |c_in, c_out, dropped: &[usize]| axes(c_in, c_out, dropped, &[], false);
        assert_eq!(conv1x1_axes(&es(&["abcd", "eb"], "aecd")), plain(1, 1, &[]));
        assert_eq!(conv1x1_axes(&es(&["bcd", "eb"], "ecd")), plain(0, 0, &[]));
        // The batch axis dropped from the output (a cut at a branch point).
        assert_eq!(conv1x1_axes(&es(&["NIHW", "OI"], "OHW")), plain(1, 0, &[0]));
        assert_eq!(conv1x1_axes(&es(&["abcd", "ed"], "abce")), plain(3, 3, &[]));
        // The batch axis put back (a cut segment's last convolution).
        assert_eq!(
            conv1x1_axes(&es(&["IHW", "OI"], "NOHW")),
            axes(0, 1, &[], &[0], false)
        );
        // Weights stored `W[i, o]`: a classifier `Gemm` without `transB`,
        // and a convolution whose weights were stored transposed.
        assert_eq!(
            conv1x1_axes(&es(&["mk", "kn"], "mn")),
            axes(1, 1, &[], &[], true)
        );
        assert_eq!(
            conv1x1_axes(&es(&["abcd", "be"], "aecd")),
            axes(1, 1, &[], &[], true)
        );
        // A transposed output, the channel dropped.
        assert_eq!(conv1x1_axes(&es(&["abcd", "eb"], "acde")), None);
        assert_eq!(conv1x1_axes(&es(&["abcd", "eb"], "acd")), None);
    }
}
