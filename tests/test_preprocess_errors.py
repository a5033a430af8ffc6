"""Bad input to vlfast.preprocess raises a typed vlfast error that names the problem."""

import numpy as np
import pytest
import torch

import vlfast
from vlfast import (
    AspectRatioError,
    ChunkTooLargeError,
    DecodeError,
    DeviceError,
    ImageTooLargeError,
    InvalidImageError,
    UnsupportedModeError,
    UnsupportedOptionError,
    VlfastError,
    releases,
)

pytest.importorskip("vlfast._C", reason="the C++ extension is not built")

RGB = np.zeros((40, 60, 3), np.uint8)


@pytest.mark.parametrize(
    "image, error, message",
    [
        (np.zeros((40, 60, 3), np.float32), InvalidImageError, "images must be uint8, got float32"),
        (torch.zeros((3, 40, 60), dtype=torch.int16), InvalidImageError, "images must be uint8, got int16"),
        (np.zeros((40, 0, 3), np.uint8), InvalidImageError, "image is empty: 40x0 pixels"),
        (np.zeros((0, 0, 3), np.uint8), InvalidImageError, "image is empty"),
        (np.zeros((40, 60, 2), np.uint8), InvalidImageError, "cannot find the channel axis"),
        (np.zeros((40, 60, 3, 1), np.uint8), InvalidImageError, "must have 2 or 3 dimensions"),
        (np.zeros((2, 500, 3), np.uint8), AspectRatioError, "absolute aspect ratio must be smaller than 200"),
        ("not-an-image", DecodeError, "base64 string 'not-an-image' is not an image format"),  # a source, loaded
        (42, InvalidImageError, r"images must be an image \(PIL, NumPy, torch\), an image source"),
        ([RGB, 42], InvalidImageError, "unsupported image type int"),
        ([], InvalidImageError, "no images were given"),
    ],
)
def test_bad_images(image, error, message):
    with pytest.raises(error, match=message):
        vlfast.preprocess(image)


def test_all_errors_are_vlfast_errors_and_value_errors():
    with pytest.raises(VlfastError):
        vlfast.preprocess(np.zeros((40, 60, 3), np.float64))
    with pytest.raises(ValueError):  # code written against the stock's ValueError keeps working
        vlfast.preprocess(np.zeros((1, 300, 3), np.uint8), input_data_format="channels_last")


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"engine": "cuda-magic"}, UnsupportedOptionError, "engine must be one of"),
        ({"dtype": torch.int32}, UnsupportedOptionError, "dtype must be one of"),
        ({"backend": "opencv"}, ValueError, "opencv"),
        ({"resample": "spline"}, UnsupportedOptionError, "unknown resample filter"),
        ({"resample": "box", "backend": "torchvision"}, UnsupportedOptionError, "not supported"),
        ({"patch_size": 0}, UnsupportedOptionError, "patch_size must be a positive integer"),
        ({"image_std": [0.5, 0.0, 0.5]}, UnsupportedOptionError, "division by zero"),
        ({"image_mean": [0.5, 0.5]}, UnsupportedOptionError, "image_mean must have 3 elements"),
        ({"input_data_format": "sideways"}, UnsupportedOptionError, "input_data_format must be"),
        ({"max_output_bytes": 1000}, ImageTooLargeError, "over max_output_bytes"),
        ({"max_output_bytes": "1"}, UnsupportedOptionError, "max_output_bytes must be a positive integer"),
        ({"max_output_bytes": 0}, UnsupportedOptionError, "max_output_bytes must be a positive integer"),
        ({"do_resize": False}, InvalidImageError, "not a multiple of patch_size\\*merge_size=28"),
    ],
)
def test_bad_options(options, error, message):
    with pytest.raises(error, match=message):
        vlfast.preprocess(RGB, **options)


def test_triton_engine_without_gpu_or_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(DeviceError, match="engine='triton' needs a CUDA device"):
        vlfast.preprocess(RGB, engine="triton")


def test_unconvertible_channel_count_without_rgb_conversion():
    with pytest.raises(UnsupportedModeError, match="needs do_convert_rgb=True"):
        vlfast.preprocess(np.zeros((40, 60, 4), np.uint8), do_convert_rgb=False, input_data_format="channels_last")


@pytest.mark.skipif(releases.rgb_conversion_composites(), reason="transformers >= 5.21 converts 1/4-channel arrays")
@pytest.mark.parametrize("shape", [(40, 60), (40, 60, 1), (1, 40, 60), (40, 60, 4), (4, 40, 60)])
def test_arrays_the_installed_release_does_not_convert_are_refused(shape):
    with pytest.raises(UnsupportedModeError, match=r"transformers 5\.\d+\.\d+ does not convert [14]-channel arrays"):
        vlfast.preprocess(np.zeros(shape, np.uint8))


def test_non_contiguous_inputs_are_accepted():
    base = np.random.default_rng(0).integers(0, 256, (90, 130, 3), dtype=np.uint8)
    strided = base[::2, ::3]
    assert not strided.flags.c_contiguous
    assert torch.equal(vlfast.preprocess(strided).pixel_values, vlfast.preprocess(strided.copy()).pixel_values)


