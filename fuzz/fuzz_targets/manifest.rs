//! `manifest`: arbitrary text as a base network's `manifest.toml`.
//!
//! `BaseManifest::parse` only parses and checks; it reads no file, so no
//! scratch tree is needed (the path only locates the files it names).

#![no_main]

use libfuzzer_sys::fuzz_target;
use mainstream::model::manifest::BaseManifest;
use mainstream::ErrorKind;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/nonexistent/mainstream-fuzz").join(mainstream_fuzz::MANIFEST_REL);
    match BaseManifest::parse(&path, text) {
        Ok(m) => mainstream_fuzz::check_manifest(&m),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
            assert!(!e.chain().to_string().is_empty());
        }
    }
});
