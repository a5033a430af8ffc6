"""Where the supported releases of transformers, torchvision, Pillow and triton differ: every rule that
depends on an installed version, in one place.

vlfast reproduces the *installed* stock processors. Each rule below takes a version tuple and defaults
to the installed release's, read once from the package metadata (no import of the package itself).
Supported: transformers 5.17 to 5.25, torch 2.11 / torchvision 0.26 and later, Pillow 11.3 and later.
What is not a rule here follows the stock by construction: the processors' option handling and token
counts are the stock classes' own methods (``vlfast.processor``, ``vlfast.video``).
"""

from __future__ import annotations

import re
from functools import cache
from importlib.metadata import PackageNotFoundError, version

__all__ = [
    "Version",
    "inferred_channel_counts",
    "installed_version",
    "loader_applies_exif",
    "parse_version",
    "pillow_exports_pixels",
    "pillow_vertical_first",
    "rgb_conversion_composites",
    "torchvision_resizes_lanczos",
    "triton_interpreter_runs",
    "video_cap_reads_call_budget",
]

Version = tuple[int, ...]

#: transformers 5.21: ``convert_to_rgb`` composites transparency onto white and converts arrays (grayscale
#: repeated, RGBA composited); before, PIL images got a plain ``convert("RGB")`` and arrays were left as given.
RGB_COMPOSITING_SINCE: Version = (5, 21)
#: transformers 5.21: ``load_image_as_tensor`` (the torchvision processor's loader) applies the EXIF orientation.
LOADER_EXIF_SINCE: Version = (5, 21)
#: transformers 5.25: a call-time ``max_video_tokens`` reaches the video processor's per-frame cap.
VIDEO_CALL_TOKEN_BUDGET_SINCE: Version = (5, 25)
#: triton 3.7: the CPU interpreter runs with numpy >= 2.4 (3.6 calls ``int()`` on 1-element arrays, an error there).
TRITON_INTERPRETER_NUMPY_2_4_SINCE: Version = (3, 7)
#: torchvision 0.27: transformers resizes with LANCZOS; with older torchvision it silently uses BICUBIC instead.
TORCHVISION_LANCZOS_SINCE: Version = (0, 27)
#: Pillow 13.0: an image's Arrow export is safe to read pixels from (``vlfast.pil_memory``). Tried on 11.2.1,
#: 11.3.0, 12.0.0, 12.3.0 and 13.0.0: 11.2.1 never frees an exported image (475 MB after 60 1080p views); up
#: to 12.3.0, exporting an image made by ``Image.fromarrow`` crashes the process, and with rows aligned
#: (``PILLOW_ALIGNMENT``) the export hands out shifted rows; 13.0 frees, exports and refuses alike.
PILLOW_PIXEL_EXPORT_SINCE: Version = (13, 0)


def parse_version(text: str) -> Version:
    """The leading numeric release parts: ``"0.26.0+cu130"`` -> ``(0, 26, 0)``, ``"5.26.0.dev0"`` -> ``(5, 26, 0)``."""
    return tuple(int(part) for part in re.findall(r"\d+", text.split("+")[0].split("-")[0])[:3])


@cache
def installed_version(distribution: str) -> Version:
    """The installed release of ``distribution`` (e.g. ``"transformers"``); ``()``, older than any release,
    when it is not installed."""
    try:
        return parse_version(version(distribution))
    except PackageNotFoundError:
        return ()


def rgb_conversion_composites(transformers_version: Version | None = None) -> bool:
    """Whether the stock RGB conversion composites transparency onto white (transformers >= 5.21).

    True: a PIL image with an ``"A"`` band (RGBA, LA, PA, and LAB, whose ``A`` is no alpha) or a
    ``transparency`` mark is composited onto white; 1-channel arrays are repeated, 4-channel arrays
    composited. False (5.17 - 5.20): PIL images get ``convert("RGB")`` and arrays are left as they are.
    """
    given = installed_version("transformers") if transformers_version is None else transformers_version
    return given >= RGB_COMPOSITING_SINCE


def inferred_channel_counts(transformers_version: Version | None = None) -> tuple[int, ...]:
    """Channel counts transformers recognises when it infers the channel axis of an image array (the first
    axis wins when both could be channels): 1, 3 or 4 from 5.21 on (``num_channels=(1, 3, 4)``), 1 or 3 before."""
    return (1, 3, 4) if rgb_conversion_composites(transformers_version) else (1, 3)


def loader_applies_exif(transformers_version: Version | None = None) -> bool:
    """Whether ``load_image_as_tensor`` (the torchvision processor's loader for paths and URLs) applies the
    EXIF orientation (transformers >= 5.21). The PIL processor's ``load_image`` always does."""
    given = installed_version("transformers") if transformers_version is None else transformers_version
    return given >= LOADER_EXIF_SINCE


def video_cap_reads_call_budget(transformers_version: Version | None = None) -> bool:
    """Whether ``cap_pixels_per_frame`` uses a ``max_video_tokens`` given at call time (transformers >= 5.25);
    before, the stock resize reads the instance's whatever the call passes."""
    given = installed_version("transformers") if transformers_version is None else transformers_version
    return given >= VIDEO_CALL_TOKEN_BUDGET_SINCE


def torchvision_resizes_lanczos(torchvision_version: Version | None = None) -> bool:
    """Whether the stock torchvision backend resizes with LANCZOS when asked (torchvision >= 0.27); otherwise
    transformers swaps in BICUBIC (``TorchvisionBackend.resize``; torch < 2.12 has no lanczos). Without
    torchvision, as transformers' own check: no LANCZOS."""
    given = installed_version("torchvision") if torchvision_version is None else torchvision_version
    return given >= TORCHVISION_LANCZOS_SINCE


def triton_interpreter_runs(triton_version: Version | None = None, numpy_version: Version | None = None) -> bool:
    """Whether triton's CPU interpreter (``TRITON_INTERPRET=1``, the Triton tests without a GPU) works with the
    installed numpy: triton < 3.7 needs numpy < 2.4."""
    triton = installed_version("triton") if triton_version is None else triton_version
    numpy = installed_version("numpy") if numpy_version is None else numpy_version
    return triton >= TRITON_INTERPRETER_NUMPY_2_4_SINCE or numpy < (2, 4)


def pillow_exports_pixels(pillow_version: Version | None = None) -> bool:
    """Whether PIL images' pixels are read through Pillow's Arrow export (else copied, ``np.asarray``)."""
    given = installed_version("pillow") if pillow_version is None else pillow_version
    return given >= PILLOW_PIXEL_EXPORT_SINCE


def pillow_vertical_first(
    in_height: int, in_width: int, out_height: int, out_width: int, pillow_version: Version | None = None
) -> bool:
    """Pass order of Pillow's resize when both axes change size.

    - Pillow >= 13.0 (``ImagingResampleInner``): vertical first when the height shrinks
      by more pixels than twice what the width shrinks.
    - Pillow 12.2 (``Image.resize``): vertical first for images over 100x taller than
      wide that shrink in height (two chained resize calls).
    - Older releases: always horizontal first.
    """
    given = installed_version("pillow") if pillow_version is None else pillow_version
    if given >= (13, 0):
        shrink_h = in_height - out_height
        return shrink_h > 0 and shrink_h > (in_width - out_width) * 2
    if given >= (12, 2):
        return in_height > in_width * 100 and out_height < in_height
    return False
