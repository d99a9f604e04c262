//! Planning a network into fixed buffers: one walk over the decluttered
//! model (after our rules install their ops) turns every node into a step
//! or an alias, then the values' lifetimes decide which share a buffer.

#[cfg(test)]
use super::Arena;
use super::{BinKind, Exec, Loc, Operand, Step};
use crate::model::ops::depthwise::DepthWise3x3;
use crate::model::ops::pointwise::PointWise;
use std::collections::HashMap;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::nn::{Reduce, Reducer};
use tract_onnx::tract_core::ops::source::TypedSource;

/// A value of the network: the input (value 0) or a node's output.
struct Value {
    len: usize,
}

/// A step before buffers are chosen: values by number.
enum Pending {
    PointWise {
        op: PointWise,
        x: usize,
        skip: Option<usize>,
        out: usize,
    },
    DepthWise {
        op: DepthWise3x3,
        x: usize,
        out: usize,
    },
    Reduce {
        x: usize,
        out: usize,
        groups: usize,
        len: usize,
        max: bool,
    },
    Binary {
        kind: BinKind,
        a: usize,
        b: PendingOperand,
        swapped: bool,
        out: usize,
    },
}

enum PendingOperand {
    Scalar(f32),
    Const(Vec<f32>),
    Value(usize),
}

impl Pending {
    fn out(&self) -> usize {
        match self {
            Pending::PointWise { out, .. }
            | Pending::DepthWise { out, .. }
            | Pending::Reduce { out, .. }
            | Pending::Binary { out, .. } => *out,
        }
    }

    fn reads(&self) -> Vec<usize> {
        match self {
            Pending::PointWise { x, skip, .. } => std::iter::once(*x).chain(*skip).collect(),
            Pending::DepthWise { x, .. } | Pending::Reduce { x, .. } => vec![*x],
            Pending::Binary { a, b, .. } => match b {
                PendingOperand::Value(b) => vec![*a, *b],
                _ => vec![*a],
            },
        }
    }
}

/// The plan for `model` (decluttered, our rules installed): `Err` with the
/// nodes it cannot take (`name (op)`), which the caller names in its log.
pub(crate) fn plan(model: &TypedModel) -> Result<Exec, Vec<String>> {
    let mut refused = vec![];
    let mut values: Vec<Value> = vec![];
    let mut of: HashMap<OutletId, usize> = HashMap::new();
    let mut pending: Vec<Pending> = vec![];
    let inputs = model.input_outlets().map_err(|e| vec![format!("{e}")])?;
    let outputs = model.output_outlets().map_err(|e| vec![format!("{e}")])?;
    if inputs.len() != 1 || outputs.len() != 1 {
        return Err(vec![format!(
            "{} inputs and {} outputs (one of each is planned)",
            inputs.len(),
            outputs.len()
        )]);
    }
    let order = model.eval_order().map_err(|e| vec![format!("{e}")])?;
    for id in order {
        let node = model.node(id);
        // Constants (and nodes tract folded into one) are read by the
        // steps that use them, never run.
        if node.outputs.iter().all(|o| o.fact.konst.is_some()) {
            continue;
        }
        if let Err(why) = plan_node(model, node, &mut values, &mut of, &mut pending) {
            refused.push(format!("{} ({}){why}", node.name, node.op.name()));
            // Its outputs still get values, so that only the nodes that
            // cause the refusal are named, not everything after them.
            for (slot, o) in node.outputs.iter().enumerate() {
                let len = o.fact.shape.as_concrete().map_or(0, |s| s.iter().product());
                values.push(Value { len });
                of.insert(OutletId::new(id, slot), values.len() - 1);
            }
        }
    }
    if !refused.is_empty() {
        return Err(refused);
    }
    let (Some(&input), Some(&output)) = (of.get(&inputs[0]), of.get(&outputs[0])) else {
        return Err(vec!["the output is a constant".into()]);
    };
    Ok(assign(values, pending, input, output))
}

