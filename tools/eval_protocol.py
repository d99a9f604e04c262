#!/usr/bin/env python3
"""Runs and scores issue 22's evaluation exactly as docs/eval-protocol.md fixes it.

    tools/eval_protocol.py draw   --out RUN
    tools/eval_protocol.py run    --streams DIR --out RUN --packages DIR... [--workloads LIST]
                                  [--frames N] [--jobs J] [--bin FILE]
    tools/eval_protocol.py report --out RUN

draw    Draws the units of section 3 once (random.Random(2026)) from the cameras and the apps
        labelled on each (docs/eval/fresh1/manifest.json) and writes RUN/units.json. `run` draws
        them if RUN/units.json is missing and never draws again: commit it with the runs.
run     For every unit of the chosen workloads (default: all, in the protocol's order: 4
        cameras x all apps, 2 cameras x 4 apps, N = 8, N = 4, N = 2, N = 1): replays
        No-Sharing at 64 cores on the unit's frames and phase (C = its measured `used_cores`,
        summed over the unit's cameras; averaged over the units of one fixed app set), then
        every strategy (no-sharing, max-sharing, mainstream = the service's `auto`, greedy)
        at 5, 10, 20, 35, 50, 75 and 100% of C. A multi-camera unit plans all its cameras
        under one budget and replays each camera on its share (`replay --all-cameras`).
        Every replay's JSON goes to RUN/runs.jsonl with the unit, camera, requested strategy,
        fraction and C beside it; an interrupted run resumes where it stopped (a unit's
        camera already in the file is not replayed again). Then `report`.
report  Section 4 and 5's tables from RUN/runs.jsonl(.gz) into RUN/results.md: per point the
        mean event F1 of each strategy and d = Mainstream - the better baseline with its 95%
        interval and verdict (win, loss, tie, inconclusive, same plan), per workload the mean
        of d over the binding fractions 5-50%, the count of wins and losses against the ~1 a
        tie everywhere would show by chance, where Mainstream ran a plan of its own and what
        it gained, the model's event-F1 error per budget band (MAE, signed mean, RMSE and the
        error net of sampling noise) and predicted against measured CPU.

--packages names the eight apps' M-Package directories (a package's directory name is its
app name: models/apps/{birds,vehicles,mammals} and the five of `bash trainer/build_eval.sh`).
--frames N and --units N (only each camera's first N frames, each workload's first N units)
make a smoke run; the protocol's runs set neither. --manifest names other streams than fresh1's,
only to try the harness on development data. Standard library only.
"""

import argparse
import concurrent.futures
import gzip
import hashlib
import json
import math
import random
import statistics as st
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from eval_power import FRACTIONS, t_quantile  # noqa: E402  (the protocol's own numbers)

SEED = 2026
FRESH1 = ROOT / "docs/eval/fresh1/manifest.json"
# Section 3's table: name, cameras per unit, apps per camera (None: all), units, phases per
# fixed set (None: one phase per drawn unit). In the protocol's order of running.
WORKLOADS = [
    ("4x30", 4, None, 8),
    ("2x4", 2, 4, 16),
    ("N8", 1, 8, 12),
    ("N4", 1, 4, 24),
    ("N2", 1, 2, 24),
    ("N1", 1, 1, 24),
]
STRATEGIES = ["no-sharing", "max-sharing", "mainstream", "greedy"]
BASELINES = ["no-sharing", "max-sharing"]
UNCONSTRAINED = 64.0
BINDING = [f for f in FRACTIONS if f <= 0.5]


def load_manifest(path):
    m = json.loads(path.read_text())
    if len(m["streams"]) != 4:
        sys.exit(f"eval_protocol.py: {path} has {len(m['streams'])} streams; the protocol's "
                 "workloads need four cameras")
    return m


