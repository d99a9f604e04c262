//! Configuration diagnostics: `FILE:LINE:COL: message`, collected, not thrown.
//!
//! Validation never stops at the first problem: every phase pushes what it
//! finds into a [`Diagnostics`] list so that an operator fixes a config in one
//! round trip. Positions come from byte spans that `toml` keeps for every key
//! and value.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in.
    pub path: PathBuf,
    /// 1-based line; 0 when the problem concerns the whole file.
    pub line: usize,
    /// 1-based column in characters; 0 when the problem concerns the whole file.
    pub col: usize,
    /// What is wrong and, where possible, what would be right.
    pub msg: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.msg)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                self.line,
                self.col,
                self.msg
            )
        }
    }
}

/// A source file's text, kept to turn byte offsets into line and column.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// Where the text came from.
    pub path: PathBuf,
    /// The whole text.
    pub text: String,
}

impl SourceFile {
    /// 1-based (line, column) of byte offset `at`, counting columns in characters.
    pub fn line_col(&self, at: usize) -> (usize, usize) {
        let at = at.min(self.text.len());
        // Step back to a char boundary so slicing cannot panic on odd spans.
        let mut at = at;
        while !self.text.is_char_boundary(at) {
            at -= 1;
        }
        let before = &self.text[..at];
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
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
            msg: msg.into(),
        });
    }

    /// A problem with a whole file (unreadable, missing).
    pub fn file(&mut self, path: &Path, msg: impl Into<String>) {
        self.list.push(Diagnostic {
            path: path.to_owned(),
            line: 0,
            col: 0,
            msg: msg.into(),
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
        let src = SourceFile {
            path: "x.toml".into(),
            text: "a = 1\nname = \"żółw\" x\n".into(),
        };
        assert_eq!(src.line_col(0), (1, 1));
        assert_eq!(src.line_col(6), (2, 1));
        // The 'x' after the multi-byte string is character 15 of line 2.
        let x = src.text.rfind('x').unwrap();
        assert_eq!(src.line_col(x), (2, 15));
        // Offsets past the end or inside a character do not panic.
        assert_eq!(src.line_col(10_000).0, 3);
        assert_eq!(src.line_col(15).0, 2);
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
