//! Regressions of the configuration path found while fuzzing it (issue 2,
//! `fuzz/README.md`). The fuzzer found no panic; these are the resource
//! problems found while building its harness: a config that names a huge (or
//! endless) file, or that makes every error repeat every camera name, must be
//! refused with a bounded amount of memory, like the config file itself is
//! (`config::MAX_FILE_BYTES`).
//!
//! Each test first checks that the same setup without the problem is
//! accepted, so it fails only for the reason its name gives.

use crate::common::repo;
use mainstream::config::{self, Diagnostic, Report};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "mainstream-regress-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create scratch dir");
        Scratch(p)
    }

    fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().expect("has a parent")).expect("create dir");
        std::fs::write(&p, bytes).expect("write scratch file");
        p
    }

    /// The real base manifest, the real espresso M-Package and replay clip.
    fn with_real_files(self) -> Self {
        for (rel, from) in [
            ("base/manifest.toml", "models/mobilenet_v2/manifest.toml"),
            (
                "pkg/package.toml",
                "tests/fixtures/config/pkg/espresso/package.toml",
            ),
            ("clip.mjpeg", "tests/fixtures/config/clip.mjpeg"),
        ] {
            self.write(rel, &std::fs::read(repo(from)).expect("read fixture"));
        }
        self
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A valid config for the files of [`Scratch::with_real_files`].
const CONFIG: &str = r#"
[device]
budget_cores = 1
state_dir = "state"
base = "base/manifest.toml"

[[camera]]
name = "counter"
source = "clip.mjpeg"
fps = 10

[[app]]
name = "espresso"
camera = "counter"
package = "pkg"
"#;

/// `text` padded with TOML comment lines past [`config::MAX_FILE_BYTES`];
/// still a valid file of its kind.
fn padded_past_the_limit(text: &[u8]) -> Vec<u8> {
    let mut out = text.to_vec();
    let line = [b"#".repeat(1023), b"\n".to_vec()].concat();
    while out.len() as u64 <= config::MAX_FILE_BYTES {
        out.extend_from_slice(&line);
    }
    out
}

fn show(r: &Report) -> String {
    r.errors.iter().map(|d| format!("{d}\n")).collect()
}

fn load_ok(s: &Scratch) {
    let path = s.0.join("config.toml");
    if let Err(r) = config::load_str(&path, CONFIG) {
        panic!("the unmodified setup must be valid:\n{}", show(&r));
    }
}

// `base = "/dev/zero"` made `check` allocate until the process died
// (`BaseManifest::load` read the whole file with `fs::read_to_string`). A
// test cannot name /dev/zero without risking the machine's memory before the
// fix, so this checks the same bound on a finite file.
#[test]
fn a_base_manifest_larger_than_max_file_bytes_is_refused() {
    let s = Scratch::new("big-base").with_real_files();
    load_ok(&s);
    let real = std::fs::read(s.0.join("base/manifest.toml")).expect("read manifest");
    let big = s.write("base/manifest.toml", &padded_past_the_limit(&real));
    let r = config::load_str(&s.0.join("config.toml"), CONFIG)
        .expect_err("a base manifest over the size limit is refused, not read whole");
    assert!(
        r.errors.iter().any(|d: &Diagnostic| d.path == big),
        "no diagnostic names {}:\n{}",
        big.display(),
        show(&r)
    );
}

// Same for an M-Package's `package.toml` (`package::load` used
// `fs::read_to_string` too).
#[test]
fn a_package_toml_larger_than_max_file_bytes_is_refused() {
    let s = Scratch::new("big-package").with_real_files();
    load_ok(&s);
    let real = std::fs::read(s.0.join("pkg/package.toml")).expect("read package");
    let big = s.write("pkg/package.toml", &padded_past_the_limit(&real));
    let r = config::load_str(&s.0.join("config.toml"), CONFIG)
        .expect_err("a package.toml over the size limit is refused, not read whole");
    assert!(
        r.errors.iter().any(|d: &Diagnostic| d.path == big),
        "no diagnostic names {}:\n{}",
        big.display(),
        show(&r)
    );
}

// Each app naming an unknown camera listed every declared camera in its
// error, so diagnostics grew as cameras x apps: a 935 KB config (5,000
// cameras, 25,000 apps) made `mainstream check` abort on a failed allocation
// under a 4 GB limit. The list held invalid names too, so one long camera
// name repeated in every app's error does the same. The diagnostics must stay
// proportional to the input.
#[test]
fn diagnostics_grow_with_the_config_not_with_cameras_times_apps() {
    let s = Scratch::new("many-unknown").with_real_files();
    load_ok(&s);
    let many_cameras: String = (0..1000)
        .map(|i| format!("[[camera]]\nname = \"camera-{i:020}\"\n"))
        .collect();
    let one_long_name = format!("[[camera]]\nname = \"{}\"\n", "c".repeat(20_000));
    for cameras in [many_cameras, one_long_name] {
        let mut text = format!("{CONFIG}{cameras}");
        for _ in 0..1000 {
            text.push_str("[[app]]\ncamera = \"nowhere\"\n");
        }
        let r = config::load_str(&s.0.join("config.toml"), &text)
            .expect_err("cameras without source and apps without camera are refused");
        assert!(
            r.errors.iter().any(|d| d.msg.contains("\"nowhere\"")),
            "the unknown camera is reported"
        );
        let total: usize = r
            .errors
            .iter()
            .chain(&r.warnings)
            .map(|d| d.msg.len())
            .sum();
        let bound = 16 * text.len() + (64 << 10);
        assert!(
            total <= bound,
            "{total} bytes of diagnostics for a {}-byte config (bound {bound})",
            text.len()
        );
    }
}

// Every app re-loaded its M-Package and copied all of the package's problems
// into the report, so a broken package named by many apps multiplied its
// diagnostics by the number of apps (5 apps naming one 1 MB package with
// 14,490 bad heads gave 217,360 lines and 43 s of CPU in `mainstream check`;
// the 28,569 apps of a 1 MB config would need about 180 GB). The
// diagnostics must stay proportional to the files read.
#[test]
fn diagnostics_of_a_package_shared_by_many_apps_do_not_multiply() {
    let s = Scratch::new("shared-broken-package").with_real_files();
    load_ok(&s);
    let mut pkg = String::from_utf8(std::fs::read(s.0.join("pkg/package.toml")).expect("read"))
        .expect("UTF-8 fixture");
    for branch in 0..400 {
        pkg.push_str(&format!(
            "\n[[head]]\nbranch = {}\ntensor = \"t\"\nmodel = \"base\"\naccuracy = 2.0\nfpr = 0.1\n",
            100 + branch
        ));
    }
    s.write("pkg/package.toml", pkg.as_bytes());
    let mut text = String::from(CONFIG);
    for i in 0..200 {
        text.push_str(&format!(
            "[[app]]\nname = \"app{i}\"\ncamera = \"counter\"\npackage = \"pkg\"\n"
        ));
    }
    let r = config::load_str(&s.0.join("config.toml"), &text)
        .expect_err("apps naming a broken package are refused");
    assert!(
        r.errors.iter().any(|d| d.msg.contains("accuracy")),
        "the package's own problems are reported"
    );
    let total: usize = r
        .errors
        .iter()
        .chain(&r.warnings)
        .map(|d| d.msg.len())
        .sum();
    let bound = 16 * (text.len() + pkg.len()) + (64 << 10);
    assert!(
        total <= bound,
        "{total} bytes of diagnostics for {} bytes of config and package (bound {bound})",
        text.len() + pkg.len()
    );
}

// Issue 24: a FIFO named `*.toml` in apps.d made `config::load` block in
// open(2) for ever (so `check`, `status` and the service's reload hung). It is
// refused at once, naming the file; the load runs on a thread so that a
// regression fails here instead of hanging the test run.
#[test]
fn a_fifo_drop_in_is_refused_without_blocking_the_load() {
    let s = Scratch::new("fifo-dropin").with_real_files();
    load_ok(&s);
    let config = s.write("config.toml", CONFIG.as_bytes());
    std::fs::create_dir_all(s.0.join("apps.d")).expect("create apps.d");
    let fifo = s.0.join("apps.d/evil.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(config::load(&config).map(drop).map_err(|r| show(&r)));
    });
    let shown = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("config::load returned within 30 s")
        .expect_err("a FIFO drop-in is refused");
    let want = format!(
        "{}: is a FIFO (named pipe), not a regular file",
        fifo.display()
    );
    assert!(shown.contains(&want), "{shown}");
}
