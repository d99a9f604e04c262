//! The stem runtime: the base network, its branch points, and the tree of
//! shared stem segments and per-app heads, run on tract.
//!
//! All tract calls live in this module: tract's internal crates are not a
//! stable API, so the version is pinned and the surface kept small.

pub mod manifest;
pub mod net;
pub mod pointwise;
pub mod tree;
