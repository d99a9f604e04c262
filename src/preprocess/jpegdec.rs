//! A baseline JPEG decoder that works in buffers allocated once.
//!
//! Cameras send baseline (sequential, Huffman-coded, 8-bit) JPEG with YCbCr in
//! 4:2:2 or 4:2:0, sometimes 4:4:4 or greyscale, with or without restart markers
//! and often without Huffman tables. That is what this decoder handles, into
//! memory allocated when it is built, so that the MJPEG path does not allocate per
//! frame. Anything else (progressive, arithmetic coding, 12-bit, several scans,
//! other subsampling, Adobe RGB/CMYK) is reported as [`Outcome::Unsupported`] and
//! left to the general decoder (`zune-jpeg`, see `jpeg.rs`).
//!
//! It follows libjpeg-turbo's default decompression arithmetic step for step, so
//! its pixels are identical to what Pillow (or anything else built on libjpeg-turbo)
//! decodes:
//!
//! - IDCT: libjpeg's accurate integer IDCT (`jidctint.c`, `JDCT_ISLOW`): 13-bit
//!   constants, columns first with 2 extra bits kept, then rows;
//! - chroma upsampling: libjpeg's "fancy" upsampling (`jdsample.c`), a triangle
//!   filter with its exact biases, the image edges replicated;
//! - colour: `jdcolor.c`'s YCbCr to RGB in 16-bit fixed point.
//!
//! The IDCT, upsampling and colour loops are written lane by lane over 8 or more
//! independent values so that they vectorise; [`Baseline::decode`] runs them built
//! for AVX2 or SSE4.1 when the preprocessor does.
//!
//! Damage: a frame whose scan data ends before its last block (truncated, or cut and
//! terminated with EOI), with a code that is not in its table, with a missing or
//! wrong restart marker, or with coefficients beyond the block is a
//! [`BadFrame`](crate::error::ErrorKind::BadFrame). A frame with a few flipped bits
//! that still decodes is decoded (as by every JPEG decoder).
#![allow(
    unsafe_code,
    reason = "calls its AVX2 and SSE4.1 builds after detecting the CPU features"
)]

use super::Isa;
use crate::frame::jpeg::{Segments, SOS};
use crate::frame::Reject;

/// A decoder result: the reason of a refused frame is a [`Reject`], never an
/// allocated error.
type Result<T> = std::result::Result<T, Reject>;

