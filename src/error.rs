//! The crate's one error type.
//!
//! An [`Error`] carries an [`ErrorKind`] that callers branch on (never on the
//! message text), an optional human message, and an optional source error whose
//! chain is kept intact for logging. Build errors with [`err!`](crate::err) and
//! return them early with [`bail!`](crate::bail); add context at boundaries with
//! [`ResultExt::context`].

use std::fmt;

/// What went wrong, at the granularity that decides what the program does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The configuration, a drop-in, an M-Package's metadata or a command line
    /// is wrong. The service exits with [`EXIT_CONFIG`] and systemd does not
    /// restart it (`RestartPreventExitStatus=78`).
    InvalidConfig,
    /// The command line is wrong (unknown option, missing value). Exit code 2.
    Usage,
    /// A camera vanished (unplugged, ENODEV, EIO): reopen it with backoff.
    DeviceGone,
    /// A device or file did not answer in time.
    Timeout,
    /// A persisted state file is damaged or of an unknown version: move it
    /// aside and rebuild it.
    CorruptState,
    /// A model file could not be loaded, cut or run.
    Model,
    /// One frame's data is damaged (truncated JPEG, short buffer): skip it.
    BadFrame,
    /// The request is valid but this build or device cannot do it.
    Unsupported,
    /// An operating-system call failed for another reason.
    Io,
    /// A bug: an invariant of our own code does not hold.
    Internal,
}

impl ErrorKind {
    /// A short lower-case name, used in log lines and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidConfig => "invalid configuration",
            ErrorKind::Usage => "usage error",
            ErrorKind::DeviceGone => "device gone",
            ErrorKind::Timeout => "timeout",
            ErrorKind::CorruptState => "corrupt state",
            ErrorKind::Model => "model error",
            ErrorKind::BadFrame => "bad frame",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Io => "i/o error",
            ErrorKind::Internal => "internal error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Process exit code for a configuration error (`EX_CONFIG` from sysexits.h).
pub(crate) const EXIT_CONFIG: i32 = 78;
/// Process exit code for a command-line usage error (as most Unix tools use).
const EXIT_USAGE: i32 = 2;
/// Process exit code for every other failure.
pub(crate) const EXIT_FAILURE: i32 = 1;

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

struct Inner {
    kind: ErrorKind,
    msg: Option<String>,
    source: Option<Source>,
}

/// The crate's error: a kind, a message and a source chain. Boxed so that
/// `Result<T, Error>` stays one pointer wide on the happy path.
pub struct Error(Box<Inner>);

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        Error(Box::new(Inner {
            kind,
            msg: Some(msg.into()),
            source: None,
        }))
    }

    /// An error of `kind` without a message of its own.
    pub(crate) fn from_kind(kind: ErrorKind) -> Self {
        Error(Box::new(Inner {
            kind,
            msg: None,
            source: None,
        }))
    }

    /// Attaches the underlying cause.
    pub(crate) fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.0.source = Some(source.into());
        self
    }

    /// What went wrong, for deciding what to do next.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// This error's own message, without its causes.
    pub fn msg(&self) -> Option<&str> {
        self.0.msg.as_deref()
    }

    /// The process exit code this error maps to.
    pub fn exit_code(&self) -> i32 {
        match self.kind() {
            ErrorKind::InvalidConfig => EXIT_CONFIG,
            ErrorKind::Usage => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }

    /// Displays the whole chain: `message: cause: cause's cause`.
    pub fn chain(&self) -> impl fmt::Display + '_ {
        Chain(self)
    }
}

struct Chain<'a>(&'a Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self.0);
        while let Some(e) = cur {
            write!(f, ": {e}")?;
            cur = e.source();
        }
        Ok(())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.msg {
            Some(m) => f.write_str(m),
            None => f.write_str(self.0.kind.as_str()),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.chain(), self.0.kind)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_ref()
            .map(|s| &**s as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => ErrorKind::Timeout,
            _ => match e.raw_os_error() {
                Some(code) if code == nix::libc::ENODEV || code == nix::libc::ENXIO => {
                    ErrorKind::DeviceGone
                }
                _ => ErrorKind::Io,
            },
        };
        Error::from_kind(kind).with_source(e)
    }
}

/// Adds context to errors as they cross a boundary.
pub(crate) trait ResultExt<T> {
    /// Wraps the error as the source of a new error of `kind` with message `msg`.
    fn context(self, kind: ErrorKind, msg: impl FnOnce() -> String) -> Result<T>;
    /// Like [`ResultExt::context`] but keeps the inner error's kind when it is one of ours.
    fn with_msg(self, msg: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E> ResultExt<T> for std::result::Result<T, E>
where
    E: Into<Source>,
{
    fn context(self, kind: ErrorKind, msg: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::new(kind, msg()).with_source(e))
    }

    fn with_msg(self, msg: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| {
            let src: Source = e.into();
            let kind = match src.downcast_ref::<Error>() {
                Some(ours) => ours.kind(),
                None => match src.downcast_ref::<std::io::Error>() {
                    Some(io) => Error::from(std::io::Error::from(io.kind())).kind(),
                    None => ErrorKind::Io,
                },
            };
            Error::new(kind, msg()).with_source(src)
        })
    }
}

/// Builds an [`Error`]: `err!(Kind, "fmt {}", args)` or `err!(Kind, source = e, "fmt")`.
#[macro_export]
macro_rules! err {
    ($kind:ident, source = $src:expr, $($arg:tt)+) => {
        $crate::error::Error::new($crate::error::ErrorKind::$kind, format!($($arg)+)).with_source($src)
    };
    ($kind:ident, $($arg:tt)+) => {
        $crate::error::Error::new($crate::error::ErrorKind::$kind, format!($($arg)+))
    };
}

/// Returns early with an [`Error`]; same arguments as [`err!`](crate::err).
#[macro_export]
macro_rules! bail {
    ($($arg:tt)+) => {
        return Err($crate::err!($($arg)+))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_lists_every_cause_in_order() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = err!(InvalidConfig, source = io, "reading {}", "/etc/x.toml");
        assert_eq!(e.chain().to_string(), "reading /etc/x.toml: no such file");
        assert_eq!(e.exit_code(), EXIT_CONFIG);
    }

    #[test]
    fn with_msg_keeps_the_kind_of_our_own_errors() {
        let r: Result<()> = Err(err!(DeviceGone, "unplugged"));
        let e = r.with_msg(|| "camera gate".into()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DeviceGone);
        assert_eq!(e.chain().to_string(), "camera gate: unplugged");
    }

    #[test]
    fn enodev_maps_to_device_gone() {
        let e = Error::from(std::io::Error::from_raw_os_error(nix::libc::ENODEV));
        assert_eq!(e.kind(), ErrorKind::DeviceGone);
        assert_eq!(e.exit_code(), EXIT_FAILURE);
    }
}
