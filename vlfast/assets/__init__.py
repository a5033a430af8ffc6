"""Data shipped with vlfast."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["shipped_photo_path"]


def shipped_photo_path() -> Path:
    """The photo shipped with vlfast (scikit-image's public-domain "Chelsea the cat"), a PNG file."""
    return Path(str(resources.files(__name__) / "chelsea.png"))
