"""The fresh evaluation streams of issue 22 (trainer/fresh1.toml): one labelled stream per
camera, made from footage, placements and objects no earlier evaluation or calibration used.

    bash trainer/setup.sh                                   # assets, the fresh footage included
    /usr/bin/python3 trainer/fresh_streams.py [--recipe trainer/fresh1.toml] [--out target/eval]
        [--check docs/eval/fresh1/manifest.json]

Writes OUT/streams/NAME-CAMERA.mjpeg + NAME-CAMERA.ground_truth.toml per camera and
OUT/streams/NAME.manifest.json (sha256, frames, events per app, objects of every stream, and
which photo instances every split and this set use). `--check` compares the streams' sha256
with a committed manifest and exits 1 on any difference.

Nothing is composited here: every stream is composite.eval_stream (the generator of eval24 and
cal24) run on a camera's clip, with apps.toml's object split, sizes, motion and visibility rule,
and mtrainer.stream_to_toml writes its ground truth. What this file adds is the footage (each
clip decoded once, every `step`-th frame, played forward then backward as a seamless loop so
that no pass has a jump cut), the object pools (the apps' test-split instances, the unused
instances of app categories and novel distractors) and the per-camera apps.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import sys
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import PIL

import basenet
import composite as C
import mtrainer as M

DEFAULT_RECIPE = basenet.REPO / "trainer" / "fresh1.toml"


@dataclass(frozen=True)
class Camera:
    name: str
    file: str  # under the assets directory
    sha256: str
    frames: int  # decoded frames of the source clip
    step: int  # every step-th decoded frame is played
    size: tuple[int, int]
    exclude: tuple[str, ...]  # apps not scored on this camera


@dataclass(frozen=True)
class Fresh:
    name: str
    seed: int
    fps: float
    apps: tuple[str, ...]
    events_per_app: int
    distractors_per_category: int
    per_pass: int
    loop_frames: int
    cameras: tuple[Camera, ...]
    unused: dict[str, tuple[str, ...]]  # app -> stamp keys
    novel: dict[str, tuple[str, ...]]  # distractor group -> stamp keys
    source: Path
    sha256: str


def load_fresh(path: Path, recipe: C.Recipe) -> Fresh:
    """Reads and checks the fresh set's recipe against apps.toml's categories."""
    raw_bytes = path.read_bytes()
    raw = tomllib.loads(raw_bytes.decode())
    apps = tuple(raw["apps"])
    for a in apps:
        if a not in recipe.categories:
            raise SystemExit(f"{path}: app {a} is not a category of {recipe.source}")
    cams = []
    for c in raw["camera"]:
        for a in c["exclude"]:
            if a not in apps:
                raise SystemExit(f"{path}: camera {c['name']} excludes {a}, which is no app")
        cams.append(Camera(c["name"], c["file"], c["sha256"], int(c["frames"]), int(c["step"]),
                           tuple(c["size"]), tuple(c["exclude"])))
    if len({c.name for c in cams}) != len(cams):
        raise SystemExit(f"{path}: two cameras share a name")
    unused = {a: tuple(v) for a, v in raw.get("unused", {}).items()}
    for a in unused:
        if a not in apps:
            raise SystemExit(f"{path}: [unused] {a} is no app")
    novel = {g: tuple(v) for g, v in raw.get("novel", {}).items()}
    for g in novel:
        if g in recipe.categories:
            raise SystemExit(f"{path}: [novel] group {g} is a category of {recipe.source}")
    return Fresh(raw["name"], int(raw["seed"]), float(raw["fps"]), apps, int(raw["events_per_app"]),
                 int(raw["distractors_per_category"]), int(raw["per_pass"]), int(raw["loop_frames"]),
                 tuple(cams), unused, novel, path, hashlib.sha256(raw_bytes).hexdigest())


def loop_indices(n: int, target: int) -> np.ndarray:
    """Frame indices of a seamless loop over n frames: forward, then backward without repeating
    either end (0..n-1, n-2..1), repeated to about `target` frames. Played again and again, it
    never jumps: the frame after the last is frame 0, which follows frame 1."""
    if n < 2:
        raise ValueError("a loop needs at least 2 frames")
    period = list(range(n)) + list(range(n - 2, 0, -1))
    reps = max(1, round(target / len(period)))
    return np.asarray(period * reps, np.int64)


def camera_frames(cam: Camera, fps: float, loop_frames: int, cache: Path) -> tuple[C.Footage, np.ndarray]:
    """The camera's loop as a footage of its own (one split, "test", over the whole loop) and its
    frames: the clip decoded by composite.load_frames (checked against its sha256 first), every
    `step`-th frame, as a seamless loop."""
    src = C.Footage(f"{cam.name}_source", cam.file, cam.frames, fps, cam.size, {})
    got = basenet.sha256_file(src.path()) if src.path().is_file() else "missing"
    if got != cam.sha256:
        raise SystemExit(f"{src.path()}: sha256 {got}, the recipe says {cam.sha256} "
                         "(run `bash trainer/setup.sh`)")
    decoded = C.load_frames(src, cache)[:: cam.step]
    idx = loop_indices(len(decoded), loop_frames)
    frames = np.ascontiguousarray(decoded[idx])
    fp = C.Footage(cam.name, cam.file, len(frames), fps, cam.size, {"test": (0, len(frames))})
    return fp, frames


def object_pools(recipe: C.Recipe, fresh: Fresh) -> tuple[C.Pools, dict[str, str], list[C.Stamp]]:
    """The objects the streams draw from, all under split "test": every declared category's
    test-split instances (apps.toml's split, unchanged), the unused instances of app categories
    (fresh.unused) and the novel distractor groups (fresh.novel), each of those stamps its own
    instance. Returns the pools, stamp -> instance for every stamp, and the added stamps.
    Refuses an "unused" or novel stamp that apps.toml's catalogue already holds."""
    catalogue = C.catalogue(recipe)
    known = {s.key for s in catalogue}
    added = []
    for cat, keys in list(fresh.unused.items()) + list(fresh.novel.items()):
        for key in keys:
            if key in known:
                raise SystemExit(f"{fresh.source}: {key} is in apps.toml's catalogue: not unused")
            if not (C.STAMPS_DIR / f"{key}.png").is_file():
                raise SystemExit(f"{fresh.source}: no stamp {key} under {C.STAMPS_DIR}")
            added.append(C.Stamp(key, cat, key.rsplit("/", 1)[-1], "test"))
    if len({s.key for s in added}) != len(added):
        raise SystemExit(f"{fresh.source}: a stamp is listed twice")
    stamps = [s for s in catalogue if s.split == "test"] + added
    return C.Pools(stamps), {s.key: s.instance for s in catalogue + added}, added


def fresh_recipe(recipe: C.Recipe, fresh: Fresh, footage: dict[str, C.Footage]) -> C.Recipe:
    """apps.toml's recipe with the cameras as its only footage, each category allowed on every
    camera that does not exclude it, the novel groups as categories, and the fresh seed (used
    only by the stream's random draws: the object split was made with apps.toml's seed)."""
    cats = {}
    for name, cat in recipe.categories.items():
        allowed = tuple(c.name for c in fresh.cameras if name not in c.exclude)
        cats[name] = replace(cat, footage=allowed)
    everywhere = tuple(c.name for c in fresh.cameras)
    for g in fresh.novel:
        cats[g] = C.Category(g, "novel distractor", f"Novel distractor photos ({g}).", (), frozenset(),
                             everywhere, False)
    return replace(recipe, seed=fresh.seed, footage=footage, categories=cats)


def instance_table(recipe: C.Recipe, fresh: Fresh) -> dict:
    """Per category of apps.toml: its instances by split, and the unused ones fresh shows."""
    out = {}
    for s in C.catalogue(recipe):
        e = out.setdefault(s.category, {"train": set(), "val": set(), "test": set()})
        e[s.split].add(s.instance)
    table = {c: {k: sorted(v) for k, v in e.items()} for c, e in sorted(out.items())}
    for app, keys in fresh.unused.items():
        table[app]["unused"] = sorted(k.rsplit("/", 1)[-1] for k in keys)
    for g, keys in fresh.novel.items():
        table[g] = {"novel": sorted(k.rsplit("/", 1)[-1] for k in keys)}
    return table


def tool_versions() -> dict:
    """What the bytes depend on besides the recipe (trainer/README.md, "Reproducibility")."""
    ff = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.splitlines()
    return {"python": platform.python_version(), "numpy": np.__version__, "pillow": PIL.__version__,
            "ffmpeg": ff[0] if ff else "?"}


def build_camera(recipe: C.Recipe, fresh: Fresh, cam: Camera, pools: C.Pools, instance_of: dict,
                 added: list[C.Stamp], cache: Path, stamps: C.StampImages, dest: Path,
                 log: M.Progress) -> dict:
    fp, frames = camera_frames(cam, fresh.fps, fresh.loop_frames, cache)
    derived = fresh_recipe(recipe, fresh, {cam.name: fp})
    apps = [a for a in fresh.apps if a not in cam.exclude]
    distractors = [c for c in recipe.categories if c not in fresh.apps] + list(fresh.novel)
    quality = recipe.demo["jpeg_quality"]
    stream, passes = C.eval_stream(
        derived, apps, cam.name, fresh.events_per_app, distractors, fresh.distractors_per_category,
        fresh.per_pass, pools, {cam.name: frames}, stamps, quality, log=log, split="test",
    )
    vis = recipe.data["visible"]
    events = {a: len(stream.spans(a, vis)) for a in apps}
    if not all(events.values()):
        raise SystemExit(f"{fresh.name}-{cam.name}: an app has no event: {events}")
    clip = f"{fresh.name}-{cam.name}.mjpeg"
    src = cam.file.rsplit("/", 1)[-1]
    every = "every decoded frame" if cam.step == 1 else f"one decoded frame in {cam.step}"
    how = (
        f"trainer/fresh_streams.py ({fresh.source.name}, composite.eval_stream): camera {cam.name}, "
        f"{src} (sha256 {cam.sha256[:16]}...; never used by any earlier evaluation, calibration or "
        f"training), {every} downscaled to {cam.size[0]}x{cam.size[1]}, "
        f"played at {fresh.fps:g} fps forward then backward as a seamless loop of {fp.frames} "
        f"frames, {passes} times in sequence (no object crosses from one loop to the next), with "
        f"Tux Paint photo cut-outs crossing the scene: {fresh.events_per_app} crossings per app "
        f"({', '.join(apps)}) of its test-split objects (never trained or calibrated on) and "
        f"unused photos of its category where any are left, each instance equally often; "
        f"{fresh.distractors_per_category} per distractor category ({', '.join(distractors)}; the "
        f"novel_* groups are photos no app has seen). At most two objects at a time, never two of "
        f"one category. JPEG quality {quality}. An event frame is one in which at least {vis} of "
        f"an object's area is inside the runtime's 224x224 centre crop and not covered. All "
        f"labelled data here is composited."
    )
    extra = [f'set = "{fresh.name}"', f'camera = "{cam.name}"', f"source_frames = {cam.frames}",
             f"step = {cam.step}", f"loop_frames = {fp.frames}", f"passes = {passes}",
             'split = "test"']
    if cam.exclude:
        extra.append("excluded_apps = [" + ", ".join(f'"{a}"' for a in cam.exclude) + "]")
    truth = f"{fresh.name}-{cam.name}.ground_truth.toml"
    M.write_mjpeg(dest / clip, stream)
    (dest / truth).write_text(
        M.stream_to_toml(stream, clip, derived, apps, how, extra, instance_of=instance_of))
    added_keys = {s.key for s in added}
    crossings: dict[str, int] = {}
    unused_crossings: dict[str, int] = {}
    for t in stream.tracks:
        crossings[t.category] = crossings.get(t.category, 0) + 1
        if t.stamp in added_keys and t.category in fresh.apps:
            unused_crossings[t.category] = unused_crossings.get(t.category, 0) + 1
    size = (dest / clip).stat().st_size
    log(f"{clip}: {len(stream.jpegs)} frames ({passes} passes of {fp.frames}), "
        f"{len(stream.tracks)} objects, {size / 1e6:.1f} MB; events: "
        + ", ".join(f"{a} {k}" for a, k in events.items()))
    return {
        "camera": cam.name,
        "clip": clip,
        "sha256": basenet.sha256_file(dest / clip),
        "truth": truth,
        "truth_sha256": basenet.sha256_file(dest / truth),
        "bytes": size,
        "frames": len(stream.jpegs),
        "seconds": len(stream.jpegs) / fresh.fps,
        "size": list(cam.size),
        "source": cam.file,
        "source_sha256": cam.sha256,
        "loop_frames": fp.frames,
        "passes": passes,
        "apps": apps,
        "excluded_apps": list(cam.exclude),
        "events": events,
        "crossings": dict(sorted(crossings.items())),
        "crossings_of_unused_instances": dict(sorted(unused_crossings.items())),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", type=Path, default=DEFAULT_RECIPE)
    ap.add_argument("--apps-recipe", type=Path, default=M.DEFAULT_RECIPE,
                    help="the M-Trainer recipe whose object split and compositing settings are used")
    ap.add_argument("--out", type=Path, default=basenet.REPO / "target" / "eval",
                    help="writes OUT/streams/")
    ap.add_argument("--work", type=Path, default=M.DEFAULT_WORK, help="footage cache under WORK/cache")
    ap.add_argument("--cameras", help="comma-separated cameras to make (default: all)")
    ap.add_argument("--check", type=Path, metavar="MANIFEST",
                    help="compare the streams' sha256 with this manifest; exit 1 on a difference")
    args = ap.parse_args()

    log = M.Progress()
    recipe = C.load_recipe(args.apps_recipe)
    fresh = load_fresh(args.recipe, recipe)
    cams = [c for c in fresh.cameras if not args.cameras or c.name in args.cameras.split(",")]
    log(f"{fresh.name}: recipe {args.recipe} (sha256 {fresh.sha256[:12]}), apps.toml sha256 "
        f"{recipe.sha256[:12]}, cameras {[c.name for c in cams]}")
    pools, instance_of, added = object_pools(recipe, fresh)
    stamps = C.StampImages()
    dest = args.out / "streams"
    dest.mkdir(parents=True, exist_ok=True)
    streams = [build_camera(recipe, fresh, cam, pools, instance_of, added, args.work / "cache", stamps,
                            dest, log) for cam in cams]
    manifest = {
        "set": fresh.name,
        "recipe": "trainer/" + args.recipe.name if args.recipe.parent == DEFAULT_RECIPE.parent
        else str(args.recipe),
        "recipe_sha256": fresh.sha256,
        "apps_recipe_sha256": recipe.sha256,
        "command": "/usr/bin/python3 trainer/fresh_streams.py"
        + (f" --cameras {args.cameras}" if args.cameras else ""),
        "tools": tool_versions(),
        "common_frames": min(s["frames"] for s in streams),
        "streams": streams,
        "instances": instance_table(recipe, fresh),
    }
    path = dest / f"{fresh.name}.manifest.json"
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    log(f"manifest {path}")
    if args.check:
        want = {s["clip"]: (s["sha256"], s["truth_sha256"])
                for s in json.loads(args.check.read_text())["streams"]}
        bad = [s["clip"] for s in streams if want.get(s["clip"]) != (s["sha256"], s["truth_sha256"])]
        if bad:
            log(f"--check {args.check}: differ: {', '.join(bad)}")
            sys.exit(1)
        log(f"--check {args.check}: every stream and ground truth has the committed sha256")
    log("done")


if __name__ == "__main__":
    main()
