"""M-Trainer: builds M-Packages (per-app head models + metadata) and the demo clip.

    /usr/bin/python3 trainer/mtrainer.py [--apps birds,vehicles] [--out models] [--smoke]
    /usr/bin/python3 trainer/mtrainer.py train NAME --images DIR [--clips DIR] --out DIR

The second form makes an app from the user's own labelled photos and clips (ownapp.py,
`mtrainer.py train --help`); it feeds the same steps 2-7 below (`train_app`).

For every app (a category of trainer/apps.toml):

1. composites labelled train / val / test images (composite.py; split by footage time range
   and by object instance);
2. runs the frozen base once per image and keeps the tensor at every candidate branch point;
3. per branch point k (most frozen first): fine-tunes features[k:] + a new classifier with
   early stopping on the validation loss, measures per-frame top-1 accuracy on the validation
   split and accuracy and false-positive rate on the test split, exports the head to ONNX;
4. chooses the heads to keep on the validation split only (the test split decides nothing):
   makes the validation-accuracy curve monotone as the paper does (from the most frozen point
   on, a less frozen point that is not more accurate takes its more-frozen neighbour's value),
   keeps the heads that carry their own value (the Pareto frontier) and always the
   whole-network head (branch 0, the paper's No-Sharing configuration);
5. measures event length, event frequency and the inter-frame correlation of the kept heads'
   detections on labelled event streams (test footage and test objects crossing the scene);
6. checks every kept head in ONNX Runtime behind the real base ONNX (base tensor at k -> head)
   against PyTorch;
7. writes models/apps/<app>/{package.toml, head_bpNN.onnx, metrics.json}.

Then the demo clip models/demo/demo.mjpeg with its ground truth (held-out footage and
objects). See trainer/README.md.

`--reference N` also writes OUT/reference/<app>/ (base tensors, PyTorch's logits and fp32
twins of float16 heads for N test images; the CI smoke run's Rust test reads it).
`--eval-stream NAME --apps A,B,...` trains nothing and writes the long labelled evaluation
stream OUT/streams/NAME.mjpeg + NAME.ground_truth.toml with the events of those apps.
`--reselect --apps A,B,...` trains nothing either: it chooses the kept heads again (step 4)
from OUT/apps/<app>/metrics.json and the trained heads in WORK/heads/<app>/, measures step 5
on the new set in ONNX Runtime (base ONNX -> head ONNX, the stored functions) and rewrites the
package (for packages whose heads were chosen before step 4 used the validation split).
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

if __name__ == "__main__":
    import mallocenv

    mallocenv.reexec()  # before torch: glibc reads its malloc settings at process start

import numpy as np
import onnx
import torch

import basenet
import composite as C
import finetune as F

REPO = basenet.REPO
DEFAULT_RECIPE = REPO / "trainer" / "apps.toml"
DEFAULT_WORK = basenet.WORK / "mtrainer" / "build"
MANIFEST = basenet.MODEL_DIR / basenet.MANIFEST_NAME
# ONNX Runtime check: a head's logits may differ from PyTorch's by this much, relative to the
# largest logit magnitude (float32 rounding through up to 19 blocks).
ORT_TOLERANCE = 1e-4
# The CI smoke run: one app, tiny data, the whole-network head (input "input"), one inner
# branch point and the pooled features; every trained head is kept.
# (The reference outputs for tests/trainer_smoke.rs come from smoke.sh's `mtrainer.py train` run.)
SMOKE = {"apps": "birds", "sizes": "48,24,48", "points": "0,18,20", "max_epochs": 2, "reference": 0}
# The evaluation stream (--eval-stream): footage (every app must be allowed on it; vehicles
# only on vtest), crossings per app and per distractor category, crossings per pass over the
# footage's test range.
EVAL = {"footage": "vtest", "events": 9, "distractors": 2, "per_pass": 8}


class Progress:
    """Timestamped progress lines on stdout."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, msg: str) -> None:
        t = time.monotonic() - self.t0
        print(f"[{int(t // 60):3d}:{int(t % 60):02d}] {msg}", flush=True)


def load_manifest() -> dict:
    man = tomllib.loads(MANIFEST.read_text())
    onnx_path = basenet.MODEL_DIR / man["onnx"]
    if not onnx_path.is_file():
        raise SystemExit(f"{onnx_path} is missing: run `/usr/bin/python3 trainer/export_base.py`")
    got = basenet.sha256_file(onnx_path)
    if got != man["onnx_sha256"]:
        raise SystemExit(f"{onnx_path}: sha256 {got}, the manifest says {man['onnx_sha256']}")
    return man


def bp_info(man: dict, k: int) -> dict:
    bp = [b for b in man["branch_point"] if b["index"] == k]
    if len(bp) != 1 or bp[0]["role"] == "output":
        raise SystemExit(f"branch point {k} is not a branch point of the manifest")
    return bp[0]


def head_file(k: int) -> str:
    """The file name of the head at branch point k (in WORK/heads/<app>/ and the package)."""
    return f"head_bp{k:02d}.onnx"


def load_sources(recipe: C.Recipe, work: Path) -> tuple[C.Pools, dict, C.StampImages]:
    """Everything the compositor draws from: the object stamps by split and category, the
    footage frames (cached under WORK/cache) and the stamp image loader."""
    pools = C.Pools(C.catalogue(recipe))
    frames = {f: C.load_frames(fp, work / "cache") for f, fp in recipe.footage.items()}
    return pools, frames, C.StampImages()


# --------------------------------------------------------------------------------------------
# Curves


def monotone(curve: dict[int, dict], key: str = "val_accuracy") -> dict[int, dict]:
    """The paper's monotone curve (src/planner/paper.rs `monotone`) of `curve[k][key]`: from the
    most frozen point towards the least frozen, a point whose value is not above its
    more-frozen neighbour's (after that neighbour was made monotone) takes the neighbour's.
    `source` is the branch point whose head provides the value."""
    out: dict[int, dict] = {}
    deeper = None
    for k in sorted(curve, reverse=True):
        own = {key: curve[k][key], "source": k}
        if deeper is not None and own[key] <= deeper[key]:
            own = dict(deeper)
        out[k] = own
        deeper = own
    return dict(sorted(out.items()))


def kept_points(mono: dict[int, dict]) -> list[int]:
    """Branch points whose own head carries the monotone value: the Pareto frontier."""
    return sorted(k for k, v in mono.items() if v["source"] == k)


def fit_budget(
    frontier: list[int], curve: dict[int, dict], max_bytes: int, key: str = "val_accuracy"
) -> tuple[list[int], list[int]]:
    """Drops frontier heads until their files fit in `max_bytes`: each time the head with the
    smallest `key` gain over the next more-frozen kept head (the larger file on a tie). The
    most-frozen head and the whole-network head (branch 0) are never dropped. Returns (kept,
    dropped)."""
    kept = sorted(frontier)
    dropped = []
    while sum(curve[k]["onnx_bytes"] for k in kept) > max_bytes:
        victims = [k for k in kept if k not in (kept[-1], 0)]
        if not victims:
            break

        def gain(k: int) -> tuple[float, int]:
            deeper = min(x for x in kept if x > k)
            return (curve[k][key] - curve[deeper][key], -curve[k]["onnx_bytes"])

        victim = min(victims, key=gain)
        kept.remove(victim)
        dropped.append(victim)
    return kept, sorted(dropped)


