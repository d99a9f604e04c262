//! The appliance service: `mainstream run` and `mainstream demo`.
//!
//! # Life cycle
//!
//! 1. **Boot**: load and validate the configuration and the app drop-ins
//!    (with their M-Packages), the durable state (`state.bin`), the event log
//!    (repairing a torn tail), the base network, and the device cost profile
//!    (measured now if missing or made for another base or CPU). Plan from the
//!    precomputed planner table (`planner.bin`, recompiled only when the
//!    planning problem changed), build one stem tree per camera, start one
//!    thread per camera that has apps, wait for the cameras to open, then
//!    `READY=1`. The time to the first analysed frame is logged.
//! 2. **Frame loop** ([`worker`]): one thread per camera.
//! 3. **Main loop** (this module, every 100 ms): events from the cameras go to
//!    the event log and to stdout as JSON lines; every second the live status
//!    (`status.bin`) is rewritten and systemd hears `WATCHDOG=1` as long as no
//!    camera thread is stuck in analysis; SIGHUP, or a change of the config
//!    file or the drop-in directory, re-plans; every 10 s the measured CPU use
//!    is compared with the plan's predicted cost and, when they differ by 20%
//!    or more twice in a row, the cost profile is measured again (in the
//!    background) and the apps re-planned.
//! 4. **Stop** on SIGTERM/SIGINT, or when no camera thread runs any more:
//!    with success when every source ended (a replay), with an error naming
//!    the cameras (exit 1, restarted by systemd; 78 if every one of them has
//!    a misconfigured source) when any failed. Then:
//!    `STOPPING=1`, camera threads stop between frames, open events are
//!    closed and logged, the state is saved; all within a second.
//!
//! A re-plan never stops the cameras: the new trees are built on the main
//! thread while the cameras keep analysing with the old ones, then each
//! camera thread swaps its tree between two frames. A configuration that does
//! not validate is rejected with every `FILE:LINE:COL` problem in the log and
//! the running plan stays.

mod cost_check;
pub mod deps;
pub mod eventlog;
pub mod events;
pub mod output;
mod planning;
mod reload;
#[cfg(test)]
mod service_tests;
pub mod state;
mod status;
pub mod summary;
pub mod systemd;
pub mod worker;

use crate::camera::{Camera, CameraOptions, Clock, Pace};
use crate::config::{self, Config, Source};
use crate::error::{ErrorKind, Result, ResultExt};
use crate::model::net::Base;
use crate::planner::{Plan, Problem, Strategy};
use cost_check::Verdict;
use deps::{Deps, Opener};
use events::Event;
use planning::{assignment_for, plan_for, predicted_load, CameraKey, Planned};
use state::{State, Status};
pub use status::status_line;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use worker::{Assignment, CameraLive, CameraReport, CameraThread};

/// How the service runs.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOptions {
    /// The configuration file.
    pub config: PathBuf,
    /// The planner.
    pub strategy: Strategy,
    /// Budget in cores, overriding the configuration's.
    pub budget: Option<f64>,
    /// Demo: a live status line on stderr.
    pub status_line: bool,
    /// Re-plan when the config file or a drop-in changes (besides SIGHUP).
    pub watch: bool,
    /// Stop after this long (`None`: until a signal or the sources end).
    pub duration: Option<Duration>,
}

/// What a run leaves behind for the caller (the demo's summary).
#[derive(Clone, Debug)]
pub struct Summary {
    /// The plan in force at the end.
    pub plan: Option<Plan>,
    /// The planning problem it was made for.
    pub problem: Option<Problem>,
    /// Every event of this run, in the order they ended.
    pub events: Vec<Event>,
    /// The last status.
    pub status: Status,
    /// The configuration.
    pub config: Config,
    /// The process's CPU use from the first analysed frame to the end, in
    /// cores (`None`: no frame was analysed).
    pub run_cores: Option<f64>,
}

/// Loads the configuration and verifies its model files (as `check` does),
/// logging its problems for the journal.
fn load_config(path: &Path) -> Result<Config> {
    config::load_verified_reporting(path, config::DiagSink::Log)
}

struct CameraHandle {
    name: String,
    tx: Option<Sender<Assignment>>,
    live: Arc<Mutex<CameraLive>>,
    heartbeat: Arc<AtomicU64>,
    capturing: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    key: CameraKey,
    /// Generation of the last assignment sent to the camera thread.
    generation: u64,
    ended: bool,
    /// The kind of the error its thread failed with (`None`: running, or
    /// ended without one).
    failed: Option<ErrorKind>,
    /// Analysed frames and analysis ms at the last status tick.
    last: (u64, f64),
    ms_per_frame: f64,
}

