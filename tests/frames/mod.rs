//! JPEG stream surgery for the tests of damaged camera bytes: split a stream
//! into its frames, make a frame lie about its size.
// Each test binary uses a subset of these helpers.
#![allow(dead_code)]

/// The frames of a concatenated JPEG stream, split at each SOI (`FF D8 FF`).
pub fn split_at_soi(stream: &[u8]) -> Vec<Vec<u8>> {
    let starts: Vec<usize> = (0..stream.len().saturating_sub(2))
        .filter(|&i| stream[i..i + 3] == [0xFF, 0xD8, 0xFF])
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(k, &s)| stream[s..*starts.get(k + 1).unwrap_or(&stream.len())].to_vec())
        .collect()
}

/// `jpeg` with the size in its first SOF0..SOF2 segment set to `w` x `h`.
pub fn with_declared_size(jpeg: &[u8], w: u16, h: u16) -> Vec<u8> {
    let mut j = jpeg.to_vec();
    let mut i = 2;
    while !(0xC0..=0xC2).contains(&j[i + 1]) {
        i += 2 + usize::from(u16::from_be_bytes([j[i + 2], j[i + 3]]));
    }
    j[i + 5..i + 7].copy_from_slice(&h.to_be_bytes());
    j[i + 7..i + 9].copy_from_slice(&w.to_be_bytes());
    j
}
