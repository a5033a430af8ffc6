"""``vlfast.video`` against the stock ``Qwen2VLVideoProcessor``: bit-identical ``pixel_values_videos`` and
``video_grid_thw`` for every input layout, size, frame count and option."""

from __future__ import annotations

import os

import numpy as np
import PIL.Image
import pytest
import torch

pytest.importorskip("torchvision", reason="the stock video processor needs torchvision")
pytest.importorskip("vlfast._C", reason="the C++ extension is not built")

from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor  # noqa: E402
from transformers.video_utils import VideoMetadata  # noqa: E402

from vlfast.defaults import VIDEO_MAX_PIXELS, VIDEO_MIN_PIXELS  # noqa: E402
from vlfast.errors import InvalidImageError, UnsupportedModeError, UnsupportedOptionError  # noqa: E402
from vlfast.processor import VideoProcessor  # noqa: E402
from vlfast.video import preprocess_videos, video_frames  # noqa: E402

#: Qwen2.5-VL checkpoints have no video config: their video processor reads the image bounds.
PUBLISHED_BOUNDS = {"min_pixels": 3136, "max_pixels": 12845056}
#: The stock class defaults, given explicitly: transformers 5.17 changes the class-level ``size`` in
#: place when an instance is built with ``min_pixels`` / ``max_pixels``.
DEFAULT_SIZE = {"shortest_edge": VIDEO_MIN_PIXELS, "longest_edge": VIDEO_MAX_PIXELS}
#: Silences the stock processor's warning about the per-frame cap (its default is False).
STOCK_CALL = {"return_tensors": "pt", "cap_pixels_per_frame": False}


def random_clip(frames: int, height: int, width: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, height, width, channels), dtype=np.uint8)


def assert_same(stock_out, fast_out, dtype: torch.dtype | None = None) -> None:
    expected = stock_out["pixel_values_videos"]
    if dtype is not None:
        expected = expected.to(dtype)
    assert fast_out["pixel_values_videos"].dtype == expected.dtype
    assert torch.equal(fast_out["pixel_values_videos"], expected)
    assert fast_out["video_grid_thw"].dtype == torch.int64
    assert torch.equal(fast_out["video_grid_thw"], stock_out["video_grid_thw"])


@pytest.fixture(scope="module")
def stock() -> Qwen2VLVideoProcessor:
    return Qwen2VLVideoProcessor(size=DEFAULT_SIZE)


@pytest.fixture(scope="module")
def fast() -> VideoProcessor:
    return VideoProcessor()


@pytest.mark.parametrize(
    ("frames", "height", "width"),
    [(1, 64, 80), (2, 123, 457), (3, 33, 47), (4, 90, 60), (5, 240, 320), (7, 17, 300)],
)
def test_sizes_and_frame_counts(stock, fast, frames, height, width):
    clip = random_clip(frames, height, width, seed=frames)
    assert_same(stock(clip, **STOCK_CALL), fast(clip, return_tensors="pt"))


@pytest.mark.parametrize("frames", [1, 3, 5])
def test_published_settings(frames):
    stock = Qwen2VLVideoProcessor(**PUBLISHED_BOUNDS)
    fast = VideoProcessor(**PUBLISHED_BOUNDS)
    clip = random_clip(frames, 150, 211, seed=10 + frames)
    assert_same(stock(clip, **STOCK_CALL), fast(clip, return_tensors="pt"))


def test_odd_frame_count_repeats_last_frame(fast):
    clip = random_clip(3, 56, 56)
    padded = np.concatenate([clip, clip[-1:]])
    odd, even = fast(clip, return_tensors="pt"), fast(padded, return_tensors="pt")
    assert odd["video_grid_thw"].tolist() == [[2, 24, 24]]
    assert torch.equal(odd["pixel_values_videos"], even["pixel_values_videos"])


