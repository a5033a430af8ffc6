"""Host side of the Triton pipeline: block sizes, the batch's plan table and its work tables.

- :func:`launch_config`: every block-size / warp choice, in one place.
- :func:`plan_table`: the axis plans of a batch concatenated into one int32 table, with the
  steps each image takes; built once per tuple of plans and cached (the device copy too).
- :func:`work_tables`: per call, the int64 metadata rows of both passes (addresses, strides,
  output rows, temporal slots, first tile ids) in one array, so one host-to-device copy.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
import triton

from ..errors import ImageTooLargeError
from ..plans import AxisPlan, ResamplePlan
from ..triton_engine import INT32_LIMIT
from . import PLAN_COUNT, PLAN_START, PLAN_WEIGHTS
from . import resample_pass as first_pass
from . import resample_patchify as second_pass

__all__ = [
    "LaunchConfig",
    "PlanTable",
    "SourceView",
    "WorkTables",
    "intermediate_layout",
    "launch_config",
    "plan_table",
    "source_view",
    "work_tables",
]

#: Plan tables kept for reuse; a serving loop sees few distinct tuples of plans.
_PLAN_CACHE_SIZE = 64
#: The identity "resample" of an axis that keeps its size: one tap of weight 2 at precision 1
#: gives ``(2 * v + 1) >> 1 == v``, so the fused pass also serves images that need no resize.
_IDENTITY_PRECISION = 1
#: Guards the plan cache and the device copies: a server may preprocess from several threads.
_lock = threading.Lock()


@dataclass(frozen=True)
class LaunchConfig:
    """Tile shapes and warps of both kernels."""

    pass_rows: int  # plane rows per resample_pass tile
    pass_cols: int  # columns per resample_pass tile
    pass_warps: int
    patch_rows: int  # pixel_values rows (patches) per resample_patchify tile
    patch_warps: int


def launch_config(patch_size: int, interpret: bool) -> LaunchConfig:
    """Block sizes for a patch size, on a GPU or in the interpreter."""
    patch_elements = triton.next_power_of_2(patch_size) ** 2
    if interpret:
        # The interpreter costs per program and per op, not per element: few, large programs.
        return LaunchConfig(64, 128, 4, max(1, 16384 // patch_elements), 4)
    # ~1024 elements per program of 4 warps: 8 per thread, enough independent loads in flight
    # to hide latency, small enough that mixed batches split evenly over the SMs. A merge block
    # of 2x2 patches of 14 px (padded to 16) is exactly one 1024-element resample_patchify tile.
    patch_rows = max(1, 1024 // patch_elements)
    patch_warps = 4 if patch_rows * patch_elements <= 2048 else 8
    return LaunchConfig(4, 256, 4, patch_rows, patch_warps)


@dataclass(frozen=True)
class AxisStep:
    """One axis pass of one image: where its plan sits in the table and how it runs."""

    plan_row: int
    taps: int
    precision: int
    vertical: bool


@dataclass(frozen=True)
class ImageSteps:
    """Both passes of one image.

    ``first`` is None unless both axes change size. Its output is a planar
    ``(C, inter_height, inter_width)`` uint8 image; a horizontal first pass keeps only source
    rows ``row_lo .. row_lo + inter_height`` (the ones the vertical pass reads).
    """

    first: AxisStep | None
    second: AxisStep
    inter_height: int
    inter_width: int
    row_lo: int


@dataclass
class PlanTable:
    """The plans of a batch as one int32 table ``[start, count, weights...]`` per output pixel."""

    rows: np.ndarray
    steps: tuple[ImageSteps, ...]
    # Device copies per (device, stream): a copy is only ever read on the stream that made it,
    # so no reader can overtake the copy.
    _on_device: dict[tuple[torch.device, int], torch.Tensor] = field(default_factory=dict, repr=False)
    # The pinned source of the copies: a copy captured in a CUDA graph re-reads it on replay.
    _pinned: torch.Tensor | None = field(default=None, repr=False)
    # Device copies made during CUDA-graph capture, which the graph reads on every replay.
    _captured: list[torch.Tensor] = field(default_factory=list, repr=False)

    def on(self, device: torch.device) -> torch.Tensor:
        """The table on ``device`` for the current stream, copied once and kept (it never changes)."""
        if device.type != "cuda":
            return torch.from_numpy(self.rows)
        key = (device, torch.cuda.current_stream(device).cuda_stream)
        with _lock:
            cached = self._on_device.get(key)
            if cached is None:
                if self._pinned is None:
                    self._pinned = torch.from_numpy(self.rows).pin_memory()
                cached = self._pinned.to(device, non_blocking=True)
                if torch.cuda.is_current_stream_capturing():
                    # The captured copy runs only at replay: keep the copy alive for the graph, but
                    # never hand its (still empty) memory to an eager call.
                    self._captured.append(cached)
                else:
                    self._on_device[key] = cached
        return cached


@lru_cache(maxsize=256)
def _identity_axis(size: int) -> AxisPlan:
    return AxisPlan(
        in_size=size,
        out_size=size,
        starts=np.arange(size, dtype=np.int32),
        counts=np.ones(size, dtype=np.int32),
        weights=np.full((size, 1), 1 << _IDENTITY_PRECISION, dtype=np.int32),
        precision=_IDENTITY_PRECISION,
    )


def _build_plan_table(plans: Sequence[ResamplePlan]) -> PlanTable:
    axis_rows: dict[int, int] = {}  # id(AxisPlan) -> first table row; plans repeat in a batch
    axes: list[AxisPlan] = []
    total_rows = 0

    def place(axis: AxisPlan, vertical: bool) -> AxisStep:
        nonlocal total_rows
        if id(axis) not in axis_rows:
            axis_rows[id(axis)] = total_rows
            total_rows += axis.out_size
            axes.append(axis)
        return AxisStep(axis_rows[id(axis)], axis.taps, axis.precision, vertical)

    steps = []
    for plan in plans:
        horizontal, vertical = plan.horizontal, plan.vertical
        if horizontal is not None and vertical is not None:
            if plan.vertical_first:
                first, second = place(vertical, True), place(horizontal, False)
                inter_height, inter_width, row_lo = vertical.out_size, horizontal.in_size, 0
            else:
                first, second = place(horizontal, False), place(vertical, True)
                row_lo = int(vertical.starts.min())
                inter_height = int((vertical.starts + vertical.counts).max()) - row_lo
                inter_width = horizontal.out_size
            steps.append(ImageSteps(first, second, inter_height, inter_width, row_lo))
        elif horizontal is not None or vertical is not None:
            second = place(horizontal, False) if horizontal is not None else place(vertical, True)
            steps.append(ImageSteps(None, second, 0, 0, 0))
        else:
            steps.append(ImageSteps(None, place(_identity_axis(plan.in_width), False), 0, 0, 0))

    max_taps = max(axis.taps for axis in axes)
    rows = np.zeros((total_rows, PLAN_WEIGHTS.value + max_taps), dtype=np.int32)
    for axis in axes:
        block = rows[axis_rows[id(axis)] : axis_rows[id(axis)] + axis.out_size]
        block[:, PLAN_START.value] = axis.starts
        block[:, PLAN_COUNT.value] = axis.counts
        block[:, PLAN_WEIGHTS.value : PLAN_WEIGHTS.value + axis.taps] = axis.weights
    return PlanTable(rows, tuple(steps))


_plan_cache: OrderedDict[tuple[int, ...], tuple[tuple[ResamplePlan, ...], PlanTable]] = OrderedDict()


def plan_table(plans: Sequence[ResamplePlan]) -> PlanTable:
    """The batch's plan table, cached by the identity of its plans (``resample_plan`` caches
    them, so a repeated batch shape costs a dictionary lookup)."""
    plans = tuple(plans)
    key = tuple(id(plan) for plan in plans)
    with _lock:
        hit = _plan_cache.get(key)
        # The cache keeps the plans alive, so an id in a live key is never reused by another plan.
        if hit is not None and all(a is b for a, b in zip(hit[0], plans, strict=True)):
            _plan_cache.move_to_end(key)
            return hit[1]
    table = _build_plan_table(plans)
    with _lock:
        _plan_cache[key] = (plans, table)
        if len(_plan_cache) > _PLAN_CACHE_SIZE:
            _plan_cache.popitem(last=False)
    return table


@dataclass(frozen=True)
class SourceView:
    """Where one image's bytes are: address (or intermediate offset) and strides in bytes."""

    address: int
    row_stride: int
    col_stride: int
    chan_stride: int


