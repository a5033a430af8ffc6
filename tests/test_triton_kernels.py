"""Bit-exactness of the Triton kernels against the NumPy reference, on small images.

Without a CUDA device the kernels run in triton's CPU interpreter (``TRITON_INTERPRET=1``,
set here before anything imports triton); with one they run on the GPU.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import dataclasses  # noqa: E402
import re  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from engine_calls import run_engine
from launch_counter import LaunchCounter  # noqa: E402

pytest.importorskip("triton", reason="triton is not installed: the Triton kernels cannot run")

from vlfast import plans  # noqa: E402
from vlfast.engines import triton_engine  # noqa: E402
from vlfast.errors import DeviceError, InvalidImageError, UnsupportedOptionError  # noqa: E402
from vlfast.plans import Backend, Filter, ResamplePlan, resample_plan  # noqa: E402
from vlfast.reference import preprocess_reference  # noqa: E402

if not triton_engine.available():
    pytest.skip("TRITON_INTERPRET is off and no CUDA device is present", allow_module_level=True)

DEVICE = torch.device("cpu" if triton_engine.interpreting() else "cuda")


def _supported_filters() -> list[tuple[Backend, Filter]]:
    """Every (backend, filter) pair vlfast reproduces."""
    return [(backend, resample) for backend in Backend for resample in plans.supported_filters(backend)]


FILTERS = _supported_filters()


def make_plan(
    in_h: int, in_w: int, out_h: int, out_w: int, resample: Filter, backend: Backend, vertical_first: bool = False
) -> ResamplePlan:
    """A plan with the pass order forced (the installed Pillow's rule is tested elsewhere)."""
    plan = resample_plan(in_h, in_w, out_h, out_w, resample, backend)
    return dataclasses.replace(plan, vertical_first=vertical_first)


def random_image(rng: np.random.Generator, height: int, width: int, channels: int = 3) -> np.ndarray:
    return rng.integers(0, 256, (height, width, channels), dtype=np.uint8)


def random_table(channels: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if dtype == torch.uint8:  # never 0: the value `out` is pre-filled with, so skipped rows show
        return torch.randint(1, 256, (channels, 256), generator=generator).to(torch.uint8)
    return torch.randn(channels, 256, generator=generator).to(dtype)


def table_as_numpy(table: torch.Tensor) -> np.ndarray:
    return table.numpy() if table.dtype == torch.uint8 else table.float().numpy()


def run_and_expect(
    images: list[np.ndarray],
    plans: list[ResamplePlan],
    *,
    dtype: torch.dtype = torch.float32,
    patch_size: int = 14,
    merge_size: int = 2,
    temporal: int = 2,
    to_frame=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run one batch; return ``out`` (float32, or uint8) and the reference rows, both as NumPy."""
    table = random_table(images[0].shape[2], dtype)
    expected = [
        preprocess_reference(image, plan, table_as_numpy(table), patch_size, merge_size, temporal)
        for image, plan in zip(images, plans, strict=True)
    ]
    row_offsets = np.cumsum([0] + [e.shape[0] for e in expected])[:-1].tolist()
    fill = 0 if dtype == torch.uint8 else float("nan")  # not in any table: a row the kernel skips cannot pass
    out = torch.full((sum(e.shape[0] for e in expected), expected[0].shape[1]), fill, dtype=dtype, device=DEVICE)
    if to_frame is None:
        frames = [torch.from_numpy(image).to(DEVICE) for image in images]
    else:
        frames = [to_frame(torch.from_numpy(image).to(DEVICE)) for image in images]
    run_engine(
        "triton",
        frames,
        plans,
        table.to(DEVICE),
        out,
        row_offsets,
        patch_size=patch_size,
        merge_size=merge_size,
        temporal_patch_size=temporal,
    )
    got = out.cpu()
    return (got if dtype == torch.uint8 else got.float()).numpy(), np.concatenate(expected)


@pytest.mark.parametrize(("backend", "resample"), FILTERS, ids=lambda v: v.value)
def test_mixed_batch_matches_reference(backend: Backend, resample: Filter, monkeypatch) -> None:
    """Every size change of the pipeline in one batch: two launches, every byte exact."""
    from vlfast.kernels import resample_pass, resample_patchify

    first = LaunchCounter(resample_pass.resample_pass_kernel)
    second = LaunchCounter(resample_patchify.resample_patchify_kernel)
    monkeypatch.setattr(resample_pass, "resample_pass_kernel", first)
    monkeypatch.setattr(resample_patchify, "resample_patchify_kernel", second)
    rng = np.random.default_rng(7)
    shapes = [
        (13, 29, 28, 56, False),  # upscale both, horizontal first
        (13, 29, 28, 56, True),  # the same, vertical first
        (40, 23, 28, 28, True),  # down in height, up in width
        (61, 30, 28, 56, False),  # down in height (rows cropped by pass 1), up in width
        (56, 40, 56, 28, False),  # height unchanged: one pass, from the source
        (40, 56, 28, 56, False),  # width unchanged
        (56, 56, 56, 56, False),  # nothing to resize: a gather
    ]
    images = [random_image(rng, h, w) for h, w, *_ in shapes]
    plans = [make_plan(h, w, oh, ow, resample, backend, vf) for h, w, oh, ow, vf in shapes]
    got, expected = run_and_expect(images, plans)
    np.testing.assert_array_equal(got, expected)
    assert (first.launches, second.launches) == (1, 1)


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
    rng = np.random.default_rng(10)
    shapes = [(13, 29, 28, 56, False), (40, 23, 28, 28, True), (61, 30, 56, 56, False), (56, 40, 56, 28, False)]
    images = [random_image(rng, h, w) for h, w, *_ in shapes]
    plans = [make_plan(h, w, oh, ow, Filter.BICUBIC, Backend.PIL, vf) for h, w, oh, ow, vf in shapes]
    got, expected = run_and_expect(images, plans)
    np.testing.assert_array_equal(got, expected)


def test_random_sizes_match_reference() -> None:
    rng = np.random.default_rng(2024)
    images, plans = [], []
    for _ in range(8):
        in_h, in_w = (int(v) for v in rng.integers(5, 65, 2))
        out_h, out_w = (int(v) * 28 for v in rng.integers(1, 3, 2))
        backend, resample = FILTERS[int(rng.integers(len(FILTERS)))]
        images.append(random_image(rng, in_h, in_w))
        plans.append(make_plan(in_h, in_w, out_h, out_w, resample, backend, bool(rng.integers(2))))
    got, expected = run_and_expect(images, plans)
    np.testing.assert_array_equal(got, expected)


def test_many_images_find_their_tiles() -> None:
    """37 images: the kernels' binary search over first-tile ids, past a power of two."""
    rng = np.random.default_rng(9)
    images, plans = [], []
    for index in range(37):
        in_h, in_w = (int(v) for v in rng.integers(3, 20, 2))
        backend, resample = FILTERS[index % len(FILTERS)]
        images.append(random_image(rng, in_h, in_w))
        plans.append(make_plan(in_h, in_w, 28, 28 * (1 + index % 2), resample, backend, index % 3 == 0))
    got, expected = run_and_expect(images, plans)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.uint8], ids=str)
def test_output_dtypes(dtype: torch.dtype) -> None:
    rng = np.random.default_rng(1)
    images = [random_image(rng, 30, 61), random_image(rng, 28, 28)]
    plans = [
        make_plan(30, 61, 56, 28, Filter.BICUBIC, Backend.PIL),
        make_plan(28, 28, 28, 28, Filter.BICUBIC, Backend.PIL),
    ]
    got, expected = run_and_expect(images, plans, dtype=dtype)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    "to_frame",
    [
        lambda hwc: hwc.permute(2, 0, 1).contiguous().permute(1, 2, 0),  # CHW storage, an HWC view
        lambda hwc: hwc.permute(2, 0, 1).permute(1, 2, 0),  # a view of a view
        lambda hwc: torch.nn.functional.pad(hwc, (0, 0, 3, 2, 1, 4))[1:-4, 3:-2],  # a crop: padded rows
        lambda hwc: hwc.transpose(0, 1).contiguous().transpose(0, 1),  # column-major pixels
    ],
    ids=["chw", "chw-view", "hwc-crop", "hwc-column-major"],
)
def test_layouts_and_strides(to_frame) -> None:
    rng = np.random.default_rng(3)
    images = [random_image(rng, 40, 23), random_image(rng, 56, 40), random_image(rng, 28, 56)]
    plans = [
        make_plan(40, 23, 28, 28, Filter.BILINEAR, Backend.TORCHVISION),  # two passes
        make_plan(56, 40, 56, 28, Filter.BILINEAR, Backend.TORCHVISION),  # pass 2 reads the source
        make_plan(28, 56, 28, 56, Filter.BILINEAR, Backend.TORCHVISION),  # gather from the source
    ]
    got, expected = run_and_expect(images, plans, to_frame=to_frame)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(("patch_size", "merge_size", "temporal"), [(8, 1, 3), (16, 2, 1), (7, 3, 2)])
