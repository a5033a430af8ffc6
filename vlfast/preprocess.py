"""``vlfast.preprocess``: images in, ``pixel_values`` and ``image_grid_thw`` out, bit-exact to the stock processors."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from . import cpu_kernel, staging, triton_engine
from .defaults import (
    IMAGE_MAX_PIXELS,
    IMAGE_MIN_PIXELS,
    MERGE_SIZE,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    PATCH_SIZE,
    RESCALE_FACTOR,
    TEMPORAL_PATCH_SIZE,
)
from .errors import DeviceError, ImageTooLargeError, InvalidImageError, UnsupportedOptionError
from .inputs import ImageLike, is_image_like, to_rgb_uint8
from .layout import patch_grid
from .options import check_positive_ints, check_rescale_factor, parse_device, parse_dtype
from .plans import Backend, Filter, ResamplePlan, parse_backend, resample_plan
from .sizing import smart_resize
from .tables import normalization_table, stock_output_dtype

__all__ = [
    "preprocess_in_chunks",
    "Preprocessed",
    "preprocess",
    "FrameJob",
    "render",
    "resolve_run_options",
    "run_frames",
    "select_engine",
    "ENGINES",
]

#: Executors of a plan: the C++ kernel and the Triton kernels ("auto" picks one by device).
ENGINES = ("auto", "cpp", "triton")


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


@dataclass(frozen=True)
class FrameJob:
    """One uint8 ``(H, W, C)`` frame to resample into ``pixel_values`` rows.

    ``row_offset`` is the first row of the frame's temporal block; the frame fills temporal
    slots ``slot_begin .. slot_begin + slot_count - 1`` (all of them for a still image).
    """

    pixels: torch.Tensor
    plan: ResamplePlan
    row_offset: int
    slot_begin: int
    slot_count: int


def select_engine(engine: str, device: torch.device) -> str:
    """Resolve ``engine`` ("auto", "cpp", "triton") for ``device``, or raise a clear error.

    "auto" takes the Triton kernels for a CUDA device (unless ``TRITON_INTERPRET`` is set, which
    makes them run on CPU tensors only) and the C++ kernel otherwise.
    """
    if engine not in ENGINES:
        raise UnsupportedOptionError(f"engine must be one of {ENGINES}, got {engine!r}")
    interpreted = triton_engine.interpreting()
    if engine == "auto":
        engine = "triton" if device.type == "cuda" and not interpreted and triton_engine.available() else "cpp"
    if engine == "triton":
        if interpreted and device.type != "cpu":
            raise DeviceError(
                f"TRITON_INTERPRET is set: the Triton kernels run on CPU tensors only (got device {device}); "
                "unset it to run them on the GPU"
            )
        if not interpreted and device.type != "cuda":
            raise DeviceError(
                f"engine='triton' needs a CUDA device (got {device}); set TRITON_INTERPRET=1 to run the kernels "
                "on CPU tensors with Triton's interpreter"
            )
        if not triton_engine.available():
            raise DeviceError("engine='triton' needs the triton package and a CUDA device (or TRITON_INTERPRET=1)")
    elif engine == "cpp" and not cpu_kernel.available():
        raise DeviceError("the vlfast C++ extension (vlfast._C) is not built; reinstall vlfast with a C++17 compiler")
    return engine


def resolve_run_options(
    backend: Backend,
    device: torch.device | str,
    dtype: torch.dtype | str | None,
    engine: str,
    *,
    do_rescale: bool,
    rescale_factor: float,
    do_normalize: bool,
    patch_size: int,
    merge_size: int,
    temporal_patch_size: int,
    min_pixels: int,
    max_pixels: int,
) -> tuple[torch.device, torch.dtype, str]:
    """Validate the options images and videos share; return the device, output dtype and engine."""
    device = parse_device(device)
    dtype = stock_output_dtype(backend, do_rescale, do_normalize) if dtype is None else parse_dtype(dtype)
    check_positive_ints(
        patch_size=patch_size,
        merge_size=merge_size,
        temporal_patch_size=temporal_patch_size,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
    )
    check_rescale_factor(do_rescale, rescale_factor)
    return device, dtype, select_engine(engine, device)


def run_frames(
    jobs: Sequence[FrameJob],
    table: torch.Tensor,
    out: torch.Tensor,
    *,
    engine: str,
    patch_size: int,
    merge_size: int,
    temporal_patch_size: int,
) -> None:
    """Write every job into ``out`` with the resolved ``engine`` ("cpp" on the CPU, "triton" on ``out.device``)."""
    if engine == "triton":
        triton_engine.run_batch(
            [job.pixels for job in jobs],
            [job.plan for job in jobs],
            table,
            out,
            [job.row_offset for job in jobs],
            patch_size=patch_size,
            merge_size=merge_size,
            temporal_patch_size=temporal_patch_size,
            slot_begins=[job.slot_begin for job in jobs],
            slot_counts=[job.slot_count for job in jobs],
        )
        return
    for job in jobs:
        cpu_kernel.run_frame(
            job.pixels.numpy(),
            job.plan,
            table,
            out,
            job.row_offset,
            patch_size=patch_size,
            merge_size=merge_size,
            temporal_patch_size=temporal_patch_size,
            slot_begin=job.slot_begin,
            slot_count=job.slot_count,
        )


def _flatten(images: ImageLike | Sequence) -> list[ImageLike]:
    if is_image_like(images):
        return [images]
    if isinstance(images, (list, tuple)):
        flat: list[ImageLike] = []
        for item in images:
            flat.extend(_flatten(item) if isinstance(item, (list, tuple)) else [item])
        return flat
    raise InvalidImageError(
        f"images must be an image or a list of images (PIL, NumPy, torch), got {type(images).__name__}"
    )


def check_output_budget(rows: int, columns: int, dtype: torch.dtype, max_output_bytes: int | None) -> None:
    """Raise :class:`ImageTooLargeError` before allocating an output over ``max_output_bytes``."""
    if max_output_bytes is not None:
        check_positive_ints(max_output_bytes=max_output_bytes)
    size = rows * columns * dtype.itemsize
    if max_output_bytes is not None and size > max_output_bytes:
        raise ImageTooLargeError(
            f"pixel_values would take {size / 2**20:.1f} MiB ({rows} rows), over max_output_bytes="
            f"{max_output_bytes / 2**20:.1f} MiB; split the batch (vlfast.preprocess_in_chunks) or lower max_pixels"
        )


def _empty_on_gpu(rows: int, columns: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``pixel_values`` on a CUDA device, or :class:`ImageTooLargeError` when it has no room.

    Asking the allocator (which frees its cache and retries before it gives up) costs nothing
    when the output fits; querying free memory first costs a driver call and the allocator's
    statistics on every call.
    """
    try:
        return torch.empty((rows, columns), dtype=dtype, device=device)
    except torch.cuda.OutOfMemoryError as error:
        size = rows * columns * dtype.itemsize
        free = torch.cuda.mem_get_info(device)[0]
        raise ImageTooLargeError(
            f"pixel_values would take {size / 2**20:.1f} MiB on {device}, which has {free / 2**20:.1f} MiB free; "
            "split the batch (vlfast.preprocess_in_chunks) or lower max_pixels"
        ) from error