impl CameraHandle {
    /// A camera with fresh counters and no thread yet.
    fn new(name: String, key: CameraKey, generation: u64) -> CameraHandle {
        CameraHandle {
            name,
            tx: None,
            live: Arc::new(Mutex::new(CameraLive::default())),
            heartbeat: Arc::new(AtomicU64::new(0)),
            capturing: Arc::new(AtomicBool::new(false)),
            thread: None,
            key,
            generation,
            ended: false,
            failed: None,
            last: (0, 0.0),
            ms_per_frame: 0.0,
        }
    }
}

/// Per app, what the status shows besides live counters.
#[derive(Clone, Debug)]
struct AppInfo {
    camera: usize,
    branch: u16,
    planned_fps: f64,
    f1: f64,
    /// Samples at the last status tick, for the achieved fps.
    last_samples: u64,
    fps: f64,
}

/// The running service: built by [`Service::start`] from its options and
/// [`Deps`], run by [`Service::serve`].
pub(crate) struct Service<'a> {
    opts: &'a RunOptions,
    cfg: Config,
    base: Arc<Base>,
    /// The cost profile the plan is made with.
    profile: crate::profile::Profile,
    /// Each camera's costs outside the networks, from the profile.
    camera_costs: Vec<crate::profile::CameraCost>,
    planned: Planned,
    generation: u64,
    cameras: Vec<CameraHandle>,
    reports_tx: Sender<CameraReport>,
    reports: Receiver<CameraReport>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
    started_unix_ms: u64,
    first_frame_ms: u64,
    /// When the first frame was analysed and the process's CPU time then.
    first_frame_cpu: Option<(Instant, f64)>,
    state: State,
    log: eventlog::EventLog,
    /// The MQTT publisher (`[output.mqtt]`).
    output: Option<output::Output>,
    /// The snapshot writer (`[output.snapshots]`).
    snapshots: Option<output::snapshot::Snapshots>,
    /// Snapshots of the open events, by (camera, app).
    open_snapshots: std::collections::HashMap<(usize, String), PathBuf>,
    events: Vec<Event>,
    notifier: systemd::Notifier,
    apps: std::collections::BTreeMap<String, AppInfo>,
    replans: u64,
    last_replan_ms: f64,
    cost_check: cost_check::CostCheck,
    reprofiling: Option<std::thread::JoinHandle<Result<crate::profile::Profile>>>,
    /// The service's clock (the camera threads' too).
    clock: Arc<dyn Clock>,
    /// Camera sources and profile measurement.
    opener: Arc<dyn Opener>,
    /// Whether the process-wide signal flags apply to this service.
    signals: bool,
    measured_cores: f64,
    status: Status,
    status_ticks: u64,
    out: &'a mut dyn Write,
}

/// Most events kept in memory for the caller's summary.
const MAX_SUMMARY_EVENTS: usize = 100_000;

/// Runs the service until stopped. Events go to `out` as JSON lines.
pub fn run(opts: &RunOptions, out: &mut dyn Write) -> Result<Summary> {
    Service::start(opts, Deps::real()?, out)?.serve()
}

