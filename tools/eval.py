#!/usr/bin/env python3
"""The evaluation of issue 8: No-Sharing, Max-Sharing and Mainstream on a labelled clip.

Runs `mainstream replay` (the real pipeline under a simulated budget) over a grid of
app counts N, budgets and planners, then checks the event-F1 model against what was
measured: recall against sampling stride at random phases (the paper's Figure 5) and
predicted against measured F1 for every planned configuration. Writes JSON lines with
every run, markdown tables and SVG plots into OUT.

    tools/eval.py --packages models/apps --packages target/eval/apps \\
                  --clip target/eval/streams/eval8.mjpeg --out docs/eval

Only the Python standard library is used (the plots are written as SVG by hand).
Every number it prints comes from the JSON lines in OUT/runs.jsonl, which hold the
exact `mainstream replay` command of each run.
"""

import argparse
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STRATEGIES = ["no-sharing", "max-sharing", "greedy", "exact"]
LABEL = {
    "no-sharing": "No-Sharing",
    "max-sharing": "Max-Sharing",
    "greedy": "Mainstream (greedy)",
    "exact": "Mainstream (exact)",
    "fixed": "fixed",
}
COLOUR = {
    "no-sharing": "#d62728",
    "max-sharing": "#1f77b4",
    "greedy": "#2ca02c",
    "exact": "#9467bd",
}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def write_config(work, packages, clip, fps, threads):
    """A config for the clip with one app per package directory."""
    work.mkdir(parents=True, exist_ok=True)
    apps_d = work / "apps.d"
    apps_d.mkdir(exist_ok=True)
    for f in apps_d.glob("*.toml"):
        f.unlink()
    (work / "config.toml").write_text(
        "# Written by tools/eval.py: the evaluation's apps on its clip.\n"
        "[device]\n"
        "budget_cores = 1.0\n"
        'state_dir = "state"\n'
        f"threads = {threads}\n"
        f'base = "{ROOT / "models/mobilenet_v2/manifest.toml"}"\n\n'
        "[[camera]]\n"
        'name = "eval"\n'
        f'source = "{clip}"\n'
        f"fps = {fps}\n"
    )
    names = []
    for p in packages:
        name = p.name
        (apps_d / f"{name}.toml").write_text(f'camera = "eval"\npackage = "{p}"\n')
        names.append(name)
    return work / "config.toml", names


FRAMES = []  # ["--frames", N] when the clip is cut
LOCK = None


def replay(binary, config, args, runs_file, tag, frames=None):
    cmd = [str(binary), "replay", "--config", str(config), "--json"]
    cmd += ["--frames", str(frames)] if frames else FRAMES
    cmd += args
    t0 = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "MAINSTREAM_LOG": "warn"})
    if out.returncode != 0:
        sys.exit(f"replay failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr}")
    lines = [json.loads(l) for l in out.stdout.splitlines() if l.strip()]
    with LOCK, runs_file.open("a") as f:
        for l in lines:
            l["tag"] = tag
            l["command"] = " ".join(cmd[1:])
            f.write(json.dumps(l) + "\n")
    return lines, time.time() - t0


# ---- SVG ---------------------------------------------------------------------


