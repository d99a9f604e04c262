//! What one camera runs under a plan: its apps' stem tree and their rates
//! and X-voting, built from the configuration (the service and replay use it).

use super::AppRun;
use crate::config::Config;
use crate::error::{Result, ResultExt};
use crate::model::net::Base;
use crate::model::tree::{AppPlan as TreeApp, StemTree};
use crate::planner::Plan;
use std::path::PathBuf;

/// The work of one camera under a plan.
pub struct CameraWork {
    /// The tree (`None`: no apps on this camera).
    pub tree: Option<StemTree>,
    /// The tree's apps, in the tree's order.
    pub apps: Vec<AppRun>,
    /// What decides whether a re-plan must rebuild the tree.
    pub key: TreeKey,
}

/// The camera key that decides whether a re-plan must rebuild its tree.
pub(crate) type TreeKey = Vec<(String, usize, u64, u32, PathBuf)>;

/// The output indices of `package`'s positive classes (`labels`: the base's
/// own classes, for heads that keep them).
pub fn positive_outputs(
    app: &str,
    package: &crate::package::Package,
    labels: &[String],
) -> Result<Vec<usize>> {
    let classes = package.classes.as_deref().unwrap_or(labels);
    package
        .positive
        .iter()
        .map(|c| {
            classes.iter().position(|k| k == c).ok_or_else(|| {
                crate::err!(
                    Model,
                    "app {app}: positive class {c:?} is not among the package's classes"
                )
            })
        })
        .collect()
}

/// The work of camera `cam` under `plan`: its apps' tree (heads run on
/// `threads` threads) and what they need on the camera thread.
pub fn for_camera(
    cfg: &Config,
    base: &Base,
    plan: &Plan,
    cam: usize,
    threads: usize,
) -> Result<CameraWork> {
    let labels = base.manifest.load_labels()?;
    let mut tree_apps = Vec::new();
    let mut runs = Vec::new();
    let mut key = Vec::new();
    for p in &plan.apps {
        let Some(app) = cfg.apps.iter().find(|a| a.name == p.name && a.enabled) else {
            crate::bail!(Internal, "the plan names app {} the config lacks", p.name);
        };
        if app.camera != cam {
            continue;
        }
        let head = app
            .package
            .heads
            .iter()
            .find(|h| h.branch == p.branch)
            .ok_or_else(|| {
                crate::err!(
                    Internal,
                    "app {}: the plan picked branch point {}, which its package lacks",
                    p.name,
                    p.branch
                )
            })?;
        let positive = positive_outputs(&p.name, &app.package, &labels)?;
        tree_apps.push(TreeApp {
            name: p.name.clone(),
            branch: p.branch,
            stride: 1,
            head: head.model.clone(),
            positive,
        });
        runs.push(AppRun {
            name: p.name.clone(),
            voting: app.voting,
            fps: p.fps,
        });
        key.push((
            p.name.clone(),
            p.branch,
            p.fps.to_bits(),
            app.voting,
            app.package.dir.clone(),
        ));
    }
    let tree = if tree_apps.is_empty() {
        None
    } else {
        Some(
            StemTree::build_threaded(base, tree_apps, threads).with_msg(|| {
                format!("building the stem tree of camera {}", cfg.cameras[cam].name)
            })?,
        )
    };
    Ok(CameraWork {
        tree,
        apps: runs,
        key,
    })
}
