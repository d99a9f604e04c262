#!/usr/bin/env bash
# The fixed-buffer executor against tract's (issue 23), in one run so the
# machine's drift cancels: `mainstream bench --json`, one process per point
# (so each RSS is that point's alone), for every kernel path this CPU runs,
# 1 and 8 apps, no and max sharing, both executors, rounds interleaved.
# Prints per point the median ms per frame (whole tree) over rounds, the
# ratio tract/fixed (> 1: fixed is faster) and the peak RSS.
#
#   benches/executor.sh [ROUNDS] [PATHS...]     (default 5 rounds; paths avx512 avx2 portable)
#
# Needs: cargo build --release (uses target/release/mainstream, or $MAINSTREAM_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
shift || true
paths=("$@")
[ ${#paths[@]} -gt 0 ] || paths=(avx512 avx2 portable)
bin=${MAINSTREAM_BIN:-target/release/mainstream}
inputs=()
for p in coffee chelsea rocket; do inputs+=(--input "tests/fixtures/imagenet/$p.input.f32"); done
out=$(mktemp)
for r in $(seq "$rounds"); do
    for k in "${paths[@]}"; do
        for apps in 1 8; do
            for sharing in none max; do
                for e in fixed tract; do
                    if line=$(MAINSTREAM_KERNEL=$k MAINSTREAM_EXECUTOR=$e "$bin" bench --json \
                        --apps "$apps" --sharing "$sharing" --runs 3 --frames 10 "${inputs[@]}" 2>/dev/null); then
                        echo "$k $apps $sharing $e $line" >>"$out"
                    elif [ "$r" = 1 ]; then
                        echo "skipping $k: this CPU lacks it" >&2
                    fi
                done
            done
        done
    done
done
python3 - "$out" <<'PY'
import json, sys, statistics
rows = {}
for line in open(sys.argv[1]):
    k, apps, sharing, e, js = line.split(" ", 4)
    v = json.loads(js)
    assert v["executor"] == e, (e, v["executor"])
    rows.setdefault((k, int(apps), sharing), {}).setdefault(e, []).append(v)
print(f"{'path':9} {'apps':>4} {'sharing':7} {'fixed ms':>9} {'tract ms':>9} {'tract/fixed':>11} {'RSS fixed':>10} {'RSS tract':>10}")
for (k, apps, sharing), by in rows.items():
    med = {e: statistics.median(x["ms_per_frame"] for x in v) for e, v in by.items()}
    rss = {e: statistics.median(x["rss_mib"] for x in v) for e, v in by.items()}
    print(f"{k:9} {apps:4} {sharing:7} {med['fixed']:9.2f} {med['tract']:9.2f} {med['tract'] / med['fixed']:10.2f}x"
          f" {rss['fixed']:7.0f} MiB {rss['tract']:6.0f} MiB")
PY
rm -f "$out"