/// Plans one node: a step, an alias or the input; `Err` with why not (may
/// be empty: the op is not one we cover).
fn plan_node(
    model: &TypedModel,
    node: &TypedNode,
    values: &mut Vec<Value>,
    of: &mut HashMap<OutletId, usize>,
    pending: &mut Vec<Pending>,
) -> Result<(), String> {
    if node.outputs.len() != 1 {
        return Err(": several outputs".into());
    }
    let fact = &node.outputs[0].fact;
    let shape = fact
        .shape
        .as_concrete()
        .map(|s| s.to_vec())
        .ok_or(": shape not static")?;
    if fact.datum_type != f32::datum_type() {
        return Err(format!(": {:?} output", fact.datum_type));
    }
    let len: usize = shape.iter().product();
    let out = OutletId::new(node.id, 0);
    let input = |i: usize| node.inputs.get(i).and_then(|o| of.get(o).copied());
    let in_shape = |i: usize| {
        let f = node.inputs.get(i).and_then(|o| model.outlet_fact(*o).ok());
        f.and_then(|f| f.shape.as_concrete().map(|s| s.to_vec()))
    };
    let step = if node.op_as::<TypedSource>().is_some() {
        None
    } else if let Some(op) = node.op_as::<PointWise>() {
        let (Some(x), skip) = (input(0), input(1)) else {
            return Err(": input not planned".into());
        };
        if op.residual() != skip.is_some() || len != op.co() * op.pixels() {
            return Err(": inputs or output do not fit the op".into());
        }
        Some(Pending::PointWise {
            op: op.clone(),
            x,
            skip,
            out: values.len(),
        })
    } else if let Some(op) = node.op_as::<DepthWise3x3>() {
        let Some(x) = input(0).filter(|_| op.lens().1 == len) else {
            return Err(": input or output do not fit the op".into());
        };
        Some(Pending::DepthWise {
            op: op.clone(),
            x,
            out: values.len(),
        })
    } else if let Some(op) = node.op_as::<AxisOp>() {
        // Changes of axes that keep the elements in order share the
        // input's buffer.
        let x = input(0).ok_or(": input not planned")?;
        let keeps_order = match op {
            AxisOp::Add(_) | AxisOp::Rm(_) | AxisOp::Reshape(..) => true,
            AxisOp::Move(..) => in_shape(0).is_some_and(|b| moves_only_unit_axes(&b, op)),
        };
        if !keeps_order || values[x].len != len {
            return Err(": moves data".into());
        }
        of.insert(out, x);
        return Ok(());
    } else if let Some(op) = node.op_as::<Reduce>() {
        let max = match op.reducer {
            Reducer::Sum => false,
            Reducer::Max => true,
            _ => return Err(String::new()),
        };
        let (Some(x), Some(before)) = (input(0), in_shape(0)) else {
            return Err(": input not planned".into());
        };
        let (groups, group_len) = trailing_groups(&before, &op.axes)
            .filter(|&(g, _)| g == len)
            .ok_or_else(|| format!(": reduces axes {:?} of {before:?}", op.axes))?;
        Some(Pending::Reduce {
            x,
            out: values.len(),
            groups,
            len: group_len,
            max,
        })
    } else if let Some(kind) = node
        .op_as::<TypedBinOp>()
        .and_then(|b| BinKind::parse(b.0.name()))
    {
        let step = binary(model, node, kind, of, values, len)
            .ok_or(": broadcasts, or its operands are not planned")?;
        Some(step(values.len()))
    } else {
        return Err(String::new());
    };
    values.push(Value { len });
    of.insert(out, values.len() - 1);
    pending.extend(step);
    Ok(())
}

/// For a shape and reduced axes: `(groups, group length)` if every
/// reduced axis of extent > 1 comes after every kept one, so that the
/// groups are contiguous runs of the data.
fn trailing_groups(shape: &[usize], axes: &[usize]) -> Option<(usize, usize)> {
    let mut inner = false;
    let (mut groups, mut len) = (1, 1);
    for (a, &d) in shape.iter().enumerate() {
        if axes.contains(&a) {
            inner |= d > 1;
            len *= d;
        } else {
            if inner && d > 1 {
                return None;
            }
            groups *= d;
        }
    }
    Some((groups, len))
}

/// Whether `op` (a `Move`) only moves axes of extent 1 past others, so the
/// elements stay in order.
fn moves_only_unit_axes(shape: &[usize], op: &AxisOp) -> bool {
    let mut after: TVec<usize> = shape.into();
    if op.change_shape_array(&mut after, false).is_err() {
        return false;
    }
    let big = |s: &[usize]| s.iter().copied().filter(|&d| d > 1).collect::<Vec<_>>();
    // Non-unit extents in the same order is necessary; with distinct
    // non-unit extents it is also sufficient.
    let b = big(shape);
    let distinct = b.iter().enumerate().all(|(i, d)| !b[..i].contains(d));
    distinct && b == big(&after)
}

