//! An allocation-free fork-join pool that splits one op over the cores
//! (intra-op parallelism, issue 23): `threads - 1` persistent workers and
//! the calling thread share the chunks of a job.
//!
//! A job is `chunks` calls `f(0)`, `f(1)`, ...: the caller takes chunk 0,
//! worker `k` chunk `k`, and whoever finishes early takes any chunk still
//! unclaimed, so a worker the scheduler has not run yet delays nothing (on
//! a busy machine the caller ends up doing the whole job, as if alone).
//! A job is handed over by bumping a generation counter: while a network
//! runs ([`Pool::install`]) the workers spin on it, then for
//! [`WORKER_SPIN`] more, then park until unparked (by a job, or by the next
//! `install`). Spinning through the whole run matters: a worker that parks
//! between two ops wakes tens of microseconds late, the caller takes its
//! chunk meanwhile, the op lasts longer than the spin, and the worker is
//! late again for the next one (measured: a third of the jobs seen, most
//! chunks run by the caller, no gain). The caller, its
//! chunks done, closes the job, then waits (spinning, then on a condition
//! variable) for the workers still inside it to leave; a worker that
//! arrives after the close never touches it. Nothing is allocated per job:
//! the job lives on the caller's stack, the counters are atomics allocated
//! with the pool.
//!
//! A pool is installed on the calling thread around a network's run
//! ([`Pool::install`]); the kernels call [`par_chunks_mut`], which splits
//! over the installed pool and runs inline when there is none (workers and
//! other threads) or the op is too small to pay. The kernels' thread-local
//! scratch (the depthwise planes, reserved when a worker starts for planes
//! up to 224x224) lives on in each worker, so after warm-up nothing is
//! allocated there either (a larger layer grows it once, the first time
//! the worker takes a chunk of it).
//!
//! A panicking chunk is caught where it ran; the caller waits for every
//! chunk to finish, then resumes the panic, and the pool stays usable.
//! (The appliance build aborts on panic, so this matters for tests and for
//! builds that unwind.)
#![allow(
    unsafe_code,
    reason = "a job borrowed from the caller's stack is run by the workers; disjoint chunks of one slice are handed to them"
)]

use std::any::Any;
use std::cell::RefCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};
use tract_onnx::prelude::TractResult;

/// How long a worker keeps spinning for the next job after the last
/// network run on the pool has ended, before it parks.
const WORKER_SPIN: Duration = Duration::from_micros(200);
/// How long the caller, its chunks done, spins for the workers' before it
/// sleeps (a worker's chunk is about as long as the caller's; one that takes
/// much longer was preempted).
const CALLER_SPIN: Duration = Duration::from_micros(1000);
/// Most threads a pool runs a job on (chunks are claimed in a 64-bit mask).
pub const MAX_THREADS: usize = 64;

/// Work (multiply-adds: a depthwise output counts 9) below which
/// [`par_ranges`] and [`par_chunks_mut`] run inline. A hand-off costs about
/// a microsecond with hot workers; 2^17 multiply-adds are 2-3 us of a 1x1
/// convolution on one core, about where halving it stops paying. Every
/// MobileNetV2 op is above (the smallest, a 7x7 depthwise layer, has 254 K
/// and ran 1.85x faster on two cores; docs/engine.md, "Two cores: our
/// fork-join pool").
pub const MIN_PARALLEL_WORK: usize = 1 << 17;

/// One job, on the caller's stack for the duration of [`Pool::run`]:
/// `chunks` calls of `f`, each claimed by exactly one thread.
struct Job<'a> {
    f: &'a (dyn Fn(usize) + Sync),
    chunks: usize,
    /// Bit `k`: chunk `k` has been claimed.
    claimed: AtomicU64,
    /// Chunks run to their end (or to a panic).
    finished: AtomicUsize,
    /// The first panic of a chunk, resumed by the caller.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Job<'_> {
    /// Runs chunk `first` if still unclaimed, then every other unclaimed
    /// chunk; returns whether this call finished the last chunk.
    fn work(&self, first: usize) -> bool {
        let mut last = false;
        for k in (first..self.chunks).chain(0..first.min(self.chunks)) {
            let bit = 1u64 << k;
            if self.claimed.load(Ordering::Relaxed) & bit != 0
                || self.claimed.fetch_or(bit, Ordering::Relaxed) & bit != 0
            {
                continue;
            }
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| (self.f)(k))) {
                let mut slot = self.panic.lock().unwrap_or_else(|e| e.into_inner());
                slot.get_or_insert(p);
            }
            last = self.finished.fetch_add(1, Ordering::SeqCst) + 1 == self.chunks;
        }
        last
    }

    fn all_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst) == self.chunks
    }
}

