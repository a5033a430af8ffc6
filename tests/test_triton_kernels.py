"""The Triton engine's own behaviour, under triton's CPU interpreter without a GPU: one launch per op for a
whole batch, each op on its own against the NumPy reference, every tile shape, and typed errors.

Its exactness on every kind of batch is in ``test_engine_conformance.py``, with the other engines.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import re  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from kernel_cases import (  # noqa: E402
    QWEN,
    bits,
    expected_rows,
    make_image,
    make_plan,
    make_table,
    run_engine,
    supported_filters,
    unwritten,
)
from launch_counter import LaunchCounter  # noqa: E402

pytest.importorskip("triton", reason="triton is not installed: the Triton kernels cannot run")

from vlfast.engines import triton_engine  # noqa: E402
from vlfast.errors import DeviceError, InvalidImageError, UnsupportedOptionError  # noqa: E402
from vlfast.plans import Backend, Filter, ResamplePlan  # noqa: E402
from vlfast.reference import apply_axis  # noqa: E402

if not triton_engine.available():
    pytest.skip("TRITON_INTERPRET is off and no CUDA device is present", allow_module_level=True)

DEVICE = torch.device("cpu" if triton_engine.interpreting() else "cuda")
#: Every size change of the pipeline: (in_h, in_w, out_h, out_w, vertical_first).
SHAPES = [
    (13, 29, 28, 56, False),  # upscale both, horizontal first
    (13, 29, 28, 56, True),  # the same, vertical first
    (40, 23, 28, 28, True),  # down in height, up in width
    (61, 30, 28, 56, False),  # down in height (rows cropped by pass 1), up in width
    (56, 40, 56, 28, False),  # height unchanged: one pass, from the source
    (40, 56, 28, 56, False),  # width unchanged
    (56, 56, 56, 56, False),  # nothing to resize: a gather
]


def batch_of(shapes, seed: int = 7, resample: Filter = Filter.BICUBIC, backend: Backend = Backend.PIL):
    """Images, plans and row offsets of one batch of still images."""
    rng = np.random.default_rng(seed)
    images = [make_image(rng, h, w) for h, w, *_ in shapes]
    plans = [make_plan(h, w, oh, ow, resample, backend, vf) for h, w, oh, ow, vf in shapes]
    counts = [(plan.out_height // 14) * (plan.out_width // 14) for plan in plans]
    offsets = np.cumsum([0, *counts])[:-1].tolist()
    return images, plans, offsets, sum(counts)


def run_batch(images, plans, offsets, rows, table) -> torch.Tensor:
    """The batch through the Triton engine into an output pre-filled with :func:`unwritten`."""
    out = torch.full((rows, 1176), unwritten(table.dtype), dtype=table.dtype, device=DEVICE)
    frames = [torch.from_numpy(image).to(DEVICE) for image in images]
    run_engine("triton", frames, plans, table.to(DEVICE), out, offsets, **QWEN)
    return out


def expected_batch(images, plans, table) -> np.ndarray:
    return np.concatenate([expected_rows(image, plan, table) for image, plan in zip(images, plans, strict=True)])


def first_pass(image: np.ndarray, plan: ResamplePlan) -> np.ndarray:
    """The reference's intermediate of a two-pass plan, planar ``(C, inter_height, inter_width)``, cropped
    to the rows the kernels keep."""
    from vlfast.kernels import batch

    step = batch.image_steps(plan)
    middle = apply_axis(image, step.first.axis, 0 if step.first.vertical else 1)
    return np.moveaxis(middle, -1, 0)[:, step.row_lo : step.row_lo + step.inter_height]


def intermediate_planes(plans: list[ResamplePlan], channels: int) -> list[tuple[int, int] | None]:
    """Each image's (byte offset, pitch) in the intermediate buffer, or None for a one-pass image."""
    from vlfast.kernels import batch

    steps = [batch.image_steps(plan) for plan in plans]
    pitches, offsets, _ = batch.intermediate_layout(
        steps, channels, batch.launch_config(14, triton_engine.interpreting())
    )
    return [None if step.first is None else (o, p) for step, o, p in zip(steps, offsets, pitches, strict=True)]


@pytest.mark.parametrize(("backend", "resample"), supported_filters(), ids=lambda v: v.value)
def test_one_launch_per_op_for_a_mixed_batch(backend: Backend, resample: Filter, monkeypatch) -> None:
    """Every size change of the pipeline in one batch: one launch of each pass, every byte exact."""
    from vlfast.kernels import resample_pass, resample_patchify

    first = LaunchCounter(resample_pass.resample_pass_kernel)
    second = LaunchCounter(resample_patchify.resample_patchify_kernel)
    monkeypatch.setattr(resample_pass, "resample_pass_kernel", first)
    monkeypatch.setattr(resample_patchify, "resample_patchify_kernel", second)
    images, plans, offsets, rows = batch_of(SHAPES, resample=resample, backend=backend)
    table = make_table(torch.float32)
    out = run_batch(images, plans, offsets, rows, table)
    np.testing.assert_array_equal(bits(out.cpu()), expected_batch(images, plans, table))
    assert (first.launches, second.launches) == (1, 1)


