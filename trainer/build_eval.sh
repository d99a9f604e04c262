#!/usr/bin/env bash
# Rebuilds the evaluation set (issue 8) outside models/ (not committed; about 12 MB per app):
#
#   OUT/apps/<app>/            M-Packages of the five further apps, trained exactly like the
#                              demo apps (same recipe, seed and settings, every candidate branch
#                              point): fruit, flowers, roadsigns, household, vegetables
#   OUT/streams/eval24.mjpeg   the long labelled evaluation stream with the events of the eight
#   OUT/streams/eval24.ground_truth.toml  apps (the three demo apps of models/apps + the five):
#                              27 crossings per app, 6 per distractor category (9,440 frames)
#   OUT/curves.png, OUT/curves.md         accuracy / FPR against branch point (report.py)
#   OUT/streams/cal24.mjpeg    the calibration stream: the same, made from the validation range
#   OUT/streams/cal24.ground_truth.toml   and validation-split objects (never the test split)
#   <package>/calibration.toml every package's heads measured on cal24 by `mainstream calibrate`
#                              (the eight: models/apps/{birds,vehicles,mammals} and OUT/apps/*)
#   OUT/streams/fresh1-<camera>.mjpeg (+ .ground_truth.toml, fresh1.manifest.json)
#                              the frozen evaluation streams of issue 22 (trainer/fresh1.toml,
#                              trainer/fresh_streams.py): four new cameras, checked against the
#                              sha256 in docs/eval/fresh1/manifest.json (about 2.5 minutes)
# (Session 4's eval8 and cal8 are the same with 9 crossings per app and 2 per distractor
# category: --eval-events 9 --eval-distractors 2, the mtrainer.py defaults.)
#
# The three demo apps are not retrained: their packages are models/apps/{birds,vehicles,mammals}.
# Same seed => same files. Everything runs at the lowest CPU priority. About 15-20 minutes per
# app on 2 busy cores; the stream takes under a minute.
#
# Usage: bash trainer/build_eval.sh [OUT]          (default OUT: target/eval)
#        STEPS="stream" bash trainer/build_eval.sh  (only some of: setup apps stream fresh calibrate report)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
out=${1:-$root/target/eval}
steps=${STEPS:-setup apps stream fresh calibrate report}
demo_apps=birds,vehicles,mammals
eval_apps=fruit,flowers,roadsigns,household,vegetables
# Crossings per app and per distractor category in both streams (about 27 events per app).
events=27
distractors=6
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
    nice -n 19 /usr/bin/python3 "$here/mtrainer.py" --eval-stream eval24 \
        --eval-events "$events" --eval-distractors "$distractors" \
        --apps "$demo_apps,$eval_apps" --out "$out" --work "$out/work"
fi
if has fresh; then
    nice -n 19 /usr/bin/python3 "$here/fresh_streams.py" --out "$out" --work "$out/work" \
        --check "$root/docs/eval/fresh1/manifest.json"
fi
if has apps; then
    nice -n 19 /usr/bin/python3 "$here/mtrainer.py" --apps "$eval_apps" --out "$out" \
        --work "$out/work" --no-demo
fi
if has calibrate; then
    nice -n 19 /usr/bin/python3 "$here/mtrainer.py" --eval-stream cal24 --eval-split val \
        --eval-events "$events" --eval-distractors "$distractors" \
        --apps "$demo_apps,$eval_apps" --out "$out" --work "$out/work"
    (cd "$root" && cargo build --release --locked)
    cal="$out/calibrate"
    mkdir -p "$cal/apps.d" "$cal/state"
    cat >"$cal/config.toml" <<EOF
# Written by trainer/build_eval.sh: the eight evaluation apps on the calibration stream.
[device]
state_dir = "state"
base = "$root/models/mobilenet_v2/manifest.toml"

[[camera]]
name = "cal24"
source = "$out/streams/cal24.mjpeg"
fps = 10
EOF
    for app in ${demo_apps//,/ }; do
        printf 'camera = "cal24"\npackage = "%s"\n' "$root/models/apps/$app" >"$cal/apps.d/$app.toml"
    done
    for app in ${eval_apps//,/ }; do
        printf 'camera = "cal24"\npackage = "%s"\n' "$out/apps/$app" >"$cal/apps.d/$app.toml"
    done
    nice -n 19 "$root/target/release/mainstream" calibrate --config "$cal/config.toml" --write \
        | tee "$out/calibration.txt"
fi
if has report; then
    bash "$here/setup.sh" --report
    nice -n 19 /usr/bin/python3 "$here/report.py" --apps-dir "$out/apps" --png "$out/curves.png" \
        --title "Evaluation apps ($out/apps)" >"$out/curves.md"
    cat "$out/curves.md"
fi
echo "build_eval.sh: done in $(($(date +%s) - start)) s"
