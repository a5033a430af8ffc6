"""Pass-level CPU benchmark: each stage of the C++ kernel alone, against the machine's write floor.

Usage: ``python bench/bench_cpu_passes.py [--repeats N] [--sizes 1920x1080,...] [--out DIR]``.

For each input size (resized with the Qwen2.5-VL settings, bicubic) it times, in ms and GB/s:

- ``horizontal`` / ``vertical``: one pass over the whole image on one thread (``_C.resample_axis``),
  for both backends (torch's int16 weights, Pillow's 22-bit ones), at every SIMD level the CPU has
  (``avx512``, ``avx2``, ``portable``), each right after an untimed run of the same pass at the same level
  (so every level meets the same caches, whatever ran before it); GB/s counts the bytes read and written once;
- ``layout``: table lookup and patch layout alone (``run_frame`` on an image already at the model
  size, given the table's formula as the library gives it, so the x86 levels compute the items),
  GB/s of output;
- ``frame``: the whole ``run_frame`` (both passes, table, layout), GB/s of output;
- ``frame to WxH``: the whole ``run_frame`` of an input whose model size exceeds
  :data:`DOWNSCALE_MAX_PIXELS`, resized down to that budget instead, for both backends' weights, on 1
  thread and on torch's thread count: compute-bound (small output), so it shows how the threads scale
  on the passes (its GB/s, of output, says little);

``layout`` and ``frame`` in float32 and bfloat16, on 1 thread and on torch's thread count, at the CPU's
highest SIMD level, and ``frame`` float32 on torch's thread count at each lower level. The
floor is the same machine's memory write bandwidth, measured in the same run: NumPy filling an
already-faulted float32 array of the 1080p output's size (one thread) and torch filling it
(torch's threads). Every repeat runs every measurement once, in an order rotated from repeat to
repeat; reported: median, min and max. Writes ``passes.csv`` and ``passes.md`` to ``--out``.

Whether the output is in the cache decides the floor on CPUs with a large last-level cache, so the
floor and the 1080p frame on torch's threads are also measured in two named conditions: ``cold``
(:data:`EVICT_BYTES` written elsewhere first, as when other work runs between calls: the
end-to-end benchmark's alternating runs) and ``hot`` (the same call run just before, untimed). The
per-level passes are always measured hot.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from vlfast import normalization_table, smart_resize
from vlfast.defaults import MERGE_SIZE, PATCH_SIZE, TEMPORAL_PATCH_SIZE
from vlfast.engines import cpp as cpu_kernel
from vlfast.engines.host_memory import empty_output
from vlfast.machine import cpu_flags as machine_cpu_flags
from vlfast.machine import machine_info
from vlfast.plans import Backend, Filter, ResamplePlan, resample_plan
from vlfast.tables import table_formula

QWEN25_MIN_PIXELS = 3136
QWEN25_MAX_PIXELS = 12845056
LAYOUT = {"patch_size": PATCH_SIZE, "merge_size": MERGE_SIZE, "temporal_patch_size": TEMPORAL_PATCH_SIZE}
#: Bytes written before a ``cold`` measurement, to push its output out of the caches (more than the
#: last-level caches of the 2-vCPU cloud machines measured; they report 32 to 480 MiB shared).
EVICT_BYTES = 512 << 20
#: The pixel budget of the ``frame to`` measurements (a 448x448 image's): large inputs resized far down,
#: where the passes rather than the output writes take the time, to show how threads scale on compute.
DOWNSCALE_MAX_PIXELS = 448 * 448
#: The instruction-set flags that decide which kernels can run.
FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vbmi", "avx512_vnni", "avx_vnni")


def cpu_flags() -> str:
    """The flags of FLAGS this CPU has, as /proc/cpuinfo lists them ("?" where it lists none)."""
    present = machine_cpu_flags()
    return " ".join(flag for flag in FLAGS if flag in present) if present else "?"


class Timing:
    """One measurement: a call, the bytes it moves, the times it took; ``prepare`` runs untimed before each."""

    def __init__(
        self, name: str, run: Callable[[], object], nbytes: int, prepare: Callable[[], object] | None = None
    ) -> None:
        self.name, self.run, self.nbytes, self.prepare = name, run, nbytes, prepare
        self.times: list[float] = []

    def once(self) -> None:
        if self.prepare is not None:
            self.prepare()
        start = time.perf_counter()
        self.run()
        self.times.append(time.perf_counter() - start)

    def row(self) -> dict[str, str]:
        median = statistics.median(self.times)
        return {
            "measurement": self.name,
            "median_ms": f"{median * 1e3:.3f}",
            "min_ms": f"{min(self.times) * 1e3:.3f}",
            "max_ms": f"{max(self.times) * 1e3:.3f}",
            "gb_per_s": f"{self.nbytes / median / 1e9:.2f}",
            "megabytes": f"{self.nbytes / 1e6:.1f}",
        }


class Evictor:
    """Writes :data:`EVICT_BYTES` of its own (allocated on the first call) to evict the caches."""

    def __init__(self) -> None:
        self.buffer: np.ndarray | None = None

    def __call__(self) -> None:
        if self.buffer is None:
            self.buffer = np.empty(EVICT_BYTES, np.uint8)
        self.buffer.fill(1)


EVICT = Evictor()


def conditioned(name: str, run: Callable[[], object], nbytes: int) -> list[Timing]:
    """``run`` measured ``cold`` (caches evicted first) and ``hot`` (run once just before)."""
    return [Timing(f"{name}, cold", run, nbytes, EVICT), Timing(f"{name}, hot", run, nbytes, run)]


def at_level(level: str, run: Callable[[], object]) -> Callable[[], object]:
    """``run`` with the kernels capped at SIMD ``level``, then back to the CPU's highest."""
    levels = cpu_kernel._C.simd_levels()

    def call() -> object:
        cpu_kernel._C.set_simd_level(level)
        try:
            return run()
        finally:
            cpu_kernel._C.set_simd_level(levels[-1])

    return call


