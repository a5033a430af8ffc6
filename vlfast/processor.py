"""Drop-in transformers processors: ``ImageProcessor``, ``VideoProcessor`` and the classes of the other families
(``Qwen3VLVideoProcessor``, ``Glm4vImageProcessor``, ...; ``from_pretrained`` picks the family's class), and
``patch_processor`` to swap vlfast into a supported stock processor in one line (the code lives in :mod:`vlfast.hf`).

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
from .hf.image_processor import Glm4vImageProcessor, Glm46VImageProcessor, ImageProcessor, ImageProcessorKwargs
from .hf.patching import SUPPORTED_PROCESSORS, SubProcessorSwap, from_pretrained_processor, patch_processor

__all__ = [
    "Glm46VImageProcessor",
    "Glm4vImageProcessor",
    "ImageProcessor",
    "ImageProcessorKwargs",
    "SUPPORTED_PROCESSORS",
    "SubProcessorSwap",
    "default_backend",
    "from_pretrained_processor",
    "patch_processor",
]


#: The video processors, imported on first use (the stock ones import torchvision).
_VIDEO_CLASSES = ("VideoProcessor", "Qwen3VLVideoProcessor", "Glm4vVideoProcessor", "Glm46VVideoProcessor")


def __getattr__(name: str):
    """The video processor classes, imported on first use."""
    if name in _VIDEO_CLASSES:
        from .hf import video_processor

        return getattr(video_processor, name)
    raise AttributeError(f"module 'vlfast.processor' has no attribute {name!r}")
