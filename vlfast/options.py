"""Validation of the options every entry point shares: one message and one error type for each mistake."""

from __future__ import annotations

import math
import numbers

import torch

from .errors import DeviceError, UnsupportedOptionError

__all__ = [
    "OUTPUT_DTYPES",
    "check_positive_ints",
    "check_rescale_factor",
    "is_positive_int",
    "parse_device",
    "parse_dtype",
]

#: dtypes ``pixel_values`` can be written in: every value comes from a table, so each is exact.
OUTPUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.uint8)


def is_positive_int(value: object) -> bool:
    """A positive integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) > 0


def check_positive_ints(**values: object) -> None:
    """Raise :class:`UnsupportedOptionError` naming the first value that is not a positive integer."""
    for name, value in values.items():
        if not is_positive_int(value):
            raise UnsupportedOptionError(f"{name} must be a positive integer, got {value!r}")


def parse_device(device: torch.device | str | int) -> torch.device:
    """``device`` as a ``torch.device`` that exists here, or :class:`DeviceError`."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise DeviceError(f"invalid device {device!r}: {error}") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device={str(parsed)!r} was requested but no CUDA device is available")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise DeviceError(f"device={str(parsed)!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif parsed.type != "cpu":
        raise DeviceError(f"device must be 'cpu' or a CUDA device, got {str(parsed)!r}")
    return parsed


def parse_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """An output dtype given as ``torch.bfloat16`` or ``"bfloat16"``, or :class:`UnsupportedOptionError`."""
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype.removeprefix("torch."), dtype)
    if dtype not in OUTPUT_DTYPES:
        names = [str(d).removeprefix("torch.") for d in OUTPUT_DTYPES]
        raise UnsupportedOptionError(f"dtype must be one of {names}, got {dtype!r}")
    return dtype


def check_rescale_factor(do_rescale: bool, rescale_factor: object) -> None:
    """A rescale factor must be a finite, non-zero real number when rescaling is on."""
    if do_rescale and (
        not isinstance(rescale_factor, numbers.Real)
        or isinstance(rescale_factor, bool)
        or not math.isfinite(rescale_factor)
        or rescale_factor == 0
    ):
        raise UnsupportedOptionError(f"rescale_factor must be a finite non-zero number, got {rescale_factor!r}")
