//! Pixel-format conversion, resize and normalisation into fixed buffers.
//!
//! A [`Preprocessor`] turns one camera frame (MJPEG, YUYV, GREY or RGB24) into the
//! base network's input tensor: planar `f32` RGB (`NCHW` with `N = 1`), resized to
//! [`InputSpec::width`] x [`InputSpec::height`] and normalised per channel. It is
//! built once per camera stream, allocates all its scratch memory then, and
//! [`Preprocessor::run`] writes straight into the caller's (the runtime's)
//! preallocated input slice. `run` does not allocate for any frame a camera sends
//! (YUYV, GREY, RGB24, baseline MJPEG); only JPEGs that are not baseline camera
//! JPEGs (progressive, 12-bit, 4:4:0, ...) go to `zune-jpeg`, which allocates a
//! bounded amount per frame (see `jpeg.rs` and the `preprocess_alloc` integration
//! test).
//!
//! # Pipeline
//!
//! 1. Decode or convert to 8-bit RGB: MJPEG with our baseline JPEG decoder
//!    (`jpegdec.rs`; libjpeg-turbo's arithmetic, `zune-jpeg` for other JPEGs), YUYV with
//!    BT.601 limited-range coefficients (what UVC webcams send), GREY kept as one
//!    channel and replicated at the end, RGB24 as is. YUYV is converted 16 rows at a
//!    time, and only the columns the filter reads.
//! 2. Resize with Pillow's antialiased `BILINEAR` filter (a triangle whose support
//!    grows with the downscale ratio), bit-exact with `PIL.Image.resize`, which is
//!    what torchvision's `Resize` uses on PIL images: the network sees the same
//!    pixels at run time as in training. Plain 2-tap bilinear would alias at the ~3x
//!    downscale from 640x480. Integer fixed point, horizontal pass then vertical,
//!    each rounded to 8 bits as Pillow does (see `resize.rs`).
//! 3. Normalise: `out = (v * scale - mean[c]) / std[c]`, folded into one
//!    multiply-add per value, `v * (scale / std[c]) + (-mean[c] / std[c])`.
//!
//! # Speed
//!
//! The horizontal pass transposes blocks of 16 rows so that each filter tap is one
//! multiply-add over 16 contiguous lanes, and the vertical pass keeps 32 columns
//! of accumulators in registers; both auto-vectorise. On x86-64 the whole pipeline
//! is also compiled for AVX2 and for SSE4.1, and the best one the CPU supports is
//! picked at run time (SSE2 alone has no 32-bit vector multiply, so the baseline
//! x86-64 build filters one output pixel at a time instead). Every variant gives
//! identical pixels. The environment variable named by [`ISA_ENV`] caps the choice;
//! [`Preprocessor::kernels`] says which one runs. Figures: `cargo bench --bench
//! preprocess`.
//!
//! # Geometry
//!
//! [`Fit::Stretch`] (the default) resizes the whole frame to the input size; the
//! aspect ratio is not kept (640x480 → 224x224 squeezes width by 4/3). Apps watch a
//! fixed camera where events can happen anywhere in the frame, and their heads are
//! trained on whole frames preprocessed the same way, so nothing is cut off.
//! [`Fit::CenterCrop`] instead takes the largest centred region with the input's
//! aspect ratio (the middle 480x480 of a 640x480 frame) and resizes that, for bases
//! or apps trained on undistorted crops; the filter may read a few pixels beyond the
//! crop edge, as Pillow's `resize(box=...)` does.
//!
//! # Accuracy
//!
//! Against Pillow 13 and ffmpeg 5.1 on the same frames (`tests/preprocess_reference.rs`,
//! fixtures from `trainer/make_preprocess_fixtures.sh`), in 8-bit units before
//! normalisation:
//!
//! - RGB24 and GREY, stretched or centre-cropped: identical to Pillow.
//! - YUYV: within 1 of ffmpeg's BT.601 limited-range conversion (and within 1 after
//!   Pillow's resize of it); 99.5% of samples identical.
//! - MJPEG: identical to Pillow's own decode (libjpeg-turbo) plus resize: the baseline
//!   decoder uses libjpeg's integer IDCT, fancy upsampling and colour conversion.
//!   Also identical to `djpeg` on restart-marker, 4:4:4 and grey variants, and to
//!   Pillow on 96 real frames (`tests/preprocess_reference.rs`). JPEGs left to
//!   `zune-jpeg` are within a few units (it rounds differently).
//!
//! After normalisation with the ImageNet constants one unit is 1/(255 * 0.224) ≈
//! 0.0175; the folded normalisation is within 2e-6 of the textbook formula.

