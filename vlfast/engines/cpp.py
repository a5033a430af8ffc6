"""The C++ CPU engine: one call for all the images or video frames of a batch, writing straight into the output.

The extension ``vlfast._C`` resizes a uint8 HWC frame with a :class:`~vlfast.plans.ResamplePlan`,
looks every byte up in a ``(C, 256)`` table (or computes it with the table's formula, where that is faster
and gives the same bits) and writes the frame's patch rows (see
:mod:`vlfast.layout`), in one pass over the output, on several threads, without the GIL: each frame
split over the threads, or frames too small to split side by side, a frame per thread.
Table entries are copied bit for bit, so one kernel serves every output dtype (at the ``avx2`` and ``avx512``
levels, float items are computed with the table's formula instead, once it has given every entry's bits).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch

from ..errors import DeviceError, InvalidImageError, UnsupportedOptionError
from ..plans import AxisPlan, ResamplePlan
from ..tables import TableFormula
from .base import EngineName, FrameJob, PatchLayout, check_jobs

try:
    from .. import _C
except ImportError:  # built without a C++ compiler: the Triton engine may still be available
    _C = None

__all__ = [
    "CppEngine",
    "axis_arguments",
    "available",
    "capped_simd_level",
    "default_num_threads",
    "formula_arguments",
    "frame_arguments",
    "run_frame",
    "simd_level",
    "simd_levels",
]

_NOT_BUILT = "the vlfast C++ extension (vlfast._C) is not built; reinstall vlfast with a C++17 compiler"

#: Channels the engine's callers hand it (grey, RGB, RGBA); the kernel itself takes any count.
MAX_CHANNELS = 4

#: Output dtypes, by the dtype that hands their bits to NumPy: their own where NumPy has it (no view to make),
#: the integer dtype of the same size for bfloat16. The kernel copies items by size, whatever their dtype.
_BIT_VIEWS: dict[torch.dtype, torch.dtype] = {
    torch.float32: torch.float32,
    torch.bfloat16: torch.int16,
    torch.float16: torch.float16,
    torch.uint8: torch.uint8,
}


def available() -> bool:
    """Whether the C++ extension was built and imports."""
    return _C is not None


def simd_level() -> str | None:
    """The instruction set the kernels run with (``avx512``, ``avx2`` or ``portable``: the CPU's
    highest, unless capped with ``_C.set_simd_level``), or ``None`` when the extension is not built."""
    return None if _C is None else _C.simd_level()


def simd_levels() -> tuple[str, ...]:
    """The instruction sets the kernels can run with on this CPU, lowest first (``portable``, then ``avx2``
    and ``avx512`` where the CPU has them); empty when the extension is not built."""
    return () if _C is None else tuple(_C.simd_levels())


@contextmanager
def capped_simd_level(level: str | None) -> Iterator[None]:
    """Runs the kernels at ``level`` (one of :func:`simd_levels`; ``None``: as they are) inside the block,
    then at the level they had: e.g. to measure what a CPU without AVX-512 gets. The level is the
    process's, so frames other threads run meanwhile take it too.

    Raises:
        DeviceError: the extension is not built.
        UnsupportedOptionError: this CPU has no ``level``.
    """
    if level is None:
        yield
        return
    if _C is None:
        raise DeviceError(_NOT_BUILT)
    if level not in simd_levels():
        raise UnsupportedOptionError(f"this CPU runs the kernels at {', '.join(simd_levels())}, not at {level!r}")
    before = _C.simd_level()
    _C.set_simd_level(level)
    try:
        yield
    finally:
        _C.set_simd_level(before)


def default_num_threads() -> int:
    """Threads per frame when the caller names none: torch's intra-op thread count."""
    return torch.get_num_threads()


def axis_arguments(axis: AxisPlan | None) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, int] | None:
    """An axis plan as the extension takes it: ``(in_size, out_size, starts, counts, weights, precision)``."""
    if axis is None:
        return None
    return (axis.in_size, axis.out_size, axis.starts, axis.counts, axis.weights, axis.precision)


