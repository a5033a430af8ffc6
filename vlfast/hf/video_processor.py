"""``VideoProcessor``: the drop-in ``Qwen2VLVideoProcessor``. Paths and URLs are decoded and frames sampled
by the stock code; the pixels are computed by vlfast (:func:`vlfast.video.run_videos`)."""

from __future__ import annotations

import os
from functools import partial
from typing import Any

import torch
from transformers.image_processing_utils import BatchFeature
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

from ..defaults import VIDEO_MAX_PIXELS, VIDEO_MIN_PIXELS
from ..eager import eager
from ..errors import UnsupportedOptionError
from ..releases import video_cap_reads_call_budget
from ..video import run_videos, video_options
from .common import VlfastProcessorMixin

__all__ = ["VideoProcessor", "VideoProcessorKwargs"]


class VideoProcessorKwargs(Qwen2VLVideoProcessor.valid_kwargs, total=False):
    """The stock Qwen2-VL video options, plus vlfast's output ``dtype`` and ``engine``."""

    dtype: torch.dtype | str | None
    engine: str | None


#: Stock video processors whose frame sampling or sizing rules differ from Qwen2-VL's.
_REFUSED_VIDEO_PROCESSORS = ("Qwen3VL", "Glm4v", "Glm46V")


def _refuse_other_video_rules(type_name: str | None) -> None:
    if type_name and type_name.startswith(_REFUSED_VIDEO_PROCESSORS):
        raise UnsupportedOptionError(
            f"{type_name} samples and sizes frames by its own rules (frame budget, timestamps); "
            "vlfast reproduces Qwen2VLVideoProcessor only"
        )


class VideoProcessor(VlfastProcessorMixin, Qwen2VLVideoProcessor):
    """Bit-exact, fused replacement of ``Qwen2VLVideoProcessor`` (a subclass of it).

    Args:
        device: where ``pixel_values_videos`` and ``video_grid_thw`` are returned (default: CPU).
        dtype: dtype of ``pixel_values_videos`` (e.g. the model's); default: the stock dtype (float32).
        engine: ``"auto"``, ``"cpp"`` or ``"triton"``.
        **kwargs: the stock options (``size`` or ``min_pixels``/``max_pixels``, ``patch_size``, ``merge_size``,
            ``temporal_patch_size``, ``do_sample_frames``, ``fps``, ``num_frames``, ``cap_pixels_per_frame``...).

    Calls take the same options as overrides, plus ``device`` and ``dtype``. Paths and URLs are decoded
    and frames sampled by the stock code; the pixels are then computed by vlfast.
    """

    size = {"shortest_edge": VIDEO_MIN_PIXELS, "longest_edge": VIDEO_MAX_PIXELS}
    valid_kwargs = VideoProcessorKwargs

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
    def from_dict(cls, video_processor_dict: dict[str, Any], **kwargs: Any) -> VideoProcessor:
        """As the stock reads a config, refusing video processors whose sampling or sizing differ."""
        _refuse_other_video_rules(video_processor_dict.get("video_processor_type"))
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
    ) -> VideoProcessor:
        """Load the video settings of a checkpoint folder as the stock class reads them."""
        return super().from_pretrained(
            pretrained_model_name_or_path, device=device, dtype=dtype, engine=engine, **kwargs
        )

    @classmethod
    def from_stock(
        cls,
        video_processor: Qwen2VLVideoProcessor,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str | None = None,
        engine: str = "auto",
    ) -> VideoProcessor:
        """The vlfast equivalent of a Qwen2-VL video processor (stock or vlfast), with its settings."""
        _refuse_other_video_rules(type(video_processor).__name__)
        config = video_processor.to_dict()
        config.pop("video_processor_type", None)
        return cls(device=device, dtype=dtype, engine=engine, **config)

    @eager
    def preprocess(self, videos: Any, **kwargs: Any) -> BatchFeature:
        """``pixel_values_videos`` and ``video_grid_thw`` of ``videos`` (one video or a list), with call-time
        overrides of any setting, ``device`` and ``dtype``; ``video_metadata`` too with ``return_metadata``."""
        settings = self._call_settings(kwargs)
        sample_indices_fn = None
        if settings["do_sample_frames"]:
            sample_indices_fn = partial(
                self.sample_frames,
                temporal_patch_size=settings["temporal_patch_size"],
                min_frames=settings["min_frames"],
                max_frames=settings["max_frames"],
                num_frames=settings["num_frames"],
                fps=settings["fps"],
            )
        clips, metadata = self._decode_and_sample_videos(
            videos,
            video_metadata=settings["video_metadata"],
            do_sample_frames=settings["do_sample_frames"],
            sample_indices_fn=sample_indices_fn,
        )
        options = video_options(**self._pipeline_kwargs(settings))
        result = run_videos(clips, options, max_video_tokens=self._frame_cap_budget(settings))
        features = self._batch_feature(
            {"pixel_values_videos": result.pixel_values_videos, "video_grid_thw": result.video_grid_thw}, settings
        )
        if settings["return_metadata"]:
            features["video_metadata"] = metadata
        return features

    def _frame_cap_budget(self, settings: dict[str, Any]) -> int | None:
        """The ``max_video_tokens`` the stock's per-frame cap uses for this call; ``None`` when it does not cap."""
        if not settings["cap_pixels_per_frame"]:
            return None
        return settings["max_video_tokens"] if video_cap_reads_call_budget() else self.max_video_tokens

    def to_dict(self) -> dict[str, Any]:
        """The preprocessing config, typed as the stock ``Qwen2VLVideoProcessor`` (which loads it)."""
        config = super().to_dict()
        config["video_processor_type"] = "Qwen2VLVideoProcessor"
        return config
