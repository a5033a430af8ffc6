"""The Qwen2-VL / Qwen2.5-VL patch layout.

An image of ``C x H x W`` becomes ``grid_h * grid_w`` rows (``grid = size / patch_size``)
of ``C * T * patch_size**2`` columns (``T = temporal_patch_size``):

- rows are block-major over ``merge_size x merge_size`` blocks of patches:
  ``row = ((bh * (grid_w // m) + bw) * m + mh) * m + mw`` for patch ``(bh*m + mh, bw*m + mw)``;
- columns are ``(channel, t, y, x)``: ``col = ((c * T + t) * p + y) * p + x``;
- a still image is repeated over the ``T`` temporal slots.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InvalidImageError

__all__ = ["PatchGrid", "patch_grid", "patchify_reference"]


@dataclass(frozen=True)
class PatchGrid:
    """Grid of one image (or video clip) in patches: ``(t, h, w)`` as in ``image_grid_thw``."""

    t: int
    h: int
    w: int

    @property
    def rows(self) -> int:
        """Number of ``pixel_values`` rows it occupies."""
        return self.t * self.h * self.w


def patch_grid(height: int, width: int, patch_size: int, merge_size: int, t: int = 1) -> PatchGrid:
    """The grid of a resized ``height x width`` image (or clip of ``t`` temporal patches); both sides
    must be multiples of ``patch_size * merge_size``."""
    factor = patch_size * merge_size
    if height % factor or width % factor:
        raise InvalidImageError(
            f"image size {height}x{width} is not a multiple of patch_size*merge_size={factor}; "
            "enable resizing or resize to a multiple first"
        )
    return PatchGrid(t, height // patch_size, width // patch_size)


def patchify_reference(image_chw: np.ndarray, patch_size: int, merge_size: int, temporal_patch_size: int) -> np.ndarray:
    """The rows of one still image ``(C, H, W)``, with NumPy reshapes (the reference layout)."""
    channels, height, width = image_chw.shape
    grid = patch_grid(height, width, patch_size, merge_size)
    m, p = merge_size, patch_size
    blocks = image_chw.reshape(channels, grid.h // m, m, p, grid.w // m, m, p)
    blocks = blocks.transpose(1, 4, 2, 5, 0, 3, 6)  # (bh, bw, mh, mw, C, y, x)
    blocks = np.broadcast_to(blocks[:, :, :, :, :, None], blocks.shape[:5] + (temporal_patch_size,) + blocks.shape[5:])
    return blocks.reshape(grid.h * grid.w, channels * temporal_patch_size * p * p)
