"""Encoded test images built in code: any PIL image in a format, PNG chunks, headers that claim a huge size
(decompression bombs), and EXIF orientation tags."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import PIL.Image

#: The EXIF tag of the orientation.
EXIF_ORIENTATION = 0x0112


def encoded(image: PIL.Image.Image, fmt: str, **options: Any) -> bytes:
    """``image`` saved in format ``fmt`` (Pillow's ``save`` options passed on)."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width x height`` RGB pixels (a decompression bomb's header)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small baseline JPEG whose SOF0 header is patched to declare ``width x height`` (631 bytes)."""
    data = bytearray(encoded(PIL.Image.new("RGB", (16, 16)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def exif(orientation: int) -> PIL.Image.Exif:
    """EXIF data holding only an orientation tag (6: the camera was turned 90 degrees)."""
    tags = PIL.Image.Exif()
    tags[EXIF_ORIENTATION] = orientation
    return tags
