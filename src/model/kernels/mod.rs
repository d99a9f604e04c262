//! Our compute kernels for the ops in `model::ops`: plain functions on
//! slices, knowing nothing of tract's graph (the split tract makes between
//! tract-core's ops and tract-linalg's kernels). The only place in the model
//! where `unsafe` is allowed: SIMD intrinsics on raw pointers, and output
//! tensors allocated uninitialised because a kernel writes every element.

pub(crate) mod depthwise;
pub(crate) mod im2col;
pub(crate) mod path;
pub(crate) mod pointwise;
pub mod pool;