/// Natural (row-major) position of the `k`-th coefficient in zigzag order.
const ZIGZAG: [u8; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// Bits of look-ahead in the fast Huffman table.
const FAST_BITS: u32 = 9;

/// One Huffman table, ready for decoding.
#[derive(Clone)]
struct Huffman {
    /// Indexed by the next [`FAST_BITS`] bits: `symbol << 8 | code length` for codes
    /// up to [`FAST_BITS`] long, 0 otherwise.
    fast: [u16; 1 << FAST_BITS],
    /// Largest code of each length (index 1..=16), -1 if there is none.
    maxcode: [i32; 17],
    /// For a code `c` of length `l`, its symbol is `values[c + valoff[l]]`.
    valoff: [i32; 17],
    /// Symbols in code order.
    values: [u8; 256],
    /// Defined by the current frame (or a standard table).
    present: bool,
}

impl Huffman {
    const EMPTY: Huffman = Huffman {
        fast: [0; 1 << FAST_BITS],
        maxcode: [-1; 17],
        valoff: [0; 17],
        values: [0; 256],
        present: false,
    };

    /// Builds the table from its DHT form: the number of codes of each length
    /// 1..=16 and the symbols. Errors on an over-subscribed code.
    fn build(&mut self, counts: &[u8], symbols: &[u8]) -> Result<()> {
        self.fast = [0; 1 << FAST_BITS];
        self.maxcode = [-1; 17];
        self.valoff = [0; 17];
        self.values = [0; 256];
        self.values[..symbols.len()].copy_from_slice(symbols);
        let mut code = 0u32;
        let mut k = 0usize;
        for len in 1..=16u32 {
            let n = usize::from(counts[len as usize - 1]);
            self.valoff[len as usize] = k as i32 - code as i32;
            if code + n as u32 > 1 << len {
                return Err(Reject::Data("Huffman table is over-subscribed"));
            }
            for _ in 0..n {
                if len <= FAST_BITS {
                    let shift = FAST_BITS - len;
                    let entry = u16::from(symbols[k]) << 8 | len as u16;
                    let first = (code << shift) as usize;
                    self.fast[first..first + (1 << shift)].fill(entry);
                }
                code += 1;
                k += 1;
            }
            if n > 0 {
                self.maxcode[len as usize] = code as i32 - 1;
            }
            code <<= 1;
        }
        self.present = true;
        Ok(())
    }
}

/// The four standard tables of ITU-T T.81 Annex K.3, used by frames without DHT.
fn standard_tables() -> Result<[Huffman; 4]> {
    use super::jpeg::{
        AC_CHROMA_BITS, AC_CHROMA_VALUES, AC_LUMA_BITS, AC_LUMA_VALUES, DC_CHROMA_BITS,
        DC_LUMA_BITS, DC_VALUES,
    };
    let mut t = [
        Huffman::EMPTY,
        Huffman::EMPTY,
        Huffman::EMPTY,
        Huffman::EMPTY,
    ];
    t[0].build(&DC_LUMA_BITS, &DC_VALUES)?;
    t[1].build(&DC_CHROMA_BITS, &DC_VALUES)?;
    t[2].build(&AC_LUMA_BITS, &AC_LUMA_VALUES)?;
    t[3].build(&AC_CHROMA_BITS, &AC_CHROMA_VALUES)?;
    Ok(t)
}

/// Reads the entropy-coded bits of a scan, most significant bit first, removing
/// the stuffed zero after each 0xFF and stopping at a marker.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    /// Bit buffer, the next bit in the most significant position.
    acc: u64,
    /// Valid bits in `acc`.
    n: u32,
    /// Zero bits appended to `acc` after the data ended at a marker. If more of
    /// them were consumed than remain in `acc`, the scan data was too short.
    padded: u32,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], pos: usize) -> Bits<'a> {
        Bits {
            data,
            pos,
            acc: 0,
            n: 0,
            padded: 0,
        }
    }

    /// Fills `acc` to at least 57 bits (with zeros past a marker).
    #[inline(always)]
    fn refill(&mut self) {
        while self.n <= 56 {
            let mut byte = 0u8;
            match self.data.get(self.pos) {
                Some(&0xFF) => {
                    if self.data.get(self.pos + 1) == Some(&0) {
                        byte = 0xFF;
                        self.pos += 2;
                    } else {
                        self.padded += 8;
                    }
                }
                Some(&b) => {
                    byte = b;
                    self.pos += 1;
                }
                None => self.padded += 8,
            }
            self.acc |= u64::from(byte) << (56 - self.n);
            self.n += 8;
        }
    }

    /// Whether bits past the end of the scan data were consumed.
    fn overran(&self) -> bool {
        self.padded > self.n
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.acc <<= n;
        self.n -= n;
    }

    /// Decodes one symbol. Needs at least 16 bits in `acc`.
    #[inline(always)]
    fn symbol(&mut self, h: &Huffman) -> Result<u8> {
        let e = h.fast[(self.acc >> (64 - FAST_BITS)) as usize];
        if e != 0 {
            self.consume(u32::from(e & 0xFF));
            return Ok((e >> 8) as u8);
        }
        for len in FAST_BITS + 1..=16 {
            let code = (self.acc >> (64 - len)) as i32;
            if code <= h.maxcode[len as usize] {
                self.consume(len);
                let at = code + h.valoff[len as usize];
                return Ok(h.values[at as usize & 0xFF]);
            }
        }
        Err(Reject::Data("a code that is not in its Huffman table"))
    }

    /// Reads `s` (1..=15) bits and sign-extends them as T.81 F.2.2.1 does.
    /// Needs at least `s` bits in `acc`.
    #[inline(always)]
    fn extend(&mut self, s: u32) -> i32 {
        let v = (self.acc >> (64 - s)) as i32;
        self.consume(s);
        if v < 1 << (s - 1) {
            v - (1 << s) + 1
        } else {
            v
        }
    }

    /// Skips to the restart marker RSTm after a restart interval.
    fn restart(&mut self, m: u8) -> Result<()> {
        if self.overran() {
            return Err(Reject::Data("scan data ends early"));
        }
        // The bits left in `acc` are the interval's padding; bytes not yet read
        // before the marker would be data the blocks did not use.
        self.acc = 0;
        self.n = 0;
        self.padded = 0;
        if self.data.get(self.pos) != Some(&0xFF) {
            return Err(Reject::Data("data where a restart marker was due"));
        }
        while self.data.get(self.pos) == Some(&0xFF) {
            self.pos += 1;
        }
        if self.data.get(self.pos) != Some(&(0xD0 + m)) {
            return Err(Reject::Data("a restart marker missing"));
        }
        self.pos += 1;
        Ok(())
    }
}

/// One colour component of the frame.
#[derive(Clone, Copy, Debug, Default)]
struct Component {
    id: u8,
    /// Sampling factors.
    h: usize,
    v: usize,
    /// Quantisation table.
    tq: usize,
    /// DC and AC Huffman tables (set by the scan header).
    td: usize,
    ta: usize,
    /// Bytes per row of the component's plane.
    stride: usize,
    /// Rows of samples that hold image data (`ceil(height * v / vmax)`).
    rows: usize,
    /// Columns of samples that hold image data (`ceil(width * h / hmax)`).
    cols: usize,
}

/// Result of [`Baseline::decode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The RGB pixels are in the caller's buffer.
    Decoded,
    /// A valid JPEG this decoder does not handle (the reason), for the general one.
    Unsupported(&'static str),
}

/// Huffman tables of a frame: DC 0..=3, then AC 0..=3.
struct Tables {
    huff: [Huffman; 8],
    standard: [Huffman; 4],
}

