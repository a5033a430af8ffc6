"""What every engine shares: the job list, the patch layout, the engine interface and the checks that keep
an engine inside its buffers.

A plan is checked once, where it is built (:class:`~vlfast.plans.ResamplePlan`); what is checked here is
what an engine is handed with it: frames that match their plans, rows and temporal slots inside ``out``,
a ``(C, 256)`` table of ``out``'s dtype. The C++ binding checks the same properties again, because it
must never read or write out of bounds whoever calls it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

import torch

from ..errors import DeviceError, InvalidImageError, UnsupportedOptionError
from ..options import OUTPUT_DTYPES, check_positive_ints
from ..plans import ResamplePlan
from ..tables import TABLE_SIZE, TableFormula

__all__ = ["Engine", "EngineName", "FrameJob", "PatchLayout", "check_jobs", "parse_engine"]


class EngineName(str, Enum):
    """Executors of a plan, by name; ``AUTO`` picks one for the output device."""

    AUTO = "auto"
    CPP = "cpp"
    TRITON = "triton"
    REFERENCE = "reference"


def parse_engine(value: EngineName | str | None) -> EngineName:
    """``value`` as an :class:`EngineName` (``None`` means ``"auto"``), or :class:`UnsupportedOptionError`."""
    try:
        return EngineName(EngineName.AUTO if value is None else value)
    except ValueError:
        names = tuple(name.value for name in EngineName)
        raise UnsupportedOptionError(f"engine must be one of {names}, got {value!r}") from None


@dataclass(frozen=True)
class PatchLayout:
    """The patch layout of :mod:`vlfast.layout`: ``patch_size``, ``merge_size``, ``temporal_patch_size``."""

    patch_size: int
    merge_size: int
    temporal_patch_size: int

    def __post_init__(self) -> None:
        check_positive_ints(
            patch_size=self.patch_size, merge_size=self.merge_size, temporal_patch_size=self.temporal_patch_size
        )

    @property
    def factor(self) -> int:
        """Side of the merged block in pixels: resized sides are multiples of it."""
        return self.patch_size * self.merge_size

    def columns(self, channels: int = 3) -> int:
        """Columns of ``pixel_values``: ``C * T * patch_size**2``."""
        return channels * self.temporal_patch_size * self.patch_size**2

    def rows(self, plan: ResamplePlan) -> int:
        """Rows one frame resized by ``plan`` fills: its patches."""
        return (plan.out_height // self.patch_size) * (plan.out_width // self.patch_size)


@dataclass(frozen=True)
class FrameJob:
    """One uint8 ``(H, W, C)`` frame to resample into ``pixel_values`` rows.

    ``row_offset`` is the first row of the frame's temporal block; the frame fills temporal
    slots ``slot_begin .. slot_begin + slot_count - 1`` (all of them for a still image).
    """

    pixels: torch.Tensor
    plan: ResamplePlan
    row_offset: int
    slot_begin: int
    slot_count: int


class Engine(Protocol):
    """An executor of plans: writes the rows of every job into a preallocated ``pixel_values``.

    A new engine is a module with a class of this shape, registered in :mod:`vlfast.engines.registry`.
    """

    name: EngineName

    def available(self) -> bool:
        """Whether it can run here at all (its extension or package imports, its device exists)."""

    def output_device(self, device: torch.device) -> torch.device:
        """Where it writes an output that goes to ``device``; :class:`DeviceError` when it cannot serve it."""

    def run(
        self,
        jobs: Sequence[FrameJob],
        table: torch.Tensor,
        out: torch.Tensor,
        layout: PatchLayout,
        formula: TableFormula | None = None,
    ) -> None:
        """Write each job's rows into ``out`` ``(rows, C*T*p*p)`` with ``table`` ``(C, 256)`` (``out``'s dtype),
        on ``out``'s device (host frames are the caller's to stage), after :func:`check_jobs`. ``formula``: the
        table's, where the caller knows it; an engine may compute entries with it where it gives their bits."""

    def expand(self, compact: torch.Tensor, table: torch.Tensor, out: torch.Tensor) -> None:
        """Fill ``out`` ``(rows, C*T*P*P)`` from compact uint8 patches ``(rows, C*P*P)`` and ``table``
        ``(C, 256)``, all on the engine's device: column ``(c*T + t)*P*P + j`` of a row gets
        ``table[c, compact[row, c*P*P + j]]`` for every ``t``."""


