//! `mainstream bench`: throughput of stem sharing on this machine.
//!
//! N ImageNet "apps" (each the base's own remainder from its branch point,
//! so every app does real work of the real size) run on real frames with
//! `none` (every app runs the whole network), `mid` (branch in the middle)
//! or `max` (everything but the classifier shared) sharing. `--processes`
//! measures what users do today instead: N separate processes, each running
//! the full network on its own.

use crate::error::{ErrorKind, Result, ResultExt};
use crate::model::manifest::BaseManifest;
use crate::model::net::{Base, KernelPath};
use crate::model::tree::{AppPlan, StemTree};
use crate::package::HeadModel;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// How much the bench apps share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    /// Branch point 0: every app runs the whole network.
    None,
    /// Branch in the middle of the network.
    Mid,
    /// Everything but the classifier shared.
    Max,
}

impl Sharing {
    /// Parses `none`, `mid` or `max`.
    pub fn parse(s: &str) -> Option<Sharing> {
        match s {
            "none" => Some(Sharing::None),
            "mid" => Some(Sharing::Mid),
            "max" => Some(Sharing::Max),
            _ => None,
        }
    }

    /// The branch point for a base with `segments` segments.
    pub fn branch(self, segments: usize) -> usize {
        match self {
            Sharing::None => 0,
            Sharing::Mid => segments / 2,
            Sharing::Max => segments - 1,
        }
    }
}

/// Options of `mainstream bench`.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchArgs {
    /// Base network manifest.
    pub base: PathBuf,
    /// App counts to run.
    pub apps: Vec<usize>,
    /// Sharing modes to run.
    pub sharing: Vec<Sharing>,
    /// Frames per timed run.
    pub frames: u64,
    /// Timed runs per point (the median is reported).
    pub runs: usize,
    /// Also measure N separate full-network processes.
    pub processes: bool,
    /// JSON lines instead of a table.
    pub json: bool,
    /// Real frames: raw little-endian f32 input tensors, cycled.
    pub inputs: Vec<PathBuf>,
    /// Threads for heads (1: everything on one thread).
    pub threads: usize,
    /// Cameras: independent trees of `apps` apps each, one thread per
    /// camera, all running at once (what the service does with C cameras).
    pub cameras: usize,
}

/// One measured point.
#[derive(Clone, Debug, Serialize)]
pub struct BenchRow {
    /// `none`, `mid`, `max`, or `processes`.
    pub sharing: String,
    /// Branch point used.
    pub branch: usize,
    /// Number of apps.
    pub apps: usize,
    /// App-frames analysed per second, summed over apps (median run).
    pub aggregate_fps: f64,
    /// Frames per second each app gets.
    pub per_app_fps: f64,
    /// Milliseconds per frame for the whole tree.
    pub ms_per_frame: f64,
    /// Achieved GFLOP/s (2 x multiply-adds of the work done per second).
    pub gflops: f64,
    /// Resident memory after the run, MiB (for `processes`: summed).
    pub rss_mib: f64,
    /// Threads per camera's tree (`--threads`).
    pub threads: usize,
    /// How the tree used them: `split_ops` (every op over all of them, the
    /// intra-op pool) or `heads` (heads on worker threads; also for one).
    pub threads_use: String,
    /// Cameras, each with its own tree and thread.
    pub cameras: usize,
    /// Every run's aggregate fps.
    pub runs: Vec<f64>,
    /// The kernel path the networks ran (`avx512`, `avx2`, `neon`, `portable`,
    /// `stock`; `MAINSTREAM_KERNEL`).
    pub kernel: String,
    /// `fixed` if every network ran on the fixed-buffer executor, else
    /// `tract` (the stock path, `MAINSTREAM_EXECUTOR=tract`, or a node ours
    /// does not cover).
    pub executor: String,
}

/// The name of the kernel path networks built now run (what
/// `MAINSTREAM_KERNEL` forces, else the best this CPU runs).
fn kernel_name() -> Result<String> {
    let path = KernelPath::from_env()?.unwrap_or_else(KernelPath::best);
    Ok(path.name().to_string())
}

/// How `threads_use` in the JSON names what the trees did with their
/// threads, from the most any split an op over.
fn threads_use(intra_threads: Option<usize>) -> String {
    if intra_threads.unwrap_or(1) > 1 {
        "split_ops"
    } else {
        "heads"
    }
    .to_string()
}

/// How `executor` in the JSON names what ran.
fn executor_name(fixed: bool) -> String {
    if fixed { "fixed" } else { "tract" }.to_string()
}

