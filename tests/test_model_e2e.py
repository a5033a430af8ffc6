"""End to end on a tiny random Qwen2.5-VL and Qwen3-VL: the stock processor and ``patch_processor(...)`` give the
same ``input_ids`` (Qwen3-VL's frame timestamps included), ``pixel_values``, logits and greedy generations, for
images and videos."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

pytest.importorskip("torchvision", reason="the stock processors need torchvision")
pytest.importorskip("vlfast._C", reason="the C++ extension is not built")

import skimage.data  # noqa: E402
from tiny_qwen import (  # noqa: E402
    QWEN3_5_DATA,
    build_model,
    build_processor,
    build_qwen3_vl_model,
    write_checkpoint_folder,
    write_qwen3_vl_checkpoint_folder,
)

from vlfast.processor import patch_processor  # noqa: E402

NEW_TOKENS = 4
#: The stock video processor warns unless told its (default) per-frame cap setting.
STOCK_OPTIONS = {"cap_pixels_per_frame": False}


def _synthetic_clip(frames: int = 5, height: int = 45, width: int = 77) -> np.ndarray:
    """A moving gradient with noise: odd frame count and odd sizes."""
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:height, 0:width]
    clip = [(ys * 3 + xs * 2 + 20 * t)[..., None] + np.array([0, 60, 120]) for t in range(frames)]
    return ((np.stack(clip) + rng.integers(0, 30, (frames, height, width, 3))) % 256).astype(np.uint8)


CASES = {
    "photo": {"images": [skimage.data.astronaut()]},
    "two images": {
        "images": [
            PIL.Image.fromarray(skimage.data.chelsea()),
            np.random.default_rng(1).integers(0, 256, (53, 181, 3), dtype=np.uint8),
        ]
    },
    "video": {"videos": [_synthetic_clip()]},
}


def _prompt(processor, case: dict) -> str:
    parts = [{"type": "image"} for _ in case.get("images", [])] + [{"type": "video"} for _ in case.get("videos", [])]
    messages = [{"role": "user", "content": [*parts, {"type": "text", "text": "Describe it."}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_checkpoint_folder(tmp_path_factory.mktemp("tiny_qwen"))


@pytest.fixture(scope="module")
def stock(folder):
    return build_processor(folder)


@pytest.fixture(scope="module")
def model(stock):
    return build_model(stock.tokenizer)


def _run(model, inputs) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        logits = model(**inputs).logits
        generated = model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False)
    return logits, generated


def _check_same_outputs(model, expected, got) -> None:
    assert torch.equal(expected["input_ids"].to(got["input_ids"].device), got["input_ids"])
    expected_logits, expected_tokens = _run(model, expected)
    logits, tokens = _run(model, got)
    assert torch.equal(expected_logits, logits)
    assert torch.equal(expected_tokens, tokens)
    assert tokens.shape[1] == expected["input_ids"].shape[1] + NEW_TOKENS


@pytest.mark.parametrize("case", CASES)
def test_cpu_patched_processor_matches_stock(folder, stock, model, case):
    fast = patch_processor(build_processor(folder))
    call = {"text": [_prompt(stock, CASES[case])], **CASES[case], "return_tensors": "pt"}
    expected = stock(**call, **STOCK_OPTIONS)
    got = fast(**call)
    assert expected.keys() == got.keys()
    pad_id = stock.video_token_id if "videos" in CASES[case] else stock.image_token_id
    assert (got["input_ids"] == pad_id).sum() == (expected["input_ids"] == pad_id).sum() > 0
    for name in ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw"):
        if name in expected:
            assert torch.equal(expected[name], got[name]), name
    _check_same_outputs(model, expected, got)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("case", CASES)
def test_cuda_patched_processor_matches_stock(folder, stock, case):
    pytest.importorskip("triton", reason="the GPU engine needs triton")
    cuda_model = build_model(stock.tokenizer).to("cuda", torch.bfloat16)
    fast = patch_processor(build_processor(folder), device="cuda", dtype=cuda_model.dtype)
    call = {"text": [_prompt(stock, CASES[case])], **CASES[case], "return_tensors": "pt"}
    expected = stock(**call, **STOCK_OPTIONS)
    got = fast(**call)
    for name in ("pixel_values", "pixel_values_videos"):
        if name in expected:
            assert got[name].device.type == "cuda" and got[name].dtype == torch.bfloat16
            assert torch.equal(got[name].cpu(), expected[name].bfloat16()), name
    # The hand-off: only the tokenizer's outputs move; pixel values are already where the model reads them.
    _check_same_outputs(cuda_model, expected.to("cuda"), got.to("cuda"))


# ---------------------------------------------------------------------------
# Qwen3-VL (and Qwen3.5, whose processor is the same Qwen3VLProcessor)
# ---------------------------------------------------------------------------

QWEN3_CASES = {
    "photo": {"images": [skimage.data.astronaut()]},
    "video with metadata": {
        "videos": [_synthetic_clip(12, 45, 77)],
        "video_metadata": [{"fps": 6, "total_num_frames": 12}],
    },
    "image and video": {
        "images": [np.random.default_rng(1).integers(0, 256, (53, 181, 3), dtype=np.uint8)],
        "videos": [_synthetic_clip(7, 40, 50)],
        "do_sample_frames": False,
    },
    "video without metadata": {"videos": [_synthetic_clip(30, 36, 64)]},  # the stock assumes 24 fps
}


@pytest.fixture(scope="module")
def qwen3_folder(tmp_path_factory):
    return write_qwen3_vl_checkpoint_folder(tmp_path_factory.mktemp("tiny_qwen3_vl"))


@pytest.fixture(scope="module")
def qwen3_stock(qwen3_folder):
    processor = build_processor(qwen3_folder)
    assert type(processor).__name__ == "Qwen3VLProcessor"
    return processor


@pytest.fixture(scope="module")
def qwen3_model(qwen3_stock):
    return build_qwen3_vl_model(qwen3_stock.tokenizer)


def test_qwen3_vl_processor_is_patched(qwen3_folder):
    from vlfast.hf.video_processor import Qwen3VLVideoProcessor

    fast = patch_processor(build_processor(qwen3_folder))
    assert type(fast.image_processor).__module__.startswith("vlfast.")
    assert type(fast.video_processor) is Qwen3VLVideoProcessor


@pytest.mark.parametrize("case", QWEN3_CASES)
def test_qwen3_vl_patched_processor_matches_stock(qwen3_folder, qwen3_stock, qwen3_model, case):
    fast = patch_processor(build_processor(qwen3_folder))
    inputs = dict(QWEN3_CASES[case])
    call = {"text": [_prompt(qwen3_stock, inputs)], **inputs, "return_tensors": "pt", **STOCK_OPTIONS}
    expected = qwen3_stock(**call)
    got = fast(**call)
    assert expected.keys() == got.keys()
    # Same prompt: the frame timestamps ("<0.3 seconds>") and every token count.
    assert torch.equal(expected["input_ids"], got["input_ids"])
    if "videos" in inputs:
        assert "seconds>" in qwen3_stock.tokenizer.decode(got["input_ids"][0])
        assert (got["input_ids"] == qwen3_stock.video_token_id).sum() > 0
    for name in ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw"):
        if name in expected:
            assert torch.equal(expected[name], got[name]), name
    _check_same_outputs(qwen3_model, expected, got)


def test_qwen3_5_processor_is_patched_exactly(tmp_path):
    """Qwen3.5 checkpoints load a ``Qwen3VLProcessor`` too (their own configs): same input_ids and pixels."""
    folder = write_qwen3_vl_checkpoint_folder(tmp_path, configs=QWEN3_5_DATA)
    stock = build_processor(folder)
    fast = patch_processor(build_processor(folder))
    inputs = dict(QWEN3_CASES["image and video"])
    call = {"text": [_prompt(stock, inputs)], **inputs, "return_tensors": "pt", **STOCK_OPTIONS}
    expected, got = stock(**call), fast(**call)
    for name in ("input_ids", "pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw"):
        assert torch.equal(expected[name], got[name]), name


def test_qwen3_vl_token_counts(qwen3_folder, qwen3_stock):
    """``_get_num_multimodal_tokens`` (what vLLM and SGLang size placeholders with) is the stock's. For videos,
    transformers 5.17's ``Qwen3VLProcessor`` calls a method its video processor lacks: the same error then."""
    fast = patch_processor(build_processor(qwen3_folder))
    images = {"image_sizes": [(100, 130), (1080, 1920), (3, 5)]}
    expected, got = qwen3_stock._get_num_multimodal_tokens(**images), fast._get_num_multimodal_tokens(**images)
    assert got.num_image_tokens == expected.num_image_tokens
    videos = {"video_sizes": [(8, 720, 1280), (3, 50, 70), (64, 1080, 1920)]}
    try:
        expected = qwen3_stock._get_num_multimodal_tokens(**videos).num_video_tokens
    except AttributeError as error:
        with pytest.raises(AttributeError, match=str(error).split("'")[3]):
            fast._get_num_multimodal_tokens(**videos)
        return
    assert fast._get_num_multimodal_tokens(**videos).num_video_tokens == expected
