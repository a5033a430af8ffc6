"""Executors of plans behind one interface: the C++ kernel, the Triton kernels and the NumPy reference.

Layers: :mod:`.base` (jobs, layout, the :class:`Engine` interface, the checks) <- one module per engine
(:mod:`.cpp`, :mod:`.triton_engine`, :mod:`.reference`) <- :mod:`.registry` (which engine for a device)
<- :mod:`.render` (budget, allocation, staging, run). Importing this package imports neither triton nor
transformers.
"""

from .base import Engine, EngineName, FrameJob, PatchLayout, check_jobs, parse_engine
from .registry import ENGINES, select_engine
from .render import render

__all__ = [
    "ENGINES",
    "Engine",
    "EngineName",
    "FrameJob",
    "PatchLayout",
    "check_jobs",
    "parse_engine",
    "render",
    "select_engine",
]
