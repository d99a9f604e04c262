//! The service's reload, re-profile, shutdown and failure rules, tested on a
//! whole [`Service`] without the binary: the demo config with its state in a
//! temporary directory, the bundled models and clip, an instant profile, and
//! scripted camera failures through [`Deps`].

use super::*;
use crate::camera::{OpenStep, ScriptedOpener, SourceOpener, SystemClock};
use crate::config::CameraConfig;
use crate::profile::{FrameCost, Profile};
use std::sync::atomic::AtomicUsize;

/// Serves the configured clip after `steps`; measures a profile instantly
/// (`ms` per segment the first time, twice that afterwards).
struct TestOpener {
    steps: Vec<OpenStep>,
    ms: f64,
    profiles: AtomicUsize,
}

impl Opener for TestOpener {
    fn camera(
        &self,
        _index: usize,
        camera: &CameraConfig,
        clock: Arc<dyn Clock>,
    ) -> Box<dyn SourceOpener> {
        Box::new(ScriptedOpener::new(
            camera.source_spec(),
            self.steps.clone(),
            clock,
        ))
    }

    fn measure_profile(&self, base: &Base) -> Result<Profile> {
        let n = self.profiles.fetch_add(1, Ordering::SeqCst);
        let ms = if n == 0 { self.ms } else { 2.0 * self.ms };
        Ok(Profile {
            base_sha256: base.manifest.sha256.clone(),
            cpu: crate::profile::cpu_model(),
            segment_ms: vec![ms; base.manifest.segments()],
            runs: 1,
            frames: Vec::new(),
        })
    }

    fn measure_frames(&self, _base: &Base, camera: &CameraConfig) -> Result<FrameCost> {
        Ok(FrameCost {
            mode: crate::profile::frames::mode_of(camera)?,
            preprocess_ms: 0.5,
            capture_ms: 0.05,
        })
    }
}

/// A test's directory, removed when the test ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh directory with the demo setup (absolute paths, state inside it).
fn demo_setup(name: &str) -> (TempDir, RunOptions) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("ms-daemon-unit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[device]\nbudget_cores = 1.0\nstate_dir = {:?}\nbase = {:?}\napps_dir = {:?}\n\n\
             [[camera]]\nname = \"campus\"\nsource = {:?}\nfps = 10\npace = \"realtime\"\n",
            dir.join("state"),
            root.join("models/mobilenet_v2/manifest.toml"),
            root.join("demo/apps.d"),
            root.join("models/demo/demo.mjpeg"),
        ),
    )
    .unwrap();
    let opts = RunOptions {
        config,
        strategy: Strategy::Auto,
        budget: None,
        status_line: false,
        watch: false,
        duration: None,
    };
    (TempDir(dir), opts)
}

fn deps(opener: &Arc<TestOpener>) -> Deps {
    Deps {
        clock: SystemClock::shared(),
        opener: Arc::clone(opener) as Arc<dyn Opener>,
        notifier: systemd::Notifier::silent(),
        signals: false,
    }
}

fn opener(steps: Vec<OpenStep>) -> Arc<TestOpener> {
    Arc::new(TestOpener {
        steps,
        ms: 1.0,
        profiles: AtomicUsize::new(0),
    })
}

/// Handles reports until `done` holds or `limit` passes.
fn wait_until(svc: &mut Service<'_>, limit: Duration, mut done: impl FnMut(&Service<'_>) -> bool) {
    let t0 = Instant::now();
    while !done(svc) {
        assert!(t0.elapsed() < limit, "not reached within {limit:?}");
        svc.drain_reports(Duration::from_millis(10));
    }
}

fn live_generation(svc: &Service<'_>) -> u64 {
    svc.cameras[0].live.lock().unwrap().generation
}

fn plan_names(svc: &Service<'_>) -> Vec<String> {
    svc.planned
        .plan
        .apps
        .iter()
        .map(|a| a.name.clone())
        .collect()
}

