//! Phase two for one `[[camera]]`: its name, source, size, rate, format and
//! pacing checked and defaulted into a [`CameraConfig`].

use super::raw::RawCamera;
use super::{
    check_name, in_range, int_in_range, resolve, CameraConfig, Diagnostics, Pace, Source,
    SourceFile,
};
use crate::frame::PixelFormat;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Validates one camera; `None` if it has errors (all of them reported).
pub(super) fn validate_camera(
    src: &SourceFile,
    base_dir: &Path,
    rc: Spanned<RawCamera>,
    names: &mut HashSet<String>,
    errors: &mut Diagnostics,
    warnings: &mut Diagnostics,
) -> Option<CameraConfig> {
    let span = rc.span();
    let c = rc.into_inner();
    let before = errors.len();
    let name = match &c.name {
        Some(n) => {
            if check_name(src, errors, n, "camera") && !names.insert(n.get_ref().clone()) {
                errors.at(
                    src,
                    n.span(),
                    format!("camera name {:?} is used twice", n.get_ref()),
                );
            }
            n.get_ref().clone()
        }
        None => {
            errors.at(src, span.clone(), "[[camera]] needs a `name`");
            String::new()
        }
    };
    let source = match &c.source {
        None => {
            errors.at(
                src,
                span.clone(),
                format!("camera {name:?} needs a `source` (a /dev/video path or a replay file)"),
            );
            None
        }
        Some(s) if s.get_ref().starts_with("/dev/") => {
            let p = PathBuf::from(s.get_ref());
            if !p.exists() {
                warnings.at(
                    src,
                    s.span(),
                    format!(
                        "{} is not present now (camera unplugged?); the service will wait for it",
                        p.display()
                    ),
                );
            }
            Some(Source::Device(p))
        }
        Some(s) => {
            let p = resolve(base_dir, s.get_ref());
            match std::fs::metadata(&p) {
                Err(e) => {
                    errors.at(src, s.span(), format!("replay source {}: {e}", p.display()));
                    None
                }
                Ok(m) if m.is_dir() => Some(Source::Replay(p)),
                Ok(_) => {
                    let ext = p
                        .extension()
                        .and_then(|e| e.to_str())
                        .unwrap_or("")
                        .to_ascii_lowercase();
                    if matches!(ext.as_str(), "mjpeg" | "mjpg" | "mjp" | "y4m") {
                        // Streamed, not read whole: regular, but no size limit.
                        if let Err(e) = crate::files::open_regular(&p) {
                            errors.at(src, s.span(), format!("replay source {} {e}", p.display()));
                        }
                        Some(Source::Replay(p))
                    } else {
                        errors.at(
                            src,
                            s.span(),
                            format!("replay source {} must be a .mjpeg/.mjpg stream, a .y4m file or a directory of JPEGs", p.display()),
                        );
                        None
                    }
                }
            }
        }
    };
    let is_device = matches!(source, Some(Source::Device(_)));
    let mut dim = |v: &Option<Spanned<i64>>, what: &str| -> Option<u32> {
        match v {
            Some(x) => int_in_range(src, errors, x, what, 16, 8192).map(|x| x as u32),
            None => {
                if is_device {
                    errors.at(
                        src,
                        span.clone(),
                        format!("camera {name:?} needs `{what}` for a V4L2 device"),
                    );
                }
                None
            }
        }
    };
    let width = dim(&c.width, "width");
    let height = dim(&c.height, "height");
    let fps = match &c.fps {
        Some(f) => in_range(src, errors, f, "fps", 0.0, 240.0, false),
        None => {
            errors.at(
                src,
                span.clone(),
                format!("camera {name:?} needs `fps` (the rate the stream delivers)"),
            );
            None
        }
    };
    let format = match &c.pixel_format {
        Some(f) => match PixelFormat::parse(f.get_ref()) {
            Some(pf) => Some(pf),
            None => {
                errors.at(
                    src,
                    f.span(),
                    format!(
                        "pixel_format {:?} is not one of MJPG, YUYV, GREY, RGB3",
                        f.get_ref()
                    ),
                );
                None
            }
        },
        None => None,
    };
    if let (Some(PixelFormat::Yuyv), Some(w)) = (format, width) {
        if w % 2 != 0 {
            if let Some(ws) = &c.width {
                errors.at(src, ws.span(), "YUYV needs an even width");
            }
        }
    }
    let pace = match &c.pace {
        None => Pace::Nominal,
        Some(p) => {
            if is_device {
                errors.at(src, p.span(), "`pace` applies to replay sources only");
            }
            match p.get_ref().as_str() {
                "realtime" => Pace::Nominal,
                "fast" => Pace::Fast,
                other => {
                    errors.at(
                        src,
                        p.span(),
                        format!("pace {other:?} is not `realtime` or `fast`"),
                    );
                    Pace::Nominal
                }
            }
        }
    };
    let looping = match &c.looping {
        None => false,
        Some(l) => {
            if is_device {
                errors.at(src, l.span(), "`loop` applies to replay sources only");
            }
            *l.get_ref()
        }
    };
    if errors.len() != before {
        return None;
    }
    Some(CameraConfig {
        looping,
        name,
        source: source?,
        width,
        height,
        fps: fps?,
        format: if is_device {
            Some(format.unwrap_or(PixelFormat::Mjpeg))
        } else {
            format
        },
        pace,
    })
}
