//! The append-only event log in the state directory.
//!
//! Layout: an 8-byte file header (`MSEL`, u16 LE format version, two zero
//! bytes), then records. A record is a u32 LE payload length, a u32 LE CRC-32
//! of the payload, and the payload: one [`Event`] in postcard. Each record is
//! written with one `write` on an `O_APPEND` descriptor and then `fdatasync`ed,
//! so a power cut can tear only the record being written.
//!
//! Opening the log checks every record. A torn tail (a record cut short or
//! failing its checksum with no valid record after it) is cut off; damage in
//! the middle (a bad sector, not a power cut) is skipped by searching for the
//! next valid record, so earlier and later events survive. Either way the
//! operator gets a warning with the byte counts.

use super::events::Event;
use crate::error::{ErrorKind, Result, ResultExt};
use crate::store::crc32;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// File name in the state directory.
pub const FILE: &str = "events.log";
const MAGIC: [u8; 4] = *b"MSEL";
const VERSION: u16 = 1;
/// Bytes before the first record.
pub const FILE_HEADER: usize = 8;
/// Bytes before each record's payload (length, CRC-32).
pub const RECORD_HEADER: usize = 8;
/// Largest payload accepted (an event is well under 1 KB).
const MAX_RECORD: usize = 16 * 1024;
/// When the log passes this size it is renamed to `events.log.1` (replacing
/// an older one) and a new log is started.
const ROTATE_BYTES: u64 = 64 << 20;
/// Largest log read when opening or tailing (a rotated log never exceeds
/// [`ROTATE_BYTES`] plus one record).
const MAX_READ: u64 = ROTATE_BYTES + 2 * MAX_RECORD as u64;

/// What opening found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Valid records.
    pub records: u64,
    /// Bytes of damage skipped in the middle.
    pub skipped_bytes: u64,
    /// Bytes cut off the end (a torn last record).
    pub truncated_bytes: u64,
}

/// The open log, ready to append.
pub struct EventLog {
    path: PathBuf,
    file: File,
    records: u64,
    bytes: u64,
}

/// Result of scanning a log's bytes.
struct Scan {
    /// The last `keep` events.
    events: Vec<Event>,
    /// End of the last valid record (where a torn tail starts).
    good_end: usize,
    skipped: u64,
    /// Valid records.
    count: u64,
}

/// A record header's payload length and checksum, if the length is one a
/// record can have.
pub(crate) fn parse_header(head: &[u8; RECORD_HEADER]) -> Option<(usize, u32)> {
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    (len != 0 && len <= MAX_RECORD).then_some((len, crc))
}

/// The event in a record's payload, if the payload is one event of exactly
/// its length, as the writer makes it, with the checksum `crc`. Decoded
/// before the checksum: after damage every later offset is tried, and
/// decoding garbage fails within a few bytes where a checksum reads up to
/// MAX_RECORD (a 256 KiB run of one plausible header took 10 s to
/// resynchronise through, a 64 MiB log would take minutes). The recovery
/// here and the MQTT publisher's reader (`output::tail`) both use it, so
/// they agree on what a record is.
pub(crate) fn decode_payload(payload: &[u8], crc: u32) -> Option<Event> {
    let (ev, rest) = postcard::take_from_bytes::<Event>(payload).ok()?;
    (rest.is_empty() && crc32(payload) == crc).then_some(ev)
}

/// Decodes the record at `at`, if a whole valid one starts there.
fn record_at(bytes: &[u8], at: usize) -> Option<(Event, usize)> {
    let head = bytes.get(at..at + RECORD_HEADER)?.try_into().ok()?;
    let (len, crc) = parse_header(head)?;
    let payload = bytes.get(at + RECORD_HEADER..at + RECORD_HEADER + len)?;
    Some((decode_payload(payload, crc)?, RECORD_HEADER + len))
}

/// Scans records after the file header; `keep` bounds how many events are kept (the last ones).
fn scan(bytes: &[u8], keep: usize) -> Scan {
    let mut events = std::collections::VecDeque::with_capacity(keep);
    let mut at = FILE_HEADER.min(bytes.len());
    let mut good_end = at;
    let mut skipped = 0u64;
    let mut index = 0u64;
    while at < bytes.len() {
        if let Some((ev, n)) = record_at(bytes, at) {
            if keep > 0 {
                if events.len() == keep {
                    events.pop_front();
                }
                events.push_back(ev);
            }
            index += 1;
            at += n;
            good_end = at;
            continue;
        }
        // Damage: find the next offset where a valid record starts.
        match (at + 1..bytes.len()).find(|&p| record_at(bytes, p).is_some()) {
            Some(next) => {
                skipped += (next - at) as u64;
                at = next;
            }
            None => break,
        }
    }
    Scan {
        events: events.into(),
        good_end,
        skipped,
        count: index,
    }
}

fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>> {
    // Never blocks on a FIFO (crate::files); reads at most MAX_READ.
    let f = match crate::files::open_regular(path) {
        Ok((f, _)) => f,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(crate::err!(Io, source = e, "opening {}", path.display())),
    };
    let mut bytes = Vec::new();
    f.take(MAX_READ)
        .read_to_end(&mut bytes)
        .context(ErrorKind::Io, || format!("reading {}", path.display()))?;
    Ok(Some(bytes))
}

fn header() -> [u8; FILE_HEADER] {
    let v = VERSION.to_le_bytes();
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], v[0], v[1], 0, 0]
}

fn header_ok(bytes: &[u8]) -> bool {
    bytes.len() >= FILE_HEADER && bytes[..FILE_HEADER] == header()
}

impl EventLog {
    /// Opens (creating if needed) the log at `path`, repairing a torn tail.
    /// A file that is not an event log at all is moved aside (`.corrupt`) and
    /// a new one started.
    pub fn open(path: &Path) -> Result<(EventLog, Recovery)> {
        let mut rec = Recovery::default();
        let bytes = read_bounded(path)?;
        let mut fresh = true;
        if let Some(bytes) = &bytes {
            if header_ok(bytes) {
                fresh = false;
                let s = scan(bytes, 0);
                rec.records = s.count;
                rec.skipped_bytes = s.skipped;
                if s.good_end < bytes.len() {
                    rec.truncated_bytes = (bytes.len() - s.good_end) as u64;
                    let f = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .context(ErrorKind::Io, || format!("opening {}", path.display()))?;
                    f.set_len(s.good_end as u64)
                        .and_then(|_| f.sync_all())
                        .context(ErrorKind::Io, || {
                            format!("cutting the torn end off {}", path.display())
                        })?;
                }
            } else if !bytes.is_empty() && bytes.len() >= FILE_HEADER {
                let aside = crate::store::quarantine(path)?;
                log::warn!(
                    "{} is not an event log; moved it to {} and started a new one",
                    path.display(),
                    aside.display()
                );
            }
            // A file shorter than the header is a log torn while being
            // created: start again.
        }
        if fresh {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .context(ErrorKind::Io, || format!("creating {}", dir.display()))?;
            }
            crate::store::write_atomic(path, &header())?;
        }
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .context(ErrorKind::Io, || {
                format!("opening {} to append", path.display())
            })?;
        let bytes = file
            .metadata()
            .context(ErrorKind::Io, || format!("reading {}", path.display()))?
            .len();
        Ok((
            EventLog {
                path: path.to_owned(),
                file,
                records: rec.records,
                bytes,
            },
            rec,
        ))
    }

    /// Appends one event durably (write, then fdatasync).
    pub fn append(&mut self, ev: &Event) -> Result<()> {
        if self.bytes >= ROTATE_BYTES {
            self.rotate()?;
        }
        let payload =
            postcard::to_stdvec(ev).map_err(|e| crate::err!(Internal, "encoding an event: {e}"))?;
        if payload.len() > MAX_RECORD {
            crate::bail!(
                Internal,
                "event record of {} bytes is over {MAX_RECORD}",
                payload.len()
            );
        }
        let mut rec = Vec::with_capacity(RECORD_HEADER + payload.len());
        rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        rec.extend_from_slice(&crc32(&payload).to_le_bytes());
        rec.extend_from_slice(&payload);
        self.file
            .write_all(&rec)
            .and_then(|_| self.file.sync_data())
            .context(ErrorKind::Io, || {
                format!("appending to {}", self.path.display())
            })?;
        self.records += 1;
        self.bytes += rec.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        let mut old = self.path.as_os_str().to_owned();
        old.push(".1");
        std::fs::rename(&self.path, &old).context(ErrorKind::Io, || {
            format!("rotating {}", self.path.display())
        })?;
        crate::store::write_atomic(&self.path, &header())?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .context(ErrorKind::Io, || format!("opening {}", self.path.display()))?;
        self.records = 0;
        self.bytes = FILE_HEADER as u64;
        log::info!(
            "event log {} reached {} MiB; the old one is {}",
            self.path.display(),
            ROTATE_BYTES >> 20,
            PathBuf::from(old).display()
        );
        Ok(())
    }

    /// Records in the current file.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Size of the current file in bytes (the append position).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The inode of the current file (a rotated file keeps its inode under
    /// its new name, which is how a reader follows it).
    pub fn inode(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        self.file.metadata().map_or(0, |m| m.ino())
    }
}

