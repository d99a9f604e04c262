//! The engine bench behind `benches/engine-compare.sh` and `docs/engine.md`:
//! tract timed per frame through the mainstream runtime (the stem tree),
//! a per-operator profile of the optimised tract plan, an output check, and
//! an FMA micro-benchmark for the core's peak.
//!
//! ```text
//! engine time    [--tract-threads K] [--intra-threads K] [--intra-min-work W] [--head-threads T]
//!                [--apps N] [--sharing none|mid|max] [--frames F] [--reps R] [--warmup W]
//!                [--label L] [--base M] [--input F.f32 ...]
//! engine profile [--frames F] [--tract-threads K] [--intra-threads K] [--intra-min-work W]
//!                [--base M] [--input F.f32]
//! engine check   [--save DIR] [--against DIR] [--tract-threads K] [--intra-threads K] [--base M]
//! engine peak
//! ```
//!
//! `--intra-threads K` (K > 1) installs our fork-join pool of K threads
//! (`mainstream::model::pool`) around every run on the calling thread, so
//! our kernels split each op over K cores; `--intra-min-work W` sets the
//! work below which an op stays on one thread (default
//! `pool::MIN_PARALLEL_WORK`). `--tract-threads K` is tract's own rayon
//! executor, which now only splits the ops tract still runs itself.
//!
//! Every command prints JSON lines on stdout (one per result); `profile` also
//! prints a table on stderr.

use mainstream::bench::{bench_apps, run_frames, Sharing};
use mainstream::model::manifest::BaseManifest;
use mainstream::model::net::{f32_slice, node_multiply_adds, tensor_from, Base};
use mainstream::model::pool::{Pool, MIN_PARALLEL_WORK};
use mainstream::model::tree::StemTree;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use tract_onnx::prelude::*;

type AnyResult<T> = std::result::Result<T, String>;

/// Real photos shipped with the tests, preprocessed to the base's input.
const PHOTOS: [&str; 3] = ["coffee", "chelsea", "rocket"];
/// Their ImageNet classes (tests/fixtures/imagenet/expected.toml).
const PHOTO_CLASSES: [usize; 3] = [967, 285, 540];

struct Args {
    base: PathBuf,
    inputs: Vec<PathBuf>,
    frames: usize,
    reps: usize,
    warmup: usize,
    tract_threads: usize,
    intra_threads: usize,
    intra_min_work: usize,
    head_threads: usize,
    apps: usize,
    sharing: Sharing,
    label: String,
    save: Option<PathBuf>,
    against: Option<PathBuf>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/imagenet").join(name)
}

