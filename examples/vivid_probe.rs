//! Exercises `mainstream::camera` against a real V4L2 driver: the kernel's
//! virtual camera `vivid`, inside the qemu VM that `tests/vivid/run.sh` boots.
//! Not useful elsewhere: it expects two vivid instances with capture nodes
//! `/dev/video0` and `/dev/video1`, a link `/dev/v4l/by-id/vivid-cam0 ->
//! /dev/video0`, and `insmod`/`rmmod` on `PATH`.
//!
//! Prints one `CHECK name: ok|FAIL ...` line per check and finally
//! `VIVID-RESULT: N passed, M failed`.
//!
//! Usage: `vivid_probe VIVID_KO_PATH`

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mainstream::camera::v4l2::{set_control_by_name, V4l2Source};
use mainstream::camera::{
    list_devices, probe, render_devices, render_probe, Backoff, Camera, CameraOptions, Clock,
    FrameSource, Pace, ProbeOptions, SourceSpec, SpecOpener, SystemClock,
};
use mainstream::frame::PixelFormat;

struct Report {
    passed: u32,
    failed: u32,
}

impl Report {
    fn check(&mut self, name: &str, ok: bool, detail: impl std::fmt::Display) {
        if ok {
            self.passed += 1;
            println!("CHECK {name}: ok ({detail})");
        } else {
            self.failed += 1;
            println!("CHECK {name}: FAIL ({detail})");
        }
    }
}

fn spec(path: &str, format: PixelFormat, w: u32, h: u32, fps: f64) -> SourceSpec {
    SourceSpec {
        path: PathBuf::from(path),
        width: w,
        height: h,
        fps,
        format,
        pace: Pace::Nominal,
    }
}

/// Grabs `n` frames; returns (sequences, timestamps, every frame's byte count
/// matches its metadata and the negotiated size, distinct byte values seen).
fn capture(
    src: &mut dyn FrameSource,
    n: usize,
) -> Result<(Vec<u64>, Vec<u64>, bool, usize), String> {
    let (mut seqs, mut ts, mut sizes_ok) = (Vec::new(), Vec::new(), true);
    let mut seen = [false; 256];
    for _ in 0..n {
        let meta = match src.grab() {
            Ok(Some(m)) => m,
            Ok(None) => return Err("stream ended".into()),
            Err(e) => return Err(format!("{e:?}")),
        };
        let info = src.describe();
        let data = src.frame();
        sizes_ok &= Some(data.len()) == meta.format.frame_bytes(meta.width, meta.height)
            && (meta.width, meta.height, meta.format) == (info.width, info.height, info.format);
        for &b in data.iter().step_by(97) {
            seen[b as usize] = true;
        }
        seqs.push(meta.sequence);
        ts.push(meta.timestamp_us);
    }
    Ok((seqs, ts, sizes_ok, seen.iter().filter(|&&s| s).count()))
}

fn strictly_increasing(v: &[u64]) -> bool {
    v.windows(2).all(|w| w[1] > w[0])
}

