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
pub const MAX_STATE_BYTES: u64 = 16 << 20;

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
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
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
    use std::io::Read;
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(crate::err!(Io, source = e, "opening {}", path.display())),
    };
    let mut bytes = Vec::new();
    f.take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut bytes)
        .context(ErrorKind::Io, || format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MAX_STATE_BYTES {
        crate::bail!(
            CorruptState,
            "{} is larger than {MAX_STATE_BYTES} bytes",
            path.display()
        );
    }
    decode(magic, version, &bytes)
        .with_msg(|| format!("state file {}", path.display()))
        .map(Some)
}

/// Moves a damaged state file aside (`NAME.corrupt`) so that it can be rebuilt.
pub fn quarantine(path: &Path) -> Result<PathBuf> {
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
