"""Handing vlfast's outputs to serving engines as the plain data they take (docs/serving.md has the whole recipe).

* SGLang, ``Engine.generate(input_ids=..., image_data=[item])`` with a ``processor_output`` item: the prompt's
  ``input_ids`` with every image's ``<|image_pad|>`` already repeated ``t*h*w / merge_size**2`` times, and the
  item ``{"format": "processor_output", "pixel_values": (rows, 1176), "image_grid_thw": (N, 3)}``
  (:func:`sglang_request`, :func:`sglang_image_item`).
* vLLM, ``LLM(..., enable_mm_embeds=True).generate({"prompt": ..., "multi_modal_data": data})`` with
  precomputed embeddings: ``data = {"image": {"image_embeds": (sum of tokens, hidden), "image_grid_thw": (N, 3)}}``
  (:func:`vllm_image_embeds`); the prompt keeps one ``<|image_pad|>`` per image, which vLLM expands.
"""

from __future__ import annotations

from typing import Any

import torch

from ..defaults import MERGE_SIZE
from ..errors import InvalidImageError

__all__ = ["sglang_image_item", "sglang_request", "vllm_image_embeds"]


def _grid(image_grid_thw: Any) -> torch.Tensor:
    grid = torch.as_tensor(image_grid_thw)
    if grid.ndim != 2 or grid.shape[1] != 3 or grid.dtype.is_floating_point:
        raise InvalidImageError(
            f"image_grid_thw must be an integer (N, 3) tensor, got {tuple(grid.shape)} {grid.dtype}"
        )
    return grid.to(torch.int64)


def sglang_image_item(pixel_values: torch.Tensor, image_grid_thw: Any) -> dict[str, Any]:
    """SGLang's ``processor_output`` image item for ``pixel_values`` ``(sum(t*h*w), C*T*P*P)`` (the stock's,
    e.g. ``vlfast.preprocess(...).pixel_values``) and their ``image_grid_thw`` ``(N, 3)``.

    Raises:
        InvalidImageError: rows that do not match the grid, or compact uint8 patches (expand them first with
            :func:`vlfast.expand_patches`: SGLang feeds ``pixel_values`` to the vision tower as they are).
    """
    grid = _grid(image_grid_thw)
    if not pixel_values.dtype.is_floating_point:
        raise InvalidImageError(
            f"pixel_values are {pixel_values.dtype}; SGLang feeds them to the vision tower as they are: "
            "expand compact patches with vlfast.expand_patches first"
        )
    rows = int(grid.prod(dim=1).sum())
    if pixel_values.ndim != 2 or pixel_values.shape[0] != rows:
        raise InvalidImageError(
            f"pixel_values {tuple(pixel_values.shape)} do not match image_grid_thw: {rows} rows expected"
        )
    return {"format": "processor_output", "pixel_values": pixel_values, "image_grid_thw": grid}


def sglang_request(processor: Any, text: str, images: Any, **kwargs: Any) -> dict[str, Any]:
    """The keyword arguments of SGLang's ``Engine.generate`` for one prompt: ``processor`` (a Qwen2-VL /
    Qwen2.5-VL processor with vlfast inside, :func:`vlfast.processor.patch_processor`) expands the image
    tokens of ``text`` (a chat-formatted prompt) and preprocesses ``images``; ``kwargs`` go to its call."""
    out = processor(text=[text], images=images, return_tensors="pt", **kwargs)
    return {
        "input_ids": out["input_ids"][0].tolist(),
        "image_data": [sglang_image_item(out["pixel_values"], out["image_grid_thw"])],
    }


def vllm_image_embeds(
    image_embeds: torch.Tensor, image_grid_thw: Any, *, merge_size: int = MERGE_SIZE
) -> dict[str, dict[str, torch.Tensor]]:
    """vLLM's ``multi_modal_data`` for Qwen2-VL / Qwen2.5-VL image embeddings: ``image_embeds`` ``(sum of
    tokens, hidden)`` (the vision tower's merged output, ``t*h*w / merge_size**2`` rows per image, images in
    order) and their ``image_grid_thw`` ``(N, 3)`` (needed for the rotary positions).

    Raises:
        InvalidImageError: embeddings whose rows do not match the grid.
    """
    grid = _grid(image_grid_thw)
    tokens = int((grid.prod(dim=1) // (merge_size * merge_size)).sum())
    if image_embeds.ndim != 2 or image_embeds.shape[0] != tokens:
        raise InvalidImageError(
            f"image_embeds {tuple(image_embeds.shape)} do not match image_grid_thw: {tokens} rows "
            f"(t*h*w / {merge_size}**2 per image) of the language model's hidden size expected"
        )
    return {"image": {"image_embeds": image_embeds, "image_grid_thw": grid}}
