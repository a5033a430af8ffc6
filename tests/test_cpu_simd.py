"""The C++ kernel's SIMD levels (AVX-512, AVX2) against its portable kernels (the definition), and its
constants against the Python package's.

The conformance tests hold every engine to the reference; these hold the kernel sets of the
C++ engine to each other directly, on random plans and images, and check what the extension
shares with Python (table size, item sizes, precision bound, patch-row length) is the same number.
"""

from __future__ import annotations

import itertools
import mmap
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from kernel_cases import run_engine
from simd_levels import LEVELS, simd_level, skip_unless

from vlfast import plans
from vlfast.engines import cpp as cpu_kernel
from vlfast.engines.base import EngineName, PatchLayout
from vlfast.engines.reference import ReferenceEngine
from vlfast.errors import InvalidImageError, UnsupportedOptionError
from vlfast.options import OUTPUT_DTYPES
from vlfast.plans import Backend, ResamplePlan, axis_plan
from vlfast.tables import TABLE_SIZE

if not cpu_kernel.available():
    pytest.skip("the C++ extension vlfast._C is not built", allow_module_level=True)

from vlfast import _C  # noqa: E402

LAYOUT = {"patch_size": 14, "merge_size": 2, "temporal_patch_size": 2}
SIMD_LEVELS = [level for level in LEVELS if level != "portable"]
FILTERS = [(backend, resample) for backend in Backend for resample in plans.supported_filters(backend)]


def test_constants_agree_with_python():
    assert _C.TABLE_SIZE == TABLE_SIZE
    assert sorted(_C.ITEM_SIZES) == sorted({dtype.itemsize for dtype in OUTPUT_DTYPES})
    assert set(cpu_kernel._BIT_VIEWS) == set(OUTPUT_DTYPES)  # the engine hands every output dtype over
    # Every precision the plans use is one the kernel accepts.
    assert max(plans.PIL_PRECISION_BITS, plans.TORCH_MAX_PRECISION_BITS) <= _C.MAX_PRECISION
    for channels, temporal, patch in [(3, 2, 14), (1, 2, 16), (4, 1, 14), (3, 4, 28)]:
        layout = PatchLayout(patch_size=patch, merge_size=2, temporal_patch_size=temporal)
        assert _C.patch_row_items(channels, temporal, patch) == layout.columns(channels)


