"""Conformance of every engine to the NumPy reference: the same batches through ``reference``, the C++ engine
at each of its SIMD levels (AVX-512, AVX2, portable), and the Triton engine (in triton's CPU interpreter without
a GPU), each compared bit for bit with :func:`vlfast.reference.preprocess_reference`, frame by frame.

Each case pre-fills the output with a value no table holds, so a byte an engine writes where it should not,
or fails to write, shows. The reference itself is held to the stock processors in ``test_exactness.py``;
what is specific to one engine (threads, launch counts, tiles, errors) is tested beside that engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from kernel_cases import (
    DTYPES,
    QWEN,
    bits,
    expected_rows,
    make_image,
    make_plan,
    make_table,
    replace_axis,
    run_engine,
    supported_filters,
    unwritten,
)
from simd_levels import LEVELS, simd_level

from vlfast.engines import EngineName
from vlfast.engines import cpp as cpp_engine
from vlfast.plans import Backend, Filter, ResamplePlan


@dataclass(frozen=True)
class Variant:
    """One engine as the suite runs it: its registered name and the device of its tensors."""

    engine: EngineName
    device: torch.device


def _cpp_variant(level: str) -> Iterator[Variant]:
    if not cpp_engine.available():
        pytest.skip("the C++ extension vlfast._C is not built")
    with simd_level(level):
        yield Variant(EngineName.CPP, torch.device("cpu"))


def _triton_variant() -> Iterator[Variant]:
    pytest.importorskip("triton", reason="triton is not installed: the Triton kernels cannot run")
    from vlfast.engines import triton_engine

    if not triton_engine.available():
        pytest.skip("TRITON_INTERPRET is off and no CUDA device is present")
    yield Variant(EngineName.TRITON, torch.device("cpu" if triton_engine.interpreting() else "cuda"))


@pytest.fixture(params=["reference", *(f"cpp-{level}" for level in reversed(LEVELS)), "triton"])
def engine(request: pytest.FixtureRequest) -> Iterator[Variant]:
    """Every engine, and the C++ one at each of its SIMD levels."""
    if request.param == "reference":
        yield Variant(EngineName.REFERENCE, torch.device("cpu"))
    elif request.param == "triton":
        yield from _triton_variant()
    else:
        yield from _cpp_variant(request.param.removeprefix("cpp-"))


@dataclass
class Job:
    """One frame of a batch: its uint8 ``(H, W, C)`` pixels (any strides), plan and place in the output."""

    image: np.ndarray
    plan: ResamplePlan
    row_offset: int
    slot_begin: int = 0
    slot_count: int | None = None


def _rows(plan: ResamplePlan, patch_size: int) -> int:
    return (plan.out_height // patch_size) * (plan.out_width // patch_size)


def stacked(images: list[np.ndarray], plans: list[ResamplePlan], patch_size: int = 14) -> list[Job]:
    """Still images, one after the other from row 0."""
    jobs, offset = [], 0
    for image, plan in zip(images, plans, strict=True):
        jobs.append(Job(image, plan, offset))
        offset += _rows(plan, patch_size)
    return jobs


def assert_conforms(
    variant: Variant,
    jobs: list[Job],
    table: torch.Tensor,
    *,
    rows: int | None = None,
    to_frame: Callable[[torch.Tensor], torch.Tensor] | None = None,
    out: torch.Tensor | None = None,
    **layout: int,
) -> torch.Tensor:
    """Run ``jobs`` as one batch on ``variant`` (into ``out``, or a fresh output of ``rows`` rows pre-filled with
    :func:`unwritten`); assert every byte: each job's rows and temporal slots hold the reference's bits, the
    rest keeps what was there. Returns ``out``."""
    layout = layout or QWEN
    patch, temporal = layout["patch_size"], layout["temporal_patch_size"]
    channels = table.shape[0]
    if out is None:
        total = rows if rows is not None else max(job.row_offset + _rows(job.plan, patch) for job in jobs)
        columns = channels * temporal * patch * patch
        out = torch.full((total, columns), unwritten(table.dtype), dtype=table.dtype, device=variant.device)
    expected = bits(out.cpu()).copy()
    for job in jobs:
        reference = expected_rows(job.image, job.plan, table, **layout)
        count = reference.shape[0]
        slot_count = temporal - job.slot_begin if job.slot_count is None else job.slot_count
        slots = slice(job.slot_begin, job.slot_begin + slot_count)
        target = expected[job.row_offset : job.row_offset + count].reshape(count, channels, temporal, -1)
        target[:, :, slots] = reference.reshape(count, channels, temporal, -1)[:, :, slots]

    frames = [torch.from_numpy(job.image) for job in jobs]
    frames = [(to_frame(frame) if to_frame else frame).to(variant.device) for frame in frames]
    run_engine(
        variant.engine,
        frames,
        [job.plan for job in jobs],
        table.to(variant.device),
        out,
        [job.row_offset for job in jobs],
        slot_begins=[job.slot_begin for job in jobs],
        slot_counts=[temporal - job.slot_begin if job.slot_count is None else job.slot_count for job in jobs],
        **layout,
    )
    np.testing.assert_array_equal(bits(out.cpu()), expected)
    return out


#: (in_h, in_w, out_h, out_w): every kind of size change the pipeline makes.
SHAPES = {
    "upscale": (50, 70, 56, 84),
    "downscale": (130, 170, 56, 84),
    "downscale_large_factor": (180, 250, 28, 56),
    "width_only": (56, 90, 56, 84),
    "height_only": (61, 84, 56, 84),
    "unchanged": (56, 84, 56, 84),
}


@pytest.mark.parametrize("vertical_first", [False, True], ids=["horizontal_first", "vertical_first"])
def test_sizes_and_pass_orders(engine: Variant, vertical_first: bool) -> None:
    rng = np.random.default_rng(1)
    images = [make_image(rng, h, w) for h, w, _, _ in SHAPES.values()]
    plans = [make_plan(h, w, oh, ow, vertical_first=vertical_first) for h, w, oh, ow in SHAPES.values()]
    assert_conforms(engine, stacked(images, plans), make_table(torch.float32))


@pytest.mark.parametrize(("backend", "resample"), supported_filters(), ids=lambda v: v.value)
def test_every_filter_and_backend(engine: Variant, backend: Backend, resample: Filter) -> None:
    rng = np.random.default_rng(2)
    shapes = [
        (13, 29, 28, 56, False),  # upscale both, horizontal first
        (13, 29, 28, 56, True),  # the same, vertical first
        (40, 23, 28, 28, True),  # down in height, up in width
        (61, 30, 28, 56, False),  # down in height (rows cropped by pass 1), up in width
        (117, 61, 28, 56, True),  # down by more than 4x in height
        (56, 40, 56, 28, False),  # height unchanged: one pass, from the source
        (40, 56, 28, 56, False),  # width unchanged
        (56, 56, 56, 56, False),  # nothing to resize: a gather
    ]
    images = [make_image(rng, h, w) for h, w, *_ in shapes]
    plans = [make_plan(h, w, oh, ow, resample, backend, vf) for h, w, oh, ow, vf in shapes]
    assert_conforms(engine, stacked(images, plans), make_table(torch.float32))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_output_dtypes(engine: Variant, dtype: torch.dtype) -> None:
    rng = np.random.default_rng(3)
    images = [make_image(rng, 70, 50), make_image(rng, 28, 28)]
    plans = [make_plan(70, 50, 84, 56, Filter.LANCZOS), make_plan(28, 28, 28, 28)]
    assert_conforms(engine, stacked(images, plans), make_table(dtype))


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_channel_counts(engine: Variant, channels: int) -> None:
    rng = np.random.default_rng(4)
    images = [make_image(rng, 60, 71, channels) for _ in range(2)] + [make_image(rng, 56, 40, channels)]
    plans = [
        make_plan(60, 71, 56, 84, Filter.BICUBIC, Backend.TORCHVISION, vertical_first=True),
        make_plan(60, 71, 56, 84, Filter.BICUBIC, Backend.TORCHVISION, vertical_first=False),
        make_plan(56, 40, 56, 28, Filter.BICUBIC, Backend.TORCHVISION),
    ]
    assert_conforms(engine, stacked(images, plans), make_table(torch.float16, channels))


@pytest.mark.parametrize("vertical_first", [False, True], ids=["horizontal_first", "vertical_first"])
def test_shuffled_plans(engine: Variant, vertical_first: bool) -> None:
    """Output rows and columns in any order, reading source rows far apart."""
    rng = np.random.default_rng(14)
    plan = make_plan(150, 130, 56, 84, Filter.LANCZOS, vertical_first=vertical_first)
    for which in ("horizontal", "vertical"):
        axis = getattr(plan, which)
        order = rng.permutation(axis.out_size)
        plan = replace_axis(
            plan, which, starts=axis.starts[order].copy(), counts=axis.counts[order].copy(), weights=axis.weights[order]
        )
    images = [make_image(rng, 150, 130), make_image(rng, 300, 130)[::2]]  # the second with strided rows
    assert_conforms(engine, stacked(images, [plan, plan]), make_table(torch.float32))


FRAME_VIEWS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "chw-storage": lambda hwc: hwc.permute(2, 0, 1).contiguous().permute(1, 2, 0),
    "column-major": lambda hwc: hwc.transpose(0, 1).contiguous().transpose(0, 1),
    "padded-crop": lambda hwc: torch.nn.functional.pad(hwc, (0, 0, 3, 2, 1, 4))[1:-4, 3:-2],
    "every-other-pixel": lambda hwc: hwc.repeat_interleave(2, dim=0).repeat_interleave(3, dim=1)[::2, ::3],
}


@pytest.mark.parametrize("view", list(FRAME_VIEWS), ids=list(FRAME_VIEWS))
def test_strided_frames(engine: Variant, view: str) -> None:
    rng = np.random.default_rng(5)
    images = [make_image(rng, 40, 23), make_image(rng, 56, 40), make_image(rng, 28, 56)]
    plans = [
        make_plan(40, 23, 28, 28, Filter.BILINEAR, Backend.TORCHVISION),  # two passes
        make_plan(56, 40, 56, 28, Filter.BILINEAR, Backend.TORCHVISION),  # the second pass reads the source
        make_plan(28, 56, 28, 56, Filter.BILINEAR, Backend.TORCHVISION),  # a gather from the source
    ]
    to_frame = FRAME_VIEWS[view]
    assert not to_frame(torch.from_numpy(images[0])).is_contiguous()
    assert_conforms(engine, stacked(images, plans), make_table(torch.bfloat16), to_frame=to_frame)


def test_strided_arrays(engine: Variant) -> None:
    """NumPy views (steps, crops, CHW memory) passed as they are."""
    rng = np.random.default_rng(6)
    big = make_image(rng, 120, 210)
    planar = np.ascontiguousarray(np.moveaxis(make_image(rng, 56, 70), -1, 0))
    images = [big[::2, 1::3], big[2:58, 5:89], np.moveaxis(planar, 0, -1)]
    assert not any(image.flags.c_contiguous for image in images)
    plans = [make_plan(60, 70, 56, 84), make_plan(56, 84, 56, 56, vertical_first=True), make_plan(56, 70, 28, 84)]
    assert_conforms(engine, stacked(images, plans), make_table(torch.float32))


@pytest.mark.parametrize(
    "layout",
    [
        {"patch_size": 8, "merge_size": 1, "temporal_patch_size": 3},
        {"patch_size": 7, "merge_size": 3, "temporal_patch_size": 1},
        {"patch_size": 16, "merge_size": 2, "temporal_patch_size": 2},
        {"patch_size": 7, "merge_size": 3, "temporal_patch_size": 2},
        {"patch_size": 1, "merge_size": 1, "temporal_patch_size": 1},
    ],
    ids=lambda layout: "p{patch_size}m{merge_size}t{temporal_patch_size}".format(**layout),
)
def test_other_patch_layouts(engine: Variant, layout: dict[str, int]) -> None:
    rng = np.random.default_rng(7)
    factor = layout["patch_size"] * layout["merge_size"]
    out_h, out_w = factor * 3, factor * 4
    images = [make_image(rng, out_h + 5, out_w - 3) for _ in range(2)] + [make_image(rng, 2 * factor, factor)]
    plans = [
        make_plan(out_h + 5, out_w - 3, out_h, out_w, Filter.LANCZOS, vertical_first=False),
        make_plan(out_h + 5, out_w - 3, out_h, out_w, Filter.LANCZOS, vertical_first=True),
        make_plan(2 * factor, factor, 2 * factor, factor, Filter.LANCZOS),
    ]
    jobs = stacked(images, plans, layout["patch_size"])
    assert_conforms(engine, jobs, make_table(torch.float32), **layout)


def test_video_slots_and_untouched_memory(engine: Variant) -> None:
    """A still image, then a clip whose frame f fills temporal slot f % T of its group's rows; rows after the
    clip, and slots not yet filled, keep their bytes. 6x6 patches: slot runs (144 bytes) and rows (1296 bytes)
    start off cache lines."""
    rng = np.random.default_rng(8)
    layout = {"patch_size": 6, "merge_size": 2, "temporal_patch_size": 3}
    still_plan, plan = make_plan(20, 20, 12, 24), make_plan(40, 50, 36, 48, vertical_first=True)
    still = make_image(rng, 20, 20)
    frames = [make_image(rng, 40, 50) for _ in range(6)]
    still_rows, grid_rows = _rows(still_plan, 6), _rows(plan, 6)
    clip = [Job(frame, plan, still_rows + (f // 3) * grid_rows, f % 3, 1) for f, frame in enumerate(frames)]
    table = make_table(torch.float32)
    rows = still_rows + 2 * grid_rows + 4
    out = assert_conforms(engine, [Job(still, still_plan, 0), *clip[0::2]], table, rows=rows, **layout)
    assert_conforms(engine, clip[1::2], table, out=out, **layout)


def test_slot_range_of_a_still_image(engine: Variant) -> None:
    """A still image may fill only some of its temporal slots."""
    rng = np.random.default_rng(9)
    layout = {"patch_size": 8, "merge_size": 1, "temporal_patch_size": 3}
    image = make_image(rng, 20, 20)
    jobs = [Job(image, make_plan(20, 20, 16, 24), 1, 1), Job(image, make_plan(20, 20, 16, 24), 8, 0, 2)]
    assert_conforms(engine, jobs, make_table(torch.uint8), rows=15, **layout)


def test_random_batches(engine: Variant) -> None:
    rng = np.random.default_rng(2024)
    filters = supported_filters()
    images, plans = [], []
    for _ in range(8):
        in_h, in_w = (int(v) for v in rng.integers(5, 65, 2))
        out_h, out_w = (int(v) * 28 for v in rng.integers(1, 3, 2))
        backend, resample = filters[int(rng.integers(len(filters)))]
        images.append(make_image(rng, in_h, in_w))
        plans.append(make_plan(in_h, in_w, out_h, out_w, resample, backend, bool(rng.integers(2))))
    assert_conforms(engine, stacked(images, plans), make_table(torch.bfloat16))


def test_many_small_images(engine: Variant) -> None:
    """37 images (past a power of two): each finds its own rows."""
    rng = np.random.default_rng(9)
    filters = supported_filters()
    images, plans = [], []
    for index in range(37):
        in_h, in_w = (int(v) for v in rng.integers(3, 20, 2))
        backend, resample = filters[index % len(filters)]
        images.append(make_image(rng, in_h, in_w))
        plans.append(make_plan(in_h, in_w, 28, 28 * (1 + index % 2), resample, backend, index % 3 == 0))
    assert_conforms(engine, stacked(images, plans), make_table(torch.float32))


def test_empty_batch_writes_nothing(engine: Variant) -> None:
    out = torch.full((2, 3 * 2 * 14 * 14), 5.0, device=engine.device)
    run_engine(engine.engine, [], [], make_table(torch.float32).to(engine.device), out, [], **QWEN)
    assert bool((out == 5.0).all())