mod jpeg;
mod jpegdec;
mod resize;
mod yuv;

use crate::error::Result;
use crate::frame::{PixelFormat, Reject, MAX_DIM};
use resize::Taps;

/// Converts a whole packed YUYV frame (`Y0 U Y1 V` per pixel pair, even
/// width) to packed 8-bit RGB at full size, with the preprocessor's BT.601
/// limited-range conversion: `dst` takes `3 * pixels` bytes. Fails when a
/// buffer is shorter than `width * height` pixels need.
pub fn yuyv_to_rgb8(src: &[u8], width: u32, height: u32, dst: &mut [u8]) -> Result<(), Reject> {
    let pixels = width as usize * height as usize;
    if src.len() < 2 * pixels {
        return Err(Reject::Short {
            len: src.len(),
            need: 2 * pixels,
        });
    }
    if dst.len() < 3 * pixels {
        return Err(Reject::Output {
            len: dst.len(),
            need: 3 * pixels,
        });
    }
    yuv::yuyv_to_rgb(&src[..2 * pixels], &mut dst[..3 * pixels]);
    Ok(())
}

/// What the base network expects as input: size and normalisation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InputSpec {
    /// Input width in pixels.
    pub width: u32,
    /// Input height in pixels.
    pub height: u32,
    /// Multiplies the 8-bit value first (1/255 for torchvision bases, 1 for `(x-127)/128`).
    pub scale: f32,
    /// Subtracted per channel (R, G, B) after scaling.
    pub mean: [f32; 3],
    /// Divides per channel (R, G, B) after subtracting the mean.
    pub std: [f32; 3],
}

impl InputSpec {
    /// torchvision's ImageNet models (MobileNetV2 and most others): 224x224,
    /// `x/255`, then mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).
    pub const IMAGENET_224: InputSpec = InputSpec {
        width: 224,
        height: 224,
        scale: 1.0 / 255.0,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };

    /// Number of `f32` values in the input tensor: `3 * width * height`.
    pub fn tensor_len(&self) -> usize {
        3 * self.width as usize * self.height as usize
    }

    /// The normalised value of an 8-bit sample `v` of channel `c`, computed the
    /// textbook way (for tests and documentation; [`Preprocessor`] folds it).
    pub fn normalise(&self, c: usize, v: u8) -> f32 {
        (f32::from(v) * self.scale - self.mean[c]) / self.std[c]
    }

    fn validate(&self) -> Result<()> {
        if self.width == 0 || self.height == 0 || self.width > MAX_DIM || self.height > MAX_DIM {
            crate::bail!(
                InvalidConfig,
                "network input size {}x{} is not within 1..={MAX_DIM}",
                self.width,
                self.height
            );
        }
        let finite = self.scale.is_finite()
            && self.mean.iter().all(|m| m.is_finite())
            && self.std.iter().all(|s| s.is_finite() && *s != 0.0);
        if !finite {
            crate::bail!(
                InvalidConfig,
                "network input normalisation must be finite with non-zero std: {self:?}"
            );
        }
        Ok(())
    }
}

/// How a frame is mapped onto the network input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fit {
    /// Resize the whole frame to the input size, not keeping its aspect ratio.
    #[default]
    Stretch,
    /// Resize the largest centred region with the input's aspect ratio.
    CenterCrop,
    /// torchvision's evaluation transform: resize the short side to
    /// `resize_short_side`, then take the centred `crop` x `crop` region (for a
    /// square input; in general a centred region the input's size times the
    /// resize scale). What the base network and the M-Trainer's heads saw in
    /// training: MobileNetV2 uses 256 and 224.
    ResizeCrop {
        /// Short side after the resize.
        resize_short_side: u32,
        /// Side of the square centre crop in resized pixels.
        crop: u32,
    },
}

