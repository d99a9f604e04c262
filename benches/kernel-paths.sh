#!/usr/bin/env bash
# Compares the kernel paths (issue 23) in one run: `engine time` with each
# MAINSTREAM_KERNEL value this CPU runs, interleaved round by round, then
# the median ms/frame per path and the ratio of frames/s to avx512's.
# Usage: benches/kernel-paths.sh [ROUNDS] [engine time options...]
# Needs: cargo build --release --features tract-threads --example engine
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
shift || true
engine=${ENGINE:-target/release/examples/engine}
out=$(mktemp)
for r in $(seq "$rounds"); do
    for k in avx512 avx2 portable stock; do
        if line=$(MAINSTREAM_KERNEL=$k "$engine" time "$@" 2>/dev/null); then
            echo "$k $(echo "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ms"])')" >>"$out"
        elif [ "$r" = 1 ]; then
            echo "skipping $k: this CPU lacks it" >&2
        fi
    done
done
python3 - "$out" <<'PY'
import sys, statistics
ms = {}
for line in open(sys.argv[1]):
    k, v = line.split()
    ms.setdefault(k, []).append(float(v))
base = statistics.median(ms["avx512"]) if "avx512" in ms else None
for k, v in ms.items():
    m = statistics.median(v)
    ratio = f"  fps vs avx512 {base / m:.2f}x" if base else ""
    print(f"{k:9} median {m:7.2f} ms/frame over {len(v)} rounds{ratio}  runs {' '.join(f'{x:.2f}' for x in v)}")
PY
rm -f "$out"