def check_streams(manifest, streams):
    """Every clip and ground truth is the frozen one (sha256 against the manifest)."""
    for s in manifest["streams"]:
        for name, want in ((s["clip"], s["sha256"]), (s["truth"], s["truth_sha256"])):
            h = hashlib.sha256()
            with open(streams / name, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            if h.hexdigest() != want:
                sys.exit(f"eval_protocol.py: {streams / name} is not fresh1's (sha256 "
                         f"{h.hexdigest()}, manifest {want}); rebuild it: STEPS=fresh bash trainer/build_eval.sh")


def draw(manifest):
    """The protocol's units, in its order; each with a global index, its cameras' apps, its
    phase and its phase seed (2026 + index + 1000 x phase). The apps of a camera are those its
    stream labels (the frozen manifest's list, not the ground truth)."""
    apps_of = {s["camera"]: sorted(s["apps"]) for s in manifest["streams"]}
    cameras = [s["camera"] for s in manifest["streams"]]
    # N = 8: the cameras where all eight apps are labelled (tree and box in fresh1).
    full = [c for c in cameras if len(apps_of[c]) == 8]
    common = manifest["common_frames"]
    rng = random.Random(SEED)
    units = []

    def add(workload, cams, phase):
        i = len(units)
        units.append({"id": i, "workload": workload, "cameras": cams, "phase": phase,
                      "seed": SEED + i + 1000 * phase,
                      "frames": common if len(cams) > 1 else None})

    for name, ncam, napps, count in WORKLOADS:
        if name == "4x30":
            for phase in range(count):
                add(name, {c: apps_of[c] for c in cameras}, phase)
        elif name == "N8":
            if len(full) != 2:
                sys.exit(f"eval_protocol.py: {len(full)} cameras label all eight apps, not 2")
            for cam in full:
                for phase in range(count // len(full)):
                    add(name, {cam: apps_of[cam]}, phase)
        elif name == "N1":
            pairs = [(c, a) for c in cameras for a in apps_of[c]]
            for cam, app in rng.sample(pairs, count):
                add(name, {cam: [app]}, 0)
        else:
            seen = set()
            while sum(u["workload"] == name for u in units) < count:
                cams = sorted(rng.sample(cameras, ncam))
                pick = {c: sorted(rng.sample(apps_of[c], napps)) for c in cams}
                key = json.dumps(pick, sort_keys=True)
                if key not in seen:
                    seen.add(key)
                    add(name, pick, 0)
    return units


def load_units(out, manifest):
    path = out / "units.json"
    if not path.exists():
        units = draw(manifest)
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"seed": SEED, "fractions": FRACTIONS, "units": units},
                                   indent=1) + "\n")
    return json.loads(path.read_text())["units"]


def app_name(unit, cam, app):
    return app if len(unit["cameras"]) == 1 else f"{app}-{cam}"


def write_config(out, unit, streams, clips, packages):
    d = out / "configs" / f"u{unit['id']:03d}"
    d.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by tools/eval_protocol.py: one unit of docs/eval-protocol.md.",
             "[device]", "budget_cores = 1.0", f"state_dir = {json.dumps(str(out / 'state'))}",
             "threads = 1",
             f"base = {json.dumps(str(ROOT / 'models/mobilenet_v2/manifest.toml'))}", ""]
    for cam in unit["cameras"]:
        lines += ["[[camera]]", f'name = "{cam}"',
                  f"source = {json.dumps(str(streams / clips[cam]))}", "fps = 10", ""]
    for cam, apps in unit["cameras"].items():
        for app in apps:
            if app not in packages:
                sys.exit(f"eval_protocol.py: no --packages directory for app {app}")
            lines += ["[[app]]", f'name = "{app_name(unit, cam, app)}"', f'camera = "{cam}"',
                      f"package = {json.dumps(str(packages[app]))}", ""]
    (d / "config.toml").write_text("\n".join(lines))
    return d / "config.toml"


def replay(binary, config, cam, multi, strategies, budgets, seed, frames):
    cmd = [str(binary), "replay", "--config", str(config), "--camera", cam,
           "--strategy", ",".join(strategies), "--budget", ",".join(f"{b:.6g}" for b in budgets),
           "--phase-seed", str(seed), "--json"]
    if multi:
        cmd.append("--all-cameras")
    if frames:
        cmd += ["--frames", str(frames)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()[-2000:]}")
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    unscored = [x["app"] for line in lines for x in line["run"]["apps"] if not x.get("measured")]
    if unscored:
        raise RuntimeError(f"{' '.join(cmd)}: no ground truth scores {sorted(set(unscored))}")
    if len(lines) != len(budgets) * len(strategies):
        raise RuntimeError(f"{' '.join(cmd)}: {len(lines)} runs, expected "
                           f"{len(budgets) * len(strategies)}")
    return cmd, lines


