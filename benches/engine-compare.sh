#!/usr/bin/env bash
# tract (through the mainstream runtime) against ONNX Runtime on the same ONNX
# file and the same real photos, in one run so the machine's drift cancels.
#
#   benches/engine-compare.sh [--rounds N] [--frames F] [--reps R] [--no-musl] [--no-tree] [--two-cores]
#
# - installs onnxruntime (PyPI, CPU) into its own venv under the target dir:
#   a measuring stick only, never a dependency of the product;
# - builds the engine bench (benches/engine/) in release, glibc and (unless
#   --no-musl) static musl, each with the system allocator and with mimalloc;
# - checks tract's logits against PyTorch's and measures the core's FMA peak;
# - runs every configuration once per round, rounds interleaved (the start
#   rotates each round), each run the median of R timed runs of F frames;
# - prints a table of medians over rounds, then one JSON line with at least
#   tract_ms, ort_ms and ratio (= ort_ms / tract_ms: tract's throughput
#   relative to ONNX Runtime's; 1.0 = equal, higher = tract faster).
#
# Configurations: tract (and tract's stock kernels only, MAINSTREAM_STOCK_ENGINE=1:
# the "before") and ORT on one thread and on both cores (tract: our
# fork-join pool splitting our kernels, --intra-threads 2, and tract's
# multithread-mm executor, which now splits only the ops tract runs itself;
# ORT: two intra-op threads); the musl and mimalloc builds on one thread;
# and (unless --no-tree) a 5-app stem tree, mid sharing, on one core, with
# our head worker threads, with our intra-op pool, and with tract's
# executor, for the multi-core scaling of stem-sharing workloads.
# --two-cores keeps only the one- and two-thread configurations of tract
# (our kernels) and ORT, and the tree on one core and with our pool.
# Results (JSON lines) are kept in $TARGET/engine-compare/results.jsonl.
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

ROUNDS=5
FRAMES=20
REPS=3
MUSL=1
TREE=1
TWO_CORES=0
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --frames) FRAMES=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --no-musl) MUSL=0; shift ;;
        --no-tree) TREE=0; shift ;;
        --two-cores) TWO_CORES=1; MUSL=0; shift ;;
        -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET" in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
WORK=$TARGET/engine-compare
mkdir -p "$WORK"
MODEL=$ROOT/models/mobilenet_v2/mobilenet_v2.onnx
FIX=$ROOT/tests/fixtures/imagenet
INPUTS=()
for p in coffee chelsea rocket; do INPUTS+=(--input "$FIX/$p.input.f32"); done

# Higher priority than the background jobs if allowed (root), else as is.
NICE=()
if nice -n -5 true 2>/dev/null; then NICE=(nice -n -5); fi

log() { echo "== $*" >&2; }

# ---- ONNX Runtime in its own venv -------------------------------------------
VENV=$WORK/venv
PY=$VENV/bin/python
if ! "$PY" -c 'import onnxruntime, numpy' 2>/dev/null; then
    log "installing onnxruntime into $VENV"
    python3 -m venv "$VENV"
    "$PY" -m pip install --quiet --disable-pip-version-check onnxruntime numpy
fi
ORT_VERSION=$("$PY" -c 'import onnxruntime; print(onnxruntime.__version__)')

# ---- builds -----------------------------------------------------------------
log "building the engine bench (release, glibc)"
cargo build --release --quiet --features tract-threads --example engine --example engine-mimalloc
GLIBC=$TARGET/release/examples/engine
GLIBC_MI=$TARGET/release/examples/engine-mimalloc
if [ "$MUSL" = 1 ]; then
    log "building the engine bench (release, static musl)"
    rustup target list --installed 2>/dev/null | grep -q x86_64-unknown-linux-musl \
        || rustup target add x86_64-unknown-linux-musl
    cargo build --release --quiet --features tract-threads --target x86_64-unknown-linux-musl \
        --example engine --example engine-mimalloc
    MUSL_SYS=$TARGET/x86_64-unknown-linux-musl/release/examples/engine
    MUSL_MI=$TARGET/x86_64-unknown-linux-musl/release/examples/engine-mimalloc
fi

RESULTS=$WORK/results.jsonl
: > "$RESULTS"

# ---- correctness and peak ---------------------------------------------------
log "checking tract's logits against PyTorch's"
"$GLIBC" check | tee -a "$WORK/check.jsonl" >&2
"$PY" "$ROOT/benches/engine/ort_time.py" --model "$MODEL" --input "$FIX/coffee.input.f32" \
    --check "$FIX/coffee.logits.f32" --frames 1 --reps 1 --warmup 0 >&2
