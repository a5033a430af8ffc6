"""Bit-exactness of the Triton kernels on a CUDA device, at full size (1080p, 4K, random sizes).

Skipped without a CUDA device, and when ``TRITON_INTERPRET`` is on (the interpreter takes
CPU tensors; ``tests/test_triton_kernels.py`` covers it).
"""

import dataclasses

import numpy as np
import pytest
import torch
from kernel_cases import run_engine
from launch_counter import LaunchCounter

pytestmark = pytest.mark.cuda

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA device", allow_module_level=True)
pytest.importorskip("triton", reason="triton is not installed: the Triton kernels cannot run")

from vlfast.engines import triton_engine  # noqa: E402
from vlfast.errors import DeviceError, InvalidImageError  # noqa: E402
from vlfast.plans import Backend, Filter, ResamplePlan, resample_plan  # noqa: E402
from vlfast.reference import preprocess_reference  # noqa: E402
from vlfast.sizing import smart_resize  # noqa: E402

if triton_engine.interpreting():
    pytest.skip("TRITON_INTERPRET is on: the kernels run in the CPU interpreter", allow_module_level=True)

DEVICE = torch.device("cuda")
# Qwen2.5-VL's image processor: patch 14, merge 2, temporal 2, pixels in [3136, 12845056].
PATCH, MERGE, TEMPORAL = 14, 2, 2
MIN_PIXELS, MAX_PIXELS = 3136, 12845056


def target(height: int, width: int) -> tuple[int, int]:
    return smart_resize(height, width, PATCH * MERGE, MIN_PIXELS, MAX_PIXELS)


def make_plan(
    height: int, width: int, resample: Filter = Filter.BICUBIC, backend: Backend = Backend.PIL, vertical_first=None
) -> ResamplePlan:
    plan = resample_plan(height, width, *target(height, width), resample, backend)
    return plan if vertical_first is None else dataclasses.replace(plan, vertical_first=vertical_first)


def random_table(channels: int, dtype: torch.dtype) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    if dtype == torch.uint8:
        return torch.stack([torch.randperm(256, generator=generator) for _ in range(channels)]).to(torch.uint8)
    return torch.randn(channels, 256, generator=generator).to(dtype)


def expected_rows(images: list[np.ndarray], plans: list[ResamplePlan], table: torch.Tensor) -> np.ndarray:
    host_table = table.numpy() if table.dtype == torch.uint8 else table.float().numpy()
    return np.concatenate(
        [
            preprocess_reference(image, plan, host_table, PATCH, MERGE, TEMPORAL)
            for image, plan in zip(images, plans, strict=True)
        ]
    )


