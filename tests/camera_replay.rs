//! Replay sources on real footage (OpenCV's vtest.avi, converted by
//! trainer/make_camera_fixtures.sh): frame splitting, Y4M conversion, image
//! directories, pacing, and damaged input.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mainstream::camera::jpeg;
use mainstream::camera::replay::{FrameReader, MjpegReader};
use mainstream::camera::{
    open_source, open_source_with_faults, Camera, CameraOptions, Faults, FrameSource, Pace,
    SimClock, SourceKind, SourceSpec, SpecOpener,
};
use mainstream::frame::PixelFormat;
use mainstream::ErrorKind;

use crate::common::camera_fixture;
use crate::frames::split_at_soi;

fn spec(path: PathBuf, fps: f64, pace: Pace) -> SourceSpec {
    SourceSpec {
        path,
        width: 320,
        height: 240,
        fps,
        format: PixelFormat::Mjpeg,
        pace,
    }
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("mainstream-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every frame of a source as (bytes, metadata), and the errors met on the way.
fn drain(
    src: &mut dyn FrameSource,
) -> (Vec<(Vec<u8>, mainstream::frame::FrameMeta)>, Vec<ErrorKind>) {
    let (mut frames, mut errors) = (Vec::new(), Vec::new());
    for _ in 0..10_000 {
        match src.next_frame() {
            Ok(Some((data, meta))) => frames.push((data.to_vec(), meta)),
            Ok(None) => return (frames, errors),
            Err(e) => errors.push(e.kind()),
        }
    }
    panic!("source never ended");
}

#[test]
fn mjpeg_frames_tile_the_file_exactly_and_carry_nominal_timestamps() {
    let path = camera_fixture("vtest_mjpg_320x240.mjpeg");
    let file = std::fs::read(&path).unwrap();
    let mut src = open_source(&spec(path, 10.0, Pace::Fast)).unwrap();
    assert_eq!(src.describe().kind, SourceKind::MjpegFile);
    assert_eq!((src.describe().width, src.describe().height), (320, 240));
    let (frames, errors) = drain(&mut *src);
    assert!(errors.is_empty(), "{errors:?}");
    // As many frames as the file has SOI markers, and together they are the file.
    let sois = file.windows(3).filter(|w| *w == [0xFF, 0xD8, 0xFF]).count();
    assert_eq!(frames.len(), sois);
    assert!(frames.len() >= 10);
    let joined: Vec<u8> = frames.iter().flat_map(|(d, _)| d.iter().copied()).collect();
    assert_eq!(joined, file);
    for (i, (data, meta)) in frames.iter().enumerate() {
        assert_eq!(meta.sequence, i as u64);
        assert_eq!(meta.timestamp_us, i as u64 * 100_000);
        assert_eq!(
            (meta.width, meta.height, meta.format),
            (320, 240, PixelFormat::Mjpeg)
        );
        assert_eq!(data[data.len() - 2..], [0xFF, 0xD9]);
    }
}

#[test]
fn nominal_pace_sleeps_until_each_frame_is_due_and_fast_pace_never_sleeps() {
    let clock = SimClock::new();
    let path = camera_fixture("vtest_mjpg_320x240.mjpeg");
    let mut src = open_source_with_faults(
        &spec(path.clone(), 10.0, Pace::Nominal),
        &Faults::default(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    for _ in 0..5 {
        src.grab().unwrap().unwrap();
    }
    assert_eq!(clock.sleeps(), vec![Duration::from_millis(100); 4]);
    // A slow consumer (now 650 ms): frames 5 and 6 (due at 500 and 600 ms) are
    // released at once, frame 7 waits until 700 ms.
    clock.advance(Duration::from_millis(250));
    src.grab().unwrap().unwrap();
    src.grab().unwrap().unwrap();
    assert_eq!(clock.sleeps().len(), 4);
    src.grab().unwrap().unwrap();
    assert_eq!(clock.sleeps().len(), 5);
    assert_eq!(clock.sleeps()[4], Duration::from_millis(50));

    let fast = SimClock::new();
    let mut src = open_source_with_faults(
        &spec(path, 10.0, Pace::Fast),
        &Faults::default(),
        Arc::new(fast.clone()),
    )
    .unwrap();
    while src.grab().unwrap().is_some() {}
    assert!(fast.sleeps().is_empty());
}

/// One Y4M frame's Y, U and V planes.
type Planes = (Vec<u8>, Vec<u8>, Vec<u8>);

/// Reads a Y4M file's planes independently of the crate: (w, h, frames of (Y, U, V)).
fn y4m_planes(
    path: &Path,
    chroma_w: impl Fn(usize) -> usize,
    chroma_h: impl Fn(usize) -> usize,
) -> (usize, usize, Vec<Planes>) {
    let bytes = std::fs::read(path).unwrap();
    let nl = bytes.iter().position(|&b| b == b'\n').unwrap();
    let header = std::str::from_utf8(&bytes[..nl]).unwrap();
    let field = |t: char| -> usize {
        header.split(' ').find(|f| f.starts_with(t)).unwrap()[1..]
            .parse()
            .unwrap()
    };
    let (w, h) = (field('W'), field('H'));
    let (cw, ch) = (chroma_w(w), chroma_h(h));
    let mut pos = nl + 1;
    let mut frames = Vec::new();
    while pos < bytes.len() {
        assert_eq!(&bytes[pos..pos + 6], b"FRAME\n");
        pos += 6;
        let y = bytes[pos..pos + w * h].to_vec();
        pos += w * h;
        let u = bytes[pos..pos + cw * ch].to_vec();
        pos += cw * ch;
        let v = bytes[pos..pos + cw * ch].to_vec();
        pos += cw * ch;
        frames.push((y, u, v));
    }
    (w, h, frames)
}

#[test]
fn y4m_420_frames_become_yuyv_with_each_chroma_row_shared_by_two_lines() {
    let path = camera_fixture("vtest_i420_64x48.y4m");
    let (w, h, planes) = y4m_planes(&path, |w| w.div_ceil(2), |h| h.div_ceil(2));
    let mut src = open_source(&spec(path, 99.0, Pace::Fast)).unwrap();
    assert_eq!(
        src.describe().fps,
        10.0,
        "the header's F10:1 wins over the spec"
    );
    let (frames, errors) = drain(&mut *src);
    assert!(errors.is_empty());
    assert_eq!(frames.len(), planes.len());
    for ((data, meta), (y, u, v)) in frames.iter().zip(&planes) {
        assert_eq!(
            (meta.width as usize, meta.height as usize, meta.format),
            (w, h, PixelFormat::Yuyv)
        );
        assert_eq!(data.len(), w * h * 2);
        for row in 0..h {
            for x in 0..w {
                let px = &data[(row * w + x) * 2..];
                assert_eq!(px[0], y[row * w + x]);
                let c = (row / 2) * (w / 2) + x / 2;
                assert_eq!(px[1], if x % 2 == 0 { u[c] } else { v[c] });
            }
        }
    }
}

#[test]
fn y4m_422_converts_and_mono_passes_through_as_grey() {
    let path = camera_fixture("vtest_i422_32x24.y4m");
    let (w, h, planes) = y4m_planes(&path, |w| w.div_ceil(2), |h| h);
    let (frames, _) = drain(&mut *open_source(&spec(path, 10.0, Pace::Fast)).unwrap());
    assert_eq!(frames.len(), planes.len());
    for ((data, _), (y, u, v)) in frames.iter().zip(&planes) {
        for row in 0..h {
            for i in 0..w / 2 {
                let px = &data[(row * w + 2 * i) * 2..][..4];
                let c = row * (w / 2) + i;
                assert_eq!(px, [y[row * w + 2 * i], u[c], y[row * w + 2 * i + 1], v[c]]);
            }
        }
    }

    let path = camera_fixture("vtest_mono_32x24.y4m");
    let (_, _, planes) = y4m_planes(&path, |_| 0, |_| 0);
    let (frames, _) = drain(&mut *open_source(&spec(path, 10.0, Pace::Fast)).unwrap());
    assert_eq!(frames.len(), planes.len());
    for ((data, meta), (y, _, _)) in frames.iter().zip(&planes) {
        assert_eq!(meta.format, PixelFormat::Grey);
        assert_eq!(data, y);
    }
}

#[test]
fn image_directory_delivers_each_jpeg_file_in_name_order() {
    let dir = camera_fixture("images");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut src = open_source(&spec(dir, 5.0, Pace::Fast)).unwrap();
    assert_eq!(src.describe().kind, SourceKind::ImageDir);
    let (frames, errors) = drain(&mut *src);
    assert!(errors.is_empty());
    assert_eq!(frames.len(), names.len());
    for ((data, meta), name) in frames.iter().zip(&names) {
        assert_eq!(data, &std::fs::read(name).unwrap());
        assert_eq!(
            (meta.width, meta.height, meta.format),
            (160, 120, PixelFormat::Mjpeg)
        );
        assert_eq!(meta.timestamp_us, meta.sequence * 200_000);
    }
}

/// The fixture's frames, split independently (at each SOI).
fn fixture_frames() -> Vec<Vec<u8>> {
    split_at_soi(&std::fs::read(camera_fixture("vtest_mjpg_320x240.mjpeg")).unwrap())
}

#[test]
fn truncated_corrupt_and_stray_bytes_in_a_stream_are_skipped_and_counted() {
    let f = fixture_frames();
    let tmp = TempDir::new("damaged");
    let path = tmp.0.join("damaged.mjpeg");
    let mut s = Vec::new();
    s.extend_from_slice(&f[0]);
    s.extend_from_slice(&f[1][..f[1].len() / 2]); // truncated: the next SOI comes early
    s.extend_from_slice(&f[2]);
    s.extend_from_slice(b"stray bytes between frames");
    s.extend_from_slice(&f[3]);
    let mut bad_header = f[4].clone();
    bad_header[4] = 0xFF; // first segment's length now runs far past the frame
    bad_header[5] = 0xF0;
    s.extend_from_slice(&bad_header);
    s.extend_from_slice(&f[5]);
    s.extend_from_slice(&f[6][..f[6].len() - 10]); // cut off at the end of the file
    std::fs::write(&path, &s).unwrap();

    let mut cam = Camera::new(
        Box::new(SpecOpener::new(spec(path, 10.0, Pace::Fast))),
        Arc::new(SimClock::new()),
        CameraOptions::default(),
    );
    let (frames, errors) = drain(&mut cam);
    assert!(
        errors.is_empty(),
        "the supervisor absorbs bad frames: {errors:?}"
    );
    // Which fixture frame each delivered frame is (None: none of them).
    let which: Vec<Option<usize>> = frames
        .iter()
        .map(|(d, _)| f.iter().position(|x| x == d))
        .collect();
    assert_eq!(which, [Some(0), Some(2), Some(3), Some(5)]);
    let st = cam.stats();
    assert_eq!(st.frames, 4);
    assert_eq!(st.bad_frames, 4, "{st:?}");
    assert_eq!(
        st.dropped, 0,
        "gaps explained by bad frames are not drops: {st:?}"
    );
    assert_eq!(st.disconnects, 0);
}

#[test]
fn a_frame_over_the_size_limit_is_bad_and_the_buffer_does_not_grow() {
    let f = fixture_frames();
    let limit = f.iter().map(|x| x.len()).min().unwrap() - 1;
    let mut r = MjpegReader::open(&camera_fixture("vtest_mjpg_320x240.mjpeg"), limit).unwrap();
    let mut kinds = Vec::new();
    for _ in 0..10_000 {
        match r.read() {
            Ok(Some(_)) => kinds.push(None),
            Ok(None) => break,
            Err(e) => kinds.push(Some(e.kind())),
        }
    }
    assert!(!kinds.is_empty());
    assert!(
        kinds.iter().all(|k| *k == Some(ErrorKind::BadFrame)),
        "{kinds:?}"
    );
    assert!(r.data().is_empty());
}

#[test]
fn image_directory_skips_a_broken_file_and_goes_on() {
    let tmp = TempDir::new("imgdir");
    let f = fixture_frames();
    std::fs::write(tmp.0.join("a.jpg"), &f[0]).unwrap();
    std::fs::write(tmp.0.join("b.JPG"), &f[1][..100]).unwrap();
    std::fs::write(tmp.0.join("c.jpeg"), &f[2]).unwrap();
    std::fs::write(tmp.0.join("notes.txt"), b"not an image").unwrap();
    let (frames, errors) = drain(&mut *open_source(&spec(tmp.0.clone(), 5.0, Pace::Fast)).unwrap());
    assert_eq!(errors, [ErrorKind::BadFrame]);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].0, f[0]);
    assert_eq!(frames[1].0, f[2]);
    assert_eq!(frames[1].1.sequence, 2);
    assert!(jpeg::inspect(&frames[1].0).is_ok());
}

#[test]
fn bad_replay_paths_give_distinct_errors() {
    let e = open_source(&spec("/nonexistent/cam.mjpeg".into(), 10.0, Pace::Fast))
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::DeviceGone);
    let e = open_source(&spec(
        camera_fixture("vtest_mjpg_320x240.mjpeg"),
        0.0,
        Pace::Fast,
    ))
    .err()
    .unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig, "a replay needs a rate");
    let tmp = TempDir::new("emptydir");
    let e = open_source(&spec(tmp.0.clone(), 10.0, Pace::Fast))
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    let y4m = tmp.0.join("x.y4m");
    std::fs::write(&y4m, b"YUV4MPEG2 W4 H4 C420p10\nFRAME\n").unwrap();
    assert_eq!(
        open_source(&spec(y4m, 10.0, Pace::Fast))
            .err()
            .unwrap()
            .kind(),
        ErrorKind::Unsupported
    );
}

#[test]
fn a_truncated_last_y4m_frame_is_bad_and_ends_the_stream() {
    let src = std::fs::read(camera_fixture("vtest_i420_64x48.y4m")).unwrap();
    let tmp = TempDir::new("y4mcut");
    let path = tmp.0.join("cut.y4m");
    std::fs::write(&path, &src[..src.len() - 100]).unwrap();
    let (frames, errors) = drain(&mut *open_source(&spec(path, 10.0, Pace::Fast)).unwrap());
    assert_eq!(errors, [ErrorKind::BadFrame]);
    assert_eq!(frames.len(), 5);
}
