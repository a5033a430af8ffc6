"""The C++ kernels' SIMD levels, for tests that run every level: each test asks for one and is skipped where
the CPU lacks it, and the CPU's highest level is restored afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

#: Every level the extension knows, lowest first (``_C.set_simd_level`` names).
LEVELS = ("portable", "avx2", "avx512")


def skip_unless(level: str) -> None:
    """Skips the test where this CPU lacks ``level``."""
    from vlfast import _C

    if level not in _C.simd_levels():
        pytest.skip(f"this CPU has no {level}")


@contextmanager
def simd_level(level: str) -> Iterator[str]:
    """Runs the kernels at ``level``; skips the test where this CPU lacks it."""
    from vlfast import _C

    skip_unless(level)
    assert _C.set_simd_level(level) == level
    try:
        yield level
    finally:
        _C.set_simd_level(LEVELS[-1])


def highest_level() -> str:
    """The highest level this CPU has."""
    from vlfast import _C

    return _C.simd_levels()[-1]
