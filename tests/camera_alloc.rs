//! The capture path allocates nothing per frame once it runs: replay sources
//! read into buffers allocated when they were opened, and the supervisor adds
//! no allocation. Measured with a counting global allocator that counts only
//! on the test's own thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mainstream::camera::{
    Camera, CameraOptions, Faults, FrameSource, OpenStep, Pace, ScriptedOpener, SimClock,
    SourceSpec, SpecOpener,
};
use mainstream::frame::PixelFormat;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counters are thread-local
// `Cell`s with const initialisers, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

mod frames;
use frames::split_at_soi;

#[global_allocator]
static GLOBAL: Counting = Counting;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/camera")
        .join(name)
}

/// The replay of `path`, as fast as it is read.
fn spec(path: PathBuf) -> SourceSpec {
    SourceSpec {
        path,
        width: 320,
        height: 240,
        fps: 10.0,
        format: PixelFormat::Mjpeg,
        pace: Pace::Fast,
    }
}

/// Allocations made while grabbing every frame after the first two.
fn steady_state_allocations(path: PathBuf) -> (u64, u64) {
    let spec = spec(path);
    let mut cam = Camera::new(
        Box::new(SpecOpener::new(spec)),
        Arc::new(SimClock::new()),
        CameraOptions::default(),
    );
    for _ in 0..2 {
        cam.grab().unwrap().unwrap();
    }
    ALLOCS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    let mut frames = 0;
    let mut checksum = 0u64;
    while let Some(meta) = cam.grab().unwrap() {
        checksum = checksum.wrapping_add(cam.frame()[cam.frame().len() / 2] as u64 + meta.sequence);
        frames += 1;
    }
    COUNTING.with(|c| c.set(false));
    assert!(checksum > 0);
    (frames, ALLOCS.with(|a| a.get()))
}

#[test]
fn mjpeg_replay_through_the_supervisor_allocates_nothing_per_frame() {
    let (frames, allocs) = steady_state_allocations(fixture("vtest_mjpg_320x240.mjpeg"));
    assert!(frames >= 10);
    assert_eq!(allocs, 0, "{allocs} allocations over {frames} frames");
}

#[test]
fn y4m_replay_with_yuyv_conversion_allocates_nothing_per_frame() {
    let (frames, allocs) = steady_state_allocations(fixture("vtest_i420_64x48.y4m"));
    assert!(frames >= 3);
    assert_eq!(allocs, 0, "{allocs} allocations over {frames} frames");
}

#[test]
fn image_directory_replay_allocates_nothing_per_frame() {
    let (frames, allocs) = steady_state_allocations(fixture("images"));
    assert!(frames >= 2);
    assert_eq!(allocs, 0, "{allocs} allocations over {frames} frames");
}

/// Allocations while the supervisor skips damaged frames: every frame of
/// `path` after the first two is cut short (as a USB transfer that lost
/// packets delivers it) or, with `overwrite`, every other one has its first
/// bytes overwritten (a garbled JPEG header; raw frames would pass).
fn damaged_frame_allocations(path: PathBuf, overwrite: bool) -> (u64, u64) {
    let spec = spec(path);
    let clock = Arc::new(SimClock::new());
    let faults = if overwrite {
        Faults {
            truncate: (2..10_000).step_by(2).collect(),
            corrupt: (3..10_000).step_by(2).collect(),
            ..Faults::default()
        }
    } else {
        Faults {
            truncate: (2..10_000).collect(),
            ..Faults::default()
        }
    };
    let opener = ScriptedOpener::new(spec, vec![OpenStep::Open(faults)], clock.clone());
    let mut cam = Camera::new(Box::new(opener), clock, CameraOptions::default());
    for _ in 0..2 {
        cam.grab().unwrap().unwrap();
    }
    ALLOCS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    let got = cam.grab().unwrap();
    COUNTING.with(|c| c.set(false));
    assert!(
        got.is_none(),
        "every later frame is damaged: {got:?} {:?}",
        cam.stats()
    );
    (cam.stats().bad_frames, ALLOCS.with(|a| a.get()))
}

