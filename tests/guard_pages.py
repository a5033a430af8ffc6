"""Memory that ends where an inaccessible page begins (Linux: libc ``mprotect``), for tests that a kernel touches
nothing past its buffers; run in a process of its own (``run_child``), where a stray access crashes that process
rather than the test run."""

from __future__ import annotations

import ctypes
import mmap
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

_libc = ctypes.CDLL(None, use_errno=True)
_mapped: list[mmap.mmap] = []  # kept for the process's life: views of them outlive the call


def flush_against_guard(size: int) -> np.ndarray:
    """``size`` writable uint8 bytes, 1-D, whose last byte is followed by a PROT_NONE page."""
    page = mmap.PAGESIZE
    pages = -(-size // page) + 1
    memory = mmap.mmap(-1, pages * page)
    guard = ctypes.addressof(ctypes.c_char.from_buffer(memory, (pages - 1) * page))
    assert _libc.mprotect(ctypes.c_void_p(guard), page, 0) == 0, ctypes.get_errno()
    _mapped.append(memory)
    return np.frombuffer(memory, np.uint8, size, (pages - 1) * page - size)


def run_child(script: str, *args: str) -> subprocess.CompletedProcess:
    """``python -c script *args`` in a process of its own that can import this module."""
    path = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": path},
    )
