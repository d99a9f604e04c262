//! tract wrapper: load the base network once, cut segments out of it, load
//! heads, and run any of them with a state created once.
//!
//! Cutting: tract has no "subgraph between two tensors" call, so [`Base::cut`]
//! copies the nodes between the cut tensors into a new typed model whose
//! source is the first tensor and whose output is the second. Ops are cloned,
//! and their weight tensors are `Arc`-shared with the loaded base until tract's
//! optimiser repacks them for its kernels.

use super::exec::Arena;
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
        self.cut_with(from, to, path, Executor::from_env()?)
    }

    /// [`Base::cut_on`] with `executor` whatever `MAINSTREAM_EXECUTOR`
    /// says (for tests comparing the executors in one process).
    pub fn cut_with(
        &self,
        from: usize,
        to: usize,
        path: KernelPath,
        executor: Executor,
    ) -> Result<Net> {
        if !path.supported() {
            crate::bail!(
                InvalidConfig,
                "kernel path {} does not run on this CPU",
                path.name()
            );
        }
        let (typed, label) = self.segment(from, to)?;
        Net::from_typed_on(typed, label, path, true, executor)
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

pub use super::kernels::path::{KernelPath, KERNEL_ENV};

/// The environment variable that picks the executor: `tract` runs every
/// network on tract's own (which allocates per frame), for comparisons;
/// unset or `fixed`, our fixed-buffer executor runs every network it
/// covers.
pub const EXECUTOR_ENV: &str = "MAINSTREAM_EXECUTOR";

/// Which executor runs a network's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Executor {
    /// Ours, in buffers planned once, where it covers every node (else
    /// tract's, named in the log).
    Fixed,
    /// tract's, which allocates every node's output on every run.
    Tract,
}

impl Executor {
    /// The executor `MAINSTREAM_EXECUTOR` names (unset: [`Executor::Fixed`]);
    /// an unknown value is a configuration error.
    pub fn from_env() -> Result<Executor> {
        match std::env::var(EXECUTOR_ENV) {
            Err(_) => Ok(Executor::Fixed),
            Ok(v) if v == "fixed" || v.is_empty() => Ok(Executor::Fixed),
            Ok(v) if v == "tract" => Ok(Executor::Tract),
            Ok(v) => crate::bail!(
                InvalidConfig,
                "{EXECUTOR_ENV}={v:?} is not an executor: use fixed (the default) or tract"
            ),
        }
    }
}

/// What runs a network.
enum Engine {
    /// Our fixed-buffer executor (`model::exec`): no allocation per run.
    /// The output tensor is allocated once; `value` shares it with readers
    /// until [`Net::reset`].
    Fixed {
        exec: super::exec::Exec,
        /// Its own buffers, made on its first [`Net::run`] (a network
        /// that shares an arena, [`Net::share_buffers`], never makes them).
        own: Option<Arena>,
        out: Arc<Tensor>,
        value: Option<TValue>,
    },
    /// tract's executor, for networks with a node ours does not cover.
    Tract(TypedSimpleState),
}

