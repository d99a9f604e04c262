//! One frame of the base network on one kernel path, every node of the
//! optimised plan between two markers, for the instruction-count proxy of
//! benches/aarch64-proxy.sh (run under qemu-aarch64 with the counting
//! plugin benches/aarch64-proxy/insn_count.c; docs/engine.md).
//!
//! ```text
//! aarch64-proxy PATH [--warmup W] [--base MANIFEST] [--input F.f32]
//! ```
//!
//! Builds the whole base network on kernel path PATH (`neon`, `portable`,
//! `stock`, ...), runs W frames (default 1: the first frame fills per-thread
//! buffers), then one frame with a marker before every node and after it,
//! and prints one JSON line per node of the plan (id, name, op, kind, FMAs)
//! and one for the frame (the class it found). Then one more frame, after
//! a warm-up one, through `Net::run`, the executor the product runs
//! (between [`RUN_START`] and [`RUN_END`]). A marker is a `clock_getres`
//! call on the invalid clock `MARK_BASE + code`: code 1 + id before node
//! `id`, [`BETWEEN`] after it (tract's own work between nodes), [`START`]
//! and [`END`] around the frame. The plugin prints the instruction count at
//! each; the script subtracts.

use mainstream::model::manifest::BaseManifest;
use mainstream::model::net::{f32_slice, node_multiply_adds, tensor_from, Base, KernelPath};
use nix::time::{clock_getres, ClockId};
use std::path::PathBuf;
use std::process::ExitCode;
use tract_onnx::prelude::*;

// The allocator of the shipped binary (src/main.rs), so that tract's
// per-frame allocations cost what they cost there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The clock ids the plugin takes for markers (insn_count.c's MARK_BASE).
const MARK_BASE: i32 = 0x4d53_0000;
/// Frame start.
const START: i32 = 0;
/// After a node: what follows until the next node's marker is tract's.
const BETWEEN: i32 = 0xfffe;
/// Frame end.
const END: i32 = 0xffff;
/// Start and end of a frame through the product's executor
/// ([`mainstream::model::net::Net::run`]: our fixed buffers where they
/// cover the network, else tract's executor).
const RUN_START: i32 = 0xfffc;
const RUN_END: i32 = 0xfffd;

/// A marker the plugin sees (the call fails: the clock does not exist).
fn mark(code: i32) {
    let _ = clock_getres(ClockId::from_raw(MARK_BASE + code));
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Which layer of MobileNetV2 a node of the optimised plan works for, so
/// that both plans split the same way: ours fuse the bias, ReLU6 and
/// residual into the convolutions, tract fuses some of them and packs the
/// activations in nodes of their own. By the ONNX names tract keeps (the
/// stem is `features.0`; the classifier `logits`, after the pooling).
fn kind(name: &str, op: &str) -> &'static str {
    if name.contains("features.0/") || name.contains("features.0.") {
        "first conv (+ReLU6)"
    } else if name.starts_with("logits") || name.starts_with("/GlobalAveragePool") {
        "pool + classifier"
    } else if op.contains("DepthWise") || op.starts_with("OptBinChain") {
        "depthwise conv (+ReLU6)"
    } else if op == "MainstreamPointWise" || op.starts_with("OptMatMul") {
        "1x1 conv (+bias, ReLU6, residual, packing)"
    } else {
        "other"
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let path_name = args.next().ok_or("usage: aarch64-proxy PATH [options]")?;
    let path = KernelPath::parse(&path_name).ok_or(format!("unknown path {path_name}"))?;
    let mut warmup = 1;
    let mut base_path = root().join("models/mobilenet_v2/manifest.toml");
    let mut input = root().join("tests/fixtures/imagenet/coffee.input.f32");
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--warmup" => warmup = value.parse().map_err(|e| format!("{value}: {e}"))?,
            "--base" => base_path = value.into(),
            "--input" => input = value.into(),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let manifest = BaseManifest::load(&base_path).map_err(|e| e.to_string())?;
    let base = Base::load(manifest.clone()).map_err(|e| e.to_string())?;
    let mut net = base
        .cut_on(0, base.manifest.segments(), path)
        .map_err(|e| e.to_string())?;
    let plan = net.plan().clone();
    let model = plan.model();
    for node in model.nodes() {
        let fmas = node_multiply_adds(model, node.id).map_err(|e| e.to_string())?;
        let info = node.op.info().unwrap_or_default().join("; ");
        let op = node.op.name();
        let line = serde_json::json!({
            "node": node.id, "name": node.name, "op": op, "fmas": fmas,
            "kind": kind(&node.name, &op), "info": info,
        });
        println!("{line}");
    }
    let bytes = std::fs::read(&input).map_err(|e| format!("{}: {e}", input.display()))?;
    let data: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let tensor = tensor_from(&manifest.input.shape, &data).map_err(|e| e.to_string())?;
    let mut state = plan.spawn().map_err(|e| format!("{e:#}"))?;
    let mut class = 0;
    for f in 0..=warmup {
        let marked = f == warmup;
        if marked {
            mark(START);
        }
        let out = state
            .run_plan_with_eval(
                tvec!(tensor.clone().into_tvalue()),
                |ctx, st, node, inputs| {
                    if marked {
                        mark(1 + node.id as i32);
                    }
                    let r = tract_onnx::tract_core::plan::eval(ctx, st, node, inputs);
                    if marked {
                        mark(BETWEEN);
                    }
                    r
                },
            )
            .map_err(|e| format!("{e:#}"))?;
        if marked {
            mark(END);
        }
        let logits = f32_slice(&out[0]).map_err(|e| e.to_string())?;
        class = logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .unwrap_or(0);
    }
    // The product's executor, warmed up by one frame.
    for marked in [false, true] {
        let input = tensor.clone().into_tvalue();
        if marked {
            mark(RUN_START);
        }
        net.run(input).map_err(|e| e.to_string())?;
        if marked {
            mark(RUN_END);
        }
        net.reset().map_err(|e| e.to_string())?;
    }
    println!(
        "{}",
        serde_json::json!({"path": path.name(), "frame": true, "class": class,
            "warmup": warmup, "fixed_buffers": net.fixed_buffers()})
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aarch64-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}
