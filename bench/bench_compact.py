"""Host memory of the compact hand-off against float32 ``pixel_values``, for a document batch.

Each mode runs in a process of its own on the same synthetic pages (A4 at ``--dpi``, text-like
stripes), preprocessed with the Qwen2.5-VL settings on the CPU engine; reported: the size of
``pixel_values`` and the process's peak resident memory (``ru_maxrss``) above what it held after
creating the pages, plus the time of the call. ``compact`` is ``vlfast.preprocess(..., compact=True)``
(uint8, each image once); ``float32`` and ``bfloat16`` are the ordinary outputs.

Usage: ``python bench/bench_compact.py [--pages 250] [--dpi 100]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Sequence

MODES = ("compact", "bfloat16", "float32")


def _measure(mode: str, pages: int, dpi: int) -> dict[str, float]:
    import numpy as np
    import torch

    import vlfast
    from vlfast.defaults import QWEN25_VL_MAX_PIXELS, QWEN25_VL_MIN_PIXELS

    height, width = round(11.69 * dpi), round(8.27 * dpi)
    rng = np.random.default_rng(0)
    page = np.full((height, width, 3), 255, np.uint8)
    for top in range(40, height - 40, 24):  # lines of "text": dark stripes of random widths
        page[top : top + 10, 60 : 60 + int(rng.integers(width // 3, width - 120))] = 20
    batch = [np.roll(page, index, axis=0) for index in range(pages)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    options = {"min_pixels": QWEN25_VL_MIN_PIXELS, "max_pixels": QWEN25_VL_MAX_PIXELS, "engine": "cpp"}
    if mode == "compact":
        options["compact"] = True
    else:
        options["dtype"] = getattr(torch, mode)
    start = time.perf_counter()
    out = vlfast.preprocess(batch, **options)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "mode": mode,
        "pages": pages,
        "page": f"{width}x{height}",
        "rows": out.pixel_values.shape[0],
        "pixel_values_mib": out.pixel_values.nbytes / 2**20,
        "peak_above_inputs_mib": (peak - before) / 1024,
        "seconds": seconds,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every mode in a child process; print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=250)
    parser.add_argument("--dpi", type=int, default=100)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # the child's job
    args = parser.parse_args(argv)
    if args.mode:
        print(json.dumps(_measure(args.mode, args.pages, args.dpi)))
        return 0
    results = []
    for mode in MODES:
        child = [sys.executable, __file__, "--mode", mode, "--pages", str(args.pages), "--dpi", str(args.dpi)]
        results.append(json.loads(subprocess.run(child, capture_output=True, text=True, check=True).stdout))
    print(f"{args.pages} pages of {results[0]['page']} ({results[0]['rows']} patches)")
    print(f"{'mode':<10}{'pixel_values MiB':>18}{'peak RSS above inputs MiB':>27}{'seconds':>9}")
    for row in results:
        print(
            f"{row['mode']:<10}{row['pixel_values_mib']:>18.0f}{row['peak_above_inputs_mib']:>27.0f}{row['seconds']:>9.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
