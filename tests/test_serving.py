"""Serving hand-offs: the plain data SGLang's ``processor_output`` image input and vLLM's image-embedding input
take, built from vlfast's outputs, hold what the stock processor (and the model's vision tower on it) gives."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import skimage.data
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny_qwen import build_model, build_processor, write_checkpoint_folder  # noqa: E402

import vlfast  # noqa: E402
from vlfast.errors import InvalidImageError  # noqa: E402
from vlfast.integrations.serving import sglang_image_item, sglang_request, vllm_image_embeds  # noqa: E402
from vlfast.processor import patch_processor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

IMAGES = [PIL.Image.fromarray(skimage.data.chelsea()), np.ascontiguousarray(skimage.data.astronaut()[::3, ::2])]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_checkpoint_folder(tmp_path_factory.mktemp("tiny_qwen_serving"))


def prompt(processor, count: int) -> str:
    content = [*({"type": "image"} for _ in range(count)), {"type": "text", "text": "Describe them."}]
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)


def test_sglang_request_holds_the_stock_processor_output(folder):
    stock = build_processor(folder)
    text = prompt(stock, len(IMAGES))
    expected = stock(text=[text], images=IMAGES, return_tensors="pt")
    request = sglang_request(patch_processor(build_processor(folder)), text, IMAGES)
    assert set(request) == {"input_ids", "image_data"}
    assert request["input_ids"] == expected["input_ids"][0].tolist()
    (item,) = request["image_data"]
    assert set(item) == {"format", "pixel_values", "image_grid_thw"} and item["format"] == "processor_output"
    assert torch.equal(item["pixel_values"], expected["pixel_values"])
    assert torch.equal(item["image_grid_thw"], expected["image_grid_thw"])
    # The prompt carries every image token, as SGLang's processor_output input requires.
    pad = stock.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert request["input_ids"].count(pad) == int(expected["image_grid_thw"].prod(dim=1).sum()) // 4


def test_sglang_item_refuses_compact_patches_and_mismatched_rows():
    out = vlfast.preprocess(IMAGES, compact=True)
    with pytest.raises(InvalidImageError, match="expand compact patches with vlfast.expand_patches first"):
        sglang_image_item(out.pixel_values, out.image_grid_thw)
    full = vlfast.preprocess(IMAGES)
    with pytest.raises(InvalidImageError, match=r"do not match image_grid_thw: \d+ rows expected"):
        sglang_image_item(full.pixel_values[:-4], full.image_grid_thw)
    with pytest.raises(InvalidImageError, match=r"image_grid_thw must be an integer \(N, 3\) tensor"):
        sglang_image_item(full.pixel_values, full.image_grid_thw.float())


def test_vllm_image_embeds_of_the_vision_tower(folder):
    stock = build_processor(folder)
    model = build_model(stock.tokenizer)
    out = vlfast.preprocess(IMAGES, max_pixels=12845056)
    expected = stock.image_processor(IMAGES, return_tensors="pt")
    assert torch.equal(out.pixel_values, expected["pixel_values"])
    with torch.no_grad():
        embeds = model.model.visual(out.pixel_values, grid_thw=out.image_grid_thw)
    embeds = getattr(embeds, "pooler_output", embeds)  # merged tokens (a model output from transformers 5.2x)
    data = vllm_image_embeds(embeds, out.image_grid_thw)
    assert set(data) == {"image"} and set(data["image"]) == {"image_embeds", "image_grid_thw"}
    assert data["image"]["image_embeds"].shape == (int(out.image_grid_thw.prod(dim=1).sum()) // 4, 64)
    assert torch.equal(data["image"]["image_grid_thw"], expected["image_grid_thw"])
    with pytest.raises(InvalidImageError, match=r"do not match image_grid_thw: \d+ rows \(t\*h\*w / 2\*\*2"):
        vllm_image_embeds(embeds[1:], out.image_grid_thw)
