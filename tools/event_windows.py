#!/usr/bin/env python3
"""Checks the event model's recall against committed replays (issue 22, development data only).

The planner predicts an app's event recall from its per-frame accuracy p, the miss
correlation c, X-voting and how long events are. Until 0c552ad every event was one
event of the mean labelled length; now recall is the mean over up to 8 quantiles of
the windows in which the scorer accepts a detection (each labelled event plus the
scorer's tolerance on each side), measured by `mainstream calibrate`.

This script re-predicts the recall of every replayed app in a runs file (eval24-s10's
by default: a development set, never fresh1) under three event models and prints the
error against the measured recall per frame-rate band:

  mean      one event of the mean labelled length (the model before 0c552ad)
  windows0  the labelled lengths' quantiles, no tolerance
  windows   the labelled lengths plus the tolerance on each side (the model now)

Two sets of inputs:

  structure   each run's own per-frame rates (the replay's tpr and fpr) and the
              run's own labelled events: the event model alone, with the
              classifier's rates and the event lengths known exactly
  calibrated  the planner's inputs: the packages' calibrated rates and the
              calibration clip's events (what the service would predict)

The model is re-implemented here (standard library only) and checked first: with one
mean length it must reproduce every prediction the runs recorded for the committed
packages (to 1e-6), or the script stops; for rebuilt packages (--packages) it prints how
far the recorded predictions are (their calibration is measured again, not the runs' own). Correlation, frequency and mean length come from each package's
calibration.toml; apps without one are skipped.

Usage:
  python3 tools/event_windows.py --truth target/eval/streams/eval24.ground_truth.toml \\
      --cal-truth target/eval/streams/cal24.ground_truth.toml \\
      [--runs docs/eval/eval24-s10/runs.jsonl.gz] [--packages DIR ...]
(both ground truths are made by `bash trainer/build_eval.sh`; --packages defaults to
models/apps/{birds,vehicles,mammals} and adds any other package directory given)
"""

import argparse
import gzip
import json
import math
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BANDS = [(0.2, "<= 0.2 fps"), (0.7, "0.3-0.7 fps"), (1.0, "0.8-1 fps"), (2.5, "1.1-2.5 fps"),
         (1e9, "> 2.5 fps")]


def unit(x):
    return 0.0 if x != x else min(1.0, max(0.0, x))


def no_run(p, a, x, n):
    """P(n samples hold no run of x positives); first and after a negative p, after a positive a."""
    dist = [0.0] * x
    dist[0] = 1.0
    for _ in range(n):
        nxt = [0.0] * x
        for r in range(x):
            pos = p if r == 0 else a
            nxt[0] += dist[r] * (1 - pos)
            if r + 1 < x:
                nxt[r + 1] += dist[r] * pos
        dist = nxt
    return unit(sum(dist))


def miss(p, d, s, c, x):
    """src/planner/event_f1.rs miss_rate_voting (miss_rate for x = 1)."""
    s, d = max(s, 1.0), max(d, 0.0)
    if x <= 1:
        if d < s:
            return unit(1 - d / s * p)
        cp = (1 - p) + p * c
        m, r1, r2 = d % s, math.floor(d / s), math.ceil(d / s)
        return unit((s - m) / s * (1 - p) * cp ** (r1 - 1) + m / s * (1 - p) * cp ** (r2 - 1))
    a = p + (1 - p) * c
    m, r1, r2 = d % s, math.floor(d / s), math.ceil(d / s)
    m1 = no_run(p, a, x, r1)
    m2 = m1 if r2 == r1 else no_run(p, a, x, r2)
    return unit((1 - m / s) * m1 + m / s * m2)


def recall(p, c, x, lengths_frames, stride):
    return sum(1 - miss(p, d, stride, c, x) for d in lengths_frames) / len(lengths_frames)


def predict(p, q, c, x, phi, lengths_frames, mean_frames, stride):
    """src/planner/event_f1.rs predict: (recall, precision, F1); recall over `lengths_frames`,
    false triggers over windows of the mean length."""
    rec = recall(p, c, x, lengths_frames, stride)
    tp, fp = phi * rec, (1 - phi) * (1 - miss(q, mean_frames, stride, c, x))
    prec = 1.0 if tp + fp == 0 else tp / (tp + fp)
    f1 = 0.0 if rec <= 1e-8 or prec <= 1e-8 else 2 / (1 / rec + 1 / prec)
    return rec, prec, f1


