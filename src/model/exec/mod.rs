//! The fixed-buffer executor (issue 23): runs a network whose every node is
//! one we cover, in memory planned once when the network is built, so that
//! running a frame allocates nothing.
//!
//! tract's own executor allocates a new tensor for every node's output on
//! every run (about 300 allocations and 37 MiB per frame for a 3-app tree):
//! memory bandwidth, page faults and allocator work a small board pays on
//! every frame. Shapes are static (the input size is fixed), so here every
//! intermediate value gets a place once: the network's input (read in
//! place), its output (the caller's buffer), or one of a few slots that
//! values share when their lifetimes do not overlap (`build`). A residual
//! is added in place into the skip value's slot when nothing reads the skip
//! afterwards, as tract does with its last reference.
//!
//! What is covered: our own ops (`MainstreamPointWise`, the im2col stem,
//! `MainstreamDepthWise3x3`, which after our rules are all the network's
//! arithmetic but its pooling), sums and maxima over trailing axes (global
//! average pooling is a sum and a division), elementwise arithmetic with a
//! scalar, a same-shape constant or a second value, and the axis changes
//! that keep the data in order (reshape, flatten, adding or removing unit
//! axes). A network holding anything else runs on tract's executor instead,
//! and the build names the nodes it could not take (`model::net`).

mod build;

use super::ops::depthwise::DepthWise3x3;
use super::ops::pointwise::PointWise;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

pub(crate) use build::plan;

/// Where a value lives while the network runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loc {
    /// The network's input (read only).
    Input,
    /// The network's output (the caller's buffer).
    Output,
    /// One of the executor's own buffers.
    Slot(usize),
}

/// An elementwise operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BinKind {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

impl BinKind {
    fn parse(name: &str) -> Option<BinKind> {
        Some(match name {
            "Add" => BinKind::Add,
            "Sub" => BinKind::Sub,
            "Mul" => BinKind::Mul,
            "Div" => BinKind::Div,
            "Max" => BinKind::Max,
            "Min" => BinKind::Min,
            _ => return None,
        })
    }

    #[inline(always)]
    fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinKind::Add => a + b,
            BinKind::Sub => a - b,
            BinKind::Mul => a * b,
            BinKind::Div => a / b,
            BinKind::Max => a.max(b),
            BinKind::Min => a.min(b),
        }
    }
}

/// The second operand of an elementwise operation.
#[derive(Clone, Debug)]
enum Operand {
    /// One constant for every element.
    Scalar(f32),
    /// A constant of the output's shape.
    Const(Vec<f32>),
    /// Another value of the output's shape.
    Value(Loc),
}

/// One step of a run.
#[derive(Clone, Debug)]
enum Step {
    /// A 1x1 (or, through im2col, full) convolution; `out` holds the
    /// residual on entry if the op takes one.
    PointWise {
        op: Box<PointWise>,
        x: Loc,
        out: Loc,
        out_len: usize,
    },
    /// A 3x3 depthwise convolution.
    DepthWise {
        op: Box<DepthWise3x3>,
        x: Loc,
        out: Loc,
        out_len: usize,
    },
    /// `out[..len] = from[..len]`.
    Copy { from: Loc, to: Loc, len: usize },
    /// `out[g] = sum (or max) of x[g * len .. (g + 1) * len]`.
    Reduce {
        x: Loc,
        out: Loc,
        groups: usize,
        len: usize,
        max: bool,
    },
    /// `out[i] = a[i] op b[i]` (`swapped`: `b[i] op a[i]`).
    Binary {
        kind: BinKind,
        a: Loc,
        b: Operand,
        swapped: bool,
        out: Loc,
        len: usize,
    },
}

/// The buffers of one or more planned networks that never run at the same
/// time (the networks of a tree run one after another on one thread): slot
/// `i` is as long as the longest slot `i` any of them needs, allocated when
/// they are built, never while they run.
#[derive(Debug, Default)]
pub(crate) struct Arena {
    slots: Vec<Vec<f32>>,
}

impl Arena {
    /// An empty arena.
    pub(crate) fn new() -> Arena {
        Arena::default()
    }

