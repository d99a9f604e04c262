"""Unit tests of the fresh evaluation streams' own parts (trainer/fresh_streams.py): the
seamless loop and the recipe checks. The streams themselves are checked by sha256
(`fresh_streams.py --check docs/eval/fresh1/manifest.json`).

    /usr/bin/python3 -m unittest discover -s trainer -p 'test_*.py'
"""

from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

import composite as C
import fresh_streams as F
import mtrainer as M


class Loop(unittest.TestCase):
    def test_the_loop_plays_forward_then_backward_and_never_jumps(self):
        idx = F.loop_indices(5, 20).tolist()
        self.assertEqual(idx[:8], [0, 1, 2, 3, 4, 3, 2, 1])
        # Played again and again (each pass is the whole loop), consecutive frames are
        # neighbours in the clip: no jump cut, not even from the loop's end to its start.
        played = idx + idx
        self.assertTrue(all(abs(a - b) == 1 for a, b in zip(played, played[1:])))

    def test_the_loop_is_whole_periods_near_the_target_length(self):
        self.assertEqual(len(F.loop_indices(68, 300)), 2 * 134)
        self.assertEqual(len(F.loop_indices(152, 300)), 302)
        self.assertEqual(len(F.loop_indices(40, 300)), 4 * 78)


class Recipe(unittest.TestCase):
    def load(self, text: str) -> F.Fresh:
        apps = C.load_recipe(M.DEFAULT_RECIPE)
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "fresh.toml"
            p.write_text(text)
            return F.load_fresh(p, apps)

    BASE = """name = "t"
seed = 1
fps = 10.0
apps = ["birds", "vehicles"]
events_per_app = 2
distractors_per_category = 1
per_pass = 2
loop_frames = 50
[[camera]]
name = "c"
file = "footage/c.mp4"
sha256 = "00"
frames = 10
step = 1
size = [32, 24]
exclude = EXCLUDE
"""

    def test_the_committed_recipe_loads(self):
        fresh = F.load_fresh(F.DEFAULT_RECIPE, C.load_recipe(M.DEFAULT_RECIPE))
        self.assertEqual(fresh.name, "fresh1")
        self.assertEqual(len(fresh.cameras), 4)

    def test_a_camera_may_exclude_only_an_app_of_the_set(self):
        self.assertEqual(self.load(self.BASE.replace("EXCLUDE", '["vehicles"]')).cameras[0].exclude,
                         ("vehicles",))
        with self.assertRaises(SystemExit):
            self.load(self.BASE.replace("EXCLUDE", '["fish"]'))

    def test_a_novel_group_may_not_take_a_categorys_name(self):
        with self.assertRaises(SystemExit):
            self.load(self.BASE.replace("EXCLUDE", "[]") + '[novel]\nfish = ["animals/x"]\n')


if __name__ == "__main__":
    unittest.main()
