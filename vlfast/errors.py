"""Typed errors. Every error vlfast raises on bad input derives from :class:`VlfastError`.

Each also derives from the builtin a caller would expect (``ValueError``, ``TypeError``...),
so code written against the stock processor's exceptions keeps working.
"""

from __future__ import annotations

__all__ = [
    "VlfastError",
    "InvalidImageError",
    "UnsupportedModeError",
    "AspectRatioError",
    "ImageTooLargeError",
    "ChunkTooLargeError",
    "DecodeError",
    "UnsupportedOptionError",
    "DeviceError",
    "ImageSourceError",
    "InvalidCoordinatesError",
    "SourceNotAllowedError",
    "SourceTimeoutError",
    "SourceTooLargeError",
]


class VlfastError(Exception):
    """Base class of every error raised by vlfast."""


class InvalidImageError(VlfastError, ValueError):
    """An image array or tensor has the wrong dtype, shape, size or layout."""


class UnsupportedModeError(VlfastError, ValueError):
    """An image mode (PIL mode or channel count) that cannot be converted to RGB."""


class AspectRatioError(VlfastError, ValueError):
    """The image's aspect ratio exceeds what the model accepts (200)."""


class ImageTooLargeError(VlfastError, ValueError):
    """An image or batch exceeds a configured pixel or memory limit."""


class ChunkTooLargeError(ImageTooLargeError):
    """One image whose ``pixel_values`` alone exceed :func:`vlfast.preprocess_in_chunks`' ``max_chunk_bytes``."""


class DecodeError(VlfastError, ValueError):
    """Bytes that are not a decodable image (corrupt, truncated or not an image)."""


class UnsupportedOptionError(VlfastError, ValueError):
    """An option value vlfast (or the stock backend it reproduces) does not support."""


class DeviceError(VlfastError, RuntimeError):
    """A device that is unavailable or does not match what the call requires."""


class ImageSourceError(VlfastError, ValueError):
    """An image source (path, URL, data URI) that cannot be read."""


class InvalidCoordinatesError(VlfastError, ValueError):
    """Coordinates or sizes that cannot be mapped: wrong shape, non-finite, an inverted box, a bad size."""


class SourceNotAllowedError(ImageSourceError):
    """A source the source policy does not allow: its kind, host, network address or directory."""


class SourceTimeoutError(ImageSourceError):
    """A download that did not finish within the policy's deadline."""


class SourceTooLargeError(ImageSourceError, ImageTooLargeError):
    """A source with more bytes than the policy's ``max_bytes`` (after HTTP decompression too)."""
