"""The drop-in video processors: ``VideoProcessor`` (``Qwen2VLVideoProcessor``), ``Qwen3VLVideoProcessor``,
``Glm4vVideoProcessor`` and ``Glm46VVideoProcessor``. Paths and URLs are decoded and frames sampled by the stock
code (each family's own ``sample_frames``, so the metadata and frame timestamps are the stock's); the pixels are
computed by vlfast (:func:`vlfast.video.run_videos`), each family's frames sized by its stock rule."""

from __future__ import annotations

import os
from functools import partial
from typing import Any, ClassVar

import torch
from transformers.image_processing_utils import BatchFeature
from transformers.models.glm4v.video_processing_glm4v import Glm4vVideoProcessor as StockGlm4vVideoProcessor
from transformers.models.glm46v.video_processing_glm46v import Glm46VVideoProcessor as StockGlm46VVideoProcessor
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor as StockQwen3VLVideoProcessor
from transformers.video_processing_utils import BaseVideoProcessor

from ..defaults import VIDEO_MAX_PIXELS, VIDEO_MIN_PIXELS
from ..eager import eager
from ..errors import DecodeError, UnsupportedOptionError
from ..io import fetch_images
from ..plans import Backend
from ..releases import video_cap_reads_call_budget
from ..sizing import SizeRule
from ..sources import current_source_policy, video_file
from ..video import run_videos, video_options
from .common import RuntimeKwargs, VlfastProcessorMixin

__all__ = [
    "Glm46VVideoProcessor",
    "Glm4vVideoProcessor",
    "Qwen3VLVideoProcessor",
    "VideoProcessor",
    "VideoProcessorKwargs",
    "video_processor_class",
]

#: Options the stock ``preprocess`` hands to ``sample_frames`` that a sampler reads (each reads its own).
_SAMPLING_OPTIONS = ("temporal_patch_size", "min_frames", "max_frames", "num_frames", "fps")


def _video_processor_type(config: dict[str, Any]) -> str | None:
    """The stock video processor class a config names: ``video_processor_type``, else the image processor's
    with ``ImageProcessor`` replaced by ``VideoProcessor`` (``AutoVideoProcessor``'s inference)."""
    named = config.get("video_processor_type")
    if named is None and config.get("image_processor_type"):
        named = str(config["image_processor_type"]).replace("ImageProcessor", "VideoProcessor")
    return None if named is None else str(named).removesuffix("Fast")