    /// Grows the arena to hold what `exec` needs.
    pub(crate) fn fit(&mut self, exec: &Exec) {
        for (i, &cap) in exec.caps.iter().enumerate() {
            match self.slots.get_mut(i) {
                Some(s) if s.len() >= cap => {}
                Some(s) => s.resize(cap, 0.0),
                None => self.slots.push(vec![0f32; cap]),
            }
        }
    }

    /// Bytes it holds.
    pub(crate) fn bytes(&self) -> usize {
        self.slots.iter().map(|s| s.len() * 4).sum()
    }
}

/// A network planned into fixed buffers.
#[derive(Debug)]
pub(crate) struct Exec {
    steps: Vec<Step>,
    /// The length of each slot the values share.
    caps: Vec<usize>,
    input_len: usize,
    output_len: usize,
}

impl Exec {
    /// Runs the network on `input` into `output`, its values in `arena`
    /// (grown to fit it with [`Arena::fit`]); allocates nothing.
    pub(crate) fn run(
        &self,
        arena: &mut Arena,
        input: &[f32],
        output: &mut [f32],
    ) -> TractResult<()> {
        ensure!(
            input.len() == self.input_len && output.len() == self.output_len,
            "input of {} and output of {} elements for a network of {} and {}",
            input.len(),
            output.len(),
            self.input_len,
            self.output_len
        );
        let slots = &mut arena.slots;
        for step in &self.steps {
            match step {
                Step::PointWise {
                    op,
                    x,
                    out,
                    out_len,
                } => with_out(slots, output, *out, *out_len, |slots, out| {
                    op.run_into(read(slots, input, *x, op.in_len())?, out)
                })?,
                Step::DepthWise {
                    op,
                    x,
                    out,
                    out_len,
                } => with_out(slots, output, *out, *out_len, |slots, out| {
                    op.run_into(read(slots, input, *x, op.lens().0)?, out)
                })?,
                Step::Copy { from, to, len } => {
                    with_out(slots, output, *to, *len, |slots, out| {
                        out.copy_from_slice(read(slots, input, *from, *len)?);
                        Ok(())
                    })?
                }
                Step::Reduce {
                    x,
                    out,
                    groups,
                    len,
                    max,
                } => with_out(slots, output, *out, *groups, |slots, out| {
                    let x = read(slots, input, *x, groups * len)?;
                    for (o, g) in out.iter_mut().zip(x.chunks_exact(*len)) {
                        *o = if *max {
                            g.iter().copied().fold(f32::NEG_INFINITY, f32::max)
                        } else {
                            g.iter().sum()
                        };
                    }
                    Ok(())
                })?,
                Step::Binary {
                    kind,
                    a,
                    b,
                    swapped,
                    out,
                    len,
                } => with_out(slots, output, *out, *len, |slots, out| {
                    let a = read(slots, input, *a, *len)?;
                    let f = |x: f32, y: f32| {
                        if *swapped {
                            kind.apply(y, x)
                        } else {
                            kind.apply(x, y)
                        }
                    };
                    match b {
                        Operand::Scalar(s) => {
                            for (o, &x) in out.iter_mut().zip(a) {
                                *o = f(x, *s);
                            }
                        }
                        Operand::Const(c) => {
                            for ((o, &x), &y) in out.iter_mut().zip(a).zip(c) {
                                *o = f(x, y);
                            }
                        }
                        Operand::Value(loc) => {
                            let b = read(slots, input, *loc, *len)?;
                            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                                *o = f(x, y);
                            }
                        }
                    }
                    Ok(())
                })?,
            }
        }
        Ok(())
    }

    /// Bytes of the buffers it needs.
    pub(crate) fn buffer_bytes(&self) -> usize {
        self.caps.iter().map(|c| c * 4).sum()
    }

    /// Its steps and buffers, for the build's log line.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} steps in {} buffers of {:.1} MiB",
            self.steps.len(),
            self.caps.len(),
            self.buffer_bytes() as f64 / (1024.0 * 1024.0)
        )
    }
}

/// The first `len` elements of the value at `loc` (never the output: the
/// plan reads no value it writes there).
fn read<'a>(
    slots: &'a [Vec<f32>],
    input: &'a [f32],
    loc: Loc,
    len: usize,
) -> TractResult<&'a [f32]> {
    let buf: &[f32] = match loc {
        Loc::Input => input,
        Loc::Slot(i) => slots.get(i).map(Vec::as_slice).unwrap_or(&[]),
        Loc::Output => bail!("the plan reads the network's output"),
    };
    // A slot taken out for writing reads as empty: a plan that read and
    // wrote one slot in one step fails here instead of computing garbage.
    buf.get(..len)
        .with_context(|| format!("value at {loc:?} has {} elements, {len} needed", buf.len()))
}

