//! Options of `mainstream cameras`: list the video devices, or stream one
//! through preprocessing with `--test`.

use super::args::{usage, Args};
use super::Command;
use crate::error::Result;
use std::path::PathBuf;

/// `mainstream cameras`.
pub(super) fn cameras(a: &mut Args) -> Result<Command> {
    let mut json = false;
    let mut test: Option<PathBuf> = None;
    let mut format = crate::frame::PixelFormat::Mjpeg;
    let mut size = (640u32, 480u32);
    let mut fps = 30.0f64;
    let mut frames = 100u32;
    while let Some((opt, inline)) = a.next_opt()? {
        match opt.as_str() {
            "--test" => {
                test = Some(PathBuf::from(a.value(
                    &opt,
                    inline,
                    "a device node such as /dev/video0",
                )?));
            }
            "--format" => {
                let v = a.value(&opt, inline, "mjpeg, yuyv, grey or rgb24")?;
                format = crate::frame::PixelFormat::parse(&v).ok_or_else(|| {
                    usage(format!(
                        "--format {v:?} is not valid: expected mjpeg, yuyv, grey or rgb24"
                    ))
                })?;
            }
            "--size" => {
                let v = a.value(&opt, inline, "WIDTHxHEIGHT, e.g. 640x480")?;
                size = v
                    .split_once(['x', 'X'])
                    .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                    .filter(|&(w, h): &(u32, u32)| (16..=8192).contains(&w) && (16..=8192).contains(&h))
                    .ok_or_else(|| usage(format!("--size {v:?} is not valid: expected WIDTHxHEIGHT within 16..=8192, e.g. 640x480")))?;
            }
            "--fps" => {
                fps = a.number(&opt, inline, "frames per second above 0, at most 240")?;
                if !(fps.is_finite() && fps > 0.0 && fps <= 240.0) {
                    return Err(usage(format!(
                        "--fps {fps} is out of range: expected above 0 and at most 240"
                    )));
                }
            }
            "--frames" => {
                frames = a.number(&opt, inline, "a whole number of frames from 1 to 100000")?;
                if !(1..=100_000).contains(&frames) {
                    return Err(usage(format!(
                        "--frames {frames} is out of range 1..=100000"
                    )));
                }
            }
            "--json" => {
                Args::no_value(&opt, &inline)?;
                json = true;
            }
            _ => return Err(a.unknown(&opt)),
        }
    }
    Ok(match test {
        Some(path) => Command::CameraTest {
            spec: crate::camera::SourceSpec {
                path,
                width: size.0,
                height: size.1,
                fps,
                format,
                pace: crate::camera::Pace::Nominal,
            },
            frames,
        },
        None => Command::Cameras { json },
    })
}