def output_rows(plan: ResamplePlan) -> int:
    return (plan.out_height // PATCH_SIZE) * (plan.out_width // PATCH_SIZE)


def frame_call(image: np.ndarray, plan: ResamplePlan, dtype: torch.dtype, threads: int) -> tuple[Callable, int]:
    # One table and its formula for every plan (pil plans included): the lookup costs the same whatever the
    # entries; at avx2 and avx512 the torchvision formula is computed in float32, the pil one would take float64.
    table = normalization_table("torchvision", dtype=dtype)
    formula = table_formula("torchvision")
    out = empty_output(output_rows(plan), 3 * TEMPORAL_PATCH_SIZE * PATCH_SIZE**2, dtype)

    def run() -> None:
        cpu_kernel.run_frame(image, plan, table, out, 0, num_threads=threads, formula=formula, **LAYOUT)

    run()  # fault the output in
    return run, out.numel() * out.element_size()


def axis_call(image: np.ndarray, plan: ResamplePlan, vertical: bool) -> tuple[Callable, int]:
    axis = plan.vertical if vertical else plan.horizontal
    fields = cpu_kernel.axis_arguments(axis)
    shape = (axis.out_size, image.shape[1], 3) if vertical else (image.shape[0], axis.out_size, 3)
    out = np.empty(shape, np.uint8)

    def run() -> None:
        cpu_kernel._C.resample_axis(image, fields, vertical, out)

    return run, image.nbytes + out.nbytes


def measurements(width: int, height: int, threads: int) -> list[Timing]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    out_h, out_w = smart_resize(height, width, min_pixels=QWEN25_MIN_PIXELS, max_pixels=QWEN25_MAX_PIXELS)
    resized = rng.integers(0, 256, (out_h, out_w, 3), dtype=np.uint8)
    unchanged = ResamplePlan(out_h, out_w, out_h, out_w, None, None, False)
    case = f"{width}x{height}"
    levels = cpu_kernel._C.simd_levels()
    timings = []
    for backend in Backend:
        plan = resample_plan(height, width, out_h, out_w, Filter.BICUBIC, backend)
        for vertical, axis in ((False, plan.horizontal), (True, plan.vertical)):
            if axis is None:
                continue
            run, nbytes = axis_call(image, plan, vertical)
            for level in reversed(levels):
                name = f"{case} {'vertical' if vertical else 'horizontal'} {backend.value} {level}"
                capped = at_level(level, run)
                timings.append(Timing(name, capped, nbytes, prepare=capped))
    plan = resample_plan(height, width, out_h, out_w, Filter.BICUBIC, Backend.TORCHVISION)
    for dtype in (torch.float32, torch.bfloat16):
        for n in sorted({1, threads}):
            label = f"{str(dtype).removeprefix('torch.')} {n} thread{'s' if n > 1 else ''}"
            timings.append(Timing(f"{case} layout {label}", *frame_call(resized, unchanged, dtype, n)))
            timings.append(Timing(f"{case} frame {label}", *frame_call(image, plan, dtype, n)))
    run, nbytes = frame_call(image, plan, torch.float32, threads)
    if (width, height) == (1920, 1080):
        timings += conditioned(f"{case} frame float32 {threads} threads", run, nbytes)
        bf16_run, bf16_bytes = frame_call(image, plan, torch.bfloat16, threads)
        timings += conditioned(f"{case} frame bfloat16 {threads} threads", bf16_run, bf16_bytes)
    for level in reversed(levels[:-1]):
        timings.append(Timing(f"{case} frame float32 {threads} threads {level}", at_level(level, run), nbytes))
    small_h, small_w = smart_resize(height, width, min_pixels=QWEN25_MIN_PIXELS, max_pixels=DOWNSCALE_MAX_PIXELS)
    if (small_h, small_w) != (out_h, out_w):
        for backend in Backend:
            small = resample_plan(height, width, small_h, small_w, Filter.BICUBIC, backend)
            for n in sorted({1, threads}):
                name = f"{case} frame to {small_w}x{small_h} {backend.value} float32 {n} thread{'s' if n > 1 else ''}"
                timings.append(Timing(name, *frame_call(image, small, torch.float32, n)))
    return timings


def floor_measurements(threads: int, *, unconditioned: bool = True) -> list[Timing]:
    """Filling a faulted float32 array of the 1080p output's size: the write floor, ``cold`` and ``hot``, and
    (``unconditioned``) as the rotation of the other measurements leaves the caches."""
    rows = (1092 // PATCH_SIZE) * (1932 // PATCH_SIZE)
    array = np.empty((rows, 3 * TEMPORAL_PATCH_SIZE * PATCH_SIZE**2), np.float32)
    array.fill(1.0)
    tensor = torch.from_numpy(array)

    def torch_fill() -> None:
        tensor.fill_(1.0)

    def numpy_fill() -> None:
        array.fill(1.0)

    fills = [("write floor numpy fill 1 thread", numpy_fill), (f"write floor torch fill {threads} threads", torch_fill)]
    timings = [Timing(name, fill, array.nbytes) for name, fill in fills] if unconditioned else []
    for name, fill in fills:
        timings += conditioned(name, fill, array.nbytes)
    return timings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--sizes", default="1920x1080,448x448,3840x2160", help="WIDTHxHEIGHT,...")
    parser.add_argument("--out", type=Path, default=Path("bench/out/cpu-passes"))
    args = parser.parse_args(argv)
    if not cpu_kernel.available():
        parser.error("the C++ extension vlfast._C is not built")

    threads = torch.get_num_threads()
    machine = machine_info()
    load_start = os.getloadavg()
    timings = floor_measurements(threads)
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        timings += measurements(width, height, threads)
    for timing in timings:  # warm-up
        timing.run()
    for repeat in range(args.repeats):
        shift = repeat % len(timings)
        for timing in timings[shift:] + timings[:shift]:
            timing.once()
    load_end = os.getloadavg()

    header = (
        f"CPU: {machine['cpu']}, {machine['cpu_cores']} cores, flags: {cpu_flags()}; torch threads {threads}; "
        f"load average (1/5/15 min) at start {load_start[0]:.2f}/{load_start[1]:.2f}/{load_start[2]:.2f}, "
        f"at end {load_end[0]:.2f}/{load_end[1]:.2f}/{load_end[2]:.2f}; {args.repeats} interleaved repeats; "
        f"torch {machine['torch']}, numpy {machine['numpy']}; {machine['date']}"
    )
    rows = [timing.row() for timing in timings]
    lines = [
        header,
        "",
        "| measurement | median ms | min-max ms | GB/s (at median) | MB moved |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['measurement']} | {r['median_ms']} | {r['min_ms']}-{r['max_ms']} | {r['gb_per_s']} | {r['megabytes']} |"
        for r in rows
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "passes.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with open(args.out / "passes.csv", "w", newline="", encoding="utf-8") as handle:
        extra = {
            "cpu": machine["cpu"],
            "cpu_flags": cpu_flags(),
            "torch_threads": str(threads),
            "load_average_1m_start": f"{load_start[0]:.2f}",
            "load_average_1m_end": f"{load_end[0]:.2f}",
            "repeats": str(args.repeats),
            "date": machine["date"],
        }
        writer = csv.DictWriter(handle, fieldnames=[*rows[0], *extra])
        writer.writeheader()
        writer.writerows({**row, **extra} for row in rows)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
