//! The service's live status: each second the camera threads' counters
//! become `status.bin`, systemd's `STATUS=` and the demo's status line.

use super::state::{self, AppStatus, CameraStatus, Status};
use super::{events, Service};

impl Service<'_> {
    /// Gathers the cameras' and apps' counters (rates over the last `dt`
    /// seconds), adds them to the lifetime totals and publishes the status.
    pub(super) fn update_status(&mut self, dt: f64) {
        let mut cams = Vec::new();
        let mut apps = Vec::new();
        for (ci, c) in self.cameras.iter_mut().enumerate() {
            let live = match c.live.lock() {
                Ok(l) => l.clone(),
                Err(_) => continue,
            };
            let (frames0, ms0) = c.last;
            if live.analysed > frames0 {
                c.ms_per_frame = (live.analysis_ms - ms0) / (live.analysed - frames0) as f64;
            }
            c.last = (live.analysed, live.analysis_ms);
            cams.push(CameraStatus {
                name: c.name.clone(),
                source: if live.source.is_empty() {
                    "not opened".into()
                } else {
                    live.source.clone()
                },
                connected: live.connected && !c.ended,
                ended: c.ended,
                frames: live.stats.frames,
                source_dropped: live.stats.dropped,
                late_dropped: live.late_dropped,
                bad_frames: live.stats.bad_frames + live.bad_decodes,
                disconnects: live.stats.disconnects,
                reconnects: live.stats.reconnects,
                analysed: live.analysed,
                ms_per_frame: c.ms_per_frame,
            });
            let names: Vec<&String> = self
                .planned
                .plan
                .apps
                .iter()
                .filter(|p| self.apps.get(&p.name).is_some_and(|a| a.camera == ci))
                .map(|p| &p.name)
                .collect();
            if live.generation != c.generation && c.thread.is_some() && !c.ended {
                // The camera has not picked up the new plan yet: its
                // counters belong to the old app list.
                continue;
            }
            for (i, name) in names.into_iter().enumerate() {
                let Some(l) = live.apps.get(i) else { continue };
                let Some(info) = self.apps.get_mut(name) else {
                    continue;
                };
                let gained = l.samples.saturating_sub(info.last_samples);
                info.fps = gained as f64 / dt.max(1e-3);
                info.last_samples = l.samples;
                apps.push(AppStatus {
                    name: name.clone(),
                    camera: c.name.clone(),
                    branch: info.branch,
                    planned_fps: info.planned_fps,
                    predicted_f1: info.f1,
                    fps: info.fps,
                    samples: l.samples,
                    dropped: l.dropped,
                    events: l.events,
                    in_event: l.in_event,
                });
            }
        }
        // Lifetime totals: the state keeps counts across restarts.
        for a in &apps {
            let prev = self
                .status
                .apps
                .iter()
                .find(|p| p.name == a.name && p.camera == a.camera);
            let (ds, dd) = match prev {
                Some(p) if p.samples <= a.samples => {
                    (a.samples - p.samples, a.dropped - p.dropped.min(a.dropped))
                }
                _ => (a.samples, a.dropped),
            };
            let t = self.state.totals_mut(&a.name);
            t.samples += ds;
            t.dropped += dd;
        }
        let p = &self.planned.plan;
        self.status = Status {
            pid: std::process::id(),
            updated_unix_ms: events::unix_ms_now(),
            started_unix_ms: self.started_unix_ms,
            first_frame_ms: self.first_frame_ms,
            config: self.opts.config.display().to_string(),
            budget_cores: p.budget / 1000.0,
            strategy: p.strategy.name().to_owned(),
            predicted_cores: self.predicted_cores(),
            measured_cores: self.measured_cores,
            mean_f1: p.mean_f1,
            replans: self.replans,
            last_replan_ms: self.last_replan_ms,
            reprofiles: self.cost_check.reprofiles(),
            rejected: self.planned.rejected.clone(),
            apps,
            cameras: cams,
            rss_kib: state::rss_kib(),
        };
        if let Some(o) = &self.output {
            o.write_status(&self.cfg.device.state_dir);
        }
        if let Some(s) = &self.snapshots {
            s.write_status(&self.cfg.device.state_dir);
        }
        if let Err(e) = state::save_status(&self.cfg.device.state_dir, &self.status) {
            log::debug!("status: {}", e.chain());
        }
        let line = status_line(&self.status, self.epoch.elapsed().as_secs_f64());
        self.notifier.notify(&format!("STATUS={line}"));
        self.status_ticks += 1;
        if self.opts.status_line {
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprint!("\r\x1b[K{line}");
            } else if self.status_ticks.is_multiple_of(5) {
                // Not a terminal (a log file, CI): a line every 5 s.
                eprintln!("{line}");
            }
        }
    }
}

/// One line: time, then per app achieved/planned fps and events.
pub fn status_line(s: &Status, t: f64) -> String {
    let mut line = format!("{t:>6.1}s");
    for a in &s.apps {
        line.push_str(&format!(
            " | {} {:.1}/{:.1} fps ev {}{}",
            a.name,
            a.fps,
            a.planned_fps,
            a.events,
            if a.in_event { "*" } else { "" }
        ));
    }
    let dropped: u64 = s
        .cameras
        .iter()
        .map(|c| c.late_dropped + c.source_dropped)
        .sum();
    line.push_str(&format!(
        " | dropped {dropped} | cpu {:.2}",
        s.measured_cores
    ));
    line
}
