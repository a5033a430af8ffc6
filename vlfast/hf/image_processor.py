"""The drop-in image processors: ``ImageProcessor`` (``Qwen2VLImageProcessor`` / ``Qwen2VLImageProcessorPil``, which
Qwen2-VL, Qwen2.5-VL, Qwen3-VL and Qwen3.5 use), ``Glm4vImageProcessor`` and ``Glm46VImageProcessor`` (GLM-4.1V /
GLM-4.6V, both backends each). They differ only in the size rule; the pixels are computed by vlfast."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import torch
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.image_utils import PILImageResampling, make_flat_list_of_images
from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil
from transformers.models.glm46v.image_processing_pil_glm46v import Glm46VImageProcessorPil
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
from ..sizing import SizeRule
from .common import RuntimeKwargs, VlfastProcessorMixin, resolve_backend, resolve_workers

__all__ = [
    "IMAGE_PROCESSORS",
    "Glm46VImageProcessor",
    "Glm4vImageProcessor",
    "ImageProcessor",
    "ImageProcessorKwargs",
    "image_processor_class",
]


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


class ImageRuntimeKwargs(RuntimeKwargs, total=False):
    """The image processors' runtime options: :class:`~vlfast.hf.common.RuntimeKwargs` and the decode threads."""

    #: Threads that decode path, URL and base64 sources; ``None``: the cores this process may use.
    workers: int | None


class _ImageProcessorMixin(VlfastProcessorMixin):
    """What vlfast's image processors share; each family's class adds its stock (PIL) class, the torchvision
    class name its configs carry, and its size rule."""

    #: How the stock classes size images.
    _size_rule: ClassVar[SizeRule]
    #: The stock torchvision class (``AutoImageProcessor``'s choice): the type ``to_dict`` writes.
    _stock_type: ClassVar[str]
    workers: int | None = None

    def __init__(
        self,
        *,
        backend: Backend | str | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str | None = None,
        engine: str = "auto",
        workers: int | None = None,
        **kwargs: Any,
    ) -> None:
        self._backend = resolve_backend(backend_for(backend, kwargs.pop("use_fast", None)))
        options = {
            "size": self._initial_size(kwargs),
            "device": device,
            "dtype": dtype,
            "engine": engine,
            "workers": workers,
        }
        super().__init__(**options, **kwargs)
        self._set_attributes(**options, **kwargs)

    def _standardize_kwargs(self, workers: int | None = None, **kwargs: Any) -> dict[str, Any]:
        return {**super()._standardize_kwargs(**kwargs), "workers": resolve_workers(workers)}

    @property
    def backend(self) -> str:
        """The stock backend reproduced: ``"torchvision"`` or ``"pil"``."""
        return self._backend.value

    @classmethod
    def from_dict(cls, image_processor_dict: dict[str, Any], **kwargs: Any) -> BaseImageProcessor:
        """Build from a config dict (as ``from_pretrained`` does); ``backend=`` goes to the constructor. A config
        of another supported family gives that family's vlfast class."""
        target = IMAGE_PROCESSORS.get(str(image_processor_dict.get("image_processor_type")).removesuffix("Fast"), cls)
        if not issubclass(target, cls):
            return target.from_dict(image_processor_dict, **kwargs)
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
        workers: int | None = None,
        **kwargs: Any,
    ) -> BaseImageProcessor:
        """Load the image settings of a checkpoint folder (``preprocessor_config.json`` or
        ``processor_config.json``), as the stock class reads them, into the vlfast class of the family the config
        names (``ImageProcessor.from_pretrained`` on a GLM-4.1V folder gives a :class:`Glm4vImageProcessor`);
        ``kwargs`` override settings."""
        return super().from_pretrained(
            pretrained_model_name_or_path,
            backend=backend,
            device=device,
            dtype=dtype,
            engine=engine,
            workers=workers,
            **kwargs,
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
        workers: int | None = None,
    ) -> BaseImageProcessor:
        """The vlfast equivalent of a stock (or vlfast) image processor of a supported family, with its settings
        and, unless ``backend`` says otherwise, its backend."""
        target = image_processor_class(type(image_processor))
        config = image_processor.to_dict()
        config.pop("image_processor_type", None)
        backend = backend if backend is not None else getattr(image_processor, "backend", None)
        return target(backend=backend, device=device, dtype=dtype, engine=engine, workers=workers, **config)

    def fetch_images(self, image_url_or_urls: Any) -> Any:
        """Load paths, URLs and base64 strings as the stock processor of this backend decodes them, with vlfast's
        loader (its guards, the process-wide source policy of :func:`vlfast.set_source_policy`), on the
        processor's ``workers`` threads."""
        return fetch_images(image_url_or_urls, self._backend, workers=self.workers)

    @eager
    def preprocess(self, images: Any, **kwargs: Any) -> BatchFeature:
        """``pixel_values`` and ``image_grid_thw`` of ``images`` (one image or a nested list), with call-time
        overrides of any setting, ``device`` and ``dtype``."""
        settings = self._call_settings(kwargs)
        options = image_options(self._backend, **self._pipeline_kwargs(settings), size_rule=self._size_rule)
        loaded = fetch_images(images, self._backend, workers=settings["workers"], copy=False)  # the kernels read
        result = run_images(make_flat_list_of_images(loaded), options)
        return self._batch_feature(
            {"pixel_values": result.pixel_values, "image_grid_thw": result.image_grid_thw}, settings
        )

    def to_dict(self) -> dict[str, Any]:
        """The preprocessing config, typed as the stock torchvision class (which loads it)."""
        config = super().to_dict()
        config.pop("_backend", None)
        config["image_processor_type"] = self._stock_type
        return config