/// Converts frames of one fixed size and format into network input tensors.
///
/// All memory is allocated by [`Preprocessor::new`]; the buffers are reused for
/// every frame. One per stream; `Send`, so it can live on the runtime's thread.
pub struct Preprocessor {
    src_width: usize,
    src_height: usize,
    format: PixelFormat,
    spec: InputSpec,
    fit: Fit,
    /// Horizontal taps (source columns → input columns).
    hx: Taps,
    /// Vertical taps (source rows → input rows).
    vy: Taps,
    /// Source rows `rows.0..rows.1` are read by the vertical filter.
    rows: (usize, usize),
    /// Source columns `cols.0..cols.1` are read by the horizontal filter.
    cols: (usize, usize),
    /// Horizontally resampled rows `rows.0..rows.1`, `width * channels` bytes each.
    inter: Vec<u8>,
    /// [`resize::BLOCK_ROWS`] source rows, transposed (see [`resize::transpose_block`]).
    transposed: Vec<u8>,
    /// [`resize::BLOCK_ROWS`] source rows converted to RGB (YUYV and MJPEG).
    rgb_rows: Vec<u8>,
    /// One resized row, interleaved, before normalisation.
    out_row: Vec<u8>,
    /// The instruction set the pipeline runs with.
    isa: Isa,
    /// Per-channel `scale / std`.
    gain: [f32; 3],
    /// Per-channel `-mean / std`.
    bias: [f32; 3],
    jpeg: Option<jpeg::Jpeg>,
}

impl Preprocessor {
    /// A preprocessor for `src_width` x `src_height` frames of `format`; allocates all
    /// scratch memory.
    ///
    /// Errors with [`InvalidConfig`](crate::error::ErrorKind::InvalidConfig) for
    /// zero or oversized dimensions, an odd YUYV width or a bad [`InputSpec`].
    pub fn new(
        src_width: u32,
        src_height: u32,
        format: PixelFormat,
        spec: &InputSpec,
        fit: Fit,
    ) -> Result<Preprocessor> {
        spec.validate()?;
        if src_width == 0 || src_height == 0 || src_width > MAX_DIM || src_height > MAX_DIM {
            crate::bail!(
                InvalidConfig,
                "frame size {src_width}x{src_height} is not within 1..={MAX_DIM}"
            );
        }
        if format == PixelFormat::Yuyv && !src_width.is_multiple_of(2) {
            crate::bail!(InvalidConfig, "YUYV frame width {src_width} is odd");
        }
        let (sw, sh) = (src_width as usize, src_height as usize);
        let (ow, oh) = (spec.width as usize, spec.height as usize);
        let (x0, y0, x1, y1) = source_box(sw, sh, ow, oh, fit);
        let hx = Taps::new(sw, x0, x1, ow);
        let vy = Taps::new(sh, y0, y1, oh);
        let rows = vy.span();
        let cols = hx.span();
        let channels = if format == PixelFormat::Grey { 1 } else { 3 };
        let mut gain = [0.0; 3];
        let mut bias = [0.0; 3];
        for c in 0..3 {
            gain[c] = spec.scale / spec.std[c];
            bias[c] = -spec.mean[c] / spec.std[c];
        }
        Ok(Preprocessor {
            src_width: sw,
            src_height: sh,
            format,
            spec: *spec,
            fit,
            hx,
            vy,
            rows,
            cols,
            inter: vec![0; (rows.1 - rows.0) * ow * channels],
            transposed: vec![0; resize::BLOCK_ROWS * sw * channels],
            rgb_rows: if matches!(format, PixelFormat::Yuyv | PixelFormat::Mjpeg) {
                vec![0; resize::BLOCK_ROWS * sw * 3]
            } else {
                Vec::new()
            },
            out_row: vec![0; ow * channels],
            isa: Isa::detect(),
            gain,
            bias,
            jpeg: (format == PixelFormat::Mjpeg).then(|| jpeg::Jpeg::new(sw, sh)),
        })
    }

    /// The frame format it reads.
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// The frame size it reads, `(width, height)`.
    pub(crate) fn source_size(&self) -> (u32, u32) {
        (self.src_width as u32, self.src_height as u32)
    }

    /// The geometry policy.
    pub fn fit(&self) -> Fit {
        self.fit
    }

    /// MJPEG frames so far that were not baseline camera JPEGs and went to the
    /// general (allocating) decoder; always 0 for other formats. For logs.
    pub fn jpeg_fallback_frames(&self) -> u64 {
        self.jpeg.as_ref().map_or(0, jpeg::Jpeg::fallback_frames)
    }

