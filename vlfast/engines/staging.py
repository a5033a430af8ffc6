"""Staging: uint8 frames from host memory to the GPU, overlapped with the kernels that read them.

:func:`upload_in_chunks` splits a batch into chunks of about ``chunk_bytes`` of input and, chunk
by chunk, copies its frames to the device on a side stream and makes the current stream wait
for that copy only, so the upload of chunk ``k + 1`` overlaps the kernels of chunk ``k``:

- frames already on the device are used as they are;
- a host frame goes as one block of memory from its first byte to its last, viewed on the device with its
  own strides, where that block is at most twice its size (:func:`whole_block`: contiguous or permuted
  frames, and the RGB views of a PIL image's 4-byte pixels); others are packed into a block of their size;
- pinned host frames sent whole are uploaded as they are (no host copy; like ``tensor.to(device,
  non_blocking=True)``, the copy reads them after the call returns, so they must not be
  modified until the result has been used);
- other host frames (NumPy arrays, PIL images, ordinary tensors) are copied once into one
  pinned buffer for the whole batch (torch's pinned-memory pool reuses it from call to call),
  then uploaded from it.

Each chunk's frames land in one device buffer per batch.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import torch

from ..errors import DeviceError, ImageTooLargeError

__all__ = ["CHUNK_BYTES", "chunk_ranges", "upload_in_chunks", "whole_block"]

#: Input bytes per chunk: large enough that a chunk's launches cost little next to its copy
#: (about four 1080p images), small enough that the first kernels start early.
CHUNK_BYTES = 24 * 2**20

_side_streams: dict[torch.device, torch.cuda.Stream] = {}
_lock = threading.Lock()


def _side_stream(device: torch.device) -> torch.cuda.Stream:
    with _lock:
        stream = _side_streams.get(device)
        if stream is None:
            stream = _side_streams[device] = torch.cuda.Stream(device)
        return stream


def chunk_ranges(sizes: Sequence[int], chunk_bytes: int) -> list[range]:
    """Consecutive index ranges of about ``chunk_bytes`` each (at least one frame each)."""
    chunks, begin, total = [], 0, 0
    for index, size in enumerate(sizes):
        total += size
        if total >= chunk_bytes:
            chunks.append(range(begin, index + 1))
            begin, total = index + 1, 0
    if begin < len(sizes):
        chunks.append(range(begin, len(sizes)))
    return chunks


def _span(frame: torch.Tensor) -> int:
    """Bytes from ``frame``'s first element to its last (uint8 frames: an element is a byte; strides are never
    negative here)."""
    if frame.numel() == 0:
        return 0
    return 1 + sum((size - 1) * stride for size, stride in zip(frame.shape, frame.stride(), strict=True))


def whole_block(frame: torch.Tensor) -> torch.Tensor | None:
    """``frame``'s memory from its first byte to its last, 1-D, where that is at most twice ``frame.numel()``
    (copied as one block, then viewed with ``frame``'s strides: a strided copy of an RGB view of RGBX pixels
    took 3.5x Pillow's packing plus a block copy); ``None`` for an empty frame or a sparser one (packed)."""
    span = _span(frame)
    if not 0 < span <= 2 * frame.numel():
        return None
    return frame.as_strided((span,), (1,))


def _shaped_like(flat: torch.Tensor, frame: torch.Tensor, block: torch.Tensor | None) -> torch.Tensor:
    """``flat`` (``block``'s bytes, or ``frame.numel()``) viewed as ``frame``: with its strides where it goes whole
    (``block``, its :func:`whole_block`), else as a contiguous tensor of its shape."""
    if block is not None:
        return flat.as_strided(frame.shape, frame.stride())
    return flat.view(frame.shape)


def _copy_to_pinned(flat: torch.Tensor, frame: torch.Tensor, block: torch.Tensor | None) -> torch.Tensor:
    """The one host copy of a frame, into ``flat``: its ``block`` (:func:`whole_block`) as it is, else the frame
    packed (``frame.numel()`` bytes); returns ``flat``."""
    if block is None:
        flat.view(frame.shape).copy_(frame)
    else:
        flat.copy_(block)
    return flat


def _empty_on(device: torch.device, size: int) -> torch.Tensor:
    """``size`` bytes on ``device`` for the staged frames, or :class:`ImageTooLargeError` when it has no room."""
    try:
        return torch.empty(size, dtype=torch.uint8, device=device)
    except torch.cuda.OutOfMemoryError as error:
        free = torch.cuda.mem_get_info(device)[0]
        raise ImageTooLargeError(
            f"the batch's frames would take {size / 2**20:.1f} MiB on {device}, which has {free / 2**20:.1f} MiB "
            "free; split the batch (vlfast.preprocess_in_chunks)"
        ) from error


def upload_in_chunks(
    frames: Sequence[torch.Tensor], device: torch.device, chunk_bytes: int | None = None
) -> Iterator[tuple[range, list[torch.Tensor]]]:
    """Yield ``(indices, frames on device)`` chunk by chunk, in order.

    When a chunk is yielded its copies are queued and the current stream of ``device`` waits
    for them, so kernels queued on it next read complete frames; the caller should queue the
    chunk's kernels before asking for the next chunk.

    Args:
        frames: uint8 tensors, any layout, on the CPU or on ``device``; host frames arrive with their own strides
            where they go as one block (:func:`whole_block`), else contiguous.
        device: a CUDA device.
        chunk_bytes: input bytes per chunk (default :data:`CHUNK_BYTES`).

    Raises:
        DeviceError: a frame on another device, or host frames while a CUDA graph is captured
            (a graph would re-read host memory that no longer holds them).
        ImageTooLargeError: no room on the device for the batch's host frames.
    """
    if device.index is None:
        device = torch.device(device.type, torch.cuda.current_device())
    for index, frame in enumerate(frames):
        if frame.device.type != "cpu" and frame.device != device:
            raise DeviceError(f"frame {index} is on {frame.device}, not on the CPU or {device}")
    on_host = [index for index, frame in enumerate(frames) if frame.device.type == "cpu"]
    if on_host and torch.cuda.is_current_stream_capturing():
        raise DeviceError("host frames cannot be staged while a CUDA graph is captured; move them to the GPU first")
    blocks = [whole_block(frame) if frame.device.type == "cpu" else None for frame in frames]
    sizes = [
        (frame.numel() if block is None else block.numel()) if frame.device.type == "cpu" else 0
        for frame, block in zip(frames, blocks, strict=True)
    ]
    # Uploaded from their own memory: pinned host frames sent whole.
    as_is = [block is not None and frame.is_pinned() for frame, block in zip(frames, blocks, strict=True)]
    host_offsets, total = {}, 0
    for index in on_host:
        host_offsets[index] = total
        total += sizes[index]
    current = torch.cuda.current_stream(device)
    side = _side_stream(device)
    staged = list(frames)
    if total:
        pageable = sum(sizes[i] for i in on_host if not as_is[i])
        pinned = torch.empty(pageable, dtype=torch.uint8, pin_memory=True) if pageable else None
        target = _empty_on(device, total)  # on the current stream
        side.wait_stream(current)  # the buffer's earlier users, and the caller's earlier work
    pinned_offset = 0
    for chunk in chunk_ranges(sizes, CHUNK_BYTES if chunk_bytes is None else chunk_bytes):
        copies = []
        for index in chunk:
            if sizes[index] == 0:
                continue
            frame, block = frames[index], blocks[index]
            source = block
            if not as_is[index]:
                source = _copy_to_pinned(pinned[pinned_offset : pinned_offset + sizes[index]], frame, block)
                pinned_offset += sizes[index]
            destination = target[host_offsets[index] : host_offsets[index] + sizes[index]]
            staged[index] = _shaped_like(destination, frame, block)
            copies.append((destination, source))
        if copies:
            with torch.cuda.stream(side):
                for destination, source in copies:
                    destination.copy_(source, non_blocking=True)
                ready = torch.cuda.Event()
                ready.record(side)
            current.wait_event(ready)
        yield chunk, [staged[index] for index in chunk]
