//! Phase two for apps, inline `[[app]]` or app drop-ins: each app's name,
//! camera, M-Package and event parameters checked into an [`App`], and the
//! drop-in directory listed and read.

use super::raw::RawApp;
use super::{
    check_name, in_range, int_in_range, is_valid_name, read_source, resolve, App, AppEvents,
    Diagnostics, SourceFile, DEFAULT_VOTING,
};
use crate::package::{self, Package};
use crate::planner::EventLengths;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// What every app is checked against: the cameras and the base network.
pub(super) struct AppContext<'a> {
    /// Every camera name written in the config, valid or not.
    pub(super) declared: &'a [String],
    /// Names of the valid cameras, in [`Config::cameras`] order.
    pub(super) camera_order: Vec<String>,
    /// The base network's SHA-256, when its manifest could be read.
    pub(super) base_sha256: Option<String>,
    /// M-Packages already loaded, by directory: several apps may share one,
    /// and its problems must be reported once, not once per app.
    pub(super) packages: std::cell::RefCell<std::collections::HashMap<PathBuf, Option<Package>>>,
}

/// Validates one app from `src` (a drop-in passes its file stem as
/// `default_name`); `None` if it has errors (all of them reported).
pub(super) fn validate_app(
    src: &SourceFile,
    base_dir: &Path,
    ra: Spanned<RawApp>,
    default_name: Option<&str>,
    ctx: &AppContext<'_>,
    names: &mut HashSet<String>,
    errors: &mut Diagnostics,
) -> Option<App> {
    let span = ra.span();
    let a = ra.into_inner();
    let before = errors.len();
    let name = match (&a.name, default_name) {
        (Some(n), _) => {
            if check_name(src, errors, n, "app") && !names.insert(n.get_ref().clone()) {
                errors.at(
                    src,
                    n.span(),
                    format!("app name {:?} is used twice", n.get_ref()),
                );
            }
            n.get_ref().clone()
        }
        (None, Some(d)) => {
            if !names.insert(d.to_owned()) {
                errors.at(
                    src,
                    0..0,
                    format!("app name {d:?} (from the file name) is used twice"),
                );
            }
            d.to_owned()
        }
        (None, None) => {
            errors.at(src, span.clone(), "[[app]] needs a `name`");
            String::new()
        }
    };
    let camera = match &a.camera {
        Some(c) => match ctx.camera_order.iter().position(|n| n == c.get_ref()) {
            Some(i) => Some(i),
            None => {
                if ctx.declared.contains(c.get_ref()) {
                    // The camera exists but failed validation; its own error says why.
                    None
                } else {
                    let known = if ctx.declared.is_empty() {
                        "no cameras are configured".to_owned()
                    } else {
                        {
                            // Name a few: the message must not grow with cameras x apps.
                            // (Names over 64 bytes are invalid anyway: show their start.)
                            let shown: Vec<&str> = ctx
                                .declared
                                .iter()
                                .take(8)
                                .map(|n| &n[..n.floor_char_boundary(64)])
                                .collect();
                            let more = ctx.declared.len() - shown.len();
                            if more > 0 {
                                format!("known cameras: {} and {more} more", shown.join(", "))
                            } else {
                                format!("known cameras: {}", shown.join(", "))
                            }
                        }
                    };
                    errors.at(
                        src,
                        c.span(),
                        format!(
                            "app {name:?} names camera {:?}, which does not exist ({known})",
                            c.get_ref()
                        ),
                    );
                    None
                }
            }
        },
        None => {
            errors.at(src, span.clone(), format!("app {name:?} needs a `camera`"));
            None
        }
    };
    let package = match &a.package {
        Some(p) => {
            let dir = resolve(base_dir, p.get_ref());
            let cached = ctx.packages.borrow().get(&dir).cloned();
            let pkg = match cached {
                Some(pkg) => {
                    if pkg.is_none() {
                        errors.at(
                            src,
                            p.span(),
                            format!(
                                "app {name:?}: M-Package {} is not valid (see above)",
                                dir.display()
                            ),
                        );
                    }
                    pkg
                }
                None => {
                    let mut pd = Diagnostics::default();
                    let pkg = package::load(&dir, &mut pd);
                    if !pd.is_empty() {
                        errors.at(
                            src,
                            p.span(),
                            format!(
                                "app {name:?}: M-Package {} is not valid (problems follow)",
                                dir.display()
                            ),
                        );
                        for d in pd.into_vec() {
                            errors.push(d);
                        }
                    }
                    ctx.packages.borrow_mut().insert(dir.clone(), pkg.clone());
                    pkg
                }
            };
            if let (Some(pkg), Some(base)) = (&pkg, &ctx.base_sha256) {
                if &pkg.base_sha256 != base {
                    errors.at(
                        src,
                        p.span(),
                        format!(
                            "app {name:?}: M-Package {} was cut from base {}, but the configured base is {}; retrain it on this base",
                            dir.display(),
                            short(&pkg.base_sha256),
                            short(base)
                        ),
                    );
                }
            }
            pkg
        }
        None => {
            errors.at(
                src,
                span.clone(),
                format!("app {name:?} needs a `package` (its M-Package directory)"),
            );
            None
        }
    };
    let defaults = package.as_ref().map(|p| p.event).unwrap_or_default();
    let mut event_param = |v: &Option<Spanned<f64>>,
                           dflt: Option<f64>,
                           key: &str,
                           lo: f64,
                           hi: f64,
                           lo_incl: bool|
     -> Option<f64> {
        match v {
            Some(x) => in_range(src, errors, x, key, lo, hi, lo_incl),
            None => {
                match dflt {
                    Some(d) => Some(d),
                    None => {
                        if package.is_some() {
                            errors.at(src, span.clone(), format!("app {name:?}: `{key}` is not set and its M-Package has no default"));
                        }
                        None
                    }
                }
            }
        }
    };
    let length_ms = event_param(
        &a.event_length_ms,
        defaults.length_ms,
        "event_length_ms",
        0.0,
        3.6e6,
        false,
    );
    let frequency = event_param(
        &a.event_frequency,
        defaults.frequency,
        "event_frequency",
        0.0,
        1.0,
        false,
    );
    let correlation = event_param(
        &a.correlation,
        defaults.correlation,
        "correlation",
        0.0,
        1.0,
        true,
    );
    let voting = match &a.voting {
        Some(v) => int_in_range(src, errors, v, "voting", 1, 16).map(|v| v as u32),
        None => Some(DEFAULT_VOTING),
    };
    let min_f1 = match &a.min_f1 {
        Some(v) => in_range(src, errors, v, "min_f1", 0.0, 1.0, true),
        None => Some(0.0),
    };
    if errors.len() != before {
        return None;
    }
    Some(App {
        name,
        camera: camera?,
        package: package?,
        event: AppEvents {
            length_ms: length_ms?,
            lengths: match &a.event_length_ms {
                Some(_) => EventLengths::default(),
                None => defaults.lengths,
            },
            frequency: frequency?,
            correlation: correlation?,
        },
        voting: voting?,
        min_f1: min_f1?,
        enabled: a.enabled.is_none_or(|e| e.into_inner()),
        origin: src.path.clone(),
    })
}

