//! Reading the event log from a cursor while the service appends to it.
//!
//! The reader holds its own descriptor of one log file and follows it by
//! inode: when the service rotates `events.log` to `events.log.1`, the open
//! descriptor keeps reading the old file to its end and then moves on to the
//! next one. Bytes of the current file are read only up to the position the
//! service published after its `fdatasync` ([`LogEnd`]), so a record being
//! written is never mistaken for damage; damage below that position (a bad
//! sector) is skipped to the next valid record with a warning, as opening the
//! log does.

use super::cursor::Cursor;
use crate::daemon::eventlog::{self, FILE_HEADER, RECORD_HEADER};
use crate::daemon::events::Event;
use crate::error::{ErrorKind, Result, ResultExt};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where the service's current log file ends, published after each durable
/// append.
#[derive(Debug, Default)]
pub(crate) struct LogEnd(Mutex<End>);

/// One consistent reading of [`LogEnd`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct End {
    /// Inode of `events.log`.
    pub inode: u64,
    /// Its size: every byte below is a durable, complete record.
    pub bytes: u64,
    /// Records in it.
    pub records: u64,
}

impl LogEnd {
    /// Publishes a new end.
    pub(crate) fn set(&self, e: End) {
        if let Ok(mut g) = self.0.lock() {
            *g = e;
        }
    }

    /// The last end published.
    pub(crate) fn get(&self) -> End {
        self.0.lock().map(|g| *g).unwrap_or_default()
    }
}

/// One record read: the event and the cursor just past it.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The event.
    pub event: Event,
    /// Where delivery resumes once this event is acknowledged.
    pub next: Cursor,
}

/// A reader of the log from a cursor.
pub struct Tail {
    path: PathBuf,
    file: File,
    inode: u64,
    pos: u64,
    index: u64,
    /// Records of the file being read when it is no longer the current log
    /// (counted once, for the backlog).
    rotated_records: Option<u64>,
    /// The last file read to its end before this one: (inode, records).
    finished: Option<(u64, u64)>,
    /// Kept around to re-use its allocation for each record's payload.
    buf: Vec<u8>,
}

fn rotated_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".1");
    PathBuf::from(p)
}

