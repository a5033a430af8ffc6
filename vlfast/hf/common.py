"""What vlfast's transformers processors share: runtime options, call-time keyword handling and the
``BatchFeature`` hand-off."""

from __future__ import annotations

from typing import Any, TypedDict

import torch
from huggingface_hub.dataclasses import validate_typed_dict
from huggingface_hub.errors import StrictDataclassError
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import SizeDict
from transformers.utils import is_torchvision_available

from ..eager import eager
from ..engines import parse_engine
from ..errors import UnsupportedOptionError
from ..loader import check_workers
from ..options import parse_device, parse_dtype
from ..plans import Backend, parse_backend

__all__ = [
    "RUNTIME_OPTIONS",
    "RuntimeKwargs",
    "VlfastProcessorMixin",
    "default_backend",
    "resolve_backend",
    "resolve_device",
    "resolve_dtype",
    "resolve_engine",
    "resolve_workers",
]

#: Options that say where and how vlfast runs, not what it computes: never written by ``to_dict``
#: (a saved config stays loadable by the stock classes).
RUNTIME_OPTIONS = ("device", "dtype", "engine", "workers")
#: Aliases of the ``size`` bounds, as the stock processors accept them.
_PIXEL_ALIASES = {"min_pixels": "shortest_edge", "max_pixels": "longest_edge"}


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


def resolve_workers(workers: int | None) -> int | None:
    """``workers`` checked (a positive int); ``None`` stays ``None``: the cores this process may use."""
    return None if workers is None else check_workers(workers)


class RuntimeKwargs(TypedDict, total=False):
    """vlfast's options of every drop-in processor, beside the stock's own (``device`` is one of those)."""

    #: dtype of the pixel values; ``None``: the stock dtype.
    dtype: torch.dtype | str | None
    #: ``"auto"``, ``"cpp"``, ``"triton"`` or ``"reference"``.
    engine: str | None


def resolve_engine(engine: str | None) -> str:
    """``engine`` checked against :class:`vlfast.engines.EngineName`; ``None`` means ``"auto"``."""
    return parse_engine(engine).value


class VlfastProcessorMixin:
    """What vlfast's image and video processors share: runtime options, call-time keyword handling and the
    ``BatchFeature`` hand-off. Mixed in before the stock processor class, whose attributes it keeps as they
    are: the stock's methods (token counts, option merging) read them and must see what they see there."""

    size: SizeDict | dict
    valid_kwargs: type
    device: torch.device | None = None
    dtype: torch.dtype | None = None
    engine: str = "auto"

    @eager
    def __call__(self, *args: Any, **kwargs: Any) -> BatchFeature:
        """The stock call (which calls :meth:`preprocess`), run eagerly inside a ``torch.compile``'d caller."""
        return super().__call__(*args, **kwargs)

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
    def _pipeline_kwargs(settings: dict[str, Any]) -> dict[str, Any]:
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
