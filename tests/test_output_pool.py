"""The host output pool recycles buffers only when no tensor can see them any more."""

import gc

import numpy as np
import pytest
import torch

import vlfast
from vlfast.engines import host_memory

pytest.importorskip("vlfast._C", reason="the C++ extension is not built")

IMAGE = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
QWEN25_VL = {"min_pixels": 3136, "max_pixels": 12845056}


def test_a_freed_output_is_reused():
    host_memory.release_cached_outputs()
    first = vlfast.preprocess(IMAGE, **QWEN25_VL).pixel_values
    address = first.data_ptr()
    del first
    gc.collect()
    assert vlfast.preprocess(IMAGE, **QWEN25_VL).pixel_values.data_ptr() == address


def test_a_live_view_keeps_its_buffer_and_values():
    host_memory.release_cached_outputs()
    first = vlfast.preprocess(IMAGE, **QWEN25_VL).pixel_values
    expected = first[100:200].clone()
    view = first[100:200]
    del first
    gc.collect()
    other = vlfast.preprocess(np.ascontiguousarray(IMAGE[::-1]), **QWEN25_VL).pixel_values
    assert not (other.data_ptr() <= view.data_ptr() < other.data_ptr() + other.numel() * other.element_size())
    assert torch.equal(view, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_pooled_outputs_have_the_requested_shape_and_dtype(dtype):
    out = host_memory.empty_output(10764, 1176, dtype)
    assert out.shape == (10764, 1176) and out.dtype == dtype and out.is_contiguous()
    small = host_memory.empty_output(4, 1176, dtype)  # below the pooling threshold
    assert small.shape == (4, 1176) and small.dtype == dtype


def test_release_empties_the_pool():
    out = vlfast.preprocess(IMAGE, **QWEN25_VL).pixel_values
    del out
    gc.collect()
    assert host_memory.cached_output_bytes() > 0, "the freed output should be pooled"
    host_memory.release_cached_outputs()
    assert host_memory.cached_output_bytes() == 0


def test_outputs_of_several_sizes_share_the_pool():
    host_memory.release_cached_outputs()
    sizes = [(10764, 1176), (4096, 1176), (20000, 1176), (4096, 1176), (10764, 1176)]
    for _ in range(3):
        outs = [host_memory.empty_output(rows, cols, torch.float32) for rows, cols in sizes]
        for out in outs:
            out.fill_(1.0)
        del outs
        gc.collect()
    assert 0 < host_memory.cached_output_bytes() <= 512 << 20


def test_a_finalizer_running_under_the_pool_lock_does_not_deadlock():
    """Garbage collection can free a pooled tensor while take() holds the lock."""
    host_memory.release_cached_outputs()
    out = host_memory.empty_output(10764, 1176, torch.float32)
    cycle = [out]
    cycle.append(cycle)  # only the cycle collector frees it
    del out, cycle
    with host_memory._pool._lock:
        gc.collect()  # runs the finalizer while the lock is held
    assert host_memory.cached_output_bytes() > 0