fn open(path: &Path) -> Result<Option<(File, u64)>> {
    match File::open(path) {
        Ok(f) => {
            let ino = f
                .metadata()
                .context(ErrorKind::Io, || format!("reading {}", path.display()))?
                .ino();
            Ok(Some((f, ino)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(crate::err!(Io, source = e, "opening {}", path.display())),
    }
}

/// Reads the record at `at` if a whole valid one lies below `limit`:
/// `Ok(Some((len, event)))`, `Ok(None)` if it is not valid (what a record
/// is: [`eventlog::decode_payload`], as for the log's recovery). `buf` is
/// scratch for the payload.
fn read_record(
    file: &File,
    at: u64,
    limit: u64,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<(u64, Event)>> {
    // A cursor read from disk may hold any offset: no overflow.
    let Some(body) = at.checked_add(RECORD_HEADER as u64).filter(|&b| b <= limit) else {
        return Ok(None);
    };
    let mut head = [0u8; RECORD_HEADER];
    file.read_exact_at(&mut head, at)?;
    let Some((len, crc)) = eventlog::parse_header(&head) else {
        return Ok(None);
    };
    if body + len as u64 > limit {
        return Ok(None);
    }
    buf.resize(len, 0);
    file.read_exact_at(buf, body)?;
    Ok(eventlog::decode_payload(buf, crc).map(|ev| ((RECORD_HEADER + len) as u64, ev)))
}

/// Counts the valid records of `file` in `from..limit` (skipping damage).
fn count_records(file: &File, mut from: u64, limit: u64, buf: &mut Vec<u8>) -> u64 {
    let mut n = 0;
    while from < limit {
        match read_record(file, from, limit, buf) {
            Ok(Some((len, _))) => {
                n += 1;
                from += len;
            }
            Ok(None) => from += 1,
            Err(_) => break,
        }
    }
    n
}

/// Whether `c` can be a cursor of this file: the end of its `c.index`-th
/// record (or its header, for 0). Usually a valid record starts there, or
/// the file ends there; otherwise (damage right after the acknowledged
/// event) the file is scanned from the start as the reader reads it.
fn at_boundary(file: &File, c: Cursor, limit: u64, buf: &mut Vec<u8>) -> bool {
    let header = FILE_HEADER as u64;
    if c.offset < header || c.offset > limit {
        return false;
    }
    if c.offset == limit || matches!(read_record(file, c.offset, limit, buf), Ok(Some(_))) {
        return true;
    }
    let (mut at, mut n) = (header, 0u64);
    while at < c.offset {
        match read_record(file, at, limit, buf) {
            Ok(Some((len, _))) => {
                at += len;
                n += 1;
            }
            Ok(None) => at += 1,
            Err(_) => return false,
        }
    }
    at == c.offset && n == c.index
}

impl Tail {
    /// A reader of the log at `path` (`events.log`; its rotated predecessor
    /// is `events.log.1`) starting at `cursor`:
    ///
    /// - `None` (delivery never ran here): at the end, so history is not
    ///   flooded onto a broker configured today;
    /// - a cursor in `events.log` or `events.log.1`: there;
    /// - a cursor in neither (rotated away while the broker was unreachable,
    ///   or damaged): at the start of the oldest file left, with a warning.
    pub fn open(path: &Path, cursor: Option<Cursor>, end: End) -> Result<Tail> {
        let Some((cur, cur_ino)) = open(path)? else {
            crate::bail!(Io, "{} does not exist", path.display());
        };
        let mut buf = Vec::new();
        let Some(c) = cursor else {
            let len = if end.inode == cur_ino {
                end.bytes
            } else {
                cur.metadata().map_or(FILE_HEADER as u64, |m| m.len())
            };
            let index = if end.inode == cur_ino {
                end.records
            } else {
                count_records(&cur, FILE_HEADER as u64, len, &mut buf)
            };
            return Ok(Tail::new(path, cur, cur_ino, len, index, buf));
        };
        let old = open(&rotated_path(path))?;
        let boundary = |f: &File, ino: u64, buf: &mut Vec<u8>| -> bool {
            let limit = if ino == end.inode {
                end.bytes
            } else {
                f.metadata().map_or(0, |m| m.len())
            };
            at_boundary(f, c, limit, buf)
        };
        if c.inode == cur_ino && boundary(&cur, cur_ino, &mut buf) {
            return Ok(Tail::new(path, cur, cur_ino, c.offset, c.index, buf));
        }
        if let Some((f, ino)) = old {
            if c.inode == ino && boundary(&f, ino, &mut buf) {
                return Ok(Tail::new(path, f, ino, c.offset, c.index, buf));
            }
            log::warn!(
                "mqtt: the delivery cursor is not in {} or {} (rotated away or damaged); delivering from the start of {}: events from before it are lost to the broker, some may come again",
                path.display(),
                rotated_path(path).display(),
                rotated_path(path).display()
            );
            return Ok(Tail::new(path, f, ino, FILE_HEADER as u64, 0, buf));
        }
        if c != Cursor::default() {
            log::warn!(
                "mqtt: the delivery cursor is not in {}; delivering it from its start",
                path.display()
            );
        }
        Ok(Tail::new(path, cur, cur_ino, FILE_HEADER as u64, 0, buf))
    }

    fn new(path: &Path, file: File, inode: u64, pos: u64, index: u64, buf: Vec<u8>) -> Tail {
        Tail {
            path: path.to_owned(),
            file,
            inode,
            pos,
            index,
            rotated_records: None,
            finished: None,
            buf,
        }
    }

    /// The cursor of the next record to read.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            inode: self.inode,
            offset: self.pos,
            index: self.index,
        }
    }

    /// Goes back to `c` (a cursor this reader returned, in the file it
    /// reads), after a connection was lost with events unacknowledged.
    /// A cursor in another file reopens the log from it.
    pub fn rewind(&mut self, c: Cursor, end: End) -> Result<()> {
        if c.inode == self.inode {
            self.pos = c.offset;
            self.index = c.index;
            return Ok(());
        }
        *self = Tail::open(&self.path, Some(c), end)?;
        Ok(())
    }

    /// Records after the cursor `acked` (in the current file, in the
    /// rotated one this reader reads, or in the one it read before) up to
    /// the end of the log: the backlog.
    pub fn backlog(&mut self, acked: Cursor, end: End) -> u64 {
        if acked.inode == end.inode {
            return end.records.saturating_sub(acked.index);
        }
        let older = if acked.inode == self.inode && self.inode != end.inode {
            match self.rotated_records {
                Some(n) => n,
                None => {
                    let len = self.file.metadata().map_or(0, |m| m.len());
                    let n = count_records(&self.file, FILE_HEADER as u64, len, &mut self.buf);
                    self.rotated_records = Some(n);
                    n
                }
            }
        } else if let Some((_, n)) = self.finished.filter(|(ino, _)| *ino == acked.inode) {
            // Acknowledged in the file read before, reading the next one.
            n
        } else {
            return end.records;
        };
        older.saturating_sub(acked.index) + end.records
    }

    /// The next record, or `None` when everything durable has been read.
    pub fn next(&mut self, end: End) -> Result<Option<Record>> {
        loop {
            let current = self.inode == end.inode;
            let limit = if current {
                end.bytes
            } else {
                self.file
                    .metadata()
                    .context(ErrorKind::Io, || format!("reading {}", self.path.display()))?
                    .len()
            };
            if self.pos < limit {
                let r = read_record(&self.file, self.pos, limit, &mut self.buf)
                    .context(ErrorKind::Io, || format!("reading {}", self.path.display()))?;
                match r {
                    Some((len, event)) => {
                        self.pos += len;
                        self.index += 1;
                        return Ok(Some(Record {
                            event,
                            next: self.cursor(),
                        }));
                    }
                    None => {
                        // Damage below a durable end: find the next record.
                        let from = self.pos;
                        let mut at = from + 1;
                        while at < limit
                            && !matches!(
                                read_record(&self.file, at, limit, &mut self.buf),
                                Ok(Some(_))
                            )
                        {
                            at += 1;
                        }
                        log::warn!(
                            "mqtt: skipped {} damaged bytes of {} at offset {from}",
                            at - from,
                            self.path.display()
                        );
                        self.pos = at;
                        continue;
                    }
                }
            }
            if current || end.inode == 0 {
                return Ok(None);
            }
            // This file was rotated and is read to its end: go on with the
            // next one (`events.log.1` if it is newer than this one, which
            // happens when the log rotated twice, else `events.log`).
            let rotated = rotated_path(&self.path);
            let next = match open(&rotated)? {
                Some((f, ino)) if ino != self.inode && ino != end.inode => Some((f, ino)),
                _ => None,
            };
            let (f, ino) = match next {
                Some(x) => x,
                None => match open(&self.path)? {
                    Some(x) => x,
                    None => return Ok(None),
                },
            };
            if ino == self.inode {
                return Ok(None);
            }
            self.finished = Some((self.inode, self.index));
            self.file = f;
            self.inode = ino;
            self.pos = FILE_HEADER as u64;
            self.index = 0;
            self.rotated_records = None;
        }
    }
}

/// The log file a state directory's service appends to.
pub(crate) fn log_path(state_dir: &Path) -> PathBuf {
    state_dir.join(eventlog::FILE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::eventlog::EventLog;

    fn ev(i: u64) -> Event {
        Event {
            app: "birds".into(),
            camera: "gate".into(),
            start_unix_ms: 1_000 * i,
            end_unix_ms: 1_000 * i + 500,
            start_frame: 10 * i,
            end_frame: 10 * i + 5,
            peak_score: 0.5,
            samples: 3,
        }
    }

    fn end_of(log: &EventLog) -> End {
        End {
            inode: log.inode(),
            bytes: log.bytes(),
            records: log.records(),
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ms-tail-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d.join(eventlog::FILE)
    }

    fn drain(t: &mut Tail, end: End) -> Vec<Record> {
        let mut out = Vec::new();
        while let Some(r) = t.next(end).unwrap() {
            out.push(r);
        }
        out
    }

    #[test]
    fn a_new_reader_starts_at_the_end_and_a_cursor_resumes_after_the_acknowledged_event() {
        let p = tmp("resume");
        let (mut log, _) = EventLog::open(&p).unwrap();
        log.append(&ev(0)).unwrap();
        let mut t = Tail::open(&p, None, end_of(&log)).unwrap();
        assert_eq!(t.next(end_of(&log)).unwrap(), None);
        for i in 1..=3 {
            log.append(&ev(i)).unwrap();
        }
        let got = drain(&mut t, end_of(&log));
        assert_eq!(
            got.iter().map(|r| r.event.clone()).collect::<Vec<_>>(),
            vec![ev(1), ev(2), ev(3)]
        );
        assert_eq!(t.backlog(got[0].next, end_of(&log)), 2);
        // Resume after the first acknowledged one, as after a crash.
        let mut t = Tail::open(&p, Some(got[0].next), end_of(&log)).unwrap();
        let again = drain(&mut t, end_of(&log));
        assert_eq!(again, got[1..].to_vec());
        // Rewind to it within the same reader.
        t.rewind(got[1].next, end_of(&log)).unwrap();
        assert_eq!(drain(&mut t, end_of(&log)), got[2..].to_vec());
    }

    #[test]
    fn bytes_past_the_published_end_are_not_read_yet() {
        let p = tmp("partial");
        let (mut log, _) = EventLog::open(&p).unwrap();
        let before = end_of(&log);
        let mut t = Tail::open(&p, None, before).unwrap();
        log.append(&ev(1)).unwrap();
        // The service has not published the new end yet.
        assert_eq!(t.next(before).unwrap(), None);
        assert_eq!(t.next(end_of(&log)).unwrap().unwrap().event, ev(1));
    }

    #[test]
    fn a_rotation_is_followed_without_losing_or_repeating_an_event() {
        let p = tmp("rotate");
        let (mut log, _) = EventLog::open(&p).unwrap();
        log.append(&ev(0)).unwrap();
        let mut t = Tail::open(&p, None, end_of(&log)).unwrap();
        log.append(&ev(1)).unwrap();
        log.append(&ev(2)).unwrap();
        // Rotate by hand as EventLog does past its size limit.
        let acked = t.cursor();
        std::fs::rename(&p, rotated_path(&p)).unwrap();
        let (mut log, _) = EventLog::open(&p).unwrap();
        log.append(&ev(3)).unwrap();
        assert_eq!(t.backlog(acked, end_of(&log)), 3);
        let got: Vec<Event> = drain(&mut t, end_of(&log))
            .into_iter()
            .map(|r| r.event)
            .collect();
        assert_eq!(got, vec![ev(1), ev(2), ev(3)]);
        // Still unacknowledged after the reader moved on: all three count.
        assert_eq!(t.backlog(acked, end_of(&log)), 3);
        // A cursor in the rotated file still resumes there after a restart.
        let t = Tail::open(&p, Some(acked), end_of(&log)).unwrap();
        assert_eq!(t.cursor(), acked);
    }

    #[test]
    fn a_cursor_just_before_damage_still_resumes_there_after_a_restart() {
        let p = tmp("before-damage");
        let (mut log, _) = EventLog::open(&p).unwrap();
        for i in 0..3 {
            log.append(&ev(i)).unwrap();
        }
        let end = end_of(&log);
        let mut t = Tail::open(&p, Some(Cursor::default()), end).unwrap();
        let first = t.next(end).unwrap().unwrap();
        // A bad sector right after the acknowledged event.
        let mut b = std::fs::read(&p).unwrap();
        b[first.next.offset as usize] ^= 0xFF;
        std::fs::write(&p, &b).unwrap();
        let t = Tail::open(&p, Some(first.next), end).unwrap();
        assert_eq!(t.cursor(), first.next);
        // A cursor whose index does not match its offset is not trusted.
        let wrong = Cursor {
            index: 7,
            ..first.next
        };
        let t = Tail::open(&p, Some(wrong), end).unwrap();
        assert_eq!(t.cursor().offset, FILE_HEADER as u64);
    }

    #[test]
    fn a_cursor_in_no_file_restarts_at_the_oldest_one_and_damage_is_skipped() {
        let p = tmp("lost");
        let (mut log, _) = EventLog::open(&p).unwrap();
        for i in 0..3 {
            log.append(&ev(i)).unwrap();
        }
        let lost = Cursor {
            inode: 999_999_999,
            offset: 8,
            index: 0,
        };
        let mut t = Tail::open(&p, Some(lost), end_of(&log)).unwrap();
        assert_eq!(drain(&mut t, end_of(&log)).len(), 3);
        // Flip a byte of the second record's payload.
        let mut b = std::fs::read(&p).unwrap();
        let second = 8 + (b.len() - 8) / 3;
        b[second + 10] ^= 0x55;
        std::fs::write(&p, &b).unwrap();
        let end = End {
            inode: std::fs::metadata(&p).unwrap().ino(),
            bytes: b.len() as u64,
            records: 3,
        };
        let mut t = Tail::open(&p, Some(Cursor::default()), end).unwrap();
        let got: Vec<Event> = drain(&mut t, end).into_iter().map(|r| r.event).collect();
        assert_eq!(got, vec![ev(0), ev(2)]);
    }
}
