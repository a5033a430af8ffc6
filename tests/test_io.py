"""vlfast.io: every source decodes to what the stock loaders decode, with typed errors for bad sources."""

from __future__ import annotations

import base64
import io
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import skimage.data
import torch
from encoded_images import encoded, exif, png_chunk
from transformers.image_utils import load_image as stock_load_image
from transformers.image_utils import load_image_as_tensor as stock_load_image_as_tensor
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from vlfast import releases
from vlfast.errors import (
    DecodeError,
    ImageSourceError,
    ImageTooLargeError,
    InvalidImageError,
    UnsupportedModeError,
    UnsupportedOptionError,
)
from vlfast.inputs import pil_array, to_rgb_uint8
from vlfast.io import encode_image, load_image, stock_decoder

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torchvision.io's own deprecation notice

EXIF_ORIENTATION = 0x0112
#: Bound on every network wait in these tests (seconds).
NET_TIMEOUT_S = 0.5


def hwc(image: torch.Tensor) -> np.ndarray:
    """A decoded ``(3, H, W)`` tensor as an ``(H, W, 3)`` array, to compare with PIL images."""
    assert image.dtype == torch.uint8 and image.ndim == 3 and image.shape[0] == 3
    return image.permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def cat() -> PIL.Image.Image:
    return PIL.Image.fromarray(skimage.data.chelsea())  # 451x300, a real photo


def _image_zoo(cat: PIL.Image.Image) -> dict[str, bytes]:
    small = cat.resize((120, 80))
    gray = np.asarray(small.convert("L"))
    rgba = np.dstack([np.asarray(small), np.linspace(0, 255, 120, dtype=np.uint8)[None, :].repeat(80, 0)])
    return {
        "jpeg": encoded(cat, "JPEG", quality=90),
        "jpeg_exif6": encoded(cat, "JPEG", quality=90, exif=exif(6)),
        "jpeg_exif3": encoded(cat, "JPEG", exif=exif(3)),
        "jpeg_gray": encoded(small.convert("L"), "JPEG"),
        "jpeg_cmyk": encoded(small.convert("CMYK"), "JPEG"),
        "jpeg_progressive": encoded(cat, "JPEG", progressive=True),
        "png": encoded(cat, "PNG"),
        "png_rgba": encoded(PIL.Image.fromarray(rgba), "PNG"),
        "png_la": encoded(PIL.Image.fromarray(np.dstack([gray, rgba[..., 3]]), "LA"), "PNG"),
        "png_p_transparency": encoded(small.convert("P"), "PNG", transparency=3),
        "png_1": encoded(small.convert("1"), "PNG"),
        "png_i16": encoded(PIL.Image.fromarray(gray.astype(np.uint16) * 257), "PNG"),
        "png_exif6": encoded(small, "PNG", exif=exif(6)),
        "gif": encoded(small, "GIF"),
        "webp": encoded(small, "WEBP", quality=80),
        "webp_rgba_lossless": encoded(PIL.Image.fromarray(rgba), "WEBP", lossless=True),
        "webp_exif6": encoded(small, "WEBP", exif=exif(6)),
        "bmp": encoded(small, "BMP"),
        "tiff": encoded(small, "TIFF"),
        "tiff_cmyk": encoded(small.convert("CMYK"), "TIFF"),
        "tiff_f": encoded(PIL.Image.fromarray(gray.astype(np.float32) / 255), "TIFF"),
        "tiff_i": encoded(PIL.Image.fromarray(gray.astype(np.int32) * 3), "TIFF"),
    }


