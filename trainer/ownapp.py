"""`mtrainer.py train`: an M-Package from the user's own labelled photos and clips.

    /usr/bin/python3 trainer/mtrainer.py train NAME --images DIR [--clips DIR] --out DIR

The user's data (userdata.py) becomes the same AppData the recipe's composites become, and goes
through the same mtrainer.train_app: frozen-prefix cache, a head per branch point, heads chosen
on the validation split, float16 storage, the ONNX Runtime check, metrics.json. Then, before the
package appears at OUT/NAME, `mainstream calibrate --write` measures it on the held-out part of
the clips; the trainer prints accuracy and FPR per branch point, writes the curve report and
runs `mainstream plan` for the app alone and beside the bundled apps. See trainer/README.md,
"Your own app".
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import basenet
import userdata as U

REPO = basenet.REPO
# What a package made from photos alone says about its events (stated in package.toml with
# `assumed = true`, in the trainer's output and by `mainstream check`): an event of 2 s, one
# event-length window in ten holding one, detections of neighbouring frames half correlated.
ASSUMED_EVENT = {"length_ms": 2000.0, "frequency": 0.1, "correlation": 0.5}
HOLDOUT_SHARE = 0.3  # of the clips (3 or more) or of each clip's frames (fewer)
SAMPLE_FPS = 2.0  # training frames taken from a clip per second of video, per class
NEGATIVE_MARGIN_S = 0.5  # a negative frame is more than this far from every span (default)
BLOCK_S = 10.0  # clip frames go to train / val / test in blocks of at least this length
CALIBRATION_JPEG_QUALITY = 90


def find_mainstream(given: str | None) -> Path | None:
    if given:
        p = Path(given)
        if not (p.is_file() and os.access(p, os.X_OK)):
            raise SystemExit(f"--mainstream {given}: not an executable file")
        return p
    cands = [REPO / "target" / "release" / "mainstream", REPO / "target" / "debug" / "mainstream"]
    cands = [c for c in cands if c.is_file() and os.access(c, os.X_OK)]
    if cands:
        return max(cands, key=lambda c: c.stat().st_mtime)
    w = shutil.which("mainstream")
    return Path(w) if w else None


def packet_count(path: Path) -> int:
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
         "stream=nb_read_packets", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True,
    )
    try:
        return int(r.stdout.strip().split(",")[0])
    except ValueError:
        why = (r.stderr.strip().splitlines() or ["no frame count"])[-1]
        raise U.DataError(f"{path}: ffmpeg cannot decode this clip ({why})")


class ClipPlan:
    """One clip: its spans, which frames train (and in which split), which are held out."""

    def __init__(self, path: Path, app: str, seed: int, margin_s: float = NEGATIVE_MARGIN_S) -> None:
        self.path = path
        w, h, fps = U.probe(path)
        self.width, self.height = w, h
        self.spans_file = U.spans_file_of(path)
        raw, self.fps = U.read_spans(self.spans_file, fps, app)
        self.frames = packet_count(path)
        self.spans = U.check_spans(path, raw, self.frames, self.fps)
        self.sha256 = basenet.sha256_file(path)
        self.margin = max(2, int(round(margin_s * self.fps)))
        self.role = U.frame_roles(self.frames, self.spans, self.margin)
        self.holdout_from = self.frames  # frames [holdout_from, frames) are held out
        self.seed = seed

    def hold_out(self, whole: bool) -> None:
        if whole:
            self.holdout_from = 0
        else:
            cut = U.holdout_cut(self.frames, self.spans, HOLDOUT_SHARE)
            if cut is not None:
                self.holdout_from = cut

    def training_frames(self, mean_span: float) -> dict[int, str]:
        """frame -> block key for the frames taken for training (SAMPLE_FPS per class); the
        blocks of all clips are then given splits together (userdata.quota_splits)."""
        step = max(1, int(round(self.fps / SAMPLE_FPS)))
        block = max(int(round(BLOCK_S * self.fps)), int(round(3 * mean_span)), 1)
        out = {}
        for cls in (0, 1):
            idx = np.nonzero(self.role[: self.holdout_from] == cls)[0]
            for i in idx[::step]:
                out[int(i)] = f"{self.sha256}:{int(i) // block}"
        return out

    def json(self) -> dict:
        return {"clip": str(self.path), "spans_file": str(self.spans_file), "sha256": self.sha256,
                "fps": self.fps, "frames": self.frames, "size": [self.width, self.height],
                "spans": self.spans, "negative_margin_frames": self.margin,
                "held_out_frames": [self.holdout_from, self.frames] if self.holdout_from < self.frames else None}


def assemble(args, recipe_seed: int, log):
    """The AppData of the user's data, plus what the calibration step needs."""
    import mtrainer as M

    name = args.name
    report = U.PhotoReport()
    photos: list[U.Photo] = []
    if args.images:
        log(f"{name}: reading photos under {args.images}")
        photos = U.scan_photos(args.images, report)
        U.assign_splits(photos, recipe_seed, report)
        for ln in report.lines():
            log(f"{name}: {ln}")
    plans: list[ClipPlan] = []
    if args.clips:
        for c in U.find_clips(args.clips):
            plans.append(ClipPlan(c, name, recipe_seed, getattr(args, "margin_s", NEGATIVE_MARGIN_S)))
        if len(plans) >= 3:
            order = sorted(plans, key=lambda p: U.unit(recipe_seed, "holdout", p.sha256))
            for p in order[: max(1, round(HOLDOUT_SHARE * len(plans)))]:
                p.hold_out(whole=True)
        else:
            for p in plans:
                p.hold_out(whole=False)
        for p in plans:
            held = p.frames - p.holdout_from
            log(f"{name}: clip {p.path}: {p.frames} frames at {p.fps:g} fps, {p.width}x{p.height}, "
                f"{len(p.spans)} spans ({p.spans_file.name}); "
                + (f"frames {p.holdout_from}..{p.frames - 1} held out for calibration" if held else
                   "all frames for training (one span: nothing to hold out)" if len(plans) < 3 else
                   "all frames for training"))
    if not photos and not plans:
        raise U.DataError("no data: give --images DIR (positive/ and negative/ photos) and/or --clips DIR")
    mean_span = float(np.mean([b - a + 1 for p in plans for a, b in p.spans])) if plans else 0.0

    # Clip frames: one decoding pass per clip; views of the training frames, and of every
    # held-out frame (and its JPEG for the calibration clip).
    items = {s: [] for s in U.SPLITS}  # (view, label, source)
    for ph in photos:
        items[ph.split].append((ph.view, ph.label, str(ph.path), "photo"))
    clips: list[M.EventClip] = []
    cal_parts = []
    wants = [p.training_frames(mean_span) for p in plans]
    block_frames: dict[str, int] = {}
    for want in wants:
        for key in want.values():
            block_frames[key] = block_frames.get(key, 0) + 1
    block_split = U.quota_splits(sorted(block_frames.items()), recipe_seed)
    for p, want in zip(plans, wants):
        t0 = time.monotonic()
        want = {i: block_split[key] for i, key in want.items()}
        held_views, held_jpegs = [], []

        def each(i, rgb, p=p, want=want, held_views=held_views, held_jpegs=held_jpegs):
            if i in want or i >= p.holdout_from:
                from PIL import Image

                im = Image.fromarray(rgb)
                v = U.view_of(im)
                if i in want and i < p.holdout_from:
                    items[want[i]].append((v, int(p.role[i]), f"{p.path}#{i}", "clip"))
                if i >= p.holdout_from:
                    held_views.append(v)
                    buf = io.BytesIO()
                    im.save(buf, "JPEG", quality=CALIBRATION_JPEG_QUALITY)
                    held_jpegs.append(buf.getvalue())

        n = U.decode(p.path, p.width, p.height, each)
        if n != p.frames:
            # The packet count was a promise; spans were checked against it. Check again.
            p.frames = n
            U.check_spans(p.path, [(a, b, str(p.spans_file)) for a, b in p.spans], n, p.fps)
            held_views = held_views[: max(0, n - p.holdout_from)]
        log(f"{name}: decoded {p.path.name}: {n} frames, {len(want)} for training, "
            f"{len(held_views)} held out ({time.monotonic() - t0:.0f} s)")
        if held_views:
            a = p.holdout_from
            spans = [(x - a, y - a) for x, y in p.spans if x >= a]
            ignore = p.role[a:n] == -1
            clips.append(M.EventClip(f"{p.path.name}[{a}:{n}]", p.fps, np.stack(held_views), spans, ignore))
            cal_parts.append((p, held_jpegs, spans))

    # Enough of each class, each class in every split.
    counts = {s: [sum(1 for it in items[s] if it[1] == c) for c in (0, 1)] for s in U.SPLITS}
    total = [sum(counts[s][c] for s in U.SPLITS) for c in (0, 1)]
    where = {0: "negative photos (negative/) and clip frames away from every span",
             1: "positive photos (positive/) and clip frames inside spans"}
    if total[0] == 0 or total[1] == 0:
        missing = 1 if total[1] == 0 else 0
        raise U.DataError(f"{name}: one class only: {total[1 - missing]} {U.CLASSES[1 - missing]} examples and no "
                          f"{U.CLASSES[missing]} one ({where[missing]}); a detector needs examples of both")
    for c in (0, 1):
        if total[c] < U.MIN_PER_CLASS:
            raise U.DataError(
                f"{name}: {total[c]} {U.CLASSES[c]} examples ({where[c]}), at least {U.MIN_PER_CLASS} "
                f"are needed: one each for the validation split (early stopping, choosing the kept "
                f"heads) and the test split (the accuracy and false-positive rate the planner "
                f"trusts), and with fewer test examples one image moves those rates by 0.5 or more")
    for s in ("val", "test"):
        for c in (0, 1):
            if counts[s][c] == 0:
                # Move the training example with the smallest source name (deterministic).
                cands = sorted((it[2], i) for i, it in enumerate(items["train"]) if it[1] == c)
                src, i = cands[0]
                items[s].append(items["train"].pop(i))
                report.moved.append({"example": src, "to": s})
                log(f"{name}: the {s} split had no {U.CLASSES[c]} example: moved {src} there from train")
                counts = {s2: [sum(1 for it in items[s2] if it[1] == c2) for c2 in (0, 1)] for s2 in U.SPLITS}
    for s in U.SPLITS:
        log(f"{name}: {s}: {counts[s][1]} positive, {counts[s][0]} negative "
            f"({sum(1 for it in items[s] if it[3] == 'photo')} photos)")

    assumed = {"length_ms": args.event_length_ms or ASSUMED_EVENT["length_ms"],
               "frequency": args.event_frequency or ASSUMED_EVENT["frequency"],
               "correlation": args.correlation if args.correlation is not None else ASSUMED_EVENT["correlation"]}
    event = M.event_parameters([(p.spans, p.frames, p.fps) for p in plans], name) if plans else None
    label = args.label or name
    src = []
    if photos:
        src.append(f"{len(photos)} photos from {args.images}")
    if plans:
        src.append(f"{len(plans)} labelled clips from {args.clips}")
    meta = M.PackageMeta(
        name=name, label=label, description=args.description or f"{label}: trained on the user's own data",
        measured_on=(f"the test split of the user's data ({counts['test'][1]} positive, "
                     f"{counts['test'][0]} negative: {' and '.join(src)})"),
        event_how=("Measured on the labelled clips: mean span length, fraction of event-length windows\n"
                   "holding an event; the inter-frame correlation of the kept heads' detections on the\n"
                   "held-out frames is measured by mainstream calibrate (calibration.toml) when the\n"
                   "trainer runs it, else by the trainer (metrics.json event.correlation_how)." if plans else
                   "ASSUMED, not measured (no labelled clip): the trainer's stated defaults or its\n"
                   "--event-length-ms / --event-frequency / --correlation. Calibrate on a labelled clip."),
    )
    data = M.AppData(
        meta=meta,
        images={s: np.stack([it[0] for it in items[s]]) for s in U.SPLITS},
        labels={s: np.array([it[1] for it in items[s]], np.int64) for s in U.SPLITS},
        clips=clips,
        event=event,
        assumed=assumed,
        extra={
            "source": "user",
            "images_dir": str(args.images) if args.images else None,
            "clips_dir": str(args.clips) if args.clips else None,
            "photos": report.json(),
            "clips": [p.json() for p in plans],
            "examples": {s: {"positive": counts[s][1], "negative": counts[s][0],
                             "sources": sorted(it[2] for it in items[s])} for s in U.SPLITS},
        },
        feature_cache=args.work / "features",
    )
    return data, cal_parts