def quantiles(spans, tolerance, k_max=8):
    """src/calibrate.rs window_quantiles, in frames."""
    f = sorted(e[1] - e[0] + 1 + 2 * tolerance for e in spans)
    n = len(f)
    k = min(n, k_max)
    out = []
    for i in range(k):
        at = min(max((i + 0.5) / k * n - 0.5, 0.0), n - 1)
        lo = math.floor(at)
        w = at - lo
        hi = min(lo + 1, n - 1)
        out.append(f[lo] * (1 - w) + f[hi] * w)
    return out


def band(fps):
    return next(name for top, name in BANDS if fps <= top + 1e-9)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, default=ROOT / "docs/eval/eval24-s10/runs.jsonl.gz")
    ap.add_argument("--truth", type=Path, required=True, help="the runs' ground truth (eval24)")
    ap.add_argument("--cal-truth", type=Path, required=True, help="the calibration clip's (cal24)")
    ap.add_argument("--packages", type=Path, nargs="*", default=[])
    ap.add_argument("--tolerance", type=int, default=2, help="the scorer's, frames [2]")
    ap.add_argument("--voting", type=int, default=2, help="the apps' X-voting [2]")
    a = ap.parse_args()

    truth = tomllib.loads(a.truth.read_text())
    cal_truth = tomllib.loads(a.cal_truth.read_text())
    fps = float(truth["fps"])
    spans = {x["name"]: x["events"] for x in truth["app"]}
    cal_spans = {x["name"]: x["events"] for x in cal_truth["app"]}
    cal = {}
    committed = ("birds", "vehicles", "mammals")  # calibrations in the repository
    rate_sd = {}
    rebuilt_off = 0.0
    for d in [ROOT / "models/apps" / n for n in committed] + a.packages:
        f = d / "calibration.toml"
        if f.exists():
            t = tomllib.loads(f.read_text())
            heads = {h["branch"]: (h["accuracy"], h["fpr"]) for h in t["head"]}
            sds = {h["branch"]: (h.get("accuracy_sd", 0.0), h.get("fpr_sd", 0.0)) for h in t["head"]}
            cal[d.name] = (t["event"], heads)
            rate_sd[d.name] = sds

    opener = gzip.open if a.runs.suffix == ".gz" else open
    err = defaultdict(lambda: defaultdict(list))
    covered, widths = defaultdict(list), defaultdict(list)
    replayed = []
    checked = 0
    with opener(a.runs, "rt") as fh:
        for line in fh:
            r = json.loads(line)
            run = r["run"]
            if not run.get("replayed", True):
                continue  # the same replay as another run: counted once
            replayed.append(run)
            for app in run["apps"]:
                name = app["package"]
                if name not in cal or app["fps"] <= 0:
                    continue
                ev, heads = cal[name]
                p, q = heads[app["branch"]]
                c, phi, x = ev["correlation"], ev["frequency"], a.voting
                stride = fps / app["fps"]
                mean = ev["length_ms"] / 1000 * fps
                # Self-check: the old model's recall and precision as recorded.
                rec, prec, _ = predict(p, q, c, x, phi, [mean], mean, stride)
                off = max(abs(rec - app["predicted_recall"]), abs(prec - app["predicted_precision"]))
                if name in committed:
                    if off > 1e-6:
                        sys.exit(f"event_windows.py: the re-implemented model does not reproduce "
                                 f"{name} at branch {app['branch']}, {app['fps']} fps: recall {rec} "
                                 f"vs {app['predicted_recall']}")
                    checked += 1
                else:
                    rebuilt_off = max(rebuilt_off, off)
                measured = app["measured"]["recall"]
                b = band(app["fps"])
                fr = app["frames"]
                own = spans[name]
                inputs = {"calibrated": (p, cal_spans[name])}
                if fr.get("tpr") is not None:
                    inputs["structure"] = (fr["tpr"], own)
                for kind, (pp, sp) in inputs.items():
                    for model, lengths in (("mean", [sum(e[1] - e[0] + 1 for e in sp) / len(sp)]),
                                           ("windows0", quantiles(sp, 0)),
                                           ("windows", quantiles(sp, a.tolerance))):
                        rc, _, f1 = predict(pp, q, c, x, phi, lengths, mean, stride)
                        e = rc - measured
                        for k in (b, "all"):
                            err[(kind, model)][k].append(e)
                        if kind == "calibrated":
                            # F1 as the planner predicts it.
                            for k in (b, "all"):
                                err[("f1", model)][k].append(f1 - app["measured"]["f1"])
                            if model == "windows":
                                # The calibration's band: rates one bootstrap sd worse, better.
                                sa, sq = rate_sd[name][app["branch"]]
                                ends = [predict(unit(pa), unit(qa), c, x, phi, lengths, mean, stride)[2]
                                        for pa, qa in ((p - sa, q + sq), (p + sa, q - sq))]
                                inside = ends[0] - 1e-9 <= app["measured"]["f1"] <= ends[1] + 1e-9
                                for k in (b, "all"):
                                    covered[k].append(inside)
                                    widths[k].append(ends[1] - ends[0])
    print(f"re-implemented model reproduces all {checked} recorded predictions of the committed "
          f"packages (recall, precision, to 1e-6)")
    if a.packages:
        print(f"rebuilt packages (calibrated again, not the runs' own files): predictions within "
              f"{rebuilt_off:.4f} of the recorded ones")
    print(f"recall error, predicted - measured: mean signed / mean absolute (runs) per band; {a.runs}")
    for kind in ("structure", "calibrated", "f1"):
        print(f"\n{kind}:" if kind != "f1" else "\nevent F1 error, calibrated inputs:")
        print(f"  {'model':9}" + "".join(f"{name:>22}" for _, name in BANDS) + f"{'all':>22}")
        for model in ("mean", "windows0", "windows"):
            cells = []
            for _, name in BANDS + [(0, "all")]:
                v = err[(kind, model)][name]
                cells.append(f"{sum(v) / len(v):+.3f} / {sum(map(abs, v)) / len(v):.3f} ({len(v)})" if v else "-")
            print(f"  {model:9}" + "".join(f"{c:>22}" for c in cells))
    if any(sd != (0.0, 0.0) for sds in rate_sd.values() for sd in sds.values()):
        print("\nthe calibration's band (F1 with the rates one bootstrap sd worse and better, windows "
              "model): share of app-runs whose measured F1 falls inside, mean width")
        cells = []
        for _, name in BANDS + [(0, "all")]:
            v, w = covered[name], widths[name]
            cells.append(f"{sum(v) / len(v):.2f} / {sum(w) / len(w):.3f} ({len(v)})" if v else "-")
        print(f"  {'':9}" + "".join(f"{c:>22}" for c in cells))
    by_instance(replayed, truth, a.tolerance)


