"""GLM-4.1V / GLM-4.6V: vlfast's ``Glm4vImageProcessor`` / ``Glm46VImageProcessor`` (both backends) and their
video processors against the installed stock classes of the same published configs (tests/data), and
``patch_processor`` on ``Glm4vProcessor`` / ``Glm46VProcessor``. Their ``smart_resize`` counts
``temporal_patch_size`` frames in the pixel budget and scales sides below the factor up
(:func:`vlfast.sizing.smart_resize_frames`, checked against every stock copy in tests/test_sizing.py).
"""

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

pytest.importorskip("torchvision", reason="the stock GLM processors need torchvision")
pytest.importorskip("vlfast._C", reason="the C++ extension is not built")

from sample_images import real_photos, synthetic_images
from transformers import AutoImageProcessor, AutoVideoProcessor  # noqa: E402

import vlfast  # noqa: E402
from vlfast.engines import triton_engine  # noqa: E402
from vlfast.errors import UnsupportedOptionError  # noqa: E402
from vlfast.hf.image_processor import Glm4vImageProcessor, Glm46VImageProcessor  # noqa: E402
from vlfast.hf.video_processor import Glm4vVideoProcessor, Glm46VVideoProcessor  # noqa: E402
from vlfast.processor import patch_processor  # noqa: E402
from vlfast.sizing import smart_resize, smart_resize_frames  # noqa: E402

DATA = Path(__file__).parent / "data"
#: family -> (folder, vlfast class, stock PIL class module and name).
FAMILIES = {
    "glm-4.1v": (DATA / "glm4v", Glm4vImageProcessor, "glm4v.image_processing_pil_glm4v", "Glm4vImageProcessorPil"),
    "glm-4.6v": (
        DATA / "glm46v",
        Glm46VImageProcessor,
        "glm46v.image_processing_pil_glm46v",
        "Glm46VImageProcessorPil",
    ),
}
DTYPES = (torch.float32, torch.bfloat16)

_stock_cache: dict = {}


def stock(family: str, backend: str):
    """The installed stock image processor of the family's folder: ``AutoImageProcessor``'s or the PIL class."""
    key = (family, backend)
    if key not in _stock_cache:
        folder, _, module, name = FAMILIES[family]
        if backend == "torchvision":
            processor = AutoImageProcessor.from_pretrained(folder)
            assert type(processor).__name__ == name.removesuffix("Pil")
        else:
            processor = getattr(importlib.import_module(f"transformers.models.{module}"), name).from_pretrained(folder)
        _stock_cache[key] = processor
    return _stock_cache[key]


def assert_exact(images, family: str, backend: str, engine: str = "cpp", **overrides) -> None:
    """pixel_values and image_grid_thw of vlfast equal the stock's, in float32 and bfloat16."""
    expected = stock(family, backend)(images=images, return_tensors="pt", **overrides)
    ours = vlfast.ImageProcessor.from_pretrained(FAMILIES[family][0], backend=backend, engine=engine)
    assert type(ours) is FAMILIES[family][1]
    for dtype in DTYPES:
        got = ours(images=images, return_tensors="pt", dtype=dtype, **overrides)
        assert got["pixel_values"].dtype == dtype
        assert torch.equal(got["image_grid_thw"], expected["image_grid_thw"])
        assert torch.equal(got["pixel_values"], expected["pixel_values"].to(dtype)), (family, backend, dtype)


#: (height, width): where GLM's rule differs from Qwen2-VL's, and the ordinary branches.
SIZES = {
    "tiny, scaled up to the factor": (3, 5),
    "one side below the factor": (12, 900),
    "upscale to the minimum": (40, 60),
    "unchanged-ish": (300, 451),
    "1080p": (1080, 1920),
    "over the budget (counts two frames)": (3000, 3000),
    "extreme-wide": (20, 3000),
}


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("name", list(real_photos()))
def test_real_photos(name, family, backend):
    assert_exact([real_photos()[name]], family, backend)


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
@pytest.mark.parametrize("name", list(synthetic_images()))
def test_synthetic_worst_cases(name, backend):
    assert_exact([synthetic_images()[name]], "glm-4.1v", backend)


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
@pytest.mark.parametrize("kind", list(SIZES))
def test_sizes(kind, backend):
    height, width = SIZES[kind]
    image = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    assert_exact([image], "glm-4.6v" if height % 2 else "glm-4.1v", backend, input_data_format="channels_last")


