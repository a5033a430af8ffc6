"""The C++ CPU kernel's own behaviour (``vlfast._C`` through ``vlfast.engines.cpp``): its frame call's slot
defaults, fresh output pages, thread splits, concurrent calls, each resampling pass on its own, and typed
errors on bad input.

Its exactness on every kind of batch, at each SIMD level, is in ``test_engine_conformance.py`` with the
other engines. The pass tests hold each pass of the SIMD kernels to the portable one directly
(``_C.resample_axis``), on real plans and on weights built to hit their edge cases.
"""

from __future__ import annotations

import dataclasses
import mmap
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from guard_pages import run_child
from kernel_cases import (
    QWEN,
    bits,
    expected_rows,
    make_image,
    make_plan,
    make_table,
    replace_axis,
    supported_filters,
    unwritten,
)
from simd_levels import LEVELS, highest_level, simd_level, skip_unless

from vlfast import plans
from vlfast.engines import cpp as cpu_kernel
from vlfast.engines.base import FrameJob, PatchLayout
from vlfast.errors import InvalidImageError, UnsupportedOptionError
from vlfast.plans import Backend, Filter, ResamplePlan, axis_plan
from vlfast.reference import apply_axis

if not cpu_kernel.available():
    pytest.skip("the C++ extension vlfast._C is not built", allow_module_level=True)

from vlfast import _C  # noqa: E402


@pytest.fixture(params=LEVELS)
def simd(request):
    """Runs the test at each SIMD level the CPU has."""
    with simd_level(request.param):
        yield request.param


def run_kernel(
    image: np.ndarray, plan: ResamplePlan, table: torch.Tensor, num_threads: int = 2, **layout: int
) -> np.ndarray:
    """One still image through the kernel into a fresh output pre-filled with a value no table entry has (so a
    row left unwritten shows); returns the output's bits."""
    layout = layout or QWEN
    rows = (plan.out_height // layout["patch_size"]) * (plan.out_width // layout["patch_size"])
    columns = table.shape[0] * layout["temporal_patch_size"] * layout["patch_size"] ** 2
    out = torch.full((rows, columns), unwritten(table.dtype), dtype=table.dtype)
    cpu_kernel.run_frame(image, plan, table, out, 0, num_threads=num_threads, **layout)
    return bits(out)


# --- the frame call ------------------------------------------------------------------------------


def test_slot_range_of_a_still_image(simd):
    """slot_count defaults to the slots from slot_begin on."""
    rng = np.random.default_rng(9)
    layout = {"patch_size": 8, "merge_size": 1, "temporal_patch_size": 3}
    plan = make_plan(20, 20, 16, 24)
    image = make_image(rng, 20, 20)
    table = make_table(torch.uint8)
    out = torch.zeros(6, 3 * 3 * 64, dtype=torch.uint8)
    cpu_kernel.run_frame(image, plan, table, out, 0, slot_begin=1, **layout)
    expected = expected_rows(image, plan, table, **layout).reshape(6, 3, 3, 64).copy()
    expected[:, :, 0] = 0
    np.testing.assert_array_equal(bits(out), expected.reshape(6, -1))


def test_fresh_output_memory(simd):
    """Output pages never touched before (written with ordinary stores) get the same bytes."""
    rng = np.random.default_rng(15)
    image = make_image(rng, 100, 90)
    plan = make_plan(100, 90, 112, 84)
    table = make_table(torch.bfloat16)
    rows = (112 // 14) * (84 // 14)
    fresh = mmap.mmap(-1, (rows + 1) * 1176 * 2)  # anonymous: no page in memory yet
    out = torch.frombuffer(fresh, dtype=torch.bfloat16).view(rows + 1, 1176)
    cpu_kernel.run_frame(image, plan, table, out, 1, **QWEN)
    np.testing.assert_array_equal(bits(out)[1:], expected_rows(image, plan, table, **QWEN))
    assert not bits(out)[0].any()
    del out


def test_thread_counts_agree(simd):
    """Threads split the block rows; any split gives the same bytes (336x308 is enough for 3 threads; 1456x1428
    asks for 52, more than the pool has: it runs on the threads there are)."""
    rng = np.random.default_rng(11)
    image = make_image(rng, 300, 270)
    table = make_table(torch.float32)
    for vertical_first in (False, True):
        for out_height, out_width, counts in ((336, 308, (2, 3, 64)), (1456, 1428, (2, 52))):
            plan = make_plan(300, 270, out_height, out_width, Filter.BILINEAR, Backend.TORCHVISION, vertical_first)
            single = run_kernel(image, plan, table, num_threads=1, **QWEN)
            np.testing.assert_array_equal(single, expected_rows(image, plan, table, **QWEN))
            for threads in counts:
                np.testing.assert_array_equal(run_kernel(image, plan, table, num_threads=threads, **QWEN), single)


def test_prepared_axes_are_told_apart_by_content():
    """Each calling thread keeps its last prepared horizontal axes (gather tables, paired weights) by content:
    axes of one size whose weights differ (other filters, other backends, one output's taps reversed, in place
    in the same array), other channel counts and other SIMD levels, run in turns, each get their own."""
    rng = np.random.default_rng(16)
    base = make_plan(56, 300, 56, 336, Filter.BICUBIC, Backend.TORCHVISION)
    weights = base.horizontal.weights.copy()
    weights[5, : base.horizontal.counts[5]] = weights[5, : base.horizontal.counts[5]][::-1]
    reversed_taps = replace_axis(base, "horizontal", weights=weights)
    variants = [
        base,
        reversed_taps,
        make_plan(56, 300, 56, 336, Filter.BICUBIC, Backend.PIL),
        make_plan(56, 300, 56, 336, Filter.BILINEAR, Backend.TORCHVISION),
    ]
    images = {channels: make_image(rng, 56, 300, channels) for channels in (1, 3)}
    tables = {channels: make_table(torch.float32, channels) for channels in (1, 3)}
    expected = {
        (i, channels): expected_rows(images[channels], plan, tables[channels], **QWEN)
        for i, plan in enumerate(variants)
        for channels in (1, 3)
    }
    assert not np.array_equal(expected[0, 3], expected[1, 3])  # the reversed taps change the rows
    # One writable weights array, rewritten between calls (a plan's own arrays are read-only).
    rewritten = np.array(base.horizontal.weights)
    fields = (*cpu_kernel.axis_arguments(base.horizontal)[:4], rewritten, base.horizontal.precision)
    table_bits = bits(tables[3])

    def run_rewritten(values: np.ndarray) -> np.ndarray:
        rewritten[:] = values
        out = np.full(expected[0, 3].shape, 7, expected[0, 3].dtype)
        _C.run_frame(images[3], fields, None, False, table_bits, out, 0, 14, 2, 2, 0, 2, 2)
        return out

    for _ in range(2):
        for level in LEVELS:
            with simd_level(level):
                for i, plan in enumerate(variants):
                    for channels in (1, 3):
                        got = run_kernel(images[channels], plan, tables[channels], **QWEN)
                        np.testing.assert_array_equal(got, expected[i, channels], err_msg=f"{level} {i} {channels}")
                np.testing.assert_array_equal(run_rewritten(base.horizontal.weights), expected[0, 3])
                np.testing.assert_array_equal(run_rewritten(weights), expected[1, 3])


def test_prepared_axes_are_found_again():
    """The last four prepared axes are found again (a hit gives the same bytes), the least recently used one
    is dropped for a fifth: K1-K4, then K1 (a hit), K5 (drops K2), K2 (a miss), K4 (a hit)."""
    skip_unless("avx2")  # the portable kernels prepare nothing
    rng = np.random.default_rng(17)
    image = make_image(rng, 56, 301)
    table = make_table(torch.float32)
    keys = [make_plan(56, 301, 56, width, Filter.BICUBIC, Backend.TORCHVISION) for width in (308, 336, 364, 392, 420)]
    expected = [expected_rows(image, plan, table, **QWEN) for plan in keys]

    def hits_of(indices: tuple[int, ...]) -> int:
        before = _C.prepared_axis_hits()
        for index in indices:
            np.testing.assert_array_equal(run_kernel(image, keys[index], table, **QWEN), expected[index])
        return _C.prepared_axis_hits() - before

    with simd_level(highest_level()):
        hits_of((0, 1, 2, 3))  # whatever this thread held before, K1-K4 now
        assert hits_of((0,)) == 1
        assert hits_of((4,)) == 0
        assert hits_of((1,)) == 0
        assert hits_of((3,)) == 1


def runs(items: list[int]) -> list[list[int]]:
    """``items`` cut into maximal runs of consecutive ascending numbers."""
    cut: list[list[int]] = []
    for item in items:
        if cut and item == cut[-1][-1] + 1:
            cut[-1].append(item)
        else:
            cut.append([item])
    return cut


@pytest.mark.parametrize(
    "count, delays",
    [(0, [0, 0]), (1, [0, 0, 0]), (16, [0]), (40, [0, 0]), (40, [100, 100]), (10, [50] * 8), (37, [30, 60, 0])],
)
def test_scheduler_runs_every_item_once(count, delays):
    """Every item runs exactly once, whatever the threads (more slots than the pool has workers: the
    runs of those that never start are taken); the caller runs item 0 first."""
    ran = _C.parallel_items_schedule(count, delays)
    assert len(ran) == len(delays)
    assert sorted(item for items in ran for item in items) == list(range(count))
    if count:
        assert ran[0][0] == 0  # taken by the caller before any worker sees the batch
    if len(delays) == 1:
        assert ran == [list(range(count))]


def test_scheduler_moves_a_slow_threads_items_to_the_others():
    """A thread slowed down (descheduled, late to wake) keeps the front of its run; the others take the rest
    in whole runs from the back, so a frame is not held up by its slowest thread."""
    slow_worker = _C.parallel_items_schedule(16, [100, 50000])
    assert slow_worker[0][:8] == list(range(8))  # the caller's own run, in order
    assert len(slow_worker[1]) < 8 and len(slow_worker[0]) > 8
    assert slow_worker[1] == list(range(8, 8 + len(slow_worker[1])))  # the front of its own run, no more
    assert len(runs(slow_worker[0])) <= 5  # taken in whole runs, halving what is left: not item by item
    slow_caller = _C.parallel_items_schedule(16, [50000, 100])
    assert slow_caller[1][:8] == list(range(8, 16))  # the worker's own run first, in order
    assert len(slow_caller[0]) < 8 and len(slow_caller[1]) > 8
    assert slow_caller[0] == list(range(len(slow_caller[0])))


def test_scheduler_arguments_are_checked():
    with pytest.raises(ValueError, match="count must be in"):
        _C.parallel_items_schedule(-1, [0])
    with pytest.raises(ValueError, match="delays_us must name 1 to"):
        _C.parallel_items_schedule(4, [])
    with pytest.raises(ValueError, match="delays_us must be in"):
        _C.parallel_items_schedule(4, [0, -5])


def test_concurrent_calls_from_python_threads():
    """The kernel releases the GIL and keeps no shared state between calls."""
    rng = np.random.default_rng(12)
    images = [make_image(rng, 100 + 7 * i, 90) for i in range(6)]
    plans = [make_plan(image.shape[0], 90, 84, 112, vertical_first=bool(i % 2)) for i, image in enumerate(images)]
    table = make_table(torch.float32)
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda job: run_kernel(*job, table, **QWEN), zip(images, plans, strict=True)))
    for image, plan, result in zip(images, plans, results, strict=True):
        np.testing.assert_array_equal(result, expected_rows(image, plan, table, **QWEN))