class ImageProcessorKwargs(Qwen2VLImageProcessorPil.valid_kwargs, ImageRuntimeKwargs, total=False):
    """The stock Qwen2-VL image options, plus vlfast's :class:`ImageRuntimeKwargs`."""


class ImageProcessor(_ImageProcessorMixin, Qwen2VLImageProcessorPil):
    """Bit-exact, fused replacement of ``Qwen2VLImageProcessor`` (``backend="torchvision"``) and
    ``Qwen2VLImageProcessorPil`` (``backend="pil"``).

    Args:
        backend: the stock processor reproduced; default: the one ``AutoImageProcessor`` picks. transformers'
            ``use_fast=True`` / ``False`` is accepted as ``backend="torchvision"`` / ``"pil"`` (not stored).
        device: where ``pixel_values`` and ``image_grid_thw`` are returned (default: CPU).
        dtype: dtype of ``pixel_values`` (e.g. the model's); default: the stock dtype (float32).
        engine: ``"auto"``, ``"cpp"`` or ``"triton"`` (see :func:`vlfast.preprocess`).
        workers: threads that decode path, URL and base64 inputs (default: the cores this process may use).
        **kwargs: the stock options (``size`` or ``min_pixels``/``max_pixels``, ``patch_size``, ``merge_size``,
            ``temporal_patch_size``, ``image_mean``, ``image_std``, ``rescale_factor``, ``resample``,
            ``do_resize``/``do_rescale``/``do_normalize``/``do_convert_rgb``...).

    Calls take the same options as overrides, plus ``device``, ``dtype`` and ``workers``, and return a ``BatchFeature``
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
    _size_rule = SizeRule.QWEN2_VL
    _stock_type = "Qwen2VLImageProcessor"


class Glm4vImageProcessorKwargs(Glm4vImageProcessorPil.valid_kwargs, ImageRuntimeKwargs, total=False):
    """The stock GLM-4.1V image options, plus vlfast's :class:`ImageRuntimeKwargs`."""


class Glm4vImageProcessor(_ImageProcessorMixin, Glm4vImageProcessorPil):
    """Bit-exact, fused replacement of ``Glm4vImageProcessor`` (``backend="torchvision"``) and
    ``Glm4vImageProcessorPil`` (``backend="pil"``): GLM-4.1V. Images are sized by
    :func:`vlfast.sizing.smart_resize_frames` (the budget counts ``temporal_patch_size`` frames, sides below the
    factor are scaled up); arguments and calls as :class:`ImageProcessor`."""

    valid_kwargs = Glm4vImageProcessorKwargs
    _size_rule = SizeRule.FRAMES
    _stock_type = "Glm4vImageProcessor"


class Glm46VImageProcessorKwargs(Glm46VImageProcessorPil.valid_kwargs, ImageRuntimeKwargs, total=False):
    """The stock GLM-4.6V image options, plus vlfast's :class:`ImageRuntimeKwargs`."""


class Glm46VImageProcessor(_ImageProcessorMixin, Glm46VImageProcessorPil):
    """Bit-exact, fused replacement of ``Glm46VImageProcessor`` / ``Glm46VImageProcessorPil`` (GLM-4.6V), as
    :class:`Glm4vImageProcessor`."""

    valid_kwargs = Glm46VImageProcessorKwargs
    _size_rule = SizeRule.FRAMES
    _stock_type = "Glm46VImageProcessor"


#: vlfast's image processor for each stock image processor it reproduces (both backends), by class name.
IMAGE_PROCESSORS: dict[str, type[_ImageProcessorMixin]] = {
    name: cls
    for cls in (ImageProcessor, Glm4vImageProcessor, Glm46VImageProcessor)
    for name in (cls._stock_type, f"{cls._stock_type}Pil")
}


def image_processor_class(stock: type) -> type[_ImageProcessorMixin]:
    """vlfast's class for a stock (or vlfast) image processor class or a subclass of one, or
    ``UnsupportedOptionError``."""
    for klass in stock.__mro__:
        if klass.__name__ in IMAGE_PROCESSORS:
            return IMAGE_PROCESSORS[klass.__name__]
        if issubclass(klass, _ImageProcessorMixin) and klass is not _ImageProcessorMixin:
            return klass
    raise UnsupportedOptionError(
        f"{stock.__name__} is not an image processor vlfast reproduces; supported: {sorted(IMAGE_PROCESSORS)}"
    )
