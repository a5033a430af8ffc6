"""Hostile and unusual input through vlfast.load_image and vlfast.preprocess: stock-exact results or typed errors.

Also the lossless-transport guarantee: an image sent as a path, ``file://`` URL, bytes,
``encode_image`` data URI or HTTP URL reaches the model bit-identically, and the JPEG
re-encoding a user might write by hand does not.
"""

from __future__ import annotations

import base64
import functools
import io
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import skimage.data
import torch
from encoded_images import encoded, jpeg_claiming, png_chunk, png_claiming
from transformers import Qwen2VLImageProcessor, Qwen2VLImageProcessorPil

import vlfast
from vlfast import releases
from vlfast.errors import (
    AspectRatioError,
    DecodeError,
    DeviceError,
    ImageTooLargeError,
    InvalidImageError,
    UnsupportedModeError,
    VlfastError,
)
from vlfast.io import encode_image, load_image, stock_decoder

pytest.importorskip("vlfast._C", reason="the C++ extension is not built")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torchvision.io's own deprecation notice

BACKENDS = ["torchvision", "pil"]
STOCK = {"torchvision": Qwen2VLImageProcessor, "pil": Qwen2VLImageProcessorPil}
#: Bound on every network wait in these tests (seconds).
NET_TIMEOUT_S = 5.0


def stock_pixel_values(backend: str, images) -> torch.Tensor:
    return STOCK[backend]()(images=images, return_tensors="pt")["pixel_values"]


@pytest.fixture(scope="module")
def photo() -> PIL.Image.Image:
    return PIL.Image.fromarray(skimage.data.coffee()).resize((150, 100))


# --- corrupt, truncated, empty and non-image bytes --------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_files_are_decode_errors(photo, fmt, backend):
    data = encoded(photo, fmt)
    for keep in (len(data) // 4, len(data) // 2, len(data) - 40):
        with pytest.raises(DecodeError, match="corrupt or truncated|not an image format|corrupt image header"):
            load_image(data[:keep], backend=backend)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_lazy_pil_images_are_typed_errors_in_preprocess(photo, fmt):
    lazy = PIL.Image.open(io.BytesIO(encoded(photo, fmt)[:-60]))  # Pillow decodes on first use
    with pytest.raises(VlfastError, match="truncated"):
        vlfast.preprocess(lazy)


def test_a_closed_pil_image_is_a_typed_error(photo):
    closed = photo.copy()
    closed.close()
    with pytest.raises(InvalidImageError, match=r"cannot be read: Operation on closed image \(was it closed\?\)"):
        vlfast.preprocess(closed)
    with pytest.raises(InvalidImageError, match="closed"):
        vlfast.ImageProcessor(backend="pil")(closed)


@pytest.mark.parametrize("backend", BACKENDS)
def test_corrupt_bytes_decode_or_raise_decode_error(photo, backend):
    rng = np.random.default_rng(0)
    for fmt in ("JPEG", "PNG"):
        data = np.frombuffer(encoded(photo, fmt), np.uint8)
        for _ in range(20):
            corrupt = data.copy()
            where = rng.integers(0, len(data), 8)
            corrupt[where] ^= rng.integers(1, 256, 8, dtype=np.uint8)
            try:
                image = load_image(corrupt.tobytes(), backend=backend)
            except DecodeError:
                continue
            except (ImageTooLargeError, UnsupportedModeError):  # a flipped header size or bit depth
                continue
            assert image.dtype == torch.uint8 and image.shape[0] == 3 and image.shape[1] > 0 and image.shape[2] > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_png_with_corrupt_image_data_is_a_decode_error_not_a_crash(backend):
    """An invalid row filter: torchvision 0.29's own PNG decoder kills the process on this (SIGSEGV)."""
    rows = b"".join(b"\x05" + b"\x80" * 3 * 16 for _ in range(8))  # filter type 5 does not exist
    header = struct.pack(">IIBBBBB", 16, 8, 8, 2, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )
    with pytest.raises(DecodeError, match="corrupt or truncated (PNG )?image"):
        load_image(data, backend=backend)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "is empty"),
        (b"\0" * 1000, "not an image format Pillow recognises"),
        (b"%PDF-1.7\n" + b"x" * 200, "not an image format Pillow recognises"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not an image format Pillow recognises"),
        (png_claiming(0, 10), "not an image format Pillow recognises"),
    ],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_and_non_image_bytes(data, message, backend):
    with pytest.raises(DecodeError, match=message):
        load_image(data, backend=backend)


