//! What `mainstream demo` prints at the end and what `mainstream status`
//! shows.

use super::state;
use super::Summary;
use crate::config::Source;
use crate::error::Result;
use crate::truth::{self, Score, Truth, TOLERANCE_FRAMES};
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

/// One app's demo result.
#[derive(Clone, Debug, Serialize)]
pub struct AppScore {
    /// App name.
    pub app: String,
    /// Its M-Package.
    pub package: String,
    /// Camera.
    pub camera: String,
    /// Planned branch point and fps, predicted F1.
    pub branch: usize,
    /// Planned frame rate.
    pub fps: f64,
    /// Predicted event F1.
    pub predicted_f1: f64,
    /// Measured against ground truth (`None`: no labels for this app's package).
    pub measured: Option<Score>,
    /// Samples analysed and dropped.
    pub samples: u64,
    /// Due samples missed because frames were dropped.
    pub dropped: u64,
}

/// The demo's result.
#[derive(Clone, Debug, Serialize)]
pub struct DemoResult {
    /// Planner used.
    pub strategy: String,
    /// Budget, cores.
    pub budget_cores: f64,
    /// Predicted CPU use, cores: the plan's cost (preprocessing and
    /// networks) and the cameras' capture.
    pub predicted_cores: f64,
    /// The process's measured CPU use from the first analysed frame to the
    /// end, cores (`None`: nothing was analysed).
    pub measured_cores: Option<f64>,
    /// Times the cost model check measured the profile again.
    pub reprofiles: u64,
    /// Mean predicted F1 of the plan.
    pub predicted_mean_f1: f64,
    /// Mean measured F1 over apps with ground truth.
    pub measured_mean_f1: Option<f64>,
    /// Per app.
    pub apps: Vec<AppScore>,
    /// Ground truth files used.
    pub truth: Vec<String>,
    /// Start to first analysed frame, ms.
    pub first_frame_ms: u64,
    /// Resident memory at the end, KiB.
    pub rss_kib: u64,
    /// Frames dropped because analysis fell behind (all cameras).
    pub late_dropped: u64,
}

/// Scores a finished run against the ground truth beside each replayed clip.
pub fn score_demo(s: &Summary) -> DemoResult {
    let mut truths: Vec<Option<(std::path::PathBuf, Truth)>> = Vec::new();
    for c in &s.config.cameras {
        truths.push(match &c.source {
            Source::Replay(p) => Truth::beside(p),
            Source::Device(_) => None,
        });
    }
    let mut apps = Vec::new();
    let plan = s.plan.as_ref();
    for p in plan.map(|p| p.apps.as_slice()).unwrap_or_default() {
        let Some(app) = s.config.apps.iter().find(|a| a.name == p.name) else {
            continue;
        };
        let camera = &s.config.cameras[app.camera];
        let detected: Vec<[u64; 2]> = s
            .events
            .iter()
            .filter(|e| e.app == p.name && e.camera == camera.name)
            .map(|e| [e.start_frame, e.end_frame])
            .collect();
        let measured = truths[app.camera]
            .as_ref()
            .and_then(|(_, t)| t.events_of(&app.package.name))
            .map(|t| truth::score(t, &detected, TOLERANCE_FRAMES));
        let live = s.status.apps.iter().find(|a| a.name == p.name);
        apps.push(AppScore {
            app: p.name.clone(),
            package: app.package.name.clone(),
            camera: camera.name.clone(),
            branch: p.branch,
            fps: p.fps,
            predicted_f1: p.f1,
            measured,
            samples: live.map_or(0, |l| l.samples),
            dropped: live.map_or(0, |l| l.dropped),
        });
    }
    let scored: Vec<f64> = apps
        .iter()
        .filter_map(|a| a.measured.map(|m| m.f1))
        .collect();
    DemoResult {
        strategy: plan.map_or("-".into(), |p| p.strategy.name().to_owned()),
        budget_cores: plan.map_or(0.0, |p| p.budget / 1000.0),
        predicted_cores: s.status.predicted_cores,
        measured_cores: s.run_cores,
        reprofiles: s.status.reprofiles,
        predicted_mean_f1: plan.map_or(0.0, |p| p.mean_f1),
        measured_mean_f1: (!scored.is_empty())
            .then(|| scored.iter().sum::<f64>() / scored.len() as f64),
        apps,
        truth: truths
            .iter()
            .flatten()
            .map(|(p, _)| p.display().to_string())
            .collect(),
        first_frame_ms: s.status.first_frame_ms,
        rss_kib: s.status.rss_kib,
        late_dropped: s.status.cameras.iter().map(|c| c.late_dropped).sum(),
    }
}