fn basic_checks(r: &mut Report) {
    // 1. Listing.
    match list_devices() {
        Ok(devs) => {
            let mut text = Vec::new();
            let _ = render_devices(&devs, false, &mut text);
            print!("{}", String::from_utf8_lossy(&text));
            let vivid = devs.iter().find(|d| d.card.contains("vivid") && d.capture);
            let yuyv = vivid.is_some_and(|d| {
                d.formats
                    .iter()
                    .any(|f| f.fourcc == "YUYV" && !f.sizes.is_empty())
            });
            let link = vivid.is_some_and(|d| d.links.iter().any(|l| l.ends_with("vivid-cam0")));
            r.check(
                "list_devices",
                devs.len() >= 2 && yuyv && link,
                format_args!(
                    "{} nodes, vivid YUYV with sizes: {yuyv}, by-id link shown: {link}",
                    devs.len()
                ),
            );
        }
        Err(e) => r.check("list_devices", false, format_args!("{e:?}")),
    }

    // 2. YUYV 640x480 at 15 fps through mmap streaming.
    match V4l2Source::open(&spec("/dev/video0", PixelFormat::Yuyv, 640, 480, 15.0)) {
        Ok(mut src) => {
            let info = src.describe().clone();
            println!("opened: {info}");
            r.check(
                "negotiate_yuyv_640x480",
                info.format == PixelFormat::Yuyv && (info.width, info.height) == (640, 480),
                &info,
            );
            r.check(
                "frame_interval_set_on_device",
                (info.fps - 15.0).abs() < 0.01,
                format_args!("device reads back {:.3} fps", info.fps),
            );
            match capture(&mut src, 20) {
                Ok((seqs, ts, sizes_ok, distinct)) => {
                    let gaps: u64 = seqs.windows(2).map(|w| w[1] - w[0] - 1).sum();
                    let span = (ts[ts.len() - 1] - ts[0]) as f64 / 1e6;
                    let mean_interval = span / (ts.len() - 1) as f64;
                    r.check(
                        "mmap_frames_have_the_negotiated_size",
                        sizes_ok,
                        "20 frames of 614400 bytes",
                    );
                    r.check(
                        "frames_carry_a_picture",
                        distinct > 16,
                        format_args!("{distinct} distinct byte values"),
                    );
                    r.check(
                        "sequence_numbers_increase",
                        strictly_increasing(&seqs),
                        format_args!("{:?}..{:?}, gaps {gaps}", seqs.first(), seqs.last()),
                    );
                    r.check(
                        "driver_timestamps_increase",
                        strictly_increasing(&ts),
                        format_args!("span {span:.3} s"),
                    );
                    // At the device default (30 fps) the mean interval would be ~33 ms.
                    r.check(
                        "camera_delivers_the_set_rate",
                        mean_interval > 0.9 / 15.0,
                        format_args!(
                            "mean interval {:.1} ms (15 fps = 66.7 ms)",
                            mean_interval * 1e3
                        ),
                    );
                }
                Err(e) => r.check("mmap_capture", false, e),
            }
        }
        Err(e) => r.check("negotiate_yuyv_640x480", false, format_args!("{e:?}")),
    }

    // 2b. The operator's `mainstream cameras --test`: the same camera through the
    // supervisor and preprocessing into the 224x224 network input.
    let opts = ProbeOptions {
        frames: 15,
        ..ProbeOptions::default()
    };
    let rep = probe(
        &spec("/dev/video0", PixelFormat::Yuyv, 640, 480, 15.0),
        &opts,
    );
    let mut text = Vec::new();
    let _ = render_probe(&rep, &opts, &mut text);
    print!("{}", String::from_utf8_lossy(&text));
    r.check(
        "probe_streams_through_preprocessing_at_the_set_rate",
        rep.passed(&opts)
            && rep.source.format == PixelFormat::Yuyv
            && rep.measured_fps.is_some_and(|f| (f - 15.0).abs() < 0.5)
            && rep.stats.dropped == 0,
        format_args!(
            "{} frames, {:?} fps, preprocess mean {:.2} ms, {:?}",
            rep.frames, rep.measured_fps, rep.preprocess_ms_mean, rep.error
        ),
    );

    // 3. Fallbacks: vivid has no MJPG; odd sizes.
    match V4l2Source::open(&spec("/dev/video0", PixelFormat::Mjpeg, 640, 480, 30.0)) {
        Ok(mut src) => {
            let info = src.describe().clone();
            let ok = info.format != PixelFormat::Mjpeg
                && info.notes.iter().any(|n| n.contains("asked MJPG"));
            let got = capture(&mut src, 2);
            r.check(
                "mjpeg_falls_back_and_says_so",
                ok && got.as_ref().is_ok_and(|g| g.2),
                &info,
            );
        }
        Err(e) => r.check("mjpeg_falls_back_and_says_so", false, format_args!("{e:?}")),
    }
    match V4l2Source::open(&spec("/dev/video0", PixelFormat::Yuyv, 700, 500, 30.0)) {
        Ok(mut src) => {
            let info = src.describe().clone();
            let got = capture(&mut src, 2);
            r.check(
                "odd_size_is_negotiated_and_reported",
                got.as_ref().is_ok_and(|g| g.2) && info.width > 0,
                &info,
            );
        }
        Err(e) => r.check(
            "odd_size_is_negotiated_and_reported",
            false,
            format_args!("{e:?}"),
        ),
    }
    for fmt in [PixelFormat::Grey, PixelFormat::Rgb24] {
        let name = format!("capture_{fmt}");
        match V4l2Source::open(&spec("/dev/video0", fmt, 320, 240, 30.0)) {
            Ok(mut src) => {
                let info = src.describe().clone();
                let got = capture(&mut src, 3);
                r.check(
                    &name,
                    info.format == fmt && got.as_ref().is_ok_and(|g| g.2),
                    format_args!("{info}; {:?}", got.err()),
                );
            }
            Err(e) => r.check(&name, false, format_args!("{e:?}")),
        }
    }
}