def render(
    jobs: Sequence[FrameJob],
    rows: int,
    *,
    backend: Backend,
    device: torch.device,
    dtype: torch.dtype,
    engine: str,
    do_rescale: bool,
    rescale_factor: float,
    do_normalize: bool,
    image_mean: float | Sequence[float],
    image_std: float | Sequence[float],
    patch_size: int,
    merge_size: int,
    temporal_patch_size: int,
    max_output_bytes: int | None,
) -> torch.Tensor:
    """Check the output fits, allocate ``pixel_values`` (``rows`` rows), run the jobs into it and
    return it on ``device``.

    The Triton engine writes on ``device``; host frames reach it through
    :func:`vlfast.staging.upload_in_chunks`, chunk by chunk, each chunk's kernels queued as soon
    as its upload is. The C++ engine reads host frames and writes into pinned host memory when
    the result goes to a GPU, so the final copy is asynchronous.
    """
    columns = 3 * temporal_patch_size * patch_size * patch_size
    on_gpu = engine == "triton" and device.type == "cuda"
    check_output_budget(rows, columns, dtype, max_output_bytes)
    if engine == "triton":
        work_device = device
        out = _empty_on_gpu(rows, columns, dtype, device) if on_gpu else torch.empty((rows, columns), dtype=dtype)
    elif device.type == "cuda":
        work_device = torch.device("cpu")
        out = torch.empty((rows, columns), dtype=dtype, pin_memory=True)
    else:
        work_device = device
        out = cpu_kernel.empty_output(rows, columns, dtype)
    table = normalization_table(
        backend,
        do_rescale=do_rescale,
        rescale_factor=rescale_factor,
        do_normalize=do_normalize,
        image_mean=image_mean,
        image_std=image_std,
        dtype=dtype,
        device=work_device,
    )
    options = dict(engine=engine, patch_size=patch_size, merge_size=merge_size, temporal_patch_size=temporal_patch_size)
    if on_gpu:
        for chunk, frames in staging.upload_in_chunks([job.pixels for job in jobs], device):
            chunk_jobs = [replace(jobs[index], pixels=frame) for index, frame in zip(chunk, frames, strict=True)]
            run_frames(chunk_jobs, table, out, **options)
    else:
        # The C++ engine reads host memory; the interpreter runs the Triton kernels on CPU tensors.
        host_jobs = [replace(job, pixels=job.pixels.cpu()) for job in jobs]
        run_frames(host_jobs, table, out, **options)
    return out if out.device == device else out.to(device, non_blocking=True)


