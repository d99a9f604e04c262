#!/usr/bin/env bash
# Rebuilds the evaluation set (issue 8) outside models/ (not committed; about 12 MB per app):
#
#   OUT/apps/<app>/            M-Packages of the five further apps, trained exactly like the
#                              demo apps (same recipe, seed and settings, every candidate branch
#                              point): fruit, flowers, roadsigns, household, vegetables
#   OUT/streams/eval8.mjpeg    the long labelled evaluation stream with the events of the eight
#   OUT/streams/eval8.ground_truth.toml   apps (the three demo apps of models/apps + the five)
#   OUT/curves.png, OUT/curves.md         accuracy / FPR against branch point (report.py)
#
# The three demo apps are not retrained: their packages are models/apps/{birds,vehicles,mammals}.
# Same seed => same files. Everything runs at the lowest CPU priority. About 15-20 minutes per
# app on 2 busy cores; the stream takes under a minute.
#
# Usage: bash trainer/build_eval.sh [OUT]          (default OUT: target/eval)
#        STEPS="stream" bash trainer/build_eval.sh  (only some of: setup apps stream report)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
out=${1:-$root/target/eval}
steps=${STEPS:-setup apps stream report}
demo_apps=birds,vehicles,mammals
eval_apps=fruit,flowers,roadsigns,household,vegetables
start=$(date +%s)
has() { [[ " $steps " == *" $1 "* ]]; }

mkdir -p "$out"
if has setup; then
    bash "$here/setup.sh"
    manifest="$root/models/mobilenet_v2/manifest.toml"
    onnx="$root/models/mobilenet_v2/mobilenet_v2.onnx"
    want=$(sed -n 's/^onnx_sha256 = "\(.*\)"$/\1/p' "$manifest" 2>/dev/null || true)
    if [[ ! -f $onnx || -z $want || $(sha256sum "$onnx" | cut -d' ' -f1) != "$want" ]]; then
        nice -n 19 /usr/bin/python3 "$here/export_base.py"
    fi
fi
if has stream; then
    nice -n 19 /usr/bin/python3 "$here/mtrainer.py" --eval-stream eval8 \
        --apps "$demo_apps,$eval_apps" --out "$out" --work "$out/work"
fi
if has apps; then
    nice -n 19 /usr/bin/python3 "$here/mtrainer.py" --apps "$eval_apps" --out "$out" \
        --work "$out/work" --no-demo
fi
if has report; then
    bash "$here/setup.sh" --report
    nice -n 19 /usr/bin/python3 "$here/report.py" --apps-dir "$out/apps" --png "$out/curves.png" \
        --title "Evaluation apps ($out/apps)" >"$out/curves.md"
    cat "$out/curves.md"
fi
echo "build_eval.sh: done in $(($(date +%s) - start)) s"
