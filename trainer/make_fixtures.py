"""Writes the ImageNet reference fixtures for the runtime tests (tests/fixtures/imagenet/).

For three real photos from scikit-image's sample data (fetched by trainer/setup.sh):
  <name>.jpg          the photo as the tests decode it (coffee and chelsea are PNG in
                      scikit-image: re-encoded here with PIL as JPEG quality 90, 4:4:4; rocket
                      is scikit-image's own JPEG, byte for byte);
  <name>.input.f32    the [1,3,224,224] float32 tensor PyTorch saw, raw little-endian, made by
                      torchvision's evaluation transform from the JPEG as PIL decodes it;
  <name>.logits.f32   PyTorch's [1,1000] logits, raw little-endian float32;
and for coffee, a few branch-point tensors `coffee.bpNN.f32` (all of them would exceed 3 MB).
expected.toml records the preprocessing geometry, the top-5 classes and every file's sha256.

Deterministic: one torch thread, fixed inputs; a rerun rewrites identical bytes. Also checks
that the exported ONNX file (models/mobilenet_v2) gives the same top-5 in ONNX Runtime and
that the input tensor equals the documented arithmetic on the decoded, resized pixels.

Usage: bash trainer/setup.sh && /usr/bin/python3 trainer/export_base.py &&
       /usr/bin/python3 trainer/make_fixtures.py
"""

from __future__ import annotations

import io
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image

import basenet

OUT_DIR = basenet.REPO / "tests" / "fixtures" / "imagenet"
SKIMAGE = "scikit-image 0.26.0"
JPEG_QUALITY = 90
# Branch points stored for coffee: after features.3 (early, 56x56), features.7, features.14
# and features.17 (the heads the asset notes size), and the pooled vector.
COFFEE_BRANCH_POINTS = (4, 8, 15, 18, 20)
TOP_K = 5
RTOL = 1e-5


@dataclass(frozen=True)
class Photo:
    name: str
    source: str  # file name under trainer/work/assets/skimage
    description: str
    licence: str


PHOTOS = (
    Photo(
        "coffee",
        "coffee.png",
        "A cup of coffee on a wooden table (skimage.data.coffee)",
        "CC0 (photographer Rachel Michetti, courtesy of Pikolo Espresso Bar)",
    ),
    Photo(
        "chelsea",
        "chelsea.png",
        "Chelsea the cat (skimage.data.chelsea)",
        "CC0 (photographer Stefan van der Walt)",
    ),
    Photo(
        "rocket",
        "rocket.jpg",
        "Falcon 9 with DSCOVR on the launch pad (skimage.data.rocket)",
        "Public domain (released by SpaceX)",
    ),
)


def jpeg_bytes(photo: Photo) -> tuple[bytes, str]:
    """The JPEG the fixtures are made from, and how it was obtained."""
    src = basenet.ASSETS / "skimage" / photo.source
    if not src.is_file():
        raise SystemExit(f"{src} is missing: run `bash trainer/setup.sh` first")
    if src.suffix == ".jpg":
        return src.read_bytes(), f"{SKIMAGE} skimage/data/{photo.source}, unchanged"
    with Image.open(src) as img:
        buf = io.BytesIO()
        # No ICC profile or other metadata is carried over; 4:4:4 keeps chroma upsampling
        # (where JPEG decoders differ most) out of the comparison.
        img.convert("RGB").save(buf, "JPEG", quality=JPEG_QUALITY, subsampling=0)
    how = (
        f"{SKIMAGE} skimage/data/{photo.source}, re-encoded with PIL {PIL.__version__} as "
        f"JPEG quality {JPEG_QUALITY}, 4:4:4, baseline"
    )
    return buf.getvalue(), how


def f32_bytes(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype="<f4").tobytes()


