"""Triton op: the first axis pass of a batch, uint8 -> uint8, in one launch.

Each image whose both axes change size resamples one axis of its source (any strides, so
HWC and CHW alike) into its slice of a shared planar ``(C, H, pitch)`` uint8 intermediate::

    acc = (1 << (precision - 1)) + sum(src[start + k] * weight[k] for k < taps)
    out = clamp(acc >> precision, 0, 255)

A program writes one ``BLOCK_ROWS x BLOCK_COLS`` tile of pixels, every channel: the plan is
loaded once per row (vertical) or column (horizontal) and shared by the channels, taps past a
pixel's count (weight 0) read a clamped, valid index instead of being masked, and the rows of
the intermediate are padded to whole tiles, so stores need no column mask.
"""

import torch
import triton
import triton.language as tl

from . import (
    COMPILE_OPTIONS,
    META_FIRST_PLAN,
    META_FIRST_TILE,
    META_INTER_HEIGHT,
    META_INTER_OFFSET,
    META_INTER_PITCH,
    META_INTER_WIDTH,
    META_ROW_LO,
    PLAN_START,
    PLAN_WEIGHTS,
    accumulate_tap,
    find_tile,
    load_axis_pass,
    load_source,
)


@triton.jit
def _store(acc, precision, dst, ok):
    tl.store(dst, tl.minimum(tl.maximum(acc >> precision, 0), 255).to(tl.uint8), mask=ok)


@triton.jit(do_not_specialize=["num_images", "search_steps"])
def resample_pass_kernel(
    meta_ptr,
    inter_ptr,
    num_images,
    search_steps,
    CHANNELS: tl.constexpr,
    BLOCK_ROWS: tl.constexpr,
    BLOCK_COLS: tl.constexpr,
    WIDE_STORES: tl.constexpr,
):
    """One ``BLOCK_ROWS x BLOCK_COLS`` pixel tile of one image's intermediate, all channels."""
    meta, tile = find_tile(meta_ptr, num_images, search_steps, META_FIRST_TILE)
    src, row_stride, col_stride, chan_stride = load_source(meta)
    row_lo = tl.load(meta + META_ROW_LO).to(tl.int32)
    height = tl.load(meta + META_INTER_HEIGHT).to(tl.int32)
    width = tl.load(meta + META_INTER_WIDTH).to(tl.int32)
    pitch = tl.load(meta + META_INTER_PITCH).to(tl.int32)
    offset = tl.load(meta + META_INTER_OFFSET)
    if WIDE_STORES:
        # Known 16-byte alignment lets the compiler store 8-16 bytes per thread; its layout then
        # gives each thread consecutive pixels, which spreads each warp's tap loads over many cache
        # lines. Measured slower on an H200 (byte loads dominate), so off by default.
        pitch = tl.multiple_of(pitch, 16)
        offset = tl.multiple_of(offset, 16)
    dst = inter_ptr + offset
    plan, plan_stride, taps, precision, vertical, last = load_axis_pass(meta, META_FIRST_PLAN)

    col_blocks = pitch // BLOCK_COLS
    ys = (tile // col_blocks) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    xs = (tile % col_blocks) * BLOCK_COLS + tl.arange(0, BLOCK_COLS)
    # Rows past the image and the padding columns compute a copy of the last pixel; only the
    # rows are masked at the store (the padding is the image's own, and never read).
    y = tl.minimum(ys, height - 1)
    x = tl.minimum(xs, width - 1)
    acc0 = tl.zeros([BLOCK_ROWS, BLOCK_COLS], tl.int32) + (1 << (precision - 1))
    acc1 = acc0
    acc2 = acc0
    acc3 = acc0
    if vertical != 0:
        plan_y = plan + y * plan_stride  # one plan row per output row
        start_y = tl.load(plan_y + PLAN_START)
        cols_y = (x * col_stride)[None, :]
        for k in range(taps):
            weight_y = tl.load(plan_y + PLAN_WEIGHTS + k)[:, None]
            offsets_y = (tl.minimum(start_y + k, last) * row_stride)[:, None] + cols_y
            acc0, acc1, acc2, acc3 = accumulate_tap(
                src, chan_stride, offsets_y, weight_y, acc0, acc1, acc2, acc3, CHANNELS
            )
    else:
        plan_x = plan + x * plan_stride  # one plan row per output column
        start_x = tl.load(plan_x + PLAN_START)
        rows_x = ((y + row_lo) * row_stride)[:, None]
        for k in range(taps):
            weight_x = tl.load(plan_x + PLAN_WEIGHTS + k)[None, :]
            offsets_x = rows_x + (tl.minimum(start_x + k, last) * col_stride)[None, :]
            acc0, acc1, acc2, acc3 = accumulate_tap(
                src, chan_stride, offsets_x, weight_x, acc0, acc1, acc2, acc3, CHANNELS
            )

    plane = pitch * height
    out = dst + ys[:, None] * pitch + xs[None, :]
    ok = (ys < height)[:, None]  # constant along the row: stores may be vectorized
    _store(acc0, precision, out, ok)
    if CHANNELS > 1:
        _store(acc1, precision, out + plane, ok)
    if CHANNELS > 2:
        _store(acc2, precision, out + 2 * plane, ok)
    if CHANNELS > 3:
        _store(acc3, precision, out + 3 * plane, ok)


def resample_pass(
    meta: torch.Tensor,
    intermediate: torch.Tensor,
    num_images: int,
    num_tiles: int,
    *,
    channels: int,
    block_rows: int,
    block_cols: int,
    wide_stores: bool,
    num_warps: int,
) -> None:
    """Launch the pass over ``num_tiles`` tiles of the ``num_images`` metadata rows."""
    resample_pass_kernel[(num_tiles,)](
        meta,
        intermediate,
        num_images,
        max(num_images - 1, 0).bit_length(),
        CHANNELS=channels,
        BLOCK_ROWS=block_rows,
        BLOCK_COLS=block_cols,
        WIDE_STORES=wide_stores,
        num_warps=num_warps,
        **COMPILE_OPTIONS,
    )
