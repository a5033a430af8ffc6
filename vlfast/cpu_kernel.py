"""The C++ CPU engine: one call per image or video frame, writing straight into the output.

The extension ``vlfast._C`` resizes a uint8 HWC frame with a :class:`~vlfast.plans.ResamplePlan`,
looks every byte up in a ``(C, 256)`` table and writes the frame's patch rows (see
:mod:`vlfast.layout`), in one pass over the output, on several threads, without the GIL.
Table entries are copied bit for bit, so one kernel serves every output dtype.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import queue
import sys
import threading
import weakref

import numpy as np
import torch

from .errors import DeviceError, InvalidImageError, UnsupportedOptionError
from .plans import ResamplePlan

try:
    from . import _C
except ImportError:  # built without a C++ compiler: the Triton engine may still be available
    _C = None

__all__ = [
    "available",
    "cached_output_bytes",
    "default_num_threads",
    "empty_output",
    "release_cached_outputs",
    "run_frame",
]

#: Output dtypes, by the integer dtype of the same size that hands their bits to NumPy.
_BIT_VIEWS: dict[torch.dtype, torch.dtype] = {
    torch.float32: torch.int32,
    torch.bfloat16: torch.int16,
    torch.float16: torch.int16,
    torch.uint8: torch.uint8,
}


def available() -> bool:
    """Whether the C++ extension was built and imports."""
    return _C is not None


def default_num_threads() -> int:
    """Threads per frame when the caller names none: torch's intra-op thread count."""
    return torch.get_num_threads()


#: Linux ``MADV_HUGEPAGE``. A fresh 50 MB output costs ~10 ms of 4 kB page faults on first write
#: (measured on the 2-core CI machine: 1080p float32 took 17.7 ms fresh vs 9.2 ms with huge pages).
_MADV_HUGEPAGE = 14
_HUGE_PAGE = 2 << 20
#: Outputs from this size up come from the pool below; smaller ones are cheap to allocate.
_POOLED_MIN_BYTES = 4 << 20
#: At most this many bytes of freed outputs are kept for reuse.
_POOL_MAX_BYTES = 512 << 20


def _libc_madvise():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    madvise = libc.madvise
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    madvise.restype = ctypes.c_int
    return madvise


_madvise = _libc_madvise()


class _OutputPool:
    """Large host buffers recycled once the tensors made from them are garbage.

    A fresh multi-megabyte allocation is returned to the OS when freed, so every call would
    pay the page faults of its output again (about as long as the kernel itself at 1080p).
    Like torch's caching allocators, this keeps a few freed blocks (at most ``max_bytes``)
    and hands them out again. A block returns to the pool only when the last tensor viewing it
    is gone (a ``weakref.finalize`` on the NumPy view that torch's storage holds). The finalizer
    may run inside any allocation, even one made while the pool's lock is held, so it only puts
    the block on a lock-free queue that the next ``take`` drains.
    """

    def __init__(self, max_bytes: int) -> None:
        self._free: list[np.ndarray] = []
        self._returned: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    def _new_block(self, nbytes: int) -> np.ndarray:
        block = np.empty(nbytes, dtype=np.uint8)
        if _madvise is not None:
            address = block.ctypes.data
            start = -(-address // _HUGE_PAGE) * _HUGE_PAGE
            end = (address + nbytes) // _HUGE_PAGE * _HUGE_PAGE
            if end > start:
                _madvise(start, end - start, _MADV_HUGEPAGE)
        return block

    def _drain(self) -> None:
        """Move returned blocks to the free list, oldest dropped past ``max_bytes`` (lock held)."""
        while True:
            try:
                self._free.append(self._returned.get_nowait())
            except queue.Empty:
                break
        while sum(b.nbytes for b in self._free) > self._max_bytes:
            self._free.pop(0)

    def take(self, nbytes: int) -> np.ndarray:
        """A view of ``nbytes`` bytes of a free block (at most twice as large), or of a new one."""
        with self._lock:
            self._drain()
            fits = [i for i, b in enumerate(self._free) if nbytes <= b.nbytes <= 2 * nbytes]
            # pop by index: list.remove would compare arrays element by element
            block = self._free.pop(min(fits, key=lambda i: self._free[i].nbytes)) if fits else None
        if block is None:
            block = self._new_block(nbytes)
        view = block[:nbytes]
        weakref.finalize(view, self._returned.put, block)
        return view

    def cached_bytes(self) -> int:
        """Bytes held by freed blocks waiting for reuse."""
        with self._lock:
            self._drain()
            return sum(b.nbytes for b in self._free)

    def clear(self) -> None:
        with self._lock:
            self._drain()
            self._free.clear()


_pool = _OutputPool(_POOL_MAX_BYTES)


def empty_output(rows: int, columns: int, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised ``(rows, columns)`` CPU tensor for the kernel to fill.

    Large outputs come from a pool of recycled, huge-page-backed host buffers (see
    :class:`_OutputPool`); the contents and the results are unaffected.
    """
    nbytes = rows * columns * torch.empty((), dtype=dtype).element_size()
    if nbytes < _POOLED_MIN_BYTES:
        return torch.empty((rows, columns), dtype=dtype)
    return torch.from_numpy(_pool.take(nbytes)).view(dtype).view(rows, columns)


def release_cached_outputs() -> None:
    """Return the pooled output buffers that no tensor uses any more to the OS."""
    _pool.clear()


def cached_output_bytes() -> int:
    """Bytes of freed output buffers the pool keeps for reuse (at most 512 MiB)."""
    return _pool.cached_bytes()


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
    return tensor.view(bit_view).numpy()


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

    Raises:
        InvalidImageError: bad image, plan, table or output (wrong dtype, shape, layout, size).
        UnsupportedOptionError: an output dtype the kernel cannot write.
        DeviceError: the extension is not built.
    """
    if _C is None:
        raise DeviceError("the vlfast C++ extension (vlfast._C) is not built; reinstall vlfast with a C++17 compiler")
    if not isinstance(image, np.ndarray):
        raise InvalidImageError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[:2] != (plan.in_height, plan.in_width):
        raise InvalidImageError(
            f"the plan resizes {plan.in_height}x{plan.in_width} images but the image is "
            f"{image.shape[0]}x{image.shape[1]}"
        )
    resized = (
        plan.vertical.out_size if plan.vertical is not None else plan.in_height,
        plan.horizontal.out_size if plan.horizontal is not None else plan.in_width,
    )
    if resized != (plan.out_height, plan.out_width):
        raise InvalidImageError(
            f"the plan's passes resize to {resized[0]}x{resized[1]} but it says {plan.out_height}x{plan.out_width}"
        )
    if table.dtype != out.dtype:
        raise InvalidImageError(f"table dtype {table.dtype} differs from out dtype {out.dtype}")
    table_bits = _numpy_bits(table, "table")
    out_bits = _numpy_bits(out, "out")
    if slot_count is None:
        slot_count = temporal_patch_size - slot_begin
    try:
        _C.run_frame(
            image,
            plan.horizontal,
            plan.vertical,
            plan.vertical_first,
            table_bits,
            out_bits,
            row_offset,
            patch_size,
            merge_size,
            temporal_patch_size,
            slot_begin,
            slot_count,
            num_threads if num_threads is not None else default_num_threads(),
        )
    except ValueError as error:
        raise InvalidImageError(str(error)) from None
