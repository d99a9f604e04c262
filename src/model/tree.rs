//! The M-Runner's tree: shared stem segments and per-app heads for one camera.
//!
//! For a plan (per app: branch point, stride), the distinct branch points
//! `b1 < b2 < ...` cut the base into a chain of stem segments
//! `[0, b1), [b1, b2), ...`; app *a* with branch point *b* hangs its head off
//! the segment ending at *b* (or off the frame itself when *b* = 0). Per frame
//! a segment runs only if some app at or below it is due, and each head only
//! when its own app is due (frame number divisible by its stride).
//!
//! Everything is allocated when the tree is built: the input tensor, tract's
//! plans and states, the per-app result slots. [`StemTree::run_frame`] itself
//! allocates nothing; tract allocates its activation tensors inside `exec`,
//! which `tests/alloc_runtime.rs` measures.

use super::net::{f32_slice, Base, Net};
use crate::error::Result;
use crate::package::HeadModel;
use std::sync::Arc;
use tract_onnx::prelude::{Tensor, TValue};

/// What one app contributes to a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct AppPlan {
    /// Name for logs.
    pub name: String,
    /// Branch point: the app shares base segments `[0, branch)`.
    pub branch: usize,
    /// Analyse every `stride`-th frame.
    pub stride: u32,
    /// The head's model at that branch point.
    pub head: HeadModel,
    /// Output indices that count as the app's event.
    pub positive: Vec<usize>,
}

/// One app's outcome for the last frame.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AppResult {
    /// Whether the app was due and ran on this frame.
    pub ran: bool,
    /// Whether its top-1 class is a positive class.
    pub positive: bool,
    /// Softmax probability of the most probable positive class.
    pub score: f32,
    /// Index of the top-1 class.
    pub top1: u32,
}

struct Segment {
    net: Net,
    /// Branch point where this segment ends.
    end: usize,
    /// Apps whose branch point is at or after `end`: the segment runs on a
    /// frame if any of them is due.
    apps_below: Vec<usize>,
}

struct Head {
    app: usize,
    net: Net,
    /// `None`: reads the frame input; `Some(i)`: reads segment `i`'s output.
    parent: Option<usize>,
}

/// The runnable tree for one camera.
pub struct StemTree {
    /// The preprocessed frame, `[1, 3, H, W]`. Kept (and refilled in place)
    /// across frames; see [`StemTree::fill_input`].
    input: Arc<Tensor>,
    segments: Vec<Segment>,
    heads: Vec<Head>,
    apps: Vec<AppPlan>,
    results: Vec<AppResult>,
    /// Per app, whether it is due on the current frame (reused).
    due: Vec<bool>,
    frame: u64,
}

impl StemTree {
    /// Builds the tree for `apps` from `base`.
    pub fn build(base: &Base, apps: Vec<AppPlan>) -> Result<StemTree> {
        let n = base.manifest.segments();
        for a in &apps {
            if a.branch >= n {
                crate::bail!(
                    InvalidConfig,
                    "app {}: branch point {} is past the last branch point {} of {}",
                    a.name,
                    a.branch,
                    n - 1,
                    base.manifest.name
                );
            }
            if a.stride == 0 {
                crate::bail!(InvalidConfig, "app {}: stride must be at least 1", a.name);
            }
        }
        let mut points: Vec<usize> = apps.iter().map(|a| a.branch).filter(|&b| b > 0).collect();
        points.sort_unstable();
        points.dedup();
        let mut segments = Vec::with_capacity(points.len());
        let mut start = 0;
        for &end in &points {
            let apps_below = (0..apps.len()).filter(|&i| apps[i].branch >= end).collect();
            segments.push(Segment {
                net: base.cut(start, end)?,
                end,
                apps_below,
            });
            start = end;
        }
        let mut heads = Vec::with_capacity(apps.len());
        for (i, a) in apps.iter().enumerate() {
            let parent = segments.iter().position(|s| s.end == a.branch);
            let shape = &base.manifest.points[a.branch].shape;
            let net = match &a.head {
                HeadModel::BaseRemainder => base.cut(a.branch, n)?,
                HeadModel::File { path, sha256 } => Net::load_head(path, sha256.as_deref(), shape)?,
            };
            if net.input_shape() != &shape[..] {
                crate::bail!(
                    Model,
                    "app {}: head {} takes {:?}, but branch point {} is {:?}",
                    a.name,
                    net.label(),
                    net.input_shape(),
                    a.branch,
                    shape
                );
            }
            let classes = net.output_shape().iter().product::<usize>();
            if let Some(&bad) = a.positive.iter().find(|&&p| p >= classes) {
                crate::bail!(Model, "app {}: positive class {bad} is past the head's {classes} outputs", a.name);
            }
            heads.push(Head { app: i, net, parent });
        }
        let input = Arc::new(Tensor::zero::<f32>(&base.manifest.input.shape).map_err(|e| {
            crate::err!(Model, "allocating the input tensor: {e:#}")
        })?);
        let n_apps = apps.len();
        Ok(StemTree {
            input,
            segments,
            heads,
            apps,
            results: vec![AppResult::default(); n_apps],
            due: vec![false; n_apps],
            frame: 0,
        })
    }