def write_calibration_clip(parts, dest_dir: Path, name: str, log) -> tuple[Path, Path] | None:
    """The held-out frames as one MJPEG stream + ground truth (the project's format) for
    `mainstream calibrate`. Clips at another frame rate than the first are left out (one clip,
    one rate); other frame sizes are scaled to the first's."""
    if not parts:
        return None
    from PIL import Image

    fps = parts[0][0].fps
    size = (parts[0][0].width, parts[0][0].height)
    jpegs, events, used = [], [], []
    for p, js, spans in parts:
        if abs(p.fps - fps) > 1e-6:
            log(f"{name}: WARNING {p.path} runs at {p.fps:g} fps, the calibration clip at {fps:g}: "
                f"left out of the calibration clip")
            continue
        off = len(jpegs)
        for j in js:
            if (p.width, p.height) != size:
                im = Image.open(io.BytesIO(j)).convert("RGB").resize(size, Image.BILINEAR)
                b = io.BytesIO()
                im.save(b, "JPEG", quality=CALIBRATION_JPEG_QUALITY)
                j = b.getvalue()
            jpegs.append(j)
        events += [(a + off, b + off) for a, b in spans]
        used.append(f"{p.path} frames {p.holdout_from}..{p.frames - 1}")
    if not events:
        log(f"{name}: WARNING the held-out frames hold no event: no calibration")
        return None
    dest_dir.mkdir(parents=True, exist_ok=True)
    clip = dest_dir / "heldout.mjpeg"
    tmp = clip.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        for j in jpegs:
            f.write(j)
    tmp.rename(clip)
    truth = dest_dir / "heldout.ground_truth.toml"
    made = "; ".join(used)
    truth.write_text("\n".join([
        f"# Ground truth of {clip.name}, written by trainer/mtrainer.py train from the user's spans;",
        "# the held-out frames of the labelled clips (never trained on).",
        "format = 1",
        f'clip = "{clip.name}"',
        f"fps = {fps}",
        f"frames = {len(jpegs)}",
        f"width = {size[0]}",
        f"height = {size[1]}",
        f"made = {json.dumps(made)}",
        "",
        "[[app]]",
        f'name = "{name}"',
        "events = [" + ", ".join(f"[{a}, {b}]" for a, b in events) + "]",
    ]) + "\n")
    log(f"{name}: calibration clip {clip}: {len(jpegs)} frames, {len(events)} events")
    return clip, truth


