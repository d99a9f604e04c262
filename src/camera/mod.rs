//! Frame sources: V4L2 cameras and replay files behind one trait.
