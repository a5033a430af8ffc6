"""Target sizes: the ``smart_resize`` rule of transformers (Qwen2-VL), qwen-vl-utils' variant, and the rule whose
pixel budget counts frames (Qwen3-VL videos, GLM-4.1V / GLM-4.6V images and videos); :class:`SizeRule` names the
rules the pipeline can follow."""

from __future__ import annotations

import math
from enum import Enum
from functools import lru_cache

from .defaults import (
    IMAGE_MAX_PIXELS,
    IMAGE_MIN_PIXELS,
    MAX_ASPECT_RATIO,
    MERGE_SIZE,
    PATCH_SIZE,
    QWEN_VL_UTILS_MAX_TOKENS,
    QWEN_VL_UTILS_MIN_TOKENS,
)
from .errors import AspectRatioError, InvalidImageError, UnsupportedOptionError
from .options import is_positive_int

__all__ = ["SizeRule", "smart_resize", "smart_resize_frames", "smart_resize_qwen_vl_utils", "target_size"]

DEFAULT_FACTOR = PATCH_SIZE * MERGE_SIZE


def _check(height: int, width: int, factor: int) -> None:
    for name, value in (("height", height), ("width", width), ("factor", factor)):
        if not is_positive_int(value):
            raise InvalidImageError(f"{name} must be a positive integer, got {value!r}")
    _check_aspect_ratio(height, width)


def _check_aspect_ratio(height: int, width: int) -> None:
    ratio = max(height, width) / min(height, width)
    if ratio > MAX_ASPECT_RATIO:
        raise AspectRatioError(f"absolute aspect ratio must be smaller than {MAX_ASPECT_RATIO}, got {ratio}")


def smart_resize(
    height: int,
    width: int,
    factor: int = DEFAULT_FACTOR,
    min_pixels: float = IMAGE_MIN_PIXELS,
    max_pixels: float = IMAGE_MAX_PIXELS,
) -> tuple[int, int]:
    """The model input size for a ``height x width`` image, exactly as transformers computes it.

    Both sides become multiples of ``factor`` (Python's round-half-even), the area is
    brought inside ``[min_pixels, max_pixels]`` keeping the aspect ratio, and when shrinking
    each side is at least ``factor``. The bounds may be floats (``1.5e6``), as the stock takes them.

    Raises:
        AspectRatioError: ``max(h, w) / min(h, w) > 200``.
        InvalidImageError: a size that is not a positive integer.

    Example:
        >>> smart_resize(1080, 1920)
        (728, 1316)
    """
    _check(height, width, factor)
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def smart_resize_qwen_vl_utils(
    height: int,
    width: int,
    factor: int = DEFAULT_FACTOR,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
) -> tuple[int, int]:
    """``qwen_vl_utils.smart_resize``: the rule of Qwen's own preprocessing helpers.

    It differs from :func:`smart_resize` in three ways: the first rounding is clamped to at
    least ``factor`` (so a 10-pixel side starts at 28, not 0), the shrinking branch is not
    clamped (a side can reach 0), and the defaults are 4 and 16384 tokens of ``factor**2``
    pixels. For 10x1000 with the defaults of both: ``(28, 1008)`` here, ``(28, 560)`` in
    transformers.
    """
    _check(height, width, factor)
    max_pixels = max_pixels if max_pixels is not None else QWEN_VL_UTILS_MAX_TOKENS * factor**2
    min_pixels = min_pixels if min_pixels is not None else QWEN_VL_UTILS_MIN_TOKENS * factor**2
    if max_pixels < min_pixels:
        raise UnsupportedOptionError(f"max_pixels ({max_pixels}) must be >= min_pixels ({min_pixels})")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


#: The defaults of the frame-budget ``smart_resize`` (the same in every stock copy).
FRAMES_MIN_PIXELS = 112 * 112
FRAMES_MAX_PIXELS = 14 * 14 * 2 * 2 * 2 * 6144


def smart_resize_frames(
    num_frames: int,
    height: int,
    width: int,
    temporal_factor: int = 2,
    factor: int = 28,
    min_pixels: float = FRAMES_MIN_PIXELS,
    max_pixels: float = FRAMES_MAX_PIXELS,
) -> tuple[int, int]:
    """The ``smart_resize`` whose pixel budget counts frames: ``Qwen3VLVideoProcessor``'s, and GLM-4.1V /
    GLM-4.6V's (``Glm4vImageProcessor``, ``Glm46VImageProcessor``, their PIL twins and video processors).

    It differs from :func:`smart_resize` in two ways: a side below ``factor`` first scales both
    sides up (truncated to ints) until the smaller one reaches it, instead of rounding to 0, and
    the pixel budget counts ``num_frames`` rounded to ``temporal_factor`` (an image counts as
    ``temporal_factor`` frames, so its own budget is halved). The aspect ratio is checked after
    the upscaling.

    Raises:
        UnsupportedOptionError: ``num_frames < temporal_factor``.
        AspectRatioError: ``max(h, w) / min(h, w) > 200`` after the upscaling.
        InvalidImageError: a size that is not a positive integer.
    """
    for name, value in (("num_frames", num_frames), ("temporal_factor", temporal_factor)):
        if not is_positive_int(value):
            raise InvalidImageError(f"{name} must be a positive integer, got {value!r}")
    if num_frames < temporal_factor:
        raise UnsupportedOptionError(f"num_frames ({num_frames}) must be >= temporal_factor ({temporal_factor})")
    for name, value in (("height", height), ("width", width), ("factor", factor)):
        if not is_positive_int(value):
            raise InvalidImageError(f"{name} must be a positive integer, got {value!r}")
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height = int(height * scale)
        width = int(width * scale)
    _check_aspect_ratio(height, width)
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    t_bar = round(num_frames / temporal_factor) * temporal_factor
    if t_bar * h_bar * w_bar > max_pixels:
        beta = math.sqrt((num_frames * height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif t_bar * h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (num_frames * height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


class SizeRule(str, Enum):
    """Which ``smart_resize`` gives a clip's target size."""

    #: :func:`smart_resize`: each frame's own budget (Qwen2-VL, Qwen2.5-VL, Qwen3-VL and Qwen3.5 images).
    QWEN2_VL = "qwen2_vl"
    #: :func:`smart_resize_frames`: the budget counts the frames (Qwen3-VL videos, GLM-4.1V / GLM-4.6V).
    FRAMES = "frames"

    @classmethod
    def parse(cls, value: SizeRule | str) -> SizeRule:
        """``value`` as a :class:`SizeRule`, or :class:`UnsupportedOptionError` listing the rules."""
        try:
            return cls(value)
        except ValueError:
            raise UnsupportedOptionError(
                f"size_rule must be one of {[rule.value for rule in cls]}, got {value!r}"
            ) from None


@lru_cache(maxsize=1024, typed=True)  # every call of a batch asks it, mostly for sizes seen before
def target_size(
    rule: SizeRule,
    num_frames: int,
    height: int,
    width: int,
    *,
    factor: int,
    temporal_factor: int,
    min_pixels: float,
    max_pixels: float,
) -> tuple[int, int]:
    """``(height, width)`` of the frames of a clip of ``num_frames`` frames by ``rule`` (a still image counts as
    ``temporal_factor`` frames under :attr:`SizeRule.FRAMES`, as the stock GLM image processors count it)."""
    if rule is SizeRule.FRAMES:
        return smart_resize_frames(num_frames, height, width, temporal_factor, factor, min_pixels, max_pixels)
    return smart_resize(height, width, factor, min_pixels, max_pixels)