#[test]
fn damaged_frames_in_an_mjpeg_stream_file_allocate_nothing() {
    // Frames cut short by the next SOI, stray bytes between frames, a header
    // segment whose length runs past the frame, a cut at the end of the file.
    let f = split_at_soi(&std::fs::read(fixture("vtest_mjpg_320x240.mjpeg")).unwrap());
    let mut s = Vec::new();
    s.extend_from_slice(&f[0]);
    s.extend_from_slice(&f[1]);
    for k in 0..30 {
        let x = &f[k % f.len()];
        match k % 3 {
            0 => s.extend_from_slice(&x[..x.len() / 2]),
            1 => s.extend_from_slice(b"stray bytes between frames"),
            _ => {
                let mut bad = x.clone();
                bad[4..6].copy_from_slice(&[0xFF, 0xF0]);
                s.extend_from_slice(&bad);
            }
        }
    }
    s.extend_from_slice(&f[2][..f[2].len() - 10]);
    let path = std::env::temp_dir().join(format!("ms-alloc-{}.mjpeg", std::process::id()));
    std::fs::write(&path, &s).unwrap();
    let mut cam = Camera::new(
        Box::new(SpecOpener::new(spec(path.clone()))),
        Arc::new(SimClock::new()),
        CameraOptions::default(),
    );
    for _ in 0..2 {
        cam.grab().unwrap().unwrap();
    }
    ALLOCS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    let got = cam.grab().unwrap();
    COUNTING.with(|c| c.set(false));
    std::fs::remove_file(&path).unwrap();
    let (bad, allocs) = (cam.stats().bad_frames, ALLOCS.with(|a| a.get()));
    assert!(got.is_none(), "{got:?}");
    assert!(bad >= 20, "{bad} bad frames");
    assert_eq!(allocs, 0, "{allocs} allocations over {bad} damaged frames");
}

#[test]
fn damaged_frames_skipped_by_the_supervisor_allocate_nothing() {
    let (bad, allocs) = damaged_frame_allocations(fixture("vtest_mjpg_320x240.mjpeg"), true);
    assert!(bad >= 10, "{bad} bad frames");
    assert_eq!(
        allocs, 0,
        "{allocs} allocations over {bad} damaged MJPEG frames"
    );
    // Raw frames: only a cut transfer can be told from valid data.
    let (bad, allocs) = damaged_frame_allocations(fixture("vtest_i420_64x48.y4m"), false);
    assert!(bad >= 2, "{bad} bad frames");
    assert_eq!(
        allocs, 0,
        "{allocs} allocations over {bad} damaged YUYV frames"
    );
}

/// Taking an event snapshot on the camera thread copies the frame into a
/// pooled buffer and queues it: once the pool's buffers have grown to the
/// camera's frame size, it allocates nothing (the writer thread's work is
/// not counted: it runs on its own thread).
#[test]
fn taking_an_event_snapshot_allocates_nothing_on_the_camera_thread() {
    use mainstream::config::output::Snapshots as Config;
    use mainstream::daemon::events::Opened;
    use mainstream::daemon::output::snapshot::{Snapshots, POOL};
    use mainstream::frame::FrameMeta;
    use std::time::{Duration, Instant};
    let dir = std::env::temp_dir().join(format!("ms-snapshot-alloc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = Config {
        dir: Some(dir.clone()),
        keep: 3,
        max_bytes: 1 << 20,
        quality: 80,
        publish: false,
    };
    let s = Snapshots::start(&cfg, &dir, None).unwrap();
    let frames = split_at_soi(&std::fs::read(fixture("vtest_mjpg_320x240.mjpeg")).unwrap());
    let largest = frames.iter().max_by_key(|f| f.len()).unwrap().clone();
    let cam = s.snapshotter("gate", 0);
    let meta = |seq: u64| FrameMeta {
        sequence: seq,
        timestamp_us: seq * 100_000,
        width: 320,
        height: 240,
        format: PixelFormat::Mjpeg,
    };
    let opened = |seq: u64| Opened {
        start_frame: seq,
        start_unix_ms: 1_800_000_000_000 + seq,
        peak_score: 0.9,
    };
    // Waits until `n` snapshots are written (both buffers are back).
    let written = |n: u64| {
        let t0 = Instant::now();
        while s.status().written < n {
            assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", s.status());
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    // Warm-up: every buffer of the pool grows to the largest frame once.
    for i in 0..POOL as u64 {
        assert!(cam.take(&meta(i), &largest, "birds", &opened(i)));
    }
    written(POOL as u64);
    let mut taken = 0;
    for (i, f) in frames.iter().enumerate().take(20) {
        let seq = 100 + i as u64;
        let (m, o) = (meta(seq), opened(seq));
        ALLOCS.with(|a| a.set(0));
        COUNTING.with(|c| c.set(true));
        let ok = cam.take(&m, f, "birds", &o);
        COUNTING.with(|c| c.set(false));
        assert_eq!(ALLOCS.with(|a| a.get()), 0, "snapshot {i} allocated");
        assert!(ok, "snapshot {i} skipped: {:?}", s.status());
        taken += 1;
        written(POOL as u64 + taken);
    }
    assert_eq!(s.status().failed, 0);
    drop(cam);
    s.stop(Duration::from_secs(5), &dir);
    let _ = std::fs::remove_dir_all(&dir);
}
