"""Normalization tables: rescale + normalize of every uint8 value, per channel.

After resizing, every pixel is one of 256 values per channel, so the stock processors'
float pipeline (rescale, normalize, cast) collapses to a ``(C, 256)`` lookup table. Each
table is computed with the very operations - same library, same dtypes, same order - that
the reproduced backend applies to whole images, so a lookup gives the same bits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from .defaults import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, RESCALE_FACTOR
from .errors import UnsupportedOptionError
from .plans import Backend, parse_backend

__all__ = ["TABLE_SIZE", "Normalization", "TableFormula", "normalization_table", "stock_output_dtype", "table_formula"]

#: Entries per channel of a normalization table: one per uint8 value.
TABLE_SIZE = 256


def _per_channel(value: float | Sequence[float], channels: int, name: str) -> tuple[float, ...]:
    try:
        values = (float(value),) * channels if isinstance(value, (int, float)) else tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise UnsupportedOptionError(f"{name} must be a number or {channels} numbers, got {value!r}") from None
    if len(values) != channels:
        raise UnsupportedOptionError(f"{name} must have {channels} elements, got {len(values)}")
    return values


def _pil_table(do_rescale, rescale_factor, do_normalize, mean, std, channels) -> np.ndarray:
    # transformers.image_transforms.rescale / normalize, applied to a (C, 256) ramp.
    ramp = np.broadcast_to(np.arange(TABLE_SIZE, dtype=np.uint8), (channels, TABLE_SIZE))
    values: np.ndarray = ramp
    if do_rescale:
        values = (ramp.astype(np.float64) * rescale_factor).astype(np.float32)
    if do_normalize:
        if not np.issubdtype(values.dtype, np.floating):
            values = values.astype(np.float32)
        mean_arr = np.array(mean, dtype=values.dtype)
        std_arr = np.array(std, dtype=values.dtype)
        values = ((values.T - mean_arr) / std_arr).T
    # Qwen2VLImageProcessorPil.patchify: np.asarray(image, dtype=np.float32).
    return np.asarray(values, dtype=np.float32)


def _torchvision_table(do_rescale, rescale_factor, do_normalize, mean, std, channels) -> torch.Tensor:
    # TorchvisionBackend.rescale_and_normalize (with _fuse_mean_std_and_rescale_factor) and
    # torchvision's normalize_image, applied to a (C, 1, 256) ramp.
    ramp = torch.arange(TABLE_SIZE, dtype=torch.uint8).expand(channels, 1, TABLE_SIZE).contiguous()
    if do_normalize:
        mean_t = torch.tensor(mean)
        std_t = torch.tensor(std)
        if do_rescale:
            mean_t = mean_t * (1.0 / rescale_factor)
            std_t = std_t * (1.0 / rescale_factor)
        if bool((std_t == 0).any()):
            raise UnsupportedOptionError("image_std contains 0, leading to division by zero")
        values = ramp.to(torch.float32).sub_(mean_t.view(-1, 1, 1)).div_(std_t.view(-1, 1, 1))
    elif do_rescale:
        values = ramp * rescale_factor
    else:
        values = ramp
    return values.reshape(channels, TABLE_SIZE)


@dataclass(frozen=True)
class TableFormula:
    """The arithmetic behind a float table, as a kernel may compute entries instead of looking them up:
    entry ``[c, v]`` is ``x = v * scale`` rounded to float32 (multiplied in float32, ``scale`` rounded to
    float32 first, or in float64 where ``scale_in_float64``), then ``(x - mean[c]) / std[c]`` in float32,
    then cast to the table's dtype. ``mean`` and ``std`` hold float32 values. The C++ engine computes
    items with it only after checking that it gives every entry's bits; the table stays the definition."""

    scale: float
    scale_in_float64: bool
    mean: tuple[float, ...]
    std: tuple[float, ...]


