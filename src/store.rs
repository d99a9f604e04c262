//! Crash-safe persisted state: a postcard payload in a versioned, checksummed
//! envelope, replaced atomically.
//!
//! File layout: 4-byte magic, u16 little-endian format version, u32
//! little-endian payload length, u32 little-endian CRC-32 (IEEE) of the
//! payload, then the postcard payload. Writes go to a temporary file in the
//! same directory, are fsynced, renamed over the target and the directory is
//! fsynced, so a power cut leaves either the old file or the new one. A file
//! that fails any check is reported as [`ErrorKind::CorruptState`] so the
//! caller can move it aside and rebuild it.

use crate::error::{ErrorKind, Result, ResultExt};
use serde::{de::DeserializeOwned, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

const HEADER: usize = 4 + 2 + 4 + 4;
/// Largest state file read (a profile or plan is a few KB).
const MAX_STATE_BYTES: u64 = 16 << 20;

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// Encodes `value` in the envelope.
pub fn encode<T: Serialize>(magic: [u8; 4], version: u16, value: &T) -> Result<Vec<u8>> {
    let payload =
        postcard::to_stdvec(value).map_err(|e| crate::err!(Internal, "encoding state: {e}"))?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes an envelope, checking magic, version, length and checksum.
pub fn decode<T: DeserializeOwned>(magic: [u8; 4], version: u16, bytes: &[u8]) -> Result<T> {
    let corrupt = |m: String| crate::err!(CorruptState, "{m}");
    if bytes.len() < HEADER {
        return Err(corrupt(format!(
            "{} bytes is shorter than the {HEADER}-byte header",
            bytes.len()
        )));
    }
    if bytes[..4] != magic {
        return Err(corrupt("wrong magic: not this kind of state file".into()));
    }
    let v = u16::from_le_bytes([bytes[4], bytes[5]]);
    if v != version {
        return Err(corrupt(format!(
            "format version {v}, this build reads {version}"
        )));
    }
    let len = u32::from_le_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]) as usize;
    let crc = u32::from_le_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]);
    let payload = &bytes[HEADER..];
    if payload.len() != len {
        return Err(corrupt(format!(
            "payload is {} bytes, header says {len}",
            payload.len()
        )));
    }
    if crc32(payload) != crc {
        return Err(corrupt("checksum mismatch".into()));
    }
    postcard::from_bytes(payload).map_err(|e| corrupt(format!("undecodable payload: {e}")))
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename, fsync of the directory).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .context(ErrorKind::Io, || format!("creating {}", dir.display()))?;
    let tmp: PathBuf = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state")
    ));
    let mut f = std::fs::File::create(&tmp)
        .context(ErrorKind::Io, || format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .context(ErrorKind::Io, || format!("writing {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, path).context(ErrorKind::Io, || {
        format!("renaming {} to {}", tmp.display(), path.display())
    })?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .context(ErrorKind::Io, || {
            format!("syncing directory {}", dir.display())
        })?;
    Ok(())
}

/// Saves `value` to `path`.
pub fn save<T: Serialize>(path: &Path, magic: [u8; 4], version: u16, value: &T) -> Result<()> {
    write_atomic(path, &encode(magic, version, value)?)
}

/// Loads `path`: `Ok(None)` if it does not exist, [`ErrorKind::CorruptState`] if damaged.
pub fn load<T: DeserializeOwned>(path: &Path, magic: [u8; 4], version: u16) -> Result<Option<T>> {
    use crate::files::FileError;
    let bytes = match crate::files::read_bounded(path, MAX_STATE_BYTES) {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Ok(None),
        // Not ours to read as state: a FIFO, a directory, a huge file. Moving
        // it aside and rebuilding is the way out, as for a damaged file.
        Err(e @ (FileError::NotRegular(_) | FileError::TooLarge { .. })) => {
            return Err(crate::err!(
                CorruptState,
                source = e,
                "state file {}",
                path.display()
            ))
        }
        Err(e) => return Err(crate::err!(Io, source = e, "reading {}", path.display())),
    };
    decode(magic, version, &bytes)
        .with_msg(|| format!("state file {}", path.display()))
        .map(Some)
}

/// Moves a damaged state file aside (`NAME.corrupt`) so that it can be rebuilt.
pub(crate) fn quarantine(path: &Path) -> Result<PathBuf> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".corrupt");
    let aside = PathBuf::from(aside);
    std::fs::rename(path, &aside)
        .context(ErrorKind::Io, || format!("moving {} aside", path.display()))?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn a_fifo_or_directory_as_state_file_is_corrupt_state_at_once() {
        let d = std::env::temp_dir().join(format!("ms-store-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("dir.bin")).unwrap();
        let fifo = d.join("state.bin");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // On a thread: a regression blocks in open(2) and fails the test
        // instead of hanging the run.
        let (tx, rx) = std::sync::mpsc::channel();
        let (f, dir) = (fifo.clone(), d.join("dir.bin"));
        std::thread::spawn(move || {
            let kinds =
                [&f, &dir].map(|p| load::<u32>(p, *b"TEST", 1).map(drop).unwrap_err().kind());
            let _ = tx.send(kinds);
        });
        let kinds = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("load returned within 10 s");
        assert_eq!(kinds, [ErrorKind::CorruptState; 2]);
        // ... so that the caller moves it aside and rebuilds.
        quarantine(&fifo).unwrap();
        assert!(load::<u32>(&fifo, *b"TEST", 1).unwrap().is_none());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn every_truncation_and_bit_flip_is_detected() {
        let v: Vec<f64> = vec![1.5, 2.25, 31.0];
        let bytes = encode(*b"TEST", 1, &v).unwrap();
        assert_eq!(decode::<Vec<f64>>(*b"TEST", 1, &bytes).unwrap(), v);
        for cut in 0..bytes.len() {
            let e = decode::<Vec<f64>>(*b"TEST", 1, &bytes[..cut]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::CorruptState, "cut at {cut}");
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                let e = decode::<Vec<f64>>(*b"TEST", 1, &b).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::CorruptState, "flip {i}.{bit}");
            }
        }
        let e = decode::<Vec<f64>>(*b"TEST", 2, &bytes).unwrap_err();
        assert!(e
            .to_string()
            .contains("format version 1, this build reads 2"));
    }
}