def select_heads(
    curve: dict[int, dict], max_bytes: int, keep_all: bool
) -> tuple[dict[int, dict], list[int], list[int], list[int]]:
    """Step 4: the heads a package keeps, chosen on the validation split alone. Returns the
    monotone validation-accuracy curve, its Pareto frontier, the kept and the dropped points.
    Branch 0 (the whole network, nothing shared) is kept whenever it was trained: it is the
    No-Sharing configuration that the planner's baseline and its sharing margin start from."""
    mono = monotone(curve)
    frontier = kept_points(mono)
    if keep_all:
        return mono, frontier, sorted(curve), []
    kept, dropped = fit_budget(sorted(set(frontier) | ({0} & set(curve))), curve, max_bytes)
    return mono, frontier, kept, dropped


# --------------------------------------------------------------------------------------------
# Event parameters from labelled streams


def stream_to_toml(
    stream: C.Stream, clip: str, recipe: C.Recipe, apps: list[str], how: str, extra: list[str] = (),
    instance_of: dict[str, str] | None = None,
) -> str:
    """Ground-truth file of a labelled clip (format in models/README.md); `extra` lines go
    after `made`. `instance_of` maps each drawn stamp to its object instance (default: the
    recipe's catalogue)."""
    vis = recipe.data["visible"]
    x0, y0, x1, y1 = C.crop_window(*stream.size)
    fp = recipe.footage[stream.footage]
    lines = [
        f"# Ground truth of {clip}, generated by trainer/mtrainer.py; do not edit by hand.",
        "format = 1",
        f'clip = "{clip}"',
        f"fps = {stream.fps}",
        f"frames = {len(stream.jpegs)}",
        f"width = {stream.size[0]}",
        f"height = {stream.size[1]}",
        f'footage = "{fp.file.split("/")[-1]}"',
        f"footage_first_frame = {stream.first_frame}",
        f"visible = {vis}",
        f"crop = [{x0:.2f}, {y0:.2f}, {x1:.2f}, {y1:.2f}]",
        f"seed = {recipe.seed}",
        f'made = """{how}"""',
        *extra,
    ]
    for app in apps:
        cat = recipe.categories[app]
        spans = stream.spans(app, vis)
        lines += [
            "",
            "[[app]]",
            f'name = "{app}"',
            f'label = "{cat.label}"',
            "events = [" + ", ".join(f"[{a}, {b}]" for a, b in spans) + "]",
        ]
    if instance_of is None:
        instance_of = {s.key: s.instance for s in C.catalogue(recipe)}
    for i, t in enumerate(stream.tracks):
        on = np.nonzero(stream.visibility[i] >= vis)[0]
        lines += [
            "",
            "[[object]]",
            f'stamp = "{t.stamp}"',
            f'category = "{t.category}"',
            f'instance = "{instance_of[t.stamp]}"',
            f"on_screen = [{t.start}, {t.start + t.length - 1}]",
            "visible_frames = " + (f"[{int(on[0])}, {int(on[-1])}]" if len(on) else "[]"),
            f"max_visibility = {float(stream.visibility[i].max()):.3f}",
            f"occluded = {'true' if t.style.occluder is not None else 'false'}",
        ]
    return "\n".join(lines) + "\n"


def write_mjpeg(path: Path, stream: C.Stream) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        for j in stream.jpegs:
            f.write(j)
    tmp.rename(path)


@dataclass
class EventClip:
    """A labelled clip the kept heads are measured on (never trained on): the network's view of
    every frame, the event spans ([first, last] frames, inclusive), and the frames that are
    neither events nor clean negatives (an object partly in view; edges of a span)."""

    name: str
    fps: float
    views: np.ndarray  # uint8 [n, 224, 224, 3]
    spans: list[tuple[int, int]]
    ignore: np.ndarray  # bool [n]

    @property
    def frames(self) -> int:
        return len(self.views)


def event_parameters(clips: list[tuple[list[tuple[int, int]], int, float]], what: str) -> dict:
    """Event length (mean span, ms) and frequency (fraction of back-to-back windows of that
    length, tiling each clip, that overlap an event) from the ground truth of clips given as
    (spans, frames, fps)."""
    lengths, windows, hit_windows = [], 0, 0
    for spans, _, fps in clips:
        lengths += [(b - a + 1) / fps * 1000.0 for a, b in spans]
    if not lengths:
        raise SystemExit(f"{what}: the labelled clips hold no event")
    length_ms = float(np.mean(lengths))
    for spans, n, fps in clips:
        w = max(1, round(length_ms / 1000.0 * fps))
        for start in range(0, n - w + 1, w):
            windows += 1
            if any(a < start + w and start <= b for a, b in spans):
                hit_windows += 1
    return {
        "length_ms": length_ms,
        "frequency": hit_windows / max(windows, 1),
        "events": len(lengths),
        "lengths_ms": lengths,
        "windows": windows,
    }


def correlation_counts(hits: np.ndarray, spans: list[tuple[int, int]]) -> dict:
    """Counts inside event spans: frames, hits, and consecutive pairs (t, t+1) after a miss."""
    n = h = after_miss = miss_miss = 0
    for a, b in spans:
        seg = hits[a : b + 1]
        n += len(seg)
        h += int(seg.sum())
        prev_miss = ~seg[:-1]
        after_miss += int(prev_miss.sum())
        miss_miss += int((prev_miss & ~seg[1:]).sum())
    return {"frames": n, "hits": h, "pairs_after_miss": after_miss, "miss_after_miss": miss_miss}


def correlation_from(c: dict) -> float | None:
    """c from the model's cp = (1 - p) + p c, with p the per-frame hit rate inside events and cp
    the measured P(miss at t+1 | miss at t). None if there are no misses to measure it on."""
    if c["frames"] == 0 or c["pairs_after_miss"] == 0 or c["hits"] == 0:
        return None
    p = c["hits"] / c["frames"]
    cp = c["miss_after_miss"] / c["pairs_after_miss"]
    return float(min(1.0, max(0.0, (cp - (1.0 - p)) / p)))


# --------------------------------------------------------------------------------------------
# ONNX Runtime check

ORT_CHECK = r"""
import json, sys
import numpy as np
import onnxruntime as ort
base_path, spec_path, x_path, out_path = sys.argv[1:5]
spec = json.load(open(spec_path))
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
mk = lambda p: ort.InferenceSession(p, opts, providers=["CPUExecutionProvider"])
base = mk(base_path)
names = [o.name for o in base.get_outputs()]
heads = {h["tensor"] + "|" + h["model"]: mk(h["model"]) for h in spec}
x = np.load(x_path)
res = {key: [] for key in heads}
for i in range(len(x)):
    got = dict(zip(names, base.run(names, {"input": x[i : i + 1]})))
    got["input"] = x[i : i + 1]
    for h in spec:
        key = h["tensor"] + "|" + h["model"]
        res[key].append(heads[key].run(["scores"], {h["tensor"]: got[h["tensor"]]})[0][0])
np.savez(out_path, **{str(j): np.stack(res[h["tensor"] + "|" + h["model"]]) for j, h in enumerate(spec)})
print(ort.__version__)
"""


def base_with_outputs(man: dict, tensors: list[str], dest: Path) -> Path:
    """A copy of the base ONNX that also outputs the given branch-point tensors."""
    m = onnx.load(str(basenet.MODEL_DIR / man["onnx"]))
    shapes = {b["tensor"]: b["shape"] for b in man["branch_point"]}
    have = {o.name for o in m.graph.output}
    for t in tensors:
        if t != basenet.INPUT_NAME and t not in have:
            m.graph.output.append(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, shapes[t]))
    onnx.save(m, str(dest))
    return dest


