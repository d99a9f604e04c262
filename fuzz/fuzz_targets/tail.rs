//! `tail`: see `src/harness/tail.rs` for the input layout and the checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mainstream_fuzz::harness::tail::run(data));
