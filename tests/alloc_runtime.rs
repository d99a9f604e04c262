//! Allocation discipline of the stem tree, measured with a counting global
//! allocator: after warm-up, a frame through trees of 1, 3 and 8 apps (real
//! head files and base remainders; two threads used for heads or to split
//! every op) allocates nothing on every kernel path of ours, engine included (the fixed-buffer
//! executor, `model::exec`); tract's executor, which the stock path runs,
//! is shown to allocate. Counts per frame are printed.

use mainstream::model::manifest::BaseManifest;
use mainstream::model::net::{Base, KernelPath, KERNEL_ENV};
use mainstream::model::tree::{AppPlan, StemTree};
use mainstream::package::HeadModel;
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(l.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(n as u64, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The counters are global: the tests of this file take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn count<R>(f: impl FnOnce() -> R) -> (R, u64, u64) {
    let (a0, b0) = (ALLOCS.load(Ordering::SeqCst), BYTES.load(Ordering::SeqCst));
    let r = f();
    (
        r,
        ALLOCS.load(Ordering::SeqCst) - a0,
        BYTES.load(Ordering::SeqCst) - b0,
    )
}

/// A plan of `n` apps over the bundled packages' real head files (each
/// ending in the ONNX classifier the trainer exported) and the base's own
/// remainder, at branch points spread over the network.
fn apps(n: usize) -> Vec<AppPlan> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let head = |app: &str, bp: usize| HeadModel::File {
        path: root.join(format!("models/apps/{app}/head_bp{bp:02}.onnx")),
        sha256: None,
    };
    let all = [
        ("birds12", 12, head("birds", 12), 1),
        ("remainder10", 10, HeadModel::BaseRemainder, 967),
        ("vehicles17", 17, head("vehicles", 17), 1),
        ("mammals0", 0, head("mammals", 0), 1),
        ("birds20", 20, head("birds", 20), 1),
        ("mammals15", 15, head("mammals", 15), 1),
        ("vehicles12", 12, head("vehicles", 12), 1),
        ("remainder20", 20, HeadModel::BaseRemainder, 967),
    ];
    all.into_iter()
        .take(n)
        .map(|(name, branch, head, positive)| AppPlan {
            name: name.into(),
            branch,
            stride: 1,
            head,
            positive: vec![positive],
        })
        .collect()
}

/// How a tree uses its threads.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Use {
    /// Heads on worker threads.
    Heads,
    /// Every op split over the intra-op pool.
    SplitOps,
}

/// Allocations and bytes over 5 frames of a tree of `n` apps on `threads`
/// threads used as `how`, after warm-up, on the kernel path the environment
/// names.
fn per_frame(base: &Base, n: usize, threads: usize, how: Use) -> (u64, u64) {
    let mut tree = match how {
        Use::Heads => StemTree::build_head_threads(base, apps(n), threads).unwrap(),
        Use::SplitOps => StemTree::build_threaded(base, apps(n), threads).unwrap(),
    };
    if how == Use::SplitOps {
        assert_eq!(tree.intra_threads(), threads, "{n} apps: not split");
    }
    for f in 0..3 {
        tree.fill_input(|d| d.fill(0.5)).unwrap();
        tree.run_frame(f).unwrap();
    }
    let frames = 5u64;
    let (_, allocs, bytes) = count(|| {
        for f in 3..3 + frames {
            tree.fill_input(|d| d.fill(0.5)).unwrap();
            let r = tree.run_frame(f).unwrap();
            assert!(r.iter().all(|r| r.ran), "every app ran");
        }
    });
    // Totals, not per-frame averages: one allocation in five frames fails.
    (allocs, bytes)
}

#[test]
fn a_steady_frame_allocates_nothing_for_1_3_and_8_apps_on_every_kernel_path() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let m = BaseManifest::load(&root.join("models/mobilenet_v2/manifest.toml")).unwrap();
    let base = Base::load(m).unwrap();
    let mut ran = 0;
    for path in KernelPath::ALL {
        if !path.supported() {
            eprintln!("{}: not on this CPU, skipped", path.name());
            continue;
        }
        // Read once per network build; this binary's tests take turns.
        std::env::set_var(KERNEL_ENV, path.name());
        let cases = [
            (1, 1, Use::Heads),
            (3, 1, Use::Heads),
            (8, 1, Use::Heads),
            (8, 2, Use::Heads),
            (8, 2, Use::SplitOps),
        ];
        for (n, threads, how) in cases {
            let (allocs, bytes) = per_frame(&base, n, threads, how);
            eprintln!(
                "{}: {n} apps, {threads} thread(s), {how:?}: {} allocations / {} bytes per frame",
                path.name(),
                allocs / 5,
                bytes / 5
            );
            if path == KernelPath::Stock {
                // tract's own kernels run on tract's executor, the
                // reference, which allocates every node's output.
                assert!(
                    allocs > 0,
                    "stock: tract's executor allocates; 0 means nothing ran"
                );
            } else {
                assert_eq!(
                    (allocs, bytes),
                    (0, 0),
                    "{}: {n} apps, {threads} thread(s), {how:?}",
                    path.name()
                );
            }
            ran += 1;
        }
    }
    std::env::remove_var(KERNEL_ENV);
    assert!(ran >= 10, "at least one of our paths and stock ran");
}

