"""One call's options, resolved once, and the path every image and video call shares: clips of frames
-> plans and jobs -> ``pixel_values``.

A still image is a clip of one frame that fills every temporal slot; a video clip's frame ``f`` fills
slot ``f % T`` of temporal block ``f // T`` and its last frame the remaining slots (the stock pads a clip
with copies of its last frame). Images and videos differ only in how the target size is chosen.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any, TypedDict

import numpy as np
import torch

from .defaults import (
    MERGE_SIZE,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    PATCH_SIZE,
    RESCALE_FACTOR,
    TEMPORAL_PATCH_SIZE,
)
from .engines import Engine, FrameJob, PatchLayout, render, select_engine
from .engines.triton_engine import interpreting
from .errors import UnsupportedOptionError
from .layout import patch_grid
from .options import check_rescale_factor, parse_device, parse_dtype
from .plans import Backend, Filter, parse_backend, resample_plan
from .sizing import SizeRule, target_size
from .tables import Normalization, stock_output_dtype

__all__ = ["PipelineKwargs", "PipelineOptions", "pipeline_options", "run_clips"]


class PipelineKwargs(TypedDict, total=False):
    """The keyword arguments :func:`vlfast.preprocess` and :func:`vlfast.preprocess_videos` share."""

    device: torch.device | str
    dtype: torch.dtype | str | None
    engine: str
    resample: Filter | str | int
    min_pixels: float | None
    max_pixels: float | None
    size_rule: SizeRule | str
    patch_size: int
    merge_size: int
    temporal_patch_size: int
    do_resize: bool
    do_rescale: bool
    rescale_factor: float
    do_normalize: bool
    image_mean: float | Sequence[float]
    image_std: float | Sequence[float]
    do_convert_rgb: bool
    input_data_format: str | None
    max_output_bytes: int | None


#: The stock processors' defaults of those arguments (``min_pixels`` / ``max_pixels`` differ between
#: images and videos: the caller gives them).
_DEFAULTS: dict[str, Any] = {
    "device": "cpu",
    "dtype": None,
    "engine": "auto",
    "resample": Filter.BICUBIC,
    "size_rule": SizeRule.QWEN2_VL,
    "patch_size": PATCH_SIZE,
    "merge_size": MERGE_SIZE,
    "temporal_patch_size": TEMPORAL_PATCH_SIZE,
    "do_resize": True,
    "do_rescale": True,
    "rescale_factor": RESCALE_FACTOR,
    "do_normalize": True,
    "image_mean": OPENAI_CLIP_MEAN,
    "image_std": OPENAI_CLIP_STD,
    "do_convert_rgb": True,
    "input_data_format": None,
    "max_output_bytes": None,
}


@dataclass(frozen=True)
class PipelineOptions:
    """Everything one call needs, checked: built once from the public keyword arguments and passed down."""

    normalization: Normalization
    layout: PatchLayout
    engine: Engine
    device: torch.device
    dtype: torch.dtype
    resample: Filter
    do_resize: bool
    size_rule: SizeRule
    min_pixels: float
    max_pixels: float
    #: The model's ``temporal_patch_size`` as the size rule counts it (a still image counts as this many frames
    #: under :attr:`SizeRule.FRAMES`), kept when :meth:`compacted` writes one temporal slot.
    temporal_factor: int
    do_convert_rgb: bool
    input_data_format: Any
    max_output_bytes: int | None

    @property
    def backend(self) -> Backend:
        return self.normalization.backend

    def target_size(
        self, height: int, width: int, *, num_frames: int | None = None, max_pixels: float | None = None
    ) -> tuple[int, int]:
        """``(height, width)`` the model sees for a clip of ``num_frames`` frames (``None``: a still image, which
        the frame rule counts as ``temporal_patch_size`` frames), within ``max_pixels`` (default: the options');
        the size itself without resizing."""
        if not self.do_resize:
            return height, width
        return target_size(
            self.size_rule,
            self.temporal_factor if num_frames is None else num_frames,
            height,
            width,
            factor=self.layout.factor,
            temporal_factor=self.temporal_factor,
            min_pixels=self.min_pixels,
            max_pixels=self.max_pixels if max_pixels is None else max_pixels,
        )

    def compacted(self) -> PipelineOptions:
        """The options of a compact call: uint8 resized values (the identity table), each image once."""
        layout = dataclasses.replace(self.layout, temporal_patch_size=1)
        normalization = dataclasses.replace(self.normalization, do_rescale=False, do_normalize=False)
        return dataclasses.replace(self, layout=layout, normalization=normalization, dtype=torch.uint8)


def _check_pixel_bounds(**values: object) -> None:
    """Pixel bounds are positive integers or positive finite floats (the stock computes with either)."""
    for name, value in values.items():
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            raise UnsupportedOptionError(f"{name} must be a positive integer or a positive finite float, got {value!r}")


#: Types of option values that are immutable and compare equal only to values that act the same (given
#: with their type): options made only of these are memoized.
_MEMOIZED_TYPES = (str, int, float, bool, type(None), Enum, torch.dtype, torch.device)


def _memo_key(value: object) -> Hashable:
    """``value`` with its type (tuples item by item), or ``None`` when it is not of :data:`_MEMOIZED_TYPES`."""
    if type(value) is tuple:
        items = tuple(_memo_key(item) for item in value)
        return None if None in items else (tuple, items)
    return (type(value), value) if isinstance(value, _MEMOIZED_TYPES) else None


def _memo_value(key: Any) -> Any:
    kind, value = key
    return tuple(_memo_value(item) for item in value) if kind is tuple else value


@lru_cache(maxsize=64)
def _memoized_options(
    caller: str, backend: Hashable, min_pixels: Hashable, max_pixels: Hashable, kwargs: tuple, interpret: bool
) -> PipelineOptions:
    """:func:`_resolve_options` of arguments given by their :func:`_memo_key`; ``interpret``
    (``TRITON_INTERPRET``) is part of the key because the engine choice depends on it."""
    values = {name: _memo_value(key) for name, key in kwargs}
    return _resolve_options(caller, _memo_value(backend), _memo_value(min_pixels), _memo_value(max_pixels), values)


def pipeline_options(
    caller: str, backend: Backend | str, min_pixels: float, max_pixels: float, kwargs: dict[str, Any]
) -> PipelineOptions:
    """Check ``kwargs`` (see :class:`PipelineKwargs`; ``min_pixels`` / ``max_pixels`` default to the given
    ones) and resolve the device, the output dtype and the engine. Memoized when every value is of
    :data:`_MEMOIZED_TYPES` (a list, an array: resolved every call).

    Raises:
        UnsupportedOptionError: an unknown or invalid option.
        DeviceError: a device that does not exist here, or that the engine cannot serve.
    """
    keys = tuple((name, _memo_key(value)) for name, value in kwargs.items())
    fixed = (_memo_key(backend), _memo_key(min_pixels), _memo_key(max_pixels))
    if None in fixed or any(key is None for _, key in keys):
        return _resolve_options(caller, backend, min_pixels, max_pixels, kwargs)
    return _memoized_options(caller, *fixed, tuple(sorted(keys)), interpreting())


def _resolve_options(
    caller: str, backend: Backend | str, min_pixels: float, max_pixels: float, kwargs: dict[str, Any]
) -> PipelineOptions:
    """:func:`pipeline_options`, checked and resolved afresh."""
    unknown = sorted(set(kwargs) - set(PipelineKwargs.__annotations__))
    if unknown:
        raise UnsupportedOptionError(
            f"{caller} got unknown options {unknown}; valid options: {sorted(PipelineKwargs.__annotations__)}"
        )
    given = {**_DEFAULTS, **kwargs}
    backend = parse_backend(backend)
    resample = Filter.from_any(given["resample"])
    min_pixels = min_pixels if given.get("min_pixels") is None else given["min_pixels"]
    max_pixels = max_pixels if given.get("max_pixels") is None else given["max_pixels"]
    device = parse_device(given["device"])
    do_rescale, do_normalize = given["do_rescale"], given["do_normalize"]
    dtype = given["dtype"]
    dtype = stock_output_dtype(backend, do_rescale, do_normalize) if dtype is None else parse_dtype(dtype)
    layout = PatchLayout(given["patch_size"], given["merge_size"], given["temporal_patch_size"])
    _check_pixel_bounds(min_pixels=min_pixels, max_pixels=max_pixels)
    check_rescale_factor(do_rescale, given["rescale_factor"])
    return PipelineOptions(
        normalization=Normalization(
            backend, do_rescale, given["rescale_factor"], do_normalize, given["image_mean"], given["image_std"]
        ),
        layout=layout,
        engine=select_engine(given["engine"], device),
        device=device,
        dtype=dtype,
        resample=resample,
        do_resize=given["do_resize"],
        size_rule=SizeRule.parse(given["size_rule"]),
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        temporal_factor=layout.temporal_patch_size,
        do_convert_rgb=given["do_convert_rgb"],
        input_data_format=given["input_data_format"],
        max_output_bytes=given["max_output_bytes"],
    )


def run_clips(
    clips: Sequence[Sequence[torch.Tensor]], sizes: Sequence[tuple[int, int]], options: PipelineOptions
) -> tuple[torch.Tensor, torch.Tensor]:
    """``pixel_values`` ``(sum(t*h*w), 3*T*p*p)`` and ``grid_thw`` ``int64 (N, 3)`` of clips of uint8
    ``(H, W, 3)`` frames (one frame: a still image), clip ``i`` resized to ``sizes[i]``."""
    layout = options.layout
    temporal = layout.temporal_patch_size
    jobs: list[FrameJob] = []
    grids: list[list[int]] = []
    rows = 0
    for frames, target in zip(clips, sizes, strict=True):
        count = len(frames)
        height, width = int(frames[0].shape[0]), int(frames[0].shape[1])
        grid = patch_grid(*target, layout.patch_size, layout.merge_size, t=-(-count // temporal))
        plan = resample_plan(height, width, *target, options.resample, options.backend)
        for index in range(count):
            slot = index % temporal
            # The stock pads a clip with copies of its last frame: that frame fills the rest of its block.
            slots = temporal - slot if index == count - 1 else 1
            jobs.append(FrameJob(frames[index], plan, rows + (index // temporal) * grid.h * grid.w, slot, slots))
        grids.append([grid.t, grid.h, grid.w])
        rows += grid.rows
    out = render(
        jobs,
        rows,
        layout,
        engine=options.engine,
        device=options.device,
        dtype=options.dtype,
        normalization=options.normalization,
        max_output_bytes=options.max_output_bytes,
    )
    return out, torch.from_numpy(np.array(grids, dtype=np.int64).reshape(-1, 3)).clone()  # resizable, as the stock's
