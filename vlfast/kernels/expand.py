"""Triton op: compact uint8 patches -> ``pixel_values``, a table lookup and the temporal copies.

``compact`` holds one ``C * PATCH * PATCH`` row of resized uint8 values per patch (column
``c * PATCH**2 + j``); output column ``(c * T + t) * PATCH**2 + j`` of the same row gets
``table[c, compact[row, c * PATCH**2 + j]]`` for every temporal slot ``t``. Floats are only
copied from the table, so the result is the stock ``pixel_values`` bit for bit.
"""

import torch
import triton
import triton.language as tl

from . import COMPILE_OPTIONS, TABLE_ROW

#: Output elements per program, and its warps.
BLOCK = 1024
NUM_WARPS = 4


@triton.jit
def expand_kernel(
    src_ptr,
    table_ptr,
    out_ptr,
    total,
    CHANNELS: tl.constexpr,
    TEMPORAL: tl.constexpr,
    PATCH_AREA: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
):
    """``BLOCK_SIZE`` consecutive output elements."""
    element = tl.program_id(0).to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    ok = element < total
    row = element // (CHANNELS * TEMPORAL * PATCH_AREA)
    column = element % (CHANNELS * TEMPORAL * PATCH_AREA)
    channel = column // (TEMPORAL * PATCH_AREA)
    pixel = column % PATCH_AREA
    value = tl.load(src_ptr + row * (CHANNELS * PATCH_AREA) + channel * PATCH_AREA + pixel, mask=ok, other=0)
    tl.store(out_ptr + element, tl.load(table_ptr + channel * TABLE_ROW + value.to(tl.int32), mask=ok), mask=ok)


def expand(compact: torch.Tensor, table: torch.Tensor, out: torch.Tensor, temporal_patch_size: int) -> None:
    """Fill ``out`` ``(rows, C * T * P**2)`` from ``compact`` ``(rows, C * P**2)`` on their device."""
    total = out.numel()
    channels = table.shape[0]
    expand_kernel[(triton.cdiv(total, BLOCK),)](
        compact,
        table,
        out,
        total,
        CHANNELS=channels,
        TEMPORAL=temporal_patch_size,
        PATCH_AREA=compact.shape[1] // channels,
        BLOCK_SIZE=BLOCK,
        num_warps=NUM_WARPS,
        **COMPILE_OPTIONS,
    )
