//! Which snapshots are kept: per app, at most `keep` files and `max_bytes`
//! bytes, the oldest removed first.
//!
//! A snapshot is `DIR/CAMERA/APP/ID.jpg`, its id starting with the event's
//! start time in ms (`1764000000123-1a2b3c4d`), so "oldest" is the order of
//! that number (then of the name). The index is rebuilt from the directory
//! when the service starts ([`Retention::scan`]), so the limits hold across
//! restarts and a lowered limit takes effect at the next start; temporary
//! files left by a crash mid-write (`.ID.jpg.tmp`) are removed then. Files
//! that are not snapshots are left alone.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

/// One kept snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Kept {
    start_ms: u64,
    name: String,
    bytes: u64,
}

/// The snapshots of one app directory, oldest first.
#[derive(Clone, Debug, Default)]
struct AppDir {
    files: VecDeque<Kept>,
    bytes: u64,
}

/// The retention index of a snapshot directory.
#[derive(Debug)]
pub(crate) struct Retention {
    root: PathBuf,
    keep: usize,
    max_bytes: u64,
    apps: BTreeMap<PathBuf, AppDir>,
    removed: u64,
}

/// The start time of a snapshot file name `MS-HEX.jpg`, if it is one.
fn start_ms(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".jpg")?;
    let (ms, tag) = stem.split_once('-')?;
    (tag.len() == 8 && tag.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(())
        .and_then(|_| ms.parse().ok())
}

/// Sub-directories of `dir` (none if it cannot be read).
fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

impl Retention {
    /// An empty index for `root` (nothing scanned yet).
    pub(crate) fn new(root: &Path, keep: u32, max_bytes: u64) -> Retention {
        Retention {
            root: root.to_owned(),
            keep: keep.max(1) as usize,
            max_bytes,
            apps: BTreeMap::new(),
            removed: 0,
        }
    }

