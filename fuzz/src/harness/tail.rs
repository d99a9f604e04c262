//! `tail`: the MQTT publisher's reader of the event log
//! (`daemon::output::tail::Tail`), on any bytes as `events.log.1` and
//! `events.log`, from any delivery cursor.
//!
//! Input: byte 0 picks the cursor (`% 6`: 0 none, as on a first start;
//! 1 the start of `events.log`; 2 the start of `events.log.1`; 3 and 4 the
//! offset and index in bytes 1..17 (u64 LE each) in `events.log` or
//! `events.log.1`, as a damaged or stale cursor file could hold; 5 the same
//! with an inode no file has). Bytes 17..19 (u16 LE) are the length of
//! `events.log.1` (0: no such file), cut to what follows; the rest is
//! `events.log`. The log's published end is its whole length, with the
//! record count the log's recovery finds.
//!
//! Checks: opening and reading never fail (the files are all there and
//! whole) and always end; what is read from the start of a file is exactly
//! what the log's own recovery (`eventlog::tail`) finds in it, in order,
//! the rotated file's events first; every record's cursor moves forward,
//! stays within its file and counts one more event; a reader reopened at
//! any record's cursor (as after a SIGKILL) reads exactly the events after
//! it (for cursors the reader made from a file's start: a fuzzed cursor's
//! index may be anything); the backlog from the start is the number of
//! events there are, also once the reader has moved on to the next file.

use mainstream::daemon::eventlog;
use mainstream::daemon::events::Event;
use mainstream::daemon::output::cursor::Cursor;
use mainstream::daemon::output::tail::{End, Record, Tail};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Most records read from one input (a file of 8-byte records within the
/// input size limit has far fewer; reaching this is a loop).
const MAX_RECORDS: usize = 1 << 20;

fn ino(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.ino()).unwrap_or(0)
}

/// Every event the log's recovery finds in `p` (none for a file without the
/// log's header, which the reader is never given by the service).
fn recovered(p: &Path) -> Vec<Event> {
    // A record takes more than its 8-byte header: this keeps them all.
    let most = std::fs::metadata(p).map_or(0, |m| m.len() as usize) / eventlog::RECORD_HEADER + 1;
    match eventlog::tail(p, most) {
        Ok((events, count)) => {
            assert_eq!(events.len() as u64, count);
            events
        }
        Err(_) => Vec::new(),
    }
}

fn drain(t: &mut Tail, end: End, what: &str) -> Vec<Record> {
    let mut out = Vec::new();
    let mut last = t.cursor();
    loop {
        let r = match t.next(end) {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => panic!("{what}: reading failed: {e}"),
        };
        let c = r.next;
        if c.inode == last.inode {
            assert!(c.offset > last.offset, "{what}: {last:?} -> {c:?}");
            assert_eq!(c.index, last.index + 1, "{what}: {last:?} -> {c:?}");
        } else {
            assert!(c.offset > eventlog::FILE_HEADER as u64, "{what}: {c:?}");
        }
        assert_eq!(c, t.cursor(), "{what}");
        last = c;
        out.push(r);
        assert!(out.len() <= MAX_RECORDS, "{what}: no end");
    }
    out
}

fn events(rs: &[Record]) -> Vec<Event> {
    rs.iter().map(|r| r.event.clone()).collect()
}

pub fn run(data: &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<19>() else {
        return;
    };
    let mode = head[0] % 6;
    let u64_at = |i: usize| u64::from_le_bytes(head[i..i + 8].try_into().expect("8 bytes"));
    let (offset, index) = (u64_at(1), u64_at(9));
    let old_len = (u16::from_le_bytes([head[17], head[18]]) as usize).min(rest.len());
    let dir = super::scratch::dir();
    let path = dir.join(eventlog::FILE);
    let rotated = dir.join(format!("{}.1", eventlog::FILE));
    if old_len > 0 {
        std::fs::write(&rotated, &rest[..old_len]).expect("write events.log.1");
    }
    std::fs::write(&path, &rest[old_len..]).expect("write events.log");
    // The service only ever gives the reader files with the log's header.
    let has_header = |b: &[u8]| b.starts_with(b"MSEL\x01\x00\x00\x00");
    let whole = has_header(&rest[old_len..]) && (old_len == 0 || has_header(&rest[..old_len]));
    let cur_events = recovered(&path);
    let old_events = if old_len > 0 {
        recovered(&rotated)
    } else {
        Vec::new()
    };
    let end = End {
        inode: ino(&path),
        bytes: (rest.len() - old_len) as u64,
        records: cur_events.len() as u64,
    };
    let header = eventlog::FILE_HEADER as u64;
    let cursor = match mode {
        0 => None,
        1 => Some(Cursor {
            inode: end.inode,
            offset: header,
            index: 0,
        }),
        2 => Some(Cursor {
            inode: ino(&rotated),
            offset: header,
            index: 0,
        }),
        3 => Some(Cursor {
            inode: end.inode,
            offset,
            index,
        }),
        4 => Some(Cursor {
            inode: ino(&rotated),
            offset,
            index,
        }),
        _ => Some(Cursor {
            inode: u64::MAX,
            offset,
            index,
        }),
    };
    let mut t = match Tail::open(&path, cursor, end) {
        Ok(t) => t,
        Err(e) => panic!("opening at {cursor:?} failed: {e}"),
    };
    let start = t.cursor();
    let got = drain(&mut t, end, "first read");
    // What a reader from the start of a file must find.
    let from_current_start = start.inode == end.inode && start.offset == header;
    let from_rotated_start = old_len > 0 && start.inode == ino(&rotated) && start.offset == header;
    if !whole {
        // Records without a header are still read; no recovery to compare.
    } else if from_current_start {
        assert_eq!(events(&got), cur_events, "from the start of events.log");
        assert_eq!(t.backlog(start, end), cur_events.len() as u64);
    } else if from_rotated_start {
        let mut all = old_events.clone();
        all.extend(cur_events.iter().cloned());
        assert_eq!(events(&got), all, "from the start of events.log.1");
        assert_eq!(t.backlog(start, end), all.len() as u64);
    } else if mode == 0 {
        assert!(got.is_empty(), "a first start reads from the end");
    }
    // Resuming at any record's cursor (a restart after the broker
    // acknowledged it) reads exactly the rest. Only for cursors the reader
    // made from a file's start: a fuzzed cursor's index may be anything, and
    // a cursor's index is checked when no record starts at its offset.
    let step = (got.len() / 8).max(1);
    let trusted = if mode == 1 || mode == 2 { got.len() } else { 0 };
    for (i, r) in got.iter().enumerate().take(trusted).step_by(step) {
        let mut again = match Tail::open(&path, Some(r.next), end) {
            Ok(t) => t,
            Err(e) => panic!("reopening at record {i} ({:?}) failed: {e}", r.next),
        };
        assert_eq!(again.cursor(), r.next, "reopened at record {i}");
        let rest = drain(&mut again, end, "resumed read");
        assert_eq!(
            events(&rest),
            events(&got[i + 1..]),
            "resumed after record {i}"
        );
    }
    // Rewinding the same reader (a lost connection) reads the same again.
    t.rewind(start, end).expect("rewind");
    assert_eq!(events(&drain(&mut t, end, "rewound read")), events(&got));
}
