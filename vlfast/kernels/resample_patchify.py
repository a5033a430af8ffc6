"""Triton op: the last axis pass of a batch fused with normalization and the patch layout.

Each program writes ``ROWS`` consecutive ``pixel_values`` rows of one image. A row is one
``PATCH x PATCH`` patch and holds ``C * T * PATCH * PATCH`` contiguous elements, column
``((c * T + t) * PATCH + y) * PATCH + x``. For every pixel of its patches the program
resamples the remaining axis with the integer taps (from the intermediate buffer, or from
the source when only one axis or none changes size), looks ``table[c, value]`` up and
stores it into each temporal slot the image owns. Floats are only ever copied from the
table, never computed, so every backend (and the interpreter) writes the same bits.
"""

import torch
import triton
import triton.language as tl

from . import PLAN_COUNT, PLAN_START, PLAN_WEIGHTS, find_image

# Fields of one row of the int64 metadata table, one row per image (or video frame), built
# by ``vlfast.kernels.batch``.
TILE_BEGIN = tl.constexpr(0)  # first program id of the image; rows are sorted by it
SRC_BASE = tl.constexpr(1)  # the source's address, or the image's offset in the intermediate buffer
SRC_ROW_STRIDE = tl.constexpr(2)  # strides in bytes, so HWC, CHW and views need no staging copy
SRC_COL_STRIDE = tl.constexpr(3)
SRC_CHAN_STRIDE = tl.constexpr(4)
AXIS_SHIFT = tl.constexpr(5)  # subtracted from plan starts: the first source row pass 1 kept
PLAN_ROW = tl.constexpr(6)  # plan-table row of output pixel 0 of the axis
TAPS = tl.constexpr(7)  # width of the axis's weights: the tap loop's trip count
PRECISION = tl.constexpr(8)
VERTICAL = tl.constexpr(9)  # 1: resample along the height, 0: along the width
BLOCKS_PER_ROW = tl.constexpr(10)  # merge blocks per block row: grid_w // merge_size
NUM_ROWS = tl.constexpr(11)  # pixel_values rows of the image: grid_h * grid_w
OUT_ROW = tl.constexpr(12)  # first pixel_values row of the image
SLOT_BEGIN = tl.constexpr(13)  # temporal slots written: a still image all T, a video frame one
SLOT_COUNT = tl.constexpr(14)
# 1: SRC_BASE is an offset into the intermediate buffer. Its address is a launch argument, not
# metadata, so the metadata of a repeated call is identical and its upload can be reused.
FROM_INTERMEDIATE = tl.constexpr(15)
FIELDS = tl.constexpr(16)

# The table has one row of 256 entries per channel: table[c, v] for every uint8 value v.
TABLE_ROW = tl.constexpr(256)
# Up to four channel accumulators share one pass over the taps (and one load of each weight).
MAX_CHANNELS = 4


@triton.jit
def _tap(src, offsets, mask, weight):
    """One source byte times its weight, in int32."""
    return tl.load(src + offsets, mask=mask, other=0).to(tl.int32) * weight


@triton.jit
def _store_channel(
    acc,
    precision,
    table_ptr,
    out_rows,
    local,
    ok,
    slot_begin,
    slot_count,
    CHANNEL: tl.constexpr,
    TEMPORAL: tl.constexpr,
    PATCH: tl.constexpr,
):
    """Round the accumulator to uint8, look the table up and store it into the image's slots."""
    value = tl.minimum(tl.maximum(acc >> precision, 0), 255)
    normalized = tl.load(table_ptr + CHANNEL * TABLE_ROW + value, mask=ok, other=0)
    for t in tl.static_range(TEMPORAL):
        in_slots = (t >= slot_begin) & (t < slot_begin + slot_count)
        tl.store(out_rows + local + (CHANNEL * TEMPORAL + t) * PATCH * PATCH, normalized, mask=ok & in_slots)


