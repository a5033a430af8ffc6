"""``patch_processor``: vlfast's image and video processors swapped into a stock processor of a supported family."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from transformers.processing_utils import ProcessorMixin

from ..errors import UnsupportedOptionError
from ..plans import Backend
from .image_processor import ImageProcessor

__all__ = ["SUPPORTED_PROCESSORS", "SubProcessorSwap", "from_pretrained_processor", "patch_processor"]


def _video_processor_from_stock(
    video_processor: Any, *, backend: Backend | str | None, workers: int | None, **options: Any
) -> Any:
    """The vlfast video processor of a stock one (of its family); ``backend`` and ``workers`` do not apply (the
    stock video processors have one backend, torchvision's arithmetic on uint8, and decode with the stock's
    video decoder)."""
    from .video_processor import VideoProcessor  # imports torchvision: only when a processor has videos

    return VideoProcessor.from_stock(video_processor, **options)


@dataclass(frozen=True)
class SubProcessorSwap:
    """How ``patch_processor`` replaces one sub-processor: the class names it accepts there, and the
    builder of the vlfast replacement (called with the current one and the options)."""

    accepted: tuple[str, ...]
    build: Callable[..., Any]


_QWEN2_VL_IMAGES = SubProcessorSwap(
    ("Qwen2VLImageProcessor", "Qwen2VLImageProcessorPil", ImageProcessor.__name__), ImageProcessor.from_stock
)

#: The Qwen2-VL family's sub-processors.
_QWEN2_VL_SWAPS = {
    "image_processor": _QWEN2_VL_IMAGES,
    "video_processor": SubProcessorSwap(("Qwen2VLVideoProcessor", "VideoProcessor"), _video_processor_from_stock),
}

#: Qwen3-VL's (and Qwen3.5's, whose processor is a ``Qwen3VLProcessor``): Qwen2-VL's image processor with other
#: settings, a video processor of its own (vlfast's has the stock's class name).
_QWEN3_VL_SWAPS = {
    "image_processor": _QWEN2_VL_IMAGES,
    "video_processor": SubProcessorSwap(("Qwen3VLVideoProcessor",), _video_processor_from_stock),
}


def _glm_swaps(prefix: str) -> dict[str, SubProcessorSwap]:
    """GLM-4.1V's (``Glm4v``) or GLM-4.6V's (``Glm46V``): their image processors (both backends) and video
    processor (vlfast's have the stock classes' names)."""
    images = (f"{prefix}ImageProcessor", f"{prefix}ImageProcessorPil")
    return {
        "image_processor": SubProcessorSwap(images, ImageProcessor.from_stock),
        "video_processor": SubProcessorSwap((f"{prefix}VideoProcessor",), _video_processor_from_stock),
    }


#: Processor classes ``patch_processor`` knows, by name (subclasses included), with their swaps.
SUPPORTED_PROCESSORS: dict[str, dict[str, SubProcessorSwap]] = {
    "Qwen2VLProcessor": _QWEN2_VL_SWAPS,
    "Qwen2_5_VLProcessor": _QWEN2_VL_SWAPS,
    "Qwen3VLProcessor": _QWEN3_VL_SWAPS,
    "Glm4vProcessor": _glm_swaps("Glm4v"),
    "Glm46VProcessor": _glm_swaps("Glm46V"),
}

ProcessorType = TypeVar("ProcessorType", bound=ProcessorMixin)


def patch_processor(
    processor: ProcessorType,
    *,
    backend: Backend | str | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    engine: str = "auto",
    workers: int | None = None,
) -> ProcessorType:
    """Swap vlfast's image and video processors into a stock processor of a supported family (Qwen2-VL, Qwen2.5-VL,
    Qwen3-VL / Qwen3.5, GLM-4.1V / GLM-4.6V: :data:`SUPPORTED_PROCESSORS`), in place.

    The replacements keep the stock settings, so ``input_ids`` and ``pixel_values`` are unchanged, and
    return tensors on ``device`` in ``dtype`` (give the model's) ready for ``model.generate(**inputs)``.

    Args:
        processor: one of :data:`SUPPORTED_PROCESSORS` (or a subclass).
        backend: stock image backend reproduced; default: the processor's own. Videos always reproduce
            the stock video processor (torchvision).
        device, dtype, engine, workers: see :class:`ImageProcessor` (``workers`` applies to images only).

    Returns:
        ``processor`` itself.

    Example:
        >>> processor = patch_processor(AutoProcessor.from_pretrained(path), device="cuda", dtype=torch.bfloat16)
    """
    swaps = next(
        (SUPPORTED_PROCESSORS[k.__name__] for k in type(processor).__mro__ if k.__name__ in SUPPORTED_PROCESSORS),
        None,
    )
    if swaps is None:
        raise UnsupportedOptionError(
            f"patch_processor supports {sorted(SUPPORTED_PROCESSORS)}, got {type(processor).__name__}"
        )
    options = {"backend": backend, "device": device, "dtype": dtype, "engine": engine, "workers": workers}
    replacements = {}
    for attribute, swap in swaps.items():
        current = getattr(processor, attribute, None)
        if current is None:
            continue
        if type(current).__name__ not in swap.accepted:
            raise UnsupportedOptionError(
                f"{type(processor).__name__}.{attribute} is a {type(current).__name__}; "
                f"vlfast replaces only {list(swap.accepted)}"
            )
        replacements[attribute] = swap.build(current, **options)
    for attribute, replacement in replacements.items():
        setattr(processor, attribute, replacement)
    return processor


def from_pretrained_processor(
    model_dir: str | os.PathLike,
    *,
    backend: Backend | str | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    engine: str = "auto",
    workers: int | None = None,
    **from_pretrained_kwargs: Any,
) -> ProcessorMixin:
    """``AutoProcessor.from_pretrained(model_dir, **from_pretrained_kwargs)`` with vlfast patched in
    (see :func:`patch_processor`)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir, **from_pretrained_kwargs)
    return patch_processor(processor, backend=backend, device=device, dtype=dtype, engine=engine, workers=workers)
