//! Engine bench with mimalloc as the global allocator; see engine.rs.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod engine;

fn main() -> std::process::ExitCode {
    engine::main("mimalloc")
}