log "measuring the core's FMA peak"
PEAK=$("${NICE[@]}" "$GLIBC" peak | tee /dev/stderr | "$PY" -c '
import json, sys
best = 0.0
for l in sys.stdin:
    d = json.loads(l)
    best = max(best, d.get("gflops", 0.0))
print(f"{best:.1f}")')

# ---- configurations ---------------------------------------------------------
# name|command (word-split; paths contain no spaces)
T="time --frames $FRAMES --reps $REPS ${INPUTS[*]}"
O="$ROOT/benches/engine/ort_time.py --model $MODEL --frames $FRAMES --reps $REPS ${INPUTS[*]}"
TREE_FRAMES=$(( FRAMES / 4 > 2 ? FRAMES / 4 : 2 ))
TT="time --apps 5 --sharing mid --frames $TREE_FRAMES --reps $REPS ${INPUTS[*]}"
CONFIGS=(
    "tract_1t|$GLIBC $T --tract-threads 1"
    "ort_1t|$PY $O --threads 1"
    "tract_intra2|$GLIBC $T --tract-threads 1 --intra-threads 2"
    "ort_2t|$PY $O --threads 2"
)
if [ "$TWO_CORES" = 0 ]; then
    CONFIGS+=(
        "tract_1t_stock|env MAINSTREAM_STOCK_ENGINE=1 $GLIBC $T --tract-threads 1"
        "tract_2t|$GLIBC $T --tract-threads 2"
        "tract_1t_mimalloc|$GLIBC_MI $T --tract-threads 1"
    )
fi
if [ "$MUSL" = 1 ]; then
    CONFIGS+=(
        "tract_1t_musl|$MUSL_SYS $T --tract-threads 1"
        "tract_1t_musl_mimalloc|$MUSL_MI $T --tract-threads 1"
    )
fi
if [ "$TREE" = 1 ]; then
    CONFIGS+=(
        "tree5mid_1core|$GLIBC $TT --head-threads 1 --tract-threads 1"
        "tree5mid_intra2|$GLIBC $TT --head-threads 1 --tract-threads 1 --intra-threads 2"
    )
    if [ "$TWO_CORES" = 0 ]; then
        CONFIGS+=(
            "tree5mid_heads2|$GLIBC $TT --head-threads 2 --tract-threads 1"
            "tree5mid_tract2|$GLIBC $TT --head-threads 1 --tract-threads 2"
        )
    fi
fi

n=${#CONFIGS[@]}
for ((r = 0; r < ROUNDS; r++)); do
    log "round $((r + 1))/$ROUNDS"
    for ((i = 0; i < n; i++)); do
        entry=${CONFIGS[$(( (i + r) % n ))]}
        name=${entry%%|*}
        cmd=${entry#*|}
        # shellcheck disable=SC2086
        line=$("${NICE[@]}" $cmd)
        echo "$line" | "$PY" -c '
import json, sys
d = json.loads(sys.stdin.read())
d["config"], d["round"] = sys.argv[1], int(sys.argv[2])
print(json.dumps(d))' "$name" "$r" >> "$RESULTS"
        printf '   %-24s %8.2f ms\n' "$name" "$(echo "$line" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["ms"])')" >&2
    done
done

# ---- summary ----------------------------------------------------------------
"$PY" - "$RESULTS" "$PEAK" "$ORT_VERSION" "$ROUNDS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
peak, ort_version, rounds = float(sys.argv[2]), sys.argv[3], int(sys.argv[4])
GFLOP = 2 * 300774272 / 1e9   # MobileNetV2 multiply-adds (models/mobilenet_v2/manifest.toml)
by = {}
for r in rows:
    by.setdefault(r["config"], {})[r["round"]] = r["ms"]
med = {k: statistics.median(v.values()) for k, v in by.items()}
def paired(a, b):
    """Median over rounds of by[a]/by[b] in the same round."""
    if a not in by or b not in by:
        return None
    common = sorted(set(by[a]) & set(by[b]))
    return statistics.median(by[a][r] / by[b][r] for r in common)
print(f"{'config':<26}{'median ms':>10}{'GFLOP/s':>9}{'% peak':>8}  runs (ms)", file=sys.stderr)
for k, v in by.items():
    runs = " ".join(f"{v[r]:.1f}" for r in sorted(v))
    if k.startswith("tree"):
        print(f"{k:<26}{med[k]:>10.2f}{'':>17}  {runs}", file=sys.stderr)
    else:
        g = GFLOP / med[k] * 1e3
        print(f"{k:<26}{med[k]:>10.2f}{g:>9.1f}{100 * g / peak:>7.1f}%  {runs}", file=sys.stderr)
def put(key, value, digits=3):
    if value is not None:
        out[key] = round(value, digits)
def ms(config):
    return med.get(config)
out = {}
put("tract_ms", ms("tract_1t"))
put("ort_ms", ms("ort_1t"))
put("ratio", paired("ort_1t", "tract_1t"))
put("tract_ms_2c", ms("tract_intra2"))
put("ort_ms_2c", ms("ort_2t"))
put("ratio_2c", paired("ort_2t", "tract_intra2"))
put("scaling_1net_intra2", paired("tract_1t", "tract_intra2"))
put("scaling_1net_ort2", paired("ort_1t", "ort_2t"))
put("tract_gflops", GFLOP / med["tract_1t"] * 1e3, 1)
put("ort_gflops", GFLOP / med["ort_1t"] * 1e3, 1)
out["peak_gflops_1core"] = peak
put("tract_2t_executor_ms", ms("tract_2t"))
put("scaling_1net_tract2", paired("tract_1t", "tract_2t"))
put("tract_1t_mimalloc_ms", ms("tract_1t_mimalloc"))
put("tract_stock_ms", ms("tract_1t_stock"))
put("ratio_stock", paired("ort_1t", "tract_1t_stock"))
put("speedup_vs_stock", paired("tract_1t_stock", "tract_1t"))
if "tract_1t_musl" in med:
    out["musl_ms"] = round(med["tract_1t_musl"], 3)
    out["musl_mimalloc_ms"] = round(med["tract_1t_musl_mimalloc"], 3)
    out["musl_over_glibc"] = round(paired("tract_1t_musl", "tract_1t"), 3)
    out["musl_mimalloc_over_glibc"] = round(paired("tract_1t_musl_mimalloc", "tract_1t"), 3)
for t in ["1core", "intra2", "heads2", "tract2"]:
    put(f"tree5mid_{t}_ms", ms(f"tree5mid_{t}"), 2)
for t in ["intra2", "heads2", "tract2"]:
    put(f"tree5mid_scaling_{t}", paired("tree5mid_1core", f"tree5mid_{t}"))
out["ort_version"] = ort_version
out["rounds"] = rounds
print(json.dumps(out))
EOF
