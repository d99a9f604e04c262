//! Shared fixtures and invariant checks for the fuzz targets.
//!
//! The config loader reads the base manifest, M-Packages, replay sources and
//! drop-in directories from disk. The `config` and `package` targets therefore
//! work in one scratch tree on tmpfs (`/dev/shm` when present), built once
//! from the repository's own files and only read afterwards. The tree mirrors
//! the repository layout, so the real fixture
//! `tests/fixtures/config/good/config.toml` (with its `../../../../models/...`
//! base path) resolves inside it unchanged and is a useful seed as it is.
//!
//! The `config` target also writes each input's own files: the main config and
//! up to [`DROPIN_NAMES`]`.len()` drop-ins, into a per-process directory
//! [`CASE_REL`]`-<pid>` at the same depth as `good/` (so the fixtures'
//! relative paths still resolve). On tmpfs that costs a few microseconds an
//! input, against about a millisecond for the validation itself.
//!
//! Besides "no panic", every target checks the documented guarantees of what
//! it fuzzes (in the manner of retina's `check_invariants()`): a rejected
//! input always says why, an accepted one holds only values in range.

pub mod harness;

use mainstream::config::{self, Config, Diagnostic, Report, Source};
use mainstream::model::manifest::{BaseManifest, Role};
use mainstream::package::Package;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The real drop-in of the good fixture, used when an input names no drop-ins.
const SECOND_CUP: &[u8] = include_bytes!("../../tests/fixtures/config/good/apps.d/second-cup.toml");

/// Files of the scratch tree: (path inside the tree, contents), all real
/// repository files embedded at build time.
const FILES: &[(&str, &[u8])] = &[
    (
        "models/mobilenet_v2/manifest.toml",
        include_bytes!("../../models/mobilenet_v2/manifest.toml"),
    ),
    (
        "tests/fixtures/config/clip.mjpeg",
        include_bytes!("../../tests/fixtures/config/clip.mjpeg"),
    ),
    (
        "tests/fixtures/config/pkg/espresso/package.toml",
        include_bytes!("../../tests/fixtures/config/pkg/espresso/package.toml"),
    ),
    (
        "tests/fixtures/config/good/apps.d/second-cup.toml",
        SECOND_CUP,
    ),
    (
        "tests/fixtures/config/bad/apps.d/typo.toml",
        include_bytes!("../../tests/fixtures/config/bad/apps.d/typo.toml"),
    ),
];

/// Marker written last: a tree with it is complete.
const READY: &str = ".ready";

/// The M-Package directory the `package` target resolves head files from.
pub const PACKAGE_REL: &str = "tests/fixtures/config/pkg/espresso";
/// Where fuzzed manifest text claims to come from.
pub const MANIFEST_REL: &str = "models/mobilenet_v2/manifest.toml";
/// Prefix of the per-process directory the `config` target writes each
/// input into (`<prefix>-<pid>/config.toml` and `<prefix>-<pid>/apps.d/`).
pub const CASE_REL: &str = "tests/fixtures/config/fuzz";

/// File names of the drop-in slots, in input order: the real fixture's name
/// (so `good config NUL second-cup text` equals the fixture), the inline
/// app's name (a clash when the file names no app), a stem that is not a
/// valid app name, and a hidden file the loader must skip.
pub const DROPIN_NAMES: [&str; 4] = [
    "second-cup.toml",
    "espresso.toml",
    "two words.toml",
    ".hidden.toml",
];

/// FNV-1a over the embedded files, so a changed fixture gets a fresh tree.
fn fingerprint() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, bytes) in FILES {
        for &b in name
            .as_bytes()
            .iter()
            .chain([0u8].iter())
            .chain(bytes.iter())
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// tmpfs when the machine has one: the `config` target writes every input.
fn scratch_parent() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// The scratch tree's root, built on first use. Several fuzz processes
/// (`-jobs=N`) may race to build it: each writes a private copy and renames
/// it into place; the losers use the winner's.
pub fn scratch() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| match build() {
        Ok(p) => p,
        // No fuzzing is possible without the tree; this is setup, not input.
        Err(e) => panic!("cannot build the fuzz scratch tree: {e}"),
    })
}

fn build() -> std::io::Result<PathBuf> {
    let parent = scratch_parent();
    let name = format!("mainstream-fuzz-{:016x}", fingerprint());
    let root = parent.join(&name);
    if root.join(READY).is_file() {
        return Ok(root);
    }
    let tmp = parent.join(format!("{name}.tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    for (rel, bytes) in FILES {
        let p = tmp.join(rel);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&p, bytes)?;
    }
    std::fs::write(tmp.join(READY), b"")?;
    match std::fs::rename(&tmp, &root) {
        Ok(()) => Ok(root),
        Err(_) if root.join(READY).is_file() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(root)
        }
        Err(e) => Err(e),
    }
}