class _VideoProcessorMixin(VlfastProcessorMixin):
    """What vlfast's video processors share; each family's class adds its stock class and its size rule."""

    #: How the stock class sizes frames.
    _size_rule: ClassVar[SizeRule]

    def fetch_videos(self, video_url_or_urls: Any, sample_indices_fn: Any = None) -> Any:
        """Decode video paths and URLs with the stock's decoder, after the process-wide source policy's checks
        (:func:`vlfast.sources.video_file`: regular files under the allowed roots; URLs downloaded within the
        policy's limits). Decoder failures are :class:`DecodeError` naming the video."""
        if isinstance(video_url_or_urls, list):
            loaded = [self.fetch_videos(item, sample_indices_fn=sample_indices_fn) for item in video_url_or_urls]
            return list(zip(*loaded, strict=True))  # (videos, metadata), as the stock returns them
        if not isinstance(video_url_or_urls, str):
            return super().fetch_videos(video_url_or_urls, sample_indices_fn=sample_indices_fn)
        with video_file(video_url_or_urls, current_source_policy()) as path:
            try:
                return super().fetch_videos(path, sample_indices_fn=sample_indices_fn)
            except (TypeError, ValueError, RuntimeError, OSError, EOFError) as error:
                raise DecodeError(f"cannot decode video {video_url_or_urls!r}: {type(error).__name__}") from None

    def fetch_images(self, image_url_or_urls: Any) -> Any:
        """Frames given as image paths or URLs, loaded as the stock video processors load them (its
        torchvision-backend image loader), with vlfast's guards and source policy."""
        return fetch_images(image_url_or_urls, Backend.TORCHVISION)

    def __init__(
        self,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str | None = None,
        engine: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(size=self._initial_size(kwargs), device=device, dtype=dtype, engine=engine, **kwargs)

    @classmethod
    def _stock_class(cls) -> type[BaseVideoProcessor]:
        """The stock class reproduced: the first transformers class in the method order."""
        return next(k for k in cls.__mro__ if k.__module__.startswith("transformers."))

    @classmethod
    def from_dict(cls, video_processor_dict: dict[str, Any], **kwargs: Any) -> BaseVideoProcessor:
        """As the stock reads a config; a config of another family gives that family's vlfast class (named by
        ``video_processor_type``, or, as ``AutoVideoProcessor`` infers it, by ``image_processor_type``)."""
        target = VIDEO_PROCESSORS.get(_video_processor_type(video_processor_dict), cls)
        if not issubclass(target, cls):
            return target.from_dict(video_processor_dict, **kwargs)
        return super().from_dict(video_processor_dict, **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str | None = None,
        engine: str = "auto",
        **kwargs: Any,
    ) -> BaseVideoProcessor:
        """Load the video settings of a checkpoint folder as the stock class reads them (the vlfast class of the
        family the config names: ``VideoProcessor.from_pretrained`` on a Qwen3-VL folder gives a
        :class:`Qwen3VLVideoProcessor`)."""
        return super().from_pretrained(
            pretrained_model_name_or_path, device=device, dtype=dtype, engine=engine, **kwargs
        )

    @classmethod
    def from_stock(
        cls,
        video_processor: BaseVideoProcessor,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str | None = None,
        engine: str = "auto",
    ) -> BaseVideoProcessor:
        """The vlfast equivalent of a stock (or vlfast) video processor of a supported family, with its settings."""
        target = video_processor_class(type(video_processor))
        config = video_processor.to_dict()
        config.pop("video_processor_type", None)
        return target(device=device, dtype=dtype, engine=engine, **config)

    @eager
    def preprocess(self, videos: Any, **kwargs: Any) -> BatchFeature:
        """``pixel_values_videos`` and ``video_grid_thw`` of ``videos`` (one video or a list), with call-time
        overrides of any setting, ``device`` and ``dtype``; ``video_metadata`` too with ``return_metadata``."""
        settings = self._call_settings(kwargs)
        sample_indices_fn = None
        if settings["do_sample_frames"]:
            sampling = {name: settings[name] for name in _SAMPLING_OPTIONS if name in settings}
            sample_indices_fn = partial(self.sample_frames, **sampling)
        clips, metadata = self._decode_and_sample_videos(
            videos,
            video_metadata=settings["video_metadata"],
            do_sample_frames=settings["do_sample_frames"],
            sample_indices_fn=sample_indices_fn,
        )
        options = video_options(**self._pipeline_kwargs(settings), size_rule=self._size_rule)
        result = run_videos(clips, options, max_video_tokens=self._frame_cap_budget(settings))
        features = self._batch_feature(
            {"pixel_values_videos": result.pixel_values_videos, "video_grid_thw": result.video_grid_thw}, settings
        )
        if settings["return_metadata"]:
            features["video_metadata"] = metadata
        return features

    def _frame_cap_budget(self, settings: dict[str, Any]) -> int | None:
        """The ``max_video_tokens`` the stock's per-frame cap uses for this call; ``None`` when it does not cap
        (or, as GLM's, has no cap)."""
        if not settings.get("cap_pixels_per_frame"):
            return None
        return settings["max_video_tokens"] if video_cap_reads_call_budget() else self.max_video_tokens

    def to_dict(self) -> dict[str, Any]:
        """The preprocessing config, typed as the stock class (which loads it)."""
        config = super().to_dict()
        config["video_processor_type"] = self._stock_class().__name__
        return config


class VideoProcessorKwargs(Qwen2VLVideoProcessor.valid_kwargs, RuntimeKwargs, total=False):
    """The stock Qwen2-VL video options, plus vlfast's :class:`~vlfast.hf.common.RuntimeKwargs`."""


class VideoProcessor(_VideoProcessorMixin, Qwen2VLVideoProcessor):
    """Bit-exact, fused replacement of ``Qwen2VLVideoProcessor`` (Qwen2-VL, Qwen2.5-VL; a subclass of it).

    Args:
        device: where ``pixel_values_videos`` and ``video_grid_thw`` are returned (default: CPU).
        dtype: dtype of ``pixel_values_videos`` (e.g. the model's); default: the stock dtype (float32).
        engine: ``"auto"``, ``"cpp"`` or ``"triton"``.
        **kwargs: the stock options (``size`` or ``min_pixels``/``max_pixels``, ``patch_size``, ``merge_size``,
            ``temporal_patch_size``, ``do_sample_frames``, ``fps``, ``num_frames``, ``cap_pixels_per_frame``...).

    Calls take the same options as overrides, plus ``device`` and ``dtype``. ``from_pretrained`` on the config
    of another supported family (Qwen3-VL, GLM-4.1V, GLM-4.6V) gives that family's vlfast class.
    """

    _size_rule = SizeRule.QWEN2_VL
    size = {"shortest_edge": VIDEO_MIN_PIXELS, "longest_edge": VIDEO_MAX_PIXELS}
    valid_kwargs = VideoProcessorKwargs


class Qwen3VLVideoProcessorKwargs(StockQwen3VLVideoProcessor.valid_kwargs, RuntimeKwargs, total=False):
    """The stock Qwen3-VL video options, plus vlfast's :class:`~vlfast.hf.common.RuntimeKwargs`."""


class Qwen3VLVideoProcessor(_VideoProcessorMixin, StockQwen3VLVideoProcessor):
    """Bit-exact, fused replacement of ``Qwen3VLVideoProcessor`` (Qwen3-VL, Qwen3.5; a subclass of it).

    Frames are sampled by the stock ``sample_frames`` (``fps`` with the video's metadata, ``min_frames`` /
    ``max_frames``, or ``num_frames``; on by default) and sized by :func:`vlfast.sizing.smart_resize_frames`,
    whose pixel budget counts the frames (with ``cap_pixels_per_frame``, the stock's per-frame cap). The
    returned ``video_metadata`` (sampled indices, fps) is the stock's, so a ``Qwen3VLProcessor`` writes the same
    frame timestamps. Options and call-time overrides as :class:`VideoProcessor`.
    """

    _size_rule = SizeRule.FRAMES
    valid_kwargs = Qwen3VLVideoProcessorKwargs


class Glm4vVideoProcessorKwargs(StockGlm4vVideoProcessor.valid_kwargs, RuntimeKwargs, total=False):
    """The stock GLM-4.1V video options, plus vlfast's :class:`~vlfast.hf.common.RuntimeKwargs`."""


class Glm4vVideoProcessor(_VideoProcessorMixin, StockGlm4vVideoProcessor):
    """Bit-exact, fused replacement of ``Glm4vVideoProcessor`` (GLM-4.1V; a subclass of it): the stock's frame
    sampling (``fps``, ``max_duration``), frames sized by :func:`vlfast.sizing.smart_resize_frames`."""

    _size_rule = SizeRule.FRAMES
    valid_kwargs = Glm4vVideoProcessorKwargs


class Glm46VVideoProcessorKwargs(StockGlm46VVideoProcessor.valid_kwargs, RuntimeKwargs, total=False):
    """The stock GLM-4.6V video options, plus vlfast's :class:`~vlfast.hf.common.RuntimeKwargs`."""


class Glm46VVideoProcessor(_VideoProcessorMixin, StockGlm46VVideoProcessor):
    """Bit-exact, fused replacement of ``Glm46VVideoProcessor`` (GLM-4.6V; a subclass of it): the stock's frame
    sampling, frames sized by :func:`vlfast.sizing.smart_resize_frames`."""

    _size_rule = SizeRule.FRAMES
    valid_kwargs = Glm46VVideoProcessorKwargs


#: vlfast's video processor for each stock video processor it reproduces, by the stock class name.
VIDEO_PROCESSORS: dict[str, type[_VideoProcessorMixin]] = {
    cls._stock_class().__name__: cls
    for cls in (VideoProcessor, Qwen3VLVideoProcessor, Glm4vVideoProcessor, Glm46VVideoProcessor)
}


def video_processor_class(stock: type) -> type[_VideoProcessorMixin]:
    """vlfast's class for a stock (or vlfast) video processor class or a subclass of one, or
    ``UnsupportedOptionError``."""
    for klass in stock.__mro__:
        if klass.__name__ in VIDEO_PROCESSORS:
            return VIDEO_PROCESSORS[klass.__name__]
    raise UnsupportedOptionError(
        f"{stock.__name__} is not a video processor vlfast reproduces; supported: {sorted(VIDEO_PROCESSORS)}"
    )