def check_normalisation(img: Image.Image, pre: basenet.Preprocessed) -> None:
    """The tensor must be exactly (u8 / 255 - mean) / std in float32 over the resized, cropped
    pixels: the arithmetic the manifest documents for other implementations."""
    rgb = img.convert("RGB").resize(pre.resized_size, Image.BILINEAR)
    left, top = pre.crop_left, pre.crop_top
    crop = np.asarray(rgb, dtype=np.uint8)[top : top + 224, left : left + 224]
    x = crop.astype(np.float32) / np.float32(255.0)
    x = (x - np.asarray(basenet.MEAN, np.float32)) / np.asarray(basenet.STD, np.float32)
    x = x.transpose(2, 0, 1)[None]
    if not np.array_equal(x, pre.tensor.numpy()):
        diff = np.max(np.abs(x - pre.tensor.numpy()))
        raise SystemExit(f"the documented normalisation differs from torchvision by {diff}")


def toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def toml_f32(v) -> str:
    return repr(float(np.float32(v)))


def main() -> int:
    model = basenet.load_model()
    cats = basenet.categories()
    manifest_path = basenet.MODEL_DIR / basenet.MANIFEST_NAME
    onnx_path = basenet.MODEL_DIR / basenet.ONNX_NAME
    if not manifest_path.is_file() or not onnx_path.is_file():
        raise SystemExit("models/mobilenet_v2 is missing: run trainer/export_base.py first")
    manifest = tomllib.loads(manifest_path.read_text())
    if basenet.sha256_file(onnx_path) != manifest["onnx_sha256"]:
        raise SystemExit(f"{onnx_path} does not match its manifest: rerun export_base.py")
    points = {bp["index"]: bp for bp in manifest["branch_point"]}

    files: dict[str, bytes] = {}
    lines = [
        "# Reference outputs of torchvision's MobileNetV2 (IMAGENET1K_V1) for the runtime tests.",
        "# Generated by trainer/make_fixtures.py; do not edit by hand. See models/README.md.",
        "#",
        "# *.f32 files: raw little-endian float32, row-major, in the shape given.",
        "# <name>.input.f32 is what PyTorch saw: the JPEG decoded by PIL (libjpeg-turbo) to RGB,",
        "# short side resized to 256 with PIL's bilinear filter (antialiased when shrinking;",
        "# long side = int(256 * long / short)), center crop 224 at (crop_left, crop_top) =",
        "# (round((w - 224) / 2), round((h - 224) / 2)), then per channel in float32:",
        "# (u8 / 255.0 - mean) / std, laid out NCHW. <name>.logits.f32 is PyTorch's output.",
        "",
        "[model]",
        f"weights_sha256 = {toml_str(basenet.WEIGHTS_SHA256)}",
        f"onnx_sha256 = {toml_str(manifest['onnx_sha256'])}",
        f"torch = {toml_str(torch.__version__)}",
        f"torchvision = {toml_str(torchvision.__version__)}",
        f"pil = {toml_str(PIL.__version__)}",
        f"input_shape = {list(basenet.INPUT_SHAPE)}",
        "logits_shape = [1, 1000]",
    ]
    report = []
    with tempfile.TemporaryDirectory(dir=basenet.WORK) as tmpdir:
        tmp = Path(tmpdir)
        for photo in PHOTOS:
            jpeg, how = jpeg_bytes(photo)
            with Image.open(io.BytesIO(jpeg)) as img:
                if img.format != "JPEG":
                    raise SystemExit(f"{photo.name}: not a JPEG")
                pre = basenet.preprocess(img)
                check_normalisation(img, pre)
            tensors = basenet.capture(model, pre.tensor)
            logits = tensors[basenet.OUTPUT_NAME][0]
            order = np.argsort(-logits, kind="stable")[:TOP_K]

            ort, _ = basenet.run_ort(onnx_path, pre.tensor.numpy(), tmp)
            ort_logits = ort[basenet.OUTPUT_NAME][0]
            diff = float(np.max(np.abs(ort_logits - logits)))
            if diff > RTOL * max(1.0, float(np.max(np.abs(logits)))):
                raise SystemExit(f"{photo.name}: onnxruntime logits differ by {diff}")
            if list(np.argsort(-ort_logits, kind="stable")[:TOP_K]) != list(order):
                raise SystemExit(f"{photo.name}: onnxruntime top-{TOP_K} differs")

            names = {
                "jpeg": f"{photo.name}.jpg",
                "input": f"{photo.name}.input.f32",
                "logits": f"{photo.name}.logits.f32",
            }
            files[names["jpeg"]] = jpeg
            files[names["input"]] = f32_bytes(tensors[basenet.INPUT_NAME])
            files[names["logits"]] = f32_bytes(tensors[basenet.OUTPUT_NAME])
            assert len(files[names["input"]]) == 602112

            src_sha = basenet.sha256_file(basenet.ASSETS / "skimage" / photo.source)
            lines += [
                "",
                "[[photo]]",
                f"name = {toml_str(photo.name)}",
                f"description = {toml_str(photo.description)}",
                f"licence = {toml_str(photo.licence)}",
                f"source = {toml_str(how)}",
                f"source_sha256 = {toml_str(src_sha)}",
                f"jpeg = {toml_str(names['jpeg'])}",
                f"jpeg_sha256 = {toml_str(basenet.sha256_bytes(jpeg))}",
                f"width = {pre.source_size[0]}",
                f"height = {pre.source_size[1]}",
                f"resized_width = {pre.resized_size[0]}",
                f"resized_height = {pre.resized_size[1]}",
                f"crop_left = {pre.crop_left}",
                f"crop_top = {pre.crop_top}",
                f"input = {toml_str(names['input'])}",
                f"input_sha256 = {toml_str(basenet.sha256_bytes(files[names['input']]))}",
                f"logits = {toml_str(names['logits'])}",
                f"logits_sha256 = {toml_str(basenet.sha256_bytes(files[names['logits']]))}",
                f"onnxruntime_max_abs_diff = {diff:.3e}",
                "top5 = [",
            ]
            for i in order:
                lines.append(
                    f"    {{ index = {int(i)}, name = {toml_str(cats[i])}, "
                    f"logit = {toml_f32(logits[i])} }},"
                )
            lines.append("]")
            report.append(
                f"{photo.name:8} top-5: "
                + "; ".join(f"{int(i)} {cats[i]} {logits[i]:.3f}" for i in order)
            )

            if photo.name == "coffee":
                for idx in COFFEE_BRANCH_POINTS:
                    bp = points[idx]
                    t = tensors[bp["tensor"]]
                    if list(t.shape) != bp["shape"]:
                        raise SystemExit(f"{bp['tensor']}: shape {t.shape} vs manifest")
                    fname = f"coffee.bp{idx:02d}.f32"
                    files[fname] = f32_bytes(t)
                    lines += [
                        "",
                        "[[branch_tensor]]",
                        'photo = "coffee"',
                        f"index = {idx}",
                        f"tensor = {toml_str(bp['tensor'])}",
                        f"follows = {toml_str(bp['follows'])}",
                        f"shape = {bp['shape']}",
                        f"file = {toml_str(fname)}",
                        f"sha256 = {toml_str(basenet.sha256_bytes(files[fname]))}",
                    ]

    text = "\n".join(lines) + "\n"
    parsed = tomllib.loads(text)
    assert len(parsed["photo"]) == len(PHOTOS)
    files["expected.toml"] = text.encode()

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    # Only files this script makes are ever removed (a branch point no longer stored).
    ours = {p.name for p in OUT_DIR.iterdir() if p.is_file() and p.suffix in (".f32", ".jpg")}
    stale = ours - set(files)
    for name in sorted(stale):
        (OUT_DIR / name).unlink()
    for name, data in sorted(files.items()):
        (OUT_DIR / name).write_bytes(data)
    total = sum(len(d) for d in files.values())
    print(f"wrote {len(files)} files, {total} bytes, to {OUT_DIR}")
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
