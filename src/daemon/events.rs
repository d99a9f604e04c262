//! Turning per-frame classifier decisions into events: X-voting, the event
//! record, and how it is printed.
//!
//! An app reports an event once `voting` consecutive samples (frames it
//! analysed) are positive; the event starts at the first of them. It stays
//! open while samples keep coming back positive and closes after `voting`
//! consecutive negative samples, ending at the last positive one. Using the
//! same count to close as to open keeps one missed sample inside a long event
//! from splitting it in two, which the planner's model (MAINSTREAM.md,
//! X-voting) does not count as two detections either.

use serde::{Deserialize, Serialize};

/// A finished event, as written to the event log and to stdout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// App name.
    pub app: String,
    /// Camera name.
    pub camera: String,
    /// Wall-clock time of the first positive sample, ms since the Unix epoch.
    pub start_unix_ms: u64,
    /// Wall-clock time of the last positive sample.
    pub end_unix_ms: u64,
    /// Camera frame number (sequence) of the first positive sample.
    pub start_frame: u64,
    /// Camera frame number of the last positive sample.
    pub end_frame: u64,
    /// Highest probability of a positive class seen during the event.
    pub peak_score: f32,
    /// Positive samples in the event.
    pub samples: u32,
}

/// The moment an event is confirmed (before its end is known).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Opened {
    /// Frame of the first positive sample.
    pub start_frame: u64,
    /// Its wall-clock time, ms since the epoch.
    pub start_unix_ms: u64,
    /// Best score so far.
    pub peak_score: f32,
}

/// What one sample changed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Change {
    /// Nothing to report.
    None,
    /// `voting` positive samples in a row: an event has begun.
    Opened(Opened),
    /// The open event ended.
    Closed(Closed),
}

/// A closed event without its names (the caller adds app and camera).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Closed {
    /// Frame of the first positive sample.
    pub start_frame: u64,
    /// Frame of the last positive sample.
    pub end_frame: u64,
    /// Their wall-clock times.
    pub start_unix_ms: u64,
    /// Wall-clock time of the last positive sample.
    pub end_unix_ms: u64,
    /// Highest score.
    pub peak_score: f32,
    /// Positive samples.
    pub samples: u32,
}

impl Closed {
    /// The full record.
    pub fn into_event(self, app: &str, camera: &str) -> Event {
        Event {
            app: app.to_owned(),
            camera: camera.to_owned(),
            start_unix_ms: self.start_unix_ms,
            end_unix_ms: self.end_unix_ms,
            start_frame: self.start_frame,
            end_frame: self.end_frame,
            peak_score: self.peak_score,
            samples: self.samples,
        }
    }
}

/// X-voting state of one app. Plain data: sampling it allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detector {
    voting: u32,
    positives: u32,
    negatives: u32,
    /// First positive sample of the current run: (frame, ms, best score).
    run_start: (u64, u64, f32),
    open: Option<Closed>,
}

impl Detector {
    /// A detector needing `voting` (at least 1) consecutive positive samples.
    pub fn new(voting: u32) -> Detector {
        Detector {
            voting: voting.max(1),
            positives: 0,
            negatives: 0,
            run_start: (0, 0, 0.0),
            open: None,
        }
    }

    /// The voting count.
    pub fn voting(&self) -> u32 {
        self.voting
    }

    /// Whether an event is open.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Feeds one analysed sample.
    pub fn sample(&mut self, frame: u64, unix_ms: u64, positive: bool, score: f32) -> Change {
        if positive {
            self.negatives = 0;
            if let Some(ev) = &mut self.open {
                ev.end_frame = frame;
                ev.end_unix_ms = unix_ms;
                ev.peak_score = ev.peak_score.max(score);
                ev.samples += 1;
                return Change::None;
            }
            if self.positives == 0 {
                self.run_start = (frame, unix_ms, score);
            } else {
                self.run_start.2 = self.run_start.2.max(score);
            }
            self.positives += 1;
            if self.positives >= self.voting {
                let (start_frame, start_unix_ms, peak_score) = self.run_start;
                self.open = Some(Closed {
                    start_frame,
                    end_frame: frame,
                    start_unix_ms,
                    end_unix_ms: unix_ms,
                    peak_score,
                    samples: self.positives,
                });
                return Change::Opened(Opened {
                    start_frame,
                    start_unix_ms,
                    peak_score,
                });
            }
            Change::None
        } else {
            self.positives = 0;
            if self.open.is_some() {
                self.negatives += 1;
                if self.negatives >= self.voting {
                    self.negatives = 0;
                    if let Some(ev) = self.open.take() {
                        return Change::Closed(ev);
                    }
                }
            }
            Change::None
        }
    }

    /// Closes an open event now (the app was removed, the stream ended, the
    /// service stops), ending it at its last positive sample.
    pub fn finish(&mut self) -> Option<Closed> {
        self.positives = 0;
        self.negatives = 0;
        self.open.take()
    }
}

