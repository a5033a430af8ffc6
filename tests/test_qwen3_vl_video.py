"""Qwen3-VL / Qwen3.5 videos: vlfast's ``Qwen3VLVideoProcessor`` against the installed stock
``Qwen3VLVideoProcessor`` of the same folder: frame sampling (fps with the video's metadata,
``min_frames`` / ``max_frames``, ``num_frames``, none), the returned metadata (sampled indices and fps,
which the processor turns into frame timestamps), the frame-budget sizing and ``cap_pixels_per_frame``,
bit-identical ``pixel_values_videos`` and ``video_grid_thw`` in float32 and bfloat16.

The video configs in tests/data are the stock class defaults of the installed transformers (what
``Qwen3VLVideoProcessor().to_dict()`` writes), in the form the published checkpoints use.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

pytest.importorskip("torchvision", reason="the stock video processors need torchvision")
pytest.importorskip("vlfast._C", reason="the C++ extension is not built")

from transformers import AutoVideoProcessor  # noqa: E402
from transformers.models.qwen3_vl.video_processing_qwen3_vl import (  # noqa: E402
    Qwen3VLVideoProcessor as StockQwen3VLVideoProcessor,
)

import vlfast  # noqa: E402
from vlfast.engines import triton_engine  # noqa: E402
from vlfast.errors import UnsupportedOptionError, VlfastError  # noqa: E402
from vlfast.hf.video_processor import Qwen3VLVideoProcessor  # noqa: E402

DATA = Path(__file__).parent / "data"
FOLDERS = {"qwen3-vl": DATA / "qwen3_vl", "qwen3.5": DATA / "qwen3_5"}
DTYPES = (torch.float32, torch.bfloat16)
#: The stock warns unless told its (default, off) per-frame cap setting.
STOCK_CALL = {"return_tensors": "pt", "return_metadata": True, "cap_pixels_per_frame": False}


def random_clip(frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)


def moving_gradient(frames: int, height: int, width: int) -> np.ndarray:
    """Smooth content with hard edges that move: where resampling errors would show."""
    ys, xs = np.mgrid[0:height, 0:width]
    clip = [((ys * 3 + xs * 2 + 9 * t) % 256)[..., None] + np.array([0, 85, 170]) for t in range(frames)]
    return (np.stack(clip) % 256).astype(np.uint8)


@pytest.fixture(scope="module", params=list(FOLDERS))
def folder(request) -> Path:
    return FOLDERS[request.param]


@pytest.fixture(scope="module")
def stock(folder) -> StockQwen3VLVideoProcessor:
    processor = AutoVideoProcessor.from_pretrained(folder)
    assert type(processor) is StockQwen3VLVideoProcessor
    return processor


@pytest.fixture(scope="module")
def fast(folder) -> Qwen3VLVideoProcessor:
    return vlfast.VideoProcessor.from_pretrained(folder)


def assert_exact(stock, fast, videos, **call) -> None:
    """pixel_values_videos, video_grid_thw and video_metadata of vlfast equal the stock's, float32 and bfloat16."""
    expected = stock(videos, **STOCK_CALL, **call)
    for dtype in DTYPES:
        got = fast(videos, return_tensors="pt", return_metadata=True, dtype=dtype, **call)
        assert got["pixel_values_videos"].dtype == dtype
        assert got["video_grid_thw"].dtype == torch.int64
        assert torch.equal(got["video_grid_thw"], expected["video_grid_thw"])
        assert torch.equal(got["pixel_values_videos"], expected["pixel_values_videos"].to(dtype)), dtype
        assert len(got["video_metadata"]) == len(expected["video_metadata"])
        for ours, theirs in zip(got["video_metadata"], expected["video_metadata"], strict=True):
            assert np.array_equal(ours.frames_indices, theirs.frames_indices)
            assert (ours.fps, ours.total_num_frames) == (theirs.fps, theirs.total_num_frames)


def test_from_pretrained_gives_the_qwen3_vl_class(folder, stock, fast):
    assert type(fast) is Qwen3VLVideoProcessor and isinstance(fast, StockQwen3VLVideoProcessor)
    published = json.loads((folder / "video_preprocessor_config.json").read_text())
    for name in ("patch_size", "merge_size", "temporal_patch_size", "fps", "min_frames", "max_frames"):
        assert getattr(fast, name) == getattr(stock, name) == published[name], name
    assert list(fast.image_mean) == list(stock.image_mean) == [0.5, 0.5, 0.5]
    assert dict(fast.size) == dict(stock.size) == published["size"]
    assert Qwen3VLVideoProcessor.from_pretrained(folder).to_dict() == fast.to_dict()


def test_saved_config_loads_in_the_stock(tmp_path, fast):
    fast.save_pretrained(tmp_path)
    reloaded = AutoVideoProcessor.from_pretrained(tmp_path)
    assert type(reloaded) is StockQwen3VLVideoProcessor
    assert "engine" not in json.loads((tmp_path / "video_preprocessor_config.json").read_text())


