"""smart_resize against transformers' and qwen-vl-utils' own functions."""

import random

import pytest
from random_sizes import random_side
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as transformers_smart_resize

from vlfast import AspectRatioError, InvalidImageError, smart_resize, smart_resize_qwen_vl_utils

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