/// What the caller and the workers share.
struct Shared {
    /// Bumped once per job (and once more to stop); workers wait for it to
    /// move past the last value they saw.
    generation: AtomicUsize,
    /// The current job, a `*const Job` on the caller's stack, while `open`.
    job: AtomicPtr<()>,
    /// Whether a worker may enter the current job.
    open: AtomicBool,
    /// Workers inside the current job (entered and not yet left).
    active: AtomicUsize,
    /// Whether the caller sleeps on `wake` (or is about to).
    caller_sleeps: AtomicBool,
    /// Guards the caller's sleep on `wake`.
    lock: Mutex<()>,
    wake: Condvar,
    /// Set when the pool is dropped: workers return.
    stop: AtomicBool,
    /// Whether a thread is running a job on this pool (a second caller, or
    /// a chunk that splits again, runs every chunk itself instead).
    busy: AtomicBool,
    /// The workers, to unpark; set once they have all started.
    workers: OnceLock<Box<[Thread]>>,
    /// Work below which [`par_chunks_mut`] runs inline.
    min_work: usize,
    /// Threads inside [`Pool::install`] (a network running): workers spin
    /// for the next job as long as it is not zero.
    installed: AtomicUsize,
    /// Workers that have started (`Pool::new` waits for all of them, so
    /// that what a thread allocates when it starts is part of building).
    started: AtomicUsize,
}

/// A fork-join pool of `threads` threads: the caller and `threads - 1`
/// workers named `ms-intra-1`, ... . Dropping it stops and joins them.
pub struct Pool {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.threads())
            .finish()
    }
}

thread_local! {
    /// The pool installed on this thread ([`Pool::install`]), if any.
    static CURRENT: RefCell<Option<Arc<Shared>>> = const { RefCell::new(None) };
}

impl Pool {
    /// A pool running jobs on `threads` threads (the caller's and
    /// `threads - 1` workers; 0 counts as 1, more than [`MAX_THREADS`] as
    /// that) that splits ops of at least [`MIN_PARALLEL_WORK`].
    pub fn new(threads: usize) -> crate::Result<Pool> {
        Pool::with_min_work(threads, MIN_PARALLEL_WORK)
    }

    /// A pool like [`Pool::new`]'s that splits ops of at least `min_work`
    /// (0: every op of two rows or more).
    pub fn with_min_work(threads: usize, min_work: usize) -> crate::Result<Pool> {
        let threads = threads.clamp(1, MAX_THREADS);
        let shared = Arc::new(Shared {
            generation: AtomicUsize::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            open: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            caller_sleeps: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            busy: AtomicBool::new(false),
            workers: OnceLock::new(),
            min_work,
            installed: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
        });
        // On an early return the pool's drop stops the workers started so far.
        let mut pool = Pool {
            shared,
            handles: Vec::with_capacity(threads - 1),
        };
        for part in 1..threads {
            let shared = Arc::clone(&pool.shared);
            let handle = std::thread::Builder::new()
                .name(format!("ms-intra-{part}"))
                .spawn(move || worker(&shared, part))
                .map_err(|e| {
                    crate::err!(Io, source = e, "starting intra-op worker thread {part}")
                })?;
            pool.handles.push(handle);
        }
        let threads: Box<[Thread]> = pool.handles.iter().map(|h| h.thread().clone()).collect();
        let _ = pool.shared.workers.set(threads);
        while pool.shared.started.load(Ordering::Acquire) < pool.handles.len() {
            std::thread::sleep(Duration::from_micros(50));
        }
        Ok(pool)
    }

    /// Threads a job runs on, the caller's included.
    pub fn threads(&self) -> usize {
        self.shared.threads()
    }