def by_instance(runs, truth, tolerance, lo=1.0, hi=2.5):
    """Measured recall per object instance over the replayed app-runs at lo < fps <= hi: is an
    app's recall the share of instances its heads recognise rather than 1 - (1 - p)^n?"""
    objects = truth.get("object", [])
    spans = {x["name"]: x["events"] for x in truth["app"]}

    def instance(app, ev):
        best = None
        for o in objects:
            if o["category"] != app:
                continue
            overlap = min(ev[1], o["on_screen"][1]) - max(ev[0], o["on_screen"][0])
            if overlap >= 0 and (best is None or overlap > best[0]):
                best = (overlap, o.get("instance", o["stamp"]))
        return best[1] if best else "?"

    found = defaultdict(lambda: defaultdict(list))
    for run in runs:
        for app in run["apps"]:
            if not (lo < app["fps"] <= hi) or app["package"] not in spans:
                continue
            dets = app["detections"]
            for ev in spans[app["package"]]:
                hit = any(d[0] <= ev[1] + tolerance and ev[0] - tolerance <= d[1] for d in dets)
                found[app["package"]][instance(app["package"], ev)].append(hit)
    print(f"\nmeasured recall per object instance, {lo} < fps <= {hi} (events found / events over "
          "the replayed app-runs):")
    for app in sorted(found):
        cells = sorted(((sum(v) / len(v), i, len(v)) for i, v in found[app].items()))
        print(f"  {app:11} " + "  ".join(f"{i} {r:.2f} ({n})" for r, i, n in cells))


if __name__ == "__main__":
    main()
