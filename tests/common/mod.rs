//! What the tests that run the real binary on the real models share.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `rel` under the repository root.
pub fn repo(rel: &str) -> PathBuf {
    root().join(rel)
}

/// A camera fixture, `tests/fixtures/camera/NAME`.
pub fn camera_fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/camera").join(name)
}

/// The real MobileNetV2 base, loaded once for every test of the binary.
pub fn base() -> &'static mainstream::model::net::Base {
    static BASE: std::sync::OnceLock<mainstream::model::net::Base> = std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        let m = mainstream::model::manifest::BaseManifest::load(
            &root().join("models/mobilenet_v2/manifest.toml"),
        )
        .unwrap();
        mainstream::model::net::Base::load(m).unwrap()
    })
}

/// The binary under test (`MAINSTREAM_BIN` runs another build, e.g. the
/// static aarch64 one under qemu).
pub fn bin() -> PathBuf {
    std::env::var_os("MAINSTREAM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mainstream")))
}

/// A fresh scratch directory `<prefix>-<name>-<pid>` with an empty `apps.d/`.
pub fn scratch_dir(prefix: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("apps.d")).unwrap();
    dir
}

/// `dir/config.toml`: the real base, a budget of one core, one inference
/// thread, state in `dir/state`, and the demo clip as camera "campus" at 10 fps.
pub fn write_demo_camera_config(dir: &Path) {
    let r = root();
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[device]\nbudget_cores = 1.0\nstate_dir = \"state\"\nthreads = 1\nbase = \"{}/models/mobilenet_v2/manifest.toml\"\n\n\
             [[camera]]\nname = \"campus\"\nsource = \"{}/models/demo/demo.mjpeg\"\nfps = 10\n",
            r.display(),
            r.display()
        ),
    )
    .unwrap();
}

/// `mainstream CMD --config DIR/config.toml ARGS...` with warnings-only logs.
pub fn run_with_config(cmd: &str, dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg(cmd)
        .arg("--config")
        .arg(dir.join("config.toml"))
        .args(args)
        .env("MAINSTREAM_LOG", "warn")
        .output()
        .expect("the binary runs")
}

/// One measured cost profile for every test of a test binary: the same base
/// on the same CPU (the first boot of a fresh box measures it the same way).
pub fn shared_profile() -> &'static Path {
    static PROFILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PROFILE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ms-test-profile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.toml"),
            format!(
                "[device]\nstate_dir = \"state\"\nbase = \"{}/models/mobilenet_v2/manifest.toml\"\n",
                root().display()
            ),
        )
        .unwrap();
        let out = Command::new(bin())
            .args(["profile", "--runs", "3", "--config"])
            .arg(dir.join("config.toml"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        dir.join("state/profile.bin")
    })
}

/// `mainstream status --json --config DIR/config.toml`, which must succeed,
/// parsed.
pub fn status_json(dir: &Path) -> serde_json::Value {
    let out = Command::new(bin())
        .args(["status", "--json", "--config"])
        .arg(dir.join("config.toml"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
