"""Fine-tuning per branch point, evaluation and head export for the M-Trainer.

The base is torchvision's MobileNetV2 with the ImageNet weights (basenet.py). Its BatchNorm
layers are folded into the convolutions before anything else (BatchNorm stays in evaluation
mode during fine-tuning anyway, so the folded network computes the same function; the exported
base ONNX is folded the same way). That makes training about twice as fast on the CPU and makes
every sample's output independent of the batch it is in.

For a branch point k the frozen prefix [0, k) is run once per image (`capture`, one forward
pass that keeps every candidate point's tensor); `HeadNet` is the rest of the network
(features[k:], global average pool, a new 2-class classifier), trained on the cached tensors.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper as onnx_helper
from onnx import numpy_helper
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

import basenet

N_FEATURES = basenet.N_FEATURES  # 19: features.0 .. features.18
POOL = N_FEATURES + 1  # branch point 20: the pooled 1280-d vector
THREADS = 2


def setup_torch(threads: int = THREADS) -> None:
    """Deterministic CPU torch with a fixed thread count."""
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def fused_base() -> nn.Module:
    """basenet's MobileNetV2 (checked weights), eval mode, every Conv2d+BatchNorm2d pair of the
    features folded into one Conv2d with bias."""
    model = basenet.load_model()  # sets 1 thread; callers set their own afterwards
    model.eval()

    def fuse(mod: nn.Module) -> None:
        for child in mod.children():
            fuse(child)
        if isinstance(mod, nn.Sequential):
            names = list(mod._modules)
            for a, b in zip(names, names[1:]):
                ca, cb = mod._modules[a], mod._modules[b]
                if isinstance(ca, nn.Conv2d) and isinstance(cb, nn.BatchNorm2d):
                    mod._modules[a] = fuse_conv_bn_eval(ca, cb)
                    mod._modules[b] = nn.Identity()

    fuse(model.features)
    left = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert not left, "BatchNorm left after folding"
    for p in model.parameters():
        p.requires_grad_(False)
    return model


MEAN = torch.tensor(basenet.MEAN, dtype=torch.float32).view(1, 3, 1, 1)
STD = torch.tensor(basenet.STD, dtype=torch.float32).view(1, 3, 1, 1)


def normalise(images: np.ndarray) -> torch.Tensor:
    """uint8 [n, 224, 224, 3] -> float32 [n, 3, 224, 224], (x / 255 - mean) / std in float32,
    the order torchvision uses (bit-identical to basenet.preprocess on the same pixels)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    x = x / 255.0
    return ((x - MEAN) / STD).contiguous()


def capture(
    base: nn.Module, images: np.ndarray, points: list[int], batch: int = 32, progress=None
) -> dict[int, torch.Tensor]:
    """The base's tensors at `points` (> 0) for every image, float32 [n, C, H, W] in
    channels_last memory order (or [n, 1280] for the pool). One forward pass per image serves
    every point."""
    want = sorted(p for p in points if p > 0)
    out: dict[int, list[torch.Tensor]] = {p: [] for p in want}
    last = max(want) if want else 0
    with torch.no_grad():
        for i in range(0, len(images), batch):
            h = normalise(images[i : i + batch]).contiguous(memory_format=torch.channels_last)
            for k in range(1, min(last, N_FEATURES) + 1):
                h = base.features[k - 1](h)
                if k in out:
                    out[k].append(h)  # channels_last, as the heads train on it
            if POOL in out:
                out[POOL].append(nn.functional.adaptive_avg_pool2d(h, 1).flatten(1))
            if progress is not None:
                progress(min(i + batch, len(images)), len(images))
    return {k: torch.cat(v) for k, v in out.items()}


class HeadNet(nn.Module):
    """What an app runs from branch point k on: features[k:] (copies of the base's, to be
    fine-tuned), global average pool, and a new classifier (dropout, linear)."""

    def __init__(self, base: nn.Module, k: int, n_classes: int, dropout: float) -> None:
        super().__init__()
        self.k = k
        body = [copy.deepcopy(base.features[j]) for j in range(k, N_FEATURES)] if k < POOL else []
        self.body = nn.Sequential(*body)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, n_classes))
        for p in self.body.parameters():
            p.requires_grad_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.k < POOL:
            x = self.body(x)
            x = nn.functional.adaptive_avg_pool2d(x, 1)
            x = torch.flatten(x, 1)
        return self.classifier(x)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass
class Inputs:
    """A split's inputs for one branch point: cached tensors, or the images for point 0."""

    k: int
    cached: torch.Tensor | None
    images: np.ndarray | None

    def __len__(self) -> int:
        return len(self.cached) if self.cached is not None else len(self.images)

    def batch(self, idx: torch.Tensor | slice) -> torch.Tensor:
        if self.cached is not None:
            x = self.cached[idx]
        else:
            sel = idx.numpy() if isinstance(idx, torch.Tensor) else idx
            x = normalise(self.images[sel])
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def logits_of(model: HeadNet, inputs: Inputs, batch: int = 64) -> torch.Tensor:
    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(inputs), batch):
            outs.append(model(inputs.batch(slice(i, i + batch))))
    return torch.cat(outs)