/// The elementwise step for `node`, given its output value, or `None` if
/// its operands are not a value and a scalar, a same-shape constant or a
/// same-shape value.
fn binary(
    model: &TypedModel,
    node: &TypedNode,
    kind: BinKind,
    of: &HashMap<OutletId, usize>,
    values: &[Value],
    len: usize,
) -> Option<impl FnOnce(usize) -> Pending> {
    let [i0, i1] = node.inputs.as_slice() else {
        return None;
    };
    let operand = |o: &OutletId| -> Option<PendingOperand> {
        if let Some(&v) = of.get(o) {
            return (values[v].len == len).then_some(PendingOperand::Value(v));
        }
        let k = model.outlet_fact(*o).ok()?.konst.clone()?;
        if k.datum_type() != f32::datum_type() {
            return None;
        }
        let data = k.try_as_plain_ram().ok()?.as_slice::<f32>().ok()?.to_vec();
        match data.len() {
            1 => Some(PendingOperand::Scalar(data[0])),
            n if n == len => Some(PendingOperand::Const(data)),
            _ => None,
        }
    };
    let (a, b) = (operand(i0)?, operand(i1)?);
    let (a, b, swapped) = match (a, b) {
        (PendingOperand::Value(a), b) => (a, b, false),
        (a, PendingOperand::Value(b)) => (b, a, true),
        _ => return None,
    };
    Some(move |out| Pending::Binary {
        kind,
        a,
        b,
        swapped,
        out,
    })
}

