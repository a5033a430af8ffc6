"""Host side of the Triton pipeline: block sizes, the batch's plan table and its work tables.

- :func:`launch_config`: every block-size / warp choice, in one place.
- :func:`plan_table`: the axis plans of a batch concatenated into one int32 table, with the
  steps each image takes; built once per tuple of plans and cached (the device copy too).
- :func:`intermediate_layout`: where each image's pass-1 output goes in the shared buffer.
- :func:`work_tables`: per call, one int64 metadata row per image for both passes (addresses,
  strides, output rows, temporal slots, first tile ids), so one host-to-device copy.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import triton

from ..plans import AxisPlan, ResamplePlan
from . import (
    META_FIELDS,
    META_FIRST_LAST,
    META_FIRST_PLAN,
    META_FIRST_PLAN_STRIDE,
    META_FIRST_PRECISION,
    META_FIRST_TAPS,
    META_FIRST_TILE,
    META_FIRST_VERTICAL,
    META_INTER_HEIGHT,
    META_INTER_OFFSET,
    META_INTER_PITCH,
    META_INTER_WIDTH,
    META_OUT_HEIGHT,
    META_OUT_ROW,
    META_OUT_WIDTH,
    META_ROW_LO,
    META_SECOND_LAST,
    META_SECOND_PLAN,
    META_SECOND_PLAN_STRIDE,
    META_SECOND_PRECISION,
    META_SECOND_TAPS,
    META_SECOND_TILE,
    META_SECOND_VERTICAL,
    META_SLOT_BEGIN,
    META_SLOT_COUNT,
    META_SRC,
    META_SRC_CHAN_STRIDE,
    META_SRC_COL_STRIDE,
    META_SRC_ROW_STRIDE,
    PLAN_COUNT,
    PLAN_START,
    PLAN_WEIGHTS,
)

__all__ = [
    "LaunchConfig",
    "ImageSteps",
    "SourceView",
    "WorkTables",
    "intermediate_layout",
    "intermediate_pitch",
    "launch_config",
    "axis_on_device",
    "axis_rows",
    "image_steps",
    "source_view",
    "work_tables",
]

#: Plans (and their tables) kept for reuse: a serving loop sees few distinct image sizes.
_HOST_CACHE_SIZE = 512
_DEVICE_CACHE_SIZE = 512
#: The identity "resample" of an axis that keeps its size: one tap of weight 2 at precision 1
#: gives ``(2 * v + 1) >> 1 == v``, so the fused pass also serves images that need no resize.
_IDENTITY_PRECISION = 1
#: Guards the plan cache and the device copies: a server may preprocess from several threads.
_lock = threading.Lock()


@dataclass(frozen=True)
class LaunchConfig:
    """Tile shapes and warps of both kernels."""

    pass_rows: int  # pixel rows per resample_pass tile
    pass_cols: int  # pixel columns per resample_pass tile (intermediate rows are padded to it)
    pass_warps: int
    patch_rows: int  # pixel_values rows (patches) per resample_patchify tile
    patch_warps: int
    pass_wide_stores: bool = False  # let resample_pass store 8-16 bytes per thread


def launch_config(patch_size: int, interpret: bool) -> LaunchConfig:
    """Block sizes for a patch size, on a GPU or in the interpreter."""
    patch_elements = triton.next_power_of_2(patch_size) ** 2
    if interpret:
        # The interpreter costs per program and per op, not per element: few, large programs.
        return LaunchConfig(64, 128, 4, max(1, 16384 // patch_elements), 4)
    # Chosen by measurement on an H200 (bench/tune_triton.py; bench/results/gpu-2026-12-04):
    # pass 1, ~1024 pixels per program of 4 warps, wide rows so a warp's tap loads share cache
    # lines; pass 2, 8 patches of 14 px (padded to 16: two merge blocks) per program of 8 warps.
    patch_rows = max(1, 2048 // patch_elements)
    return LaunchConfig(4, 256, 4, patch_rows, 8)


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


@dataclass(frozen=True)
class AxisStep:
    """One axis pass of one image: its plan and its direction."""

    axis: AxisPlan
    vertical: bool


@dataclass(frozen=True)
class ImageSteps:
    """Both passes of one image.

    ``first`` is None unless both axes change size. Its output is a planar
    ``(C, inter_height, pitch)`` uint8 image; a horizontal first pass keeps only source rows
    ``row_lo .. row_lo + inter_height`` (the ones the vertical pass reads).
    """

    first: AxisStep | None
    second: AxisStep
    inter_height: int
    inter_width: int
    row_lo: int


def _build_steps(plan: ResamplePlan) -> ImageSteps:
    horizontal, vertical = plan.horizontal, plan.vertical
    if horizontal is not None and vertical is not None:
        if plan.vertical_first:
            return ImageSteps(
                AxisStep(vertical, True), AxisStep(horizontal, False), vertical.out_size, plan.in_width, 0
            )
        row_lo = int(vertical.starts.min())
        rows = int((vertical.starts + vertical.counts).max()) - row_lo
        return ImageSteps(AxisStep(horizontal, False), AxisStep(vertical, True), rows, horizontal.out_size, row_lo)
    if horizontal is not None:
        return ImageSteps(None, AxisStep(horizontal, False), 0, 0, 0)
    if vertical is not None:
        return ImageSteps(None, AxisStep(vertical, True), 0, 0, 0)
    return ImageSteps(None, AxisStep(_identity_axis(plan.in_width), False), 0, 0, 0)


#: Host-side caches keyed by object identity; each entry keeps its key object alive, so an id in
#: a live key is never reused by another object.
_steps_cache: OrderedDict[int, tuple[ResamplePlan, ImageSteps]] = OrderedDict()
_rows_cache: OrderedDict[int, tuple[AxisPlan, np.ndarray]] = OrderedDict()


def _cached(cache: OrderedDict, key_object: object, build) -> object:
    with _lock:
        hit = cache.get(id(key_object))
        if hit is not None:
            cache.move_to_end(id(key_object))
            return hit[1]
    value = build(key_object)
    with _lock:
        cache[id(key_object)] = (key_object, value)
        if len(cache) > _HOST_CACHE_SIZE:
            cache.popitem(last=False)
    return value


def image_steps(plan: ResamplePlan) -> ImageSteps:
    """How the kernels run ``plan`` (cached: ``resample_plan`` returns the same object for a size)."""
    return _cached(_steps_cache, plan, _build_steps)


def _build_rows(axis: AxisPlan) -> np.ndarray:
    rows = np.zeros((axis.out_size, PLAN_WEIGHTS.value + axis.taps), dtype=np.int32)
    rows[:, PLAN_START.value] = axis.starts
    rows[:, PLAN_COUNT.value] = axis.counts
    rows[:, PLAN_WEIGHTS.value :] = axis.weights
    return rows


def axis_rows(axis: AxisPlan) -> np.ndarray:
    """The plan table of one axis, ``int32 [out_size, 2 + taps]``: ``[start, count, weights...]``."""
    return _cached(_rows_cache, axis, _build_rows)


@dataclass
class _DevicePlan:
    axis: AxisPlan  # keeps the id in the key alive
    rows: torch.Tensor
    ready: torch.cuda.Event | None  # recorded after the upload; None once it has completed


_device_plans: OrderedDict[tuple[int, torch.device], _DevicePlan] = OrderedDict()
_upload_streams: dict[torch.device, torch.cuda.Stream] = {}


def axis_on_device(axis: AxisPlan, device: torch.device, keep: list[object]) -> torch.Tensor:
    """``axis_rows(axis)`` on ``device``, uploaded once per device and shared by every stream.

    The upload runs on a private stream; until it is known to have completed, each use makes
    the current stream wait for it. Each use is recorded on the current stream, so an entry
    evicted from the cache is not reused while a kernel may still read it. While a CUDA graph
    is captured, an axis not yet uploaded is copied inside the capture and appended to
    ``keep`` (the graph re-reads it on every replay), as is every table the graph reads.
    """
    rows = axis_rows(axis)
    if device.type != "cuda":
        return torch.from_numpy(rows)
    stream = torch.cuda.current_stream(device)
    capturing = torch.cuda.is_current_stream_capturing()
    key = (id(axis), device)
    with _lock:
        entry = _device_plans.get(key)
        if entry is not None:
            _device_plans.move_to_end(key)
    if entry is not None and entry.ready is not None and (capturing or entry.ready.query()):
        if capturing:  # an event recorded outside the capture cannot be waited on inside it
            entry = None
        else:
            entry.ready = None
    if entry is None and capturing:
        host = torch.from_numpy(rows).pin_memory()
        uploaded = host.to(device, non_blocking=True)
        keep.extend((host, uploaded))
        return uploaded
    if entry is None:
        upload = _upload_streams.setdefault(device, torch.cuda.Stream(device))
        with torch.cuda.stream(upload):
            uploaded = torch.from_numpy(rows).pin_memory().to(device, non_blocking=True)
            ready = torch.cuda.Event()
            ready.record(upload)
        entry = _DevicePlan(axis, uploaded, ready)
        with _lock:
            _device_plans[key] = entry
            if len(_device_plans) > _DEVICE_CACHE_SIZE:
                _device_plans.popitem(last=False)
    if entry.ready is not None:
        stream.wait_event(entry.ready)
    entry.rows.record_stream(stream)
    if capturing:
        keep.append(entry.rows)
    return entry.rows


@dataclass(frozen=True)
class SourceView:
    """Where one image's bytes are: address (or intermediate offset) and strides in bytes."""

    address: int
    row_stride: int
    col_stride: int
    chan_stride: int


