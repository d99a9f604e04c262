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