@pytest.mark.skipif(not triton_engine.interpreting(), reason="checks the masks Triton's CPU interpreter is given")
def test_every_mask_reaches_the_interpreter_as_booleans(monkeypatch) -> None:
    """Each op's load and store masks are boolean arrays in the interpreter, whose triton 3.9 refuses others (a
    scalar comparison and-ed into a block mask arrives there as int32; older releases took it)."""
    from triton.runtime import interpreter

    from vlfast.kernels import expand, resample_pass, resample_patchify

    builder = interpreter.InterpreterBuilder
    masks: set[np.dtype] = set()
    store, load = builder.create_masked_store, builder.create_masked_load

    def recorded_store(self, ptrs, value, mask, *args, **kwargs):
        masks.add(mask.data.dtype)
        return store(self, ptrs, value, mask, *args, **kwargs)

    def recorded_load(self, ptrs, mask, *args, **kwargs):
        masks.add(mask.data.dtype)
        return load(self, ptrs, mask, *args, **kwargs)

    monkeypatch.setattr(builder, "create_masked_store", recorded_store)
    monkeypatch.setattr(builder, "create_masked_load", recorded_load)
    kernels = [
        (resample_pass, "resample_pass_kernel"),
        (resample_patchify, "resample_patchify_kernel"),
        (expand, "expand_kernel"),
    ]
    counters = [LaunchCounter(getattr(module, name)) for module, name in kernels]
    for (module, name), counter in zip(kernels, counters, strict=True):
        monkeypatch.setattr(module, name, counter)
    images, plans, offsets, rows = batch_of(SHAPES[:4], seed=13)
    run_batch(images, plans, offsets, rows, make_table(torch.float32))
    table = make_table(torch.bfloat16)
    compact = torch.randint(0, 256, (3, 3 * 14 * 14), dtype=torch.uint8)
    expand.expand(compact, table, torch.empty(3, 3 * 2 * 14 * 14, dtype=table.dtype), 2)
    assert [counter.launches for counter in counters] == [1, 1, 1]
    assert masks == {np.dtype(bool)}


def test_resample_pass_op_alone(monkeypatch) -> None:
    """``resample_pass`` writes each two-pass image's first pass into its planes of the intermediate buffer,
    exactly as the reference's first pass (``resample_patchify`` is replaced by a probe)."""
    from vlfast.kernels import resample_patchify

    seen: list[torch.Tensor] = []
    monkeypatch.setattr(
        resample_patchify, "resample_patchify", lambda meta, intermediate, *a, **k: seen.append(intermediate)
    )
    images, plans, offsets, rows = batch_of(SHAPES, seed=11, resample=Filter.LANCZOS)
    run_batch(images, plans, offsets, rows, make_table(torch.float32))
    intermediate = seen[0].cpu().numpy()
    two_pass = 0
    for image, plan, place in zip(images, plans, intermediate_planes(plans, 3), strict=True):
        if place is None:
            continue
        two_pass += 1
        expected = first_pass(image, plan)
        offset, pitch = place
        planes = intermediate[offset : offset + expected.shape[0] * expected.shape[1] * pitch]
        got = planes.reshape(expected.shape[0], expected.shape[1], pitch)[:, :, : expected.shape[2]]
        np.testing.assert_array_equal(got, expected)
    assert two_pass == 4


def test_resample_patchify_op_alone(monkeypatch) -> None:
    """``resample_patchify`` turns an intermediate written by the reference (``resample_pass`` replaced by
    the reference's first pass) into the reference's rows."""
    from vlfast.kernels import resample_pass

    images, plans, offsets, rows = batch_of(SHAPES, seed=12, resample=Filter.BILINEAR, backend=Backend.TORCHVISION)
    places = intermediate_planes(plans, 3)

    def reference_first_pass(meta, intermediate, *args, **kwargs) -> None:
        for image, plan, place in zip(images, plans, places, strict=True):
            if place is not None:
                planes = torch.from_numpy(np.ascontiguousarray(first_pass(image, plan)))
                offset, pitch = place
                count = planes.shape[0] * planes.shape[1] * pitch
                target = intermediate[offset : offset + count].view(planes.shape[0], planes.shape[1], pitch)
                target[:, :, : planes.shape[2]] = planes.to(intermediate.device)

    monkeypatch.setattr(resample_pass, "resample_pass", reference_first_pass)
    table = make_table(torch.bfloat16)
    out = run_batch(images, plans, offsets, rows, table)
    np.testing.assert_array_equal(bits(out.cpu()), expected_batch(images, plans, table))