/// Chooses every value's buffer: the output value is the caller's buffer,
/// a residual goes in place into its skip value when nothing reads the skip
/// later, and other values take a free slot (best fit, else the largest
/// grown, else a new one), freed after their last reader.
fn assign(values: Vec<Value>, pending: Vec<Pending>, input: usize, output: usize) -> Exec {
    let mut last_use = vec![None; values.len()];
    for (i, p) in pending.iter().enumerate() {
        for v in p.reads() {
            last_use[v] = Some(i);
        }
    }
    // The output value is written straight into the caller's buffer unless
    // a step reads it (then it is copied there at the end).
    let direct = output != input && last_use[output].is_none();
    let mut loc: Vec<Option<Loc>> = vec![None; values.len()];
    loc[input] = Some(Loc::Input);
    let mut caps: Vec<usize> = vec![];
    let mut free: Vec<usize> = vec![];
    let mut steps = vec![];
    let take = |caps: &mut Vec<usize>, free: &mut Vec<usize>, need: usize| -> usize {
        let fits = free
            .iter()
            .enumerate()
            .filter(|(_, &s)| caps[s] >= need)
            .min_by_key(|(_, &s)| caps[s]);
        let pick = fits
            .or_else(|| free.iter().enumerate().max_by_key(|(_, &s)| caps[s]))
            .map(|(i, _)| i);
        match pick {
            Some(i) => {
                let s = free.swap_remove(i);
                caps[s] = caps[s].max(need);
                s
            }
            None => {
                caps.push(need);
                caps.len() - 1
            }
        }
    };
    for (i, p) in pending.into_iter().enumerate() {
        let out = p.out();
        let len = values[out].len;
        let mut in_place = false;
        let dst = if out == output && direct {
            Loc::Output
        } else if let Pending::PointWise {
            x, skip: Some(s), ..
        } = &p
        {
            match loc[*s] {
                Some(Loc::Slot(slot)) if last_use[*s] == Some(i) && s != x => {
                    in_place = true;
                    Loc::Slot(slot)
                }
                _ => Loc::Slot(take(&mut caps, &mut free, len)),
            }
        } else {
            Loc::Slot(take(&mut caps, &mut free, len))
        };
        loc[out] = Some(dst);
        let at = |v: usize| loc[v].unwrap_or(Loc::Input);
        match p {
            Pending::PointWise { op, x, skip, .. } => {
                if let (Some(s), false) = (skip, in_place) {
                    steps.push(Step::Copy {
                        from: at(s),
                        to: dst,
                        len,
                    });
                }
                steps.push(Step::PointWise {
                    op: Box::new(op),
                    x: at(x),
                    out: dst,
                    out_len: len,
                });
            }
            Pending::DepthWise { op, x, .. } => steps.push(Step::DepthWise {
                op: Box::new(op),
                x: at(x),
                out: dst,
                out_len: len,
            }),
            Pending::Reduce {
                x,
                groups,
                len: group_len,
                max,
                ..
            } => steps.push(Step::Reduce {
                x: at(x),
                out: dst,
                groups,
                len: group_len,
                max,
            }),
            Pending::Binary {
                kind,
                a,
                b,
                swapped,
                ..
            } => {
                let b = match b {
                    PendingOperand::Scalar(s) => Operand::Scalar(s),
                    PendingOperand::Const(c) => Operand::Const(c),
                    PendingOperand::Value(v) => Operand::Value(at(v)),
                };
                steps.push(Step::Binary {
                    kind,
                    a: at(a),
                    b,
                    swapped,
                    out: dst,
                    len,
                })
            }
        }
        // Free what this step read for the last time (not the slot the
        // output took over in place), and a value nobody reads.
        let mut release = |v: usize| {
            if let Some(Loc::Slot(s)) = loc[v] {
                let took_over = in_place && Loc::Slot(s) == dst;
                if !free.contains(&s) && !took_over {
                    free.push(s);
                }
            }
        };
        // The output's slot stays until the final copy.
        for v in (0..values.len()).filter(|&v| last_use[v] == Some(i) && v != out && v != output) {
            release(v);
        }
        if last_use[out].is_none() && out != output {
            release(out);
        }
    }
    let input_len = values[input].len;
    let output_len = values[output].len;
    if !direct {
        steps.push(Step::Copy {
            from: loc[output].unwrap_or(Loc::Input),
            to: Loc::Output,
            len: output_len,
        });
    }
    Exec {
        steps,
        caps,
        input_len,
        output_len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::math;

    /// A model `source [1, 4, 2, 3] -> ops -> output`.
    fn model(wire: impl FnOnce(&mut TypedModel, OutletId) -> OutletId) -> TypedModel {
        let mut m = TypedModel::default();
        let x = m.add_source("x", f32::fact([1, 4, 2, 3])).unwrap();
        let y = wire(&mut m, x);
        m.select_output_outlets(&[y]).unwrap();
        m
    }

    #[test]
    fn an_op_it_does_not_cover_is_named_and_nothing_after_it() {
        let m = model(|m, x| {
            let e = m.wire_node("the_exp", math::exp(), &[x]).unwrap()[0];
            let k = m.add_const("two", tensor4(&[[[[2f32]]]])).unwrap();
            m.wire_node("double", math::mul(), &[e, k]).unwrap()[0]
        });
        let refused = plan(&m).expect_err("exp is not covered");
        assert_eq!(refused, vec!["the_exp (Exp)".to_string()]);
    }

    #[test]
    fn pooling_scaling_and_flattening_run_in_planned_buffers() {
        // Global average pooling as tract declutters it: a sum over the
        // plane, a division, then the unit axes removed.
        let m = model(|m, x| {
            let s = m
                .wire_node("sum", Reduce::new(tvec![2, 3], Reducer::Sum), &[x])
                .unwrap()[0];
            let k = m.add_const("six", tensor4(&[[[[6f32]]]])).unwrap();
            let d = m.wire_node("mean", math::div(), &[s, k]).unwrap()[0];
            let r = m.wire_node("rm3", AxisOp::Rm(3), &[d]).unwrap()[0];
            m.wire_node("rm2", AxisOp::Rm(2), &[r]).unwrap()[0]
        });
        let exec = plan(&m).expect("covered");
        let mut arena = Arena::new();
        arena.fit(&exec);
        let x: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let mut out = [0f32; 4];
        exec.run(&mut arena, &x, &mut out).unwrap();
        // Channel c holds 6c .. 6c + 5: mean 6c + 2.5.
        assert_eq!(out, [2.5, 8.5, 14.5, 20.5]);
        // Twice: buffers reused give the same result.
        exec.run(&mut arena, &x, &mut out).unwrap();
        assert_eq!(out, [2.5, 8.5, 14.5, 20.5]);
    }

    #[test]
    fn a_move_that_reorders_data_is_refused_but_one_of_a_unit_axis_is_an_alias() {
        let moves = model(|m, x| m.wire_node("t", AxisOp::Move(1, 3), &[x]).unwrap()[0]);
        assert_eq!(
            plan(&moves).unwrap_err(),
            vec!["t (MoveAxis): moves data".to_string()]
        );
        let unit = model(|m, x| m.wire_node("u", AxisOp::Move(0, 2), &[x]).unwrap()[0]);
        let exec = plan(&unit).expect("a unit axis moved keeps the order");
        let mut arena = Arena::new();
        arena.fit(&exec);
        let x: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let mut out = [0f32; 24];
        exec.run(&mut arena, &x, &mut out).unwrap();
        assert_eq!(out.to_vec(), x, "copied to the output unchanged");
    }

    #[test]
    fn slots_are_shared_by_values_whose_lifetimes_do_not_overlap() {
        // A chain of five elementwise steps needs two slots, not four.
        let m = model(|m, x| {
            let mut v = x;
            for i in 0..5 {
                let k = m
                    .add_const(format!("k{i}"), tensor4(&[[[[1f32]]]]))
                    .unwrap();
                v = m
                    .wire_node(format!("add{i}"), math::add(), &[v, k])
                    .unwrap()[0];
            }
            v
        });
        let exec = plan(&m).expect("covered");
        assert_eq!(exec.caps.len(), 2, "{}", exec.describe());
        let mut arena = Arena::new();
        arena.fit(&exec);
        assert_eq!(arena.bytes(), 2 * 24 * 4);
        let x = vec![0.5f32; 24];
        let mut out = [0f32; 24];
        exec.run(&mut arena, &x, &mut out).unwrap();
        assert!(out.iter().all(|&v| v == 5.5));
    }
}