    /// Lets `fill` write the next frame into the input tensor (NCHW `f32`)
    /// before [`StemTree::run_frame`]; returns what `fill` returns.
    pub fn fill_input<R>(&mut self, fill: impl FnOnce(&mut [f32]) -> R) -> Result<R> {
        let tensor = Arc::get_mut(&mut self.input)
            .ok_or_else(|| crate::err!(Internal, "the input tensor is still shared after a frame"))?;
        let mut view = tensor
            .try_as_plain_ram_mut()
            .map_err(|e| crate::err!(Internal, "input tensor: {e:#}"))?;
        let data = view
            .as_slice_mut::<f32>()
            .map_err(|e| crate::err!(Internal, "input tensor: {e:#}"))?;
        Ok(fill(data))
    }

    /// Whether app `i` is due on frame `frame`.
    fn is_due(&self, i: usize, frame: u64) -> bool {
        frame % u64::from(self.apps[i].stride) == 0
    }

    /// Runs the tree on the current input as frame number `frame` (stream
    /// frames, counting from 0) and returns the per-app results.
    pub fn run_frame(&mut self, frame: u64) -> Result<&[AppResult]> {
        self.frame = frame;
        for i in 0..self.apps.len() {
            self.due[i] = self.is_due(i, frame);
            self.results[i] = AppResult::default();
        }
        let outcome = self.run_due();
        // Whatever happened, drop this frame's tensors so that the input is
        // uniquely owned again and the next frame starts clean.
        for s in &mut self.segments {
            s.net.reset()?;
        }
        for h in &mut self.heads {
            h.net.reset()?;
        }
        outcome?;
        Ok(&self.results)
    }

    fn run_due(&mut self) -> Result<()> {
        let input = TValue::from_const(Arc::clone(&self.input));
        // Segments form a chain; a segment runs if any app below it is due.
        let mut ran_to = 0;
        for i in 0..self.segments.len() {
            let needed = self.segments[i].apps_below.iter().any(|&a| self.due[a]);
            if !needed {
                break;
            }
            let value = if i == 0 {
                input.clone()
            } else {
                self.segments[i - 1].net.output()?.clone()
            };
            self.segments[i].net.run(value)?;
            ran_to = i + 1;
        }
        for h in 0..self.heads.len() {
            let app = self.heads[h].app;
            if !self.due[app] {
                continue;
            }
            let value = match self.heads[h].parent {
                None => input.clone(),
                Some(p) if p < ran_to => self.segments[p].net.output()?.clone(),
                Some(p) => crate::bail!(Internal, "segment {p} did not run but app {app} is due"),
            };
            let head = &mut self.heads[h].net;
            head.run(value)?;
            let scores = f32_slice(head.output()?)?;
            self.results[app] = decide(scores, &self.apps[app].positive);
        }
        Ok(())
    }

    /// The apps, in plan order.
    pub fn apps(&self) -> &[AppPlan] {
        &self.apps
    }

    /// Number of stem segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

/// Top-1 class, whether it is positive, and the best positive class's softmax probability.
fn decide(scores: &[f32], positive: &[usize]) -> AppResult {
    let mut top = 0usize;
    let mut max = f32::NEG_INFINITY;
    for (i, &s) in scores.iter().enumerate() {
        if s > max {
            max = s;
            top = i;
        }
    }
    let denom: f32 = scores.iter().map(|&s| (s - max).exp()).sum();
    let best_pos = positive
        .iter()
        .filter_map(|&p| scores.get(p).copied())
        .fold(f32::NEG_INFINITY, f32::max);
    AppResult {
        ran: true,
        positive: positive.contains(&top),
        score: if denom > 0.0 { (best_pos - max).exp() / denom } else { 0.0 },
        top1: top as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decide_reports_top1_membership_and_positive_probability() {
        let r = decide(&[0.0, 2.0, 1.0], &[2]);
        assert!(r.ran && !r.positive);
        assert_eq!(r.top1, 1);
        let p2 = 1f32.exp() / (1.0 + 2f32.exp() + 1f32.exp());
        assert!((r.score - p2).abs() < 1e-6);
        assert!(decide(&[0.0, 2.0, 1.0], &[1, 2]).positive);
    }
}
