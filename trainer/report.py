"""Curves report of M-Packages: accuracy and false-positive rate against branch point.

    /usr/bin/python3 trainer/report.py [--apps-dir models/apps] [--png models/curves.png]

Reads every APPS_DIR/*/metrics.json written by trainer/mtrainer.py, draws per app the test
accuracy and the false-positive rate of every candidate branch point (like Figure 4b of the
Mainstream paper; filled markers: heads kept in the package, hollow: not kept, dashed: the
validation accuracy made monotone, which chooses the kept heads; hollow squares: frontier
heads dropped for the size limit)
into one PNG, and prints a markdown table per app and
candidate point: accuracy, FPR, kept or not, epochs and training seconds. The x axis is the
branch point (manifest index) with the share of the base's multiply-adds computed in the
shared stem below it.

Needs Debian's python3-matplotlib (`bash trainer/setup.sh --report`). Deterministic: the same
metrics give the same PNG bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / "models" / "mobilenet_v2" / "manifest.toml"


def load_metrics(apps_dir: Path) -> list[dict]:
    out = []
    for path in sorted(apps_dir.glob("*/metrics.json")):
        m = json.loads(path.read_text())
        for key in ("app", "curve", "monotone", "kept"):
            if key not in m:
                raise SystemExit(f"{path}: no `{key}`; not written by trainer/mtrainer.py?")
        out.append(m)
    if not out:
        raise SystemExit(f"no */metrics.json under {apps_dir}")
    return out


def mac_share() -> dict[int, float]:
    """Branch point -> fraction of the base's multiply-adds computed before it (the stem)."""
    man = tomllib.loads(MANIFEST.read_text())
    total = max(b["macs_to_here"] for b in man["branch_point"])
    return {b["index"]: b["macs_to_here"] / total for b in man["branch_point"]}


def markdown(metrics: list[dict], share: dict[int, float]) -> str:
    lines = [
        "| app | branch point | MACs shared | accuracy | FPR | TPR | validation accuracy | kept | epochs (best) "
        "| training s |",
        "|---|---:|---:|---:|---:|---:|---:|:-:|---:|---:|",
    ]
    for m in metrics:
        kept = set(m["kept"])
        dropped = set(m.get("dropped_for_size", []))
        for c in m["curve"]:
            k = c["branch"]
            mark = "yes" if k in kept else ("size" if k in dropped else "")
            lines.append(
                f"| {m['app']} | {k} | {100 * share.get(k, float('nan')):.0f}% | {c['accuracy']:.4f} | "
                f"{c['fpr']:.4f} | {c['tpr']:.4f} | {c['val_accuracy']:.4f} | {mark} | "
                f"{c['epochs']} ({c['best_epoch']}) | "
                f"{c['train_seconds']:.0f} |"
            )
    lines += [
        "",
        "| app | kept heads | training s (all points) | data s | app total s |",
        "|---|---|---:|---:|---:|",
    ]
    for m in metrics:
        train = sum(c["train_seconds"] for c in m["curve"])
        lines.append(
            f"| {m['app']} | {', '.join(str(k) for k in m['kept'])} | {train:.0f} | "
            f"{m.get('data_seconds', float('nan')):.0f} | {m.get('seconds', float('nan')):.0f} |"
        )
    return "\n".join(lines)


def plot(metrics: list[dict], share: dict[int, float], png: Path, title: str) -> None:
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("matplotlib is missing: run `bash trainer/setup.sh --report`") from None
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "mainstream"
    import matplotlib.pyplot as plt

    points = sorted({c["branch"] for m in metrics for c in m["curve"]})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=90)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, m in enumerate(metrics):
        col = colours[i % len(colours)]
        ks = [c["branch"] for c in m["curve"]]
        kept = set(m["kept"])
        dropped = set(m.get("dropped_for_size", []))
        mono = {x["branch"]: x for x in m["monotone"]}
        for ax, key in ((axes[0], "accuracy"), (axes[1], "fpr")):
            ys = [c[key] for c in m["curve"]]
            ax.plot(ks, ys, "-", color=col, lw=1.2, label=m["app"])
            ax.plot([k for k in ks if k in kept], [c[key] for c in m["curve"] if c["branch"] in kept],
                    "o", color=col, ms=6)
            for sel, marker in ((lambda k: k not in kept and k not in dropped, "o"),
                                (lambda k: k in dropped, "s")):
                ax.plot([k for k in ks if sel(k)], [c[key] for c in m["curve"] if sel(c["branch"])],
                        marker, mfc="white", mec=col, ms=6)
        # The validation accuracy made monotone: the curve that chose the kept heads.
        axes[0].plot(ks, [mono[k]["val_accuracy"] for k in ks], "--", color=col, lw=0.8, alpha=0.7)
    labels = [f"{k}\n{100 * share.get(k, 0):.0f}" for k in points]
    for ax, name in ((axes[0], "top-1 accuracy (test split; dashed: validation)"), (axes[1], "false-positive rate (test split)")):
        ax.set_xticks(points)
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_xlabel("branch point\n(% of the base's multiply-adds in the shared stem)", fontsize=8)
        ax.set_ylabel(name, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(top=1.0)
    axes[1].set_ylim(bottom=0.0)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=8, loc="center right")
    fig.suptitle(title + "\nfilled: head kept; hollow circle: not on the Pareto frontier; hollow square: "
                 "on it but dropped for size; dashed: validation accuracy made monotone (chooses the kept heads)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.89, 1))
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, metadata={"Software": None})
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--apps-dir", type=Path, default=REPO / "models" / "apps")
    ap.add_argument("--png", type=Path, default=REPO / "models" / "curves.png")
    ap.add_argument("--title", default="M-Trainer curves: accuracy and FPR against branch point")
    args = ap.parse_args()
    metrics = load_metrics(args.apps_dir)
    share = mac_share()
    plot(metrics, share, args.png, args.title)
    print(markdown(metrics, share))
    size = args.png.stat().st_size
    print(f"\n{args.png}: {size / 1e3:.0f} kB", file=sys.stderr)


if __name__ == "__main__":
    main()