/// The first 12 hex digits of a SHA-256, for messages.
fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// True for files in the drop-in directory that are apps: `*.toml`, not
/// hidden, not editor or package-manager leftovers.
fn is_dropin(name: &str) -> bool {
    name.ends_with(".toml") && !name.starts_with('.') && name.len() > ".toml".len()
}

/// Lists the drop-in directory `dir` and validates every app file in it,
/// in name order, into `apps`.
#[allow(clippy::too_many_arguments)]
pub(super) fn load_dropins(
    main: &SourceFile,
    apps_dir_span: &Option<std::ops::Range<usize>>,
    dir: &Path,
    ctx: &AppContext<'_>,
    names: &mut HashSet<String>,
    apps: &mut Vec<App>,
    errors: &mut Diagnostics,
    warnings: &mut Diagnostics,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && apps_dir_span.is_none() => return,
        Err(e) => {
            match apps_dir_span {
                Some(span) => errors.at(
                    main,
                    span.clone(),
                    format!("apps_dir {}: {e}", dir.display()),
                ),
                None => errors.file(dir, format!("cannot list app drop-ins: {e}")),
            }
            return;
        }
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => {
                let name = e.file_name();
                match name.to_str() {
                    Some(n) if is_dropin(n) => files.push(e.path()),
                    Some(_) => {}
                    None => warnings.file(&e.path(), "ignored: file name is not UTF-8"),
                }
            }
            Err(e) => errors.file(dir, format!("cannot list app drop-ins: {e}")),
        }
    }
    files.sort();
    for path in files {
        let src = match read_source(&path) {
            Ok(s) => s,
            Err(msg) => {
                errors.file(&path, msg);
                continue;
            }
        };
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let raw = match toml::from_str::<Spanned<RawApp>>(src.text()) {
            Ok(r) => r,
            Err(e) => {
                errors.toml(&src, &e, 0..0);
                continue;
            }
        };
        let file_dir = path.parent().map(Path::to_owned).unwrap_or_default();
        let stem_ok = is_valid_name(&stem);
        if raw.get_ref().name.is_none() && !stem_ok {
            errors.file(
                &path,
                format!("the file name {stem:?} is not a valid app name; add `name = \"...\"`"),
            );
            continue;
        }
        if let Some(app) = validate_app(&src, &file_dir, raw, Some(&stem), ctx, names, errors) {
            apps.push(app);
        }
    }
}
