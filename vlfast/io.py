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
import functools
import io
import os
import re
import urllib.parse
import urllib.request
from typing import Any

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch

from .errors import (
    DecodeError,
    DeviceError,
    ImageSourceError,
    ImageTooLargeError,
    SourceNotAllowedError,
    SourceTooLargeError,
    UnsupportedModeError,
    UnsupportedOptionError,
)
from .inputs import ImageLike, is_image_like, pil_array, pil_pixels, pixels_view, to_rgb_uint8
from .options import check_positive_ints, parse_device
from .plans import Backend, parse_backend
from .releases import loader_applies_exif
from .sources import (
    DEFAULT_MAX_DECODED_PIXELS,
    DEFAULT_MAX_SOURCE_BYTES,
    DEFAULT_TIMEOUT_S,
    SourcePolicy,
    current_source_policy,
    fetch_url,
    read_file,
)

__all__ = [
    "ImageSource",
    "load_image",
    "encode_image",
    "fetch_images",
    "stock_decoder",
    "cache_pillow_blocks",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_MAX_SOURCE_BYTES",
    "DEFAULT_MAX_DECODED_PIXELS",
]

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | ImageLike

#: Formats decoded with ``torchvision.io.decode_image`` under ``backend="torchvision"``; the rest with Pillow.
#: PNG is left out on purpose: torchvision 0.29's PNG decoder crashes the process (SIGSEGV) on corrupt image
#: data, and for every 8-bit PNG flavour Pillow's pixels are identical to it (the format is lossless).
TORCHVISION_FORMATS = frozenset({"JPEG", "MPO", "GIF", "WEBP"})
#: Formats torchcodec's ``decode_image`` decodes (when the stock loader uses it); the rest with Pillow.
TORCHCODEC_FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "WEBP", "AVIF"})
#: Byte offset of the bit depth in a PNG file (8-byte signature, IHDR length and type, width, height).
_PNG_BIT_DEPTH_OFFSET = 24
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG text chunks: no pixels in them, and Pillow refuses large ones (``MAX_TEXT_CHUNK``), which libpng reads.
_PNG_TEXT_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt"})
#: zlib level of the PNGs :func:`encode_image` writes (lossless at any level; 1 is the fastest).
PNG_COMPRESS_LEVEL = 1
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
#: A file path and line in a decoder's message (its build tree), left out of vlfast's messages.
_SOURCE_LOCATION = re.compile(r"\S*[\\/]\S+\.(?:cpp|cxx|cc|hpp|c|h)\b(?::\d+)?,?")
#: A bytes literal in a decoder's message (data from the file), left out of vlfast's messages.
_BYTES_LITERAL = re.compile(r"""b(['"])(?:\\.|(?!\1).)*\1""")


def _file_url_path(url: str, policy: SourcePolicy) -> str:
    """The path of a ``file://`` URL: as written (qwen-vl-utils' ``file://{path}``) or percent-decoded (RFC 8089)."""
    policy.require("file", f"file URL {_describe(url)}")
    literal = url[len("file://") :]
    if os.path.exists(literal):
        return literal
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as error:
        raise ImageSourceError(f"malformed file URL {_describe(url)}: {error}") from None
    if parts.netloc not in ("", "localhost"):
        raise ImageSourceError(f"file URL {url!r} names a remote host {parts.netloc!r}; only local files are read")
    return urllib.request.url2pathname(parts.path)


