//! Engine bench with the system allocator (glibc's or musl's); see engine.rs.

mod engine;

fn main() -> std::process::ExitCode {
    engine::main("system")
}
