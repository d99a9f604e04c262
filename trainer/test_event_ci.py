"""event_ci.py: the intervals on replay's event scores.

    /usr/bin/python3 -m unittest discover -s trainer -p 'test_*.py'
"""

from __future__ import annotations

import unittest

import event_ci as E


def run(found: int, truth: int, correct: int, detected: int) -> dict:
    r = found / truth
    p = correct / detected
    return {"strategy": "exact", "phase_seed": None, "apps": [{
        "app": "person", "branch": 0, "fps": 10.0, "predicted_f1": 0.9,
        "measured": {"truth": truth, "found": found, "detected": detected, "correct": correct,
                     "recall": r, "precision": p, "f1": 2 * r * p / (r + p)}}]}


class IntervalTest(unittest.TestCase):
    def test_wilson_bounds_match_the_textbook_values(self):
        lo, hi = E.wilson(16, 16)
        self.assertAlmostEqual(lo, 0.8064, places=3)
        self.assertEqual(hi, 1.0)
        lo, hi = E.wilson(8, 16)
        self.assertAlmostEqual(lo, 0.2800, places=3)
        self.assertAlmostEqual(hi, 0.7200, places=3)
        self.assertEqual(E.wilson(0, 0), (0.0, 1.0))

    def test_a_perfect_score_keeps_a_lower_bound_below_one(self):
        (line,) = E.lines({"runs": [run(16, 16, 25, 25)]})
        self.assertIn("F1 1.000 [bootstrap 1.000, 1.000; Wilson bounds 0.836, 1.000]", line)
        self.assertIn("recall 16/16 = 1.000 [0.806, 1.000]", line)

    def test_the_bootstrap_interval_holds_the_measured_f1(self):
        lo, hi = E.bootstrap_f1(12, 16, 19, 19)
        f1 = 2 * 0.75 / 1.75
        self.assertLess(lo, f1)
        self.assertGreater(hi, f1)


if __name__ == "__main__":
    unittest.main()