def config_text(name: str, package: Path, source: Path, fps: float, state: Path, with_bundled: bool,
                note: str) -> str:
    lines = [
        f"# Written by trainer/mtrainer.py train: the app {name!r} {note}",
        "[device]",
        "budget_cores = 1.0",
        f"state_dir = {json.dumps(str(state))}",
        f"base = {json.dumps(str(REPO / 'models' / 'mobilenet_v2' / 'manifest.toml'))}",
        "",
        "[[camera]]",
        'name = "camera"',
        f"source = {json.dumps(str(source))}",
        f"fps = {fps:g}",
        'pace = "realtime"',
        "",
        "[[app]]",
        f'name = "{name}"',
        'camera = "camera"',
        f"package = {json.dumps(str(package))}",
    ]
    if with_bundled:
        for a in ("birds", "vehicles", "mammals"):
            pkg = REPO / "models" / "apps" / a
            if (pkg / "package.toml").is_file():
                lines += ["", "[[app]]", f'name = "{a if a != name else "bundled-" + a}"', 'camera = "camera"', f"package = {json.dumps(str(pkg))}"]
    return "\n".join(lines) + "\n"


def run_mainstream(binary: Path, args: list[str], log, what: str) -> subprocess.CompletedProcess:
    cmd = [str(binary), *args]
    log(f"$ {' '.join(cmd)}")
    r = subprocess.run(cmd, capture_output=True, text=True)
    # stderr is the log (profile progress and the like): shown only when the command fails.
    for ln in (r.stdout + (r.stderr if r.returncode else "")).rstrip().splitlines():
        print(f"    {ln}", flush=True)
    if r.returncode != 0:
        raise SystemExit(f"{what} failed (exit {r.returncode}): {' '.join(cmd)}")
    return r


