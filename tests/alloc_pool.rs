//! Allocation discipline of the intra-op pool (issue 23), measured with a
//! counting global allocator: after warm-up a job split over the pool
//! allocates nothing, and a network run with a two-thread pool installed
//! allocates exactly what the same network allocates on one thread, on
//! every kernel path this CPU runs: nothing on ours (the fixed-buffer
//! executor), tract's own count on the stock path.

use mainstream::model::manifest::BaseManifest;
use mainstream::model::net::{Base, KernelPath};
use mainstream::model::pool::{par_chunks_mut, Pool};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tract_onnx::prelude::{IntoTValue, Tensor};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The counter is global: the tests of this file take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Allocations (on any thread, the pool's workers included) while `f` runs.
fn count<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let a0 = ALLOCS.load(Ordering::SeqCst);
    let r = f();
    (r, ALLOCS.load(Ordering::SeqCst) - a0)
}

#[test]
fn a_job_split_over_the_pool_allocates_nothing_after_warm_up() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The harness's main thread records this test as running just after
    // starting it (allocating): let it be done before counting.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let pool = Pool::with_min_work(3, 0).unwrap();
    let mut out = vec![0f32; 96 * 64];
    let job = |out: &mut Vec<f32>| {
        pool.install(|| {
            par_chunks_mut(out, 64, usize::MAX, |first, chunk| {
                for (i, v) in chunk.iter_mut().enumerate() {
                    *v += (first * 64 + i) as f32;
                }
                Ok(())
            })
        })
        .unwrap()
    };
    for _ in 0..3 {
        job(&mut out);
    }
    // Workers hot (spinning) and asleep (parked), both.
    let (_, hot) = count(|| {
        for _ in 0..1000 {
            job(&mut out);
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (_, woken) = count(|| job(&mut out));
    assert_eq!(
        (hot, woken),
        (0, 0),
        "allocations: 1000 hot jobs, one after sleeping"
    );
    assert_eq!(out[64 * 95 + 63], 1004.0 * (64 * 95 + 63) as f32);
}

#[test]
fn a_network_on_two_threads_allocates_what_it_allocates_on_one() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let m = BaseManifest::load(&root.join("models/mobilenet_v2/manifest.toml")).unwrap();
    let base = Base::load(m).unwrap();
    let n = base.manifest.segments();
    let input = Arc::new(Tensor::zero::<f32>(&[1, 3, 224, 224]).unwrap());
    let pool = Pool::new(2).unwrap();
    let frames = 3u64;
    for path in KernelPath::ALL.into_iter().filter(|p| p.supported()) {
        // Read once per network build (the tests of this binary take turns).
        std::env::set_var("MAINSTREAM_KERNEL", path.name());
        let mut net = base.cut(0, n).unwrap();
        std::env::remove_var("MAINSTREAM_KERNEL");
        let mut frame = |split: bool| {
            let x = Arc::clone(&input).into_tvalue();
            if split {
                pool.install(|| net.run(x)).unwrap();
            } else {
                net.run(x).unwrap();
            }
            net.reset().unwrap();
        };
        // Warm-up on both: the workers' scratch grows once.
        for split in [false, true, false, true] {
            frame(split);
        }
        let (_, alone) = count(|| (0..frames).for_each(|_| frame(false)));
        let (_, split) = count(|| (0..frames).for_each(|_| frame(true)));
        eprintln!(
            "{}: per frame {} allocations on one thread, {} split over two",
            path.name(),
            alone / frames,
            split / frames
        );
        assert_eq!(split, alone, "{}: the pool allocated", path.name());
        if path != KernelPath::Stock {
            // Our kernel paths run on the fixed-buffer executor.
            assert_eq!(split, 0, "{}: allocations on two threads", path.name());
        }
    }
}