/// The decoder for frames of one fixed size.
pub(crate) struct Baseline {
    width: usize,
    height: usize,
    tables: Box<Tables>,
    /// Quantisation tables in zigzag order.
    qt: [[u16; 64]; 4],
    /// Sample planes of Y, Cb, Cr, each large enough for a whole frame at full
    /// resolution (plus padding to whole blocks).
    planes: [Vec<u8>; 3],
    /// One upsampled row of Cb and of Cr.
    up: [Vec<u8>; 2],
    /// Column sums of the 4:2:0 upsampler.
    colsum: Vec<i32>,
    /// The components of the frame last decoded (the first `ncomp`).
    comps: [Component; 3],
    ncomp: usize,
}

/// Most a padded plane dimension exceeds the image's: an MCU of 16 pixels.
const PAD: usize = 16;

impl Baseline {
    /// A decoder for `width` x `height` frames; allocates all its memory.
    pub(crate) fn new(width: usize, height: usize) -> Baseline {
        let plane = (width + PAD) * (height + PAD);
        let standard = standard_tables().expect("the standard Huffman tables are valid");
        Baseline {
            width,
            height,
            tables: Box::new(Tables {
                huff: std::array::from_fn(|_| Huffman::EMPTY),
                standard,
            }),
            qt: [[0; 64]; 4],
            planes: std::array::from_fn(|_| vec![0; plane]),
            up: std::array::from_fn(|_| vec![0; width + PAD]),
            colsum: vec![0; width / 2 + PAD],
            comps: [Component::default(); 3],
            ncomp: 0,
        }
    }

    /// Decodes `data` (a whole JPEG, SOI to EOI, already checked for its size)
    /// into the sample planes; [`rgb_row`](Self::rgb_row) then gives its rows
    /// as packed RGB. No frame-sized RGB buffer: a row at a time is what the
    /// resize reads.
    pub(crate) fn decode(&mut self, data: &[u8], isa: Isa) -> Result<Outcome> {
        self.ncomp = 0;
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::detect` picks `Avx2` only when the CPU supports AVX2.
            Isa::Avx2 => unsafe { self.decode_avx2(data) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::detect` picks `Sse41` only when the CPU supports SSE4.1.
            Isa::Sse41 => unsafe { self.decode_sse41(data) },
            Isa::Portable => self.decode_impl(data),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn decode_avx2(&mut self, data: &[u8]) -> Result<Outcome> {
        self.decode_impl(data)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "sse4.1")]
    fn decode_sse41(&mut self, data: &[u8]) -> Result<Outcome> {
        self.decode_impl(data)
    }

    #[inline(always)]
    fn decode_impl(&mut self, data: &[u8]) -> Result<Outcome> {
        let tables = &mut *self.tables;
        for (slot, std) in [0, 1, 4, 5].into_iter().zip(&tables.standard) {
            tables.huff[slot].clone_from(std);
        }
        for slot in [2, 3, 6, 7] {
            tables.huff[slot].present = false;
        }
        let mut qt_set = [false; 4];
        let mut restart = 0usize;
        let mut comps = [Component::default(); 3];
        let mut ncomp = 0usize;
        let mut adobe_transform = None;
        for seg in Segments::new(data) {
            let seg = seg?;
            let (marker, end) = (seg.marker, seg.end);
            let seg = seg.body;
            match marker {
                0xDB => parse_dqt(seg, &mut self.qt, &mut qt_set)?,
                0xC4 => parse_dht(seg, &mut tables.huff)?,
                0xDD => {
                    let Some(r) = seg.get(..2) else {
                        return Err(Reject::Data("DRI segment too short"));
                    };
                    restart = usize::from(u16::from_be_bytes([r[0], r[1]]));
                }
                0xC0 | 0xC1 => {
                    if ncomp != 0 {
                        return Err(Reject::Data("frame has two frame headers"));
                    }
                    match parse_sof(seg, &mut comps)? {
                        Ok(n) => ncomp = n,
                        Err(why) => return Ok(Outcome::Unsupported(why)),
                    }
                }
                0xC2 => return Ok(Outcome::Unsupported("progressive JPEG")),
                0xC3 | 0xC5..=0xC7 | 0xCB | 0xCD..=0xCF => {
                    return Ok(Outcome::Unsupported("lossless or hierarchical JPEG"))
                }
                0xC9 | 0xCA => return Ok(Outcome::Unsupported("arithmetic-coded JPEG")),
                0xEE if seg.len() >= 12 && seg.starts_with(b"Adobe") => {
                    adobe_transform = Some(seg[11]);
                }
                SOS => {
                    if ncomp == 0 {
                        return Err(Reject::Data("scan before the frame header"));
                    }
                    if ncomp == 3
                        && (adobe_transform == Some(0) || comps.iter().map(|c| c.id).eq(*b"RGB"))
                    {
                        return Ok(Outcome::Unsupported("RGB JPEG"));
                    }
                    if let Some(why) = parse_sos(seg, &mut comps[..ncomp])? {
                        return Ok(Outcome::Unsupported(why));
                    }
                    for c in &comps[..ncomp] {
                        if !qt_set[c.tq] {
                            return Err(Reject::Data("a quantisation table missing"));
                        }
                        if !tables.huff[c.td].present || !tables.huff[4 + c.ta].present {
                            return Err(Reject::Data("Huffman table missing"));
                        }
                    }
                    self.layout(&mut comps[..ncomp]);
                    self.scan(data, end, &comps[..ncomp], restart)?;
                    (self.comps, self.ncomp) = (comps, ncomp);
                    return Ok(Outcome::Decoded);
                }
                _ => {}
            }
        }
        // The walk ends after SOS or with an error.
        Err(Reject::Header {
            what: "no scan",
            at: data.len(),
        })
    }

