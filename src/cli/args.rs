//! A command's arguments consumed option by option, and the usage errors
//! that name the option and say what was expected.

use crate::error::{Error, ErrorKind, Result};
use std::path::PathBuf;

/// A usage error (exit code 2) with this message.
pub(super) fn usage(msg: String) -> Error {
    Error::new(ErrorKind::Usage, msg)
}

/// Parses a comma-separated list, naming the option and the bad item on error.
pub(super) fn parse_list<T>(
    opt: &str,
    v: &str,
    item: impl Fn(&str) -> Option<T>,
    what: &str,
) -> Result<Vec<T>> {
    v.split(',')
        .map(|x| {
            item(x.trim())
                .ok_or_else(|| usage(format!("{opt}: {x:?} is not valid: expected {what}")))
        })
        .collect()
}

/// The arguments after the command name, consumed option by option.
pub(super) struct Args {
    /// The command's name, for error messages.
    pub(super) cmd: &'static str,
    /// What is left to consume.
    pub(super) rest: std::vec::IntoIter<String>,
    /// Whether `-h` or `--help` was among them.
    pub(super) help: bool,
}

impl Args {
    /// Next `(option, inline value)`, splitting `--opt=value`; `None` at the end.
    pub(super) fn next_opt(&mut self) -> Result<Option<(String, Option<String>)>> {
        let Some(a) = self.rest.next() else {
            return Ok(None);
        };
        if a == "-h" || a == "--help" {
            self.help = true;
            return self.next_opt();
        }
        if !a.starts_with('-') || a == "-" {
            return Err(usage(format!(
                "unexpected argument {a:?} for `mainstream {}`; see `mainstream {} --help`",
                self.cmd, self.cmd
            )));
        }
        Ok(Some(match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_owned(), Some(v.to_owned())),
            _ => (a, None),
        }))
    }

    /// The option's value, inline or the next argument; `what` says what is expected.
    pub(super) fn value(
        &mut self,
        opt: &str,
        inline: Option<String>,
        what: &str,
    ) -> Result<String> {
        match inline.or_else(|| self.rest.next()) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(usage(format!("{opt} needs a value: {what}"))),
        }
    }

    /// The option's value parsed as a number.
    pub(super) fn number<T: std::str::FromStr>(
        &mut self,
        opt: &str,
        inline: Option<String>,
        what: &str,
    ) -> Result<T> {
        let v = self.value(opt, inline, what)?;
        v.parse()
            .map_err(|_| usage(format!("{opt} {v:?} is not valid: expected {what}")))
    }

    /// A flag: an error if it was given `=value`.
    pub(super) fn no_value(opt: &str, inline: &Option<String>) -> Result<()> {
        match inline {
            Some(_) => Err(usage(format!("{opt} takes no value"))),
            None => Ok(()),
        }
    }

    /// The error for an option this command does not take.
    pub(super) fn unknown(&self, opt: &str) -> Error {
        usage(format!(
            "unknown option {opt} for `mainstream {}`; see `mainstream {} --help`",
            self.cmd, self.cmd
        ))
    }

    /// `-c` / `--config FILE`.
    pub(super) fn config(&mut self, opt: &str, inline: Option<String>) -> Result<PathBuf> {
        Ok(PathBuf::from(self.value(
            opt,
            inline,
            "the configuration file",
        )?))
    }

    /// `--budget CORES` of `plan`, `run` and `demo`.
    pub(super) fn budget(&mut self, opt: &str, inline: Option<String>) -> Result<f64> {
        let b: f64 = self.number(opt, inline, "a number of cores above 0, e.g. 1.5")?;
        if !(b.is_finite() && b > 0.0 && b <= 1024.0) {
            return Err(usage(format!(
                "--budget {b} is out of range: expected cores above 0 and at most 1024"
            )));
        }
        Ok(b)
    }
}