fn parse(mut it: impl Iterator<Item = String>) -> AnyResult<Args> {
    let mut a = Args {
        base: root().join("models/mobilenet_v2/manifest.toml"),
        inputs: Vec::new(),
        frames: 20,
        reps: 3,
        warmup: 3,
        tract_threads: 1,
        intra_threads: 1,
        intra_min_work: MIN_PARALLEL_WORK,
        head_threads: 1,
        apps: 1,
        sharing: Sharing::None,
        label: String::new(),
        save: None,
        against: None,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: String| v.parse::<usize>().map_err(|e| format!("{v}: {e}"));
        match flag.as_str() {
            "--base" => a.base = value()?.into(),
            "--input" => a.inputs.push(value()?.into()),
            "--frames" => a.frames = num(value()?)?.max(1),
            "--reps" => a.reps = num(value()?)?.max(1),
            "--warmup" => a.warmup = num(value()?)?,
            "--tract-threads" => a.tract_threads = num(value()?)?.max(1),
            "--intra-threads" => a.intra_threads = num(value()?)?.max(1),
            "--intra-min-work" => a.intra_min_work = num(value()?)?,
            "--head-threads" => a.head_threads = num(value()?)?.max(1),
            "--apps" => a.apps = num(value()?)?.max(1),
            "--sharing" => {
                let v = value()?;
                a.sharing = Sharing::parse(&v).ok_or_else(|| format!("unknown sharing {v}"))?
            }
            "--label" => a.label = value()?,
            "--save" => a.save = Some(value()?.into()),
            "--against" => a.against = Some(value()?.into()),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if a.inputs.is_empty() {
        a.inputs = PHOTOS
            .iter()
            .map(|p| fixture(&format!("{p}.input.f32")))
            .collect();
    }
    Ok(a)
}

fn read_f32(path: &Path) -> AnyResult<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn write_f32(path: &Path, v: &[f32]) -> AnyResult<()> {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Sets tract's matmul executor: `k > 1` splits each matmul over a k-thread
/// rayon pool (tract-linalg's `multithread-mm`).
fn set_tract_threads(k: usize) {
    use tract_onnx::tract_core::tract_linalg::multithread::{set_default_executor, Executor};
    if k > 1 {
        set_default_executor(Executor::multithread(k));
    } else {
        set_default_executor(Executor::SingleThread);
    }
}

/// Our intra-op pool of `--intra-threads` threads (none for 1).
fn intra_pool(a: &Args) -> AnyResult<Option<Pool>> {
    if a.intra_threads < 2 {
        return Ok(None);
    }
    Pool::with_min_work(a.intra_threads, a.intra_min_work)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Runs `f` with `pool` installed on this thread, if there is one.
fn with_pool<R>(pool: &Option<Pool>, f: impl FnOnce() -> R) -> R {
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

fn allocator_and_target(alloc: &str) -> (String, String) {
    let target = if cfg!(target_env = "musl") {
        "musl"
    } else {
        "glibc"
    };
    (alloc.to_string(), target.to_string())
}

/// `time`: ms per frame of a stem tree of `apps` bench apps (each the base's
/// own remainder from the sharing's branch point), as `mainstream bench` does.
fn time(a: &Args, alloc: &str) -> AnyResult<()> {
    set_tract_threads(a.tract_threads);
    let manifest = BaseManifest::load(&a.base).map_err(|e| e.to_string())?;
    let inputs: Vec<Vec<f32>> = a
        .inputs
        .iter()
        .map(|p| read_f32(p))
        .collect::<AnyResult<_>>()?;
    let len: usize = manifest.input.shape.iter().product();
    if let Some(bad) = inputs.iter().position(|i| i.len() != len) {
        return Err(format!(
            "{}: not a [1,3,224,224] f32 tensor",
            a.inputs[bad].display()
        ));
    }
    let base = Base::load(manifest).map_err(|e| e.to_string())?;
    let branch = a.sharing.branch(base.manifest.segments());
    let plans = bench_apps(&base, a.sharing, a.apps);
    let t0 = Instant::now();
    let mut tree =
        StemTree::build_head_threads(&base, plans, a.head_threads).map_err(|e| e.to_string())?;
    let build_s = t0.elapsed().as_secs_f64();
    let mut frame = 0u64;
    let pool = intra_pool(a)?;
    let mut frames = |tree: &mut StemTree, n: u64| -> AnyResult<()> {
        with_pool(&pool, || run_frames(tree, &inputs, frame, n)).map_err(|e| e.to_string())?;
        frame += n;
        Ok(())
    };
    frames(&mut tree, a.warmup as u64)?;
    let mut runs = Vec::with_capacity(a.reps);
    for _ in 0..a.reps {
        let t = Instant::now();
        frames(&mut tree, a.frames as u64)?;
        runs.push(t.elapsed().as_secs_f64() * 1000.0 / a.frames as f64);
    }
    let (alloc, target) = allocator_and_target(alloc);
    let line = serde_json::json!({
        "engine": "tract",
        "kernel": mainstream::model::net::KernelPath::from_env()
            .map_err(|e| e.to_string())?
            .unwrap_or_else(mainstream::model::net::KernelPath::best)
            .name(),
        "executor": if tree.fixed_buffers() { "fixed" } else { "tract" },
        "label": a.label,
        "target": target,
        "allocator": alloc,
        "tract_threads": a.tract_threads,
        "intra_threads": a.intra_threads,
        "intra_min_work": a.intra_min_work,
        "head_threads": a.head_threads,
        "apps": a.apps,
        "sharing": format!("{:?}", a.sharing).to_lowercase(),
        "branch": branch,
        "frames": a.frames,
        "build_s": build_s,
        "ms": median(&runs),
        "runs_ms": runs,
    });
    println!("{line}");
    Ok(())
}

/// What kind of work a node of the optimised plan does.
fn kind_of(op_name: &str, info: &str, fmas: u64) -> &'static str {
    let n = op_name.to_ascii_lowercase();
    let i = info.to_ascii_lowercase();
    if n.contains("depthwise") || n.contains("depth_wise") || n.contains("depthwise3x3") {
        "depthwise conv"
    } else if fmas > 0
        && (n.contains("matmul")
            || n.contains("conv")
            || n.contains("pointwise")
            || n.contains("spatial")
            || n.contains("blocked"))
    {
        if i.contains("3x3") || i.contains("[3, 3]") || i.contains("k=27") {
            "full conv (stem 3x3)"
        } else {
            "pointwise conv / matmul"
        }
    } else if n.contains("im2col") || n.contains("pack") {
        "im2col / packing"
    } else if n.contains("reduce") || n.contains("pool") {
        "pooling"
    } else {
        "elementwise / other"
    }
}

struct NodeStat {
    name: String,
    op: String,
    info: String,
    fmas: u64,
    out_shape: String,
    /// Seconds of each timed frame.
    times: Vec<f64>,
}

/// `profile`: times every node of the optimised plan over `frames` runs.
fn profile(a: &Args) -> AnyResult<()> {
    set_tract_threads(a.tract_threads);
    let manifest = BaseManifest::load(&a.base).map_err(|e| e.to_string())?;
    let base = Base::load(manifest.clone()).map_err(|e| e.to_string())?;
    let net = base
        .cut(0, base.manifest.segments())
        .map_err(|e| e.to_string())?;
    let plan = net.plan().clone();
    let model = plan.model();
    let input = read_f32(&a.inputs[0])?;
    let tensor = tensor_from(&manifest.input.shape, &input).map_err(|e| e.to_string())?;
    let mut stats: Vec<Option<NodeStat>> = Vec::new();
    for node in model.nodes() {
        let fmas = node_multiply_adds(model, node.id).map_err(|e| e.to_string())?;
        let info = node.op.info().unwrap_or_default().join("; ");
        let out_shape = node
            .outputs
            .first()
            .map(|o| format!("{:?}", o.fact.shape))
            .unwrap_or_default();
        stats.push(Some(NodeStat {
            name: node.name.clone(),
            op: node.op.name().to_string(),
            info,
            fmas,
            out_shape,
            times: Vec::new(),
        }));
    }
    let mut state = plan.spawn().map_err(|e| format!("{e:#}"))?;
    let pool = intra_pool(a)?;
    let mut whole = Vec::new();
    for f in 0..(a.warmup + a.frames) {
        let timing = f >= a.warmup;
        let t_frame = Instant::now();
        let mut times: Vec<(usize, f64)> = Vec::with_capacity(stats.len());
        with_pool(&pool, || {
            state.run_plan_with_eval(
                tvec!(tensor.clone().into_tvalue()),
                |ctx, st, node, inputs| {
                    let t = Instant::now();
                    let r = tract_onnx::tract_core::plan::eval(ctx, st, node, inputs);
                    times.push((node.id, t.elapsed().as_secs_f64()));
                    r
                },
            )
        })
        .map_err(|e| format!("{e:#}"))?;
        if timing {
            whole.push(t_frame.elapsed().as_secs_f64() * 1000.0);
            for (id, s) in times {
                if let Some(Some(st)) = stats.get_mut(id) {
                    st.times.push(s);
                }
            }
        }
    }
    let mut groups: BTreeMap<&'static str, (f64, u64, usize)> = BTreeMap::new();
    let mut ops: BTreeMap<String, (f64, u64, usize)> = BTreeMap::new();
    eprintln!(
        "{:>4} {:<44} {:<22} {:>9} {:>9} {:>8}  info",
        "id", "node", "op", "MFMA", "us", "GFLOP/s"
    );
    for (id, st) in stats.iter().enumerate() {
        let Some(st) = st else { continue };
        // Median over frames: robust to other jobs on a shared machine.
        // (Const nodes are not evaluated per frame: no times, zero cost.)
        let us = if st.times.is_empty() {
            0.0
        } else {
            median(&st.times) * 1e6
        };
        let gflops = if us > 0.0 {
            2.0 * st.fmas as f64 / (us * 1e3)
        } else {
            0.0
        };
        let kind = kind_of(&st.op, &st.info, st.fmas);
        let g = groups.entry(kind).or_default();
        g.0 += us;
        g.1 += st.fmas;
        g.2 += 1;
        let o = ops.entry(st.op.clone()).or_default();
        o.0 += us;
        o.1 += st.fmas;
        o.2 += 1;
        eprintln!(
            "{id:>4} {:<44} {:<22} {:>9.3} {:>9.1} {:>8.1}  {} {}",
            truncate(&st.name, 44),
            truncate(&st.op, 22),
            st.fmas as f64 / 1e6,
            us,
            gflops,
            st.out_shape,
            truncate(&st.info, 160)
        );
        let line = serde_json::json!({
            "node": id, "name": st.name, "op": st.op, "kind": kind, "fmas": st.fmas,
            "us": us, "gflops": gflops, "shape": st.out_shape, "info": st.info,
        });
        println!("{line}");
    }
    let total_us: f64 = groups.values().map(|g| g.0).sum();
    let total_fma: u64 = groups.values().map(|g| g.1).sum();
    eprintln!("\nby kind:");
    for (kind, (us, fmas, n)) in &groups {
        let gflops = 2.0 * *fmas as f64 / (us * 1e3);
        eprintln!(
            "  {kind:<26} {n:>3} nodes {:>8.2} ms {:>5.1}%  {:>7.1} MFMA  {gflops:>6.1} GFLOP/s",
            us / 1e3,
            100.0 * us / total_us,
            *fmas as f64 / 1e6
        );
        println!(
            "{}",
            serde_json::json!({"group": kind, "nodes": n, "ms": us / 1e3,
                "share": us / total_us, "fmas": fmas, "gflops": gflops})
        );
    }
    eprintln!("\nby op:");
    for (op, (us, fmas, n)) in &ops {
        eprintln!(
            "  {op:<32} {n:>3} nodes {:>8.2} ms {:>7.1} MFMA  {:>6.1} GFLOP/s",
            us / 1e3,
            *fmas as f64 / 1e6,
            2.0 * *fmas as f64 / (us * 1e3)
        );
    }
    eprintln!(
        "\nsum of per-node medians {:.2} ms, whole frame (median, with profiling) {:.2} ms, {:.1} MFMA, {:.1} GFLOP/s",
        total_us / 1e3,
        median(&whole),
        total_fma as f64 / 1e6,
        2.0 * total_fma as f64 / (total_us * 1e3)
    );
    println!(
        "{}",
        serde_json::json!({"total_ms": total_us / 1e3, "frame_ms": median(&whole),
            "fmas": total_fma, "gflops": 2.0 * total_fma as f64 / (total_us * 1e3)})
    );
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(std::iter::once('~')).collect()
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(
        if a.len() == b.len() {
            0.0
        } else {
            f32::INFINITY
        },
        f32::max,
    )
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// `check`: logits of the whole network through the runtime on the real
/// photos, against PyTorch's and (with `--against`) a saved earlier run.
fn check(a: &Args) -> AnyResult<()> {
    set_tract_threads(a.tract_threads);
    let manifest = BaseManifest::load(&a.base).map_err(|e| e.to_string())?;
    let base = Base::load(manifest).map_err(|e| e.to_string())?;
    let n = base.manifest.segments();
    let mut net = base.cut(0, n).map_err(|e| e.to_string())?;
    let pool = intra_pool(a)?;
    let mut ok = true;
    for (photo, class) in PHOTOS.iter().zip(PHOTO_CLASSES) {
        let input = read_f32(&fixture(&format!("{photo}.input.f32")))?;
        let t = tensor_from(net.input_shape(), &input).map_err(|e| e.to_string())?;
        with_pool(&pool, || net.run(t.into_tvalue())).map_err(|e| e.to_string())?;
        let logits = f32_slice(net.output().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?
            .to_vec();
        net.reset().map_err(|e| e.to_string())?;
        let torch = read_f32(&fixture(&format!("{photo}.logits.f32")))?;
        let vs_torch = max_abs_diff(&logits, &torch);
        let vs_ref = match &a.against {
            Some(dir) => Some(max_abs_diff(
                &logits,
                &read_f32(&dir.join(format!("{photo}.logits.f32")))?,
            )),
            None => None,
        };
        if let Some(dir) = &a.save {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            write_f32(&dir.join(format!("{photo}.logits.f32")), &logits)?;
        }
        let top1 = argmax(&logits);
        let pass = top1 == class && vs_torch < 1e-3 && vs_ref.is_none_or(|d| d <= 1e-4);
        ok &= pass;
        println!(
            "{}",
            serde_json::json!({"photo": photo, "top1": top1, "expected": class,
                "max_abs_vs_pytorch": vs_torch, "max_abs_vs_reference": vs_ref, "pass": pass})
        );
    }
    if ok {
        Ok(())
    } else {
        Err("outputs differ (see the lines above)".into())
    }
}

/// `peak`: single-core FMA throughput with independent accumulator chains.
fn peak() -> AnyResult<()> {
    let iters: u64 = std::hint::black_box(50_000_000);
    #[cfg(target_arch = "x86_64")]
    {
        let mut results = Vec::new();
        if std::arch::is_x86_feature_detected!("avx512f") {
            for _ in 0..3 {
                // SAFETY: avx512f is present (checked above).
                let (s, sink) = unsafe { fma_zmm(iters) };
                results.push(("avx512 zmm", s, 16.0 * 12.0, sink));
            }
        }
        if std::arch::is_x86_feature_detected!("fma") {
            for _ in 0..3 {
                // SAFETY: fma and avx are present (checked above; fma implies avx).
                let (s, sink) = unsafe { fma_ymm(iters) };
                results.push(("avx2 ymm", s, 8.0 * 12.0, sink));
            }
        }
        let mut best: BTreeMap<&str, f64> = BTreeMap::new();
        for (name, s, lanes_x_chains, sink) in results {
            let gflops = 2.0 * lanes_x_chains * iters as f64 / s / 1e9;
            let b = best.entry(name).or_insert(0.0);
            *b = b.max(gflops);
            // Keep the result observable so the loop is not optimised away.
            if sink == 12345.678 {
                eprintln!("{sink}");
            }
        }
        for (name, g) in best {
            println!(
                "{}",
                serde_json::json!({"peak": name, "gflops": g, "ghz_if_32_flop_per_cycle": g / 32.0})
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = iters;
        println!(
            "{}",
            serde_json::json!({"peak": "unsupported architecture"})
        );
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_zmm(iters: u64) -> (f64, f32) {
    use std::arch::x86_64::*;
    let m = _mm512_set1_ps(0.999_999);
    let c = _mm512_set1_ps(1e-7);
    let mut acc = [_mm512_set1_ps(1.0); 12];
    let t = Instant::now();
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, m, c);
        }
    }
    let s = t.elapsed().as_secs_f64();
    let mut sum = 0.0;
    for a in acc {
        sum += _mm512_reduce_add_ps(a);
    }
    (s, sum)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma,avx")]
unsafe fn fma_ymm(iters: u64) -> (f64, f32) {
    use std::arch::x86_64::*;
    let m = _mm256_set1_ps(0.999_999);
    let c = _mm256_set1_ps(1e-7);
    let mut acc = [_mm256_set1_ps(1.0); 12];
    let t = Instant::now();
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, m, c);
        }
    }
    let s = t.elapsed().as_secs_f64();
    let mut out = [0f32; 8];
    let mut sum = 0.0;
    for a in acc {
        _mm256_storeu_ps(out.as_mut_ptr(), a);
        sum += out.iter().sum::<f32>();
    }
    (s, sum)
}

/// Entry point shared by both allocator builds.
pub fn main(alloc: &str) -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let cmd = argv.next().unwrap_or_default();
    let result = parse(argv).and_then(|a| match cmd.as_str() {
        "time" => time(&a, alloc),
        "profile" => profile(&a),
        "check" => check(&a),
        "peak" => peak(),
        _ => Err(format!(
            "usage: engine time|profile|check|peak [options] (got {cmd:?}); see benches/engine/engine.rs"
        )),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
