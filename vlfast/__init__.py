"""vlfast: bit-exact, fused image and video preprocessing for the Qwen-VL family (Qwen2-VL, Qwen2.5-VL, Qwen3-VL,
Qwen3.5) and GLM-4.1V / GLM-4.6V.

Example:
    >>> import vlfast
    >>> pixel_values, image_grid_thw = vlfast.preprocess(images, backend="pil", device="cuda", dtype=torch.bfloat16)
"""

from .eager import eager, eager_generator
from .errors import (
    AspectRatioError,
    ChunkTooLargeError,
    DecodeError,
    DeviceError,
    ImageSourceError,
    ImageTooLargeError,
    InvalidCoordinatesError,
    InvalidImageError,
    SourceNotAllowedError,
    SourceTimeoutError,
    SourceTooLargeError,
    UnsupportedModeError,
    UnsupportedOptionError,
    VlfastError,
)
from .plans import Backend, Filter
from .preprocess import Preprocessed
from .preprocess import preprocess as _preprocess
from .preprocess import preprocess_in_chunks as _preprocess_in_chunks
from .sizing import smart_resize, smart_resize_qwen_vl_utils
from .tables import normalization_table

preprocess = eager(_preprocess)  # run eagerly inside a torch.compile'd caller (vlfast.eager)
preprocess_in_chunks = eager_generator(_preprocess_in_chunks)

__version__ = "0.1.0"

# Imported on first use, so that ``import vlfast`` stays light (no transformers, no HTTP stack).
_LAZY_EXPORTS = {
    "ImageProcessor": "processor",
    "patch_processor": "processor",
    "from_pretrained_processor": "processor",
    "VideoProcessor": "processor",
    "preprocess_videos": "video",
    "expand_patches": "compact",
    "load_image": "io",
    "encode_image": "io",
    "SourcePolicy": "sources",
    "set_source_policy": "sources",
    "to_model_coords": "coords",
    "to_original_coords": "coords",
    "to_relative_1000": "coords",
    "from_relative_1000": "coords",
    "model_sizes_from_grid": "coords",
}


def __getattr__(name: str):
    module = _LAZY_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vlfast' has no attribute {name!r}")
    import inspect
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    if inspect.isfunction(value):
        value = eager(value)
    globals()[name] = value
    return value


__all__ = [
    "AspectRatioError",
    "Backend",
    "ChunkTooLargeError",
    "DecodeError",
    "DeviceError",
    "Filter",
    "ImageSourceError",
    "ImageTooLargeError",
    "InvalidCoordinatesError",
    "InvalidImageError",
    "Preprocessed",
    "SourceNotAllowedError",
    "SourceTimeoutError",
    "SourceTooLargeError",
    "UnsupportedModeError",
    "UnsupportedOptionError",
    "VlfastError",
    "normalization_table",
    *_LAZY_EXPORTS,
    "preprocess",
    "preprocess_in_chunks",
    "smart_resize",
    "smart_resize_qwen_vl_utils",
]
