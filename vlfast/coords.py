"""Map points and boxes between original-image pixels, model-input pixels and Qwen2-VL's 0-1000 range.

Qwen2.5-VL reads and writes coordinates in the pixels of the *resized* image it was fed
(``Preprocessed.resized_sizes``, or ``image_grid_thw`` rows times the patch size); Qwen2-VL
uses coordinates relative to the image, scaled to ``[0, 1000]``. These helpers convert
between those spaces and the original image's pixels.

Conventions:
    * Sizes are ``(height, width)``, as in :class:`vlfast.Preprocessed`; coordinates are ``x`` first.
    * Coordinates are continuous: ``0`` is the left/top edge of the image, ``width`` / ``height``
      the right/bottom edge, so a box covering the whole image is ``[0, 0, width, height]``.
      Mapping scales each axis by the ratio of the sizes (``x * model_width / original_width``),
      which is exactly how the resize maps the image, and returns floats (round them yourself
      if you need the integers a model prints).
    * Boxes are ``(..., 4)`` in ``fmt="xyxy"`` (corners) or ``"xywh"`` (corner + size); points ``(..., 2)``.
    * Out of the image: with ``clamp=True`` (default) results are clipped to the target image
      (a box entirely outside collapses to a zero-area box on the border); ``clamp=False``
      keeps them as mapped. Inverted boxes (``x2 < x1``, ``y2 < y1``, negative ``w`` / ``h``) and
      non-finite values raise :class:`InvalidCoordinatesError`; zero-area boxes are accepted.

Containers: a list (nested) comes back as a list of floats, a NumPy array as a float array
(float64 unless already floating), a torch tensor as a floating tensor on the same device.

Batches: pass one size per image (a list of ``(height, width)``, an ``(N, 2)`` array) and
coordinates with a leading axis of ``N`` images, e.g. ``(N, boxes, 4)``; a list of ``N``
per-image lists may be ragged (a different number of boxes per image). A single size is
broadcast over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from .defaults import PATCH_SIZE
from .errors import InvalidCoordinatesError, UnsupportedOptionError
from .options import check_positive_ints

__all__ = [
    "InvalidCoordinatesError",
    "RELATIVE_RANGE",
    "to_model_coords",
    "to_original_coords",
    "to_relative_1000",
    "from_relative_1000",
    "model_sizes_from_grid",
]

#: Qwen2-VL's relative coordinates span ``[0, RELATIVE_RANGE]`` on both axes.
RELATIVE_RANGE = 1000
BoxFormat = Literal["xyxy", "xywh"]
CoordinateKind = Literal["box", "point"]
Coordinates = Sequence | np.ndarray | torch.Tensor
#: ``(height, width)``, or one per image for a batch.
Sizes = Sequence[int] | Sequence[Sequence[int]] | np.ndarray | torch.Tensor
_VALUES_PER = {"box": 4, "point": 2}
_PLURAL = {"box": "boxes", "point": "points"}


def _parse_sizes(sizes: Sizes, name: str) -> np.ndarray:
    """``(2,)`` or ``(N, 2)`` float64 of ``(height, width)``."""
    try:
        array = np.asarray(sizes.tolist() if isinstance(sizes, torch.Tensor) else sizes, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InvalidCoordinatesError(f"{name} must be (height, width) or a list of them, got {sizes!r}") from error
    if array.ndim not in (1, 2) or array.shape[-1] != 2:
        raise InvalidCoordinatesError(
            f"{name} must be (height, width) or a list of them, got shape {array.shape}"
            + ("; for image_grid_thw rows use model_sizes_from_grid" if array.shape[-1:] == (3,) else "")
        )
    if not (np.isfinite(array).all() and (array > 0).all()):
        raise InvalidCoordinatesError(f"{name} must hold positive sizes, got {array.tolist()}")
    return array


def _as_float(coords: Coordinates) -> np.ndarray | torch.Tensor:
    if isinstance(coords, torch.Tensor):
        if coords.is_meta:
            raise InvalidCoordinatesError("coordinates are a meta tensor: it has no values to map")
        return coords if coords.is_floating_point() else coords.to(torch.get_default_dtype())
    if isinstance(coords, np.ndarray) and np.issubdtype(coords.dtype, np.floating):
        return coords
    try:
        return np.asarray(coords, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InvalidCoordinatesError(f"coordinates must be numbers in a rectangular array: {error}") from error


def _like(values: np.ndarray | torch.Tensor, data: np.ndarray) -> np.ndarray | torch.Tensor:
    """``data`` as the same kind of array as ``values`` (dtype, device)."""
    if isinstance(values, torch.Tensor):
        return torch.as_tensor(data, dtype=values.dtype, device=values.device)
    return data.astype(values.dtype)


def _check_boxes(values: np.ndarray | torch.Tensor, fmt: BoxFormat) -> None:
    if fmt == "xyxy":
        inverted = (values[..., 2] < values[..., 0]) | (values[..., 3] < values[..., 1])
        rule = "x2 >= x1 and y2 >= y1"
    else:
        inverted = (values[..., 2] < 0) | (values[..., 3] < 0)
        rule = "w >= 0 and h >= 0"
    if bool(inverted.any()):
        index = tuple(int(i) for i in (np.argwhere(np.asarray(inverted.tolist()))[0]))
        where = f" at index {index}" if index else ""
        raise InvalidCoordinatesError(f"box {values[index].tolist()}{where} is inverted: need {rule}")


def _rescale_array(
    coords: Coordinates,
    source: np.ndarray,
    target: np.ndarray,
    fmt: BoxFormat,
    kind: CoordinateKind,
    clamp: bool,
) -> Coordinates:
    values = _as_float(coords)
    per_item = _VALUES_PER[kind]
    if values.ndim == 0 or values.shape[-1] != per_item:
        hint = f"; pass kind={'point' if per_item == 4 else 'box'!r}" if values.shape[-1:] == (6 - per_item,) else ""
        raise InvalidCoordinatesError(
            f"{_PLURAL[kind]} need {per_item} values on the last axis, got shape {tuple(values.shape)}{hint}"
        )
    finite = torch.isfinite(values) if isinstance(values, torch.Tensor) else np.isfinite(values)
    if not bool(finite.all()):
        raise InvalidCoordinatesError("coordinates must be finite (no NaN or infinity)")
    if source.ndim == 2:
        if values.ndim < 2 or values.shape[0] != source.shape[0]:
            raise InvalidCoordinatesError(
                f"{source.shape[0]} sizes were given, so coordinates need a leading axis of {source.shape[0]} "
                f"images, got shape {tuple(values.shape)}"
            )
    if kind == "box":
        _check_boxes(values, fmt)
        if fmt == "xywh":
            values = _concat(values[..., :2], values[..., :2] + values[..., 2:])
    # (..., 2) of (width, height) per image, broadcast against (..., k) coordinates as x, y, x, y.
    source_wh = source[..., ::-1]
    target_wh = target[..., ::-1]
    repeat = per_item // 2
    source_wh, target_wh = np.tile(source_wh, repeat), np.tile(target_wh, repeat)
    if source.ndim == 2:
        shape = (source.shape[0],) + (1,) * (values.ndim - 2) + (per_item,)
        source_wh, target_wh = source_wh.reshape(shape), target_wh.reshape(shape)
    mapped = values * _like(values, target_wh) / _like(values, source_wh)
    if clamp:
        bound = _like(values, target_wh)
        mapped = mapped.clip(bound * 0, bound)
    if kind == "box" and fmt == "xywh":
        mapped = _concat(mapped[..., :2], mapped[..., 2:] - mapped[..., :2])
    return mapped.tolist() if isinstance(coords, (list, tuple)) else mapped


def _concat(first: np.ndarray | torch.Tensor, second: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    if isinstance(first, torch.Tensor):
        return torch.cat((first, second), dim=-1)
    return np.concatenate((first, second), axis=-1)


def _rescale(
    coords: Coordinates,
    source_sizes: Sizes,
    target_sizes: Sizes,
    *,
    source_name: str,
    target_name: str,
    fmt: BoxFormat,
    kind: CoordinateKind,
    clamp: bool,
) -> Coordinates:
    if fmt not in ("xyxy", "xywh"):
        raise UnsupportedOptionError(f"fmt must be 'xyxy' or 'xywh', got {fmt!r}")
    if kind not in _VALUES_PER:
        raise UnsupportedOptionError(f"kind must be 'box' or 'point', got {kind!r}")
    source = _parse_sizes(source_sizes, source_name)
    target = _parse_sizes(target_sizes, target_name)
    if source.ndim == 2 or target.ndim == 2:
        if source.ndim == target.ndim == 2 and len(source) != len(target):
            raise InvalidCoordinatesError(
                f"{source_name} has {len(source)} sizes but {target_name} has {len(target)}: one per image each"
            )
        source, target = np.broadcast_arrays(np.atleast_2d(source), np.atleast_2d(target))
        if isinstance(coords, (list, tuple)):
            if len(coords) != len(source):
                raise InvalidCoordinatesError(
                    f"{len(source)} sizes were given, so coordinates need one entry per image, got {len(coords)}"
                )
            return [
                [] if isinstance(item, (list, tuple)) and not item else _rescale_array(item, *pair, fmt, kind, clamp)
                for item, pair in zip(coords, zip(source, target, strict=True), strict=True)
            ]
    return _rescale_array(coords, source, target, fmt, kind, clamp)


def to_model_coords(
    coords: Coordinates,
    original_size: Sizes,
    model_size: Sizes,
    *,
    fmt: BoxFormat = "xyxy",
    kind: CoordinateKind = "box",
    clamp: bool = True,
) -> Coordinates:
    """Original-image pixels -> model-input pixels (what Qwen2.5-VL reads and prints).

    Args:
        coords: boxes ``(..., 4)`` or points ``(..., 2)``; list, NumPy array or torch tensor.
        original_size: ``(height, width)`` of the original image, or one per image.
        model_size: ``(height, width)`` the model sees (``Preprocessed.resized_sizes``,
            :func:`vlfast.smart_resize`, :func:`model_sizes_from_grid`), or one per image.
        fmt: ``"xyxy"`` or ``"xywh"`` boxes. kind: ``"box"`` or ``"point"``.
        clamp: clip the result to the model image.

    Raises:
        InvalidCoordinatesError: wrong shape, non-finite values, inverted box, bad sizes.
        UnsupportedOptionError: unknown ``fmt`` or ``kind``.

    Example:
        >>> to_model_coords([100, 50, 300, 200], original_size=(1080, 1920), model_size=(1092, 1932))
        [100.625, 50.55555555555556, 301.875, 202.22222222222223]
    """
    return _rescale(
        coords,
        original_size,
        model_size,
        source_name="original_size",
        target_name="model_size",
        fmt=fmt,
        kind=kind,
        clamp=clamp,
    )


def to_original_coords(
    coords: Coordinates,
    original_size: Sizes,
    model_size: Sizes,
    *,
    fmt: BoxFormat = "xyxy",
    kind: CoordinateKind = "box",
    clamp: bool = True,
) -> Coordinates:
    """Model-input pixels (e.g. a Qwen2.5-VL ``bbox_2d``) -> original-image pixels.

    The inverse of :func:`to_model_coords`, with the same arguments in the same order;
    ``clamp`` clips to the original image.

    Example:
        >>> to_original_coords([[14, 28, 700, 560]], original_size=(1080, 1920), model_size=(1092, 1932))
        [[13.91304347826087, 27.692307692307693, 695.6521739130435, 553.8461538461538]]
    """
    return _rescale(
        coords,
        model_size,
        original_size,
        source_name="model_size",
        target_name="original_size",
        fmt=fmt,
        kind=kind,
        clamp=clamp,
    )


def to_relative_1000(
    coords: Coordinates,
    size: Sizes,
    *,
    fmt: BoxFormat = "xyxy",
    kind: CoordinateKind = "box",
    clamp: bool = True,
) -> Coordinates:
    """Pixels of an image of ``size`` -> Qwen2-VL's relative ``[0, 1000]`` coordinates.

    Qwen2-VL writes boxes as ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>`` with integers in
    that range; round the result for a prompt. ``size`` may be the original or the model
    size, whichever space ``coords`` are in.

    Example:
        >>> to_relative_1000([480, 270, 960, 540], size=(1080, 1920))
        [250.0, 250.0, 500.0, 500.0]
    """
    relative = (RELATIVE_RANGE, RELATIVE_RANGE)
    return _rescale(coords, size, relative, source_name="size", target_name="relative", fmt=fmt, kind=kind, clamp=clamp)


def from_relative_1000(
    coords: Coordinates,
    size: Sizes,
    *,
    fmt: BoxFormat = "xyxy",
    kind: CoordinateKind = "box",
    clamp: bool = True,
) -> Coordinates:
    """Qwen2-VL's relative ``[0, 1000]`` coordinates -> pixels of an image of ``size``.

    Example:
        >>> from_relative_1000([250, 250, 500, 500], size=(1080, 1920))
        [480.0, 270.0, 960.0, 540.0]
    """
    relative = (RELATIVE_RANGE, RELATIVE_RANGE)
    return _rescale(coords, relative, size, source_name="relative", target_name="size", fmt=fmt, kind=kind, clamp=clamp)


def model_sizes_from_grid(
    image_grid_thw: Sequence[int] | Sequence[Sequence[int]] | np.ndarray | torch.Tensor,
    patch_size: int = PATCH_SIZE,
) -> tuple[int, int] | list[tuple[int, int]]:
    """Model-input ``(height, width)`` from ``image_grid_thw``: ``(h * patch_size, w * patch_size)``.

    A single ``(t, h, w)`` row gives one size, an ``(N, 3)`` grid a list of them.

    Example:
        >>> model_sizes_from_grid(torch.tensor([[1, 78, 138], [1, 36, 36]]))
        [(1092, 1932), (504, 504)]
    """
    try:
        grid = np.asarray(
            image_grid_thw.tolist() if isinstance(image_grid_thw, torch.Tensor) else image_grid_thw, dtype=np.int64
        )
    except (TypeError, ValueError) as error:
        raise InvalidCoordinatesError(f"image_grid_thw must be integers of shape (3,) or (N, 3): {error}") from error
    if grid.ndim not in (1, 2) or grid.shape[-1] != 3 or (grid <= 0).any():
        raise InvalidCoordinatesError(
            f"image_grid_thw must be positive integers of shape (3,) or (N, 3), got {grid.tolist()}"
        )
    check_positive_ints(patch_size=patch_size)
    sizes = [(int(h) * patch_size, int(w) * patch_size) for _, h, w in grid.reshape(-1, 3)]
    return sizes[0] if grid.ndim == 1 else sizes
