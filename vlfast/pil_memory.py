"""PIL images' pixels viewed where Pillow keeps them, through the Arrow C data interface (no copy).

``np.asarray(image)`` copies: Pillow stores an RGB pixel in 4 bytes (RGBX) and its array interface
packs every row into a new ``bytes`` (1.3 ms for a 1080p image, a third of vlfast's whole call; 6 ms at
4K). Pillow exports an image held in one block of memory (``Image.__arrow_c_array__``, up
to 16 MiB by default: 1080p, not 4K) as Arrow: a fixed-size list of 4 uint8 a pixel. :func:`rgbx_view`
views that memory as ``(H, W, 4)``, and the kernels read its RGB bytes in place (``[..., :3]``: strides
``(4W, 4, 1)``). Anything else (Pillow before 13.0, whose exports leak or crash:
:func:`vlfast.releases.pillow_exports_pixels`; images in several blocks; an export of another form) gets
``None``, and the caller copies as before.
"""

from __future__ import annotations

import ctypes

import numpy as np
import PIL.Image

from .releases import pillow_exports_pixels

__all__ = ["rgbx_view"]


class _ArrowSchema(ctypes.Structure):
    """``struct ArrowSchema`` of the Arrow C data interface (a stable ABI)."""


_ArrowSchema._fields_ = [
    ("format", ctypes.c_char_p),
    ("name", ctypes.c_char_p),
    ("metadata", ctypes.c_char_p),
    ("flags", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("children", ctypes.POINTER(ctypes.POINTER(_ArrowSchema))),
    ("dictionary", ctypes.POINTER(_ArrowSchema)),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]


class _ArrowArray(ctypes.Structure):
    """``struct ArrowArray`` of the Arrow C data interface."""


_ArrowArray._fields_ = [
    ("length", ctypes.c_int64),
    ("null_count", ctypes.c_int64),
    ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("buffers", ctypes.POINTER(ctypes.c_void_p)),
    ("children", ctypes.POINTER(ctypes.POINTER(_ArrowArray))),
    ("dictionary", ctypes.POINTER(_ArrowArray)),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]

# A prototype of its own (setting argtypes on ctypes.pythonapi's would change it for the whole process).
_capsule_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi)
)


class _ExportedMemory:
    """The exported pixels offered to NumPy (its array interface), holding the export's capsules: the
    array capsule releases Pillow's memory (a reference of its own, so the image may be closed or
    dropped meanwhile) when the last view of it goes."""

    def __init__(self, address: int, height: int, width: int, capsules: tuple[object, object]) -> None:
        self.capsules = capsules
        self.__array_interface__ = {
            "version": 3,
            "shape": (height, width, 4),
            "typestr": "|u1",
            "data": (address, True),  # read-only: the image's pixels, which vlfast only reads
        }


def _pixel_bytes(schema: _ArrowSchema, array: _ArrowArray, pixels: int) -> int | None:
    """The address of ``pixels`` x 4 bytes, if the export is a fixed-size list of 4 uint8 with no nulls."""
    if schema.format != b"+w:4" or schema.n_children != 1 or schema.children[0].contents.format != b"C":
        return None
    if array.length != pixels or array.offset or array.null_count or array.n_children != 1:
        return None
    values = array.children[0].contents
    if values.length < 4 * pixels or values.null_count or values.n_buffers != 2 or not values.buffers[1]:
        return None
    return values.buffers[1] + values.offset


def rgbx_view(image: PIL.Image.Image) -> np.ndarray | None:
    """A loaded RGB ``image``'s pixels in place, ``(H, W, 4)`` uint8 (RGBX: the 4th byte is not a channel), or
    ``None`` where Pillow does not export them so (then copy them, ``np.asarray``)."""
    export = getattr(image, "__arrow_c_array__", None)
    width, height = image.size
    if image.mode != "RGB" or export is None or not width or not height or not pillow_exports_pixels():
        return None
    try:
        schema_capsule, array_capsule = export()
    except ValueError:  # "Image rows are not contiguous in memory": several blocks
        return None
    try:
        schema = _ArrowSchema.from_address(_capsule_pointer(schema_capsule, b"arrow_schema"))
        array = _ArrowArray.from_address(_capsule_pointer(array_capsule, b"arrow_array"))
    except (TypeError, ValueError):  # not capsules, or capsules of another name
        return None
    address = _pixel_bytes(schema, array, width * height)
    if address is None:
        return None
    return np.asarray(_ExportedMemory(address, height, width, (schema_capsule, array_capsule)))
