//! The event record and how it is printed (X-voting, which finds events, is
//! [`crate::pipeline::voting`]).

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

pub use crate::pipeline::voting::{Closed, Opened};

impl Event {
    /// The full record of `closed`, an event of `app` on `camera`.
    pub fn from_closed(closed: Closed, app: &str, camera: &str) -> Event {
        Event {
            app: app.to_owned(),
            camera: camera.to_owned(),
            start_unix_ms: closed.start_unix_ms,
            end_unix_ms: closed.end_unix_ms,
            start_frame: closed.start_frame,
            end_frame: closed.end_frame,
            peak_score: closed.peak_score,
            samples: closed.samples,
        }
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
