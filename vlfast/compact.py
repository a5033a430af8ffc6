"""The compact hand-off: resized uint8 patches, each still image once, expanded exactly where the model runs.

``vlfast.preprocess(images, compact=True)`` returns ``pixel_values`` as uint8 ``(rows, C * P**2)``:
the resized values before rescale and normalize, without the temporal copies, 8x fewer bytes
than float32 (4x fewer than bfloat16) to keep in host memory, pin and copy to the GPU.
:func:`expand_patches` turns them into the stock ``pixel_values``, bit for bit, on the device:
each engine's ``expand`` (a Triton op on CUDA, the C++ kernel on the CPU). All only copy entries of the table.
"""

from __future__ import annotations

from typing import Any

import torch

from .defaults import TEMPORAL_PATCH_SIZE
from .engines import EngineName, select_engine
from .engines.host_memory import empty_output
from .errors import InvalidImageError, UnsupportedOptionError
from .options import OUTPUT_DTYPES, check_positive_ints, parse_device
from .plans import parse_backend
from .tables import TABLE_SIZE, Normalization

__all__ = ["expand_patches"]

#: Settings of a processor that define its normalization table.
_TABLE_SETTINGS = ("backend", "do_rescale", "rescale_factor", "do_normalize", "image_mean", "image_std")


def _table_from(table: torch.Tensor | Any, dtype: torch.dtype | None, device: torch.device) -> torch.Tensor:
    """A ``(C, 256)`` table given as such, or built from a processor's normalization settings."""
    if isinstance(table, torch.Tensor):
        if dtype is not None and table.dtype != dtype:
            raise UnsupportedOptionError(f"table is {table.dtype} but dtype={dtype}; build the table in that dtype")
        return table.to(device)
    missing = [name for name in _TABLE_SETTINGS if not hasattr(table, name)]
    if missing:
        raise UnsupportedOptionError(
            "table must be a (C, 256) tensor (vlfast.normalization_table) or a processor with "
            f"{', '.join(_TABLE_SETTINGS)}; {type(table).__name__} lacks {', '.join(missing)}"
        )
    settings = {name: getattr(table, name) for name in _TABLE_SETTINGS}
    normalization = Normalization(**{**settings, "backend": parse_backend(settings["backend"])})
    return normalization.table(dtype or torch.float32, device)


def expand_patches(
    compact: torch.Tensor,
    grid_thw: torch.Tensor,
    table: torch.Tensor | Any,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    temporal_patch_size: int = TEMPORAL_PATCH_SIZE,
    engine: EngineName | str = EngineName.AUTO,
) -> torch.Tensor:
    """The stock ``pixel_values`` from compact uint8 patches, bit for bit.

    Args:
        compact: uint8 ``(rows, C * P**2)``, from ``vlfast.preprocess(..., compact=True)``.
        grid_thw: the matching ``image_grid_thw`` ``(N, 3)`` (still images: ``t == 1``).
        table: the ``(C, 256)`` normalization table in the output dtype
            (:func:`vlfast.normalization_table`), or a processor whose ``backend``, ``do_rescale``,
            ``rescale_factor``, ``do_normalize``, ``image_mean`` and ``image_std`` define it.
        dtype: output dtype when ``table`` is a processor (default float32, the stock's).
        device: where the result goes (default: ``compact``'s device).
        temporal_patch_size: ``T``, the copies of each still image (the processor's setting).
        engine: an engine name (:class:`vlfast.engines.EngineName`): ``"auto"`` takes the Triton op on
            CUDA and the C++ kernel otherwise; ``"triton"`` runs on the CPU under ``TRITON_INTERPRET=1``.

    Returns:
        ``(rows, C * T * P**2)`` in the table's dtype on ``device``.

    Raises:
        InvalidImageError: ``compact`` or ``grid_thw`` of the wrong dtype or shape, or rows
            that do not match the grid.
        UnsupportedOptionError: a table of the wrong shape or dtype, or an unknown engine.
    """
    check_positive_ints(temporal_patch_size=temporal_patch_size)
    if not isinstance(compact, torch.Tensor) or compact.dtype != torch.uint8 or compact.dim() != 2:
        raise InvalidImageError(
            "compact must be a uint8 (rows, C * patch_size**2) tensor from preprocess(compact=True)"
        )
    grid = torch.as_tensor(grid_thw)
    if grid.dim() != 2 or grid.shape[1] != 3 or grid.dtype.is_floating_point:
        raise InvalidImageError(f"grid_thw must be an integer (N, 3) tensor, got shape {tuple(grid.shape)}")
    if bool((grid[:, 0] != 1).any()):
        raise InvalidImageError(
            "compact patches hold still images (grid t == 1); expand video frames with a table lookup"
        )
    rows = int((grid[:, 1] * grid[:, 2]).sum())
    if rows != compact.shape[0]:
        raise InvalidImageError(f"grid_thw describes {rows} patches but compact has {compact.shape[0]} rows")
    device = compact.device if device is None else parse_device(device)
    table = _table_from(table, dtype, device).contiguous()
    channels = table.shape[0] if table.dim() == 2 else 0
    if table.dim() != 2 or table.shape[1] != TABLE_SIZE or compact.shape[1] % channels:
        raise UnsupportedOptionError(
            f"table must be (C, 256) with C dividing compact's {compact.shape[1]} columns, got {tuple(table.shape)}"
        )
    if table.dtype not in OUTPUT_DTYPES:
        raise UnsupportedOptionError(f"table dtype {table.dtype} is not supported; expected one of {OUTPUT_DTYPES}")
    runner = select_engine(engine, device)
    work = runner.output_device(device)
    columns = compact.shape[1] * temporal_patch_size
    if work.type == "cpu" and device.type == "cpu":  # a recycled host buffer: no page faults on every call
        out = empty_output(rows, columns, table.dtype)
    else:
        out = torch.empty((rows, columns), dtype=table.dtype, device=work)
    runner.expand(compact.to(work).contiguous(), table.to(work), out)
    return out.to(device)