def read_runs(out):
    rows = []
    for name in ("runs.jsonl.gz", "runs.jsonl"):
        p = out / name
        if p.exists():
            opener = gzip.open if name.endswith(".gz") else open
            with opener(p, "rt") as f:
                for n, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as e:
                            sys.exit(f"eval_protocol.py: {p}:{n}: not a run: {e}")
            break
    return rows


def run(a):
    manifest = load_manifest(a.manifest)
    check_streams(manifest, a.streams)
    clips = {s["camera"]: s["clip"] for s in manifest["streams"]}
    units = load_units(a.out, manifest)
    packages = {p.name: p.resolve() for p in a.packages}
    wanted = a.workloads or [w[0] for w in WORKLOADS]
    units = [u for u in units if u["workload"] in wanted]
    done = {(r["unit"], r["kind"], r["camera"]) for r in read_runs(a.out)}
    lock = threading.Lock()
    runs_path = a.out / "runs.jsonl"

    def record(unit, kind, cam, cmd, lines, strategies, budgets, extra):
        with lock, open(runs_path, "a") as f:
            for i, line in enumerate(lines):
                bi, si = divmod(i, len(strategies))
                row = {"unit": unit["id"], "workload": unit["workload"], "kind": kind,
                       "camera": cam, "requested": strategies[si], "budget": budgets[bi],
                       "command": " ".join(cmd), **extra[bi], "run": line["run"]}
                f.write(json.dumps(row, sort_keys=True) + "\n")

    def frames_of(unit):
        return a.frames or unit["frames"]

    def c_runs(unit):
        cfg = write_config(a.out, unit, a.streams, clips, packages)
        multi = len(unit["cameras"]) > 1
        for cam in unit["cameras"]:
            if (unit["id"], "c", cam) in done:
                continue
            cmd, lines = replay(a.bin, cfg, cam, multi, ["no-sharing"], [UNCONSTRAINED],
                                unit["seed"], frames_of(unit))
            record(unit, "c", cam, cmd, lines, ["no-sharing"], [UNCONSTRAINED], [{}])
            log(f"unit {unit['id']} ({unit['workload']}) camera {cam}: No-Sharing at 64 cores used "
                f"{lines[0]['run']['used_cores']:.4f} cores")

    def grid_runs(unit, c):
        cfg = write_config(a.out, unit, a.streams, clips, packages)
        multi = len(unit["cameras"]) > 1
        budgets = [f * c for f in FRACTIONS]
        for cam in unit["cameras"]:
            if (unit["id"], "grid", cam) in done:
                continue
            cmd, lines = replay(a.bin, cfg, cam, multi, STRATEGIES, budgets, unit["seed"],
                                frames_of(unit))
            record(unit, "grid", cam, cmd, lines, STRATEGIES, budgets,
                   [{"fraction": f, "c_cores": c} for f in FRACTIONS])
            log(f"unit {unit['id']} ({unit['workload']}) camera {cam}: {len(lines)} runs at "
                f"{', '.join(f'{b:.4f}' for b in budgets)} cores")

    def pool(fn, items):
        if a.jobs <= 1:
            for it in items:
                fn(it)
            return
        with concurrent.futures.ThreadPoolExecutor(a.jobs) as ex:
            for f in [ex.submit(fn, it) for it in items]:
                f.result()

    for workload in wanted:
        wu = [u for u in units if u["workload"] == workload][:a.units]
        if not wu:
            continue
        # The first replay measures the cost profile into the shared state directory: alone.
        c_runs(wu[0])
        pool(c_runs, wu[1:])
        cs = budgets_c(read_runs(a.out), wu)
        pool(lambda u: grid_runs(u, cs[u["id"]]), wu)
        log(f"{workload}: all {len(wu)} units ran")
    report(a)


def budgets_c(rows, units):
    """C per unit: its No-Sharing-at-64-cores used cores summed over its cameras, averaged over
    the units of one fixed app set (N = 8 per camera, the 4-camera workload)."""
    used = defaultdict(float)
    for r in rows:
        if r["kind"] == "c":
            used[r["unit"]] += r["run"]["used_cores"]
    group = defaultdict(list)
    for u in units:
        fixed = u["workload"] in ("N8", "4x30")
        key = (u["workload"], json.dumps(u["cameras"], sort_keys=True)) if fixed else u["id"]
        group[key].append(u["id"])
    out = {}
    for ids in group.values():
        c = st.fmean(used[i] for i in ids)
        for i in ids:
            out[i] = c
    return out