def run(image: np.ndarray, plan: ResamplePlan, table: torch.Tensor, level: str, threads: int) -> torch.Tensor:
    rows = (plan.out_height // 14) * (plan.out_width // 14)
    out = torch.full((rows, table.shape[0] * 2 * 14 * 14), 7, dtype=table.dtype)
    with simd_level(level):
        cpu_kernel.run_frame(image, plan, table, out, 0, num_threads=threads, **LAYOUT)
    return out


@pytest.mark.parametrize("level", SIMD_LEVELS)
@pytest.mark.parametrize("backend,resample", FILTERS, ids=lambda v: v.value)
def test_simd_equals_portable_on_random_frames(backend, resample, level):
    """Random sizes up and down (widths past the SIMD blocks and their tails), both pass orders, strided and
    packed images, 1/3/4 channels, every dtype."""
    skip_unless(level)
    rng = np.random.default_rng(FILTERS.index((backend, resample)))
    for trial, dtype in enumerate(OUTPUT_DTYPES * 3):
        channels = (1, 3, 4)[trial % 3]
        in_h, in_w = (int(v) for v in rng.integers(3, 160, 2))
        out_h, out_w = (28 * int(v) for v in rng.integers(1, 5, 2))
        horizontal = axis_plan(in_w, out_w, resample, backend) if in_w != out_w else None
        vertical = axis_plan(in_h, out_h, resample, backend) if in_h != out_h else None
        plan = ResamplePlan(in_h, in_w, out_h, out_w, horizontal, vertical, bool(trial % 2))
        image = rng.integers(0, 256, (in_h, in_w + trial % 2, channels), dtype=np.uint8)[:, :in_w]
        image[::5] = 255 * (image[::5] > 127)  # hard edges make the filters overshoot
        generator = torch.Generator().manual_seed(trial)
        if dtype == torch.uint8:
            table = torch.randint(0, 256, (channels, 256), dtype=torch.uint8, generator=generator)
        else:
            table = torch.randn(channels, 256, generator=generator).to(dtype)
        threads = 1 + trial % 2
        expected = run(image, plan, table, "portable", threads=threads)
        assert torch.equal(run(image, plan, table, level, threads=threads), expected)


#: Patch layouts (patch_size, merge_size, temporal_patch_size): Qwen2/2.5-VL's, Qwen3-VL's and others whose
#: patch rows start at other offsets in a cache line.
ALIGNMENT_LAYOUTS = ((14, 2, 2), (16, 2, 2), (14, 1, 1), (16, 1, 2), (14, 2, 1), (6, 2, 2))


@pytest.fixture
def two_torch_threads() -> Iterator[None]:
    """torch's intra-op threads (the C++ engine's thread count) at 2, whatever the machine, then as they were."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _layout_run(frames, table, layout, offsets, slots, total, shift, level, fresh):
    """The frames' patch rows (no resize) at ``level`` (``"reference"``: by the NumPy reference engine), from
    rows ``offsets``, each filling its temporal ``slots`` (begin, count), in a ``(total, columns)`` output that starts
    ``shift`` items into a buffer of its own: the whole buffer, the items around the output included (7s, or
    with ``fresh`` the zeros of anonymous pages never touched before: pages not in memory, for which the
    kernel takes ordinary stores)."""
    patch, merge, temporal = layout
    columns = table.shape[0] * temporal * patch * patch
    size = shift + total * columns + 17
    if fresh:
        flat = torch.frombuffer(mmap.mmap(-1, size * table.element_size()), dtype=table.dtype)
    else:
        flat = torch.full((size,), 7, dtype=table.dtype)
    out = flat[shift : shift + total * columns].view(total, columns)
    plans_ = [ResamplePlan(*frame.shape[:2], *frame.shape[:2], None, None, False) for frame in frames]
    run = dict(patch_size=patch, merge_size=merge, temporal_patch_size=temporal)
    run.update(slot_begins=[begin for begin, _ in slots], slot_counts=[count for _, count in slots])
    if level == "reference":
        run_engine(EngineName.REFERENCE, frames, plans_, table, out, offsets, **run)
    else:
        with simd_level(level):
            run_engine(EngineName.CPP, frames, plans_, table, out, offsets, **run)
    return flat.clone()


@pytest.mark.parametrize("level", LEVELS)
def test_layout_equals_the_reference_at_any_output_alignment(level, two_torch_threads):
    """Patch rows that start anywhere in a cache line: outputs shifted by 0-17 items in their buffer, rows
    after others, batches of frames run side by side (rows of two frames share a line), frames split over
    threads, rows wider than a chunk of the band, frames read in place (packed or padded rows), one temporal
    slot of a row, the identity table, fresh pages, every layout kind with every channel count and with or
    without padding, every dtype; nothing outside the rows written."""
    skip_unless(level)
    rng = np.random.default_rng(11)
    combinations = itertools.product(ALIGNMENT_LAYOUTS, (1, 3, 4), (0, 5))
    for trial, (layout, channels, pad) in enumerate(combinations):
        dtype = OUTPUT_DTYPES[trial % len(OUTPUT_DTYPES)]
        patch, merge, temporal = layout
        block = patch * merge
        kind = int(rng.integers(0, 4))
        if kind == 0:  # over 65,536 output pixels: split over the two threads
            sizes = [(-(-300 // block) * block,) * 2]
        elif kind == 1:  # 40 blocks wide: more than one chunk of the band for 2- and 4-byte items
            sizes = [(block, 40 * block)]
        else:  # small frames, run side by side
            sizes = [tuple(block * int(v) for v in rng.integers(1, 4, 2)) for _ in range(int(rng.integers(1, 4)))]
        frames = [  # pad: the frames are crops of wider images (rows apart by more than a row's bytes)
            torch.from_numpy(rng.integers(0, 256, (h, w + pad, channels), dtype=np.uint8))[:, :w] for h, w in sizes
        ]
        rows = [(h // patch) * (w // patch) for h, w in sizes]
        lead = int(rng.integers(0, 3))
        slots = (1, 1) if temporal == 2 and rng.integers(0, 3) == 0 else (0, temporal)  # else every slot
        offsets = [int(offset) for offset in lead + np.cumsum([0, *rows[:-1]])]
        total = lead + sum(rows) + int(rng.integers(0, 2))
        shift = int(rng.integers(0, 18))
        generator = torch.Generator().manual_seed(trial)
        if dtype == torch.uint8 and rng.integers(0, 2):
            table = torch.arange(TABLE_SIZE, dtype=torch.uint8).repeat(channels, 1)  # the compact hand-off's
        elif dtype == torch.uint8:
            table = torch.randint(0, 256, (channels, TABLE_SIZE), dtype=torch.uint8, generator=generator)
        else:
            table = torch.randn(channels, TABLE_SIZE, generator=generator).to(dtype)
        fresh = bool(rng.integers(0, 4) == 0)
        arguments = (frames, table, layout, offsets, [slots] * len(frames), total, shift)
        expected = _layout_run(*arguments, "reference", fresh)
        got = _layout_run(*arguments, level, fresh)
        assert torch.equal(got, expected), (trial, dtype, channels, layout, pad, sizes, offsets, slots, shift, fresh)


#: (dtype, patch_size) of the slot-range test: one channel's patch in one slot of 784-900 bytes for each item size
#: (the kernel assembles such patches in one slot and writes each slot from it: float32 at 14 and 16, float32 at 15
#: with copies of a size known at run time, bfloat16 at 20, uint8 at 28), and 392 bytes (bfloat16 at 14: every
#: slot assembled) to compare.
SLOT_RANGE_CASES = (
    (torch.float32, 14),
    (torch.float32, 15),
    (torch.float32, 16),
    (torch.bfloat16, 20),
    (torch.uint8, 28),
    (torch.bfloat16, 14),
)


@pytest.mark.parametrize("level", LEVELS)
def test_slot_ranges_equal_the_reference(level, two_torch_threads):
    """Every range of temporal slots (begin, count) of 2, 3 and 4 slots, for patches assembled in one slot
    and in all: rows shifted in their buffers, fresh pages or filled ones, 1, 3 and 4 channels; and the
    frames of one clip run side by side, each filling its slots of the same rows (the first one slot, the
    second the rest)."""
    skip_unless(level)
    rng = np.random.default_rng(12)
    trial = 0
    for (dtype, patch), temporal in itertools.product(SLOT_RANGE_CASES, (2, 3, 4)):
        layout = (patch, 2, temporal)
        block = 2 * patch
        ranges = [[(b, c)] for b in range(temporal) for c in range(1, temporal - b + 1)]
        for slots in [*ranges, [(0, 1), (1, temporal - 1)]]:
            trial += 1
            channels = (1, 3, 4)[trial % 3]
            frames = [torch.from_numpy(rng.integers(0, 256, (block, 2 * block, channels), dtype=np.uint8))]
            frames *= len(slots)  # a clip's frames: the same rows, other slots
            generator = torch.Generator().manual_seed(trial)
            if dtype == torch.uint8:
                table = torch.randint(0, 256, (channels, TABLE_SIZE), dtype=torch.uint8, generator=generator)
            else:
                table = torch.randn(channels, TABLE_SIZE, generator=generator).to(dtype)
            rows = 4 * 2  # (block / patch) x (2 block / patch) patch rows
            arguments = (frames, table, layout, [1] * len(frames), slots, 1 + rows, int(rng.integers(0, 18)))
            fresh = trial % 2 == 0
            expected = _layout_run(*arguments, "reference", fresh)
            got = _layout_run(*arguments, level, fresh)
            assert torch.equal(got, expected), (trial, dtype, layout, channels, slots, fresh)


def test_out_of_range_rows_message_does_not_overflow():
    """The last row of a frame that does not fit is computed without signed overflow."""
    image = np.zeros((56, 84, 3), np.uint8)
    plan = ResamplePlan(56, 84, 56, 84, None, None, False)
    table = torch.zeros(3, 256)
    out = torch.empty(24, 3 * 2 * 196)
    offset = 2**63 - 1
    with pytest.raises(InvalidImageError, match=f"out has 24 rows but this frame writes rows {offset}..{offset + 23}"):
        cpu_kernel.run_frame(image, plan, table, out, offset, **LAYOUT)


def _frame_in_child(image: np.ndarray, plan: ResamplePlan, table_bits: np.ndarray) -> np.ndarray:
    """One frame through the extension alone (torch's own thread pool does not survive a fork)."""
    out = np.full((20 * 16, 3 * 2 * 196), 7, np.int32)
    fields = cpu_kernel.axis_arguments(plan.horizontal), cpu_kernel.axis_arguments(plan.vertical)
    _C.run_frame(image, *fields, plan.vertical_first, table_bits, out, 0, 14, 2, 2, 0, 2, 2)
    return out


def _batch_in_child(image: np.ndarray, plan: ResamplePlan, table_bits: np.ndarray) -> np.ndarray:
    """Six copies of one small frame side by side (``_C.run_frames``) through the extension alone."""
    rows = (plan.out_height // 14) * (plan.out_width // 14)
    out = np.full((6 * rows, 3 * 2 * 196), 7, np.int32)
    fields = cpu_kernel.axis_arguments(plan.horizontal), cpu_kernel.axis_arguments(plan.vertical)
    frames = [(image, *fields, plan.vertical_first, table_bits, out, i * rows, 14, 2, 2, 0, 2) for i in range(6)]
    assert _C.frames_side_by_side(frames, 2) == list(range(6))
    _C.run_frames(frames, 2)
    return out


def test_thread_pool_survives_fork():
    """A forked child (multiprocessing's fork start method) has none of the parent's pool workers:
    its calls start workers of their own and write the same rows."""
    multiprocessing = pytest.importorskip("multiprocessing")
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)
    horizontal, vertical = axis_plan(200, 224, "bicubic", "pil"), axis_plan(300, 280, "bicubic", "pil")
    plan = ResamplePlan(300, 200, 280, 224, horizontal, vertical, False)
    table_bits = rng.integers(-(2**31), 2**31, (3, 256), dtype=np.int32)
    expected = _frame_in_child(image, plan, table_bits)  # the parent's pool now has its workers
    across, down = axis_plan(200, 112, "bicubic", "pil"), axis_plan(300, 140, "bicubic", "pil")
    small = ResamplePlan(300, 200, 140, 112, across, down, False)
    batch = _batch_in_child(image, small, table_bits)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child = pool.apply_async(_frame_in_child, (image, plan, table_bits)).get(timeout=60)
        child_batch = pool.apply_async(_batch_in_child, (image, small, table_bits)).get(timeout=60)
    assert np.array_equal(child, expected)
    assert not np.array_equal(expected, np.full_like(expected, 7))
    assert np.array_equal(child_batch, batch)
    assert not (batch == 7).all(axis=1).any(), "a row left unwritten"


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", OUTPUT_DTYPES, ids=str)
def test_expand_equals_the_reference_gather(dtype, level):
    """The C++ expansion against the reference engine's NumPy gather: 1/3/4 channels, T of 1-3, any
    patch area (the lookup's 64-byte blocks and their tails), rows over several threads."""
    with simd_level(level):
        rng = np.random.default_rng(7)
        for channels, temporal, area, rows in [(3, 2, 196, 1500), (1, 1, 7, 3), (4, 3, 64, 9), (3, 2, 130, 2)]:
            compact = torch.from_numpy(rng.integers(0, 256, (rows, channels * area), dtype=np.uint8))
            if dtype == torch.uint8:
                table = torch.from_numpy(rng.integers(0, 256, (channels, 256), dtype=np.uint8))
            else:
                table = torch.randn(channels, 256, generator=torch.Generator().manual_seed(channels)).to(dtype)
            expected = torch.full((rows, channels * temporal * area), 3, dtype=dtype)
            ReferenceEngine().expand(compact, table, expected)
            got = torch.full_like(expected, 5)
            cpu_kernel.CppEngine().expand(compact, table, got)
            assert torch.equal(got, expected)


def test_expand_errors():
    compact = np.zeros((4, 3 * 196), np.uint8)
    table = np.zeros((3, 256), np.float32)
    out = np.zeros((4, 3 * 2 * 196), np.float32)
    with pytest.raises(ValueError, match="compact must be uint8, got int16"):
        _C.expand(compact.astype(np.int16), table, out, 1)
    with pytest.raises(ValueError, match=r"table must be a C-contiguous \(channels, 256\) array, got shape \(3, 255\)"):
        _C.expand(compact, table[:, :255], out, 1)
    with pytest.raises(ValueError, match="compact has 587 columns, not a positive multiple of the table's 3 channels"):
        _C.expand(compact[:, :587].copy(), table, out, 1)
    with pytest.raises(ValueError, match=r"out must have shape \(4, T \* 588\), got \(4, 1175\)"):
        _C.expand(compact, table, out[:, :1175].copy(), 1)
    with pytest.raises(ValueError, match="out items are 2 bytes but table items are 4"):
        _C.expand(compact, table, out.astype(np.float16), 1)
    with pytest.raises(ValueError, match="out must not overlap compact or table"):
        memory = np.zeros(4 * 588 * 2, np.uint8)  # compact in the first half of out's bytes
        _C.expand(memory[: 4 * 588].reshape(4, 588), np.zeros((3, 256), np.uint8), memory.reshape(4, 1176), 1)
    with pytest.raises(ValueError, match="num_threads must be >= 1, got 0"):
        _C.expand(compact, table, out, 0)
    with pytest.raises(ValueError, match="out must be writeable"):
        out.flags.writeable = False
        _C.expand(compact, table, out, 1)


def test_capped_simd_level_restores_the_level_it_found():
    """``engines.cpp.capped_simd_level``: the level inside the block, the one before after it (an exception
    included), ``None`` changes nothing, and a level this CPU lacks is a typed error naming the ones it has."""
    levels = cpu_kernel.simd_levels()
    assert levels == tuple(_C.simd_levels()) and levels[0] == "portable"
    _C.set_simd_level(levels[0])
    try:
        for level in levels:
            with cpu_kernel.capped_simd_level(level):
                assert cpu_kernel.simd_level() == level
            assert cpu_kernel.simd_level() == levels[0]
        with pytest.raises(KeyError), cpu_kernel.capped_simd_level(levels[-1]):
            raise KeyError("inside")
        assert cpu_kernel.simd_level() == levels[0]
        with cpu_kernel.capped_simd_level(None):
            assert cpu_kernel.simd_level() == levels[0]
        with pytest.raises(UnsupportedOptionError, match=r"runs the kernels at portable.*not at 'avx1024'"):
            with cpu_kernel.capped_simd_level("avx1024"):
                pass
        assert cpu_kernel.simd_level() == levels[0]
    finally:
        _C.set_simd_level(levels[-1])