def source_view(frame: torch.Tensor, channels_last: bool) -> SourceView:
    """Address and strides of a uint8 frame, ``(H, W, C)`` if ``channels_last`` else ``(C, H, W)``."""
    if channels_last:
        row_stride, col_stride, chan_stride = frame.stride()
    else:
        chan_stride, row_stride, col_stride = frame.stride()
    return SourceView(frame.data_ptr(), row_stride, col_stride, chan_stride)


@dataclass(frozen=True)
class WorkTables:
    """Metadata of both passes in one int64 array: pass 1 rows, then (aligned) pass 2 rows."""

    meta: np.ndarray
    first_images: int
    first_tiles: int
    second_offset: int
    second_images: int
    second_tiles: int


def intermediate_layout(table: PlanTable, channels: int) -> tuple[list[int], int]:
    """Offset of each image's planes in the shared intermediate buffer, and its total size."""
    offsets, total = [], 0
    for step in table.steps:
        offsets.append(total)
        size = channels * step.inter_height * step.inter_width
        if size >= INT32_LIMIT:
            raise ImageTooLargeError(f"intermediate image of {size} bytes exceeds the kernels' 2**31 limit")
        total += size
    return offsets, total


def _meta_row(fields: int, values: dict[int, int]) -> list[int]:
    """One metadata row from ``{field index: value}`` (field indices are the kernels' constants)."""
    row = [0] * fields
    for index, value in values.items():
        row[index] = int(value)
    return row


