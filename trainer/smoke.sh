#!/usr/bin/env bash
# CI smoke run of the M-Trainer (a few minutes on 2 cores), both ways into an M-Package.
#
# The recipe: composites a tiny data set for one app (birds: 48 / 24 / 48 images), trains heads
# at branch points 0 (the whole network, input "input"), 18 and 20 for at most 2 epochs,
# measures them, checks every head in ONNX Runtime behind the real base ONNX, and writes an
# M-Package that keeps all three heads and a demo clip with its ground truth:
#
#   OUT/apps/birds/package.toml, head_bp00.onnx, head_bp18.onnx, head_bp20.onnx, metrics.json
#   OUT/demo/demo.mjpeg, ground_truth.toml
#   OUT/reselect/apps/birds/   the same package after `mtrainer.py --reselect` (heads chosen on
#                              the validation split; branch 0 always kept)
#   OUT/work/                  scratch (labelled streams, checks)
#
# The user's path, `mtrainer.py train` (below): a photo folder and two labelled clips written
# from the bundled assets (OUT/own-data/), trained the same way into
#
#   OUT/own/birds/             package.toml, three heads, metrics.json, calibration.toml
#   OUT/own/birds-trainer/     the held-out clip and its ground truth, configs for plan / run
#   OUT/own/reference/birds/reference.toml   for 4 test images: input.f32, per head the base
#                              tensor at its branch point (bpNN.base.f32) and PyTorch's logits
#                              (bpNN.logits.f32); for the float16-stored heads (bp00, bp18) an
#                              fp32 twin head_bpNN.fp32.onnx with its logits bpNN.fp32.logits.f32
#   OUT/own/birds-photos/      from the photos alone: assumed event parameters
#
# The numbers are meaningless (tiny data); the files have the real format. The Rust side
# (tests/trainer_smoke.rs) loads the packages with package::load and runs every head of
# OUT/own/birds in tract against the reference:
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
# --reselect on a copy (the smoke package keeps every head): the
# heads chosen on the validation split, branch 0 always among them, streams measured in ONNX
# Runtime; tests/trainer_smoke.rs loads OUT/reselect/apps/birds.
rm -rf "$out/reselect" && mkdir -p "$out/reselect/apps" && cp -a "$out/apps/birds" "$out/reselect/apps/"
/usr/bin/python3 "$here/mtrainer.py" --reselect --apps birds --out "$out/reselect" --work "$out/work"
echo "smoke.sh: M-Package in $out/apps/birds (reselected: $out/reselect/apps/birds), demo clip in" \
    "$out/demo ($(($(date +%s) - start)) s)"

# The user's path (`mtrainer.py train`), as a new user takes it: a photo folder (positive/,
# negative/ nested, a truncated JPEG and a text file among them, a near-duplicate) and two
# labelled clips (MPEG-4 with CSV spans in seconds, Matroska with ground-truth TOML spans) that
# make_own_fixture.py writes from the bundled assets; trained into OUT/own/birds (reference
# outputs in OUT/own/reference/birds), calibrated by `mainstream calibrate` on the held-out
# frames, then `mainstream check` and `plan`. Then photos alone (classifier-only head): a
# package with assumed event parameters, OUT/own/birds-photos.
start=$(date +%s)
bin=${MAINSTREAM_BIN:-$root/target/debug/mainstream}
if [[ ! -x $bin ]]; then
    (cd "$root" && cargo build --locked --bin mainstream)
fi
rm -rf "$out/own-data" "$out/own"
/usr/bin/python3 "$here/make_own_fixture.py" "$out/own-data"
/usr/bin/python3 "$here/mtrainer.py" train birds --images "$out/own-data/photos" \
    --clips "$out/own-data/clips" --out "$out/own" --work "$out/own-work" --points 0,18,20 \
    --max-epochs 2 --keep-all --reference 4 --mainstream "$bin"
/usr/bin/python3 "$here/mtrainer.py" train birds-photos --label bird --images "$out/own-data/photos" \
    --out "$out/own" --work "$out/own-work" --points 20 --mainstream "$bin"
echo "smoke.sh: own-data packages in $out/own/birds and $out/own/birds-photos ($(($(date +%s) - start)) s)"