def _decode_base64(text: str, what: str, max_bytes: int) -> bytes:
    payload = "".join(text.split())
    if len(payload) // 4 * 3 > max_bytes + 2:  # refuse before decoding (padding makes up to 2 bytes)
        raise SourceTooLargeError(f"{what} decodes to about {len(payload) // 4 * 3} bytes, over max_bytes={max_bytes}")
    payload += "=" * (-len(payload) % 4)
    altchars = b"-_" if ("-" in payload or "_" in payload) else None
    try:
        data = base64.b64decode(payload, altchars=altchars, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ImageSourceError(f"{what} is not valid base64: {error}") from error
    if len(data) > max_bytes:
        raise SourceTooLargeError(f"{what} decodes to {len(data)} bytes, over max_bytes={max_bytes}")
    return data


def _decode_data_uri(uri: str, policy: SourcePolicy) -> bytes:
    policy.require("data", "data URI")
    header, comma, payload = uri.partition(",")
    if not comma:
        raise ImageSourceError(f"malformed data URI (no ',' after the media type): {uri[:64]!r}")
    if header.lower().endswith(";base64"):
        return _decode_base64(payload, "data URI payload", policy.max_bytes)
    data = urllib.parse.unquote_to_bytes(payload)
    if len(data) > policy.max_bytes:
        raise SourceTooLargeError(f"data URI carries {len(data)} bytes, over max_bytes={policy.max_bytes}")
    return data


def _describe(text: str) -> str:
    return repr(text) if len(text) <= 80 else f"{text[:60]!r}... ({len(text)} characters)"


def _string_bytes(source: str, policy: SourcePolicy) -> tuple[bytes, str]:
    """A bare string: an existing file (where the policy allows files), else base64. Where it does not, the file
    system is not looked at, so the answer does not depend on whether a file exists."""
    if "file" not in policy.allow:
        where = "local files are not allowed by the source policy"
    elif not policy.permits_path(source):
        where = "outside the directories the source policy allows"
    else:
        where = "no such file"
        if os.path.exists(source):
            return read_file(source, policy), f"file {source!r}"
    if "base64" not in policy.allow:
        error = ImageSourceError if where == "no such file" else SourceNotAllowedError
        raise error(f"{where}: {_describe(source)} (and the source policy does not allow base64 strings)")
    try:
        data = _decode_base64(source, "string", policy.max_bytes)
    except SourceTooLargeError:
        raise
    except ImageSourceError as error:
        raise ImageSourceError(
            f"{where}: {_describe(source)} (nor is it an http(s)/file URL, a data URI or base64: {error})"
        ) from error
    return data, f"base64 string {_describe(source)}"


def _source_bytes(
    source: str | os.PathLike | bytes | bytearray | memoryview, policy: SourcePolicy
) -> tuple[bytes, str]:
    """The encoded bytes behind a source and a phrase naming it for error messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > policy.max_bytes:
            raise SourceTooLargeError(f"{len(data)} bytes given, over max_bytes={policy.max_bytes}")
        return data, f"image data ({len(data)} bytes)"
    if isinstance(source, os.PathLike):
        return read_file(source, policy), f"file {os.fspath(source)!r}"
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
        return _decode_data_uri(source, policy), "data URI"
    if scheme in ("http", "https"):
        return fetch_url(source, policy), f"URL {source!r}"
    if scheme == "file":
        path = _file_url_path(source, policy)
        return read_file(path, policy), f"file {path!r}"
    if scheme:
        raise ImageSourceError(
            f"unsupported URL scheme {scheme!r} in {_describe(source)}: use http(s)://, file:// or data:"
        )
    return _string_bytes(source, policy)


def _png_without_text(data: bytes) -> bytes:
    """A PNG without its text chunks, as Pillow decodes it for the torchvision backend: the stock decoders
    read PNGs with large text chunks, which Pillow refuses. Anything not a well-formed chunk list is kept."""
    if not data.startswith(_PNG_SIGNATURE):
        return data
    kept, position = [_PNG_SIGNATURE], len(_PNG_SIGNATURE)
    while position + 12 <= len(data):
        end = position + 12 + int.from_bytes(data[position : position + 4], "big")
        if data[position + 4 : position + 8] not in _PNG_TEXT_CHUNKS:
            kept.append(data[position:end])
        position = end
    kept.append(data[position:])
    return b"".join(kept)


def _reason(error: BaseException) -> str:
    """A decoder's message, without the bytes it quotes or the source files of its build."""
    text = (str(error).strip().splitlines() or [""])[-1]
    text = " ".join(_BYTES_LITERAL.sub("b'...'", _SOURCE_LOCATION.sub("", text)).split()).strip(" ,")
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__


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
        raise DecodeError(f"{origin} is not an image format Pillow recognises") from error
    except MemoryError:
        raise
    except Exception as error:
        raise DecodeError(f"{origin} has a corrupt image header ({_reason(error)})") from error
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
            f"{origin} has corrupt EXIF metadata ({_reason(error)}); "
            "pass exif_transpose=False to ignore its orientation"
        ) from error