@dataclass
class TrainResult:
    model: HeadNet
    epochs: int
    best_epoch: int
    val_loss: float
    history: list[dict]
    seconds: float


def train_head(
    base: nn.Module,
    k: int,
    train: Inputs,
    y_train: torch.Tensor,
    val: Inputs,
    y_val: torch.Tensor,
    cfg: dict,
    seed: int,
    init: HeadNet | None = None,
    init_is_candidate: bool = False,
    log=None,
) -> TrainResult:
    """Fine-tunes features[k:] and a new classifier with Adam (learning rates decayed to 0 on
    a cosine over max_epochs); stops early on the validation loss and returns the weights of
    the best epoch.

    With `init` (a trained head of a more-frozen point k' > k), training starts from it:
    features[k:k'] from the base, features[k':] and the classifier from `init`, and every
    parameter uses the body's learning rate. With init = the classifier-only head (k' = 20)
    that is "linear probe, then fine-tune"; with the next more-frozen head it is progressive
    unfreezing. `init_is_candidate` makes the starting weights epoch 0 of the early stopping
    (otherwise at least one epoch of fine-tuning is kept)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = HeadNet(base, k, 2, cfg["dropout"])
    if init is not None:
        if init.k <= k:
            raise ValueError(f"warm start for {k} needs a more-frozen head, not {init.k}")
        for j in range(max(init.k, k), N_FEATURES):
            model.body[j - k].load_state_dict(init.body[j - init.k].state_dict())
        model.classifier.load_state_dict(init.classifier.state_dict())
    model = model.to(memory_format=torch.channels_last)
    linear = k >= N_FEATURES
    lr_cls = cfg["lr_classifier"] if init is None else cfg["lr_body"]
    groups = [{"params": list(model.classifier.parameters()), "lr": lr_cls}]
    if not linear:
        groups.append({"params": list(model.body.parameters()), "lr": cfg["lr_body"]})
    # foreach: one multi-tensor update per step instead of ~10 small ops per parameter tensor
    # (the same arithmetic; Adam's step was 11% of a training run's CPU time without it).
    opt = torch.optim.Adam(groups, weight_decay=cfg["weight_decay"], foreach=True)
    max_epochs = cfg["linear_max_epochs"] if linear else cfg["max_epochs"]
    # Cosine decay of every learning rate to 0 over max_epochs.
    total_steps = max_epochs * math.ceil(len(train) / cfg["batch"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
    )
    patience = max(cfg["patience"], 5) if linear else cfg["patience"]
    loss_fn = nn.CrossEntropyLoss()
    best = (math.inf, 0, copy.deepcopy(model.state_dict()))
    history = []
    t0 = time.monotonic()
    if init is not None and init_is_candidate:
        val_logits = logits_of(model, val)
        val_loss = float(loss_fn(val_logits, y_val))
        val_acc = float((val_logits.argmax(1) == y_val).float().mean())
        history.append({"epoch": 0, "train_loss": None, "val_loss": val_loss, "val_acc": val_acc})
        best = (val_loss, 0, copy.deepcopy(model.state_dict()))
        if log is not None and not linear:
            log(f"start from bp{init.k:02d}'s head: val loss {val_loss:.4f}, val acc {val_acc:.4f}")
    bad = 0
    epoch = 0
    for epoch in range(1, max_epochs + 1):
        model.train()
        perm = torch.randperm(len(train), generator=gen)
        total, seen = 0.0, 0
        for i in range(0, len(perm), cfg["batch"]):
            idx = perm[i : i + cfg["batch"]]
            out = model(train.batch(idx))
            loss = loss_fn(out, y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
            seen += len(idx)
        val_logits = logits_of(model, val)
        val_loss = float(loss_fn(val_logits, y_val))
        val_acc = float((val_logits.argmax(1) == y_val).float().mean())
        history.append(
            {"epoch": epoch, "train_loss": total / seen, "val_loss": val_loss, "val_acc": val_acc}
        )
        if log is not None and not linear:
            log(
                f"epoch {epoch}/{max_epochs}: train loss {total / seen:.4f}, "
                f"val loss {val_loss:.4f}, val acc {val_acc:.4f} ({time.monotonic() - t0:.0f} s)"
            )
        if val_loss < best[0] - 1e-4:
            best = (val_loss, epoch, copy.deepcopy(model.state_dict()))
            bad = 0
        else:
            bad += 1
            if bad >= patience:
                break
    model.load_state_dict(best[2])
    model.eval()
    if log is not None and linear:
        log(f"{epoch} epochs, best {best[1]}: val loss {best[0]:.4f}")
    return TrainResult(model, epoch, best[1], best[0], history, time.monotonic() - t0)


@dataclass
class Scores:
    accuracy: float  # per-frame top-1 over the split
    fpr: float  # P(predicted positive | negative)
    tpr: float  # P(predicted positive | positive)
    n: int
    n_pos: int


def scores(logits: torch.Tensor, y: torch.Tensor) -> Scores:
    pred = logits.argmax(1)
    pos = y == 1
    neg = ~pos
    return Scores(
        accuracy=float((pred == y).float().mean()),
        fpr=float((pred[neg] == 1).float().mean()) if neg.any() else 0.0,
        tpr=float((pred[pos] == 1).float().mean()) if pos.any() else 0.0,
        n=int(len(y)),
        n_pos=int(pos.sum()),
    )


def round_to_fp16(model: HeadNet) -> None:
    """Rounds every parameter to the nearest float16 value (kept as float32): the function a
    head stored with float16 weights computes."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())


