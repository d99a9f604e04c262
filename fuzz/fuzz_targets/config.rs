//! `config`: arbitrary bytes as the main configuration file and its drop-ins.
//!
//! The input is split at NUL bytes (never valid in TOML): the first part is
//! the main config, the next ones are drop-in files of its `apps.d/` (see
//! [`mainstream_fuzz::write_config_case`]; an input without NUL gets the good
//! fixture's real drop-in). They are written to a per-process directory on
//! tmpfs beside `tests/fixtures/config/good/` in the scratch tree, so relative
//! paths reach a real base manifest, a real M-Package and a replay file, and
//! the whole `mainstream::config::load` runs: reading the files, the drop-in
//! directory and the deep validation paths, not only the TOML parser.
//!
//! With `MAINSTREAM_FUZZ_SHOW=1` in the environment each result is printed to
//! stderr (for replaying one input, not for fuzzing).

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn show() -> bool {
    static SHOW: OnceLock<bool> = OnceLock::new();
    *SHOW.get_or_init(|| std::env::var_os("MAINSTREAM_FUZZ_SHOW").is_some_and(|v| v == "1"))
}

fuzz_target!(|data: &[u8]| {
    let case = mainstream_fuzz::write_config_case(data);
    let result = mainstream::config::load(&case.path);
    if show() {
        match &result {
            Ok((cfg, warnings)) => eprintln!(
                "accepted: {} cameras, {} apps {:?}, {} warnings {warnings:#?}",
                cfg.cameras.len(),
                cfg.apps.len(),
                cfg.apps.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
                warnings.len()
            ),
            Err(r) => {
                eprintln!("refused:");
                for d in r.errors.iter().chain(&r.warnings) {
                    eprintln!("  {d}");
                }
            }
        }
    }
    mainstream_fuzz::check_config(&case, &result);
});
