//! What is published where: topics, event ids and message bodies.
//!
//! | topic | body | retained |
//! |---|---|---|
//! | `PREFIX/status` | `online` / `offline` (last will) | yes |
//! | `PREFIX/CAMERA/APP/event_start` | the `event_start` line with `id` | no |
//! | `PREFIX/CAMERA/APP/event` | the `event` line with `id` | no |
//! | `PREFIX/CAMERA/APP/state` | `ON` while an event is open, else `OFF` | yes |
//! | `PREFIX/CAMERA/APP/snapshot` | the JPEG of the frame that opened the last event (`publish = true`) | yes |
//! | `DISCOVERY/binary_sensor/NODE/CAMERA_APP/config` | Home Assistant discovery | yes |
//!
//! Camera and app names are already limited to `A-Z a-z 0-9 - _ .` by the
//! configuration, so they are valid topic levels as they are.

use crate::config::output::Mqtt;
use crate::daemon::events::{self, Event, Opened};
use std::path::Path;

pub use crate::daemon::events::event_id;

/// `PREFIX/status`.
pub(crate) fn status_topic(m: &Mqtt) -> String {
    format!("{}/status", m.topic_prefix)
}

/// `PREFIX/CAMERA/APP/LEAF`.
pub(crate) fn app_topic(m: &Mqtt, camera: &str, app: &str, leaf: &str) -> String {
    format!("{}/{camera}/{app}/{leaf}", m.topic_prefix)
}

/// The body on `.../event`: the stdout line (which carries the id), naming
/// the snapshot if snapshots are kept in `snapshots` and this event's file
/// is there (it may have been skipped, failed or been trimmed away since).
pub(crate) fn event_body(ev: &Event, snapshots: Option<&Path>) -> String {
    let shot = snapshots
        .map(|root| {
            let o = Opened {
                start_frame: ev.start_frame,
                start_unix_ms: ev.start_unix_ms,
                peak_score: ev.peak_score,
            };
            super::snapshot::path_for(root, &ev.camera, &ev.app, &o)
        })
        .filter(|p| p.is_file());
    events::event_json(ev, shot.as_deref())
}

/// The body on `.../event_start`.
pub(crate) fn opened_body(camera: &str, app: &str, o: &Opened, snapshot: Option<&Path>) -> String {
    events::opened_json(app, camera, o, snapshot)
}

/// A Home Assistant object id / node id: `[a-zA-Z0-9_-]` only.
fn ha_id(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The discovery topic of one app's binary sensor.
pub(crate) fn discovery_topic(m: &Mqtt, prefix: &str, camera: &str, app: &str) -> String {
    format!(
        "{prefix}/binary_sensor/{}/{}_{}/config",
        ha_id(&m.client_id),
        ha_id(camera),
        ha_id(app)
    )
}

/// The discovery body of one app's binary sensor: on while the app has an
/// event open, attributes from its last event, unavailable while the box is
/// offline.
pub(crate) fn discovery_body(m: &Mqtt, camera: &str, app: &str) -> String {
    let node = ha_id(&m.client_id);
    serde_json::json!({
        "name": format!("{app} ({camera})"),
        "unique_id": format!("{node}_{}_{}", ha_id(camera), ha_id(app)),
        "state_topic": app_topic(m, camera, app, "state"),
        "payload_on": "ON",
        "payload_off": "OFF",
        "json_attributes_topic": app_topic(m, camera, app, "event"),
        "availability_topic": status_topic(m),
        "payload_available": "online",
        "payload_not_available": "offline",
        "device_class": "motion",
        "device": {
            "identifiers": [node],
            "name": format!("mainstream {}", m.client_id),
            "manufacturer": "mainstream",
            "model": "stem-sharing video analytics",
            "sw_version": env!("CARGO_PKG_VERSION"),
        },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Mqtt {
        Mqtt {
            host: "b".into(),
            port: 1883,
            client_id: "mainstream-box.1".into(),
            username: None,
            password_file: None,
            tls_ca_file: None,
            topic_prefix: "site/a".into(),
            discovery_prefix: Some("homeassistant".into()),
            keep_alive_s: 30,
        }
    }

    #[test]
    fn an_event_id_is_stable_and_tells_events_apart() {
        let a = event_id("gate", "birds", 1_000, 10);
        assert_eq!(a, event_id("gate", "birds", 1_000, 10));
        assert_eq!(a, "1000-".to_owned() + &a[5..]);
        assert_ne!(a, event_id("gate", "birds", 1_000, 11));
        assert_ne!(a, event_id("gate", "cars", 1_000, 10));
        assert_ne!(event_id("ab", "c", 0, 0), event_id("a", "bc", 0, 0));
    }

    #[test]
    fn topics_and_discovery_name_the_app_and_camera() {
        let m = cfg();
        assert_eq!(status_topic(&m), "site/a/status");
        assert_eq!(
            app_topic(&m, "gate", "birds", "event"),
            "site/a/gate/birds/event"
        );
        assert_eq!(
            discovery_topic(&m, "homeassistant", "gate", "birds.v2"),
            "homeassistant/binary_sensor/mainstream-box_1/gate_birds_v2/config"
        );
        let v: serde_json::Value =
            serde_json::from_str(&discovery_body(&m, "gate", "birds")).unwrap();
        assert_eq!(v["state_topic"], "site/a/gate/birds/state");
        assert_eq!(v["availability_topic"], "site/a/status");
        assert_eq!(v["unique_id"], "mainstream-box_1_gate_birds");
    }
}
