"""The per-call caches (memoized options, per-settings tables) never hand one call another call's results."""

import numpy as np
import pytest
import torch
from transformers import Qwen2VLImageProcessor

import vlfast
from vlfast.defaults import IMAGE_MAX_PIXELS, IMAGE_MIN_PIXELS
from vlfast.errors import DeviceError, UnsupportedOptionError
from vlfast.preprocess import image_options
from vlfast.tables import Normalization, normalization_table

pytest.importorskip("vlfast._C", reason="the C++ extension is not built")

IMAGE = np.random.default_rng(7).integers(0, 256, (150, 230, 3), dtype=np.uint8)


def stock(**config) -> dict[str, torch.Tensor]:
    """The stock result, its pixel bounds always given (transformers 5.17 keeps the last ones given in the class)."""
    bounds = {"min_pixels": IMAGE_MIN_PIXELS, "max_pixels": IMAGE_MAX_PIXELS}
    return Qwen2VLImageProcessor(**{**bounds, **config})(images=IMAGE, return_tensors="pt")


@pytest.mark.parametrize(
    "options",
    [
        {"min_pixels": 3136, "max_pixels": 12845056},
        {"min_pixels": 3136, "max_pixels": 20000},
        {"min_pixels": 200000, "max_pixels": 12845056},
        {"image_mean": (0.5, 0.5, 0.5), "image_std": (0.5, 0.5, 0.5)},
        {"image_mean": [0.1, 0.2, 0.3], "image_std": [0.4, 0.5, 0.6]},
        {"do_normalize": False},
    ],
)
def test_cached_options_give_each_call_its_own_stock_result(options):
    """Calls alternate between the default options and ``options``, twice each: every result is its own stock's."""
    for config in [{}, options, {}, options]:
        expected = stock(**config)
        got = vlfast.preprocess(IMAGE, engine="cpp", **config)
        assert torch.equal(got.pixel_values, expected["pixel_values"])
        assert torch.equal(got.image_grid_thw, expected["image_grid_thw"])


def test_cached_options_keep_the_dtype_apart():
    expected = stock()["pixel_values"]
    for dtype in [torch.float32, torch.bfloat16, torch.float16, torch.float32, torch.bfloat16]:
        got = vlfast.preprocess(IMAGE, engine="cpp", dtype=dtype).pixel_values
        assert got.dtype == dtype
        assert torch.equal(got, expected.to(dtype))


def test_equal_options_resolve_once_and_unhashable_ones_every_call():
    assert image_options(min_pixels=3136, dtype="bfloat16") is image_options(min_pixels=3136, dtype="bfloat16")
    mean = [0.5, 0.5, 0.5]
    first = image_options(image_mean=mean)
    mean[0] = 0.25  # a list the caller changes: the next call sees the change
    second = image_options(image_mean=mean)
    assert first is not second
    assert second.normalization.image_mean == [0.25, 0.5, 0.5]


@pytest.mark.parametrize(
    ("valid", "invalid", "message"),
    [
        ({"patch_size": 14}, {"patch_size": 14.0}, "patch_size must be a positive integer"),
        ({"max_output_bytes": 1 << 30}, {"max_output_bytes": float(1 << 30)}, "max_output_bytes must be a positive"),
        ({"rescale_factor": 1.0}, {"rescale_factor": True}, "rescale_factor must be a finite non-zero number"),
    ],
)
def test_a_value_of_another_type_is_checked_again(valid, invalid, message):
    """Keys hold the values' types: an invalid value equal to a cached valid one (14.0 == 14) is still refused."""
    image_options(**valid)
    with pytest.raises(UnsupportedOptionError, match=message):
        vlfast.preprocess(IMAGE, **invalid)


def test_the_engine_choice_follows_triton_interpret(monkeypatch):
    pytest.importorskip("triton")
    if torch.cuda.is_available():
        pytest.skip("with a GPU the Triton engine serves CUDA devices, whatever TRITON_INTERPRET says")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert image_options(engine="triton").engine.name == "triton"
    monkeypatch.delenv("TRITON_INTERPRET")
    with pytest.raises(DeviceError, match="engine='triton' needs a CUDA device"):
        image_options(engine="triton")


def test_normalization_tables_follow_their_settings():
    settings = Normalization("torchvision", image_mean=(0.5, 0.5, 0.5), image_std=(0.25, 0.25, 0.25))
    for dtype in [torch.float32, torch.bfloat16, torch.float32]:
        expected = normalization_table("torchvision", image_mean=(0.5,) * 3, image_std=(0.25,) * 3, dtype=dtype)
        assert torch.equal(settings.table(dtype), expected)
    scalar = Normalization("torchvision", image_mean=0.5, image_std=0.5)
    assert scalar.table(torch.float32, channels=1).shape == (1, 256)
    assert scalar.table(torch.float32, channels=3).shape == (3, 256)
    mean = [0.5, 0.5, 0.5]
    listed = Normalization("torchvision", image_mean=mean)
    before = listed.table(torch.float32)
    mean[0] = 0.0  # a list the caller changes: its table is never kept
    after = listed.table(torch.float32)
    assert not torch.equal(before[0], after[0])
    assert torch.equal(after, normalization_table("torchvision", image_mean=(0.0, 0.5, 0.5)))
