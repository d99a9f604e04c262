//! The delivery cursor: how far into the event log the broker has
//! acknowledged (`mqtt.cursor` in the state directory).
//!
//! It names a record boundary in one log file by the file's inode (a rotated
//! log keeps its inode under its new name `events.log.1`) and byte offset,
//! with the number of records before that offset in the file (for the
//! backlog count). Saved like `state.bin`: checksummed envelope, temporary
//! file, fsync, rename; after a power cut it is the old or the new cursor, and
//! at worst the events between them are delivered again (with their ids).

use crate::error::{ErrorKind, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// File name in the state directory.
pub const FILE: &str = "mqtt.cursor";
const MAGIC: [u8; 4] = *b"MSMC";
const VERSION: u16 = 1;

/// A position in the event log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Inode of the log file.
    pub inode: u64,
    /// Byte offset of the next record to deliver.
    pub offset: u64,
    /// Records before `offset` in that file.
    pub index: u64,
}

/// Path of the cursor in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The saved cursor; `None` if there is none. A damaged cursor is moved
/// aside with a warning and `None` returned (delivery then starts at the
/// oldest log file: duplicates, never losses).
pub fn load(dir: &Path) -> Result<Option<Cursor>> {
    let p = path(dir);
    match crate::store::load::<Cursor>(&p, MAGIC, VERSION) {
        Ok(c) => Ok(c),
        Err(e) if e.kind() == ErrorKind::CorruptState => {
            let aside = crate::store::quarantine(&p)?;
            log::warn!(
                "{}; moved it to {}: events are delivered again from the oldest event log",
                e.chain(),
                aside.display()
            );
            Ok(Some(Cursor::default()))
        }
        Err(e) => Err(e),
    }
}

/// Saves the cursor durably.
pub fn save(dir: &Path, c: &Cursor) -> Result<()> {
    crate::store::save(&path(dir), MAGIC, VERSION, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_a_damaged_one_restarts_from_the_oldest_log() {
        let d = std::env::temp_dir().join(format!("ms-cursor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        assert_eq!(load(&d).unwrap(), None);
        let c = Cursor {
            inode: 42,
            offset: 1234,
            index: 17,
        };
        save(&d, &c).unwrap();
        assert_eq!(load(&d).unwrap(), Some(c));
        let mut b = std::fs::read(path(&d)).unwrap();
        let last = b.len() - 1;
        b[last] ^= 1;
        std::fs::write(path(&d), &b).unwrap();
        assert_eq!(load(&d).unwrap(), Some(Cursor::default()));
        assert!(d.join("mqtt.cursor.corrupt").exists());
    }
}