def log(msg):
    print(f"eval_protocol: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Scoring (sections 4 and 5).


def interval(ds):
    n = len(ds)
    m = st.fmean(ds)
    if n < 2:
        return m, math.nan, math.nan
    h = t_quantile(0.975, n - 1) * st.stdev(ds) / math.sqrt(n)
    return m, m - h, m + h


def verdict(m, lo, hi, same_plan):
    if same_plan:
        return "same plan"
    if math.isnan(lo):
        return "one unit"
    if lo > 0:
        return "win"
    if hi < 0:
        return "loss"
    return "tie" if (hi - lo) / 2 <= 0.05 else "inconclusive"


def units_at(rows):
    """(workload, fraction) -> unit -> strategy -> {f1s: [per app], plan: signature, runs: [...]}."""
    pts = defaultdict(lambda: defaultdict(lambda: defaultdict(
        lambda: {"f1": [], "plan": [], "runs": []})))
    for r in rows:
        if r["kind"] != "grid":
            continue
        cell = pts[(r["workload"], r["fraction"])][r["unit"]][r["requested"]]
        run = r["run"]
        cell["runs"].append(r)
        cell["cameras"] = cell.get("cameras", set()) | {r["camera"]}
        for app in run["apps"]:
            if app.get("measured"):
                cell["f1"].append(app["measured"]["f1"])
            cell["plan"].append((app["app"], app["branch"], round(app["fps"], 6)))
    return pts


def mean_f1(cell):
    return st.fmean(cell["f1"]) if cell["f1"] else math.nan


def report(a):
    rows = read_runs(a.out)
    if not rows:
        sys.exit(f"eval_protocol.py: no runs in {a.out}")
    pts = units_at(rows)
    # A unit counts only once every one of its cameras ran (units.json, if there).
    units_file = a.out / "units.json"
    if units_file.exists():
        cams = {u["id"]: set(u["cameras"]) for u in json.loads(units_file.read_text())["units"]}
        for by_unit in pts.values():
            for u in list(by_unit):
                if any(c.get("cameras") != cams.get(u) for c in by_unit[u].values()):
                    del by_unit[u]
    out = []
    w = out.append
    w("# Issue 22's evaluation: fresh1, budgets as fractions of No-Sharing's cost\n")
    w("Made by `tools/eval_protocol.py report` from runs.jsonl; the protocol is "
      "docs/eval-protocol.md. d = Mainstream (the service's `auto` planner) minus the better "
      "baseline B at the point (the higher mean over the point's units), per unit; 95% interval "
      "t(0.975, S - 1) sd / sqrt(S).\n")
    w("| workload | % of C | units | No-Sharing | Max-Sharing | Mainstream | greedy | B | d | 95% interval | verdict | d vs the other baseline |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|")
    verdicts = defaultdict(int)
    per_unit_d = defaultdict(lambda: defaultdict(list))
    mixed = []
    order = [wl[0] for wl in WORKLOADS]
    for (workload, frac) in sorted(pts, key=lambda k: (order.index(k[0]), k[1])):
        by_unit = pts[(workload, frac)]
        ids = sorted(u for u in by_unit if all(s in by_unit[u] for s in STRATEGIES))
        if not ids:
            continue
        means = {s: st.fmean(mean_f1(by_unit[u][s]) for u in ids) for s in STRATEGIES}
        b = max(BASELINES, key=lambda s: means[s])
        other = BASELINES[1 - BASELINES.index(b)]
        d = [mean_f1(by_unit[u]["mainstream"]) - mean_f1(by_unit[u][b]) for u in ids]
        d_other = [mean_f1(by_unit[u]["mainstream"]) - mean_f1(by_unit[u][other]) for u in ids]
        same = all(sorted(by_unit[u]["mainstream"]["plan"]) == sorted(by_unit[u][b]["plan"])
                   for u in ids)
        m, lo, hi = interval(d)
        v = verdict(m, lo, hi, same)
        verdicts[v] += 1
        for u, du in zip(ids, d):
            per_unit_d[workload][u].append((frac, du))
            plans = {s: sorted(by_unit[u][s]["plan"]) for s in STRATEGIES}
            if plans["mainstream"] not in (plans["no-sharing"], plans["max-sharing"]):
                branches = {p[1] for p in plans["mainstream"]}
                mixed.append((workload, frac, u, du, len(branches - {0}) > 0 and 0 in branches))
        mo, _, _ = interval(d_other)
        w(f"| {workload} | {frac * 100:.0f} | {len(ids)} | {means['no-sharing']:.3f} | "
          f"{means['max-sharing']:.3f} | {means['mainstream']:.3f} | {means['greedy']:.3f} | {b} | "
          f"{m:+.3f} | [{lo:+.3f}, {hi:+.3f}] | {v} | {mo:+.3f} |")
    w("")
    w(f"Verdicts over the points: {dict(verdicts)}; with Mainstream equal to the better baseline "
      f"everywhere about {0.025 * sum(verdicts.values()):.1f} wins and as many losses would show "
      f"by chance (2.5% per side).\n")

    w("## Per workload, where the budget binds (d averaged over 5-50% of C per unit)\n")
    w("| workload | units | mean d | 95% interval | Mainstream beats the better baseline |")
    w("|---|---|---|---|---|")
    for workload in order:
        ds = [st.fmean(x[1] for x in v if x[0] in BINDING) for v in per_unit_d[workload].values()
              if {f for f, _ in v} >= set(BINDING)]
        if not ds:
            continue
        m, lo, hi = interval(ds)
        w(f"| {workload} | {len(ds)} | {m:+.3f} | [{lo:+.3f}, {hi:+.3f}] | "
          f"{'yes' if lo > 0 else 'no'} |")
    w("")

    w("## Where Mainstream ran a plan of its own (neither baseline's)\n")
    w("| workload | % of C | units with a plan of its own | of them mixing own and shared heads | mean d |")
    w("|---|---|---|---|---|")
    mixed_at = defaultdict(list)
    for wl, frac, u, du, mixes in mixed:
        mixed_at[(wl, frac)].append((du, mixes))
    for (wl, frac), v in sorted(mixed_at.items(), key=lambda k: (order.index(k[0][0]), k[0][1])):
        w(f"| {wl} | {frac * 100:.0f} | {len(v)} | {sum(x[1] for x in v)} | "
          f"{st.fmean(x[0] for x in v):+.3f} |")
    w("")

    model_error(rows, w)
    cpu(rows, w)
    text = "\n".join(out) + "\n"
    (a.out / "results.md").write_text(text)
    print(text, end="")


def model_error(rows, w):
    """Section 5: predicted - measured event F1 per app in every replayed run, per band."""
    errs = defaultdict(lambda: defaultdict(list))
    same_plan = defaultdict(list)
    for r in rows:
        if r["kind"] != "grid":
            continue
        run = r["run"]
        if run.get("replayed"):
            for app in run["apps"]:
                if app.get("measured"):
                    e = app["predicted_f1"] - app["measured"]["f1"]
                    errs[r["fraction"]]["all"].append(e)
                    if r["requested"] == "mainstream":
                        errs[r["fraction"]]["mainstream"].append(e)
        if r["workload"] in ("N8", "4x30") and run.get("replayed"):
            plan = tuple(sorted((x["app"], x["branch"], round(x["fps"], 6)) for x in run["apps"]))
            for app in run["apps"]:
                if app.get("measured"):
                    key = (r["workload"], r["camera"], r["fraction"], r["requested"], plan, app["app"])
                    same_plan[key].append(app["measured"]["f1"])
    ss, dof = 0.0, 0
    for v in same_plan.values():
        if len(v) > 1:
            m = st.fmean(v)
            ss += sum((x - m) ** 2 for x in v)
            dof += len(v) - 1
    s2 = ss / dof if dof else math.nan
    w("## The model's error: predicted - measured event F1 per app and replayed run\n")
    w(f"Sampling noise s^2 = {s2:.4f} (one app's F1 between phases of the same plan, N = 8 and "
      f"4 cameras; {dof} degrees of freedom). Net error = sqrt(max(0, MSE - s^2)). Target: MAE "
      f"at most 0.05 in every band.\n")
    w("| % of C | runs | MAE (all) | signed | RMSE | net | MAE (Mainstream) | signed | net | target |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for frac in sorted(errs):
        row = [f"{frac * 100:.0f}"]
        verdict_ = "-"
        for who in ("all", "mainstream"):
            e = errs[frac][who]
            if not e:
                row += ["-"] * (5 if who == "all" else 3)
                continue
            mae = st.fmean(abs(x) for x in e)
            mse = st.fmean(x * x for x in e)
            net = math.sqrt(max(0.0, mse - s2)) if not math.isnan(s2) else math.nan
            if who == "all":
                row += [str(len(e)), f"{mae:.3f}", f"{st.fmean(e):+.3f}", f"{math.sqrt(mse):.3f}",
                        f"{net:.3f}"]
                verdict_ = "met" if mae <= 0.05 else ("met net of noise" if net <= 0.05 else "not met")
            else:
                row += [f"{mae:.3f}", f"{st.fmean(e):+.3f}", f"{net:.3f}"]
        w("| " + " | ".join(row + [verdict_]) + " |")
    w("")


def cpu(rows, w):
    """Predicted against measured cores per replayed plan (a unit's cameras summed)."""
    plans = defaultdict(lambda: {"pred": 0.0, "used": 0.0, "replayed": True})
    for r in rows:
        if r["kind"] != "grid":
            continue
        run = r["run"]
        key = (r["workload"], r["unit"], r["fraction"], r["requested"])
        p = plans[key]
        p["pred"] = run["predicted_cores"]
        p["used"] += run["used_cores"]
        p["replayed"] &= bool(run.get("replayed"))
        p["dropped"] = p.get("dropped", 0) + run["dropped"]
    w("## CPU: predicted against measured cores (replayed plans; a unit's cameras summed)\n")
    w("| workload | % of C | plans | measured / predicted (ratio of means) | within 10% |")
    w("|---|---|---|---|---|")
    by = defaultdict(list)
    for (wl, _, frac, _), p in plans.items():
        if p["replayed"] and p["pred"] > 0:
            by[(wl, frac)].append(p)
    order = [x[0] for x in WORKLOADS]
    for (wl, frac), v in sorted(by.items(), key=lambda k: (order.index(k[0][0]), k[0][1])):
        ratio = sum(p["used"] for p in v) / sum(p["pred"] for p in v)
        within = sum(abs(p["used"] / p["pred"] - 1) <= 0.10 for p in v)
        w(f"| {wl} | {frac * 100:.0f} | {len(v)} | {ratio:.3f} | {within} of {len(v)} |")
    w("")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["draw", "run", "report"])
    ap.add_argument("--out", type=Path, required=True, help="the evaluation's directory")
    ap.add_argument("--streams", type=Path, help="directory of the manifest's clips and ground truths")
    ap.add_argument("--manifest", type=Path, default=FRESH1,
                    help="the frozen streams' manifest [docs/eval/fresh1/manifest.json]; another "
                         "one only to try the harness on development streams")
    ap.add_argument("--packages", type=Path, nargs="*", default=[], help="the apps' M-Package directories")
    ap.add_argument("--workloads", type=lambda s: s.split(","), help="only these (4x30,2x4,N8,N4,N2,N1)")
    ap.add_argument("--frames", type=int, help="only each camera's first N frames (a smoke run)")
    ap.add_argument("--units", type=int, help="only each workload's first N units (a smoke run)")
    ap.add_argument("--jobs", type=int, default=1, help="replays at once [1]")
    ap.add_argument("--bin", type=Path, default=ROOT / "target/release/mainstream")
    a = ap.parse_args()
    a.out = a.out.resolve()
    if a.command == "run" and a.streams is None:
        ap.error(f"{a.command} needs --streams DIR")
    if a.streams:
        a.streams = a.streams.resolve()
    if a.workloads:
        bad = [x for x in a.workloads if x not in [w[0] for w in WORKLOADS]]
        if bad:
            ap.error(f"--workloads: unknown {bad}; expected some of 4x30,2x4,N8,N4,N2,N1")
    if a.command == "draw":
        units = load_units(a.out, load_manifest(a.manifest))
        log(f"{len(units)} units in {a.out / 'units.json'}")
    elif a.command == "run":
        run(a)
    else:
        report(a)


if __name__ == "__main__":
    main()
