"""``vlfast.video``: videos in, ``pixel_values_videos`` and ``video_grid_thw`` out, bit-exact to the stock
``Qwen2VLVideoProcessor`` (which Qwen2-VL and Qwen2.5-VL use), and with ``size_rule="frames"`` to
``Qwen3VLVideoProcessor`` / ``Glm4vVideoProcessor`` / ``Glm46VVideoProcessor``, whose ``smart_resize`` counts the
clip's frames in the pixel budget (:func:`vlfast.sizing.smart_resize_frames`); the other steps are the same.

What the stock video processor computes (transformers 5.17 - 5.23):

- frames are uint8 ``(T, C, H, W)`` tensors resized with torchvision's antialiased uint8 kernel (the
  torchvision image backend's arithmetic, on the CPU), to ``smart_resize`` of the frame size with the
  video's own ``size`` (default 128*28*28 .. 768*28*28 pixels); then the fused rescale + normalize;
- the frame count is padded to a multiple of ``temporal_patch_size`` by repeating the last frame;
- rows are ``(temporal block, h-block, w-block, mh, mw)`` and columns ``(c, t, y, x)``, so frame ``f``
  fills slot ``f % T`` of the rows of temporal block ``f // T``;
- frames are sampled only when ``do_sample_frames=True`` (default False), by ``num_frames`` or ``fps``.

Here a video is a clip of frames on the path images take (:func:`vlfast.pipeline.run_clips`): each frame
one job, the last one also filling the padding slots, run by the engine straight into the output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import PIL.Image
import torch
from typing_extensions import Unpack

from .defaults import VIDEO_MAX_PIXELS, VIDEO_MIN_PIXELS, VIDEO_MIN_PIXELS_MARGIN, VIDEO_TOKEN_BUDGET_SHARE
from .errors import InvalidImageError, UnsupportedModeError
from .inputs import ImageLike, parse_channel_format, pixels_view
from .pipeline import PipelineKwargs, PipelineOptions, pipeline_options, run_clips
from .plans import Backend
from .sizing import SizeRule

__all__ = ["PreprocessedVideos", "VideoLike", "preprocess_videos", "run_videos", "video_frames", "video_options"]

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
    # Read-only arrays (np.asarray: Pillow's packed copy), stacked into a tensor of their own; not views of Pillow's
    # RGBX memory (vlfast.pil_memory), which the stack would copy pixel by pixel.
    if isinstance(frame, PIL.Image.Image):
        return pixels_view(np.asarray(frame if frame.mode in ("RGB", "RGBA") else frame.convert("RGB")))
    if isinstance(frame, np.ndarray):
        frame = pixels_view(frame)
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
        clip = pixels_view(video)
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
    max_pixels: float, min_pixels: float, num_frames: int, factor: int, temporal_patch_size: int, max_video_tokens: int
) -> float:
    """``cap_pixels_per_frame`` of ``Qwen2VLVideoProcessor``: the largest frame area when a whole video may cost
    ``max_video_tokens`` tokens (qwen-vl-utils' rule); the budget of :func:`smart_resize`."""
    total_pixels = int(max_video_tokens * factor * factor * VIDEO_TOKEN_BUDGET_SHARE)
    return max(
        min(max_pixels, total_pixels * temporal_patch_size // num_frames), int(min_pixels * VIDEO_MIN_PIXELS_MARGIN)
    )


def _clip_pixel_limit(
    max_pixels: float, min_pixels: float, num_frames: int, factor: int, max_video_tokens: int
) -> float:
    """``cap_pixels_per_frame`` of ``Qwen3VLVideoProcessor``: each frame at most ``max_video_tokens`` tokens or
    an even share of ``max_pixels``, at least ``1.05 * min_pixels``; the budget of the whole clip, as
    :func:`smart_resize_frames` counts it."""
    frame_cap = max_video_tokens * factor * factor
    per_frame = max(min(frame_cap, max_pixels // num_frames), int(min_pixels * VIDEO_MIN_PIXELS_MARGIN))
    return per_frame * num_frames


def video_options(**kwargs: Unpack[PipelineKwargs]) -> PipelineOptions:
    """The checked options of a video call (the stock video processor's ``min_pixels`` / ``max_pixels``;
    its arithmetic is torchvision's)."""
    return pipeline_options("preprocess_videos", Backend.TORCHVISION, VIDEO_MIN_PIXELS, VIDEO_MAX_PIXELS, dict(kwargs))


def run_videos(
    videos: VideoLike | Sequence[VideoLike], options: PipelineOptions, *, max_video_tokens: int | None = None
) -> PreprocessedVideos:
    """:func:`preprocess_videos` with options already resolved (:func:`video_options`)."""
    clips = [
        video_frames(video, do_convert_rgb=options.do_convert_rgb, input_data_format=options.input_data_format)
        for video in _batch_of_videos(videos)
    ]
    original = [(int(clip.shape[0]), int(clip.shape[1]), int(clip.shape[2])) for clip in clips]
    resized = [_frame_size(*size, options, max_video_tokens) for size in original]
    pixel_values, grid_thw = run_clips(clips, resized, options)
    return PreprocessedVideos(pixel_values, grid_thw, original, resized)


def _frame_size(
    num_frames: int, height: int, width: int, options: PipelineOptions, max_video_tokens: int | None
) -> tuple[int, int]:
    """The size each frame of a clip is resized to, by the options' size rule, within the frame cap of that
    rule's stock video processor when ``max_video_tokens`` is given."""
    max_pixels = None
    if max_video_tokens is not None:
        layout = options.layout
        if options.size_rule is SizeRule.FRAMES:
            max_pixels = _clip_pixel_limit(
                options.max_pixels, options.min_pixels, num_frames, layout.factor, max_video_tokens
            )
        else:
            max_pixels = _frame_pixel_limit(
                options.max_pixels,
                options.min_pixels,
                num_frames,
                layout.factor,
                layout.temporal_patch_size,
                max_video_tokens,
            )
    return options.target_size(height, width, num_frames=num_frames, max_pixels=max_pixels)


def preprocess_videos(
    videos: VideoLike | Sequence[VideoLike],
    *,
    max_video_tokens: int | None = None,
    **options: Unpack[PipelineKwargs],
) -> PreprocessedVideos:
    """Preprocess videos for Qwen2-VL / Qwen2.5-VL exactly as ``Qwen2VLVideoProcessor`` does (on the CPU).

    Args:
        videos: a video - uint8 ``(T, H, W, C)`` / ``(T, C, H, W)`` array or tensor, or a list of frames
            (PIL images, arrays, tensors) - or a list of videos (sizes and lengths may differ).
        device: where ``pixel_values_videos`` is returned (e.g. the model's device).
        dtype: dtype of ``pixel_values_videos``; default: the stock dtype (float32). Other dtypes equal
            the stock result cast with ``.to(dtype)``.
        engine: ``"cpp"``, ``"triton"``, ``"reference"`` or ``"auto"`` (see :func:`vlfast.preprocess`).
        min_pixels, max_pixels: area bounds of each frame (the video processor's ``size``); of the whole clip
            with ``size_rule="frames"``.
        size_rule: ``"qwen2_vl"`` (default) or ``"frames"`` (Qwen3-VL, GLM-4.1V / GLM-4.6V videos).
        max_video_tokens: when given, also cap each frame's area to an even share of this many tokens
            (the stock ``cap_pixels_per_frame=True``, by the rule of the size rule's stock class).
        max_output_bytes: raise :class:`ImageTooLargeError` before allocating more than this.

    The other arguments mirror the stock processor's options of the same name.

    Example:
        >>> clip = np.zeros((5, 240, 320, 3), np.uint8)
        >>> preprocess_videos(clip).video_grid_thw.tolist()
        [[3, 20, 28]]
    """
    return run_videos(videos, video_options(**options), max_video_tokens=max_video_tokens)
