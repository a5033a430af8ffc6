"""Triton op: the first axis pass of a batch, uint8 -> uint8, in one launch.

Each image resamples one axis of its source (any strides, so HWC and CHW alike) into its
slice of a shared planar ``(C, H, W)`` uint8 intermediate buffer::

    acc = (1 << (precision - 1)) + sum(src[start + k] * weight[k] for k < count)
    out = clamp(acc >> precision, 0, 255)

A program writes one ``BLOCK_ROWS x BLOCK_COLS`` tile of the intermediate, whose rows are
the ``C * H`` plane rows (channel-major) so that every store is a contiguous run.
"""

import torch
import triton
import triton.language as tl

from . import PLAN_COUNT, PLAN_START, PLAN_WEIGHTS, find_image

# Fields of one row of the int64 metadata table, one row per image, built by
# ``vlfast.kernels.batch``. int64 because addresses and offsets into the shared buffer need it.
TILE_BEGIN = tl.constexpr(0)  # first program id of the image; rows are sorted by it
SRC_ADDR = tl.constexpr(1)  # address of the source's first byte: each image is its own tensor
SRC_ROW_STRIDE = tl.constexpr(2)  # source strides in bytes, which covers HWC, CHW and views
SRC_COL_STRIDE = tl.constexpr(3)
SRC_CHAN_STRIDE = tl.constexpr(4)
SRC_ROW_LO = tl.constexpr(5)  # first source row read: a horizontal pass skips rows nobody reads
HEIGHT = tl.constexpr(6)  # intermediate plane size of the image
WIDTH = tl.constexpr(7)
INTER_OFFSET = tl.constexpr(8)  # element offset of the image's planes in the shared buffer
PLAN_ROW = tl.constexpr(9)  # plan-table row of output pixel 0 of the axis
TAPS = tl.constexpr(10)  # width of the axis's weights: the tap loop's trip count
PRECISION = tl.constexpr(11)
VERTICAL = tl.constexpr(12)  # 1: resample along the height, 0: along the width
FIELDS = tl.constexpr(13)


@triton.jit(do_not_specialize=["num_images", "search_steps"])
def resample_pass_kernel(
    meta_ptr,
    plan_ptr,
    inter_ptr,
    num_images,
    search_steps,
    plan_stride,
    CHANNELS: tl.constexpr,
    BLOCK_ROWS: tl.constexpr,
    BLOCK_COLS: tl.constexpr,
):
    """One ``BLOCK_ROWS x BLOCK_COLS`` tile of one image's planar intermediate."""
    program = tl.program_id(0)
    meta = meta_ptr + find_image(meta_ptr, program, num_images, search_steps, FIELDS, TILE_BEGIN) * FIELDS
    tile = program - tl.load(meta + TILE_BEGIN).to(tl.int32)
    src = tl.load(meta + SRC_ADDR).to(tl.pointer_type(tl.uint8))
    row_stride = tl.load(meta + SRC_ROW_STRIDE).to(tl.int32)
    col_stride = tl.load(meta + SRC_COL_STRIDE).to(tl.int32)
    chan_stride = tl.load(meta + SRC_CHAN_STRIDE).to(tl.int32)
    row_lo = tl.load(meta + SRC_ROW_LO).to(tl.int32)
    height = tl.load(meta + HEIGHT).to(tl.int32)
    width = tl.load(meta + WIDTH).to(tl.int32)
    dst = inter_ptr + tl.load(meta + INTER_OFFSET)
    plan_row = tl.load(meta + PLAN_ROW).to(tl.int32)
    taps = tl.load(meta + TAPS).to(tl.int32)
    precision = tl.load(meta + PRECISION).to(tl.int32)
    vertical = tl.load(meta + VERTICAL).to(tl.int32)

    col_blocks = tl.cdiv(width, BLOCK_COLS)
    rows = (tile // col_blocks) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)  # plane rows: c * height + y
    cols = (tile % col_blocks) * BLOCK_COLS + tl.arange(0, BLOCK_COLS)
    row_ok = rows < CHANNELS * height
    col_ok = cols < width
    ok = row_ok[:, None] & col_ok[None, :]
    channel = rows // height
    y = rows % height

    # The plan depends on y only (vertical) or x only (horizontal): load it per row or per
    # column, not per pixel. The other side's mask is all false, so it contributes zeros.
    plan_y = plan_ptr + (plan_row + y) * plan_stride
    plan_x = plan_ptr + (plan_row + cols) * plan_stride
    load_y = row_ok & (vertical != 0)
    load_x = col_ok & (vertical == 0)
    count = (
        (tl.load(plan_y + PLAN_COUNT, mask=load_y, other=0)[:, None])
        + (tl.load(plan_x + PLAN_COUNT, mask=load_x, other=0)[None, :])
    )
    start = (
        (tl.load(plan_y + PLAN_START, mask=load_y, other=0)[:, None])
        + (tl.load(plan_x + PLAN_START, mask=load_x, other=0)[None, :])
    )
    # Byte offset of tap 0; each further tap is one step along the resampled axis.
    axis_stride = row_stride * vertical + col_stride * (1 - vertical)
    fixed_row = (y + row_lo) * row_stride * (1 - vertical) + channel * chan_stride
    fixed_col = cols * col_stride * vertical
    offsets = fixed_row[:, None] + fixed_col[None, :] + start * axis_stride

    acc = tl.full([BLOCK_ROWS, BLOCK_COLS], 1, tl.int32) << (precision - 1)
    for k in range(taps):
        # Weights are zero past each pixel's count; only the source read must stop there.
        weight = (
            (tl.load(plan_y + PLAN_WEIGHTS + k, mask=load_y, other=0)[:, None])
            + (tl.load(plan_x + PLAN_WEIGHTS + k, mask=load_x, other=0)[None, :])
        )
        pixel = tl.load(src + offsets + k * axis_stride, mask=ok & (k < count), other=0)
        acc += pixel.to(tl.int32) * weight
    value = tl.minimum(tl.maximum(acc >> precision, 0), 255).to(tl.uint8)
    tl.store(dst + rows[:, None] * width + cols[None, :], value, mask=ok)


def resample_pass(
    meta: torch.Tensor,
    plan_table: torch.Tensor,
    intermediate: torch.Tensor,
    num_images: int,
    num_tiles: int,
    *,
    channels: int,
    block_rows: int,
    block_cols: int,
    num_warps: int,
) -> None:
    """Launch the pass for ``num_images`` metadata rows covering ``num_tiles`` tiles."""
    resample_pass_kernel[(num_tiles,)](
        meta,
        plan_table,
        intermediate,
        num_images,
        max(num_images - 1, 0).bit_length(),
        plan_table.shape[1],
        CHANNELS=channels,
        BLOCK_ROWS=block_rows,
        BLOCK_COLS=block_cols,
        num_warps=num_warps,
    )