def export_head(
    model: HeadNet, tensor: str, shape: list[int], path: Path, fp16: bool = False
) -> None:
    """Head ONNX: opset 13, one input named after the base tensor with its static shape,
    output `scores` [1, n_classes] (raw logits), constant-folded, no value_info.

    With `fp16`, every float initializer of 16 or more elements is stored as float16 and
    turned back into float32 by a Cast node at the start of the graph: the file is half the
    size, the arithmetic stays float32 (tract and ONNX Runtime fold the casts when they load
    the model). Call `round_to_fp16` first so that PyTorch computes the same function."""
    model = copy.deepcopy(model).eval().to(memory_format=torch.contiguous_format)
    dummy = torch.zeros(shape, dtype=torch.float32)
    tmp = path.with_suffix(".tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(
            model,
            dummy,
            str(tmp),
            input_names=[tensor],
            output_names=["scores"],
            opset_version=13,
            do_constant_folding=True,
        )
    m = onnx.load(str(tmp))
    del m.graph.value_info[:]
    # Deterministic names regardless of the PyTorch module path.
    m.producer_name = "mainstream trainer/mtrainer.py"
    onnx.checker.check_model(m, full_check=True)
    inputs = [i for i in m.graph.input if i.name not in {t.name for t in m.graph.initializer}]
    assert [i.name for i in inputs] == [tensor], [i.name for i in inputs]
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    assert dims == list(shape), (dims, shape)
    assert [o.name for o in m.graph.output] == ["scores"]
    if fp16:
        weights_to_fp16(m)
        onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(path))
    tmp.unlink()


def weights_to_fp16(m: onnx.ModelProto, min_elements: int = 16) -> None:
    """Stores large float initializers as float16 behind Cast(to=FLOAT) nodes, in place."""
    g = m.graph
    kept, halves, casts = [], [], []
    for init in g.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and int(np.prod(init.dims)) >= min_elements:
            arr = numpy_helper.to_array(init).astype(np.float16)
            half = numpy_helper.from_array(arr, init.name + "_fp16")
            halves.append(half)
            casts.append(
                onnx_helper.make_node(
                    "Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                    name=init.name + "_cast",
                )
            )
        else:
            kept.append(init)
    del g.initializer[:]
    g.initializer.extend(kept + halves)
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)


def capture_cached(
    base: nn.Module, images: np.ndarray, points: list[int], cache_dir: Path | None,
    batch: int = 32, progress=None,
) -> tuple[dict[int, torch.Tensor], int]:
    """`capture`, with each image's tensors kept on disk under CACHE_DIR keyed by the sha256 of
    its 224x224 pixels (and the points), so that a second run computes only new images.
    Returns (the tensors, how many images were computed). With cache_dir None: `capture`."""
    want = sorted(p for p in points if p > 0)
    if cache_dir is None or not want:
        return capture(base, images, points, batch, progress), len(images)
    import hashlib

    sub = cache_dir / ("bp" + "-".join(f"{p:02d}" for p in want))
    sub.mkdir(parents=True, exist_ok=True)
    keys = [hashlib.sha256(np.ascontiguousarray(im).tobytes()).hexdigest() for im in images]
    files = [sub / k[:2] / f"{k}.npy" for k in keys]
    missing = [i for i, f in enumerate(files) if not f.is_file()]
    if missing:
        got = capture(base, images[missing], points, batch, progress)
        for j, i in enumerate(missing):
            flat = np.concatenate([got[p][j].contiguous().numpy().ravel() for p in want])
            files[i].parent.mkdir(exist_ok=True)
            tmp = files[i].with_suffix(".tmp.npy")
            np.save(tmp, flat)
            tmp.rename(files[i])
    # Shapes per point from one image's forward pass (cheap) or the computed batch.
    probe = capture(base, images[:1], points)
    shapes = {p: tuple(probe[p].shape[1:]) for p in want}
    sizes = [int(np.prod(shapes[p])) for p in want]
    out = {p: np.empty((len(images), *shapes[p]), np.float32) for p in want}
    for i, f in enumerate(files):
        flat = np.load(f)
        if flat.size != sum(sizes):
            raise SystemExit(f"{f}: {flat.size} values, want {sum(sizes)}; delete the cache {cache_dir}")
        o = 0
        for p, n in zip(want, sizes):
            out[p][i] = flat[o : o + n].reshape(shapes[p])
            o += n
    res = {}
    for p in want:
        t = torch.from_numpy(out[p])
        res[p] = t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t
    return res, len(missing)
