//! `mainstream cameras --test` (the `camera::probe` report) on replay sources
//! standing in for a camera: a clean stream, and one that is unplugged, comes
//! back, drops and damages frames.

use std::sync::Arc;
use std::time::Duration;

use crate::common::camera_fixture;
use mainstream::camera::{
    probe, probe::probe_with, render_probe, Faults, OpenStep, Pace, ProbeOptions, ScriptedOpener,
    SimClock, SourceSpec,
};
use mainstream::frame::PixelFormat;

fn mjpeg_spec() -> SourceSpec {
    SourceSpec {
        path: camera_fixture("vtest_mjpg_320x240.mjpeg"),
        width: 320,
        height: 240,
        fps: 10.0,
        format: PixelFormat::Mjpeg,
        pace: Pace::Fast,
    }
}

fn text(r: &mainstream::camera::ProbeReport, opts: &ProbeOptions) -> String {
    let mut out = Vec::new();
    render_probe(r, opts, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn a_clean_stream_reports_the_negotiated_mode_rate_and_preprocessing() {
    let opts = ProbeOptions {
        frames: 8,
        ..ProbeOptions::default()
    };
    let r = probe(&mjpeg_spec(), &opts);
    let t = text(&r, &opts);
    println!("{t}");
    assert!(r.passed(&opts), "{t}");
    assert_eq!(r.frames, 8);
    assert_eq!(
        (r.source.format, r.source.width, r.source.height),
        (PixelFormat::Mjpeg, 320, 240)
    );
    // Replay timestamps follow the nominal rate.
    let fps = r.measured_fps.expect("rate measured");
    assert!((fps - 10.0).abs() < 0.01, "{fps}");
    assert!(r.preprocess_ms_mean > 0.0 && r.preprocess_ms_max >= r.preprocess_ms_mean);
    assert_eq!(r.jpeg_fallback_frames, 0);
    assert!(t.contains("streamed:    8 of 8 frames"), "{t}");
    assert!(t.contains("result:      ok"), "{t}");
}

#[test]
fn unplug_drops_and_damage_show_in_the_report() {
    let spec = mjpeg_spec();
    let clock = SimClock::new();
    let opener = ScriptedOpener::new(
        spec.clone(),
        vec![
            OpenStep::Open(Faults {
                unplug_after: Some(4),
                skip: vec![1],
                corrupt: vec![2],
                ..Faults::default()
            }),
            OpenStep::Fail(mainstream::ErrorKind::DeviceGone),
        ],
        Arc::new(clock.clone()),
    );
    let opts = ProbeOptions {
        frames: 6,
        ..ProbeOptions::default()
    };
    let r = probe_with(Box::new(opener), &spec, &opts, Arc::new(clock));
    let t = text(&r, &opts);
    println!("{t}");
    assert!(r.passed(&opts), "{t}");
    assert_eq!(r.stats.disconnects, 1, "{t}");
    assert_eq!(r.stats.reconnects, 1, "{t}");
    assert_eq!(r.stats.failed_opens, 1, "{t}");
    assert_eq!(r.stats.bad_frames, 1, "{t}");
    assert_eq!(r.stats.dropped, 1, "{t}");
    assert!(
        t.contains("1 dropped, 1 bad, 1 disconnects, 1 reconnects"),
        "{t}"
    );
}

#[test]
fn a_camera_that_never_appears_fails_with_the_reason() {
    let spec = SourceSpec {
        path: "/dev/v4l/by-id/no-such-camera".into(),
        ..mjpeg_spec()
    };
    let opts = ProbeOptions {
        frames: 3,
        give_up_after: Duration::from_millis(300),
        ..ProbeOptions::default()
    };
    let r = probe(&spec, &opts);
    let t = text(&r, &opts);
    println!("{t}");
    assert!(!r.passed(&opts));
    assert_eq!(r.frames, 0);
    assert!(t.contains("result:      FAILED: "), "{t}");
    assert!(t.contains("no-such-camera"), "{t}");
}
