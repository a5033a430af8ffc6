"""The compact hand-off: uint8 patches, each image once, expanded to the stock pixel_values bit for bit."""

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from transformers import Qwen2VLImageProcessor, Qwen2VLImageProcessorPil

import vlfast
from vlfast import InvalidImageError, UnsupportedOptionError
from vlfast.engines import triton_engine

pytest.importorskip("vlfast._C", reason="the C++ extension is not built")

STOCK = {"torchvision": Qwen2VLImageProcessor, "pil": Qwen2VLImageProcessorPil}
SIZE = {"min_pixels": 28 * 28, "max_pixels": 112 * 140}
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def images() -> list:
    rng = np.random.default_rng(3)
    return [
        np.asarray(Image.fromarray(data.astronaut()).resize((150, 97))),
        rng.integers(0, 256, (31, 45, 3), dtype=np.uint8),
        Image.fromarray(data.camera()).resize((60, 90)),
    ]


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_expand_of_compact_is_the_stock_result(backend: str, dtype: torch.dtype) -> None:
    batch = images()
    expected = STOCK[backend](**SIZE)(images=batch, return_tensors="pt")
    compact = vlfast.preprocess(batch, backend=backend, compact=True, engine="cpp", **SIZE)
    assert compact.pixel_values.dtype == torch.uint8
    assert compact.pixel_values.shape == (expected["pixel_values"].shape[0], 3 * 14 * 14)
    assert torch.equal(compact.image_grid_thw, expected["image_grid_thw"])
    table = vlfast.normalization_table(backend, dtype=dtype)
    got = vlfast.expand_patches(compact.pixel_values, compact.image_grid_thw, table)
    assert got.dtype == dtype
    assert torch.equal(got, expected["pixel_values"].to(dtype))
    # 8x fewer bytes than float32 (T = 2 copies of 4-byte values per compact byte)
    assert compact.pixel_values.nbytes * 8 == expected["pixel_values"].nbytes


def test_a_processor_gives_the_table() -> None:
    batch = images()
    stock = STOCK["torchvision"](**SIZE, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    fast = vlfast.ImageProcessor(**SIZE, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    compact = vlfast.preprocess(batch, compact=True, engine="cpp", **SIZE)
    got = vlfast.expand_patches(compact.pixel_values, compact.image_grid_thw, fast, dtype=torch.bfloat16)
    assert torch.equal(got, stock(images=batch, return_tensors="pt")["pixel_values"].to(torch.bfloat16))


@pytest.mark.skipif(not triton_engine.available(), reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_triton_compact_and_expand(dtype: torch.dtype) -> None:
    device = "cuda" if torch.cuda.is_available() and not triton_engine.interpreting() else "cpu"
    batch = images()
    expected = STOCK["pil"](**SIZE)(images=batch, return_tensors="pt")["pixel_values"].to(dtype)
    compact = vlfast.preprocess(batch, backend="pil", compact=True, engine="triton", device=device, **SIZE)
    cpp = vlfast.preprocess(batch, backend="pil", compact=True, engine="cpp", **SIZE)
    assert torch.equal(compact.pixel_values.cpu(), cpp.pixel_values)
    table = vlfast.normalization_table("pil", dtype=dtype)
    got = vlfast.expand_patches(compact.pixel_values, compact.image_grid_thw, table, engine="triton")
    assert got.device.type == device
    assert torch.equal(got.cpu(), expected)


def test_errors_are_typed() -> None:
    compact = vlfast.preprocess(images()[:1], compact=True, engine="cpp", **SIZE)
    values, grid = compact.pixel_values, compact.image_grid_thw
    table = vlfast.normalization_table("torchvision")
    with pytest.raises(UnsupportedOptionError, match="leave dtype unset"):
        vlfast.preprocess(images()[:1], compact=True, dtype=torch.float32, **SIZE)
    with pytest.raises(InvalidImageError, match="uint8"):
        vlfast.expand_patches(values.float(), grid, table)
    with pytest.raises(InvalidImageError, match="describes"):
        vlfast.expand_patches(values[1:], grid, table)
    with pytest.raises(InvalidImageError, match="still images"):
        vlfast.expand_patches(values, torch.tensor([[2, grid[0, 1], grid[0, 2] // 2]]), table)
    with pytest.raises(UnsupportedOptionError, match=r"\(C, 256\)"):
        vlfast.expand_patches(values, grid, table[:, :128])
    with pytest.raises(UnsupportedOptionError, match="lacks"):
        vlfast.expand_patches(values, grid, object())
    with pytest.raises(UnsupportedOptionError, match="engine must be"):
        vlfast.expand_patches(values, grid, table, engine="cuda")
