"""Resample plans: the fixed-point coefficients of a separable resize, computed on the host.

A plan says, for every output pixel of one axis, which source pixels it reads
(``starts``, ``counts``) and with which integer weights, at which precision. Both
executors (the C++ kernel and the Triton kernels) apply a plan the same way::

    acc = (1 << (precision - 1)) + sum(src[starts[i] + k] * weights[i, k] for k < counts[i])
    out = clamp(acc >> precision, 0, 255)            # arithmetic shift

which is what Pillow's ``Resample.c`` (``backend="pil"``) and torch's CPU uint8
antialiased kernel (``backend="torchvision"``) do. The float64 weights are computed
here with the same expressions, in the same order, as each reference, so the integer
weights - and therefore every output byte - are identical.

A nearest-neighbour resize is a one-tap plan whose weight is ``1 << precision``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

import numpy as np

from .errors import InvalidImageError, UnsupportedOptionError
from .releases import pillow_vertical_first, torchvision_resizes_lanczos

__all__ = [
    "parse_backend",
    "stock_filter",
    "supported_filters",
    "AxisPlan",
    "Backend",
    "Filter",
    "ResamplePlan",
    "axis_plan",
    "resample_plan",
]

#: Pillow's fixed-point precision for 8-bit images: 32 bits - 8 for the pixel - 2 for overshoot.
PIL_PRECISION_BITS = 22
#: torch stores uint8 weights as int16 and picks the precision per axis, below this bound.
TORCH_MAX_PRECISION_BITS = 22


class Backend(str, Enum):
    """The stock transformers backend whose arithmetic is reproduced."""

    PIL = "pil"
    TORCHVISION = "torchvision"


def parse_backend(value: Backend | str) -> Backend:
    """``value`` as a :class:`Backend`, or :class:`UnsupportedOptionError` naming the choices."""
    try:
        return Backend(value)
    except ValueError:
        raise UnsupportedOptionError(f"backend must be 'torchvision' or 'pil', got {value!r}") from None


class Filter(str, Enum):
    """Resampling filters, named as in ``PIL.Image.Resampling``."""

    NEAREST = "nearest"
    BOX = "box"
    BILINEAR = "bilinear"
    HAMMING = "hamming"
    BICUBIC = "bicubic"
    LANCZOS = "lanczos"

    @classmethod
    def from_any(cls, value: object) -> Filter:
        """Accept a ``Filter``, its name, a ``PIL.Image.Resampling`` member or its int code,
        or a torchvision ``InterpolationMode``."""
        if isinstance(value, Filter):
            return value
        codes = {0: cls.NEAREST, 4: cls.BOX, 2: cls.BILINEAR, 5: cls.HAMMING, 3: cls.BICUBIC, 1: cls.LANCZOS}
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and int(value) in codes:
            return codes[int(value)]
        name = getattr(value, "value", value)
        if isinstance(name, str):
            name = name.lower()
            if name == "nearest-exact":
                return cls.NEAREST
            for member in cls:
                if member.value == name:
                    return member
        if isinstance(name, (int, np.integer)) and int(name) in codes:
            return codes[int(name)]
        raise UnsupportedOptionError(
            f"unknown resample filter {value!r}; expected one of {[m.value for m in cls]} "
            "or a PIL.Image.Resampling / torchvision InterpolationMode value"
        )


# ---------------------------------------------------------------------------
# Filter kernels, written exactly as each reference writes them (operation order
# matters for the last bit of the float64 weight).
# ---------------------------------------------------------------------------


def _pil_box(x: float) -> float:
    return 1.0 if -0.5 < x <= 0.5 else 0.0


def _pil_bilinear(x: float) -> float:
    x = -x if x < 0.0 else x
    return 1.0 - x if x < 1.0 else 0.0


_F32_054 = float(np.float32(0.54))
_F32_046 = float(np.float32(0.46))


def _pil_hamming(x: float) -> float:
    x = -x if x < 0.0 else x
    if x == 0.0:
        return 1.0
    if x >= 1.0:
        return 0.0
    x = x * math.pi
    # Pillow writes 0.54f + 0.46f * cos(x): float constants promoted to double.
    return math.sin(x) / x * (_F32_054 + _F32_046 * math.cos(x))


def _pil_bicubic(x: float) -> float:
    a = -0.5
    x = -x if x < 0.0 else x
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def _pil_lanczos(x: float) -> float:
    if -3.0 <= x < 3.0:
        return _sinc(x) * _sinc(x / 3)
    return 0.0


def _torch_bilinear(x: float) -> float:
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


def _torch_bicubic(x: float) -> float:
    # torch's cubic_convolution1/2 with A = -0.5 (UpSample.h), a different operation
    # order than Pillow's: it can change the last bit of a weight.
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2.0:
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return 0.0


def _torch_lanczos(x: float) -> float:
    return _pil_lanczos(x)


@dataclass(frozen=True)
class _FilterSpec:
    function: Callable[[float], float]
    support: float


_FILTERS: dict[Backend, dict[Filter, _FilterSpec]] = {
    Backend.PIL: {
        Filter.BOX: _FilterSpec(_pil_box, 0.5),
        Filter.BILINEAR: _FilterSpec(_pil_bilinear, 1.0),
        Filter.HAMMING: _FilterSpec(_pil_hamming, 1.0),
        Filter.BICUBIC: _FilterSpec(_pil_bicubic, 2.0),
        Filter.LANCZOS: _FilterSpec(_pil_lanczos, 3.0),
    },
    # torch describes filters by "interp_size" (taps at scale 1); support = interp_size / 2.
    Backend.TORCHVISION: {
        Filter.BILINEAR: _FilterSpec(_torch_bilinear, 1.0),
        Filter.BICUBIC: _FilterSpec(_torch_bicubic, 2.0),
        Filter.LANCZOS: _FilterSpec(_torch_lanczos, 3.0),
    },
}


@dataclass(frozen=True)
class AxisPlan:
    """Fixed-point resampling coefficients for one axis.

    Attributes:
        in_size, out_size: source and destination length of the axis.
        starts: ``int32[out_size]``, first source index read by each output pixel.
        counts: ``int32[out_size]``, number of source pixels read (``>= 1``).
        weights: ``int32[out_size, taps]``, integer weights; zero past ``counts``.
        precision: fractional bits of the weights (the right shift of the accumulator).
    """

    in_size: int
    out_size: int
    starts: np.ndarray
    counts: np.ndarray
    weights: np.ndarray
    precision: int

    def __post_init__(self) -> None:
        # Immutable, like the plan: plans are cached and shared by every call and every engine.
        for array in (self.starts, self.counts, self.weights):
            if isinstance(array, np.ndarray):
                array.setflags(write=False)

    @property
    def taps(self) -> int:
        """Width of the weight matrix (the largest tap count)."""
        return int(self.weights.shape[1])


@dataclass(frozen=True)
class ResamplePlan:
    """A two-pass resize of an ``in_height x in_width`` image to ``out_height x out_width``.

    ``horizontal`` / ``vertical`` are ``None`` when that axis keeps its size (the
    reference skips the pass). ``vertical_first`` is the pass order of the reference;
    it matters for exactness because the intermediate image is rounded to uint8.
    """

    in_height: int
    in_width: int
    out_height: int
    out_width: int
    horizontal: AxisPlan | None
    vertical: AxisPlan | None
    vertical_first: bool

    def __post_init__(self) -> None:
        """Check, once, that the passes agree with the sizes the plan states (every engine relies on it).

        Raises:
            InvalidImageError: a pass that reads or writes another size than the plan's.
        """
        passes = (
            ("horizontal", self.horizontal, "width", self.in_width),
            ("vertical", self.vertical, "height", self.in_height),
        )
        for pass_name, axis, side, in_size in passes:
            if axis is not None and axis.in_size != in_size:
                raise InvalidImageError(
                    f"{pass_name} plan resamples {axis.in_size} input pixels but the image {side} is {in_size}"
                )
        resized = (
            self.vertical.out_size if self.vertical is not None else self.in_height,
            self.horizontal.out_size if self.horizontal is not None else self.in_width,
        )
        if resized != (self.out_height, self.out_width):
            raise InvalidImageError(
                f"the plan's passes resize to {resized[0]}x{resized[1]} but it says {self.out_height}x{self.out_width}"
            )


def _window_weights(in_size: int, out_size: int, spec: _FilterSpec) -> tuple[list[int], list[int], list[list[float]]]:
    """Float64 weights of the antialiased window, as Pillow's ``precompute_coeffs`` and torch's
    ``_compute_indices_min_size_weights_aa`` compute them (the two agree on this part)."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = spec.support * filterscale
    max_taps = int(math.ceil(support)) * 2 + 1
    inv_filterscale = 1.0 / filterscale
    starts: list[int] = []
    counts: list[int] = []
    rows: list[list[float]] = []
    for i in range(out_size):
        center = (i + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        count = min(max(xmax - xmin, 0), max_taps)
        w = [spec.function((j + xmin - center + 0.5) * inv_filterscale) for j in range(count)]
        total = 0.0
        for value in w:
            total += value
        if total != 0.0:
            w = [value / total for value in w]
        starts.append(xmin)
        counts.append(count)
        rows.append(w)
    return starts, counts, rows


def _round_half_away(value: float) -> int:
    """C's ``(int)(v < 0 ? v - 0.5 : v + 0.5)``."""
    return int(value - 0.5) if value < 0 else int(value + 0.5)


def _pack(in_size: int, out_size: int, starts, counts, int_rows, precision: int) -> AxisPlan:
    taps = max(1, max(counts, default=1))
    weights = np.zeros((out_size, taps), dtype=np.int32)
    for i, row in enumerate(int_rows):
        weights[i, : len(row)] = row
    return AxisPlan(
        in_size=in_size,
        out_size=out_size,
        starts=np.asarray(starts, dtype=np.int32),
        counts=np.asarray(counts, dtype=np.int32),
        weights=weights,
        precision=precision,
    )


def _pil_nearest_indices(in_size: int, out_size: int) -> list[int]:
    """Pillow resizes with NEAREST through an affine transform (``ImagingScaleAffine``):
    the source coordinate is accumulated in float64 step by step, then truncated."""
    step = in_size / out_size
    coordinate = step * 0.5
    indices = []
    for _ in range(out_size):
        index = -1 if coordinate < 0.0 else int(coordinate)
        indices.append(min(max(index, 0), in_size - 1))
        coordinate += step
    return indices


def supported_filters(backend: Backend | str) -> tuple[Filter, ...]:
    """The filters whose stock ``backend`` resize vlfast reproduces bit for bit."""
    backend = parse_backend(backend)
    nearest = (Filter.NEAREST,) if backend is Backend.PIL else ()
    return nearest + tuple(_FILTERS[backend])


def axis_plan(in_size: int, out_size: int, resample: Filter | str | int, backend: Backend | str) -> AxisPlan:
    """The plan of one axis, cached per ``(in_size, out_size, resample, backend)``.

    Example:
        >>> plan = axis_plan(1080, 504, Filter.BICUBIC, Backend.PIL)
        >>> plan.starts.shape, plan.precision
        ((504,), 22)
    """
    # Normalised before the cache: a str Enum hashes like its value, so "pil" and Backend.PIL
    # would share a cache entry that one of them computed with the wrong rules.
    backend = parse_backend(backend)
    return _axis_plan(in_size, out_size, stock_filter(Filter.from_any(resample), backend), backend)


def stock_filter(resample: Filter, backend: Backend) -> Filter:
    """The filter the stock ``backend`` resizes with when asked for ``resample``: the torchvision backend
    swaps LANCZOS for BICUBIC unless torchvision >= 0.27 is installed (see :mod:`vlfast.releases`)."""
    if backend is Backend.TORCHVISION and resample is Filter.LANCZOS and not torchvision_resizes_lanczos():
        return Filter.BICUBIC
    return resample


@lru_cache(maxsize=1024)
def _axis_plan(in_size: int, out_size: int, resample: Filter, backend: Backend) -> AxisPlan:
    if in_size <= 0 or out_size <= 0:
        raise UnsupportedOptionError(f"axis sizes must be positive, got {in_size} -> {out_size}")
    if resample is Filter.NEAREST:
        if backend is not Backend.PIL:
            # torch's CPU nearest-exact rounds the source coordinate in float32 on one code path
            # and via float64 on another, chosen by output shape and threading: not reproducible.
            raise UnsupportedOptionError(
                "resample='nearest' is not supported with backend='torchvision': torch's CPU nearest-exact "
                "index rounding depends on the output shape, so it cannot be reproduced bit for bit; "
                "use backend='pil' for nearest-neighbour resizing"
            )
        indices = _pil_nearest_indices(in_size, out_size)
        ones = [[1 << PIL_PRECISION_BITS]] * out_size
        return _pack(in_size, out_size, indices, [1] * out_size, ones, PIL_PRECISION_BITS)

    spec = _FILTERS[backend].get(resample)
    if spec is None:
        raise UnsupportedOptionError(
            f"resample={resample.value!r} is not supported by the {backend.value} backend "
            f"(the stock processor cannot resize tensors with it); "
            f"supported: {['nearest'] + [f.value for f in _FILTERS[backend]]}"
        )
    starts, counts, rows = _window_weights(in_size, out_size, spec)
    if backend is Backend.PIL:
        precision = PIL_PRECISION_BITS
        scale = float(1 << precision)
        int_rows = [[_round_half_away(w * scale) for w in row] for row in rows]
    else:
        # torch: the largest precision at which the largest weight of the axis fits int16.
        largest = max((w for row in rows for w in row), default=0.0)
        largest = max(largest, 0.0)
        precision = 0
        while precision < TORCH_MAX_PRECISION_BITS:
            if int(0.5 + largest * (1 << (precision + 1))) >= (1 << 15):
                break
            precision += 1
        scale = float(1 << precision)
        int_rows = [[_round_half_away(w * scale) for w in row] for row in rows]
    return _pack(in_size, out_size, starts, counts, int_rows, precision)


def resample_plan(
    in_height: int,
    in_width: int,
    out_height: int,
    out_width: int,
    resample: Filter | str | int = Filter.BICUBIC,
    backend: Backend | str = Backend.TORCHVISION,
) -> ResamplePlan:
    """The full two-pass plan for one image size, cached (the last 256 sizes).

    Example:
        >>> plan = resample_plan(1080, 1920, 1092, 1932, Filter.BICUBIC, Backend.PIL)
        >>> plan.vertical_first
        False
    """
    return _resample_plan(in_height, in_width, out_height, out_width, Filter.from_any(resample), parse_backend(backend))


#: A plan of a few-thousand-pixel photo is ~100 kB: 256 of them bound the cache to tens of MB.
@lru_cache(maxsize=256)
def _resample_plan(
    in_height: int, in_width: int, out_height: int, out_width: int, resample: Filter, backend: Backend
) -> ResamplePlan:
    horizontal = axis_plan(in_width, out_width, resample, backend) if in_width != out_width else None
    vertical = axis_plan(in_height, out_height, resample, backend) if in_height != out_height else None
    vertical_first = False
    if backend is Backend.PIL and horizontal is not None and vertical is not None:
        vertical_first = pillow_vertical_first(in_height, in_width, out_height, out_width)
    return ResamplePlan(in_height, in_width, out_height, out_width, horizontal, vertical, vertical_first)