def run(
    images: list[np.ndarray],
    plans: list[ResamplePlan],
    dtype: torch.dtype = torch.bfloat16,
    *,
    to_frame=None,
) -> None:
    """One batch on the GPU, compared with the reference byte for byte."""
    table = random_table(3, dtype)
    rows = [(p.out_height // PATCH) * (p.out_width // PATCH) for p in plans]
    out = torch.full((sum(rows), 3 * TEMPORAL * PATCH * PATCH), 0 if dtype == torch.uint8 else float("nan"))
    out = out.to(dtype=dtype, device=DEVICE)
    frames = [torch.from_numpy(image).to(DEVICE) for image in images]
    if to_frame is not None:
        frames = [to_frame(frame) for frame in frames]
    offsets = np.cumsum([0] + rows)[:-1].tolist()
    run_engine(
        "triton",
        frames,
        plans,
        table.to(DEVICE),
        out,
        offsets,
        patch_size=PATCH,
        merge_size=MERGE,
        temporal_patch_size=TEMPORAL,
    )
    got = out.cpu()
    got = got.numpy() if dtype == torch.uint8 else got.float().numpy()
    np.testing.assert_array_equal(got, expected_rows(images, plans, table))


def random_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize(("height", "width"), [(1080, 1920), (2160, 3840)], ids=["1080p", "4k"])
@pytest.mark.parametrize(
    ("backend", "resample"),
    [(Backend.PIL, Filter.BICUBIC), (Backend.TORCHVISION, Filter.BICUBIC), (Backend.PIL, Filter.LANCZOS)],
    ids=lambda value: value.value,
)
def test_full_size(height: int, width: int, backend: Backend, resample: Filter) -> None:
    rng = np.random.default_rng(height)
    run([random_image(rng, height, width)], [make_plan(height, width, resample, backend)])


def test_random_sizes_in_one_launch_per_pass(monkeypatch) -> None:
    from vlfast.kernels import resample_pass, resample_patchify

    first = LaunchCounter(resample_pass.resample_pass_kernel)
    second = LaunchCounter(resample_patchify.resample_patchify_kernel)
    monkeypatch.setattr(resample_pass, "resample_pass_kernel", first)
    monkeypatch.setattr(resample_patchify, "resample_patchify_kernel", second)
    rng = np.random.default_rng(11)
    filters = [(Backend.PIL, f) for f in Filter] + [
        (Backend.TORCHVISION, f) for f in (Filter.BILINEAR, Filter.BICUBIC, Filter.LANCZOS)
    ]
    images, plans = [], []
    for _ in range(10):
        height, width = (int(v) for v in rng.integers(40, 2400, 2))
        backend, resample = filters[int(rng.integers(len(filters)))]
        images.append(random_image(rng, height, width))
        plans.append(make_plan(height, width, resample, backend, bool(rng.integers(2))))
    images.append(random_image(rng, 448, 448))  # no resize at all
    plans.append(make_plan(448, 448))
    run(images, plans)
    assert (first.launches, second.launches) == (1, 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.uint8], ids=str)
def test_output_dtypes(dtype: torch.dtype) -> None:
    rng = np.random.default_rng(2)
    images = [random_image(rng, 1080, 1920), random_image(rng, 500, 333)]
    run(images, [make_plan(1080, 1920), make_plan(500, 333)], dtype)


@pytest.mark.parametrize(
    "to_frame",
    [
        lambda hwc: hwc.permute(2, 0, 1).contiguous().permute(1, 2, 0),
        lambda hwc: hwc.permute(2, 0, 1).permute(1, 2, 0),
        lambda hwc: torch.nn.functional.pad(hwc, (0, 1, 5, 0, 0, 7))[:-7, 5:, :3],
    ],
    ids=["chw", "chw-view", "hwc-strided"],
)
def test_layouts_and_strides(to_frame) -> None:
    rng = np.random.default_rng(3)
    run(
        [random_image(rng, 1080, 1920), random_image(rng, 720, 1280)],
        [make_plan(1080, 1920), make_plan(720, 1280, Filter.BILINEAR, Backend.TORCHVISION)],
        to_frame=to_frame,
    )


def test_video_frames_fill_one_slot_each() -> None:
    rng = np.random.default_rng(4)
    frames_count = 4
    plan = make_plan(360, 640)
    grid_rows = (plan.out_height // PATCH) * (plan.out_width // PATCH)
    frames = [random_image(rng, 360, 640) for _ in range(frames_count)]
    table = random_table(3, torch.float32)
    out = torch.full((grid_rows * frames_count // TEMPORAL, 3 * TEMPORAL * PATCH * PATCH), float("nan"), device=DEVICE)
    run_engine(
        "triton",
        [torch.from_numpy(frame).to(DEVICE) for frame in frames],
        [plan] * frames_count,
        table.to(DEVICE),
        out,
        [(f // TEMPORAL) * grid_rows for f in range(frames_count)],
        patch_size=PATCH,
        merge_size=MERGE,
        temporal_patch_size=TEMPORAL,
        slot_begins=[f % TEMPORAL for f in range(frames_count)],
        slot_counts=[1] * frames_count,
    )
    single = [preprocess_reference(frame, plan, table.numpy(), PATCH, MERGE, 1) for frame in frames]
    clip = np.stack([s.reshape(grid_rows, 3, -1) for s in single], axis=2)  # (rows, C, frames, p*p)
    expected = np.concatenate(
        [clip[:, :, g * TEMPORAL : (g + 1) * TEMPORAL].reshape(grid_rows, -1) for g in range(frames_count // TEMPORAL)]
    )
    np.testing.assert_array_equal(out.cpu().numpy(), expected)


def test_no_host_synchronization_and_cuda_graph_replay() -> None:
    rng = np.random.default_rng(5)
    sizes = [(1080, 1920), (333, 500)]
    plans = [make_plan(h, w) for h, w in sizes]
    frames = [torch.from_numpy(random_image(rng, h, w)).to(DEVICE) for h, w in sizes]
    table = random_table(3, torch.bfloat16).to(DEVICE)
    rows = [(p.out_height // PATCH) * (p.out_width // PATCH) for p in plans]
    out = torch.empty(sum(rows), 3 * TEMPORAL * PATCH * PATCH, dtype=torch.bfloat16, device=DEVICE)

    def call() -> None:
        options = {"patch_size": PATCH, "merge_size": MERGE, "temporal_patch_size": TEMPORAL}
        run_engine("triton", frames, plans, table, out, [0, rows[0]], **options)

    call()  # compiles the kernels and uploads the plans
    torch.cuda.set_sync_debug_mode("error")
    try:
        call()
    finally:
        torch.cuda.set_sync_debug_mode("default")

    # torch's recipe: warm up on the capture stream (uploads are per stream), then capture.
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        call()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        call()
    torch.cuda.current_stream().wait_stream(stream)
    images = [random_image(rng, h, w) for h, w in sizes]
    for frame, image in zip(frames, images, strict=True):
        frame.copy_(torch.from_numpy(image))
    out.zero_()
    graph.replay()
    torch.cuda.synchronize()
    np.testing.assert_array_equal(out.cpu().float().numpy(), expected_rows(images, plans, table.cpu()))


def test_device_errors() -> None:
    plan = make_plan(448, 448)
    out = torch.zeros(256, 3 * TEMPORAL * PATCH * PATCH, device=DEVICE)
    table = torch.zeros(3, 256, device=DEVICE)
    options = {"patch_size": PATCH, "merge_size": MERGE, "temporal_patch_size": TEMPORAL}
    cpu_frame = torch.zeros(448, 448, 3, dtype=torch.uint8)
    with pytest.raises(DeviceError, match="frame 0 is on cpu but out is on cuda"):
        run_engine("triton", [cpu_frame], [plan], table, out, [0], **options)
    with pytest.raises(DeviceError, match="need CUDA tensors"):
        run_engine("triton", [cpu_frame], [plan], table.cpu(), out.cpu(), [0], **options)
    with pytest.raises(InvalidImageError, match="must be uint8"):
        run_engine("triton", [cpu_frame.float().to(DEVICE)], [plan], table, out, [0], **options)
