"""Unit tests of the M-Trainer's head selection (step 4 of trainer/mtrainer.py).

    /usr/bin/python3 -m unittest discover -s trainer -p 'test_*.py'

trainer/smoke.sh runs them before the smoke training run.
"""

from __future__ import annotations

import shutil
import tempfile
import unittest
from pathlib import Path

import numpy as np

import mtrainer as M

MB = 1_000_000


def curve(points: dict[int, tuple[float, float, int]]) -> dict[int, dict]:
    """branch -> (test accuracy, validation accuracy, file bytes)."""
    return {
        k: {"branch": k, "accuracy": test, "fpr": 0.1, "val_accuracy": val, "onnx_bytes": size}
        for k, (test, val, size) in points.items()
    }


class HeadSelection(unittest.TestCase):
    def test_the_validation_split_chooses_the_kept_heads_not_the_test_split(self):
        # On test accuracy bp12 beats bp15; on validation accuracy bp15 beats bp12.
        c = curve({0: (0.80, 0.80, 4 * MB), 12: (0.95, 0.82, 3 * MB), 15: (0.90, 0.90, 2 * MB),
                   20: (0.85, 0.85, MB // 100)})
        mono, frontier, kept, dropped = M.select_heads(c, 12 * MB, keep_all=False)
        self.assertEqual(frontier, [15, 20])
        self.assertEqual(mono[12], {"val_accuracy": 0.90, "source": 15})
        self.assertEqual(kept, [0, 15, 20])
        self.assertEqual(dropped, [])

    def test_the_whole_network_head_is_kept_when_a_shared_head_is_better(self):
        c = curve({0: (0.70, 0.70, 4 * MB), 17: (0.80, 0.80, 2 * MB), 20: (0.75, 0.75, MB // 100)})
        _, frontier, kept, _ = M.select_heads(c, 12 * MB, keep_all=False)
        self.assertEqual(frontier, [17, 20])
        self.assertEqual(kept, [0, 17, 20])

    def test_the_size_limit_drops_the_smallest_gain_but_never_branch_0_or_the_deepest_head(self):
        c = curve({0: (0.9, 0.90, 5 * MB), 8: (0.9, 0.89, 5 * MB), 12: (0.9, 0.85, 4 * MB),
                   20: (0.9, 0.80, MB // 100)})
        _, frontier, kept, dropped = M.select_heads(c, 8 * MB, keep_all=False)
        self.assertEqual(frontier, [0, 8, 12, 20])
        # bp08 gains 0.04 over bp12, bp12 0.05 over bp20: bp08 goes, then bp12 still does not fit.
        self.assertEqual(dropped, [8, 12])
        self.assertEqual(kept, [0, 20])
        # Even a limit nothing fits in keeps the two protected heads.
        self.assertEqual(M.select_heads(c, 1, keep_all=False)[2], [0, 20])

    def test_a_curve_without_branch_0_keeps_its_frontier_only(self):
        c = curve({12: (0.9, 0.90, 3 * MB), 20: (0.9, 0.95, MB // 100)})
        self.assertEqual(M.select_heads(c, 12 * MB, keep_all=False)[2], [20])

    def test_keep_all_keeps_every_trained_head(self):
        c = curve({0: (0.7, 0.70, 4 * MB), 18: (0.6, 0.60, MB), 20: (0.8, 0.80, MB // 100)})
        _, frontier, kept, dropped = M.select_heads(c, 1, keep_all=True)
        self.assertEqual(frontier, [20])
        self.assertEqual((kept, dropped), ([0, 18, 20], []))


class PackageInstall(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="test_mtrainer_"))

    def tearDown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, d: Path, text: str) -> None:
        (d / "package.toml").write_text(text)
        (d / "head_bp20.onnx").write_text(text)

    def test_a_package_replaces_the_old_one_whole(self):
        dest = self.dir / "app"
        dest.mkdir()
        self.write(dest, "old")
        (dest / "calibration.toml").write_text("old")
        M.install_dir(dest, lambda d: self.write(d, "new"))
        self.assertEqual(sorted(p.name for p in dest.iterdir()), ["head_bp20.onnx", "package.toml"])
        self.assertEqual((dest / "package.toml").read_text(), "new")
        self.assertEqual([p.name for p in self.dir.iterdir()], ["app"])

    def test_a_failure_while_writing_leaves_the_old_package_and_no_partial_directory(self):
        dest = self.dir / "app"
        dest.mkdir()
        self.write(dest, "old")

        def fail(d: Path) -> None:
            (d / "package.toml").write_text("half")
            raise SystemExit("calibrate failed")

        with self.assertRaises(SystemExit):
            M.install_dir(dest, fail)
        self.assertEqual((dest / "package.toml").read_text(), "old")
        self.assertEqual([p.name for p in self.dir.iterdir()], ["app"])
        # No old package either: nothing appears.
        with self.assertRaises(SystemExit):
            M.install_dir(self.dir / "new", fail)
        self.assertEqual([p.name for p in self.dir.iterdir()], ["app"])


class FeatureCache(unittest.TestCase):
    """The frozen prefix on the real MobileNetV2 (trainer/setup.sh's weights), cached by content."""

    def test_a_rerun_computes_only_the_new_images_and_gives_the_same_tensors(self):
        base = M.F.fused_base()
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (4, 224, 224, 3), dtype=np.uint8)
        with tempfile.TemporaryDirectory() as d:
            cache = Path(d)
            first, n1 = M.F.capture_cached(base, images[:3], [0, 18, 20], cache)
            again, n2 = M.F.capture_cached(base, images, [0, 18, 20], cache)
        want = M.F.capture(base, images, [18, 20])
        self.assertEqual((n1, n2), (3, 1))
        for k in (18, 20):
            self.assertTrue(M.F.torch.equal(again[k], want[k]), k)
            self.assertTrue(M.F.torch.equal(first[k], want[k][:3]), k)


if __name__ == "__main__":
    unittest.main()
