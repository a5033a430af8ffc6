"""Rows of a table (a ``datasets`` batch, a Ray Data batch) with one image or a list of images per row, to
per-row arrays: what both data-pipeline integrations return.

Per row, with ``k`` images (``k = 1`` for a row holding one image):

======================  ========================================  =============================================
column                  shape, dtype                              what
======================  ========================================  =============================================
``pixel_values``        ``(sum(t*h*w), C*T*P*P)`` float32 [#]_    the row's images' patch rows, in order
``image_grid_thw``      ``(k, 3)`` int64                          each image's grid, as the stock's
``num_image_tokens``    ``(k,)`` int64                            ``t*h*w / merge_size**2`` per image
``original_sizes``      ``(k, 2)`` int64                          ``(height, width)`` as decoded
``resized_sizes``       ``(k, 2)`` int64                          ``(height, width)`` the model sees
======================  ========================================  =============================================

.. [#] the call's ``dtype``; with ``compact=True`` uint8 ``(sum(h*w), C*P*P)`` (8x fewer bytes; the stock
   ``pixel_values`` come back with :func:`vlfast.expand_patches`).

Concatenating the rows' ``pixel_values`` and ``image_grid_thw`` gives what the stock processor returns for
the whole batch (:func:`collate`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import InvalidImageError
from ..io import ImageSource
from ..preprocess import Preprocessed, preprocess

__all__ = ["OUTPUT_COLUMNS", "collate", "preprocess_rows", "row_source"]

#: The columns :func:`preprocess_rows` adds, in order.
OUTPUT_COLUMNS = ("pixel_values", "image_grid_thw", "num_image_tokens", "original_sizes", "resized_sizes")


def row_source(entry: Any) -> ImageSource:
    """One image as a table holds it: a ``datasets`` ``Image`` feature undecoded (``{"bytes", "path"}``: the
    bytes, else the path), a NumPy array of encoded bytes (``read_binary_files``), or as it is."""
    if isinstance(entry, Mapping):
        if entry.get("bytes") is not None:
            return entry["bytes"]
        if entry.get("path") is not None:
            return os.fspath(entry["path"])
        raise InvalidImageError(f"an image entry needs 'bytes' or a 'path', got keys {sorted(entry)}")
    if isinstance(entry, np.ndarray) and entry.dtype == object and entry.ndim == 0:
        return row_source(entry.item())
    return entry


def _row_images(entry: Any) -> list[ImageSource]:
    if isinstance(entry, (list, tuple)) or (isinstance(entry, np.ndarray) and entry.dtype == object and entry.ndim):
        return [row_source(item) for item in entry]
    return [row_source(entry)]


def preprocess_rows(entries: Sequence[Any], *, host: bool = False, **options: Any) -> dict[str, list[torch.Tensor]]:
    """:func:`vlfast.preprocess` of every image of ``entries`` (one per row, or a list per row) in one call,
    split back into rows (``pixel_values`` rows are views of the one output, copied to the host first when
    ``host``). ``options`` are :func:`vlfast.preprocess`'s (``backend``, ``workers``, ``compact``, ``dtype``...)."""
    per_row = [_row_images(entry) for entry in entries]
    counts = [len(images) for images in per_row]
    if not per_row:
        return {name: [] for name in OUTPUT_COLUMNS}
    result: Preprocessed = preprocess([image for images in per_row for image in images], **options)
    grids = result.image_grid_thw
    image_rows = grids.prod(dim=1)
    merge = int(options.get("merge_size", 2))
    tokens = image_rows // (merge * merge)
    original = torch.tensor(result.original_sizes, dtype=torch.int64).reshape(-1, 2)
    resized = torch.tensor(result.resized_sizes, dtype=torch.int64).reshape(-1, 2)
    row_lengths = [int(part.sum()) for part in torch.split(image_rows, counts)]
    pixel_values = result.pixel_values.cpu() if host else result.pixel_values
    return {
        "pixel_values": list(torch.split(pixel_values, row_lengths)),
        "image_grid_thw": list(torch.split(grids, counts)),
        "num_image_tokens": list(torch.split(tokens, counts)),
        "original_sizes": list(torch.split(original, counts)),
        "resized_sizes": list(torch.split(resized, counts)),
    }


def _pixel_values(rows: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    pixel_values = torch.cat([torch.as_tensor(row["pixel_values"]) for row in rows])
    if pixel_values.dtype.is_floating_point or pixel_values.dtype == torch.uint8:
        return pixel_values
    # Integer pixel values are uint8 (compact patches, or no rescale and normalize) that a table format widened:
    # datasets' numpy and torch formats give every integer column as int64.
    if pixel_values.numel() and (int(pixel_values.min()) < 0 or int(pixel_values.max()) > 255):
        raise InvalidImageError(f"integer pixel_values must hold uint8 values, got {pixel_values.dtype} outside 0-255")
    return pixel_values.to(torch.uint8)


def collate(rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """Rows with :data:`OUTPUT_COLUMNS` (tensors or arrays) to one model input: ``pixel_values`` and
    ``image_grid_thw`` concatenated as the stock processor returns them for those images (integer
    ``pixel_values``, widened by a table format, come back as uint8)."""
    if not rows:
        raise InvalidImageError("no rows to collate")
    return {
        "pixel_values": _pixel_values(rows),
        "image_grid_thw": torch.cat([torch.as_tensor(row["image_grid_thw"]).reshape(-1, 3) for row in rows]),
    }