/// The demo summary as text.
pub fn render_demo(r: &DemoResult) -> String {
    let mut o = String::new();
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "plan ({}): budget {:.2} cores, predicted cost {:.3} cores, predicted mean event F1 {:.3}",
        r.strategy, r.budget_cores, r.predicted_cores, r.predicted_mean_f1
    );
    if let Some(m) = r.measured_cores {
        let _ = writeln!(
            o,
            "CPU: measured {m:.3} cores from the first analysed frame on ({:+.0}% of the prediction); {} re-profile{}",
            (m / r.predicted_cores.max(1e-9) - 1.0) * 100.0,
            r.reprofiles,
            if r.reprofiles == 1 { "" } else { "s" }
        );
    }
    if r.truth.is_empty() {
        let _ = writeln!(
            o,
            "no ground truth beside the replayed clips: nothing to score"
        );
    } else {
        let _ = writeln!(
            o,
            "events against {} (overlap, {TOLERANCE_FRAMES} frames of slack):",
            r.truth.join(", ")
        );
    }
    let _ = writeln!(
        o,
        "  {:<14} {:>6} {:>5} {:>8} {:>8} {:>6} {:>9} {:>6} {:>6}  {:>9} {:>12}",
        "app",
        "branch",
        "fps",
        "samples",
        "events",
        "found",
        "recall",
        "prec",
        "F1",
        "pred. F1",
        "dropped"
    );
    for a in &r.apps {
        match a.measured {
            Some(m) => {
                let _ = writeln!(
                    o,
                    "  {:<14} {:>6} {:>5.1} {:>8} {:>4}/{:<3} {:>3}/{:<2} {:>9.3} {:>6.3} {:>6.3}  {:>9.3} {:>12}",
                    a.app,
                    a.branch,
                    a.fps,
                    a.samples,
                    m.detected,
                    m.truth,
                    m.found,
                    m.truth,
                    m.recall,
                    m.precision,
                    m.f1,
                    a.predicted_f1,
                    a.dropped
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "  {:<14} {:>6} {:>5.1} {:>8}  (no ground truth for package {})  pred. F1 {:.3}",
                    a.app, a.branch, a.fps, a.samples, a.package, a.predicted_f1
                );
            }
        }
    }
    if let Some(m) = r.measured_mean_f1 {
        let _ = writeln!(
            o,
            "mean event F1: measured {m:.3}, predicted {:.3}",
            r.predicted_mean_f1
        );
    }
    let _ = writeln!(
        o,
        "first frame analysed {} ms after start; {} frames dropped for lateness; resident memory {:.0} MiB",
        r.first_frame_ms,
        r.late_dropped,
        r.rss_kib as f64 / 1024.0
    );
    o
}

/// The live part of `mainstream status`.
fn live_status(s: &state::Status, running: bool, now: u64, out: &mut dyn Write) -> Result<()> {
    let age = now.saturating_sub(s.updated_unix_ms) as f64 / 1000.0;
    if running {
        writeln!(
            out,
            "mainstream is running (pid {}), up {:.0} s; status {:.1} s old",
            s.pid,
            (s.updated_unix_ms.saturating_sub(s.started_unix_ms)) as f64 / 1000.0,
            age
        )?;
    } else {
        writeln!(
            out,
            "mainstream is NOT running; last status from {} ({:.0} s ago)",
            super::events::rfc3339_ms(s.updated_unix_ms),
            age
        )?;
    }
    writeln!(
            out,
            "plan: {}, budget {:.2} cores, predicted {:.2} cores, measured {:.2} cores, mean predicted F1 {:.3}; {} re-plans (last {:.1} ms), {} re-profiles",
            s.strategy,
            s.budget_cores,
            s.predicted_cores,
            s.measured_cores,
            s.mean_f1,
            s.replans,
            s.last_replan_ms,
            s.reprofiles
        )?;
    for r in &s.rejected {
        writeln!(out, "  not admitted: {r}")?;
    }
    writeln!(
        out,
        "  {:<16} {:<12} {:>6} {:>11} {:>8} {:>8} {:>7} {:>6}",
        "app", "camera", "branch", "fps (plan)", "samples", "dropped", "events", "pred.F1"
    )?;
    for a in &s.apps {
        writeln!(
            out,
            "  {:<16} {:<12} {:>6} {:>5.1} ({:>3.1}) {:>8} {:>8} {:>6}{} {:>6.3}",
            a.name,
            a.camera,
            a.branch,
            a.fps,
            a.planned_fps,
            a.samples,
            a.dropped,
            a.events,
            if a.in_event { "*" } else { " " },
            a.predicted_f1
        )?;
    }
    for c in &s.cameras {
        writeln!(
                out,
                "camera {}: {}{}; {} frames, {} analysed ({:.1} ms each), dropped {} by the source + {} late, {} bad, {} disconnects",
                c.name,
                if c.connected { "connected, " } else if c.ended { "ended, " } else { "NOT connected, " },
                c.source,
                c.frames,
                c.analysed,
                c.ms_per_frame,
                c.source_dropped,
                c.late_dropped,
                c.bad_frames,
                c.disconnects
            )?;
    }
    writeln!(out, "resident memory {:.0} MiB", s.rss_kib as f64 / 1024.0)?;
    Ok(())
}