    /// Which build of the kernels runs: `"avx2"`, `"sse4.1"` or `"portable"`
    /// (for logs).
    pub fn kernels(&self) -> &'static str {
        self.isa.name()
    }

    /// Converts one frame into `out`, planar RGB `f32` of
    /// [`InputSpec::tensor_len`] values (`[1, 3, height, width]`).
    ///
    /// Raw formats need at least the frame's size in bytes (extra bytes are ignored).
    /// Does not allocate, refused frames included, except for a JPEG the baseline
    /// decoder leaves to `zune-jpeg` (see
    /// [`jpeg_fallback_frames`](Self::jpeg_fallback_frames)).
    ///
    /// A refused frame gives its reason, a [`Reject`] (a small value): kind
    /// [`BadFrame`](crate::error::ErrorKind::BadFrame) for a short, truncated,
    /// corrupt or wrongly sized frame (`out` is then unspecified), and
    /// [`Reject::Output`] (kind `Internal`) if `out` has the wrong length.
    pub fn run(&mut self, frame: &[u8], out: &mut [f32]) -> Result<(), Reject> {
        let plane = self.spec.width as usize * self.spec.height as usize;
        if out.len() != 3 * plane {
            return Err(Reject::Output {
                len: out.len(),
                need: 3 * plane,
            });
        }
        let (gain, bias) = (self.gain, self.bias);
        let (r, rest) = out.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        let grey = self.format == PixelFormat::Grey;
        self.process(frame, |y, row| {
            let w = row.len() / if grey { 1 } else { 3 };
            let at = y * w;
            let (r, g, b) = (&mut r[at..at + w], &mut g[at..at + w], &mut b[at..at + w]);
            if grey {
                for (i, &v) in row.iter().enumerate() {
                    let v = f32::from(v);
                    r[i] = v * gain[0] + bias[0];
                    g[i] = v * gain[1] + bias[1];
                    b[i] = v * gain[2] + bias[2];
                }
            } else {
                for (i, px) in row.chunks_exact(3).enumerate() {
                    r[i] = f32::from(px[0]) * gain[0] + bias[0];
                    g[i] = f32::from(px[1]) * gain[1] + bias[1];
                    b[i] = f32::from(px[2]) * gain[2] + bias[2];
                }
            }
        })
    }

    /// Like [`run`](Self::run) but stops before normalisation: writes the resized
    /// frame as packed 8-bit RGB (`height * width * 3` bytes, row-major). For tests,
    /// debugging and saving what the network saw.
    pub fn run_rgb8(&mut self, frame: &[u8], out: &mut [u8]) -> Result<(), Reject> {
        let plane = self.spec.width as usize * self.spec.height as usize;
        if out.len() != 3 * plane {
            return Err(Reject::Output {
                len: out.len(),
                need: 3 * plane,
            });
        }
        let grey = self.format == PixelFormat::Grey;
        self.process(frame, |y, row| {
            let w = row.len() / if grey { 1 } else { 3 };
            let dst = &mut out[y * w * 3..(y + 1) * w * 3];
            if grey {
                for (d, &v) in dst.chunks_exact_mut(3).zip(row) {
                    d.fill(v);
                }
            } else {
                dst.copy_from_slice(row);
            }
        })
    }

    /// Resizes one frame, handing each finished output row (interleaved, 8-bit) to
    /// `emit(y, row)`, with the pipeline compiled for the detected instruction set.
    #[allow(
        unsafe_code,
        reason = "calls the AVX2 and SSE4.1 builds after detecting the CPU features"
    )]
    fn process(&mut self, frame: &[u8], emit: impl FnMut(usize, &[u8])) -> Result<(), Reject> {
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::detect` picks `Avx2` only when the CPU supports AVX2.
            Isa::Avx2 => unsafe { self.process_avx2(frame, emit) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::detect` picks `Sse41` only when the CPU supports SSE4.1.
            Isa::Sse41 => unsafe { self.process_sse41(frame, emit) },
            Isa::Portable => self.pipeline::<PORTABLE_BLOCKS>(frame, emit),
        }
    }

    /// [`pipeline`](Self::pipeline) compiled with AVX2 (eight 32-bit lanes).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn process_avx2(&mut self, frame: &[u8], emit: impl FnMut(usize, &[u8])) -> Result<(), Reject> {
        self.pipeline::<true>(frame, emit)
    }

    /// [`pipeline`](Self::pipeline) compiled with SSE4.1, whose `pmulld`, `pminsd`
    /// and `pmovzx` make the blocked kernels pay off on x86-64 CPUs without AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "sse4.1")]
    fn process_sse41(
        &mut self,
        frame: &[u8],
        emit: impl FnMut(usize, &[u8]),
    ) -> Result<(), Reject> {
        self.pipeline::<true>(frame, emit)
    }

    /// The whole resize; `BLOCKS` selects the blocked (transposed) horizontal kernel.
    #[inline(always)]
    fn pipeline<const BLOCKS: bool>(
        &mut self,
        frame: &[u8],
        mut emit: impl FnMut(usize, &[u8]),
    ) -> Result<(), Reject> {
        self.horizontal_pass::<BLOCKS>(frame)?;
        let r0 = self.rows.0;
        for y in 0..self.vy.out_len() {
            resize::vertical_row(&self.vy, y, &self.inter, r0, &mut self.out_row);
            emit(y, &self.out_row);
        }
        Ok(())
    }

    /// Fills `inter` with the horizontally resampled source rows `rows.0..rows.1`.
    #[inline(always)]
    fn horizontal_pass<const BLOCKS: bool>(&mut self, frame: &[u8]) -> Result<(), Reject> {
        let (sw, sh) = (self.src_width, self.src_height);
        let need = self.format.frame_bytes(sw as u32, sh as u32);
        if let Some(need) = need {
            if frame.len() < need {
                return Err(Reject::Short {
                    len: frame.len(),
                    need,
                });
            }
        }
        let (hx, rows, cols) = (&self.hx, self.rows, self.cols);
        let (tb, inter) = (&mut self.transposed, &mut self.inter);
        match self.format {
            PixelFormat::Rgb24 => resample_rows::<3, BLOCKS>(hx, frame, sw, rows, cols, tb, inter),
            PixelFormat::Grey => resample_rows::<1, BLOCKS>(hx, frame, sw, rows, cols, tb, inter),
            PixelFormat::Mjpeg => {
                let isa = self.isa;
                // Built with the preprocessor for MJPEG (`new`).
                let Some(jpeg) = self.jpeg.as_mut() else {
                    return Err(Reject::Data("no decoder"));
                };
                match jpeg.decode(frame, isa)? {
                    jpeg::Decoded::Frame(rgb) => {
                        resample_rows::<3, BLOCKS>(hx, rgb, sw, rows, cols, tb, inter)
                    }
                    jpeg::Decoded::Rows(dec) => resample_decoded_rows::<BLOCKS>(
                        hx,
                        dec,
                        sw,
                        rows,
                        cols,
                        &mut self.rgb_rows,
                        tb,
                        inter,
                    ),
                }
            }
            PixelFormat::Yuyv => resample_yuyv_rows::<BLOCKS>(
                hx,
                frame,
                sw,
                rows,
                cols,
                &mut self.rgb_rows,
                tb,
                inter,
            ),
        }
        Ok(())
    }
}