    /// Sets each component's plane geometry.
    fn layout(&self, comps: &mut [Component]) {
        if let [c] = comps {
            // One component: a non-interleaved scan of whole blocks, whatever its
            // sampling factors say.
            (c.h, c.v) = (1, 1);
        }
        let hmax = comps.iter().map(|c| c.h).max().unwrap_or(1);
        let vmax = comps.iter().map(|c| c.v).max().unwrap_or(1);
        let mcux = self.width.div_ceil(8 * hmax);
        for c in comps.iter_mut() {
            c.stride = mcux * c.h * 8;
            c.cols = (self.width * c.h).div_ceil(hmax);
            c.rows = (self.height * c.v).div_ceil(vmax);
        }
    }

    /// Decodes the scan starting at `pos` into the planes.
    #[inline(always)]
    fn scan(&mut self, data: &[u8], pos: usize, comps: &[Component], restart: usize) -> Result<()> {
        let tables = &*self.tables;
        let mut bits = Bits::new(data, pos);
        let mut pred = [0i32; 3];
        let mut blk = [0i32; 64];
        let single = comps.len() == 1;
        let (hmax, vmax) = if single {
            (1, 1)
        } else {
            (comps[0].h, comps[0].v)
        };
        let mcux = self.width.div_ceil(8 * hmax);
        let mcuy = self.height.div_ceil(8 * vmax);
        let mut left = restart;
        let mut next_rst = 0u8;
        for my in 0..mcuy {
            for mx in 0..mcux {
                if restart > 0 {
                    if left == 0 {
                        bits.restart(next_rst)?;
                        next_rst = (next_rst + 1) & 7;
                        pred = [0; 3];
                        left = restart;
                    }
                    left -= 1;
                }
                for (ci, c) in comps.iter().enumerate() {
                    let (bh, bv) = if single { (1, 1) } else { (c.h, c.v) };
                    let dc = &tables.huff[c.td];
                    let ac = &tables.huff[4 + c.ta];
                    let q = &self.qt[c.tq];
                    for by in 0..bv {
                        for bx in 0..bh {
                            let only_dc =
                                decode_block(&mut bits, dc, ac, &mut pred[ci], q, &mut blk)?;
                            let x = (mx * bh + bx) * 8;
                            let y = (my * bv + by) * 8;
                            let plane = &mut self.planes[ci][y * c.stride + x..];
                            if only_dc {
                                fill_dc(blk[0], plane, c.stride);
                                blk[0] = 0;
                            } else {
                                idct_islow(&mut blk, plane, c.stride);
                            }
                        }
                    }
                }
            }
            if bits.padded > bits.n + 64 {
                // Far past the end: no need to decode the rest to know.
                return Err(Reject::Data("scan data ends early"));
            }
        }
        if bits.overran() {
            return Err(Reject::Data("scan data ends early"));
        }
        Ok(())
    }

    /// Row `y` of the frame last decoded, upsampled and converted to packed
    /// RGB into `out` (`width * 3` bytes). Nothing after a failed decode.
    #[inline(always)]
    pub(crate) fn rgb_row(&mut self, y: usize, out: &mut [u8]) {
        let w = self.width;
        let comps = &self.comps[..self.ncomp];
        let Some(y0) = comps.first() else {
            return;
        };
        let [yp, cbp, crp] = &self.planes;
        let [up_cb, up_cr] = &mut self.up;
        let out = &mut out[..w * 3];
        let luma = &yp[y * y0.stride..y * y0.stride + w];
        if comps.len() == 1 {
            for (o, &l) in out.chunks_exact_mut(3).zip(luma) {
                o.fill(l);
            }
            return;
        }
        let c = &comps[1];
        match chroma_ratio(comps).unwrap_or((1, 1)) {
            (1, 1) => {
                let cb = &cbp[y * c.stride..y * c.stride + w];
                let cr = &crp[y * c.stride..y * c.stride + w];
                ycc_to_rgb(luma, cb, cr, out);
            }
            (2, 1) => {
                let row = y * c.stride;
                upsample_h2v1(&cbp[row..row + c.cols], up_cb);
                upsample_h2v1(&crp[row..row + c.cols], up_cr);
                ycc_to_rgb(luma, &up_cb[..w], &up_cr[..w], out);
            }
            _ => {
                // 4:2:0: the nearer chroma row weighs 3, the farther 1.
                let near = y / 2;
                let far = if y.is_multiple_of(2) {
                    near.saturating_sub(1)
                } else {
                    (near + 1).min(c.rows - 1)
                };
                let (n, f) = (near * c.stride, far * c.stride);
                let colsum = &mut self.colsum[..c.cols];
                upsample_h2v2(&cbp[n..n + c.cols], &cbp[f..f + c.cols], colsum, up_cb);
                upsample_h2v2(&crp[n..n + c.cols], &crp[f..f + c.cols], colsum, up_cr);
                ycc_to_rgb(luma, &up_cb[..w], &up_cr[..w], out);
            }
        }
    }
}