#[test]
fn a_reload_that_changes_apps_swaps_the_new_plan_into_the_running_camera_thread() {
    let (_dir, opts) = demo_setup("reload");
    let op = opener(Vec::new());
    let mut out = Vec::new();
    let mut svc = Service::start(&opts, deps(&op), &mut out).unwrap();
    let before = plan_names(&svc);
    assert!(before.len() >= 2, "{before:?}");
    let thread = svc.cameras[0].thread.as_ref().unwrap().thread().id();
    let mut cfg = svc.cfg.clone();
    let gone = before[0].clone();
    cfg.apps
        .iter_mut()
        .find(|a| a.name == gone)
        .unwrap()
        .enabled = false;

    svc.reload(Some(cfg));

    assert_eq!(svc.generation, 2);
    let after = plan_names(&svc);
    assert!(
        !after.contains(&gone) && after.len() == before.len() - 1,
        "{after:?}"
    );
    wait_until(&mut svc, Duration::from_secs(10), |s| {
        live_generation(s) == 2
    });
    let c = &svc.cameras[0];
    assert_eq!(c.live.lock().unwrap().apps.len(), after.len());
    let t = c.thread.as_ref().unwrap();
    assert!(!c.ended && !t.is_finished(), "the camera thread stopped");
    assert_eq!(t.thread().id(), thread, "the camera thread was restarted");
    svc.shutdown();
}

#[test]
fn a_reload_with_a_bad_config_or_a_changed_camera_keeps_the_running_plan() {
    let (_dir, opts) = demo_setup("badreload");
    let good = std::fs::read_to_string(&opts.config).unwrap();
    let op = opener(Vec::new());
    let mut out = Vec::new();
    let mut svc = Service::start(&opts, deps(&op), &mut out).unwrap();
    let before = plan_names(&svc);

    std::fs::write(&opts.config, "[device]\nbudget_cores = \"lots\"\n").unwrap();
    svc.reload(None);
    assert_eq!((svc.generation, plan_names(&svc)), (1, before.clone()));

    std::fs::write(&opts.config, good.replace("fps = 10", "fps = 5")).unwrap();
    svc.reload(None);
    assert_eq!((svc.generation, plan_names(&svc)), (1, before));
    assert_eq!(svc.cfg.cameras[0].fps, 10.0);

    svc.drain_reports(Duration::from_millis(200));
    let c = &svc.cameras[0];
    assert!(!c.ended && !c.thread.as_ref().unwrap().is_finished());
    assert_eq!(live_generation(&svc), 1);
    svc.shutdown();
}