/// Resamples source rows `rows.0..rows.1` of a packed `C`-channel image `sw` pixels
/// wide into `inter`; the horizontal filter reads source columns `cols.0..cols.1`.
#[inline(always)]
fn resample_rows<const C: usize, const BLOCKS: bool>(
    hx: &Taps,
    src: &[u8],
    sw: usize,
    (r0, r1): (usize, usize),
    (c0, c1): (usize, usize),
    tb: &mut [u8],
    inter: &mut [u8],
) {
    const R: usize = resize::BLOCK_ROWS;
    let stride = sw * C;
    let ostride = hx.out_len() * C;
    let (j0, j1) = (c0 * C, c1 * C);
    let mut r = r0;
    if BLOCKS {
        while r + R <= r1 {
            resize::transpose_block(&src[r * stride..(r + R) * stride], stride, j0, j1, tb);
            let dst = &mut inter[(r - r0) * ostride..(r - r0 + R) * ostride];
            resize::horizontal_block::<C>(hx, tb, j0, dst, ostride);
            r += R;
        }
    }
    for r in r..r1 {
        let dst = &mut inter[(r - r0) * ostride..(r - r0 + 1) * ostride];
        resize::horizontal_row::<C>(hx, &src[r * stride..(r + 1) * stride], dst);
    }
}

