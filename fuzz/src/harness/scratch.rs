//! Per-thread scratch directories on tmpfs for the targets that go through
//! files (the readers, the event log and the state files open paths).
//!
//! A directory is `mainstream-fuzz-io-<pid>-<n>` under `/dev/shm` when the
//! machine has it, else the temp dir; one per thread, so the replay test's
//! parallel tests never share one. Directories of processes that no longer
//! run are removed when the first one of a process is made.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

const PREFIX: &str = "mainstream-fuzz-io-";

fn parent() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// An empty directory private to this thread (emptied on every call).
pub fn dir() -> PathBuf {
    static CLEAN: Once = Once::new();
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static DIR: OnceCell<PathBuf> = const { OnceCell::new() };
    }
    let parent = parent();
    CLEAN.call_once(|| remove_stale(&parent));
    let dir = DIR.with(|d| {
        d.get_or_init(|| {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            parent.join(format!("{PREFIX}{}-{n}", std::process::id()))
        })
        .clone()
    });
    // Emptied, not removed: cheaper, and a reader of the last input is gone.
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                let p = e.path();
                let r = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                if let Err(err) = r {
                    panic!("cannot empty {}: {err}", dir.display());
                }
            }
        }
        Err(_) => {
            if let Err(e) = std::fs::create_dir_all(&dir) {
                panic!("cannot create {}: {e}", dir.display());
            }
        }
    }
    dir
}

/// Writes `bytes` to `name` in a fresh [`dir`] and returns the path.
pub fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir().join(name);
    if let Err(e) = std::fs::write(&path, bytes) {
        panic!("cannot write {}: {e}", path.display());
    }
    path
}