LAYOUTS = {
    "THWC array": lambda clip: clip,
    "THWC tensor": torch.from_numpy,
    "TCHW tensor": lambda clip: torch.from_numpy(clip).permute(0, 3, 1, 2).contiguous(),
    "TCHW view": lambda clip: torch.from_numpy(clip).permute(0, 3, 1, 2),
    "list of arrays": list,
    "list of tensors": lambda clip: list(torch.from_numpy(clip)),
    "list of PIL frames": lambda clip: [PIL.Image.fromarray(frame) for frame in clip],
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # the stock np.array(tensor)
def test_input_layouts(stock, fast, layout):
    clip = random_clip(5, 70, 95, seed=3)
    assert_same(stock(clip, **STOCK_CALL), fast(LAYOUTS[layout](clip), return_tensors="pt"))


def test_batch_of_videos(stock, fast):
    clips = [random_clip(3, 50, 70, seed=1), random_clip(4, 120, 90, seed=2), random_clip(1, 40, 40, seed=3)]
    assert_same(stock(clips, **STOCK_CALL), fast(clips, return_tensors="pt"))
    frame_lists = [[PIL.Image.fromarray(frame) for frame in clip] for clip in clips]
    assert_same(stock(frame_lists, **STOCK_CALL), fast(frame_lists, return_tensors="pt"))
    same_shape = np.stack([random_clip(2, 30, 30, seed=4), random_clip(2, 30, 30, seed=5)])
    assert_same(stock(same_shape, **STOCK_CALL), fast(same_shape, return_tensors="pt"))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_output(stock, fast, dtype):
    clip = random_clip(3, 100, 130, seed=6)
    assert_same(stock(clip, **STOCK_CALL), fast(clip, return_tensors="pt", dtype=dtype), dtype=dtype)
    assert VideoProcessor(dtype=dtype)(clip, return_tensors="pt")["pixel_values_videos"].dtype == dtype


@pytest.mark.parametrize(
    "options",
    [
        {"do_resize": False},
        {"do_normalize": False},
        {"do_rescale": False, "do_normalize": False},
        {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.5, 1.0]},
        {"resample": PIL.Image.Resampling.BILINEAR},
        {"size": {"shortest_edge": 3136, "longest_edge": 20000}},
        {"temporal_patch_size": 3},
        {"merge_size": 1},
    ],
    ids=lambda options: ",".join(options),
)
def test_call_overrides(stock, fast, options):
    clip = random_clip(5, 112, 168, seed=7)
    assert_same(stock(clip, **STOCK_CALL, **options), fast(clip, return_tensors="pt", **options))


def test_min_max_pixels_aliases(fast):
    clip = random_clip(2, 300, 400, seed=8)
    stock = Qwen2VLVideoProcessor(min_pixels=3136, max_pixels=40000)
    assert_same(stock(clip, **STOCK_CALL), VideoProcessor(min_pixels=3136, max_pixels=40000)(clip, return_tensors="pt"))
    assert_same(stock(clip, **STOCK_CALL), fast(clip, return_tensors="pt", min_pixels=3136, max_pixels=40000))


def test_cap_pixels_per_frame(stock, fast):
    clip = random_clip(40, 64, 64, seed=9)
    capped = stock(clip, return_tensors="pt", cap_pixels_per_frame=True)
    assert_same(capped, fast(clip, return_tensors="pt", cap_pixels_per_frame=True))
    few_tokens = Qwen2VLVideoProcessor(size=DEFAULT_SIZE, max_video_tokens=2000)
    assert_same(
        few_tokens(clip, return_tensors="pt", cap_pixels_per_frame=True),
        VideoProcessor(max_video_tokens=2000)(clip, return_tensors="pt", cap_pixels_per_frame=True),
    )
    # A call-time budget small enough to bind: transformers 5.25 uses it, earlier releases the instance's.
    large = random_clip(8, 448, 448, seed=9)
    budget = {"return_tensors": "pt", "cap_pixels_per_frame": True, "max_video_tokens": 300}
    assert_same(stock(large, **budget), fast(large, **budget))


def test_frame_sampling(stock, fast):
    clip = random_clip(30, 40, 56, seed=10)
    sampled = {"do_sample_frames": True, "num_frames": 6}
    assert_same(stock(clip, **STOCK_CALL, **sampled), fast(clip, return_tensors="pt", **sampled))
    metadata = VideoMetadata(total_num_frames=30, fps=10.0)
    by_fps = {"do_sample_frames": True, "fps": 2, "video_metadata": metadata}
    expected = stock(clip, **STOCK_CALL, **by_fps, return_metadata=True)
    got = fast(clip, return_tensors="pt", **by_fps, return_metadata=True)
    assert_same(expected, got)
    assert list(got["video_metadata"][0].frames_indices) == list(expected["video_metadata"][0].frames_indices)