def _random_sizes(count: int, seed: int) -> list[tuple[int, int]]:
    """Sides log-uniform from 1 to 3000 pixels, aspect ratio <= 150 (the upscaling of small sides keeps it)."""
    rng = np.random.default_rng(seed)
    sizes = []
    while len(sizes) < count:
        height, width = (int(np.exp(rng.uniform(0, np.log(3000)))) for _ in range(2))
        if max(height, width) / min(height, width) <= 150:
            sizes.append((height, width))
    return sizes


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
@pytest.mark.parametrize(("height", "width"), _random_sizes(10, seed=46))
def test_random_sizes(height, width, backend):
    image = np.random.default_rng(height + width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    assert_exact([image], "glm-4.1v", backend, input_data_format="channels_last")


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_batch_and_call_time_size(backend):
    rng = np.random.default_rng(11)
    images = [data.chelsea(), rng.integers(0, 256, (40, 700, 3), dtype=np.uint8), Image.fromarray(data.camera())]
    assert_exact(images, "glm-4.1v", backend)
    assert_exact(images, "glm-4.6v", backend, size={"shortest_edge": 12544, "longest_edge": 200_000})


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_triton_engine(backend):
    pytest.importorskip("triton", reason="triton is not installed")
    if not triton_engine.available():
        pytest.skip("TRITON_INTERPRET is off and no CUDA device is present")
    rng = np.random.default_rng(17)
    images = [rng.integers(0, 256, (9, 13, 3), dtype=np.uint8), rng.integers(0, 256, (60, 47, 3), dtype=np.uint8)]
    assert_exact(images, "glm-4.1v", backend, engine="triton", input_data_format="channels_last")


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_from_stock_and_token_counts(family, backend):
    ours = vlfast.ImageProcessor.from_stock(stock(family, backend))
    assert type(ours) is FAMILIES[family][1] and ours.backend == backend
    for size in [(3, 5), (12, 900), (1080, 1920), (5000, 5000)]:
        assert ours.get_number_of_image_patches(*size, {}) == stock(family, backend).get_number_of_image_patches(
            *size, {}
        )


def test_saved_config_loads_in_the_stock(tmp_path):
    vlfast.ImageProcessor.from_pretrained(FAMILIES["glm-4.1v"][0]).save_pretrained(tmp_path)
    assert "engine" not in json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert type(AutoImageProcessor.from_pretrained(tmp_path)).__name__ == "Glm4vImageProcessor"


def test_nested_processor_config(tmp_path):
    """The combined ``processor_config.json`` form (image settings under ``image_processor``) loads the same."""
    config = json.loads((FAMILIES["glm-4.6v"][0] / "preprocessor_config.json").read_text())
    processor_class = config.pop("processor_class")
    (tmp_path / "processor_config.json").write_text(
        json.dumps({"image_processor": config, "processor_class": processor_class})
    )
    assert type(vlfast.ImageProcessor.from_pretrained(tmp_path)) is Glm46VImageProcessor


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_preprocess_with_the_frame_rule_and_compact_hand_off(backend):
    """``vlfast.preprocess(size_rule="frames")`` is the GLM image processor; the compact hand-off (one temporal
    slot) still sizes an image as two frames, and ``expand_patches`` gives the stock ``pixel_values``."""
    rng = np.random.default_rng(8)
    images = [rng.integers(0, 256, (2400, 2200, 3), dtype=np.uint8), rng.integers(0, 256, (10, 700, 3), dtype=np.uint8)]
    expected = stock("glm-4.1v", backend)(images=images, return_tensors="pt")
    options = {"backend": backend, "size_rule": "frames", "min_pixels": 12544, "max_pixels": 9633792}
    full = vlfast.preprocess(images, **options)
    assert torch.equal(full.image_grid_thw, expected["image_grid_thw"])
    assert torch.equal(full.pixel_values, expected["pixel_values"])
    compact = vlfast.preprocess(images, compact=True, **options)
    assert torch.equal(compact.image_grid_thw, expected["image_grid_thw"])
    table = vlfast.normalization_table(backend)
    expanded = vlfast.expand_patches(compact.pixel_values, compact.image_grid_thw, table)
    assert torch.equal(expanded, expected["pixel_values"])


def test_unknown_size_rule_is_refused():
    with pytest.raises(UnsupportedOptionError, match="size_rule must be one of"):
        vlfast.preprocess(np.zeros((30, 30, 3), np.uint8), size_rule="glm")


def test_rules_differ_on_ordinary_images():
    """Why GLM needs its own rule: with the published bounds, Qwen2-VL's rule gives another size."""
    assert smart_resize(5000, 5000, 28, 12544, 9633792) == (3080, 3080)
    assert smart_resize_frames(2, 5000, 5000, 2, 28, 12544, 9633792) == (2184, 2184)
    assert smart_resize(10, 1000, 28, 12544, 9633792) == (28, 1120)
    assert smart_resize_frames(2, 10, 1000, 2, 28, 12544, 9633792) == (28, 2800)


def test_aspect_ratio_is_refused_as_the_stock_refuses_it():
    image = np.zeros((30, 6100, 3), np.uint8)
    with pytest.raises(ValueError, match="aspect ratio"):
        stock("glm-4.1v", "pil")(images=[image], return_tensors="pt")
    with pytest.raises(vlfast.AspectRatioError, match="aspect ratio"):
        vlfast.ImageProcessor.from_pretrained(FAMILIES["glm-4.1v"][0])(images=[image], return_tensors="pt")


# ---------------------------------------------------------------------------
# Videos
# ---------------------------------------------------------------------------

VIDEO_CLASSES = {"glm-4.1v": Glm4vVideoProcessor, "glm-4.6v": Glm46VVideoProcessor}


def random_clip(frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("family", list(VIDEO_CLASSES))
@pytest.mark.parametrize(
    ("frames", "height", "width", "metadata"),
    [
        (32, 72, 128, {"fps": 30, "total_num_frames": 32}),
        (9, 300, 500, {"fps": 4, "total_num_frames": 9}),
        (600, 20, 30, {"fps": 1, "total_num_frames": 600}),  # longer than max_duration
        (5, 61, 77, None),
    ],
)
def test_videos(family, frames, height, width, metadata):
    stock_video = AutoVideoProcessor.from_pretrained(FAMILIES[family][0])
    assert type(stock_video).__name__ == VIDEO_CLASSES[family].__name__
    ours = vlfast.VideoProcessor.from_stock(stock_video)
    assert type(ours) is VIDEO_CLASSES[family]
    clip = random_clip(frames, height, width, seed=frames)
    call = {"video_metadata": metadata} if metadata else {"do_sample_frames": False}
    expected = stock_video(clip, return_tensors="pt", return_metadata=True, **call)
    for dtype in DTYPES:
        got = ours(clip, return_tensors="pt", return_metadata=True, dtype=dtype, **call)
        assert torch.equal(got["video_grid_thw"], expected["video_grid_thw"])
        assert torch.equal(got["pixel_values_videos"], expected["pixel_values_videos"].to(dtype))
        assert np.array_equal(got["video_metadata"][0].frames_indices, expected["video_metadata"][0].frames_indices)


@pytest.mark.parametrize("family", list(VIDEO_CLASSES))
def test_video_class_from_an_image_config(family):
    """A folder with only the image config: the video processor class inferred as ``AutoVideoProcessor`` does."""
    assert type(AutoVideoProcessor.from_pretrained(FAMILIES[family][0])).__name__ == VIDEO_CLASSES[family].__name__
    assert type(vlfast.VideoProcessor.from_pretrained(FAMILIES[family][0])) is VIDEO_CLASSES[family]


# ---------------------------------------------------------------------------
# patch_processor
# ---------------------------------------------------------------------------

GLM_TOKENS = (
    "<|image|>",
    "<|video|>",
    "<|begin_of_image|>",
    "<|end_of_image|>",
    "<|begin_of_video|>",
    "<|end_of_video|>",
)


def glm_processor(family: str):
    """The stock GLM processor of the family's published image config, a byte-level tokenizer with GLM's vision
    tokens, and the stock video processor's defaults."""
    from tiny_qwen import build_tokenizer
    from tokenizers import AddedToken

    tokenizer = build_tokenizer()
    tokenizer.add_tokens([AddedToken(token, special=True, normalized=False) for token in GLM_TOKENS])
    processor_class = "Glm4vProcessor" if family == "glm-4.1v" else "Glm46VProcessor"
    processor_type = getattr(importlib.import_module("transformers"), processor_class)
    video = AutoVideoProcessor.from_pretrained(FAMILIES[family][0])
    return processor_type(image_processor=stock(family, "torchvision"), tokenizer=tokenizer, video_processor=video)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_patch_processor(family):
    stock_processor = glm_processor(family)
    fast = patch_processor(glm_processor(family))
    assert type(fast.image_processor) is FAMILIES[family][1]
    assert type(fast.video_processor) is VIDEO_CLASSES[family]
    text = "<|begin_of_image|><|image|><|end_of_image|><|begin_of_video|><|video|><|end_of_video|>Describe."
    call = {
        "text": [text],
        "images": [data.chelsea()],
        "videos": [random_clip(16, 90, 120, seed=5)],
        "videos_kwargs": {"video_metadata": {"fps": 8, "total_num_frames": 16}},
        "return_tensors": "pt",
    }
    expected, got = stock_processor(**call), fast(**call)
    assert expected.keys() == got.keys()
    for name in ("input_ids", "pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw"):
        assert torch.equal(expected[name], got[name]), name
    assert (got["input_ids"] == stock_processor.image_token_id).sum() > 0


def test_patch_processor_refuses_an_unknown_processor():
    from transformers import LlavaProcessor

    with pytest.raises(UnsupportedOptionError, match="LlavaProcessor"):
        patch_processor(LlavaProcessor.__new__(LlavaProcessor))
