"""Triton op: the last axis pass of a batch fused with normalization and the patch layout.

Each program writes ``ROWS`` consecutive ``pixel_values`` rows of one image. A row is one
``PATCH x PATCH`` patch and holds ``C * T * PATCH * PATCH`` contiguous elements, column
``((c * T + t) * PATCH + y) * PATCH + x``. For every pixel of its patches the program
resamples the remaining axis with the integer taps (from the intermediate buffer, or from
the source when only one axis or none changes size), looks ``table[c, value]`` up and
stores it into each temporal slot the image owns. Floats are only ever copied from the
table, never computed, so every backend (and the interpreter) writes the same bits.

The plan is loaded once per patch row (vertical) or column (horizontal) and shared by the
channels; padding lanes and taps past a pixel's count read clamped, valid indices, so only
the stores are masked.
"""

import torch
import triton
import triton.language as tl

from . import (
    COMPILE_OPTIONS,
    META_INTER_HEIGHT,
    META_INTER_OFFSET,
    META_INTER_PITCH,
    META_OUT_HEIGHT,
    META_OUT_ROW,
    META_OUT_WIDTH,
    META_ROW_LO,
    META_SECOND_PLAN,
    META_SECOND_TILE,
    META_SLOT_BEGIN,
    META_SLOT_COUNT,
    PLAN_START,
    PLAN_WEIGHTS,
    TABLE_ROW,
    accumulate_tap,
    find_tile,
    load_axis_pass,
    load_source,
)


@triton.jit
def _store_channel(
    acc,
    precision,
    table_ptr,
    out,
    ok,
    slot_begin,
    slot_count,
    CHANNEL: tl.constexpr,
    TEMPORAL: tl.constexpr,
    PATCH: tl.constexpr,
):
    """Round the accumulator to uint8, look the table up and store it into the image's slots.

    Whether slot ``t`` is the image's is one scalar for the whole program, selected into the block mask
    with ``tl.where`` rather than and-ed with it: Triton's interpreter broadcasts a scalar comparison as
    int32, and triton 3.9's interpreter refuses a mask that is not boolean. Compiled, it is the same and.
    """
    value = tl.minimum(tl.maximum(acc >> precision, 0), 255)
    normalized = tl.load(table_ptr + CHANNEL * TABLE_ROW + value)
    for t in tl.static_range(TEMPORAL):
        in_slots = (t >= slot_begin) & (t < slot_begin + slot_count)
        tl.store(out + (CHANNEL * TEMPORAL + t) * PATCH * PATCH, normalized, mask=tl.where(in_slots, ok, False))


