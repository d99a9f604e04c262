//! The `mainstream` binary: parse arguments, set up logging, run the command,
//! map the outcome to an exit code. Everything else lives in the library.
#![deny(unsafe_code)]

use std::process::ExitCode;

// musl's allocator makes tract's ~1,200 allocations per frame cost 2.5x the
// network's time in the static build; mimalloc brings it to the glibc figure
// (docs/engine.md, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    mainstream::logging::install(log::LevelFilter::Info);
    mainstream::logging::install_panic_hook();
    let result = mainstream::cli::parse(std::env::args_os().skip(1))
        .and_then(|cmd| mainstream::commands::run(cmd, &mut std::io::stdout().lock()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.chain());
            // Exit codes are 1, 2 or 78: all fit in a u8.
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
