#!/usr/bin/env bash
# CI smoke run of the M-Trainer (a few minutes on 2 cores): composites a tiny data set for one
# app (birds: 48 / 24 / 48 images), trains heads at branch points 0 (the whole network, input
# "input"), 18 and 20 for at most 2 epochs, measures them, checks every head in ONNX Runtime
# behind the real base ONNX, and writes an M-Package that keeps all three heads, reference
# outputs for the Rust side, and a demo clip with its ground truth:
#
#   OUT/apps/birds/package.toml, head_bp00.onnx, head_bp18.onnx, head_bp20.onnx, metrics.json
#   OUT/reference/birds/reference.toml   for 4 test images: input.f32, per head the base tensor
#                              at its branch point (bpNN.base.f32) and PyTorch's logits
#                              (bpNN.logits.f32); for the float16-stored heads (bp00, bp18) an
#                              fp32 twin head_bpNN.fp32.onnx with its logits bpNN.fp32.logits.f32
#   OUT/demo/demo.mjpeg, ground_truth.toml
#   OUT/reselect/apps/birds/   the same package after `mtrainer.py --reselect` (heads chosen on
#                              the validation split; branch 0 always kept)
#   OUT/work/                  scratch (labelled streams, checks)
#
# The numbers are meaningless (tiny data); the files have the real format. The Rust side
# (tests/trainer_smoke.rs) loads OUT/apps/birds with package::load and runs every head in
# tract against the reference:
#
#   MAINSTREAM_TRAINER_SMOKE=OUT cargo test --test trainer_smoke -- --ignored
#
# Before training, the trainer's unit tests (trainer/test_*.py) run.
#
# Usage: bash trainer/smoke.sh [OUT]        (default OUT: ${TMPDIR:-/tmp}/mtrainer-smoke)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
out=${1:-${TMPDIR:-/tmp}/mtrainer-smoke}

bash "$here/setup.sh"
if [[ ! -f $root/models/mobilenet_v2/mobilenet_v2.onnx ]]; then
    /usr/bin/python3 "$here/export_base.py"
fi
/usr/bin/python3 -m unittest discover -s "$here" -p 'test_*.py'
start=$(date +%s)
/usr/bin/python3 "$here/mtrainer.py" --smoke --out "$out" --work "$out/work"
# --reselect on a copy (the smoke package keeps every head for the reference tests): the
# heads chosen on the validation split, branch 0 always among them, streams measured in ONNX
# Runtime; tests/trainer_smoke.rs loads OUT/reselect/apps/birds.
rm -rf "$out/reselect" && mkdir -p "$out/reselect/apps" && cp -a "$out/apps/birds" "$out/reselect/apps/"
/usr/bin/python3 "$here/mtrainer.py" --reselect --apps birds --out "$out/reselect" --work "$out/work"
echo "smoke.sh: M-Package in $out/apps/birds (reselected: $out/reselect/apps/birds), demo clip in" \
    "$out/demo ($(($(date +%s) - start)) s)"
