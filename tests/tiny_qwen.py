"""Tiny, randomly initialised Qwen2.5-VL and Qwen3-VL models built in code: model, tokenizer and processor,
no downloads.

The processors use the published preprocessor settings (Qwen2.5-VL's; Qwen3-VL's from tests/data), so their
image and video processors are the stock ones a real checkpoint gives.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from tokenizers import AddedToken, pre_tokenizers
from transformers import (
    AutoProcessor,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2Tokenizer,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
)

#: The Qwen3-VL and Qwen3.5 preprocessor configs shipped as test data (images and videos).
QWEN3_VL_DATA = Path(__file__).parent / "data" / "qwen3_vl"
QWEN3_5_DATA = Path(__file__).parent / "data" / "qwen3_5"

#: Qwen/Qwen2.5-VL-*-Instruct ``preprocessor_config.json``.
PUBLISHED_PREPROCESSOR_CONFIG = {
    "min_pixels": 3136,
    "max_pixels": 12845056,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2_5_VLProcessor",
}

END_OF_TEXT = "<|endoftext|>"
IM_END = "<|im_end|>"
#: Qwen's special tokens, after the 256 byte-level tokens.
SPECIAL_TOKENS = (
    END_OF_TEXT,
    "<|im_start|>",
    IM_END,
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

#: Qwen-style chat markup: each image or video is a vision_start / pad / vision_end triple.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'video' -%}{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


def build_tokenizer() -> Qwen2Tokenizer:
    """A byte-level Qwen2 tokenizer without merges (one token per byte) plus Qwen's special tokens."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: index for index, symbol in enumerate(alphabet)}
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[], unk_token=END_OF_TEXT, eos_token=IM_END, pad_token=END_OF_TEXT)
    tokenizer.add_tokens([AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS])
    return tokenizer


def write_checkpoint_folder(folder: str | Path) -> Path:
    """Write what ``AutoProcessor.from_pretrained`` reads: the published preprocessor config, the tokenizer
    and the chat template."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "preprocessor_config.json").write_text(json.dumps(PUBLISHED_PREPROCESSOR_CONFIG, indent=2))
    build_tokenizer().save_pretrained(folder)
    (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    return folder


def build_processor(folder: str | Path) -> Qwen2_5_VLProcessor:
    """The stock ``Qwen2_5_VLProcessor`` of a folder written by :func:`write_checkpoint_folder`."""
    return AutoProcessor.from_pretrained(folder)


def build_model(tokenizer: Qwen2Tokenizer, seed: int = 0) -> Qwen2_5_VLForConditionalGeneration:
    """A 2-layer Qwen2.5-VL with a 2-block vision tower, random weights from ``seed``, float32, eval mode."""
    token_id = tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            # head_dim 16: 8 rotary frequencies split over (t, h, w).
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": token_id(END_OF_TEXT),
            "eos_token_id": token_id(IM_END),
            "pad_token_id": token_id(END_OF_TEXT),
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "fullatt_block_indexes": [1],
            "tokens_per_second": 2,
        },
        image_token_id=token_id("<|image_pad|>"),
        video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"),
        vision_end_token_id=token_id("<|vision_end|>"),
    )
    torch.manual_seed(seed)
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def write_qwen3_vl_checkpoint_folder(folder: str | Path, configs: Path = QWEN3_VL_DATA) -> Path:
    """A Qwen3-VL (or, with ``configs=QWEN3_5_DATA``, Qwen3.5) folder: the image and video preprocessor configs
    of tests/data, the tokenizer and the chat template (``AutoProcessor`` gives a stock ``Qwen3VLProcessor``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("preprocessor_config.json", "video_preprocessor_config.json"):
        shutil.copy(configs / name, folder / name)
    build_tokenizer().save_pretrained(folder)
    (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    return folder


def build_qwen3_vl_model(tokenizer: Qwen2Tokenizer, seed: int = 0) -> Qwen3VLForConditionalGeneration:
    """A 2-layer Qwen3-VL with a 2-block vision tower (patch 16, one deepstack layer), random weights from
    ``seed``, float32, eval mode."""
    token_id = tokenizer.convert_tokens_to_ids
    config = Qwen3VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "max_position_embeddings": 4096,
            # head_dim 16: 8 rotary frequencies, interleaved over (t, h, w).
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [2, 3, 3],
                "mrope_interleaved": True,
            },
            "bos_token_id": token_id(END_OF_TEXT),
            "eos_token_id": token_id(IM_END),
            "pad_token_id": token_id(END_OF_TEXT),
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": [0],
        },
        image_token_id=token_id("<|image_pad|>"),
        video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"),
        vision_end_token_id=token_id("<|vision_end|>"),
    )
    torch.manual_seed(seed)
    return Qwen3VLForConditionalGeneration(config).eval()
