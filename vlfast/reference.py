"""A naive NumPy executor of plans, tables and the patch layout.

Slow and obviously correct: it is what the tests hold the C++ and Triton kernels to,
alongside the stock processors themselves.
"""

from __future__ import annotations

import numpy as np

from .layout import patchify_reference
from .plans import AxisPlan, ResamplePlan

__all__ = ["apply_axis", "resize_reference", "preprocess_reference"]


def apply_axis(image: np.ndarray, plan: AxisPlan, axis: int) -> np.ndarray:
    """Resample ``image`` (uint8, HWC) along ``axis`` (0: rows, 1: columns) with ``plan``."""
    src = np.moveaxis(image.astype(np.int64), axis, 0)
    out = np.empty((plan.out_size,) + src.shape[1:], dtype=np.int64)
    bias = 1 << (plan.precision - 1)
    for i in range(plan.out_size):
        start, count = int(plan.starts[i]), int(plan.counts[i])
        taps = plan.weights[i, :count].astype(np.int64)
        acc = bias + np.tensordot(taps, src[start : start + count], axes=(0, 0))
        out[i] = np.clip(acc >> plan.precision, 0, 255)
    return np.moveaxis(out, 0, axis).astype(np.uint8)


def resize_reference(image: np.ndarray, plan: ResamplePlan) -> np.ndarray:
    """Both passes of ``plan`` on an ``(H, W, C)`` uint8 image, uint8 in between."""
    passes = [(plan.horizontal, 1), (plan.vertical, 0)]
    if plan.vertical_first:
        passes.reverse()
    for axis_plan, axis in passes:
        if axis_plan is not None:
            image = apply_axis(image, axis_plan, axis)
    return image


def preprocess_reference(
    image: np.ndarray,
    plan: ResamplePlan,
    table: np.ndarray,
    patch_size: int,
    merge_size: int,
    temporal_patch_size: int,
) -> np.ndarray:
    """Resize, look up ``table[c, value]`` and lay out patches: the rows of one image."""
    resized = resize_reference(image, plan)
    channels = np.arange(resized.shape[2])
    normalized = table[channels[None, None, :], resized]  # (H, W, C)
    return patchify_reference(np.moveaxis(normalized, -1, 0), patch_size, merge_size, temporal_patch_size)
