"""Issue 15's CPU ratios at 1080p, each timed in adjacent pairs, so that a VM's drift cancels out.

Usage: ``python bench/bench_cpu_ratios.py [--pairs N] [--out DIR]``.

A 1920x1080 RGB image resized to the Qwen2.5-VL model size (1932x1092, bicubic, the torchvision backend's
plan and table, the table's formula given as the library gives it), the whole C++ call (``run_frame``):

- ``float32 / bfloat16``: the float32 call's time over the bfloat16 one's, on 1 thread and on torch's
  thread count, ``cold`` (:data:`bench_cpu_passes.EVICT_BYTES` written before each call) and ``hot`` (each
  call run once just before);
- ``float32 / write floor``: the float32 call on torch's threads over torch filling an already-faulted
  float32 array of the same size on as many, both ``cold``.

Each pair runs back to back, in an order that alternates from pair to pair; reported: the median of the
per-pair ratios and their quartiles. ``bench_cpu_passes.py`` times the same calls among many others,
up to a second apart, where a shared VM's speed moves too much for their ratios. Writes ``ratios.md``.
"""

from __future__ import annotations

import argparse
import os
import runpy
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from vlfast.machine import machine_info
from vlfast.plans import Backend, Filter, resample_plan

#: The pass benchmark's helpers: the same calls, eviction and CPU flags in both scripts.
_PASSES = runpy.run_path(str(Path(__file__).with_name("bench_cpu_passes.py")))


def seconds(run: Callable[[], object], prepare: Callable[[], object]) -> float:
    prepare()
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def paired_ratios(first: Callable[[], object], second: Callable[[], object], cold: bool, pairs: int) -> list[float]:
    """``pairs`` ratios first / second, each pair timed back to back, which runs first alternating."""
    evict = _PASSES["EVICT"]
    ratios = []
    for index in range(pairs):
        order = (first, second) if index % 2 else (second, first)
        times = [seconds(run, evict if cold else run) for run in order]
        ratios.append(times[0] / times[1] if index % 2 else times[1] / times[0])
    return ratios


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("bench/out/cpu-ratios"))
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    image = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    plan = resample_plan(1080, 1920, 1092, 1932, Filter.BICUBIC, Backend.TORCHVISION)
    frame_call = _PASSES["frame_call"]
    floor = next(
        t for t in _PASSES["floor_measurements"](threads) if t.name == f"write floor torch fill {threads} threads"
    )
    machine, load_start = machine_info(), os.getloadavg()
    rows = []
    for n in sorted({1, threads}):  # float32 ends as the call on torch's threads, which the floor row takes
        float32, _ = frame_call(image, plan, torch.float32, n)
        bfloat16, _ = frame_call(image, plan, torch.bfloat16, n)
        for cold in (True, False):
            label = f"1080p float32 / bfloat16, {n} thread{'s' if n > 1 else ''}, {'cold' if cold else 'hot'}"
            rows.append((label, paired_ratios(float32, bfloat16, cold, args.pairs)))
    rows.append(
        (f"1080p float32 / write floor, {threads} threads, cold", paired_ratios(float32, floor.run, True, args.pairs))
    )
    load_end = os.getloadavg()
    lines = [
        f"CPU: {machine['cpu']}, {machine['cpu_cores']} cores, flags: {_PASSES['cpu_flags']()}; torch threads "
        f"{threads}; load average (1 min) at start {load_start[0]:.2f}, at end {load_end[0]:.2f}; {args.pairs} "
        f"pairs each; torch {machine['torch']}, numpy {machine['numpy']}; {machine['date']}",
        "",
        "| ratio | median | quartiles (25%, 75%) |",
        "|---|---:|---:|",
    ]
    for label, ratios in rows:
        low, _, high = statistics.quantiles(ratios, n=4)
        lines.append(f"| {label} | {statistics.median(ratios):.2f} | {low:.2f}, {high:.2f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ratios.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
