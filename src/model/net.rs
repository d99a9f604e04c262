//! tract wrapper: load the base network once, cut segments out of it, load
//! heads, and run any of them with a state created once.
//!
//! Cutting: tract has no "subgraph between two tensors" call, so [`Base::cut`]
//! copies the nodes between the cut tensors into a new typed model whose
//! source is the first tensor and whose output is the second. Ops are cloned,
//! and their weight tensors are `Arc`-shared with the loaded base until tract's
//! optimiser repacks them for its kernels.

use super::manifest::BaseManifest;
use super::pointwise;
use crate::error::{ErrorKind, Result, ResultExt};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use tract_onnx::prelude::*;

/// Lower-case hex SHA-256 of a byte string.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in d {
        use std::fmt::Write;
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn model_err(e: TractError) -> crate::Error {
    // tract errors carry a context chain; keep all of it in the message.
    crate::Error::new(ErrorKind::Model, format!("{e:#}"))
}

/// The `f32` data of a tensor.
pub fn f32_slice(t: &Tensor) -> Result<&[f32]> {
    t.try_as_plain_ram()
        .and_then(|v| v.as_slice::<f32>())
        .map_err(model_err)
}

/// Reads an ONNX file, checking its SHA-256 if one is expected.
fn read_onnx(path: &Path, expect_sha256: Option<&str>) -> Result<Vec<u8>> {
    let bytes = crate::files::read_bounded(path, crate::files::MAX_MODEL_BYTES)
        .context(ErrorKind::Model, || {
            format!("cannot read {}", path.display())
        })?;
    if let Some(want) = expect_sha256 {
        let got = sha256_hex(&bytes);
        if got != want {
            crate::bail!(
                Model,
                "{} has SHA-256 {got}, but {want} was expected: the file is damaged or not the one its manifest describes",
                path.display()
            );
        }
    }
    Ok(bytes)
}

/// A head file read (bounded, hash checked) and typed with its input shape.
fn typed_head(
    path: &Path,
    sha256: Option<&str>,
    input_shape: &[usize],
) -> Result<(TypedModel, String)> {
    let bytes = read_onnx(path, sha256)?;
    let label = path.display().to_string();
    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .and_then(|m| m.with_input_fact(0, f32::fact(input_shape).into()))
        .and_then(|m| m.into_typed())
        .map_err(model_err)
        .with_msg(|| format!("loading head {label}"))?;
    Ok((model, label))
}

/// Checks that `path` is the ONNX file with SHA-256 `sha256` (read bounded,
/// as the runtime reads it), without parsing it.
pub fn check_sha256(path: &Path, sha256: &str) -> Result<()> {
    read_onnx(path, Some(sha256)).map(drop)
}

/// The base network, parsed once, typed, and ready to be cut.
pub struct Base {
    /// Its manifest.
    pub manifest: BaseManifest,
    model: TypedModel,
    /// The outlet of each branch point, by manifest index.
    outlets: Vec<OutletId>,
}

impl Base {
    /// Loads the base's ONNX file, checks its hash against the manifest and
    /// types it with the manifest's input shape.
    pub fn load(manifest: BaseManifest) -> Result<Base> {
        let bytes = read_onnx(&manifest.onnx, Some(&manifest.sha256))?;
        let shape: TVec<usize> = manifest.input.shape.iter().copied().collect();
        let model = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .and_then(|m| m.with_input_fact(0, f32::fact(&shape).into()))
            .and_then(|m| m.into_typed())
            .map_err(model_err)
            .with_msg(|| format!("loading base network {}", manifest.onnx.display()))?;
        let mut outlets = Vec::with_capacity(manifest.points.len());
        for p in &manifest.points {
            let outlet = find_outlet(&model, &p.tensor).ok_or_else(|| {
                crate::err!(
                    Model,
                    "branch point {} ({}) of {} is not a tensor of the ONNX graph",
                    p.index,
                    p.tensor,
                    manifest.path.display()
                )
            })?;
            let fact = model.outlet_fact(outlet).map_err(model_err)?;
            let got: Vec<usize> = fact
                .shape
                .as_concrete()
                .map(|s| s.to_vec())
                .unwrap_or_default();
            if got != p.shape {
                crate::bail!(
                    Model,
                    "branch point {} ({}) has shape {got:?} in the graph but {:?} in the manifest",
                    p.index,
                    p.tensor,
                    p.shape
                );
            }
            outlets.push(outlet);
        }
        Ok(Base {
            manifest,
            model,
            outlets,
        })
    }