def test_bytes_given_to_preprocess_are_loaded_as_load_image_loads_them():
    with pytest.raises(DecodeError, match=r"image data \(4 bytes\) is not an image format"):
        vlfast.preprocess(b"\x89PNG")


# --- decompression bombs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bomb", [png_claiming(100_000, 100_000), jpeg_claiming(60_000, 60_000)])
@pytest.mark.parametrize("backend", BACKENDS)
def test_decompression_bombs_are_refused_from_the_header(tmp_path, bomb, backend):
    path = tmp_path / "bomb"
    path.write_bytes(bomb)
    for source in (bomb, path, "data:image/png;base64," + base64.b64encode(bomb).decode()):
        start = time.monotonic()
        with pytest.raises(ImageTooLargeError, match="decompression-bomb"):
            load_image(source, backend=backend)
        assert time.monotonic() - start < 1.0  # nothing was decoded


@pytest.mark.parametrize("backend", BACKENDS)
def test_pixel_limit_below_pillows(backend):
    bomb = png_claiming(8000, 8000)
    with pytest.raises(ImageTooLargeError, match=r"8000x8000 PNG image \(64000000 pixels\), over max_pixels=10000000"):
        load_image(bomb, backend=backend, max_pixels=10_000_000)
    with pytest.raises(ImageTooLargeError, match="raise PIL.Image.MAX_IMAGE_PIXELS and max_pixels"):
        load_image(png_claiming(20_000, 20_000), backend=backend, max_pixels=10**12)


@pytest.mark.filterwarnings("ignore:The given NumPy array is not writable")
def test_oversized_batches_are_refused_before_allocating():
    huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (4000, 6000, 3))  # no memory behind it
    start = time.monotonic()
    with pytest.raises(ImageTooLargeError, match="over max_output_bytes"):
        vlfast.preprocess([huge] * 500, max_output_bytes=2**30)
    assert time.monotonic() - start < 10


# --- unusual modes: exactly the stock conversion -----------------------------------------------------------------


def unusual_modes(photo: PIL.Image.Image) -> dict[str, PIL.Image.Image]:
    gray = np.asarray(photo.convert("L"))
    palette = photo.convert("P")
    palette.info["transparency"] = 7
    return {
        "I;16": PIL.Image.fromarray(gray.astype(np.uint16) * 257),
        "I;16 small values": PIL.Image.fromarray(gray.astype(np.uint16)),
        "CMYK": photo.convert("CMYK"),
        "P with transparency": palette,
        "PA": photo.convert("PA"),
        "LA": photo.convert("LA"),
        "1": photo.convert("1"),
        "F": PIL.Image.fromarray(gray.astype(np.float32) / 255),
        "F 0-255": PIL.Image.fromarray(gray.astype(np.float32)),
        "I": PIL.Image.fromarray(gray.astype(np.int32) * 300 - 20_000),
        "RGBA": PIL.Image.fromarray(np.dstack([np.asarray(photo), 255 - gray])),
        "YCbCr": photo.convert("YCbCr"),
        "LAB": photo.convert("LAB"),
        "HSV": photo.convert("HSV"),
    }


@pytest.mark.parametrize("mode", list(unusual_modes(PIL.Image.new("RGB", (4, 4)))))
@pytest.mark.parametrize("backend", BACKENDS)
def test_in_memory_modes_match_the_stock_processor(photo, mode, backend):
    image = unusual_modes(photo)[mode]
    assert torch.equal(vlfast.preprocess(image, backend=backend).pixel_values, stock_pixel_values(backend, image))


