//! Opening and reading the files the configuration names: regular files of
//! bounded size only.
//!
//! A config, a drop-in, a base manifest or its labels, an M-Package's
//! `package.toml` or `calibration.toml`, a head or base ONNX file and a state
//! file are all read whole. Each goes through [`read_bounded`], so none of
//! them can block the reader (a FIFO named `x.toml` in `apps.d` used to block
//! `check` and the service's reload forever), nor make it read until memory
//! runs out (`/dev/zero` as a head file). Replay sources are streamed, not
//! read whole; [`open_regular`] checks them without a size limit.
//!
//! The order matters: `stat` first, so that a device or FIFO is refused
//! without being opened at all (opening some devices has side effects);
//! then `open` with `O_NONBLOCK` (a FIFO swapped in after the `stat` cannot
//! block the open); then `fstat` of what was opened, which is what is read.

use std::fmt;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Largest base or head ONNX file read (the bundled MobileNetV2 base is
/// 14 MB, its largest head 4.5 MB): a wrong path must not make the service
/// read a huge file under the unit's `MemoryMax=1G`.
pub(crate) const MAX_MODEL_BYTES: u64 = 256 << 20;

/// Why a file named by the configuration was not read.
#[derive(Debug)]
pub(crate) enum FileError {
    /// The file does not exist.
    NotFound(std::io::Error),
    /// It exists but is not a regular file (what it is instead).
    NotRegular(&'static str),
    /// It is larger than the limit for its kind.
    TooLarge {
        /// Its size, or at least how much was there to read.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// `stat`, `open` or `read` failed for another reason.
    Io(std::io::Error),
}

impl FileError {
    /// True when the file does not exist.
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, FileError::NotFound(_))
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::NotFound(e) => write!(f, "cannot open: {e}"),
            FileError::NotRegular(what) => write!(f, "is {what}, not a regular file"),
            FileError::TooLarge { size, limit } => write!(
                f,
                "is {size} bytes, larger than the {limit}-byte limit for this kind of file; is this the right file?"
            ),
            FileError::Io(e) => write!(f, "cannot read: {e}"),
        }
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FileError::NotFound(e) | FileError::Io(e) => Some(e),
            _ => None,
        }
    }
}

fn io(e: std::io::Error) -> FileError {
    if e.kind() == std::io::ErrorKind::NotFound {
        FileError::NotFound(e)
    } else {
        FileError::Io(e)
    }
}

/// What a file that is not regular is, for messages.
fn kind_of(m: &Metadata) -> Option<&'static str> {
    let t = m.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a file")
    }
}

/// Opens `path` for reading if it is a regular file (symbolic links are
/// followed), never blocking; returns it with its metadata.
pub(crate) fn open_regular(path: &Path) -> Result<(File, Metadata), FileError> {
    let before = std::fs::metadata(path).map_err(io)?;
    if let Some(what) = kind_of(&before) {
        return Err(FileError::NotRegular(what));
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let meta = f.metadata().map_err(io)?;
    if let Some(what) = kind_of(&meta) {
        return Err(FileError::NotRegular(what));
    }
    Ok((f, meta))
}

/// Reads the regular file `path` whole if it holds at most `limit` bytes.
/// Never blocks on a FIFO or device and never reads more than `limit + 1`
/// bytes, even if the file grows while it is read.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    let (f, meta) = open_regular(path)?;
    if meta.len() > limit {
        return Err(FileError::TooLarge {
            size: meta.len(),
            limit,
        });
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    f.take(limit + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > limit {
        return Err(FileError::TooLarge {
            size: buf.len() as u64,
            limit,
        });
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ms-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_regular_file_within_the_limit_is_read_whole() {
        let d = scratch("ok");
        let p = d.join("a.toml");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(read_bounded(&p, 3).unwrap(), b"abc");
        let e = read_bounded(&p, 2).unwrap_err();
        assert!(
            matches!(e, FileError::TooLarge { size: 3, limit: 2 }),
            "{e}"
        );
        assert!(read_bounded(&d.join("none"), 9).unwrap_err().is_not_found());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn fifos_directories_and_devices_are_refused_without_blocking() {
        let d = scratch("odd");
        let fifo = d.join("x.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // Opening a FIFO for reading blocks until a writer comes: this must
        // not even try. Run it on a thread so that a regression fails
        // instead of hanging the test run.
        let (tx, rx) = std::sync::mpsc::channel();
        let f2 = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(
                read_bounded(&f2, 1 << 20)
                    .map(|_| ())
                    .unwrap_err()
                    .to_string(),
            );
        });
        let msg = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("reading a FIFO returned within 10 s");
        assert_eq!(msg, "is a FIFO (named pipe), not a regular file");
        let msg = read_bounded(&d, 1 << 20).unwrap_err().to_string();
        assert_eq!(msg, "is a directory, not a regular file");
        let msg = read_bounded(Path::new("/dev/zero"), 1 << 20)
            .unwrap_err()
            .to_string();
        assert_eq!(msg, "is a character device, not a regular file");
        let _ = std::fs::remove_dir_all(&d);
    }
}
