"""In-memory images (PIL, NumPy, torch) to uint8 RGB ``(H, W, 3)`` tensors, as the stock processors convert them.

The conversion is part of exactness, and follows the installed transformers
(:func:`vlfast.releases.rgb_conversion_composites`). From 5.21 on, an RGBA array is composited
onto white with float64 and round-half-even by the PIL backend, with float32 and truncation by
the torchvision backend, so each backend's rule is reproduced here; PIL images are converted by
Pillow itself in both backends (``transformers.image_transforms.convert_to_rgb``). Before 5.21,
PIL images get a plain ``convert("RGB")`` and arrays are not converted at all: 1- and 4-channel
arrays, which those releases fail on or keep as they are, are refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import PIL.Image
import torch

from .errors import DecodeError, DeviceError, InvalidImageError, UnsupportedModeError, UnsupportedOptionError
from .pil_memory import rgbx_view
from .plans import Backend, parse_backend
from .releases import inferred_channel_counts, installed_version, rgb_conversion_composites

__all__ = [
    "ImageLike",
    "is_image_like",
    "parse_channel_format",
    "pil_array",
    "pil_pixels",
    "pixels_view",
    "to_rgb_uint8",
]

ImageLike = PIL.Image.Image | np.ndarray | torch.Tensor
_CHANNEL_COUNTS = (1, 3, 4)


def is_image_like(value: Any) -> bool:
    """Whether ``value`` is a single image (as opposed to a list of them)."""
    return isinstance(value, (PIL.Image.Image, np.ndarray, torch.Tensor))


def pil_array(image: PIL.Image.Image) -> np.ndarray:
    """A loaded PIL image's pixels as a writable array, ``(H, W)`` or ``(H, W, C)``: ``np.array(image)``'s values.

    ``np.asarray`` reads Pillow's array interface once, then one copy makes it writable; ``np.array(image)``
    takes the same values about 4x longer (6 ms for a 1080p RGB image on the benchmark machine).
    """
    return np.asarray(image).copy()


class _ReadableMemory:
    """A read-only array's memory offered to NumPy as writable (its array interface, the flag flipped), keeping
    the array alive: torch warns at a view of a read-only array that writing to the tensor would be undefined,
    and vlfast only reads the pixels it views. No process-wide state is touched (no warning filters: those are
    shared by every thread), and torch's warning stays the caller's for arrays they view themselves."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        interface = dict(array.__array_interface__)
        interface["data"] = (interface["data"][0], False)
        self.__array_interface__ = interface


def pixels_view(array: np.ndarray) -> torch.Tensor:
    """A tensor viewing ``array`` (no copy; non-negative strides), a read-only one too, silently: vlfast only
    reads the pixels it is given."""
    if not array.flags.writeable:
        array = np.asarray(_ReadableMemory(array))
    return torch.from_numpy(array)


def pil_pixels(image: PIL.Image.Image) -> np.ndarray:
    """A loaded PIL image's pixels, to be read only: an RGB image's where Pillow keeps them where it exports them
    (:func:`vlfast.pil_memory.rgbx_view`: ``(H, W, 3)`` with strides ``(4W, 4, 1)``), else ``np.asarray``'s
    copy (no second copy to make it writable, which took longer than the whole kernel at 1080p)."""
    view = rgbx_view(image)
    return np.asarray(image) if view is None else view[:, :, :3]


def _pil_to_rgb(image: PIL.Image.Image, do_convert_rgb: bool) -> torch.Tensor:
    """The pixels of ``image`` as the stock converts them, viewed read-only (:func:`pil_pixels`)."""
    try:
        image.load()
    except OSError as error:
        raise DecodeError(f"cannot decode the PIL image: {error}") from error
    except ValueError as error:  # Pillow's "Operation on closed image"
        raise InvalidImageError(f"the PIL image cannot be read: {error} (was it closed?)") from error
    try:
        if not do_convert_rgb:
            rgb = image
        elif rgb_conversion_composites() and ("A" in image.getbands() or image.info.get("transparency") is not None):
            rgba = image.convert("RGBA")
            white = PIL.Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            rgb = PIL.Image.alpha_composite(white, rgba).convert("RGB")
        else:  # convert("RGB") of an RGB image is a copy: skip it
            rgb = image if image.mode == "RGB" else image.convert("RGB")
        array = pil_pixels(rgb)
    except (ValueError, OSError) as error:
        raise UnsupportedModeError(f"cannot convert a PIL image of mode {image.mode!r} to RGB: {error}") from error
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise UnsupportedModeError(
            f"PIL image of mode {image.mode!r} is not 8-bit RGB; pass do_convert_rgb=True to convert it"
        )
    return pixels_view(array)


def parse_channel_format(input_data_format: object) -> bool | None:
    """``input_data_format`` as "channels first?": True, False, or None to infer it from the shape."""
    if input_data_format is None:
        return None
    fmt = str(getattr(input_data_format, "value", input_data_format)).lower()
    if fmt in ("channels_first", "first", "chw"):
        return True
    if fmt in ("channels_last", "last", "hwc"):
        return False
    raise UnsupportedOptionError(
        f"input_data_format must be 'channels_first' or 'channels_last', got {input_data_format!r}"
    )


