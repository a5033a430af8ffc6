"""Hugging Face ``datasets``: vlfast as a transform on access (``set_transform``) or stored (``map``).

::

    import datasets
    from vlfast.integrations import hf_datasets

    dataset = hf_datasets.undecoded(dataset, "image")  # vlfast decodes the file bytes, as the stock does
    dataset.set_transform(hf_datasets.image_transform("image", backend="torchvision"))
    dataset[0:8]["pixel_values"]  # 8 tensors (rows_i, 1176), the stock's rows of each image

    stored = hf_datasets.preprocess_dataset(dataset, "image", compact=True)  # uint8 patches in Arrow

Each example gets the columns of :mod:`vlfast.integrations.rows` (``pixel_values``, ``image_grid_thw``,
``num_image_tokens``, ``original_sizes``, ``resized_sizes``); :func:`vlfast.integrations.rows.collate` turns a
list of examples into the model's ``pixel_values`` and ``image_grid_thw``. An image column may hold one image
per example or a list of them; images are PIL images (an ``Image`` feature that decodes), arrays, or encoded
sources (an ``Image(decode=False)`` feature, paths, bytes), which are decoded on vlfast's thread pool
(``workers``) with the decoder of the stock processor of ``backend``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import UnsupportedOptionError
from .rows import preprocess_rows

__all__ = ["image_transform", "preprocess_dataset", "undecoded"]


def image_transform(column: str = "image", **options: Any) -> Callable[[dict[str, list]], dict[str, list]]:
    """A batched transform for ``Dataset.set_transform`` / ``with_transform`` / ``map(batched=True)``: the
    batch without ``column``, plus vlfast's columns. ``options`` are :func:`vlfast.preprocess`'s."""

    def transform(batch: dict[str, list]) -> dict[str, list]:
        rows = preprocess_rows(batch[column], **options)
        return {**{name: values for name, values in batch.items() if name != column}, **rows}

    return transform


def undecoded(dataset: Any, column: str = "image") -> Any:
    """``dataset`` with its ``Image`` column left encoded (``{"bytes", "path"}``), for vlfast to decode."""
    import datasets

    return dataset.cast_column(column, datasets.Image(decode=False))


def preprocess_dataset(
    dataset: Any,
    column: str = "image",
    *,
    batch_size: int = 64,
    keep_images: bool = False,
    compact: bool = True,
    **options: Any,
) -> Any:
    """``dataset.map`` storing vlfast's columns (by default ``compact`` uint8 patches: 8x fewer bytes than
    float32; :func:`vlfast.expand_patches` gives the stock ``pixel_values`` where the model runs), without
    the image column unless ``keep_images``, for a ``Dataset`` or each split of a ``DatasetDict``. ``options``
    are :func:`vlfast.preprocess`'s; vlfast uses its own threads, so ``num_proc`` is left to the caller. The
    images are read as stored (PIL images or encoded bytes), whatever format or transform ``dataset`` has: a
    ``"numpy"``/``"torch"`` format would hand over arrays of its own making (a palette image's indices), a
    transform would run first. The result gets ``dataset``'s format back (not a transform, which would find no
    image column).

    Raises:
        UnsupportedOptionError: an ``IterableDataset`` (map :func:`image_transform` over it instead).
    """
    import datasets

    if isinstance(dataset, datasets.DatasetDict):
        kwargs = dict(batch_size=batch_size, keep_images=keep_images, compact=compact, **options)
        return datasets.DatasetDict(
            {name: preprocess_dataset(split, column, **kwargs) for name, split in dataset.items()}
        )
    if not isinstance(dataset, datasets.Dataset):
        raise UnsupportedOptionError(
            f"preprocess_dataset stores a Dataset or a DatasetDict, got {type(dataset).__name__}; "
            "for an IterableDataset, map image_transform(column, ...) over it (batched=True)"
        )
    stored = dataset.with_format(None).map(
        image_transform(column, compact=compact, **options),
        batched=True,
        batch_size=batch_size,
        remove_columns=None if keep_images else [column],
        desc="vlfast preprocess",
    )
    form = dataset.format
    if form["type"] in (None, "custom"):
        return stored
    return stored.with_format(form["type"], **form["format_kwargs"])