/// Configuration problems `status` lists in full; the rest are counted.
const STATUS_PROBLEMS_SHOWN: usize = 10;

/// `mainstream status`: the live status, the durable state and the last
/// events in `state_dir`, and `problems` found in the configuration now.
/// Each part is shown if it can be read: a damaged `status.bin` (rewritten
/// every second) does not hide the state and the event log.
pub fn status(
    state_dir: &Path,
    problems: &[crate::config::Diagnostic],
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let (st, st_problem) = match state::load_status(state_dir) {
        Ok(s) => (s, None),
        Err(e) => (None, Some(e.chain().to_string())),
    };
    let durable = crate::store::load::<state::State>(
        &state::state_path(state_dir),
        state::STATE_MAGIC,
        state::STATE_VERSION,
    )
    .ok()
    .flatten();
    let (events, count) =
        super::eventlog::tail(&state_dir.join(super::eventlog::FILE), 5).unwrap_or_default();
    let now = super::events::unix_ms_now();
    let running = st.as_ref().is_some_and(|s| {
        Path::new(&format!("/proc/{}", s.pid)).exists()
            && now.saturating_sub(s.updated_unix_ms) < 5_000
    });
    let mqtt = super::output::load_status(state_dir).ok().flatten();
    let snapshots = super::output::snapshot::load_status(state_dir)
        .ok()
        .flatten();
    if json {
        let v = serde_json::json!({
            "running": running,
            "status": st,
            "mqtt": mqtt,
            "snapshots": snapshots,
            "status_problem": st_problem,
            "config_problems": problems.iter().map(|d| d.with_kind("error").to_string()).collect::<Vec<_>>(),
            "state": durable,
            "events_total": count,
            "last_events": events,
        });
        writeln!(out, "{v}")?;
        return Ok(());
    }
    match (&st, &st_problem) {
        (Some(s), _) => live_status(s, running, now, out)?,
        (None, Some(p)) => writeln!(
            out,
            "the live status is unreadable: {p}; the service rewrites it every second while it runs"
        )?,
        (None, None) => {
            writeln!(
                out,
                "no status in {}: the service has not run with this state directory",
                state_dir.display()
            )?;
            if durable.is_none() && count == 0 && problems.is_empty() {
                return Ok(());
            }
        }
    }
    if let Some(m) = &mqtt {
        writeln!(out, "{}", super::output::status_text(m, now))?;
    }
    if let Some(s) = &snapshots {
        writeln!(out, "{}", super::output::snapshot::status_text(s))?;
    }
    if !problems.is_empty() {
        writeln!(
            out,
            "configuration: {} problem{}; a running service keeps its last good plan until they are fixed (`mainstream check` lists them all):",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        )?;
        for d in problems.iter().take(STATUS_PROBLEMS_SHOWN) {
            writeln!(out, "  {}", d.with_kind("error"))?;
        }
        if problems.len() > STATUS_PROBLEMS_SHOWN {
            writeln!(out, "  and {} more", problems.len() - STATUS_PROBLEMS_SHOWN)?;
        }
    }
    if let Some(d) = durable {
        writeln!(
            out,
            "since the state began: {} boots; {}",
            d.boots,
            d.totals
                .iter()
                .map(|t| format!("{} {} samples/{} events", t.name, t.samples, t.events))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    writeln!(out, "event log: {count} events; last {}:", events.len())?;
    for e in &events {
        writeln!(
            out,
            "  {} {} on {}: frames {}..{} until {}, peak {:.2}",
            super::events::rfc3339_ms(e.start_unix_ms),
            e.app,
            e.camera,
            e.start_frame,
            e.end_frame,
            super::events::rfc3339_ms(e.end_unix_ms),
            e.peak_score
        )?;
    }
    Ok(())
}