def work_tables(
    table: PlanTable,
    plans: Sequence[ResamplePlan],
    sources: Sequence[SourceView],
    row_offsets: Sequence[int],
    slot_begins: Sequence[int],
    slot_counts: Sequence[int],
    *,
    intermediate_offsets: Sequence[int],
    channels: int,
    patch_size: int,
    merge_size: int,
    config: LaunchConfig,
) -> WorkTables:
    """The metadata rows of one call: which tiles each image owns, where it reads and writes."""
    p1, p2 = first_pass, second_pass
    first_rows: list[list[int]] = []
    second_rows: list[list[int]] = []
    first_tiles = second_tiles = 0
    for index, (step, plan, source) in enumerate(zip(table.steps, plans, sources, strict=True)):
        read, shift, from_intermediate = source, 0, 0
        if step.first is not None:
            first = step.first
            values = {
                p1.TILE_BEGIN.value: first_tiles,
                p1.SRC_ADDR.value: source.address,
                p1.SRC_ROW_STRIDE.value: source.row_stride,
                p1.SRC_COL_STRIDE.value: source.col_stride,
                p1.SRC_CHAN_STRIDE.value: source.chan_stride,
                p1.SRC_ROW_LO.value: step.row_lo,
                p1.HEIGHT.value: step.inter_height,
                p1.WIDTH.value: step.inter_width,
                p1.INTER_OFFSET.value: intermediate_offsets[index],
                p1.PLAN_ROW.value: first.plan_row,
                p1.TAPS.value: first.taps,
                p1.PRECISION.value: first.precision,
                p1.VERTICAL.value: first.vertical,
            }
            first_rows.append(_meta_row(p1.FIELDS.value, values))
            row_tiles = math.ceil(channels * step.inter_height / config.pass_rows)
            first_tiles += row_tiles * math.ceil(step.inter_width / config.pass_cols)
            # The second pass reads the planar intermediate the first one writes.
            plane = step.inter_height * step.inter_width
            read = SourceView(intermediate_offsets[index], step.inter_width, 1, plane)
            shift, from_intermediate = step.row_lo, 1
        second = step.second
        grid_h, grid_w = plan.out_height // patch_size, plan.out_width // patch_size
        values = {
            p2.TILE_BEGIN.value: second_tiles,
            p2.SRC_BASE.value: read.address,
            p2.SRC_ROW_STRIDE.value: read.row_stride,
            p2.SRC_COL_STRIDE.value: read.col_stride,
            p2.SRC_CHAN_STRIDE.value: read.chan_stride,
            p2.AXIS_SHIFT.value: shift,
            p2.PLAN_ROW.value: second.plan_row,
            p2.TAPS.value: second.taps,
            p2.PRECISION.value: second.precision,
            p2.VERTICAL.value: second.vertical,
            p2.BLOCKS_PER_ROW.value: grid_w // merge_size,
            p2.NUM_ROWS.value: grid_h * grid_w,
            p2.OUT_ROW.value: row_offsets[index],
            p2.SLOT_BEGIN.value: slot_begins[index],
            p2.SLOT_COUNT.value: slot_counts[index],
            p2.FROM_INTERMEDIATE.value: from_intermediate,
        }
        second_rows.append(_meta_row(p2.FIELDS.value, values))
        second_tiles += math.ceil(grid_h * grid_w / config.patch_rows)

    # Pass 2's rows start on a 16-byte boundary, like a fresh allocation, so the kernel sees
    # the same pointer alignment (and compiles once) whatever the number of pass 1 rows.
    first_size = len(first_rows) * p1.FIELDS.value
    second_offset = first_size + first_size % 2
    meta = np.zeros(second_offset + len(second_rows) * p2.FIELDS.value, dtype=np.int64)
    if first_rows:
        meta[:first_size] = np.asarray(first_rows, dtype=np.int64).ravel()
    meta[second_offset:] = np.asarray(second_rows, dtype=np.int64).ravel()
    return WorkTables(meta, len(first_rows), first_tiles, second_offset, len(second_rows), second_tiles)