@triton.jit(do_not_specialize=["num_images", "search_steps"])
def resample_patchify_kernel(
    meta_ptr,
    plan_ptr,
    inter_ptr,
    table_ptr,
    out_ptr,
    num_images,
    search_steps,
    plan_stride,
    CHANNELS: tl.constexpr,
    PATCH: tl.constexpr,
    MERGE: tl.constexpr,
    TEMPORAL: tl.constexpr,
    ROWS: tl.constexpr,
    PATCH_POW2: tl.constexpr,
):
    """``ROWS`` pixel_values rows (patches) of one image, every channel and temporal slot."""
    program = tl.program_id(0)
    meta = meta_ptr + find_image(meta_ptr, program, num_images, search_steps, FIELDS, TILE_BEGIN) * FIELDS
    tile = program - tl.load(meta + TILE_BEGIN).to(tl.int32)
    inter_base = inter_ptr.to(tl.int64) * tl.load(meta + FROM_INTERMEDIATE)
    src = (inter_base + tl.load(meta + SRC_BASE)).to(tl.pointer_type(tl.uint8))
    row_stride = tl.load(meta + SRC_ROW_STRIDE).to(tl.int32)
    col_stride = tl.load(meta + SRC_COL_STRIDE).to(tl.int32)
    chan_stride = tl.load(meta + SRC_CHAN_STRIDE).to(tl.int32)
    axis_shift = tl.load(meta + AXIS_SHIFT).to(tl.int32)
    plan_row = tl.load(meta + PLAN_ROW).to(tl.int32)
    taps = tl.load(meta + TAPS).to(tl.int32)
    precision = tl.load(meta + PRECISION).to(tl.int32)
    vertical = tl.load(meta + VERTICAL).to(tl.int32)
    blocks_per_row = tl.load(meta + BLOCKS_PER_ROW).to(tl.int32)
    num_rows = tl.load(meta + NUM_ROWS).to(tl.int32)
    slot_begin = tl.load(meta + SLOT_BEGIN).to(tl.int32)
    slot_count = tl.load(meta + SLOT_COUNT).to(tl.int32)

    # Patch (ph, pw) of each row, inverting row = ((bh * blocks_per_row + bw) * M + mh) * M + mw.
    row = tile * ROWS + tl.arange(0, ROWS)
    row_ok = row < num_rows
    block = row // (MERGE * MERGE)
    inside = row % (MERGE * MERGE)
    ph = (block // blocks_per_row) * MERGE + inside // MERGE
    pw = (block % blocks_per_row) * MERGE + inside % MERGE

    # Tile [ROWS, y, x]: the plan of a vertical pass varies along y only, a horizontal one
    # along x only, so it is loaded on a [ROWS, y, 1] or [ROWS, 1, x] slice, not per pixel.
    ys = tl.arange(0, PATCH_POW2)
    xs = tl.arange(0, PATCH_POW2)
    py = ph[:, None, None] * PATCH + ys[None, :, None]
    px = pw[:, None, None] * PATCH + xs[None, None, :]
    ok_y = row_ok[:, None, None] & (ys < PATCH)[None, :, None]
    ok_x = row_ok[:, None, None] & (xs < PATCH)[None, None, :]
    ok = ok_y & ok_x
    plan_y = plan_ptr + (plan_row + py) * plan_stride
    plan_x = plan_ptr + (plan_row + px) * plan_stride
    load_y = ok_y & (vertical != 0)
    load_x = ok_x & (vertical == 0)
    count = tl.load(plan_y + PLAN_COUNT, mask=load_y, other=0) + tl.load(plan_x + PLAN_COUNT, mask=load_x, other=0)
    start = tl.load(plan_y + PLAN_START, mask=load_y, other=0) + tl.load(plan_x + PLAN_START, mask=load_x, other=0)
    # Byte offset of tap 0 (channel 0); each further tap is one step along the resampled axis.
    axis_stride = row_stride * vertical + col_stride * (1 - vertical)
    offsets = (start - axis_shift) * axis_stride + py * row_stride * (1 - vertical) + px * col_stride * vertical

    bias = tl.full([ROWS, PATCH_POW2, PATCH_POW2], 1, tl.int32) << (precision - 1)
    acc0 = bias
    acc1 = bias
    acc2 = bias
    acc3 = bias
    for k in range(taps):
        # Weights are zero past each pixel's count; only the source reads must stop there.
        weight = tl.load(plan_y + PLAN_WEIGHTS + k, mask=load_y, other=0) + tl.load(
            plan_x + PLAN_WEIGHTS + k, mask=load_x, other=0
        )
        tap_ok = ok & (k < count)
        tap = offsets + k * axis_stride
        acc0 += _tap(src, tap, tap_ok, weight)
        if CHANNELS > 1:
            acc1 += _tap(src, tap + chan_stride, tap_ok, weight)
        if CHANNELS > 2:
            acc2 += _tap(src, tap + 2 * chan_stride, tap_ok, weight)
        if CHANNELS > 3:
            acc3 += _tap(src, tap + 3 * chan_stride, tap_ok, weight)

    # int64 only for the tile's first row: the whole output can pass 2**31 elements.
    row_elements = CHANNELS * TEMPORAL * PATCH * PATCH
    out_rows = out_ptr + (tl.load(meta + OUT_ROW) + tile * ROWS) * row_elements
    local = (tl.arange(0, ROWS) * row_elements)[:, None, None] + (ys * PATCH)[None, :, None] + xs[None, None, :]
    _store_channel(acc0, precision, table_ptr, out_rows, local, ok, slot_begin, slot_count, 0, TEMPORAL, PATCH)
    if CHANNELS > 1:
        _store_channel(acc1, precision, table_ptr, out_rows, local, ok, slot_begin, slot_count, 1, TEMPORAL, PATCH)
    if CHANNELS > 2:
        _store_channel(acc2, precision, table_ptr, out_rows, local, ok, slot_begin, slot_count, 2, TEMPORAL, PATCH)
    if CHANNELS > 3:
        _store_channel(acc3, precision, table_ptr, out_rows, local, ok, slot_begin, slot_count, 3, TEMPORAL, PATCH)


def resample_patchify(
    meta: torch.Tensor,
    plan_table: torch.Tensor,
    intermediate: torch.Tensor,
    table: torch.Tensor,
    out: torch.Tensor,
    num_images: int,
    num_tiles: int,
    *,
    patch_size: int,
    merge_size: int,
    temporal_patch_size: int,
    rows_per_tile: int,
    num_warps: int,
) -> None:
    """Launch the pass for ``num_images`` metadata rows covering ``num_tiles`` tiles."""
    resample_patchify_kernel[(num_tiles,)](
        meta,
        plan_table,
        intermediate,
        table,
        out,
        num_images,
        max(num_images - 1, 0).bit_length(),
        plan_table.shape[1],
        CHANNELS=table.shape[0],
        PATCH=patch_size,
        MERGE=merge_size,
        TEMPORAL=temporal_patch_size,
        ROWS=rows_per_tile,
        PATCH_POW2=triton.next_power_of_2(patch_size),
        num_warps=num_warps,
    )
