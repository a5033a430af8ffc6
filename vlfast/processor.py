"""Drop-in transformers processors: ``ImageProcessor``, and ``patch_processor`` to swap vlfast into a
``Qwen2VLProcessor`` / ``Qwen2_5_VLProcessor`` in one line.

Example:
    >>> from transformers import AutoProcessor
    >>> import vlfast.processor
    >>> processor = vlfast.processor.patch_processor(
    ...     AutoProcessor.from_pretrained(model_dir), device=model.device, dtype=model.dtype
    ... )
    >>> inputs = processor(text=prompts, images=images, return_tensors="pt")  # pixel_values already on the GPU
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from huggingface_hub.dataclasses import validate_typed_dict
from huggingface_hub.errors import StrictDataclassError
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.image_utils import PILImageResampling, SizeDict, make_flat_list_of_images
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.processing_utils import ProcessorMixin
from transformers.utils import is_torchvision_available

from .defaults import (
    IMAGE_MAX_PIXELS,
    IMAGE_MIN_PIXELS,
    MERGE_SIZE,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    PATCH_SIZE,
    RESCALE_FACTOR,
    TEMPORAL_PATCH_SIZE,
)
from .errors import UnsupportedOptionError
from .options import parse_device, parse_dtype
from .plans import Backend, parse_backend
from .preprocess import ENGINES, preprocess

__all__ = [
    "ImageProcessor",
    "ImageProcessorKwargs",
    "SUPPORTED_PROCESSORS",
    "SubProcessorSwap",
    "default_backend",
    "from_pretrained_processor",
    "patch_processor",
]

#: Options that say where and how vlfast runs, not what it computes: never written by ``to_dict``
#: (a saved config stays loadable by the stock classes).
RUNTIME_OPTIONS = ("device", "dtype", "engine")
#: Aliases of the ``size`` bounds, as the stock processors accept them.
_PIXEL_ALIASES = {"min_pixels": "shortest_edge", "max_pixels": "longest_edge"}


#: Prefixes of stock image processors whose target-size rule vlfast does not reproduce, with that rule.
REFUSED_IMAGE_PROCESSORS = {
    ("Glm4v", "Glm46V"): "GLM-4.1V / GLM-4.6V's smart_resize (vlfast.sizing.smart_resize_glm4v: the pixel budget "
    "counts temporal_patch_size frames and sides below the factor are scaled up)",
}


def refuse_other_size_rules(type_name: str | None) -> None:
    """Raise ``UnsupportedOptionError`` for a stock image processor that sizes images by another rule."""
    for prefixes, rule in REFUSED_IMAGE_PROCESSORS.items():
        if type_name and type_name.startswith(prefixes):
            raise UnsupportedOptionError(
                f"{type_name} sizes images by {rule}; vlfast reproduces Qwen2VLImageProcessor's smart_resize only"
            )


def default_backend() -> Backend:
    """What ``AutoImageProcessor`` picks in transformers 5: torchvision when importable, else PIL."""
    return Backend.TORCHVISION if is_torchvision_available() else Backend.PIL


def resolve_backend(backend: Backend | str | None) -> Backend:
    """``backend`` as a :class:`Backend`; ``None`` means :func:`default_backend`."""
    return default_backend() if backend is None else parse_backend(getattr(backend, "value", backend))


def resolve_device(device: torch.device | str | int | None) -> torch.device | None:
    """``device`` as a ``torch.device`` (``None`` stays ``None``: the CPU); raises if it cannot be used."""
    return None if device is None else parse_device(device)


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """``dtype`` as a ``torch.dtype`` (names such as ``"bfloat16"`` accepted); ``None`` keeps the stock dtype."""
    return None if dtype is None else parse_dtype(dtype)


def resolve_engine(engine: str | None) -> str:
    """``engine`` checked against :data:`vlfast.preprocess.ENGINES`; ``None`` means ``"auto"``."""
    engine = "auto" if engine is None else engine
    if engine not in ENGINES:
        raise UnsupportedOptionError(f"engine must be one of {ENGINES}, got {engine!r}")
    return engine


class _VlfastProcessorMixin:
    """What vlfast's image and video processors share: runtime options, call-time keyword handling and the
    ``BatchFeature`` hand-off. Mixed in before the stock processor class, whose attributes it keeps as they
    are: the stock's methods (token counts, option merging) read them and must see what they see there."""

    size: SizeDict | dict
    valid_kwargs: type
    device: torch.device | None = None
    dtype: torch.dtype | None = None
    engine: str = "auto"

    def _initial_size(self, kwargs: dict[str, Any]) -> dict[str, int]:
        """A new ``size`` dict from constructor ``kwargs`` (``size``, ``min_pixels``, ``max_pixels``, popped)
        over the class default, which is copied, never changed (transformers 5.17 changes it in place)."""
        size = kwargs.pop("size", None)
        size = dict(self.size if size is None else size)
        for alias, key in _PIXEL_ALIASES.items():
            if (value := kwargs.pop(alias, None)) is not None:
                size[key] = value
        return size

    def _standardize_kwargs(
        self,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str | None = None,
        engine: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        # The stock's own standardization (size, and min_pixels / max_pixels as the installed release reads
        # them), plus vlfast's runtime options.
        settings = super()._standardize_kwargs(**kwargs)
        settings.update(device=resolve_device(device), dtype=resolve_dtype(dtype), engine=resolve_engine(engine))
        return settings

    def _call_settings(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Every option of one call: the given overrides checked, the rest from the instance."""
        known = self.valid_kwargs.__annotations__
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            raise UnsupportedOptionError(
                f"{type(self).__name__} got unknown options {unknown}; valid options: {sorted(known)}"
            )
        try:
            validate_typed_dict(self.valid_kwargs, kwargs)
        except StrictDataclassError as error:
            raise UnsupportedOptionError(str(error)) from None
        for name in known:
            # None means "the instance's setting", as in the stock's preprocess.
            if kwargs.get(name) is None:
                kwargs[name] = getattr(self, name, None)
        settings = self._standardize_kwargs(**kwargs)
        size = settings["size"]
        if settings["do_resize"] and (size is None or not size.shortest_edge or not size.longest_edge):
            # As the stock's resize: the bounds are only needed when resizing.
            raise UnsupportedOptionError(
                f"size must give 'shortest_edge' and 'longest_edge' (min and max pixels), got {size}"
            )
        return settings

    @staticmethod
    def _pipeline_options(settings: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments of :func:`vlfast.preprocess` (and ``preprocess_videos``) from call settings."""
        size = settings["size"]
        names = (
            "dtype",
            "engine",
            "resample",
            "patch_size",
            "merge_size",
            "temporal_patch_size",
            "do_resize",
            "do_rescale",
            "rescale_factor",
            "do_normalize",
            "image_mean",
            "image_std",
            "do_convert_rgb",
            "input_data_format",
        )
        return {
            **{name: settings[name] for name in names},
            "device": settings["device"] or "cpu",
            "min_pixels": size.shortest_edge if size is not None else None,
            "max_pixels": size.longest_edge if size is not None else None,
        }

    @staticmethod
    def _batch_feature(data: dict[str, torch.Tensor], settings: dict[str, Any]) -> BatchFeature:
        """Outputs where the model reads them: on ``settings["device"]``, or NumPy for ``return_tensors="np"``."""
        return_tensors = getattr(settings["return_tensors"], "value", settings["return_tensors"])
        device = settings["device"] or torch.device("cpu")
        if return_tensors in (None, "pt"):
            # Grids stay on the host, as the stock's: the processor reads them to expand the image
            # tokens, and a device copy would cost a sync per image there.
            return BatchFeature(
                {name: value if name.endswith("grid_thw") else value.to(device) for name, value in data.items()}
            )
        if return_tensors != "np":
            raise UnsupportedOptionError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}")
        if device.type != "cpu" or settings["dtype"] is torch.bfloat16:
            raise UnsupportedOptionError(
                "return_tensors='np' needs device='cpu' and a dtype NumPy has (not bfloat16); use return_tensors='pt'"
            )
        return BatchFeature({name: value.numpy() for name, value in data.items()})

    def to_dict(self) -> dict[str, Any]:
        """The preprocessing config, without vlfast's runtime options: loadable by the stock class."""
        config = super().to_dict()
        for name in RUNTIME_OPTIONS:
            config.pop(name, None)
        return config


class ImageProcessorKwargs(Qwen2VLImageProcessorPil.valid_kwargs, total=False):
    """The stock Qwen2-VL image options, plus vlfast's output ``dtype`` and ``engine``."""

    dtype: torch.dtype | str | None
    engine: str | None


class ImageProcessor(_VlfastProcessorMixin, Qwen2VLImageProcessorPil):
    """Bit-exact, fused replacement of ``Qwen2VLImageProcessor`` (``backend="torchvision"``) and
    ``Qwen2VLImageProcessorPil`` (``backend="pil"``).

    Args:
        backend: the stock processor reproduced; default: the one ``AutoImageProcessor`` picks.
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
        self._backend = resolve_backend(backend)
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
        if "backend" in kwargs:
            image_processor_dict = {**image_processor_dict, "backend": kwargs.pop("backend")}
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
        from .io import fetch_images

        return fetch_images(image_url_or_urls, self._backend)

    def preprocess(self, images: Any, **kwargs: Any) -> BatchFeature:
        """``pixel_values`` and ``image_grid_thw`` of ``images`` (one image or a nested list), with call-time
        overrides of any setting, ``device`` and ``dtype``."""
        settings = self._call_settings(kwargs)
        result = preprocess(
            make_flat_list_of_images(self.fetch_images(images)),
            backend=self._backend,
            **self._pipeline_options(settings),
        )
        return self._batch_feature(
            {"pixel_values": result.pixel_values, "image_grid_thw": result.image_grid_thw}, settings
        )

    def to_dict(self) -> dict[str, Any]:
        """The preprocessing config, typed as the stock ``Qwen2VLImageProcessor`` (which loads it)."""
        config = super().to_dict()
        config.pop("_backend", None)
        config["image_processor_type"] = "Qwen2VLImageProcessor"
        return config


def _video_processor_from_stock(video_processor: Any, *, backend: Backend | str | None, **options: Any) -> Any:
    """The vlfast video processor of a stock one; ``backend`` does not apply (the stock video processor
    has one: torchvision's arithmetic on uint8)."""
    from .video import VideoProcessor

    return VideoProcessor.from_stock(video_processor, **options)


@dataclass(frozen=True)
class SubProcessorSwap:
    """How ``patch_processor`` replaces one sub-processor: the class names it accepts there, and the
    builder of the vlfast replacement (called with the current one and the options)."""

    accepted: tuple[str, ...]
    build: Callable[..., Any]


#: The Qwen2-VL family's sub-processors.
_QWEN2_VL_SWAPS = {
    "image_processor": SubProcessorSwap(
        ("Qwen2VLImageProcessor", "Qwen2VLImageProcessorPil", ImageProcessor.__name__), ImageProcessor.from_stock
    ),
    "video_processor": SubProcessorSwap(("Qwen2VLVideoProcessor", "VideoProcessor"), _video_processor_from_stock),
}

#: Processor classes ``patch_processor`` knows, by name (subclasses included), with their swaps.
SUPPORTED_PROCESSORS: dict[str, dict[str, SubProcessorSwap]] = {
    "Qwen2VLProcessor": _QWEN2_VL_SWAPS,
    "Qwen2_5_VLProcessor": _QWEN2_VL_SWAPS,
}

ProcessorType = TypeVar("ProcessorType", bound=ProcessorMixin)


def patch_processor(
    processor: ProcessorType,
    *,
    backend: Backend | str | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    engine: str = "auto",
) -> ProcessorType:
    """Swap vlfast's image and video processors into a stock Qwen2-VL / Qwen2.5-VL processor, in place.

    The replacements keep the stock settings, so ``input_ids`` and ``pixel_values`` are unchanged, and
    return tensors on ``device`` in ``dtype`` (give the model's) ready for ``model.generate(**inputs)``.

    Args:
        processor: a ``Qwen2VLProcessor`` or ``Qwen2_5_VLProcessor`` (or a subclass).
        backend: stock image backend reproduced; default: the processor's own. Videos always reproduce
            the stock video processor (torchvision).
        device, dtype, engine: see :class:`ImageProcessor`.

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
    options = {"backend": backend, "device": device, "dtype": dtype, "engine": engine}
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
    **from_pretrained_kwargs: Any,
) -> ProcessorMixin:
    """``AutoProcessor.from_pretrained(model_dir, **from_pretrained_kwargs)`` with vlfast patched in
    (see :func:`patch_processor`)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir, **from_pretrained_kwargs)
    return patch_processor(processor, backend=backend, device=device, dtype=dtype, engine=engine)
