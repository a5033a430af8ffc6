"""GLM-4.1V / GLM-4.6V: their ``smart_resize`` against the stock functions, and vlfast's refusal of
their image processors (vlfast's pipeline sizes images by Qwen2-VL's rule only, and the two rules
give other grids on ordinary images).
"""

import importlib
import json
from pathlib import Path

import numpy as np
import pytest

import vlfast
from vlfast.errors import UnsupportedOptionError
from vlfast.sizing import smart_resize, smart_resize_frames

RANDOM_CASES = 100_000
DATA = Path(__file__).parent / "data"
FOLDERS = {"glm-4.1v": DATA / "glm4v", "glm-4.6v": DATA / "glm46v"}


@pytest.mark.parametrize(
    "height, width, expected",
    [
        (10, 1000, (28, 2800)),  # scaled up to the factor first (Qwen2-VL's rule: 28x1120)
        (1080, 1920, (1092, 1932)),
        (5000, 5000, (2184, 2184)),  # the budget counts two frames (Qwen2-VL's rule: 3080x3080)
    ],
)
def test_smart_resize_examples(height, width, expected):
    assert smart_resize_frames(2, height, width, min_pixels=12544, max_pixels=9633792) == expected


def test_rules_differ_on_ordinary_images():
    """Why vlfast refuses: with the published bounds, Qwen2-VL's rule gives another size for large images."""
    assert smart_resize(5000, 5000, 28, 12544, 9633792) == (3080, 3080)
    assert smart_resize_frames(2, 5000, 5000, 2, 28, 12544, 9633792) == (2184, 2184)
    assert smart_resize(10, 1000, 28, 12544, 9633792) == (28, 1120)
    assert smart_resize_frames(2, 10, 1000, 2, 28, 12544, 9633792) == (28, 2800)


@pytest.mark.parametrize("family", list(FOLDERS))
def test_from_pretrained_refuses_glm_configs(family):
    with pytest.raises(UnsupportedOptionError, match="smart_resize_frames"):
        vlfast.ImageProcessor.from_pretrained(FOLDERS[family])


def test_from_pretrained_refuses_a_nested_processor_config(tmp_path):
    """The combined ``processor_config.json`` form (image settings under ``image_processor``) is refused too."""
    config = json.loads((FOLDERS["glm-4.6v"] / "preprocessor_config.json").read_text())
    processor_class = config.pop("processor_class")
    (tmp_path / "processor_config.json").write_text(
        json.dumps({"image_processor": config, "processor_class": processor_class})
    )
    with pytest.raises(UnsupportedOptionError, match="Glm46VImageProcessor"):
        vlfast.ImageProcessor.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "module, name",
    [
        ("transformers.models.glm4v.image_processing_glm4v", "Glm4vImageProcessor"),
        ("transformers.models.glm4v.image_processing_pil_glm4v", "Glm4vImageProcessorPil"),
        ("transformers.models.glm46v.image_processing_glm46v", "Glm46VImageProcessor"),
        ("transformers.models.glm46v.image_processing_pil_glm46v", "Glm46VImageProcessorPil"),
    ],
)
def test_from_stock_refuses_glm_processors(module, name):
    stock = getattr(importlib.import_module(module), name)()
    with pytest.raises(UnsupportedOptionError, match=name):
        vlfast.ImageProcessor.from_stock(stock)


def test_patch_processor_refuses_glm_processor():
    from transformers import Glm4vProcessor

    from vlfast.processor import patch_processor

    processor = Glm4vProcessor.__new__(Glm4vProcessor)
    with pytest.raises(UnsupportedOptionError, match="Glm4vProcessor"):
        patch_processor(processor)


def test_stock_glm_grids_follow_this_rule():
    """The stock GLM-4.1V image processor's grid is smart_resize_frames's size over the patch size."""
    from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil

    stock = Glm4vImageProcessorPil.from_pretrained(FOLDERS["glm-4.1v"])
    image = np.zeros((12, 900, 3), np.uint8)
    grid = stock(images=[image], return_tensors="pt")["image_grid_thw"].tolist()
    height, width = smart_resize_frames(2, 12, 900, min_pixels=12544, max_pixels=9633792)
    assert grid == [[1, height // 14, width // 14]]