/// Parses a DQT segment into `qt` (zigzag order).
fn parse_dqt(mut seg: &[u8], qt: &mut [[u16; 64]; 4], set: &mut [bool; 4]) -> Result<()> {
    while let Some((&pq_tq, rest)) = seg.split_first() {
        let (pq, tq) = (pq_tq >> 4, usize::from(pq_tq & 15));
        let n = if pq == 0 { 64 } else { 128 };
        if pq > 1 || tq > 3 || rest.len() < n {
            return Err(Reject::Data("DQT segment is malformed"));
        }
        for (k, q) in qt[tq].iter_mut().enumerate() {
            *q = if pq == 0 {
                u16::from(rest[k])
            } else {
                u16::from_be_bytes([rest[2 * k], rest[2 * k + 1]])
            };
        }
        set[tq] = true;
        seg = &rest[n..];
    }
    Ok(())
}

/// Parses a DHT segment into `huff` (DC 0..=3, AC 4..=7).
fn parse_dht(mut seg: &[u8], huff: &mut [Huffman; 8]) -> Result<()> {
    while seg.len() >= 17 {
        let (tc, th) = (usize::from(seg[0] >> 4), usize::from(seg[0] & 15));
        let counts = &seg[1..17];
        let n: usize = counts.iter().map(|&c| usize::from(c)).sum();
        if tc > 1 || th > 3 || n > 256 || seg.len() < 17 + n {
            return Err(Reject::Data("DHT segment is malformed"));
        }
        huff[tc * 4 + th].build(counts, &seg[17..17 + n])?;
        seg = &seg[17 + n..];
    }
    if !seg.is_empty() {
        return Err(Reject::Data("DHT segment is malformed"));
    }
    Ok(())
}

/// Parses a baseline/extended SOF segment. `Ok(Err(why))` for a valid frame this
/// decoder does not handle.
fn parse_sof(
    seg: &[u8],
    comps: &mut [Component; 3],
) -> Result<std::result::Result<usize, &'static str>> {
    if seg.len() < 6 {
        return Err(Reject::Data("frame header too short"));
    }
    if seg[0] != 8 {
        return Ok(Err("JPEG with other than 8-bit samples"));
    }
    let n = usize::from(seg[5]);
    if seg.len() < 6 + 3 * n || n == 0 {
        return Err(Reject::Data("frame header is malformed"));
    }
    if n != 1 && n != 3 {
        return Ok(Err("JPEG with neither 1 nor 3 components"));
    }
    for (k, c) in comps.iter_mut().take(n).enumerate() {
        let b = &seg[6 + 3 * k..9 + 3 * k];
        *c = Component {
            id: b[0],
            h: usize::from(b[1] >> 4),
            v: usize::from(b[1] & 15),
            tq: usize::from(b[2]),
            ..Component::default()
        };
        if c.h == 0 || c.v == 0 || c.h > 4 || c.v > 4 || c.tq > 3 {
            return Err(Reject::Data("frame header has bad component parameters"));
        }
    }
    if n == 3 && chroma_ratio(&comps[..]).is_none() {
        return Ok(Err(
            "JPEG chroma subsampling other than 4:4:4, 4:2:2, 4:2:0",
        ));
    }
    Ok(Ok(n))
}

/// How many luma samples each chroma sample covers, `(horizontally,
/// vertically)`: (1, 1), (2, 1) or (2, 2), with the luma MCU at most 16x16 and both
/// chroma components alike; `None` for anything else. Encoders spell the same
/// subsampling differently: ffmpeg writes 4:2:2 as Y 2x2 with chroma 1x2.
fn chroma_ratio(comps: &[Component]) -> Option<(usize, usize)> {
    let [y, cb, cr] = comps else { return None };
    if (cb.h, cb.v) != (cr.h, cr.v) || y.h > 2 || y.v > 2 {
        return None;
    }
    if y.h % cb.h != 0 || y.v % cb.v != 0 {
        return None;
    }
    let r = (y.h / cb.h, y.v / cb.v);
    matches!(r, (1, 1) | (2, 1) | (2, 2)).then_some(r)
}