    /// Runs `f` with this pool installed on the calling thread: the
    /// kernels' [`par_chunks_mut`] calls inside split over it. Restores
    /// what was installed before, also when `f` panics.
    pub fn install<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore<'a>(Option<Arc<Shared>>, &'a Shared);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                let prev = self.0.take();
                CURRENT.with_borrow_mut(|c| *c = prev);
                self.1.installed.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let prev = CURRENT.with_borrow_mut(|c| c.replace(Arc::clone(&self.shared)));
        self.shared.installed.fetch_add(1, Ordering::SeqCst);
        let _restore = Restore(prev, &self.shared);
        // Wakes sleeping workers now: they spin, not sleep, while the
        // network runs, so that each op finds them ready.
        for t in self.shared.workers.get().into_iter().flatten() {
            t.unpark();
        }
        f()
    }

    /// Calls `f(k)` once for every chunk `k` in `0..threads()`, spread over
    /// the caller and the workers, and returns when all have finished. A
    /// panic in a chunk is resumed here once every chunk has finished. If
    /// the pool is already running a job (another caller, or `f` itself
    /// splitting again), every chunk runs here, in order.
    pub fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        self.shared.run(self.threads(), f)
    }
}

impl Shared {
    /// Workers plus the caller.
    fn threads(&self) -> usize {
        self.workers.get().map_or(0, |w| w.len()) + 1
    }

    /// [`Pool::run`] with `chunks` (at most [`MAX_THREADS`]) chunks.
    fn run(&self, chunks: usize, f: &(dyn Fn(usize) + Sync)) {
        debug_assert!(chunks <= MAX_THREADS);
        let workers: &[Thread] = self.workers.get().map_or(&[], |w| w);
        if workers.is_empty()
            || chunks < 2
            || self
                .busy
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            (0..chunks).for_each(f);
            return;
        }
        let job = Job {
            f,
            chunks,
            claimed: AtomicU64::new(0),
            finished: AtomicUsize::new(0),
            panic: Mutex::new(None),
        };
        self.job
            .store(&job as *const Job as *mut (), Ordering::Relaxed);
        // SeqCst: publishes the job to a worker that sees `open` (the
        // workers' own loads are SeqCst), and orders it with their `active`.
        self.open.store(true, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        for t in workers.iter().take(chunks - 1) {
            // Cheap when the worker is spinning (it leaves a token that its
            // next park consumes); a futex wake when it sleeps.
            t.unpark();
        }
        job.work(0);
        self.wait_until(|| job.all_finished());
        // SeqCst with the workers' increment of `active` then load of
        // `open`: a worker either saw the job open and is counted in
        // `active`, or sees it closed and leaves without touching it.
        self.open.store(false, Ordering::SeqCst);
        self.wait_until(|| self.active.load(Ordering::SeqCst) == 0);
        self.job.store(std::ptr::null_mut(), Ordering::Relaxed);
        self.busy.store(false, Ordering::Release);
        if let Some(p) = job.panic.into_inner().unwrap_or_else(|e| e.into_inner()) {
            resume_unwind(p);
        }
    }

    /// Returns once `done()` holds: spins for [`CALLER_SPIN`], then sleeps
    /// on `wake`, which a worker notifies after any change `done` reads
    /// when it sees `caller_sleeps`.
    fn wait_until(&self, done: impl Fn() -> bool) {
        let start = Instant::now();
        let mut spins = 0u32;
        while !done() {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) && start.elapsed() > CALLER_SPIN {
                let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
                // SeqCst with the workers' updates (SeqCst) and their load
                // of `caller_sleeps`: either a worker sees this flag after
                // its update and notifies (under the lock, so once the wait
                // has started), or `done()` below sees the update.
                self.caller_sleeps.store(true, Ordering::SeqCst);
                while !done() {
                    guard = self.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
                }
                self.caller_sleeps.store(false, Ordering::Relaxed);
                return;
            }
        }
    }

    /// Wakes the caller if it sleeps in [`Shared::wait_until`]; called by a
    /// worker after each update the caller waits on.
    fn notify_caller(&self) {
        if self.caller_sleeps.load(Ordering::SeqCst) {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.wake.notify_one();
        }
    }
}