@pytest.fixture(scope="module")
def zoo(cat, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("zoo")
    paths = {}
    for name, data in _image_zoo(cat).items():
        paths[name] = folder / f"{name}.{name.split('_')[0]}"
        paths[name].write_bytes(data)
    return paths


TORCHVISION_UNSUPPORTED = {"bmp", "tiff", "tiff_cmyk", "tiff_f", "tiff_i"}


# --- the pixels of each decoder --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(_image_zoo(PIL.Image.new("RGB", (4, 4)))))
def test_pil_backend_is_transformers_load_image(zoo, name):
    """transformers' loader, then the PIL processor's own RGB conversion (from 5.21, tRNS colours painted white)."""
    ours = load_image(zoo[name], backend="pil")
    stock = np.asarray(Qwen2VLImageProcessorPil().convert_to_rgb(stock_load_image(str(zoo[name]))))
    assert np.array_equal(hwc(ours), stock)
    assert torch.equal(load_image(zoo[name], backend="pil", copy=False), ours)  # a view, the same pixels


@pytest.mark.parametrize("name", sorted(set(_image_zoo(PIL.Image.new("RGB", (4, 4)))) - TORCHVISION_UNSUPPORTED))
def test_torchvision_backend_is_load_image_as_tensor(zoo, name):
    stock = stock_load_image_as_tensor(str(zoo[name]))
    if stock.dtype != torch.uint8:  # 16-bit PNG: documented, not reproduced
        with pytest.raises(UnsupportedModeError, match="16 bits per channel.*backend='pil'"):
            load_image(zoo[name])
        return
    assert torch.equal(load_image(zoo[name]), stock)
    assert torch.equal(load_image(zoo[name], copy=False), stock)


def test_copy_false_views_pillows_pixels_and_copy_gives_pixels_of_their_own(zoo, pixels_views):
    """The default copy is memory of the caller's own (writing it changes nothing else); copy=False is
    a view of a read-only array (the Pillow image's own memory, vlfast.pil_memory), which writing would corrupt."""
    load_image(zoo["png"], backend="pil", copy=False)
    assert pixels_views == [False]
    load_image(zoo["png"], backend="pil")
    assert pixels_views == [False, True]  # the default views a copy of its own (pil_array)
    for bad in ("False", 0, None):
        with pytest.raises(UnsupportedOptionError, match="copy must be True or False, got"):
            load_image(zoo["png"], copy=bad)


def png_file(width: int, height: int, depth: int, color_type: int, rows: list[bytes], chunks: bytes = b"") -> bytes:
    """A PNG written byte by byte (Pillow cannot write every bit depth and colour type)."""
    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\0" + row for row in rows))
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + chunks
        + png_chunk(b"IDAT", pixels)
        + png_chunk(b"IEND", b"")
    )


def png_flavours() -> dict[str, bytes]:
    """Every 8-bit-or-less colour type and bit depth, with and without tRNS / gAMA chunks."""
    rng = np.random.default_rng(0)
    width, height = 13, 7
    samples = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
    depths = {0: (1, 2, 4, 8), 2: (8,), 3: (1, 2, 4, 8), 4: (8,), 6: (8,)}
    flavours = {}
    for color_type, bit_depths in depths.items():
        for depth in bit_depths:
            values = rng.integers(0, 2**depth, (height, width * samples[color_type]), dtype=np.uint8)
            rows = [np.packbits(np.unpackbits(row[:, None], axis=1)[:, 8 - depth :]).tobytes() for row in values]
            extras = {"": b""}
            if color_type == 3:
                palette = png_chunk(b"PLTE", rng.integers(0, 256, 3 * 2**depth, dtype=np.uint8).tobytes())
                alpha = png_chunk(b"tRNS", rng.integers(0, 256, 2**depth, dtype=np.uint8).tobytes())
                extras = {"": palette, "+tRNS": palette + alpha}
            elif color_type in (0, 2):
                extras["+tRNS"] = png_chunk(b"tRNS", struct.pack(">HHH", 1, 0, 1)[: 2 * samples[color_type]])
            extras["+gAMA"] = extras[""] + png_chunk(b"gAMA", struct.pack(">I", 100000))
            for suffix, chunks in extras.items():
                flavours[f"type{color_type}-{depth}bit{suffix}"] = png_file(
                    width, height, depth, color_type, rows, chunks
                )
    return flavours


@pytest.mark.parametrize("name", sorted(png_flavours()))
def test_pngs_decoded_by_pillow_equal_torchvision(name):
    """Under backend="torchvision" PNGs are decoded by Pillow (torchvision's PNG decoder crashes on corrupt
    data): for every PNG flavour the pixels are torchvision's."""
    from torchvision.io import ImageReadMode, decode_image

    data = png_flavours()[name]
    stock = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    assert torch.equal(load_image(data, backend="torchvision"), stock)


@pytest.mark.parametrize("name", sorted(TORCHVISION_UNSUPPORTED))
def test_torchvision_backend_falls_back_to_pillow_where_torchvision_cannot_decode(zoo, name):
    with pytest.raises((RuntimeError, ValueError)):  # torchvision's or torchcodec's refusal
        stock_load_image_as_tensor(str(zoo[name]))
    assert np.array_equal(hwc(load_image(zoo[name])), np.asarray(stock_load_image(str(zoo[name]))))