/// Like [`resample_rows`] for YUYV: converts each source row to RGB first, only
/// the pixel pairs that the filter reads, `BLOCK_ROWS` rows at a time into `rgb`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn resample_yuyv_rows<const BLOCKS: bool>(
    hx: &Taps,
    src: &[u8],
    sw: usize,
    (r0, r1): (usize, usize),
    (c0, c1): (usize, usize),
    rgb: &mut [u8],
    tb: &mut [u8],
    inter: &mut [u8],
) {
    const R: usize = resize::BLOCK_ROWS;
    let (stride, rgb_stride) = (sw * 2, sw * 3);
    let ostride = hx.out_len() * 3;
    // Pixel pairs p0..p1 cover columns c0..c1; in RGB that is bytes j0..j1.
    let (p0, p1) = (c0 / 2, c1.div_ceil(2).min(sw / 2));
    let (j0, j1) = (p0 * 6, p1 * 6);
    // (Plain loops, not a closure: closures need not inherit `target_feature`.)
    let mut r = r0;
    if BLOCKS {
        while r + R <= r1 {
            let block = src[r * stride..(r + R) * stride].chunks_exact(stride);
            for (s, rgb_row) in block.zip(rgb.chunks_exact_mut(rgb_stride)) {
                yuv::yuyv_to_rgb(&s[p0 * 4..p1 * 4], &mut rgb_row[j0..j1]);
            }
            resize::transpose_block(rgb, rgb_stride, j0, j1, tb);
            let dst = &mut inter[(r - r0) * ostride..(r - r0 + R) * ostride];
            resize::horizontal_block::<3>(hx, tb, j0, dst, ostride);
            r += R;
        }
    }
    for r in r..r1 {
        let rgb_row = &mut rgb[..rgb_stride];
        let s = &src[r * stride..(r + 1) * stride];
        yuv::yuyv_to_rgb(&s[p0 * 4..p1 * 4], &mut rgb_row[j0..j1]);
        let dst = &mut inter[(r - r0) * ostride..(r - r0 + 1) * ostride];
        resize::horizontal_row::<3>(hx, rgb_row, dst);
    }
}

/// Like [`resample_yuyv_rows`] for a JPEG in the baseline decoder's planes:
/// `BLOCK_ROWS` rows at a time converted to RGB into `rgb`, so that no
/// frame-sized RGB buffer is touched.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn resample_decoded_rows<const BLOCKS: bool>(
    hx: &Taps,
    dec: &mut jpegdec::Baseline,
    sw: usize,
    (r0, r1): (usize, usize),
    (c0, c1): (usize, usize),
    rgb: &mut [u8],
    tb: &mut [u8],
    inter: &mut [u8],
) {
    const R: usize = resize::BLOCK_ROWS;
    let rgb_stride = sw * 3;
    let ostride = hx.out_len() * 3;
    let (j0, j1) = (c0 * 3, c1 * 3);
    let mut r = r0;
    if BLOCKS {
        while r + R <= r1 {
            for (k, row) in rgb.chunks_exact_mut(rgb_stride).take(R).enumerate() {
                dec.rgb_row(r + k, row);
            }
            resize::transpose_block(&rgb[..R * rgb_stride], rgb_stride, j0, j1, tb);
            let dst = &mut inter[(r - r0) * ostride..(r - r0 + R) * ostride];
            resize::horizontal_block::<3>(hx, tb, j0, dst, ostride);
            r += R;
        }
    }
    for r in r..r1 {
        let row = &mut rgb[..rgb_stride];
        dec.rgb_row(r, row);
        let dst = &mut inter[(r - r0) * ostride..(r - r0 + 1) * ostride];
        resize::horizontal_row::<3>(hx, row, dst);
    }
}

/// Whether the portable build uses the blocked horizontal kernel: yes where the
/// baseline vector unit multiplies 32-bit lanes natively (NEON), no on x86-64's
/// SSE2 baseline, where the per-pixel kernel measured faster.
const PORTABLE_BLOCKS: bool = cfg!(target_arch = "aarch64");

/// Instruction sets the pipeline is compiled for; chosen once per preprocessor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    /// The target's baseline (SSE2 on x86-64, NEON on aarch64).
    Portable,
    /// x86-64 with SSE4.1, detected at run time.
    #[cfg(target_arch = "x86_64")]
    Sse41,
    /// x86-64 with AVX2, detected at run time.
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

/// Environment variable that caps the kernels used: `portable` or `sse4.1`
/// (to compare speed, or as a fallback). Read when a preprocessor is built.
pub const ISA_ENV: &str = "MAINSTREAM_PREPROCESS_ISA";

impl Isa {
    fn detect() -> Isa {
        let cap = std::env::var_os(ISA_ENV);
        if cap.as_deref().is_some_and(|v| v == "portable") {
            return Isa::Portable;
        }
        #[cfg(target_arch = "x86_64")]
        {
            let capped = cap.as_deref().is_some_and(|v| v == "sse4.1");
            if !capped && std::is_x86_feature_detected!("avx2") {
                return Isa::Avx2;
            }
            if std::is_x86_feature_detected!("sse4.1") {
                return Isa::Sse41;
            }
        }
        Isa::Portable
    }

