"""``ImageProcessor``: the drop-in ``Qwen2VLImageProcessor`` / ``Qwen2VLImageProcessorPil``."""

from __future__ import annotations

import os
from typing import Any

import torch
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.image_utils import PILImageResampling, make_flat_list_of_images
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from ..defaults import (
    IMAGE_MAX_PIXELS,
    IMAGE_MIN_PIXELS,
    MERGE_SIZE,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    PATCH_SIZE,
    RESCALE_FACTOR,
    TEMPORAL_PATCH_SIZE,
)
from ..eager import eager
from ..errors import UnsupportedOptionError
from ..loader import fetch_images
from ..plans import Backend
from ..preprocess import image_options, run_images
from .common import VlfastProcessorMixin, resolve_backend

__all__ = ["REFUSED_IMAGE_PROCESSORS", "ImageProcessor", "ImageProcessorKwargs", "refuse_other_size_rules"]


#: Prefixes of stock image processors whose target-size rule vlfast does not reproduce, with that rule.
REFUSED_IMAGE_PROCESSORS = {
    ("Glm4v", "Glm46V"): "GLM-4.1V / GLM-4.6V's smart_resize (vlfast.sizing.smart_resize_frames: the pixel budget "
    "counts temporal_patch_size frames and sides below the factor are scaled up)",
}


def refuse_other_size_rules(type_name: str | None) -> None:
    """Raise ``UnsupportedOptionError`` for a stock image processor that sizes images by another rule."""
    for prefixes, rule in REFUSED_IMAGE_PROCESSORS.items():
        if type_name and type_name.startswith(prefixes):
            raise UnsupportedOptionError(
                f"{type_name} sizes images by {rule}; vlfast reproduces Qwen2VLImageProcessor's smart_resize only"
            )


def backend_for(backend: Backend | str | None, use_fast: object) -> Backend | str | None:
    """The backend asked for: ``backend``, or what transformers' ``use_fast`` picks (True: the torchvision
    class, False: the PIL one); both given must agree."""
    if use_fast is None:
        return backend
    if not isinstance(use_fast, bool):
        raise UnsupportedOptionError(f"use_fast must be True or False, got {use_fast!r}")
    chosen = Backend.TORCHVISION if use_fast else Backend.PIL
    if backend is not None and resolve_backend(backend) is not chosen:
        raise UnsupportedOptionError(
            f"use_fast={use_fast} selects the {chosen.value} backend, but backend={resolve_backend(backend).value!r} "
            "was given: pass one of them"
        )
    return chosen


class ImageProcessorKwargs(Qwen2VLImageProcessorPil.valid_kwargs, total=False):
    """The stock Qwen2-VL image options, plus vlfast's output ``dtype`` and ``engine``."""

    dtype: torch.dtype | str | None
    engine: str | None