def ort_scores(man: dict, heads: list[dict], x: np.ndarray, work: Path) -> tuple[list[np.ndarray], str]:
    """Runs the real base ONNX up to each head's tensor and the head ONNX after it in ONNX
    Runtime on the normalised images `x`; returns every head's scores (heads[i] -> [i]) and
    ONNX Runtime's version."""
    if not basenet.ORT_PYTHON.is_file():
        raise SystemExit(f"{basenet.ORT_PYTHON} is missing: run `bash trainer/setup.sh` first")
    work.mkdir(parents=True, exist_ok=True)
    base = base_with_outputs(man, sorted({h["tensor"] for h in heads}), work / "base_outputs.onnx")
    spec = work / "spec.json"
    spec.write_text(json.dumps([{"tensor": h["tensor"], "model": str(h["path"])} for h in heads]))
    np.save(work / "x.npy", x)
    proc = subprocess.run(
        [str(basenet.ORT_PYTHON), "-c", ORT_CHECK, str(base), str(spec), str(work / "x.npy"), str(work / "out.npz")],
        check=True,
        capture_output=True,
        text=True,
    )
    (work / "x.npy").unlink()
    with np.load(work / "out.npz") as z:
        return [z[str(j)] for j in range(len(heads))], proc.stdout.strip()


def ort_check(man: dict, heads: list[dict], x: np.ndarray, expected: list[np.ndarray], work: Path) -> list[dict]:
    """Compares the scores of ONNX Runtime (`ort_scores`) with PyTorch's (`expected[i]` for
    heads[i])."""
    got_all, version = ort_scores(man, heads, x, work)
    out = []
    for h, got, exp in zip(heads, got_all, expected):
        diff = float(np.abs(got - exp).max())
        scale = float(np.abs(exp).max())
        same_top1 = bool((got.argmax(1) == exp.argmax(1)).all())
        ok = diff <= ORT_TOLERANCE * max(scale, 1.0) and same_top1
        out.append({"model": h["path"].name, "max_abs_diff": diff, "max_abs_logit": scale,
                    "same_top1": same_top1, "ok": ok, "onnxruntime": version})
    return out


# --------------------------------------------------------------------------------------------
# Reference outputs for the Rust side (tests/trainer_smoke.rs)


def write_f32(path: Path, t) -> list[int]:
    """Raw little-endian float32, row-major (NCHW for images and feature maps); returns the
    shape."""
    arr = np.ascontiguousarray(t.numpy() if isinstance(t, torch.Tensor) else t, dtype="<f4")
    arr.tofile(path)
    return list(arr.shape)