def test_helpers():
    assert cpu_kernel.available()
    assert cpu_kernel.default_num_threads() == torch.get_num_threads()


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_identity_table_is_copied_not_looked_up(simd, channels):
    """A uint8 table whose entries equal their index (the compact hand-off's) skips the lookup: the same bytes as
    the reference, resized or not, whole slots or one; a table one entry off is looked up as any other."""
    rng = np.random.default_rng(27)
    image = make_image(rng, 70, 90, channels)
    identity = torch.arange(256, dtype=torch.uint8).repeat(channels, 1)
    almost = identity.clone()
    almost[channels - 1, 200] = 201
    compact = {"patch_size": 14, "merge_size": 2, "temporal_patch_size": 1}
    for plan in (make_plan(70, 90, 56, 84), make_plan(56, 84, 56, 84)):
        source = image if plan.horizontal else image[:56, :84]
        for table in (identity, almost):
            for layout in (compact, QWEN):
                got = run_kernel(source, plan, table, **layout)
                np.testing.assert_array_equal(got, expected_rows(source, plan, table, **layout))
        slots = torch.zeros((rows_of(plan), channels * 2 * 196), dtype=torch.uint8)
        cpu_kernel.run_frame(source, plan, identity, slots, 0, slot_begin=1, **QWEN)
        expected = expected_rows(source, plan, identity, **QWEN).reshape(rows_of(plan), channels, 2, 196).copy()
        expected[:, :, 0] = 0
        np.testing.assert_array_equal(bits(slots), expected.reshape(rows_of(plan), -1))
    # Rows wider than one chunk of the band (160 kB of items: 5,824 grey, 1,932 RGB or 1,456 RGBA pixels).
    wide = make_image(rng, 28, 28 * 212, channels)
    plan = make_plan(28, 28 * 212, 28, 28 * 212)
    for layout in (compact, QWEN):
        np.testing.assert_array_equal(
            run_kernel(wide, plan, identity, **layout), expected_rows(wide, plan, identity, **layout)
        )


# --- batches of frames: run_frames -----------------------------------------------------------------