def test_backends_differ_where_the_stock_backends_differ(zoo):
    # torchvision ignores EXIF orientation in WebP files, Pillow and torchcodec apply it: each backend keeps its
    # stock's view.
    assert load_image(zoo["webp_exif6"], backend="pil").shape == (3, 120, 80)
    upright = stock_decoder() == "torchcodec"
    assert load_image(zoo["webp_exif6"], backend="torchvision").shape == ((3, 120, 80) if upright else (3, 80, 120))


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_exif_orientation_can_be_forced_either_way(zoo, cat, backend):
    """By default each backend orients as its stock loader (compared above); exif_transpose overrides it."""
    upright = load_image(zoo["jpeg_exif6"], backend=backend, exif_transpose=True)
    as_stored = load_image(zoo["jpeg_exif6"], backend=backend, exif_transpose=False)
    assert as_stored.shape == (3, cat.height, cat.width)
    assert upright.shape == (3, cat.width, cat.height)
    assert np.array_equal(hwc(upright), np.rot90(hwc(as_stored), k=-1))
    assert torch.equal(as_stored, load_image(zoo["jpeg"], backend=backend))


def test_in_memory_images_are_returned_as_they_are(cat):
    array = np.asarray(cat)
    tensor = torch.from_numpy(array.copy())
    assert load_image(cat) is cat
    assert load_image(array) is array
    assert load_image(tensor) is tensor
    rotated = PIL.Image.open(io.BytesIO(encoded(cat, "JPEG", exif=exif(6))))
    assert load_image(rotated).size == cat.size
    assert load_image(rotated, exif_transpose=True).size == cat.size[::-1]


def test_animated_gif_frames_under_each_backend(cat):
    frames = [cat, cat.transpose(PIL.Image.Transpose.FLIP_LEFT_RIGHT)]
    gif = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert load_image(gif, backend="pil").shape == (3, cat.height, cat.width)  # the first frame, as Pillow
    with pytest.raises(UnsupportedModeError, match="animated GIF.*every frame into a separate image"):
        load_image(gif, backend="torchvision")


# --- every way of naming the same bytes ---------------------------------------------------------------------


def sources_of(path: Path) -> dict[str, object]:
    data = path.read_bytes()
    b64 = base64.b64encode(data).decode()
    return {
        "str path": str(path),
        "Path": path,
        "file URL (RFC 8089)": path.as_uri(),
        "file URL (as written)": f"file://{path}",
        "bytes": data,
        "bytearray": bytearray(data),
        "memoryview": memoryview(data),
        "base64": b64,
        "base64 with newlines": base64.encodebytes(data).decode(),
        "base64 url-safe, unpadded": base64.urlsafe_b64encode(data).decode().rstrip("="),
        "data URI": f"data:image/png;base64,{b64}",
        "data URI, percent-encoded": "data:image/png," + "".join(f"%{byte:02X}" for byte in data),
        "encode_image": encode_image(path),
    }


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_every_source_kind_gives_the_same_pixels(tmp_path, cat, backend):
    path = tmp_path / "a cat with spaces.png"
    cat.save(path)
    expected = load_image(path, backend=backend)
    assert np.array_equal(hwc(expected), np.asarray(cat))
    for kind, source in sources_of(path).items():
        assert torch.equal(load_image(source, backend=backend), expected), kind


# --- encode_image ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, mime",
    [
        ("jpeg", "image/jpeg"),
        ("png_rgba", "image/png"),
        ("webp", "image/webp"),
        ("gif", "image/gif"),
        ("bmp", "image/bmp"),
        ("tiff", "image/tiff"),
    ],
)
def test_encode_image_carries_the_original_bytes_with_their_media_type(zoo, name, mime):
    for source in (zoo[name], str(zoo[name]), zoo[name].read_bytes()):
        uri = encode_image(source)
        header, payload = uri.split(",", 1)
        assert header == f"data:{mime};base64"
        assert base64.b64decode(payload) == zoo[name].read_bytes()  # never re-encoded
    assert encode_image(encode_image(zoo[name])) == encode_image(zoo[name])


def test_encoded_uris_are_read_by_the_stock_loaders(zoo):
    from qwen_vl_utils import fetch_image

    uri = encode_image(zoo["jpeg_exif6"])
    assert np.array_equal(np.asarray(stock_load_image(uri)), hwc(load_image(zoo["jpeg_exif6"], backend="pil")))
    assert np.array_equal(
        np.asarray(fetch_image({"image": uri})), np.asarray(fetch_image({"image": str(zoo["jpeg_exif6"])}))
    )


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_encode_image_of_in_memory_images_is_a_png_of_what_preprocess_sees(cat, backend):
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (37, 53, 4), dtype=np.uint8)
    images = [
        cat,
        cat.convert("RGBA"),
        cat.convert("L"),
        cat.convert("CMYK"),
        rgba,
        torch.from_numpy(rgba).permute(2, 0, 1),
        rng.integers(0, 256, (3, 20, 30), dtype=np.uint8),
        rng.integers(0, 256, (20, 30), dtype=np.uint8),
    ]
    for image in images:
        if not releases.rgb_conversion_composites() and isinstance(image, np.ndarray | torch.Tensor):
            if image.ndim == 2 or 4 in image.shape:  # arrays this transformers does not convert
                with pytest.raises(UnsupportedModeError, match="does not convert"):
                    encode_image(image, backend=backend)
                continue
        uri = encode_image(image, backend=backend)
        assert uri.startswith("data:image/png;base64,")
        decoded = PIL.Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
        assert decoded.format == "PNG" and decoded.mode == "RGB"
        assert np.array_equal(np.asarray(decoded), to_rgb_uint8(image, backend).numpy())
        assert np.array_equal(hwc(load_image(uri, backend=backend)), to_rgb_uint8(image, backend).numpy())