def write_reference(
    dest: Path, app: str, label: str, images: np.ndarray, cached: dict, kept: list[int],
    curve: dict, stored: dict, unrounded: dict, package: str,
) -> None:
    """DEST/: what the Rust smoke test compares the runtime with, for len(images) test images:
    the base's input (`input.f32`), per kept head the base tensor at its branch point as PyTorch
    (folded base) computes it, PyTorch's logits of the head as stored, and for a head stored
    with float16 weights an fp32 twin (the same trained weights, not rounded, float32 file)
    with PyTorch's logits of those weights. Described by DEST/reference.toml."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    x = F.normalise(images)
    in_shape = write_f32(dest / "input.f32", x)
    lines = [
        f"# Reference outputs of trainer/mtrainer.py --reference for the app \"{app}\" (read by",
        "# tests/trainer_smoke.rs). Every .f32 file is raw little-endian float32, row-major, with",
        "# the shape given beside it; row i of every file belongs to test image i.",
        "format = 1",
        f'app = "{app}"',
        f'package = "{package}"  # relative to the output directory',
        f"classes = [\"other\", {json.dumps(label)}]",
        f"images = {len(images)}",
        'input = "input.f32"',
        f"input_shape = {in_shape}",
    ]
    for k in kept:
        c = curve[k]
        base_t = x if k == 0 else cached[k]
        bshape = write_f32(dest / f"bp{k:02d}.base.f32", base_t)
        inp = F.Inputs(k, cached.get(k), images if k == 0 else None)
        lshape = write_f32(dest / f"bp{k:02d}.logits.f32", F.logits_of(stored[k], inp))
        lines += [
            "",
            "[[head]]",
            f"branch = {k}",
            f'tensor = "{c["tensor"]}"',
            f'model = "{head_file(k)}"',
            f'weights = "{c["weights"]}"',
            f'base_tensor = "bp{k:02d}.base.f32"',
            f"base_shape = {bshape}",
            f'logits = "bp{k:02d}.logits.f32"',
            f"logits_shape = {lshape}",
        ]
        if c["weights"] == "float16":
            twin = dest / f"head_bp{k:02d}.fp32.onnx"
            bp_shape = [1, *bshape[1:]]
            F.export_head(unrounded[k], c["tensor"], bp_shape, twin, fp16=False)
            write_f32(dest / f"bp{k:02d}.fp32.logits.f32", F.logits_of(unrounded[k], inp))
            lines += [
                f'fp32_twin = "{twin.name}"',
                f'fp32_twin_sha256 = "{basenet.sha256_file(twin)}"',
                f'fp32_logits = "bp{k:02d}.fp32.logits.f32"',
            ]
    (dest / "reference.toml").write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------------
# One app


def fmt(x: float) -> str:
    return f"{x:.4f}"


@dataclass
class PackageMeta:
    """What package.toml says about an app besides its heads."""

    name: str
    label: str
    description: str
    # Comment lines: where the heads' accuracy / FPR and the [event] values were measured.
    measured_on: str
    event_how: str


@dataclass
class AppData:
    """Everything one app is trained and measured on, from any source (the recipe's composites,
    the user's photos and clips): labelled 224x224 views per split, and the labelled clips the
    kept heads' event behaviour is measured on (never trained on)."""

    meta: PackageMeta
    images: dict[str, np.ndarray]  # split -> uint8 [n, 224, 224, 3]
    labels: dict[str, np.ndarray]  # split -> int64 [n], 1 = the app's event
    clips: list[EventClip]
    # event_parameters() of the labelled clips, or None: `assumed` is written instead.
    event: dict | None
    assumed: dict  # length_ms, frequency, correlation: used where nothing was measured
    extra: dict = field(default_factory=dict)  # into metrics.json
    feature_cache: Path | None = None


def write_package(dest: Path, meta: PackageMeta, man: dict, heads: list[dict], event: dict) -> None:
    lines = [
        f"# M-Package for the app \"{meta.name}\", generated by trainer/mtrainer.py; do not edit by",
        "# hand. Format: models/README.md, \"M-Package format\". Every candidate branch point's",
        "# measurements (before and after the monotone step) are in metrics.json.",
        f"# accuracy / fpr: {meta.measured_on}",
        "format = 1",
        f'name = "{meta.name}"',
        f"description = {json.dumps(meta.description)}",
        f'base_sha256 = "{man["onnx_sha256"]}"',
        f"classes = [\"other\", {json.dumps(meta.label)}]",
        f"positive = [{json.dumps(meta.label)}]",
        "",
        *[f"# {ln}" for ln in meta.event_how.splitlines()],
        "[event]",
        f"length_ms = {event['length_ms']:.1f}",
        f"frequency = {fmt(event['frequency'])}",
        f"correlation = {fmt(event['correlation'])}",
    ]
    if event.get("assumed"):
        lines.append("assumed = true")
    for h in sorted(heads, key=lambda h: h["branch"]):
        lines += [
            "",
            "[[head]]",
            f"branch = {h['branch']}",
            f'tensor = "{h["tensor"]}"',
            f'model = "{h["model"]}"',
            f'sha256 = "{h["sha256"]}"',
            f"accuracy = {fmt(h['accuracy'])}",
            f"fpr = {fmt(h['fpr'])}",
        ]
    (dest / "package.toml").write_text("\n".join(lines) + "\n")


def stage_package(
    pkg: Path, meta: PackageMeta, man: dict, heads_dir: Path, curve: dict[int, dict],
    kept: list[int], event: dict,
) -> None:
    """Writes the kept heads from HEADS_DIR and their package.toml into the directory PKG."""
    pkg.mkdir(parents=True, exist_ok=True)
    heads = []
    for k in kept:
        name = head_file(k)
        shutil.copyfile(heads_dir / name, pkg / name)
        heads.append({
            "branch": k,
            "tensor": curve[k]["tensor"],
            "model": name,
            "sha256": basenet.sha256_file(pkg / name),
            "accuracy": curve[k]["accuracy"],
            "fpr": curve[k]["fpr"],
        })
    write_package(pkg, meta, man, heads, event)


def partial_dir(dest: Path) -> Path:
    """Where a package is assembled before it replaces DEST (same file system: a rename)."""
    p = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    if p.exists():
        shutil.rmtree(p)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return p


def replace_dir(new: Path, dest: Path) -> None:
    """Makes the complete directory NEW appear at DEST: one renameat2(RENAME_EXCHANGE) when DEST
    exists (readers see the old or the new package, never a mix or nothing), a rename when it
    does not; the old package is deleted afterwards."""
    if not dest.exists():
        new.rename(dest)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, rename_exchange = -100, 2
    fn = getattr(libc, "renameat2", None)
    if fn is not None and fn(at_fdcwd, str(new).encode(), at_fdcwd, str(dest).encode(), rename_exchange) == 0:
        shutil.rmtree(new)  # now holds the old package
        return
    old = dest.parent / f".{dest.name}.old-{os.getpid()}"
    dest.rename(old)
    new.rename(dest)
    shutil.rmtree(old)


def install_dir(dest: Path, fill) -> None:
    """A package directory appears complete or not at all: `fill(dir)` writes it in a new
    directory beside DEST, which then replaces DEST (replace_dir). If `fill` fails, DEST is
    as it was and the partial directory is gone."""
    new = partial_dir(dest)
    try:
        new.mkdir()
        fill(new)
        replace_dir(new, dest)
    finally:
        if new.exists():
            shutil.rmtree(new)


def clip_statistics(clips: list[EventClip], hits_of) -> tuple[dict, dict]:
    """Each kept head's hit rate, false-positive rate and inter-frame correlation on the labelled
    clips. `hits_of(views)` gives every kept head's per-frame positive decisions. Returns
    (pooled counts over the heads, per-head counts)."""
    pooled = {"frames": 0, "hits": 0, "pairs_after_miss": 0, "miss_after_miss": 0}
    per_head = {}
    for clip in clips:
        in_event = np.zeros(clip.frames, bool)
        for a, b in clip.spans:
            in_event[a : b + 1] = True
        neg = ~in_event & ~clip.ignore
        for k, hits in sorted(hits_of(clip.views).items()):
            cc = correlation_counts(hits, clip.spans)
            d = per_head.setdefault(k, {"frames": 0, "hits": 0, "pairs_after_miss": 0,
                                        "miss_after_miss": 0, "neg_frames": 0, "false_pos": 0})
            for key in cc:
                d[key] += cc[key]
                pooled[key] += cc[key]
            d["neg_frames"] += int(neg.sum())
            d["false_pos"] += int((hits & neg).sum())
    for d in per_head.values():
        d["hit_rate"] = d["hits"] / max(d["frames"], 1)
        d["fp_rate"] = d["false_pos"] / max(d["neg_frames"], 1)
        d["correlation"] = correlation_from(d)
    return pooled, per_head


def measured_event(data: AppData, hits_of, log: Progress, calibrated_later: bool = False) -> tuple[dict, dict]:
    """Step 5: the package's [event] values and the per-head statistics on the labelled clips.
    Length and frequency come from the ground truth, the correlation from the kept heads'
    misses inside events; whatever cannot be measured is `data.assumed`'s value, and says so.
    `calibrated_later`: `mainstream calibrate` runs on the same held-out frames before the
    package is installed and measures all of it (calibration.toml, which the planner reads
    first), so the kept heads are not run over them here a second time."""
    name = data.meta.name
    if data.event is None:
        ev = {k: float(data.assumed[k]) for k in ("length_ms", "frequency", "correlation")}
        ev.update(assumed=True, correlation_how="assumed (no labelled clip)")
        log(f"{name}: WARNING no labelled clip: event length {ev['length_ms']:.0f} ms, frequency "
            f"{ev['frequency']:.3f}, correlation {ev['correlation']:.3f} are assumed, not measured; "
            f"the planner's F1 predictions for this app are guesses until it is calibrated on a "
            f"labelled clip of its camera (mainstream calibrate)")
        return ev, {}
    ev = dict(data.event)
    per_head: dict = {}
    c = None
    if data.clips and calibrated_later:
        c = float(data.assumed["correlation"])
        ev["correlation_how"] = ("measured by mainstream calibrate on the held-out frames (calibration.toml); "
                                 "this assumed value is used only where it cannot be measured there")
        log(f"{name}: events {ev['events']}, length {ev['length_ms']:.0f} ms, frequency "
            f"{ev['frequency']:.3f}; the correlation and the heads' rates on the "
            f"{sum(cl.frames for cl in data.clips)} held-out frames are measured by mainstream calibrate")
        ev["correlation"] = c
        return ev, per_head
    if data.clips:
        log(f"{name}: measuring the kept heads on {len(data.clips)} held-out labelled clip(s), "
            f"{sum(cl.frames for cl in data.clips)} frames")
        pooled, per_head = clip_statistics(data.clips, hits_of)
        c = correlation_from(pooled)
    if c is None:
        c = float(data.assumed["correlation"])
        why = "no held-out clip" if not data.clips else "no missed frames inside events to measure it on"
        ev["correlation_how"] = f"assumed ({why})"
    else:
        ev["correlation_how"] = "measured, pooled over the kept heads"
    ev["correlation"] = c
    log(f"{name}: events {ev['events']}, length {ev['length_ms']:.0f} ms, frequency "
        f"{ev['frequency']:.3f}, correlation {c:.3f} ({ev['correlation_how']})")
    return ev, per_head


class Eta:
    """Time left for training: each branch point's work is its MACs after the point times its
    maximum epochs times the training images; the seconds per unit of the point being trained
    (or, before its first epoch, of all points so far) give the rest. An upper bound: early
    stopping ends points sooner."""

    def __init__(self, man: dict, points: list[int], tcfg: dict, n_train: int) -> None:
        macs = {b["index"]: b.get("macs_to_here", 0) for b in man["branch_point"]}
        total = man["total_macs"]

        def cost(k: int) -> float:
            after = total - macs.get(k, total) if k < F.POOL else 0
            return max(after, 0.01 * total) * n_train

        self.cost = {k: cost(k) for k in points}
        self.epochs = {k: tcfg["linear_max_epochs"] if k >= F.N_FEATURES else tcfg["max_epochs"]
                       for k in points}
        self.todo = sorted(points, reverse=True)
        self.done_units = 0.0
        self.seconds = 0.0
        self.point_start = time.monotonic()
        self.point_units = 0.0

    def start(self, k: int) -> None:
        self.point_start = time.monotonic()
        self.point_units = 0.0

    def epoch(self, k: int, seconds: float) -> None:
        self.done_units += self.cost[k]
        self.point_units += self.cost[k]
        self.seconds = seconds

    def finish(self, k: int, epochs: int, seconds: float) -> None:
        self.done_units += self.cost[k] * epochs - self.point_units
        self.seconds = seconds
        self.todo.remove(k)

    def left(self, k: int, epochs_done: int) -> str:
        if self.point_units > 0:
            rate = (time.monotonic() - self.point_start) / self.point_units
        elif self.done_units > 0:
            rate = self.seconds / self.done_units
        else:
            return "estimating the time left"
        later = [j for j in self.todo if j < k]
        units = self.cost[k] * (self.epochs[k] - epochs_done) + sum(self.cost[j] * self.epochs[j] for j in later)
        t = rate * units
        return f"at most {int(t // 60)}:{int(t % 60):02d} of training left"


def train_app(
    data: AppData,
    man: dict,
    base: torch.nn.Module,
    dest: Path,
    work: Path,
    points: list[int],
    tcfg: dict,
    pkgcfg: dict,
    keep_all: bool,
    log: Progress,
    reference_dir: Path | None = None,
    reference: int = 0,
    before_install=None,
    calibrated_later: bool = False,
) -> dict:
    """Steps 2-7 for one app, whatever the data's source: caches the frozen prefix, trains a
    head per branch point, chooses the kept heads on the validation split, measures the event
    parameters on the held-out clips, checks the kept heads in ONNX Runtime, and writes the
    package DEST (assembled beside it, then renamed into place; `before_install(dir, metrics)`
    runs on the assembled directory first, e.g. `mainstream calibrate`; with
    `calibrated_later` it does, on data.clips, and measured_event leaves that to it)."""
    t_app = time.monotonic()
    name = data.meta.name
    sizes = {s: len(data.labels[s]) for s in C.SPLITS}
    for s in C.SPLITS:
        if len(data.labels[s]) == 0:
            raise SystemExit(f"{name}: the {s} split is empty")
    ys = {s: torch.from_numpy(data.labels[s].astype(np.int64)) for s in C.SPLITS}
    log(f"{name}: caching the frozen prefix at branch points {points} for "
        + ", ".join(f"{sizes[s]} {s}" for s in C.SPLITS) + " images"
        + (f" (cache {data.feature_cache})" if data.feature_cache else ""))
    cached = {}
    computed = 0
    for s in C.SPLITS:
        t_s = time.monotonic()

        def prog(i, n, s=s, t_s=t_s):
            if i == n or i % 320 == 0:
                dt = time.monotonic() - t_s
                log(f"{name}: base tensors {s} {i}/{n} ({dt:.0f} s"
                    + (f", about {dt / i * (n - i):.0f} s left)" if i < n else ")"))

        cached[s], c = F.capture_cached(base, data.images[s], points, data.feature_cache, progress=prog)
        computed += c
    if data.feature_cache:
        log(f"{name}: computed the base tensors of {computed} images, {sum(sizes.values()) - computed} "
            f"came from the cache")
    t_data = time.monotonic() - t_app

    stage = work / "heads" / name
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    curve: dict[int, dict] = {}
    models: dict[int, F.HeadNet] = {}
    trained: dict[int, F.HeadNet] = {}
    mode = tcfg["warm_start"]
    if mode not in ("none", "linear", "previous"):
        raise SystemExit(f"[train] warm_start must be none, linear or previous, not {mode!r}")
    eta = Eta(man, points, tcfg, sizes["train"])
    t_train = time.monotonic()
    for k in sorted(points, reverse=True):
        bp = bp_info(man, k)
        inputs = {
            s: F.Inputs(k, cached[s].get(k), data.images[s] if k == 0 else None) for s in C.SPLITS
        }
        init = None
        if mode == "linear" and k < F.POOL and F.POOL in trained:
            init = trained[F.POOL]
        elif mode == "previous" and trained:
            init = trained[min(trained)]
        log(f"{name} bp{k:02d} ({bp['tensor']}): training {bp['feature_params_after']:,} + classifier "
            f"parameters" + (f", starting from bp{init.k:02d}'s classifier" if init is not None else ""))
        epochs_seen = [0]
        eta.start(k)

        def epoch_log(m: str, k=k, epochs_seen=epochs_seen) -> None:
            if m.startswith("epoch "):
                epochs_seen[0] += 1
                eta.epoch(k, time.monotonic() - t_train)
                m += f"; {eta.left(k, epochs_seen[0])}"
            log(f"{name} bp{k:02d} {m}")

        res = F.train_head(
            base, k, inputs["train"], ys["train"], inputs["val"], ys["val"], tcfg,
            seed=C.stable_int(tcfg.get("seed", 0), "train", name, k) % (2**31), init=init,
            init_is_candidate=mode == "previous", log=epoch_log,
        )
        eta.finish(k, res.epochs, time.monotonic() - t_train)
        trained[k] = res.model
        n_par = F.n_params(res.model)
        fp16 = 4 * n_par > pkgcfg["fp16_above_bytes"]
        model = res.model
        if fp16:
            # Measure the function that is stored: float32 arithmetic on float16 weights.
            model = copy.deepcopy(res.model)
            F.round_to_fp16(model)
        sc = F.scores(F.logits_of(model, inputs["test"]), ys["test"])
        val_sc = F.scores(F.logits_of(model, inputs["val"]), ys["val"])
        path = stage / head_file(k)
        F.export_head(model, bp["tensor"], bp["shape"], path, fp16=fp16)
        models[k] = model
        curve[k] = {
            "branch": k,
            "tensor": bp["tensor"],
            "accuracy": sc.accuracy,
            "fpr": sc.fpr,
            "tpr": sc.tpr,
            "test_images": sc.n,
            "test_positives": sc.n_pos,
            "val_accuracy": val_sc.accuracy,
            "val_loss": res.val_loss,
            "epochs": res.epochs,
            "best_epoch": res.best_epoch,
            "warm_start_from": init.k if init is not None else None,
            "train_seconds": round(res.seconds, 1),
            "params": n_par,
            "weights": "float16" if fp16 else "float32",
            "onnx_bytes": path.stat().st_size,
            "history": res.history,
        }
        log(
            f"{name} bp{k:02d}: test accuracy {sc.accuracy:.4f}, FPR {sc.fpr:.4f}, TPR {sc.tpr:.4f} "
            f"(best epoch {res.best_epoch}/{res.epochs}, {res.seconds:.0f} s, "
            f"{path.stat().st_size / 1e6:.2f} MB {'fp16' if fp16 else 'fp32'})"
        )
    mono, frontier, kept, dropped = select_heads(curve, pkgcfg["max_bytes"], keep_all)
    log(f"{name}: Pareto frontier (validation accuracy) {frontier} of {sorted(points)}; kept {kept}"
        + (f" (dropped {dropped} to stay within {pkgcfg['max_bytes'] / 1e6:.1f} MB)" if dropped else ""))

    def torch_hits(views: np.ndarray) -> dict[int, np.ndarray]:
        out = {k: [] for k in kept}
        for i in range(0, len(views), 256):
            v = views[i : i + 256]
            caps = F.capture(base, v, kept)
            for k in kept:
                inp = F.Inputs(k, caps.get(k), v if k == 0 else None)
                out[k].append((F.logits_of(models[k], inp).argmax(1) == 1).numpy())
        return {k: np.concatenate(v) for k, v in out.items()}

    ev, per_head_stream = measured_event(data, torch_hits, log, calibrated_later)

    # ONNX Runtime: real base ONNX -> head ONNX, against PyTorch.
    n_chk = min(8, sizes["test"])
    idx = np.linspace(0, sizes["test"] - 1, n_chk).round().astype(int)
    x = F.normalise(data.images["test"][idx]).numpy()
    expected = []
    for k in kept:
        inp = F.Inputs(k, cached["test"][k][idx] if k > 0 else None, data.images["test"][idx] if k == 0 else None)
        expected.append(F.logits_of(models[k], inp).numpy())
    checks = ort_check(
        man,
        [{"tensor": curve[k]["tensor"], "path": stage / head_file(k)} for k in kept],
        x, expected, work / "ort" / name,
    )
    for chk in checks:
        log(f"{name}: onnxruntime {chk['model']}: max |diff| {chk['max_abs_diff']:.2e} "
            f"(logits up to {chk['max_abs_logit']:.1f}), same top-1: {chk['same_top1']}")
        if not chk["ok"]:
            raise SystemExit(f"{name}: {chk['model']} disagrees with PyTorch in ONNX Runtime")

    metrics = {
        "app": name,
        "label": data.meta.label,
        **data.extra,
        "sizes": sizes,
        "positives": {s: int(data.labels[s].sum()) for s in C.SPLITS},
        "train_settings": tcfg,
        "curve": [dict(curve[k]) for k in sorted(curve)],
        "monotone": [{"branch": k, **mono[k]} for k in sorted(mono)],
        "frontier": frontier,
        "kept": kept,
        "dropped_for_size": dropped,
        "event": ev,
        "stream_heads": {str(k): v for k, v in sorted(per_head_stream.items())},
        "onnxruntime_check": checks,
        "data_seconds": round(t_data, 1),
        "seconds": round(time.monotonic() - t_app, 1),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }

    def fill(new: Path) -> None:
        stage_package(new, data.meta, man, stage, curve, kept, ev)
        (new / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
        if reference > 0 and reference_dir is not None:
            n_ref = min(reference, sizes["test"])
            ridx = np.linspace(0, sizes["test"] - 1, n_ref).round().astype(int)
            write_reference(reference_dir, name, data.meta.label, data.images["test"][ridx],
                            {k: cached["test"][k][ridx] for k in kept if k > 0}, kept, curve,
                            models, trained, os.path.relpath(dest, reference_dir.parent.parent))
            log(f"{name}: reference outputs of {n_ref} test images in {reference_dir}")
        if before_install is not None:
            before_install(new, metrics)

    install_dir(dest, fill)
    size = sum(p.stat().st_size for p in dest.iterdir())
    log(f"{name}: wrote {dest} ({size / 1e6:.2f} MB) in {time.monotonic() - t_app:.0f} s")
    return metrics


# --------------------------------------------------------------------------------------------
# The recipe's data (Tux Paint photos composited into footage): one source for train_app


def recipe_meta(recipe: C.Recipe, app: str) -> PackageMeta:
    cat = recipe.categories[app]
    return PackageMeta(
        name=app, label=cat.label, description=cat.description,
        measured_on="the recipe's test split (composited images of test footage and objects)",
        event_how=("Measured on labelled event streams (test footage and test objects crossing the\n"
                   "scene): mean event length, fraction of event-length windows holding an event, and\n"
                   "the inter-frame correlation of the kept heads' detections inside events."),
    )


def recipe_clips(
    recipe: C.Recipe, app: str, pools: C.Pools, frames: dict, stamps: C.StampImages, work: Path,
    log: Progress,
) -> list[EventClip]:
    """The app's labelled event streams (test footage range, test-split objects), written to
    WORK/streams/<app>/, as EventClips: frames where an app object is partly visible are neither
    events nor clean negatives."""
    log(f"{app}: labelled event streams")
    vis = recipe.data["visible"]
    streams = C.app_streams(recipe, app, pools, frames, stamps)
    sdir = work / "streams" / app
    sdir.mkdir(parents=True, exist_ok=True)
    out = []
    for s in streams:
        name = f"{app}_{s.footage}"
        write_mjpeg(sdir / f"{name}.mjpeg", s)
        how = (f"trainer/composite.py app_streams: {s.footage} test range with test-split objects "
               f"of {app} and of other categories crossing the scene")
        (sdir / f"{name}.toml").write_text(stream_to_toml(s, f"{name}.mjpeg", recipe, [app], how))
        partial = np.zeros(len(s.jpegs), bool)
        for i, t in enumerate(s.tracks):
            if t.category == app:
                partial |= (s.visibility[i] > 0) & (s.visibility[i] < vis)
        views = np.stack([C.network_view(C.decode_jpeg(j)) for j in s.jpegs])
        out.append(EventClip(name, s.fps, views, s.spans(app, vis), partial))
    return out


def recipe_assumed(recipe: C.Recipe) -> dict:
    return {"length_ms": None, "frequency": None, "correlation": recipe.streams["default_correlation"]}


def recipe_app_data(
    recipe: C.Recipe, app: str, pools: C.Pools, frames: dict, stamps: C.StampImages,
    sizes: dict[str, int], work: Path, log: Progress,
) -> AppData:
    cat = recipe.categories[app]
    log(f"{app}: compositing {sizes['train']} / {sizes['val']} / {sizes['test']} images")
    sets = {s: C.make_images(recipe, app, s, sizes[s], pools, frames, stamps) for s in C.SPLITS}
    clips = recipe_clips(recipe, app, pools, frames, stamps, work, log)
    return AppData(
        meta=recipe_meta(recipe, app),
        images={s: sets[s].images for s in C.SPLITS},
        labels={s: sets[s].labels for s in C.SPLITS},
        clips=clips,
        event=event_parameters([(c.spans, c.frames, c.fps) for c in clips], app),
        assumed=recipe_assumed(recipe),
        extra={
            "source": "recipe",
            "recipe_sha256": recipe.sha256,
            "seed": recipe.seed,
            "instances": {s: sorted({st.instance for st in pools.by.get((s, app), [])}) for s in C.SPLITS},
            "footage": {f: recipe.footage[f].ranges for f in cat.footage},
        },
    )


def build_app(
    recipe: C.Recipe, app: str, man: dict, base: torch.nn.Module, pools: C.Pools, frames: dict,
    stamps: C.StampImages, out_dir: Path, work: Path, sizes: dict[str, int], points: list[int],
    tcfg: dict, keep_all: bool, log: Progress, reference: int = 0,
) -> dict:
    """A recipe app: its composited data through train_app into OUT/apps/<app>/."""
    data = recipe_app_data(recipe, app, pools, frames, stamps, sizes, work, log)
    return train_app(data, man, base, out_dir / "apps" / app, work, points,
                     {**tcfg, "seed": recipe.seed}, recipe.package, keep_all, log,
                     reference_dir=out_dir / "reference" / app, reference=reference)


def reselect_app(
    recipe: C.Recipe, app: str, man: dict, pools: C.Pools, frames: dict, stamps: C.StampImages,
    out_dir: Path, work: Path, log: Progress,
) -> dict:
    """`--reselect`: step 4 again on OUT/apps/<app>/metrics.json's curve with the trained heads
    in WORK/heads/<app>/, step 5 on the new set in ONNX Runtime, and the package rewritten.
    Trains nothing: every candidate head was exported when it was trained."""
    t0 = time.monotonic()
    dest = out_dir / "apps" / app
    mpath = dest / "metrics.json"
    if not mpath.is_file():
        raise SystemExit(f"{mpath} is missing: --reselect rewrites a package this trainer built")
    old = json.loads(mpath.read_text())
    curve = {c["branch"]: c for c in old["curve"]}
    stage = work / "heads" / app
    for k, c in sorted(curve.items()):
        head = stage / head_file(k)
        if not head.is_file():
            raise SystemExit(f"{head} is missing: --reselect needs every trained head of {mpath}")
        if "val_accuracy" not in c:
            raise SystemExit(f"{mpath}: branch {k} has no val_accuracy; train the app again")
    for k in old["kept"]:
        name = head_file(k)
        if basenet.sha256_file(stage / name) != basenet.sha256_file(dest / name):
            raise SystemExit(f"{stage / name} differs from {dest / name}: the trained heads in "
                             f"{stage} are not the ones {mpath} measured; train the app again")
    mono, frontier, kept, dropped = select_heads(curve, recipe.package["max_bytes"], keep_all=False)
    log(f"{app}: Pareto frontier (validation accuracy) {frontier}; kept {kept} (was {old['kept']})"
        + (f"; dropped {dropped} to stay within {recipe.package['max_bytes'] / 1e6:.1f} MB" if dropped else ""))

    def ort_hits(views: np.ndarray) -> dict[int, np.ndarray]:
        heads = [{"tensor": curve[k]["tensor"], "path": stage / head_file(k)} for k in kept]
        scores, _ = ort_scores(man, heads, F.normalise(views).numpy(), work / "ort" / app)
        return {k: sc.argmax(1) == 1 for k, sc in zip(kept, scores)}

    clips = recipe_clips(recipe, app, pools, frames, stamps, work, log)
    data = AppData(recipe_meta(recipe, app), {}, {}, clips,
                   event_parameters([(c.spans, c.frames, c.fps) for c in clips], app), recipe_assumed(recipe))
    ev, per_head_stream = measured_event(data, ort_hits, log)
    ev["correlation_how"] += " (ONNX Runtime, --reselect)"
    checked = {c["model"] for c in old["onnxruntime_check"]}
    kept_files = {head_file(k) for k in kept}
    metrics = {
        **old,
        "monotone": [{"branch": k, **mono[k]} for k in sorted(mono)],
        "frontier": frontier,
        "kept": kept,
        "dropped_for_size": dropped,
        "event": ev,
        "stream_heads": {str(k): v for k, v in sorted(per_head_stream.items())},
        "onnxruntime_check": [c for c in old["onnxruntime_check"] if c["model"] in kept_files],
        "reselected": {
            "previously_kept": old["kept"],
            "not_checked_against_pytorch": [k for k in kept if head_file(k) not in checked],
            "seconds": round(time.monotonic() - t0, 1),
        },
    }
    def fill(new: Path) -> None:
        # A calibration.toml of the old package is not carried over: its head set may be gone.
        stage_package(new, recipe_meta(recipe, app), man, stage, curve, kept, ev)
        (new / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")

    install_dir(dest, fill)
    log(f"{app}: rewrote {dest} in {time.monotonic() - t0:.0f} s; calibrate it again")
    return metrics


def build_demo(recipe, apps, pools, frames, stamps, out_dir: Path, log: Progress) -> None:
    demo = C.demo_stream(recipe, apps, pools, frames, stamps)
    dest = out_dir / "demo"
    dest.mkdir(parents=True, exist_ok=True)
    for app in apps:
        if not demo.spans(app, recipe.data["visible"]):
            raise SystemExit(f"demo clip: no event of {app} (lengthen the clip or shorten events)")
    write_mjpeg(dest / "demo.mjpeg", demo)
    fp = recipe.footage[demo.footage]
    a, b = fp.ranges["test"]
    how = (
        f"trainer/mtrainer.py (composite.demo_stream): {fp.file.split('/')[-1]} frames {a}..{b - 1} "
        f"(the trainer's test range, never used for training), downscaled to "
        f"{fp.size[0]}x{fp.size[1]}, with Tux Paint photo cut-outs of test-split objects (never used "
        f"for training) crossing the scene; JPEG quality {recipe.demo['jpeg_quality']}. An event "
        f"frame is one in which at least {recipe.data['visible']} of an object's area is inside the "
        f"runtime's 224x224 centre crop and not covered."
    )
    (dest / "ground_truth.toml").write_text(stream_to_toml(demo, "demo.mjpeg", recipe, apps, how))
    size = (dest / "demo.mjpeg").stat().st_size
    log(f"demo clip: {len(demo.jpegs)} frames, {len(demo.tracks)} objects, {size / 1e6:.2f} MB")


def build_eval_stream(
    recipe: C.Recipe, name: str, apps: list[str], cfg: dict, pools, frames, stamps, out_dir: Path,
    log: Progress,
) -> dict:
    """The long labelled evaluation stream OUT/streams/NAME.mjpeg + NAME.ground_truth.toml:
    every app's objects of `cfg["split"]` (`cfg["events"]` crossings each) and objects of every
    category that is not an app (`cfg["distractors"]` crossings each) over the footage's range of
    that split, played as often as needed (composite.eval_stream). The test split makes the
    evaluation stream; the val split the calibration stream (`mainstream calibrate`)."""
    split = cfg["split"]
    footage = cfg["footage"]
    fp = recipe.footage[footage]
    distractors = [c for c in recipe.categories if c not in apps and footage in recipe.categories[c].footage]
    stream, passes = C.eval_stream(
        recipe, apps, footage, cfg["events"], distractors, cfg["distractors"], cfg["per_pass"],
        pools, frames, stamps, recipe.demo["jpeg_quality"], log=log, split=split,
    )
    vis = recipe.data["visible"]
    counts = {app: len(stream.spans(app, vis)) for app in apps}
    for app, k in counts.items():
        if k == 0:
            raise SystemExit(f"eval stream: no event of {app}")
    a, b = fp.ranges[split]
    n = b - a
    use = {"test": "the trainer's test range, never used for training",
           "val": "the trainer's validation range: never trained on, used only to stop training"}
    how = (
        f"trainer/mtrainer.py --eval-stream {name} (composite.eval_stream): {fp.file.split('/')[-1]} "
        f"--eval-split {split}: frames {a}..{b - 1} ({use[split]}), downscaled to "
        f"{fp.size[0]}x{fp.size[1]}, played {passes} times in sequence (clip frame i shows footage "
        f"frame {a} + (i mod {n}); a jump cut every {n} frames, and no object crosses a cut), with "
        f"Tux Paint photo cut-outs of {split}-split objects only (never used for training) crossing "
        f"the scene: {cfg['events']} crossings per app (each app's {split} instances used equally "
        f"often) and {cfg['distractors']} per other category ({', '.join(distractors)}) as "
        f"distractors; at most two objects at a time, never two of one category. An object "
        f"passing in front of another can split one crossing into two events or hide it. JPEG "
        f"quality {recipe.demo['jpeg_quality']}. An event frame is one in which at least {vis} of "
        f"an object's area is inside the runtime's 224x224 centre crop and not covered. All "
        f"labelled data here is composited."
    )
    dest = out_dir / "streams"
    dest.mkdir(parents=True, exist_ok=True)
    clip = f"{name}.mjpeg"
    write_mjpeg(dest / clip, stream)
    extra = [f"footage_range = [{a}, {b}]", f"split = \"{split}\"", f"passes = {passes}"]
    (dest / f"{name}.ground_truth.toml").write_text(stream_to_toml(stream, clip, recipe, apps, how, extra))
    size = (dest / clip).stat().st_size
    log(f"eval stream {dest / clip}: {len(stream.jpegs)} frames ({passes} passes), "
        f"{len(stream.tracks)} objects, {size / 1e6:.1f} MB; events per app: "
        + ", ".join(f"{app} {k}" for app, k in counts.items()))
    return {"frames": len(stream.jpegs), "passes": passes, "events": counts}


def summary_markdown(out_dir: Path) -> str:
    """Markdown tables of every package's curves (from metrics.json) under OUT/apps."""
    lines = []
    for mpath in sorted((out_dir / "apps").glob("*/metrics.json")):
        m = json.loads(mpath.read_text())
        mono = {x["branch"]: x for x in m["monotone"]}
        lines += [
            f"**{m['app']}** ({m['label']}): kept {m['kept']}"
            + (f", dropped for size {m['dropped_for_size']}" if m["dropped_for_size"] else "")
            + f"; event length {m['event']['length_ms']:.0f} ms, frequency "
            f"{m['event']['frequency']:.3f}, correlation {m['event']['correlation']:.3f} "
            f"({m['event']['events']} events); {m['seconds']:.0f} s",
            "",
            "| branch | test accuracy | test FPR | test TPR | validation accuracy | monotone (validation) "
            "| from | epochs (best) | file MB | kept |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|",
        ]
        for c in m["curve"]:
            k = c["branch"]
            lines.append(
                f"| {k} | {c['accuracy']:.4f} | {c['fpr']:.4f} | {c['tpr']:.4f} | "
                f"{c['val_accuracy']:.4f} | {mono[k]['val_accuracy']:.4f} | {mono[k]['source']} | "
                f"{c['epochs']} ({c['best_epoch']}) | {c['onnx_bytes'] / 1e6:.2f} | "
                f"{'yes' if k in m['kept'] else ''} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "train":
        import ownapp
        import userdata

        try:
            ownapp.main(sys.argv[2:])
        except userdata.DataError as e:
            print(f"mtrainer.py train: error: {e.msg}", file=sys.stderr, flush=True)
            sys.exit(userdata.EX_DATAERR)
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", type=Path, default=DEFAULT_RECIPE)
    ap.add_argument("--apps", help="comma-separated categories (default: those with demo = true)")
    ap.add_argument("--out", type=Path, default=REPO / "models", help="writes OUT/apps/<app>/ and OUT/demo/")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="scratch (footage cache, streams, checks)")
    ap.add_argument("--points", help="comma-separated branch points (default: the recipe's)")
    ap.add_argument("--sizes", help="train,val,test images per app (default: the recipe's)")
    ap.add_argument("--max-epochs", type=int, help="override the recipe's max_epochs")
    ap.add_argument("--no-demo", action="store_true", help="do not write the demo clip")
    ap.add_argument("--keep-all", action="store_true",
                    help="keep every trained head, not only the Pareto frontier (for tests)")
    ap.add_argument("--reference", type=int, default=0, metavar="N",
                    help="also write OUT/reference/<app>/: for N test images the base tensors, "
                         "PyTorch's logits of every kept head, and fp32 twins of float16 heads "
                         "(for tests/trainer_smoke.rs)")
    ap.add_argument("--smoke", action="store_true",
                    help=f"CI smoke run: --apps {SMOKE['apps']} --sizes {SMOKE['sizes']} "
                         f"--points {SMOKE['points']} --max-epochs {SMOKE['max_epochs']} --keep-all "
                         f"--reference {SMOKE['reference']}")
    ap.add_argument("--eval-stream", metavar="NAME",
                    help="write only the labelled evaluation stream OUT/streams/NAME.mjpeg + "
                         "NAME.ground_truth.toml with the events of --apps (no training)")
    ap.add_argument("--eval-split", choices=("test", "val"), default="test",
                    help="objects and footage range of the --eval-stream: test (the evaluation) "
                         "or val (the calibration stream for `mainstream calibrate`)")
    ap.add_argument("--eval-events", type=int, default=EVAL["events"],
                    help="crossings per app in the evaluation stream")
    ap.add_argument("--eval-distractors", type=int, default=EVAL["distractors"],
                    help="crossings per category that is not an app (distractors)")
    ap.add_argument("--eval-per-pass", type=int, default=EVAL["per_pass"],
                    help="crossings dealt to each pass over the footage's test range")
    ap.add_argument("--reselect", action="store_true",
                    help="train nothing: choose the kept heads of --apps again on the validation "
                         "split (from OUT/apps/<app>/metrics.json and WORK/heads/<app>/) and "
                         "rewrite their packages; calibrate them again afterwards")
    ap.add_argument("--threads", type=int, default=F.THREADS)
    ap.add_argument("--summary", action="store_true",
                    help="print markdown tables of the packages under OUT/apps and exit")
    args = ap.parse_args()
    if args.summary:
        print(summary_markdown(args.out))
        return
    if args.smoke:
        args.apps = args.apps or SMOKE["apps"]
        args.sizes = args.sizes or SMOKE["sizes"]
        args.points = args.points or SMOKE["points"]
        args.max_epochs = args.max_epochs or SMOKE["max_epochs"]
        args.keep_all = True
        args.reference = args.reference or SMOKE["reference"]

    log = Progress()
    recipe = C.load_recipe(args.recipe)
    apps = args.apps.split(",") if args.apps else recipe.demo_apps()
    for a in apps:
        if a not in recipe.categories:
            raise SystemExit(f"unknown app {a}; categories: {', '.join(recipe.categories)}")
    points = [int(p) for p in args.points.split(",")] if args.points else list(recipe.train["branch_points"])
    sizes = dict(zip(C.SPLITS, (int(s) for s in args.sizes.split(",")))) if args.sizes else {
        s: int(recipe.data[s]) for s in C.SPLITS}
    tcfg = dict(recipe.train)
    if args.max_epochs is not None:
        tcfg["max_epochs"] = args.max_epochs
        tcfg["linear_max_epochs"] = min(tcfg["linear_max_epochs"], 10 * args.max_epochs)
    tcfg["branch_points"] = points

    if args.eval_stream:
        if not args.apps:
            raise SystemExit("--eval-stream needs --apps")
        log(f"recipe {args.recipe} (sha256 {recipe.sha256[:12]}), evaluation stream "
            f"{args.eval_stream} with apps {apps}")
        pools, frames, stamps = load_sources(recipe, args.work)
        cfg = {"footage": EVAL["footage"], "split": args.eval_split, "events": args.eval_events,
               "distractors": args.eval_distractors, "per_pass": args.eval_per_pass}
        build_eval_stream(recipe, args.eval_stream, apps, cfg, pools, frames, stamps, args.out, log)
        log("done")
        return

    man = load_manifest()
    if args.reselect:
        if not args.apps:
            raise SystemExit("--reselect needs --apps")
        pools, frames, stamps = load_sources(recipe, args.work)
        for app in apps:
            reselect_app(recipe, app, man, pools, frames, stamps, args.out, args.work, log)
        log("done")
        return
    for k in points:
        bp_info(man, k)
    base = F.fused_base()
    F.setup_torch(args.threads)
    log(f"recipe {args.recipe} (sha256 {recipe.sha256[:12]}), apps {apps}, points {points}, "
        f"sizes {sizes}, torch {torch.__version__} on {torch.get_num_threads()} threads")
    pools, frames, stamps = load_sources(recipe, args.work)
    summary = {}
    for app in apps:
        summary[app] = build_app(recipe, app, man, base, pools, frames, stamps, args.out,
                                 args.work, sizes, points, tcfg, args.keep_all, log,
                                 reference=args.reference)
    if not args.no_demo:
        build_demo(recipe, apps, pools, frames, stamps, args.out, log)
    log("summary (test accuracy / FPR per branch point; * = kept):")
    for app, m in summary.items():
        row = "  ".join(
            f"{c['branch']}{'*' if c['branch'] in m['kept'] else ''}:{c['accuracy']:.3f}/{c['fpr']:.3f}"
            for c in m["curve"]
        )
        log(f"  {app:<10} {row}")
    log("done")


if __name__ == "__main__":
    sys.exit(main())
