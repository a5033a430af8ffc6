"""Image sources (paths, URLs, bytes, base64, data URIs) to images, decoded as the stock processors decode them.

Given a string, transformers' Qwen2-VL processors load the image themselves, and each
backend decodes differently: ``Qwen2VLImageProcessor`` (torchvision) uses
``torchvision.io.decode_image`` and ``Qwen2VLImageProcessorPil`` uses Pillow
(``transformers.image_utils.load_image``). Both drop an alpha channel (in-memory images are
composited on white instead, from transformers 5.21); the PIL one applies the EXIF orientation, the
torchvision one from transformers 5.21 on (:func:`vlfast.releases.loader_applies_exif`).
:func:`load_image` reproduces the decoder of the ``backend`` you name and returns the pixels that
stock processor goes on to use, so that::

    vlfast.preprocess(vlfast.load_image(source, backend=b), backend=b)

is bit-identical to the stock processor of backend ``b`` called on ``source``.
:func:`encode_image` is the other end: a ``data:`` URI that carries an image without loss.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPException

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch

from .errors import (
    DecodeError,
    DeviceError,
    ImageSourceError,
    ImageTooLargeError,
    UnsupportedModeError,
    UnsupportedOptionError,
)
from .inputs import ImageLike, to_rgb_uint8
from .plans import Backend, parse_backend
from .releases import loader_applies_exif

__all__ = [
    "ImageSource",
    "load_image",
    "encode_image",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_MAX_SOURCE_BYTES",
    "DEFAULT_MAX_DECODED_PIXELS",
]

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | ImageLike

#: Seconds a URL download may take (each socket operation, and the whole body between reads).
DEFAULT_TIMEOUT_S = 10.0
#: Largest encoded image (file, download, base64 payload) read, in bytes.
DEFAULT_MAX_SOURCE_BYTES = 256 * 2**20
#: Decompression-bomb guard: largest ``width * height`` decoded, checked from the header.
#: Pillow's own error threshold (``2 * PIL.Image.MAX_IMAGE_PIXELS`` by default).
DEFAULT_MAX_DECODED_PIXELS = 2 * 89_478_485
#: Formats decoded with ``torchvision.io.decode_image`` under ``backend="torchvision"``; the rest with Pillow.
#: PNG is left out on purpose: torchvision 0.29's PNG decoder crashes the process (SIGSEGV) on corrupt image
#: data, and for every 8-bit PNG flavour Pillow's pixels are identical to it (the format is lossless).
TORCHVISION_FORMATS = frozenset({"JPEG", "MPO", "GIF", "WEBP"})
#: Byte offset of the bit depth in a PNG file (8-byte signature, IHDR length and type, width, height).
_PNG_BIT_DEPTH_OFFSET = 24
#: zlib level of the PNGs :func:`encode_image` writes (lossless at any level; 1 is the fastest).
PNG_COMPRESS_LEVEL = 1
HTTP_SCHEMES = ("http", "https")
USER_AGENT = "vlfast"
_DOWNLOAD_CHUNK_BYTES = 1 << 20
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects (as transformers does) but never off http(s), e.g. to ``file:`` or ``ftp:``."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in HTTP_SCHEMES:
            raise ImageSourceError(f"URL {req.full_url!r} redirects to {newurl!r}: only http(s) redirects are followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_URL_OPENER = urllib.request.build_opener(_HttpOnlyRedirects)


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise UnsupportedOptionError(f"{name} must be a positive number, got {value!r}")


def _download(url: str, timeout: float, max_bytes: int) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    deadline = time.monotonic() + timeout
    try:
        with _URL_OPENER.open(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise ImageSourceError(f"URL {url!r} serves {int(declared)} bytes, over max_bytes={max_bytes}")
            chunks: list[bytes] = []
            received = 0
            while chunk := response.read1(_DOWNLOAD_CHUNK_BYTES):
                received += len(chunk)
                if received > max_bytes:
                    raise ImageSourceError(f"URL {url!r} sent more than max_bytes={max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise TimeoutError
                chunks.append(chunk)
            return b"".join(chunks)
    except ImageSourceError:
        raise
    except urllib.error.HTTPError as error:
        raise ImageSourceError(f"URL {url!r} answered HTTP {error.code} {error.reason}") from error
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            raise ImageSourceError(f"URL {url!r} timed out after {timeout} s") from error
        raise ImageSourceError(f"cannot fetch URL {url!r}: {error.reason}") from error
    except TimeoutError as error:
        raise ImageSourceError(f"URL {url!r} timed out after {timeout} s") from error
    except (HTTPException, OSError, ValueError) as error:
        raise ImageSourceError(f"cannot fetch URL {url!r}: {type(error).__name__}: {error}") from error


def _read_file(path: str | os.PathLike, max_bytes: int) -> bytes:
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > max_bytes:
                raise ImageSourceError(f"file {os.fspath(path)!r} has {size} bytes, over max_bytes={max_bytes}")
            data = file.read(max_bytes + 1)
    except FileNotFoundError as error:
        raise ImageSourceError(f"no such file: {os.fspath(path)!r}") from error
    except IsADirectoryError as error:
        raise ImageSourceError(f"{os.fspath(path)!r} is a directory, not an image file") from error
    except OSError as error:
        raise ImageSourceError(f"cannot read file {os.fspath(path)!r}: {error.strerror or error}") from error
    if len(data) > max_bytes:
        raise ImageSourceError(f"file {os.fspath(path)!r} has more than max_bytes={max_bytes} bytes")
    return data


def _file_url_path(url: str) -> str:
    """The path of a ``file://`` URL: as written (qwen-vl-utils' ``file://{path}``) or percent-decoded (RFC 8089)."""
    literal = url[len("file://") :]
    if os.path.exists(literal):
        return literal
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ImageSourceError(f"file URL {url!r} names a remote host {parts.netloc!r}; only local files are read")
    return urllib.request.url2pathname(parts.path)


