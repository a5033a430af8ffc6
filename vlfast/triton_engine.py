"""The Triton pipeline: resize, normalize and patchify a batch of frames in two launches.

:func:`run_batch` validates its arguments, builds (or reuses) the batch's plan table and
metadata on the host, and launches ``resample_pass`` (images whose both axes change size)
then ``resample_patchify`` (every image), each once for the whole batch, on the current
stream. It never reads device memory from the host nor synchronizes, so a fixed-shape call
can be captured in a CUDA graph.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch

from .errors import DeviceError, ImageTooLargeError, InvalidImageError, UnsupportedOptionError
from .options import OUTPUT_DTYPES, check_positive_ints
from .plans import ResamplePlan

#: Offsets inside one frame or intermediate image are int32 in the kernels (bases are int64).
INT32_LIMIT = 2**31

__all__ = ["available", "interpreting", "run_batch"]

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


def _check_device(device: torch.device) -> None:
    if interpreting():
        if device.type != "cpu":
            raise DeviceError(f"TRITON_INTERPRET=1 runs the kernels on the CPU: tensors must be on 'cpu', got {device}")
    elif device.type != "cuda":
        raise DeviceError(
            f"the Triton kernels need CUDA tensors, got {device} (set TRITON_INTERPRET=1 to run them on the CPU)"
        )
    elif not torch.cuda.is_available():
        raise DeviceError("CUDA is not available")


def _check_output(
    table: torch.Tensor,
    out: torch.Tensor,
    patch_size: int,
    merge_size: int,
    temporal_patch_size: int,
    max_channels: int,
) -> None:
    check_positive_ints(patch_size=patch_size, merge_size=merge_size, temporal_patch_size=temporal_patch_size)
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
    if table.dim() != 2 or table.shape[1] != 256 or not 1 <= table.shape[0] <= max_channels:
        raise UnsupportedOptionError(
            f"table must have shape (C, 256) with 1 <= C <= {max_channels}, got {tuple(table.shape)}"
        )
    row_elements = table.shape[0] * temporal_patch_size * patch_size * patch_size
    if out.dim() != 2 or out.shape[1] != row_elements:
        raise UnsupportedOptionError(
            f"out must have shape (rows, C*T*p*p) = (rows, {row_elements}), got {tuple(out.shape)}"
        )
    if not out.is_contiguous():
        raise UnsupportedOptionError("out must be contiguous")


def _check_frame(
    index: int,
    frame: torch.Tensor,
    plan: ResamplePlan,
    device: torch.device,
    channels: int,
    channels_last: bool,
    patch_size: int,
    merge_size: int,
) -> int:
    """Validate one frame against its plan; return the number of pixel_values rows it writes."""
    if not isinstance(frame, torch.Tensor):
        raise InvalidImageError(f"frame {index} must be a torch.Tensor, got {type(frame).__name__}")
    if frame.dtype != torch.uint8:
        raise InvalidImageError(f"frame {index} must be uint8, got {frame.dtype}")
    layout = "(H, W, C)" if channels_last else "(C, H, W)"
    if frame.dim() != 3:
        raise InvalidImageError(f"frame {index} must be {layout}, got shape {tuple(frame.shape)}")
    if frame.device != device:
        raise DeviceError(f"frame {index} is on {frame.device} but out is on {device}")
    height, width, frame_channels = frame.shape if channels_last else (frame.shape[1], frame.shape[2], frame.shape[0])
    if frame_channels != channels:
        raise InvalidImageError(f"frame {index} has {frame_channels} channels {layout}, the table has {channels}")
    if not isinstance(plan, ResamplePlan):
        raise UnsupportedOptionError(f"plan {index} must be a ResamplePlan, got {type(plan).__name__}")
    if (height, width) != (plan.in_height, plan.in_width):
        raise InvalidImageError(
            f"frame {index} is {height}x{width} but its plan resizes {plan.in_height}x{plan.in_width}"
        )
    factor = patch_size * merge_size
    if plan.out_height % factor or plan.out_width % factor:
        raise InvalidImageError(
            f"plan {index} resizes to {plan.out_height}x{plan.out_width}, "
            f"not a multiple of patch_size*merge_size={factor}"
        )
    extent = sum((size - 1) * stride for size, stride in zip(frame.shape, frame.stride(), strict=True))
    if extent >= INT32_LIMIT:
        raise ImageTooLargeError(f"frame {index} spans {extent + 1} bytes; the kernels address at most 2**31")
    return (plan.out_height // patch_size) * (plan.out_width // patch_size)


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


def run_batch(
    frames: Sequence[torch.Tensor],
    plans: Sequence[ResamplePlan],
    table: torch.Tensor,
    out: torch.Tensor,
    row_offsets: Sequence[int],
    *,
    patch_size: int,
    merge_size: int,
    temporal_patch_size: int,
    slot_begins: Sequence[int] | None = None,
    slot_counts: Sequence[int] | None = None,
    channels_last: bool = True,
) -> None:
    """Resize ``frames[i]`` with ``plans[i]``, map it through ``table`` and write its patch rows.

    Frame ``i`` fills ``out[row_offsets[i] : row_offsets[i] + grid_h * grid_w]`` (grid in
    patches of its output size), temporal slots ``slot_begins[i] .. slot_begins[i] +
    slot_counts[i] - 1``. A still image takes all ``T`` slots (the default); frame ``f`` of a
    video clip takes ``row_offset = clip_base + (f // T) * grid_h * grid_w``, ``slot_begin =
    f % T``, ``slot_count = 1``. Bit-exact with :func:`vlfast.reference.preprocess_reference`.
    Two launches on the current stream whatever the batch; no synchronization.

    Args:
        frames: uint8 tensors on ``out.device``, ``(H, W, C)`` if ``channels_last`` else
            ``(C, H, W)``, any strides (views into one staging buffer need no copy).
        plans: one :class:`~vlfast.plans.ResamplePlan` per frame, from its size to its output size.
        table: ``(C, 256)`` table in ``out.dtype``, ``1 <= C <= 4``: ``table[c, v]`` is written for value ``v``.
        out: ``(rows, C * T * patch_size**2)`` contiguous ``pixel_values``, preallocated.
        row_offsets: first ``out`` row of each frame.
        slot_begins: first temporal slot of each frame (default 0).
        slot_counts: slots written per frame (default: from ``slot_begin`` to ``T - 1``).

    Raises:
        InvalidImageError: a frame of the wrong dtype, shape, channel count or size for its
            plan, or rows outside ``out``.
        DeviceError: tensors on different devices, or not on CUDA (on the CPU under
            ``TRITON_INTERPRET=1``), or triton missing.
        UnsupportedOptionError: ``out`` / ``table`` dtype or shape, sizes, or temporal slots.
        ImageTooLargeError: a frame or intermediate image past the kernels' 2**31-byte offsets.
    """
    try:
        from .kernels import batch
        from .kernels.resample_pass import resample_pass
        from .kernels.resample_patchify import MAX_CHANNELS, resample_patchify
    except ImportError as error:
        raise DeviceError(f"the Triton engine is unavailable: {error}") from error

    count = len(frames)
    if len(plans) != count or len(row_offsets) != count:
        raise InvalidImageError(f"got {count} frames, {len(plans)} plans and {len(row_offsets)} row offsets")
    _check_output(table, out, patch_size, merge_size, temporal_patch_size, MAX_CHANNELS)
    device = out.device
    _check_device(device)
    slot_begins = [0] * count if slot_begins is None else [int(b) for b in slot_begins]
    if slot_counts is None:
        slot_counts = [temporal_patch_size - b for b in slot_begins]
    slot_counts = [int(c) for c in slot_counts]
    if len(slot_begins) != count or len(slot_counts) != count:
        raise UnsupportedOptionError(
            f"got {count} frames but {len(slot_begins)} slot_begins and {len(slot_counts)} slot_counts"
        )
    channels = table.shape[0]
    for index in range(count):
        rows = _check_frame(index, frames[index], plans[index], device, channels, channels_last, patch_size, merge_size)
        begin, slots, offset = slot_begins[index], slot_counts[index], int(row_offsets[index])
        if begin < 0 or slots < 1 or begin + slots > temporal_patch_size:
            raise UnsupportedOptionError(
                f"frame {index}: temporal slots {begin}..{begin + slots - 1} are outside 0..{temporal_patch_size - 1}"
            )
        if offset < 0 or offset + rows > out.shape[0]:
            raise InvalidImageError(f"frame {index} writes rows {offset}..{offset + rows - 1}, out has {out.shape[0]}")
    if count == 0:
        return

    config = batch.launch_config(patch_size, interpreting())
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
        [batch.source_view(frame, channels_last) for frame in frames],
        plan_addresses,
        [int(offset) for offset in row_offsets],
        slot_begins,
        slot_counts,
        intermediate_pitches=pitches,
        intermediate_offsets=inter_offsets,
        config=config,
        patch_size=patch_size,
    )
    meta = _upload(work.meta, device)
    table = table.contiguous()
    with _device_scope(device):
        if work.first_tiles:
            resample_pass(
                meta,
                intermediate,
                count,
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
            count,
            work.second_tiles,
            patch_size=patch_size,
            merge_size=merge_size,
            temporal_patch_size=temporal_patch_size,
            rows_per_tile=config.patch_rows,
            num_warps=config.patch_warps,
        )
