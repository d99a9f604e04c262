"""The user's own labelled data for `mtrainer.py train`: photos and labelled clips.

Photos: IMAGES/positive/ and IMAGES/negative/ (any depth, anything Pillow reads), or
IMAGES/{train,val,test}/{positive,negative}/ when the user splits them. Without split folders
each photo goes to a split by its content hash (stable when photos are added); near-duplicate
photos (a perceptual hash of what the network sees) are kept on one side of every split.

Clips: every video file ffmpeg decodes in CLIPS/ (any depth), each with its event spans beside
it, in one of two forms:

  CLIP.csv   a header saying the unit, then one span per line, both ends inclusive:
                 start_s,end_s           seconds from the clip's start (a frame i covers
                                         [i / fps, (i + 1) / fps)), or
                 start_frame,end_frame   0-based frame numbers
  CLIP.toml  the project's ground-truth format (models/README.md, "Demo clip"): `fps`, and one
             `[[app]]` with `events = [[first, last], ...]` in frames (the one named after the
             app, or the only one).

Frames inside a span are positives, frames more than `margin` away from every span negatives,
the rest is not used for training. Every error names the file (and line) it is about; bad
photos are skipped and counted, bad clips and spans stop the run (exit 65, EX_DATAERR).

Nothing here imports torch: composite.network_view (torchvision's functional transforms on
PIL images) is the only part of the trainer it uses, so tests run quickly.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

SPLITS = ("train", "val", "test")
CLASSES = ("negative", "positive")  # label 0, 1
# Shares of the hash split (the rest is train). Same as the recipe's [split] shares.
VAL_SHARE = 0.2
TEST_SHARE = 0.2
# A class needs this many photos + clip frames in all: at least 1 validation and 1 test example
# per class (early stopping and the test metrics need both classes), and below 10 the test
# split's accuracy and false-positive rate - the numbers the planner trusts - are a coin toss
# (one wrong image moves them by 0.5).
MIN_PER_CLASS = 10
# Two network views whose 256-bit difference hashes (16x16 gradients) differ in at most this
# many bits are near-duplicates (resized, recompressed or lightly edited copies of one photo
# differ in 0-6 bits; two frames of a fixed camera with different people in view, in 20 or more).
HASH_SIDE = 16
NEAR_DUPLICATE_BITS = 10
VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mjpeg", ".mjpg", ".mjp", ".y4m", ".mov", ".webm",
                  ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".ogv"}
EX_DATAERR = 65


class DataError(SystemExit):
    """Bad user data: the message names the file; exit status 65 (EX_DATAERR)."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg
        self.code = EX_DATAERR

    def __str__(self) -> str:
        return self.msg


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts (split assignment)."""
    h = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def view_of(img: Image.Image) -> np.ndarray:
    import composite  # torchvision; imported late so that `--help` is quick

    return composite.network_view(img)


def dhash(view: np.ndarray) -> np.ndarray:
    """256-bit difference hash of a network view (17x16 grey, one bit per horizontal gradient)
    as 4 uint64 words."""
    g = Image.fromarray(view).convert("L").resize((HASH_SIDE + 1, HASH_SIDE), Image.BILINEAR)
    a = np.asarray(g, dtype=np.int16)
    bits = (a[:, 1:] > a[:, :-1]).flatten()
    return np.packbits(bits).view(np.uint64).copy()


_POP8 = np.array([bin(i).count("1") for i in range(256)], np.int64)


def _popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint64."""
    return _POP8[np.ascontiguousarray(x, dtype=np.uint64).view(np.uint8).reshape(-1, 8)].sum(1)


# --------------------------------------------------------------------------------------------
# Photos


@dataclass
class Photo:
    path: Path
    label: int  # 1 positive, 0 negative
    sha256: str
    view: np.ndarray  # uint8 [224, 224, 3]
    dhash: np.ndarray  # 4 x uint64
    split: str = ""
    given_split: str | None = None  # from a split folder


