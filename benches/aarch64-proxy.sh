#!/usr/bin/env bash
# The aarch64 speed proxy (issue 23): guest instructions executed under
# qemu-aarch64 for one MobileNetV2 frame, per kernel path and per kind of
# node, counted by a qemu TCG plugin (benches/aarch64-proxy/insn_count.c)
# between markers the example benches/aarch64-proxy/frame.rs makes around
# every node (each node run by tract's plan runner, so that both paths split
# the same way), then the same frame through Net::run, the executor the
# product runs (our fixed buffers on our paths). Deterministic: the same
# build gives the same counts on any host, loaded or not. Instructions are
# not time (a NEON fmla and an add count one each; caches and pipelines are
# not modelled), so this ranks code paths, it does not predict milliseconds.
#
# Usage: benches/aarch64-proxy.sh [PATH...]     (default: stock portable neon)
# Prints a table per kind of node and the frame; per node, in
# target/aarch64-proxy/PATH.per-node.tsv (a node's op, MACs, instructions).
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
START, BETWEEN, END, RUN_START, RUN_END = 0, 0xFFFE, 0xFFFF, 0xFFFC, 0xFFFD
insns, macs, frame, run, fixed, classes = {}, {}, {}, {}, {}, {}
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
    # node; BETWEEN and START mark tract's own work between nodes.
    ins, mac = defaultdict(int), defaultdict(int)
    per_node = open(f"{out}/{p}.per-node.tsv", "w")
    per_node.write("node\top\tkind\tmacs\tinsns\tinsns_per_mac\tname\tinfo\n")
    for (code, n0), (_, n1) in zip(marks, marks[1:]):
        if code == END:
            break
        if code in (START, BETWEEN):
            ins["tract between nodes"] += n1 - n0
            continue
        node = nodes[code - 1]
        ins[node["kind"]] += n1 - n0
        mac[node["kind"]] += node["fmas"]
        rate = f"{(n1 - n0) / node['fmas']:.3f}" if node["fmas"] else ""
        per_node.write(f"{code - 1}\t{node['op']}\t{node['kind']}\t{node['fmas']}\t{n1 - n0}"
                       f"\t{rate}\t{node['name']}\t{node['info']}\n")
    per_node.close()
    at = dict(marks)
    insns[p], macs[p], frame[p], classes[p] = ins, mac, at[END] - at[START], meta["class"]
    run[p], fixed[p] = at[RUN_END] - at[RUN_START], meta["fixed_buffers"]

ref = "stock" if "stock" in paths else paths[0]
others = [p for p in paths if p != ref]
print(f"guest instructions per MobileNetV2 frame (224x224, coffee), qemu-aarch64 -cpu {cpu}")
print(f"(M = millions; /MAC: instructions per multiply-add of the kind)")
head = "".join(f"{p:>10} {'/MAC':>5}" for p in paths) + "".join(f"{p + '/' + ref:>16}" for p in others)
print(f"{'kind':<44}{'MMAC':>7}{head}")
kinds = sorted({k for p in paths for k in insns[p]}, key=lambda k: -insns[ref].get(k, 0))
for k in kinds:
    m = max(macs[p].get(k, 0) for p in paths)
    row = f"{k:<44}{m / 1e6:>7.1f}"
    for p in paths:
        n = insns[p].get(k, 0)
        row += f"{n / 1e6:>9.2f}M" + (f"{n / m:>6.2f}" if m else f"{'':>6}")
    base = insns[ref].get(k, 0)
    for p in others:
        row += f"{insns[p].get(k, 0) / base:>15.3f}x" if base else f"{'-':>16}"
    print(row)
m = max(sum(macs[p].values()) for p in paths)
row = f"{'frame':<44}{m / 1e6:>7.1f}"
for p in paths:
    row += f"{frame[p] / 1e6:>9.2f}M{frame[p] / m:>6.2f}"
row += "".join(f"{frame[p] / frame[ref]:>15.3f}x" for p in others)
print(row)
# The same frame through Net::run, the executor the product runs.
row = f"{'frame, the product executor (Net::run)':<44}{m / 1e6:>7.1f}"
for p in paths:
    row += f"{run[p] / 1e6:>9.2f}M{run[p] / m:>6.2f}"
row += "".join(f"{run[p] / run[ref]:>15.3f}x" for p in others)
print(row)
print("executor: " + ", ".join(f"{p} {'fixed buffers' if fixed[p] else 'tract'}" for p in paths))
print("top-1 class: " + ", ".join(f"{p} {classes[p]}" for p in paths))
for p in paths:
    print(json.dumps({"path": p, "cpu": cpu, "frame_insns": frame[p], "run_insns": run[p],
                      "fixed_buffers": fixed[p], "kinds": insns[p]}))
PY
