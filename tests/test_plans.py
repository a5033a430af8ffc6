"""Resample plans applied by the NumPy reference equal Pillow's and torch's own resizes, byte for byte."""

import dataclasses
import random

import numpy as np
import PIL
import pytest
import torch
import torchvision.transforms.v2.functional as tvF
from PIL import Image
from torchvision.transforms import InterpolationMode
from transformers.image_processing_backends import TorchvisionBackend
from transformers.image_utils import SizeDict
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

from vlfast import UnsupportedOptionError
from vlfast.plans import Backend, Filter, axis_plan, resample_plan
from vlfast.reference import resize_reference
from vlfast.releases import pillow_vertical_first

PIL_FILTERS = {
    Filter.NEAREST: Image.Resampling.NEAREST,
    Filter.BOX: Image.Resampling.BOX,
    Filter.BILINEAR: Image.Resampling.BILINEAR,
    Filter.HAMMING: Image.Resampling.HAMMING,
    Filter.BICUBIC: Image.Resampling.BICUBIC,
    Filter.LANCZOS: Image.Resampling.LANCZOS,
}
TORCH_FILTERS = (Filter.BILINEAR, Filter.BICUBIC, Filter.LANCZOS)


def _test_image(rng: np.random.Generator, height: int, width: int, kind: int) -> np.ndarray:
    if kind == 0:
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if kind == 1:  # hard edges: a checkerboard of 0/255 hits the clamps of negative lobes
        yy, xx = np.indices((height, width))
        board = (((yy // 3) + (xx // 2)) % 2 * 255).astype(np.uint8)
        return np.stack([board, 255 - board, board], axis=-1)
    yy, xx = np.indices((height, width))  # gradients
    return np.stack([(yy * 7) % 256, (xx * 5) % 256, (yy + xx) % 256], axis=-1).astype(np.uint8)


def _random_sizes(seed: int, count: int, limit: int = 90):
    rng = random.Random(seed)
    for index in range(count):
        height, width = rng.randint(1, limit), rng.randint(1, limit)
        out_h = height if index % 7 == 0 else rng.randint(1, limit)
        out_w = width if index % 5 == 0 else rng.randint(1, limit)
        yield height, width, out_h, out_w, index % 3


@pytest.mark.parametrize("resample", list(PIL_FILTERS))
def test_pil_plans_match_pillow_resize(resample):
    rng = np.random.default_rng(0)
    for height, width, out_h, out_w, kind in _random_sizes(1, 60):
        image = _test_image(rng, height, width, kind)
        expected = np.asarray(Image.fromarray(image).resize((out_w, out_h), PIL_FILTERS[resample], reducing_gap=None))
        got = resize_reference(image, resample_plan(height, width, out_h, out_w, resample, Backend.PIL))
        assert np.array_equal(got, expected), (height, width, out_h, out_w)


@pytest.mark.parametrize("resample", TORCH_FILTERS)
def test_torchvision_plans_match_the_stock_resize(resample):
    """Against the stock torchvision backend's resize (torch's uint8 antialiased kernel), which with
    torchvision < 0.27 resizes LANCZOS requests with BICUBIC."""
    stock = Qwen2VLImageProcessor()
    rng = np.random.default_rng(1)
    for height, width, out_h, out_w, kind in _random_sizes(2, 60):
        image = _test_image(rng, height, width, kind)
        chw = torch.from_numpy(image).permute(2, 0, 1).contiguous()
        expected = TorchvisionBackend.resize(stock, chw, SizeDict(height=out_h, width=out_w), PIL_FILTERS[resample])
        got = resize_reference(image, resample_plan(height, width, out_h, out_w, resample, Backend.TORCHVISION))
        assert np.array_equal(got, expected.permute(1, 2, 0).numpy()), (height, width, out_h, out_w)


def test_large_downscale_and_upscale_factors():
    rng = np.random.default_rng(2)
    for height, width, out_h, out_w in [(1, 300, 28, 560), (600, 7, 56, 28), (5, 5, 200, 3), (400, 400, 28, 28)]:
        image = _test_image(rng, height, width, 0)
        pil = np.asarray(Image.fromarray(image).resize((out_w, out_h), Image.Resampling.BICUBIC, reducing_gap=None))
        assert np.array_equal(
            resize_reference(image, resample_plan(height, width, out_h, out_w)), _torch(image, out_h, out_w)
        )
        assert np.array_equal(
            resize_reference(image, resample_plan(height, width, out_h, out_w, backend=Backend.PIL)), pil
        )


def _torch(image, out_h, out_w):
    chw = torch.from_numpy(image).permute(2, 0, 1).contiguous()
    return (
        tvF.resize(chw, [out_h, out_w], interpolation=InterpolationMode.BICUBIC, antialias=True)
        .permute(1, 2, 0)
        .numpy()
    )


def test_pass_order_is_what_the_installed_pillow_does():
    """Find resizes where the two pass orders give different bytes; the plan's order must match Pillow."""
    rng = np.random.default_rng(3)
    decisive = {True: 0, False: 0}
    for height, width, out_h, out_w, _ in _random_sizes(4, 400, limit=70):
        plan = resample_plan(height, width, out_h, out_w, Filter.BICUBIC, Backend.PIL)
        if plan.horizontal is None or plan.vertical is None:
            continue
        image = _test_image(rng, height, width, 0)
        flipped = dataclasses.replace(plan, vertical_first=not plan.vertical_first)
        ours, other = resize_reference(image, plan), resize_reference(image, flipped)
        if np.array_equal(ours, other):
            continue
        expected = np.asarray(
            Image.fromarray(image).resize((out_w, out_h), Image.Resampling.BICUBIC, reducing_gap=None)
        )
        assert np.array_equal(ours, expected), (height, width, out_h, out_w, plan.vertical_first)
        decisive[plan.vertical_first] += 1
    assert decisive[False] > 0
    if tuple(int(p) for p in PIL.__version__.split(".")[:2]) >= (13, 0):
        assert decisive[True] > 0, "Pillow >= 13 runs the vertical pass first for some sizes"


@pytest.mark.parametrize(
    "version, sizes, expected",
    [
        ((13, 0), (1000, 500, 100, 450), True),  # height shrinks 900 > 2 * 50
        ((13, 0), (1000, 500, 100, 50), False),  # 900 < 2 * 450
        ((13, 0), (100, 500, 300, 50), False),  # height grows
        ((12, 2), (30000, 200, 3000, 28), True),  # > 100x taller and shrinking in height
        ((12, 2), (1000, 500, 100, 450), False),
        ((12, 1), (30000, 200, 3000, 28), False),
        ((11, 3), (1000, 500, 100, 450), False),
    ],
)
def test_pillow_pass_order_rule_per_release(version, sizes, expected):
    assert pillow_vertical_first(*sizes, version) is expected


def test_unchanged_axes_are_skipped():
    plan = resample_plan(50, 60, 50, 28, Filter.BICUBIC, Backend.PIL)
    assert plan.vertical is None and plan.horizontal is not None
    assert resample_plan(50, 60, 50, 60).horizontal is None


def test_torch_weights_use_per_axis_int16_precision():
    plan = axis_plan(1080, 504, Filter.BICUBIC, Backend.TORCHVISION)
    assert plan.weights.max() < 2**15 and plan.weights.max() >= 2**13
    assert axis_plan(1080, 504, Filter.BICUBIC, Backend.PIL).precision == 22


@pytest.mark.parametrize("resample", [Filter.BOX, Filter.HAMMING, Filter.NEAREST])
def test_filters_the_torchvision_backend_cannot_reproduce_raise(resample):
    with pytest.raises(UnsupportedOptionError, match=f"resample='{resample.value}' is not supported"):
        axis_plan(10, 20, resample, Backend.TORCHVISION)


@pytest.mark.parametrize(
    "value, expected",
    [
        (Image.Resampling.BICUBIC, Filter.BICUBIC),
        (3, Filter.BICUBIC),
        ("lanczos", Filter.LANCZOS),
        (InterpolationMode.BILINEAR, Filter.BILINEAR),
        (Filter.BOX, Filter.BOX),
    ],
)
def test_filter_from_any(value, expected):
    assert Filter.from_any(value) is expected


def test_unknown_filter_raises():
    with pytest.raises(UnsupportedOptionError, match="unknown resample filter"):
        Filter.from_any("spline36")