/// Parses the scan header; assigns Huffman tables to `comps`. `Ok(Some(why))` for a
/// scan this decoder does not handle.
fn parse_sos(seg: &[u8], comps: &mut [Component]) -> Result<Option<&'static str>> {
    let ns = usize::from(*seg.first().unwrap_or(&0));
    if ns == 0 || seg.len() < 1 + 2 * ns + 3 {
        return Err(Reject::Data("scan header is malformed"));
    }
    if ns != comps.len() {
        return Ok(Some("JPEG with one scan per component"));
    }
    for (k, c) in comps.iter_mut().enumerate() {
        let b = &seg[1 + 2 * k..3 + 2 * k];
        if b[0] != c.id {
            return Ok(Some("JPEG scan with components out of frame order"));
        }
        c.td = usize::from(b[1] >> 4);
        c.ta = usize::from(b[1] & 15);
        if c.td > 3 || c.ta > 3 {
            return Err(Reject::Data("scan header has bad table numbers"));
        }
    }
    let s = &seg[1 + 2 * ns..];
    if (s[0], s[1], s[2]) != (0, 63, 0) {
        return Err(Reject::Data("sequential scan with a spectral selection"));
    }
    Ok(None)
}

/// Decodes one block's coefficients, dequantised, into `blk` (natural order; it
/// must be all zero on entry). Returns whether only the DC coefficient is set.
#[inline(always)]
fn decode_block(
    bits: &mut Bits,
    dc: &Huffman,
    ac: &Huffman,
    pred: &mut i32,
    q: &[u16; 64],
    blk: &mut [i32; 64],
) -> Result<bool> {
    bits.refill();
    let t = u32::from(bits.symbol(dc)?);
    if t > 15 {
        return Err(Reject::Data("a DC difference of more than 15 bits"));
    }
    if t > 0 {
        *pred = pred.wrapping_add(bits.extend(t));
    }
    blk[0] = pred.wrapping_mul(i32::from(q[0]));
    let mut k = 1;
    let mut only_dc = true;
    while k < 64 {
        if bits.n < 32 {
            bits.refill();
        }
        let rs = bits.symbol(ac)?;
        let (r, s) = (usize::from(rs >> 4), u32::from(rs & 15));
        if s == 0 {
            if r != 15 {
                break;
            }
            k += 16;
            continue;
        }
        k += r;
        if k > 63 {
            return Err(Reject::Data("block has coefficients beyond 63"));
        }
        let v = bits.extend(s);
        blk[usize::from(ZIGZAG[k])] = v.wrapping_mul(i32::from(q[k]));
        only_dc = false;
        k += 1;
    }
    Ok(only_dc)
}

/// Sample value of an 8-bit IDCT output: level shift and clamp.
#[inline(always)]
fn clamp_sample(v: i32) -> u8 {
    v.wrapping_add(128).clamp(0, 255) as u8
}

/// A block whose only coefficient is DC (already dequantised): one value.
#[inline(always)]
fn fill_dc(dc: i32, out: &mut [u8], stride: usize) {
    // Both IDCT passes on a lone DC: (dc << 2) after the columns, then descaled
    // by PASS1_BITS + 3 with rounding.
    let v = dc
        .wrapping_shl(PASS1_BITS)
        .wrapping_add(1 << (PASS1_BITS + 2))
        >> (PASS1_BITS + 3);
    let v = clamp_sample(v);
    for r in 0..8 {
        out[r * stride..r * stride + 8].fill(v);
    }
}

const CONST_BITS: u32 = 13;
const PASS1_BITS: u32 = 2;
const FIX_0_298631336: i32 = 2446;
const FIX_0_390180644: i32 = 3196;
const FIX_0_541196100: i32 = 4433;
const FIX_0_765366865: i32 = 6270;
const FIX_0_899976223: i32 = 7373;
const FIX_1_175875602: i32 = 9633;
const FIX_1_501321110: i32 = 12299;
const FIX_1_847759065: i32 = 15137;
const FIX_1_961570560: i32 = 16069;
const FIX_2_053119869: i32 = 16819;
const FIX_2_562915447: i32 = 20995;
const FIX_3_072711026: i32 = 25172;

