"""The reference engine: :mod:`vlfast.reference`'s NumPy code run as an engine, on the CPU.

Slow and obviously correct; ``engine="reference"`` runs a whole call through it, which is what
the conformance tests hold the other engines to.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..reference import preprocess_reference
from ..tables import TableFormula
from .base import EngineName, FrameJob, PatchLayout, check_jobs

__all__ = ["ReferenceEngine", "expand_on_host"]

#: Integer dtypes of the same size that carry each output dtype's bits through NumPy (no bfloat16 there).
_BIT_VIEWS = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float16: torch.int16}


class ReferenceEngine:
    """NumPy, one frame at a time, on the CPU."""

    name = EngineName.REFERENCE

    def available(self) -> bool:
        return True

    def output_device(self, device: torch.device) -> torch.device:
        return torch.device("cpu")

    def run(
        self,
        jobs: Sequence[FrameJob],
        table: torch.Tensor,
        out: torch.Tensor,
        layout: PatchLayout,
        formula: TableFormula | None = None,
    ) -> None:
        """Looks every entry up (``formula`` unused: the reference reads the table)."""
        check_jobs(jobs, table, out, layout, max_channels=4)
        bits = _BIT_VIEWS.get(table.dtype, table.dtype)
        entries = table.view(bits).numpy()
        out_bits = out.view(bits).numpy()
        channels, temporal = table.shape[0], layout.temporal_patch_size
        for job in jobs:
            rows = preprocess_reference(
                job.pixels.numpy(), job.plan, entries, layout.patch_size, layout.merge_size, temporal
            )
            count = rows.shape[0]
            target = out_bits[job.row_offset : job.row_offset + count].reshape(count, channels, temporal, -1)
            slots = slice(job.slot_begin, job.slot_begin + job.slot_count)
            target[:, :, slots] = rows.reshape(count, channels, temporal, -1)[:, :, slots]

    def expand(self, compact: torch.Tensor, table: torch.Tensor, out: torch.Tensor) -> None:
        expand_on_host(compact, table, out)


def expand_on_host(compact: torch.Tensor, table: torch.Tensor, out: torch.Tensor) -> None:
    """:meth:`Engine.expand <vlfast.engines.base.Engine.expand>` with NumPy gathers, on CPU tensors."""
    channels = table.shape[0]
    rows, area = compact.shape[0], compact.shape[1] // channels
    bits = _BIT_VIEWS.get(table.dtype, table.dtype)
    entries = table.view(bits).numpy()
    values = compact.numpy().reshape(rows, channels, 1, area)
    target = out.view(bits).numpy().reshape(rows, channels, -1, area)
    for channel in range(channels):
        target[:, channel] = entries[channel][values[:, channel]]