@triton.jit(do_not_specialize=["num_images", "search_steps"])
def resample_patchify_kernel(
    meta_ptr,
    inter_ptr,
    table_ptr,
    out_ptr,
    num_images,
    search_steps,
    CHANNELS: tl.constexpr,
    PATCH: tl.constexpr,
    MERGE: tl.constexpr,
    TEMPORAL: tl.constexpr,
    ROWS: tl.constexpr,
    PATCH_POW2: tl.constexpr,
):
    """``ROWS`` pixel_values rows (patches) of one image, every channel and temporal slot."""
    meta, tile = find_tile(meta_ptr, num_images, search_steps, META_SECOND_TILE)
    out_height = tl.load(meta + META_OUT_HEIGHT).to(tl.int32)
    out_width = tl.load(meta + META_OUT_WIDTH).to(tl.int32)
    plan, plan_stride, taps, precision, vertical, last = load_axis_pass(meta, META_SECOND_PLAN)
    slot_begin = tl.load(meta + META_SLOT_BEGIN).to(tl.int32)
    slot_count = tl.load(meta + META_SLOT_COUNT).to(tl.int32)
    inter_height = tl.load(meta + META_INTER_HEIGHT).to(tl.int32)
    if inter_height > 0:  # pass 1 wrote this image's planes into the intermediate buffer
        pitch = tl.load(meta + META_INTER_PITCH).to(tl.int32)
        src = inter_ptr + tl.load(meta + META_INTER_OFFSET)
        row_stride = pitch
        col_stride = pitch * 0 + 1
        chan_stride = pitch * inter_height
        shift = tl.load(meta + META_ROW_LO).to(tl.int32)  # its row 0 is source row row_lo
    else:
        src, row_stride, col_stride, chan_stride = load_source(meta)
        shift = row_stride * 0

    # Patch (ph, pw) of each row, inverting row = ((bh * blocks_per_row + bw) * M + mh) * M + mw.
    # Rows past the image compute a copy of its last row (the stores are masked).
    grid_w = out_width // PATCH
    num_rows = (out_height // PATCH) * grid_w
    row_id = tile * ROWS + tl.arange(0, ROWS)
    row = tl.minimum(row_id, num_rows - 1)
    block = row // (MERGE * MERGE)
    inside = row % (MERGE * MERGE)
    blocks_per_row = grid_w // MERGE
    ph = (block // blocks_per_row) * MERGE + inside // MERGE
    pw = (block % blocks_per_row) * MERGE + inside % MERGE

    # Tile [ROWS, y, x]; the padding lanes (PATCH <= i < PATCH_POW2) read clamped pixels.
    ys = tl.arange(0, PATCH_POW2)
    xs = tl.arange(0, PATCH_POW2)
    py = tl.minimum(ph[:, None, None] * PATCH + ys[None, :, None], out_height - 1)  # [ROWS, y, 1]
    px = tl.minimum(pw[:, None, None] * PATCH + xs[None, None, :], out_width - 1)  # [ROWS, 1, x]
    acc0 = tl.zeros([ROWS, PATCH_POW2, PATCH_POW2], tl.int32) + (1 << (precision - 1))
    acc1 = acc0
    acc2 = acc0
    acc3 = acc0
    if vertical != 0:
        plan_y = plan + py * plan_stride  # one plan row per pixel row
        start_y = tl.load(plan_y + PLAN_START)
        cols_y = px * col_stride
        for k in range(taps):
            weight_y = tl.load(plan_y + PLAN_WEIGHTS + k)
            offsets_y = (tl.minimum(start_y + k, last) - shift) * row_stride + cols_y
            acc0, acc1, acc2, acc3 = accumulate_tap(
                src, chan_stride, offsets_y, weight_y, acc0, acc1, acc2, acc3, CHANNELS
            )
    else:
        plan_x = plan + px * plan_stride  # one plan row per pixel column
        start_x = tl.load(plan_x + PLAN_START)
        rows_x = (py - shift) * row_stride
        for k in range(taps):
            weight_x = tl.load(plan_x + PLAN_WEIGHTS + k)
            offsets_x = rows_x + tl.minimum(start_x + k, last) * col_stride
            acc0, acc1, acc2, acc3 = accumulate_tap(
                src, chan_stride, offsets_x, weight_x, acc0, acc1, acc2, acc3, CHANNELS
            )

    # int64 only for the tile's first row: the whole output can pass 2**31 elements.
    row_elements = CHANNELS * TEMPORAL * PATCH * PATCH
    out_rows = out_ptr + (tl.load(meta + META_OUT_ROW) + tile * ROWS) * row_elements
    local = (tl.arange(0, ROWS) * row_elements)[:, None, None] + (ys * PATCH)[None, :, None] + xs[None, None, :]
    out = out_rows + local
    ok = (row_id < num_rows)[:, None, None] & (ys < PATCH)[None, :, None] & (xs < PATCH)[None, None, :]
    _store_channel(acc0, precision, table_ptr, out, ok, slot_begin, slot_count, 0, TEMPORAL, PATCH)
    if CHANNELS > 1:
        _store_channel(acc1, precision, table_ptr, out, ok, slot_begin, slot_count, 1, TEMPORAL, PATCH)
    if CHANNELS > 2:
        _store_channel(acc2, precision, table_ptr, out, ok, slot_begin, slot_count, 2, TEMPORAL, PATCH)
    if CHANNELS > 3:
        _store_channel(acc3, precision, table_ptr, out, ok, slot_begin, slot_count, 3, TEMPORAL, PATCH)


def resample_patchify(
    meta: torch.Tensor,
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
    """Launch the pass over ``num_tiles`` tiles of the ``num_images`` metadata rows."""
    resample_patchify_kernel[(num_tiles,)](
        meta,
        intermediate,
        table,
        out,
        num_images,
        max(num_images - 1, 0).bit_length(),
        CHANNELS=table.shape[0],
        PATCH=patch_size,
        MERGE=merge_size,
        TEMPORAL=temporal_patch_size,
        ROWS=rows_per_tile,
        PATCH_POW2=triton.next_power_of_2(patch_size),
        num_warps=num_warps,
        **COMPILE_OPTIONS,
    )