/// The last `n` valid events of the log at `path` (read-only: damage is
/// skipped, nothing is repaired) with the total count of valid records.
pub fn tail(path: &Path, n: usize) -> Result<(Vec<Event>, u64)> {
    let Some(bytes) = read_bounded(path)? else {
        return Ok((Vec::new(), 0));
    };
    if !header_ok(&bytes) {
        crate::bail!(CorruptState, "{} is not an event log", path.display());
    }
    let s = scan(&bytes, n);
    Ok((s.events, s.count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: u64) -> Event {
        Event {
            app: format!("app{}", i % 3),
            camera: "gate".into(),
            start_unix_ms: 1_000 * i,
            end_unix_ms: 1_000 * i + 500,
            start_frame: 10 * i,
            end_frame: 10 * i + 5,
            peak_score: 0.5 + i as f32 / 100.0,
            samples: 3,
        }
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ms-eventlog-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn write_log(path: &Path, n: u64) -> Vec<u64> {
        let (mut log, _) = EventLog::open(path).unwrap();
        let mut ends = vec![log.bytes()];
        for i in 0..n {
            log.append(&ev(i)).unwrap();
            ends.push(log.bytes());
        }
        ends
    }

    #[test]
    fn events_survive_reopening_in_order() {
        let d = tmpdir("reopen");
        let p = d.join(FILE);
        write_log(&p, 5);
        let (log, rec) = EventLog::open(&p).unwrap();
        assert_eq!(
            rec,
            Recovery {
                records: 5,
                ..Default::default()
            }
        );
        assert_eq!(log.records(), 5);
        let (last, count) = tail(&p, 2).unwrap();
        assert_eq!(count, 5);
        assert_eq!(last, vec![ev(3), ev(4)]);
    }

    #[test]
    fn a_power_cut_at_any_byte_loses_at_most_the_record_being_written() {
        let d = tmpdir("cut");
        let full = d.join("full.log");
        let ends = write_log(&full, 4);
        let bytes = std::fs::read(&full).unwrap();
        let p = d.join(FILE);
        for cut in 0..=bytes.len() {
            std::fs::write(&p, &bytes[..cut]).unwrap();
            let (mut log, rec) = EventLog::open(&p).unwrap();
            // Every record that was complete before the cut is still there.
            let complete = ends.iter().filter(|&&e| e as usize <= cut).count() as u64;
            let complete = complete.saturating_sub(1);
            assert_eq!(rec.records, complete, "cut at {cut}");
            // And the log takes new events after the repair.
            log.append(&ev(99)).unwrap();
            let (last, count) = tail(&p, 1).unwrap();
            assert_eq!(count, complete + 1, "cut at {cut}");
            assert_eq!(last, vec![ev(99)]);
        }
    }

    #[test]
    fn damage_in_the_middle_skips_one_record_and_keeps_the_rest() {
        let d = tmpdir("flip");
        let p = d.join(FILE);
        let ends = write_log(&p, 5);
        let clean = std::fs::read(&p).unwrap();
        // Flip every byte of the third record in turn.
        for at in ends[2] as usize..ends[3] as usize {
            let mut bytes = clean.clone();
            bytes[at] ^= 0x5a;
            std::fs::write(&p, &bytes).unwrap();
            let (events, count) = tail(&p, 10).unwrap();
            assert_eq!(count, 4, "flip at {at}");
            assert_eq!(events, vec![ev(0), ev(1), ev(3), ev(4)], "flip at {at}");
            let (_, rec) = EventLog::open(&p).unwrap();
            assert_eq!(rec.records, 4);
            assert!(rec.skipped_bytes > 0 && rec.truncated_bytes == 0);
        }
    }

    #[test]
    fn a_run_of_plausible_record_headers_is_damage_and_the_events_after_it_are_found() {
        // 256 KiB of one header that declares a 16 KiB record (found by
        // reading the recovery while fuzzing it), between two real events.
        let good = |i: u64| {
            let payload = postcard::to_stdvec(&ev(i)).unwrap();
            let mut r = (payload.len() as u32).to_le_bytes().to_vec();
            r.extend_from_slice(&crc32(&payload).to_le_bytes());
            r.extend_from_slice(&payload);
            r
        };
        let mut bytes = header().to_vec();
        bytes.extend(good(1));
        for _ in 0..(1 << 15) {
            bytes.extend_from_slice(&[0, 0x40, 0, 0, 0, 0, 0, 0]);
        }
        bytes.extend(good(2));
        let s = scan(&bytes, 10);
        assert_eq!(s.count, 2);
        assert_eq!(s.events, vec![ev(1), ev(2)]);
        assert_eq!(s.skipped, 1 << 18);
        assert_eq!(s.good_end, bytes.len());
    }

    #[test]
    fn a_foreign_file_is_moved_aside_and_a_new_log_started() {
        let d = tmpdir("foreign");
        let p = d.join(FILE);
        std::fs::write(&p, b"this is not an event log at all").unwrap();
        let (mut log, rec) = EventLog::open(&p).unwrap();
        assert_eq!(rec.records, 0);
        log.append(&ev(1)).unwrap();
        assert!(d.join("events.log.corrupt").exists());
        assert_eq!(tail(&p, 5).unwrap(), (vec![ev(1)], 1));
    }
}
