#!/usr/bin/env python3
"""Sizes the fresh evaluation of issue 22 (docs/eval-protocol.md) from an earlier grid's runs.

    tools/eval_power.py [--runs docs/eval/eval24-s10/runs.jsonl.gz]
                        [--manifest docs/eval/fresh1/manifest.json]

Reads the committed runs of an earlier grid (tools/eval.py's runs.jsonl(.gz)) and prints, as
markdown:

1. the noise of a paired difference between two plans on the same frames: Mainstream (exact)
   minus the better baseline where their plans differed, and No-Sharing minus Max-Sharing at
   every point (two different plans everywhere), split into the part between sampling phases of
   one app subset and the part between app subsets;
2. the noise of one app's measured event F1 between two sampling phases of the same plan (the
   floor under the model's error: a model that is exactly right still misses by this much);
3. for the pre-registered design (DESIGN below, the protocol's table), the expected half-width of
   the 95% interval on Mainstream minus the better baseline, the smallest difference found with
   80% power, and the CPU time the grid would take on this machine, from the earlier runs'
   measured cores per app and the fresh streams' lengths.

Standard library only. The numbers in docs/eval-protocol.md are this script's output.
"""

import argparse
import collections
import gzip
import json
import math
import statistics as st
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The protocol's budget grid: fractions of No-Sharing's unconstrained plan's measured cost.
FRACTIONS = [0.05, 0.10, 0.20, 0.35, 0.50, 0.75, 1.00]
# The pre-registered workloads: name, cameras per unit, apps per camera, units, whether the app
# set is drawn at random per unit (False: one fixed set, units differ by camera and phase only).
DESIGN = [
    ("N=1", 1, 1, 24, True),
    ("N=2", 1, 2, 24, True),
    ("N=4", 1, 4, 24, True),
    ("N=8", 1, 8, 12, False),
    ("2 cameras x 4 apps", 2, 4, 16, True),
    ("4 cameras x all apps", 4, 7.5, 8, False),
]
# Between-subset standard deviation of Mainstream minus the better baseline assumed for random
# app subsets (the largest seen in the earlier grid, printed in part 1); 0 for a fixed app set.
SIGMA_SUBSET = 0.05
# Replays of Mainstream (the service's `auto` planner and the paper's greedy) whose plans are not
# a baseline's: none (lower bound) to one per strategy at every budget below 100% (upper bound).
MAINSTREAM_STRATEGIES = 2
# CPU time of a replay beyond the cores it is charged (decoding, loading, scoring).
OVERHEAD = 1.1


