"""Normalization tables equal the stock processors' float pipeline on every uint8 value."""

import numpy as np
import pytest
import torch
from transformers import Qwen2VLImageProcessor, Qwen2VLImageProcessorPil

from vlfast import UnsupportedOptionError, normalization_table
from vlfast.layout import patchify_reference
from vlfast.tables import stock_output_dtype

STOCK = {"torchvision": Qwen2VLImageProcessor, "pil": Qwen2VLImageProcessorPil}


def _all_values_image() -> np.ndarray:
    """28 x 280 RGB image in which every channel takes all 256 values."""
    yy, xx = np.indices((28, 280))
    ramp = (yy * 280 + xx) % 256
    return np.stack([ramp, (ramp + 85) % 256, (255 - ramp)], axis=-1).astype(np.uint8)


OPTIONS = [
    {},
    {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
    {"image_mean": [0.1, 0.7, 0.33], "image_std": [0.2, 0.9, 0.013]},
    {"do_rescale": False},
    {"do_normalize": False},
    {"rescale_factor": 1 / 127.5},
    {"rescale_factor": 0.00392, "image_mean": [0.45, 0.45, 0.45], "image_std": [0.27, 0.27, 0.27]},
]


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
@pytest.mark.parametrize("options", OPTIONS)
def test_table_equals_stock_on_all_values(backend, options):
    stock = STOCK[backend](do_resize=False, **options)
    image = _all_values_image()
    expected = stock(images=[image], return_tensors="pt")["pixel_values"]
    table = normalization_table(
        backend,
        do_rescale=stock.do_rescale,
        rescale_factor=stock.rescale_factor,
        do_normalize=stock.do_normalize,
        image_mean=stock.image_mean,
        image_std=stock.image_std,
        dtype=stock_output_dtype(backend, stock.do_rescale, stock.do_normalize),
    )
    channels = np.arange(3)
    normalized = table.numpy()[channels[:, None, None], np.moveaxis(image, -1, 0)]
    got = torch.from_numpy(np.ascontiguousarray(patchify_reference(normalized, 14, 2, 2)))
    assert got.dtype == expected.dtype
    assert torch.equal(got, expected)


def test_backends_differ_in_the_last_bit():
    """The two stock pipelines round differently; a shared table would be wrong for one of them."""
    pil = normalization_table("pil", image_mean=(0.48145466,) * 3, image_std=(0.26862954,) * 3)
    tv = normalization_table("torchvision", image_mean=(0.48145466,) * 3, image_std=(0.26862954,) * 3)
    assert not torch.equal(pil, tv)
    assert torch.allclose(pil, tv, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_table_is_the_float32_table_cast(dtype):
    table32 = normalization_table("torchvision", image_mean=(0.5,) * 3, image_std=(0.25,) * 3)
    table = normalization_table("torchvision", image_mean=(0.5,) * 3, image_std=(0.25,) * 3, dtype=dtype)
    assert table.dtype == dtype and torch.equal(table, table32.to(dtype))


def test_zero_std_is_rejected():
    with pytest.raises(UnsupportedOptionError, match="division by zero"):
        normalization_table("pil", image_std=(0.5, 0.0, 0.5))


def test_wrong_channel_count_is_rejected():
    with pytest.raises(UnsupportedOptionError, match="image_mean must have 3 elements"):
        normalization_table("pil", image_mean=(0.5, 0.5))
