#!/usr/bin/env bash
# The aarch64 speed proxy (issue 23): guest instructions executed under
# qemu-aarch64 for one MobileNetV2 frame, per kernel path and per kind of
# node, counted by a qemu TCG plugin (benches/aarch64-proxy/insn_count.c)
# between markers the example benches/aarch64-proxy/frame.rs makes around
# every node. Deterministic: the same build gives the same counts on any
# host, loaded or not. Instructions are not time (a NEON fmla and an add
# count one each; caches and pipelines are not modelled), so this ranks
# code paths, it does not predict milliseconds.
#
# Usage: benches/aarch64-proxy.sh [PATH...]     (default: stock portable neon)
# Environment: PROXY_CPU     qemu CPU model (default cortex-a72: the
#                            Raspberry Pi 4's core; no SVE, no FP16)
#              PROXY_PROFILE cargo profile (default appliance: the shipped
#                            build, whose dependencies CI's static aarch64
#                            build has compiled already)
# Needs: tools/setup.sh --cross (aarch64 target, gcc-aarch64-linux-gnu,
# qemu-user 7.2 or later: its plugin API version 1), gcc, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
paths=("$@")
[ ${#paths[@]} -gt 0 ] || paths=(stock portable neon)
cpu=${PROXY_CPU:-cortex-a72}
profile=${PROXY_PROFILE:-appliance}
target_dir=${CARGO_TARGET_DIR:-target}
out="$target_dir/aarch64-proxy"
mkdir -p "$out"

gcc -shared -fPIC -O2 -Wall -o "$out/libinsn_count.so" benches/aarch64-proxy/insn_count.c
cargo build --locked --profile "$profile" --target aarch64-unknown-linux-musl --example aarch64-proxy
bin="$target_dir/aarch64-unknown-linux-musl/$profile/examples/aarch64-proxy"

for p in "${paths[@]}"; do
    echo "running $p under qemu-aarch64 -cpu $cpu ..." >&2
    # One thread: the plugin's counter is not atomic, and one core is what
    # the ratio is about.
    qemu-aarch64 -cpu "$cpu" -plugin "$out/libinsn_count.so,out=$out/$p.marks" \
        "$bin" "$p" >"$out/$p.nodes"
done

python3 - "$out" "$cpu" "${paths[@]}" <<'PY'
import json, sys
from collections import defaultdict

out, cpu, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
START, BETWEEN, END = 0, 0xFFFE, 0xFFFF
per_kind, per_op, frame, classes = {}, {}, {}, {}
for p in paths:
    nodes, meta = {}, None
    for line in open(f"{out}/{p}.nodes"):
        j = json.loads(line)
        if j.get("frame"):
            meta = j
        else:
            nodes[j["node"]] = j
    marks = []
    for line in open(f"{out}/{p}.marks"):
        code, count = line.split()
        if code != "exit":
            marks.append((int(code), int(count)))
    # Instructions from one marker to the next belong to the first one's
    # node; BETWEEN marks tract's own work between nodes.
    kinds, ops = defaultdict(int), defaultdict(int)
    for (code, n0), (_, n1) in zip(marks, marks[1:]):
        if code == END:
            break
        if code in (START, BETWEEN):
            kinds["tract between nodes"] += n1 - n0
            continue
        node = nodes[code - 1]
        kinds[node["kind"]] += n1 - n0
        ops[node["op"]] += n1 - n0
    total = dict(marks)[END] - dict(marks)[START]
    per_kind[p], per_op[p], frame[p], classes[p] = kinds, ops, total, meta["class"]

print(f"instructions per frame (qemu-aarch64 -cpu {cpu}), MobileNetV2 224x224, coffee.jpg")
head = "".join(f"{p:>16}" for p in paths)
ref = "stock" if "stock" in paths else paths[0]
ratios = [p for p in paths if p != ref]
print(f"{'kind':<24}{head}" + "".join(f"{p + '/' + ref:>16}" for p in ratios))
for k in sorted({k for p in paths for k in per_kind[p]}):
    row = "".join(f"{per_kind[p].get(k, 0) / 1e6:>15.2f}M" for p in paths)
    base = per_kind[ref].get(k, 0)
    row += "".join(
        f"{per_kind[p].get(k, 0) / base:>15.3f}x" if base else f"{'-':>16}" for p in ratios
    )
    print(f"{k:<24}{row}")
row = "".join(f"{frame[p] / 1e6:>15.2f}M" for p in paths)
row += "".join(f"{frame[p] / frame[ref]:>15.3f}x" for p in ratios)
print(f"{'frame':<24}{row}")
print("top-1 class: " + ", ".join(f"{p} {classes[p]}" for p in paths))
print("\nby op:")
for p in paths:
    for op, n in sorted(per_op[p].items(), key=lambda kv: -kv[1]):
        print(f"  {p:<9} {op:<28} {n / 1e6:>10.2f}M")
for p in paths:
    print(json.dumps({"path": p, "frame_insns": frame[p], "kinds": per_kind[p], "class": classes[p]}))
PY
