"""ONNX Runtime (PyPI `onnxruntime`, CPU provider) timed per frame on the same
ONNX file and the same real photos as `engine time`: the measuring stick of
benches/engine-compare.sh. Never a dependency of the product.

Prints one JSON line: {"engine": "ort", "ms": median ms per frame, ...}.
"""

import argparse
import json
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--input", action="append", required=True, help="raw f32 [1,3,224,224]")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads")
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--check", help="PyTorch logits (raw f32) of the first input")
    a = p.parse_args()

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    t0 = time.perf_counter()
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    build_s = time.perf_counter() - t0
    name = sess.get_inputs()[0].name
    xs = [np.fromfile(f, dtype="<f4").reshape(1, 3, 224, 224) for f in a.input]

    frame = 0
    out = None
    for _ in range(a.warmup):
        out = sess.run(None, {name: xs[frame % len(xs)]})
        frame += 1
    runs = []
    for _ in range(a.reps):
        t = time.perf_counter()
        for _ in range(a.frames):
            sess.run(None, {name: xs[frame % len(xs)]})
            frame += 1
        runs.append((time.perf_counter() - t) * 1000.0 / a.frames)

    line = {
        "engine": "ort",
        "version": ort.__version__,
        "threads": a.threads,
        "frames": a.frames,
        "build_s": build_s,
        "ms": statistics.median(runs),
        "runs_ms": runs,
    }
    if a.check:
        out = sess.run(None, {name: xs[0]})[0].ravel()
        ref = np.fromfile(a.check, dtype="<f4")
        line["max_abs_vs_pytorch"] = float(np.abs(out - ref).max())
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
