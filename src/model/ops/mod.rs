//! Our tract ops for MobileNet-style layers, one per file; `model::rules`
//! installs them and `model::kernels` computes them.

pub(crate) mod depthwise;
pub(crate) mod pointwise;