/// One input of the `config` target, written to disk.
pub struct ConfigCase<'a> {
    /// The main config file.
    pub path: PathBuf,
    /// Every file written for this input with its bytes: the main config
    /// first, then the drop-ins.
    pub files: Vec<(PathBuf, &'a [u8])>,
}

/// The per-process directory of the `config` target (created on first use;
/// directories of processes that no longer run are removed then).
fn case_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = scratch();
        let full = root.join(CASE_REL);
        let (parent, prefix) = match (full.parent(), full.file_name()) {
            (Some(p), Some(n)) => (p.to_owned(), format!("{}-", n.to_string_lossy())),
            _ => panic!("CASE_REL has a parent and a name"),
        };
        if let Ok(entries) = std::fs::read_dir(&parent) {
            for e in entries.flatten() {
                let name = e.file_name();
                let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                    continue;
                };
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = parent.join(format!("{prefix}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(dir.join(config::DEFAULT_APPS_DIR)) {
            panic!("cannot create {}: {e}", dir.display());
        }
        dir
    })
}

/// Splits `data` at NUL bytes (never valid in TOML) into the main config and
/// drop-ins, and writes them: chunk 0 as `config.toml`, chunk `i` as
/// `apps.d/DROPIN_NAMES[i - 1]` unless it is empty (then the slot has no
/// file); chunks past the last slot are ignored. An input without NUL gets the
/// good fixture's real drop-in, as the fixture itself would.
pub fn write_config_case(data: &[u8]) -> ConfigCase<'_> {
    let dir = case_dir();
    let apps = dir.join(config::DEFAULT_APPS_DIR);
    let mut chunks = data.split(|&b| b == 0);
    let main = chunks.next().unwrap_or_default();
    let mut dropins: Vec<&[u8]> = chunks.take(DROPIN_NAMES.len()).collect();
    if !data.contains(&0) {
        dropins = vec![SECOND_CUP];
    }
    let path = dir.join("config.toml");
    let mut files = Vec::with_capacity(1 + dropins.len());
    write(&path, main);
    files.push((path.clone(), main));
    for (i, name) in DROPIN_NAMES.iter().enumerate() {
        let p = apps.join(name);
        match dropins.get(i) {
            Some(text) if !text.is_empty() => {
                write(&p, text);
                files.push((p, *text));
            }
            _ => {
                if let Err(e) = std::fs::remove_file(&p) {
                    assert_eq!(
                        e.kind(),
                        std::io::ErrorKind::NotFound,
                        "{}: {e}",
                        p.display()
                    );
                }
            }
        }
    }
    ConfigCase { path, files }
}

fn write(p: &Path, bytes: &[u8]) {
    if let Err(e) = std::fs::write(p, bytes) {
        // The harness's own tmpfs, not the input: a setup failure.
        panic!("cannot write {}: {e}", p.display());
    }
}

/// A file whose diagnostics are checked: its path, its text when it is UTF-8
/// and its number of lines (counted once: diagnostics can be thousands).
pub struct Checked<'a> {
    path: &'a Path,
    lines: Option<usize>,
}

impl<'a> Checked<'a> {
    /// `bytes` as read from `path`.
    pub fn new(path: &'a Path, bytes: &[u8]) -> Self {
        // `split` finds newlines with core's memchr, which is not
        // instrumented: a byte loop here cost more than the loader itself.
        let lines = std::str::from_utf8(bytes)
            .ok()
            .map(|t| t.split('\n').count());
        Checked { path, lines }
    }
}