def model_input_size(
    height: int, width: int, do_resize: bool, factor: int, min_pixels: int, max_pixels: int
) -> tuple[int, int]:
    """``(height, width)`` the model sees: :func:`smart_resize`'s answer, or the size itself without resizing."""
    if not do_resize:
        return height, width
    return smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)


def preprocess_in_chunks(
    images: ImageLike | Sequence[ImageLike], *, max_chunk_bytes: int, **options: Any
) -> Iterator[Preprocessed]:
    """:func:`preprocess` a batch too large for one output, as consecutive chunks of whole images
    whose ``pixel_values`` each take at most ``max_chunk_bytes`` (a single image larger than that
    raises :class:`ImageTooLargeError`). ``options`` are :func:`preprocess`'s.

    Example:
        >>> for chunk in vlfast.preprocess_in_chunks(frames, max_chunk_bytes=2**30, device="cuda"):
        ...     model(pixel_values=chunk.pixel_values, image_grid_thw=chunk.image_grid_thw.cuda())
    """
    backend = parse_backend(options.get("backend", Backend.TORCHVISION))
    patch_size = options.get("patch_size", PATCH_SIZE)
    merge_size = options.get("merge_size", MERGE_SIZE)
    temporal_patch_size = options.get("temporal_patch_size", TEMPORAL_PATCH_SIZE)
    dtype = options.get("dtype")
    dtype = (
        stock_output_dtype(backend, options.get("do_rescale", True), options.get("do_normalize", True))
        if dtype is None
        else parse_dtype(dtype)
    )
    row_bytes = 3 * temporal_patch_size * patch_size**2 * dtype.itemsize
    pictures = [
        to_rgb_uint8(
            image,
            backend,
            do_convert_rgb=options.get("do_convert_rgb", True),
            input_data_format=options.get("input_data_format"),
        )
        for image in _flatten(images)
    ]
    # The chunks are converted (H, W, 3) tensors now: say so, so that a height of 1, 3 or 4 is not
    # mistaken for a channel axis.
    options = {**options, "input_data_format": "channels_last", "max_output_bytes": max_chunk_bytes}
    chunk: list[torch.Tensor] = []
    chunk_bytes = 0
    for pixels in pictures:
        height, width = model_input_size(
            int(pixels.shape[0]),
            int(pixels.shape[1]),
            options.get("do_resize", True),
            patch_size * merge_size,
            IMAGE_MIN_PIXELS if options.get("min_pixels") is None else options["min_pixels"],
            IMAGE_MAX_PIXELS if options.get("max_pixels") is None else options["max_pixels"],
        )
        size = (height // patch_size) * (width // patch_size) * row_bytes
        if chunk and chunk_bytes + size > max_chunk_bytes:
            yield preprocess(chunk, **options)
            chunk, chunk_bytes = [], 0
        chunk.append(pixels)
        chunk_bytes += size
    if chunk:
        yield preprocess(chunk, **options)


def preprocess(
    images: ImageLike | Sequence[ImageLike],
    *,
    backend: Backend | str = Backend.TORCHVISION,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    engine: str = "auto",
    resample: Filter | str | int = Filter.BICUBIC,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
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
    compact: bool = False,
) -> Preprocessed:
    """Preprocess images for Qwen2-VL / Qwen2.5-VL exactly as transformers does, in fused kernels.

    Args:
        images: a PIL image, uint8 NumPy array or torch tensor (HWC or CHW, 1/3/4 channels),
            or a list of them (sizes may differ).
        backend: the stock processor reproduced bit for bit: ``"torchvision"``
            (``Qwen2VLImageProcessor`` on CPU) or ``"pil"`` (``Qwen2VLImageProcessorPil``).
        device: where ``pixel_values`` is returned (e.g. the model's device).
        dtype: dtype of ``pixel_values`` (float32, bfloat16, float16); default: the stock dtype.
            A non-float32 result equals the stock float32 result cast with ``.to(dtype)``.
        engine: ``"cpp"`` (C++ kernel), ``"triton"`` (GPU kernels) or ``"auto"``.
        min_pixels, max_pixels: area bounds of :func:`vlfast.smart_resize` (class defaults
            3136 and 1003520; Qwen2.5-VL checkpoints use 3136 and 12845056).
        max_output_bytes: raise :class:`ImageTooLargeError` before allocating more than this.
        compact: return ``pixel_values`` as uint8 ``(rows, C * patch_size**2)``: the resized
            values before rescale and normalize, each image once (no temporal copies), 8x fewer
            bytes than float32; :func:`vlfast.expand_patches` makes the stock ``pixel_values``
            of them on the model's device. ``dtype`` must then be None.

    The other arguments mirror the stock processor's options of the same name.

    Returns:
        :class:`Preprocessed`; unpacks as ``pixel_values, image_grid_thw``.

    Example:
        >>> import numpy as np, vlfast
        >>> out = vlfast.preprocess(np.zeros((1080, 1920, 3), np.uint8), max_pixels=12845056)
        >>> out.pixel_values.shape, out.image_grid_thw.tolist()
        (torch.Size([10764, 1176]), [[1, 78, 138]])
    """
    backend = parse_backend(backend)
    resample = Filter.from_any(resample)
    min_pixels = IMAGE_MIN_PIXELS if min_pixels is None else min_pixels
    max_pixels = IMAGE_MAX_PIXELS if max_pixels is None else max_pixels
    if compact and dtype is not None:
        raise UnsupportedOptionError(f"compact=True returns uint8 patches; leave dtype unset (got {dtype})")
    device, dtype, engine = resolve_run_options(
        backend,
        device,
        torch.uint8 if compact else dtype,
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

    pictures = [
        to_rgb_uint8(image, backend, do_convert_rgb=do_convert_rgb, input_data_format=input_data_format)
        for image in _flatten(images)
    ]
    if not pictures:
        raise InvalidImageError("no images were given")
    # Compact patches hold each image once, in one temporal slot, before rescale and normalize
    # (the identity table).
    slots = 1 if compact else temporal_patch_size
    jobs: list[FrameJob] = []
    grids: list[list[int]] = []
    original_sizes: list[tuple[int, int]] = []
    resized_sizes: list[tuple[int, int]] = []
    rows = 0
    for pixels in pictures:
        height, width = int(pixels.shape[0]), int(pixels.shape[1])
        target = model_input_size(height, width, do_resize, factor, min_pixels, max_pixels)
        grid = patch_grid(*target, patch_size, merge_size)
        plan = resample_plan(height, width, *target, resample, backend)
        jobs.append(FrameJob(pixels, plan, rows, 0, slots))
        grids.append([1, grid.h, grid.w])
        original_sizes.append((height, width))
        resized_sizes.append(target)
        rows += grid.rows

    out = render(
        jobs,
        rows,
        backend=backend,
        device=device,
        dtype=dtype,
        engine=engine,
        do_rescale=do_rescale and not compact,
        rescale_factor=rescale_factor,
        do_normalize=do_normalize and not compact,
        image_mean=image_mean,
        image_std=image_std,
        patch_size=patch_size,
        merge_size=merge_size,
        temporal_patch_size=slots,
        max_output_bytes=max_output_bytes,
    )
    grid_thw = torch.tensor(grids, dtype=torch.int64)
    return Preprocessed(out, grid_thw, original_sizes, resized_sizes)
