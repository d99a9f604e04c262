"""Unit tests of tools/eval_protocol.py: the units it draws and the verdicts it gives.

Run by tests/eval_report.rs (python3 -m unittest discover -s tools -p 'test_eval_protocol.py').
"""

import json
import math
import sys
import unittest
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_protocol as ep  # noqa: E402


class Draw(unittest.TestCase):
    def setUp(self):
        self.manifest = ep.load_manifest(ep.FRESH1)
        self.units = ep.draw(self.manifest)

    def test_the_protocols_table_of_workloads_and_units_is_drawn(self):
        counts = Counter(u["workload"] for u in self.units)
        self.assertEqual(counts, {"4x30": 8, "2x4": 16, "N8": 12, "N4": 24, "N2": 24, "N1": 24})
        self.assertEqual([u["id"] for u in self.units], list(range(len(self.units))))

    def test_drawing_again_gives_the_same_units_as_the_committed_draw(self):
        self.assertEqual(json.dumps(self.units), json.dumps(ep.draw(self.manifest)))
        committed = json.loads((ep.FRESH1.parent / "units.json").read_text())
        self.assertEqual(committed["units"], self.units)
        self.assertEqual(committed["fractions"], ep.FRACTIONS)

    def test_drawn_app_sets_are_distinct_and_labelled_on_their_camera(self):
        apps_of = {s["camera"]: set(s["apps"]) for s in self.manifest["streams"]}
        for name, ncam, napps in (("N1", 1, 1), ("N2", 1, 2), ("N4", 1, 4), ("2x4", 2, 4)):
            units = [u for u in self.units if u["workload"] == name]
            keys = {json.dumps(u["cameras"], sort_keys=True) for u in units}
            self.assertEqual(len(keys), len(units), f"{name}: a unit drawn twice")
            for u in units:
                self.assertEqual(len(u["cameras"]), ncam)
                for cam, apps in u["cameras"].items():
                    self.assertEqual(len(set(apps)), napps)
                    self.assertTrue(set(apps) <= apps_of[cam], f"{name}: {apps} not all on {cam}")

    def test_fixed_sets_differ_only_by_phase_and_seed(self):
        n8 = [u for u in self.units if u["workload"] == "N8"]
        self.assertEqual(sorted({next(iter(u["cameras"])) for u in n8}), ["box", "tree"])
        self.assertTrue(all(len(next(iter(u["cameras"].values()))) == 8 for u in n8))
        four = [u for u in self.units if u["workload"] == "4x30"]
        self.assertEqual([u["phase"] for u in four], list(range(8)))
        self.assertEqual(sum(len(a) for a in four[0]["cameras"].values()), 30)
        self.assertEqual(len({u["seed"] for u in self.units}), len(self.units))
        for u in self.units:
            self.assertEqual(u["seed"], 2026 + u["id"] + 1000 * u["phase"])
            self.assertEqual(u["frames"], 9216 if len(u["cameras"]) > 1 else None)


class Verdicts(unittest.TestCase):
    def test_an_interval_above_zero_is_a_win_and_one_below_a_loss(self):
        m, lo, hi = ep.interval([0.05, 0.06, 0.04, 0.05])
        self.assertAlmostEqual(m, 0.05)
        self.assertEqual(ep.verdict(m, lo, hi, False), "win")
        m, lo, hi = ep.interval([-0.05, -0.06, -0.04, -0.05])
        self.assertEqual(ep.verdict(m, lo, hi, False), "loss")

    def test_an_interval_holding_zero_is_a_tie_only_when_narrow(self):
        m, lo, hi = ep.interval([0.01, -0.01, 0.02, -0.02, 0.0, 0.01, -0.01, 0.0])
        self.assertLess(lo, 0)
        self.assertEqual(ep.verdict(m, lo, hi, False), "tie")
        m, lo, hi = ep.interval([0.3, -0.3, 0.2, -0.25])
        self.assertEqual(ep.verdict(m, lo, hi, False), "inconclusive")

    def test_the_same_plan_everywhere_is_not_called_a_tie(self):
        m, lo, hi = ep.interval([0.0, 0.0, 0.0])
        self.assertEqual(ep.verdict(m, lo, hi, True), "same plan")

    def test_the_interval_uses_students_t(self):
        # Four values, sd 1: half-width t(0.975, 3) / 2 = 3.182 / 2.
        m, lo, hi = ep.interval([1.0, -1.0, 1.0, -1.0])
        sd = math.sqrt(4 / 3)
        self.assertAlmostEqual((hi - lo) / 2, 3.182 * sd / 2, delta=0.02)


def synthetic_rows(gain, own_plan):
    """Grid rows of 6 N = 2 units: Mainstream gains `gain` (+- 0.01 by unit) over No-Sharing,
    the better baseline, with a plan of its own if `own_plan`, else No-Sharing's."""
    rows = []
    for u in range(6):
        for frac in ep.FRACTIONS:
            for s in ep.STRATEGIES:
                f1 = {"no-sharing": 0.6, "max-sharing": 0.5, "greedy": 0.55}.get(s)
                if s == "mainstream":
                    f1 = 0.6 + gain + (0.01 if u % 2 else -0.01)
                branch = {"no-sharing": 0, "max-sharing": 20}.get(s, 12 if own_plan else 0)
                apps = [{"app": a, "branch": branch, "fps": 1.0, "predicted_f1": f1,
                         "measured": {"f1": f1}} for a in ("birds", "fruit")]
                rows.append({"unit": u, "workload": "N2", "kind": "grid", "camera": "tree",
                             "requested": s, "fraction": frac,
                             "run": {"apps": apps, "replayed": True, "predicted_cores": 0.1,
                                     "used_cores": 0.1, "dropped": 0}})
    return rows


class Report(unittest.TestCase):
    def report(self, rows, units=None):
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            out = Path(d)
            (out / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            if units is not None:
                (out / "units.json").write_text(json.dumps({"units": units}))
            import contextlib
            import io
            with contextlib.redirect_stdout(io.StringIO()):
                ep.report(type("A", (), {"out": out})())
            return (out / "results.md").read_text()

    def test_a_gain_with_a_plan_of_its_own_is_a_win_at_every_point_and_for_the_workload(self):
        text = self.report(synthetic_rows(0.1, True))
        points = [l for l in text.splitlines() if l.startswith("| N2 | ")]
        self.assertEqual(len([l for l in points if "| win |" in l]), 7, text)
        self.assertIn("| N2 | 6 | +0.100 |", text)
        self.assertIn("| yes |", text)
        self.assertIn("'win': 7", text)

    def test_a_unit_counts_only_once_all_its_cameras_ran(self):
        units = [{"id": u, "cameras": {"tree": ["birds", "fruit"]}} for u in range(6)]
        units[5]["cameras"]["box"] = ["birds"]  # its box replay is missing
        text = self.report(synthetic_rows(0.1, True), units)
        self.assertIn("| N2 | 5 | 5 |", text)
        self.assertNotIn("| N2 | 5 | 6 |", text)

    def test_the_better_baselines_plan_everywhere_is_same_plan_not_a_tie(self):
        text = self.report(synthetic_rows(0.0, False))
        points = [l for l in text.splitlines() if l.startswith("| N2 | ") and "% of C" not in l]
        self.assertTrue(all("| same plan |" in l for l in points[:7]), text)
        self.assertNotIn("| tie |", text)


if __name__ == "__main__":
    unittest.main()
