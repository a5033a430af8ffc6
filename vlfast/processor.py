"""Drop-in transformers processors: ``ImageProcessor``, ``VideoProcessor``, and ``patch_processor`` to swap
vlfast into a ``Qwen2VLProcessor`` / ``Qwen2_5_VLProcessor`` in one line (the code lives in :mod:`vlfast.hf`).

Example:
    >>> from transformers import AutoProcessor
    >>> import vlfast.processor
    >>> processor = vlfast.processor.patch_processor(
    ...     AutoProcessor.from_pretrained(model_dir), device=model.device, dtype=model.dtype
    ... )
    >>> inputs = processor(text=prompts, images=images, return_tensors="pt")  # pixel_values already on the GPU
"""

from __future__ import annotations

from .hf.common import default_backend
from .hf.image_processor import ImageProcessor, ImageProcessorKwargs
from .hf.patching import SUPPORTED_PROCESSORS, SubProcessorSwap, from_pretrained_processor, patch_processor

__all__ = [
    "ImageProcessor",
    "ImageProcessorKwargs",
    "SUPPORTED_PROCESSORS",
    "SubProcessorSwap",
    "default_backend",
    "from_pretrained_processor",
    "patch_processor",
]


def __getattr__(name: str):
    """``VideoProcessor``, imported on first use."""
    if name == "VideoProcessor":  # imports the stock video processor (torchvision): only when asked for
        from .hf.video_processor import VideoProcessor

        return VideoProcessor
    raise AttributeError(f"module 'vlfast.processor' has no attribute {name!r}")
