//! `mainstream cameras`: the video devices present, with their stable links,
//! formats, frame sizes and frame rates.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use v4l::Device;

use super::v4l2::{self, IntervalRange, SizeRange};
use crate::error::Result;
use crate::frame::PixelFormat;

/// One video device node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceInfo {
    /// The node, e.g. `/dev/video0`.
    pub node: PathBuf,
    /// Stable links to it under `/dev/v4l/by-id` and `/dev/v4l/by-path`:
    /// configure cameras by these, they survive re-enumeration.
    pub links: Vec<PathBuf>,
    /// Driver name (e.g. `uvcvideo`).
    pub driver: String,
    /// Device name (e.g. the camera's USB product name).
    pub card: String,
    /// Bus position (e.g. `usb-0000:00:14.0-1`).
    pub bus: String,
    /// Whether the node can stream video capture (a UVC camera also has a
    /// metadata node that cannot).
    pub capture: bool,
    /// Capture formats offered.
    pub formats: Vec<FormatInfo>,
    /// Why the node could not be queried (busy, permission, ...), if it could not.
    pub error: Option<String>,
}

/// One pixel format a device offers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FormatInfo {
    /// FourCC code, e.g. `YUYV`.
    pub fourcc: String,
    /// The driver's description.
    pub description: String,
    /// Whether mainstream can take it (MJPG, YUYV, RGB3, GREY).
    pub supported: bool,
    /// Frame sizes with their frame intervals.
    pub sizes: Vec<SizeInfo>,
}

/// A frame size (or range) and the frame intervals offered at it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SizeInfo {
    /// The size or range of sizes.
    pub size: SizeRange,
    /// Frame intervals at this size (for a range, at its largest size).
    pub intervals: Vec<IntervalRange>,
}

/// Lists the video devices under `/dev`. No devices: an empty list, not an error.
pub fn list_devices() -> Result<Vec<DeviceInfo>> {
    list_devices_in(Path::new("/dev"))
}

/// Lists `videoN` nodes in `dev_dir` (and links to them in `dev_dir/v4l`),
/// sorted by N. Nodes that cannot be opened are listed with `error` set.
pub(crate) fn list_devices_in(dev_dir: &Path) -> Result<Vec<DeviceInfo>> {
    let rd = match std::fs::read_dir(dev_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(crate::err!(Io, source = e, "listing {}", dev_dir.display())),
    };
    let mut nodes: Vec<(u32, PathBuf)> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let n = name.to_str()?.strip_prefix("video")?.parse::<u32>().ok()?;
            Some((n, e.path()))
        })
        .collect();
    nodes.sort();
    Ok(nodes
        .into_iter()
        .map(|(_, node)| describe_node(dev_dir, node))
        .collect())
}

fn describe_node(dev_dir: &Path, node: PathBuf) -> DeviceInfo {
    let canonical = std::fs::canonicalize(&node).unwrap_or_else(|_| node.clone());
    let mut info = DeviceInfo {
        links: v4l2::links_to(&dev_dir.join("v4l"), &canonical),
        node,
        driver: String::new(),
        card: String::new(),
        bus: String::new(),
        capture: false,
        formats: Vec::new(),
        error: None,
    };
    if let Err(e) = query_node(&mut info) {
        info.error = Some(e.to_string());
    }
    info
}

fn query_node(info: &mut DeviceInfo) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    if info.node.as_os_str().as_bytes().contains(&0) {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    let dev = Device::with_path(&info.node)?;
    let fd = dev.handle().fd();
    let caps = v4l2::query_caps(fd)?;
    info.driver = caps.driver.clone();
    info.card = caps.card.clone();
    info.bus = caps.bus.clone();
    info.capture = caps.can_capture();
    if !info.capture {
        return Ok(());
    }
    for (code, description) in v4l2::enum_formats(fd)? {
        let sizes = v4l2::frame_sizes(&dev, code)
            .into_iter()
            .map(|size| SizeInfo {
                intervals: v4l2::frame_intervals(&dev, code, size.max_width, size.max_height),
                size,
            })
            .collect();
        info.formats.push(FormatInfo {
            fourcc: v4l2::fourcc_str(code),
            description,
            supported: PixelFormat::from_fourcc(code).is_some(),
            sizes,
        });
    }
    Ok(())
}

fn fmt_rate(fps: f64) -> String {
    if (fps - fps.round()).abs() < 0.005 {
        format!("{}", fps.round())
    } else {
        format!("{fps:.2}")
    }
}

fn fmt_intervals(ivals: &[IntervalRange]) -> String {
    let parts: Vec<String> = ivals
        .iter()
        .map(|r| {
            if r.min == r.max {
                fmt_rate(r.max_fps())
            } else {
                format!("{}-{}", fmt_rate(r.min_fps()), fmt_rate(r.max_fps()))
            }
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" @ {} fps", parts.join(", "))
    }
}

