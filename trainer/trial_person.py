"""Rebuilds the "tried as a new user" data set of trainer/README.md from the packages.

    bash trainer/setup.sh                         # vtest.avi, the opencv-doc .deb, the scikit-image wheel
    /usr/bin/python3 trainer/trial_person.py [--out DIR]   # default trainer/work/trial/person

Real footage and photos, no compositing: the app `person` ("a person in view") as a user with a
fixed camera over a campus path would make it. The sources, the views, the frame ranges and every
label are in trainer/trial/person/ (windows.csv, spans.csv, clips.csv, photos.csv: read them for
how the labels were made); this script only cuts and writes:

    OUT/photos/{positive,negative}/{opencv,skimage}-NAME     real sample photos
    OUT/clips/gate-XN.mjpeg + gate-XN.toml                  8 labelled training clips (10 fps)
    OUT/test/test.mjpeg + test.ground_truth.toml            the test clip, never trained or calibrated on
    OUT/SHA256SUMS                                          of every file above

Frames are the 192x192 windows of vtest.avi at full resolution, JPEG quality 90 (Pillow), so the
output is byte-identical for the same vtest.avi, ffmpeg and Pillow (SHA256SUMS says which;
trainer/README.md records the sums of one build).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

import basenet

HERE = Path(__file__).resolve().parent
LABELS = HERE / "trial" / "person"
APP = "person"
FPS = 10.0
SIZE = 192
VTEST = basenet.ASSETS / "footage" / "vtest.avi"
VTEST_SHA256 = "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf"
VTEST_SHAPE = (795, 576, 768)
CACHE = basenet.WORK / "cache"
OPENCV_DATA = "./usr/share/doc/opencv-doc/examples/data/"
SKIMAGE_DATA = "skimage/data/"
JPEG_QUALITY = 90


def rows(name: str) -> list[dict]:
    path = LABELS / name
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return list(csv.DictReader(lines))


def one(pattern: str) -> Path:
    found = sorted(CACHE.glob(pattern))
    if not found:
        raise SystemExit(f"trial_person.py: no {CACHE / pattern}: run bash trainer/setup.sh first")
    return found[-1]


def vtest_frames() -> np.ndarray:
    if not VTEST.is_file() or basenet.sha256_file(VTEST) != VTEST_SHA256:
        raise SystemExit(f"trial_person.py: {VTEST} missing or not the checked file: run bash trainer/setup.sh")
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(VTEST), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    n, h, w = VTEST_SHAPE
    if len(raw) != n * h * w * 3:
        raise SystemExit(f"trial_person.py: ffmpeg decoded {len(raw)} bytes of {VTEST}, want {n} frames of {w}x{h}")
    return np.frombuffer(raw, np.uint8).reshape(n, h, w, 3)


def jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def spans_in(spans: list[tuple[int, int]], first: int, last: int, offset: int) -> list[tuple[int, int]]:
    """The parts of SPANS (source frames) inside [first, last], as frames of a clip whose frame
    `offset` is source frame `first`."""
    return [(max(a, first) - first + offset, min(b, last) - first + offset) for a, b in spans
            if b >= first and a <= last]


def truth_toml(clip: str, frames: int, events: list[tuple[int, int]], made: str) -> str:
    return "\n".join([
        f"# Ground truth of {clip}, written by trainer/trial_person.py from trainer/trial/person/.",
        "format = 1",
        f'clip = "{clip}"',
        f"fps = {FPS}",
        f"frames = {frames}",
        f"width = {SIZE}",
        f"height = {SIZE}",
        f'made = "{made}"',
        "",
        "[[app]]",
        f'name = "{APP}"',
        'label = "person"',
        "events = [" + ", ".join(f"[{a}, {b}]" for a, b in events) + "]",
    ]) + "\n"


def build_photos(out: Path) -> int:
    deb = one("opencv-doc_*_all.deb")
    whl = one("scikit_image-0.26.0-*.whl")
    want = {(r["source"], r["name"]): r["label"] for r in rows("photos.csv")}
    got: dict[tuple[str, str], bytes] = {}
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar.getmembers():
            if m.isfile() and m.name.startswith(OPENCV_DATA) and ("opencv", m.name[len(OPENCV_DATA):]) in want:
                got[("opencv", m.name[len(OPENCV_DATA):])] = tar.extractfile(m).read()
    with zipfile.ZipFile(whl) as z:
        for n in z.namelist():
            if n.startswith(SKIMAGE_DATA) and ("skimage", n[len(SKIMAGE_DATA):]) in want:
                got[("skimage", n[len(SKIMAGE_DATA):])] = z.read(n)
    missing = sorted(set(want) - set(got))
    if missing:
        raise SystemExit(f"trial_person.py: photos.csv lists files the packages lack: {missing}")
    n = 0
    for (src, name), label in sorted(want.items()):
        if label == "skip":
            continue
        dest = out / "photos" / label / f"{src}-{name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(got[(src, name)])
        n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=basenet.WORK / "trial" / APP)
    args = ap.parse_args()
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    windows = {r["window"]: (int(r["x"]), int(r["y"])) for r in rows("windows.csv")}
    spans: dict[str, list[tuple[int, int]]] = {w: [] for w in windows}
    for r in rows("spans.csv"):
        spans[r["window"]].append((int(r["first"]), int(r["last"])))
    frames = vtest_frames()

    def view(w: str, i: int) -> np.ndarray:
        x, y = windows[w]
        return frames[i, y : y + SIZE, x : x + SIZE]

    parts: dict[str, list[tuple[str, int, int]]] = {}
    for r in rows("clips.csv"):
        parts.setdefault(r["clip"], []).append((r["window"], int(r["first"]), int(r["last"])))
    for clip, ps in parts.items():
        jpegs: list[bytes] = []
        events: list[tuple[int, int]] = []
        for w, a, b in ps:
            events += spans_in(spans[w], a, b, len(jpegs))
            jpegs += [jpeg(view(w, i)) for i in range(a, b + 1)]
        for (a1, b1), (a2, b2) in zip(events, events[1:]):
            if a2 <= b1 + 1:
                raise SystemExit(f"trial_person.py: {clip}: events {a1}-{b1} and {a2}-{b2} touch; reorder clips.csv")
        test = clip == "test"
        d = out / ("test" if test else "clips")
        d.mkdir(exist_ok=True)
        name = f"{clip}.mjpeg"
        (d / name).write_bytes(b"".join(jpegs))
        made = "vtest.avi " + "; ".join(f"window {w} ({windows[w][0]},{windows[w][1]}) frames {a}..{b}" for w, a, b in ps)
        (d / (f"{clip}.ground_truth.toml" if test else f"{clip}.toml")).write_text(
            truth_toml(name, len(jpegs), events, made))
        print(f"{d / name}: {len(jpegs)} frames, {len(events)} events")
    n = build_photos(out)
    print(f"{out / 'photos'}: {n} photos")
    sums = []
    for f in sorted(p for p in out.rglob("*") if p.is_file()):
        sums.append(f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.relative_to(out)}")
    ff = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.splitlines()[0]
    import PIL

    (out / "SHA256SUMS").write_text(f"# {ff}; Pillow {PIL.__version__}\n" + "\n".join(sums) + "\n")
    for ln in sums:
        if ".mjpeg" in ln:
            print(ln)


if __name__ == "__main__":
    sys.exit(main())