#: (frames, height, width, video metadata): fps sampling of long and short clips, odd sizes.
SAMPLED = {
    "720p-like 32 frames at 30 fps": (32, 90, 160, {"fps": 30, "total_num_frames": 32}),
    "9 frames at 4 fps": (9, 123, 457, {"fps": 4, "total_num_frames": 9}),
    "300 frames at 24 fps": (300, 40, 52, {"fps": 24, "total_num_frames": 300}),
    "no metadata (stock: 24 fps)": (30, 64, 48, None),
    "3 frames, below min_frames": (3, 50, 70, {"fps": 2, "total_num_frames": 3}),
}


@pytest.mark.parametrize("case", SAMPLED)
def test_fps_sampling(stock, fast, case):
    frames, height, width, metadata = SAMPLED[case]
    assert_exact(stock, fast, random_clip(frames, height, width, seed=frames), video_metadata=metadata)


@pytest.mark.parametrize(
    "call",
    [{"do_sample_frames": False}, {"fps": 0.5}, {"fps": 7}, {"fps": 2, "min_frames": 30}],
    ids=lambda call: ",".join(f"{k}={v}" for k, v in call.items()),
)
def test_sampling_options(stock, fast, call):
    metadata = {"fps": 12, "total_num_frames": 45}
    assert_exact(stock, fast, moving_gradient(45, 70, 94), video_metadata=metadata, **call)


def _without_fps(processor):
    """A copy of ``processor`` with ``fps=None`` (the only way to sample by ``num_frames``: the two exclude
    each other, and a call-time ``fps=None`` means the instance's)."""
    config = {k: v for k, v in processor.to_dict().items() if k != "video_processor_type"}
    return type(processor)(**{**config, "fps": None})


@pytest.mark.parametrize("num_frames", [None, 5, 6, 80])
def test_num_frames_sampling(stock, fast, num_frames):
    metadata = {"fps": 12, "total_num_frames": 45}
    assert_exact(
        _without_fps(stock),
        _without_fps(fast),
        moving_gradient(45, 70, 94),
        video_metadata=metadata,
        num_frames=num_frames,
    )


@pytest.mark.parametrize(
    ("frames", "height", "width"),
    [(2, 33, 47), (3, 240, 320), (4, 1, 300), (6, 720, 1280), (7, 300, 17), (16, 400, 600)],
)
def test_frame_budget_sizes(stock, fast, frames, height, width):
    """Unsampled clips of every kind of size: forced up by the budget, scaled up below the factor, down by it."""
    clip = random_clip(frames, height, width, seed=height)
    assert_exact(stock, fast, clip, do_sample_frames=False)


def _random_video_sizes(count: int, seed: int) -> list[tuple[int, int, int]]:
    """(frames, height, width): 2 to 40 frames, sides log-uniform from 1 to 900 pixels, aspect ratio <= 200."""
    rng = np.random.default_rng(seed)
    sizes = []
    while len(sizes) < count:
        height, width = (int(np.exp(rng.uniform(0, np.log(900)))) for _ in range(2))
        if max(height, width) / min(height, width) <= 200:
            sizes.append((int(rng.integers(2, 41)), height, width))
    return sizes


@pytest.mark.parametrize(("frames", "height", "width"), _random_video_sizes(8, seed=2026))
def test_random_sizes(stock, fast, frames, height, width):
    assert_exact(stock, fast, random_clip(frames, height, width, seed=frames * height), do_sample_frames=False)


def test_real_photo_pan(stock, fast):
    """A real photo panned across 20 frames of 480x270, sampled at 2 fps from 10 fps."""
    from skimage import data

    wide = np.asarray(PIL.Image.fromarray(data.astronaut()).resize((560, 270)))
    clip = np.stack([wide[:, 4 * index : 4 * index + 480] for index in range(20)])
    assert_exact(stock, fast, clip, video_metadata={"fps": 10, "total_num_frames": 20})
    size = {"shortest_edge": 4096, "longest_edge": 25_165_824}  # frames kept near their own size
    assert_exact(stock, fast, clip, do_sample_frames=False, size=size)


@pytest.mark.parametrize("max_video_tokens", [None, 40])
def test_cap_pixels_per_frame(stock, fast, max_video_tokens):
    clip = random_clip(24, 260, 340, seed=9)
    call = {"do_sample_frames": False, "cap_pixels_per_frame": True}
    expected = stock(clip, return_tensors="pt", **call) if max_video_tokens is None else None
    if max_video_tokens is not None:
        config = {k: v for k, v in stock.to_dict().items() if k != "video_processor_type"}
        config["max_video_tokens"] = max_video_tokens
        stock, fast = StockQwen3VLVideoProcessor(**config), Qwen3VLVideoProcessor(**config)
        expected = stock(clip, return_tensors="pt", **call)
    got = fast(clip, return_tensors="pt", **call)
    assert torch.equal(got["video_grid_thw"], expected["video_grid_thw"])
    assert torch.equal(got["pixel_values_videos"], expected["pixel_values_videos"])
    uncapped = fast(clip, return_tensors="pt", do_sample_frames=False)["video_grid_thw"]
    assert not torch.equal(got["video_grid_thw"], uncapped)  # the cap changed the size