def source_view(frame: torch.Tensor) -> SourceView:
    """Address and strides of a uint8 ``(H, W, C)`` frame (any strides: CHW storage is a permuted view)."""
    row_stride, col_stride, chan_stride = frame.stride()
    return SourceView(frame.data_ptr(), row_stride, col_stride, chan_stride)


@dataclass(frozen=True)
class WorkTables:
    """The metadata of one call (one row per image) and the tile counts of both passes."""

    meta: np.ndarray
    first_tiles: int
    second_tiles: int


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def intermediate_pitch(step: ImageSteps, config: LaunchConfig) -> int:
    """Row stride of an image's intermediate planes: whole pass-1 tiles, a multiple of 16 bytes."""
    return _round_up(step.inter_width, math.lcm(config.pass_cols, 16)) if step.first is not None else 0


def intermediate_layout(
    steps: Sequence[ImageSteps], channels: int, config: LaunchConfig
) -> tuple[list[int], list[int], int]:
    """Each image's intermediate pitch and byte offset (16-byte aligned), and the buffer's size."""
    pitches, offsets, total = [], [], 0
    for step in steps:
        pitch = intermediate_pitch(step, config)
        pitches.append(pitch)
        offsets.append(total)
        total += channels * step.inter_height * pitch
    return pitches, offsets, total


