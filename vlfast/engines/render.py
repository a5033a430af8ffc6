"""From a job list to ``pixel_values`` on the requested device: the output budget, the allocation, the
table, the staging of host frames and the engine's run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from ..errors import ImageTooLargeError
from ..options import check_positive_ints
from ..tables import Normalization
from . import host_memory, staging
from .base import Engine, FrameJob, PatchLayout

__all__ = ["check_output_budget", "render"]


def check_output_budget(rows: int, columns: int, dtype: torch.dtype, max_output_bytes: int | None) -> None:
    """Raise :class:`ImageTooLargeError` before allocating an output over ``max_output_bytes``."""
    if max_output_bytes is None:
        return
    check_positive_ints(max_output_bytes=max_output_bytes)
    size = rows * columns * dtype.itemsize
    if size > max_output_bytes:
        raise ImageTooLargeError(
            f"pixel_values would take {size / 2**20:.1f} MiB ({rows} rows), over max_output_bytes="
            f"{max_output_bytes / 2**20:.1f} MiB; split the batch (vlfast.preprocess_in_chunks) or lower max_pixels"
        )


def _empty_on_gpu(rows: int, columns: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``pixel_values`` on a CUDA device, or :class:`ImageTooLargeError` when it has no room.

    Asking the allocator (which frees its cache and retries before it gives up) costs nothing
    when the output fits; querying free memory first costs a driver call and the allocator's
    statistics on every call.
    """
    try:
        return torch.empty((rows, columns), dtype=dtype, device=device)
    except torch.cuda.OutOfMemoryError as error:
        size = rows * columns * dtype.itemsize
        free = torch.cuda.mem_get_info(device)[0]
        raise ImageTooLargeError(
            f"pixel_values would take {size / 2**20:.1f} MiB on {device}, which has {free / 2**20:.1f} MiB free; "
            "split the batch (vlfast.preprocess_in_chunks) or lower max_pixels"
        ) from error


def _empty_output(rows: int, columns: int, dtype: torch.dtype, work: torch.device, device: torch.device):
    """An output on ``work`` (the engine's device) for a result that goes to ``device``: pinned when it is
    copied to a GPU next, so that copy is asynchronous."""
    if work.type == "cuda":
        return _empty_on_gpu(rows, columns, dtype, work)
    if device.type == "cuda":
        return torch.empty((rows, columns), dtype=dtype, pin_memory=True)
    return host_memory.empty_output(rows, columns, dtype)


def render(
    jobs: Sequence[FrameJob],
    rows: int,
    layout: PatchLayout,
    *,
    engine: Engine,
    device: torch.device,
    dtype: torch.dtype,
    normalization: Normalization,
    max_output_bytes: int | None = None,
) -> torch.Tensor:
    """Check the output fits, allocate ``pixel_values`` ``(rows, 3*T*p*p)``, run the jobs into it with
    ``engine`` and return it on ``device``.

    An engine that writes on a GPU gets host frames through :func:`vlfast.engines.staging.upload_in_chunks`,
    chunk by chunk, each chunk's kernels queued as soon as its upload is. An engine that writes host
    memory gets host frames, and its output is copied to ``device`` asynchronously (from pinned memory).
    """
    columns = layout.columns()
    check_output_budget(rows, columns, dtype, max_output_bytes)
    work = engine.output_device(device)
    out = _empty_output(rows, columns, dtype, work, device)
    table = normalization.table(dtype, work)
    if work.type == "cuda":
        for chunk, frames in staging.upload_in_chunks([job.pixels for job in jobs], work):
            staged = [replace(jobs[index], pixels=frame) for index, frame in zip(chunk, frames, strict=True)]
            engine.run(staged, table, out, layout)
    else:
        on_host = all(job.pixels.is_cpu for job in jobs)
        host_jobs = jobs if on_host else [replace(job, pixels=job.pixels.cpu()) for job in jobs]
        engine.run(host_jobs, table, out, layout, formula=normalization.formula(table.shape[0]))
    return out if out.device == device else out.to(device, non_blocking=True)