def test_encode_image_errors():
    with pytest.raises(DecodeError, match="not an image format"):
        encode_image(b"plain text, not an image")
    with pytest.raises(ImageSourceError, match="no such file"):
        encode_image(Path("/nonexistent/photo.jpg"))
    with pytest.raises(InvalidImageError, match="must be uint8"):
        encode_image(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(UnsupportedOptionError, match="backend"):
        encode_image(b"", backend="opencv")


# --- bad sources ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, error, message",
    [
        ("/nonexistent/photo.jpg", ImageSourceError, "no such file: '/nonexistent/photo.jpg'"),
        (Path("/nonexistent/photo.jpg"), ImageSourceError, "no such file"),
        ("file:///nonexistent/photo.jpg", ImageSourceError, "no such file"),
        ("file://server/share/photo.jpg", ImageSourceError, "remote host 'server'"),
        ("ftp://example.com/photo.jpg", ImageSourceError, "unsupported URL scheme 'ftp'"),
        ("s3://bucket/photo.jpg", ImageSourceError, "unsupported URL scheme 's3'"),
        ("", ImageSourceError, "empty string"),
        ("   ", ImageSourceError, "empty string"),
        ("data:image/png;base64", ImageSourceError, "malformed data URI"),
        ("data:image/png;base64,****", ImageSourceError, "not valid base64"),
        ("data:image/png;base64,", DecodeError, "is empty"),
        ("aGVsbG8gd29ybGQ=", DecodeError, "base64 string .* is not an image format"),
        (b"", DecodeError, "image data \\(0 bytes\\) is empty"),
        (b"GIF89a", DecodeError, "image data \\(6 bytes\\) is not an image format"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 30, DecodeError, "not an image format Pillow recognises"),
        (42, ImageSourceError, "unsupported image source type int"),
        (None, ImageSourceError, "unsupported image source type NoneType"),
    ],
)
@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_bad_sources(source, error, message, backend):
    with pytest.raises(error, match=message):
        load_image(source, backend=backend)


def test_a_directory_is_not_an_image(tmp_path):
    with pytest.raises(ImageSourceError, match="is a directory"):
        load_image(tmp_path)


def test_byte_limits(zoo):
    size = zoo["png"].stat().st_size
    data = zoo["png"].read_bytes()
    for source in (zoo["png"], data, base64.b64encode(data).decode(), encode_image(data)):
        with pytest.raises(ImageSourceError, match=f"over max_bytes={size - 1}"):
            load_image(source, max_bytes=size - 1)
        assert load_image(source, max_bytes=size).shape == (3, 300, 451)


def test_pixel_limit_is_checked_from_the_header(zoo):
    with pytest.raises(ImageTooLargeError, match=r"451x300 JPEG image \(135300 pixels\), over max_pixels=135299"):
        load_image(zoo["jpeg"], max_pixels=451 * 300 - 1)
    assert load_image(zoo["jpeg"], max_pixels=451 * 300).shape == (3, 300, 451)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"backend": "opencv"}, "backend must be 'torchvision' or 'pil'"),
        ({"timeout": 0}, "timeout must be a positive, finite number of seconds"),
        ({"max_bytes": -1}, "max_bytes must be a positive integer"),
        ({"max_pixels": True}, "max_pixels must be a positive integer"),
    ],
)
def test_bad_options(zoo, options, message):
    with pytest.raises(UnsupportedOptionError, match=message):
        load_image(zoo["png"], **options)


# --- HTTP ------------------------------------------------------------------------------------------------