/// A worker's loop: wait for a new generation, enter the job if it is
/// still open, run chunk `part` and any unclaimed one, leave; return when
/// the pool stops.
fn worker(shared: &Shared, part: usize) {
    // No job is published before `Pool::new` returns, which is after this
    // thread was spawned: generation 0 is the one before the first job,
    // however late this thread starts.
    let mut seen = 0;
    super::depthwise::reserve_scratch();
    shared.started.fetch_add(1, Ordering::Release);
    loop {
        let mut start = Instant::now();
        let mut spins = 0u32;
        let mut now = shared.generation.load(Ordering::Acquire);
        while now == seen {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64)
                && shared.installed.load(Ordering::Relaxed) == 0
                && start.elapsed() > WORKER_SPIN
            {
                // Returns on an unpark: a job, or `Pool::install` waking
                // the workers ahead of one (a token left by an earlier
                // unpark makes it return at once). Either way, spin again.
                std::thread::park();
                start = Instant::now();
            } else {
                std::hint::spin_loop();
            }
            now = shared.generation.load(Ordering::Acquire);
        }
        seen = now;
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        shared.active.fetch_add(1, Ordering::SeqCst);
        if shared.open.load(Ordering::SeqCst) {
            let job = shared.job.load(Ordering::Relaxed) as *const Job;
            // SAFETY: the job is open and this worker is counted in
            // `active`, so `job` points to the `Job` on the caller's stack
            // published before `open` was set, and the caller neither
            // returns nor stores another job until `active` is back to
            // zero, which needs this worker's decrement below.
            let job = unsafe { &*job };
            if job.work(part) {
                shared.notify_caller();
            }
        }
        if shared.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            shared.notify_caller();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        for handle in self.handles.drain(..) {
            handle.thread().unpark();
            // A worker cannot panic outside a chunk (chunks are caught);
            // whatever join says, never panic in drop.
            let _ = handle.join();
        }
    }
}

/// A slice that the parts of one job write through, each into elements no
/// other part touches (rows of channels, columns of pixels: shapes that are
/// not contiguous blocks of the slice, so `chunks_mut` cannot hand them
/// out). Borrows the slice mutably for its lifetime.
pub(crate) struct SharedSlice<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: std::marker::PhantomData<&'a mut [T]>,
}

// SAFETY: a `SharedSlice` only gives out parts of the slice through
// `part` and `ptr`, whose callers promise that no two threads access the
// same element; `T: Send` lets those elements be used on other threads, as
// `<[T]>::chunks_mut` handed to scoped threads would.
unsafe impl<T: Send> Sync for SharedSlice<'_, T> {}

impl<'a, T> SharedSlice<'a, T> {
    pub(crate) fn new(slice: &'a mut [T]) -> SharedSlice<'a, T> {
        SharedSlice {
            ptr: slice.as_mut_ptr(),
            len: slice.len(),
            _borrow: std::marker::PhantomData,
        }
    }

    /// The first element, for kernels that write through raw pointers (the
    /// same promise as [`SharedSlice::part`] for what they write).
    pub(crate) fn ptr(&self) -> *mut T {
        self.ptr
    }

    /// Elements `range` (checked to lie inside the slice).
    ///
    /// # Safety
    ///
    /// No other thread reads or writes any element of `range` while the
    /// returned slice lives, and this thread holds no other reference to
    /// them.
    #[allow(
        clippy::mut_from_ref,
        reason = "the parts handed to the threads are disjoint by the caller's promise, as chunks_mut's are"
    )]
    pub(crate) unsafe fn part(&self, range: std::ops::Range<usize>) -> &mut [T] {
        assert!(range.start <= range.end && range.end <= self.len);
        // SAFETY: inside the borrowed slice (checked just above); exclusive
        // for as long as the result lives by the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) }
    }
}

