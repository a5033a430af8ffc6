"""Host memory of the compact hand-off against float32 ``pixel_values``, for a document batch.

Each mode runs in a process of its own on the same synthetic pages (A4 at ``--dpi``, text-like
stripes), preprocessed with the Qwen2.5-VL settings on the CPU engine; reported: the size of
``pixel_values`` and the process's peak resident memory (``ru_maxrss``) above what it held after
creating the pages, plus the time of the call. ``compact`` is ``vlfast.preprocess(..., compact=True)``
(uint8, each image once); ``float32`` and ``bfloat16`` are the ordinary outputs. The ``compact``
child also times ``vlfast.expand_patches`` of its result to float32 and bfloat16 on the CPU, with the
C++ engine and with the reference engine's NumPy gather (median of ``--repeats`` calls each, side by
side in one process), and each engine's ``expand`` alone into an output allocated once (a fresh
output's page faults otherwise dominate both).

Usage: ``python bench/bench_compact.py [--pages 250] [--dpi 100] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

MODES = ("compact", "bfloat16", "float32")


def _expand_times(compact, grid, repeats: int) -> dict[str, float]:
    """Median seconds of expand_patches per output dtype and engine, calls interleaved."""
    import torch

    import vlfast
    from vlfast.defaults import TEMPORAL_PATCH_SIZE
    from vlfast.engines.cpp import CppEngine
    from vlfast.engines.reference import ReferenceEngine

    calls = {}
    for dtype in (torch.float32, torch.bfloat16):
        table = vlfast.normalization_table("torchvision", dtype=dtype)
        out = torch.zeros(compact.shape[0], compact.shape[1] * TEMPORAL_PATCH_SIZE, dtype=dtype)
        label = str(dtype).removeprefix("torch.")
        for engine, runner in (("cpp", CppEngine()), ("reference", ReferenceEngine())):
            calls[f"expand_{label}_{engine}_seconds"] = lambda table=table, engine=engine: vlfast.expand_patches(
                compact, grid, table, engine=engine
            )
            calls[f"kernel_{label}_{engine}_seconds"] = lambda table=table, runner=runner, out=out: runner.expand(
                compact, table, out
            )
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats + 1):  # the first round warms up
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values[1:]) for name, values in times.items()}


def _measure(mode: str, pages: int, dpi: int, repeats: int) -> dict[str, float]:
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
    expand = _expand_times(out.pixel_values, out.image_grid_thw, repeats) if mode == "compact" else {}
    return {
        "mode": mode,
        "pages": pages,
        "page": f"{width}x{height}",
        "rows": out.pixel_values.shape[0],
        "pixel_values_mib": out.pixel_values.nbytes / 2**20,
        "peak_above_inputs_mib": (peak - before) / 1024,
        "seconds": seconds,
        **expand,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every mode in a child process; print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=250)
    parser.add_argument("--dpi", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5, help="expand_patches calls timed per engine and dtype")
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # the child's job
    args = parser.parse_args(argv)
    if args.mode:
        print(json.dumps(_measure(args.mode, args.pages, args.dpi, args.repeats)))
        return 0
    results = []
    for mode in MODES:
        child = [sys.executable, __file__, "--mode", mode, "--pages", str(args.pages), "--dpi", str(args.dpi)]
        child += ["--repeats", str(args.repeats)]
        results.append(json.loads(subprocess.run(child, capture_output=True, text=True, check=True).stdout))
    print(f"{args.pages} pages of {results[0]['page']} ({results[0]['rows']} patches)")
    print(f"{'mode':<10}{'pixel_values MiB':>18}{'peak RSS above inputs MiB':>27}{'seconds':>9}")
    for row in results:
        print(
            f"{row['mode']:<10}{row['pixel_values_mib']:>18.0f}{row['peak_above_inputs_mib']:>27.0f}{row['seconds']:>9.2f}"
        )
    compact = results[0]
    print(f"\nexpand_patches of the compact result on the CPU (median of {args.repeats} calls)")
    print(f"{'dtype':<10}{'call':<30}{'C++ ms':>10}{'NumPy gather ms':>17}{'ratio':>8}")
    for dtype in ("float32", "bfloat16"):
        for kind, call in (("expand", "expand_patches"), ("kernel", "engine.expand, output reused")):
            cpp, numpy_ = compact[f"{kind}_{dtype}_cpp_seconds"], compact[f"{kind}_{dtype}_reference_seconds"]
            print(f"{dtype:<10}{call:<30}{cpp * 1e3:>10.1f}{numpy_ * 1e3:>17.1f}{numpy_ / cpp:>7.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
