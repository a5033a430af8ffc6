"""Triton kernels of the exact resize -> normalize -> patchify pipeline, and the schema they share.

- :mod:`.resample_pass`: the first axis pass of the images whose both axes change size,
  uint8 -> uint8, into a planar intermediate buffer with 16-byte aligned rows.
- :mod:`.resample_patchify`: the last (or only) axis pass fused with the table lookup, the
  temporal copies and the patch-layout write.
- :mod:`.batch`: the host side (concatenated plans, the per-image metadata, block sizes).

Each axis plan is an int32 table on the device, one row per output pixel:
``[start, count, weight_0, ..., weight_{taps-1}]`` (weights are zero past ``count``). Both
kernels read the same int64 *metadata table*, one row of ``META_FIELDS`` per image (or video frame), whose
columns are the ``META_*`` constants below. A program finds its image with
:func:`find_tile`. Importing this package imports triton.
"""

import triton
import triton.language as tl

from ..tables import TABLE_SIZE

# Columns of a plan-table row. One row holds everything one output pixel needs, so a pixel
# touches one small stretch of memory instead of three arrays.
PLAN_START = tl.constexpr(0)
PLAN_COUNT = tl.constexpr(1)
PLAN_WEIGHTS = tl.constexpr(2)

# Columns of a metadata row (int64: addresses and offsets into the shared buffers need it).
META_FIRST_TILE = tl.constexpr(0)  # first pass-1 program of the image (an image without pass 1 owns none)
META_SECOND_TILE = tl.constexpr(1)  # first pass-2 program of the image
META_SRC = tl.constexpr(2)  # address of the source's first byte: each image is its own tensor
META_SRC_ROW_STRIDE = tl.constexpr(3)  # source strides in bytes: HWC, CHW and views alike
META_SRC_COL_STRIDE = tl.constexpr(4)
META_SRC_CHAN_STRIDE = tl.constexpr(5)
META_ROW_LO = tl.constexpr(6)  # first source row pass 1 reads (a horizontal pass 1 skips unread rows)
META_INTER_HEIGHT = tl.constexpr(7)  # pass-1 output (intermediate) rows; 0: the image has no pass 1
META_INTER_WIDTH = tl.constexpr(8)
META_INTER_PITCH = tl.constexpr(9)  # intermediate row stride: a multiple of pass 1's tile width and of 16
META_INTER_OFFSET = tl.constexpr(10)  # byte offset of the image's planes in the intermediate buffer
META_FIRST_PLAN = tl.constexpr(11)  # address of pass 1's axis plan table (int32 rows)
META_FIRST_PLAN_STRIDE = tl.constexpr(12)  # its row length: 2 + taps
META_FIRST_TAPS = tl.constexpr(13)  # the tap loop's trip count
META_FIRST_PRECISION = tl.constexpr(14)
META_FIRST_VERTICAL = tl.constexpr(15)  # 1: pass 1 resamples the height, 0: the width
META_FIRST_LAST = tl.constexpr(16)  # last source index along pass 1's axis (taps are clamped to it)
META_SECOND_PLAN = tl.constexpr(17)
META_SECOND_PLAN_STRIDE = tl.constexpr(18)
META_SECOND_TAPS = tl.constexpr(19)
META_SECOND_PRECISION = tl.constexpr(20)
META_SECOND_VERTICAL = tl.constexpr(21)
META_SECOND_LAST = tl.constexpr(22)  # last index pass 2 may read along its axis (plan coordinates)
META_OUT_HEIGHT = tl.constexpr(23)  # the model-input size of the image, in pixels
META_OUT_WIDTH = tl.constexpr(24)
META_OUT_ROW = tl.constexpr(25)  # first pixel_values row of the image
META_SLOT_BEGIN = tl.constexpr(26)  # temporal slots written: a still image all T, a video frame one
META_SLOT_COUNT = tl.constexpr(27)
META_FIELDS = tl.constexpr(28)