def rows_of(plan: ResamplePlan, patch_size: int = 14) -> int:
    return (plan.out_height // patch_size) * (plan.out_width // patch_size)


def batch_frames(images, plans, table: torch.Tensor, out: torch.Tensor, slots=None) -> tuple[list[tuple], list[int]]:
    """The extension's frame tuples of ``images`` resized with ``plans`` into consecutive rows of ``out`` (QWEN
    layout), each filling ``slots[i]`` (slot_begin, slot_count) or every slot; and each frame's first row
    (frames with one slot each share the rows of the frame before them)."""
    frames, offsets, row = [], [], 0
    for i, (image, plan) in enumerate(zip(images, plans, strict=True)):
        begin, count = slots[i] if slots else (0, None)
        if begin > 0:
            row -= rows_of(plan)
        offsets.append(row)
        frame = cpu_kernel.frame_arguments(image, plan, table, out, row, slot_begin=begin, slot_count=count, **QWEN)
        frames.append(frame)
        row += rows_of(plan)
    return frames, offsets


def test_small_frames_run_side_by_side(simd):
    """Frames too small for two threads each run a frame per thread (all of them here), the one large enough to
    split runs on its own; every frame's rows are the reference's."""
    rng = np.random.default_rng(21)
    sizes = [(60, 70, 56, 84), (100, 90, 112, 84), (56, 56, 56, 56), (33, 47, 56, 56), (200, 150, 196, 140)]
    sizes += [(17, 300, 28, 280), (90, 60, 84, 56), (300, 270, 336, 308)]  # the last is split: 103,488 pixels
    images = [make_image(rng, h, w) for h, w, _, _ in sizes]
    plans = [make_plan(h, w, oh, ow, vertical_first=i % 2 == 1) for i, (h, w, oh, ow) in enumerate(sizes)]
    for dtype in (torch.float32, torch.bfloat16, torch.uint8):
        table = make_table(dtype)
        out = torch.full((sum(rows_of(plan) for plan in plans), 1176), unwritten(dtype), dtype=dtype)
        frames, offsets = batch_frames(images, plans, table, out)
        assert _C.frames_side_by_side(frames, 2) == list(range(len(sizes) - 1))
        assert _C.frames_side_by_side(frames, 1) == []
        _C.run_frames(frames, 2)
        for image, plan, offset in zip(images, plans, offsets, strict=True):
            expected = expected_rows(image, plan, table, **QWEN)
            np.testing.assert_array_equal(bits(out)[offset : offset + len(expected)], expected)


def test_frames_of_one_clip_run_side_by_side(simd):
    """The frames of a clip write the same rows in different temporal slots: side by side too (the third frame,
    the clip's last, fills both slots of the next rows, as the stock pads a clip)."""
    rng = np.random.default_rng(22)
    images = [make_image(rng, 70, 90) for _ in range(3)]
    plans = [make_plan(70, 90, 56, 84)] * 3
    table = make_table(torch.float32)
    rows = rows_of(plans[0])
    out = torch.full((2 * rows, 1176), unwritten(torch.float32))
    frames, offsets = batch_frames(images, plans, table, out, slots=[(0, 1), (1, 1), (0, 2)])
    assert offsets == [0, 0, rows]
    assert _C.frames_side_by_side(frames, 2) == [0, 1, 2]
    _C.run_frames(frames, 2)
    first, second = (expected_rows(image, plans[0], table, **QWEN).reshape(rows, 3, 2, 196) for image in images[:2])
    clip = np.concatenate([first[:, :, :1], second[:, :, 1:]], axis=2).reshape(rows, -1)
    np.testing.assert_array_equal(bits(out)[:rows], clip)
    np.testing.assert_array_equal(bits(out)[rows:], expected_rows(images[2], plans[0], table, **QWEN))


def test_frames_in_conflict_run_in_order():
    """Frames that write what another writes or reads run one after another, in order, as run_frame one by one:
    the last writer of a row wins, and a frame reading another's output reads it written."""
    rng = np.random.default_rng(23)
    images = [make_image(rng, 60, 70) for _ in range(3)]
    plan = make_plan(60, 70, 56, 84)
    table = make_table(torch.float32)
    rows = rows_of(plan)
    out = torch.empty((rows, 1176))
    frames = [cpu_kernel.frame_arguments(image, plan, table, out, 0, **QWEN) for image in images]
    assert _C.frames_side_by_side(frames, 2) == []
    _C.run_frames(frames, 2)
    np.testing.assert_array_equal(bits(out), expected_rows(images[2], plan, table, **QWEN))

    # The second frame's image is bytes of the first frame's output.
    square = make_plan(28, 28, 28, 28)
    first_out = torch.empty((rows, 1176))
    second_out = torch.empty((rows_of(square), 1176))
    read_back = first_out.numpy().view(np.uint8)[:1].reshape(-1)[: 28 * 28 * 3].reshape(28, 28, 3)
    frames = [
        cpu_kernel.frame_arguments(images[0], plan, table, first_out, 0, **QWEN),
        cpu_kernel.frame_arguments(read_back, square, table, second_out, 0, **QWEN),
    ]
    assert _C.frames_side_by_side(frames, 2) == []
    _C.run_frames(frames, 2)
    np.testing.assert_array_equal(bits(first_out), expected_rows(images[0], plan, table, **QWEN))
    np.testing.assert_array_equal(bits(second_out), expected_rows(read_back.copy(), square, table, **QWEN))

    # Two outputs that are views of one buffer, the second's rows half way down the first's.
    buffer = torch.empty((2 * rows, 1176))
    frames = [
        cpu_kernel.frame_arguments(images[0], plan, table, buffer, 0, **QWEN),
        cpu_kernel.frame_arguments(images[1], plan, table, buffer[rows // 2 :], 0, **QWEN),
    ]
    assert _C.frames_side_by_side(frames, 2) == []
    _C.run_frames(frames, 2)
    np.testing.assert_array_equal(bits(buffer)[: rows // 2], expected_rows(images[0], plan, table, **QWEN)[: rows // 2])
    np.testing.assert_array_equal(
        bits(buffer)[rows // 2 : rows // 2 + rows], expected_rows(images[1], plan, table, **QWEN)
    )

    # Other slots of the same rows, in another layout (6 channels, 1 slot: rows as long as 3 channels, 2 slots):
    # slot 0 there is not slot 0 here.
    six = make_image(rng, 60, 70, channels=6)
    six_table = make_table(torch.float32, channels=6)
    out = torch.empty((rows, 1176))
    frames = [
        cpu_kernel.frame_arguments(images[0], plan, table, out, 0, slot_begin=1, slot_count=1, **QWEN),
        cpu_kernel.frame_arguments(six, plan, six_table, out, 0, patch_size=14, merge_size=2, temporal_patch_size=1),
    ]
    assert _C.frames_side_by_side(frames, 2) == []
    _C.run_frames(frames, 2)
    layout = {"patch_size": 14, "merge_size": 2, "temporal_patch_size": 1}
    np.testing.assert_array_equal(bits(out), expected_rows(six, plan, six_table, **layout))


def test_batches_from_several_python_threads_at_once():
    """Batches of small frames from 3 Python threads at once share the one pool: each gets its own bytes."""
    rng = np.random.default_rng(26)
    sizes = [(60, 70, 56, 84), (100, 90, 112, 84), (33, 47, 56, 56), (90, 60, 84, 56)] * 3
    table = make_table(torch.float32)

    def batch(seed: int) -> tuple[list[np.ndarray], list[ResamplePlan]]:
        local = np.random.default_rng(seed)
        return [make_image(local, h, w) for h, w, _, _ in sizes], [make_plan(*size) for size in sizes]

    def run(seed: int) -> np.ndarray:
        images, plans = batch(seed)
        out = torch.full((sum(rows_of(plan) for plan in plans), 1176), unwritten(torch.float32))
        for _ in range(5):
            frames, _ = batch_frames(images, plans, table, out)
            _C.run_frames(frames, 2)
        return bits(out)

    seeds = [int(seed) for seed in rng.integers(0, 2**31, 9)]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(run, seeds))
    for seed, result in zip(seeds, results, strict=True):
        images, plans = batch(seed)
        pairs = zip(images, plans, strict=True)
        expected = np.concatenate([expected_rows(image, plan, table, **QWEN) for image, plan in pairs])
        np.testing.assert_array_equal(result, expected)


def test_frames_are_all_checked_before_any_runs():
    """A bad frame anywhere in the list: ValueError naming it, and no frame written."""
    rng = np.random.default_rng(24)
    images = [make_image(rng, 60, 70) for _ in range(4)]
    plans = [make_plan(60, 70, 56, 84)] * 4
    table = make_table(torch.float32)
    out = torch.full((4 * rows_of(plans[0]), 1176), unwritten(torch.float32))
    frames, _ = batch_frames(images, plans, table, out)
    frames[2] = (images[2].astype(np.float32), *frames[2][1:])
    with pytest.raises(ValueError, match="^frame 2: image must be uint8, got float32$"):
        _C.run_frames(frames, 2)
    assert np.isnan(out.numpy()).all()
    with pytest.raises(ValueError, match="num_threads must be >= 1, got 0"):
        _C.run_frames(frames[:2], 0)
    message = "^frame 1: expected a tuple of run_frame's 12 arguments less num_threads, of the types it takes; got "
    with pytest.raises(TypeError, match=message + "int$"):
        _C.run_frames([frames[0], 7], 2)
    with pytest.raises(TypeError, match=message + "tuple of 12 items$"):
        _C.run_frames([frames[0], (*frames[1][:-1], 2.5)], 2)
    assert np.isnan(out.numpy()).all()
    assert _C.frames_side_by_side([], 2) == []
    _C.run_frames([], 2)  # nothing to run


def test_engine_errors_name_the_frame():
    """Through the engine, a frame the extension refuses is an InvalidImageError naming its index."""
    rng = np.random.default_rng(25)
    image = make_image(rng, 60, 70)
    plan = make_plan(60, 70, 56, 84)
    table = make_table(torch.float32)
    out = torch.empty(2 * rows_of(plan), 1176)
    bad = replace_axis(plan, "horizontal", starts=np.full_like(plan.horizontal.starts, 69))
    jobs = [FrameJob(torch.from_numpy(image), plan, 0, 0, 2), FrameJob(torch.from_numpy(image), bad, 24, 0, 2)]
    message = "^frame 1: horizontal plan starts \\+ counts exceed the input size 70 at output 0$"
    with pytest.raises(InvalidImageError, match=message):
        cpu_kernel.CppEngine().run(jobs, table, out, PatchLayout(14, 2, 2))


def test_error_out_overlaps_image_or_table(frame):
    """The kernel never reads what it writes."""
    image, plan, table, out = frame
    inside = out.numpy().view(np.uint8).reshape(-1)[: 60 * 70 * 3].reshape(60, 70, 3)
    with pytest.raises(InvalidImageError, match="out must not overlap image or table"):
        call(inside, plan, table, out)
    flat = torch.empty(24 * 1176 + 3 * 256)
    with pytest.raises(InvalidImageError, match="out must not overlap image or table"):
        call(image, plan, flat[24 * 1176 - 256 : 24 * 1176 + 512].view(3, 256), flat[: 24 * 1176].view(24, 1176))


# --- single passes: each SIMD level against the reference ---------------------------------------------


def run_axis(image: np.ndarray, axis: plans.AxisPlan, vertical: bool, level: str) -> np.ndarray:
    """One pass with the kernels of ``level``."""
    shape = (axis.out_size, *image.shape[1:]) if vertical else (image.shape[0], axis.out_size, image.shape[2])
    out = np.empty(shape, np.uint8)
    assert _C.set_simd_level(level) == level
    try:
        _C.resample_axis(image, cpu_kernel.axis_arguments(axis), vertical, out)
    finally:
        _C.set_simd_level(highest_level())
    return out


def assert_pass_exact(image: np.ndarray, axis: plans.AxisPlan, vertical: bool) -> None:
    """The pass at every SIMD level this CPU has (portable first) equals the reference."""
    expected = apply_axis(image, axis, 0 if vertical else 1)
    for level in _C.simd_levels():
        np.testing.assert_array_equal(run_axis(image, axis, vertical, level), expected, err_msg=level)


def hand_axis(in_size: int, starts, weights_rows, precision: int) -> plans.AxisPlan:
    """An AxisPlan with the given starts and weight rows (counts: the row lengths)."""
    counts = np.array([len(row) for row in weights_rows], np.int32)
    weights = np.zeros((len(weights_rows), counts.max()), np.int32)
    for i, row in enumerate(weights_rows):
        weights[i, : len(row)] = row
    return plans.AxisPlan(in_size, len(weights_rows), np.asarray(starts, np.int32), counts, weights, precision)


@pytest.mark.parametrize("vertical", [False, True], ids=["horizontal", "vertical"])
@pytest.mark.parametrize("backend,resample", supported_filters(), ids=lambda v: v.value)
def test_pass_every_filter(backend, resample, vertical):
    """Real plans, up and down, with widths around the kernels' block sizes (8 rows, 16 and 32 bytes)."""
    rng = np.random.default_rng(20)
    for in_size, out_size, other, channels in [(37, 61, 45, 3), (250, 19, 33, 3), (9, 4, 10, 1), (64, 70, 23, 4)]:
        axis = axis_plan(in_size, out_size, resample, backend)
        shape = (in_size, other) if vertical else (other, in_size)
        assert_pass_exact(make_image(rng, *shape, channels), axis, vertical)


@pytest.mark.parametrize("vertical", [False, True], ids=["horizontal", "vertical"])
@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5])
def test_pass_channel_counts(channels, vertical):
    """Every channel count: 1, 3 and 4 have kernels of their own, others take the generic one."""
    rng = np.random.default_rng(21)
    for backend in Backend:
        axis = axis_plan(53, 40, Filter.LANCZOS, backend)
        shape = (53, 17) if vertical else (19, 53)
        assert_pass_exact(make_image(rng, *shape, channels), axis, vertical)


@pytest.mark.parametrize("vertical", [False, True], ids=["horizontal", "vertical"])
def test_pass_int16_boundary_weights(vertical):
    """Weights at the ends of int16 are multiplied as they are; one past either end splits the weights."""
    rng = np.random.default_rng(22)
    image = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    image[::3] = 255
    rows = [[32767, -32768, 32767], [-32768, 32767], [32767], [32767, 32767, -32768, 100, -7]]
    for extra in ([], [[32768, -1]], [[-32769, 32767]]):
        axis = hand_axis(40, [0, 10, 37, 30] + [5] * len(extra), rows + extra, precision=16)
        assert_pass_exact(image, axis, vertical)


@pytest.mark.parametrize("split", [False, True], ids=["int16", "split"])
def test_vertical_pass_every_tap_count_up_to_ten(split):
    """Output rows of 1 to 10 taps (1 to 4 pairs: kernels with the row's pointers and weights held for all its
    blocks; 5: the first count of the runtime loop), odd and even, int16 weights or split ones (each row's
    first weight past int16), rows of 32, 33, 64, 65 and 128 bytes (one block, a block and a tail, two blocks
    at avx2; at avx512, whose blocks are 64 bytes, the avx2 kernel, then one block, a block and a tail, two)."""
    rng = np.random.default_rng(27)
    rows = []
    for count in range(1, 11):
        row = [int(w) for w in rng.integers(-3000, 9000, count)]
        row[0] = 40000 if split else row[0]
        rows.append(row)
    for width in (32, 33, 64, 65, 128):
        image = rng.integers(0, 256, (12, width, 1), dtype=np.uint8)
        image[::4] = 255
        axis = hand_axis(12, [0, 2, 1, 0, 3, 2, 1, 0, 2, 1], rows, precision=14)
        assert _C.simd_levels()[0] == "portable"
        assert_pass_exact(image, axis, vertical=True)


@pytest.mark.parametrize("vertical", [False, True], ids=["horizontal", "vertical"])
def test_pass_split_weights_whose_partial_sums_wrap(vertical):
    """Pillow-sized weights are split into int16 halves; here the sums of the low halves pass 2^31 (many
    taps of -1, whose low half is 2^15 - 1, on bright pixels) while the plan's own sum stays in int32."""
    rng = np.random.default_rng(23)
    size = 320
    image = np.full((size, size, 3), 255, np.uint8)
    image[:, :, 1] = rng.integers(200, 256, (size, size), dtype=np.uint8)
    image[::7] = rng.integers(0, 256, image[::7].shape, dtype=np.uint8)
    many = [1 << 22] + [-1] * 299 + [-32769]  # 301 taps: an odd count
    rows = [many, many[:-1], [-(1 << 22), 1 << 23, 5], [(1 << 22) - 1]]
    axis = hand_axis(size, [0, 10, 100, 319], rows, precision=22)
    assert_pass_exact(image, axis, vertical)


# Each SIMD level's gather shapes, in the order its kernel tries them: (output bytes per group, window
# bytes), as csrc/kernels.h states them.
GATHER_SHAPES = {"avx2": ((4, 16),), "avx512": ((16, 64), (16, 128))}


def fits_window(axis: plans.AxisPlan, channels: int, outputs: int, window: int) -> bool:
    """The gather kernel's rule, restated: rows hold at least one window, and the taps of each group of
    `outputs` consecutive output bytes span at most one window of the input row."""
    if axis.in_size * channels < window:
        return False
    c = np.arange(channels)
    first = (axis.starts.astype(np.int64)[:, None] * channels + c).ravel()
    last = ((axis.starts.astype(np.int64) + axis.counts - 1)[:, None] * channels + c).ravel()
    pad = -len(first) % outputs
    first = np.pad(first, (0, pad), mode="edge").reshape(-1, outputs)
    last = np.pad(last, (0, pad), mode="edge").reshape(-1, outputs)
    return bool((last.max(axis=1) - first.min(axis=1) < window).all())


def gather_window(axis: plans.AxisPlan, channels: int, level: str) -> int:
    """The window the level's horizontal kernel gathers from: its first shape the axis fits, else 0."""
    for outputs, window in GATHER_SHAPES.get(level, ()):
        if fits_window(axis, channels, outputs, window):
            return window
    return 0


# (level, window, channels, longest count): 1 to 4 pairs of taps run unrolled, 5 in the general loop, at
# channel counts and tap counts whose groups fit the window.
GATHER_CASES = (
    [("avx512", 64, channels, longest) for channels in (1, 3, 5) for longest in (2, 4, 6, 8, 10)][:-1]
    + [("avx512", 128, channels, longest) for channels in (1, 3, 5) for longest in (2, 4, 6, 8, 10)]
    + [("avx2", 16, 1, longest) for longest in (2, 4, 6, 8, 10)]
    + [("avx2", 16, 3, 2), ("avx2", 16, 3, 4), ("avx2", 16, 5, 2)]
)


@pytest.mark.parametrize("fits", [True, False], ids=["one-window", "past-a-window"])
@pytest.mark.parametrize("weights", ["int16-extremes", "split"])
@pytest.mark.parametrize("level,window,channels,longest", GATHER_CASES)
def test_pass_gather_windows(level, window, channels, longest, weights, fits):
    """A SIMD level's horizontal kernel gathers each group of output bytes (16 at AVX-512, 4 at AVX2) from
    one window of the input row (64 bytes, else 128, at AVX-512; 16 at AVX2) where every group's taps fit
    in one, else takes the next window or the transposing kernel. Here the first group that reaches a second
    pixel spans the widest the window holds or the next span that does not fit, starts go back and forth
    inside that group, later windows reach the row's end (where they start earlier instead), outputs take 1
    to `longest` taps, and the last store is partial."""
    skip_unless(level)
    outputs = dict((shape_window, shape_outputs) for shape_outputs, shape_window in GATHER_SHAPES[level])[window]
    rng = np.random.default_rng(26 + channels + longest + outputs)
    # The group under test: its first output byte is channel `near` of pixel `low`, its last channel
    # `channel` of pixel `far`, the first group whose bytes come from two pixels.
    group = next(g for g in range(channels + 1) if (g * outputs) // channels < (g * outputs + outputs - 1) // channels)
    low, near = divmod(group * outputs, channels)
    far, channel = divmod(group * outputs + outputs - 1, channels)
    spans = [1 + channel - near + channels * m for m in range(window + 8)]  # the far pixel's last tap ends at m
    span = max(v for v in spans if v <= window) if fits else min(v for v in spans if v > window)
    far_start = (span - 1 - channel + near) // channels - 1  # with 2 taps, its last tap ends the span
    starts = [0] * (low + 1) + [int(v) for v in rng.integers(0, far_start // 2 + 1, far - low - 1)] + [far_start]
    counts = [1] * (low + 1) + [int(v) for v in rng.integers(1, min(3, longest) + 1, far - low - 1)] + [2]
    for i in range(30):  # then rising slowly to the row's end
        starts.append(far_start + i)
        counts.append(longest if i == 3 else int(rng.integers(1, longest + 1)))
    in_size = max(start + count for start, count in zip(starts, counts, strict=True))
    if weights == "split":
        rows = [rng.integers(-(1 << 19), 1 << 19, count).tolist() for count in counts]
        assert any(abs(w) > 32767 for row in rows for w in row)
    else:
        rows = [rng.choice([-32768, 32767, -5, 1000], count).tolist() for count in counts]
    rows[far] = [1 << 13, 1 << 13]  # half of each tap: a misread far tap shows
    axis = hand_axis(in_size, starts, rows, precision=14)
    assert fits_window(axis, channels, outputs, window) == fits  # the construction does what it says
    expected = gather_window(axis, channels, level)  # past the window: the level's next one, or none
    wider = [shape_window for _, shape_window in GATHER_SHAPES[level] if shape_window > window]
    assert (expected == window) == fits and (fits or expected in (0, *wider))
    image = rng.integers(0, 256, (11, in_size, channels), dtype=np.uint8)
    image[:, ::3] = 255
    image[:, 0], image[:, far_start + 1] = 0, 255  # the window's first pixel, and the far tap's
    assert_pass_exact(image, axis, vertical=False)
    with simd_level(level):
        assert _C.horizontal_gather_window(cpu_kernel.axis_arguments(axis), channels) == expected


# Widths (in, out, channels) and the window (bytes) each level's horizontal kernel gathers them from, for
# both backends (levels not named transpose): model-size resizes of common frames, a 2x downscale (too wide
# for 4 outputs in 16 bytes), 2.9x and 3.5x ones (a phone photo or a 4K frame at max_pixels 1003520: too
# wide for 16 outputs in 64 bytes), a 6.5x one, and rows shorter than one AVX-512 window (18 bytes) or than
# one AVX2 window too (15).
WHERE_GATHERED = [
    ((1920, 1932, 3), {"avx2": 16, "avx512": 64}),
    ((1280, 1288, 3), {"avx2": 16, "avx512": 64}),
    ((3840, 3836, 3), {"avx2": 16, "avx512": 64}),
    ((640, 644, 1), {"avx2": 16, "avx512": 64}),
    ((1920, 1932, 4), {"avx2": 16, "avx512": 64}),
    ((1920, 952, 3), {"avx512": 64}),
    ((3840, 1316, 3), {"avx512": 128}),
    ((4032, 1148, 3), {"avx512": 128}),
    ((4032, 1148, 4), {"avx512": 128}),
    ((3840, 588, 3), {}),
    ((6, 7, 3), {"avx2": 16}),
    ((5, 6, 3), {}),
]


@pytest.mark.parametrize("backend", list(Backend), ids=lambda v: v.value)
def test_which_horizontal_kernel_runs(backend):
    """Each level gathers the widths listed for it, and those its fit rule admits; the others transpose.
    Every width is exact at every level."""
    rng = np.random.default_rng(27)
    for (in_width, out_width, channels), gathered in WHERE_GATHERED:
        plan = axis_plan(in_width, out_width, Filter.BICUBIC, backend)
        axis = cpu_kernel.axis_arguments(plan)
        for level in _C.simd_levels():
            with simd_level(level):
                window = _C.horizontal_gather_window(axis, channels)
            case = (in_width, out_width, channels, level)
            assert window == gathered.get(level, 0) == gather_window(plan, channels, level), case
        if in_width < 100:
            assert_pass_exact(make_image(rng, 5, in_width, channels), plan, vertical=False)
    with pytest.raises(ValueError, match="channels must be >= 1, got 0"):
        _C.horizontal_gather_window(axis, 0)
    with pytest.raises(ValueError, match="a row is too large"):
        _C.horizontal_gather_window(axis, 2**62)


@pytest.mark.parametrize("backend", list(Backend), ids=lambda v: v.value)
def test_gathering_passes_over_whole_rows(backend):
    """The gathered widths of WHERE_GATHERED at their full length, 11 rows (pairs, then one): rows of many
    tiles of table entries at AVX-512 (gather_rows: a tile's worth of groups for each pair of rows, then the
    next tile), and every level against the reference."""
    rng = np.random.default_rng(31)
    for (in_width, out_width, channels), gathered in WHERE_GATHERED:
        if in_width >= 100 and gathered:
            plan = axis_plan(in_width, out_width, Filter.BICUBIC, backend)
            image = make_image(rng, 11, in_width, channels)
            image[::2, ::5] = 255
            assert_pass_exact(image, plan, vertical=False)


# Every pass at every SIMD level over images that end where an inaccessible page begins: a read past
# the image's last byte faults. Run in a child process, so that a fault fails the test with a message.
# Every pass at every SIMD level over images that end where an inaccessible page begins, into outputs
# that end where one begins too: a read past the image's last byte or a write past the output's faults.
# Run in a child process, so that a fault fails the test with a message. Each width names the levels
# window each level's horizontal kernel gathers it from (gather_window), and the child checks that it does.
GUARDED_WIDTHS = [
    ((5, 6, 3), {}),  # 15 bytes: shorter than any window
    ((4, 5, 4), {"avx2": 16}),  # exactly one AVX2 window
    ((16, 18, 1), {"avx2": 16}),
    ((20, 24, 3), {"avx2": 16}),
    ((15, 17, 4), {"avx2": 16}),
    ((63, 70, 1), {"avx2": 16}),  # one byte short of an AVX-512 window
    ((64, 61, 1), {"avx2": 16, "avx512": 64}),  # exactly one AVX-512 window
    ((200, 212, 3), {"avx2": 16, "avx512": 64}),
    ((200, 90, 3), {"avx512": 64}),  # 2.2x down
    ((127, 37, 1), {}),  # 3.4x down, one byte short of a wide AVX-512 window
    ((128, 37, 1), {"avx512": 128}),  # exactly one wide window
    ((64, 19, 2), {"avx512": 128}),
    ((31, 9, 4), {}),  # one pixel short
    ((32, 9, 4), {"avx512": 128}),
    ((43, 12, 3), {"avx512": 128}),  # a byte past
    ((200, 60, 3), {"avx512": 128}),  # 3.3x down
    ((200, 40, 3), {}),  # 5x down
    ((301, 333, 4), {"avx2": 16, "avx512": 64}),
    ((1000, 1012, 3), {"avx2": 16, "avx512": 64}),
]

GUARDED_PASSES = """
import sys
import numpy as np
from guard_pages import flush_against_guard
from vlfast import _C
from vlfast.engines import cpp as cpu_kernel
from vlfast.plans import Backend, Filter, axis_plan
from vlfast.reference import apply_axis

rng = np.random.default_rng(0)
checked = 0
for (width, out_width, channels), gathered in eval(sys.argv[1]):
    height = 9
    image = flush_against_guard(height * width * channels).reshape(height, width, channels)
    image[...] = rng.integers(0, 256, image.shape, dtype=np.uint8)
    for backend in Backend:
        for vertical, axis in ((False, axis_plan(width, out_width, Filter.BICUBIC, backend)),
                               (True, axis_plan(height, 12, Filter.BICUBIC, backend))):
            expected = apply_axis(image, axis, 0 if vertical else 1)
            fields = cpu_kernel.axis_arguments(axis)
            for level in _C.simd_levels():
                _C.set_simd_level(level)
                if not vertical:
                    window = _C.horizontal_gather_window(fields, channels)
                    assert window == gathered.get(level, 0), (width, backend, level)
                out = flush_against_guard(expected.size).reshape(expected.shape)
                _C.resample_axis(image, fields, vertical, out)
                assert np.array_equal(out, expected), (width, out_width, channels, backend, vertical, level)
                checked += 1
print(checked)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="guard pages through libc mprotect")
def test_passes_touch_nothing_past_their_buffers():
    """Rows shorter than each gather window (16, 64 and 128 bytes), exactly one, and longer; horizontal passes
    gathered at both levels (upscaling), at AVX-512 only (2.2x down; 3.3x, from the wide window) or at neither
    (5x down), and vertical ones; each image's last row and each output's flush against a PROT_NONE page."""
    for (width, out_width, channels), gathered in GUARDED_WIDTHS:  # the list is what it says
        for backend in Backend:
            plan = axis_plan(width, out_width, Filter.BICUBIC, backend)
            windows = {level: gather_window(plan, channels, level) for level in GATHER_SHAPES}
            assert {level: window for level, window in windows.items() if window} == gathered, (width, backend)
    child = run_child(GUARDED_PASSES, repr(GUARDED_WIDTHS))
    assert child.returncode == 0, child.stderr[-2000:]
    assert int(child.stdout) == len(GUARDED_WIDTHS) * 2 * 2 * len(_C.simd_levels())


def test_pass_gather_random_plans():
    """Random plans whose starts rise (as every resize's do) by up to 2 pixels an output (5 in a third of
    them), with 1-8 taps, over rows of 1-5 channels and lengths around the stores' (32 and 64 bytes, partial
    and whole): each level gathers exactly those whose groups fit one of its windows, from the first that
    fits, and every level is exact."""
    rng = np.random.default_rng(28)
    windows = {level: [] for level in _C.simd_levels()}
    for trial in range(150):
        channels = int(rng.integers(1, 6))
        out_size = int(rng.integers(1, 80))
        longest = int(rng.integers(1, 9))
        counts = rng.integers(1, longest + 1, out_size)
        starts = np.cumsum(rng.integers(0, 6 if trial % 3 == 0 else 3, out_size)) - rng.integers(0, 2)
        starts = np.maximum(starts, 0)
        in_size = int((starts + counts).max()) + int(rng.integers(0, 3))
        limit = (1 << 15) if trial % 2 else (1 << 20)
        rows = [rng.integers(-limit, limit, count).tolist() for count in counts]
        axis = hand_axis(in_size, starts.tolist(), rows, precision=int(rng.integers(12, 19)))
        fields = cpu_kernel.axis_arguments(axis)
        for level in _C.simd_levels():
            with simd_level(level):
                window = _C.horizontal_gather_window(fields, channels)
            assert window == gather_window(axis, channels, level), (trial, level)
            windows[level].append(window)
        assert_pass_exact(make_image(rng, 3, in_size, channels), axis, vertical=False)
    for level in GATHER_SHAPES.keys() & windows.keys():  # the plans reach every window of each level, and none
        counts = {window: windows[level].count(window) for window in [0, *(w for _, w in GATHER_SHAPES[level])]}
        assert min(counts.values()) >= 10, (level, counts)


def test_pass_random_plans():
    """Random starts, counts and weights within the kernel's bounds, both weight forms."""
    rng = np.random.default_rng(24)
    for trial in range(40):
        in_size = int(rng.integers(1, 90))
        out_size = int(rng.integers(1, 90))
        precision = int(rng.integers(8, 23))
        limit = (1 << 15) if trial % 2 else (1 << 22)
        starts, rows = [], []
        for _ in range(out_size):
            count = int(rng.integers(1, min(in_size, 12) + 1))
            starts.append(int(rng.integers(0, in_size - count + 1)))
            bound = min(limit, ((1 << 31) - (1 << precision)) // (255 * count))
            rows.append(rng.integers(-bound, bound, count).tolist())
        axis = hand_axis(in_size, starts, rows, precision)
        vertical = bool(trial % 3)
        shape = (in_size, int(rng.integers(1, 50))) if vertical else (int(rng.integers(1, 20)), in_size)
        assert_pass_exact(make_image(rng, *shape, int(rng.choice([1, 3, 4]))), axis, vertical)


def test_pass_errors():
    image = np.zeros((10, 12, 3), np.uint8)
    axis = cpu_kernel.axis_arguments(axis_plan(12, 7, Filter.BICUBIC, Backend.PIL))
    with pytest.raises(ValueError, match="horizontal plan resamples 12 input pixels but the image width is 11"):
        _C.resample_axis(image[:, :11].copy(), axis, False, np.empty((10, 7, 3), np.uint8))
    with pytest.raises(ValueError, match=r"out must have shape \(10, 7, 3\), got \(10, 7, 4\)"):
        _C.resample_axis(image, axis, False, np.empty((10, 7, 4), np.uint8))
    with pytest.raises(ValueError, match="out must be uint8, got int16"):
        _C.resample_axis(image, axis, False, np.empty((10, 7, 3), np.int16))
    with pytest.raises(ValueError, match="image must be C-contiguous"):
        _C.resample_axis(np.zeros((10, 24, 3), np.uint8)[:, ::2], axis, False, np.empty((10, 7, 3), np.uint8))
    with pytest.raises(ValueError, match="out must not overlap image"):
        memory = np.zeros(600, np.uint8)  # image in bytes 0..359, out in 300..509
        _C.resample_axis(memory[:360].reshape(10, 12, 3), axis, False, memory[300:510].reshape(10, 7, 3))
    with pytest.raises(ValueError, match="out must not overlap image"):
        _C.resample_axis(image, cpu_kernel.axis_arguments(axis_plan(10, 10, Filter.BILINEAR, Backend.PIL)), True, image)
    with pytest.raises(ValueError, match="vertical plan.counts must be >= 1"):
        counts_zero = cpu_kernel.axis_arguments(replace_counts(axis_plan(10, 4, Filter.BILINEAR, Backend.PIL)))
        _C.resample_axis(image, counts_zero, True, image[:4].copy())


def replace_counts(axis: plans.AxisPlan) -> plans.AxisPlan:
    return dataclasses.replace(axis, counts=np.zeros_like(axis.counts))


# --- errors -----------------------------------------------------------------------------------------


@pytest.fixture
def frame():
    """A valid call's arguments, for the error tests to break one at a time."""
    image = make_image(np.random.default_rng(13), 60, 70)
    plan = make_plan(60, 70, 56, 84)
    table = make_table(torch.float32)
    out = torch.empty(24, 3 * 2 * 196)
    return image, plan, table, out


def call(image, plan, table, out, row_offset=0, **options):
    cpu_kernel.run_frame(image, plan, table, out, row_offset, **{**QWEN, **options})


def test_error_image_dtype(frame):
    image, plan, table, out = frame
    with pytest.raises(InvalidImageError, match="image must be uint8, got float32"):
        call(image.astype(np.float32), plan, table, out)


def test_error_image_ndim(frame):
    image, plan, table, out = frame
    with pytest.raises(InvalidImageError, match=r"image must have 3 dimensions \(height, width, channels\), got 2"):
        call(image[..., 0], plan, table, out)


def test_error_image_not_numpy(frame):
    image, plan, table, out = frame
    with pytest.raises(InvalidImageError, match="image must be a numpy array, got Tensor"):
        call(torch.from_numpy(image), plan, table, out)


def test_error_channel_count(frame):
    image, plan, table, out = frame
    with pytest.raises(InvalidImageError, match="image has 4 channels but the table has 3"):
        call(np.concatenate([image, image[..., :1]], axis=2), plan, table, out)


def test_error_zero_size(frame):
    _, _, table, out = frame
    with pytest.raises(InvalidImageError, match=r"image must be at least 1x1, got shape \(0, 0, 3\)"):
        call(np.zeros((0, 0, 3), np.uint8), ResamplePlan(0, 0, 0, 0, None, None, False), table, out)


def test_error_negative_strides(frame):
    image, plan, table, out = frame
    with pytest.raises(InvalidImageError, match="image strides must be non-negative"):
        call(image[::-1], plan, table, out)
    with pytest.raises(InvalidImageError, match="image strides must be non-negative"):
        call(image[..., ::-1], plan, table, out)


def test_error_plan_does_not_match_image(frame):
    image, plan, table, out = frame
    with pytest.raises(InvalidImageError, match="the plan resizes 60x70 images but the image is 59x70"):
        call(image[:59], plan, table, out)
    with pytest.raises(InvalidImageError, match="horizontal plan resamples 71 input pixels but the image width is 70"):
        call(image, dataclasses.replace(plan, horizontal=axis_plan(71, 84, Filter.BICUBIC, Backend.PIL)), table, out)
    with pytest.raises(InvalidImageError, match="the plan's passes resize to 56x84 but it says 56x112"):
        call(image, dataclasses.replace(plan, out_width=112), table, out)
    with pytest.raises(InvalidImageError, match="horizontal plan.out_size must be >= 1, got 0"):
        # A consistent plan (its own checks pass) whose horizontal pass writes nothing.
        empty = dataclasses.replace(plan.horizontal, out_size=0)
        call(image, dataclasses.replace(plan, horizontal=empty, out_width=0), table, out)


@pytest.mark.parametrize(
    "which,changes,message",
    [
        ("horizontal", {"starts": np.zeros(84, np.int64)}, "horizontal plan.starts must be int32, got int64"),
        ("vertical", {"counts": np.ones(55, np.int32)}, r"vertical plan.counts must have shape \(56,\), got \(55,\)"),
        ("vertical", {"weights": np.ones((56, 5), np.int32)[:, ::2]}, "vertical plan.weights must be C-contiguous"),
        ("horizontal", {"weights": np.ones(84, np.int32)}, r"horizontal plan.weights must have shape \(84, taps\)"),
        ("horizontal", {"counts": np.zeros(84, np.int32)}, "horizontal plan.counts must be >= 1, got 0 at output 0"),
        ("horizontal", {"counts": np.full(84, 9, np.int32)}, r"counts exceed the \d+ weight columns at output 0"),
        ("vertical", {"starts": np.full(56, -1, np.int32)}, "vertical plan.starts must be >= 0, got -1 at output 0"),
        (
            "vertical",
            {"starts": np.r_[np.zeros(5), 59, np.zeros(50)].astype(np.int32)},
            r"vertical plan starts \+ counts exceed the input size 60 at output 5",
        ),
        (
            "horizontal",
            {"weights": np.full((84, 5), 1 << 30, np.int32), "counts": np.ones(84, np.int32)},
            "horizontal plan.weights can overflow the int32 accumulator at output 0",
        ),
        ("horizontal", {"precision": 31}, r"horizontal plan.precision must be in 1..30, got 31"),
    ],
)
def test_error_inconsistent_plan(frame, which, changes, message):
    image, plan, table, out = frame
    with pytest.raises(InvalidImageError, match=message):
        call(image, replace_axis(plan, which, **changes), table, out)


def test_error_out_too_small(frame):
    image, plan, table, out = frame
    with pytest.raises(InvalidImageError, match=r"out has 23 rows but this frame writes rows 0\.\.23"):
        call(image, plan, table, out[:23])
    with pytest.raises(InvalidImageError, match=r"out has 24 rows but this frame writes rows 1\.\.24"):
        call(image, plan, table, out, row_offset=1)
    with pytest.raises(
        InvalidImageError, match=r"out rows must have channels\*temporal_patch_size\*patch_size\^2 = 1176"
    ):
        call(image, plan, table, torch.empty(24, 1175))


def test_error_dtypes_and_layouts(frame):
    image, plan, table, out = frame
    with pytest.raises(InvalidImageError, match="table dtype torch.float32 differs from out dtype torch.bfloat16"):
        call(image, plan, table, out.to(torch.bfloat16))
    with pytest.raises(UnsupportedOptionError, match="table dtype must be one of .*, got torch.float64"):
        call(image, plan, table.double(), out.double())
    with pytest.raises(InvalidImageError, match="out must be contiguous"):
        call(image, plan, table, torch.empty(1176, 24).t())
    with pytest.raises(InvalidImageError, match="table must be contiguous"):
        call(image, plan, torch.empty(256, 3).t(), out)
    with pytest.raises(InvalidImageError, match="the C\\+\\+ engine writes CPU tensors; out is on meta"):
        call(image, plan, table, out.to("meta"))


def test_error_extension_checks(frame):
    """The extension's own checks, below the wrapper (which catches most of these first)."""
    image, plan, table, out = frame

    def run(table_bits: np.ndarray, out_bits: np.ndarray) -> None:
        _C.run_frame(
            image=image,
            horizontal=cpu_kernel.axis_arguments(plan.horizontal),
            vertical=cpu_kernel.axis_arguments(plan.vertical),
            vertical_first=False,
            table=table_bits,
            out=out_bits,
            row_offset=0,
            patch_size=14,
            merge_size=2,
            temporal_patch_size=2,
            slot_begin=0,
            slot_count=2,
            num_threads=1,
        )

    with pytest.raises(ValueError, match="out items are 2 bytes but table items are 4"):
        run(bits(table), bits(out.to(torch.bfloat16)))
    with pytest.raises(ValueError, match=r"table must have shape \(channels, 256\), got \(3, 255\)"):
        run(bits(table)[:, :255], bits(out))
    with pytest.raises(ValueError, match="table items must be 1, 2 or 4 bytes, got 8"):
        run(np.zeros((3, 256)), bits(out))
    with pytest.raises(ValueError, match="table must be a numpy array, got list"):
        run([[0] * 256] * 3, bits(out))
    readonly = bits(out).copy()
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        run(bits(table), readonly)


def test_error_layout_parameters(frame):
    image, plan, table, out = frame
    with pytest.raises(InvalidImageError, match="slot_begin must be in 0..1, got 2"):
        call(image, plan, table, out, slot_begin=2)
    with pytest.raises(InvalidImageError, match="slot_count must be in 1..1, got 2"):
        call(image, plan, table, out, slot_begin=1, slot_count=2)
    with pytest.raises(InvalidImageError, match="patch_size must be in 1..65536, got 0"):
        call(image, plan, table, out, patch_size=0)
    with pytest.raises(InvalidImageError, match="num_threads must be >= 1, got 0"):
        call(image, plan, table, out, num_threads=0)
    with pytest.raises(InvalidImageError, match="row_offset must be >= 0, got -1"):
        call(image, plan, table, out, row_offset=-1)
    with pytest.raises(InvalidImageError, match=r"resized size 56x84 is not a multiple of patch_size\*merge_size=32"):
        call(image, plan, table, out, patch_size=16)