@pytest.mark.parametrize("tiles", ["tiny", "tiny-wide-stores", "gpu-default"])
def test_gpu_tile_shapes_split_images(monkeypatch, tiles: str) -> None:
    """The GPU's tiles: each image spans several tiles of both passes (rows and columns), and
    pass 1 writes padded intermediate rows."""
    from vlfast.kernels import batch

    configs = {
        "tiny": batch.LaunchConfig(4, 16, 4, 4, 4),
        "tiny-wide-stores": batch.LaunchConfig(4, 16, 4, 4, 4, pass_wide_stores=True),
        "gpu-default": batch.launch_config(14, False),
    }
    config = configs[tiles]
    monkeypatch.setattr(batch, "launch_config", lambda patch_size, interpret: config)
    shapes = [(13, 29, 28, 56, False), (40, 23, 28, 28, True), (61, 30, 56, 56, False), (56, 40, 56, 28, False)]
    images, plans, offsets, rows = batch_of(shapes, seed=10)
    table = make_table(torch.float32)
    out = run_batch(images, plans, offsets, rows, table)
    np.testing.assert_array_equal(bits(out.cpu()), expected_batch(images, plans, table))


def test_plans_are_tabulated_once_per_axis() -> None:
    from vlfast.kernels import batch

    plan = make_plan(40, 23, 28, 56, Filter.BICUBIC, Backend.PIL)
    assert batch.image_steps(plan) is batch.image_steps(plan)
    rows = batch.axis_rows(plan.horizontal)
    assert rows is batch.axis_rows(plan.horizontal)
    assert rows.shape == (56, 2 + plan.horizontal.taps) and rows.dtype == np.int32
    np.testing.assert_array_equal(rows[:, 0], plan.horizontal.starts)
    np.testing.assert_array_equal(rows[:, 1], plan.horizontal.counts)
    np.testing.assert_array_equal(rows[:, 2:], plan.horizontal.weights)


# ----------------------------------------------------------------------------- errors


def _call(frames=None, plans=None, table=None, out=None, row_offsets=(0,), **options) -> None:
    plan = make_plan(40, 23, 28, 28, Filter.BICUBIC, Backend.PIL)
    options = {"patch_size": 14, "merge_size": 2, "temporal_patch_size": 2} | options
    run_engine(
        "triton",
        [torch.zeros(40, 23, 3, dtype=torch.uint8, device=DEVICE)] if frames is None else frames,
        [plan] if plans is None else plans,
        torch.zeros(3, 256, device=DEVICE) if table is None else table,
        torch.zeros(4, 3 * 2 * 14 * 14, device=DEVICE) if out is None else out,
        list(row_offsets),
        **options,
    )


ERROR_CASES = [
    ({"frames": [torch.zeros(40, 23, 3, device=DEVICE)]}, InvalidImageError, "must be uint8"),
    ({"frames": [torch.zeros(40, 23, dtype=torch.uint8, device=DEVICE)]}, InvalidImageError, "got shape (40, 23)"),
    ({"frames": [torch.zeros(40, 23, 4, dtype=torch.uint8, device=DEVICE)]}, InvalidImageError, "4 channels"),
    ({"frames": [torch.zeros(41, 23, 3, dtype=torch.uint8, device=DEVICE)]}, InvalidImageError, "41x23"),
    ({"frames": [np.zeros((40, 23, 3), np.uint8)]}, InvalidImageError, "must be a torch.Tensor"),
    ({"frames": [torch.zeros(40, 23, 3, dtype=torch.uint8, device="meta")]}, DeviceError, "is on meta"),
    ({"row_offsets": (1,)}, InvalidImageError, "writes rows 1..4, out has 4"),
    ({"plans": [make_plan(40, 23, 28, 42, Filter.BICUBIC, Backend.PIL)]}, InvalidImageError, "multiple of"),
    ({"table": torch.zeros(3, 256, dtype=torch.bfloat16)}, UnsupportedOptionError, "differs from out dtype"),
    ({"table": torch.zeros(3, 255)}, UnsupportedOptionError, "(C, 256)"),
    ({"out": torch.zeros(4, 3 * 2 * 14 * 14, dtype=torch.int32)}, UnsupportedOptionError, "not supported"),
    ({"out": torch.zeros(4, 100)}, UnsupportedOptionError, "(rows, 1176)"),
    ({"out": torch.zeros(1176, 4).t()}, UnsupportedOptionError, "contiguous"),
    ({"merge_size": 0}, UnsupportedOptionError, "merge_size must be a positive int"),
    ({"slot_begins": [1], "slot_counts": [2]}, UnsupportedOptionError, "temporal slots 1..2 are outside 0..1"),
    ({"plans": ["not a plan"]}, UnsupportedOptionError, "must be a ResamplePlan"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), [pytest.param(*case, id=case[2]) for case in ERROR_CASES])
def test_invalid_arguments(kwargs: dict, error: type, message: str) -> None:
    for name in ("table", "out"):
        if name in kwargs:
            kwargs[name] = kwargs[name].to(DEVICE)
    with pytest.raises(error, match=re.escape(message)):
        _call(**kwargs)


def test_wrong_device_for_the_mode() -> None:
    other = "meta" if DEVICE.type == "cpu" else "cpu"
    with pytest.raises(DeviceError, match="TRITON_INTERPRET" if DEVICE.type == "cpu" else "need CUDA tensors"):
        _call(
            frames=[torch.zeros(40, 23, 3, dtype=torch.uint8, device=other)],
            table=torch.zeros(3, 256, device=other),
            out=torch.zeros(4, 1176, device=other),
        )