    /// The segment of the network from branch point `from` to branch point
    /// `to` (`from < to`; `to` may be the output), optimised and runnable.
    pub fn cut(&self, from: usize, to: usize) -> Result<Net> {
        let n = self.outlets.len();
        if from >= to || to >= n {
            crate::bail!(
                Internal,
                "cannot cut segment {from}..{to} of a base with {n} points"
            );
        }
        let label = format!("{}[{from}..{to}]", self.manifest.name);
        let typed = extract(
            &self.model,
            self.outlets[from],
            self.outlets[to],
            &self.manifest.points[from].tensor,
        )
        .with_msg(|| format!("cutting {label}"))?;
        Net::from_typed(typed, label)
    }
}

/// Finds a tensor by its ONNX name (outlet label), falling back to a node name.
fn find_outlet(model: &TypedModel, name: &str) -> Option<OutletId> {
    if let Some((o, _)) = model.outlet_labels.iter().find(|(_, l)| l.as_str() == name) {
        return Some(*o);
    }
    model
        .node_by_name(name)
        .ok()
        .map(|n| OutletId::new(n.id, 0))
}

/// Copies the part of `model` that computes `to` from `from` into a new model.
fn extract(
    model: &TypedModel,
    from: OutletId,
    to: OutletId,
    source_name: &str,
) -> Result<TypedModel> {
    // Nodes needed for `to`, walking inputs backwards and stopping at `from`.
    let mut needed: HashSet<usize> = HashSet::new();
    let mut stack = vec![to.node];
    while let Some(id) = stack.pop() {
        if id == from.node || !needed.insert(id) {
            continue;
        }
        let node = model.node(id);
        if node.inputs.is_empty()
            && node
                .op_as::<tract_onnx::tract_core::ops::source::TypedSource>()
                .is_some()
        {
            crate::bail!(
                Model,
                "tensor {} is not a cut point: the segment also reads network input {}",
                source_name,
                node.name
            );
        }
        stack.extend(node.inputs.iter().map(|i| i.node));
    }
    let fact = model.outlet_fact(from).map_err(model_err)?.clone();
    let mut new = TypedModel::default();
    let mut map: HashMap<OutletId, OutletId> = HashMap::new();
    let src = new.add_source(source_name, fact).map_err(model_err)?;
    map.insert(from, src);
    for id in model.eval_order().map_err(model_err)? {
        if !needed.contains(&id) {
            continue;
        }
        let node = model.node(id);
        let inputs: Vec<OutletId> = node
            .inputs
            .iter()
            .map(|i| {
                map.get(i).copied().ok_or_else(|| {
                    crate::err!(Model, "{} reads a tensor outside the segment", node.name)
                })
            })
            .collect::<Result<_>>()?;
        let outs = new
            .wire_node(&node.name, node.op.clone(), &inputs)
            .map_err(model_err)?;
        for (slot, o) in outs.iter().enumerate() {
            map.insert(OutletId::new(id, slot), *o);
        }
    }
    let out = *map
        .get(&to)
        .ok_or_else(|| crate::err!(Model, "output tensor is not reachable from the cut"))?;
    new.select_output_outlets(&[out]).map_err(model_err)?;
    Ok(new)
}

/// Whether `MAINSTREAM_STOCK_ENGINE=1` asks for tract's own kernels only
/// (no [`depthwise`] or [`pointwise`] rewrite): for before/after
/// measurements in one build.
fn stock_engine() -> bool {
    std::env::var_os("MAINSTREAM_STOCK_ENGINE").is_some_and(|v| v == "1")
}

