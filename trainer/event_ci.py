"""95% intervals on the event scores of `mainstream replay --json`: with a few dozen events a
measured F1 is a rough number, and this says how rough.

    target/release/mainstream replay ... --json > replay.json
    /usr/bin/python3 trainer/event_ci.py replay.json

For every app of every run: recall = found / true events and precision = correct detections /
detections, each with its Wilson score interval; F1 two ways: a percentile bootstrap (10,000
resamples, fixed seed) that redraws the true events (found or not) and the detections (correct
or not) independently, which collapses to a point when every event is found and every
detection is right; and the F1 of the two Wilson bounds (lower with lower, upper with upper),
which does not. The events of one clip are not independent draws (one camera, one afternoon),
so the intervals are, if anything, too narrow.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np

Z = 1.959963984540054  # 97.5th percentile of the standard normal
RESAMPLES = 10_000
SEED = 20


def wilson(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + Z * Z / n
    c = (p + Z * Z / (2 * n)) / d
    h = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def f1_of(found: np.ndarray, truth: int, correct: np.ndarray, detected: int) -> np.ndarray:
    # The replay's conventions: recall 1 without true events, precision 1 without detections.
    r = found / truth if truth else np.ones_like(found, float)
    p = correct / detected if detected else np.ones_like(correct, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where((r > 0) & (p > 0), 2 * r * p / (r + p), 0.0)
    return f


def bootstrap_f1(found: int, truth: int, correct: int, detected: int) -> tuple[float, float]:
    rng = np.random.default_rng(SEED)
    fs = rng.binomial(truth, found / truth, RESAMPLES) if truth else np.zeros(RESAMPLES)
    cs = rng.binomial(detected, correct / detected, RESAMPLES) if detected else np.zeros(RESAMPLES)
    f = f1_of(fs, truth, cs, detected)
    return float(np.percentile(f, 2.5)), float(np.percentile(f, 97.5))


def lines(outcome: dict) -> list[str]:
    out = []
    for run in outcome["runs"]:
        for a in run["apps"]:
            m = a.get("measured")
            if not m:
                continue
            t, found, d, c = m["truth"], m["found"], m["detected"], m["correct"]
            r_lo, r_hi = wilson(found, t)
            p_lo, p_hi = wilson(c, d)
            f_lo, f_hi = bootstrap_f1(found, t, c, d)
            w_lo, w_hi = (float(f1_of(np.array([r * t]), t, np.array([p * d]), d)[0])
                          for r, p in ((r_lo, p_lo), (r_hi, p_hi)))
            seed = f", phase seed {run['phase_seed']}" if run.get("phase_seed") is not None else ""
            out.append(
                f"{run['strategy']} {a['app']} (bp{a['branch']}, {a['fps']:g} fps{seed}): "
                f"F1 {m['f1']:.3f} [bootstrap {f_lo:.3f}, {f_hi:.3f}; Wilson bounds {w_lo:.3f}, {w_hi:.3f}] "
                f"(predicted {a['predicted_f1']:.3f}); "
                f"recall {found}/{t} = {m['recall']:.3f} [{r_lo:.3f}, {r_hi:.3f}]; "
                f"precision {c}/{d} = {m['precision']:.3f} [{p_lo:.3f}, {p_hi:.3f}]")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: event_ci.py REPLAY_JSON ('-' for standard input)", file=sys.stderr)
        return 64
    text = sys.stdin.read() if argv[0] == "-" else open(argv[0]).read()
    # --json writes one object per run, a line each: {"camera", "clip", "run": {...}, ...}.
    for ln in text.splitlines():
        if ln.strip():
            for out in lines({"runs": [json.loads(ln)["run"]]}):
                print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
