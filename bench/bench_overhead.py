"""Per-call cost of ``vlfast.preprocess`` on the CPU, before and after a change, in one process.

Usage: ``python bench/bench_overhead.py BASELINE_DIR [--calls N] [--hd-calls N]``, where ``BASELINE_DIR`` holds
another checkout's ``vlfast`` package (with its ``_C`` built), e.g. ``git worktree add /tmp/old <commit>``.
It is imported as ``vlfast_baseline`` beside this tree's ``vlfast``; both and the stock
``transformers.Qwen2VLImageProcessor`` (torchvision backend) preprocess one photo with Qwen2.5-VL settings at
448x448 and 1920x1080, in rotating blocks of calls: each engine back to back ("alone") and each call right
after a stock call ("after stock", what an interleaved caller sees). Prints a Markdown table of medians.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

import vlfast
from vlfast.benchmarking import _fit_photo, _source_photos, _transformers
from vlfast.defaults import QWEN25_VL_MAX_PIXELS, QWEN25_VL_MIN_PIXELS

#: Consecutive calls of one engine and setting before the next one takes over.
BLOCK = 5
SIZES = ((448, 448), (1080, 1920))


def import_baseline(directory: Path) -> ModuleType:
    """The ``vlfast`` package under ``directory``, imported as ``vlfast_baseline``."""
    spec = importlib.util.spec_from_file_location(
        "vlfast_baseline", directory / "vlfast" / "__init__.py", submodule_search_locations=[str(directory / "vlfast")]
    )
    if spec is None or spec.loader is None:
        raise SystemExit(f"no vlfast package under {directory}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["vlfast_baseline"] = module
    spec.loader.exec_module(module)
    return module


def measure(runners: dict[str, Callable[[], object]], stock: Callable[[], object], calls: int) -> dict[str, float]:
    """Median seconds of each runner alone and after a stock call, and of the stock itself."""
    times: dict[str, list[float]] = {"stock": []}
    for _ in range(3):
        for run in runners.values():
            run()
        stock()
    order = list(runners.items())
    for _ in range(-(-calls // BLOCK)):
        order.reverse()  # each engine goes first in every other round
        for name, run in order:
            for after_stock in (False, True):
                label = f"{name} {'after stock' if after_stock else 'alone'}"
                for _ in range(BLOCK):
                    if after_stock:
                        start = time.perf_counter()
                        stock()
                        times["stock"].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    result = run()
                    times.setdefault(label, []).append(time.perf_counter() - start)
                    del result
    return {label: statistics.median(values) for label, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path, help="directory of the checkout to compare with")
    parser.add_argument("--calls", type=int, default=300, help="calls per setting at 448x448")
    parser.add_argument("--hd-calls", type=int, default=40, help="calls per setting at 1920x1080")
    args = parser.parse_args()
    baseline = import_baseline(args.baseline)
    options = dict(backend="torchvision", min_pixels=QWEN25_VL_MIN_PIXELS, max_pixels=QWEN25_VL_MAX_PIXELS)
    print("| size | setting | baseline ms | this tree ms | stock ms | stock / this tree |")
    print("|---|---|---:|---:|---:|---:|")
    for height, width in SIZES:
        image = _fit_photo(_source_photos()[0], height, width)
        stock = _transformers("Qwen2VLImageProcessor", None)([image])
        ours = vlfast.preprocess([image], **options).pixel_values
        assert np.array_equal(ours.numpy(), baseline.preprocess([image], **options).pixel_values.numpy())
        runners = {
            "baseline": lambda image=image: baseline.preprocess([image], **options),
            "this tree": lambda image=image: vlfast.preprocess([image], **options),
        }
        medians = measure(runners, stock, args.calls if height == 448 else args.hd_calls)
        for setting in ("alone", "after stock"):
            old, new = medians[f"baseline {setting}"], medians[f"this tree {setting}"]
            print(
                f"| {width}x{height} | {setting} | {old * 1e3:.3f} | {new * 1e3:.3f} | {medians['stock'] * 1e3:.3f} "
                f"| {medians['stock'] / new:.2f}x |"
            )


if __name__ == "__main__":
    main()