/// A runnable network piece with its state, created once and reused.
pub struct Net {
    plan: Arc<TypedSimplePlan>,
    state: TypedSimpleState,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
    label: String,
}

impl Net {
    fn from_typed(mut model: TypedModel, label: String) -> Result<Net> {
        // `into_optimized` is declutter then codegen; our own kernels go in between.
        model
            .declutter()
            .and_then(|()| {
                if stock_engine() {
                    Ok(0)
                } else {
                    Ok(depthwise::rewrite(&mut model)? + pointwise::rewrite(&mut model)?)
                }
            })
            .and_then(|_| model.optimize())
            .map_err(model_err)
            .with_msg(|| format!("optimising {label}"))?;
        let concrete = |f: &TypedFact| f.shape.as_concrete().map(|s| s.to_vec());
        let input_shape = concrete(model.input_fact(0).map_err(model_err)?)
            .ok_or_else(|| crate::err!(Model, "{label}: input shape is not static"))?;
        let output_shape = concrete(model.output_fact(0).map_err(model_err)?)
            .ok_or_else(|| crate::err!(Model, "{label}: output shape is not static"))?;
        let plan = model.into_runnable().map_err(model_err)?;
        let state = plan.spawn().map_err(model_err)?;
        Ok(Net {
            plan,
            state,
            input_shape,
            output_shape,
            label,
        })
    }

    /// Loads a head ONNX file whose input must be `input_shape`.
    pub fn load_head(path: &Path, sha256: Option<&str>, input_shape: &[usize]) -> Result<Net> {
        let (model, label) = typed_head(path, sha256, input_shape)?;
        Net::from_typed(model, label)
    }

    /// Checks a head file as [`Net::load_head`] reads it (hash if given,
    /// ONNX that tract types with `input_shape` as its input) without
    /// optimising it, and returns its output shape. For `mainstream check`.
    pub fn check_head(
        path: &Path,
        sha256: Option<&str>,
        input_shape: &[usize],
    ) -> Result<Vec<usize>> {
        let (model, label) = typed_head(path, sha256, input_shape)?;
        model
            .output_fact(0)
            .map_err(model_err)?
            .shape
            .as_concrete()
            .map(|s| s.to_vec())
            .ok_or_else(|| crate::err!(Model, "{label}: output shape is not static"))
    }

    /// Runs on `input`. The output stays readable with [`Net::output`] until
    /// [`Net::reset`] or the next run.
    pub fn run(&mut self, input: TValue) -> Result<()> {
        self.state.set_input(0, input).map_err(model_err)?;
        self.state.exec().map_err(model_err)
    }

    /// The last run's output.
    pub fn output(&self) -> Result<&TValue> {
        self.state.output(0).map_err(model_err)
    }

    /// Drops the values of the last run (tract frees its tensors), so that
    /// inputs shared with this net are uniquely owned again.
    pub fn reset(&mut self) -> Result<()> {
        self.state.reset_turn().map_err(model_err)
    }

    /// Runs once with a fresh input tensor and returns a copy of the output
    /// (for tests and tools; allocates).
    pub fn run_once(&mut self, input: Tensor) -> Result<Vec<f32>> {
        self.run(input.into_tvalue())?;
        let v = f32_slice(self.output()?)?.to_vec();
        self.reset()?;
        Ok(v)
    }

    /// Input shape.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Output shape.
    pub fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    /// Name for logs.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The optimised tract plan (for profiling tools: benches/engine).
    pub fn plan(&self) -> &Arc<TypedSimplePlan> {
        &self.plan
    }

    /// Number of nodes in the optimised plan.
    pub fn nodes(&self) -> usize {
        self.plan.model().nodes().len()
    }
}

/// Builds an input tensor from raw `f32` data of the given shape.
pub fn tensor_from(shape: &[usize], data: &[f32]) -> Result<Tensor> {
    Tensor::from_shape(shape, data).map_err(model_err)
}