def test_metadata_for_the_qwen2_5_processor(fast):
    out = fast(random_clip(4, 28, 28), return_tensors="pt", return_metadata=True)
    assert out["video_metadata"][0].total_num_frames == 4
    assert "video_metadata" not in fast(random_clip(4, 28, 28), return_tensors="pt")


def test_channel_conversions(stock, fast):
    gray = random_clip(3, 40, 60, seed=11, channels=1)
    assert_same(stock(gray, **STOCK_CALL), fast(gray, return_tensors="pt"))
    opaque = np.concatenate([random_clip(3, 40, 60, seed=12), np.full((3, 40, 60, 1), 255, np.uint8)], axis=3)
    # The stock processor infers only 1 or 3 channels; vlfast also finds an RGBA axis.
    assert_same(stock(opaque, **STOCK_CALL, input_data_format="channels_last"), fast(opaque, return_tensors="pt"))
    transparent = opaque.copy()
    transparent[0, 0, 0, 3] = 10
    with pytest.raises(UnsupportedModeError, match="transparent"):
        fast(transparent, return_tensors="pt")


def test_numpy_output(stock, fast):
    clip = random_clip(2, 56, 84, seed=13)
    out = fast(clip, return_tensors="np")
    assert isinstance(out["pixel_values_videos"], np.ndarray)
    assert np.array_equal(out["pixel_values_videos"], stock(clip, **STOCK_CALL)["pixel_values_videos"].numpy())


def test_functional_api_and_defaults():
    clip = random_clip(5, 240, 320, seed=14)
    pixel_values, grid = preprocess_videos(clip)
    expected = Qwen2VLVideoProcessor(size=DEFAULT_SIZE)(clip, **STOCK_CALL)
    assert torch.equal(pixel_values, expected["pixel_values_videos"])
    assert grid.tolist() == [[3, 20, 28]]
    result = preprocess_videos([clip, clip[:2]], min_pixels=VIDEO_MIN_PIXELS, max_pixels=VIDEO_MAX_PIXELS)
    assert result.original_sizes == [(5, 240, 320), (2, 240, 320)]
    assert result.resized_sizes == [(280, 392), (280, 392)]
    assert video_frames(torch.from_numpy(clip).permute(0, 3, 1, 2)).shape == (5, 240, 320, 3)


def test_attributes_and_config(fast):
    stock = Qwen2VLVideoProcessor(size=DEFAULT_SIZE)
    assert isinstance(fast, Qwen2VLVideoProcessor)
    assert fast.size == {"shortest_edge": VIDEO_MIN_PIXELS, "longest_edge": VIDEO_MAX_PIXELS}
    assert (fast.patch_size, fast.merge_size, fast.temporal_patch_size) == (14, 2, 2)
    assert fast.model_input_names == ["pixel_values_videos", "video_grid_thw"]
    assert fast.to_dict() == stock.to_dict()
    built = VideoProcessor.from_stock(Qwen2VLVideoProcessor(**PUBLISHED_BOUNDS), dtype="bfloat16")
    assert (built.size["shortest_edge"], built.size["longest_edge"], built.dtype) == (3136, 12845056, torch.bfloat16)


def test_save_and_load(tmp_path):
    fast = VideoProcessor(max_pixels=50000, dtype=torch.bfloat16)
    fast.save_pretrained(tmp_path)
    loaded = VideoProcessor.from_pretrained(tmp_path, engine="cpp")
    assert loaded.to_dict() == fast.to_dict()
    assert (loaded.size["longest_edge"], loaded.dtype, loaded.engine) == (50000, None, "cpp")
    assert Qwen2VLVideoProcessor.from_pretrained(tmp_path).to_dict() == fast.to_dict()