def _pil_formula(do_rescale, rescale_factor, do_normalize, mean, std, channels) -> TableFormula:
    # _pil_table's arithmetic: the rescale in float64, rounded to float32; the normalize in float32.
    with np.errstate(over="ignore"):  # settings past float32: table_formula gives no formula for them
        mean32 = np.array(mean if do_normalize else (0.0,) * channels, dtype=np.float32)
        std32 = np.array(std if do_normalize else (1.0,) * channels, dtype=np.float32)
    return TableFormula(
        float(rescale_factor) if do_rescale else 1.0, bool(do_rescale), tuple(mean32.tolist()), tuple(std32.tolist())
    )


def _torchvision_formula(do_rescale, rescale_factor, do_normalize, mean, std, channels) -> TableFormula:
    # _torchvision_table's arithmetic: the rescale folded into float32 mean and std, or a float32 multiply.
    if do_normalize:
        mean_t, std_t = torch.tensor(mean), torch.tensor(std)
        if do_rescale:
            mean_t, std_t = mean_t * (1.0 / rescale_factor), std_t * (1.0 / rescale_factor)
        return TableFormula(1.0, False, tuple(mean_t.tolist()), tuple(std_t.tolist()))
    scale = float(rescale_factor) if do_rescale else 1.0
    return TableFormula(scale, False, (0.0,) * channels, (1.0,) * channels)


def stock_output_dtype(backend: Backend, do_rescale: bool, do_normalize: bool) -> torch.dtype:
    """dtype of the stock ``pixel_values``: float32, except the torchvision backend with neither
    rescale nor normalize, which keeps uint8."""
    if parse_backend(backend) is Backend.TORCHVISION and not do_rescale and not do_normalize:
        return torch.uint8
    return torch.float32


@lru_cache(maxsize=64)
def _cached_table(
    backend: Backend,
    do_rescale: bool,
    rescale_factor: float,
    do_normalize: bool,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    channels: int,
    dtype: torch.dtype,
    device: str,
) -> torch.Tensor:
    if backend is Backend.PIL:
        table = torch.from_numpy(_pil_table(do_rescale, rescale_factor, do_normalize, mean, std, channels))
    else:
        table = _torchvision_table(do_rescale, rescale_factor, do_normalize, mean, std, channels)
    return table.to(dtype).contiguous().to(device)