/// A 3x3 depthwise convolution (NCHW, f32, padding 1, stride 1 or 2) that
/// replaces tract's `DepthWiseConv` for MobileNet-style networks.
///
/// tract 0.23.9's x86_64 depthwise kernel is vectorised only along output
/// rows at stride 1 and at least 32 points wide; stride-2 layers and the
/// 14x14 and 7x7 planes run its scalar loop (0.6-6 GFLOP/s, half of a
/// MobileNetV2 frame; docs/engine.md). This op copies each channel into
/// `stride x stride` zero-padded phase planes (row and column phase: at
/// stride 2 the copy de-interleaves rows and columns), so that every tap is
/// one contiguous multiply-add over a flattened block of output rows and
/// only the kept outputs are computed, which the compiler vectorises (AVX2
/// where the CPU has it, chosen at run time). A following ReLU6 (`Max` then
/// `Min` with constants) is folded in, and channels are split over tract's
/// executor when it has threads. Its scratch is per thread, allocated once.
///
/// Arithmetic per output point is tract's: the bias, then one multiply and
/// one add per tap in row-major order (no fused multiply-add); the logits
/// are bit-identical to tract's own kernel. Padding taps add `w * 0.0`,
/// which leaves every finite sum unchanged.
mod depthwise {
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::internal::*;
    use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;

    /// Output points computed per block (the block's accumulator stays in L1).
    const BLOCK_POINTS: usize = 2048;