def test_chunks_are_whole_images_within_the_budget_and_equal_one_call():
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(90, 120), (300, 200), (56, 56), (3, 400)]]
    whole = vlfast.preprocess(images, input_data_format="channels_last")
    budget = 320 * 1176 * 4
    chunks = list(vlfast.preprocess_in_chunks(images, max_chunk_bytes=budget, input_data_format="channels_last"))
    assert len(chunks) > 1
    assert all(chunk.pixel_values.numel() * 4 <= budget for chunk in chunks)
    assert torch.equal(torch.cat([chunk.pixel_values for chunk in chunks]), whole.pixel_values)
    assert torch.equal(torch.cat([chunk.image_grid_thw for chunk in chunks]), whole.image_grid_thw)


def test_a_single_image_over_the_chunk_budget_raises_or_is_reported():
    """Found when the image is sized: raised once the chunk before it is yielded, or handed to ``on_error`` while
    the images that fit still run; a ChunkTooLargeError (an ImageTooLargeError) naming the image."""
    small, large = RGB[:28, :28], np.zeros((112, 112, 3), np.uint8)
    budget = 2 * 16 * 1176 * 4  # two 28x28 images (each resized to 56x56: 16 rows)
    chunks = vlfast.preprocess_in_chunks([small, small, large, small], max_chunk_bytes=budget)
    assert torch.equal(next(chunks).pixel_values, vlfast.preprocess([small, small]).pixel_values)
    with pytest.raises(ChunkTooLargeError, match=r"^image 2: its pixel_values would take 301056 bytes \(112x112\), "):
        next(chunks)
    with pytest.raises(ImageTooLargeError, match=r"over max_chunk_bytes=100 bytes \(a chunk holds whole images\)"):
        list(vlfast.preprocess_in_chunks([RGB, RGB], max_chunk_bytes=100))
    reported = []
    chunks = list(
        vlfast.preprocess_in_chunks(
            [small, large, small, small], max_chunk_bytes=budget, on_error=lambda i, error: reported.append((i, error))
        )
    )
    assert [(index, type(error), error.source_index) for index, error in reported] == [(1, ChunkTooLargeError, 1)]
    assert len(chunks) == 2
    assert torch.equal(torch.cat([c.pixel_values for c in chunks]), vlfast.preprocess([small] * 3).pixel_values)
    assert issubclass(ChunkTooLargeError, ImageTooLargeError)
    for bad in (0, "1", 1.5):
        with pytest.raises(UnsupportedOptionError, match="max_chunk_bytes must be a positive integer"):
            list(vlfast.preprocess_in_chunks([RGB], max_chunk_bytes=bad))


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"device": "gpu"}, DeviceError, "invalid device 'gpu'"),
        ({"device": "meta"}, DeviceError, "device must be 'cpu' or a CUDA device"),
        ({"max_pixels": 0}, UnsupportedOptionError, "max_pixels must be a positive integer"),
        ({"min_pixels": "x"}, UnsupportedOptionError, "min_pixels must be a positive integer"),
        ({"rescale_factor": "a"}, UnsupportedOptionError, "rescale_factor must be a finite non-zero number"),
        ({"dtype": "complex64"}, UnsupportedOptionError, "dtype must be one of"),
        ({"image_mean": None}, UnsupportedOptionError, "image_mean must be a number or 3 numbers, got None"),
        ({"image_std": ["a"] * 3}, UnsupportedOptionError, "image_std must be a number or 3 numbers"),
    ],
)
def test_more_bad_options_are_typed(options, error, message):
    with pytest.raises(error, match=message):
        vlfast.preprocess(RGB, **options)


def test_dtype_by_name_and_numpy_integer_sizes():
    out = vlfast.preprocess(RGB, dtype="bfloat16", max_pixels=np.int64(1003520))
    assert out.pixel_values.dtype == torch.bfloat16
    assert vlfast.smart_resize(np.int64(1080), np.int32(1920)) == (728, 1316)


@pytest.mark.skipif(not releases.rgb_conversion_composites(), reason="transformers < 5.21 does not convert them")
def test_grayscale_2d_arrays_keep_their_orientation():
    """A 2-D array is (H, W) even when H is 1, 3 or 4 (it has no channel axis to infer)."""
    gray = np.random.default_rng(0).integers(0, 256, (3, 150), dtype=np.uint8)
    assert vlfast.preprocess(gray).original_sizes == [(3, 150)]


def test_every_engine_gives_the_reference_engines_bits():
    """``engine="reference"`` runs the NumPy definition end to end; the C++ engine must agree bit for bit."""
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (61, 83, 3), dtype=np.uint8), rng.integers(0, 256, (30, 200, 3), dtype=np.uint8)]
    for dtype in (torch.float32, torch.bfloat16):
        reference = vlfast.preprocess(images, engine="reference", dtype=dtype, backend="pil")
        cpp = vlfast.preprocess(images, engine="cpp", dtype=dtype, backend="pil")
        assert torch.equal(reference.pixel_values, cpp.pixel_values)
        assert torch.equal(reference.image_grid_thw, cpp.image_grid_thw)
