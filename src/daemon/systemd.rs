//! The two things the service needs from systemd, without libsystemd: the
//! notification socket (`READY=1`, `STATUS=`, `WATCHDOG=1`, `STOPPING=1`,
//! see sd_notify(3)) and signal handling (SIGTERM/SIGINT stop, SIGHUP reload).
#![allow(unsafe_code, reason = "sigaction(2): installing the signal handlers")]

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The `$NOTIFY_SOCKET` connection; does nothing when not run by systemd
/// with `Type=notify`.
pub(crate) struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` and `WATCHDOG_USEC` (honouring `WATCHDOG_PID`).
    pub(crate) fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|p| {
            let bytes = p.as_encoded_bytes();
            let addr = if let Some(name) = bytes.strip_prefix(b"@") {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name).ok()?
            } else {
                std::os::unix::net::SocketAddr::from_pathname(std::path::Path::new(&p)).ok()?
            };
            let sock = UnixDatagram::unbound().ok()?;
            Some((sock, addr))
        });
        let pid_ok = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|p| p == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0 && pid_ok)
            .map(Duration::from_micros);
        if socket.is_some() {
            log::debug!("systemd notification socket found; watchdog {watchdog:?}");
        }
        Notifier { socket, watchdog }
    }

    /// A notifier that tells no one (the service's unit tests).
    #[cfg(test)]
    pub(crate) fn silent() -> Notifier {
        Notifier {
            socket: None,
            watchdog: None,
        }
    }

    /// The watchdog period systemd expects pings within, if enabled.
    pub(crate) fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends `state` (e.g. `READY=1\nSTATUS=...`). Failures are logged once at
    /// debug level: notification is best effort.
    pub(crate) fn notify(&self, state: &str) {
        if let Some((sock, addr)) = &self.socket {
            if let Err(e) = sock.send_to_addr(state.as_bytes(), addr) {
                log::debug!("sd_notify {state:?}: {e}");
            }
        }
    }
}

static STOP: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: nix::libc::c_int) {
    // Only async-signal-safe work here: set a flag.
    if sig == nix::libc::SIGHUP {
        RELOAD.store(true, Ordering::SeqCst);
    } else {
        STOP.store(true, Ordering::SeqCst);
    }
}

/// Installs handlers: SIGTERM and SIGINT request a stop, SIGHUP a reload.
pub(crate) fn install_signal_handlers() -> crate::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only stores to atomics, which is async-signal-safe.
        unsafe { sigaction(sig, &action) }
            .map_err(|e| crate::err!(Internal, "installing the {sig} handler: {e}"))?;
    }
    Ok(())
}

/// Whether a stop was requested (by a signal).
pub(crate) fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Takes a pending reload request.
pub(crate) fn take_reload() -> bool {
    RELOAD.swap(false, Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_arrive_on_the_socket_systemd_names() {
        let dir = std::env::temp_dir().join(format!("ms-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            socket: Some((
                UnixDatagram::unbound().unwrap(),
                std::os::unix::net::SocketAddr::from_pathname(&path).unwrap(),
            )),
            watchdog: None,
        };
        n.notify("READY=1\nSTATUS=analysing");
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=analysing");
    }
}