/// Resident set size of this process in MiB, from /proc.
pub(crate) fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn load_inputs(paths: &[PathBuf], len: usize) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::new();
    for p in paths {
        let bytes = std::fs::read(p).context(ErrorKind::InvalidConfig, || {
            format!("cannot read input {}", p.display())
        })?;
        if bytes.len() != len * 4 {
            crate::bail!(
                InvalidConfig,
                "{} holds {} bytes; an input tensor is {} f32 values ({} bytes)",
                p.display(),
                bytes.len(),
                len,
                len * 4
            );
        }
        out.push(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        );
    }
    if out.is_empty() {
        crate::bail!(InvalidConfig, "bench needs at least one --input frame");
    }
    Ok(out)
}

/// Multiply-adds per frame of a tree where every app branches at `branch`.
fn macs_per_frame(m: &BaseManifest, branch: usize, apps: usize) -> u64 {
    let total = m.points.last().map_or(0, |p| p.macs_to_here);
    let stem = m.points[branch].macs_to_here;
    stem + apps as u64 * (total - stem)
}

/// `apps` bench apps: each the base network's own remainder (its ImageNet
/// classifier) from `sharing`'s branch point, real work of the real size.
pub fn bench_apps(base: &Base, sharing: Sharing, apps: usize) -> Vec<AppPlan> {
    let branch = sharing.branch(base.manifest.segments());
    (0..apps)
        .map(|i| AppPlan {
            name: format!("app{i}"),
            branch,
            stride: 1,
            head: HeadModel::BaseRemainder,
            positive: vec![0],
        })
        .collect()
}

/// Runs frames `first..first + n` through `tree`, cycling through `inputs`
/// (preprocessed frames of the tree's input size).
pub fn run_frames(tree: &mut StemTree, inputs: &[Vec<f32>], first: u64, n: u64) -> Result<()> {
    for frame in first..first + n {
        let src = &inputs[(frame as usize) % inputs.len()];
        tree.fill_input(|d| d.copy_from_slice(src))?;
        tree.run_frame(frame)?;
    }
    Ok(())
}

/// Runs one in-process point: `cameras` trees of `apps` apps each, one
/// thread per camera, every camera's frames at once.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    base: &Base,
    inputs: &[Vec<f32>],
    sharing: Sharing,
    apps: usize,
    frames: u64,
    runs: usize,
    threads: usize,
    cameras: usize,
) -> Result<BenchRow> {
    let branch = sharing.branch(base.manifest.segments());
    let cameras = cameras.max(1);
    let mut trees = (0..cameras)
        .map(|_| StemTree::build_threaded(base, bench_apps(base, sharing, apps), threads))
        .collect::<Result<Vec<_>>>()?;
    let all = |trees: &mut [StemTree], first: u64, n: u64| -> Result<()> {
        if trees.len() == 1 {
            return run_frames(&mut trees[0], inputs, first, n);
        }
        std::thread::scope(|s| {
            let handles: Vec<_> = trees
                .iter_mut()
                .map(|t| s.spawn(move || run_frames(t, inputs, first, n)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .map_err(|_| crate::err!(Internal, "a camera thread panicked"))?
                })
                .collect::<Result<Vec<()>>>()
        })?;
        Ok(())
    };
    all(&mut trees, 0, 2)?;
    let mut frame = 2u64;
    let mut fps_runs = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t0 = Instant::now();
        all(&mut trees, frame, frames)?;
        frame += frames;
        fps_runs.push(frames as f64 / t0.elapsed().as_secs_f64());
    }
    let per_app_fps = median(&mut fps_runs.clone());
    let macs = macs_per_frame(&base.manifest, branch, apps) as f64 * cameras as f64;
    let streams = (apps * cameras) as f64;
    Ok(BenchRow {
        sharing: format!("{sharing:?}").to_lowercase(),
        branch,
        apps,
        aggregate_fps: per_app_fps * streams,
        per_app_fps,
        ms_per_frame: 1000.0 / per_app_fps,
        gflops: 2.0 * macs * per_app_fps / 1e9,
        rss_mib: rss_mib(),
        threads,
        threads_use: threads_use(trees.iter().map(StemTree::intra_threads).max()),
        cameras,
        runs: fps_runs.iter().map(|f| f * streams).collect(),
        kernel: kernel_name()?,
        executor: executor_name(trees.iter().all(StemTree::fixed_buffers)),
    })
}

