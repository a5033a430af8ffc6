"""Per-call cost of ``vlfast.preprocess`` on the CPU, before and after a change, in one process.

Usage: ``python bench/bench_overhead.py BASELINE_DIR [--cases NAMES] [--compact] [--simd-level L] [--stub-kernel]
[--calls N] [--hd-calls N]``, where
``BASELINE_DIR`` holds another checkout's ``vlfast`` package (with its ``_C`` built), e.g. ``git worktree add
/tmp/old <commit>``. It is imported as ``vlfast_baseline`` beside this tree's ``vlfast``; both and the stock
``transformers.Qwen2VLImageProcessor`` (torchvision backend) preprocess each case with Qwen2.5-VL settings, in
rotating blocks of calls: each engine back to back ("alone") and each call right after a stock call ("after
stock", what an interleaved caller sees). Cases: the benchmark suite's (``vlfast.benchmarking.FULL_CASES``,
default ``448x448,1920x1080``) and ``video-32x320x180`` (a clip of 32 frames through the drop-in
``VideoProcessor``, against the stock ``Qwen2VLVideoProcessor``). ``--compact``: both trees return the compact
hand-off (uint8, images only; the stock column stays the stock's float32 call); ``--simd-level``: both trees'
kernels capped at that level; ``--stub-kernel``: after the outputs are checked, both trees' extension calls do
nothing, so the medians are the Python around them alone (the plumbing a change to it moves: on a noisy 2-vCPU VM two
copies of one tree read up to ~45% apart whole, but within ~2% stubbed). Both outputs are checked bit for bit.
Prints a Markdown table of medians.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

import vlfast
from vlfast.benchmarking import _STOCK_SIZE, FULL_CASES, Case, _transformers, case_images, case_inputs
from vlfast.defaults import QWEN25_VL_MAX_PIXELS, QWEN25_VL_MIN_PIXELS
from vlfast.engines import cpp as cpu_kernel
from vlfast.processor import VideoProcessor

#: Consecutive calls of one engine and setting before the next one takes over.
BLOCK = 5
#: A clip of small frames: 32 frames of 320x180, each too small to split over threads.
VIDEO = "video-32x320x180"
VIDEO_FRAMES = 32
CASES = {case.name: case for case in FULL_CASES}
#: Cases of more input pixels than this get --hd-calls calls per setting, the others --calls.
HD_MEGAPIXELS = 1.0


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


def case_list(text: str) -> list[str]:
    """``--cases``: names of :data:`CASES` or :data:`VIDEO`, comma-separated."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in CASES and name != VIDEO]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"unknown cases {unknown}; choose from {[*CASES, VIDEO]}")
    return names


def case_runners(
    name: str, baseline: ModuleType, compact: bool = False
) -> tuple[dict[str, Callable[[], torch.Tensor]], Callable[[], object], float]:
    """The baseline's and this tree's calls of case ``name``, the stock's, and the case's input megapixels."""
    options = dict(min_pixels=QWEN25_VL_MIN_PIXELS, max_pixels=QWEN25_VL_MAX_PIXELS)
    if name == VIDEO:
        from transformers import Qwen2VLVideoProcessor

        clip = np.stack(case_images(Case(VIDEO, ((180, 320),) * VIDEO_FRAMES)))
        old = importlib.import_module("vlfast_baseline.processor").VideoProcessor(**options)
        new = VideoProcessor(**options)
        stock = Qwen2VLVideoProcessor(size=dict(_STOCK_SIZE))
        runners = {
            "baseline": lambda: old(clip, return_tensors="pt")["pixel_values_videos"],
            "this tree": lambda: new(clip, return_tensors="pt")["pixel_values_videos"],
        }
        return runners, lambda: stock(clip, return_tensors="pt", cap_pixels_per_frame=False), clip.size / 3 / 1e6
    case = CASES[name]
    images = case_inputs(case)
    # compact only when asked: checkouts before the compact hand-off have no such option
    options = dict(options, backend="torchvision", **({"compact": True} if compact else {}))
    runners = {
        "baseline": lambda: baseline.preprocess(images, **options).pixel_values,
        "this tree": lambda: vlfast.preprocess(images, **options).pixel_values,
    }
    return runners, _transformers("Qwen2VLImageProcessor", None)(images), case.megapixels


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path, help="directory of the checkout to compare with")
    parser.add_argument("--cases", type=case_list, default="448x448,1920x1080", help="cases, comma-separated")
    parser.add_argument("--compact", action="store_true", help="the compact hand-off (uint8), images only")
    parser.add_argument("--simd-level", help="both trees' kernels at this level (avx512, avx2, portable)")
    parser.add_argument(
        "--stub-kernel", action="store_true", help="time the Python around the extension calls only (they do nothing)"
    )
    parser.add_argument("--calls", type=int, default=300, help=f"calls per setting up to {HD_MEGAPIXELS} MP of input")
    parser.add_argument("--hd-calls", type=int, default=40, help="calls per setting above that")
    args = parser.parse_args(argv)
    if args.compact and VIDEO in args.cases:
        parser.error(f"--compact is for images; {VIDEO} is a clip")
    if args.simd_level is not None and args.simd_level not in cpu_kernel.simd_levels():
        parser.error(f"this CPU runs this tree's kernels at {cpu_kernel.simd_levels()}, not {args.simd_level!r}")
    baseline = import_baseline(args.baseline)
    with baseline_capped(args.simd_level), cpu_kernel.capped_simd_level(args.simd_level):
        compare(args, baseline)


