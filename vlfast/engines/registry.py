"""The registered engines, and the choice of one for an output device.

A new engine is a module with a class of the :class:`~vlfast.engines.base.Engine` shape and one line
in :data:`ENGINES`.
"""

from __future__ import annotations

import torch

from ..errors import DeviceError
from .base import Engine, EngineName, parse_engine
from .cpp import CppEngine
from .reference import ReferenceEngine
from .triton_engine import TritonEngine, interpreting

__all__ = ["ENGINES", "select_engine"]

#: Every engine, by name.
ENGINES: dict[EngineName, Engine] = {engine.name: engine for engine in (CppEngine(), TritonEngine(), ReferenceEngine())}


def select_engine(name: EngineName | str | None, device: torch.device) -> Engine:
    """The engine ``name`` for an output on ``device``, or a typed error saying why it cannot serve it.

    ``"auto"`` takes the Triton kernels for a CUDA device (unless ``TRITON_INTERPRET`` is set, which
    makes them run on CPU tensors only) and the C++ kernel otherwise.

    Raises:
        UnsupportedOptionError: an unknown name.
        DeviceError: the engine cannot run here or cannot serve ``device``.
    """
    name = parse_engine(name)
    if name is EngineName.AUTO:
        triton = ENGINES[EngineName.TRITON]
        gpu = device.type == "cuda" and not interpreting() and triton.available()
        name = EngineName.TRITON if gpu else EngineName.CPP
    engine = ENGINES[name]
    engine.output_device(device)
    if not engine.available():
        raise DeviceError(f"engine={name.value!r} cannot run here")
    return engine
