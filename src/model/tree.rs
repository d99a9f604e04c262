//! The M-Runner's tree: shared stem segments and per-app heads for one camera.
//!
//! For a plan (per app: branch point, stride), the distinct branch points
//! `b1 < b2 < ...` cut the base into a chain of stem segments
//! `[0, b1), [b1, b2), ...`; app *a* with branch point *b* hangs its head off
//! the segment ending at *b* (or off the frame itself when *b* = 0). Per frame
//! a segment runs only if some app at or below it is due, and each head only
//! when its own app is due (frame number divisible by its stride).
//!
//! A tree given more than one thread uses them in one of two ways, chosen
//! when it is built from the multiply-adds on a frame's critical path:
//! heads on worker threads, or every op of every network split over an
//! intra-op pool (`kernels::pool`) when the shared stem is most of the work.
//!
//! Everything is allocated when the tree is built: the input tensor, every
//! network's buffers (`model::exec`), the per-app result slots, so that
//! [`StemTree::run_frame`] allocates nothing (`tests/alloc_runtime.rs`
//! counts it), except where a network runs on tract's executor (the stock
//! kernel path, or a node ours does not cover, named in the log).

use super::exec::Arena;
use super::kernels::pool::Pool;
use super::mailbox::Mailbox;
use super::net::{f32_slice, Base, Net};
use crate::error::Result;
use crate::package::HeadModel;
use std::sync::Arc;
use tract_onnx::prelude::{TValue, Tensor};

/// What one app contributes to a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct AppPlan {
    /// Name for logs.
    pub name: String,
    /// Branch point: the app shares base segments `[0, branch)`.
    pub branch: usize,
    /// Analyse every `stride`-th frame.
    pub stride: u32,
    /// The head's model at that branch point.
    pub head: HeadModel,
    /// Output indices that count as the app's event.
    pub positive: Vec<usize>,
}

/// One app's outcome for the last frame.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AppResult {
    /// Whether the app was due and ran on this frame.
    pub ran: bool,
    /// Whether its top-1 class is a positive class.
    pub positive: bool,
    /// Softmax probability of the most probable positive class.
    pub score: f32,
    /// Index of the top-1 class.
    pub top1: u32,
}

struct Segment {
    net: Net,
    /// Branch point where this segment ends.
    end: usize,
    /// Apps whose branch point is at or after `end`: the segment runs on a
    /// frame if any of them is due.
    apps_below: Vec<usize>,
}

struct Head {
    app: usize,
    net: Net,
    /// `None`: reads the frame input; `Some(i)`: reads segment `i`'s output.
    parent: Option<usize>,
}

/// Most apps one tree serves (bounds the fixed-size messages to head workers).
const MAX_TREE_APPS: usize = 128;

/// The speed-up of a stem tree split op by op over two cores by the
/// intra-op pool, per core: 1.81-1.83x on two (`benches/engine-compare.sh
/// --two-cores`, docs/engine.md "Two cores: our fork-join pool").
const POOL_EFFICIENCY: f64 = 0.9;

/// Most stem segments in one tree.
pub(crate) const MAX_SEGMENTS: usize = 64;

/// One frame's work for a head worker: the values its heads may read.
/// Fixed-size: sending it allocates nothing.
struct Job {
    input: TValue,
    segments: heapless::Vec<Option<TValue>, MAX_SEGMENTS>,
    due: heapless::Vec<bool, MAX_TREE_APPS>,
}

type Done = Result<heapless::Vec<(u16, AppResult), MAX_TREE_APPS>>;

