"""The Triton engine: resize, normalize and patchify a batch of frames in two launches.

:meth:`TritonEngine.run` builds (or reuses) the batch's metadata on the host and launches
``resample_pass`` (images whose both axes change size) then ``resample_patchify`` (every image),
each once for the whole batch, on the current stream. It never reads device memory from the host
nor synchronizes, so a fixed-shape call can be captured in a CUDA graph. Under
``TRITON_INTERPRET=1`` the same kernels run on CPU tensors in triton's interpreter.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch

from ..errors import DeviceError, ImageTooLargeError
from ..tables import TableFormula
from .base import EngineName, FrameJob, PatchLayout, check_jobs

__all__ = ["TritonEngine", "available", "interpreting"]

#: Uploaded metadata kept per (device, stream), by content: repeated calls on the same buffers
#: (static inputs, benchmarks, CUDA graphs) skip the host-to-device copy. Per stream, because
#: a copy read on another stream could be overtaken by its reader.
_METADATA_CACHE_SIZE = 16
_metadata_cache: OrderedDict[tuple[torch.device, int, bytes], torch.Tensor] = OrderedDict()
_metadata_lock = threading.Lock()
#: Buffers a captured CUDA graph reads on every replay. The graph's lifetime is unknown here,
#: so they are never freed (one small entry per capture).
_graph_buffers: list[object] = []


def interpreting() -> bool:
    """Whether ``TRITON_INTERPRET`` asks for triton's CPU interpreter (the kernels then take CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on")


def available() -> bool:
    """Whether triton is importable and has somewhere to run (a CUDA device, or its interpreter)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available() or interpreting()


def _check_tensor_device(device: torch.device) -> None:
    if interpreting():
        if device.type != "cpu":
            raise DeviceError(f"TRITON_INTERPRET=1 runs the kernels on the CPU: tensors must be on 'cpu', got {device}")
    elif device.type != "cuda":
        raise DeviceError(
            f"the Triton kernels need CUDA tensors, got {device} (set TRITON_INTERPRET=1 to run them on the CPU)"
        )


def _upload(meta: np.ndarray, device: torch.device) -> torch.Tensor:
    """The metadata on ``device``: cached, or copied from pinned memory on the current stream."""
    if device.type != "cuda":
        return torch.from_numpy(meta)
    capturing = torch.cuda.is_current_stream_capturing()
    key = (device, torch.cuda.current_stream(device).cuda_stream, meta.tobytes())
    with _metadata_lock:
        uploaded = _metadata_cache.get(key)
        if uploaded is None:
            host = torch.from_numpy(meta).pin_memory()
            # Asynchronous and ordered on the current stream, before the kernels that read it.
            uploaded = host.to(device, non_blocking=True)
            if capturing:
                # A captured copy only runs at replay: caching its (still empty) result would hand
                # garbage to an eager call made before the first replay.
                _graph_buffers.append(host)  # the captured copy re-reads it on every replay
            else:
                _metadata_cache[key] = uploaded
                if len(_metadata_cache) > _METADATA_CACHE_SIZE:
                    _metadata_cache.popitem(last=False)
        else:
            _metadata_cache.move_to_end(key)
        if capturing:
            _graph_buffers.append(uploaded)
    return uploaded


def _device_scope(device: torch.device) -> contextlib.AbstractContextManager:
    """Launch on ``device``'s current stream even when another CUDA device is current."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