impl<'a> Service<'a> {
    /// Boots the service (life cycle step 1): configuration, state, event
    /// log, base network, cost profile, plan, camera threads; `READY=1`.
    pub(crate) fn start(
        opts: &'a RunOptions,
        deps: Deps,
        out: &'a mut dyn Write,
    ) -> Result<Service<'a>> {
        let epoch = Instant::now();
        let started_unix_ms = events::unix_ms_now();
        let Deps {
            clock,
            opener,
            notifier,
            signals,
        } = deps;
        log::info!(
            "mainstream {} starting with {}",
            env!("CARGO_PKG_VERSION"),
            opts.config.display()
        );
        let cfg = load_config(&opts.config)?;
        let dir = cfg.device.state_dir.clone();
        std::fs::create_dir_all(&dir).context(ErrorKind::Io, || {
            format!("creating the state directory {}", dir.display())
        })?;
        let mut st = state::load_state(&dir)?;
        if st.boots > 0 && !st.clean_shutdown {
            log::warn!("the last run did not shut down cleanly (power cut or crash); its state and events up to then are kept");
        }
        st.boots += 1;
        st.clean_shutdown = false;
        let (log, rec) = eventlog::EventLog::open(&dir.join(eventlog::FILE))?;
        if rec.truncated_bytes > 0 || rec.skipped_bytes > 0 {
            log::warn!(
            "event log: {} records kept; cut {} bytes of a torn last record, skipped {} damaged bytes",
            rec.records,
            rec.truncated_bytes,
            rec.skipped_bytes
        );
        }
        let snapshot_dir = cfg.output.snapshots.as_ref().map(|s| s.dir_in(&dir));
        let output = match &cfg.output.mqtt {
            Some(m) => Some(output::Output::start(
                m,
                &dir,
                log_end(&log),
                snapshot_dir.clone(),
            )?),
            None => {
                let _ = std::fs::remove_file(dir.join(output::STATUS_FILE));
                None
            }
        };
        let snapshots = match &cfg.output.snapshots {
            Some(s) => {
                let notices = output.as_ref().filter(|_| s.publish).map(|o| o.sender());
                Some(output::snapshot::Snapshots::start(s, &dir, notices)?)
            }
            None => {
                let _ = std::fs::remove_file(dir.join(output::snapshot::STATUS_FILE));
                None
            }
        };
        let manifest = crate::model::manifest::BaseManifest::load(&cfg.device.base)?;
        let base = Arc::new(Base::load(manifest)?);
        let (mut profile, fresh) = match crate::profile::load(&dir, &base.manifest.sha256)? {
            Some(p) => (p, false),
            None => {
                log::info!(
                    "no cost profile for this base network and CPU in {}: measuring it now",
                    dir.display()
                );
                (opener.measure_profile(&base)?, true)
            }
        };
        let added = profile.add_missing_frames(&cfg.cameras, |c| opener.measure_frames(&base, c));
        if fresh || added > 0 {
            if let Err(e) = crate::profile::save(&dir, &profile) {
                log::warn!("could not save the cost profile: {}", e.chain());
            }
        }
        let camera_costs = profile.camera_costs(&cfg);
        let budget = opts.budget.unwrap_or(cfg.device.budget_cores);
        let t_plan = Instant::now();
        let planned = plan_for(&cfg, &profile, &camera_costs, budget, opts.strategy)?;
        log::info!(
            "planned {} apps in {:.1} ms",
            planned.plan.apps.len(),
            t_plan.elapsed().as_secs_f64() * 1000.0
        );
        let (reports_tx, reports) = mpsc::channel();
        let mut svc = Service {
            opts,
            cfg,
            base,
            profile,
            camera_costs,
            planned,
            generation: 1,
            cameras: Vec::new(),
            reports_tx,
            reports,
            stop: Arc::new(AtomicBool::new(false)),
            epoch,
            started_unix_ms,
            first_frame_ms: 0,
            first_frame_cpu: None,
            state: st,
            log,
            output,
            snapshots,
            open_snapshots: Default::default(),
            events: Vec::new(),
            notifier,
            apps: Default::default(),
            replans: 0,
            last_replan_ms: 0.0,
            cost_check: Default::default(),
            reprofiling: None,
            clock,
            opener,
            signals,
            measured_cores: 0.0,
            status: Status::default(),
            status_ticks: 0,
            out,
        };
        svc.log_plan();
        svc.state.plan = Some(svc.planned.plan.clone());
        svc.save_state();
        svc.start_cameras()?;
        svc.wait_for_cameras(Duration::from_secs(3));
        svc.notifier.notify(&format!(
            "READY=1\nSTATUS=analysing {} apps on {} cameras",
            svc.planned.plan.apps.len(),
            svc.cameras.iter().filter(|c| c.thread.is_some()).count()
        ));
        log::info!(
            "ready {:.0} ms after start",
            epoch.elapsed().as_secs_f64() * 1000.0
        );
        Ok(svc)
    }

    /// Runs the main loop until a stop, then shuts down (life cycle steps 3
    /// and 4).
    pub(crate) fn serve(mut self) -> Result<Summary> {
        let outcome = self.main_loop();
        let run_cores = self.first_frame_cpu.and_then(|(t0, c0)| {
            let dt = t0.elapsed().as_secs_f64();
            (dt > 0.0).then(|| (state::process_cpu_seconds() - c0) / dt)
        });
        self.shutdown();
        outcome?;
        Ok(Summary {
            plan: Some(self.planned.plan.clone()),
            problem: Some(self.planned.problem.clone()),
            events: std::mem::take(&mut self.events),
            status: self.status.clone(),
            config: self.cfg.clone(),
            run_cores,
        })
    }

    /// What the service expects to use, in cores: the plan's cost and the
    /// capture of the cameras it runs ([`predicted_load`]).
    fn predicted_cores(&self) -> f64 {
        predicted_load(&self.planned.plan, &self.camera_costs) / 1000.0
    }
}

/// The event log's durable end, for the publisher.
fn log_end(log: &eventlog::EventLog) -> output::tail::End {
    output::tail::End {
        inode: log.inode(),
        bytes: log.bytes(),
        records: log.records(),
    }
}

