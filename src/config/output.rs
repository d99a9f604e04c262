//! `[output.*]`: where events go besides stdout and the event log.
//!
//! Both phases for this section live here: the raw serde structs (every key
//! optional, unknown keys rejected, spans kept) and their validation into
//! [`Output`]. Off by default: without an `[output.mqtt]` table nothing
//! leaves the box, and without an `[output.snapshots]` table no frame is
//! kept.

use super::resolve;
use crate::diag::{Diagnostics, SourceFile};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Default MQTT port without TLS.
const DEFAULT_PORT: u16 = 1883;
/// Default MQTT port with TLS.
const DEFAULT_TLS_PORT: u16 = 8883;
/// Default topic prefix.
const DEFAULT_TOPIC_PREFIX: &str = "mainstream";
/// Default Home Assistant discovery prefix.
const DEFAULT_DISCOVERY_PREFIX: &str = "homeassistant";
/// The CA bundle used when `tls = true` names no `ca_file` (Debian's
/// `ca-certificates`).
const DEFAULT_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// `[output]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutput {
    /// `[output.mqtt]`.
    pub mqtt: Option<Spanned<RawMqtt>>,
    /// `[output.snapshots]`.
    pub snapshots: Option<Spanned<RawSnapshots>>,
}

/// `[output.snapshots]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSnapshots {
    /// Directory of the snapshots (default `STATE_DIR/snapshots`).
    pub dir: Option<Spanned<String>>,
    /// Snapshots kept per app (oldest removed first).
    pub keep: Option<Spanned<i64>>,
    /// Bytes of snapshots kept per app.
    pub max_bytes: Option<Spanned<i64>>,
    /// JPEG quality when a frame has to be encoded (1-100).
    pub quality: Option<Spanned<i64>>,
    /// Publish each snapshot on `PREFIX/CAMERA/APP/snapshot` (needs `[output.mqtt]`).
    pub publish: Option<Spanned<bool>>,
}

/// `[output.mqtt]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMqtt {
    /// Broker host name or address (required).
    pub host: Option<Spanned<String>>,
    /// Broker port (1883, or 8883 with TLS).
    pub port: Option<Spanned<i64>>,
    /// MQTT client id (default `mainstream-HOSTNAME`).
    pub client_id: Option<Spanned<String>>,
    /// User name for the broker.
    pub username: Option<Spanned<String>>,
    /// File holding the password (first line; needs `username`).
    pub password_file: Option<Spanned<String>>,
    /// Connect with TLS.
    pub tls: Option<Spanned<bool>>,
    /// PEM file of the CA certificates that sign the broker's certificate.
    pub ca_file: Option<Spanned<String>>,
    /// First level(s) of every topic.
    pub topic_prefix: Option<Spanned<String>>,
    /// Publish Home Assistant discovery (default true).
    pub discovery: Option<Spanned<bool>>,
    /// Home Assistant's discovery prefix.
    pub discovery_prefix: Option<Spanned<String>>,
    /// Seconds between keep-alive pings.
    pub keep_alive_s: Option<Spanned<i64>>,
}

/// `[output]`, validated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Output {
    /// The MQTT publisher, if configured.
    pub mqtt: Option<Mqtt>,
    /// Event snapshots, if configured.
    pub snapshots: Option<Snapshots>,
}

/// Default snapshots kept per app.
const DEFAULT_SNAPSHOT_KEEP: u32 = 100;
/// Default bytes of snapshots kept per app (64 MiB).
const DEFAULT_SNAPSHOT_MAX_BYTES: u64 = 64 << 20;
/// Default JPEG quality of encoded snapshots.
const DEFAULT_SNAPSHOT_QUALITY: u8 = 85;
/// Name of the default snapshot directory in the state directory.
const DEFAULT_SNAPSHOT_DIR: &str = "snapshots";

