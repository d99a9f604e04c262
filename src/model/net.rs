//! tract wrapper: load the base network once, cut segments out of it, load
//! heads, and run any of them with a state created once.
//!
//! Cutting: tract has no "subgraph between two tensors" call, so [`Base::cut`]
//! copies the nodes between the cut tensors into a new typed model whose
//! source is the first tensor and whose output is the second. Ops are cloned,
//! and their weight tensors are `Arc`-shared with the loaded base until tract's
//! optimiser repacks them for its kernels.

use super::manifest::BaseManifest;
use crate::error::{ErrorKind, Result, ResultExt};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use tract_onnx::prelude::*;

/// Lower-case hex SHA-256 of a byte string.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
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
pub(crate) fn check_sha256(path: &Path, sha256: &str) -> Result<()> {
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
        let (typed, label) = self.segment(from, to)?;
        Net::from_typed(typed, label)
    }

    /// [`Base::cut`] on kernel path `path` whatever `MAINSTREAM_KERNEL`
    /// says (for tests and benchmarks comparing paths in one process); a
    /// path this CPU lacks is a configuration error.
    pub fn cut_on(&self, from: usize, to: usize, path: KernelPath) -> Result<Net> {
        if !path.supported() {
            crate::bail!(
                InvalidConfig,
                "kernel path {} does not run on this CPU",
                path.name()
            );
        }
        let (typed, label) = self.segment(from, to)?;
        Net::from_typed_on(typed, label, path, true)
    }

    /// The typed model of the segment `from..to` and its label, before
    /// optimisation (what [`Base::cut`] and [`Base::cut_on`] share).
    fn segment(&self, from: usize, to: usize) -> Result<(TypedModel, String)> {
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
        Ok((typed, label))
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

pub use super::kernels::path::KernelPath;

/// A runnable network piece with its state, created once and reused.
pub struct Net {
    plan: Arc<TypedSimplePlan>,
    state: TypedSimpleState,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
    label: String,
}

impl Net {
    /// The network for `model` on the kernel path `MAINSTREAM_KERNEL` (or
    /// `MAINSTREAM_STOCK_ENGINE=1`) forces, else the best this CPU runs; the
    /// switch is read here, once per network built.
    fn from_typed(model: TypedModel, label: String) -> Result<Net> {
        let forced = KernelPath::from_env()?;
        let path = forced.unwrap_or_else(KernelPath::best);
        Net::from_typed_on(model, label, path, forced.is_some())
    }

    fn from_typed_on(
        mut model: TypedModel,
        label: String,
        path: KernelPath,
        forced: bool,
    ) -> Result<Net> {
        let tiles = super::rules::pointwise_tiles(path, forced);
        log::info!(
            "{label}: kernel path {}{} (1x1 and first convolutions: {})",
            path.name(),
            if forced { ", forced" } else { "" },
            match tiles {
                Some(t) => format!("ours, {t:?} tiles"),
                None => "tract's".to_string(),
            }
        );
        // `into_optimized` is declutter then codegen; our own kernels go in between.
        super::rules::declutter_and_install(&mut model, path, forced)
            .and_then(|()| model.optimize())
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
    pub(crate) fn check_head(
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