impl Service<'_> {
    fn log_plan(&mut self) {
        let p = &self.planned.plan;
        log::info!(
            "plan ({}): {} apps, predicted mean F1 {:.3}, cost {:.2} of {:.2} cores{}",
            p.strategy.name(),
            p.apps.len(),
            p.mean_f1,
            p.cost / 1000.0,
            p.budget / 1000.0,
            if p.feasible {
                ""
            } else {
                " (over budget: the cheapest schedule found)"
            }
        );
        if let Some(fb) = &p.fallback {
            log::info!("  runs {fb}");
        }
        for a in &p.apps {
            let band = crate::planner::report::calibration_band(&self.planned.problem, a)
                .map_or(String::new(), |(lo, hi)| {
                    format!(", {lo:.2}-{hi:.2} within the calibration's doubt")
                });
            log::info!(
                "  app {:<16} branch point {:>2}, {:>4.1} fps, predicted F1 {:.3} (recall {:.3}, precision {:.3}{band})",
                a.name,
                a.branch,
                a.fps,
                a.f1,
                a.recall,
                a.precision
            );
        }
        for r in &self.planned.rejected {
            log::warn!("  not admitted: {r}");
        }
        self.apps = p
            .apps
            .iter()
            .filter_map(|a| {
                let cam = self.cfg.apps.iter().find(|c| c.name == a.name)?.camera;
                Some((
                    a.name.clone(),
                    AppInfo {
                        camera: cam,
                        branch: a.branch as u16,
                        planned_fps: a.fps,
                        f1: a.f1,
                        last_samples: self
                            .apps
                            .get(&a.name)
                            .filter(|o| o.camera == cam)
                            .map_or(0, |o| o.last_samples),
                        fps: 0.0,
                    },
                ))
            })
            .collect();
        if let Some(o) = &self.output {
            let sensors = self
                .apps
                .iter()
                .map(|(app, i)| (self.cfg.cameras[i.camera].name.clone(), app.clone()))
                .collect();
            o.notify(output::Notice::Sensors(sensors));
        }
    }

    fn save_state(&mut self) {
        self.state.event_log_records = self.log.records();
        self.state.event_log_bytes = self.log.bytes();
        if let Err(e) = state::save_state(&self.cfg.device.state_dir, &self.state) {
            log::warn!("could not save the state: {}", e.chain());
        }
    }

    fn start_cameras(&mut self) -> Result<()> {
        for (i, c) in self.cfg.cameras.iter().enumerate() {
            let (a, key) = assignment_for(
                &self.cfg,
                &self.base,
                &self.planned.plan,
                i,
                self.generation,
                Instant::now(),
            )?;
            let mut h = CameraHandle::new(c.name.clone(), key, self.generation);
            if a.tree.is_some() {
                self.spawn_camera(i, &mut h, a)?;
            } else {
                log::info!("camera {}: no apps; not opened", c.name);
            }
            self.cameras.push(h);
        }
        Ok(())
    }

    fn spawn_camera(&self, i: usize, h: &mut CameraHandle, first: Assignment) -> Result<()> {
        let c = &self.cfg.cameras[i];
        let (tx, rx) = mpsc::channel();
        let _ = tx.send(first);
        let camera = Camera::new(
            self.opener.camera(i, c, Arc::clone(&self.clock)),
            Arc::clone(&self.clock),
            CameraOptions::default(),
        )
        .with_stop_flag(Arc::clone(&self.stop));
        let input = &self.base.manifest.input;
        let t = CameraThread {
            index: i,
            name: c.name.clone(),
            camera,
            stream_fps: c.fps,
            pace: c.pace,
            looping: c.looping.then(|| c.source_spec()),
            input: input.preprocess_spec(),
            fit: input.fit(),
            control: rx,
            reports: self.reports_tx.clone(),
            live: Arc::clone(&h.live),
            heartbeat: Arc::clone(&h.heartbeat),
            capturing: Arc::clone(&h.capturing),
            epoch: self.epoch,
            stop: Arc::clone(&self.stop),
            snapshots: match &self.snapshots {
                // Buffers sized for the configured frame size (YUYV: 2 bytes
                // a pixel; an MJPEG frame is smaller); else they grow once.
                Some(s) => s.snapshotter(
                    &c.name,
                    2 * c.width.unwrap_or(0) as usize * c.height.unwrap_or(0) as usize,
                ),
                None => output::snapshot::Snapshotter::off(),
            },
        };
        let thread = std::thread::Builder::new()
            .name(format!("ms-cam-{i}"))
            .spawn(move || t.run())
            .map_err(|e| crate::err!(Io, source = e, "starting the thread of camera {}", c.name))?;
        h.tx = Some(tx);
        h.thread = Some(thread);
        h.ended = false;
        Ok(())
    }

    /// Waits until every started camera has delivered a frame, ended or
    /// failed, or `limit` passes (a camera still missing is being retried in
    /// the background; the service does not wait for it).
    fn wait_for_cameras(&mut self, limit: Duration) {
        let t0 = Instant::now();
        while t0.elapsed() < limit && !self.stop_requested() {
            self.drain_reports(Duration::from_millis(20));
            let waiting: Vec<&str> = self
                .cameras
                .iter()
                .filter(|c| c.thread.is_some() && !c.ended)
                .filter(|c| c.live.lock().map(|l| l.stats.frames == 0).unwrap_or(false))
                .map(|c| c.name.as_str())
                .collect();
            if waiting.is_empty() {
                return;
            }
            if t0.elapsed() + Duration::from_millis(25) >= limit {
                log::warn!(
                    "cameras not delivering yet: {}; starting anyway (they are retried in the background)",
                    waiting.join(", ")
                );
            }
        }
    }

    fn drain_reports(&mut self, wait: Duration) {
        let first = match self.reports.recv_timeout(wait) {
            Ok(r) => r,
            Err(_) => return,
        };
        self.handle(first);
        while let Ok(r) = self.reports.try_recv() {
            self.handle(r);
        }
    }

    fn handle(&mut self, r: CameraReport) {
        match r {
            CameraReport::Opened {
                camera,
                app,
                opened,
                snapshot,
            } => {
                let cam = self.cameras.get(camera).map_or("?", |c| c.name.as_str());
                let shot = match &self.snapshots {
                    Some(s) if snapshot => {
                        Some(output::snapshot::path_for(s.root(), cam, &app, &opened))
                    }
                    _ => None,
                };
                let line = events::opened_json(&app, cam, &opened, shot.as_deref());
                let cam = cam.to_owned();
                self.emit(&line);
                if let Some(p) = &shot {
                    self.open_snapshots.insert((camera, app.clone()), p.clone());
                }
                if let Some(o) = &self.output {
                    o.notify(output::Notice::Opened {
                        camera: cam,
                        app,
                        opened,
                        snapshot: shot,
                    });
                }
            }
            CameraReport::Closed { camera, app, event } => {
                let cam = self
                    .cameras
                    .get(camera)
                    .map_or_else(|| "?".to_owned(), |c| c.name.clone());
                let ev = Event::from_closed(event, &app, &cam);
                if let Err(e) = self.log.append(&ev) {
                    log::error!("event log: {}", e.chain());
                }
                if let Some(o) = &self.output {
                    o.appended(log_end(&self.log));
                    o.notify(output::Notice::Closed {
                        camera: cam.clone(),
                        app: app.clone(),
                    });
                }
                self.state.totals_mut(&app).events += 1;
                let shot = self.open_snapshots.remove(&(camera, app));
                self.emit(&events::event_json(&ev, shot.as_deref()));
                if self.events.len() < MAX_SUMMARY_EVENTS {
                    self.events.push(ev);
                }
            }
            CameraReport::FirstFrame { camera } => {
                if self.first_frame_ms == 0 {
                    self.first_frame_ms = (self.epoch.elapsed().as_millis() as u64).max(1);
                    self.first_frame_cpu = Some((Instant::now(), state::process_cpu_seconds()));
                    log::info!(
                        "first frame analysed {} ms after start (camera {})",
                        self.first_frame_ms,
                        self.cameras.get(camera).map_or("?", |c| c.name.as_str())
                    );
                }
            }
            CameraReport::Swapped {
                camera,
                generation,
                at_frame,
                latency_ms,
            } => {
                if generation > 1 {
                    log::info!(
                        "camera {}: new stem tree (plan {generation}) in use from frame {}, {latency_ms:.1} ms after the re-plan started",
                        self.cameras.get(camera).map_or("?", |c| c.name.as_str()),
                        at_frame.map_or("-".into(), |f| f.to_string())
                    );
                }
            }
            CameraReport::Ended { camera } => {
                if let Some(c) = self.cameras.get_mut(camera) {
                    if !c.ended && !self.stop.load(Ordering::Relaxed) {
                        log::info!("camera {}: source ended", c.name);
                    }
                    c.ended = true;
                }
            }
            CameraReport::Failed { camera, error } => {
                if let Some(c) = self.cameras.get_mut(camera) {
                    log::error!("camera {}: stopped: {}", c.name, error.chain());
                    c.ended = true;
                    c.failed = Some(error.kind());
                }
            }
        }
    }

    fn emit(&mut self, line: &str) {
        if self.opts.status_line && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            eprint!("\r\x1b[K");
        }
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }

    fn main_loop(&mut self) -> Result<()> {
        let mut last_status = Instant::now();
        let mut last_watch = Instant::now();
        let mut last_state = Instant::now();
        // The cost model's windows start with the first analysed frame: before
        // it the process loads, builds trees and opens cameras, which no plan
        // predicts.
        let mut last_feedback: Option<(Instant, f64)> = None;
        let mut last_watchdog = Instant::now();
        let mut stuck_reported = false;
        let mut watch_sig = self.watch_signature();
        let mut pending_watch: Option<Vec<(PathBuf, u64, u64)>> = None;
        let deadline = self.opts.duration.map(|d| self.epoch + d);
        loop {
            self.drain_reports(Duration::from_millis(100));
            if self.stop_requested() {
                log::info!("stop requested");
                return Ok(());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                log::info!("run time reached");
                return Ok(());
            }
            if let Some(outcome) = self.all_cameras_done() {
                return outcome;
            }
            if let Some(c) = self
                .cameras
                .iter()
                .find(|c| !c.ended && c.thread.as_ref().is_some_and(|t| t.is_finished()))
            {
                crate::bail!(
                    Internal,
                    "the thread of camera {} died (see the panic above); exiting so that the service is restarted",
                    c.name
                );
            }
            if self.signals && systemd::take_reload() {
                log::info!("SIGHUP: reloading the configuration");
                self.reload(None);
                watch_sig = self.watch_signature();
            }
            if self.opts.watch && last_watch.elapsed() >= Duration::from_secs(2) {
                last_watch = Instant::now();
                let sig = self.watch_signature();
                if sig != watch_sig {
                    // Apply once the files have stopped changing for one period.
                    if pending_watch.as_ref() == Some(&sig) {
                        log::info!("configuration files changed: reloading");
                        self.reload(None);
                        watch_sig = self.watch_signature();
                        pending_watch = None;
                    } else {
                        pending_watch = Some(sig);
                    }
                }
            }
            self.poll_reprofile();
            if last_status.elapsed() >= Duration::from_secs(1) {
                let dt = last_status.elapsed().as_secs_f64();
                last_status = Instant::now();
                self.update_status(dt);
            }
            if last_feedback.is_none() {
                last_feedback = self.first_frame_cpu;
            }
            if let Some((t0, cpu0)) = last_feedback {
                if t0.elapsed() >= Duration::from_secs(10) {
                    let cpu = state::process_cpu_seconds();
                    let dt = t0.elapsed().as_secs_f64();
                    self.feedback((cpu - cpu0) / dt);
                    last_feedback = Some((Instant::now(), cpu));
                }
            }
            if last_state.elapsed() >= Duration::from_secs(60) {
                last_state = Instant::now();
                self.save_state();
            }
            if let Some(period) = self.notifier.watchdog() {
                if last_watchdog.elapsed() >= period / 2 {
                    if let Some(stuck) = self.stuck_camera(period) {
                        if !stuck_reported {
                            stuck_reported = true;
                            log::error!(
                                "camera {stuck}: its thread has not come round its loop for over {:.0} s; not pinging the watchdog (systemd will restart the service)",
                                period.as_secs_f64()
                            );
                        }
                    } else {
                        stuck_reported = false;
                        self.notifier.notify("WATCHDOG=1");
                        last_watchdog = Instant::now();
                    }
                }
            }
        }
    }

    /// Whether this service was asked to stop (SIGTERM/SIGINT).
    fn stop_requested(&self) -> bool {
        self.signals && systemd::stop_requested()
    }

    /// When no camera thread runs any more: `Ok` if their sources ended,
    /// an error naming the cameras if any of them failed (so that the
    /// process exits non-zero and systemd's `Restart=on-failure` restarts
    /// it). `None` while a camera runs, or when none was started.
    fn all_cameras_done(&self) -> Option<Result<()>> {
        let started: Vec<&CameraHandle> =
            self.cameras.iter().filter(|c| c.thread.is_some()).collect();
        if started.is_empty() || started.iter().any(|c| !c.ended) {
            return None;
        }
        let failed: Vec<&CameraHandle> = started
            .iter()
            .copied()
            .filter(|c| c.failed.is_some())
            .collect();
        if failed.is_empty() {
            log::info!("every camera source has ended");
            return Some(Ok(()));
        }
        let names: Vec<&str> = failed.iter().map(|c| c.name.as_str()).collect();
        // A source the configuration names wrongly stays wrong after a
        // restart: exit 78 (not restarted). Anything else exits 1.
        let kind = if failed
            .iter()
            .all(|c| c.failed == Some(ErrorKind::InvalidConfig))
        {
            ErrorKind::InvalidConfig
        } else {
            ErrorKind::DeviceGone
        };
        let code = crate::Error::from_kind(kind).exit_code();
        log::error!(
            "no camera is running: {} of {} failed ({}); exiting with status {code}{}",
            failed.len(),
            started.len(),
            names.join(", "),
            if kind == ErrorKind::InvalidConfig {
                " (a configuration error: fix the [[camera]] source)"
            } else {
                " so that systemd restarts the service"
            }
        );
        Some(Err(crate::Error::new(
            kind,
            format!(
                "every running camera stopped and these failed: {}",
                names.join(", ")
            ),
        )))
    }

    /// Takes a finished background re-profile: saves it and re-plans with it.
    fn poll_reprofile(&mut self) {
        if !self.reprofiling.as_ref().is_some_and(|h| h.is_finished()) {
            return;
        }
        let Some(h) = self.reprofiling.take() else {
            return;
        };
        match h.join() {
            Ok(Ok(p)) => {
                if let Err(e) = crate::profile::save(&self.cfg.device.state_dir, &p) {
                    log::warn!("could not save the cost profile: {}", e.chain());
                }
                let total: f64 = p.segment_ms.iter().sum();
                log::info!(
                    "re-profiled: full network {total:.1} ms per frame (was {:.1}); re-planning",
                    self.profile.segment_ms.iter().sum::<f64>()
                );
                self.camera_costs = p.camera_costs(&self.cfg);
                self.profile = p;
                self.reload(Some(self.cfg.clone()));
            }
            Ok(Err(e)) => log::warn!("re-profiling failed: {}", e.chain()),
            Err(_) => log::warn!("re-profiling thread panicked"),
        }
    }

    /// A camera thread that has not come round its loop for `period` while
    /// analysing (one waiting for its device to come back is not stuck).
    fn stuck_camera(&self, period: Duration) -> Option<String> {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.cameras
            .iter()
            .filter(|c| c.thread.is_some() && !c.ended)
            .find(|c| {
                let beat = c.heartbeat.load(Ordering::Relaxed);
                !c.capturing.load(Ordering::Relaxed)
                    && beat > 0
                    && now.saturating_sub(beat) > period.as_millis() as u64
            })
            .map(|c| c.name.clone())
    }

    /// Config file and drop-ins with their sizes and modification times.
    fn watch_signature(&self) -> Vec<(PathBuf, u64, u64)> {
        let stamp = |p: &Path| -> Option<(PathBuf, u64, u64)> {
            let m = std::fs::metadata(p).ok()?;
            let t = m
                .modified()
                .ok()?
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_nanos() as u64;
            Some((p.to_owned(), m.len(), t))
        };
        let mut sig: Vec<_> = stamp(&self.opts.config).into_iter().collect();
        if let Ok(rd) = std::fs::read_dir(&self.cfg.device.apps_dir) {
            let mut files: Vec<_> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .filter_map(|p| stamp(&p))
                .collect();
            files.sort();
            sig.extend(files);
        }
        sig
    }

    /// Re-plans from a new configuration (loaded from disk if `cfg` is None)
    /// and swaps the trees of the cameras whose apps changed.
    fn reload(&mut self, cfg: Option<Config>) {
        let t0 = Instant::now();
        let cfg = match cfg {
            Some(c) => c,
            None => match load_config(&self.opts.config) {
                Ok(c) => c,
                Err(e) => {
                    log::error!("{}; keeping the running plan", e.chain());
                    return;
                }
            },
        };
        if let Some(what) = reload::needs_restart(&self.cfg, &cfg) {
            log::error!(
                "{what} changed: restart the service to apply that (systemctl restart mainstream); keeping the running plan"
            );
            return;
        }
        if cfg.output != self.cfg.output {
            log::warn!("[output] changed: restart the service to apply that (systemctl restart mainstream); the publisher keeps its settings");
        }
        let budget = self.opts.budget.unwrap_or(cfg.device.budget_cores);
        let planned = match plan_for(
            &cfg,
            &self.profile,
            &self.camera_costs,
            budget,
            self.opts.strategy,
        ) {
            Ok(p) => p,
            Err(e) => {
                log::error!(
                    "re-planning failed: {}; keeping the running plan",
                    e.chain()
                );
                return;
            }
        };
        let plan_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let generation = self.generation + 1;
        let mut new = Vec::new();
        for i in 0..cfg.cameras.len() {
            match assignment_for(&cfg, &self.base, &planned.plan, i, generation, t0) {
                Ok(x) => new.push(x),
                Err(e) => {
                    log::error!(
                        "re-planning failed: {}; keeping the running plan",
                        e.chain()
                    );
                    return;
                }
            }
        }
        let build_ms = t0.elapsed().as_secs_f64() * 1000.0 - plan_ms;
        self.generation = generation;
        self.cfg = cfg;
        self.planned = planned;
        let mut changed = 0;
        for (i, (a, key)) in new.into_iter().enumerate() {
            if key == self.cameras[i].key && !self.cameras[i].ended {
                continue;
            }
            changed += 1;
            self.cameras[i].key = key;
            self.cameras[i].generation = generation;
            if self.cameras[i].thread.is_some() && !self.cameras[i].ended {
                if let Some(tx) = &self.cameras[i].tx {
                    let _ = tx.send(a);
                }
            } else if a.tree.is_some() {
                let mut h = CameraHandle::new(
                    self.cameras[i].name.clone(),
                    self.cameras[i].key.clone(),
                    generation,
                );
                if let Err(e) = self.spawn_camera(i, &mut h, a) {
                    log::error!("{}", e.chain());
                    continue;
                }
                self.cameras[i] = h;
            }
        }
        self.replans += 1;
        self.last_replan_ms = plan_ms;
        log::info!(
            "re-planned in {plan_ms:.1} ms (stem trees built in {build_ms:.0} ms; {changed} camera{} changed, no camera reopened)",
            if changed == 1 { "" } else { "s" }
        );
        self.log_plan();
        self.state.plan = Some(self.planned.plan.clone());
        self.save_state();
    }

    fn feedback(&mut self, measured_cores: f64) {
        self.measured_cores = measured_cores;
        let predicted = self.predicted_cores();
        let pacing = self
            .cfg
            .cameras
            .iter()
            .all(|c| c.pace == Pace::Nominal || matches!(c.source, Source::Device(_)));
        let comparable = pacing && self.reprofiling.is_none();
        let verdict =
            self.cost_check
                .window(self.clock.as_ref(), measured_cores, predicted, comparable);
        let ratio = match verdict {
            Verdict::Skipped | Verdict::Fine => return,
            Verdict::Off { ratio } | Verdict::Reprofile { ratio } => ratio,
        };
        log::info!(
            "cost model check: measured {measured_cores:.2} cores, the plan predicted {predicted:.2} ({:+.0}%)",
            (ratio - 1.0) * 100.0
        );
        if let Verdict::Reprofile { .. } = verdict {
            log::warn!(
                "the cost model is off by {:+.0}% for 20 s: measuring the cost profile again in the background",
                (ratio - 1.0) * 100.0
            );
            let base = Arc::clone(&self.base);
            let opener = Arc::clone(&self.opener);
            let cameras = self.cfg.cameras.clone();
            self.reprofiling = Some(std::thread::spawn(move || {
                let mut p = opener.measure_profile(&base)?;
                p.add_missing_frames(&cameras, |c| opener.measure_frames(&base, c));
                Ok(p)
            }));
        }
    }

    fn shutdown(&mut self) {
        let t0 = Instant::now();
        self.notifier.notify("STOPPING=1");
        self.stop.store(true, Ordering::SeqCst);
        // Camera threads stop between frames; give them most of a second.
        let deadline = t0 + Duration::from_millis(800);
        loop {
            self.drain_reports(Duration::from_millis(10));
            let alive = self
                .cameras
                .iter()
                .filter(|c| c.thread.as_ref().is_some_and(|t| !t.is_finished()))
                .count();
            if alive == 0 || Instant::now() >= deadline {
                if alive > 0 {
                    log::warn!("{alive} camera thread(s) did not stop in time; exiting anyway");
                }
                break;
            }
        }
        for c in &mut self.cameras {
            if let Some(t) = c.thread.take() {
                if t.is_finished() {
                    let _ = t.join();
                }
            }
        }
        while let Ok(r) = self.reports.try_recv() {
            self.handle(r);
        }
        self.update_status(1.0);
        if self.opts.status_line && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            eprintln!();
        }
        self.state.clean_shutdown = true;
        self.save_state();
        // The cameras are gone: the snapshot writer finishes its queue (and
        // tells the publisher) before the publisher stops.
        if let Some(s) = self.snapshots.take() {
            s.stop(Duration::from_millis(500), &self.cfg.device.state_dir);
        }
        if let Some(o) = self.output.take() {
            // The flush, then `offline` and the disconnect.
            let limit = output::mqtt::STOP_FLUSH + Duration::from_millis(500);
            o.stop(limit, &self.cfg.device.state_dir);
        }
        log::info!(
            "stopped in {:.0} ms; {} events this run",
            t0.elapsed().as_secs_f64() * 1000.0,
            self.events.len()
        );
    }
}