/// Milliseconds since the Unix epoch now.
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// RFC 3339 UTC time with milliseconds, e.g. `2026-11-26T09:17:36.123Z`.
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let ms = unix_ms % 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The stable id of an event (the same on its `event_start` and `event`
/// lines and on every delivery of them): its start time and a CRC-32 of
/// camera, app and start frame.
pub fn event_id(camera: &str, app: &str, start_unix_ms: u64, start_frame: u64) -> String {
    let mut key = Vec::with_capacity(camera.len() + app.len() + 10);
    key.extend_from_slice(camera.as_bytes());
    key.push(0);
    key.extend_from_slice(app.as_bytes());
    key.push(0);
    key.extend_from_slice(&start_frame.to_le_bytes());
    format!("{start_unix_ms}-{:08x}", crate::store::crc32(&key))
}

/// Adds `"snapshot": PATH` to an event object when a snapshot was taken.
fn with_snapshot(mut v: serde_json::Value, snapshot: Option<&std::path::Path>) -> String {
    if let (Some(p), Some(o)) = (snapshot, v.as_object_mut()) {
        o.insert(
            "snapshot".into(),
            serde_json::Value::String(p.to_string_lossy().into_owned()),
        );
    }
    v.to_string()
}

/// The JSON line printed to stdout for a finished event; `snapshot` names
/// the JPEG of the frame that opened it, if one was kept.
pub fn event_json(ev: &Event, snapshot: Option<&std::path::Path>) -> String {
    let v = serde_json::json!({
        "type": "event",
        "id": event_id(&ev.camera, &ev.app, ev.start_unix_ms, ev.start_frame),
        "app": ev.app,
        "camera": ev.camera,
        "start": rfc3339_ms(ev.start_unix_ms),
        "end": rfc3339_ms(ev.end_unix_ms),
        "start_frame": ev.start_frame,
        "end_frame": ev.end_frame,
        "peak_score": (f64::from(ev.peak_score) * 1e4).round() / 1e4,
        "samples": ev.samples,
    });
    with_snapshot(v, snapshot)
}

/// The JSON line printed to stdout when an event is confirmed; `snapshot`
/// names the JPEG of the frame that confirmed it, if one is being kept.
pub fn opened_json(
    app: &str,
    camera: &str,
    o: &Opened,
    snapshot: Option<&std::path::Path>,
) -> String {
    let v = serde_json::json!({
        "type": "event_start",
        "id": event_id(camera, app, o.start_unix_ms, o.start_frame),
        "app": app,
        "camera": camera,
        "start": rfc3339_ms(o.start_unix_ms),
        "start_frame": o.start_frame,
        "score": (f64::from(o.peak_score) * 1e4).round() / 1e4,
    });
    with_snapshot(v, snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(d: &mut Detector, samples: &[(u64, bool)]) -> Vec<Change> {
        samples
            .iter()
            .map(|&(f, p)| d.sample(f, f * 100, p, if p { 0.9 } else { 0.1 }))
            .filter(|c| *c != Change::None)
            .collect()
    }

    #[test]
    fn an_event_needs_voting_consecutive_positives_and_starts_at_the_first() {
        let mut d = Detector::new(2);
        let changes = feed(
            &mut d,
            &[(0, true), (2, false), (4, true), (6, true), (8, true)],
        );
        assert_eq!(
            changes,
            vec![Change::Opened(Opened {
                start_frame: 4,
                start_unix_ms: 400,
                peak_score: 0.9
            })]
        );
        assert!(d.is_open());
    }

    #[test]
    fn one_missed_sample_does_not_split_an_event_but_voting_misses_close_it() {
        let mut d = Detector::new(2);
        let s = [
            (0, true),
            (1, true),
            (2, false),
            (3, true),
            (4, false),
            (5, false),
            (6, false),
        ];
        let changes = feed(&mut d, &s);
        assert_eq!(changes.len(), 2);
        match changes[1] {
            Change::Closed(c) => {
                assert_eq!((c.start_frame, c.end_frame, c.samples), (0, 3, 3));
            }
            other => panic!("expected a close, got {other:?}"),
        }
        assert!(!d.is_open());
    }

    #[test]
    fn voting_one_reports_on_the_first_positive_and_closes_on_the_first_negative() {
        let mut d = Detector::new(0); // clamped to 1
        assert_eq!(d.voting(), 1);
        let changes = feed(&mut d, &[(7, true), (8, false)]);
        assert!(matches!(changes[0], Change::Opened(o) if o.start_frame == 7));
        assert!(matches!(changes[1], Change::Closed(c) if c.end_frame == 7));
    }

    #[test]
    fn finish_closes_an_open_event_at_its_last_positive_sample() {
        let mut d = Detector::new(1);
        feed(&mut d, &[(1, true), (2, true)]);
        let c = d.finish().expect("open event");
        assert_eq!((c.start_frame, c.end_frame), (1, 2));
        assert_eq!(d.finish(), None);
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_795_685_856_123), "2026-11-26T09:37:36.123Z");
    }

    #[test]
    fn event_json_is_one_line_with_every_field() {
        let ev = Event {
            app: "birds".into(),
            camera: "gate \"1\"".into(),
            start_unix_ms: 1000,
            end_unix_ms: 2500,
            start_frame: 10,
            end_frame: 25,
            peak_score: 0.87654,
            samples: 4,
        };
        let line = event_json(&ev, None);
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["type"], "event");
        assert_eq!(v["camera"], "gate \"1\"");
        assert_eq!(v["end"], "1970-01-01T00:00:02.500Z");
        assert_eq!(v["end_frame"], 25);
        assert_eq!(v["peak_score"], 0.8765);
        assert!(v.get("snapshot").is_none());
        let shot = std::path::Path::new("/var/lib/mainstream/snapshots/gate/birds/1000-0.jpg");
        let v: serde_json::Value = serde_json::from_str(&event_json(&ev, Some(shot))).unwrap();
        assert_eq!(v["snapshot"], shot.to_str().unwrap());
        assert_eq!(v["samples"], 4);
    }
}
