"""Triton kernels of the exact resize -> normalize -> patchify pipeline, and what they share.

- :mod:`.resample_pass`: one uint8 -> uint8 axis pass into a planar intermediate buffer.
- :mod:`.resample_patchify`: the last axis pass fused with the table lookup, the temporal
  copies and the patch-layout write.
- :mod:`.batch`: the host side (concatenated plans, per-image metadata, block sizes).

Both kernels read the same int32 *plan table*, one row per output pixel of an axis plan:
``[start, count, weight_0, ..., weight_{taps-1}]`` (weights are zero past ``count``), and
find their image the same way (:func:`find_image`). Importing this package imports triton.
"""

import triton
import triton.language as tl

# Columns of a plan-table row. One row holds everything one output pixel needs, so a pixel
# touches one small stretch of memory instead of three arrays.
PLAN_START = tl.constexpr(0)
PLAN_COUNT = tl.constexpr(1)
PLAN_WEIGHTS = tl.constexpr(2)


@triton.jit
def find_image(meta_ptr, program, num_images, search_steps, FIELDS: tl.constexpr, TILE_BEGIN: tl.constexpr):
    """The image whose tiles contain ``program``: a binary search over the images' first tile ids.

    The host would otherwise have to upload one (image, tile) entry per program, which for a
    batch of 4K images is megabytes per call; the first-tile column is one entry per image.
    """
    low = program * 0
    high = low + num_images
    for _ in range(search_steps):
        middle = (low + high) // 2
        begins_before = tl.load(meta_ptr + middle * FIELDS + TILE_BEGIN) <= program
        low = tl.where(begins_before, middle, low)
        high = tl.where(begins_before, high, middle)
    return low