def _decode_base64(text: str, what: str, max_bytes: int) -> bytes:
    payload = "".join(text.split())
    if len(payload) // 4 * 3 > max_bytes + 2:  # refuse before decoding (padding makes up to 2 bytes)
        raise ImageSourceError(f"{what} decodes to about {len(payload) // 4 * 3} bytes, over max_bytes={max_bytes}")
    payload += "=" * (-len(payload) % 4)
    altchars = b"-_" if ("-" in payload or "_" in payload) else None
    try:
        data = base64.b64decode(payload, altchars=altchars, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ImageSourceError(f"{what} is not valid base64: {error}") from error
    if len(data) > max_bytes:
        raise ImageSourceError(f"{what} decodes to {len(data)} bytes, over max_bytes={max_bytes}")
    return data


def _decode_data_uri(uri: str, max_bytes: int) -> bytes:
    header, comma, payload = uri.partition(",")
    if not comma:
        raise ImageSourceError(f"malformed data URI (no ',' after the media type): {uri[:64]!r}")
    if header.lower().endswith(";base64"):
        return _decode_base64(payload, "data URI payload", max_bytes)
    data = urllib.parse.unquote_to_bytes(payload)
    if len(data) > max_bytes:
        raise ImageSourceError(f"data URI carries {len(data)} bytes, over max_bytes={max_bytes}")
    return data


def _describe(text: str) -> str:
    return repr(text) if len(text) <= 80 else f"{text[:60]!r}... ({len(text)} characters)"


def _source_bytes(
    source: str | os.PathLike | bytes | bytearray | memoryview, timeout: float, max_bytes: int
) -> tuple[bytes, str]:
    """The encoded bytes behind a source and a phrase naming it for error messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > max_bytes:
            raise ImageSourceError(f"{len(data)} bytes given, over max_bytes={max_bytes}")
        return data, f"image data ({len(data)} bytes)"
    if isinstance(source, os.PathLike):
        return _read_file(source, max_bytes), f"file {os.fspath(source)!r}"
    if not isinstance(source, str):
        raise ImageSourceError(
            f"unsupported image source type {type(source).__name__}; expected a path, URL, base64 string, data URI, "
            "bytes, PIL image, NumPy array or torch tensor"
        )
    if not source.strip():
        raise ImageSourceError("the image source is an empty string")
    match = _URL_SCHEME.match(source)
    scheme = match.group(1).lower() if match else ""
    if source[:5].lower() == "data:":
        return _decode_data_uri(source, max_bytes), "data URI"
    if scheme in HTTP_SCHEMES:
        return _download(source, timeout, max_bytes), f"URL {source!r}"
    if scheme == "file":
        path = _file_url_path(source)
        return _read_file(path, max_bytes), f"file {path!r}"
    if scheme:
        raise ImageSourceError(
            f"unsupported URL scheme {scheme!r} in {_describe(source)}: use http(s)://, file:// or data:"
        )
    if os.path.exists(source):
        return _read_file(source, max_bytes), f"file {source!r}"
    try:
        data = _decode_base64(source, "string", max_bytes)
    except ImageSourceError as error:
        raise ImageSourceError(
            f"no such file: {_describe(source)} (nor is it an http(s)/file URL, a data URI or base64: {error})"
        ) from error
    return data, f"base64 string {_describe(source)} (not an existing file)"


def _open_header(data: bytes, origin: str, max_pixels: int) -> PIL.Image.Image:
    """Identify the image and check its declared size; nothing is decoded yet."""
    if not data:
        raise DecodeError(f"{origin} is empty: no image")
    try:
        image = PIL.Image.open(io.BytesIO(data))
    except PIL.Image.DecompressionBombError as error:
        raise ImageTooLargeError(
            f"{origin} is over Pillow's decompression-bomb limit ({error}); to load it, raise "
            "PIL.Image.MAX_IMAGE_PIXELS and max_pixels"
        ) from error
    except PIL.UnidentifiedImageError as error:
        raise DecodeError(f"{origin} is not an image format Pillow recognises (starts with {data[:12]!r})") from error
    except MemoryError:
        raise
    except Exception as error:
        raise DecodeError(f"{origin} has a corrupt image header: {type(error).__name__}: {error}") from error
    width, height = image.size
    if width <= 0 or height <= 0:
        raise DecodeError(f"{origin} declares an empty {width}x{height} {image.format} image")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{origin} is a {width}x{height} {image.format} image ({width * height} pixels), over "
            f"max_pixels={max_pixels}; this decompression-bomb guard reads the header only, raise max_pixels to load it"
        )
    return image


def _exif_transposed(image: PIL.Image.Image, origin: str) -> PIL.Image.Image:
    try:
        return PIL.ImageOps.exif_transpose(image)
    except MemoryError:
        raise
    except Exception as error:
        raise DecodeError(
            f"{origin} has corrupt EXIF metadata ({type(error).__name__}: {error}); "
            "pass exif_transpose=False to ignore its orientation"
        ) from error


def _pillow_pixels(image: PIL.Image.Image, origin: str, exif_transpose: bool, backend: Backend) -> torch.Tensor:
    """``(3, H, W)`` pixels of a Pillow-decoded image, as the stock processor of ``backend`` gets them.

    ``transformers.image_utils.load_image`` (decode, EXIF-orient, ``convert("RGB")``: alpha
    dropped), then the PIL processor's RGB conversion, which from transformers 5.21 paints a colour
    marked transparent (``info["transparency"]``, a palette or RGB PNG with tRNS) white; the
    torchvision processor gets a tensor from its decoder, with no such mark.
    """
    try:
        image.load()
    except MemoryError:
        raise
    except Exception as error:
        raise DecodeError(
            f"{origin} is a corrupt or truncated {image.format} image: {type(error).__name__}: {error}"
        ) from error
    if exif_transpose:
        image = _exif_transposed(image, origin)
    if backend is Backend.TORCHVISION:
        image.info.pop("transparency", None)
    try:
        rgb = image if image.mode == "RGB" else image.convert("RGB")  # the same pixels, one copy fewer
    except (ValueError, OSError) as error:
        raise UnsupportedModeError(f"{origin}: cannot convert mode {image.mode!r} to RGB: {error}") from error
    if rgb.info.get("transparency") is not None:
        return to_rgb_uint8(rgb, Backend.PIL).permute(2, 0, 1)
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1)


def _decode_with_torchvision(data: bytes, origin: str, exif_transpose: bool) -> torch.Tensor:
    """``transformers.image_utils.load_image_as_tensor``: ``decode_image(mode=RGB)``."""
    from torchvision.io import ImageReadMode, decode_image

    encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    try:
        pixels = decode_image(encoded, mode=ImageReadMode.RGB, apply_exif_orientation=exif_transpose)
    except (RuntimeError, ValueError) as error:
        raise DecodeError(f"{origin} is a corrupt or truncated image: {str(error).splitlines()[-1]}") from error
    if pixels.ndim != 3:  # frames Pillow's header scan did not see (see _reject_animated)
        raise UnsupportedModeError(f"{origin} decodes to {pixels.shape[0]} frames; pass backend='pil'")
    return pixels


def _reject_animated(image: PIL.Image.Image, origin: str) -> None:
    """torchvision decodes every GIF frame at once (a memory bomb) and fails on animated WebP: refuse both first."""
    try:
        animated = bool(getattr(image, "is_animated", False))
    except MemoryError:
        raise
    except Exception as error:
        raise DecodeError(f"{origin} has corrupt frames: {type(error).__name__}: {error}") from error
    if animated:
        raise UnsupportedModeError(
            f"{origin} is an animated {image.format}: transformers' torchvision processor turns every frame into a "
            "separate image (GIF) or fails (WebP), which load_image does not reproduce; pass backend='pil' for the "
            "first frame (as Qwen2VLImageProcessorPil) or extract the frames yourself"
        )


def _gpu_decode_device(gpu_decode: torch.device | str | None) -> torch.device | None:
    if gpu_decode is None:
        return None
    device = torch.device(gpu_decode)
    if device.type != "cuda" or not torch.cuda.is_available():
        raise DeviceError(f"gpu_decode needs an available CUDA device, got {str(device)!r}")
    return device


def _decode_jpeg_on_gpu(data: bytes, origin: str, exif_transpose: bool, device: torch.device) -> torch.Tensor:
    """nvJPEG through torchvision: fast, close to but not bit-identical with libjpeg-turbo."""
    from torchvision.io import ImageReadMode, decode_jpeg

    encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    try:
        return decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=exif_transpose)
    except (RuntimeError, ValueError) as error:
        raise DecodeError(f"{origin} could not be decoded on {device}: {str(error).splitlines()[-1]}") from error


def load_image(
    source: ImageSource,
    *,
    backend: Backend | str = Backend.TORCHVISION,
    exif_transpose: bool | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_bytes: int = DEFAULT_MAX_SOURCE_BYTES,
    max_pixels: int = DEFAULT_MAX_DECODED_PIXELS,
    gpu_decode: torch.device | str | None = None,
) -> ImageLike:
    """Load one image from a path, URL, bytes, base64 or data URI, decoded as the stock ``backend`` decodes it.

    Sources: a path (``str`` or ``os.PathLike``), ``file://`` URL (percent-encoded or as
    written), ``http(s)://`` URL (redirects followed, never off http(s)), ``bytes`` /
    ``bytearray`` / ``memoryview``, a base64 string (standard or URL-safe alphabet) or a
    ``data:`` URI. PIL images, NumPy arrays and torch tensors are returned as they are
    (a PIL image is EXIF-oriented only with ``exif_transpose=True``), since the stock
    processors take them as they are.

    Decoded sources come back as a fully decoded uint8 RGB tensor of shape ``(3, H, W)`` (the
    type of transformers' ``load_image_as_tensor``; ``preprocess`` takes it without a copy),
    holding the pixels the stock processor of ``backend`` uses for the same string source:

    * ``"torchvision"``: ``torchvision.io.decode_image(mode=RGB)``, as ``Qwen2VLImageProcessor``
      (``load_image_as_tensor`` when torchcodec is not installed), for JPEG, GIF and WebP. PNGs
      are decoded by Pillow, whose pixels are identical, because torchvision's PNG decoder
      crashes the process on corrupt data. Formats torchvision cannot decode (BMP, TIFF...)
      also go to Pillow, where the stock raises. Alpha is dropped. EXIF orientation applied
      from transformers 5.21 on, as ``load_image_as_tensor``.
    * ``"pil"``: Pillow + ``ImageOps.exif_transpose`` + ``convert("RGB")``
      (``transformers.image_utils.load_image``) then the processor's own RGB conversion, as
      ``Qwen2VLImageProcessorPil``: alpha is dropped, but from transformers 5.21 a colour marked
      transparent (a palette or RGB PNG with tRNS) is painted white.

    Args:
        source: the image or where to read it from.
        backend: the stock backend whose decoder is reproduced; pass the same to :func:`vlfast.preprocess`.
        exif_transpose: apply the EXIF orientation. ``None`` (default): for decoded sources, as
            the stock loader of ``backend`` does (always for ``"pil"``; for ``"torchvision"`` with
            transformers >= 5.21, whose ``load_image_as_tensor`` started to); ``False`` never (as
            qwen-vl-utils' ``fetch_image``); ``True`` also to PIL images given in memory.
        timeout: seconds for a URL: each network operation, and the whole body (checked between reads).
        max_bytes: largest encoded source read (file, download, decoded base64).
        max_pixels: largest ``width * height`` decoded, checked from the header before decoding.
        gpu_decode: opt-in fast path: decode JPEG sources on this CUDA device with nvJPEG
            (``torchvision.io.decode_jpeg(device=...)``) and return a CUDA tensor. nvJPEG's IDCT
            and chroma upsampling are not libjpeg-turbo's, so pixels can differ from the stock
            decode by a few levels (``tests/test_io_gpu_decode.py`` measures and bounds it): the
            result is then no longer bit-identical to the stock processor. Other formats take
            the exact path.

    Raises:
        ImageSourceError: missing or unreadable file, malformed URL or data URI, unsupported
            scheme, HTTP error, timeout, invalid base64, more than ``max_bytes``.
        DecodeError: empty, corrupt, truncated or non-image bytes.
        ImageTooLargeError: more than ``max_pixels`` pixels.
        UnsupportedModeError: an image the stock decoder turns into something vlfast does not
            reproduce (``"torchvision"``: 16-bit PNGs, animated GIF / WebP).
        DeviceError: ``gpu_decode`` names a device that is not an available CUDA device.

    Example:
        >>> image = vlfast.load_image("https://example.com/cat.jpg", backend="pil")
        >>> image.shape, image.dtype
        (torch.Size([3, 1080, 1920]), torch.uint8)
        >>> out = vlfast.preprocess(image, backend="pil")  # == Qwen2VLImageProcessorPil()(url)
    """
    backend = parse_backend(backend)
    for name, value in (("timeout", timeout), ("max_bytes", max_bytes), ("max_pixels", max_pixels)):
        _check_positive(name, value)
    if isinstance(source, PIL.Image.Image):
        return _exif_transposed(source, "the PIL image given") if exif_transpose else source
    if isinstance(source, (np.ndarray, torch.Tensor)):
        return source
    gpu_device = _gpu_decode_device(gpu_decode)
    data, origin = _source_bytes(source, timeout, max_bytes)
    image = _open_header(data, origin, max_pixels)
    orient = exif_transpose if exif_transpose is not None else backend is Backend.PIL or loader_applies_exif()
    if gpu_device is not None and image.format == "JPEG":
        return _decode_jpeg_on_gpu(data, origin, orient, gpu_device)
    if backend is Backend.PIL:
        return _pillow_pixels(image, origin, orient, backend)
    if image.format == "PNG" and data[_PNG_BIT_DEPTH_OFFSET] == 16:
        raise UnsupportedModeError(
            f"{origin} has 16 bits per channel: transformers' torchvision processor passes the raw 0-65535 values "
            "to a pipeline built for 0-255, which vlfast does not reproduce; use backend='pil' (Pillow clips to "
            "8 bits, as Qwen2VLImageProcessorPil does) or convert the image to 8 bits first"
        )
    if image.format not in TORCHVISION_FORMATS:
        return _pillow_pixels(image, origin, orient, backend)
    if image.format in ("GIF", "WEBP"):
        _reject_animated(image, origin)
    return _decode_with_torchvision(data, origin, orient)


def encode_image(
    source: ImageSource,
    *,
    backend: Backend | str = Backend.TORCHVISION,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_bytes: int = DEFAULT_MAX_SOURCE_BYTES,
) -> str:
    """A ``data:`` URI carrying ``source`` without loss, for sending an image over JSON / HTTP.

    * Encoded sources (path, URL, bytes, base64, data URI) keep their original file bytes,
      EXIF included; the media type comes from the actual format (``data:image/jpeg;base64,...``).
      Never re-encoded: a JPEG is not decoded and compressed again.
    * In-memory images (PIL, NumPy, torch) become a PNG of exactly the RGB pixels
      :func:`vlfast.preprocess` would see with ``backend`` (alpha composited on white,
      grayscale expanded, channels-first handled), so that loading the URI on the other side
      gives the same ``pixel_values`` as preprocessing the image here.

    The URI is accepted by :func:`load_image`, transformers' ``load_image`` and qwen-vl-utils.

    Raises:
        ImageSourceError, DecodeError: as :func:`load_image` (the bytes must be an image).
        InvalidImageError, UnsupportedModeError: an in-memory image :func:`vlfast.preprocess` rejects.

    Example:
        >>> uri = vlfast.encode_image("photo.jpg")  # 'data:image/jpeg;base64,/9j/4AAQ...'
        >>> message = {"type": "image", "image": uri}
    """
    backend = parse_backend(backend)
    _check_positive("timeout", timeout)
    _check_positive("max_bytes", max_bytes)
    if isinstance(source, (PIL.Image.Image, np.ndarray, torch.Tensor)):
        pixels = to_rgb_uint8(source, backend).cpu().contiguous().numpy()
        buffer = io.BytesIO()
        PIL.Image.fromarray(pixels).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        data, mime = buffer.getvalue(), "image/png"
    else:
        data, origin = _source_bytes(source, timeout, max_bytes)
        image = _open_header(data, origin, max_pixels=DEFAULT_MAX_DECODED_PIXELS)
        mime = PIL.Image.MIME.get(image.format, f"image/{image.format.lower()}")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
