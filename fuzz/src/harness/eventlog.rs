//! `eventlog`: any bytes as `events.log`, opened (recovered) by
//! [`EventLog::open`], read by [`eventlog::tail`], appended to and reopened.
//!
//! Input: the file.
//!
//! Checks: opening never fails on content; a file with the log's header
//! keeps its bytes up to the end of the last valid record and loses only the
//! torn tail (`truncated_bytes`); a file without the header is moved aside
//! whole (`events.log.corrupt`, when it is at least a header long) and a new
//! log started; `tail` counts the records `open` counted and returns the
//! last ones; an event appended after recovery is the last one read back,
//! counted once more, with nothing else cut or skipped on the second open.

use mainstream::daemon::eventlog::{self, EventLog, Recovery};
use mainstream::daemon::events::Event;

const HEADER: [u8; 8] = *b"MSEL\x01\x00\x00\x00";

pub fn run(data: &[u8]) {
    let path = super::scratch::file(eventlog::FILE, data);
    let (log, rec) = match EventLog::open(&path) {
        Ok(x) => x,
        Err(e) => panic!("recovery failed: {e}"),
    };
    let after = std::fs::read(&path).expect("the log exists after open");
    let aside = path.with_file_name(format!("{}.corrupt", eventlog::FILE));
    if data.len() >= HEADER.len() && data[..HEADER.len()] == HEADER {
        let keep = data.len() as u64 - rec.truncated_bytes;
        assert_eq!(after, &data[..keep as usize], "{rec:?}");
        assert!(!aside.exists());
    } else {
        assert_eq!(rec, Recovery::default());
        assert_eq!(after, HEADER);
        if data.len() >= HEADER.len() {
            assert_eq!(std::fs::read(&aside).expect("moved aside"), data);
        }
    }
    assert_eq!(log.records(), rec.records);
    assert_eq!(log.bytes(), after.len() as u64);
    let (events, count) = eventlog::tail(&path, 3).expect("tail of a recovered log");
    assert_eq!(count, rec.records);
    assert_eq!(events.len() as u64, count.min(3));

    let ev = Event {
        app: "espresso".into(),
        camera: "gate".into(),
        start_unix_ms: 1_764_150_131_300,
        end_unix_ms: 1_764_150_133_100,
        start_frame: 1203,
        end_frame: 1221,
        peak_score: 0.9731,
        samples: 7,
    };
    let mut log = log;
    log.append(&ev).expect("append after recovery");
    drop(log);
    let (log2, rec2) = EventLog::open(&path).expect("reopen");
    assert_eq!(
        rec2,
        Recovery {
            records: rec.records + 1,
            skipped_bytes: rec.skipped_bytes,
            truncated_bytes: 0,
        },
        "first open: {rec:?}"
    );
    assert_eq!(log2.records(), rec.records + 1);
    let (last, count) = eventlog::tail(&path, 1).expect("tail");
    assert_eq!(count, rec.records + 1);
    assert_eq!(last, [ev]);
}