def main(argv: list[str]) -> None:
    import mtrainer as M

    ap = argparse.ArgumentParser(
        prog="mtrainer.py train",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""An M-Package from your own labelled photos and clips.

Photos (--images DIR): DIR/positive/ (the event is in view) and DIR/negative/ (it is not), any
depth, anything Pillow reads; or DIR/train/, DIR/val/, DIR/test/ each with positive/ and
negative/ (val/ and test/ optional). Without split folders each photo's split follows from its
content hash (20% validation, 20% test), so adding photos moves none. Near-duplicates (resized or
recompressed copies) are kept in one split and reported. Unreadable files are skipped and listed.

Clips (--clips DIR): video files ffmpeg decodes (MP4, MKV, AVI, MJPEG, Y4M, ...), each with its
event spans beside it in CLIP.csv:

    start_s,end_s              # or start_frame,end_frame (0-based, both ends inclusive)
    12.5,15.0
    40,43.2

or CLIP.toml in the ground-truth format (`fps = 10`, `[[app]] events = [[125, 150]]`, frames).
Frames inside a span are positives, frames more than --margin-s (0.5 s) from every span
negatives (2 per second of video of each are taken). With 3 or more clips, 30% of the clips are held out; with fewer, the
last 30% of each clip (cut between two spans). Training never sees the held-out frames:
`mainstream calibrate` measures the package on them, and the event length, frequency and
correlation come from the clips. Photos alone give a package whose event parameters are assumed
(stated below and in package.toml) and uncalibrated.

Writes OUT/NAME/ (the package: appears complete or not at all) and OUT/NAME-trainer/ (report.md,
report.png, the held-out clip, config.toml and config-bundled.toml for `mainstream plan / run /
replay`). Re-running after adding photos computes the frozen base only for the new ones
(WORK/features). Exit 65 on bad data (the message names the file), 1 on other failures.
""",
        epilog="""example:
    /usr/bin/python3 trainer/mtrainer.py train feeder --images ~/feeder/photos \\
        --clips ~/feeder/clips --out ~/apps
    mainstream run --config ~/apps/feeder-trainer/config.toml
""",
    )
    ap.add_argument("name", help="the app's name (package name, letters, digits, - and _)")
    ap.add_argument("--images", type=Path, help="folder of photos: positive/ and negative/")
    ap.add_argument("--clips", type=Path, help="folder of labelled clips (each with CLIP.csv or CLIP.toml)")
    ap.add_argument("--out", type=Path, required=True, help="writes OUT/NAME/ and OUT/NAME-trainer/")
    ap.add_argument("--work", type=Path, help="scratch and the feature cache [default: trainer/work/own/NAME]")
    ap.add_argument("--label", help="the positive class's label [default: NAME]")
    ap.add_argument("--description", help="free text for package.toml")
    ap.add_argument("--points", help="comma-separated branch points [default: the recipe's 0,8,12,15,17,18,20]")
    ap.add_argument("--max-epochs", type=int, help="epochs per fine-tuned head [default: the recipe's 3]")
    ap.add_argument("--keep-all", action="store_true", help="keep every trained head (tests)")
    ap.add_argument("--event-length-ms", type=float, help=f"assumed event length without clips [default: {ASSUMED_EVENT['length_ms']:g}]")
    ap.add_argument("--event-frequency", type=float, help=f"assumed share of event-length windows holding an event, without clips [default: {ASSUMED_EVENT['frequency']:g}]")
    ap.add_argument("--correlation", type=float, help=f"assumed when not measurable [default: {ASSUMED_EVENT['correlation']:g}]")
    ap.add_argument("--margin-s", type=float, default=NEGATIVE_MARGIN_S,
                    help="clip frames this close to a span are neither positives nor negatives "
                         f"[default: {NEGATIVE_MARGIN_S:g} s, at least 2 frames]")
    ap.add_argument("--mainstream", help="the mainstream binary for calibrate and plan [default: target/release or target/debug, then PATH]")
    ap.add_argument("--no-calibrate", action="store_true", help="do not run `mainstream calibrate` / `plan`")
    ap.add_argument("--reference", type=int, default=0, metavar="N",
                    help="also write OUT/reference/NAME/ for N test images (tests/trainer_smoke.rs)")
    ap.add_argument("--recipe", type=Path, default=M.DEFAULT_RECIPE, help="training settings ([train], [package])")
    ap.add_argument("--threads", type=int, default=M.F.THREADS)
    args = ap.parse_args(argv)
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", args.name):
        ap.error(f"NAME {args.name!r}: 1-64 letters, digits, - and _")
    args.work = args.work or basenet.WORK / "own" / args.name

    log = M.Progress()
    import composite as C

    recipe = C.load_recipe(args.recipe)
    man = M.load_manifest()
    points = [int(p) for p in args.points.split(",")] if args.points else list(recipe.train["branch_points"])
    for k in points:
        M.bp_info(man, k)
    tcfg = dict(recipe.train)
    if args.max_epochs is not None:
        tcfg["max_epochs"] = args.max_epochs
        tcfg["linear_max_epochs"] = min(tcfg["linear_max_epochs"], 10 * args.max_epochs)
    tcfg["branch_points"] = points
    tcfg["seed"] = recipe.seed
    binary = None if args.no_calibrate else find_mainstream(args.mainstream)
    log(f"{args.name}: train from the user's data, points {points}, seed {recipe.seed}; "
        f"mainstream: {binary or 'not found (no calibration, no plan; build it with cargo build --release)'}")

    data, cal_parts = assemble(args, recipe.seed, log)
    base = M.F.fused_base()
    M.F.setup_torch(args.threads)
    dest = args.out / args.name
    extras = args.out / f"{args.name}-trainer"
    extras.mkdir(parents=True, exist_ok=True)
    cal = write_calibration_clip(cal_parts, extras, args.name, log)

    def calibrate(pkg: Path, metrics: dict) -> None:
        if cal is None or binary is None:
            return
        clip, _truth = cal
        cfg = args.work / "calibrate.toml"
        cfg.write_text(config_text(args.name, pkg, clip, cal_parts[0][0].fps, args.work / "state",
                                   False, "on its held-out clip, for calibrate"))
        run_mainstream(binary, ["calibrate", "--config", str(cfg), "--write"], log, "mainstream calibrate")
        if not (pkg / "calibration.toml").is_file():
            raise SystemExit(f"mainstream calibrate wrote no {pkg / 'calibration.toml'}")
        # What it measured (the per-head rates and the correlation the trainer no longer
        # measures itself on the same frames) goes into metrics.json too.
        import tomllib

        metrics["calibration"] = tomllib.loads((pkg / "calibration.toml").read_text())
        (pkg / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")

    ref = args.out / "reference" / args.name if args.reference else None
    metrics = M.train_app(data, man, base, dest, args.work, points, tcfg, recipe.package, args.keep_all,
                          log, reference_dir=ref, reference=args.reference, before_install=calibrate,
                          calibrated_later=cal is not None and binary is not None)
    t_total = time.monotonic() - log.t0

    # What the planner will see.
    log(f"{args.name}: per branch point (test split: accuracy / false-positive rate; * = kept):")
    for c in metrics["curve"]:
        log(f"    bp{c['branch']:02d}{'*' if c['branch'] in metrics['kept'] else ' '} accuracy "
            f"{c['accuracy']:.3f}  FPR {c['fpr']:.3f}  (validation accuracy {c['val_accuracy']:.3f}, "
            f"{c['epochs']} epochs)")
    if data.event is None:
        log(f"{args.name}: WARNING photos only: the package is uncalibrated and its event parameters "
            f"are assumed (length {metrics['event']['length_ms']:.0f} ms, frequency "
            f"{metrics['event']['frequency']:.3f}, correlation {metrics['event']['correlation']:.3f}); "
            f"label a clip of the camera and calibrate it (trainer/README.md, \"Your own app\")")
    elif cal is None:
        log(f"{args.name}: WARNING not calibrated: "
            + ("no held-out frames with an event (give 2 spans per clip, or 3 clips)" if binary else
               "no mainstream binary (cargo build --release, then run mainstream calibrate)"))
    rep = subprocess.run([sys.executable, str(Path(__file__).with_name("report.py")), "--apps-dir",
                          str(args.out), "--png", str(extras / "report.png"), "--title",
                          f"{args.name}: accuracy and FPR against branch point"],
                         capture_output=True, text=True)
    if rep.returncode == 0:
        (extras / "report.md").write_text(rep.stdout)
        log(f"{args.name}: report {extras / 'report.md'}, {extras / 'report.png'}")
    else:
        log(f"{args.name}: no report ({(rep.stderr.strip().splitlines() or ['?'])[-1]})")

    source = cal[0] if cal else REPO / "models" / "demo" / "demo.mjpeg"
    fps = cal_parts[0][0].fps if cal else 10.0
    note = "on its held-out clip as a replay camera" if cal else \
        "on the bundled demo clip as a stand-in camera (photos only: put your camera's source here)"
    state = extras / "state"
    (extras / "config.toml").write_text(config_text(args.name, dest.resolve(), source.resolve(), fps, state, False, note))
    (extras / "config-bundled.toml").write_text(
        config_text(args.name, dest.resolve(), source.resolve(), fps, state, True, note + ", beside the bundled apps"))
    if binary is not None:
        run_mainstream(binary, ["check", "--config", str(extras / "config.toml")], log, "mainstream check")
        for cfg in ("config.toml", "config-bundled.toml"):
            run_mainstream(binary, ["plan", "--config", str(extras / cfg)], log, "mainstream plan")
    log(f"{args.name}: done in {t_total / 60:.1f} min: package {dest}; try it: "
        f"mainstream run --config {extras / 'config.toml'}")
