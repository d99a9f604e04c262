//! The capture supervisor ([`Camera`]) against replay sources with injected
//! faults: unplug, stall, drops, damaged frames, a vanished and re-pointed
//! stable link. Time is simulated, so the backoff never sleeps for real.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mainstream::camera::Clock;
use mainstream::camera::{
    Camera, CameraOptions, Faults, FrameSource, OpenStep, Pace, ScriptedOpener, SimClock,
    SourceSpec, SpecOpener,
};
use mainstream::frame::PixelFormat;
use mainstream::ErrorKind;

use crate::common::camera_fixture;
use crate::frames::{split_at_soi, with_declared_size};

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

/// Frames in the MJPEG fixture, counted by its SOI markers.
fn fixture_frames() -> u64 {
    let f = std::fs::read(camera_fixture("vtest_mjpg_320x240.mjpeg")).unwrap();
    f.windows(3).filter(|w| *w == [0xFF, 0xD8, 0xFF]).count() as u64
}

fn scripted(steps: Vec<OpenStep>, clock: &SimClock) -> Camera {
    let opener = ScriptedOpener::new(
        spec(camera_fixture("vtest_mjpg_320x240.mjpeg")),
        steps,
        Arc::new(clock.clone()),
    );
    Camera::new(
        Box::new(opener),
        Arc::new(clock.clone()),
        CameraOptions::default(),
    )
}