def test_cap_with_a_call_time_max_video_tokens(stock, fast):
    """A call-time ``max_video_tokens`` counts from transformers 5.25 (before, the instance's): as the stock."""
    clip = random_clip(24, 260, 340, seed=10)
    call = {"return_tensors": "pt", "do_sample_frames": False, "cap_pixels_per_frame": True, "max_video_tokens": 40}
    expected, got = stock(clip, **call), fast(clip, **call)
    assert torch.equal(got["video_grid_thw"], expected["video_grid_thw"])
    assert torch.equal(got["pixel_values_videos"], expected["pixel_values_videos"])


def test_call_time_size_and_layouts(stock, fast):
    clip = moving_gradient(10, 150, 211)
    size = {"shortest_edge": 4096, "longest_edge": 300_000}
    assert_exact(stock, fast, clip, do_sample_frames=False, size=size)
    frames = [PIL.Image.fromarray(frame) for frame in clip]
    assert_exact(stock, fast, frames, video_metadata={"fps": 5, "total_num_frames": 10})
    assert_exact(stock, fast, torch.from_numpy(clip).permute(0, 3, 1, 2), do_sample_frames=False)


def test_batch_of_videos(stock, fast):
    clips = [random_clip(12, 50, 70, seed=1), random_clip(8, 120, 90, seed=2), random_clip(12, 50, 70, seed=3)]
    metadata = [
        {"fps": 6, "total_num_frames": 12},
        {"fps": 2, "total_num_frames": 8},
        {"fps": 6, "total_num_frames": 12},
    ]
    assert_exact(stock, fast, clips, video_metadata=metadata)


def test_triton_engine(folder, stock):
    pytest.importorskip("triton", reason="triton is not installed")
    if not triton_engine.available():
        pytest.skip("TRITON_INTERPRET is off and no CUDA device is present")
    fast = vlfast.VideoProcessor.from_pretrained(folder, engine="triton")
    # The published minimum (131,072 pixels over the clip) keeps frames small for short clips.
    assert_exact(stock, fast, random_clip(5, 20, 30, seed=4), do_sample_frames=False)


def test_one_frame_is_refused_as_the_stock_refuses_it(stock, fast):
    """The frame budget needs at least temporal_patch_size frames: the stock raises ValueError, vlfast a typed error."""
    clip = random_clip(1, 64, 64)
    with pytest.raises(ValueError, match="temporal_factor"):
        stock(clip, **STOCK_CALL, do_sample_frames=False)
    with pytest.raises(UnsupportedOptionError, match="num_frames"):
        fast(clip, return_tensors="pt", do_sample_frames=False)


def test_aspect_ratio_is_refused_as_the_stock_refuses_it(stock, fast):
    clip = random_clip(2, 2, 600)
    with pytest.raises(ValueError, match="aspect ratio"):
        stock(clip, **STOCK_CALL, do_sample_frames=False)
    with pytest.raises(VlfastError, match="aspect ratio"):
        fast(clip, return_tensors="pt", do_sample_frames=False)


def test_from_stock_and_token_counts(stock):
    fast = vlfast.VideoProcessor.from_stock(stock)
    assert type(fast) is Qwen3VLVideoProcessor
    for size in [(8, 720, 1280), (3, 50, 70), (64, 1080, 1920)]:
        assert fast.get_num_of_video_patches(*size) == stock.get_num_of_video_patches(*size)


def test_qwen2_vl_class_still_loads_qwen2_configs(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"image_processor_type": "Qwen2VLImageProcessor"}))
    assert type(vlfast.VideoProcessor.from_pretrained(tmp_path)) is vlfast.VideoProcessor


def test_unknown_stock_video_processor_is_refused():
    from transformers.video_processing_utils import BaseVideoProcessor

    with pytest.raises(UnsupportedOptionError, match="not a video processor vlfast reproduces"):
        vlfast.VideoProcessor.from_stock(BaseVideoProcessor())


@pytest.mark.parametrize(
    "size", [{"shortest_edge": 4096.0, "longest_edge": 1.5e6}, {"shortest_edge": 4096, "longest_edge": 777777.7}]
)
def test_float_pixel_budgets(size):
    """Float bounds in the config (the stock computes with them as given), with and without the per-frame cap."""
    clip = random_clip(8, 300, 400, seed=12)
    stock, fast = StockQwen3VLVideoProcessor(size=size), Qwen3VLVideoProcessor(size=size)
    for cap in (False, True):
        call = {"return_tensors": "pt", "do_sample_frames": False, "cap_pixels_per_frame": cap}
        expected, got = stock(clip, **call), fast(clip, **call)
        assert torch.equal(got["video_grid_thw"], expected["video_grid_thw"])
        assert torch.equal(got["pixel_values_videos"], expected["pixel_values_videos"])