/// `[output.snapshots]`, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshots {
    /// Directory (`None`: `STATE_DIR/snapshots`).
    pub dir: Option<PathBuf>,
    /// Snapshots kept per app.
    pub keep: u32,
    /// Bytes kept per app.
    pub max_bytes: u64,
    /// JPEG quality of encoded frames.
    pub quality: u8,
    /// Publish on `PREFIX/CAMERA/APP/snapshot`.
    pub publish: bool,
}

impl Snapshots {
    /// The directory, with `state_dir` for the default.
    pub fn dir_in(&self, state_dir: &Path) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| state_dir.join(DEFAULT_SNAPSHOT_DIR))
    }
}

/// `[output.mqtt]`, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Mqtt {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Client id.
    pub client_id: String,
    /// User name.
    pub username: Option<String>,
    /// Password file (read at each connection attempt).
    pub password_file: Option<PathBuf>,
    /// CA bundle when TLS is on.
    pub tls_ca_file: Option<PathBuf>,
    /// Topic prefix, no trailing `/`.
    pub topic_prefix: String,
    /// Home Assistant discovery prefix (`None`: no discovery).
    pub discovery_prefix: Option<String>,
    /// Keep-alive interval in seconds.
    pub keep_alive_s: u16,
}

/// A topic level string usable in MQTT topics: no wildcards, no NUL, no
/// empty levels, no leading or trailing `/`.
fn topic_ok(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && !t.contains(['+', '#', '\0'])
        && t.split('/').all(|l| !l.is_empty())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "box".into())
}

/// Checks that a file named at `span` can be read; a missing file is an
/// error, one this user may not read (the service may run as another) a
/// warning.
fn check_readable(
    src: &SourceFile,
    s: &Spanned<String>,
    path: &Path,
    what: &str,
    errors: &mut Diagnostics,
    warnings: &mut Diagnostics,
) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            warnings.at(
                src,
                s.span(),
                format!(
                    "{what} {}: cannot read it as this user: {e}",
                    path.display()
                ),
            );
            None
        }
        Err(e) => {
            errors.at(
                src,
                s.span(),
                format!("{what} {}: cannot read: {e}", path.display()),
            );
            None
        }
    }
}

/// Validates `[output]`.
pub(crate) fn validate(
    src: &SourceFile,
    base_dir: &Path,
    raw: RawOutput,
    errors: &mut Diagnostics,
    warnings: &mut Diagnostics,
) -> Option<Output> {
    let before = errors.len();
    let has_mqtt = raw.mqtt.is_some();
    let mqtt = raw
        .mqtt
        .and_then(|m| validate_mqtt(src, base_dir, m, errors, warnings));
    let snapshots = raw
        .snapshots
        .and_then(|s| validate_snapshots(src, base_dir, s, has_mqtt, errors));
    (errors.len() == before).then_some(Output { mqtt, snapshots })
}

fn validate_snapshots(
    src: &SourceFile,
    base_dir: &Path,
    s: Spanned<RawSnapshots>,
    has_mqtt: bool,
    errors: &mut Diagnostics,
) -> Option<Snapshots> {
    let s = s.into_inner();
    let before = errors.len();
    let dir = match &s.dir {
        Some(d) if d.get_ref().trim().is_empty() => {
            errors.at(src, d.span(), "dir must name a directory");
            None
        }
        Some(d) => Some(resolve(base_dir, d.get_ref())),
        None => None,
    };
    let keep = match &s.keep {
        Some(k) => super::int_in_range(src, errors, k, "keep", 1, 1_000_000).map(|k| k as u32),
        None => Some(DEFAULT_SNAPSHOT_KEEP),
    };
    let max_bytes = match &s.max_bytes {
        Some(b) => {
            super::int_in_range(src, errors, b, "max_bytes", 64 << 10, 1 << 40).map(|b| b as u64)
        }
        None => Some(DEFAULT_SNAPSHOT_MAX_BYTES),
    };
    let quality = match &s.quality {
        Some(q) => super::int_in_range(src, errors, q, "quality", 1, 100).map(|q| q as u8),
        None => Some(DEFAULT_SNAPSHOT_QUALITY),
    };
    let publish = s.publish.as_ref().is_some_and(|p| *p.get_ref());
    if let (Some(p), true, false) = (&s.publish, publish, has_mqtt) {
        errors.at(
            src,
            p.span(),
            "publish = true needs an [output.mqtt] table (the broker to publish on)",
        );
    }
    if errors.len() != before {
        return None;
    }
    Some(Snapshots {
        dir,
        keep: keep?,
        max_bytes: max_bytes?,
        quality: quality?,
        publish,
    })
}

