"""mallocenv.reexec: the trainer's process runs with glibc malloc settings that keep freed
tensor memory, and leaves a user's own settings alone.

    /usr/bin/python3 -m unittest discover -s trainer -p 'test_*.py'
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import mallocenv

SCRIPT = """
import sys
sys.path.insert(0, {here!r})
import mallocenv
mallocenv.reexec()
import os
print(os.environ.get("MALLOC_MMAP_THRESHOLD_"), os.environ.get("MALLOC_TRIM_THRESHOLD_"), sys.argv[1:])
"""


class ReexecTest(unittest.TestCase):
    def run_script(self, env: dict) -> str:
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "prog.py"
            p.write_text(SCRIPT.format(here=str(Path(__file__).resolve().parent)))
            r = subprocess.run([sys.executable, str(p), "a", "--b"], env=env, capture_output=True,
                               text=True, check=True)
            return r.stdout.strip()

    def test_a_script_is_restarted_once_with_the_settings_and_its_arguments(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        want = (f"{mallocenv.SETTINGS['MALLOC_MMAP_THRESHOLD_']} "
                f"{mallocenv.SETTINGS['MALLOC_TRIM_THRESHOLD_']} ['a', '--b']")
        self.assertEqual(self.run_script(env), want)

    def test_a_users_own_malloc_settings_are_kept(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
        self.assertEqual(self.run_script(env), "65536 None ['a', '--b']")


if __name__ == "__main__":
    unittest.main()