    fn name(self) -> &'static str {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Isa::Sse41 => "sse4.1",
            Isa::Portable => "portable",
        }
    }
}

/// The source region `(x0, y0, x1, y1)` that `fit` maps onto an `ow` x `oh` input.
fn source_box(sw: usize, sh: usize, ow: usize, oh: usize, fit: Fit) -> (f32, f32, f32, f32) {
    let (swf, shf) = (sw as f64, sh as f64);
    match fit {
        Fit::Stretch => (0.0, 0.0, sw as f32, sh as f32),
        Fit::CenterCrop => {
            // Compare aspect ratios exactly in integers.
            if sw * oh > sh * ow {
                let cw = shf * ow as f64 / oh as f64;
                let x0 = (swf - cw) / 2.0;
                (x0 as f32, 0.0, (x0 + cw) as f32, sh as f32)
            } else {
                let ch = swf * oh as f64 / ow as f64;
                let y0 = (shf - ch) / 2.0;
                (0.0, y0 as f32, sw as f32, (y0 + ch) as f32)
            }
        }
        Fit::ResizeCrop {
            resize_short_side,
            crop,
        } if resize_short_side > 0 && crop > 0 && crop <= resize_short_side => {
            // Source pixels per resized pixel; the crop is `crop` resized
            // pixels wide, centred (the input is resized from it).
            let s = swf.min(shf) / f64::from(resize_short_side);
            let side = f64::from(crop) * s;
            let (cw, ch) = if ow == oh {
                (side, side)
            } else {
                (ow as f64 * s, oh as f64 * s)
            };
            let (cw, ch) = (cw.min(swf), ch.min(shf));
            let x0 = (swf - cw) / 2.0;
            let y0 = (shf - ch) / 2.0;
            (x0 as f32, y0 as f32, (x0 + cw) as f32, (y0 + ch) as f32)
        }
        // Nonsense sizes (rejected by the manifest) fall back to the plain crop.
        Fit::ResizeCrop { .. } => source_box(sw, sh, ow, oh, Fit::CenterCrop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preprocessors_can_move_to_the_runtime_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Preprocessor>();
    }

    #[test]
    fn resize_crop_takes_the_torchvision_evaluation_window() {
        // 384x288 -> short side 256 (scale 1.125), 224 crop -> 252 source pixels.
        let fit = Fit::ResizeCrop {
            resize_short_side: 256,
            crop: 224,
        };
        let (x0, y0, x1, y1) = source_box(384, 288, 224, 224, fit);
        assert!(
            (x0 - 66.0).abs() < 1e-3 && (x1 - 318.0).abs() < 1e-3,
            "{x0} {x1}"
        );
        assert!(
            (y0 - 18.0).abs() < 1e-3 && (y1 - 270.0).abs() < 1e-3,
            "{y0} {y1}"
        );
    }

    #[test]
    fn center_crop_of_a_4_3_frame_is_its_middle_square() {
        assert_eq!(
            source_box(640, 480, 224, 224, Fit::CenterCrop),
            (80.0, 0.0, 560.0, 480.0)
        );
        assert_eq!(
            source_box(480, 640, 224, 224, Fit::CenterCrop),
            (0.0, 80.0, 480.0, 560.0)
        );
        assert_eq!(
            source_box(640, 480, 224, 224, Fit::Stretch),
            (0.0, 0.0, 640.0, 480.0)
        );
    }

    #[test]
    fn folded_normalisation_matches_the_textbook_formula() {
        let spec = InputSpec::IMAGENET_224;
        let mut p = Preprocessor::new(2, 2, PixelFormat::Rgb24, &spec, Fit::Stretch).unwrap();
        let frame = [0u8, 128, 255, 0, 128, 255, 0, 128, 255, 0, 128, 255];
        let mut out = vec![0f32; spec.tensor_len()];
        p.run(&frame, &mut out).unwrap();
        let plane = 224 * 224;
        for (c, v) in [(0, 0u8), (1, 128), (2, 255)] {
            let want = spec.normalise(c, v);
            for &got in &out[c * plane..(c + 1) * plane] {
                assert!((got - want).abs() <= 1e-5, "{c}: {got} vs {want}");
            }
        }
    }

    /// Runs `p` with each kernel variant this machine can execute.
    fn outputs_of_every_kernel(p: &mut Preprocessor, frame: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
        let n = p.spec.tensor_len();
        let mut outs = Vec::new();
        let mut run = |p: &mut Preprocessor, name, blocks: bool| {
            let mut out = vec![0u8; n];
            let w = p.spec.width as usize * 3;
            let mut emit = |y: usize, row: &[u8]| {
                let dst = &mut out[y * w..(y + 1) * w];
                if p_grey(row.len(), w) {
                    for (d, &v) in dst.chunks_exact_mut(3).zip(row) {
                        d.fill(v);
                    }
                } else {
                    dst.copy_from_slice(row);
                }
            };
            let r = if blocks {
                p.pipeline::<true>(frame, &mut emit)
            } else {
                p.pipeline::<false>(frame, &mut emit)
            };
            r.expect("frame converts");
            outs.push((name, out));
        };
        run(p, "portable per-pixel", false);
        run(p, "portable blocked", true);
        #[cfg(target_arch = "x86_64")]
        {
            let detected = Isa::detect();
            for isa in [Isa::Sse41, Isa::Avx2] {
                if isa == Isa::Sse41 && detected != Isa::Portable || isa == detected {
                    p.isa = isa;
                    let mut out = vec![0u8; n];
                    p.run_rgb8(frame, &mut out).expect("frame converts");
                    outs.push((isa.name(), out));
                }
            }
        }
        outs
    }

    fn p_grey(row_len: usize, rgb_len: usize) -> bool {
        row_len * 3 == rgb_len
    }

    #[test]
    fn every_kernel_variant_gives_identical_pixels() {
        // Odd sizes so that row blocks and 8-byte transposes both leave tails, and a
        // centre crop so that only part of the frame is read.
        let (w, h) = (203u32, 77u32);
        let mut seed = 0x9e37_79b9u32;
        let mut noise = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    (seed >> 24) as u8
                })
                .collect()
        };
        for format in [PixelFormat::Rgb24, PixelFormat::Grey, PixelFormat::Yuyv] {
            let (w, h) = if format == PixelFormat::Yuyv {
                (w + 1, h)
            } else {
                (w, h)
            };
            let frame = noise(format.frame_bytes(w, h).unwrap());
            for (fit, ow, oh) in [
                (Fit::Stretch, 64, 40),
                (Fit::CenterCrop, 50, 50),
                (Fit::Stretch, 300, 90),
            ] {
                let spec = InputSpec {
                    width: ow,
                    height: oh,
                    ..InputSpec::IMAGENET_224
                };
                let mut p = Preprocessor::new(w, h, format, &spec, fit).unwrap();
                let outs = outputs_of_every_kernel(&mut p, &frame);
                for (name, out) in &outs[1..] {
                    assert!(
                        out == &outs[0].1,
                        "{format} {fit:?} {ow}x{oh}: {name} differs"
                    );
                }
            }
        }
    }

    #[test]
    fn bad_configurations_are_rejected() {
        let spec = InputSpec::IMAGENET_224;
        let kind = |r: Result<Preprocessor>| r.err().map(|e| e.kind());
        use crate::error::ErrorKind::InvalidConfig;
        let yuyv_odd = Preprocessor::new(641, 480, PixelFormat::Yuyv, &spec, Fit::Stretch);
        assert_eq!(kind(yuyv_odd), Some(InvalidConfig));
        let zero = Preprocessor::new(0, 480, PixelFormat::Rgb24, &spec, Fit::Stretch);
        assert_eq!(kind(zero), Some(InvalidConfig));
        let bad_std = InputSpec {
            std: [0.0, 1.0, 1.0],
            ..spec
        };
        let r = Preprocessor::new(640, 480, PixelFormat::Rgb24, &bad_std, Fit::Stretch);
        assert_eq!(kind(r), Some(InvalidConfig));
    }

    #[test]
    fn short_frames_and_wrong_outputs_are_errors_not_panics() {
        use crate::error::ErrorKind;
        let spec = InputSpec::IMAGENET_224;
        let mut out = vec![0f32; spec.tensor_len()];
        for f in [PixelFormat::Yuyv, PixelFormat::Grey, PixelFormat::Rgb24] {
            let mut p = Preprocessor::new(64, 48, f, &spec, Fit::Stretch).unwrap();
            let need = f.frame_bytes(64, 48).unwrap();
            let e = p.run(&vec![0; need - 1], &mut out).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadFrame);
            let e = p.run(&vec![0; need], &mut out[1..]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Internal);
            p.run(&vec![0; need + 7], &mut out).unwrap();
        }
    }
}