fn validate_mqtt(
    src: &SourceFile,
    base_dir: &Path,
    m: Spanned<RawMqtt>,
    errors: &mut Diagnostics,
    warnings: &mut Diagnostics,
) -> Option<Mqtt> {
    let span = m.span();
    let m = m.into_inner();
    let before = errors.len();
    let host = match &m.host {
        Some(h) if h.get_ref().trim().is_empty() || h.get_ref().contains(char::is_whitespace) => {
            errors.at(src, h.span(), "host must be a host name or address");
            None
        }
        Some(h) => Some(h.get_ref().clone()),
        None => {
            errors.at(
                src,
                span.clone(),
                "[output.mqtt] needs `host`, the broker's host name or address",
            );
            None
        }
    };
    let tls = m.tls.as_ref().is_some_and(|t| *t.get_ref());
    let port = match &m.port {
        Some(p) => super::int_in_range(src, errors, p, "port", 1, 65535).map(|p| p as u16),
        None => Some(if tls { DEFAULT_TLS_PORT } else { DEFAULT_PORT }),
    };
    let client_id = match &m.client_id {
        Some(c) if c.get_ref().is_empty() || c.get_ref().len() > 128 => {
            errors.at(src, c.span(), "client_id must be 1-128 characters");
            None
        }
        Some(c) => Some(c.get_ref().clone()),
        None => Some(format!("mainstream-{}", hostname())),
    };
    let username = m.username.as_ref().map(|u| u.get_ref().clone());
    let password_file = match &m.password_file {
        Some(p) => {
            if username.is_none() {
                errors.at(src, p.span(), "password_file needs `username` too");
            }
            let path = resolve(base_dir, p.get_ref());
            check_readable(src, p, &path, "password_file", errors, warnings);
            Some(path)
        }
        None => None,
    };
    let tls_ca_file = match (&m.ca_file, tls) {
        (Some(c), true) => {
            let path = resolve(base_dir, c.get_ref());
            if let Some(b) = check_readable(src, c, &path, "ca_file", errors, warnings) {
                if !b.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                    errors.at(
                        src,
                        c.span(),
                        format!(
                            "ca_file {}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)",
                            path.display()
                        ),
                    );
                }
            }
            Some(path)
        }
        (Some(c), false) => {
            errors.at(src, c.span(), "ca_file is only used with tls = true");
            None
        }
        (None, true) => Some(PathBuf::from(DEFAULT_CA_FILE)),
        (None, false) => None,
    };
    let topic_prefix = match &m.topic_prefix {
        Some(t) if !topic_ok(t.get_ref()) => {
            errors.at(
                src,
                t.span(),
                format!(
                    "topic_prefix {:?} must be 1-128 characters without `+`, `#`, empty levels or a leading or trailing `/`",
                    t.get_ref()
                ),
            );
            None
        }
        Some(t) => Some(t.get_ref().clone()),
        None => Some(DEFAULT_TOPIC_PREFIX.to_owned()),
    };
    let discovery = m.discovery.as_ref().is_none_or(|d| *d.get_ref());
    let discovery_prefix = match &m.discovery_prefix {
        Some(t) if !topic_ok(t.get_ref()) => {
            errors.at(
                src,
                t.span(),
                format!(
                    "discovery_prefix {:?} must be 1-128 characters without `+`, `#`, empty levels or a leading or trailing `/`",
                    t.get_ref()
                ),
            );
            None
        }
        Some(t) => Some(t.get_ref().clone()),
        None => Some(DEFAULT_DISCOVERY_PREFIX.to_owned()),
    };
    let keep_alive_s = match &m.keep_alive_s {
        Some(k) => super::int_in_range(src, errors, k, "keep_alive_s", 5, 3600).map(|k| k as u16),
        None => Some(30),
    };
    if errors.len() != before {
        return None;
    }
    Some(Mqtt {
        host: host?,
        port: port?,
        client_id: client_id?,
        username,
        password_file,
        tls_ca_file,
        topic_prefix: topic_prefix?,
        discovery_prefix: discovery_prefix.filter(|_| discovery),
        keep_alive_s: keep_alive_s?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> (Option<Output>, Vec<String>, Vec<String>) {
        let src = SourceFile::new("/etc/m/config.toml", text.to_owned());
        let raw: RawOutput = toml::from_str(text).unwrap();
        let mut errors = Diagnostics::default();
        let mut warnings = Diagnostics::default();
        let out = validate(&src, Path::new("/etc/m"), raw, &mut errors, &mut warnings);
        let s = |d: Diagnostics| d.iter().map(|d| d.to_string()).collect();
        (out, s(errors), s(warnings))
    }

    #[test]
    fn no_table_means_nothing_leaves_the_box() {
        let (out, e, _) = check("");
        assert_eq!(out, Some(Output::default()));
        assert!(e.is_empty());
    }

    #[test]
    fn a_minimal_mqtt_table_gets_documented_defaults() {
        let (out, e, _) = check("[mqtt]\nhost = \"broker.lan\"\n");
        assert!(e.is_empty(), "{e:?}");
        let m = out.unwrap().mqtt.unwrap();
        assert_eq!(m.host, "broker.lan");
        assert_eq!(m.port, DEFAULT_PORT);
        assert!(m.client_id.starts_with("mainstream-"));
        assert_eq!(m.topic_prefix, "mainstream");
        assert_eq!(m.discovery_prefix.as_deref(), Some("homeassistant"));
        assert_eq!(m.tls_ca_file, None);
        assert_eq!(m.keep_alive_s, 30);
    }

    #[test]
    fn tls_defaults_to_port_8883_and_the_system_ca_bundle() {
        let (out, e, _) = check("[mqtt]\nhost = \"b\"\ntls = true\ndiscovery = false\n");
        assert!(e.is_empty(), "{e:?}");
        let m = out.unwrap().mqtt.unwrap();
        assert_eq!(m.port, DEFAULT_TLS_PORT);
        assert_eq!(m.tls_ca_file, Some(PathBuf::from(DEFAULT_CA_FILE)));
        assert_eq!(m.discovery_prefix, None);
    }

    #[test]
    fn each_bad_key_is_reported_at_its_line_and_column() {
        let text = "[mqtt]\nport = 70000\ntopic_prefix = \"a/#\"\npassword_file = \"/nonexistent/pw\"\nca_file = \"x.pem\"\n";
        let (out, e, _) = check(text);
        assert_eq!(out, None);
        let want = [
            "/etc/m/config.toml:1:1: [output.mqtt] needs `host`",
            "/etc/m/config.toml:2:8: port must be between 1 and 65535, not 70000",
            "/etc/m/config.toml:4:17: password_file needs `username` too",
            "/etc/m/config.toml:4:17: password_file /nonexistent/pw: cannot read",
            "/etc/m/config.toml:5:11: ca_file is only used with tls = true",
            "/etc/m/config.toml:3:16: topic_prefix \"a/#\" must be",
        ];
        for w in want {
            assert!(
                e.iter().any(|x| x.starts_with(w)),
                "missing {w:?} in {e:#?}"
            );
        }
        assert_eq!(e.len(), want.len(), "{e:#?}");
    }

    #[test]
    fn a_snapshots_table_gets_documented_defaults() {
        let (out, e, _) = check("[snapshots]\n");
        assert!(e.is_empty(), "{e:?}");
        let s = out.unwrap().snapshots.unwrap();
        assert_eq!(s.dir, None);
        assert_eq!(
            s.dir_in(Path::new("/var/lib/mainstream")),
            PathBuf::from("/var/lib/mainstream/snapshots")
        );
        assert_eq!(s.keep, DEFAULT_SNAPSHOT_KEEP);
        assert_eq!(s.max_bytes, DEFAULT_SNAPSHOT_MAX_BYTES);
        assert_eq!(s.quality, DEFAULT_SNAPSHOT_QUALITY);
        assert!(!s.publish);
        let (out, e, _) = check("[snapshots]\ndir = \"shots\"\nkeep = 3\nmax_bytes = 1048576\n");
        assert!(e.is_empty(), "{e:?}");
        let s = out.unwrap().snapshots.unwrap();
        assert_eq!(s.dir, Some(PathBuf::from("/etc/m/shots")));
        assert_eq!((s.keep, s.max_bytes), (3, 1 << 20));
    }

    #[test]
    fn bad_snapshot_keys_are_reported_at_their_line_and_column() {
        let text =
            "[snapshots]\nkeep = 0\nmax_bytes = 10\nquality = 101\npublish = true\ndir = \" \"\n";
        let (out, e, _) = check(text);
        assert_eq!(out, None);
        let want = [
            "/etc/m/config.toml:2:8: keep must be between 1 and 1000000, not 0",
            "/etc/m/config.toml:3:13: max_bytes must be between 65536 and 1099511627776, not 10",
            "/etc/m/config.toml:4:11: quality must be between 1 and 100, not 101",
            "/etc/m/config.toml:5:11: publish = true needs an [output.mqtt] table",
            "/etc/m/config.toml:6:7: dir must name a directory",
        ];
        for w in want {
            assert!(
                e.iter().any(|x| x.starts_with(w)),
                "missing {w:?} in {e:#?}"
            );
        }
        assert_eq!(e.len(), want.len(), "{e:#?}");
        let (out, e, _) = check("[mqtt]\nhost = \"b\"\n[snapshots]\npublish = true\n");
        assert!(e.is_empty(), "{e:?}");
        assert!(out.unwrap().snapshots.unwrap().publish);
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let d = std::env::temp_dir().join(format!("ms-output-ca-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("ca.pem");
        std::fs::write(&p, "not a certificate\n").unwrap();
        let (_, e, _) = check(&format!(
            "[mqtt]\nhost = \"b\"\ntls = true\nca_file = \"{}\"\n",
            p.display()
        ));
        assert!(e.len() == 1 && e[0].contains("no PEM certificate"), "{e:?}");
    }

    #[test]
    fn the_whole_config_reports_output_problems_with_file_line_and_column() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mobilenet_v2/manifest.toml");
        let text = format!(
            "[device]\nbase = \"{}\"\n\n[output.mqtt]\nhots = \"broker\"\nport = 0\n",
            base.display()
        );
        let err = super::super::load_str(Path::new("/etc/m/config.toml"), &text).unwrap_err();
        let e: Vec<String> = err.errors.iter().map(|d| d.to_string()).collect();
        assert!(
            e.iter()
                .any(|x| x.starts_with("/etc/m/config.toml:5:1: unknown field `hots`")),
            "{e:#?}"
        );
        let text = format!(
            "[device]\nbase = \"{}\"\n\n[output.mqtt]\nhost = \"broker\"\nport = 0\n",
            base.display()
        );
        let err = super::super::load_str(Path::new("/etc/m/config.toml"), &text).unwrap_err();
        let e: Vec<String> = err.errors.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            e,
            vec!["/etc/m/config.toml:6:8: port must be between 1 and 65535, not 0".to_owned()]
        );
        let text = format!(
            "[device]\nbase = \"{}\"\n\n[output.mqtt]\nhost = \"broker\"\n",
            base.display()
        );
        let (cfg, _) = super::super::load_str(Path::new("/etc/m/config.toml"), &text).unwrap();
        assert_eq!(cfg.output.mqtt.unwrap().host, "broker");
    }
}