class _Site:
    """A local web server with the misbehaviours a loader must survive."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.release = threading.Event()  # set on shutdown: handlers that stall return at once
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output quiet
                pass

            def do_GET(self):
                route = self.path
                if route in site.files:
                    self._send(200, site.files[route])
                elif route == "/redirect":
                    self._redirect("/cat.png")
                elif route == "/redirect-to-file":
                    self._redirect("file:///etc/hostname")
                elif route == "/redirect-to-ftp":
                    self._redirect("ftp://127.0.0.1/cat.png")
                elif route == "/stall":
                    site.release.wait(10)
                elif route == "/drip":
                    self.send_response(200)
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    for _ in range(100):
                        if site.release.wait(NET_TIMEOUT_S / 3):
                            return
                        self.wfile.write(b"x")
                        self.wfile.flush()
                elif route == "/huge-declared":
                    self.send_response(200)
                    self.send_header("Content-Length", str(10**12))
                    self.end_headers()
                elif route == "/huge-undeclared":
                    self.send_response(200)
                    self.end_headers()
                    try:
                        for _ in range(64):
                            self.wfile.write(b"\0" * 65536)
                    except OSError:
                        pass
                else:
                    self._send(404, b"not found")

            def _send(self, status: int, body: bytes):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _redirect(self, location: str):
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Site:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def site(zoo) -> Iterator[_Site]:
    with _Site({"/cat.png": zoo["png"].read_bytes(), "/cat.jpg": zoo["jpeg_exif6"].read_bytes()}) as running:
        yield running


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_http_download_matches_the_file(site, zoo, backend):
    for route, name in (("/cat.png", "png"), ("/cat.jpg", "jpeg_exif6"), ("/redirect", "png")):
        ours = load_image(site.url + route, backend=backend, timeout=5)
        assert torch.equal(ours, load_image(zoo[name], backend=backend))
    assert np.array_equal(
        hwc(load_image(site.url + "/cat.jpg", backend="pil")),
        np.asarray(stock_load_image(site.url + "/cat.jpg")),
    )


@pytest.mark.parametrize(
    "route, options, message",
    [
        ("/missing.png", {}, "answered HTTP 404"),
        ("/redirect-to-file", {}, "Redirection to url 'file:///etc/hostname' is not allowed"),
        ("/redirect-to-ftp", {}, "redirects to 'ftp://127.0.0.1/cat.png': only http\\(s\\) redirects are followed"),
        ("/stall", {"timeout": NET_TIMEOUT_S}, f"timed out after {NET_TIMEOUT_S} s"),
        ("/drip", {"timeout": NET_TIMEOUT_S}, f"timed out after {NET_TIMEOUT_S} s"),
        ("/huge-declared", {}, "serves 1000000000000 bytes, over max_bytes"),
        ("/huge-undeclared", {"max_bytes": 100_000}, "sent more than max_bytes=100000 bytes"),
    ],
)
def test_http_failures_are_typed_and_bounded_in_time(site, route, options, message):
    start = time.monotonic()
    with pytest.raises(ImageSourceError, match=message):
        load_image(site.url + route, **options)
    assert time.monotonic() - start < 5 * NET_TIMEOUT_S + 1


def test_unreachable_host_is_an_image_source_error():
    with pytest.raises(ImageSourceError, match="cannot fetch URL 'http://127.0.0.1:9/x.png'"):
        load_image("http://127.0.0.1:9/x.png", timeout=NET_TIMEOUT_S)


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "RGBA", "CMYK", "YCbCr", "I;16", "I", "F"])
def test_pil_array_is_np_array_and_writable(cat, mode):
    image = cat.convert(mode)
    array = pil_array(image)
    expected = np.array(image)
    assert array.dtype == expected.dtype and array.shape == expected.shape
    assert np.array_equal(array, expected)
    assert array.flags.writeable and array.flags.c_contiguous
    array[0, 0] = 0  # its own memory: the image is unchanged
    assert np.array_equal(np.array(image), expected)


def test_cache_pillow_blocks_only_where_the_process_has_not_chosen(monkeypatch, pillow_cache_off):
    """(conftest puts Pillow's cache back after the test.)"""
    from vlfast.io import cache_pillow_blocks

    core = pillow_cache_off
    assert cache_pillow_blocks(6) and core.get_blocks_max() == 6
    assert not cache_pillow_blocks(9) and core.get_blocks_max() == 6  # a cache already on is left as it is
    core.set_blocks_max(0)
    monkeypatch.setenv("PILLOW_BLOCKS_MAX", "0")  # the user's choice, even "none"
    assert not cache_pillow_blocks(6) and core.get_blocks_max() == 0
    for bad in (0, -1, 2.5, True):
        with pytest.raises(UnsupportedOptionError, match="blocks must be a positive integer"):
            cache_pillow_blocks(bad)
