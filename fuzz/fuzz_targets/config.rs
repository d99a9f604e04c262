//! `config`: arbitrary bytes as the main configuration file.
//!
//! UTF-8 input goes through `mainstream::config::load_str` as if it were
//! `tests/fixtures/config/good/config.toml` inside the scratch tree (see
//! `src/lib.rs`), so relative paths reach a real base manifest, a real
//! M-Package, a replay file and the `apps.d/` drop-in beside it: the deep
//! validation paths, not only the TOML parser. Non-UTF-8 input is refused by
//! `read_source` before validation and has nothing more to reach.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = mainstream_fuzz::scratch().join(mainstream_fuzz::CONFIG_REL);
    let result = mainstream::config::load_str(&path, text);
    mainstream_fuzz::check_config(&path, text, &result);
});
