"""vlfast.preprocess(engine="triton") equals the stock processors and the C++ engine, bit for bit.

Without a GPU the kernels run under ``TRITON_INTERPRET=1`` on CPU tensors (set in conftest.py),
so the images stay small; with a GPU the same assertions run on CUDA.
"""

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from transformers import Qwen2VLImageProcessor, Qwen2VLImageProcessorPil

import vlfast
from vlfast.engines import triton_engine

pytest.importorskip("triton", reason="triton is not installed")
pytest.importorskip("vlfast._C", reason="the C++ extension is not built")
if not triton_engine.available():
    pytest.skip("TRITON_INTERPRET is off and no CUDA device is present", allow_module_level=True)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
STOCK = {"torchvision": Qwen2VLImageProcessor, "pil": Qwen2VLImageProcessorPil}
SMALL = {"min_pixels": 28 * 28, "max_pixels": 56 * 84}


def small_images():
    rng = np.random.default_rng(21)
    photo = np.asarray(Image.fromarray(data.chelsea()).resize((61, 40)))
    return [
        photo,  # downscale both axes: 40x61 -> 28x56
        rng.integers(0, 256, (23, 41, 3), dtype=np.uint8),  # upscale
        rng.integers(0, 256, (56, 30, 3), dtype=np.uint8),  # one axis unchanged
        rng.integers(0, 256, (56, 84, 3), dtype=np.uint8),  # unchanged
        Image.fromarray(data.camera()).resize((50, 35)),  # grayscale PIL
    ]


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_batch_matches_stock_and_cpp(backend, dtype):
    images = small_images()
    expected = STOCK[backend](**SMALL)(images=images, return_tensors="pt")
    got = vlfast.preprocess(images, backend=backend, engine="triton", device=DEVICE, dtype=dtype, **SMALL)
    cpp = vlfast.preprocess(images, backend=backend, engine="cpp", dtype=dtype, **SMALL)
    assert got.pixel_values.device.type == DEVICE and got.pixel_values.dtype == dtype
    assert torch.equal(got.image_grid_thw, expected["image_grid_thw"])
    assert torch.equal(got.pixel_values.cpu(), expected["pixel_values"].to(dtype))
    assert torch.equal(got.pixel_values.cpu(), cpp.pixel_values)


@pytest.mark.parametrize("resample", ["bilinear", "lanczos"])
def test_other_filters_match_stock(resample):
    images = small_images()[:3]
    codes = {"bilinear": Image.Resampling.BILINEAR, "lanczos": Image.Resampling.LANCZOS}
    for backend in ("torchvision", "pil"):
        expected = STOCK[backend](resample=codes[resample], **SMALL)(images=images, return_tensors="pt")
        got = vlfast.preprocess(images, backend=backend, engine="triton", device=DEVICE, resample=resample, **SMALL)
        assert torch.equal(got.pixel_values.cpu(), expected["pixel_values"]), backend


def test_device_tensors_in_chw_layout():
    image = torch.from_numpy(small_images()[1]).permute(2, 0, 1).contiguous().to(DEVICE)
    expected = Qwen2VLImageProcessor(**SMALL)(images=[image.cpu()], return_tensors="pt")
    got = vlfast.preprocess(image, engine="triton", device=DEVICE, **SMALL)
    assert torch.equal(got.pixel_values.cpu(), expected["pixel_values"])