/// Grabs up to `n` frames; returns their (width, sequence).
fn grab_n(cam: &mut Camera, n: usize) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    while out.len() < n {
        match cam.grab() {
            Ok(Some(m)) => {
                assert!(cam.frame().len() > 100, "frame bytes are there");
                out.push((m.width, m.sequence));
            }
            Ok(None) => break,
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    out
}

fn faults() -> Faults {
    Faults::default()
}

#[test]
fn an_unplugged_camera_is_reopened_with_exponential_backoff() {
    let clock = SimClock::new();
    let mut cam = scripted(
        vec![
            OpenStep::Open(Faults {
                unplug_after: Some(5),
                ..faults()
            }),
            OpenStep::Fail(ErrorKind::DeviceGone),
            OpenStep::Fail(ErrorKind::DeviceGone),
            OpenStep::Fail(ErrorKind::DeviceGone),
        ],
        &clock,
    );
    let got = grab_n(&mut cam, 8);
    let seqs: Vec<u64> = got.iter().map(|g| g.1).collect();
    assert_eq!(
        seqs,
        [0, 1, 2, 3, 4, 0, 1, 2],
        "the replay starts over after the reopen"
    );
    let st = cam.stats();
    assert_eq!(
        (
            st.frames,
            st.disconnects,
            st.reconnects,
            st.failed_opens,
            st.dropped
        ),
        (8, 1, 1, 3, 0),
        "{st:?}"
    );
    let ms: Vec<u128> = clock.sleeps().iter().map(|d| d.as_millis()).collect();
    assert_eq!(
        ms,
        [100, 200, 200, 200, 200, 200, 200, 200],
        "100, 200, 400, 800 ms in 200 ms slices"
    );
    assert_eq!(clock.now(), Duration::from_millis(1500));
}

#[test]
fn a_vanished_stable_link_is_resolved_again_and_followed_to_its_new_node() {
    let dir = std::env::temp_dir().join(format!("mainstream-relink-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("by-id")).unwrap();
    // Two "nodes" with different pictures: the MJPEG clip (320x240) and a stream
    // made of the image-directory JPEGs (160x120).
    std::fs::copy(
        camera_fixture("vtest_mjpg_320x240.mjpeg"),
        dir.join("video0.mjpeg"),
    )
    .unwrap();
    let mut names: Vec<PathBuf> = std::fs::read_dir(camera_fixture("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let other: Vec<u8> = names
        .iter()
        .flat_map(|n| std::fs::read(n).unwrap())
        .collect();
    std::fs::write(dir.join("video3.mjpeg"), other).unwrap();
    let link = dir.join("by-id/usb-cam-index0.mjpeg");
    std::os::unix::fs::symlink(dir.join("video0.mjpeg"), &link).unwrap();

    let clock = SimClock::new();
    let (link2, target) = (link.clone(), dir.join("video3.mjpeg"));
    // While the camera is away the link disappears (udev removes it); during
    // the third backoff slice it reappears, pointing at another node.
    clock.on_sleep(move |n, _| match n {
        0 => std::fs::remove_file(&link2).unwrap(),
        2 => std::os::unix::fs::symlink(&target, &link2).unwrap(),
        _ => {}
    });
    let opener = ScriptedOpener::new(
        spec(link.clone()),
        vec![OpenStep::Open(Faults {
            unplug_after: Some(3),
            ..faults()
        })],
        Arc::new(clock.clone()),
    );
    let mut cam = Camera::new(
        Box::new(opener),
        Arc::new(clock.clone()),
        CameraOptions::default(),
    );
    let got = grab_n(&mut cam, 6);
    let widths: Vec<u32> = got.iter().map(|g| g.0).collect();
    assert_eq!(widths, [320, 320, 320, 160, 160, 160]);
    assert_eq!(
        cam.describe().node,
        std::fs::canonicalize(dir.join("video3.mjpeg")).unwrap()
    );
    let st = cam.stats();
    assert_eq!(
        (st.disconnects, st.reconnects, st.failed_opens),
        (1, 1, 2),
        "{st:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sequence_gaps_are_dropped_frames_and_damaged_frames_are_bad_not_dropped() {
    let clock = SimClock::new();
    let mut cam = scripted(
        vec![OpenStep::Open(Faults {
            skip: vec![3, 4, 7],
            corrupt: vec![9],
            truncate: vec![11],
            ..faults()
        })],
        &clock,
    );
    let got = grab_n(&mut cam, 1000);
    let total = fixture_frames();
    let st = cam.stats();
    assert_eq!(got.len() as u64, total - 5);
    assert_eq!(
        (st.dropped, st.bad_frames, st.frames),
        (3, 2, total - 5),
        "{st:?}"
    );
    assert_eq!((st.disconnects, st.reconnects), (0, 0));
    assert!(clock.sleeps().is_empty());
}

#[test]
fn a_stalled_camera_times_out_and_is_reopened() {
    let clock = SimClock::new();
    let mut cam = scripted(
        vec![OpenStep::Open(Faults {
            stall_after: Some(2),
            ..faults()
        })],
        &clock,
    );
    let got = grab_n(&mut cam, 4);
    assert_eq!(got.len(), 4);
    let st = cam.stats();
    assert_eq!(
        (st.timeouts, st.reconnects, st.disconnects),
        (1, 1, 0),
        "{st:?}"
    );
}

#[test]
fn a_run_of_bad_frames_makes_a_live_camera_reopen() {
    let clock = SimClock::new();
    let opener = ScriptedOpener::new(
        spec(camera_fixture("vtest_mjpg_320x240.mjpeg")),
        vec![OpenStep::Open(Faults {
            corrupt: (0..100).collect(),
            live: true,
            ..faults()
        })],
        Arc::new(clock.clone()),
    );
    let mut cam = Camera::new(
        Box::new(opener),
        Arc::new(clock.clone()),
        CameraOptions {
            max_consecutive_bad: 5,
            ..CameraOptions::default()
        },
    );
    let got = grab_n(&mut cam, 2);
    assert_eq!(got.len(), 2);
    let st = cam.stats();
    assert_eq!(
        (st.bad_frames, st.disconnects, st.reconnects),
        (5, 1, 1),
        "{st:?}"
    );
}

#[test]
fn configuration_errors_are_returned_at_once_not_retried() {
    let clock = SimClock::new();
    let mut cam = scripted(vec![OpenStep::Fail(ErrorKind::InvalidConfig)], &clock);
    let e = cam.grab().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    assert!(clock.sleeps().is_empty());
    assert_eq!(cam.stats().failed_opens, 0);
}

#[test]
fn a_camera_that_never_returns_gives_device_gone_after_the_limit() {
    let clock = SimClock::new();
    let opener = SpecOpener::new(spec("/dev/video-never-there".into()));
    let mut cam = Camera::new(
        Box::new(opener),
        Arc::new(clock.clone()),
        CameraOptions {
            give_up_after: Some(Duration::from_secs(60)),
            ..CameraOptions::default()
        },
    );
    let e = cam.grab().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DeviceGone, "{e:?}");
    let waited = clock.now();
    assert!(
        waited >= Duration::from_secs(60) && waited < Duration::from_secs(75),
        "{waited:?}"
    );
    // Capped at 10 s: 0.1+0.2+...+6.4 = 12.7 s, then 10 s each.
    let attempts = cam.stats().failed_opens;
    assert_eq!(attempts, 1 + 7 + 5, "{attempts}");
}

#[test]
fn the_stop_flag_ends_a_reconnect_wait() {
    let clock = SimClock::new();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    clock.on_sleep(move |n, _| {
        if n == 4 {
            stop2.store(true, Ordering::Relaxed);
        }
    });
    let opener = SpecOpener::new(spec("/dev/video-never-there".into()));
    let mut cam = Camera::new(
        Box::new(opener),
        Arc::new(clock.clone()),
        CameraOptions::default(),
    )
    .with_stop_flag(stop);
    assert!(cam.grab().unwrap().is_none());
    assert_eq!(clock.sleeps().len(), 5);
}

#[test]
fn the_end_of_a_replay_ends_the_camera() {
    let clock = SimClock::new();
    let mut cam = scripted(vec![], &clock);
    let got = grab_n(&mut cam, 10_000);
    assert_eq!(got.len() as u64, fixture_frames());
    assert!(cam.grab().unwrap().is_none());
    assert!(cam.frame().is_empty(), "no frame after the end");
    assert_eq!(cam.stats().frames, fixture_frames());
}

/// The fixture's frames.
fn fixture_frame_list() -> Vec<Vec<u8>> {
    split_at_soi(&std::fs::read(camera_fixture("vtest_mjpg_320x240.mjpeg")).unwrap())
}

/// A scratch file that is removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str, bytes: &[u8]) -> Self {
        let p = std::env::temp_dir().join(format!("ms-{}-{name}", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What a drained camera delivered: (width, height, sequence) of each frame,
/// and its counters.
type Drained = (Vec<(u32, u32, u64)>, mainstream::camera::CameraStats);

/// Grabs every frame of `path` through the supervisor on another thread;
/// `None` if that takes longer than 60 s (the supervisor loops).
fn drain_with_deadline(path: PathBuf) -> Option<Drained> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let clock = SimClock::new();
        let mut cam = Camera::new(
            Box::new(SpecOpener::new(spec(path))),
            Arc::new(clock),
            CameraOptions::default(),
        );
        let mut got = Vec::new();
        // Bounded, so that a looping supervisor cannot grow this without end.
        while got.len() < 100_000 {
            match cam.grab() {
                Ok(Some(m)) => got.push((m.width, m.height, m.sequence)),
                Ok(None) => break,
                Err(e) => panic!("unexpected error {e:?}"),
            }
        }
        let _ = tx.send((got, cam.stats()));
    });
    rx.recv_timeout(Duration::from_secs(60)).ok()
}

#[test]
fn issue_24_a_run_of_31_bad_frames_in_a_replay_file_is_read_through_not_started_over() {
    // 40 damaged frames (each cut short by the next frame's SOI), then good
    // ones. Reopening the file after 30 bad frames would start it again at
    // frame 0: the same 30 bad frames, forever.
    let f = fixture_frame_list();
    let mut bytes = Vec::new();
    for k in 0..40 {
        let x = &f[k % f.len()];
        bytes.extend_from_slice(&x[..x.len() / 2]);
    }
    for x in &f[..5] {
        bytes.extend_from_slice(x);
    }
    let file = Scratch::new("bad-run.mjpeg", &bytes);
    let (got, st) = drain_with_deadline(file.0.clone())
        .expect("the supervisor ends a file with a run of bad frames, it does not loop");
    let seqs: Vec<u64> = got.iter().map(|g| g.2).collect();
    assert_eq!(seqs, [40, 41, 42, 43, 44], "the good frames after the run");
    assert_eq!(
        (st.frames, st.bad_frames, st.disconnects, st.reconnects),
        (5, 40, 0, 0),
        "{st:?}"
    );
}

#[test]
fn issue_24_a_frame_declaring_a_size_beyond_the_limit_is_a_bad_frame_and_the_stream_goes_on() {
    // One frame says 9000x9000 (beyond the 8192 limit), one 65535x65535,
    // one 8000x8000 (accepted by the limit but not the stream's size): each
    // is counted and skipped; the frames after them are delivered.
    let f = fixture_frame_list();
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&f[0]);
    bytes.extend_from_slice(&with_declared_size(&f[1], 9000, 9000));
    bytes.extend_from_slice(&f[2]);
    bytes.extend_from_slice(&with_declared_size(&f[3], 65535, 65535));
    bytes.extend_from_slice(&with_declared_size(&f[4], 8000, 8000));
    bytes.extend_from_slice(&f[5]);
    let file = Scratch::new("huge-size.mjpeg", &bytes);
    let (got, st) = drain_with_deadline(file.0.clone()).expect("the camera ends");
    assert_eq!(
        got,
        [(320, 240, 0), (320, 240, 2), (320, 240, 5)],
        "only frames of the stream's size are delivered"
    );
    assert_eq!((st.frames, st.bad_frames, st.dropped), (3, 3, 0), "{st:?}");
}