class TritonEngine:
    """The Triton kernels, on a CUDA device (or on the CPU under ``TRITON_INTERPRET=1``)."""

    name = EngineName.TRITON

    def available(self) -> bool:
        return available()

    def output_device(self, device: torch.device) -> torch.device:
        if interpreting():
            if device.type != "cpu":
                raise DeviceError(
                    f"TRITON_INTERPRET is set: the Triton kernels run on CPU tensors only (got device {device}); "
                    "unset it to run them on the GPU"
                )
        elif device.type != "cuda":
            raise DeviceError(
                f"engine='triton' needs a CUDA device (got {device}); set TRITON_INTERPRET=1 to run the kernels "
                "on CPU tensors with Triton's interpreter"
            )
        if not available():
            raise DeviceError("engine='triton' needs the triton package and a CUDA device (or TRITON_INTERPRET=1)")
        return device

    def run(
        self,
        jobs: Sequence[FrameJob],
        table: torch.Tensor,
        out: torch.Tensor,
        layout: PatchLayout,
        formula: TableFormula | None = None,
    ) -> None:
        """Two launches on the current stream whatever the batch; no synchronization. Entries are looked up
        (``formula`` unused: a gather from the table costs the GPU kernels nothing to speak of).

        Frames may have any strides (views into one staging buffer need no copy).

        Raises:
            InvalidImageError, UnsupportedOptionError, DeviceError: see :func:`~vlfast.engines.base.check_jobs`;
                :class:`DeviceError` also for tensors off the engine's device, or triton missing.
            ImageTooLargeError: a frame or intermediate image past the kernels' 2**31-byte offsets.
        """
        try:
            from ..kernels import INT32_LIMIT, MAX_CHANNELS, batch
            from ..kernels.resample_pass import resample_pass
            from ..kernels.resample_patchify import resample_patchify
        except ImportError as error:
            raise DeviceError(f"the Triton engine is unavailable: {error}") from error

        check_jobs(jobs, table, out, layout, MAX_CHANNELS)
        device = out.device
        _check_tensor_device(device)
        for index, job in enumerate(jobs):
            frame = job.pixels
            extent = sum((size - 1) * stride for size, stride in zip(frame.shape, frame.stride(), strict=True))
            if extent >= INT32_LIMIT:
                raise ImageTooLargeError(f"frame {index} spans {extent + 1} bytes; the kernels address at most 2**31")
        if not jobs:
            return

        channels = table.shape[0]
        config = batch.launch_config(layout.patch_size, interpreting())
        plans = [job.plan for job in jobs]
        steps = [batch.image_steps(plan) for plan in plans]
        pitches, inter_offsets, inter_size = batch.intermediate_layout(steps, channels, config)
        if any(channels * step.inter_height * pitch >= INT32_LIMIT for step, pitch in zip(steps, pitches, strict=True)):
            raise ImageTooLargeError("an intermediate image exceeds the kernels' 2**31-byte offsets")
        # At least one byte: a null pointer is no valid kernel argument even when nothing reads it.
        intermediate = torch.empty(max(inter_size, 1), dtype=torch.uint8, device=device)
        keep = _graph_buffers if device.type == "cuda" and torch.cuda.is_current_stream_capturing() else []
        with _device_scope(device):
            plan_addresses = [
                (
                    0 if step.first is None else batch.axis_on_device(step.first.axis, device, keep).data_ptr(),
                    batch.axis_on_device(step.second.axis, device, keep).data_ptr(),
                )
                for step in steps
            ]
        work = batch.work_tables(
            steps,
            plans,
            [batch.source_view(job.pixels) for job in jobs],
            plan_addresses,
            [job.row_offset for job in jobs],
            [job.slot_begin for job in jobs],
            [job.slot_count for job in jobs],
            intermediate_pitches=pitches,
            intermediate_offsets=inter_offsets,
            config=config,
            patch_size=layout.patch_size,
        )
        meta = _upload(work.meta, device)
        table = table.contiguous()
        with _device_scope(device):
            if work.first_tiles:
                resample_pass(
                    meta,
                    intermediate,
                    len(jobs),
                    work.first_tiles,
                    channels=channels,
                    block_rows=config.pass_rows,
                    block_cols=config.pass_cols,
                    wide_stores=config.pass_wide_stores,
                    num_warps=config.pass_warps,
                )
            resample_patchify(
                meta,
                intermediate,
                table,
                out,
                len(jobs),
                work.second_tiles,
                patch_size=layout.patch_size,
                merge_size=layout.merge_size,
                temporal_patch_size=layout.temporal_patch_size,
                rows_per_tile=config.patch_rows,
                num_warps=config.patch_warps,
            )

    def expand(self, compact: torch.Tensor, table: torch.Tensor, out: torch.Tensor) -> None:
        from ..kernels.expand import expand

        if out.numel():
            with _device_scope(out.device):
                expand(compact, table, out, out.shape[1] // compact.shape[1])
