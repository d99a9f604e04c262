//! Rules every file under `src/` keeps: it opens with a `//!` line naming
//! its one concern, and `unsafe` appears only in the files allowed to use
//! it, each block after a `// SAFETY:` comment.

use crate::common::root;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `path` relative to the repository root, with `/` separators.
fn rel(path: &Path) -> String {
    path.strip_prefix(root()).unwrap().display().to_string()
}

/// The files that may allow `unsafe_code` (the crate denies it), and why.
const UNSAFE_ALLOWED: [(&str, &str); 9] = [
    (
        "src/model/kernels/pointwise.rs",
        "AVX-512F tiles on raw pointers",
    ),
    ("src/model/kernels/neon.rs", "NEON tiles on raw pointers"),
    (
        "src/model/kernels/depthwise.rs",
        "its AVX-512F and AVX2 builds, chosen at run time",
    ),
    (
        "src/model/kernels/im2col.rs",
        "disjoint columns of one matrix filled in parallel",
    ),
    (
        "src/model/kernels/pool.rs",
        "a job on the caller's stack run by the workers",
    ),
    ("src/preprocess/jpegdec.rs", "its AVX2 and SSE4.1 builds"),
    (
        "src/preprocess/mod.rs",
        "the resize's AVX2 and SSE4.1 builds",
    ),
    ("src/camera/v4l2.rs", "V4L2 ioctls and mmap"),
    ("src/daemon/systemd.rs", "sigaction"),
];

/// Whether a line of code (comments stripped) uses `unsafe`.
fn uses_unsafe(line: &str) -> bool {
    let code = line.split("//").next().unwrap_or_default();
    code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| w == "unsafe")
}

#[test]
fn every_source_file_opens_with_a_doc_line_naming_its_concern() {
    let files = rust_files(&root().join("src"));
    assert!(
        files.len() > 50,
        "found only {} files under src/",
        files.len()
    );
    let missing: Vec<String> = files
        .iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            let first = text.lines().next().unwrap_or_default();
            let words = first.strip_prefix("//!").map(str::trim).unwrap_or_default();
            words.split_whitespace().count() < 3
        })
        .map(|p| rel(p))
        .collect();
    assert!(
        missing.is_empty(),
        "files whose first line is not a `//!` line of at least three words: {missing:?}"
    );
}

#[test]
fn unsafe_code_is_denied_but_in_the_listed_files_each_block_with_its_safety_comment() {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    assert!(
        lib.contains("\n#![deny(unsafe_code)]\n"),
        "src/lib.rs must deny unsafe_code"
    );
    let mut misplaced = Vec::new();
    let mut unexplained = Vec::new();
    for path in rust_files(&root().join("src")) {
        let name = rel(&path);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let allowed = UNSAFE_ALLOWED.iter().any(|(f, _)| *f == name);
        if text.contains("allow(unsafe_code") && !allowed {
            misplaced.push(name.clone());
        }
        for (i, line) in lines.iter().enumerate() {
            let block = line.contains("unsafe {") || line.trim_start().starts_with("unsafe impl");
            if !(uses_unsafe(line) && block) {
                continue;
            }
            // The comment sits on one of the lines just above (a statement
            // or match arm may open a few lines before its `unsafe`).
            let above = &lines[i.saturating_sub(8)..=i];
            if !above.iter().any(|l| l.contains("SAFETY:")) {
                unexplained.push(format!("{name}:{}", i + 1));
            }
        }
    }
    assert!(
        misplaced.is_empty(),
        "files allowing unsafe_code that are not in UNSAFE_ALLOWED: {misplaced:?}"
    );
    assert!(
        unexplained.is_empty(),
        "unsafe blocks without a `// SAFETY:` comment just above: {unexplained:?}"
    );
}

#[test]
fn unsafe_is_recognised_in_code_but_not_in_comments_or_names() {
    assert!(uses_unsafe("    let x = unsafe { f() };"));
    assert!(uses_unsafe("unsafe impl Send for Buffers {}"));
    assert!(!uses_unsafe("// the unsafe tiles"));
    assert!(!uses_unsafe("let not_unsafe = 1;"));
}