FILE_MODES = {
    "I;16.png": ("I;16", "PNG"),
    "P with transparency.png": ("P with transparency", "PNG"),
    "LA.png": ("LA", "PNG"),
    "1.png": ("1", "PNG"),
    "RGBA.png": ("RGBA", "PNG"),
    "RGBA.webp": ("RGBA", "WEBP"),
    "CMYK.jpg": ("CMYK", "JPEG"),
    "CMYK.tiff": ("CMYK", "TIFF"),
    "F.tiff": ("F", "TIFF"),
    "I.tiff": ("I", "TIFF"),
}


@pytest.mark.parametrize("name", list(FILE_MODES))
@pytest.mark.parametrize("backend", BACKENDS)
def test_files_in_unusual_modes_match_the_stock_processor_given_the_path(tmp_path, photo, name, backend):
    """``preprocess(load_image(path))`` is what the stock processor computes from ``path`` itself."""
    mode, fmt = FILE_MODES[name]
    path = tmp_path / name
    unusual_modes(photo)[mode].save(path, format=fmt)
    if backend == "torchvision" and fmt == "TIFF":  # the stock cannot decode it; vlfast falls back to Pillow
        with pytest.raises((RuntimeError, ValueError), match="Unsupported"):  # torchvision's or torchcodec's
            stock_pixel_values(backend, str(path))
        expected = stock_pixel_values("pil", str(path))
        assert torch.equal(vlfast.preprocess(load_image(path), backend="pil").pixel_values, expected)
        return
    if backend == "torchvision" and mode == "I;16" and stock_decoder() == "torchvision":
        # torchvision's decoder feeds raw 16-bit values on: not reproduced (torchcodec's gives 8 bits)
        with pytest.raises(UnsupportedModeError, match="16 bits per channel"):
            load_image(path, backend=backend)
        return
    expected = stock_pixel_values(backend, str(path))
    assert torch.equal(vlfast.preprocess(load_image(path, backend=backend), backend=backend).pixel_values, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_aspect_ratio_over_200(tmp_path, backend):
    path = tmp_path / "banner.png"
    PIL.Image.new("RGB", (1000, 4), "red").save(path)
    image = load_image(path, backend=backend)
    with pytest.raises(AspectRatioError, match="absolute aspect ratio must be smaller than 200, got 250"):
        vlfast.preprocess(image, backend=backend)
    with pytest.raises(ValueError, match="aspect ratio"):
        stock_pixel_values(backend, str(path))


# --- wrong arrays and tensors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image, error",
    [
        (np.zeros((0, 32, 3), np.uint8), InvalidImageError),
        (np.zeros((32, 0), np.uint8), InvalidImageError),
        (torch.zeros((3, 0, 0), dtype=torch.uint8), InvalidImageError),
        (np.zeros((32, 32, 3), np.float32), InvalidImageError),
        (torch.zeros((32, 32, 3), dtype=torch.int64), InvalidImageError),
        (torch.zeros((32, 32, 3), dtype=torch.bool), InvalidImageError),
        (torch.zeros((32, 32, 3), dtype=torch.complex64), InvalidImageError),
        (np.zeros((32,), np.uint8), InvalidImageError),
        (np.zeros((1, 32, 32, 3), np.uint8), InvalidImageError),
        (np.zeros((32, 32, 5), np.uint8), InvalidImageError),
        (np.zeros((32, 32, 2), np.uint8), InvalidImageError),
        (np.zeros((32, 32, 3), ">u2"), InvalidImageError),
        (np.zeros((32, 32, 3), object), InvalidImageError),
        (torch.zeros((32, 32, 3), dtype=torch.uint8).to_sparse(), InvalidImageError),
        (torch.zeros((32, 32, 3), dtype=torch.uint8, device="meta"), DeviceError),
    ],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_wrong_arrays_and_tensors_are_typed_errors(image, error, backend):
    assert load_image(image) is image  # returned as they are
    with pytest.raises(error):
        vlfast.preprocess(image, backend=backend)


def test_flipped_arrays_are_accepted():
    """``np.fliplr(image)`` (negative strides) is an ordinary image; the PIL-backend stock accepts it."""
    image = np.asarray(PIL.Image.fromarray(skimage.data.astronaut()).resize((64, 48)))
    flipped = image[:, ::-1]
    expected = stock_pixel_values("pil", flipped)
    assert torch.equal(vlfast.preprocess(flipped, backend="pil").pixel_values, expected)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a GPU")
def test_a_missing_gpu_is_a_device_error():
    with pytest.raises(DeviceError):
        vlfast.preprocess(np.zeros((32, 32, 3), np.uint8), device="cuda")


# --- threads ---------------------------------------------------------------------------------------------------


def test_concurrent_calls_match_serial_calls(tmp_path):
    photos = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee()]
    sources = []
    for index, array in enumerate(photos):
        for fmt in ("png", "jpg"):
            path = tmp_path / f"{index}.{fmt}"
            PIL.Image.fromarray(array).save(path)
            sources.append(path)
    jobs = [(source, backend) for source in sources for backend in BACKENDS] * 2

    def run(job):
        source, backend = job
        return vlfast.preprocess(load_image(source, backend=backend), backend=backend).pixel_values

    serial = [run(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(run, jobs))
    assert all(torch.equal(a, b) for a, b in zip(serial, concurrent, strict=True))


# --- lossless transport ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory) -> dict[str, Path]:
    """Real photos saved as PNG and as JPEG."""
    folder = tmp_path_factory.mktemp("photos")
    files = {}
    for name in ("astronaut", "chelsea", "coffee"):
        image = PIL.Image.fromarray(getattr(skimage.data, name)())
        for fmt, suffix in (("PNG", "png"), ("JPEG", "jpg")):
            files[f"{name}.{suffix}"] = folder / f"{name}.{suffix}"
            image.save(files[f"{name}.{suffix}"], format=fmt, quality=90)
    return files


@pytest.fixture(scope="module")
def photo_server(photo_files) -> Iterator[str]:
    """The photos over HTTP on 127.0.0.1, in a thread, shut down after the module."""
    folder = next(iter(photo_files.values())).parent
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=NET_TIMEOUT_S)