@dataclass
class PhotoReport:
    files: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    exact_duplicates: list[tuple[str, str]] = field(default_factory=list)  # (kept, dropped)
    conflicting: list[tuple[str, str]] = field(default_factory=list)  # same photo, both labels
    near_duplicates: list[dict] = field(default_factory=list)
    moved: list[dict] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = []
        if self.skipped:
            out.append(f"skipped {len(self.skipped)} of {self.files} files that are not readable "
                       f"images:")
            out += [f"  {p}: {why}" for p, why in self.skipped[:20]]
            if len(self.skipped) > 20:
                out.append(f"  ... and {len(self.skipped) - 20} more (metrics.json lists all)")
        if self.exact_duplicates:
            out.append(f"{len(self.exact_duplicates)} exact duplicate files used once: "
                       + ", ".join(f"{b} (= {a})" for a, b in self.exact_duplicates[:5])
                       + (" ..." if len(self.exact_duplicates) > 5 else ""))
        if self.near_duplicates:
            out.append(f"{len(self.near_duplicates)} near-duplicate pairs (difference hash within "
                       f"{NEAR_DUPLICATE_BITS} bits) kept in one split:")
            out += [f"  {d['a']} ~ {d['b']} ({d['bits']} bits): {d['action']}"
                    for d in self.near_duplicates[:20]]
            if len(self.near_duplicates) > 20:
                out.append(f"  ... and {len(self.near_duplicates) - 20} more (metrics.json lists all)")
        return out

    def json(self) -> dict:
        return {"files": self.files, "skipped": [{"file": p, "why": w} for p, w in self.skipped],
                "exact_duplicates": [{"kept": a, "dropped": b} for a, b in self.exact_duplicates],
                "near_duplicates": self.near_duplicates, "moved_for_class_balance": self.moved}


def _files(d: Path) -> list[Path]:
    out = []
    for root, dirs, files in os.walk(d, followlinks=True):
        dirs[:] = sorted(x for x in dirs if not x.startswith("."))
        out += [Path(root) / f for f in sorted(files) if not f.startswith(".")]
    return out


def read_photo(path: Path) -> tuple[Image.Image, bytes]:
    """The photo as RGB (EXIF orientation applied, transparency over white); raises OSError or
    ValueError (with Pillow's reason) for anything Pillow cannot read in full."""
    data = path.read_bytes()
    import io

    im = Image.open(io.BytesIO(data))
    im.load()  # a truncated file fails here, not later
    im = ImageOps.exif_transpose(im)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    return im.convert("RGB"), data


def scan_photos(root: Path, report: PhotoReport) -> list[Photo]:
    """Every readable photo under ROOT/positive and ROOT/negative (or ROOT/<split>/...)."""
    if not root.is_dir():
        raise DataError(f"{root}: not a directory (--images wants a folder with positive/ and negative/)")
    split_dirs = [s for s in SPLITS if (root / s).is_dir()]
    class_dirs = [c for c in CLASSES if (root / c).is_dir()]
    if split_dirs and class_dirs:
        raise DataError(f"{root}: holds both split folders ({', '.join(split_dirs)}) and class folders "
                        f"({', '.join(class_dirs)}); use either {root}/positive + {root}/negative, or "
                        f"{root}/train/positive, {root}/train/negative, ... (val/ and test/ optional)")
    if split_dirs and "train" not in split_dirs:
        raise DataError(f"{root}: has {', '.join(split_dirs)}/ but no train/ folder")
    groups = [(s, root / s) for s in split_dirs] if split_dirs else [(None, root)]
    photos: list[Photo] = []
    seen: dict[str, Photo] = {}
    for given, d in groups:
        present = [c for c in CLASSES if (d / c).is_dir()]
        if not present:
            raise DataError(f"{d}: no positive/ or negative/ folder (photos of the event go in "
                            f"{d}/positive/, photos without it in {d}/negative/)")
        for label, cname in enumerate(CLASSES):
            for p in _files(d / cname) if (d / cname).is_dir() else []:
                report.files += 1
                try:
                    img, data = read_photo(p)
                except Exception as e:  # Pillow raises many types for bad files
                    report.skipped.append((str(p), f"{type(e).__name__}: {e}".strip()))
                    continue
                h = sha256_bytes(data)
                if h in seen:
                    first = seen[h]
                    if first.label != label:
                        report.conflicting.append((str(first.path), str(p)))
                    else:
                        report.exact_duplicates.append((str(first.path), str(p)))
                    continue
                v = view_of(img)
                ph = Photo(p, label, h, v, dhash(v), given_split=given)
                seen[h] = ph
                photos.append(ph)
    if report.conflicting:
        a, b = report.conflicting[0]
        raise DataError(f"{b} is the same file as {a}, one in positive/ and one in negative/: a photo "
                        f"cannot be both ({len(report.conflicting)} such pairs); remove one copy")
    return photos