class ImageProcessor(VlfastProcessorMixin, Qwen2VLImageProcessorPil):
    """Bit-exact, fused replacement of ``Qwen2VLImageProcessor`` (``backend="torchvision"``) and
    ``Qwen2VLImageProcessorPil`` (``backend="pil"``).

    Args:
        backend: the stock processor reproduced; default: the one ``AutoImageProcessor`` picks. transformers'
            ``use_fast=True`` / ``False`` is accepted as ``backend="torchvision"`` / ``"pil"`` (not stored).
        device: where ``pixel_values`` and ``image_grid_thw`` are returned (default: CPU).
        dtype: dtype of ``pixel_values`` (e.g. the model's); default: the stock dtype (float32).
        engine: ``"auto"``, ``"cpp"`` or ``"triton"`` (see :func:`vlfast.preprocess`).
        **kwargs: the stock options (``size`` or ``min_pixels``/``max_pixels``, ``patch_size``, ``merge_size``,
            ``temporal_patch_size``, ``image_mean``, ``image_std``, ``rescale_factor``, ``resample``,
            ``do_resize``/``do_rescale``/``do_normalize``/``do_convert_rgb``...).

    Calls take the same options as overrides, plus ``device`` and ``dtype``, and return a ``BatchFeature``
    with ``pixel_values`` ``(sum(t*h*w), 3*T*patch_size**2)`` and int64 ``image_grid_thw`` ``(N, 3)``.

    A subclass of ``Qwen2VLImageProcessorPil`` for everything but the pixels: option handling and the token
    count ``get_number_of_image_patches`` (which vLLM calls) are the installed release's own, the same in
    both stock classes.
    """

    do_resize = True
    resample = PILImageResampling.BICUBIC
    size = {"shortest_edge": IMAGE_MIN_PIXELS, "longest_edge": IMAGE_MAX_PIXELS}
    default_to_square = False
    do_rescale = True
    rescale_factor = RESCALE_FACTOR
    do_normalize = True
    image_mean = OPENAI_CLIP_MEAN
    image_std = OPENAI_CLIP_STD
    do_convert_rgb = True
    patch_size = PATCH_SIZE
    temporal_patch_size = TEMPORAL_PATCH_SIZE
    merge_size = MERGE_SIZE
    valid_kwargs = ImageProcessorKwargs
    model_input_names = ["pixel_values", "image_grid_thw"]

    def __init__(
        self,
        *,
        backend: Backend | str | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str | None = None,
        engine: str = "auto",
        **kwargs: Any,
    ) -> None:
        self._backend = resolve_backend(backend_for(backend, kwargs.pop("use_fast", None)))
        options = {"size": self._initial_size(kwargs), "device": device, "dtype": dtype, "engine": engine}
        super().__init__(**options, **kwargs)
        self._set_attributes(**options, **kwargs)

    @property
    def backend(self) -> str:
        """The stock backend reproduced: ``"torchvision"`` or ``"pil"``."""
        return self._backend.value

    @classmethod
    def from_dict(cls, image_processor_dict: dict[str, Any], **kwargs: Any) -> ImageProcessor:
        """Build from a config dict (as ``from_pretrained`` does); ``backend=`` goes to the constructor."""
        refuse_other_size_rules(image_processor_dict.get("image_processor_type"))
        for name in ("backend", "use_fast"):
            if name in kwargs:
                image_processor_dict = {**image_processor_dict, name: kwargs.pop(name)}
        return super().from_dict(image_processor_dict, **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        backend: Backend | str | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str | None = None,
        engine: str = "auto",
        **kwargs: Any,
    ) -> ImageProcessor:
        """Load the image settings of a checkpoint folder (``preprocessor_config.json`` or
        ``processor_config.json``), as the stock class reads them; ``kwargs`` override settings."""
        return super().from_pretrained(
            pretrained_model_name_or_path, backend=backend, device=device, dtype=dtype, engine=engine, **kwargs
        )

    @classmethod
    def from_stock(
        cls,
        image_processor: BaseImageProcessor,
        *,
        backend: Backend | str | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str | None = None,
        engine: str = "auto",
    ) -> ImageProcessor:
        """The vlfast equivalent of a Qwen2-VL image processor (stock or vlfast), with its settings and,
        unless ``backend`` says otherwise, its backend."""
        refuse_other_size_rules(type(image_processor).__name__)
        config = image_processor.to_dict()
        config.pop("image_processor_type", None)
        backend = backend if backend is not None else getattr(image_processor, "backend", None)
        return cls(backend=backend, device=device, dtype=dtype, engine=engine, **config)

    def fetch_images(self, image_url_or_urls: Any) -> Any:
        """Load paths, URLs and base64 strings as the stock processor of this backend decodes them, with vlfast's
        loader: its guards, and the process-wide source policy (:func:`vlfast.set_source_policy`)."""
        return fetch_images(image_url_or_urls, self._backend)

    @eager
    def preprocess(self, images: Any, **kwargs: Any) -> BatchFeature:
        """``pixel_values`` and ``image_grid_thw`` of ``images`` (one image or a nested list), with call-time
        overrides of any setting, ``device`` and ``dtype``."""
        settings = self._call_settings(kwargs)
        options = image_options(self._backend, **self._pipeline_kwargs(settings))
        result = run_images(make_flat_list_of_images(self.fetch_images(images)), options)
        return self._batch_feature(
            {"pixel_values": result.pixel_values, "image_grid_thw": result.image_grid_thw}, settings
        )

    def to_dict(self) -> dict[str, Any]:
        """The preprocessing config, typed as the stock ``Qwen2VLImageProcessor`` (which loads it)."""
        config = super().to_dict()
        config.pop("_backend", None)
        config["image_processor_type"] = "Qwen2VLImageProcessor"
        return config