def normalization_table(
    backend: Backend | str,
    *,
    do_rescale: bool = True,
    rescale_factor: float = RESCALE_FACTOR,
    do_normalize: bool = True,
    image_mean: float | Sequence[float] = OPENAI_CLIP_MEAN,
    image_std: float | Sequence[float] = OPENAI_CLIP_STD,
    channels: int = 3,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The ``(channels, 256)`` table whose entry ``[c, v]`` is the stock output for value ``v``
    of channel ``c``, cast to ``dtype`` (as ``stock_result.to(dtype)`` would be). Cached.

    Example:
        >>> t = normalization_table("pil", image_mean=(0.5,) * 3, image_std=(0.5,) * 3)
        >>> t[0, 255].item()
        1.0
    """
    backend, factor, mean, std = _checked_settings(
        backend, do_rescale, rescale_factor, do_normalize, image_mean, image_std, channels
    )
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:  # key the cache by the GPU the table lands on
        device = torch.device("cuda", torch.cuda.current_device())
    return _cached_table(backend, bool(do_rescale), factor, bool(do_normalize), mean, std, channels, dtype, str(device))


def _checked_settings(
    backend: Backend | str,
    do_rescale: bool,
    rescale_factor: float,
    do_normalize: bool,
    image_mean: float | Sequence[float],
    image_std: float | Sequence[float],
    channels: int,
) -> tuple[Backend, float, tuple[float, ...], tuple[float, ...]]:
    """The backend, the rescale factor (0.0 when unused), the means and the stds (empty when unused) of
    a table's settings, or :class:`UnsupportedOptionError` where the stock would divide by zero."""
    backend = parse_backend(backend)
    mean = _per_channel(image_mean, channels, "image_mean") if do_normalize else ()
    std = _per_channel(image_std, channels, "image_std") if do_normalize else ()
    if do_normalize and 0.0 in std:
        raise UnsupportedOptionError("image_std contains 0, leading to division by zero")
    if do_rescale and rescale_factor == 0 and do_normalize and backend is Backend.TORCHVISION:
        raise UnsupportedOptionError("rescale_factor must be non-zero for the torchvision backend")
    return backend, float(rescale_factor) if do_rescale else 0.0, mean, std


def table_formula(
    backend: Backend | str,
    *,
    do_rescale: bool = True,
    rescale_factor: float = RESCALE_FACTOR,
    do_normalize: bool = True,
    image_mean: float | Sequence[float] = OPENAI_CLIP_MEAN,
    image_std: float | Sequence[float] = OPENAI_CLIP_STD,
    channels: int = 3,
) -> TableFormula | None:
    """The :class:`TableFormula` of :func:`normalization_table` with the same settings (any dtype); None
    where a value of it is not a finite float32 (settings that overflow float32: the table is looked up).

    Example:
        >>> table_formula("pil", image_mean=(0.5,) * 3, image_std=(0.5,) * 3).mean
        (0.5, 0.5, 0.5)
    """
    backend, factor, mean, std = _checked_settings(
        backend, do_rescale, rescale_factor, do_normalize, image_mean, image_std, channels
    )
    return _cached_formula(backend, bool(do_rescale), factor, bool(do_normalize), mean, std, channels)


@lru_cache(maxsize=64)
def _cached_formula(
    backend: Backend,
    do_rescale: bool,
    rescale_factor: float,
    do_normalize: bool,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    channels: int,
) -> TableFormula | None:
    build = _pil_formula if backend is Backend.PIL else _torchvision_formula
    formula = build(do_rescale, rescale_factor, do_normalize, mean, std, channels)
    values = (formula.scale, *formula.mean, *formula.std)
    return formula if all(math.isfinite(value) for value in values) else None


@dataclass(frozen=True)
class Normalization:
    """The settings that define a normalization table: the stock backend's arithmetic and its options."""

    backend: Backend
    do_rescale: bool = True
    rescale_factor: float = RESCALE_FACTOR
    do_normalize: bool = True
    image_mean: float | Sequence[float] = OPENAI_CLIP_MEAN
    image_std: float | Sequence[float] = OPENAI_CLIP_STD
    #: Tables already looked up, by ``(dtype, device, channels)``: a call skips the checks and the shared cache.
    _tables: dict[tuple, torch.Tensor] = field(default_factory=dict, init=False, repr=False, compare=False)
    #: Formulas already built, by channel count.
    _formulas: dict[int, TableFormula | None] = field(default_factory=dict, init=False, repr=False, compare=False)

    def formula(self, channels: int = 3) -> TableFormula | None:
        """:func:`table_formula` of these settings, cached."""
        if channels in self._formulas:
            return self._formulas[channels]
        formula = table_formula(self.backend, channels=channels, **self._options())
        if self._settings_frozen():
            self._formulas[channels] = formula
        return formula

    def _options(self) -> dict:
        """The settings as :func:`normalization_table` and :func:`table_formula` take them."""
        return {
            "do_rescale": self.do_rescale,
            "rescale_factor": self.rescale_factor,
            "do_normalize": self.do_normalize,
            "image_mean": self.image_mean,
            "image_std": self.image_std,
        }

    def _settings_frozen(self) -> bool:
        """Whether the settings cannot change any more (no list a caller can still mutate)."""
        return all(_frozen(value) for value in (self.rescale_factor, self.image_mean, self.image_std))

    def table(self, dtype: torch.dtype, device: torch.device | str = "cpu", channels: int = 3) -> torch.Tensor:
        """:func:`normalization_table` of these settings ``(channels, 256)``, cached."""
        key = (dtype, device, channels)
        table = self._tables.get(key)
        if table is not None:
            return table
        table = normalization_table(self.backend, channels=channels, dtype=dtype, device=device, **self._options())
        # Not kept: settings a caller can still change (a list), or "cuda", whose table follows the current GPU.
        if self._settings_frozen() and str(device) != "cuda":
            self._tables[key] = table
        return table


def _frozen(value: object) -> bool:
    """A number or a tuple of numbers: settings that cannot change after they are given."""
    if isinstance(value, tuple):
        return all(isinstance(item, (int, float)) for item in value)
    return isinstance(value, (int, float))