def near_duplicate_groups(hashes: list[np.ndarray], bits: int = NEAR_DUPLICATE_BITS) -> tuple[list[int], list[tuple[int, int, int]]]:
    """Union-find over pairs whose hashes differ in at most `bits` bits. Returns (group id per
    item, the pairs (i, j, distance))."""
    n = len(hashes)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    arr = np.array(hashes, dtype=np.uint64).reshape(n, -1)
    pairs = []
    for i in range(n - 1):
        d = _popcount(np.bitwise_xor(arr[i + 1:], arr[i])).reshape(n - i - 1, -1).sum(1)
        for j in np.nonzero(d <= bits)[0]:
            j = int(j) + i + 1
            pairs.append((i, j, int(d[j - i - 1])))
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    return [find(i) for i in range(n)], pairs


def hash_split(key: str, seed: int) -> str:
    u = unit(seed, "split", key)
    return "test" if u < TEST_SHARE else "val" if u < TEST_SHARE + VAL_SHARE else "train"


def quota_splits(blocks: list[tuple[str, int]], seed: int) -> dict[str, str]:
    """Splits for clip blocks (key, frames taken from it): in the order of the keys' hashes, each
    block goes to the split furthest below its share (test, then val, then train on a tie), so
    that the splits get VAL_SHARE and TEST_SHARE of the frames however few blocks there are.
    (A split by each block's own hash, like the photos', gave a test split of 3 clip frames out
    of 290 for 12 blocks of real footage; the photos' hash split stays, so that adding photos
    moves none.)"""
    share = {"test": TEST_SHARE, "val": VAL_SHARE, "train": 1.0 - TEST_SHARE - VAL_SHARE}
    got = {s: 0 for s in share}
    total = 0
    out: dict[str, str] = {}
    for key, n in sorted(blocks, key=lambda b: (unit(seed, "split", b[0]), b[0])):
        total += n
        split = max(share, key=lambda s: (share[s] * total - got[s], -list(share).index(s)))
        got[split] += n
        out[key] = split
    return out


def assign_splits(photos: list[Photo], seed: int, report: PhotoReport) -> None:
    """Split folders win; otherwise the content hash decides (a near-duplicate group goes where
    its smallest hash goes, so no group straddles two splits). Given splits that hold two
    near-duplicates are fixed by moving the val/test copy to the earliest split of its group
    (train before val before test) and reported."""
    groups, pairs = near_duplicate_groups([p.dhash for p in photos])
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    order = {s: i for i, s in enumerate(SPLITS)}
    for g, idx in members.items():
        given = [photos[i].given_split for i in idx]
        if given[0] is None:
            split = hash_split(min(photos[i].sha256 for i in idx), seed)
            for i in idx:
                photos[i].split = split
        else:
            given_val = {photos[i].given_split for i in idx}
            if len(given_val) > 1:
                # Given splits straddled by near-duplicates: keep the group in the earliest split.
                split = min(given_val, key=order.get)
                for i in idx:
                    photos[i].split = split
            else:
                for i in idx:
                    photos[i].split = photos[i].given_split
    # Given split folders without val/ or test/: carve them out of train by hash.
    given_splits = {p.given_split for p in photos if p.given_split}
    if given_splits:
        for p in photos:
            if p.split == "train" and p.given_split == "train":
                h = hash_split(p.sha256, seed)
                if h != "train" and h not in given_splits:
                    p.split = h
    for i, j, d in pairs:
        a, b = photos[i], photos[j]
        if a.given_split and a.given_split != b.given_split:
            action = f"both in {a.split} (given {a.given_split} and {b.given_split})"
        elif a.given_split:
            action = f"both in {a.split} (as given)"
        else:
            action = f"both in {a.split} (hash split)"
        if a.label != b.label:
            action += "; WARNING: one is positive, the other negative"
        report.near_duplicates.append({"a": str(a.path), "b": str(b.path), "bits": d, "action": action})


# --------------------------------------------------------------------------------------------
# Clips