/// The service's clocks stand-in: a counter for the work, no wall time.
struct Ticks(std::cell::Cell<u32>);

impl mainstream::pipeline::AnalysisClock for Ticks {
    fn work_s(&self) -> f64 {
        self.0.set(self.0.get() + 1);
        f64::from(self.0.get())
    }
    fn event_unix_ms(&self) -> u64 {
        0
    }
}

#[test]
fn the_analyser_allocates_nothing_beyond_the_tree_per_frame() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    use mainstream::frame::{FrameMeta, PixelFormat};
    use mainstream::pipeline::{Analyser, AppRun, Frame};
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let m = BaseManifest::load(&root.join("models/mobilenet_v2/manifest.toml")).unwrap();
    let base = Base::load(m).unwrap();
    let plans = || {
        ["a", "b", "c"]
            .iter()
            .zip([10, 10, 20])
            .map(|(name, branch)| AppPlan {
                name: (*name).into(),
                branch,
                stride: 1,
                head: HeadModel::BaseRemainder,
                positive: vec![967],
            })
            .collect::<Vec<_>>()
    };
    // A grey frame: preprocessing it allocates nothing once set up.
    let (w, h) = (320u32, 240u32);
    let pixels: Vec<u8> = (0..w * h).map(|i| (i % 251) as u8).collect();
    let meta = |sequence| FrameMeta {
        sequence,
        timestamp_us: sequence * 100_000,
        width: w,
        height: h,
        format: PixelFormat::Grey,
    };
    let input = &base.manifest.input;
    // Every app at the stream's rate: the tree runs all three on every frame.
    let apps: Vec<AppRun> = ["a", "b", "c"]
        .iter()
        .map(|n| AppRun {
            name: (*n).into(),
            voting: 2,
            fps: 10.0,
        })
        .collect();
    let mut analyser = Analyser::new(input.preprocess_spec(), input.fit(), 10.0);
    analyser.assign(
        Some(StemTree::build(&base, plans()).unwrap()),
        apps,
        |_, _, _| {},
    );
    let clock = Ticks(std::cell::Cell::new(0));
    for f in 0..3 {
        let r = analyser.analyse(&meta(f), &pixels, &clock).unwrap();
        assert!(matches!(r, Frame::Analysed(_)), "{r:?}");
    }
    let frames = 5u64;
    let (_, analyser_allocs, _) = count(|| {
        for f in 3..3 + frames {
            let r = analyser.analyse(&meta(f), &pixels, &clock).unwrap();
            assert!(matches!(r, Frame::Analysed(_)));
        }
    });
    assert!(analyser.steps().iter().all(|s| s.result.ran));

    // The same frames through the same tree without the analyser.
    let mut tree = StemTree::build(&base, plans()).unwrap();
    let mut pre = mainstream::preprocess::Preprocessor::new(
        w,
        h,
        PixelFormat::Grey,
        &input.preprocess_spec(),
        input.fit(),
    )
    .unwrap();
    let due = [true; 3];
    for f in 0..3 {
        tree.fill_input(|buf| pre.run(&pixels, buf))
            .unwrap()
            .unwrap();
        tree.run_apps(f, &due).unwrap();
    }
    let (_, tree_allocs, _) = count(|| {
        for f in 3..3 + frames {
            tree.fill_input(|buf| pre.run(&pixels, buf))
                .unwrap()
                .unwrap();
            tree.run_apps(f, &due).unwrap();
        }
    });
    eprintln!(
        "per frame: analyser {} allocations; tree and preprocessor alone {}",
        analyser_allocs / frames,
        tree_allocs / frames
    );
    assert_eq!(
        (analyser_allocs, tree_allocs),
        (0, 0),
        "the analyser, or the tree and preprocessor under it, allocated"
    );
}
