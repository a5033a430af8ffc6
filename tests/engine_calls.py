"""Calls of one engine on parallel lists of frames and plans, as the kernel tests write their cases."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vlfast.engines import ENGINES, EngineName, FrameJob, PatchLayout
from vlfast.plans import ResamplePlan


def run_engine(
    name: EngineName | str,
    frames: Sequence[torch.Tensor],
    plans: Sequence[ResamplePlan],
    table: torch.Tensor,
    out: torch.Tensor,
    row_offsets: Sequence[int],
    *,
    patch_size: int,
    merge_size: int,
    temporal_patch_size: int,
    slot_begins: Sequence[int] | None = None,
    slot_counts: Sequence[int] | None = None,
) -> None:
    """Run engine ``name`` on frame ``i`` with ``plans[i]`` from row ``row_offsets[i]``, filling temporal slots
    ``slot_begins[i] ..`` (default 0) for ``slot_counts[i]`` slots (default: to the last one)."""
    begins = [0] * len(frames) if slot_begins is None else list(slot_begins)
    counts = [temporal_patch_size - begin for begin in begins] if slot_counts is None else list(slot_counts)
    jobs = [
        FrameJob(frame, plan, int(offset), begin, count)
        for frame, plan, offset, begin, count in zip(frames, plans, row_offsets, begins, counts, strict=True)
    ]
    ENGINES[EngineName(name)].run(jobs, table, out, PatchLayout(patch_size, merge_size, temporal_patch_size))