/// A thread that owns some heads for the tree's lifetime and runs them when
/// asked, so that independent heads use another core.
struct Worker {
    jobs: Arc<Mailbox<Job>>,
    done: Arc<Mailbox<Done>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    fn spawn(mut heads: Vec<Head>, positive: Vec<Vec<usize>>, name: String) -> Result<Worker> {
        // The thread's heads run one after another: one arena for them all.
        let mut arena = Arena::new();
        for h in &mut heads {
            h.net.share_buffers(&mut arena);
        }
        // At most one frame in flight; the messages are fixed-size.
        let jobs = Arc::new(Mailbox::<Job>::new());
        let done = Arc::new(Mailbox::<Done>::new());
        let (job_rx, done_tx) = (Arc::clone(&jobs), Arc::clone(&done));
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                // However the loop ends (a panic included), the tree's
                // thread is told: waiting for results ends, and sending
                // the next job fails instead of waiting for a reader.
                let _closes = (
                    CloseOnDrop(Arc::clone(&done_tx)),
                    CloseOnDrop(Arc::clone(&job_rx)),
                );
                while let Some(job) = job_rx.recv() {
                    let out = run_heads(&mut heads, &positive, &job, &mut arena);
                    for h in &mut heads {
                        // Errors here resurface on the next run; the result below reports this one.
                        let _ = h.net.reset();
                    }
                    drop(job);
                    if done_tx.send(out).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| crate::err!(Io, source = e, "starting a head worker thread"))?;
        Ok(Worker {
            jobs,
            done,
            thread: Some(thread),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the job mailbox ends the thread's loop.
        self.jobs.close();
        self.done.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Closes a mailbox when dropped.
struct CloseOnDrop<T>(Arc<Mailbox<T>>);

impl<T> Drop for CloseOnDrop<T> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Runs the due heads of `heads` on the values in `job`.
fn run_heads(heads: &mut [Head], positive: &[Vec<usize>], job: &Job, arena: &mut Arena) -> Done {
    let mut out = heapless::Vec::new();
    for h in heads.iter_mut() {
        if !job.due[h.app] {
            continue;
        }
        let value = match h.parent {
            None => job.input.clone(),
            Some(p) => match job.segments.get(p).and_then(|v| v.clone()) {
                Some(v) => v,
                None => crate::bail!(Internal, "segment {p} did not run but app {} is due", h.app),
            },
        };
        h.net.run_in(value, arena)?;
        let scores = f32_slice(h.net.output()?)?;
        let r = decide(scores, &positive[h.app]);
        // Cannot overflow: at most MAX_TREE_APPS heads, checked at build.
        let _ = out.push((h.app as u16, r));
    }
    Ok(out)
}

/// The runnable tree for one camera.
pub struct StemTree {
    /// The preprocessed frame, `[1, 3, H, W]`. Kept (and refilled in place)
    /// across frames; see [`StemTree::fill_input`].
    input: Arc<Tensor>,
    segments: Vec<Segment>,
    heads: Vec<Head>,
    apps: Vec<AppPlan>,
    results: Vec<AppResult>,
    /// Per app, whether it is due on the current frame (reused).
    due: Vec<bool>,
    /// Threads owning the heads not in `heads` (empty: all heads run here).
    workers: Vec<Worker>,
    /// Per app, its positive class indices (a copy of `apps[i].positive`
    /// in the form the head runner takes).
    positive: Vec<Vec<usize>>,
    frame: u64,
    /// Whether every network runs on the fixed-buffer executor.
    fixed_buffers: bool,
    /// The buffers of the networks run on the calling thread (the stem
    /// segments and `heads`), which run one at a time.
    arena: Arena,
    /// When the tree's threads split every op instead of owning heads: the
    /// intra-op pool installed around each frame's run.
    pool: Option<Pool>,
}

impl StemTree {
    /// Builds the tree for `apps` from `base`, running all heads on the calling thread.
    pub fn build(base: &Base, apps: Vec<AppPlan>) -> Result<StemTree> {
        Self::build_threaded(base, apps, 1)
    }

    /// Builds the tree to run on `threads` threads, in one of two ways,
    /// whichever leaves fewer multiply-adds on a frame's critical path
    /// (every app due): the calling thread runs the stem and its share of
    /// the heads while `threads - 1` worker threads own the others,
    /// balanced by their multiply-adds (many or large heads); or the
    /// calling thread runs everything with every op split over an intra-op
    /// pool of `threads` (a large shared stem, which head threads cannot
    /// share out).
    pub fn build_threaded(base: &Base, apps: Vec<AppPlan>, threads: usize) -> Result<StemTree> {
        Self::build_inner(base, apps, threads, true)
    }

    /// Builds the tree with `threads - 1` head worker threads beside the
    /// calling one, never an intra-op pool (benchmarks compare the two).
    pub fn build_head_threads(base: &Base, apps: Vec<AppPlan>, threads: usize) -> Result<StemTree> {
        Self::build_inner(base, apps, threads, false)
    }

    fn build_inner(
        base: &Base,
        apps: Vec<AppPlan>,
        threads: usize,
        may_split_ops: bool,
    ) -> Result<StemTree> {
        let n = base.manifest.segments();
        if apps.len() > MAX_TREE_APPS {
            crate::bail!(
                InvalidConfig,
                "{} apps on one camera; at most {MAX_TREE_APPS} are supported",
                apps.len()
            );
        }
        for a in &apps {
            if a.branch >= n {
                crate::bail!(
                    InvalidConfig,
                    "app {}: branch point {} is past the last branch point {} of {}",
                    a.name,
                    a.branch,
                    n - 1,
                    base.manifest.name
                );
            }
            if a.stride == 0 {
                crate::bail!(InvalidConfig, "app {}: stride must be at least 1", a.name);
            }
        }
        let mut points: Vec<usize> = apps.iter().map(|a| a.branch).filter(|&b| b > 0).collect();
        points.sort_unstable();
        points.dedup();
        if points.len() > MAX_SEGMENTS {
            crate::bail!(
                Internal,
                "{} stem segments; at most {MAX_SEGMENTS}",
                points.len()
            );
        }
        let mut segments = Vec::with_capacity(points.len());
        let mut start = 0;
        for &end in &points {
            let apps_below = (0..apps.len()).filter(|&i| apps[i].branch >= end).collect();
            segments.push(Segment {
                net: base.cut(start, end)?,
                end,
                apps_below,
            });
            start = end;
        }
        let mut heads = Vec::with_capacity(apps.len());
        for (i, a) in apps.iter().enumerate() {
            let parent = segments.iter().position(|s| s.end == a.branch);
            let shape = &base.manifest.points[a.branch].shape;
            let net = match &a.head {
                HeadModel::BaseRemainder => base.cut(a.branch, n)?,
                HeadModel::File { path, sha256 } => Net::load_head(path, sha256.as_deref(), shape)?,
            };
            if net.input_shape() != &shape[..] {
                crate::bail!(
                    Model,
                    "app {}: head {} takes {:?}, but branch point {} is {:?}",
                    a.name,
                    net.label(),
                    net.input_shape(),
                    a.branch,
                    shape
                );
            }
            let classes = net.output_shape().iter().product::<usize>();
            if let Some(&bad) = a.positive.iter().find(|&&p| p >= classes) {
                crate::bail!(
                    Model,
                    "app {}: positive class {bad} is past the head's {classes} outputs",
                    a.name
                );
            }
            heads.push(Head {
                app: i,
                net,
                parent,
            });
        }
        let fixed_buffers = segments.iter().all(|s| s.net.fixed_buffers())
            && heads.iter().all(|h| h.net.fixed_buffers());
        let input = Arc::new(
            Tensor::zero::<f32>(&base.manifest.input.shape)
                .map_err(|e| crate::err!(Model, "allocating the input tensor: {e:#}"))?,
        );
        let n_apps = apps.len();
        // Share heads out by their multiply-adds, largest first, each to the
        // least loaded thread; thread 0 is the caller's.
        let cores = threads.max(1);
        let total = base.manifest.points[n].macs_to_here;
        let cost = |h: &Head| total - base.manifest.points[apps[h.app].branch].macs_to_here;
        let stem = base.manifest.points[segments.last().map_or(0, |s| s.end)].macs_to_here;
        let all_heads: u64 = heads.iter().map(cost).sum();
        heads.sort_by_key(|h| std::cmp::Reverse(cost(h)));
        let lpt = |threads: usize| {
            let mut load = vec![0u64; threads];
            for h in &heads {
                let t = (0..threads).min_by_key(|&t| load[t]).unwrap_or(0);
                load[t] += cost(h);
            }
            load.into_iter().max().unwrap_or(0)
        };
        let threaded_path = (stem + lpt(cores.clamp(1, heads.len().max(1)))) as f64;
        let pooled_path = (stem + all_heads) as f64 / (cores as f64 * POOL_EFFICIENCY);
        let pool = if may_split_ops && cores > 1 && pooled_path < threaded_path {
            Some(Pool::new(cores)?)
        } else {
            None
        };
        let threads = if pool.is_some() {
            1
        } else {
            cores.clamp(1, heads.len().max(1))
        };
        let mut load = vec![0u64; threads];
        let mut shares: Vec<Vec<Head>> = (0..threads).map(|_| Vec::new()).collect();
        for h in heads {
            let t = (0..threads).min_by_key(|&t| load[t]).unwrap_or(0);
            load[t] += cost(&h);
            shares[t].push(h);
        }
        let mut shares = shares.into_iter();
        let mut heads = shares.next().unwrap_or_default();
        let mut arena = Arena::new();
        for net in segments
            .iter_mut()
            .map(|s| &mut s.net)
            .chain(heads.iter_mut().map(|h| &mut h.net))
        {
            net.share_buffers(&mut arena);
        }
        log::debug!(
            "stem tree of {n_apps} apps: {:.1} MiB of buffers on the calling thread; {}",
            arena.bytes() as f64 / (1024.0 * 1024.0),
            match &pool {
                Some(p) => format!("every op split over {} threads", p.threads()),
                None => format!("heads on {threads} thread(s)"),
            }
        );
        let positive: Vec<Vec<usize>> = apps.iter().map(|a| a.positive.clone()).collect();
        let workers = shares
            .enumerate()
            .filter(|(_, s)| !s.is_empty())
            .map(|(i, s)| Worker::spawn(s, positive.clone(), format!("ms-heads-{}", i + 1)))
            .collect::<Result<Vec<_>>>()?;
        let mut tree = StemTree {
            input,
            segments,
            heads,
            apps,
            results: vec![AppResult::default(); n_apps],
            due: vec![false; n_apps],
            workers,
            positive,
            frame: 0,
            fixed_buffers,
            arena,
            pool,
        };
        // Run every net once on the zero input: tract finishes setting up a
        // state on its first run (and cannot reset one that never ran), and
        // the first real frame then costs what every other frame costs.
        tree.due.iter_mut().for_each(|d| *d = true);
        tree.run_marked(0)?;
        Ok(tree)
    }

    /// Lets `fill` write the next frame into the input tensor (NCHW `f32`)
    /// before [`StemTree::run_frame`]; returns what `fill` returns.
    pub fn fill_input<R>(&mut self, fill: impl FnOnce(&mut [f32]) -> R) -> Result<R> {
        let tensor = Arc::get_mut(&mut self.input).ok_or_else(|| {
            crate::err!(Internal, "the input tensor is still shared after a frame")
        })?;
        let mut view = tensor
            .try_as_plain_ram_mut()
            .map_err(|e| crate::err!(Internal, "input tensor: {e:#}"))?;
        let data = view
            .as_slice_mut::<f32>()
            .map_err(|e| crate::err!(Internal, "input tensor: {e:#}"))?;
        Ok(fill(data))
    }

    /// Threads every op is split over (the intra-op pool's), 1 when the
    /// tree's threads own heads instead (or it has one).
    pub fn intra_threads(&self) -> usize {
        self.pool.as_ref().map_or(1, Pool::threads)
    }

    /// Whether every network of the tree runs on the fixed-buffer
    /// executor (`model::exec`), so a frame allocates nothing.
    pub fn fixed_buffers(&self) -> bool {
        self.fixed_buffers
    }

    /// Whether app `i` is due on frame `frame`.
    fn is_due(&self, i: usize, frame: u64) -> bool {
        frame.is_multiple_of(u64::from(self.apps[i].stride))
    }

    /// Runs the tree on the current input as frame number `frame` (stream
    /// frames, counting from 0) and returns the per-app results.
    pub fn run_frame(&mut self, frame: u64) -> Result<&[AppResult]> {
        for i in 0..self.apps.len() {
            self.due[i] = self.is_due(i, frame);
        }
        self.run_marked(frame)
    }

    /// Runs the tree for the apps marked in `due` (in plan order) instead of
    /// by their strides: the service samples each app at its planned rate,
    /// which need not divide the camera's. Allocates nothing.
    pub fn run_apps(&mut self, frame: u64, due: &[bool]) -> Result<&[AppResult]> {
        if due.len() != self.apps.len() {
            crate::bail!(
                Internal,
                "{} due flags for a tree of {} apps",
                due.len(),
                self.apps.len()
            );
        }
        self.due.copy_from_slice(due);
        self.run_marked(frame)
    }

    fn run_marked(&mut self, frame: u64) -> Result<&[AppResult]> {
        self.frame = frame;
        for r in &mut self.results {
            *r = AppResult::default();
        }
        // (The pool is taken out for the run, which borrows the tree.)
        let pool = self.pool.take();
        let outcome = match &pool {
            Some(p) => p.install(|| self.run_due()),
            None => self.run_due(),
        };
        self.pool = pool;
        // Whatever happened, drop this frame's tensors so that the input is
        // uniquely owned again and the next frame starts clean.
        for s in &mut self.segments {
            s.net.reset()?;
        }
        for h in &mut self.heads {
            h.net.reset()?;
        }
        outcome?;
        Ok(&self.results)
    }

    fn run_due(&mut self) -> Result<()> {
        let input = TValue::from_const(Arc::clone(&self.input));
        // Segments form a chain; a segment runs if any app below it is due.
        let mut ran_to = 0;
        for i in 0..self.segments.len() {
            let needed = self.segments[i].apps_below.iter().any(|&a| self.due[a]);
            if !needed {
                break;
            }
            let value = if i == 0 {
                input.clone()
            } else {
                self.segments[i - 1].net.output()?.clone()
            };
            self.segments[i].net.run_in(value, &mut self.arena)?;
            ran_to = i + 1;
        }
        let mut job = Job {
            input,
            segments: heapless::Vec::new(),
            due: heapless::Vec::new(),
        };
        for (i, s) in self.segments.iter().enumerate() {
            let v = if i < ran_to {
                Some(s.net.output()?.clone())
            } else {
                None
            };
            // Capacities were checked when the tree was built.
            let _ = job.segments.push(v);
        }
        for &d in &self.due {
            let _ = job.due.push(d);
        }
        // Hand the other threads their share first, then run ours.
        let mut sent = 0;
        for w in &self.workers {
            let j = Job {
                input: job.input.clone(),
                segments: job.segments.clone(),
                due: job.due.clone(),
            };
            w.jobs
                .send(j)
                .map_err(|_| crate::err!(Internal, "a head worker thread has stopped"))?;
            sent += 1;
        }
        let mine = run_heads(&mut self.heads, &self.positive, &job, &mut self.arena);
        drop(job);
        let mut first_err = None;
        match mine {
            Ok(results) => {
                for (app, r) in results {
                    self.results[app as usize] = r;
                }
            }
            Err(e) => first_err = Some(e),
        }
        for w in self.workers.iter().take(sent) {
            match w.done.recv() {
                Some(Ok(results)) => {
                    for (app, r) in results {
                        self.results[app as usize] = r;
                    }
                }
                Some(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                None => {
                    first_err
                        .get_or_insert(crate::err!(Internal, "a head worker thread has stopped"));
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The apps, in plan order.
    pub fn apps(&self) -> &[AppPlan] {
        &self.apps
    }

    /// Number of stem segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

/// Top-1 class, whether it is positive, and the best positive class's softmax probability.
fn decide(scores: &[f32], positive: &[usize]) -> AppResult {
    let mut top = 0usize;
    let mut max = f32::NEG_INFINITY;
    for (i, &s) in scores.iter().enumerate() {
        if s > max {
            max = s;
            top = i;
        }
    }
    let denom: f32 = scores.iter().map(|&s| (s - max).exp()).sum();
    let best_pos = positive
        .iter()
        .filter_map(|&p| scores.get(p).copied())
        .fold(f32::NEG_INFINITY, f32::max);
    AppResult {
        ran: true,
        positive: positive.contains(&top),
        score: if denom > 0.0 {
            (best_pos - max).exp() / denom
        } else {
            0.0
        },
        top1: top as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decide_reports_top1_membership_and_positive_probability() {
        let r = decide(&[0.0, 2.0, 1.0], &[2]);
        assert!(r.ran && !r.positive);
        assert_eq!(r.top1, 1);
        let p2 = 1f32.exp() / (1.0 + 2f32.exp() + 1f32.exp());
        assert!((r.score - p2).abs() < 1e-6);
        assert!(decide(&[0.0, 2.0, 1.0], &[1, 2]).positive);
    }
}
