//! Pixel-format conversion, resize and normalisation into fixed buffers.