    thread_local! {
        /// Per-thread scratch: the phase planes, then one block's
        /// accumulator. Kept around to re-use the backing allocation.
        static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    #[derive(Debug, Clone)]
    pub struct DepthWise3x3 {
        /// Channels.
        c: usize,
        /// Input height and width.
        h: usize,
        w: usize,
        /// 1 or 2.
        stride: usize,
        /// Whether the tensors have a leading batch axis of 1 (NCHW, else CHW).
        batch: bool,
        /// A fused `min(max(x, lo), hi)` (ReLU6) on the output.
        clamp: Option<(f32, f32)>,
        /// `c * 9` taps, row-major per channel.
        kernel: Vec<f32>,
        /// `c` biases.
        bias: Vec<f32>,
    }

    /// Bitwise equality (tract's op equality is `Eq`; weights are compared by bits).
    impl PartialEq for DepthWise3x3 {
        fn eq(&self, o: &Self) -> bool {
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let clamp = |c: Option<(f32, f32)>| c.map(|(a, b)| (a.to_bits(), b.to_bits()));
            (self.c, self.h, self.w, self.stride, self.batch) == (o.c, o.h, o.w, o.stride, o.batch)
                && clamp(self.clamp) == clamp(o.clamp)
                && bits(&self.kernel) == bits(&o.kernel)
                && bits(&self.bias) == bits(&o.bias)
        }
    }

    impl Eq for DepthWise3x3 {}

    impl DepthWise3x3 {
        fn shape(&self, h: usize, w: usize) -> TVec<usize> {
            if self.batch {
                tvec![1, self.c, h, w]
            } else {
                tvec![self.c, h, w]
            }
        }

        fn out_hw(&self) -> (usize, usize) {
            // Padding 1 each side, kernel 3: (n + 2 - 3) / s + 1.
            (
                (self.h - 1) / self.stride + 1,
                (self.w - 1) / self.stride + 1,
            )
        }

        /// This op for `conv` reading `input`, or `None` if it is not a
        /// case this op covers exactly.
        pub fn for_conv(
            model: &TypedModel,
            node: &TypedNode,
            conv: &Conv,
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
            Ok(Some(DepthWise3x3 {
                c,
                h: chw[1],
                w: chw[2],
                stride,
                batch,
                clamp: None,
                kernel,
                bias,
            }))
        }

        /// Row-phase plane geometry: (rows, row pitch, plane length with slack).
        fn planes_geo(&self) -> (usize, usize, usize) {
            let (oh, ow) = self.out_hw();
            // Taps reach 2 / stride rows and columns past an output's own.
            let reach = 2 / self.stride;
            let (ph, pw) = (oh + reach, ow + reach);
            // Slack: a block's taps read up to 2 rows + 2 points past its end.
            (ph, pw, ph * pw + 2 * pw + 2)
        }

        /// One channel: `input` is its `h x w` plane, `output` its `oh x ow`
        /// plane. `planes` (`stride * stride` phase planes of the
        /// zero-padded input) must be zero wherever this function does not
        /// write, which it never changes: pass the same zeroed buffer for
        /// every channel. `acc` holds one block of points (rows of `pw`, the
        /// last `pw - ow` of each junk).
        #[inline(always)]
        fn channel(
            &self,
            ch: usize,
            input: &[f32],
            output: &mut [f32],
            planes: &mut [f32],
            acc: &mut [f32],
        ) {
            let s = self.stride;
            let (oh, ow) = self.out_hw();
            let (ph, pw, plane) = self.planes_geo();
            // Plane (ry, rx) holds padded pixel (s*r + ry, s*c + rx) at
            // r * pw + c; padded pixel (py, px) is input pixel (py - 1,
            // px - 1). At stride 2 the columns are de-interleaved here, so
            // every tap below reads contiguous points and only the kept
            // outputs are computed.
            let w = self.w;
            for ry in 0..s {
                // Planes (ry, 0) and (ry, 1) (only the first at stride 1).
                let (p0, p1) = planes[ry * s * plane..][..s * plane].split_at_mut(plane);
                for r in 0..ph {
                    let py = s * r + ry;
                    if py == 0 || py > self.h {
                        continue;
                    }
                    let src = &input[(py - 1) * w..][..w];
                    if s == 1 {
                        p0[r * pw + 1..][..w].copy_from_slice(src);
                        continue;
                    }
                    // Input column 2i is padded column 2i + 1: plane
                    // (ry, 1), c = i; column 2i + 1 is padded 2i + 2: plane
                    // (ry, 0), c = i + 1. (Written as a zip over pairs so
                    // that the compiler vectorises the de-interleave.)
                    let even = &mut p1[r * pw..][..w.div_ceil(2)];
                    let odd = &mut p0[r * pw + 1..][..w / 2];
                    for ((e, o), pair) in
                        even.iter_mut().zip(odd.iter_mut()).zip(src.chunks_exact(2))
                    {
                        *e = pair[0];
                        *o = pair[1];
                    }
                    if w % 2 == 1 {
                        even[w / 2] = src[w - 1];
                    }
                }
            }
            let t = &self.kernel[ch * 9..][..9];
            let bias = self.bias[ch];
            let rows_per_block = acc.len() / pw;
            let mut oy = 0;
            while oy < oh {
                let rows = rows_per_block.min(oh - oy);
                let n = rows * pw;
                // Point i = r * pw + x of the block (output column x when
                // x < ow, junk otherwise) reads tap (ky, kx) at offset
                // (oy + r + ky / s) * pw + x + kx / s of plane (ky % s, kx % s).
                let src = |ky: usize, kx: usize| {
                    let p = &planes[((ky % s) * s + kx % s) * plane..][..plane];
                    &p[(oy + ky / s) * pw + kx / s..][..n]
                };
                let (s0, s1, s2) = (src(0, 0), src(0, 1), src(0, 2));
                let (s3, s4, s5) = (src(1, 0), src(1, 1), src(1, 2));
                let (s6, s7, s8) = (src(2, 0), src(2, 1), src(2, 2));
                let acc = &mut acc[..n];
                for i in 0..n {
                    let mut v = bias;
                    v += t[0] * s0[i];
                    v += t[1] * s1[i];
                    v += t[2] * s2[i];
                    v += t[3] * s3[i];
                    v += t[4] * s4[i];
                    v += t[5] * s5[i];
                    v += t[6] * s6[i];
                    v += t[7] * s7[i];
                    v += t[8] * s8[i];
                    acc[i] = v;
                }
                let (lo, hi) = self.clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
                for r in 0..rows {
                    let dst = &mut output[(oy + r) * ow..][..ow];
                    for (o, a) in dst.iter_mut().zip(&acc[r * pw..][..ow]) {
                        *o = a.max(lo).min(hi);
                    }
                }
                oy += rows;
            }
        }

        /// Scratch lengths: the phase planes, one block's accumulator.
        fn scratch_lens(&self) -> (usize, usize) {
            let (_, pw, plane) = self.planes_geo();
            (
                plane * self.stride * self.stride,
                (BLOCK_POINTS / pw).max(1) * pw,
            )
        }

        #[inline(always)]
        /// Channels `first..` (as many as `output` holds planes for).
        /// `planes` must be zero (`channel` keeps it so outside what it
        /// writes); both scratch slices have the lengths of `scratch_lens`.
        fn run_channels(
            &self,
            input: &[f32],
            first: usize,
            output: &mut [f32],
            planes: &mut [f32],
            acc: &mut [f32],
        ) {
            let (oh, ow) = self.out_hw();
            for (i, out) in output.chunks_exact_mut(oh * ow).enumerate() {
                let ch = first + i;
                self.channel(
                    ch,
                    &input[ch * self.h * self.w..][..self.h * self.w],
                    out,
                    planes,
                    acc,
                );
            }
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn run_channels_avx2(
            &self,
            input: &[f32],
            first: usize,
            output: &mut [f32],
            planes: &mut [f32],
            acc: &mut [f32],
        ) {
            self.run_channels(input, first, output, planes, acc)
        }

        /// All channels; split across tract's executor when it has threads
        /// (`multithread-mm`), inline otherwise.
        fn run(&self, input: &[f32], output: &mut [f32]) -> TractResult<()> {
            let (oh, ow) = self.out_hw();
            let total = output.len();
            let (planes_len, acc_len) = self.scratch_lens();
            tract_onnx::tract_core::tract_linalg::multithread::par_chunks_mut(
                output,
                oh * ow,
                total,
                |first, chunk| {
                    SCRATCH.with_borrow_mut(|scratch| {
                        // Grows to the largest layer once per thread, then is
                        // reused: no allocation per frame.
                        if scratch.len() < planes_len + acc_len {
                            scratch.resize(planes_len + acc_len, 0.0);
                        }
                        let (planes, rest) = scratch.split_at_mut(planes_len);
                        let acc = &mut rest[..acc_len];
                        // An earlier layer of another geometry may have left
                        // values anywhere.
                        planes.fill(0.0);
                        // (The kernels are called from here, not from inside a
                        // closure of theirs: closures do not inherit
                        // `target_feature`.)
                        #[cfg(target_arch = "x86_64")]
                        if std::arch::is_x86_feature_detected!("avx2") {
                            // SAFETY: the CPU has AVX2 (checked just above).
                            unsafe { self.run_channels_avx2(input, first, chunk, planes, acc) };
                            return Ok(());
                        }
                        self.run_channels(input, first, chunk, planes, acc);
                        Ok(())
                    })
                },
            )
        }
    }

    impl Op for DepthWise3x3 {
        fn name(&self) -> StaticName {
            "MainstreamDepthWise3x3".into()
        }

        fn info(&self) -> TractResult<Vec<String>> {
            Ok(vec![format!(
                "c: {} input: {}x{} stride: {} clamp: {:?}",
                self.c, self.h, self.w, self.stride, self.clamp
            )])
        }

        fn validation(&self) -> Validation {
            Validation::Rounding
        }

        op_as_typed_op!();
    }

    impl EvalOp for DepthWise3x3 {
        fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
            let x = &inputs[0];
            let (oh, ow) = self.out_hw();
            ensure!(x.shape() == self.shape(self.h, self.w).as_slice());
            let input = x.try_as_plain_ram()?.as_slice::<f32>()?;
            // SAFETY: `run` writes every element of every output plane
            // (each channel's `oh x ow` points) before anything reads them.
            let mut out = unsafe { Tensor::uninitialized::<f32>(&self.shape(oh, ow))? };
            self.run(input, out.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?)?;
            Ok(tvec!(out.into_tvalue()))
        }

        op_out_of_plan!();
    }

    impl TypedOp for DepthWise3x3 {
        fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
            ensure!(inputs.len() == 1);
            let (oh, ow) = self.out_hw();
            Ok(tvec!(f32::fact(self.shape(oh, ow))))
        }

        fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
            let (oh, ow) = self.out_hw();
            Ok(tvec!((
                Cost::FMA(f32::datum_type()),
                (self.c * oh * ow * 9).into()
            )))
        }

