//! Diagnostics of the text files an operator writes (config, drop-ins, package
//! and base manifests): `FILE:LINE:COL: message`, collected, not thrown.
//!
//! Validation never stops at the first problem: every phase pushes what it
//! finds into a [`Diagnostics`] list so that an operator fixes a config in one
//! round trip. Positions come from byte spans that `toml` keeps for every key
//! and value.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Largest config, drop-in or manifest file read (1 MiB): far above any real
/// one, small enough that a wrong path (a disk image, a FIFO) is refused fast.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads a config-sized text file: a regular file of at most
/// [`MAX_FILE_BYTES`], in UTF-8 (see [`crate::files::read_bounded`]).
pub fn read_source(path: &Path) -> Result<SourceFile, String> {
    let buf = crate::files::read_bounded(path, MAX_FILE_BYTES).map_err(|e| e.to_string())?;
    let text = String::from_utf8(buf).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok(SourceFile::new(path.to_owned(), text))
}

/// One problem in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in.
    pub path: PathBuf,
    /// 1-based line; 0 when the problem concerns the whole file.
    pub line: usize,
    /// 1-based column in characters; 0 when the problem concerns the whole file.
    pub col: usize,
    /// What is wrong and, where possible, what would be right; one line
    /// (control characters escaped as `\n`, `\u{1b}`).
    pub msg: String,
}

impl Diagnostic {
    /// `FILE:LINE:COL: KIND: message` (`FILE: KIND: message` for a whole
    /// file) on one line: control characters in the path or the message (a
    /// newline in a file name) are escaped as Rust does (`\n`).
    pub(crate) fn with_kind<'a>(&'a self, kind: &'a str) -> impl fmt::Display + 'a {
        Rendered { d: self, kind }
    }

    /// Where the problem is.
    pub fn position(&self) -> Position {
        Position {
            path: self.path.clone(),
            line: self.line,
            col: self.col,
        }
    }
}

struct Rendered<'a> {
    d: &'a Diagnostic,
    kind: &'a str,
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.d;
        write_escaped(f, &d.path.display().to_string())?;
        if d.line != 0 {
            write!(f, ":{}:{}", d.line, d.col)?;
        }
        f.write_str(": ")?;
        if !self.kind.is_empty() {
            write!(f, "{}: ", self.kind)?;
        }
        write_escaped(f, &d.msg)
    }
}

/// Writes `s` with its control characters escaped, so that one diagnostic
/// stays one line whatever the file names hold.
fn write_escaped(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    for c in s.chars() {
        if c.is_control() {
            write!(f, "{}", c.escape_default())?;
        } else {
            write!(f, "{c}")?;
        }
    }
    Ok(())
}

/// `s` with control characters escaped, without copying it if it has none:
/// messages are stored this way, so a message quoting a file name or a TOML
/// key with a newline is still one line.
fn one_line(s: String) -> String {
    if s.chars().any(char::is_control) {
        escape_controls(&s)
    } else {
        s
    }
}

/// `s` with control characters escaped (see [`Diagnostic::with_kind`]).
pub(crate) fn escape_controls(s: &str) -> String {
    struct E<'a>(&'a str);
    impl fmt::Display for E<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write_escaped(f, self.0)
        }
    }
    E(s).to_string()
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_kind("").fmt(f)
    }
}

/// A place in a file: what a note points back to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// The file.
    pub path: PathBuf,
    /// 1-based line; 0 for the whole file.
    pub line: usize,
    /// 1-based column in characters; 0 for the whole file.
    pub col: usize,
}

/// A source file's text, kept to turn byte offsets into line and column.
///
/// The text is fixed once made: line starts are indexed on the first
/// [`SourceFile::line_col`] call, so that a file with many problems costs a
/// binary search per problem, not a scan of the text (a 1 MB config with
/// 200,000 problems took 39 s to report before).
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// Where the text came from.
    pub path: PathBuf,
    text: String,
    /// Byte offsets where lines 2, 3, ... start.
    line_starts: std::sync::OnceLock<Vec<usize>>,
}

impl SourceFile {
    /// Text read from (or standing for) `path`.
    pub fn new(path: impl Into<PathBuf>, text: String) -> SourceFile {
        SourceFile {
            path: path.into(),
            text,
            line_starts: std::sync::OnceLock::new(),
        }
    }

