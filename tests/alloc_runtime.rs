//! Allocation discipline of the stem tree, measured with a counting global
//! allocator: after warm-up, running a frame through the tree allocates
//! exactly what the same tract networks allocate when driven directly, i.e.
//! our bookkeeping adds nothing. tract's own per-frame count is printed.

use mainstream::model::manifest::BaseManifest;
use mainstream::model::net::{Base, Net};
use mainstream::model::tree::{AppPlan, StemTree};
use mainstream::package::HeadModel;
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tract_onnx::prelude::{TValue, Tensor};

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

#[test]
fn the_tree_allocates_nothing_beyond_what_tract_allocates_per_frame() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let m = BaseManifest::load(&root.join("models/mobilenet_v2/manifest.toml")).unwrap();
    let base = Base::load(m).unwrap();
    let plan = |name: &str, branch| AppPlan {
        name: name.into(),
        branch,
        stride: 1,
        head: HeadModel::BaseRemainder,
        positive: vec![967],
    };
    let mut tree =
        StemTree::build(&base, vec![plan("a", 10), plan("b", 10), plan("c", 20)]).unwrap();
    let frames = 5u64;
    for f in 0..3 {
        tree.fill_input(|d| d.fill(0.5)).unwrap();
        tree.run_frame(f).unwrap();
    }
    let (_, tree_allocs, tree_bytes) = count(|| {
        for f in 3..3 + frames {
            tree.fill_input(|d| d.fill(0.5)).unwrap();
            tree.run_frame(f).unwrap();
        }
    });

    // The same networks, driven directly through tract.
    let heads: Vec<Net> = vec![
        base.cut(10, 21).unwrap(),
        base.cut(10, 21).unwrap(),
        base.cut(20, 21).unwrap(),
    ];
    let mut nets = (base.cut(0, 10).unwrap(), base.cut(10, 20).unwrap(), heads);
    let input = Arc::new(Tensor::zero::<f32>(&[1, 3, 224, 224]).unwrap());
    let direct = |nets: &mut (Net, Net, Vec<Net>)| {
        let (s0, s1, hs) = nets;
        let x = TValue::from_const(Arc::clone(&input));
        s0.run(x).unwrap();
        let m0 = s0.output().unwrap().clone();
        s1.run(m0.clone()).unwrap();
        let m1 = s1.output().unwrap().clone();
        hs[0].run(m0.clone()).unwrap();
        hs[1].run(m0).unwrap();
        hs[2].run(m1).unwrap();
        for n in [&mut *s0, &mut *s1].into_iter().chain(hs.iter_mut()) {
            n.reset().unwrap();
        }
    };
    for _ in 0..3 {
        direct(&mut nets);
    }
    let (_, raw_allocs, raw_bytes) = count(|| {
        for _ in 0..frames {
            direct(&mut nets);
        }
    });
    eprintln!(
        "per frame: tree {} allocations / {} bytes; tract alone {} allocations / {} bytes",
        tree_allocs / frames,
        tree_bytes / frames,
        raw_allocs / frames,
        raw_bytes / frames
    );
    assert_eq!(tree_allocs, raw_allocs, "the tree's own code allocated");
    assert!(
        tree_allocs > 0,
        "tract allocates activations; a zero would mean nothing ran"
    );
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
        analyser_allocs, tree_allocs,
        "the analyser's own code allocated"
    );
    assert!(
        tree_allocs > 0,
        "tract allocates; a zero would mean nothing ran"
    );
}