def work_tables(
    steps: Sequence[ImageSteps],
    plans: Sequence[ResamplePlan],
    sources: Sequence[SourceView],
    plan_addresses: Sequence[tuple[int, int]],
    row_offsets: Sequence[int],
    slot_begins: Sequence[int],
    slot_counts: Sequence[int],
    *,
    intermediate_pitches: Sequence[int],
    intermediate_offsets: Sequence[int],
    config: LaunchConfig,
    patch_size: int,
) -> WorkTables:
    """The metadata rows of one call: which tiles each image owns, where it reads and writes.

    ``plan_addresses[i]`` holds the device addresses of image ``i``'s first-pass plan table
    (0 without a first pass) and second-pass plan table.
    """
    rows = []  # Python lists: filling them costs a fraction of NumPy item assignments
    first_tiles = second_tiles = 0
    for index, (step, plan, source) in enumerate(zip(steps, plans, sources, strict=True)):
        row = [0] * META_FIELDS.value
        rows.append(row)
        row[META_FIRST_TILE.value] = first_tiles
        row[META_SECOND_TILE.value] = second_tiles
        row[META_SRC.value] = source.address
        row[META_SRC_ROW_STRIDE.value] = source.row_stride
        row[META_SRC_COL_STRIDE.value] = source.col_stride
        row[META_SRC_CHAN_STRIDE.value] = source.chan_stride
        first_address, second_address = plan_addresses[index]
        second = step.second
        if step.first is not None:
            first, pitch = step.first, intermediate_pitches[index]
            row[META_ROW_LO.value] = step.row_lo
            row[META_INTER_HEIGHT.value] = step.inter_height
            row[META_INTER_WIDTH.value] = step.inter_width
            row[META_INTER_PITCH.value] = pitch
            row[META_INTER_OFFSET.value] = intermediate_offsets[index]
            row[META_FIRST_PLAN.value] = first_address
            row[META_FIRST_PLAN_STRIDE.value] = PLAN_WEIGHTS.value + first.axis.taps
            row[META_FIRST_TAPS.value] = first.axis.taps
            row[META_FIRST_PRECISION.value] = first.axis.precision
            row[META_FIRST_VERTICAL.value] = first.vertical
            row[META_FIRST_LAST.value] = first.axis.in_size - 1
            first_tiles += math.ceil(step.inter_height / config.pass_rows) * (pitch // config.pass_cols)
            # Pass 2 reads the intermediate: rows row_lo .. row_lo + inter_height - 1 of a
            # vertical pass, every column of a horizontal one.
            last = step.row_lo + step.inter_height - 1 if second.vertical else step.inter_width - 1
        else:
            last = second.axis.in_size - 1
        row[META_SECOND_PLAN.value] = second_address
        row[META_SECOND_PLAN_STRIDE.value] = PLAN_WEIGHTS.value + second.axis.taps
        row[META_SECOND_TAPS.value] = second.axis.taps
        row[META_SECOND_PRECISION.value] = second.axis.precision
        row[META_SECOND_VERTICAL.value] = second.vertical
        row[META_SECOND_LAST.value] = last
        row[META_OUT_HEIGHT.value] = plan.out_height
        row[META_OUT_WIDTH.value] = plan.out_width
        row[META_OUT_ROW.value] = row_offsets[index]
        row[META_SLOT_BEGIN.value] = slot_begins[index]
        row[META_SLOT_COUNT.value] = slot_counts[index]
        patches = (plan.out_height // patch_size) * (plan.out_width // patch_size)
        second_tiles += math.ceil(patches / config.patch_rows)
    return WorkTables(np.array(rows, dtype=np.int64).ravel(), first_tiles, second_tiles)
