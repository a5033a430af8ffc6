"""Qwen3-VL and Qwen3.5 images: ``vlfast.ImageProcessor.from_pretrained`` on their published
``preprocessor_config.json`` (tests/data) equals the installed stock processors of the same folder.

Both families reuse the stock ``Qwen2VLImageProcessor`` (and its PIL twin) with patch 16, merge 2,
temporal 2, mean = std = 0.5 and 65,536 to 16,777,216 pixels. The C++ engine covers real photos,
synthetic worst cases and every kind of size; the Triton engine (the CPU interpreter without a GPU)
covers small inputs, which the published minimum still brings up to at least 256x256.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sample_images import real_photos, synthetic_images
from skimage import data
from transformers import AutoImageProcessor, Qwen2VLImageProcessor, Qwen2VLImageProcessorPil

import vlfast
from vlfast.engines import triton_engine

pytest.importorskip("vlfast._C", reason="the C++ extension is not built")

DATA = Path(__file__).parent / "data"
FOLDERS = {"qwen3-vl": DATA / "qwen3_vl", "qwen3.5": DATA / "qwen3_5"}
DTYPES = (torch.float32, torch.bfloat16)

_stock_cache: dict = {}


def stock(folder: Path, backend: str):
    """The installed stock image processor of ``folder``: ``AutoImageProcessor``'s (torchvision) or the PIL twin."""
    key = (folder, backend)
    if key not in _stock_cache:
        if backend == "torchvision":
            processor = AutoImageProcessor.from_pretrained(folder)
            assert type(processor) is Qwen2VLImageProcessor
        else:
            processor = Qwen2VLImageProcessorPil.from_pretrained(folder)
        _stock_cache[key] = processor
    return _stock_cache[key]


def assert_exact(images, folder: Path, backend: str, engine: str = "cpp", **overrides) -> None:
    """pixel_values and image_grid_thw of vlfast equal the stock's, in float32 and bfloat16."""
    expected = stock(folder, backend)(images=images, return_tensors="pt", **overrides)
    ours = vlfast.ImageProcessor.from_pretrained(folder, backend=backend, engine=engine)
    for dtype in DTYPES:
        got = ours(images=images, return_tensors="pt", dtype=dtype, **overrides)
        assert got["pixel_values"].dtype == dtype
        assert torch.equal(got["image_grid_thw"], expected["image_grid_thw"])
        assert torch.equal(got["pixel_values"], expected["pixel_values"].to(dtype)), (folder.name, backend, dtype)


def test_published_configs_load_as_published() -> None:
    for folder in FOLDERS.values():
        published = json.loads((folder / "preprocessor_config.json").read_text())
        ours = vlfast.ImageProcessor.from_pretrained(folder)
        assert (ours.patch_size, ours.merge_size, ours.temporal_patch_size) == (16, 2, 2)
        assert list(ours.image_mean) == list(ours.image_std) == [0.5, 0.5, 0.5]
        assert (ours.size["shortest_edge"], ours.size["longest_edge"]) == (65536, 16777216)
        assert ours.to_dict()["size"] == published["size"]
        for name in ("patch_size", "merge_size", "temporal_patch_size", "image_mean", "image_std", "rescale_factor"):
            assert getattr(ours, name) == getattr(stock(folder, "torchvision"), name), name


#: (height, width) of random images, one of each kind under the published bounds.
SIZES = {
    "tiny": (3, 5),  # forced up to the 65,536-pixel minimum
    "upscale": (100, 150),
    "rounded-down": (1000, 1000),  # 992x992
    "1080p": (1080, 1920),  # 1088x1920
    "extreme-wide": (20, 3000),  # aspect 150
    "extreme-tall": (3000, 16),  # a side that rounds to 0, forced up
}


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
@pytest.mark.parametrize("family", list(FOLDERS))
@pytest.mark.parametrize("name", list(real_photos()))
def test_real_photos(name, family, backend):
    assert_exact([real_photos()[name]], FOLDERS[family], backend)


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
@pytest.mark.parametrize("name", list(synthetic_images()))
def test_synthetic_worst_cases(name, backend):
    assert_exact([synthetic_images()[name]], FOLDERS["qwen3-vl"], backend)


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
@pytest.mark.parametrize("kind", list(SIZES))
def test_sizes(kind, backend):
    height, width = SIZES[kind]
    image = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    assert_exact([image], FOLDERS["qwen3-vl"], backend)


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_forced_down_by_max_pixels(backend):
    """The downscaling branch, with a call-time ``size`` (the published maximum needs a 17-megapixel image)."""
    image = np.random.default_rng(5).integers(0, 256, (900, 1400, 3), dtype=np.uint8)
    assert_exact([image], FOLDERS["qwen3.5"], backend, size={"shortest_edge": 65536, "longest_edge": 300_000})


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_batch_of_mixed_sizes(backend):
    rng = np.random.default_rng(11)
    images = [data.chelsea(), rng.integers(0, 256, (40, 700, 3), dtype=np.uint8), Image.fromarray(data.camera())]
    assert_exact(images, FOLDERS["qwen3-vl"], backend)


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_triton_engine(backend):
    pytest.importorskip("triton", reason="triton is not installed")
    if not triton_engine.available():
        pytest.skip("TRITON_INTERPRET is off and no CUDA device is present")
    rng = np.random.default_rng(17)
    photo = np.asarray(Image.fromarray(data.chelsea()).resize((13, 9)))
    images = [photo, rng.integers(0, 256, (5, 30, 3), dtype=np.uint8), Image.fromarray(data.camera()).resize((8, 8))]
    assert_exact(images, FOLDERS["qwen3-vl"], backend, engine="triton")
