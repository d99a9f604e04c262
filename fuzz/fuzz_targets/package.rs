//! `package`: arbitrary text as an M-Package's `package.toml`.
//!
//! Parsed by `mainstream::package::parse` with the scratch tree's espresso
//! package directory as the place head files are resolved from (nothing is
//! written; a head naming an existing file finds it, others are refused).

#![no_main]

use libfuzzer_sys::fuzz_target;
use mainstream::diag::{Diagnostics, SourceFile};
use mainstream_fuzz::Checked;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = mainstream_fuzz::scratch().join(mainstream_fuzz::PACKAGE_REL);
    let src = SourceFile::new(dir.join(mainstream::package::META_FILE), text.to_owned());
    let mut diags = Diagnostics::default();
    match mainstream::package::parse(&src, &dir, &mut diags) {
        Some(p) => {
            assert!(diags.is_empty(), "accepted with problems: {diags:?}");
            mainstream_fuzz::check_package(&p);
        }
        None => assert!(!diags.is_empty(), "refused without saying why"),
    }
    let files = [Checked::new(&src.path, data)];
    for d in diags.iter() {
        mainstream_fuzz::check_diagnostic(d, &files);
    }
});