        as_op!();
    }

    /// The scalar `f32` constant input of `node` other than `from`, if any.
    fn scalar_const(model: &TypedModel, node: &TypedNode, from: usize) -> TractResult<Option<f32>> {
        if node.inputs.len() != 2 {
            return Ok(None);
        }
        let Some(other) = node.inputs.iter().find(|i| i.node != from) else {
            return Ok(None);
        };
        let Some(k) = model.outlet_fact(*other)?.konst.clone() else {
            return Ok(None);
        };
        if k.datum_type() != f32::datum_type() || k.len() != 1 {
            return Ok(None);
        }
        Ok(Some(k.try_as_plain_ram()?.as_slice::<f32>()?[0]))
    }

    /// If node `id`'s only consumer is `Max(x, lo)` and that one's only
    /// consumer is `Min(x, hi)`: `(lo, hi, id of the Min node)`.
    fn relu6_after(model: &TypedModel, id: usize) -> TractResult<Option<(f32, f32, usize)>> {
        let Some(max) = model.single_succ(id)? else {
            return Ok(None);
        };
        if max.op.name() != "Max" || model.outputs.contains(&OutletId::new(id, 0)) {
            return Ok(None);
        }
        let Some(lo) = scalar_const(model, max, id)? else {
            return Ok(None);
        };
        let Some(min) = model.single_succ(max.id)? else {
            return Ok(None);
        };
        if min.op.name() != "Min" || model.outputs.contains(&OutletId::new(max.id, 0)) {
            return Ok(None);
        }
        let Some(hi) = scalar_const(model, min, max.id)? else {
            return Ok(None);
        };
        Ok(Some((lo, hi, min.id)))
    }

    /// Replaces every 3x3 depthwise convolution this op covers; returns how many.
    pub fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
        let mut done = 0;
        for id in model.eval_order()? {
            let node = model.node(id);
            let Some(conv) = node.op_as::<Conv>() else {
                continue;
            };
            let Some(op) = DepthWise3x3::for_conv(model, node, conv)? else {
                continue;
            };
            let mut patch = TypedModelPatch::default();
            let input = patch.taps(model, &node.inputs[..1])?;
            // ReLU6 (`Max(x, lo)` then `Min(x, hi)` with constants) folds into the op.
            let (op, last) = match relu6_after(model, id)? {
                Some((lo, hi, last)) => (
                    DepthWise3x3 {
                        clamp: Some((lo, hi)),
                        ..op
                    },
                    last,
                ),
                None => (op, id),
            };
            let out = patch.wire_node(&node.name, op, &input)?[0];
            patch.shunt_outside(model, OutletId::new(last, 0), out)?;
            patch.apply(model)?;
            done += 1;
        }
        Ok(done)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// A 3x3 depthwise convolution, padding 1, by its definition, in
        /// the op's order of operations (bias, then taps row-major).
        fn reference(op: &DepthWise3x3, x: &[f32]) -> Vec<f32> {
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
        fn matches_the_definition_at_both_strides_on_odd_and_tiny_planes() {
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
            ];
            for (c, h, w, stride, clamp) in cases {
                let op = DepthWise3x3 {
                    c,
                    h,
                    w,
                    stride,
                    batch: true,
                    clamp,
                    kernel: (0..c * 9).map(|_| next()).collect(),
                    bias: (0..c).map(|_| next()).collect(),
                };
                let x: Vec<f32> = (0..c * h * w).map(|_| next()).collect();
                let (oh, ow) = op.out_hw();
                let mut got = vec![f32::NAN; c * oh * ow];
                op.run(&x, &mut got).expect("single-threaded run");
                let want = reference(&op, &x);
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - e).abs() <= 1e-6,
                        "{c}x{h}x{w} stride {stride}: output {i}: got {g}, want {e}"
                    );
                }
            }
        }
    }
}