# The table has one row of TABLE_SIZE entries per channel: table[c, v] is written for value v.
TABLE_ROW = tl.constexpr(TABLE_SIZE)

#: Compile options of every launch. The kernels do no floating-point arithmetic (floats are only copied
#: from the table), so fusing multiplies and adds changes nothing in them; the option is given all the
#: same, since triton 3.9 warns (once a process) where it is left to the default, which 3.10 turns off.
COMPILE_OPTIONS = {"enable_fp_fusion": False}

# Limits of the kernels, checked on the host before a launch.
INT32_LIMIT = 2**31  # offsets inside one frame or intermediate image are int32 (bases are int64)
MAX_CHANNELS = 4  # channel accumulators sharing one pass over the taps (and one load of each weight)


@triton.jit
def find_tile(meta_ptr, num_images, search_steps, TILE_COLUMN: tl.constexpr):
    """This program's image and its tile index in that image: ``(meta row pointer, tile)``.

    A binary search over the images' first tile ids (column ``TILE_COLUMN``) for the last row whose
    first tile is ``<= program``, so images that own no tiles (same first id as the next image) are
    skipped. The host would otherwise upload one entry per program, which for a batch of 4K images is
    megabytes per call.
    """
    program = tl.program_id(0)
    low = program * 0
    high = low + num_images
    for _ in range(search_steps):
        middle = (low + high) // 2
        begins_before = tl.load(meta_ptr + middle * META_FIELDS + TILE_COLUMN) <= program
        low = tl.where(begins_before, middle, low)
        high = tl.where(begins_before, high, middle)
    meta = meta_ptr + low * META_FIELDS
    return meta, program - tl.load(meta + TILE_COLUMN).to(tl.int32)


@triton.jit
def load_source(meta):
    """The source's address and its row, column and channel strides in bytes (``META_SRC..``)."""
    src = tl.load(meta + META_SRC).to(tl.pointer_type(tl.uint8))
    row_stride = tl.load(meta + META_SRC_ROW_STRIDE).to(tl.int32)
    col_stride = tl.load(meta + META_SRC_COL_STRIDE).to(tl.int32)
    chan_stride = tl.load(meta + META_SRC_CHAN_STRIDE).to(tl.int32)
    return src, row_stride, col_stride, chan_stride


@triton.jit
def load_axis_pass(meta, PLAN_COLUMN: tl.constexpr):
    """One axis pass's fields, stored from ``PLAN_COLUMN`` (``META_FIRST_PLAN`` or ``META_SECOND_PLAN``) in
    the same order: its plan table, row length, tap count, precision, direction (1: vertical) and the
    last index it may read."""
    plan = tl.load(meta + PLAN_COLUMN).to(tl.pointer_type(tl.int32))
    plan_stride = tl.load(meta + PLAN_COLUMN + 1).to(tl.int32)
    taps = tl.load(meta + PLAN_COLUMN + 2).to(tl.int32)
    precision = tl.load(meta + PLAN_COLUMN + 3).to(tl.int32)
    vertical = tl.load(meta + PLAN_COLUMN + 4)
    last = tl.load(meta + PLAN_COLUMN + 5).to(tl.int32)
    return plan, plan_stride, taps, precision, vertical, last


@triton.jit
def accumulate_tap(src, chan_stride, offsets, weight, acc0, acc1, acc2, acc3, CHANNELS: tl.constexpr):
    """Add one tap to the accumulators of up to four channels: ``acc_c += src[c * chan_stride +
    offsets] * weight``, every offset in bounds (taps past a pixel's count are clamped, weight 0)."""
    acc0 += tl.load(src + offsets).to(tl.int32) * weight
    if CHANNELS > 1:
        acc1 += tl.load(src + chan_stride + offsets).to(tl.int32) * weight
    if CHANNELS > 2:
        acc2 += tl.load(src + 2 * chan_stride + offsets).to(tl.int32) * weight
    if CHANNELS > 3:
        acc3 += tl.load(src + 3 * chan_stride + offsets).to(tl.int32) * weight
    return acc0, acc1, acc2, acc3