/// Calls `f` with the other slots and the first `len` elements of the
/// buffer at `dst`, taken out of `slots` meanwhile (a move, no allocation).
fn with_out(
    slots: &mut [Vec<f32>],
    output: &mut [f32],
    dst: Loc,
    len: usize,
    f: impl FnOnce(&[Vec<f32>], &mut [f32]) -> TractResult<()>,
) -> TractResult<()> {
    match dst {
        Loc::Output => {
            let out = output
                .get_mut(..len)
                .context("the network's output is shorter than its plan")?;
            f(slots, out)
        }
        Loc::Slot(i) => {
            let mut buf = std::mem::take(slots.get_mut(i).context("no such slot")?);
            let r = match buf.get_mut(..len) {
                Some(out) => f(slots, out),
                None => Err(format_err!(
                    "slot {i} holds {} elements, {len} needed",
                    buf.len()
                )),
            };
            slots[i] = buf;
            r
        }
        Loc::Input => bail!("the plan writes the network's input"),
    }
}

#[cfg(test)]
mod tests {
    use crate::model::manifest::BaseManifest;
    use crate::model::net::{tensor_from, Base, Executor, KernelPath, Net};
    use std::path::Path;

    /// The largest difference between two runs' outputs.
    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// A deterministic input of `shape` with values in [-2, 2).
    fn input(shape: &[usize], seed: u64) -> Vec<f32> {
        let mut rng = crate::rng::Rng::new(seed);
        let n = shape.iter().product();
        (0..n).map(|_| rng.unit() as f32 * 4.0 - 2.0).collect()
    }

    #[test]
    fn every_segment_and_head_runs_in_fixed_buffers_and_matches_tracts_executor() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let manifest = BaseManifest::load(&root.join("models/mobilenet_v2/manifest.toml"))
            .expect("the bundled manifest");
        let base = Base::load(manifest).expect("the bundled base network");
        let n = base.manifest.segments();
        let heads = [
            ("birds", 0),
            ("birds", 12),
            ("vehicles", 17),
            ("mammals", 20),
        ];
        for path in KernelPath::ALL {
            if !path.supported() || path == KernelPath::Stock {
                continue;
            }
            let mut pairs: Vec<(String, Net, Net)> = vec![];
            for (from, to) in [(0, n), (0, 8), (8, 12), (12, 20), (20, n), (10, n)] {
                let what = format!("{} [{from}..{to}]", path.name());
                let fixed = base.cut_with(from, to, path, Executor::Fixed).expect(&what);
                let tract = base.cut_with(from, to, path, Executor::Tract).expect(&what);
                pairs.push((what, fixed, tract));
            }
            for (app, bp) in heads {
                let file = root.join(format!("models/apps/{app}/head_bp{bp:02}.onnx"));
                let shape = &base.manifest.points[bp].shape;
                let what = format!("{} head {app} bp{bp}", path.name());
                let fixed = Net::load_head_with(&file, shape, path, Executor::Fixed).expect(&what);
                let tract = Net::load_head_with(&file, shape, path, Executor::Tract).expect(&what);
                pairs.push((what, fixed, tract));
            }
            for (i, (what, mut fixed, mut tract)) in pairs.into_iter().enumerate() {
                assert!(fixed.fixed_buffers(), "{what}: not on fixed buffers");
                assert!(!tract.fixed_buffers(), "{what}");
                let shape = fixed.input_shape().to_vec();
                // Twice: the second run reuses the buffers the first left.
                for round in 0..2u64 {
                    let x = input(&shape, 7 + i as u64 * 13 + round);
                    let a = fixed
                        .run_once(tensor_from(&shape, &x).unwrap())
                        .expect(&what);
                    let b = tract
                        .run_once(tensor_from(&shape, &x).unwrap())
                        .expect(&what);
                    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                    let d = max_diff(&a, &b);
                    assert!(
                        d <= 1e-5 * scale,
                        "{what}: fixed and tract differ by {d} (scale {scale})"
                    );
                }
            }
        }
    }
}
