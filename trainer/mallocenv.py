"""glibc malloc settings for the trainer's process: keep freed tensor memory instead of handing
it back to the kernel.

By default glibc serves every allocation above its mmap threshold (at most 32 MB, usually far
less) with a fresh mmap and unmaps it on free, and trims the heap top above 128 kB. A training
step allocates and frees activations and gradients of tens to hundreds of MB, so every step
faults the same memory back in page by page and the kernel zeroes it again: 8.4 million minor
page faults in a 4-minute training run, and out-of-place element-wise ops and Adam's update
several times slower than on reused memory (trainer/README.md, "Where the CPU time goes").

The settings are read once, when the process starts, so `reexec()` starts the interpreter again
with them when they are absent. Set MALLOC_MMAP_THRESHOLD_ yourself (to anything) to keep your
own settings and skip the re-exec.
"""

from __future__ import annotations

import os
import sys

SETTINGS = {
    # Allocations up to 4 GiB come from the heap (reused), not from mmap.
    "MALLOC_MMAP_THRESHOLD_": str(4 << 30),
    # Never give the heap top back: the next step needs the same memory.
    "MALLOC_TRIM_THRESHOLD_": str(4 << 30),
    # Grow the heap in steps of 256 MiB rather than one allocation at a time.
    "MALLOC_TOP_PAD_": str(256 << 20),
}


def reexec() -> None:
    """Re-executes this Python program with SETTINGS in the environment, once (Linux/glibc only)."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    if not sys.argv or not sys.argv[0] or sys.argv[0] == "-c":
        return  # not started as a script (python -c, python -m ...): leave it alone
    env = dict(os.environ, **SETTINGS)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