/// Checks a diagnostic: printable, and its position lies inside the text of
/// the file it points into when that is one of `files`.
pub fn check_diagnostic(d: &Diagnostic, files: &[Checked<'_>]) {
    assert!(!d.msg.is_empty(), "diagnostic without a message: {d:?}");
    let shown = d.to_string();
    assert!(shown.contains(&d.msg), "display loses the message: {shown}");
    if d.line > 0 {
        assert!(d.col >= 1, "line without a column: {d:?}");
        let file = files.iter().find(|f| f.path == d.path);
        if let Some(f) = file {
            let lines = f.lines.unwrap_or(0);
            assert!(
                d.line <= lines,
                "line {} past the end ({lines}): {d:?}",
                d.line
            );
        }
    } else {
        assert_eq!(d.col, 0, "whole-file diagnostic with a column: {d:?}");
    }
}

fn in_range(x: f64, lo: f64, hi: f64) -> bool {
    x.is_finite() && x >= lo && x <= hi
}

/// The guarantees of [`config::load`] for the files of `case`.
pub fn check_config(case: &ConfigCase<'_>, result: &Result<(Config, Vec<Diagnostic>), Report>) {
    let files: Vec<Checked<'_>> = case
        .files
        .iter()
        .map(|(p, bytes)| Checked::new(p, bytes))
        .collect();
    match result {
        Ok((cfg, warnings)) => {
            for w in warnings {
                check_diagnostic(w, &files);
            }
            check_valid_config(cfg, &case.path);
        }
        Err(report) => {
            assert!(
                !report.errors.is_empty(),
                "config refused without saying why (warnings: {:?})",
                report.warnings
            );
            for d in report.errors.iter().chain(&report.warnings) {
                check_diagnostic(d, &files);
            }
        }
    }
}

fn check_valid_config(cfg: &Config, path: &Path) {
    assert_eq!(cfg.path, path);
    let d = &cfg.device;
    assert!(
        d.budget_cores > 0.0 && in_range(d.budget_cores, 0.0, 1024.0),
        "{d:?}"
    );
    assert!((1..=256).contains(&d.threads), "{d:?}");
    assert!(!d.state_dir.as_os_str().is_empty(), "{d:?}");
    assert!(cfg.cameras.len() <= config::MAX_CAMERAS);
    assert!(cfg.apps.len() <= config::MAX_APPS);
    let mut names = std::collections::HashSet::new();
    for c in &cfg.cameras {
        assert!(names.insert(c.name.as_str()), "camera {:?} twice", c.name);
        assert!(valid_name(&c.name), "camera name {:?}", c.name);
        assert!(c.fps > 0.0 && in_range(c.fps, 0.0, 240.0), "{c:?}");
        for dim in [c.width, c.height].into_iter().flatten() {
            assert!((16..=8192).contains(&dim), "{c:?}");
        }
        if let Source::Device(_) = c.source {
            assert!(
                c.width.is_some() && c.height.is_some() && c.format.is_some(),
                "{c:?}"
            );
        }
    }
    let mut names = std::collections::HashSet::new();
    for a in &cfg.apps {
        assert!(names.insert(a.name.as_str()), "app {:?} twice", a.name);
        assert!(valid_name(&a.name), "app name {:?}", a.name);
        assert!(
            a.camera < cfg.cameras.len(),
            "app {:?} camera {}",
            a.name,
            a.camera
        );
        let e = a.event;
        assert!(
            e.length_ms > 0.0 && in_range(e.length_ms, 0.0, 3.6e6),
            "{e:?}"
        );
        assert!(
            e.frequency > 0.0 && in_range(e.frequency, 0.0, 1.0),
            "{e:?}"
        );
        assert!(in_range(e.correlation, 0.0, 1.0), "{e:?}");
        assert!((1..=16).contains(&a.voting), "voting {}", a.voting);
        assert!(in_range(a.min_f1, 0.0, 1.0), "min_f1 {}", a.min_f1);
        check_package(&a.package);
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && !n.starts_with('.')
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The guarantees of a package that [`mainstream::package::parse`] accepted.
pub fn check_package(p: &Package) {
    assert!(is_sha256_hex(&p.base_sha256), "{:?}", p.base_sha256);
    assert!(!p.positive.is_empty());
    if let Some(classes) = &p.classes {
        assert!(classes.len() >= 2, "{classes:?}");
        for c in &p.positive {
            assert!(classes.contains(c), "positive {c:?} not in {classes:?}");
        }
    }
    let e = p.event;
    if let Some(x) = e.length_ms {
        assert!(in_range(x, 1.0, 3.6e6), "{e:?}");
    }
    if let Some(x) = e.frequency {
        assert!(x > 0.0 && in_range(x, 0.0, 1.0), "{e:?}");
    }
    if let Some(x) = e.correlation {
        assert!(in_range(x, 0.0, 1.0), "{e:?}");
    }
    assert!(!p.heads.is_empty());
    for w in p.heads.windows(2) {
        assert!(
            w[0].branch < w[1].branch,
            "heads not strictly sorted: {:?}",
            p.heads
        );
    }
    for h in &p.heads {
        assert!(h.branch <= 10_000);
        assert!(
            in_range(h.accuracy, 0.0, 1.0) && in_range(h.fpr, 0.0, 1.0),
            "{h:?}"
        );
        if let mainstream::package::HeadModel::File {
            sha256: Some(s), ..
        } = &h.model
        {
            assert!(is_sha256_hex(s), "{s:?}");
        }
    }
}

/// The guarantees of a manifest that [`BaseManifest::parse`] accepted.
pub fn check_manifest(m: &BaseManifest) {
    let n = m.points.len();
    assert!(n >= 2);
    assert_eq!(m.segments(), n - 1);
    for (i, p) in m.points.iter().enumerate() {
        assert_eq!(p.index, i);
        let want = match i {
            0 => Role::Input,
            _ if i + 1 == n => Role::Output,
            _ => Role::Branch,
        };
        assert_eq!(p.role, want);
        assert!(!p.shape.is_empty() && p.shape.iter().all(|&d| d > 0));
    }
    assert_eq!(m.points[0].tensor, m.input.tensor);
    assert_eq!(m.points[n - 1].tensor, m.output);
    let s = &m.input.shape;
    assert!(s.len() == 4 && s[0] == 1 && s[1] == 3, "{s:?}");
    assert!(m.input.std.iter().all(|&x| x.is_finite() && x > 0.0));
    assert!(m.input.scale.is_finite());
    assert!(is_sha256_hex(&m.sha256), "{:?}", m.sha256);
}
