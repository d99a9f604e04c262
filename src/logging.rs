//! Log setup: readable on a terminal, and in `journalctl` under systemd.
//!
//! Under systemd (stderr connected to the journal, which systemd announces in
//! `$JOURNAL_STREAM`) every line starts with a `<N>` syslog priority prefix,
//! so `journalctl -p warning` works, and carries no timestamp because the
//! journal adds its own. On a terminal lines carry a UTC timestamp and the level.
//! `MAINSTREAM_LOG_FORMAT=systemd|plain` forces either; `MAINSTREAM_LOG`
//! (env_logger filter syntax) overrides the configured level.

use std::io::Write;

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// `<3>message`: syslog priority prefix for journald.
    Systemd,
    /// `2026-01-01T00:00:00Z WARN  message`.
    Plain,
}

/// The syslog priority journald understands for a log level.
pub(crate) fn syslog_priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// Picks the format from the environment.
pub(crate) fn detect_format() -> Format {
    match std::env::var("MAINSTREAM_LOG_FORMAT").as_deref() {
        Ok("systemd") => Format::Systemd,
        Ok("plain") => Format::Plain,
        _ if std::env::var_os("JOURNAL_STREAM").is_some() => Format::Systemd,
        _ => Format::Plain,
    }
}

/// Installs the global logger at `level` (unless `MAINSTREAM_LOG` says otherwise).
/// Calling it twice keeps the first logger (tests may call it repeatedly).
pub fn install(level: log::LevelFilter) {
    let format = detect_format();
    let mut b = env_logger::Builder::new();
    b.filter_level(level);
    // tract-linalg reports its CPU detection at info level on every start;
    // an operator needs only its warnings.
    b.filter_module("tract_linalg", log::LevelFilter::Warn.min(level));
    if let Ok(spec) = std::env::var("MAINSTREAM_LOG") {
        b.parse_filters(&spec);
    }
    b.target(env_logger::Target::Stderr);
    match format {
        Format::Systemd => {
            b.format(|buf, rec| writeln!(buf, "<{}>{}", syslog_priority(rec.level()), rec.args()))
        }
        Format::Plain => b.format(|buf, rec| {
            writeln!(
                buf,
                "{} {:<5} {}",
                buf.timestamp_seconds(),
                rec.level(),
                rec.args()
            )
        }),
    };
    // A logger may already be installed (tests); keeping it is fine.
    let _ = b.try_init();
}

/// Logs panics through the logger before the default hook runs, so a crash
/// under systemd lands in the journal with priority `crit`-level visibility.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        log::error!("panic: {info}");
        default(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_warnings_get_journald_priorities() {
        assert_eq!(syslog_priority(log::Level::Error), 3);
        assert_eq!(syslog_priority(log::Level::Warn), 4);
        assert_eq!(syslog_priority(log::Level::Info), 6);
        assert_eq!(syslog_priority(log::Level::Trace), 7);
    }
}