@dataclass
class ClipInfo:
    path: Path
    spans_file: Path
    fps: float
    width: int
    height: int
    frames: int  # decoded frames
    spans: list[tuple[int, int]]  # inclusive frame ranges
    sha256: str


def probe(path: Path) -> tuple[int, int, float]:
    """(width, height, fps) of the first video stream; DataError naming the file if ffmpeg cannot
    read it."""
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=width,height,avg_frame_rate,r_frame_rate", "-of", "json", str(path)],
        capture_output=True, text=True,
    )
    if r.returncode != 0:
        why = (r.stderr.strip().splitlines() or ["no reason given"])[-1]
        raise DataError(f"{path}: ffmpeg cannot decode this clip ({why})")
    streams = json.loads(r.stdout or "{}").get("streams") or []
    if not streams:
        raise DataError(f"{path}: ffmpeg finds no video stream in this file")
    s = streams[0]

    def rate(x: str | None) -> float:
        try:
            a, b = (x or "0/0").split("/")
            return float(a) / float(b) if float(b) else 0.0
        except ValueError:
            return 0.0

    fps = rate(s.get("avg_frame_rate")) or rate(s.get("r_frame_rate"))
    if not fps or not s.get("width"):
        raise DataError(f"{path}: ffmpeg reports no frame size or frame rate for its video stream")
    return int(s["width"]), int(s["height"]), fps


def decode(path: Path, width: int, height: int, each=None) -> int:
    """Decodes every frame (no rate conversion) as RGB and calls each(index, [h, w, 3] uint8) in
    order, streaming (a long clip never sits in memory). Returns the frame count; DataError if
    ffmpeg fails part-way or yields nothing."""
    proc = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(path), "-map", "0:v:0",
         "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    size = width * height * 3
    n = 0
    assert proc.stdout is not None
    while True:
        buf = proc.stdout.read(size)
        if not buf:
            break
        if len(buf) < size:
            break
        if each is not None:
            each(n, np.frombuffer(buf, np.uint8).reshape(height, width, 3))
        n += 1
    proc.stdout.close()
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.stderr.close()
    rc = proc.wait()
    if rc != 0 or n == 0:
        why = (err.strip().splitlines() or ["no frames"])[-1]
        raise DataError(f"{path}: ffmpeg cannot decode this clip ({why}; {n} frames decoded)")
    return n


def spans_file_of(clip: Path) -> Path:
    cands = [clip.with_suffix(".csv"), clip.with_suffix(".toml"),
             clip.parent / (clip.name + ".csv"), clip.parent / (clip.name + ".toml"),
             clip.with_suffix(".ground_truth.toml")]
    found = [c for c in cands if c.is_file()]
    if not found:
        raise DataError(f"{clip}: no event spans beside it; write {clip.with_suffix('.csv')} (a header "
                        f"`start_s,end_s` or `start_frame,end_frame`, then one span per line) or "
                        f"{clip.with_suffix('.toml')} (the ground-truth format)")
    if len(found) > 1:
        raise DataError(f"{clip}: several span files ({', '.join(str(f) for f in found)}); keep one")
    return found[0]


