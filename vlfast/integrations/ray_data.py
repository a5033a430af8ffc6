"""Ray Data: vlfast as a callable class for ``Dataset.map_batches``, on CPU actors or GPU actors.

::

    import ray
    from vlfast.integrations.ray_data import VlfastPreprocessor

    dataset = ray.data.read_binary_files("s3://bucket/images/", include_paths=True)  # encoded bytes
    processed = dataset.map_batches(
        VlfastPreprocessor,
        fn_constructor_kwargs={"column": "bytes", "backend": "torchvision", "compact": True},
        batch_format="numpy",
        batch_size=32,
        num_cpus=4,        # each actor decodes on these 4 cores (workers) and runs the C++ kernel on them
        concurrency=8,     # actors
    )
    # GPU actors: fn_constructor_kwargs={..., "device": "cuda"}, num_gpus=1 (Triton kernels; decoding on the CPUs)

Each output row holds the columns of :mod:`vlfast.integrations.rows` as NumPy arrays (Ray stores these ragged
per-row arrays as variable-shaped tensor columns): ``pixel_values`` ``(rows_i, 1176)`` float32 (uint8
``(rows_i, 588)`` with ``compact=True``: 8x less object-store memory; :func:`vlfast.expand_patches` gives
the stock ``pixel_values`` where the model runs), ``image_grid_thw`` ``(k, 3)``, ``num_image_tokens``
``(k,)``, ``original_sizes`` and ``resized_sizes`` ``(k, 2)``; the batch's other columns pass through.

Inputs, per row: encoded bytes (``read_binary_files``' ``bytes``, a ``read_parquet`` binary column) or a path,
decoded exactly as the stock processor of ``backend`` decodes the same file; or a decoded array
(``read_images``' ``image``: Ray decoded it with Pillow, and vlfast gives the stock's result for that array).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..defaults import PILLOW_BLOCKS_PER_DECODE_THREAD
from ..errors import UnsupportedOptionError
from ..io import cache_pillow_blocks
from ..loader import check_workers, default_workers
from .rows import OUTPUT_COLUMNS, preprocess_rows

__all__ = ["VlfastPreprocessor", "actor_cpus"]


def actor_cpus() -> int:
    """The CPUs Ray assigned to the calling actor or task (rounded up), or the cores outside Ray."""
    try:
        import ray

        if ray.is_initialized():
            assigned = ray.get_runtime_context().get_assigned_resources().get("CPU")
            if assigned:
                return max(1, math.ceil(assigned))
    except ImportError:
        pass
    return default_workers()


class VlfastPreprocessor:
    """A ``map_batches`` callable: the images in ``column`` of a NumPy batch to vlfast's per-row arrays.

    Args:
        column: the column holding one image (or a list of images) per row.
        keep_column: keep ``column`` in the output (by default dropped: the pixels replace it).
        workers: decode threads; default: the CPUs Ray gave this actor (``num_cpus``). The process that runs the
            calls decodes image after image, so there Pillow keeps freed image memory for the next decodes
            (:func:`vlfast.io.cache_pillow_blocks`, a few blocks per thread, unless ``PILLOW_BLOCKS_MAX`` is set).
        options: :func:`vlfast.preprocess`'s (``backend``, ``compact``, ``device``, ``dtype``, ``engine``,
            ``min_pixels``, ``max_pixels``...). ``dtype`` must have a NumPy form (not bfloat16: use
            ``compact=True`` and expand to bfloat16 on the model's device).
    """

    def __init__(
        self, column: str = "image", *, keep_column: bool = False, workers: int | None = None, **options: Any
    ) -> None:
        if options.get("dtype") in (torch.bfloat16, "bfloat16"):
            raise UnsupportedOptionError(
                "Ray stores NumPy arrays and NumPy has no bfloat16: use compact=True (uint8) and "
                "vlfast.expand_patches(..., dtype=torch.bfloat16) on the model's device, or dtype float32/float16"
            )
        self.column = column
        self.keep_column = keep_column
        self.options = {**options, "workers": workers if workers is not None else actor_cpus()}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        # in the process that decodes (an instance handed to map_batches is unpickled in each task's)
        cache_pillow_blocks(PILLOW_BLOCKS_PER_DECODE_THREAD * check_workers(self.options["workers"]))
        rows = preprocess_rows(list(batch[self.column]), host=True, **self.options)
        out: dict[str, Any] = {
            name: values for name, values in batch.items() if self.keep_column or name != self.column
        }
        for name in OUTPUT_COLUMNS:
            out[name] = [value.numpy() for value in rows[name]]
        return out