/// Calls `f(range)` for ranges that cover `0..n` without overlapping, one
/// balanced range per thread of the pool installed on this thread, every
/// boundary a multiple of `align`; `f(0..n)` inline when no pool is
/// installed, `n` has fewer than two `align` units, or `work` (the whole
/// job's multiply-adds, or the kernel's equivalent) is below the pool's
/// minimum ([`MIN_PARALLEL_WORK`] unless [`Pool::with_min_work`] set
/// another). Range `k` goes to thread `k` unless another got there first,
/// so from one op to the next, and one frame to the next, a core mostly
/// handles the same part of each tensor (the data stays in its caches).
/// The first error of a range is returned (the others may still have run).
pub fn par_ranges(
    n: usize,
    align: usize,
    work: usize,
    f: impl Fn(std::ops::Range<usize>) -> TractResult<()> + Sync,
) -> TractResult<()> {
    let align = align.max(1);
    let units = n.div_ceil(align);
    if units < 2 {
        return f(0..n);
    }
    let Some(shared) = CURRENT.with_borrow(|c| c.clone()) else {
        return f(0..n);
    };
    let threads = shared.threads();
    if threads < 2 || work < shared.min_work {
        return f(0..n);
    }
    let chunks = threads.min(units);
    let error = Mutex::new(None);
    shared.run(chunks, &|k| {
        let (u0, u1) = (k * units / chunks, (k + 1) * units / chunks);
        if let Err(e) = f(u0 * align..(u1 * align).min(n)) {
            error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(e);
        }
    });
    match error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Processes `out` in parallel over its rows of `row_len` elements on the
/// pool installed on this thread, as [`par_ranges`] splits the rows; the
/// contract of tract-linalg's `multithread::par_chunks_mut`:
/// `f(first_row, chunk)` is called on disjoint contiguous blocks of whole
/// rows covering `out` (never splitting a row, so results are
/// bit-identical to `f(0, out)`); `work` is the size of the whole job.
/// Runs `f(0, out)` inline where [`par_ranges`] would.
pub fn par_chunks_mut<T: Send>(
    out: &mut [T],
    row_len: usize,
    work: usize,
    f: impl Fn(usize, &mut [T]) -> TractResult<()> + Sync,
) -> TractResult<()> {
    let row_len = row_len.max(1);
    debug_assert!(out.len().is_multiple_of(row_len));
    let rows = out.len() / row_len;
    let out = SharedSlice::new(out);
    par_ranges(rows, 1, work, |r| {
        // SAFETY: `par_ranges` hands out ranges of rows that do not
        // overlap, each to one call, and `out` stays borrowed until every
        // call has returned.
        let part = unsafe { out.part(r.start * row_len..r.end * row_len) };
        f(r.start, part)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::depthwise::Depthwise3x3;
    use crate::model::kernels::im2col::Im2Col;
    use crate::model::kernels::pointwise::tests::Rng;
    use crate::model::kernels::pointwise::{PackedGemm, Simd};

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// `run` inline, then with pools of 2 and 3 threads that split every
    /// op; every output must have the same bits.
    fn same_bits_split_or_not(what: &str, run: impl Fn() -> Vec<f32>) {
        let alone = run();
        for threads in [2, 3] {
            let pool = Pool::with_min_work(threads, 0).expect("pool");
            // Twice: the second job finds the workers warm.
            for round in 0..2 {
                let split = pool.install(&run);
                assert_eq!(
                    bits(&split),
                    bits(&alone),
                    "{what}: {threads} threads, round {round}"
                );
            }
        }
    }

    fn simd_paths() -> Vec<Simd> {
        use crate::model::kernels::path::KernelPath;
        let mut v = vec![Simd::Portable];
        if KernelPath::Avx512.supported() {
            v.push(Simd::Avx512);
        }
        if KernelPath::Avx2.supported() {
            v.push(Simd::Avx2);
        }
        v
    }

    #[test]
    fn pointwise_results_are_bit_identical_split_or_not() {
        let mut rng = Rng(crate::rng::Rng::new(0x51_17));
        // Split by pixels (56x56 and more): MobileNetV2's 56x56
        // projection, 112x112 expansion, and odd ones (a partial last tile
        // or panel); by output channels (fewer pixels): 14x14, the 7x7
        // transposed tiles, a partial last panel (one chunk), fewer panels
        // than threads; the classifier's panels (one pixel).
        let shapes = [
            (96, 24, 3136),
            (16, 96, 12544),
            (7, 3, 3137),
            (5, 13, 3136 + 97),
            (96, 576, 196),
            (160, 960, 49),
            (960, 160, 49),
            (32, 16, 97),
            (17, 13, 48),
            (1280, 1000, 1),
            (24, 32, 1),
            (7, 13, 1),
        ];
        for (ci, co, p) in shapes {
            let x = rng.vec(ci * p);
            let w = rng.vec(co * ci);
            let b = rng.vec(co);
            let r = rng.vec(co * p);
            for simd in simd_paths() {
                let op = PackedGemm::new(ci, co, p, &w, &b)
                    .expect("valid shape")
                    .with_simd(simd)
                    .with_clamp(0.0, 6.0);
                same_bits_split_or_not(&format!("{simd:?} {ci}x{co}x{p}"), || {
                    let mut out = vec![f32::NAN; co * p];
                    op.compute(&x, &mut out).expect("shapes match");
                    out
                });
                let op = op.with_residual();
                same_bits_split_or_not(&format!("{simd:?} {ci}x{co}x{p} residual"), || {
                    let mut out = r.clone();
                    op.compute(&x, &mut out).expect("shapes match");
                    out
                });
            }
        }
    }

    #[test]
    fn depthwise_results_are_bit_identical_split_or_not() {
        let mut rng = Rng(crate::rng::Rng::new(0xd3_97));
        // Split by rows (56 output rows and more, odd counts included) and
        // by channels (fewer rows).
        for (c, h, w, stride) in [
            (32, 112, 112, 1),
            (96, 112, 112, 2),
            (7, 113, 31, 2),
            (3, 57, 2, 1),
            (144, 28, 28, 1),
            (960, 7, 7, 1),
            (576, 14, 14, 2),
            (5, 9, 8, 2),
            (3, 1, 1, 1),
        ] {
            let op = Depthwise3x3::new((c, h, w), stride, rng.vec(c * 9), rng.vec(c))
                .expect("valid shape")
                .with_clamp(0.0, 6.0);
            let x = rng.vec(c * h * w);
            let (oh, ow) = op.out_hw();
            same_bits_split_or_not(&format!("depthwise {c}x{h}x{w} stride {stride}"), || {
                let mut out = vec![f32::NAN; c * oh * ow];
                op.compute(&x, &mut out).expect("shapes match");
                out
            });
        }
    }

    #[test]
    fn im2col_stem_results_are_bit_identical_split_or_not() {
        let mut rng = Rng(crate::rng::Rng::new(0x57e3));
        // MobileNetV2's first convolution: 3x224x224, 3x3 stride 2, 32 out.
        let geo = Im2Col::new((3, 224, 224), (3, 3), (2, 2), (1, 1), (112, 112)).expect("fits");
        let x = rng.vec(3 * 224 * 224);
        let w = rng.vec(32 * geo.rows());
        let b = rng.vec(32);
        for simd in simd_paths() {
            let op = PackedGemm::new(geo.rows(), 32, 112 * 112, &w, &b)
                .expect("valid shape")
                .with_simd(simd)
                .with_clamp(0.0, 6.0);
            same_bits_split_or_not(&format!("{simd:?} stem"), || {
                let mut out = vec![f32::NAN; 32 * 112 * 112];
                geo.with_matrix(&x, |cols| op.compute(cols, &mut out))
                    .expect("shapes match");
                out
            });
        }
    }

    #[test]
    fn every_row_is_visited_once_in_whole_chunks() {
        let pool = Pool::with_min_work(3, 0).expect("pool");
        for rows in [1, 2, 3, 4, 7, 100] {
            let mut out = vec![0usize; rows * 5];
            pool.install(|| {
                par_chunks_mut(&mut out, 5, usize::MAX, |first, chunk| {
                    assert_eq!(chunk.len() % 5, 0);
                    for (i, v) in chunk.iter_mut().enumerate() {
                        *v += first * 5 + i + 1;
                    }
                    Ok(())
                })
            })
            .expect("no error");
            let want: Vec<usize> = (1..=rows * 5).collect();
            assert_eq!(out, want, "{rows} rows");
        }
    }

    #[test]
    fn many_short_jobs_each_run_every_chunk_exactly_once() {
        // Workers arrive early, late (after the caller took their chunk)
        // or after the close; every chunk must still run once per job.
        let pool = Pool::with_min_work(3, 0).expect("pool");
        let counts: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
        let jobs = 20_000;
        for _ in 0..jobs {
            pool.run(&|k| {
                counts[k].fetch_add(1, Ordering::Relaxed);
            });
        }
        for (k, c) in counts.iter().enumerate() {
            assert_eq!(c.load(Ordering::Relaxed), jobs, "chunk {k}");
        }
    }

    #[test]
    fn without_a_pool_or_below_its_minimum_work_the_op_runs_inline_in_one_call() {
        let calls = AtomicUsize::new(0);
        let mut out = vec![0u8; 64];
        let once = |first: usize, chunk: &mut [u8]| {
            calls.fetch_add(1, Ordering::Relaxed);
            assert_eq!((first, chunk.len()), (0, 64));
            Ok(())
        };
        par_chunks_mut(&mut out, 1, usize::MAX, once).expect("inline");
        let pool = Pool::with_min_work(2, 1000).expect("pool");
        pool.install(|| par_chunks_mut(&mut out, 1, 999, once))
            .expect("inline");
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        // Installed, above the minimum: split.
        pool.install(|| par_chunks_mut(&mut out, 1, 1000, |_, _| Ok(())))
            .expect("split");
        // And uninstalled again afterwards.
        par_chunks_mut(&mut out, 1, usize::MAX, once).expect("inline");
        assert_eq!(calls.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn the_first_error_of_a_chunk_is_returned() {
        let pool = Pool::with_min_work(2, 0).expect("pool");
        let mut out = vec![0f32; 8];
        let e = pool
            .install(|| {
                par_chunks_mut(&mut out, 1, 8, |first, _| {
                    tract_onnx::tract_core::internal::ensure!(
                        first == 0,
                        "chunk at {first} failed"
                    );
                    Ok(())
                })
            })
            .expect_err("the second chunk fails");
        assert!(e.to_string().contains("failed"), "{e}");
    }

    #[test]
    fn a_panicking_part_neither_hangs_nor_loses_the_pool() {
        let pool = Pool::with_min_work(3, 0).expect("pool");
        for bad in 0..3 {
            let caught = catch_unwind(AssertUnwindSafe(|| {
                pool.run(&|part| {
                    if part == bad {
                        panic!("part {part} fails");
                    }
                })
            }));
            let payload = caught.expect_err("the panic reaches the caller");
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default();
            assert_eq!(msg, format!("part {bad} fails"));
            // The pool still runs every part, and the kernels' entry too.
            let ran = AtomicUsize::new(0);
            pool.run(&|_| {
                ran.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(ran.load(Ordering::Relaxed), 3, "after part {bad} panicked");
            let mut out = vec![0u32; 30];
            pool.install(|| {
                par_chunks_mut(&mut out, 10, usize::MAX, |first, chunk| {
                    chunk.fill(first as u32 + 1);
                    Ok(())
                })
            })
            .expect("no error");
            assert!(out.iter().all(|&v| v != 0));
        }
        // A panic inside an installed pool leaves nothing installed.
        let _ = catch_unwind(AssertUnwindSafe(|| pool.install(|| panic!("in install"))));
        assert!(CURRENT.with_borrow(|c| c.is_none()));
    }

    #[test]
    fn a_part_that_splits_again_or_a_second_caller_runs_inline() {
        let pool = Pool::with_min_work(2, 0).expect("pool");
        let total = AtomicUsize::new(0);
        // Nested: part 0 (the caller, pool installed) splits again.
        pool.install(|| {
            pool.run(&|_| {
                let mut v = vec![1u64; 40];
                par_chunks_mut(&mut v, 4, usize::MAX, |_, c| {
                    total.fetch_add(c.iter().sum::<u64>() as usize, Ordering::Relaxed);
                    Ok(())
                })
                .expect("no error");
            })
        });
        assert_eq!(total.load(Ordering::Relaxed), 80);
        // Two threads sharing one pool at once: each job still runs whole.
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..200 {
                        let mut v = vec![0u32; 64];
                        pool.install(|| {
                            par_chunks_mut(&mut v, 8, usize::MAX, |first, c| {
                                c.fill(first as u32 + 1);
                                Ok(())
                            })
                        })
                        .expect("no error");
                        assert!(v.iter().all(|&x| x != 0));
                    }
                });
            }
        });
    }

    #[test]
    fn dropping_the_pool_joins_its_workers() {
        let pool = Pool::new(3).expect("pool");
        assert_eq!(pool.threads(), 3);
        let shared = Arc::downgrade(&pool.shared);
        // Workers asleep (parked) and just after a job.
        std::thread::sleep(Duration::from_millis(5));
        pool.run(&|_| {});
        drop(pool);
        // Each worker held the shared state until its thread ended.
        assert!(shared.upgrade().is_none(), "a worker outlived the pool");
        let single = Pool::new(1).expect("pool");
        assert_eq!(single.threads(), 1);
        let ran = AtomicUsize::new(0);
        single.run(&|part| {
            assert_eq!(part, 0);
            ran.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(ran.load(Ordering::Relaxed), 1);
    }
}