/// One pass of libjpeg's islow IDCT over 8 independent lanes: `inp[k]` holds
/// coefficient `k` of each lane, `out[k]` receives output `k`, descaled by `shift`
/// bits with rounding. Wrapping arithmetic: damaged data must not panic (valid
/// data never comes close to overflowing).
#[inline(always)]
fn idct_pass(inp: &[[i32; 8]; 8], out: &mut [[i32; 8]; 8], shift: u32) {
    let round = 1i32 << (shift - 1);
    for l in 0..8 {
        let m = i32::wrapping_mul;
        let (a, s) = (i32::wrapping_add, i32::wrapping_sub);
        // Even part.
        let z2 = inp[2][l];
        let z3 = inp[6][l];
        let z1 = m(a(z2, z3), FIX_0_541196100);
        let tmp2 = s(z1, m(z3, FIX_1_847759065));
        let tmp3 = a(z1, m(z2, FIX_0_765366865));
        let tmp0 = a(inp[0][l], inp[4][l]).wrapping_shl(CONST_BITS);
        let tmp1 = s(inp[0][l], inp[4][l]).wrapping_shl(CONST_BITS);
        let tmp10 = a(tmp0, tmp3);
        let tmp13 = s(tmp0, tmp3);
        let tmp11 = a(tmp1, tmp2);
        let tmp12 = s(tmp1, tmp2);
        // Odd part.
        let (t0, t1, t2, t3) = (inp[7][l], inp[5][l], inp[3][l], inp[1][l]);
        let z1 = a(t0, t3);
        let z2 = a(t1, t2);
        let z3 = a(t0, t2);
        let z4 = a(t1, t3);
        let z5 = m(a(z3, z4), FIX_1_175875602);
        let t0 = m(t0, FIX_0_298631336);
        let t1 = m(t1, FIX_2_053119869);
        let t2 = m(t2, FIX_3_072711026);
        let t3 = m(t3, FIX_1_501321110);
        let z1 = m(z1, -FIX_0_899976223);
        let z2 = m(z2, -FIX_2_562915447);
        let z3 = a(m(z3, -FIX_1_961570560), z5);
        let z4 = a(m(z4, -FIX_0_390180644), z5);
        let t0 = a(t0, a(z1, z3));
        let t1 = a(t1, a(z2, z4));
        let t2 = a(t2, a(z2, z3));
        let t3 = a(t3, a(z1, z4));
        let d = |v: i32| a(v, round) >> shift;
        out[0][l] = d(a(tmp10, t3));
        out[7][l] = d(s(tmp10, t3));
        out[1][l] = d(a(tmp11, t2));
        out[6][l] = d(s(tmp11, t2));
        out[2][l] = d(a(tmp12, t1));
        out[5][l] = d(s(tmp12, t1));
        out[3][l] = d(a(tmp13, t0));
        out[4][l] = d(s(tmp13, t0));
    }
}

/// Transposes an 8x8 block of `i32`.
#[inline(always)]
fn transpose(m: &[[i32; 8]; 8]) -> [[i32; 8]; 8] {
    let mut t = [[0; 8]; 8];
    for (r, row) in m.iter().enumerate() {
        for (c, &v) in row.iter().enumerate() {
            t[c][r] = v;
        }
    }
    t
}

/// libjpeg's accurate integer IDCT of a dequantised block (natural order) into
/// 8x8 samples at the start of `out` with row stride `stride`; zeroes `blk`.
#[inline(always)]
fn idct_islow(blk: &mut [i32; 64], out: &mut [u8], stride: usize) {
    let mut rows = [[0i32; 8]; 8];
    for (r, row) in rows.iter_mut().enumerate() {
        row.copy_from_slice(&blk[r * 8..r * 8 + 8]);
    }
    *blk = [0; 64];
    // Columns: lanes are columns, inputs are rows.
    let mut ws = [[0i32; 8]; 8];
    idct_pass(&rows, &mut ws, CONST_BITS - PASS1_BITS);
    // Rows: lanes are rows, inputs are columns.
    let wt = transpose(&ws);
    let mut res = [[0i32; 8]; 8];
    idct_pass(&wt, &mut res, CONST_BITS + PASS1_BITS + 3);
    // res[k][r] is the sample at row r, column k.
    let px = transpose(&res);
    for (r, row) in px.iter().enumerate() {
        let o = &mut out[r * stride..r * stride + 8];
        for (d, &v) in o.iter_mut().zip(row) {
            *d = clamp_sample(v);
        }
    }
}

/// libjpeg's fancy 2:1 horizontal upsampling of one row: each output sample is
/// 3/4 of its nearer input sample and 1/4 of the farther, the ends replicated.
/// Writes `2 * inp.len()` samples (at most `out.len()`).
#[inline(always)]
fn upsample_h2v1(inp: &[u8], out: &mut [u8]) {
    let n = inp.len();
    if n == 0 {
        return;
    }
    let at = |i: usize| i32::from(inp[i]);
    let px = |v: i32| v as u8;
    out[0] = inp[0];
    if n == 1 {
        out[1] = inp[0];
        return;
    }
    out[1] = px((3 * at(0) + at(1) + 2) >> 2);
    for (o, w) in out[2..2 * n - 2].chunks_exact_mut(2).zip(inp.windows(3)) {
        let c = 3 * i32::from(w[1]);
        o[0] = px((c + i32::from(w[0]) + 1) >> 2);
        o[1] = px((c + i32::from(w[2]) + 2) >> 2);
    }
    out[2 * n - 2] = px((3 * at(n - 1) + at(n - 2) + 1) >> 2);
    out[2 * n - 1] = inp[n - 1];
}

/// libjpeg's fancy 2:1 upsampling in both directions for one output row: the
/// nearer input row weighs 3, the farther 1, then horizontally as in
/// [`upsample_h2v1`] (with libjpeg's biases of 8 and 7).
#[inline(always)]
fn upsample_h2v2(near: &[u8], far: &[u8], colsum: &mut [i32], out: &mut [u8]) {
    let n = near.len();
    if n == 0 {
        return;
    }
    for ((s, &a), &b) in colsum.iter_mut().zip(near).zip(far) {
        *s = 3 * i32::from(a) + i32::from(b);
    }
    let px = |v: i32| v as u8;
    if n == 1 {
        out[0] = px((colsum[0] * 4 + 8) >> 4);
        out[1] = px((colsum[0] * 4 + 7) >> 4);
        return;
    }
    out[0] = px((colsum[0] * 4 + 8) >> 4);
    out[1] = px((colsum[0] * 3 + colsum[1] + 7) >> 4);
    for (o, w) in out[2..2 * n - 2]
        .chunks_exact_mut(2)
        .zip(colsum[..n].windows(3))
    {
        let c = 3 * w[1];
        o[0] = px((c + w[0] + 8) >> 4);
        o[1] = px((c + w[2] + 7) >> 4);
    }
    out[2 * n - 2] = px((colsum[n - 1] * 3 + colsum[n - 2] + 8) >> 4);
    out[2 * n - 1] = px((colsum[n - 1] * 4 + 7) >> 4);
}