/// N concurrent processes of this binary, each one app with no sharing.
fn measure_processes(args: &BenchArgs, base: &BaseManifest, apps: usize) -> Result<BenchRow> {
    let exe = std::env::current_exe().context(ErrorKind::Io, || "locating this binary".into())?;
    let mut fps_runs = Vec::new();
    let mut rss = 0.0;
    let mut fixed = true;
    for _ in 0..args.runs {
        let mut children = Vec::new();
        for _ in 0..apps {
            let mut c = std::process::Command::new(&exe);
            c.args([
                "bench",
                "--apps",
                "1",
                "--sharing",
                "none",
                "--runs",
                "1",
                "--json",
            ])
            .arg("--frames")
            .arg(args.frames.to_string())
            .arg("--base")
            .arg(&args.base);
            for i in &args.inputs {
                c.arg("--input").arg(i);
            }
            c.stdout(std::process::Stdio::piped());
            children.push(
                c.spawn()
                    .context(ErrorKind::Io, || "starting a bench process".into())?,
            );
        }
        let mut total = 0.0;
        rss = 0.0;
        fixed = true;
        for ch in children {
            let out = ch
                .wait_with_output()
                .context(ErrorKind::Io, || "waiting for a bench process".into())?;
            if !out.status.success() {
                crate::bail!(Internal, "a bench process failed: {}", out.status);
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let fps = json_number(&text, "aggregate_fps").ok_or_else(|| {
                crate::err!(
                    Internal,
                    "no aggregate_fps in a bench process's output: {text}"
                )
            })?;
            total += fps;
            rss += json_number(&text, "rss_mib").unwrap_or(0.0);
            let v: Option<serde_json::Value> = serde_json::from_str(text.trim()).ok();
            fixed &= v.as_ref().and_then(|v| v.get("executor")?.as_str()) == Some("fixed");
        }
        fps_runs.push(total);
    }
    let aggregate = median(&mut fps_runs.clone());
    let per_app = aggregate / apps as f64;
    let macs = macs_per_frame(base, 0, 1) as f64;
    Ok(BenchRow {
        sharing: "processes".into(),
        branch: 0,
        apps,
        aggregate_fps: aggregate,
        per_app_fps: per_app,
        ms_per_frame: 1000.0 / per_app,
        gflops: 2.0 * macs * aggregate / 1e9,
        rss_mib: rss,
        threads: 1,
        threads_use: threads_use(None),
        cameras: 1,
        runs: fps_runs,
        kernel: kernel_name()?,
        executor: executor_name(fixed),
    })
}

/// Reads a number field from one JSON line of our own output.
fn json_number(text: &str, key: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(text.trim()).ok()?;
    v.get(key)?.as_f64()
}

/// `mainstream bench`.
pub fn run(args: &BenchArgs, out: &mut dyn Write) -> Result<()> {
    let manifest = BaseManifest::load(&args.base)?;
    let len: usize = manifest.input.shape.iter().product();
    let inputs = load_inputs(&args.inputs, len)?;
    let base = Base::load(manifest.clone())?;
    if !args.json {
        writeln!(
            out,
            "{:<10} {:>6} {:>5} {:>14} {:>12} {:>10} {:>8} {:>9}",
            "sharing",
            "branch",
            "apps",
            "aggregate fps",
            "per-app fps",
            "ms/frame",
            "GFLOP/s",
            "RSS MiB"
        )?;
    }
    let emit = |row: &BenchRow, out: &mut dyn Write| -> Result<()> {
        if args.json {
            let line =
                serde_json::to_string(row).map_err(|e| crate::err!(Internal, "JSON: {e}"))?;
            writeln!(out, "{line}")?;
        } else {
            writeln!(
                out,
                "{:<10} {:>6} {:>5} {:>14.1} {:>12.2} {:>10.1} {:>8.1} {:>9.0}",
                row.sharing,
                row.branch,
                row.apps,
                row.aggregate_fps,
                row.per_app_fps,
                row.ms_per_frame,
                row.gflops,
                row.rss_mib
            )?;
        }
        out.flush()?;
        Ok(())
    };
    for &n in &args.apps {
        for &s in &args.sharing {
            if !args.json {
                log::info!("bench: {n} apps, sharing {s:?}");
            }
            let row = measure(
                &base,
                &inputs,
                s,
                n,
                args.frames,
                args.runs,
                args.threads,
                args.cameras,
            )?;
            emit(&row, out)?;
        }
        if args.processes {
            let row = measure_processes(args, &manifest, n)?;
            emit(&row, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_numbers_are_read_back_from_our_own_lines() {
        let row = BenchRow {
            sharing: "none".into(),
            branch: 0,
            apps: 1,
            aggregate_fps: 31.25,
            per_app_fps: 31.25,
            ms_per_frame: 32.0,
            gflops: 18.8,
            rss_mib: 80.5,
            threads: 1,
            threads_use: "heads".into(),
            cameras: 1,
            runs: vec![31.25],
            kernel: "avx2".into(),
            executor: "fixed".into(),
        };
        let line = serde_json::to_string(&row).unwrap();
        assert_eq!(json_number(&line, "aggregate_fps"), Some(31.25));
        assert_eq!(json_number(&line, "rss_mib"), Some(80.5));
        assert!(line.contains(r#""kernel":"avx2""#), "{line}");
        assert!(line.contains(r#""executor":"fixed""#), "{line}");
    }

    #[test]
    fn sharing_modes_map_to_branch_points() {
        assert_eq!(Sharing::None.branch(21), 0);
        assert_eq!(Sharing::Mid.branch(21), 10);
        assert_eq!(Sharing::Max.branch(21), 20);
    }
}
