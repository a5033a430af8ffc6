"""Folders of images to shards on disk: ``vlfast preprocess DIR --out FILE``.

The images (files under the folders given, sorted) are decoded on a thread pool and preprocessed in chunks
of at most ``shard_bytes`` of ``pixel_values`` (:func:`vlfast.preprocess_in_chunks`); each chunk is written
as one shard next to ``FILE``: ``{stem}-00000{suffix}``, ``{stem}-00001{suffix}``..., in the format of
``FILE``'s suffix:

* ``.safetensors``: tensors ``pixel_values`` ``(rows, 1176)`` (uint8 ``(rows, 588)`` with ``compact``) and
  ``image_grid_thw`` int64 ``(N, 3)``; metadata ``sources`` (JSON list of the images' paths relative to their
  folder) and the settings (``backend``, ``compact``, ``dtype``, ``min_pixels``, ``max_pixels``, ``vlfast``);
* ``.npz``: the same arrays, plus ``sources`` and ``settings`` (a JSON string) as arrays (no bfloat16).

``{stem}.index.json`` lists the shards with their images and token counts. Images that fail are reported
and left out; the others are written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .defaults import MERGE_SIZE
from .errors import UnsupportedOptionError, VlfastError
from .preprocess import Preprocessed, preprocess_in_chunks

__all__ = ["IMAGE_SUFFIXES", "SHARD_FORMATS", "ShardSummary", "check_output", "image_files", "write_shards"]

#: File suffixes taken as images in a folder (lower case).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif"})
#: Shard formats by the suffix of ``--out``.
SHARD_FORMATS = (".safetensors", ".npz")


def image_files(folder: Path) -> list[Path]:
    """The image files under ``folder`` (recursively, by suffix), sorted."""
    return sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())


@dataclass
class ShardSummary:
    """What :func:`write_shards` did."""

    images: int = 0
    tokens: int = 0
    failed: list[tuple[str, VlfastError]] = field(default_factory=list)
    shards: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "image_tokens": self.tokens,
            "failed": [
                {"image": name, "type": type(error).__name__, "message": str(error)} for name, error in self.failed
            ],
            "shards": [str(path) for path in self.shards],
            "seconds": round(self.seconds, 3),
            "images_per_s": round(self.images / self.seconds, 2) if self.seconds else None,
            "tokens_per_s": round(self.tokens / self.seconds, 1) if self.seconds else None,
        }


def _shard_path(out: Path, index: int) -> Path:
    return out.with_name(f"{out.stem}-{index:05d}{out.suffix}")


def _write(path: Path, chunk: Preprocessed, sources: list[str], settings: dict[str, Any]) -> None:
    tensors = {"pixel_values": chunk.pixel_values.cpu().contiguous(), "image_grid_thw": chunk.image_grid_thw}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        metadata = {"sources": json.dumps(sources), **{key: str(value) for key, value in settings.items()}}
        save_file(tensors, str(path), metadata=metadata)
        return
    arrays = {name: tensor.numpy() for name, tensor in tensors.items()}
    np.savez(path, **arrays, sources=np.array(sources), settings=np.array(json.dumps(settings)))


def check_output(out: Path, dtype: torch.dtype, compact: bool) -> None:
    """Raise :class:`UnsupportedOptionError` for an ``out`` suffix other than ``.safetensors`` / ``.npz``, or
    bfloat16 values in ``.npz``."""
    if out.suffix not in SHARD_FORMATS:
        raise UnsupportedOptionError(f"--out must end with {' or '.join(SHARD_FORMATS)}, got {out.name!r}")
    if out.suffix == ".npz" and dtype == torch.bfloat16 and not compact:
        raise UnsupportedOptionError("NumPy has no bfloat16: write .safetensors, or use --compact")


def write_shards(
    files: Sequence[Path],
    names: Sequence[str],
    out: Path,
    *,
    shard_bytes: int,
    compact: bool = False,
    backend: str = "torchvision",
    dtype: torch.dtype = torch.float32,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    on_error: Callable[[str, VlfastError], None] | None = None,
    **options: Any,
) -> ShardSummary:
    """Preprocess ``files`` (named ``names`` in the shards) into shards next to ``out`` (see the module).

    ``progress(n)`` is called as ``n`` more images are done (written or failed); ``on_error(name, error)`` for
    each image that fails. ``options`` are :func:`vlfast.preprocess`'s (``min_pixels``, ``max_pixels``,
    ``device``, ``engine``...).

    Raises:
        UnsupportedOptionError: see :func:`check_output`.
    """
    check_output(out, dtype, compact)
    settings = {
        "backend": backend,
        "compact": compact,
        "dtype": "uint8" if compact else str(dtype).removeprefix("torch."),
        "vlfast": __version__,
        **{key: options[key] for key in ("min_pixels", "max_pixels") if key in options},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = ShardSummary()
    failed: set[int] = set()

    def failure(index: int, error: VlfastError) -> None:
        failed.add(index)
        summary.failed.append((names[index], error))
        if on_error is not None:
            on_error(names[index], error)
        if progress is not None:
            progress(1)

    start = time.perf_counter()
    done = 0  # sources consumed by the written chunks and the failures before them
    index_entries = []
    chunks = preprocess_in_chunks(
        [str(path) for path in files],
        max_chunk_bytes=shard_bytes,
        backend=backend,
        workers=workers,
        on_error=failure,
        compact=compact,
        **({} if compact else {"dtype": dtype}),
        **options,
    )
    for number, chunk in enumerate(chunks):
        count = len(chunk.original_sizes)
        members: list[str] = []
        while len(members) < count:
            if done not in failed:
                members.append(names[done])
            done += 1
        path = _shard_path(out, number)
        _write(path, chunk, members, settings)
        tokens = int(chunk.image_grid_thw.prod(dim=1).sum()) // (MERGE_SIZE * MERGE_SIZE)
        summary.images += count
        summary.tokens += tokens
        summary.shards.append(path)
        index_entries.append({"file": path.name, "images": count, "image_tokens": tokens, "sources": members})
        if progress is not None:
            progress(count)
    summary.seconds = time.perf_counter() - start
    index = {"settings": settings, "shards": index_entries}
    out.with_name(f"{out.stem}.index.json").write_text(json.dumps(index, indent=2))
    return summary