def read_spans(path: Path, fps: float, app: str) -> tuple[list[tuple[int, int, str]], float]:
    """Spans as (first, last, where) inclusive frames, `where` = 'FILE:LINE' for messages; and the
    fps the TOML declares (or `fps`)."""
    out: list[tuple[int, int, str]] = []
    if path.suffix == ".toml":
        try:
            t = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{path}: not valid TOML ({e})")
        apps = t.get("app") or []
        pick = [a for a in apps if a.get("name") == app] or (apps if len(apps) == 1 else [])
        if not pick:
            names = ", ".join(str(a.get("name")) for a in apps) or "none"
            raise DataError(f"{path}: no [[app]] named {app!r} (apps: {names}); name it {app!r} "
                            f"or keep only one [[app]]")
        events = pick[0].get("events")
        if not isinstance(events, list):
            raise DataError(f"{path}: [[app]] {pick[0].get('name')!r} has no `events = [[first, last], ...]`")
        for i, e in enumerate(events):
            where = f"{path}: events[{i}]"
            if not (isinstance(e, list) and len(e) == 2 and all(isinstance(x, int) for x in e)):
                raise DataError(f"{where}: {e!r} is not [first_frame, last_frame]")
            out.append((e[0], e[1], where))
        if "fps" in t:
            fps = float(t["fps"])
        return out, fps
    lines = path.read_text(errors="replace").splitlines()
    rows = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")]
    if not rows:
        return out, fps
    header = [c.strip().lower() for c in rows[0][1].split(",")]
    if header == ["start_s", "end_s"]:
        seconds = True
    elif header == ["start_frame", "end_frame"]:
        seconds = False
    else:
        raise DataError(f"{path}:{rows[0][0]}: the first line must say the unit: `start_s,end_s` "
                        f"(seconds) or `start_frame,end_frame` (0-based frames), not {rows[0][1]!r}")
    for lineno, ln in rows[1:]:
        where = f"{path}:{lineno}"
        cells = next(csv.reader([ln]))
        if len(cells) != 2:
            raise DataError(f"{where}: want two values (start,end), got {ln!r}")
        try:
            a, b = (float(c) for c in cells)
        except ValueError:
            raise DataError(f"{where}: {ln!r} is not two numbers")
        if not (math.isfinite(a) and math.isfinite(b)) or a < 0:
            raise DataError(f"{where}: {ln!r}: a span starts at 0 or later")
        if b < a:
            raise DataError(f"{where}: the span {ln!r} ends before it starts")
        if seconds:
            first = int(math.floor(a * fps + 1e-9))
            last = max(first, int(math.ceil(b * fps - 1e-9)) - 1)
        else:
            if a != int(a) or b != int(b):
                raise DataError(f"{where}: frame numbers are whole numbers, got {ln!r}")
            first, last = int(a), int(b)
        out.append((first, last, where))
    return out, fps


def check_spans(clip: Path, spans: list[tuple[int, int, str]], frames: int, fps: float) -> list[tuple[int, int]]:
    if not spans:
        raise DataError(f"{clip}: its span file lists no event; every clip needs at least one span "
                        f"(footage without the event belongs in --images negative/ as photos, or "
                        f"give the clip its spans)")
    for a, b, where in spans:
        if b >= frames:
            raise DataError(f"{where}: the span [{a}, {b}] (frames) ends past the clip's end: "
                            f"{clip} has {frames} frames ({frames / fps:.2f} s at {fps:g} fps)")
    s = sorted(spans)
    for (a1, b1, w1), (a2, b2, w2) in zip(s, s[1:]):
        if a2 <= b1:
            raise DataError(f"{w2}: the span [{a2}, {b2}] overlaps [{a1}, {b1}] ({w1}); merge them")
    return [(a, b) for a, b, _ in s]


def find_clips(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DataError(f"{root}: not a directory (--clips wants a folder of clips with span files)")
    clips = [p for p in _files(root) if p.suffix.lower() in VIDEO_SUFFIXES]
    if not clips:
        raise DataError(f"{root}: no video file ({', '.join(sorted(VIDEO_SUFFIXES))})")
    return clips


def clip_info(clip: Path, app: str) -> ClipInfo:
    """Probes the clip, counts its frames and checks its spans (no frames kept)."""
    w, h, fps = probe(clip)
    sf = spans_file_of(clip)
    raw, fps = read_spans(sf, fps, app)
    n = decode(clip, w, h)
    spans = check_spans(clip, raw, n, fps)
    return ClipInfo(clip, sf, fps, w, h, n, spans, hashlib.sha256(clip.read_bytes()).hexdigest())


def frame_roles(n: int, spans: list[tuple[int, int]], margin: int) -> np.ndarray:
    """Per frame: 1 inside a span, 0 more than `margin` frames from every span, -1 otherwise."""
    role = np.zeros(n, np.int8)
    for a, b in spans:
        role[max(0, a - margin): min(n, b + margin + 1)] = -1
    for a, b in spans:
        role[a: b + 1] = 1
    return role


def holdout_cut(n: int, spans: list[tuple[int, int]], share: float) -> int | None:
    """A frame index near n * (1 - share) outside every span, such that both sides hold at least
    one span; None if there is none (one span only)."""
    if len(spans) < 2:
        return None
    want = int(round(n * (1.0 - share)))
    cands = []
    for i in range(1, len(spans)):
        lo, hi = spans[i - 1][1] + 1, spans[i][0]  # cut anywhere in [lo, hi]
        cands.append(min(max(want, lo), hi))
    return min(cands, key=lambda c: abs(c - want))
