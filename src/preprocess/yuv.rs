//! YUYV (packed YUV 4:2:2) to RGB, ITU-R BT.601 limited range.
//!
//! USB webcams send YUYV with BT.601 coefficients and "TV" range: Y in 16..=235,
//! Cb/Cr in 16..=240 centred on 128 (the UVC default and what V4L2 reports as
//! `V4L2_COLORSPACE_SMPTE170M`/`V4L2_QUANTIZATION_LIM_RANGE`). With Kr = 0.299 and
//! Kb = 0.114:
//!
//! ```text
//! R = 255/219 (Y-16)                                  + 255/224 * 1.402 (Cr-128)
//! G = 255/219 (Y-16) - 255/224 * 1.772 * Kb/Kg (Cb-128) - 255/224 * 1.402 * Kr/Kg (Cr-128)
//! B = 255/219 (Y-16) + 255/224 * 1.772 (Cb-128)
//! ```
//!
//! computed in 16-bit fixed point and rounded to nearest, which is within 1 of the
//! exact real-valued result for every input. Each pixel pair shares its Cb/Cr sample
//! (nearest-neighbour chroma, as libyuv and ffmpeg's default converter do); after
//! the ~3x downscale that follows, interpolating chroma would change nothing visible.

/// Fractional bits of the conversion coefficients.
const BITS: u32 = 16;

const fn fixed(x: f64) -> i32 {
    (x * (1u32 << BITS) as f64 + 0.5) as i32
}

const KR: f64 = 0.299;
const KB: f64 = 0.114;
const KG: f64 = 1.0 - KR - KB;
/// Luma gain: 219 steps of limited range onto 255.
const CY: i32 = fixed(255.0 / 219.0);
const CRV: i32 = fixed(255.0 / 224.0 * 2.0 * (1.0 - KR));
const CGU: i32 = fixed(255.0 / 224.0 * 2.0 * (1.0 - KB) * KB / KG);
const CGV: i32 = fixed(255.0 / 224.0 * 2.0 * (1.0 - KR) * KR / KG);
const CBU: i32 = fixed(255.0 / 224.0 * 2.0 * (1.0 - KB));
const ROUND: i32 = 1 << (BITS - 1);

/// Shifts out the fraction and clamps to 0..=255 without branches (saturated
/// colours would make branches mispredict).
#[inline(always)]
fn clamp8(v: i32) -> u8 {
    let v = v >> BITS;
    (v & !(v >> 31)).min(255) as u8
}

/// Converts one YUV pixel (BT.601 limited range) to RGB.
#[cfg(test)]
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let yy = (i32::from(y) - 16) * CY + ROUND;
    let u = i32::from(u) - 128;
    let v = i32::from(v) - 128;
    [
        clamp8(yy + CRV * v),
        clamp8(yy - CGU * u - CGV * v),
        clamp8(yy + CBU * u),
    ]
}

/// Converts packed YUYV (`Y0 U Y1 V` per pixel pair) to packed RGB.
///
/// Converts `min(src.len() / 4, dst.len() / 6)` pixel pairs.
#[inline(always)]
pub(crate) fn yuyv_to_rgb(src: &[u8], dst: &mut [u8]) {
    for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(6)) {
        let yy0 = (i32::from(s[0]) - 16) * CY + ROUND;
        let yy1 = (i32::from(s[2]) - 16) * CY + ROUND;
        let u = i32::from(s[1]) - 128;
        let v = i32::from(s[3]) - 128;
        let r = CRV * v;
        let g = -CGU * u - CGV * v;
        let b = CBU * u;
        d[0] = clamp8(yy0 + r);
        d[1] = clamp8(yy0 + g);
        d[2] = clamp8(yy0 + b);
        d[3] = clamp8(yy1 + r);
        d[4] = clamp8(yy1 + g);
        d[5] = clamp8(yy1 + b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact real-valued BT.601 limited-range conversion.
    fn exact(y: u8, u: u8, v: u8) -> [f64; 3] {
        let y = (f64::from(y) - 16.0) * 255.0 / 219.0;
        let u = (f64::from(u) - 128.0) * 255.0 / 224.0;
        let v = (f64::from(v) - 128.0) * 255.0 / 224.0;
        [
            y + 2.0 * (1.0 - KR) * v,
            y - 2.0 * (1.0 - KB) * KB / KG * u - 2.0 * (1.0 - KR) * KR / KG * v,
            y + 2.0 * (1.0 - KB) * u,
        ]
    }

    #[test]
    fn limited_range_black_and_white_map_to_full_range() {
        assert_eq!(yuv_to_rgb(16, 128, 128), [0, 0, 0]);
        assert_eq!(yuv_to_rgb(235, 128, 128), [255, 255, 255]);
        assert_eq!(yuv_to_rgb(126, 128, 128), [128, 128, 128]);
    }

    #[test]
    fn bt601_primaries_decode_to_pure_colours() {
        // 75%-free (100%) colour bars in BT.601 limited range, from the standard:
        // red Y=81 Cb=90 Cr=240, green 145/54/34, blue 41/240/110.
        let red = yuv_to_rgb(81, 90, 240);
        let green = yuv_to_rgb(145, 54, 34);
        let blue = yuv_to_rgb(41, 240, 110);
        for (got, want) in [
            (red, [255, 0, 0]),
            (green, [0, 255, 0]),
            (blue, [0, 0, 255]),
        ] {
            for c in 0..3 {
                assert!(
                    (i32::from(got[c]) - want[c]).abs() <= 2,
                    "{got:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn every_input_is_within_one_of_the_exact_conversion() {
        for y in (0..=255u8).step_by(3) {
            for u in (0..=255u8).step_by(5) {
                for v in (0..=255u8).step_by(7) {
                    let got = yuv_to_rgb(y, u, v);
                    let want = exact(y, u, v);
                    for c in 0..3 {
                        let w = want[c].round().clamp(0.0, 255.0);
                        assert!((f64::from(got[c]) - w).abs() <= 1.0, "{y} {u} {v}: {got:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn pixel_pairs_share_their_chroma() {
        let src = [81u8, 90, 145, 240, 16, 128, 235, 128];
        let mut dst = [0u8; 12];
        yuyv_to_rgb(&src, &mut dst);
        assert_eq!(dst[0..3], yuv_to_rgb(81, 90, 240));
        assert_eq!(dst[3..6], yuv_to_rgb(145, 90, 240));
        assert_eq!(dst[6..9], [0, 0, 0]);
        assert_eq!(dst[9..12], [255, 255, 255]);
    }
}