def _channels_first(shape: tuple[int, ...], input_data_format: object) -> bool:
    explicit = parse_channel_format(input_data_format)
    if explicit is not None:
        return explicit
    # transformers' infer_channel_dimension_format: the first axis wins when both could be channels.
    counts = inferred_channel_counts()
    if shape[0] in counts:
        return True
    if shape[-1] in counts:
        return False
    if _CHANNEL_COUNTS[-1] in (shape[0], shape[-1]):  # RGBA, which this release neither infers nor converts
        raise _unconverted(_CHANNEL_COUNTS[-1])
    raise InvalidImageError(
        f"cannot find the channel axis of an image of shape {tuple(shape)}: expected {' or '.join(map(str, counts))} "
        "channels (or pass input_data_format)"
    )


def _unconverted(channels: int) -> UnsupportedModeError:
    version = ".".join(map(str, installed_version("transformers")))
    return UnsupportedModeError(
        f"transformers {version} does not convert {channels}-channel arrays to RGB (its processors fail on them "
        "or keep the channels as they are; 5.21 and later convert them): pass a 3-channel array or a PIL image"
    )


def _check_not_empty(image_hwc: torch.Tensor) -> None:
    if image_hwc.shape[0] == 0 or image_hwc.shape[1] == 0:
        raise InvalidImageError(f"image is empty: {image_hwc.shape[0]}x{image_hwc.shape[1]} pixels")


def _composite_on_white(image_hwc4: torch.Tensor, backend: Backend) -> torch.Tensor:
    if backend is Backend.PIL:
        # transformers.image_transforms.convert_to_rgb on arrays (float64, np.round).
        array = image_hwc4.cpu().numpy()
        alpha = array[..., 3:4] / 255
        composite = alpha * array[..., :3] + (1 - alpha) * 255
        return torch.from_numpy(np.round(composite).astype(np.uint8)).to(image_hwc4.device)
    # TorchvisionBackend.convert_to_rgb: torchvision to_dtype(scale=True) both ways, float32.
    values = image_hwc4.to(torch.float32).mul_(1.0 / 255)
    composite = values[..., :3] * values[..., 3:] + (1 - values[..., 3:])
    return composite.mul(255 + 1.0 - 1e-3).to(torch.uint8)


def to_rgb_uint8(
    image: ImageLike,
    backend: Backend | str = Backend.TORCHVISION,
    *,
    do_convert_rgb: bool = True,
    input_data_format: str | None = None,
) -> torch.Tensor:
    """One image as a uint8 ``(H, W, 3)`` tensor (a strided view when no conversion is needed; a view of
    read-only memory for a PIL image or a read-only array: read it, do not write it).

    Accepts a PIL image (any mode Pillow converts to RGB), a uint8 NumPy array or torch
    tensor with 1, 3 or 4 channels, channels first or last (inferred as the installed transformers
    does unless ``input_data_format`` says), or a 2-D grayscale array. Tensors stay on their device.

    Raises:
        InvalidImageError: wrong type, dtype, rank, channel count or an empty image.
        UnsupportedModeError: a PIL mode that cannot be converted to RGB; a 1- or 4-channel array
            with transformers < 5.21, which does not convert arrays.
    """
    backend = parse_backend(backend)
    if isinstance(image, PIL.Image.Image):
        tensor = _pil_to_rgb(image, do_convert_rgb)
    elif isinstance(image, (np.ndarray, torch.Tensor)):
        if image.dtype not in (np.uint8, torch.uint8):
            raise InvalidImageError(
                f"images must be uint8, got {str(image.dtype).removeprefix('torch.')}; "
                "convert float images in [0, 1] with (x * 255).round() to uint8 first"
            )
        if isinstance(image, np.ndarray):
            # torch cannot view negative strides (np.fliplr, [::-1]): copy those.
            tensor = pixels_view(image if min(image.strides, default=0) >= 0 else image.copy())
        else:
            if image.layout != torch.strided:
                raise InvalidImageError(f"images must be dense tensors, got layout {image.layout}")
            if image.device.type == "meta":
                raise DeviceError("a meta tensor has no pixels to preprocess")
            tensor = image
        if tensor.ndim == 2:  # grayscale (H, W): no channel axis to infer
            tensor = tensor.unsqueeze(-1)
        elif tensor.ndim != 3:
            raise InvalidImageError(f"an image must have 2 or 3 dimensions, got shape {tuple(tensor.shape)}")
        elif _channels_first(tuple(tensor.shape), input_data_format):
            tensor = tensor.permute(1, 2, 0)
        channels = tensor.shape[2]
        if channels not in _CHANNEL_COUNTS:
            raise InvalidImageError(f"an image must have 1, 3 or 4 channels, got {channels}")
        _check_not_empty(tensor)
        if do_convert_rgb and channels != 3 and not rgb_conversion_composites():
            raise _unconverted(channels)
        if do_convert_rgb:
            if channels == 1:
                tensor = tensor.expand(-1, -1, 3).contiguous()
            elif channels == 4:
                tensor = _composite_on_white(tensor, backend)
        elif channels != 3:
            raise UnsupportedModeError(f"an image with {channels} channels needs do_convert_rgb=True")
    else:
        raise InvalidImageError(
            f"unsupported image type {type(image).__name__}; expected a PIL image, a NumPy array or a torch tensor "
            "(use vlfast.load_image for paths, URLs and bytes)"
        )
    _check_not_empty(tensor)
    return tensor
