"""``vlfast.video``: videos in, ``pixel_values_videos`` and ``video_grid_thw`` out, bit-exact to the stock
``Qwen2VLVideoProcessor`` (which Qwen2-VL and Qwen2.5-VL use).

What the stock video processor computes (transformers 5.17 - 5.23):

- frames are uint8 ``(T, C, H, W)`` tensors resized with torchvision's antialiased uint8 kernel (the
  torchvision image backend's arithmetic, on the CPU), to ``smart_resize`` of the frame size with the
  video's own ``size`` (default 128*28*28 .. 768*28*28 pixels); then the fused rescale + normalize;
- the frame count is padded to a multiple of ``temporal_patch_size`` by repeating the last frame;
- rows are ``(temporal block, h-block, w-block, mh, mw)`` and columns ``(c, t, y, x)``, so frame ``f``
  fills slot ``f % T`` of the rows of temporal block ``f // T``;
- frames are sampled only when ``do_sample_frames=True`` (default False), by ``num_frames`` or ``fps``.

Here each frame is one :class:`~vlfast.preprocess.FrameJob` (the last one also fills the padding slots),
run by the C++ or Triton engine straight into the output.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import PIL.Image
import torch
from transformers.image_processing_utils import BatchFeature
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

from .defaults import (
    MERGE_SIZE,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    PATCH_SIZE,
    RESCALE_FACTOR,
    TEMPORAL_PATCH_SIZE,
    VIDEO_MAX_PIXELS,
    VIDEO_MIN_PIXELS,
    VIDEO_MIN_PIXELS_MARGIN,
    VIDEO_TOKEN_BUDGET_SHARE,
)
from .errors import InvalidImageError, UnsupportedModeError, UnsupportedOptionError
from .inputs import ImageLike, parse_channel_format
from .layout import patch_grid
from .plans import Backend, Filter, resample_plan
from .preprocess import FrameJob, render, resolve_run_options
from .processor import _VlfastProcessorMixin
from .releases import video_cap_reads_call_budget
from .sizing import smart_resize

__all__ = [
    "PreprocessedVideos",
    "VideoLike",
    "VideoProcessor",
    "VideoProcessorKwargs",
    "preprocess_videos",
    "video_frames",
]

#: A video: a uint8 ``(T, H, W, C)`` or ``(T, C, H, W)`` array or tensor, or a list of frames.
VideoLike = np.ndarray | torch.Tensor | Sequence[ImageLike]

#: Channel counts the stock processor recognises when it infers the channel axis of a video.
_INFERRED_CHANNELS = (1, 3)
_RGBA = 4


@dataclass
class PreprocessedVideos:
    """What :func:`preprocess_videos` returns.

    Attributes:
        pixel_values_videos: ``(sum(t*h*w), C * temporal_patch_size * patch_size**2)``, on the requested
            device and dtype.
        video_grid_thw: ``int64 (N, 3)`` grid of each video in patches, on the CPU.
        original_sizes: ``(frames, height, width)`` of each input video.
        resized_sizes: ``(height, width)`` of each video's frames as the model sees them.
    """

    pixel_values_videos: torch.Tensor
    video_grid_thw: torch.Tensor
    original_sizes: list[tuple[int, int, int]] = field(default_factory=list)
    resized_sizes: list[tuple[int, int]] = field(default_factory=list)

    def __iter__(self):
        """Unpack as ``pixel_values_videos, video_grid_thw = preprocess_videos(...)``."""
        return iter((self.pixel_values_videos, self.video_grid_thw))


def _frame_tensor(frame: ImageLike) -> torch.Tensor:
    """One frame of a list, as the stock processor stacks them (``np.array(frame)``); PIL modes other than
    RGB/RGBA, which the stock processor cannot handle, are converted to RGB by Pillow."""
    if isinstance(frame, PIL.Image.Image):
        return torch.from_numpy(np.asarray(frame if frame.mode in ("RGB", "RGBA") else frame.convert("RGB")))
    if isinstance(frame, np.ndarray):
        frame = torch.from_numpy(frame)
    if not isinstance(frame, torch.Tensor):
        raise InvalidImageError(f"video frames must be PIL images, arrays or tensors, got {type(frame).__name__}")
    return frame.unsqueeze(-1) if frame.ndim == 2 else frame


def _channels_first(shape: tuple[int, ...], input_data_format: Any) -> bool:
    explicit = parse_channel_format(input_data_format)
    if explicit is not None:
        return explicit
    # As the stock processor: 1 or 3 channels, axis 1 before axis 3. RGBA, which it cannot infer, last.
    if shape[1] in _INFERRED_CHANNELS:
        return True
    if shape[3] in _INFERRED_CHANNELS:
        return False
    if _RGBA in (shape[1], shape[3]):
        return shape[3] != _RGBA
    raise InvalidImageError(f"cannot find the channel axis of a video of shape {tuple(shape)}: expected 1, 3 or 4")


def video_frames(video: VideoLike, *, do_convert_rgb: bool = True, input_data_format: Any = None) -> torch.Tensor:
    """One video as a uint8 ``(T, H, W, 3)`` tensor (a view of the input when no conversion is needed).

    Grayscale frames are repeated to RGB; RGBA frames lose an opaque alpha channel. The stock processor
    blends transparent frames in float and then resizes float frames, which vlfast does not reproduce.

    Raises:
        InvalidImageError: wrong type, dtype, rank or an empty video.
        UnsupportedModeError: transparent frames, or a channel count that ``do_convert_rgb=False`` keeps.
    """
    if isinstance(video, (list, tuple)):
        if not video:
            raise InvalidImageError("a video needs at least one frame")
        frames = [_frame_tensor(frame) for frame in video]
        if len({tuple(frame.shape) for frame in frames}) != 1:
            raise InvalidImageError(
                f"the frames of a video differ in shape: {sorted({tuple(f.shape) for f in frames})}"
            )
        clip = torch.stack(frames)
    elif isinstance(video, np.ndarray):
        clip = torch.from_numpy(video)
    elif isinstance(video, torch.Tensor):
        clip = video
    else:
        raise InvalidImageError(
            f"unsupported video type {type(video).__name__}; expected an array, tensor or frame list"
        )
    if clip.dtype != torch.uint8:
        raise InvalidImageError(f"videos must be uint8, got {str(clip.dtype).replace('torch.', '')}")
    if clip.ndim != 4:
        raise InvalidImageError(f"a video must have 4 dimensions (T, H, W, C) or (T, C, H, W), got {tuple(clip.shape)}")
    if _channels_first(tuple(clip.shape), input_data_format):
        clip = clip.permute(0, 2, 3, 1)
    channels = clip.shape[3]
    if channels not in (*_INFERRED_CHANNELS, _RGBA):
        raise InvalidImageError(f"video frames must have 1, 3 or 4 channels, got {channels}")
    if channels != 3 and not do_convert_rgb:
        raise UnsupportedModeError(f"video frames with {channels} channels need do_convert_rgb=True")
    if channels == 1:
        clip = clip.expand(-1, -1, -1, 3).contiguous()
    elif channels == _RGBA:
        if bool((clip[..., 3] < 255).any()):
            raise UnsupportedModeError(
                "transparent RGBA video frames are blended and resized in float by the stock processor, which "
                "vlfast does not reproduce; composite the frames onto a background (uint8 RGB) first"
            )
        clip = clip[..., :3]
    if 0 in clip.shape[:3]:
        raise InvalidImageError(f"video is empty: {clip.shape[0]} frames of {clip.shape[1]}x{clip.shape[2]} pixels")
    return clip


def _batch_of_videos(videos: VideoLike | Sequence[VideoLike]) -> list[VideoLike]:
    if isinstance(videos, (np.ndarray, torch.Tensor)):
        return list(videos) if videos.ndim == 5 else [videos]
    if isinstance(videos, (list, tuple)) and videos:
        is_frame = [
            isinstance(v, PIL.Image.Image) or (isinstance(v, (np.ndarray, torch.Tensor)) and v.ndim < 4) for v in videos
        ]
        return [videos] if all(is_frame) else list(videos)
    raise InvalidImageError(
        f"videos must be a video (4-D array or tensor, list of frames) or a list of them, got {type(videos).__name__}"
    )


def _frame_pixel_limit(
    max_pixels: int, min_pixels: int, num_frames: int, factor: int, temporal_patch_size: int, max_video_tokens: int
) -> int:
    """``cap_pixels_per_frame``: the largest frame area when a whole video may cost ``max_video_tokens``
    tokens (the stock ``Qwen2VLVideoProcessor.resize`` rule, taken from qwen-vl-utils)."""
    total_pixels = int(max_video_tokens * factor * factor * VIDEO_TOKEN_BUDGET_SHARE)
    return max(
        min(max_pixels, total_pixels * temporal_patch_size // num_frames), int(min_pixels * VIDEO_MIN_PIXELS_MARGIN)
    )


def preprocess_videos(
    videos: VideoLike | Sequence[VideoLike],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    engine: str = "auto",
    resample: Filter | str | int = Filter.BICUBIC,
    min_pixels: int = VIDEO_MIN_PIXELS,
    max_pixels: int = VIDEO_MAX_PIXELS,
    max_video_tokens: int | None = None,
    patch_size: int = PATCH_SIZE,
    merge_size: int = MERGE_SIZE,
    temporal_patch_size: int = TEMPORAL_PATCH_SIZE,
    do_resize: bool = True,
    do_rescale: bool = True,
    rescale_factor: float = RESCALE_FACTOR,
    do_normalize: bool = True,
    image_mean: float | Sequence[float] = OPENAI_CLIP_MEAN,
    image_std: float | Sequence[float] = OPENAI_CLIP_STD,
    do_convert_rgb: bool = True,
    input_data_format: str | None = None,
    max_output_bytes: int | None = None,
) -> PreprocessedVideos:
    """Preprocess videos for Qwen2-VL / Qwen2.5-VL exactly as ``Qwen2VLVideoProcessor`` does (on the CPU).

    Args:
        videos: a video - uint8 ``(T, H, W, C)`` / ``(T, C, H, W)`` array or tensor, or a list of frames
            (PIL images, arrays, tensors) - or a list of videos (sizes and lengths may differ).
        device: where ``pixel_values_videos`` is returned (e.g. the model's device).
        dtype: dtype of ``pixel_values_videos``; default: the stock dtype (float32). Other dtypes equal
            the stock result cast with ``.to(dtype)``.
        engine: ``"cpp"``, ``"triton"`` or ``"auto"``.
        min_pixels, max_pixels: area bounds of each frame (the video processor's ``size``).
        max_video_tokens: when given, also cap each frame's area to an even share of this many tokens
            (the stock ``cap_pixels_per_frame=True``).
        max_output_bytes: raise :class:`ImageTooLargeError` before allocating more than this.

    The other arguments mirror the stock processor's options of the same name.

    Example:
        >>> clip = np.zeros((5, 240, 320, 3), np.uint8)
        >>> preprocess_videos(clip).video_grid_thw.tolist()
        [[3, 20, 28]]
    """
    resample = Filter.from_any(resample)
    device, dtype, engine = resolve_run_options(
        Backend.TORCHVISION,
        device,
        dtype,
        engine,
        do_rescale=do_rescale,
        rescale_factor=rescale_factor,
        do_normalize=do_normalize,
        patch_size=patch_size,
        merge_size=merge_size,
        temporal_patch_size=temporal_patch_size,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
    )
    factor = patch_size * merge_size

    clips = [
        video_frames(video, do_convert_rgb=do_convert_rgb, input_data_format=input_data_format)
        for video in _batch_of_videos(videos)
    ]
    jobs: list[FrameJob] = []
    grids: list[list[int]] = []
    original_sizes: list[tuple[int, int, int]] = []
    resized_sizes: list[tuple[int, int]] = []
    rows = 0
    for clip in clips:
        num_frames, height, width = (int(n) for n in clip.shape[:3])
        if do_resize:
            frame_max_pixels = max_pixels
            if max_video_tokens is not None:
                frame_max_pixels = _frame_pixel_limit(
                    max_pixels, min_pixels, num_frames, factor, temporal_patch_size, max_video_tokens
                )
            target = smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=frame_max_pixels)
        else:
            target = (height, width)
        grid_t = -(-num_frames // temporal_patch_size)
        grid = patch_grid(*target, patch_size, merge_size, t=grid_t)
        plan = resample_plan(height, width, *target, resample, Backend.TORCHVISION)
        block_rows = grid.h * grid.w
        for index in range(num_frames):
            slot = index % temporal_patch_size
            # The stock processor pads the clip with copies of its last frame: that frame fills the rest of its block.
            slots = temporal_patch_size - slot if index == num_frames - 1 else 1
            row_offset = rows + (index // temporal_patch_size) * block_rows
            jobs.append(FrameJob(clip[index], plan, row_offset, slot, slots))
        grids.append([grid.t, grid.h, grid.w])
        original_sizes.append((num_frames, height, width))
        resized_sizes.append(target)
        rows += grid.rows

    out = render(
        jobs,
        rows,
        backend=Backend.TORCHVISION,
        device=device,
        dtype=dtype,
        engine=engine,
        do_rescale=do_rescale,
        rescale_factor=rescale_factor,
        do_normalize=do_normalize,
        image_mean=image_mean,
        image_std=image_std,
        patch_size=patch_size,
        merge_size=merge_size,
        temporal_patch_size=temporal_patch_size,
        max_output_bytes=max_output_bytes,
    )
    return PreprocessedVideos(out, torch.tensor(grids, dtype=torch.int64), original_sizes, resized_sizes)


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


class VideoProcessor(_VlfastProcessorMixin, Qwen2VLVideoProcessor):
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
        result = preprocess_videos(
            clips,
            max_video_tokens=self._frame_cap_budget(settings),
            **self._pipeline_options(settings),
        )
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
