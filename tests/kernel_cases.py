"""Shared helpers of the engine and kernel tests: plans, images and tables built for a case, bit views,
the NumPy reference's rows, and one engine run on parallel lists of frames and plans."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from vlfast import plans
from vlfast.engines import ENGINES, EngineName, FrameJob, PatchLayout
from vlfast.plans import Backend, Filter, ResamplePlan, axis_plan
from vlfast.reference import preprocess_reference

#: Every output dtype the engines write.
DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.uint8)
#: Integer dtypes of the same size, to compare outputs bit for bit in NumPy (which has no bfloat16).
BIT_VIEWS = {
    torch.float32: torch.int32,
    torch.bfloat16: torch.int16,
    torch.float16: torch.int16,
    torch.uint8: torch.uint8,
}
#: Qwen2-VL's patch layout, as keyword arguments.
QWEN = {"patch_size": 14, "merge_size": 2, "temporal_patch_size": 2}


def supported_filters() -> list[tuple[Backend, Filter]]:
    """Every (backend, filter) pair vlfast reproduces."""
    return [(backend, resample) for backend in Backend for resample in plans.supported_filters(backend)]


def make_plan(
    in_h: int,
    in_w: int,
    out_h: int,
    out_w: int,
    resample: Filter = Filter.BICUBIC,
    backend: Backend = Backend.PIL,
    vertical_first: bool = False,
) -> ResamplePlan:
    """A plan with a pass for each axis whose size changes, in the order asked for (the installed
    Pillow's own rule is tested elsewhere)."""
    horizontal = axis_plan(in_w, out_w, resample, backend) if in_w != out_w else None
    vertical = axis_plan(in_h, out_h, resample, backend) if in_h != out_h else None
    return ResamplePlan(in_h, in_w, out_h, out_w, horizontal, vertical, vertical_first)


def replace_axis(plan: ResamplePlan, which: str, **changes: object) -> ResamplePlan:
    """``plan`` with fields of one of its axis plans changed."""
    return dataclasses.replace(plan, **{which: dataclasses.replace(getattr(plan, which), **changes)})


def make_image(rng: np.random.Generator, height: int, width: int, channels: int = 3) -> np.ndarray:
    """uint8 ``(H, W, C)``: noise on the left half, hard 0/255 edges (which make the filters overshoot) on the right."""
    image = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    blocks = rng.integers(0, 2, (height // 3 + 1, width // 3 + 1, channels), dtype=np.uint8) * 255
    edges = np.repeat(np.repeat(blocks, 3, axis=0), 3, axis=1)[:height, :width]
    image[:, width // 2 :] = edges[:, width // 2 :]
    return image


def make_table(dtype: torch.dtype, channels: int = 3, seed: int = 0) -> torch.Tensor:
    """A ``(C, 256)`` table of random entries (the engines copy entries bit for bit); a uint8 table has no 0,
    so that an output pre-filled with 0 shows every byte an engine did not write."""
    generator = torch.Generator().manual_seed(seed)
    if dtype == torch.uint8:
        return torch.randint(1, 256, (channels, 256), generator=generator).to(torch.uint8)
    return torch.randn(channels, 256, generator=generator).to(dtype)


def unwritten(dtype: torch.dtype) -> float:
    """A fill value no entry of :func:`make_table` has: NaN, or 0 for uint8."""
    return 0 if dtype == torch.uint8 else float("nan")


def bits(tensor: torch.Tensor) -> np.ndarray:
    """The bits of a CPU tensor as a NumPy integer array of the same shape."""
    return tensor.view(BIT_VIEWS[tensor.dtype]).numpy()


def expected_rows(image: np.ndarray, plan: ResamplePlan, table: torch.Tensor, **layout: int) -> np.ndarray:
    """The NumPy reference's ``(rows, C * T * p * p)`` rows of a still image, as bits of the table's dtype."""
    layout = layout or QWEN
    return preprocess_reference(
        image, plan, bits(table), layout["patch_size"], layout["merge_size"], layout["temporal_patch_size"]
    )


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