def svg_lines(path, title, xlabel, ylabel, series, xticks, ylim=(0.0, 1.0), logx=False):
    """series: list of (label, colour, [(x, y)], dashed)."""
    import math

    w, h, ml, mr, mt, mb = 560, 340, 60, 170, 30, 45
    pw, ph = w - ml - mr, h - mt - mb
    xs = [x for _, _, pts, _ in series for x, _ in pts] + list(xticks)
    fx = (lambda v: math.log2(v)) if logx else (lambda v: v)
    x0, x1 = min(fx(x) for x in xs), max(fx(x) for x in xs)
    if x1 == x0:
        x1 = x0 + 1
    y0, y1 = ylim

    def px(x):
        return ml + (fx(x) - x0) / (x1 - x0) * pw

    def py(y):
        return mt + ph - (y - y0) / (y1 - y0) * ph

    o = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{ml + pw / 2}" y="18" text-anchor="middle" font-size="13">{title}</text>',
        f'<line x1="{ml}" y1="{mt + ph}" x2="{ml + pw}" y2="{mt + ph}" stroke="black"/>',
        f'<line x1="{ml}" y1="{mt}" x2="{ml}" y2="{mt + ph}" stroke="black"/>',
        f'<text x="{ml + pw / 2}" y="{h - 8}" text-anchor="middle">{xlabel}</text>',
        f'<text x="14" y="{mt + ph / 2}" text-anchor="middle" transform="rotate(-90 14 {mt + ph / 2})">{ylabel}</text>',
    ]
    for t in xticks:
        o.append(f'<line x1="{px(t)}" y1="{mt + ph}" x2="{px(t)}" y2="{mt + ph + 4}" stroke="black"/>')
        o.append(f'<text x="{px(t)}" y="{mt + ph + 17}" text-anchor="middle">{t:g}</text>')
    for i in range(6):
        y = y0 + (y1 - y0) * i / 5
        o.append(f'<line x1="{ml - 4}" y1="{py(y)}" x2="{ml + pw}" y2="{py(y)}" stroke="#ddd"/>')
        o.append(f'<text x="{ml - 7}" y="{py(y) + 4}" text-anchor="end">{y:.1f}</text>')
    for k, (label, colour, pts, dashed) in enumerate(series):
        if not pts:
            continue
        d = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        dash = ' stroke-dasharray="5,4"' if dashed else ""
        o.append(f'<polyline points="{d}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        for x, y in pts:
            o.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>')
        ly = mt + 10 + 18 * k
        o.append(f'<line x1="{ml + pw + 12}" y1="{ly}" x2="{ml + pw + 36}" y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/>')
        o.append(f'<text x="{ml + pw + 40}" y="{ly + 4}">{label}</text>')
    o.append("</svg>")
    path.write_text("\n".join(o) + "\n")


def svg_scatter(path, title, pts, xlabel, ylabel):
    w, h, m = 380, 380, 50
    p = w - 2 * m
    o = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{w / 2}" y="18" text-anchor="middle" font-size="13">{title}</text>',
        f'<rect x="{m}" y="{m}" width="{p}" height="{p}" fill="none" stroke="black"/>',
        f'<line x1="{m}" y1="{m + p}" x2="{m + p}" y2="{m}" stroke="#999" stroke-dasharray="4,4"/>',
        f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle">{xlabel}</text>',
        f'<text x="14" y="{h / 2}" text-anchor="middle" transform="rotate(-90 14 {h / 2})">{ylabel}</text>',
    ]
    for i in range(6):
        v = i / 5
        o.append(f'<text x="{m + v * p}" y="{m + p + 16}" text-anchor="middle">{v:.1f}</text>')
        o.append(f'<text x="{m - 6}" y="{m + p - v * p + 4}" text-anchor="end">{v:.1f}</text>')
    for x, y, colour in pts:
        o.append(f'<circle cx="{m + x * p:.1f}" cy="{m + p - y * p:.1f}" r="3" fill="{colour}" fill-opacity="0.6"/>')
    o.append("</svg>")
    path.write_text("\n".join(o) + "\n")


# ---- the grid ----------------------------------------------------------------


def subsets_for(names, n, count, rng):
    if n >= len(names):
        return [list(names)]
    all_ = list(itertools.combinations(names, n))
    rng.shuffle(all_)
    return [list(s) for s in all_[:count]]


def run_grid(a, binary, config, names, runs_file):
    from concurrent.futures import ThreadPoolExecutor

    rng = random.Random(a.seed)
    ns = [n for n in a.n if n <= len(names)]
    jobs = []
    for n in ns:
        for si, subset in enumerate(subsets_for(names, n, a.subsets, rng)):
            jobs.append((n, si, subset))
    results = []
    t0 = time.time()
    done = [0]

    def one(job):
        # Every budget in one replay: a plan that repeats one already replayed
        # (same plan, same or smaller budget without drops) is reused, not
        # replayed ("replayed": false), so non-binding budgets cost nothing.
        n, si, subset = job
        args = [
            "--apps", ",".join(subset),
            "--budget", ",".join(str(b) for b in a.budgets),
            "--strategy", ",".join(STRATEGIES),
            # Phase k of subset si: seed + si + 1000 k (k = 0 is the seed a
            # single-phase grid has always used).
            "--phase-seed", ",".join(str(a.seed + si + 1000 * k) for k in range(a.grid_phases)),
        ]
        lines, dt = replay(binary, config, args, runs_file, {"grid": True, "n": n, "subset": si})
        with LOCK:
            done[0] += 1
            for b in a.budgets:
                f1s = " ".join(f"{l['run']['strategy']}={l['run']['measured_mean_f1']:.3f}"
                               for l in lines if l["run"]["budget_cores"] == b)
                log(f"grid {done[0]}/{len(jobs)} N={n} subset {si} budget {b}: {f1s}")
            fresh = sum(1 for l in lines if l["run"].get("replayed", True))
            log(f"grid {done[0]}/{len(jobs)} N={n} subset {si}: {fresh} of {len(lines)} runs replayed "
                f"({dt:.0f} s; {time.time() - t0:.0f} s so far)")
        return [(n, si, l["run"]["budget_cores"], l["run"]) for l in lines]

    # Each replay charges its own thread's CPU time, so parallel jobs do not
    # change what a run is charged (only how long the grid takes). The largest
    # subsets take longest: they start first.
    jobs.sort(key=lambda j: -j[0])
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        for rows in pool.map(one, jobs):
            results.extend(rows)
    return results


def mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs) if xs else float("nan")


def grid_tables(results, out):
    ns = sorted({r[0] for r in results})
    budgets = sorted({r[2] for r in results})
    md = []

    def cell(n, b, s, key):
        v = [r[3][key] for r in results if r[0] == n and r[2] == b and r[3]["strategy"] == s]
        return mean(v)

    for key, title in [
        ("measured_mean_f1", "Mean event F1 (measured)"),
        ("predicted_mean_f1", "Mean event F1 (predicted by the model for the same plan)"),
        ("measured_mean_recall", "Mean event recall (measured)"),
        ("measured_mean_precision", "Mean event precision (measured)"),
    ]:
        md.append(f"### {title}\n")
        md.append("| N | budget (cores) | " + " | ".join(LABEL[s] for s in STRATEGIES) + " |")
        md.append("|---|---|" + "---|" * len(STRATEGIES))
        for n in ns:
            for b in budgets:
                vals = [cell(n, b, s, key) for s in STRATEGIES]
                best = max(vals)
                row = " | ".join(("**%.3f**" if abs(v - best) < 1e-12 else "%.3f") % v for v in vals)
                md.append(f"| {n} | {b:g} | {row} |")
        md.append("")
    # Mainstream vs the baselines: the main table.
    def frp(n, b, s):
        return tuple(cell(n, b, s, k) for k in ("measured_mean_f1", "measured_mean_recall", "measured_mean_precision"))

    def runs_on_baseline(n, b, s):
        # How many of a planner's runs ran a baseline's plan (`fallback`).
        rs = [r[3] for r in results if r[0] == n and r[2] == b and r[3]["strategy"] == s]
        fb = [r.get("fallback") for r in rs if r.get("fallback")]
        return ", ".join(f"{fb.count(k)}/{len(rs)} {k}" for k in sorted(set(fb))) or "-"

    def ratio(x, y):
        return f"{x / y:.2f}x" if y > 0 else "inf"

    md.append("### Mainstream against the baselines: measured mean event F1 (recall / precision)\n")
    md.append("Mean over app subsets and sampling phases. Bold: the best of the four. "
              "\"at least both\": the planner's F1 is at least No-Sharing's and at least Max-Sharing's.\n")
    md.append("| N | budget (cores) | No-Sharing | Max-Sharing | Mainstream (greedy) | Mainstream (exact) "
              "| greedy / NS, / MS | exact / NS, / MS | at least both (greedy, exact) "
              "| runs a baseline's plan (greedy; exact) | predicted F1 (exact) | charged cores (exact) |")
    md.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    wins = []
    for n in ns:
        for b in budgets:
            v = {s: frp(n, b, s) for s in STRATEGIES}
            best = max(x[0] for x in v.values())
            fmt = {s: ("**%.3f (%.2f / %.2f)**" if abs(x[0] - best) < 1e-12 else "%.3f (%.2f / %.2f)") % x
                   for s, x in v.items()}
            ns_, mx = v["no-sharing"][0], v["max-sharing"][0]
            ok = {s: v[s][0] >= ns_ - 1e-12 and v[s][0] >= mx - 1e-12 for s in ("greedy", "exact")}
            wins.append(dict(n=n, budget=b, no_sharing=ns_, max_sharing=mx, greedy=v["greedy"][0],
                             exact=v["exact"][0], greedy_ok=ok["greedy"], exact_ok=ok["exact"]))
            yes = ", ".join("yes" if ok[s] else "**no**" for s in ("greedy", "exact"))
            md.append(
                f"| {n} | {b:g} | {fmt['no-sharing']} | {fmt['max-sharing']} | {fmt['greedy']} | {fmt['exact']} "
                f"| {ratio(v['greedy'][0], ns_)}, {ratio(v['greedy'][0], mx)} "
                f"| {ratio(v['exact'][0], ns_)}, {ratio(v['exact'][0], mx)} | {yes} "
                f"| {runs_on_baseline(n, b, 'greedy')}; {runs_on_baseline(n, b, 'exact')} "
                f"| {cell(n, b, 'exact', 'predicted_mean_f1'):.3f} | {cell(n, b, 'exact', 'used_cores'):.3f} |")
    md.append("")
    for s in ("greedy", "exact"):
        hit = sum(w[f"{s}_ok"] for w in wins)
        hi = [w for w in wins if w["budget"] >= 0.25]
        md.append(f"- {LABEL[s]}: at least both baselines at {hit} of {len(wins)} points; "
                  f"at budgets of 0.25 cores and more, {sum(w[f'{s}_ok'] for w in hi)} of {len(hi)}.")
    md.append("")
    # Each app alone: what its own head, its most-shared head and the planner measure.
    if 1 in ns:
        alone = {}
        for n, _, b, r in results:
            if n == 1:
                a = r["apps"][0]
                alone.setdefault((a["app"], b, r["strategy"]), []).append(a)
        apps = sorted({k[0] for k in alone})
        md.append("### Each app alone (N = 1): measured event F1 (branch point @ frames per second)\n")
        md.append("| app | budget (cores) | No-Sharing | Max-Sharing | Mainstream (exact) | No-Sharing - Max-Sharing |")
        md.append("|---|---|---|---|---|---|")
        for app in apps:
            for b in budgets:
                def f1(s):
                    xs = alone.get((app, b, s), [])
                    conf = ", ".join(sorted({f"{x['branch']}@{x['fps']:g}" for x in xs}))
                    return mean(x["measured"]["f1"] for x in xs if x["measured"]), conf
                (f_ns, c_ns), (f_ms, c_ms), (f_ex, c_ex) = f1("no-sharing"), f1("max-sharing"), f1("exact")
                md.append(f"| {app} | {b:g} | {f_ns:.3f} ({c_ns}) | {f_ms:.3f} ({c_ms}) | {f_ex:.3f} ({c_ex}) "
                          f"| {f_ns - f_ms:+.3f} |")
        md.append("")
    # Plots like the paper's Figures 6, 7 and 8.
    mid_b = 1.0 if 1.0 in budgets else budgets[len(budgets) // 2]
    for key, fname, ylabel in [
        ("measured_mean_f1", "f1_vs_n.svg", "mean event F1"),
        ("measured_mean_recall", "recall_vs_n.svg", "mean event recall"),
        ("measured_mean_precision", "precision_vs_n.svg", "mean event precision"),
    ]:
        series = [(LABEL[s], COLOUR[s], [(n, cell(n, mid_b, s, key)) for n in ns], False) for s in STRATEGIES]
        svg_lines(out / fname, f"{ylabel} against N, budget {mid_b:g} cores", "concurrent apps N", ylabel, series, ns, logx=True)
    big_n = max(ns)
    series = [(LABEL[s], COLOUR[s], [(b, cell(big_n, b, s, "measured_mean_f1")) for b in budgets], False) for s in STRATEGIES]
    svg_lines(out / "f1_vs_budget.svg", f"mean event F1 against budget, N = {big_n}", "budget (cores)", "mean event F1", series, budgets, logx=True)
    # The same at every budget and every N (f1_vs_n_b<budget>.svg, f1_vs_budget_n<N>.svg).
    for b in budgets:
        for key, stem, ylabel in [
            ("measured_mean_f1", "f1", "mean event F1"),
            ("measured_mean_recall", "recall", "mean event recall"),
            ("measured_mean_precision", "precision", "mean event precision"),
        ]:
            series = [(LABEL[s], COLOUR[s], [(n, cell(n, b, s, key)) for n in ns], False) for s in STRATEGIES]
            svg_lines(out / f"{stem}_vs_n_b{b:g}.svg", f"{ylabel} against N, budget {b:g} cores", "concurrent apps N",
                      ylabel, series, ns, logx=True)
    for n in ns:
        series = [(LABEL[s], COLOUR[s], [(b, cell(n, b, s, "measured_mean_f1")) for b in budgets], False) for s in STRATEGIES]
        svg_lines(out / f"f1_vs_budget_n{n}.svg", f"mean event F1 against budget, N = {n}", "budget (cores)",
                  "mean event F1", series, budgets, logx=True)
    return "\n".join(md), wins


# ---- model against measurement --------------------------------------------------


def run_strides(a, binary, config, names, runs_file):
    from concurrent.futures import ThreadPoolExecutor

    seeds = ",".join(str(s) for s in range(1, a.phases + 1))
    jobs = [(name, branch, stride) for name in names for branch in load_package_points(config, name)
            if a.stride_branches is None or branch in a.stride_branches for stride in a.strides]
    t0 = time.time()

    def one(job):
        name, branch, stride = job
        fps = a.fps / stride
        # At stride 1 every phase is the same.
        args = ["--apps", name, "--branch", str(branch), "--fps", repr(fps), "--budget", "8", "--phase-seed", seeds if stride > 1 else "1"]
        lines, dt = replay(binary, config, args, runs_file, {"stride": True, "app": name, "branch": branch, "stride": stride},
                           frames=a.stride_frames)
        row = stride_row(name, branch, stride, lines)
        with LOCK:
            log(f"stride {name} bp{branch} s={stride}: recall {row['recall']:.3f} (model {row['pred_recall']:.3f}), "
                f"F1 {row['f1']:.3f} (model {row['pred_f1']:.3f}) ({dt:.0f} s; {time.time() - t0:.0f} s so far)")
        return row

    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        return list(pool.map(one, jobs))


def stride_row(name, branch, stride, lines):
    """One app alone at one head and stride: the mean over its phases' replays."""
    apps = [l["run"]["apps"][0] for l in lines]
    got = [x["measured"] for x in apps if x["measured"]]
    fr = [x["frames"] for x in apps if x.get("frames")]
    p = apps[0]
    return dict(app=name, branch=branch, stride=stride, recall=mean(m["recall"] for m in got),
                precision=mean(m["precision"] for m in got), f1=mean(m["f1"] for m in got),
                clip_tpr=mean(x["tpr"] for x in fr if x["tpr"] is not None),
                clip_fpr=mean(x["fpr"] for x in fr if x["fpr"] is not None),
                pkg_acc=fr[0]["package_accuracy"] if fr else float("nan"),
                pkg_fpr=fr[0]["package_fpr"] if fr else float("nan"),
                pred_recall=p["predicted_recall"], pred_precision=p["predicted_precision"], pred_f1=p["predicted_f1"],
                runs=len(lines))


def load_runs(paths, runs_file):
    """Grid results and stride rows from earlier runs.jsonl(.gz) files, copied into runs_file
    (all of them read first: runs_file may be one of them)."""
    import gzip

    grid, strides, texts = [], {}, []
    for path in paths:
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rt") as f:
                for lineno, text in enumerate(f, 1):
                    if not text.strip():
                        continue
                    try:
                        l = json.loads(text)
                        t = l.get("tag", {})
                        if t.get("grid"):
                            grid.append((t["n"], t["subset"], l["run"]["budget_cores"], l["run"]))
                        elif t.get("stride"):
                            strides.setdefault((t["app"], t["branch"], t["stride"]), []).append(l)
                    except (ValueError, KeyError, TypeError, AttributeError) as e:
                        sys.exit(f"{path}:{lineno}: not a run written by tools/eval.py ({type(e).__name__}: {e})")
                    texts.append(text if text.endswith("\n") else text + "\n")
        except OSError as e:
            sys.exit(f"{path}: {e}")
    runs_file.write_text("".join(texts))
    rows = [stride_row(app, b, st, lines) for (app, b, st), lines in sorted(strides.items())]
    return grid, rows


def load_package_points(config, name):
    """Branch points of an app's package (from its drop-in)."""
    drop = Path(config).parent / "apps.d" / f"{name}.toml"
    pkg = None
    for line in drop.read_text().splitlines():
        if line.startswith("package"):
            pkg = Path(line.split("=", 1)[1].strip().strip('"'))
    text = (pkg / "package.toml").read_text()
    pts = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("branch") and "=" in s:
            try:
                pts.append(int(s.split("=", 1)[1].strip()))
            except ValueError:
                pass
    return sorted(set(pts))


def stride_report(rows, out, strides):
    md = ["Per frame, at stride 1 (every frame sampled): the head on this clip against the planner's inputs "
          "(the package's calibration.toml if it has one, else its test-split values).\n",
          "| app | branch | clip TPR (in events) | input accuracy | clip FPR (outside events) | input FPR |",
          "|---|---|---|---|---|---|"]
    for r in rows:
        if r["stride"] == min(strides):
            md.append(f"| {r['app']} | {r['branch']} | {r['clip_tpr']:.3f} | {r['pkg_acc']:.3f} | {r['clip_fpr']:.3f} | {r['pkg_fpr']:.3f} |")
    md += ["", "Event level, every stride (mean over random phases):\n","| app | branch | stride | measured recall | model recall | measured precision | model precision | measured F1 | model F1 |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(
            f"| {r['app']} | {r['branch']} | {r['stride']} | {r['recall']:.3f} | {r['pred_recall']:.3f} | "
            f"{r['precision']:.3f} | {r['pred_precision']:.3f} | {r['f1']:.3f} | {r['pred_f1']:.3f} |"
        )
    # One plot per app: measured (solid) and model (dashed) recall against stride, per branch point.
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    for app in sorted({r["app"] for r in rows}):
        series = []
        for k, b in enumerate(sorted({r["branch"] for r in rows if r["app"] == app})):
            rr = [r for r in rows if r["app"] == app and r["branch"] == b]
            c = palette[k % len(palette)]
            series.append((f"bp {b} measured", c, [(r["stride"], r["recall"]) for r in rr], False))
            series.append((f"bp {b} model", c, [(r["stride"], r["pred_recall"]) for r in rr], True))
        svg_lines(out / f"recall_vs_stride_{app}.svg", f"{app}: event recall against sampling stride", "stride (frames)", "event recall", series, strides, logx=True)
    err_r = [r["pred_recall"] - r["recall"] for r in rows]
    err_p = [r["pred_precision"] - r["precision"] for r in rows]
    err_f = [r["pred_f1"] - r["f1"] for r in rows]
    summary = {
        "recall_bias": mean(err_r), "recall_mae": mean(abs(e) for e in err_r),
        "precision_bias": mean(err_p), "precision_mae": mean(abs(e) for e in err_p),
        "f1_bias": mean(err_f), "f1_mae": mean(abs(e) for e in err_f),
    }
    return "\n".join(md), summary


def planned_vs_measured(results, out):
    # Every distinct app-plan: a reused run repeats one already counted.
    plans = [(r["strategy"], b, a, a["measured"]) for _, _, b, r in results if r.get("replayed", True)
             for a in r["apps"] if a["measured"] is not None]

    def errors(a, m):
        return tuple(a[f"predicted_{k}"] - m[k] for k in ("f1", "recall", "precision"))

    def error_cols(e):
        # F1, recall and precision: mean predicted - measured (mean absolute error).
        return " | ".join(f"{mean(x[k] for x in e):+.3f} ({mean(abs(x[k]) for x in e):.3f})" for k in range(3))

    svg_scatter(out / "predicted_vs_measured_f1.svg", "per app and plan: predicted vs measured F1",
                [(a["predicted_f1"], m["f1"], COLOUR.get(s, "#000")) for s, _, a, m in plans],
                "predicted event F1", "measured event F1")
    errs = {s: [a["predicted_f1"] - m["f1"] for t, _, a, m in plans if t == s] for s in STRATEGIES}
    md = ["Distinct replays only (a run reused for an identical plan at another budget is counted once).", "",
          "| planner | app-plans | mean predicted - measured F1 | mean absolute error |", "|---|---|---|---|"]
    for s in STRATEGIES:
        e = errs[s]
        if e:
            md.append(f"| {LABEL[s]} | {len(e)} | {mean(e):+.3f} | {mean(abs(x) for x in e):.3f} |")
    # Where the model is wrong: the same errors by budget, recall and precision apart.
    by_b = {}
    for _, b, a, m in plans:
        by_b.setdefault(b, []).append(errors(a, m))
    md += ["", "By budget, every planner (predicted - measured, mean; mean absolute error in brackets):", "",
           "| budget (cores) | app-plans | F1 | recall | precision |", "|---|---|---|---|---|"]
    for b in sorted(by_b):
        md.append(f"| {b:g} | {len(by_b[b])} | {error_cols(by_b[b])} |")
    # The model's inputs against the clip: a head's per-sample detection rate inside events and
    # false-positive rate outside them on this clip, beside the calibrated values it was given.
    by_h = {}
    for _, _, a, m in plans:
        if a.get("frames"):
            by_h.setdefault((a["app"], a["branch"]), []).append((a["frames"], a, m))
    md += ["", "Per app and head, every distinct replay that ran it: the head's per-sample rates on this clip "
           "(TPR inside events, FPR outside) beside the planner's inputs (calibration), and the event "
           "recall and precision predicted and measured:", "",
           "| app | branch | app-plans | TPR clip / input | FPR clip / input | recall predicted / measured "
           "| precision predicted / measured |", "|---|---|---|---|---|---|---|"]
    # A head's inputs held on this clip if its TPR is within 0.05 and its FPR within 0.03 of the
    # calibrated values, over every replay that ran it.
    held = {}
    for (app, b), v in sorted(by_h.items()):
        def avg(get):
            return mean(y for y in (get(x) for x in v) if y is not None)
        tpr, acc = avg(lambda x: x[0]["tpr"]), avg(lambda x: x[0]["package_accuracy"])
        fpr, pfpr = avg(lambda x: x[0]["fpr"]), avg(lambda x: x[0]["package_fpr"])
        held[(app, b)] = abs(tpr - acc) <= 0.05 and abs(fpr - pfpr) <= 0.03
        md.append(f"| {app} | {b} | {len(v)} | {tpr:.3f} / {acc:.3f} | {fpr:.3f} / {pfpr:.3f} "
                  f"| {avg(lambda x: x[1]['predicted_recall']):.3f} / {avg(lambda x: x[2]['recall']):.3f} "
                  f"| {avg(lambda x: x[1]['predicted_precision']):.3f} / {avg(lambda x: x[2]['precision']):.3f} |")
    md += ["", "The same app-plans split by whether the head's inputs held on this clip (TPR within 0.05 "
           "and FPR within 0.03 of the calibrated values; predicted - measured, mean; mean absolute error "
           "in brackets):", "", "| the head's inputs | heads | app-plans | F1 | recall | precision |",
           "|---|---|---|---|---|---|"]
    for ok in (True, False):
        e = [errors(a, m) for k, v in by_h.items() if held[k] == ok for _, a, m in v]
        if e:
            heads = sum(1 for k in held if held[k] == ok)
            md.append(f"| {'held' if ok else 'did not hold'} | {heads} | {len(e)} | {error_cols(e)} |")
    all_errs = [x for s in STRATEGIES for x in errs[s]]
    return "\n".join(md), (mean(all_errs), mean(abs(x) for x in all_errs), len(all_errs))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packages", action="append", type=Path, default=[],
                    help="an M-Package directory, or a directory of them (repeatable)")
    ap.add_argument("--clip", type=Path, help="labelled clip (ground truth beside it)")
    ap.add_argument("--fps", type=float, default=10.0, help="the clip's frame rate [10]")
    ap.add_argument("--out", type=Path, required=True, help="output directory")
    ap.add_argument("--bin", type=Path, default=ROOT / "target/release/mainstream")
    ap.add_argument("--n", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4, 8])
    ap.add_argument("--budgets", type=lambda s: [float(x) for x in s.split(",")], default=[0.25, 0.5, 1.0, 2.0])
    ap.add_argument("--subsets", type=int, default=3, help="random app subsets per N < all [3]")
    ap.add_argument("--strides", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4, 8, 16, 32])
    ap.add_argument("--phases", type=int, default=8, help="random phases per stride [8]")
    ap.add_argument("--grid-phases", type=int, default=1,
                    help="random sampling phases per grid point; every table averages over them [1]")
    ap.add_argument("--seed", type=int, default=2018)
    ap.add_argument("--frames", type=int, help="only the clip's first N frames")
    ap.add_argument("--jobs", type=int, default=1, help="replays at once [1]")
    ap.add_argument("--stride-frames", type=int, help="only the clip's first N frames in the stride study [--frames]")
    ap.add_argument("--stride-branches", type=lambda s: [int(x) for x in s.split(",")],
                    help="only these branch points in the stride study, e.g. 0,20 (each app's own head "
                         "and the most shared one) [every head a package keeps]")
    ap.add_argument("--skip-grid", action="store_true")
    ap.add_argument("--skip-strides", action="store_true")
    ap.add_argument("--from-runs", action="append", type=Path, metavar="RUNS",
                    help="replay nothing: rebuild the tables and plots from the runs.jsonl(.gz) of earlier "
                         "runs (repeat to merge, e.g. a grid finished in two parts)")
    a = ap.parse_args()
    global LOCK
    import threading

    LOCK = threading.Lock()
    if a.frames:
        FRAMES.extend(["--frames", str(a.frames)])

    if a.from_runs:
        a.out.mkdir(parents=True, exist_ok=True)
        results, rows = load_runs(a.from_runs, a.out / "runs.jsonl")
        md, report = [], {"from_runs": [str(p) for p in a.from_runs]}
        if results:
            t, wins = grid_tables(results, a.out)
            t2, (bias, mae, count) = planned_vs_measured(results, a.out)
            md += ["## The grid\n\n" + t, "## Predicted against measured F1, every planned configuration\n\n" + t2 + "\n"]
            report["grid_predicted_minus_measured_f1"] = {"bias": bias, "mae": mae, "app_plans": count}
            report["wins"] = wins
        if rows:
            t, summary = stride_report(rows, a.out, sorted({r["stride"] for r in rows}))
            md.append("## Recall against sampling stride, measured and modelled\n\n" + t + "\n")
            report["strides"] = summary
            report["stride_rows"] = rows
        (a.out / "results.md").write_text("\n".join(md) + "\n")
        (a.out / "summary.json").write_text(json.dumps(report, indent=1) + "\n")
        log(f"{len(results)} grid runs, {len(rows)} stride rows: {a.out / 'results.md'}")
        return

    if not a.packages or not a.clip:
        sys.exit("--packages and --clip are needed (or --from-runs to rebuild tables from earlier runs)")
    pkgs = []
    for p in a.packages:
        p = p.resolve()
        if (p / "package.toml").is_file():
            pkgs.append(p)
        else:
            pkgs.extend(sorted(q for q in p.iterdir() if (q / "package.toml").is_file()))
    if not pkgs:
        sys.exit("no M-Package found under " + ", ".join(map(str, a.packages)))
    if not a.bin.is_file():
        sys.exit(f"{a.bin} missing: build it with `cargo build --release`")
    a.out.mkdir(parents=True, exist_ok=True)
    config, names = write_config(a.out / "work", pkgs, a.clip.resolve(), a.fps, 1)
    runs_file = a.out / "runs.jsonl"
    runs_file.write_text("")
    log(f"{len(names)} apps: {', '.join(names)}; clip {a.clip}")
    t0 = time.time()
    report = {"apps": names, "clip": str(a.clip), "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k != "packages"}}
    md = []
    if not a.skip_grid:
        results = run_grid(a, a.bin, config, names, runs_file)
        t, wins = grid_tables(results, a.out)
        md.append("## The grid\n\n" + t)
        t2, (bias, mae, count) = planned_vs_measured(results, a.out)
        md.append("## Predicted against measured F1, every planned configuration\n\n" + t2 + "\n")
        report["grid_predicted_minus_measured_f1"] = {"bias": bias, "mae": mae, "app_plans": count}
        report["wins"] = wins
    if not a.skip_strides:
        rows = run_strides(a, a.bin, config, names, runs_file)
        t, summary = stride_report(rows, a.out, a.strides)
        md.append("## Recall against sampling stride, measured and modelled\n\n" + t + "\n")
        report["strides"] = summary
        report["stride_rows"] = rows
    report["seconds"] = time.time() - t0
    (a.out / "results.md").write_text("\n".join(md) + "\n")
    (a.out / "summary.json").write_text(json.dumps(report, indent=1) + "\n")
    log(f"done in {time.time() - t0:.0f} s: {a.out / 'results.md'}")


if __name__ == "__main__":
    main()