def test_other_patch_layouts(patch_size: int, merge_size: int, temporal: int) -> None:
    rng = np.random.default_rng(4)
    factor = patch_size * merge_size
    images = [random_image(rng, 40, 23), random_image(rng, 2 * factor, factor)]
    plans = [
        make_plan(40, 23, factor, 2 * factor, Filter.LANCZOS, Backend.PIL, True),
        make_plan(2 * factor, factor, 2 * factor, factor, Filter.LANCZOS, Backend.PIL),
    ]
    got, expected = run_and_expect(images, plans, patch_size=patch_size, merge_size=merge_size, temporal=temporal)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("channels", [1, 4])
def test_channel_counts(channels: int) -> None:
    rng = np.random.default_rng(5)
    images = [random_image(rng, 13, 29, channels), random_image(rng, 56, 40, channels)]
    plans = [
        make_plan(13, 29, 28, 56, Filter.BICUBIC, Backend.TORCHVISION),
        make_plan(56, 40, 56, 28, Filter.BICUBIC, Backend.TORCHVISION),
    ]
    got, expected = run_and_expect(images, plans)
    np.testing.assert_array_equal(got, expected)


def test_video_frames_fill_one_slot_each() -> None:
    """Frame f of a clip writes rows clip_base + (f // T) * grid rows, temporal slot f % T only."""
    rng = np.random.default_rng(6)
    patch_size, merge_size, temporal, frames_count = 14, 2, 2, 4
    plan = make_plan(40, 23, 28, 56, Filter.BICUBIC, Backend.PIL)
    still_plan = make_plan(13, 29, 28, 28, Filter.BICUBIC, Backend.PIL)
    frames = [random_image(rng, 40, 23) for _ in range(frames_count)]
    still = random_image(rng, 13, 29)
    table = random_table(3, torch.float32)
    grid_rows = (28 // patch_size) * (56 // patch_size)
    clip_base = (28 // patch_size) ** 2  # the still image first, then the clip
    rows = clip_base + grid_rows * frames_count // temporal
    out = torch.full((rows, 3 * temporal * patch_size**2), float("nan"), device=DEVICE)

    def run(indices: list[int], with_still: bool) -> None:
        run_engine(
            "triton",
            [torch.from_numpy(image).to(DEVICE) for image in [still] * with_still + [frames[f] for f in indices]],
            [still_plan] * with_still + [plan] * len(indices),
            table.to(DEVICE),
            out,
            [0] * with_still + [clip_base + (f // temporal) * grid_rows for f in indices],
            patch_size=patch_size,
            merge_size=merge_size,
            temporal_patch_size=temporal,
            slot_begins=[0] * with_still + [f % temporal for f in indices],
            slot_counts=[temporal] * with_still + [1] * len(indices),
        )

    run([0, 2], with_still=True)  # slot 0 of each group: slot 1 must stay untouched
    untouched = out[clip_base:].cpu().reshape(-1, 3, temporal, patch_size**2)[:, :, 1]
    assert torch.isnan(untouched).all()
    run([1, 3], with_still=False)
    # Reference: each frame's single-slot rows, stacked along t inside every channel's columns.
    single = [preprocess_reference(frame, plan, table.numpy(), patch_size, merge_size, 1) for frame in frames]
    clip = np.stack([s.reshape(grid_rows, 3, -1) for s in single], axis=2)  # (rows, C, frames, p*p)
    groups = [
        clip[:, :, g * temporal : (g + 1) * temporal].reshape(grid_rows, -1) for g in range(frames_count // temporal)
    ]
    expected_still = preprocess_reference(still, still_plan, table.numpy(), patch_size, merge_size, temporal)
    np.testing.assert_array_equal(out.cpu().numpy(), np.concatenate([expected_still] + groups))


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


def test_empty_batch_is_a_no_op() -> None:
    out = torch.zeros(0, 3 * 2 * 14 * 14, device=DEVICE)
    table = torch.zeros(3, 256, device=DEVICE)
    run_engine("triton", [], [], table, out, [], patch_size=14, merge_size=2, temporal_patch_size=2)


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
