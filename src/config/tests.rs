//! Tests of the two-phase config loader against files on disk.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A scratch directory under the system temp dir, removed on drop.
pub(crate) struct Scratch(pub PathBuf);

impl Scratch {
    pub(crate) fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "mainstream-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    pub(crate) fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn base_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mobilenet_v2/manifest.toml")
}

fn base_sha() -> String {
    crate::model::manifest::BaseManifest::load(&base_manifest())
        .unwrap()
        .sha256
}

fn package(sha: &str) -> String {
    format!(
        r#"format = 1
name = "vans"
base_sha256 = "{sha}"
positive = ["minivan"]

[event]
length_ms = 4000
frequency = 0.3
correlation = 0.7

[[head]]
branch = 20
tensor = "bp20_pool"
model = "base"
accuracy = 0.9
fpr = 0.05
"#
    )
}

/// A valid setup: one replay camera, one inline app, one drop-in app.
fn valid(s: &Scratch) -> PathBuf {
    s.write("clip.mjpeg", "not really a clip; check does not decode it");
    s.write("pkg/vans/package.toml", &package(&base_sha()));
    s.write(
        "apps.d/vans2.toml",
        "camera = \"gate\"\npackage = \"../pkg/vans\"\nvoting = 2\n",
    );
    s.write(
        "config.toml",
        &format!(
            r#"[device]
budget_cores = 1.5
state_dir = "state"
base = "{}"

[[camera]]
name = "gate"
source = "clip.mjpeg"
fps = 10

[[app]]
name = "vans"
camera = "gate"
package = "pkg/vans"
event_length_ms = 2500
"#,
            base_manifest().display()
        ),
    )
}

#[test]
fn a_valid_config_loads_with_defaults_from_the_package_and_the_file_name() {
    let s = Scratch::new("valid");
    let path = valid(&s);
    let (cfg, warnings) = load(&path).unwrap_or_else(|r| panic!("{:#?}", r.errors));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(cfg.device.budget_cores, 1.5);
    assert_eq!(cfg.device.share_margin, super::DEFAULT_SHARE_MARGIN);
    assert_eq!(cfg.device.state_dir, s.0.join("state"));
    assert_eq!(cfg.cameras.len(), 1);
    assert_eq!(
        cfg.cameras[0].source,
        Source::Replay(s.0.join("clip.mjpeg"))
    );
    assert_eq!(cfg.cameras[0].pace, Pace::Nominal);
    assert_eq!(cfg.apps.len(), 2);
    let inline = &cfg.apps[0];
    assert_eq!(inline.name, "vans");
    assert_eq!(
        inline.event.length_ms, 2500.0,
        "config overrides the package"
    );
    assert_eq!(inline.event.frequency, 0.3, "package default");
    assert_eq!(inline.voting, super::DEFAULT_VOTING);
    let dropin = &cfg.apps[1];
    assert_eq!(dropin.name, "vans2", "named after its file");
    assert_eq!(dropin.voting, 2);
    assert_eq!(dropin.origin, s.0.join("apps.d/vans2.toml"));
}

#[test]
fn an_app_that_sets_its_event_length_drops_the_packages_length_quantiles() {
    let s = Scratch::new("lengths");
    let path = valid(&s);
    s.write(
        "pkg/vans/package.toml",
        &package(&base_sha()).replace(
            "length_ms = 4000",
            "length_ms = 4000\nlengths_ms = [5000.0, 3000.0]",
        ),
    );
    let (cfg, _) = load(&path).unwrap_or_else(|r| panic!("{:#?}", r.errors));
    // The inline app says its events last 2500 ms: all of them, then.
    assert_eq!(cfg.apps[0].event.length_ms, 2500.0);
    assert!(cfg.apps[0].event.lengths.is_empty());
    // The drop-in takes the package's length and its quantiles.
    assert_eq!(cfg.apps[1].event.length_ms, 4000.0);
    assert_eq!(cfg.apps[1].event.lengths.as_slice(), [3000.0, 5000.0]);
}

#[test]
fn every_problem_in_every_file_is_reported_at_once_with_positions() {
    let s = Scratch::new("many");
    let path = valid(&s);
    // Break the main file in three places and two drop-ins in one each.
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replace("budget_cores = 1.5", "budget_cores = 1.5\nbudget_core = 2")
        .replace("fps = 10", "fps = -3")
        .replace("camera = \"gate\"\npackage", "camera = \"door\"\npackage");
    std::fs::write(&path, &text).unwrap();
    s.write("apps.d/broken.toml", "camera = \"gate\"\npackage = [\n");
    s.write(
        "apps.d/typo.toml",
        "camera = \"gate\"\npackage = \"../pkg/vans\"\nvotign = 3\n",
    );
    let report = load(&path).unwrap_err();
    let lines: Vec<String> = report.errors.iter().map(|d| d.to_string()).collect();
    let cfg = path.display().to_string();
    let want = [
        format!("{cfg}:3:1: unknown field `budget_core`, expected one of `budget_cores`"),
        format!("{cfg}:10:7: fps must be above 0 and at most 240, not -3"),
        format!("{cfg}:14:10: app \"vans\" names camera \"door\", which does not exist (known cameras: gate)"),
        format!("{}:2:12: unclosed array", s.0.join("apps.d/broken.toml").display()),
        format!("{}:3:1: unknown field `votign`", s.0.join("apps.d/typo.toml").display()),
    ];
    for w in &want {
        assert!(
            lines.iter().any(|l| l.starts_with(w.as_str())),
            "missing {w:?} in {lines:#?}"
        );
    }
    // Nothing else: in particular no follow-on error from the unreadable [device].
    assert_eq!(lines.len(), want.len(), "{lines:#?}");
}