def t_quantile(p, df):
    """Student's t quantile (Cornish-Fisher expansion; within 0.01 of the exact value for
    df >= 3, which is all this script asks for)."""
    z = st.NormalDist().inv_cdf(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


def load(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def grid(rows):
    """(n, subset, phase, budget) -> strategy -> run."""
    out = collections.defaultdict(dict)
    for line in rows:
        t, r = line["tag"], line["run"]
        if t.get("grid"):
            out[(t["n"], t["subset"], r["phase_seed"], r["budget_cores"])][r["strategy"]] = r
    return out


def components(values):
    """values: subset -> [difference per phase]. Returns (phase sd, subset sd, unit sd, units)."""
    groups = [v for v in values.values() if v]
    within = [st.variance(v) for v in groups if len(v) > 1]
    sp2 = st.mean(within) if within else 0.0
    units = [x for v in groups for x in v]
    if len(groups) > 1:
        means = [st.mean(v) for v in groups]
        phases = st.mean(len(v) for v in groups)
        ss2 = max(0.0, st.variance(means) - sp2 / phases)
    else:
        ss2 = float("nan")
    return math.sqrt(sp2), math.sqrt(ss2) if ss2 == ss2 else ss2, st.pstdev(units) if len(units) > 1 else 0.0, len(units)


def f1(run):
    return run["measured_mean_f1"]


def rms(xs):
    xs = list(xs)
    return math.sqrt(sum(x * x for x in xs) / len(xs)) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, default=ROOT / "docs/eval/eval24-s10/runs.jsonl.gz")
    ap.add_argument("--manifest", type=Path, default=ROOT / "docs/eval/fresh1/manifest.json")
    a = ap.parse_args()
    rows = load(a.runs)
    g = grid(rows)
    points = sorted({(k[0], k[3]) for k in g})
    print(f"# Sizing from {a.runs.relative_to(ROOT) if a.runs.is_relative_to(ROOT) else a.runs}\n")

    print("## 1. A paired difference between two plans on the same frames\n")
    print("Per point (N apps, budget in cores): Mainstream (exact) minus the better baseline (by "
          "mean F1 at the point) where exact ran a plan of its own in some unit; No-Sharing minus "
          "Max-Sharing everywhere. sd between sampling phases of one subset / between subsets / "
          "of one unit (subset and phase); a budget binds where No-Sharing dropped frames.\n")
    print("| N | budget | binds | units | exact - better: mean, phase / subset / unit sd | NS - MS: mean, phase / subset / unit sd |")
    print("|---|---|---|---|---|---|")
    phase_sd = collections.defaultdict(list)
    exact_subset = []
    for n, b in points:
        ks = [k for k in g if k[0] == n and k[3] == b and {"no-sharing", "max-sharing", "exact"} <= set(g[k])]
        binds = any(g[k]["no-sharing"]["dropped"] > 0 for k in ks)
        better = max(("no-sharing", "max-sharing"), key=lambda s: st.mean(f1(g[k][s]) for k in ks))
        d_ex, d_base = collections.defaultdict(list), collections.defaultdict(list)
        for k in ks:
            d_ex[k[1]].append(f1(g[k]["exact"]) - f1(g[k][better]))
            d_base[k[1]].append(f1(g[k]["no-sharing"]) - f1(g[k]["max-sharing"]))
        own = any(abs(x) > 1e-12 for v in d_ex.values() for x in v)
        ex = components(d_ex)
        bs = components(d_base)
        if binds:
            phase_sd[n].append(bs[0])
        if own and ex[1] == ex[1]:
            exact_subset.append(ex[1])
        cell = (f"{st.mean(x for v in d_ex.values() for x in v):+.3f}, {ex[0]:.3f} / "
                f"{ex[1]:.3f} / {ex[2]:.3f}" if own else "same plan in every unit")
        print(f"| {n} | {b:g} | {'yes' if binds else 'no'} | {ex[3]} | {cell} | "
              f"{st.mean(x for v in d_base.values() for x in v):+.3f}, {bs[0]:.3f} / "
              f"{bs[1]:.3f} / {bs[2]:.3f} |".replace("nan", "-"))
    sigma_phase = {n: rms(v) for n, v in phase_sd.items()}
    print("\nPhase sd of a difference between two plans where the budget binds (RMS over those "
          "points of NS - MS's phase sd), the planning value per N: "
          + ", ".join(f"N = {n}: {s:.3f}" for n, s in sorted(sigma_phase.items()))
          + f". Largest between-subset sd of exact - better: {max(exact_subset):.3f} "
          f"(planning value {SIGMA_SUBSET}).\n")

    print("## 2. One app's event F1 between two sampling phases of the same plan\n")
    same = collections.defaultdict(dict)
    for line in rows:
        t, r = line["tag"], line["run"]
        if not t.get("grid") or not r.get("replayed", True):
            continue
        for app in r["apps"]:
            key = (t["n"], t["subset"], r["budget_cores"], app["app"], app["branch"], round(app["fps"], 4),
                   r["dropped"] > 0, r["strategy"])
            same[key][r["phase_seed"]] = app["measured"]["f1"]
    print("| budget | app-plans run at two phases | sd of one run | MAE of an exactly right model |")
    print("|---|---|---|---|")
    for binds in (True, False):
        d = [x - y for k, v in same.items() if k[6] == binds and len(v) == 2 for x, y in [v.values()]]
        sd = rms(d) / math.sqrt(2)
        print(f"| {'binds' if binds else 'does not bind'} | {len(d)} | {sd:.3f} | {sd * math.sqrt(2 / math.pi):.3f} |")
    print()

    print("## 3. The pre-registered design: interval width and CPU time\n")
    free = [(k[0], r["used_cores"]) for k, v in g.items() for s, r in v.items()
            if s == "no-sharing" and r["dropped"] == 0 and r.get("replayed", True)]
    per_app = st.mean(c / n for n, c in free)
    # Max-Sharing's cost against No-Sharing's per N, at the largest budget (nothing binds).
    top = max(k[3] for k in g)
    ratios = collections.defaultdict(list)
    for k, v in g.items():
        if k[3] == top and {"no-sharing", "max-sharing"} <= set(v):
            ratios[k[0]].append(v["max-sharing"]["used_cores"] / v["no-sharing"]["used_cores"])
    ms_ratio = {n: st.mean(r) for n, r in ratios.items()}
    man = json.loads(a.manifest.read_text())
    single_s = st.mean(s["frames"] for s in man["streams"]) / 10.0
    common_s = man["common_frames"] / 10.0
    ns = sum(FRACTIONS)

    def ms_cost(n):
        """Max-Sharing's plan is replayed at every fraction below its own cost, then once more."""
        r = ms_ratio[n]
        return sum(f for f in FRACTIONS if f < r) + min(r, 1.0)

    mainstream_hi = MAINSTREAM_STRATEGIES * sum(f for f in FRACTIONS if f < 1)
    ms_text = ", ".join(f"{ms_ratio[n]:.2f} (N = {n})" for n in sorted(ms_ratio))
    ms_k = ", ".join(f"{ms_cost(n):.2f}" for n in sorted(ms_ratio))
    print(f"No-Sharing's plan with nothing binding was charged {per_app:.4f} cores per app "
          f"(mean over {len(free)} runs); Max-Sharing's at {top:g} cores {ms_text} of "
          f"No-Sharing's. A replay costs about "
          f"{OVERHEAD} x the cores it is charged x the video's length, and a budget at fraction f "
          f"of No-Sharing's cost charges at most f of it; a plan already replayed at a budget "
          f"that dropped nothing is reused. So one unit (every strategy at every budget) costs "
          f"about {OVERHEAD} x C x V x k, C = No-Sharing's cost, V = seconds of video, k = "
          f"{ns:.2f} (No-Sharing) + {ms_k} (Max-Sharing by N; several cameras as N = 8) + 0 to "
          f"{mainstream_hi:.2f} (Mainstream's own plans). V = {single_s:.0f} s for one camera (mean "
          f"of fresh1's streams), {common_s:.0f} s per camera for several (their common length). "
          f"Interval: t over units; unit sd = sqrt(subset sd^2 + phase sd^2), the phase sd of the "
          f"earlier grid's N (8 for several cameras).\n")
    print("| workload | cameras x apps | units | unit sd | 95% half-width | found with 80% power | CPU hours (low - high) |")
    print("|---|---|---|---|---|---|---|")
    tot_lo = tot_hi = 0.0
    for name, cams, apps, units, random_set in DESIGN:
        n_apps = cams * apps
        sp = sigma_phase.get(int(apps) if cams == 1 else 8, sigma_phase[max(sigma_phase)])
        sd = math.sqrt((SIGMA_SUBSET if random_set else 0.0) ** 2 + sp**2)
        df = units - 1
        hw = t_quantile(0.975, df) * sd / math.sqrt(units)
        mde = (t_quantile(0.975, df) + t_quantile(0.80, df)) * sd / math.sqrt(units)
        v = single_s if cams == 1 else common_s  # seconds of video per camera
        c = per_app * n_apps
        ms = ms_cost(int(apps) if cams == 1 else 8)
        lo = OVERHEAD * c * v * (ns + ms) * units / 3600
        hi = OVERHEAD * c * v * (ns + ms + mainstream_hi) * units / 3600
        tot_lo += lo
        tot_hi += hi
        print(f"| {name} | {cams} x {apps:g} | {units} | {sd:.3f} | {hw:.3f} | {mde:.3f} | {lo:.1f} - {hi:.1f} |")
    print(f"| all | | | | | | {tot_lo:.1f} - {tot_hi:.1f} |")


if __name__ == "__main__":
    main()