def _numpy_bits(tensor: torch.Tensor, name: str) -> np.ndarray:
    """A NumPy view (no copy) of the bits of a CPU, contiguous ``tensor`` of a supported dtype."""
    bit_view = _BIT_VIEWS.get(tensor.dtype)
    if bit_view is None:
        raise UnsupportedOptionError(
            f"{name} dtype must be one of {[str(d).removeprefix('torch.') for d in _BIT_VIEWS]}, got {tensor.dtype}"
        )
    if tensor.device.type != "cpu":
        raise InvalidImageError(f"the C++ engine writes CPU tensors; {name} is on {tensor.device}")
    if not tensor.is_contiguous():
        raise InvalidImageError(f"{name} must be contiguous")
    return (tensor if bit_view == tensor.dtype else tensor.view(bit_view)).numpy()


def frame_arguments(
    image: np.ndarray,
    plan: ResamplePlan,
    table: torch.Tensor,
    out: torch.Tensor,
    row_offset: int,
    *,
    patch_size: int,
    merge_size: int,
    temporal_patch_size: int,
    slot_begin: int = 0,
    slot_count: int | None = None,
) -> tuple:
    """:func:`run_frame`'s frame, checked as it checks it, in the form the extension takes one frame: the
    arguments of its ``run_frame`` less ``num_threads``, an item of its ``run_frames`` list. For
    :class:`CppEngine` and for a caller holding another build of the extension (``bench/bench_cpu_ab.py``).

    Raises:
        InvalidImageError, UnsupportedOptionError: as :func:`run_frame`.
    """
    _checked_image(image, plan)
    if table.dtype != out.dtype:
        raise InvalidImageError(f"table dtype {table.dtype} differs from out dtype {out.dtype}")
    table_bits, out_bits = _numpy_bits(table, "table"), _numpy_bits(out, "out")
    layout = (patch_size, merge_size, temporal_patch_size)
    return _frame(image, plan, table_bits, out_bits, row_offset, layout, slot_begin, slot_count)


def _checked_image(image: np.ndarray, plan: ResamplePlan) -> np.ndarray:
    """``image``, or :class:`InvalidImageError` unless it is an array of the plan's input size."""
    if not isinstance(image, np.ndarray):
        raise InvalidImageError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[:2] != (plan.in_height, plan.in_width):
        raise InvalidImageError(
            f"the plan resizes {plan.in_height}x{plan.in_width} images but the image is "
            f"{image.shape[0]}x{image.shape[1]}"
        )
    return image


def _frame(
    image: np.ndarray,
    plan: ResamplePlan,
    table_bits: np.ndarray,
    out_bits: np.ndarray,
    row_offset: int,
    layout: tuple[int, int, int],
    slot_begin: int,
    slot_count: int | None,
) -> tuple:
    """:func:`frame_arguments` of an image already checked against its plan (:func:`_checked_image`, or
    :func:`check_jobs` for a batch) and of a table and an output already viewed as NumPy bits (a batch views
    them once); ``layout``: ``(patch_size, merge_size, temporal_patch_size)``."""
    temporal_patch_size = layout[2]
    return (
        image,
        axis_arguments(plan.horizontal),
        axis_arguments(plan.vertical),
        plan.vertical_first,
        table_bits,
        out_bits,
        row_offset,
        *layout,
        slot_begin,
        temporal_patch_size - slot_begin if slot_count is None else slot_count,
    )


def _run_checked(function: str, *arguments: object) -> None:
    """The extension's ``function(*arguments)``, its argument errors raised as :class:`InvalidImageError`."""
    if _C is None:
        raise DeviceError(_NOT_BUILT)
    try:
        getattr(_C, function)(*arguments)
    except (ValueError, TypeError) as error:  # TypeError: fields of a plan that are not ints or arrays
        raise InvalidImageError(str(error)) from None


