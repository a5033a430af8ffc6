"""``vlfast.processor``: ``ImageProcessor`` as a drop-in for the stock Qwen2-VL image processors, and the
one-line swap ``patch_processor`` / ``from_pretrained_processor``."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch

pytest.importorskip("torchvision", reason="the stock torchvision processors need torchvision")
pytest.importorskip("vlfast._C", reason="the C++ extension is not built")

import skimage.data  # noqa: E402
from tiny_qwen import PUBLISHED_PREPROCESSOR_CONFIG, build_processor, write_checkpoint_folder  # noqa: E402
from transformers import (  # noqa: E402
    AutoImageProcessor,
    AutoProcessor,
    CLIPImageProcessorPil,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
    Qwen2VLImageProcessorPil,
    Qwen2VLProcessor,
)
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor  # noqa: E402

from vlfast.defaults import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD  # noqa: E402
from vlfast.errors import DeviceError, UnsupportedOptionError  # noqa: E402
from vlfast.processor import (  # noqa: E402
    ImageProcessor,
    VideoProcessor,  # noqa: E402
    from_pretrained_processor,
    patch_processor,
)

STOCK_CLASSES = {"torchvision": Qwen2VLImageProcessor, "pil": Qwen2VLImageProcessorPil}
BACKENDS = list(STOCK_CLASSES)


def _rgba_image() -> PIL.Image.Image:
    pixels = np.random.default_rng(1).integers(0, 256, (61, 83, 4), dtype=np.uint8)
    return PIL.Image.fromarray(pixels, "RGBA")


IMAGES = {
    "astronaut": skimage.data.astronaut(),
    "chelsea PIL": PIL.Image.fromarray(skimage.data.chelsea()),
    "odd synthetic": np.random.default_rng(0).integers(0, 256, (97, 211, 3), dtype=np.uint8),
    "grayscale PIL": PIL.Image.fromarray(skimage.data.camera()[::3, ::2]),
    "RGBA PIL": _rgba_image(),
    "CHW tensor": torch.from_numpy(skimage.data.coffee()[::4, ::4].copy()).permute(2, 0, 1),
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("published")
    (folder / "preprocessor_config.json").write_text(json.dumps(PUBLISHED_PREPROCESSOR_CONFIG))
    return folder


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return write_checkpoint_folder(tmp_path_factory.mktemp("tiny"))


def assert_same(stock_out, fast_out, dtype: torch.dtype | None = None) -> None:
    expected = stock_out["pixel_values"] if dtype is None else stock_out["pixel_values"].to(dtype)
    assert fast_out["pixel_values"].dtype == expected.dtype
    assert torch.equal(fast_out["pixel_values"], expected)
    assert fast_out["image_grid_thw"].dtype == torch.int64
    assert torch.equal(fast_out["image_grid_thw"], stock_out["image_grid_thw"])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("image", IMAGES)
def test_from_pretrained_matches_stock(checkpoint, backend, image):
    stock = STOCK_CLASSES[backend].from_pretrained(checkpoint)
    fast = ImageProcessor.from_pretrained(checkpoint, backend=backend)
    assert_same(stock(IMAGES[image], return_tensors="pt"), fast(IMAGES[image], return_tensors="pt"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_batches_and_nesting(checkpoint, backend):
    stock = STOCK_CLASSES[backend].from_pretrained(checkpoint)
    fast = ImageProcessor.from_pretrained(checkpoint, backend=backend)
    images = [IMAGES["odd synthetic"], IMAGES["chelsea PIL"], IMAGES["grayscale PIL"]]
    for batch in (images, [images[:1], images[1:]], np.stack([IMAGES["odd synthetic"]] * 2)):
        assert_same(stock(batch, return_tensors="pt"), fast(batch, return_tensors="pt"))


@pytest.mark.parametrize(
    "overrides",
    [
        {"size": {"shortest_edge": 3136, "longest_edge": 50000}},
        {"do_resize": False},
        {"do_normalize": False},
        {"do_rescale": False, "do_normalize": False},
        {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
        {"resample": PIL.Image.Resampling.BILINEAR},
        {"patch_size": 16, "merge_size": 1},
        {"temporal_patch_size": 1},
    ],
    ids=lambda overrides: ",".join(overrides),
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_call_overrides(checkpoint, backend, overrides):
    image = IMAGES["astronaut"][:448, :392] if "do_resize" in overrides else IMAGES["odd synthetic"]
    stock = STOCK_CLASSES[backend].from_pretrained(checkpoint)
    fast = ImageProcessor.from_pretrained(checkpoint, backend=backend)
    assert_same(stock(image, return_tensors="pt", **overrides), fast(image, return_tensors="pt", **overrides))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, "bfloat16"])
def test_dtype_and_device_overrides(checkpoint, dtype):
    stock = Qwen2VLImageProcessor.from_pretrained(checkpoint)(IMAGES["astronaut"], return_tensors="pt")
    resolved = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    fast = ImageProcessor.from_pretrained(checkpoint)
    assert_same(stock, fast(IMAGES["astronaut"], return_tensors="pt", dtype=dtype, device="cpu"), resolved)
    assert_same(stock, ImageProcessor.from_pretrained(checkpoint, dtype=dtype)(IMAGES["astronaut"]), resolved)


@pytest.mark.filterwarnings("ignore:Passing `min_pixels` and `max_pixels`:FutureWarning")
def test_pixel_aliases_as_the_stock_reads_them(checkpoint):
    stock = Qwen2VLImageProcessor.from_pretrained(checkpoint)
    fast = ImageProcessor.from_pretrained(checkpoint)
    image = IMAGES["chelsea PIL"]
    expected = stock(image, return_tensors="pt", size={"shortest_edge": 3136, "longest_edge": 40000})
    assert_same(expected, ImageProcessor(min_pixels=3136, max_pixels=40000)(image, return_tensors="pt"))
    assert_same(expected, fast(image, size={"shortest_edge": 3136, "longest_edge": 40000}))
    # At call time, transformers 5.17 reads the aliases only as a pair; later releases one at a time.
    for aliases in ({"max_pixels": 40000}, {"min_pixels": 100000}, {"min_pixels": 3136, "max_pixels": 40000}):
        assert_same(stock(image, return_tensors="pt", **aliases), fast(image, return_tensors="pt", **aliases))


def test_attributes(checkpoint):
    fast = ImageProcessor.from_pretrained(checkpoint)
    stock = AutoImageProcessor.from_pretrained(checkpoint)
    assert fast.backend == stock.backend == "torchvision"
    assert fast.size == {"shortest_edge": 3136, "longest_edge": 12845056}
    assert (fast.patch_size, fast.merge_size, fast.temporal_patch_size) == (14, 2, 2)
    assert (fast.image_mean, fast.image_std) == (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)
    assert fast.model_input_names == ["pixel_values", "image_grid_thw"]
    assert (fast.device, fast.dtype, fast.engine) == (None, None, "auto")
    # The stock's own methods (token counts, option merging) read these attributes: they must be the stock's,
    # min_pixels / max_pixels included (the stock has none).
    for name in Qwen2VLImageProcessorPil.valid_kwargs.__annotations__:
        assert getattr(fast, name, None) == getattr(stock, name, None), name
    assert ImageProcessor(backend="pil").to_dict() == Qwen2VLImageProcessorPil().to_dict()


def test_own_defaults_survive_the_stock_class_default_leak():
    """transformers 5.17 writes min/max pixels given to a stock constructor into the stock class's ``size``;
    vlfast's classes keep their own defaults, the stock's as imported."""
    stock_defaults = (dict(Qwen2VLImageProcessorPil.size), dict(Qwen2VLVideoProcessor.size))
    for make in (
        Qwen2VLImageProcessor,
        Qwen2VLImageProcessorPil,
        Qwen2VLVideoProcessor,
        ImageProcessor,
        VideoProcessor,
    ):
        make(min_pixels=1000, max_pixels=2000)
    assert (ImageProcessor().size, VideoProcessor().size) == stock_defaults


def test_token_count_is_the_row_count(checkpoint):
    fast = ImageProcessor.from_pretrained(checkpoint)
    for height, width in [(300, 451), (10, 1000), (4000, 3000)]:
        rows = fast(np.zeros((height, width, 3), np.uint8))["pixel_values"].shape[0]
        assert fast.get_number_of_image_patches(height, width) == rows


@pytest.mark.parametrize("backend", BACKENDS)
def test_save_and_load_round_trip(tmp_path, checkpoint, backend):
    fast = ImageProcessor.from_pretrained(checkpoint, backend=backend, max_pixels=200000, dtype=torch.bfloat16)
    fast.save_pretrained(tmp_path)
    loaded = ImageProcessor.from_pretrained(tmp_path, backend=backend)
    assert loaded.to_dict() == fast.to_dict()
    assert loaded.size["longest_edge"] == 200000
    assert loaded.dtype is None  # runtime options are not saved
    stock = STOCK_CLASSES[backend].from_pretrained(tmp_path)
    image = IMAGES["astronaut"]
    assert_same(stock(image, return_tensors="pt"), loaded(image, return_tensors="pt"))
    assert AutoImageProcessor.from_pretrained(tmp_path).to_dict() == fast.to_dict()


def test_use_fast_picks_the_backend_as_auto_image_processor_does(tmp_path, checkpoint):
    # AutoImageProcessor's use_fast=True/False picks the torchvision/PIL class: the same stock numbers here.
    image = IMAGES["odd synthetic"]
    for use_fast, stock_class in ((True, Qwen2VLImageProcessor), (False, Qwen2VLImageProcessorPil)):
        fast = ImageProcessor.from_pretrained(checkpoint, use_fast=use_fast)
        assert fast.backend == ("torchvision" if use_fast else "pil")
        assert "use_fast" not in fast.to_dict()
        stock = AutoImageProcessor.from_pretrained(checkpoint, use_fast=use_fast)
        assert type(stock) is stock_class
        assert_same(stock(image, return_tensors="pt"), fast(image, return_tensors="pt"))
    assert ImageProcessor(use_fast=False).backend == "pil"
    with pytest.raises(UnsupportedOptionError, match=r"use_fast=True selects the torchvision backend.*'pil'"):
        ImageProcessor(use_fast=True, backend="pil")
    with pytest.raises(UnsupportedOptionError, match="use_fast must be True or False, got 'yes'"):
        ImageProcessor(use_fast="yes")


def test_numpy_output(checkpoint):
    fast = ImageProcessor.from_pretrained(checkpoint, backend="pil")
    out = fast(IMAGES["odd synthetic"], return_tensors="np")
    expected = Qwen2VLImageProcessorPil.from_pretrained(checkpoint)(IMAGES["odd synthetic"], return_tensors="np")
    assert isinstance(out["pixel_values"], np.ndarray)
    assert np.array_equal(out["pixel_values"], expected["pixel_values"])
    assert np.array_equal(out["image_grid_thw"], expected["image_grid_thw"])


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: ImageProcessor(backend="opencv"), UnsupportedOptionError),
        (lambda: ImageProcessor(dtype=torch.float64), UnsupportedOptionError),
        (lambda: ImageProcessor(dtype="half_precision"), UnsupportedOptionError),
        (lambda: ImageProcessor(engine="gpu"), UnsupportedOptionError),
        (lambda: ImageProcessor(device="tpu"), DeviceError),
        (lambda: ImageProcessor()(IMAGES["astronaut"], no_such_option=1), UnsupportedOptionError),
        (lambda: ImageProcessor()(IMAGES["astronaut"], do_resize="yes"), UnsupportedOptionError),
        (lambda: ImageProcessor()(IMAGES["astronaut"], size={"height": 28, "width": 28}), UnsupportedOptionError),
        (lambda: ImageProcessor()(IMAGES["astronaut"], return_tensors="tf"), UnsupportedOptionError),
        (
            lambda: ImageProcessor()(IMAGES["astronaut"], dtype=torch.bfloat16, return_tensors="np"),
            UnsupportedOptionError,
        ),
        (lambda: ImageProcessor()(IMAGES["astronaut"], resample=PIL.Image.Resampling.NEAREST), UnsupportedOptionError),
    ],
    ids=[
        "backend",
        "dtype",
        "dtype name",
        "engine",
        "device",
        "unknown option",
        "option type",
        "size keys",
        "return_tensors",
        "bf16 numpy",
        "torchvision nearest",
    ],
)
def test_errors(make, error):
    with pytest.raises(error):
        make()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_device_without_cuda():
    with pytest.raises(DeviceError, match="no CUDA device is available"):
        ImageProcessor(device="cuda")


def _processor_prompt(processor) -> str:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "video"}, {"type": "text", "text": "Hi"}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


@pytest.mark.parametrize("processor_class", [Qwen2_5_VLProcessor, Qwen2VLProcessor])
@pytest.mark.parametrize("backend", BACKENDS)
def test_patch_processor(tiny_folder, processor_class, backend):
    loaded = build_processor(tiny_folder)

    def stock_processor():
        return processor_class(
            image_processor=STOCK_CLASSES[backend].from_pretrained(tiny_folder),
            tokenizer=loaded.tokenizer,
            video_processor=Qwen2VLVideoProcessor.from_pretrained(tiny_folder),
            chat_template=loaded.chat_template,
        )

    stock, fast = stock_processor(), patch_processor(stock_processor())
    assert isinstance(fast.image_processor, ImageProcessor) and isinstance(fast.video_processor, VideoProcessor)
    assert fast.image_processor.backend == backend
    assert fast.image_processor.to_dict() == stock.image_processor.to_dict()
    assert fast.video_processor.to_dict() == stock.video_processor.to_dict()
    clip = np.random.default_rng(2).integers(0, 256, (3, 50, 70, 3), dtype=np.uint8)
    call = {"text": [_processor_prompt(stock)], "images": [IMAGES["chelsea PIL"]], "videos": [clip]}
    expected = stock(**call, return_tensors="pt", cap_pixels_per_frame=False)
    got = fast(**call, return_tensors="pt")
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(torch.as_tensor(expected[name]), torch.as_tensor(got[name])), name
    half = fast(**call, return_tensors="pt", dtype=torch.bfloat16)
    assert torch.equal(half["pixel_values"], expected["pixel_values"].bfloat16())
    assert torch.equal(half["pixel_values_videos"], expected["pixel_values_videos"].bfloat16())


def test_patch_processor_options_and_save(tiny_folder, tmp_path):
    fast = patch_processor(build_processor(tiny_folder), backend="pil", dtype="bfloat16", engine="cpp", workers=2)
    assert fast.image_processor.backend == "pil"
    assert fast.image_processor.workers == 2  # decode threads: images only
    assert (fast.image_processor.dtype, fast.video_processor.dtype) == (torch.bfloat16, torch.bfloat16)
    assert (fast.image_processor.engine, fast.video_processor.engine) == ("cpp", "cpp")
    fast.save_pretrained(tmp_path)
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(reloaded.image_processor) is Qwen2VLImageProcessor
    assert type(reloaded.video_processor) is Qwen2VLVideoProcessor
    assert reloaded.image_processor.to_dict() == fast.image_processor.to_dict()


def test_from_pretrained_processor(tiny_folder):
    fast = from_pretrained_processor(tiny_folder, dtype=torch.float16, workers=3)
    assert isinstance(fast, Qwen2_5_VLProcessor)
    assert fast.image_processor.workers == 3
    assert isinstance(fast.image_processor, ImageProcessor) and fast.image_processor.dtype == torch.float16
    assert fast.video_processor.size["shortest_edge"] == PUBLISHED_PREPROCESSOR_CONFIG["min_pixels"]
    out = fast(text=["<|vision_start|><|image_pad|><|vision_end|>"], images=[IMAGES["odd synthetic"]])
    assert out["pixel_values"].dtype == torch.float16


def test_patch_processor_rejects_unknown_parts(tiny_folder):
    with pytest.raises(UnsupportedOptionError, match="supports"):
        patch_processor(build_processor(tiny_folder).tokenizer)
    loaded = build_processor(tiny_folder)
    foreign = Qwen2_5_VLProcessor(
        image_processor=CLIPImageProcessorPil(), tokenizer=loaded.tokenizer, video_processor=loaded.video_processor
    )
    with pytest.raises(UnsupportedOptionError, match="CLIPImageProcessorPil"):
        patch_processor(foreign)
    assert type(foreign.video_processor) is Qwen2VLVideoProcessor  # nothing replaced on failure


def test_no_resize_needs_no_pixel_bounds():
    """As the stock: with do_resize=False, a size without both bounds is fine."""
    image = np.random.default_rng(0).integers(0, 256, (56, 84, 3), dtype=np.uint8)
    call = {"do_resize": False, "size": {"longest_edge": 1000}}
    expected = Qwen2VLImageProcessor()(images=[image], return_tensors="pt", **call)
    got = ImageProcessor(backend="torchvision")(images=[image], return_tensors="pt", **call)
    assert torch.equal(got["pixel_values"], expected["pixel_values"])
    assert torch.equal(got["image_grid_thw"], expected["image_grid_thw"])