def jpeg_round_trip_by_hand(path: Path) -> str:
    """What a user might write to send an image: decode, save as JPEG, base64."""
    buffer = io.BytesIO()
    PIL.Image.open(path).convert("RGB").save(buffer, format="JPEG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize("name", ["astronaut.png", "astronaut.jpg", "chelsea.png", "chelsea.jpg", "coffee.jpg"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_lossless_transport(photo_files, photo_server, name, backend):
    path = photo_files[name]
    transports = {
        "path": str(path),
        "file URL": path.as_uri(),
        "bytes": path.read_bytes(),
        "encode_image data URI": encode_image(path),
        "HTTP URL": f"{photo_server}/{name}",
    }
    results = {
        transport: vlfast.preprocess(
            load_image(source, backend=backend, timeout=NET_TIMEOUT_S), backend=backend
        ).pixel_values
        for transport, source in transports.items()
    }
    expected = stock_pixel_values(backend, str(path))  # the stock processor reading the file itself
    for transport, pixel_values in results.items():
        assert torch.equal(pixel_values, expected), transport
    by_hand = vlfast.preprocess(load_image(jpeg_round_trip_by_hand(path), backend=backend), backend=backend)
    assert not torch.equal(by_hand.pixel_values, expected)  # JPEG re-encoding loses information


@pytest.mark.parametrize("backend", BACKENDS)
def test_lossless_transport_of_in_memory_images(photo, backend):
    rgba = np.dstack([np.asarray(photo), np.arange(150, dtype=np.uint8)[None, :].repeat(100, 0)])
    arrays = (rgba, torch.from_numpy(rgba).permute(2, 0, 1)) if releases.rgb_conversion_composites() else ()
    for image in (photo, photo.convert("LA"), *arrays):
        uri = encode_image(image, backend=backend)
        received = vlfast.preprocess(load_image(uri, backend=backend), backend=backend).pixel_values
        assert torch.equal(received, vlfast.preprocess(image, backend=backend).pixel_values)
        assert torch.equal(received, stock_pixel_values(backend, uri))


def test_read_only_pixels_run_without_a_warning_and_without_a_copy() -> None:
    """``np.asarray(pil_image)`` is read-only: vlfast reads it as it is, silently (torch warns about writing to
    such a tensor once per process, so the calls run in a fresh interpreter with warnings as errors)."""
    import subprocess
    import sys

    script = """
import warnings
warnings.simplefilter("error")
import numpy as np, PIL.Image, torch, vlfast
from vlfast.inputs import to_rgb_uint8
pixels = np.asarray(PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)))
assert not pixels.flags.writeable
assert to_rgb_uint8(pixels).data_ptr() == pixels.ctypes.data  # a view, no copy
assert torch.equal(vlfast.preprocess(pixels).pixel_values, vlfast.preprocess(pixels.copy()).pixel_values)
def video(clip):
    return vlfast.VideoProcessor()(videos=[clip], return_tensors="pt")["pixel_values_videos"]
frames = [pixels] * 2
clip = np.stack(frames)
clip.setflags(write=False)
assert torch.equal(video(frames), video([f.copy() for f in frames])) and torch.equal(video(clip), video(frames))
torch.set_warn_always(True)  # torch then warns at every view of a read-only array, not once
assert torch.equal(vlfast.preprocess(pixels).pixel_values, vlfast.preprocess(pixels.copy()).pixel_values)
print("silent")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "silent"


def test_read_only_views_keep_their_memory_and_leave_torchs_warning_to_the_caller() -> None:
    """A view of read-only pixels is the same memory, kept alive after the caller drops the array; torch's
    once-per-process warning about viewing a read-only array is not spent by vlfast's views, so the caller's
    own first view of one still warns (in a fresh interpreter: that warning is once per process)."""
    import subprocess
    import sys

    script = """
import gc, warnings
import numpy as np, torch
from vlfast.inputs import pixels_view
data = bytes(range(256)) * 3
pixels = np.frombuffer(data, np.uint8).reshape(16, 16, 3)[2:, 1:]  # read-only, strided
assert not pixels.flags.writeable
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    view = pixels_view(pixels)
    assert not caught, [str(w.message) for w in caught]
    assert view.data_ptr() == pixels.ctypes.data and view.stride() == (48, 3, 1)
    expected = torch.tensor(pixels.copy())
    del data, pixels
    gc.collect()
    assert torch.equal(view, expected)
    mine = np.zeros(3, np.uint8)
    mine.setflags(write=False)
    torch.from_numpy(mine)
    assert [str(w.message)[:37] for w in caught] == ["The given NumPy array is not writable"]
print("kept")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "kept"


def test_read_only_views_from_many_threads_leave_the_warning_filters_as_they_were() -> None:
    """With torch warning at every view (``set_warn_always``), vlfast's views of read-only pixels warn not, from
    many threads at once (the decode pool) either, and leave the process's warning filters as they found them
    (in a fresh interpreter: the switch interval and torch's setting are process-wide)."""
    import subprocess
    import sys

    script = """
import sys, threading, warnings
import numpy as np, torch
from vlfast.inputs import pixels_view
torch.set_warn_always(True)
sys.setswitchinterval(1e-6)  # threads switch often, inside the filters' swap too
pixels = np.zeros((4, 4, 3), np.uint8)
pixels.setflags(write=False)
def views():
    for _ in range(3000):
        pixels_view(pixels)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    before = list(warnings.filters)
    threads = [threading.Thread(target=views) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert warnings.filters == before, (len(warnings.filters), len(before))
    assert not caught, [str(w.message) for w in caught]
print("unchanged")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "unchanged"
