//! The stem runtime: the base network, its branch points, and the tree of
//! shared stem segments and per-app heads, run on tract.
//!
//! All tract calls live in this module: tract's internal crates are not a
//! stable API, so the version is pinned and the surface kept small. Our own
//! ops follow tract's layout: `ops` (one op per file), `rules` (the
//! rewrites that install them between declutter and codegen) and `kernels`
//! (the arithmetic, the only place here where `unsafe` is allowed).

mod exec;
mod kernels;
mod mailbox;
pub mod manifest;
pub mod net;
pub use kernels::pool;
pub(crate) mod ops;
mod rules;
pub mod tree;