    /// The position of byte offset `at`.
    pub fn position(&self, at: usize) -> Position {
        let (line, col) = self.line_col(at);
        Position {
            path: self.path.clone(),
            line,
            col,
        }
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// 1-based (line, column) of byte offset `at`, counting columns in characters.
    pub(crate) fn line_col(&self, at: usize) -> (usize, usize) {
        let mut at = at.min(self.text.len());
        // Step back to a char boundary so slicing cannot panic on odd spans.
        while !self.text.is_char_boundary(at) {
            at -= 1;
        }
        let starts = self
            .line_starts
            .get_or_init(|| self.text.match_indices('\n').map(|(i, _)| i + 1).collect());
        let newlines_before = starts.partition_point(|&s| s <= at);
        let line_start = match newlines_before {
            0 => 0,
            n => starts[n - 1],
        };
        (
            newlines_before + 1,
            self.text[line_start..at].chars().count() + 1,
        )
    }
}

/// Every problem found so far, in the order found.
#[derive(Debug, Default)]
pub struct Diagnostics {
    list: Vec<Diagnostic>,
}

impl Diagnostics {
    /// A problem at a span of a source file.
    pub fn at(&mut self, src: &SourceFile, span: Range<usize>, msg: impl Into<String>) {
        let (line, col) = src.line_col(span.start);
        self.list.push(Diagnostic {
            path: src.path.clone(),
            line,
            col,
            msg: one_line(msg.into()),
        });
    }

    /// A problem with a whole file (unreadable, missing).
    pub fn file(&mut self, path: &Path, msg: impl Into<String>) {
        self.list.push(Diagnostic {
            path: path.to_owned(),
            line: 0,
            col: 0,
            msg: one_line(msg.into()),
        });
    }

    /// A problem at a position found earlier.
    pub(crate) fn at_position(&mut self, pos: &Position, msg: impl Into<String>) {
        self.list.push(Diagnostic {
            path: pos.path.clone(),
            line: pos.line,
            col: pos.col,
            msg: one_line(msg.into()),
        });
    }

    /// A problem reported by the TOML parser or deserialiser.
    pub fn toml(&mut self, src: &SourceFile, e: &toml::de::Error, fallback: Range<usize>) {
        let span = e.span().unwrap_or(fallback);
        // toml's messages may span lines (they can include a caret diagram);
        // keep the first line, which is the message itself.
        let msg = e.message().lines().next().unwrap_or("invalid TOML").trim();
        self.at(src, span, msg.to_owned());
    }

    /// Adds a diagnostic found elsewhere (e.g. in an M-Package's own file).
    pub fn push(&mut self, d: Diagnostic) {
        self.list.push(d);
    }

    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// How many problems were found.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The problems, in order found.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.list.iter()
    }

    /// Takes the list.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters_from_one() {
        let src = SourceFile::new("x.toml", "a = 1\nname = \"żółw\" x\n".into());
        assert_eq!(src.line_col(0), (1, 1));
        assert_eq!(src.line_col(6), (2, 1));
        // The 'x' after the multi-byte string is character 15 of line 2.
        let x = src.text().rfind('x').unwrap();
        assert_eq!(src.line_col(x), (2, 15));
        // Offsets past the end or inside a character do not panic.
        assert_eq!(src.line_col(10_000).0, 3);
        assert_eq!(src.line_col(15).0, 2);
    }

    #[test]
    fn the_line_index_agrees_with_counting_at_every_offset() {
        let text = "é\r\n\nab\n  żółw = 1\r\nlast".to_owned();
        let src = SourceFile::new("y.toml", text.clone());
        for at in 0..=text.len() + 2 {
            let mut a = at.min(text.len());
            while !text.is_char_boundary(a) {
                a -= 1;
            }
            let before = &text[..a];
            let line = before.matches('\n').count() + 1;
            let start = before.rfind('\n').map_or(0, |i| i + 1);
            let want = (line, before[start..].chars().count() + 1);
            assert_eq!(src.line_col(at), want, "offset {at}");
        }
    }

    #[test]
    fn many_problems_in_a_big_file_are_located_quickly() {
        // 200,000 lookups in a 1 MB file: a scan per lookup took 39 s.
        let text = "key = \"value\"\n".repeat(70_000);
        let src = SourceFile::new("big.toml", text);
        let t0 = std::time::Instant::now();
        let mut sum = 0;
        for i in 0..200_000 {
            sum += src.line_col(i * 5).0;
        }
        assert!(sum > 0);
        // Generous for a debug build on a loaded machine; the scan needed minutes.
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            t0.elapsed()
        );
    }

    #[test]
    fn a_newline_in_a_path_or_message_cannot_split_a_diagnostic() {
        let mut d = Diagnostics::default();
        let src = SourceFile::new("/etc/ms/apps.d/a\nb\u{1b}[31m.toml", "x = 1\n".into());
        d.at(&src, 4..5, "replay source /tmp/x\ny: not found");
        let d = d.iter().next().unwrap();
        for text in [d.to_string(), d.with_kind("error").to_string()] {
            assert_eq!(text.lines().count(), 1, "{text}");
            assert!(!text.contains('\u{1b}'), "{text}");
        }
        assert_eq!(
            d.with_kind("error").to_string(),
            "/etc/ms/apps.d/a\\nb\\u{1b}[31m.toml:1:5: error: replay source /tmp/x\\ny: not found"
        );
    }

    #[test]
    fn whole_file_problems_print_without_position() {
        let mut d = Diagnostics::default();
        d.file(Path::new("/etc/m.toml"), "cannot read: denied");
        assert_eq!(
            d.iter().next().unwrap().to_string(),
            "/etc/m.toml: cannot read: denied"
        );
    }
}
