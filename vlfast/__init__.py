"""vlfast: bit-exact, fused image and video preprocessing for Qwen2-VL and Qwen2.5-VL.

Example:
    >>> import vlfast
    >>> pixel_values, image_grid_thw = vlfast.preprocess(images, backend="pil", device="cuda", dtype=torch.bfloat16)
"""

from .errors import (
    AspectRatioError,
    DecodeError,
    DeviceError,
    ImageSourceError,
    ImageTooLargeError,
    InvalidImageError,
    UnsupportedModeError,
    UnsupportedOptionError,
    VlfastError,
)
from .plans import Backend, Filter
from .preprocess import Preprocessed, preprocess
from .sizing import smart_resize, smart_resize_qwen_vl_utils
from .tables import normalization_table

__version__ = "0.1.0"

__all__ = [
    "AspectRatioError",
    "Backend",
    "DecodeError",
    "DeviceError",
    "Filter",
    "ImageSourceError",
    "ImageTooLargeError",
    "InvalidImageError",
    "Preprocessed",
    "UnsupportedModeError",
    "UnsupportedOptionError",
    "VlfastError",
    "normalization_table",
    "preprocess",
    "smart_resize",
    "smart_resize_qwen_vl_utils",
]
