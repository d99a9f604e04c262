#!/usr/bin/env bash
# One network on one core against the same network split over two by our
# fork-join pool (issue 23), per kernel path, in one run: `engine time` with
# --intra-threads 1 and 2 for every MAINSTREAM_KERNEL value this CPU runs,
# on the whole MobileNetV2 and on a 5-app mid-sharing stem tree, all
# configurations interleaved round by round (the start rotating), then the
# median ms/frame of each and the median over rounds of the paired scaling
# (1-thread ms / 2-thread ms of the same round).
# Usage: benches/intra-threads.sh [ROUNDS] [engine time options...]
# Needs: cargo build --release --features tract-threads --example engine
set -euo pipefail
# Higher priority than other jobs on the machine where allowed (root): with
# sched_autogroup (the default of most distributions) a process's nice
# weighs only against its own session's, so the script re-runs itself in a
# session of its own whose autogroup gets nice -10.
if [ -z "${BENCH_SESSION:-}" ] && [ "$(id -u)" = 0 ] && [ -e /proc/self/autogroup ] \
    && command -v setsid >/dev/null; then
    BENCH_SESSION=1 exec setsid --wait "$0" "$@"
fi
if [ -n "${BENCH_SESSION:-}" ]; then echo -10 >/proc/self/autogroup 2>/dev/null || true; fi
cd "$(dirname "$0")/.."
rounds=${1:-7}
shift || true
engine=${ENGINE:-target/release/examples/engine}
out=$(mktemp)
configs=()
for k in avx512 avx2 portable stock; do
    if ! MAINSTREAM_KERNEL=$k "$engine" time --frames 1 --reps 1 --warmup 0 >/dev/null 2>&1; then
        echo "skipping $k: this CPU lacks it" >&2
        continue
    fi
    for what in net tree; do
        for t in 1 2; do
            configs+=("$k $what $t")
        done
    done
done
n=${#configs[@]}
for ((r = 0; r < rounds; r++)); do
    for ((i = 0; i < n; i++)); do
        read -r k what t <<<"${configs[$(( (i + r) % n ))]}"
        extra=(--frames 20)
        if [ "$what" = tree ]; then extra=(--apps 5 --sharing mid --frames 5); fi
        line=$(MAINSTREAM_KERNEL=$k "$engine" time --intra-threads "$t" "${extra[@]}" "$@")
        echo "$r $k $what $t $(echo "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ms"])')" >>"$out"
    done
    echo "round $((r + 1))/$rounds done" >&2
done
python3 - "$out" <<'PY'
import sys, statistics
ms = {}
for line in open(sys.argv[1]):
    r, k, what, t, v = line.split()
    ms.setdefault((k, what, int(t)), {})[int(r)] = float(v)
print(f"{'path':9} {'what':5} {'1 thread':>9} {'2 threads':>10} {'scaling':>8}   runs 1t | 2t (ms)")
for (k, what, t), v in ms.items():
    if t != 1 or (k, what, 2) not in ms:
        continue
    two = ms[(k, what, 2)]
    common = sorted(set(v) & set(two))
    scaling = statistics.median(v[r] / two[r] for r in common)
    runs = " ".join(f"{v[r]:.2f}" for r in sorted(v)) + " | " + " ".join(f"{two[r]:.2f}" for r in sorted(two))
    print(f"{k:9} {what:5} {statistics.median(v.values()):9.2f} {statistics.median(two.values()):10.2f} {scaling:7.2f}x   {runs}")
PY
rm -f "$out"