#[test]
fn the_sharing_margin_is_read_from_device_and_checked_at_its_line() {
    let s = Scratch::new("margin");
    let path = valid(&s);
    let text = std::fs::read_to_string(&path).unwrap();
    let set = |v: &str| {
        text.replace(
            "budget_cores = 1.5",
            &format!("budget_cores = 1.5\nshare_margin = {v}"),
        )
    };
    std::fs::write(&path, set("0")).unwrap();
    let (cfg, _) = load(&path).unwrap_or_else(|r| panic!("{:#?}", r.errors));
    assert_eq!(cfg.device.share_margin, 0.0);
    std::fs::write(&path, set("1.5")).unwrap();
    let report = load(&path).unwrap_err();
    let lines: Vec<String> = report.errors.iter().map(|d| d.to_string()).collect();
    let want = format!(
        "{}:3:16: share_margin must be at least 0 and at most 1, not 1.5",
        path.display()
    );
    assert_eq!(lines, [want]);
}

#[test]
fn a_package_cut_from_another_base_is_refused() {
    let s = Scratch::new("base");
    let path = valid(&s);
    s.write("pkg/vans/package.toml", &package(&"ab".repeat(32)));
    let report = load(&path).unwrap_err();
    assert!(
        report
            .errors
            .iter()
            .any(|d| d.msg.contains("was cut from base abababababab")),
        "{:#?}",
        report.errors
    );
}

#[test]
fn duplicate_names_are_refused_even_across_files() {
    let s = Scratch::new("dup");
    let path = valid(&s);
    s.write(
        "apps.d/vans.toml",
        "camera = \"gate\"\npackage = \"../pkg/vans\"\n",
    );
    let report = load(&path).unwrap_err();
    assert!(
        report.errors.iter().any(|d| d
            .msg
            .contains("app name \"vans\" (from the file name) is used twice")),
        "{:#?}",
        report.errors
    );
}

#[test]
fn an_absent_camera_device_is_a_warning_not_an_error() {
    let s = Scratch::new("dev");
    let path = valid(&s);
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "source = \"clip.mjpeg\"",
        "source = \"/dev/v4l/by-id/usb-nothing-video-index0\"\nwidth = 640\nheight = 480",
    );
    std::fs::write(&path, text).unwrap();
    let (cfg, warnings) = load(&path).unwrap_or_else(|r| panic!("{:#?}", r.errors));
    assert_eq!(
        cfg.cameras[0].format,
        Some(PixelFormat::Mjpeg),
        "devices default to MJPEG"
    );
    assert!(
        warnings[0].msg.contains("is not present now"),
        "{warnings:?}"
    );
}

#[test]
fn a_device_camera_needs_its_size() {
    let s = Scratch::new("size");
    let path = valid(&s);
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "source = \"clip.mjpeg\"",
        "source = \"/dev/video0\"\nwidth = 641\npixel_format = \"YUYV\"",
    );
    std::fs::write(&path, text).unwrap();
    let msgs: Vec<String> = load(&path)
        .unwrap_err()
        .errors
        .into_iter()
        .map(|d| d.msg)
        .collect();
    assert!(
        msgs.iter().any(|m| m.contains("needs `height`")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.contains("YUYV needs an even width")),
        "{msgs:?}"
    );
}

#[test]
fn a_missing_config_file_is_one_whole_file_error() {
    let s = Scratch::new("missing");
    let report = load(&s.0.join("nope.toml")).unwrap_err();
    assert_eq!(report.errors.len(), 1);
    assert_eq!(report.errors[0].line, 0);
    assert!(
        report.errors[0].msg.starts_with("cannot open"),
        "{:?}",
        report.errors
    );
}

#[test]
fn syntax_errors_do_not_stop_at_the_first() {
    let s = Scratch::new("syntax");
    let p = s.write(
        "config.toml",
        "[device\nbudget_cores = = 2\n[[camera]]\nname = \"a\"\nname = \"b\"\n",
    );
    let report = load(&p).unwrap_err();
    assert!(report.errors.len() >= 2, "{:#?}", report.errors);
}