def _pillow_pixels(
    image: PIL.Image.Image, origin: str, exif_transpose: bool, backend: Backend, copy: bool
) -> torch.Tensor:
    """``(3, H, W)`` pixels of a Pillow-decoded image, as the stock processor of ``backend`` gets them: a copy,
    or with ``copy=False`` a read-only view of Pillow's pixels.

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
        raise DecodeError(f"{origin} is a corrupt or truncated {image.format} image ({_reason(error)})") from error
    if exif_transpose:
        image = _exif_transposed(image, origin)
    if backend is Backend.TORCHVISION:
        image.info.pop("transparency", None)
    try:
        rgb = image if image.mode == "RGB" else image.convert("RGB")  # the same pixels, one copy fewer
    except (ValueError, OSError) as error:
        raise UnsupportedModeError(f"{origin}: cannot convert mode {image.mode!r} to RGB ({_reason(error)})") from error
    if rgb.info.get("transparency") is not None:
        pixels = to_rgb_uint8(rgb, Backend.PIL).permute(2, 0, 1)  # a view of the composite
        return pixels.clone() if copy else pixels
    return pixels_view(pil_array(rgb) if copy else pil_pixels(rgb)).permute(2, 0, 1)


def _decode_with_torchvision(data: bytes, origin: str, exif_transpose: bool) -> torch.Tensor:
    """``transformers.image_utils.load_image_as_tensor``: ``decode_image(mode=RGB)``."""
    from torchvision.io import ImageReadMode, decode_image

    encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    try:
        pixels = decode_image(encoded, mode=ImageReadMode.RGB, apply_exif_orientation=exif_transpose)
    except (RuntimeError, ValueError) as error:
        raise DecodeError(f"{origin} is a corrupt or truncated image ({_reason(error)})") from error
    return _one_frame(pixels, origin)


def _decode_with_torchcodec(data: bytes, origin: str) -> torch.Tensor:
    """``load_image_as_tensor`` when it picks torchcodec: ``decode_image(mode="RGB")``, EXIF-oriented."""
    from torchcodec.decoders import decode_image

    encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    try:
        pixels = decode_image(encoded, mode="RGB")
    except (RuntimeError, ValueError) as error:
        raise DecodeError(f"{origin} is a corrupt or truncated image ({_reason(error)})") from error
    return _one_frame(pixels, origin)


def _one_frame(pixels: torch.Tensor, origin: str) -> torch.Tensor:
    if pixels.ndim != 3:  # frames Pillow's header scan did not see (see _reject_animated)
        raise UnsupportedModeError(f"{origin} decodes to {pixels.shape[0]} frames; pass backend='pil'")
    return pixels


@functools.cache
def stock_decoder() -> str:
    """The decoder of the installed ``Qwen2VLImageProcessor`` for strings: ``"torchcodec"`` where its
    ``load_image_as_tensor`` picks torchcodec (transformers' own test: torchcodec >= 0.16 that loads),
    else ``"torchvision"``. Releases without that test (before 5.21) always use torchvision."""
    import transformers.image_utils as stock

    newer = getattr(stock, "is_torchcodec_greater_or_equal", None)
    usable = getattr(stock, "is_torchcodec_usable", None)
    if newer is not None and usable is not None and newer("0.16.0") and usable(decode="image"):
        return "torchcodec"
    return "torchvision"


def _reject_animated(image: PIL.Image.Image, origin: str) -> None:
    """torchvision decodes every GIF frame at once (a memory bomb) and fails on animated WebP: refuse both first."""
    try:
        animated = bool(getattr(image, "is_animated", False))
    except MemoryError:
        raise
    except Exception as error:
        raise DecodeError(f"{origin} has corrupt frames ({_reason(error)})") from error
    if animated:
        raise UnsupportedModeError(
            f"{origin} is an animated {image.format}: transformers' torchvision processor turns every frame into a "
            "separate image (GIF) or fails (WebP), which load_image does not reproduce; pass backend='pil' for the "
            "first frame (as Qwen2VLImageProcessorPil) or extract the frames yourself"
        )


def _gpu_decode_device(gpu_decode: torch.device | str | None) -> torch.device | None:
    if gpu_decode is None:
        return None
    try:
        device = parse_device(gpu_decode)
    except DeviceError as error:
        raise DeviceError(f"gpu_decode needs an available CUDA device: {error}") from None
    if device.type != "cuda":
        raise DeviceError(f"gpu_decode needs an available CUDA device, got {str(device)!r}")
    return device


def _decode_jpeg_on_gpu(data: bytes, origin: str, exif_transpose: bool, device: torch.device) -> torch.Tensor:
    """nvJPEG through torchvision: fast, close to but not bit-identical with libjpeg-turbo."""
    from torchvision.io import ImageReadMode, decode_jpeg

    encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    try:
        return decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=exif_transpose)
    except (RuntimeError, ValueError) as error:
        raise DecodeError(f"{origin} could not be decoded on {device} ({_reason(error)})") from error


def _policy(policy: SourcePolicy | None, **limits: object) -> SourcePolicy:
    """``policy`` (default: the process-wide one) with the limits given explicitly."""
    return (current_source_policy() if policy is None else policy).with_limits(**limits)


def load_image(
    source: ImageSource,
    *,
    backend: Backend | str = Backend.TORCHVISION,
    exif_transpose: bool | None = None,
    timeout: float | None = None,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
    policy: SourcePolicy | None = None,
    gpu_decode: torch.device | str | None = None,
    copy: bool = True,
) -> ImageLike:
    """Load one image from a path, URL, bytes, base64 or data URI, decoded as the stock ``backend`` decodes it.

    Sources: a path (``str`` or ``os.PathLike``; regular files only), ``file://`` URL
    (percent-encoded or as written), ``http(s)://`` URL (redirects followed, never off http(s)),
    ``bytes`` / ``bytearray`` / ``memoryview``, a base64 string (standard or URL-safe alphabet) or a
    ``data:`` URI, as far as the source ``policy`` allows. PIL images, NumPy arrays and torch tensors
    are returned as they are (a PIL image is EXIF-oriented only with ``exif_transpose=True``), since
    the stock processors take them as they are.

    Decoded sources come back as a fully decoded uint8 RGB tensor of shape ``(3, H, W)`` (the
    type of transformers' ``load_image_as_tensor``; ``preprocess`` takes it without a copy),
    holding the pixels the stock processor of ``backend`` uses for the same string source:

    * ``"torchvision"``: the decoder the installed ``load_image_as_tensor`` picks
      (:func:`stock_decoder`). torchcodec: its ``decode_image(mode="RGB")``, EXIF-oriented, for
      JPEG, PNG, WebP, GIF and AVIF. torchvision: ``torchvision.io.decode_image(mode=RGB)`` for
      JPEG, GIF and WebP, with the EXIF orientation from transformers 5.21 on; PNGs are decoded
      by Pillow, whose pixels are identical, because torchvision's PNG decoder crashes the process
      on corrupt data. Formats the stock decoder cannot decode (BMP, TIFF...) go to Pillow, where
      the stock raises. Alpha is dropped.
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
            qwen-vl-utils' ``fetch_image``; torchcodec cannot skip it, so torchvision decodes
            then); ``True`` also to PIL images given in memory.
        timeout, max_bytes, max_pixels: override the policy's limits: seconds for a whole download,
            largest encoded source read, largest ``width * height`` decoded (checked from the header).
        policy: which sources are allowed, and the limits (:class:`vlfast.SourcePolicy`);
            default: the process-wide policy (:func:`vlfast.set_source_policy`).
        gpu_decode: opt-in fast path: decode JPEG sources on this CUDA device with nvJPEG
            (``torchvision.io.decode_jpeg(device=...)``) and return a CUDA tensor. nvJPEG's IDCT
            and chroma upsampling are not libjpeg-turbo's, so pixels can differ from the stock
            decode by a few levels (``tests/test_io_gpu_decode.py`` measures and bounds it): the
            result is then no longer bit-identical to the stock processor. Other formats take
            the exact path.
        copy: give the pixels of a Pillow-decoded source as memory of their own, writable (default);
            ``False``: a read-only view of Pillow's pixels, one copy fewer (~2 ms at 1080p), for a
            caller that only reads them (:func:`vlfast.preprocess` decodes its sources so).

    Raises:
        SourceNotAllowedError: a source the policy refuses (kind, host, address, directory).
        SourceTimeoutError: a download over the deadline.
        SourceTooLargeError: more than ``max_bytes``.
        ImageSourceError: missing file or not a regular file, malformed URL or data URI,
            unsupported scheme, HTTP error, invalid base64 (the three above are subclasses).
        DecodeError: empty, corrupt, truncated or non-image bytes.
        ImageTooLargeError: more than ``max_pixels`` pixels.
        UnsupportedModeError: an image the stock decoder turns into something vlfast does not
            reproduce (``"torchvision"``: 16-bit PNGs, animated GIF / WebP).
        UnsupportedOptionError: a bad backend, limit or copy flag.
        DeviceError: ``gpu_decode`` names a device that is not an available CUDA device.

    Example:
        >>> image = vlfast.load_image("https://example.com/cat.jpg", backend="pil")
        >>> image.shape, image.dtype
        (torch.Size([3, 1080, 1920]), torch.uint8)
        >>> out = vlfast.preprocess(image, backend="pil")  # == Qwen2VLImageProcessorPil()(url)
    """
    backend = parse_backend(backend)
    policy = _policy(policy, timeout=timeout, max_bytes=max_bytes, max_pixels=max_pixels)
    if not isinstance(copy, bool):
        raise UnsupportedOptionError(f"copy must be True or False, got {copy!r}")
    if isinstance(source, PIL.Image.Image):
        return _exif_transposed(source, "the PIL image given") if exif_transpose else source
    if isinstance(source, (np.ndarray, torch.Tensor)):
        return source
    gpu_device = _gpu_decode_device(gpu_decode)
    data, origin = _source_bytes(source, policy)
    image = _open_header(data if backend is Backend.PIL else _png_without_text(data), origin, policy.max_pixels)
    orient = exif_transpose if exif_transpose is not None else backend is Backend.PIL or loader_applies_exif()
    if gpu_device is not None and image.format == "JPEG":
        return _decode_jpeg_on_gpu(data, origin, orient, gpu_device)
    if backend is Backend.PIL:
        return _pillow_pixels(image, origin, orient, backend, copy)
    if orient and stock_decoder() == "torchcodec":
        if image.format not in TORCHCODEC_FORMATS:
            return _pillow_pixels(image, origin, orient, backend, copy)
        _reject_animated(image, origin)
        return _decode_with_torchcodec(data, origin)
    if image.format == "PNG" and data[_PNG_BIT_DEPTH_OFFSET] == 16:
        raise UnsupportedModeError(
            f"{origin} has 16 bits per channel: transformers' torchvision processor passes the raw 0-65535 values "
            "to a pipeline built for 0-255, which vlfast does not reproduce; use backend='pil' (Pillow clips to "
            "8 bits, as Qwen2VLImageProcessorPil does) or convert the image to 8 bits first"
        )
    if image.format not in TORCHVISION_FORMATS:
        return _pillow_pixels(image, origin, orient, backend, copy)
    if image.format in ("GIF", "WEBP"):
        _reject_animated(image, origin)
    return _decode_with_torchvision(data, origin, orient)


def cache_pillow_blocks(blocks: int) -> bool:
    """Let Pillow keep up to ``blocks`` freed blocks of image memory (16 MiB each at most) for the next decodes,
    unless this process chose already (``PILLOW_BLOCKS_MAX`` set, or a cache already on); returns whether it
    did. Pillow keeps none by default, so every decode maps fresh memory and page-faults it: a 1080p JPEG
    decoded by Pillow took 4,400 page faults and 24-32 ms with the kernel on the 2-vCPU VM, 16-20 ms with a
    cache. For a process that decodes image after image (``vlfast preprocess DIR --out`` calls it); the
    pixels are the same.

    Raises:
        UnsupportedOptionError: ``blocks`` is not a positive integer.
    """
    check_positive_ints(blocks=blocks)
    core = PIL.Image.core
    if "PILLOW_BLOCKS_MAX" in os.environ or core.get_blocks_max() != 0:
        return False
    core.set_blocks_max(blocks)
    return True


def fetch_images(images: Any, backend: Backend | str, policy: SourcePolicy | None = None) -> Any:
    """The drop-in processors' ``fetch_images``: every string in a (nested) list loaded with :func:`load_image`
    (the stock decoder of ``backend``, the source policy and its limits); images pass through."""
    if isinstance(images, (list, tuple)):
        return [fetch_images(item, backend, policy) for item in images]
    if isinstance(images, str) or is_image_like(images):
        return load_image(images, backend=backend, policy=policy)
    raise ImageSourceError(
        f"images must be images (PIL, NumPy, torch), paths, URLs or base64 strings, or lists of them; "
        f"got {type(images).__name__}"
    )


def encode_image(
    source: ImageSource,
    *,
    backend: Backend | str = Backend.TORCHVISION,
    timeout: float | None = None,
    max_bytes: int | None = None,
    policy: SourcePolicy | None = None,
) -> str:
    """A ``data:`` URI carrying ``source`` without loss, for sending an image over JSON / HTTP.

    * Encoded sources (path, URL, bytes, base64, data URI) keep their original file bytes,
      EXIF included; the media type comes from the actual format (``data:image/jpeg;base64,...``).
      Never re-encoded: a JPEG is not decoded and compressed again. Read as :func:`load_image`
      reads them, under the same source ``policy`` and limits.
    * In-memory images (PIL, NumPy, torch) become a PNG of exactly the RGB pixels
      :func:`vlfast.preprocess` would see with ``backend`` (alpha composited on white,
      grayscale expanded, channels-first handled), so that loading the URI on the other side
      gives the same ``pixel_values`` as preprocessing the image here.

    The URI is accepted by :func:`load_image`, transformers' ``load_image`` and qwen-vl-utils.

    Raises:
        ImageSourceError, DecodeError, ImageTooLargeError: as :func:`load_image` (the bytes must be an image).
        InvalidImageError, UnsupportedModeError: an in-memory image :func:`vlfast.preprocess` rejects.

    Example:
        >>> uri = vlfast.encode_image("photo.jpg")  # 'data:image/jpeg;base64,/9j/4AAQ...'
        >>> message = {"type": "image", "image": uri}
    """
    backend = parse_backend(backend)
    policy = _policy(policy, timeout=timeout, max_bytes=max_bytes)
    if isinstance(source, (PIL.Image.Image, np.ndarray, torch.Tensor)):
        pixels = to_rgb_uint8(source, backend).cpu().contiguous().numpy()
        buffer = io.BytesIO()
        PIL.Image.fromarray(pixels).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        data, mime = buffer.getvalue(), "image/png"
    else:
        data, origin = _source_bytes(source, policy)
        image = _open_header(data, origin, policy.max_pixels)
        mime = PIL.Image.MIME.get(image.format, f"image/{image.format.lower()}")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
