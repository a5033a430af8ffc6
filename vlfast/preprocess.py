"""``vlfast.preprocess``: images in, ``pixel_values`` and ``image_grid_thw`` out, bit-exact to the stock processors."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import torch
from typing_extensions import Unpack

from .defaults import IMAGE_MAX_PIXELS, IMAGE_MIN_PIXELS
from .errors import ChunkTooLargeError, InvalidImageError, UnsupportedOptionError, VlfastError
from .inputs import ImageLike, is_image_like, to_rgb_uint8
from .io import ImageSource
from .loader import SourceStream, is_source, load_images
from .options import check_positive_ints
from .pipeline import PipelineKwargs, PipelineOptions, pipeline_options, run_clips
from .plans import Backend

__all__ = ["Preprocessed", "image_options", "model_input_size", "preprocess", "preprocess_in_chunks", "run_images"]


@dataclass
class Preprocessed:
    """What :func:`preprocess` returns.

    Attributes:
        pixel_values: ``(sum(t*h*w), C * temporal_patch_size * patch_size**2)`` on the requested device and dtype.
        image_grid_thw: ``int64 (N, 3)`` grid of each image in patches, on the CPU (like the stock processor's).
        original_sizes: ``(height, width)`` of each input image.
        resized_sizes: ``(height, width)`` of each image as the model sees it.
    """

    pixel_values: torch.Tensor
    image_grid_thw: torch.Tensor
    original_sizes: list[tuple[int, int]] = field(default_factory=list)
    resized_sizes: list[tuple[int, int]] = field(default_factory=list)

    def __iter__(self):
        """Unpack as ``pixel_values, image_grid_thw = vlfast.preprocess(...)``."""
        return iter((self.pixel_values, self.image_grid_thw))


def _flatten(images: ImageSource | Sequence) -> list[ImageSource]:
    if is_image_like(images) or is_source(images):
        return [images]
    if isinstance(images, (list, tuple)):
        flat: list[ImageLike] = []
        for item in images:
            flat.extend(_flatten(item) if isinstance(item, (list, tuple)) else [item])
        return flat
    raise InvalidImageError(
        f"images must be an image (PIL, NumPy, torch), an image source (path, URL, bytes, base64, data URI) or a "
        f"list of them, got {type(images).__name__}"
    )


def image_options(backend: Backend | str = Backend.TORCHVISION, **kwargs: Unpack[PipelineKwargs]) -> PipelineOptions:
    """The checked options of an image call (the stock image processor's ``min_pixels`` / ``max_pixels``)."""
    return pipeline_options("preprocess", backend, IMAGE_MIN_PIXELS, IMAGE_MAX_PIXELS, dict(kwargs))


def model_input_size(height: int, width: int, options: PipelineOptions) -> tuple[int, int]:
    """``(height, width)`` the model sees: the options' size rule's answer, or the size itself without resizing."""
    return options.target_size(height, width)


def _picture(image: ImageLike, options: PipelineOptions) -> torch.Tensor:
    return to_rgb_uint8(
        image, options.backend, do_convert_rgb=options.do_convert_rgb, input_data_format=options.input_data_format
    )


def _pictures(
    images: ImageSource | Sequence[ImageSource], options: PipelineOptions, workers: int | None
) -> list[torch.Tensor]:
    loaded = load_images(_flatten(images), backend=options.backend, workers=workers, copy=False)  # kernels read
    return [_picture(image, options) for image in loaded]


def _run_pictures(pictures: Sequence[torch.Tensor], options: PipelineOptions) -> Preprocessed:
    """The result of uint8 ``(H, W, 3)`` pictures, each a clip of one frame."""
    if not pictures:
        raise InvalidImageError("no images were given")
    original = [(int(p.shape[0]), int(p.shape[1])) for p in pictures]
    resized = [model_input_size(*size, options) for size in original]
    pixel_values, grid_thw = run_clips([[picture] for picture in pictures], resized, options)
    return Preprocessed(pixel_values, grid_thw, original, resized)


def run_images(
    images: ImageSource | Sequence[ImageSource],
    options: PipelineOptions,
    *,
    compact: bool = False,
    workers: int | None = None,
) -> Preprocessed:
    """:func:`preprocess` with options already resolved (:func:`image_options`)."""
    pictures = _pictures(images, options, workers)
    return _run_pictures(pictures, options.compacted() if compact else options)


def _bytes_text(count: int) -> str:
    return f"{count / 2**20:.1f} MiB" if count >= 2**20 else f"{count} bytes"


def _chunk_too_large(index: int, size: int, resized: tuple[int, int], max_chunk_bytes: int) -> ChunkTooLargeError:
    """The error of image ``index``, whose ``pixel_values`` (``size`` bytes, resized to ``resized``) fit no chunk."""
    error = ChunkTooLargeError(
        f"image {index}: its pixel_values would take {_bytes_text(size)} ({resized[0]}x{resized[1]}), over "
        f"max_chunk_bytes={_bytes_text(max_chunk_bytes)} (a chunk holds whole images); raise max_chunk_bytes or "
        "lower max_pixels"
    )
    error.source_index = index  # type: ignore[attr-defined]
    return error


def preprocess_in_chunks(
    images: ImageSource | Iterable[ImageSource],
    *,
    max_chunk_bytes: int,
    backend: Backend | str = Backend.TORCHVISION,
    workers: int | None = None,
    compact: bool = False,
    on_error: Callable[[int, VlfastError], None] | None = None,
    **options: Unpack[PipelineKwargs],
) -> Iterator[Preprocessed]:
    """:func:`preprocess` a batch too large for one output, as consecutive chunks of whole images
    whose ``pixel_values`` each take at most ``max_chunk_bytes`` (a single image larger than that is a
    :class:`ChunkTooLargeError`, raised once the chunk before it is yielded, or handed to ``on_error``).
    ``compact`` and ``options`` are :func:`preprocess`'s. Sources (any iterable of them, read lazily) are
    decoded up to ``workers`` ahead of the kernel, and settled before a CPU kernel runs
    (:class:`vlfast.loader.SourceStream`). With ``on_error``, an image that fails (to load, to be sized, or
    to fit a chunk) is handed to it as ``on_error(index, error)`` and left out of the chunks instead of
    raising; without it, an image that fails to load or to be sized raises at once (the images gathered for
    the next chunk are not run).

    Example:
        >>> for chunk in vlfast.preprocess_in_chunks(frames, max_chunk_bytes=2**30, device="cuda"):
        ...     model(pixel_values=chunk.pixel_values, image_grid_thw=chunk.image_grid_thw.cuda())
    """
    if compact and options.get("dtype") is not None:
        raise UnsupportedOptionError(f"compact=True returns uint8 patches; leave dtype unset (got {options['dtype']})")
    check_positive_ints(max_chunk_bytes=max_chunk_bytes)
    resolved = replace(image_options(backend, **options), max_output_bytes=max_chunk_bytes)
    resolved = resolved.compacted() if compact else resolved
    row_bytes = resolved.layout.columns() * resolved.dtype.itemsize
    on_host = resolved.engine.output_device(resolved.device).type == "cpu"
    chunk: list[torch.Tensor] = []
    chunk_bytes = 0
    flat = is_image_like(images) or is_source(images) or isinstance(images, (list, tuple))
    items = _flatten(images) if flat else images
    # copy=False: Pillow's pixels as read-only views, which only the kernels read
    with SourceStream(items, backend=resolved.backend, workers=workers, on_error=on_error, copy=False) as stream:
        for index, image in stream.indexed():
            try:
                picture = _picture(image, resolved)
                height, width = model_input_size(int(picture.shape[0]), int(picture.shape[1]), resolved)
            except VlfastError as error:
                if on_error is None:
                    raise
                on_error(index, error)
                continue
            size = (height // resolved.layout.patch_size) * (width // resolved.layout.patch_size) * row_bytes
            too_large = size > max_chunk_bytes
            if too_large and on_error is not None:
                on_error(index, _chunk_too_large(index, size, (height, width), max_chunk_bytes))
                continue
            if chunk and (too_large or chunk_bytes + size > max_chunk_bytes):  # the chunk so far is handed over
                if on_host:
                    stream.settle()  # the C++ kernel gets the cores: no decode runs beside it
                yield _run_pictures(chunk, resolved)
                chunk, chunk_bytes = [], 0
            if too_large:
                raise _chunk_too_large(index, size, (height, width), max_chunk_bytes)
            chunk.append(picture)
            chunk_bytes += size
        if chunk:
            yield _run_pictures(chunk, resolved)


def preprocess(
    images: ImageSource | Sequence[ImageSource],
    *,
    backend: Backend | str = Backend.TORCHVISION,
    compact: bool = False,
    workers: int | None = None,
    **options: Unpack[PipelineKwargs],
) -> Preprocessed:
    """Preprocess images for Qwen2-VL / Qwen2.5-VL exactly as transformers does, in fused kernels.

    Args:
        images: a PIL image, uint8 NumPy array or torch tensor (HWC or CHW, 1/3/4 channels), an
            encoded source :func:`vlfast.load_image` reads (path, URL, bytes, base64, data URI: decoded as
            the stock processor of ``backend`` decodes it, under the source policy), or a list of them
            (sizes may differ).
        backend: the stock processor reproduced bit for bit: ``"torchvision"``
            (``Qwen2VLImageProcessor`` on CPU) or ``"pil"`` (``Qwen2VLImageProcessorPil``).
        compact: return ``pixel_values`` as uint8 ``(rows, C * patch_size**2)``: the resized
            values before rescale and normalize, each image once (no temporal copies), 8x fewer
            bytes than float32; :func:`vlfast.expand_patches` makes the stock ``pixel_values``
            of them on the model's device. ``dtype`` must then be None.
        workers: threads that decode the encoded sources (default: the cores this process may use).
            The C++ kernel runs after them on torch's threads (``torch.set_num_threads``), never
            beside them, so the two do not oversubscribe the cores.
        options: the keyword arguments of :class:`~vlfast.pipeline.PipelineKwargs`:
        device: where ``pixel_values`` is returned (e.g. the model's device).
        dtype: dtype of ``pixel_values`` (float32, bfloat16, float16); default: the stock dtype.
            A non-float32 result equals the stock float32 result cast with ``.to(dtype)``.
        engine: ``"cpp"`` (C++ kernel), ``"triton"`` (GPU kernels), ``"reference"`` (the NumPy
            definition, slow) or ``"auto"`` (Triton for a CUDA device, C++ otherwise).
        min_pixels, max_pixels: area bounds of :func:`vlfast.smart_resize` (class defaults
            3136 and 1003520; Qwen2.5-VL checkpoints use 3136 and 12845056).
        max_output_bytes: raise :class:`ImageTooLargeError` before allocating more than this.

    The other arguments mirror the stock processor's options of the same name.

    Returns:
        :class:`Preprocessed`; unpacks as ``pixel_values, image_grid_thw``.

    Example:
        >>> import numpy as np, vlfast
        >>> out = vlfast.preprocess(np.zeros((1080, 1920, 3), np.uint8), max_pixels=12845056)
        >>> out.pixel_values.shape, out.image_grid_thw.tolist()
        (torch.Size([10764, 1176]), [[1, 78, 138]])
    """
    if compact and options.get("dtype") is not None:
        raise UnsupportedOptionError(f"compact=True returns uint8 patches; leave dtype unset (got {options['dtype']})")
    return run_images(images, image_options(backend, **options), compact=compact, workers=workers)
