"""The MobileNetV2 base network shared by the trainer scripts.

One place for what export_base.py and make_fixtures.py must agree on: where the weights and
outputs live, how the torchvision model is built and loaded, the branch points (their tensor
names and the torchvision module each one follows), the standard ImageNet preprocessing, and
a forward pass that captures every branch-point tensor.

Run with Debian's /usr/bin/python3 (torch 1.13, torchvision 0.14, onnx 1.12, numpy 1.24) after
`bash trainer/setup.sh`.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "trainer" / "work"
ASSETS = WORK / "assets"
WEIGHTS = ASSETS / "mobilenet_v2-b0353104.pth"
WEIGHTS_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
MODEL_DIR = REPO / "models" / "mobilenet_v2"
ONNX_NAME = "mobilenet_v2.onnx"
MANIFEST_NAME = "manifest.toml"
LABELS_NAME = "imagenet_classes.txt"
ORT_PYTHON = WORK / "ort-venv" / "bin" / "python"

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
INPUT_SHAPE = (1, 3, 224, 224)
RESIZE_SHORT_SIDE = 256
CROP_SIZE = 224
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

# features.0 .. features.18 of torchvision's MobileNetV2.
N_FEATURES = 19


@dataclass(frozen=True)
class BranchPoint:
    """A tensor at which the network can be cut: the shared stem ends here, a head starts."""

    index: int
    tensor: str
    # The torchvision module whose output this tensor is ("" for the network input).
    follows: str


def branch_points() -> list[BranchPoint]:
    """All cut points in network order, ending with the logits.

    Index 0 is the input (No-Sharing: the head is the whole network), 1..19 follow
    features.0..features.18, 20 is the pooled 1280-d vector (Max-Sharing: the head is only
    the classifier), and 21 is the network output itself.
    """
    points = [BranchPoint(0, INPUT_NAME, "")]
    for k in range(N_FEATURES):
        points.append(BranchPoint(k + 1, f"bp{k + 1:02d}_features.{k}", f"features.{k}"))
    # MobileNetV2.forward pools and flattens functionally: there is no module to name.
    points.append(
        BranchPoint(N_FEATURES + 1, f"bp{N_FEATURES + 1:02d}_pool", "adaptive_avg_pool2d+flatten")
    )
    points.append(BranchPoint(N_FEATURES + 2, OUTPUT_NAME, "classifier.1"))
    return points


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_model() -> torch.nn.Module:
    """torchvision's mobilenet_v2 with the checked ImageNet weights, in eval mode."""
    if not WEIGHTS.is_file():
        raise SystemExit(f"{WEIGHTS} is missing: run `bash trainer/setup.sh` first")
    got = sha256_file(WEIGHTS)
    if got != WEIGHTS_SHA256:
        raise SystemExit(f"{WEIGHTS}: sha256 {got}, expected {WEIGHTS_SHA256}")
    # One thread: results must not depend on how many cores the machine has.
    torch.set_num_threads(1)
    model = torchvision.models.mobilenet_v2()
    state = torch.load(WEIGHTS, map_location="cpu")
    model.load_state_dict(state, strict=True)
    model.eval()
    return model


def categories() -> list[str]:
    """The 1000 ImageNet class names in index order, as torchvision ships them."""
    cats = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
    if len(cats) != 1000:
        raise SystemExit(f"expected 1000 ImageNet categories, torchvision has {len(cats)}")
    return list(cats)


@dataclass(frozen=True)
class Preprocessed:
    """The network input for one photo and how it was made."""

    tensor: torch.Tensor  # [1, 3, 224, 224] float32
    source_size: tuple[int, int]  # (width, height) of the decoded photo
    resized_size: tuple[int, int]  # (width, height) after the short-side resize
    crop_left: int
    crop_top: int


def preprocess(img: Image.Image) -> Preprocessed:
    """torchvision's standard ImageNet evaluation transform (the weights' own `transforms()`):
    resize the short side to 256 (PIL bilinear, which antialiases when shrinking), center-crop
    224, divide by 255, subtract the mean and divide by the std, per channel, in float32."""
    img = img.convert("RGB")
    transform = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.transforms()
    assert list(transform.resize_size) == [RESIZE_SHORT_SIDE], "torchvision preset changed"
    assert list(transform.crop_size) == [CROP_SIZE], "torchvision preset changed"
    assert tuple(transform.mean) == MEAN and tuple(transform.std) == STD, "preset changed"
    x = transform(img).unsqueeze(0).contiguous()
    assert tuple(x.shape) == INPUT_SHAPE and x.dtype == torch.float32

    # The same geometry, restated so that other implementations can follow it.
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(RESIZE_SHORT_SIDE * long / short)
    rw, rh = (RESIZE_SHORT_SIDE, new_long) if w <= h else (new_long, RESIZE_SHORT_SIDE)
    top = int(round((rh - CROP_SIZE) / 2.0))
    left = int(round((rw - CROP_SIZE) / 2.0))
    return Preprocessed(x, (w, h), (rw, rh), left, top)


def capture(model: torch.nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Runs the model once and returns every branch-point tensor (and the logits) by name."""
    points = branch_points()
    got: dict[str, torch.Tensor] = {INPUT_NAME: x}
    handles = []
    for bp in points[1 : N_FEATURES + 1]:
        k = bp.index - 1

        def hook(_module, _inputs, output, name=bp.tensor):
            got[name] = output.detach().clone()

        handles.append(model.features[k].register_forward_hook(hook))

    pool_name = points[N_FEATURES + 1].tensor

    def pre_hook(_module, inputs):
        got[pool_name] = inputs[0].detach().clone()

    handles.append(model.classifier.register_forward_pre_hook(pre_hook))
    try:
        with torch.no_grad():
            got[OUTPUT_NAME] = model(x).detach().clone()
    finally:
        for h in handles:
            h.remove()
    return {bp.tensor: got[bp.tensor].numpy().astype(np.float32) for bp in points}


ORT_SCRIPT = """
import sys
import numpy as np
import onnxruntime as ort
model_path, in_path, out_path = sys.argv[1:4]
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
names = [o.name for o in sess.get_outputs()]
res = sess.run(names, {"input": np.load(in_path)})
np.savez(out_path, **dict(zip(names, res)))
print(ort.__version__)
"""


def run_ort(model_path: Path, x: np.ndarray, tmp: Path) -> tuple[dict[str, np.ndarray], str]:
    """Runs an ONNX file on `x` in ONNX Runtime (the separate venv, so that PyPI's numpy never
    meets Debian's torch); returns every graph output by name and the onnxruntime version."""
    if not ORT_PYTHON.is_file():
        raise SystemExit(f"{ORT_PYTHON} is missing: run `bash trainer/setup.sh` first")
    in_path = tmp / "x.npy"
    out_path = tmp / "out.npz"
    np.save(in_path, x)
    proc = subprocess.run(
        [str(ORT_PYTHON), "-c", ORT_SCRIPT, str(model_path), str(in_path), str(out_path)],
        check=True,
        capture_output=True,
        text=True,
    )
    with np.load(out_path) as z:
        return {k: z[k] for k in z.files}, proc.stdout.strip()