def baseline_capped(level: str | None) -> AbstractContextManager[object]:
    """The baseline's kernels capped at ``level`` (``None``: nothing to do, whatever the checkout's age)."""
    if level is None:
        return nullcontext()
    capped = getattr(importlib.import_module("vlfast_baseline.engines.cpp"), "capped_simd_level", None)
    if capped is None:
        raise SystemExit("the baseline checkout cannot cap its SIMD level (no engines.cpp.capped_simd_level)")
    return capped(level)


class _StubKernel:
    """An extension module whose frame calls do nothing: what a call then takes is the Python around them."""

    def __init__(self, extension: ModuleType) -> None:
        self._extension = extension

    def __getattr__(self, name: str) -> object:
        return getattr(self._extension, name)

    def run_frame(self, *arguments: object) -> None:
        pass

    def run_frames(self, *arguments: object) -> None:
        pass


@contextmanager
def stubbed_kernels(stub: bool) -> Iterator[None]:
    """Both trees' ``engines.cpp._C`` replaced by :class:`_StubKernel` inside the block (``stub``), else as they are."""
    if not stub:
        yield
        return
    modules = [importlib.import_module(f"{package}.engines.cpp") for package in ("vlfast", "vlfast_baseline")]
    if any(getattr(module, "_C", None) is None for module in modules):
        raise SystemExit("--stub-kernel needs both trees' engines.cpp._C (the built extension)")
    extensions = [module._C for module in modules]
    for module, extension in zip(modules, extensions, strict=True):
        module._C = _StubKernel(extension)
    try:
        yield
    finally:
        for module, extension in zip(modules, extensions, strict=True):
            module._C = extension


def compare(args: argparse.Namespace, baseline: ModuleType) -> None:
    """Print the table of ``main``'s cases."""
    print("| case | setting | baseline ms | this tree ms | stock ms | stock / this tree |")
    print("|---|---|---:|---:|---:|---:|")
    for name in args.cases:
        runners, stock, megapixels = case_runners(name, baseline, args.compact)
        if not torch.equal(runners["baseline"](), runners["this tree"]()):
            raise SystemExit(f"{name}: the baseline and this tree differ")
        with stubbed_kernels(args.stub_kernel):
            medians = measure(runners, stock, args.calls if megapixels <= HD_MEGAPIXELS else args.hd_calls)
        for setting in ("alone", "after stock"):
            old, new = medians[f"baseline {setting}"], medians[f"this tree {setting}"]
            ratio = "-" if args.stub_kernel else f"{medians['stock'] / new:.2f}x"  # no pixels written: no ratio
            print(
                f"| {name} | {setting} | {old * 1e3:.3f} | {new * 1e3:.3f} | {medians['stock'] * 1e3:.3f} | {ratio} |"
            )


if __name__ == "__main__":
    main()