/// A real clock that runs a hook at each backoff sleep (with the sleep's
/// index), while the supervisor has closed the vanished device and waits to
/// reopen it.
struct HookClock {
    inner: SystemClock,
    sleeps: AtomicUsize,
    hook: Mutex<Box<dyn FnMut(usize) + Send>>,
}

impl Clock for HookClock {
    fn now(&self) -> Duration {
        self.inner.now()
    }
    fn sleep(&self, d: Duration) {
        let n = self.sleeps.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut h) = self.hook.lock() {
            h(n);
        }
        self.inner.sleep(d);
    }
}

fn camera(path: &str, w: u32, h: u32, clock: Arc<dyn Clock>, initial: Duration) -> Camera {
    Camera::new(
        Box::new(SpecOpener::new(spec(path, PixelFormat::Yuyv, w, h, 30.0))),
        clock,
        CameraOptions {
            backoff: Backoff {
                initial,
                max: Duration::from_secs(1),
                factor: 2,
            },
            max_consecutive_bad: 30,
            give_up_after: Some(Duration::from_secs(60)),
        },
    )
}

fn unplug_checks(r: &mut Report, vivid_ko: &str) {
    // 3b. A buffer the driver flags as damaged (V4L2_BUF_FLAG_ERROR, injected
    // through vivid's control) is skipped and counted as bad, not as a drop.
    let mut cam = camera(
        "/dev/video0",
        320,
        180,
        SystemClock::shared(),
        Duration::from_millis(100),
    );
    let before = capture(&mut cam, 3);
    let pressed = set_control_by_name(Path::new("/dev/video0"), "Inject V4L2_BUF_FLAG_ERROR", 1);
    let after = capture(&mut cam, 5);
    let st = cam.stats();
    drop(cam);
    r.check(
        "driver_flagged_buffer_is_a_bad_frame_not_a_drop",
        before.is_ok()
            && matches!(pressed, Ok(true))
            && after.as_ref().is_ok_and(|a| a.2)
            && st.bad_frames == 1
            && st.dropped == 0
            && st.disconnects == 0,
        format_args!(
            "pressed {pressed:?}, stats {st:?}, after: {:?}",
            after.as_ref().err()
        ),
    );

    // 4. Disconnect one camera while another streams: the other keeps going,
    // the first is reopened (vivid re-registers its nodes once the last user
    // has closed them, like a camera plugged back into the same port).
    let stop = Arc::new(AtomicBool::new(false));
    let other_frames = Arc::new(AtomicU64::new(0));
    let other = {
        let (stop, n) = (stop.clone(), other_frames.clone());
        std::thread::spawn(move || {
            let mut cam = camera(
                "/dev/video1",
                320,
                180,
                SystemClock::shared(),
                Duration::from_millis(100),
            )
            .with_stop_flag(stop);
            while let Ok(Some(_)) = cam.grab() {
                n.fetch_add(1, Ordering::Relaxed);
            }
            cam.stats()
        })
    };
    let mut cam0 = camera(
        "/dev/v4l/by-id/vivid-cam0",
        320,
        180,
        SystemClock::shared(),
        Duration::from_millis(1500),
    );
    let before = capture(&mut cam0, 5);
    let node_before = cam0.describe().node.clone();
    let pressed = set_control_by_name(Path::new("/dev/video0"), "Disconnect", 1);
    let t0 = Instant::now();
    let other_at_unplug = other_frames.load(Ordering::Relaxed);
    let after = capture(&mut cam0, 5);
    let outage = t0.elapsed();
    let other_during = other_frames.load(Ordering::Relaxed) - other_at_unplug;
    let st = cam0.stats();
    drop(cam0); // closes the node, so that vivid can be unloaded below
    println!(
        "cam0 stats after disconnect: {st:?}; outage {:.2} s",
        outage.as_secs_f64()
    );
    r.check(
        "disconnect_control_is_seen_as_device_gone_and_recovered",
        before.is_ok()
            && matches!(pressed, Ok(true))
            && after.as_ref().is_ok_and(|a| a.2)
            && st.disconnects == 1
            && st.reconnects == 1,
        format_args!(
            "pressed {pressed:?}, node {} , stats {st:?}, after: {:?}",
            node_before.display(),
            after.as_ref().err()
        ),
    );
    r.check(
        "other_camera_keeps_running_during_the_outage",
        other_during >= 5,
        format_args!(
            "{other_during} frames from /dev/video1 during a {:.2} s outage of /dev/video0",
            outage.as_secs_f64()
        ),
    );
    stop.store(true, Ordering::Relaxed);
    match other.join() {
        Ok(s) => r.check(
            "other_camera_saw_no_fault",
            s.disconnects == 0 && s.timeouts == 0,
            format_args!("{s:?}"),
        ),
        Err(_) => r.check("other_camera_saw_no_fault", false, "thread panicked"),
    }

    // 5. Unplug, and the camera comes back as another node. At the
    // supervisor's first backoff sleep (all descriptors closed) the hook
    // re-points the stable link as udev would and unloads vivid; at the fourth
    // (the supervisor sleeps in slices of at most 200 ms, so that is during the
    // third backoff) it loads vivid again with capture nodes 5 and 6. In
    // between, reopening the link finds nothing (ENOENT).
    let ko = vivid_ko.to_string();
    let hook_log = Arc::new(Mutex::new(String::new()));
    let log2 = hook_log.clone();
    let mut said = String::new();
    let hook: Box<dyn FnMut(usize) + Send> = Box::new(move |n| {
        if n == 3 {
            let inserted = std::process::Command::new("insmod")
                .args([
                    ko.as_str(),
                    "n_devs=2",
                    "node_types=0x1,0x1",
                    "vid_cap_nr=5,6",
                ])
                .status()
                .is_ok_and(|s| s.success());
            said += &format!(", insmod at sleep {n}: {inserted}");
            if let Ok(mut l) = log2.lock() {
                l.clone_from(&said);
            }
        }
        if n != 0 {
            return;
        }
        let link = Path::new("/dev/v4l/by-id/vivid-cam0");
        let _ = std::fs::remove_file(link);
        let relink = std::os::unix::fs::symlink("/dev/video5", link);
        let mut removed = false;
        for _ in 0..50 {
            if std::process::Command::new("rmmod")
                .arg("vivid")
                .status()
                .is_ok_and(|s| s.success())
            {
                removed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        said = format!("relink {relink:?}, rmmod at sleep {n}: {removed}");
    });
    let clock = Arc::new(HookClock {
        inner: SystemClock::new(),
        sleeps: AtomicUsize::new(0),
        hook: Mutex::new(hook),
    });
    let mut cam = camera(
        "/dev/v4l/by-id/vivid-cam0",
        320,
        180,
        clock,
        Duration::from_millis(200),
    );
    let before = capture(&mut cam, 3);
    let node_before = cam.describe().node.clone();
    let pressed = set_control_by_name(Path::new("/dev/video0"), "Disconnect", 1);
    let after = capture(&mut cam, 5);
    let node_after = cam.describe().node.clone();
    let st = cam.stats();
    let hook_said = hook_log.lock().map(|l| l.clone()).unwrap_or_default();
    println!("reload: {hook_said}; stats {st:?}");
    r.check(
        "camera_found_again_through_its_stable_link_as_another_node",
        before.is_ok()
            && matches!(pressed, Ok(true))
            && after.as_ref().is_ok_and(|a| a.2)
            && node_before == Path::new("/dev/video0")
            && node_after == Path::new("/dev/video5")
            && st.reconnects == 1
            && st.failed_opens >= 2,
        format_args!(
            "{} -> {}, stats {st:?}, {hook_said}, after: {:?}",
            node_before.display(),
            node_after.display(),
            after.as_ref().err()
        ),
    );
    drop(cam);

    // 6. A node that is gone for good gives DeviceGone, and the supervisor
    // gives up after its limit instead of hanging.
    let sim = mainstream::camera::SimClock::new();
    let mut gone = Camera::new(
        Box::new(SpecOpener::new(spec(
            "/dev/video0",
            PixelFormat::Yuyv,
            320,
            240,
            30.0,
        ))),
        Arc::new(sim.clone()),
        CameraOptions {
            give_up_after: Some(Duration::from_secs(30)),
            ..CameraOptions::default()
        },
    );
    let e = gone.grab().err();
    r.check(
        "vanished_node_is_device_gone",
        e.as_ref()
            .is_some_and(|e| e.kind() == mainstream::ErrorKind::DeviceGone),
        format_args!("{:?} after {} attempts", e, gone.stats().failed_opens),
    );
}

fn main() {
    let vivid_ko = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/lib/modules/vivid.ko".into());
    let mut r = Report {
        passed: 0,
        failed: 0,
    };
    basic_checks(&mut r);
    unplug_checks(&mut r, &vivid_ko);
    println!("VIVID-RESULT: {} passed, {} failed", r.passed, r.failed);
}