/// Writes the device list as text (one block per device) or as JSON.
pub fn render_devices(devs: &[DeviceInfo], json: bool, out: &mut dyn Write) -> Result<()> {
    let r = if json {
        write_json(devs, out)
    } else {
        write_text(devs, out)
    };
    r.map_err(|e| crate::err!(Io, source = e, "writing the device list"))
}

fn write_text(devs: &[DeviceInfo], out: &mut dyn Write) -> std::io::Result<()> {
    if devs.is_empty() {
        writeln!(out, "no video devices")?;
        return Ok(());
    }
    for d in devs {
        write!(out, "{}", d.node.display())?;
        if let Some(e) = &d.error {
            writeln!(out, ": cannot query: {e}")?;
            continue;
        }
        writeln!(out, ": {} (driver {}, bus {})", d.card, d.driver, d.bus)?;
        for l in &d.links {
            writeln!(out, "  link {}", l.display())?;
        }
        if !d.capture {
            writeln!(out, "  not a video capture node")?;
            continue;
        }
        for f in &d.formats {
            let mark = if f.supported {
                ""
            } else {
                " (not supported by mainstream)"
            };
            writeln!(out, "  {} {}{mark}", f.fourcc, f.description)?;
            for s in &f.sizes {
                let z = s.size;
                if z.is_discrete() {
                    write!(out, "    {}x{}", z.max_width, z.max_height)?;
                } else {
                    write!(
                        out,
                        "    {}x{} to {}x{} step {}/{}",
                        z.min_width,
                        z.min_height,
                        z.max_width,
                        z.max_height,
                        z.step_width,
                        z.step_height
                    )?;
                }
                writeln!(out, "{}", fmt_intervals(&s.intervals))?;
            }
        }
    }
    Ok(())
}

/// A JSON string literal.
fn js(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn jp(p: &Path) -> String {
    js(&p.to_string_lossy())
}

fn jlist<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    let v: Vec<String> = items.iter().map(f).collect();
    format!("[{}]", v.join(","))
}

// Hand-written until `serde_json` is a dependency; the field names match the
// `Serialize` derives above, so switching is `serde_json::to_writer_pretty`.
fn write_json(devs: &[DeviceInfo], out: &mut dyn Write) -> std::io::Result<()> {
    let frac = |f: (u32, u32)| format!("[{},{}]", f.0, f.1);
    let body = jlist(devs, |d| {
        let formats = jlist(&d.formats, |f| {
            let sizes = jlist(&f.sizes, |s| {
                let z = s.size;
                let ivals = jlist(&s.intervals, |i| {
                    format!("{{\"min\":{},\"max\":{}}}", frac(i.min), frac(i.max))
                });
                format!(
                    "{{\"size\":{{\"min_width\":{},\"max_width\":{},\"step_width\":{},\
                     \"min_height\":{},\"max_height\":{},\"step_height\":{}}},\"intervals\":{ivals}}}",
                    z.min_width, z.max_width, z.step_width, z.min_height, z.max_height, z.step_height
                )
            });
            format!(
                "{{\"fourcc\":{},\"description\":{},\"supported\":{},\"sizes\":{sizes}}}",
                js(&f.fourcc),
                js(&f.description),
                f.supported
            )
        });
        format!(
            "{{\"node\":{},\"links\":{},\"driver\":{},\"card\":{},\"bus\":{},\"capture\":{},\
             \"formats\":{formats},\"error\":{}}}",
            jp(&d.node),
            jlist(&d.links, |l| jp(l)),
            js(&d.driver),
            js(&d.card),
            js(&d.bus),
            d.capture,
            d.error.as_deref().map_or("null".to_string(), js)
        )
    });
    writeln!(out, "{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_dev_dir_lists_nothing_and_renders_an_empty_list() {
        let dir = std::env::temp_dir().join(format!("mainstream-list-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let devs = list_devices_in(&dir).unwrap();
        assert!(devs.is_empty());
        let mut text = Vec::new();
        render_devices(&devs, false, &mut text).unwrap();
        assert_eq!(String::from_utf8(text).unwrap(), "no video devices\n");
        let mut json = Vec::new();
        render_devices(&devs, true, &mut json).unwrap();
        assert_eq!(String::from_utf8(json).unwrap(), "[]\n");
        assert!(list_devices_in(&dir.join("missing")).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn json_escapes_driver_strings() {
        assert_eq!(js("a\"b\\c\u{1}"), "\"a\\\"b\\\\c\\u0001\"");
    }
}
