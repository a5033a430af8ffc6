"""Token counts equal the installed stock's: what vLLM and SGLang size a request's placeholder tokens with.

Compared, for 500 random image and video sizes and call-time overrides (none, ``size``, ``min_pixels`` /
``max_pixels`` alone or together, with ``size``, patch and merge sizes, modality-specific kwargs), on three
instance configurations: ``get_number_of_image_patches`` of both image processors,
``get_num_of_video_patches``, and ``_get_num_multimodal_tokens`` of ``Qwen2_5_VLProcessor`` and
``Qwen2VLProcessor`` with vlfast patched in. Where the stock raises (an aspect ratio over 200; transformers
5.17's processors call a video method its video processor lacks), vlfast raises the same exception type.
"""

from __future__ import annotations

import copy
import math
import random
import warnings
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("torchvision", reason="the stock torchvision processors need torchvision")

from tiny_qwen import CHAT_TEMPLATE, build_tokenizer  # noqa: E402
from transformers import (  # noqa: E402
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
    Qwen2VLImageProcessorPil,
    Qwen2VLProcessor,
)
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor  # noqa: E402

from vlfast.processor import (  # noqa: E402
    ImageProcessor,
    VideoProcessor,  # noqa: E402
    patch_processor,
)

CASES = 500
#: Instance settings: the class defaults, a published Qwen2.5-VL config, and small bounds.
CONFIGS = {
    "class-defaults": {},
    "qwen2.5-vl": {"min_pixels": 3136, "max_pixels": 12845056},
    "small-bounds": {"size": {"shortest_edge": 10_000, "longest_edge": 150_000}},
}


def _bounds(rng: random.Random) -> tuple[int, int]:
    low = int(math.exp(rng.uniform(math.log(28 * 28), math.log(500_000))))
    return low, int(low * math.exp(rng.uniform(0, math.log(200))))


def _override(rng: random.Random, kind: int) -> dict[str, Any] | None:
    low, high = _bounds(rng)
    size = {"shortest_edge": low, "longest_edge": high}
    return [
        None,
        {"size": size},
        {"min_pixels": low},
        {"max_pixels": high},
        {"min_pixels": low, "max_pixels": high},
        {"size": size, "max_pixels": _bounds(rng)[1]},
        {"patch_size": 16, "merge_size": 1},
        {"merge_size": 1, "size": size},
        {"temporal_patch_size": rng.choice([1, 3])},
        {"images_kwargs": {"size": size}, "videos_kwargs": {"max_pixels": high}},
    ][kind]


def _side(rng: random.Random) -> int:
    return int(math.exp(rng.uniform(0, math.log(6000))))


def _cases() -> list[tuple[list[tuple[int, int, int]], dict[str, Any] | None]]:
    """Per case: 1 to 4 ``(frames, height, width)`` inputs (about 1 in 25 with an aspect ratio over 200)
    and one override; every override kind equally often."""
    rng = random.Random(2025)
    cases = []
    for index in range(CASES):
        sizes = []
        for _ in range(rng.randint(1, 4)):
            height, width = _side(rng), _side(rng)
            if max(height, width) / min(height, width) > 200 and rng.random() > 0.3:
                height = width
            sizes.append((rng.randint(1, 64), height, width))
        cases.append((sizes, _override(rng, index % 10)))
    return cases


def _outcome(method: Callable[..., Any], *args: Any) -> Any:
    """``method(*args)`` (dicts deep-copied: a method may change them), or its exception type."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # the stock's min/max_pixels deprecation notice
            return method(*copy.deepcopy(args))
    except Exception as error:  # noqa: BLE001 - the stock's exception type is what is compared
        return type(error)


def _method_kwargs(override: dict[str, Any] | None) -> dict[str, Any] | None:
    """Modality-specific kwargs only mean something to the processor: the methods get the flat ones."""
    if override is None or "images_kwargs" not in override:
        return override
    return override["images_kwargs"]


def _tokens(processor: Any, modality: str, sizes: list, override: dict[str, Any] | None) -> dict[str, list[int]]:
    data = processor._get_num_multimodal_tokens(**{modality: sizes}, **(override or {}))
    names = ("num_image_tokens", "num_image_patches", "num_video_tokens")
    return {name: getattr(data, name) for name in names if hasattr(data, name)}


def _processors(config: dict[str, Any], processor_class: type) -> tuple[Any, Any]:
    """A stock processor of ``processor_class`` and the same with vlfast patched in."""

    def stock() -> Any:
        return processor_class(
            image_processor=Qwen2VLImageProcessor(**copy.deepcopy(config)),
            video_processor=Qwen2VLVideoProcessor(**copy.deepcopy(config)),
            tokenizer=build_tokenizer(),
            chat_template=CHAT_TEMPLATE,
        )

    return stock(), patch_processor(stock())


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_token_counts_equal_the_stock(config):
    stock_images = [Qwen2VLImageProcessor(**copy.deepcopy(config)), Qwen2VLImageProcessorPil(**copy.deepcopy(config))]
    fast_images = [ImageProcessor(backend=backend, **copy.deepcopy(config)) for backend in ("torchvision", "pil")]
    stock_video, fast_video = Qwen2VLVideoProcessor(**copy.deepcopy(config)), VideoProcessor(**copy.deepcopy(config))
    processors = [_processors(config, cls) for cls in (Qwen2_5_VLProcessor, Qwen2VLProcessor)]
    counted = overridden = 0
    for sizes, override in _cases():
        kwargs = _method_kwargs(override)
        frames, height, width = sizes[0]
        for stock, fast in zip(stock_images, fast_images, strict=True):
            expected = _outcome(stock.get_number_of_image_patches, height, width, kwargs)
            assert _outcome(fast.get_number_of_image_patches, height, width, kwargs) == expected, (
                type(stock).__name__,
                height,
                width,
                kwargs,
            )
            if kwargs is not None and isinstance(expected, int):
                overridden += expected != stock.get_number_of_image_patches(height, width)
        expected = _outcome(stock_video.get_num_of_video_patches, frames, height, width, kwargs)
        got = _outcome(fast_video.get_num_of_video_patches, frames, height, width, kwargs)
        assert got == expected, ("video", frames, height, width, kwargs)
        for stock, fast in processors:
            for modality, inputs in (("image_sizes", [s[1:] for s in sizes]), ("video_sizes", sizes)):
                expected = _outcome(_tokens, stock, modality, inputs, override)
                got = _outcome(_tokens, fast, modality, inputs, override)
                assert got == expected, (type(stock).__name__, modality, inputs, override)
                counted += isinstance(expected, dict)
    # Not vacuous: most processor calls give counts (images at least), and overrides change them.
    assert counted >= CASES * len(processors) * 0.8, counted
    assert overridden >= CASES // 4, overridden
