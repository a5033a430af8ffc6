"""Each smart_resize variant against its stock functions: transformers' (Qwen2-VL), qwen-vl-utils', and the
frame-budget rule of Qwen3-VL videos and GLM-4.1V / GLM-4.6V (every stock copy); float pixel budgets too."""

import importlib
import math
import random

import pytest
from random_sizes import random_side
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as transformers_smart_resize

from vlfast import AspectRatioError, InvalidImageError, smart_resize, smart_resize_qwen_vl_utils
from vlfast.errors import VlfastError
from vlfast.sizing import smart_resize_frames

RANDOM_CASES = 100_000


def _random_limits(rng: random.Random) -> tuple[int, int]:
    choice = rng.random()
    if choice < 0.3:
        return 3136, 1003520
    if choice < 0.6:
        return 3136, 12845056
    low = rng.randint(1, 2_000_000)
    return low, low + rng.randint(0, 20_000_000)


def _outcome(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except ValueError as error:  # the stock raises ValueError for aspect ratio > 200
        return ("error", str(error))


def test_matches_transformers_on_random_inputs():
    rng = random.Random(1234)
    for _ in range(RANDOM_CASES):
        height, width = random_side(rng), random_side(rng)
        factor = rng.choice([28, 28, 28, 14, 32, 56])
        low, high = _random_limits(rng)
        expected = _outcome(transformers_smart_resize, height, width, factor, min_pixels=low, max_pixels=high)
        got = _outcome(smart_resize, height, width, factor, min_pixels=low, max_pixels=high)
        assert got == expected, (height, width, factor, low, high)


def test_matches_qwen_vl_utils_on_random_inputs():
    # qwen-vl-utils is in the [test] extra (so CI runs this); a GPU machine without it skips only this test.
    qwen_vl_utils = pytest.importorskip("qwen_vl_utils.vision_process")
    qwen_vl_utils_smart_resize = qwen_vl_utils.smart_resize
    rng = random.Random(99)
    for _ in range(RANDOM_CASES):
        height, width = random_side(rng), random_side(rng)
        factor = rng.choice([28, 28, 32])
        low, high = _random_limits(rng)
        expected = _outcome(qwen_vl_utils_smart_resize, height, width, factor, min_pixels=low, max_pixels=high)
        got = _outcome(smart_resize_qwen_vl_utils, height, width, factor, min_pixels=low, max_pixels=high)
        assert got == expected, (height, width, factor, low, high)


@pytest.mark.parametrize(
    "height, width",
    [
        (70, 70),  # 70/28 = 2.5 rounds half to even: 56
        (126, 126),  # 4.5 -> 4: 112
        (1, 200),  # aspect ratio exactly 200 is allowed
        (200, 1),
        (10, 1000),
        (1000, 10),
        (28, 28),
        (1, 1),
        (3, 7),
        (1080, 1920),
        (2160, 3840),
        (20000, 20000),
        (100, 19999),
    ],
)
@pytest.mark.parametrize("limits", [(3136, 1003520), (3136, 12845056), (56 * 56, 56 * 56)])
def test_edge_cases(height, width, limits):
    low, high = limits
    assert smart_resize(height, width, min_pixels=low, max_pixels=high) == transformers_smart_resize(
        height, width, min_pixels=low, max_pixels=high
    )


def test_known_values():
    assert smart_resize(1080, 1920) == (728, 1316)
    assert smart_resize(1080, 1920, max_pixels=12845056) == (1092, 1932)
    assert smart_resize(70, 70) == (56, 56)


def test_qwen_vl_utils_variant_differs_where_documented():
    assert smart_resize(10, 1000) == (28, 560)
    assert smart_resize_qwen_vl_utils(10, 1000) == (28, 1008)


@pytest.mark.parametrize("function", [smart_resize, smart_resize_qwen_vl_utils])
def test_aspect_ratio_over_200_raises(function):
    with pytest.raises(AspectRatioError, match="absolute aspect ratio must be smaller than 200, got 201.0"):
        function(1, 201)
    with pytest.raises(ValueError):  # still a ValueError, like the stock
        function(4020, 20)


@pytest.mark.parametrize("bad", [0, -5, 2.5, None, True])
def test_rejects_non_positive_or_non_integer_sizes(bad):
    with pytest.raises(InvalidImageError, match="must be a positive integer"):
        smart_resize(bad, 100)


def _random_float_limits(rng: random.Random) -> tuple[float, float]:
    """Float budgets as users write them (``1.5e6``) and with fractions, some below / above the int ones."""
    choice = rng.random()
    if choice < 0.3:
        return 3136.0, rng.choice([1.5e6, 1e6, 2.5e5, 1.2845056e7])
    low = rng.uniform(1, 2e6)
    return low, low + rng.uniform(0, 2e7)


def test_float_budgets_match_transformers_on_random_inputs():
    """A float ``min_pixels`` / ``max_pixels`` (the stock takes ``Qwen2VLImageProcessor(max_pixels=1.5e6)``):
    the same arithmetic, so the same sizes."""
    rng = random.Random(77)
    for _ in range(RANDOM_CASES):
        height, width = random_side(rng), random_side(rng)
        factor = rng.choice([28, 28, 32, 14])
        low, high = _random_float_limits(rng)
        expected = _outcome(transformers_smart_resize, height, width, factor, min_pixels=low, max_pixels=high)
        got = _outcome(smart_resize, height, width, factor, min_pixels=low, max_pixels=high)
        assert got == expected, (height, width, factor, low, high)


#: Every stock copy of the frame-budget smart_resize: GLM-4.1V / GLM-4.6V images (both backends) and videos,
#: and Qwen3-VL's video processor.
FRAME_RULE_MODULES = (
    "transformers.models.glm4v.image_processing_glm4v",
    "transformers.models.glm4v.image_processing_pil_glm4v",
    "transformers.models.glm46v.image_processing_glm46v",
    "transformers.models.glm46v.image_processing_pil_glm46v",
    "transformers.models.glm4v.video_processing_glm4v",
    "transformers.models.glm46v.video_processing_glm46v",
    "transformers.models.qwen3_vl.video_processing_qwen3_vl",
)


def _frame_rule_limits(rng: random.Random) -> tuple[float, float]:
    choice = rng.random()
    if choice < 0.2:
        return 12544, 9633792  # GLM's published configs
    if choice < 0.35:
        return 131072, 786432  # Qwen3-VL's video defaults
    if choice < 0.45:
        return 112 * 112, 14 * 14 * 2 * 2 * 2 * 6144  # the function's defaults
    if choice < 0.55:
        return _random_float_limits(rng)
    low = rng.randint(1, 2_000_000)
    return low, low + rng.randint(0, 20_000_000)


def _typed_outcome(function, *args):
    try:
        return function(*args)
    except ValueError:  # the stock raises ValueError; vlfast a typed error that is one
        return "error"


@pytest.mark.parametrize("module", FRAME_RULE_MODULES)
def test_frame_rule_matches_stock_on_random_inputs(module):
    stock = importlib.import_module(module).smart_resize
    rng = random.Random(4242)
    for _ in range(RANDOM_CASES):
        height, width = random_side(rng), random_side(rng)
        factor = rng.choice([28, 28, 28, 32, 32, 14])
        temporal_factor = rng.choice([2, 2, 1, 3])
        num_frames = temporal_factor if rng.random() < 0.4 else rng.randint(1, 800)
        low, high = _frame_rule_limits(rng)
        args = (num_frames, height, width, temporal_factor, factor, low, high)
        expected = _typed_outcome(stock, *args)
        got = _typed_outcome(smart_resize_frames, *args)
        assert got == expected, args
        if got == "error":
            with pytest.raises(VlfastError):
                smart_resize_frames(*args)


@pytest.mark.parametrize("bad", [0, -1.5, math.nan, math.inf, "1e6", True])
def test_pixel_bounds_refuse_nonsense(bad):
    """Floats are accepted as the stock accepts them; zero, negatives, nan, infinities, strings are refused."""
    import numpy as np

    import vlfast
    from vlfast.errors import UnsupportedOptionError

    image = np.zeros((30, 40, 3), np.uint8)
    for name in ("min_pixels", "max_pixels"):
        with pytest.raises(UnsupportedOptionError, match=f"{name} must be a positive integer or a positive finite"):
            vlfast.preprocess(image, **{name: bad})


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_float_budgets_end_to_end(backend):
    """``preprocess(max_pixels=1.5e5)`` and ``ImageProcessor(max_pixels=1.5e5)`` equal the stock built with the same
    float (the stock refuses floats only as call-time overrides, which vlfast's processors refuse as it does)."""
    pytest.importorskip("vlfast._C", reason="the C++ extension is not built")
    import numpy as np
    import torch
    from transformers import Qwen2VLImageProcessorPil

    import vlfast

    if backend == "torchvision":
        pytest.importorskip("torchvision")
        from transformers import Qwen2VLImageProcessor as Stock
    else:
        Stock = Qwen2VLImageProcessorPil
    image = np.random.default_rng(2).integers(0, 256, (700, 1200, 3), dtype=np.uint8)
    for low, high in [(3136, 1.5e5), (3136.0, 1.5e6), (2.5e5, 1.2845056e7), (3136, 150000.7)]:
        expected = Stock(size={"shortest_edge": low, "longest_edge": high})(images=image, return_tensors="pt")
        got = vlfast.preprocess(image, backend=backend, min_pixels=low, max_pixels=high)
        assert torch.equal(got.image_grid_thw, expected["image_grid_thw"]), (low, high)
        assert torch.equal(got.pixel_values, expected["pixel_values"]), (low, high)
        ours = vlfast.ImageProcessor(backend=backend, min_pixels=low, max_pixels=high)(
            images=image, return_tensors="pt"
        )
        assert torch.equal(ours["pixel_values"], expected["pixel_values"]), (low, high)