/// `jdcolor.c`'s constants: `FIX(x) = round(x * 65536)`.
const FIX_1_40200: i32 = 91881;
const FIX_1_77200: i32 = 116130;
const FIX_0_71414: i32 = 46802;
const FIX_0_34414: i32 = 22554;
const ONE_HALF: i32 = 1 << 15;

/// Full-range YCbCr (JFIF) to packed RGB, libjpeg's fixed point.
#[inline(always)]
fn ycc_to_rgb(y: &[u8], cb: &[u8], cr: &[u8], out: &mut [u8]) {
    let clamp = |v: i32| v.clamp(0, 255) as u8;
    for (((o, &y), &cb), &cr) in out.chunks_exact_mut(3).zip(y).zip(cb).zip(cr) {
        let y = i32::from(y);
        let cb = i32::from(cb) - 128;
        let cr = i32::from(cr) - 128;
        o[0] = clamp(y + ((FIX_1_40200 * cr + ONE_HALF) >> 16));
        o[1] = clamp(y + ((-FIX_0_34414 * cb - FIX_0_71414 * cr + ONE_HALF) >> 16));
        o[2] = clamp(y + ((FIX_1_77200 * cb + ONE_HALF) >> 16));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huffman_codes_decode_through_the_fast_and_the_slow_path() {
        // Lengths 1 and 12: "0" -> 5, "100000000000" -> 9.
        let mut counts = [0u8; 16];
        counts[0] = 1;
        counts[11] = 1;
        let mut h = Huffman::EMPTY;
        h.build(&counts, &[5, 9]).unwrap();
        let data = [0b0100_0000, 0b0000_0000, 0xFF, 0xD9];
        let mut b = Bits::new(&data, 0);
        b.refill();
        assert_eq!(b.symbol(&h).unwrap(), 5);
        assert_eq!(b.symbol(&h).unwrap(), 9);
        assert!(!b.overran());
        // All ones matches no code.
        let data = [0xFF, 0x00, 0xFF, 0x00];
        let mut b = Bits::new(&data, 0);
        b.refill();
        assert!(b.symbol(&h).is_err());
    }

    #[test]
    fn over_subscribed_tables_are_rejected() {
        let mut counts = [0u8; 16];
        counts[0] = 3;
        assert!(Huffman::EMPTY.clone().build(&counts, &[1, 2, 3]).is_err());
    }

    #[test]
    fn bits_past_a_marker_are_zeros_and_count_as_overrun() {
        let data = [0xAB, 0xFF, 0xD9];
        let mut b = Bits::new(&data, 0);
        b.refill();
        assert_eq!(b.extend(8), 0xAB);
        assert!(!b.overran());
        b.refill();
        b.consume(1);
        assert!(b.overran());
    }

    #[test]
    fn extend_gives_negative_values_for_a_leading_zero() {
        let data = [0b0101_1000];
        let mut b = Bits::new(&data, 0);
        b.refill();
        assert_eq!(b.extend(3), -5); // 010
        assert_eq!(b.extend(2), 3); // 11
    }

    #[test]
    fn a_lone_dc_fills_the_block_like_the_full_idct() {
        for dc in [-1024, -700, -5, 0, 3, 17, 600, 1016] {
            let mut blk = [0i32; 64];
            blk[0] = dc;
            let mut a = [0u8; 64];
            let mut b = [0u8; 64];
            idct_islow(&mut blk, &mut a, 8);
            fill_dc(dc, &mut b, 8);
            assert_eq!(a, b, "dc {dc}");
        }
    }

    #[test]
    fn fancy_upsampling_keeps_flat_rows_flat_and_interpolates_ramps() {
        let mut out = [0u8; 8];
        upsample_h2v1(&[50; 4], &mut out);
        assert_eq!(out, [50; 8]);
        upsample_h2v1(&[0, 40, 80, 120], &mut out);
        assert_eq!(out, [0, 10, 30, 50, 70, 90, 110, 120]);
        let mut colsum = [0i32; 4];
        upsample_h2v2(&[0, 40, 80, 120], &[0, 40, 80, 120], &mut colsum, &mut out);
        assert_eq!(out, [0, 10, 30, 50, 70, 90, 110, 120]);
    }

    #[test]
    fn idct_of_a_damaged_block_does_not_panic() {
        let mut blk = [i32::MAX; 64];
        let mut out = [0u8; 64];
        idct_islow(&mut blk, &mut out, 8);
        assert_eq!(blk, [0; 64]);
    }
}