    /// Indexes `ROOT/CAMERA/APP/*.jpg`, removes leftover temporary files and
    /// trims every app to the limits.
    pub(crate) fn scan(&mut self) {
        for cam in subdirs(&self.root) {
            for app in subdirs(&cam) {
                let mut files = Vec::new();
                let Ok(rd) = std::fs::read_dir(&app) else {
                    continue;
                };
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name.starts_with('.') && name.ends_with(".jpg.tmp") {
                        let _ = std::fs::remove_file(e.path());
                        continue;
                    }
                    let Some(ms) = start_ms(&name) else { continue };
                    let Ok(md) = e.metadata() else { continue };
                    if md.is_file() {
                        files.push(Kept {
                            start_ms: ms,
                            name,
                            bytes: md.len(),
                        });
                    }
                }
                files.sort_by(|a, b| (a.start_ms, &a.name).cmp(&(b.start_ms, &b.name)));
                let bytes = files.iter().map(|k| k.bytes).sum();
                self.apps.insert(
                    app.clone(),
                    AppDir {
                        files: files.into(),
                        bytes,
                    },
                );
                self.trim(&app);
            }
        }
    }

    /// Records a snapshot just written to `app_dir/name` and removes the
    /// oldest ones of that app while it is over a limit. The new one is
    /// never removed here: the caller writes nothing bigger than `max_bytes`.
    pub(crate) fn add(&mut self, app_dir: &Path, name: &str, bytes: u64) {
        let Some(ms) = start_ms(name) else { return };
        let d = self.apps.entry(app_dir.to_owned()).or_default();
        // The same event written again (a replaced file) counts once.
        if let Some(i) = d.files.iter().position(|k| k.name == name) {
            if let Some(old) = d.files.remove(i) {
                d.bytes -= old.bytes;
            }
        }
        let k = Kept {
            start_ms: ms,
            name: name.to_owned(),
            bytes,
        };
        // Usually the newest: insert from the back.
        let at = d
            .files
            .iter()
            .rposition(|o| (o.start_ms, &o.name) <= (k.start_ms, &k.name))
            .map_or(0, |i| i + 1);
        d.files.insert(at, k);
        d.bytes += bytes;
        self.trim_keeping(app_dir, Some(name));
    }

    fn trim(&mut self, app_dir: &Path) {
        self.trim_keeping(app_dir, None);
    }

    fn trim_keeping(&mut self, app_dir: &Path, spare: Option<&str>) {
        let Some(d) = self.apps.get_mut(app_dir) else {
            return;
        };
        while d.files.len() > self.keep || d.bytes > self.max_bytes {
            let Some(i) = d.files.iter().position(|k| Some(k.name.as_str()) != spare) else {
                break;
            };
            let Some(old) = d.files.remove(i) else { break };
            d.bytes -= old.bytes;
            let path = app_dir.join(&old.name);
            match std::fs::remove_file(&path) {
                Ok(()) => self.removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => log::warn!("snapshots: cannot remove {}: {e}", path.display()),
            }
        }
    }

    /// Files and bytes kept in all.
    pub(crate) fn totals(&self) -> (u64, u64) {
        self.apps
            .values()
            .fold((0, 0), |(n, b), d| (n + d.files.len() as u64, b + d.bytes))
    }

    /// Snapshots removed to stay within the limits since the index was made.
    pub(crate) fn removed(&self) -> u64 {
        self.removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ms-retention-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn shot(dir: &Path, ms: u64, bytes: usize) -> String {
        std::fs::create_dir_all(dir).unwrap();
        let name = format!("{ms}-0000abcd.jpg");
        std::fs::write(dir.join(&name), vec![0u8; bytes]).unwrap();
        name
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_oldest_snapshots_go_first_when_the_count_is_over() {
        let root = tmp("count");
        let app = root.join("gate").join("birds");
        let mut r = Retention::new(&root, 3, 1 << 30);
        r.scan();
        for ms in [100, 300, 200, 400, 500] {
            let n = shot(&app, ms, 10);
            r.add(&app, &n, 10);
        }
        assert_eq!(
            names(&app),
            ["300-0000abcd.jpg", "400-0000abcd.jpg", "500-0000abcd.jpg"]
        );
        assert_eq!(r.removed(), 2);
        assert_eq!(r.totals(), (3, 30));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn the_byte_limit_removes_old_snapshots_but_never_the_new_one() {
        let root = tmp("bytes");
        let app = root.join("gate").join("cars");
        let mut r = Retention::new(&root, 100, 250);
        for ms in 1..=3 {
            let n = shot(&app, ms, 100);
            r.add(&app, &n, 100);
        }
        // 300 bytes > 250: the oldest went.
        assert_eq!(names(&app), ["2-0000abcd.jpg", "3-0000abcd.jpg"]);
        let n = shot(&app, 4, 240);
        r.add(&app, &n, 240);
        assert_eq!(names(&app), ["4-0000abcd.jpg"]);
        assert_eq!(r.totals(), (1, 240));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_restart_rescans_trims_to_lowered_limits_and_removes_torn_writes() {
        let root = tmp("scan");
        let birds = root.join("gate").join("birds");
        let cars = root.join("yard").join("cars");
        for ms in 1..=5 {
            shot(&birds, ms, 10);
        }
        shot(&cars, 7, 10);
        std::fs::write(birds.join(".9-0000abcd.jpg.tmp"), b"torn").unwrap();
        std::fs::write(birds.join("notes.txt"), b"mine").unwrap();
        let mut r = Retention::new(&root, 2, 1 << 30);
        r.scan();
        assert_eq!(
            names(&birds),
            ["4-0000abcd.jpg", "5-0000abcd.jpg", "notes.txt"]
        );
        assert_eq!(names(&cars), ["7-0000abcd.jpg"]);
        assert_eq!(r.totals(), (3, 30));
        // Limits apply per app: a new birds snapshot does not touch cars.
        let n = shot(&birds, 6, 10);
        r.add(&birds, &n, 10);
        assert_eq!(
            names(&birds),
            ["5-0000abcd.jpg", "6-0000abcd.jpg", "notes.txt"]
        );
        assert_eq!(names(&cars), ["7-0000abcd.jpg"]);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn only_snapshot_names_are_indexed() {
        assert_eq!(
            start_ms("1764000000123-1a2b3c4d.jpg"),
            Some(1_764_000_000_123)
        );
        assert_eq!(start_ms("1764-1a2b3c4d.jpeg"), None);
        assert_eq!(start_ms("x-1a2b3c4d.jpg"), None);
        assert_eq!(start_ms("17-1a2b3c4.jpg"), None);
        assert_eq!(start_ms("17-1a2b3c4g.jpg"), None);
    }
}
