//! Phase three: the model files a valid configuration names, verified the
//! way `run` will load them, so that `check` fails (and `run` exits 78 at
//! boot, before anything starts) where loading them would fail later.
//!
//! Phase two ([`super::load`]) only opens model files: it reads the base
//! manifest and every `package.toml`, and checks each head file is a regular
//! file within [`crate::files::MAX_MODEL_BYTES`]. This phase reads them:
//!
//! - the base manifest's class-name file (its line count);
//! - the base ONNX file's SHA-256 against the manifest (14 MB for the
//!   bundled MobileNetV2; not parsed: the hash pins the file the manifest
//!   was exported with);
//! - for every head of every package an app uses: its branch point exists
//!   in the base and names the base's tensor there; a head file's SHA-256
//!   (if the package records it), that tract parses it as ONNX and types it
//!   with its branch point's tensor shape as input; and that each positive
//!   class is one of the head's outputs.
//!
//! Problems are reported at the `model =` line of the head in
//! `package.toml`, at the base's files, and at the `base =` line that names
//! the base. A package only disabled apps use gets warnings, not errors: the
//! service does not load it.

use super::{base_named_here, Config, Diagnostics};
use crate::model::manifest::BaseManifest;
use crate::model::net::Net;
use crate::package::{HeadModel, Package};
use std::path::PathBuf;

/// Verifies the base network's files and the heads of every app's M-Package,
/// adding problems to `errors` (and, for packages only disabled apps use, to
/// `warnings`).
pub(crate) fn verify_models(cfg: &Config, errors: &mut Diagnostics, warnings: &mut Diagnostics) {
    let before = errors.len();
    let manifest = match BaseManifest::load(&cfg.device.base) {
        Ok(m) => m,
        Err(e) => {
            errors.file(
                &cfg.device.base,
                format!("base network manifest: {}", e.chain()),
            );
            base_named_here(&cfg.device, errors);
            return;
        }
    };
    let labels = match manifest.load_labels() {
        Ok(l) => Some(l),
        Err(e) => {
            let path = manifest.labels.as_ref().unwrap_or(&manifest.path);
            errors.file(path, e.chain().to_string());
            None
        }
    };
    if let Err(e) = crate::model::net::check_sha256(&manifest.onnx, &manifest.sha256) {
        errors.file(&manifest.onnx, e.chain().to_string());
    }
    if errors.len() != before {
        base_named_here(&cfg.device, errors);
    }
    // Each package once (several apps may share one), as an error if an
    // enabled app uses it.
    let mut packages: Vec<(PathBuf, &Package, bool)> = Vec::new();
    for a in &cfg.apps {
        match packages.iter_mut().find(|p| p.0 == a.package.dir) {
            Some(p) => p.2 |= a.enabled,
            None => packages.push((a.package.dir.clone(), &a.package, a.enabled)),
        }
    }
    for (_, pkg, enabled) in packages {
        let sink = if enabled {
            &mut *errors
        } else {
            &mut *warnings
        };
        verify_package(pkg, &manifest, labels.as_deref(), sink);
    }
}

/// Verifies the heads of one package against `base` (`labels`: the base's
/// class names, if they could be read).
pub(crate) fn verify_package(
    pkg: &Package,
    base: &BaseManifest,
    labels: Option<&[String]>,
    diags: &mut Diagnostics,
) {
    for h in &pkg.heads {
        let Some(point) = base
            .points
            .get(h.branch)
            .filter(|_| h.branch < base.segments())
        else {
            diags.at_position(
                &h.at,
                format!(
                    "branch {} is past the last branch point {} of base {}",
                    h.branch,
                    base.segments().saturating_sub(1),
                    base.name
                ),
            );
            continue;
        };
        if point.tensor != h.tensor {
            diags.at_position(
                &h.at,
                format!(
                    "the head at branch {} says it reads tensor {:?}, but branch point {} of base {} is {:?}: the package was cut from another base",
                    h.branch, h.tensor, h.branch, base.name, point.tensor
                ),
            );
            continue;
        }
        let outputs = match &h.model {
            HeadModel::BaseRemainder => Some(base.classes),
            HeadModel::File { path, sha256 } => {
                match Net::check_head(path, sha256.as_deref(), &point.shape) {
                    Ok(shape) => Some(shape.iter().product::<usize>()),
                    Err(e) => {
                        diags.at_position(
                            &h.at,
                            format!(
                                "head model for branch {} (input {:?}): {}",
                                h.branch,
                                point.shape,
                                e.chain()
                            ),
                        );
                        None
                    }
                }
            }
        };
        // The runtime maps positive classes to output indices by name.
        let (Some(outputs), Some(classes)) = (outputs, pkg.classes.as_deref().or(labels)) else {
            continue;
        };
        for p in &pkg.positive {
            match classes.iter().position(|c| c == p) {
                None => diags.at_position(
                    &h.at,
                    format!("positive class {p:?} is not one of the base network's classes"),
                ),
                Some(i) if i >= outputs => diags.at_position(
                    &h.at,
                    format!(
                        "positive class {p:?} is output {i}, but the head for branch {} has {outputs} outputs",
                        h.branch
                    ),
                ),
                Some(_) => {}
            }
        }
    }
}