def check_jobs(
    jobs: Sequence[FrameJob], table: torch.Tensor, out: torch.Tensor, layout: PatchLayout, max_channels: int
) -> None:
    """Raise a typed error unless every job writes inside ``out`` from frames that match their plans.

    Raises:
        UnsupportedOptionError: ``out`` or ``table`` of the wrong type, dtype, shape or layout, or temporal
            slots outside ``0 .. T-1``.
        DeviceError: tensors on different devices.
        InvalidImageError: a frame of the wrong dtype, rank, channel count or size for its plan, a plan whose
            output is not a multiple of ``patch_size * merge_size``, or rows outside ``out``.
    """
    if not isinstance(out, torch.Tensor) or not isinstance(table, torch.Tensor):
        raise UnsupportedOptionError("out and table must be torch.Tensor")
    if out.dtype not in OUTPUT_DTYPES:
        raise UnsupportedOptionError(f"out dtype {out.dtype} is not supported; expected one of {OUTPUT_DTYPES}")
    if table.dtype != out.dtype:
        raise UnsupportedOptionError(
            f"table dtype {table.dtype} differs from out dtype {out.dtype}; convert the table on the host first "
            "(the kernels copy its entries, they never convert floats)"
        )
    if table.device != out.device:
        raise DeviceError(f"table is on {table.device} but out is on {out.device}")
    if table.dim() != 2 or table.shape[1] != TABLE_SIZE or not 1 <= table.shape[0] <= max_channels:
        raise UnsupportedOptionError(
            f"table must have shape (C, {TABLE_SIZE}) with 1 <= C <= {max_channels}, got {tuple(table.shape)}"
        )
    channels = table.shape[0]
    columns = layout.columns(channels)
    if out.dim() != 2 or out.shape[1] != columns:
        raise UnsupportedOptionError(f"out must have shape (rows, C*T*p*p) = (rows, {columns}), got {tuple(out.shape)}")
    if not out.is_contiguous():
        raise UnsupportedOptionError("out must be contiguous")
    for index, job in enumerate(jobs):
        _check_job(index, job, out, channels, layout)


def _check_job(index: int, job: FrameJob, out: torch.Tensor, channels: int, layout: PatchLayout) -> None:
    frame, plan = job.pixels, job.plan
    if not isinstance(frame, torch.Tensor):
        raise InvalidImageError(f"frame {index} must be a torch.Tensor, got {type(frame).__name__}")
    if frame.dtype != torch.uint8:
        raise InvalidImageError(f"frame {index} must be uint8, got {frame.dtype}")
    if frame.dim() != 3:
        raise InvalidImageError(f"frame {index} must be (H, W, C), got shape {tuple(frame.shape)}")
    if frame.device != out.device:
        raise DeviceError(f"frame {index} is on {frame.device} but out is on {out.device}")
    height, width, frame_channels = frame.shape
    if frame_channels != channels:
        raise InvalidImageError(f"frame {index} has {frame_channels} channels (H, W, C), the table has {channels}")
    if not isinstance(plan, ResamplePlan):
        raise UnsupportedOptionError(f"plan {index} must be a ResamplePlan, got {type(plan).__name__}")
    if (height, width) != (plan.in_height, plan.in_width):
        raise InvalidImageError(
            f"frame {index} is {height}x{width} but its plan resizes {plan.in_height}x{plan.in_width}"
        )
    if plan.out_height % layout.factor or plan.out_width % layout.factor:
        raise InvalidImageError(
            f"plan {index} resizes to {plan.out_height}x{plan.out_width}, "
            f"not a multiple of patch_size*merge_size={layout.factor}"
        )
    begin, slots, offset = job.slot_begin, job.slot_count, job.row_offset
    if begin < 0 or slots < 1 or begin + slots > layout.temporal_patch_size:
        raise UnsupportedOptionError(
            f"frame {index}: temporal slots {begin}..{begin + slots - 1} are outside "
            f"0..{layout.temporal_patch_size - 1}"
        )
    rows = layout.rows(plan)
    if offset < 0 or offset + rows > out.shape[0]:
        raise InvalidImageError(f"frame {index} writes rows {offset}..{offset + rows - 1}, out has {out.shape[0]}")