#[test]
fn a_cost_off_by_more_than_the_tolerance_twice_reprofiles_and_replans_and_less_does_not() {
    let (_dir, opts) = demo_setup("reprofile");
    let op = opener(Vec::new());
    let mut out = Vec::new();
    let mut svc = Service::start(&opts, deps(&op), &mut out).unwrap();
    assert_eq!(op.profiles.load(Ordering::SeqCst), 1, "no profile at boot");
    let predicted = svc.planned.plan.cost / 1000.0;
    assert!(predicted > 0.05, "{predicted}");

    for _ in 0..4 {
        svc.feedback(predicted * 1.15);
        assert!(svc.reprofiling.is_none());
    }
    svc.feedback(predicted * 1.5);
    assert!(svc.reprofiling.is_none(), "one window off is not enough");
    svc.feedback(predicted * 1.5);
    assert!(svc.reprofiling.is_some());
    assert_eq!(svc.cost_check.reprofiles(), 1);

    let t0 = Instant::now();
    while svc.reprofiling.is_some() {
        assert!(t0.elapsed() < Duration::from_secs(10));
        svc.poll_reprofile();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(op.profiles.load(Ordering::SeqCst), 2);
    assert!(
        svc.profile.segment_ms.iter().all(|&ms| ms == 2.0),
        "{:?}",
        svc.profile.segment_ms
    );
    assert_eq!(svc.generation, 2, "re-planned with the new profile");
    let stored = crate::profile::load(&svc.cfg.device.state_dir, &svc.base.manifest.sha256)
        .unwrap()
        .unwrap();
    assert_eq!(stored.segment_ms, svc.profile.segment_ms);
    svc.shutdown();
}

#[test]
fn the_prediction_counts_each_cameras_decoding_and_capture_and_a_light_camera_keeps_one_thread() {
    let (_dir, opts) = demo_setup("prediction");
    let op = opener(Vec::new());
    let mut out = Vec::new();
    let mut svc = Service::start(&opts, deps(&op), &mut out).unwrap();
    // The test profile: 0.5 ms to preprocess a frame, 0.05 ms to capture one.
    assert_eq!(svc.camera_costs[0].preprocess_ms, 0.5);
    let plan = &svc.planned.plan;
    let fastest = plan.apps.iter().map(|a| a.fps).fold(0.0, f64::max);
    let networks: f64 = plan.trees.iter().map(|t| t.stem_cost).sum::<f64>()
        + plan.apps.iter().map(|a| a.branch_cost).sum::<f64>();
    assert!((plan.cost - (networks + 0.5 * fastest)).abs() < 1e-9);
    // The camera reads all 10 frames a second.
    let want = (plan.cost + 0.05 * 10.0) / 1000.0;
    assert!((svc.predicted_cores() - want).abs() < 1e-12);
    assert!((svc.status.predicted_cores - want).abs() < 1e-12 || svc.status_ticks == 0);
    // Far below half a core: the heads run on the camera's own thread.
    assert!(svc.predicted_cores() < 0.5);
    assert_eq!(svc.cameras[0].key.1, 1);
    // The profile saved at boot holds the camera's frame costs.
    let stored = crate::profile::load(&svc.cfg.device.state_dir, &svc.base.manifest.sha256)
        .unwrap()
        .unwrap();
    assert_eq!(stored.frames.len(), 1);
    svc.shutdown();
}

#[test]
fn shutdown_closes_open_events_into_the_log_saves_the_state_and_stops_every_camera_thread() {
    let (_dir, opts) = demo_setup("shutdown");
    let op = opener(Vec::new());
    let mut out = Vec::new();
    let mut svc = Service::start(&opts, deps(&op), &mut out).unwrap();
    let open_app = |s: &Service<'_>| {
        let live = s.cameras[0].live.lock().unwrap();
        let i = live.apps.iter().position(|a| a.in_event)?;
        s.planned
            .plan
            .apps
            .iter()
            .filter(|p| s.apps.get(&p.name).is_some_and(|a| a.camera == 0))
            .nth(i)
            .map(|p| p.name.clone())
    };
    wait_until(&mut svc, Duration::from_secs(40), |s| open_app(s).is_some());
    let app = open_app(&svc).unwrap();
    let logged = svc.log.records();
    let dir = svc.cfg.device.state_dir.clone();

    let t0 = Instant::now();
    svc.shutdown();
    let took = t0.elapsed();

    assert!(took < Duration::from_secs(1), "{took:?}");
    for c in &svc.cameras {
        assert!(c.live.lock().unwrap().ended, "camera {} still runs", c.name);
    }
    assert!(svc.log.records() > logged);
    let (events, _) = eventlog::tail(&dir.join(eventlog::FILE), 1000).unwrap();
    assert!(
        events.iter().any(|e| e.app == app),
        "{app} not in {events:?}"
    );
    let st = state::load_state(&dir).unwrap();
    assert!(st.clean_shutdown);
    assert_eq!(st.event_log_records, svc.log.records());
}

#[test]
fn when_every_camera_fails_the_service_exits_with_status_1_naming_them() {
    let (_dir, opts) = demo_setup("allfail");
    let op = opener(vec![OpenStep::Fail(ErrorKind::Unsupported)]);
    let mut out = Vec::new();
    let svc = Service::start(&opts, deps(&op), &mut out).unwrap();
    let e = svc.serve().unwrap_err();
    assert_eq!(e.exit_code(), crate::error::EXIT_FAILURE);
    assert!(e.to_string().contains("campus"), "{e}");
}

#[test]
fn when_every_camera_source_is_misconfigured_the_service_exits_with_status_78() {
    let (_dir, opts) = demo_setup("allconfig");
    let op = opener(vec![OpenStep::Fail(ErrorKind::InvalidConfig)]);
    let mut out = Vec::new();
    let svc = Service::start(&opts, deps(&op), &mut out).unwrap();
    let e = svc.serve().unwrap_err();
    assert_eq!(e.exit_code(), crate::error::EXIT_CONFIG);
    assert!(e.to_string().contains("campus"), "{e}");
}
