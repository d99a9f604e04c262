//! The rewrite rules that install our ops in a decluttered tract model,
//! before tract's codegen: one rule per tract op they replace, run by
//! tract's own `Rewriter` (as tract-core's passes are), each matching a
//! node and returning a `TypedModelPatch`.
//!
//! A `Conv` becomes `MainstreamDepthWise3x3` if it is a 3x3 depthwise
//! convolution, else `MainstreamConvIm2col` if it is a full convolution the
//! pointwise kernel covers; an `EinSum` that is a 1x1 convolution becomes
//! `MainstreamPointWise`. The pointwise rules run on the AVX-512F, AVX2+FMA
//! and NEON paths, and on the portable path only where it was forced
//! (`kernels::path`): elsewhere tract's own SIMD kernels are faster than
//! our portable rows.

mod depthwise;
mod im2col;
mod pointwise;

use crate::model::kernels::path::KernelPath;
use crate::model::kernels::pointwise::Simd;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::optim::Optimizer;

/// What the rules may install on this machine.
#[derive(Default)]
struct Kernels {
    /// The tiles the pointwise and im2col ops run, if they are installed.
    pointwise: Option<Simd>,
}

/// The tiles of the pointwise and im2col ops on `path` (`forced`: named by
/// the switch, not chosen), `None` where they are not installed.
pub(crate) fn pointwise_tiles(path: KernelPath, forced: bool) -> Option<Simd> {
    match path {
        KernelPath::Avx512 => Some(Simd::Avx512),
        KernelPath::Avx2 => Some(Simd::Avx2),
        KernelPath::Neon => Some(Simd::Neon),
        KernelPath::Portable if forced => Some(Simd::Portable),
        KernelPath::Portable | KernelPath::Stock => None,
    }
}

/// Declutters `model` and replaces every node our ops cover on `path` (see
/// [`pointwise_tiles`]), with the bias, ReLU6 and residual nodes fused into
/// them; `Stock` is tract's declutter alone.
///
/// The rules see the model decluttered without tract's `ChangeAxes` pass:
/// where tract has a channel-last depthwise kernel (aarch64), that pass
/// moves every depthwise convolution to channels-last, and with them the
/// 1x1 convolutions between them, layouts our ops do not take (only the
/// stem would be ours). The whole declutter runs after the rules; axis
/// changes stop at our ops.
pub(crate) fn declutter_and_install(
    model: &mut TypedModel,
    path: KernelPath,
    forced: bool,
) -> TractResult<()> {
    if path == KernelPath::Stock {
        return model.declutter();
    }
    let mut keep_axes = Optimizer::declutter();
    keep_axes
        .passes
        .retain(|pass| format!("{pass:?}") != "ChangeAxes");
    keep_axes.optimize(model)?;
    install(model, path, forced)?;
    model.declutter()
}

/// Replaces every node our ops cover on `path` in a decluttered model.
fn install(model: &mut TypedModel, path: KernelPath, forced: bool) -> TractResult<()> {
    let ctx = Kernels {
        pointwise: pointwise_tiles(path, forced),
    };
    Rewriter::<Kernels>::default()
        // One rule for both `Conv` replacements, depthwise first: a rule
        // after a successful one would see the replaced node again.
        .with_rule_for::<Conv>("mainstream-conv", |ctx, model, node, _, conv| {
            let wide = ctx.pointwise == Some(Simd::Avx512);
            if let Some(patch) = depthwise::rule(model, node, conv, wide)? {
                return Ok(Some(patch));
            }
            let Some(simd) = ctx.pointwise else {
                return Ok(None);
            };
            im2col::rule(model, node, conv, simd)
        })
        .with_rule_for::<EinSum>("mainstream-pointwise", |ctx, model, node, _, einsum| {
            let Some(simd) = ctx.pointwise else {
                return Ok(None);
            };
            pointwise::rule(model, node, einsum, simd)
        })
        .rewrite(&ctx, model)
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

#[cfg(test)]
mod tests {
    use crate::model::manifest::BaseManifest;
    use crate::model::net::Base;

    #[test]
    fn the_rules_install_our_ops_for_every_layer_of_mobilenet_v2_they_cover() {
        use crate::model::net::KernelPath;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let manifest = BaseManifest::load(&root.join("models/mobilenet_v2/manifest.toml"))
            .expect("the bundled manifest");
        let base = Base::load(manifest).expect("the bundled base network");
        for path in KernelPath::ALL {
            if !path.supported() {
                eprintln!("skipping kernel path {}: this CPU lacks it", path.name());
                continue;
            }
            let net = base
                .cut_on(0, base.manifest.segments(), path)
                .expect("the unsplit base");
            let count = |name: &str| {
                let model = net.plan().model();
                model.nodes().iter().filter(|n| n.op.name() == name).count()
            };
            // docs/engine.md, "Checks (round 2)": 17 depthwise layers, the
            // 34 1x1 convolutions and the classifier (a 1x1 convolution of
            // one pixel, issue 23), and the stem on every path but stock.
            let ours = path != KernelPath::Stock;
            let name = path.name();
            assert_eq!(
                count("MainstreamDepthWise3x3"),
                if ours { 17 } else { 0 },
                "{name}"
            );
            assert_eq!(
                count("MainstreamPointWise"),
                if ours { 35 } else { 0 },
                "{name}"
            );
            assert_eq!(count("MainstreamConvIm2col"), usize::from(ours), "{name}");
        }
    }
}