/// A runnable network piece with its state, created once and reused.
pub struct Net {
    plan: Arc<TypedSimplePlan>,
    engine: Engine,
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
        Net::from_typed_on(model, label, path, forced.is_some(), Executor::from_env()?)
    }

    fn from_typed_on(
        mut model: TypedModel,
        label: String,
        path: KernelPath,
        forced: bool,
        executor: Executor,
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
        // `into_optimized` is declutter then codegen; our own kernels go in
        // between, and the fixed-buffer plan is made from that model.
        super::rules::declutter_and_install(&mut model, path, forced)
            .map_err(model_err)
            .with_msg(|| format!("optimising {label}"))?;
        let fixed = if executor == Executor::Tract {
            log::info!("{label}: tract's executor, forced by {EXECUTOR_ENV}=tract");
            None
        } else {
            match super::exec::plan(&model) {
                Ok(exec) => {
                    log::info!("{label}: fixed-buffer executor, {}", exec.describe());
                    Some(exec)
                }
                Err(refused) => {
                    log::info!(
                        "{label}: tract's executor (it allocates per frame); not covered by ours: {}",
                        refused.join(", ")
                    );
                    None
                }
            }
        };
        model
            .optimize()
            .map_err(model_err)
            .with_msg(|| format!("optimising {label}"))?;
        let concrete = |f: &TypedFact| f.shape.as_concrete().map(|s| s.to_vec());
        let input_shape = concrete(model.input_fact(0).map_err(model_err)?)
            .ok_or_else(|| crate::err!(Model, "{label}: input shape is not static"))?;
        let output_shape = concrete(model.output_fact(0).map_err(model_err)?)
            .ok_or_else(|| crate::err!(Model, "{label}: output shape is not static"))?;
        let plan = model.into_runnable().map_err(model_err)?;
        let engine = match fixed {
            Some(exec) => Engine::Fixed {
                own: None,
                exec,
                out: Arc::new(Tensor::zero::<f32>(&output_shape).map_err(model_err)?),
                value: None,
            },
            None => Engine::Tract(plan.spawn().map_err(model_err)?),
        };
        Ok(Net {
            plan,
            engine,
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

    /// [`Net::load_head`] on kernel path `kernels` with `executor`,
    /// whatever the environment says (for tests).
    pub fn load_head_with(
        path: &Path,
        input_shape: &[usize],
        kernels: KernelPath,
        executor: Executor,
    ) -> Result<Net> {
        let (model, label) = typed_head(path, None, input_shape)?;
        Net::from_typed_on(model, label, kernels, true, executor)
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
        self.run_with(input, None)
    }

    /// Grows `arena` to fit this network, which then runs in it with
    /// [`Net::run_in`] (its own buffers, if a [`Net::run`] made them, are
    /// dropped): the networks that share an arena run one at a time.
    pub(crate) fn share_buffers(&mut self, arena: &mut Arena) {
        if let Engine::Fixed { exec, own, .. } = &mut self.engine {
            arena.fit(exec);
            *own = None;
        }
    }

    /// [`Net::run`] with its values in `arena` (see [`Net::share_buffers`]).
    pub(crate) fn run_in(&mut self, input: TValue, arena: &mut Arena) -> Result<()> {
        self.run_with(input, Some(arena))
    }

    fn run_with(&mut self, input: TValue, shared: Option<&mut Arena>) -> Result<()> {
        match &mut self.engine {
            Engine::Tract(state) => {
                state.set_input(0, input).map_err(model_err)?;
                state.exec().map_err(model_err)
            }
            Engine::Fixed {
                exec,
                own,
                out,
                value,
            } => {
                *value = None;
                let arena = match shared {
                    Some(a) => a,
                    None => own.get_or_insert_with(|| {
                        let mut a = Arena::new();
                        a.fit(exec);
                        a
                    }),
                };
                let x = f32_slice(&input)?;
                let tensor = Arc::get_mut(out).ok_or_else(|| {
                    crate::err!(
                        Internal,
                        "{}: the output of its last run is still in use",
                        self.label
                    )
                })?;
                let mut view = tensor.try_as_plain_ram_mut().map_err(model_err)?;
                let o = view.as_slice_mut::<f32>().map_err(model_err)?;
                exec.run(arena, x, o)
                    .map_err(model_err)
                    .with_msg(|| format!("running {}", self.label))?;
                *value = Some(TValue::from_const(Arc::clone(out)));
                Ok(())
            }
        }
    }

    /// The last run's output.
    pub fn output(&self) -> Result<&TValue> {
        match &self.engine {
            Engine::Tract(state) => state.output(0).map_err(model_err),
            Engine::Fixed { value, .. } => value.as_ref().ok_or_else(|| {
                crate::err!(Internal, "{} has no output: it did not run", self.label)
            }),
        }
    }

    /// Drops the values of the last run (tract frees its tensors), so that
    /// inputs shared with this net are uniquely owned again.
    pub fn reset(&mut self) -> Result<()> {
        match &mut self.engine {
            Engine::Tract(state) => state.reset_turn().map_err(model_err),
            Engine::Fixed { value, .. } => {
                *value = None;
                Ok(())
            }
        }
    }

    /// Whether the fixed-buffer executor runs it (else tract's does).
    pub fn fixed_buffers(&self) -> bool {
        matches!(self.engine, Engine::Fixed { .. })
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

/// The multiply-adds one run of node `id` of `model` does, by its op's
/// own cost model (tract's `Cost::FMA` terms; symbolic ones count as 0):
/// what the engine and aarch64-proxy benches divide time and instructions
/// by.
pub fn node_multiply_adds(model: &TypedModel, id: usize) -> Result<u64> {
    use tract_onnx::tract_core::ops::Cost;
    let node = model.node(id);
    let facts = model.node_input_facts(id).map_err(model_err)?;
    Ok(node
        .op
        .cost(&facts)
        .map_err(model_err)?
        .iter()
        .filter(|(c, _)| matches!(c, Cost::FMA(_)))
        .map(|(_, n)| n.to_i64().unwrap_or(0).max(0) as u64)
        .sum())
}

/// Builds an input tensor from raw `f32` data of the given shape.
pub fn tensor_from(shape: &[usize], data: &[f32]) -> Result<Tensor> {
    Tensor::from_shape(shape, data).map_err(model_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::math;

    #[test]
    fn a_network_with_a_node_the_fixed_executor_lacks_still_runs_on_tracts() {
        let mut m = TypedModel::default();
        let x = m.add_source("x", f32::fact([1, 3])).unwrap();
        let y = m.wire_node("the_exp", math::exp(), &[x]).unwrap()[0];
        m.select_output_outlets(&[y]).unwrap();
        let mut net =
            Net::from_typed_on(m, "exp".into(), KernelPath::Portable, true, Executor::Fixed)
                .expect("built on tract's executor");
        assert!(!net.fixed_buffers());
        let out = net
            .run_once(tensor_from(&[1, 3], &[0.0, 1.0, 2.0]).unwrap())
            .unwrap();
        let want = [1.0f32, 1f32.exp(), 2f32.exp()];
        assert!(
            out.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
            "{out:?}"
        );
    }
}