@pytest.mark.parametrize(
    ("video", "options", "error"),
    [
        (np.zeros((2, 28, 28, 3), np.float32), {}, InvalidImageError),
        (np.zeros((0, 28, 28, 3), np.uint8), {}, InvalidImageError),
        (np.zeros((2, 28, 28, 1), np.uint8), {"do_convert_rgb": False}, UnsupportedModeError),
        (np.zeros((2, 30, 30, 3), np.uint8), {"do_resize": False}, InvalidImageError),
        (np.zeros((2, 28, 28, 3), np.uint8), {"no_such_option": 1}, UnsupportedOptionError),
        (np.zeros((2, 28, 28, 3), np.uint8), {"dtype": torch.float64}, UnsupportedOptionError),
        (np.zeros((2, 28, 28, 3), np.uint8), {"engine": "gpu"}, UnsupportedOptionError),
        (np.zeros((2, 28, 28, 3), np.uint8), {"size": {"shortest_edge": 3136}}, UnsupportedOptionError),
        (np.zeros((2, 28, 28, 3), np.uint8), {"return_tensors": "tf"}, UnsupportedOptionError),
    ],
    ids=["float", "empty", "gray no rgb", "not a multiple", "unknown", "float64", "engine", "size", "tf"],
)
def test_errors(fast, video, options, error):
    with pytest.raises(error):
        fast(video, **options)


@pytest.mark.parametrize(
    ("video", "error"),
    [
        (np.zeros((2, 28, 28, 2), np.uint8), InvalidImageError),
        (np.zeros((28, 28, 3), np.uint8), InvalidImageError),
        ([], InvalidImageError),
        ([np.zeros((28, 28, 3), np.uint8), np.zeros((28, 56, 3), np.uint8)], InvalidImageError),
        ("clip.mp4", InvalidImageError),
    ],
    ids=["2 channels", "3-D", "no frames", "mixed frame sizes", "path"],
)
def test_video_errors(video, error):
    with pytest.raises(error):
        preprocess_videos(video)


def test_triton_engine(stock):
    """The Triton engine through ``run_frames``: on the GPU, or in triton's CPU interpreter when a test
    module that runs the kernels has switched it on (``TRITON_INTERPRET=1``)."""
    triton_engine = pytest.importorskip("vlfast.engines.triton_engine")
    if not triton_engine.available():
        pytest.skip("the Triton engine has neither a CUDA device nor its interpreter here")
    device = "cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda"
    clips = [random_clip(3, 30, 41, seed=17), random_clip(2, 28, 28, seed=18)]
    stock = Qwen2VLVideoProcessor(size={"shortest_edge": 3136, "longest_edge": 6272})
    fast = VideoProcessor(size={"shortest_edge": 3136, "longest_edge": 6272}, device=device, engine="triton")
    out = fast(clips, return_tensors="pt", dtype=torch.bfloat16)
    assert_same(stock(clips, **STOCK_CALL), {name: value.cpu() for name, value in out.items()}, torch.bfloat16)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_output_matches_stock_cpu(stock):
    pytest.importorskip("triton", reason="the GPU engine needs triton")
    clips = [random_clip(5, 123, 211, seed=15), random_clip(2, 64, 64, seed=16)]
    expected = stock(clips, **STOCK_CALL)
    for engine in ("triton", "cpp"):
        fast = VideoProcessor(device="cuda", dtype=torch.bfloat16, engine=engine)
        out = fast(clips, return_tensors="pt")
        assert out["pixel_values_videos"].device.type == "cuda"
        assert out["video_grid_thw"].device.type == "cpu"  # grids stay on the host, as the stock's
        assert torch.equal(out["pixel_values_videos"].cpu(), expected["pixel_values_videos"].bfloat16())
        assert torch.equal(out["video_grid_thw"].cpu(), expected["video_grid_thw"])


def test_float_pixel_budgets():
    """Float bounds (``max_pixels=1.5e5``), as the stock takes them, with and without the per-frame cap."""
    clip = random_clip(6, 300, 400, seed=13)
    size = {"shortest_edge": 3136.0, "longest_edge": 1.5e5}
    stock, fast = Qwen2VLVideoProcessor(size=size), VideoProcessor(size=size)
    for cap in (False, True):
        call = {"return_tensors": "pt", "cap_pixels_per_frame": cap}
        assert_same(stock(clip, **call), fast(clip, **call))
    direct = preprocess_videos(clip, min_pixels=3136.0, max_pixels=1.5e5)
    assert_same(
        stock(clip, **STOCK_CALL),
        {"pixel_values_videos": direct.pixel_values_videos, "video_grid_thw": direct.video_grid_thw},
    )