def run_frame(
    image: np.ndarray,
    plan: ResamplePlan,
    table: torch.Tensor,
    out: torch.Tensor,
    row_offset: int,
    *,
    patch_size: int,
    merge_size: int,
    temporal_patch_size: int,
    slot_begin: int = 0,
    slot_count: int | None = None,
    num_threads: int | None = None,
    formula: TableFormula | None = None,
) -> None:
    """Resize ``image`` with ``plan`` and write its patch rows into ``out`` from ``row_offset``.

    Args:
        image: uint8 ``(H, W, C)`` array, any non-negative strides; ``(H, W)`` must be the plan's input size.
        plan: the two-pass resize; its output size must be a multiple of ``patch_size * merge_size``.
        table: CPU ``(C, 256)`` tensor of the output dtype (float32, bfloat16, float16 or uint8):
            ``table[c, v]`` is written for byte ``v`` of channel ``c``.
        out: CPU contiguous ``(rows, C * temporal_patch_size * patch_size**2)`` tensor of ``table``'s dtype.
        row_offset: first row of this frame's ``(H' / patch_size) * (W' / patch_size)`` rows.
        slot_begin, slot_count: temporal slots filled; by default all of them from ``slot_begin``
            (a still image fills ``0..T-1``, a video frame one slot).
        num_threads: the most threads this frame may use (small frames use fewer); by default
            :func:`default_num_threads`.
        formula: ``table``'s :class:`~vlfast.tables.TableFormula`, where known: at the ``avx2`` and ``avx512``
            levels the kernel computes float32, bfloat16 and float16 items with it (faster than a lookup there)
            once it has checked that it gives every entry's bits, and looks them up otherwise.

    Raises:
        InvalidImageError: bad image, plan, table or output (wrong dtype, shape, layout, size).
        UnsupportedOptionError: an output dtype the kernel cannot write.
        DeviceError: the extension is not built.
    """
    frame = frame_arguments(
        image,
        plan,
        table,
        out,
        row_offset,
        patch_size=patch_size,
        merge_size=merge_size,
        temporal_patch_size=temporal_patch_size,
        slot_begin=slot_begin,
        slot_count=slot_count,
    )
    threads = default_num_threads() if num_threads is None else num_threads
    _run_checked("run_frame", *frame, threads, formula_arguments(formula))


def formula_arguments(formula: TableFormula | None) -> tuple | None:
    """``formula`` in the form the extension takes it: ``(scale, scale_in_float64, mean, std)``, or None.

    Raises:
        UnsupportedOptionError: ``formula`` is neither a :class:`~vlfast.tables.TableFormula` nor None.
    """
    if formula is None:
        return None
    if not isinstance(formula, TableFormula):
        raise UnsupportedOptionError(
            f"formula must be a vlfast.tables.TableFormula or None, got {type(formula).__name__}"
        )
    return (formula.scale, formula.scale_in_float64, formula.mean, formula.std)


class CppEngine:
    """The C++ kernel: host frames in, a host output, one call for all frames, on several threads."""

    name = EngineName.CPP

    def available(self) -> bool:
        return available()

    def output_device(self, device: torch.device) -> torch.device:
        if not available():
            raise DeviceError(_NOT_BUILT)
        return torch.device("cpu")

    def run(
        self,
        jobs: Sequence[FrameJob],
        table: torch.Tensor,
        out: torch.Tensor,
        layout: PatchLayout,
        formula: TableFormula | None = None,
    ) -> None:
        """All ``jobs`` in one call of the extension: ``run_frames``, which runs frames too small to split side
        by side, or ``run_frame`` for a single job (whose call costs ~5 us less); ``formula`` as
        :func:`run_frame`'s."""
        check_jobs(jobs, table, out, layout, MAX_CHANNELS)
        table_bits, out_bits = _numpy_bits(table, "table"), _numpy_bits(out, "out")  # once for the batch
        sizes = (layout.patch_size, layout.merge_size, layout.temporal_patch_size)
        frames = [
            _frame(  # check_jobs checked each frame against its plan
                job.pixels.numpy(),
                job.plan,
                table_bits,
                out_bits,
                job.row_offset,
                sizes,
                job.slot_begin,
                job.slot_count,
            )
            for job in jobs
        ]
        if len(frames) == 1:
            _run_checked("run_frame", *frames[0], default_num_threads(), formula_arguments(formula))
        else:
            _run_checked("run_frames", frames, default_num_threads(), formula_arguments(formula))

    def expand(self, compact: torch.Tensor, table: torch.Tensor, out: torch.Tensor) -> None:
        if _C is None:
            raise DeviceError(_NOT_BUILT)
        if table.dtype != out.dtype:
            raise InvalidImageError(f"table dtype {table.dtype} differs from out dtype {out.dtype}")
        _run_checked(
            "expand",
            _numpy_bits(compact, "compact"),
            _numpy_bits(table, "table"),
            _numpy_bits(out, "out"),
            default_num_threads(),
        )
