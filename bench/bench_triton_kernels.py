"""Kernel benchmark: time and bandwidth of the two Triton passes (``vlfast.engines.triton_engine``).

For 448x448, 1920x1080 and 3840x2160 (batch 1) and mixed batches of 8 and 32 images, sized
with Qwen2.5-VL's ``smart_resize`` (min_pixels 3136, max_pixels 12845056), on device-resident
uint8 frames, it measures (medians over ``--runs``):

- ``kernel_ms``: GPU time of both passes (CUDA events around replays of a CUDA graph of one
  ``TritonEngine.run`` call per input/output set, divided by the sets: host overhead is excluded, and
  sets are cycled through so that one call's data is no longer in L2 when it is read again);
- ``pass_ms`` and ``patchify_ms``: each op on its own, CUDA events around one launch of ``resample_pass``
  (the images whose both axes change) and of ``resample_patchify`` (every image), replayed with the
  arguments the engine gave them (``pass_ms`` is empty when no image needs two passes);
- ``call_ms``: CUDA events around the ``TritonEngine.run`` call itself (includes host overhead when
  the host is the bottleneck), and ``host_ms``: the call's wall time on the host;
- the bytes the kernels read and write, and the bandwidth at ``kernel_ms`` as a fraction of
  the device's measured device-to-device copy bandwidth.

Appends CSV rows (device, driver, versions, date).

Usage: ``python bench/bench_triton_kernels.py [--runs 50] [--dtype float32] [--csv PATH]``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from vlfast.defaults import (
    MERGE_SIZE,
    PATCH_SIZE,
    QWEN25_VL_MAX_PIXELS,
    QWEN25_VL_MIN_PIXELS,
    TEMPORAL_PATCH_SIZE,
)
from vlfast.machine import nvidia_driver
from vlfast.plans import Backend, Filter, ResamplePlan, resample_plan
from vlfast.sizing import smart_resize

PATCH, MERGE, TEMPORAL = PATCH_SIZE, MERGE_SIZE, TEMPORAL_PATCH_SIZE
MIN_PIXELS, MAX_PIXELS = QWEN25_VL_MIN_PIXELS, QWEN25_VL_MAX_PIXELS
CHANNELS = 3  # RGB
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "uint8": torch.uint8}
DTYPE_SIZES = {name: dtype.itemsize for name, dtype in DTYPES.items()}
#: Data cycled through per timed replay (several times the H100/H200's 50-60 MB L2), at most 16 sets.
ROTATION_BYTES = 256 * 2**20
MAX_SETS = 16
#: Photo and video-frame sizes (height, width) the mixed batches cycle through.
MIXED_SIZES = [
    (1080, 1920),
    (480, 640),
    (3024, 4032),
    (720, 1280),
    (1200, 1600),
    (375, 500),
    (2160, 3840),
    (768, 1024),
    (1080, 1080),
    (600, 800),
    (1536, 2048),
    (333, 500),
]
CASES = {
    "448x448": [(448, 448)],
    "1920x1080": [(1080, 1920)],
    "3840x2160": [(2160, 3840)],
    "mixed-8": [MIXED_SIZES[i % len(MIXED_SIZES)] for i in range(8)],
    "mixed-32": [MIXED_SIZES[i % len(MIXED_SIZES)] for i in range(32)],
}


def append_rows(path: Path, rows: Sequence[dict]) -> None:
    """Append ``rows`` to the CSV file ``path`` (its header first when the file is new)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new_file = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        if new_file:
            writer.writeheader()
        writer.writerows(rows)


def time_ms(function: Callable[[], None], runs: int, warmup: int) -> list[float]:
    """CUDA-event times of ``function`` on the current stream, one per run."""
    for _ in range(warmup):
        function()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        function()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return times


def graph_time_ms(function: Callable[[], None], runs: int, warmup: int) -> list[float]:
    """CUDA-event times of replays of a CUDA graph of ``function``: GPU time without host overhead."""
    # torch's recipe: warm up on the capture stream (the engine caches its uploads per stream).
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        function()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        function()
    torch.cuda.current_stream().wait_stream(stream)
    return time_ms(graph.replay, runs, warmup)


def op_launches(function: Callable[[], None]) -> dict[str, Callable[[], None]]:
    """Each Triton op that ``function`` launches, as a call replaying that launch with the same arguments."""
    from vlfast.kernels import resample_pass, resample_patchify

    launches: dict[str, Callable[[], None]] = {}
    originals = {"pass": (resample_pass, "resample_pass"), "patchify": (resample_patchify, "resample_patchify")}
    saved = {name: getattr(module, attribute) for name, (module, attribute) in originals.items()}

    def recorder(name: str) -> Callable[..., None]:
        def record(*args: object, **kwargs: object) -> None:
            launches[name] = lambda: saved[name](*args, **kwargs)
            saved[name](*args, **kwargs)

        return record

    try:
        for name, (module, attribute) in originals.items():
            setattr(module, attribute, recorder(name))
        function()
    finally:
        for name, (module, attribute) in originals.items():
            setattr(module, attribute, saved[name])
    return launches


def host_time_ms(function: Callable[[], None], runs: int) -> list[float]:
    """Wall time of ``function`` on the host, without waiting for the GPU."""
    times = []
    for _ in range(runs):
        torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1e3)
    torch.cuda.synchronize()
    return times


def copy_bandwidth(runs: int, warmup: int, size_bytes: int = 2**30) -> float:
    """Device-to-device ``copy_`` bandwidth in bytes/s, counting the read and the write."""
    source = torch.empty(size_bytes, dtype=torch.uint8, device="cuda")
    target = torch.empty_like(source)
    median = statistics.median(time_ms(lambda: target.copy_(source), runs, warmup))
    return 2 * size_bytes / (median / 1e3)


def bytes_moved(plans: Sequence[ResamplePlan], element_size: int) -> int:
    """Bytes both passes read and write: each buffer once (cached re-reads are not counted)."""
    total = 0
    for plan in plans:
        source = plan.in_height * plan.in_width * CHANNELS
        if plan.horizontal is not None and plan.vertical is not None:
            if plan.vertical_first:
                intermediate = plan.out_height * plan.in_width * CHANNELS
                total += source + 2 * intermediate  # pass 1 reads the source, writes; pass 2 reads
            else:
                vertical = plan.vertical
                rows = int((vertical.starts + vertical.counts).max()) - int(vertical.starts.min())
                intermediate = rows * plan.out_width * CHANNELS
                total += rows * plan.in_width * CHANNELS + 2 * intermediate  # only the rows pass 2 reads
        else:
            total += source
        total += plan.out_height * plan.out_width * CHANNELS * TEMPORAL * element_size
    return total


def main(argv: Sequence[str] | None = None) -> int:
    """Run every case, print a table and append the CSV rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="timed runs per case, median reported (min 20)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first (compiles the kernels)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="pixel_values dtype")
    parser.add_argument("--backend", choices=[b.value for b in Backend], default="pil", help="plans reproduced")
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES), help="cases to run")
    parser.add_argument(
        "--csv", type=Path, default=Path("bench/out/triton_kernels.csv"), help="CSV file the rows are appended to"
    )
    args = parser.parse_args(argv)
    if args.runs < 20:
        parser.error(f"--runs must be at least 20, got {args.runs}")
    if not torch.cuda.is_available():
        parser.exit(2, f"{parser.prog}: error: no CUDA device: the Triton kernels are benchmarked on a GPU only\n")

    import triton

    from vlfast.engines import FrameJob, PatchLayout
    from vlfast.engines.triton_engine import TritonEngine, interpreting

    if interpreting():
        parser.exit(2, f"{parser.prog}: error: unset TRITON_INTERPRET: it would time the CPU interpreter\n")

    dtype = DTYPES[args.dtype]
    backend = Backend(args.backend)
    copy_bytes_per_s = copy_bandwidth(args.runs, args.warmup)
    environment = {
        "device": torch.cuda.get_device_name(),
        "driver": nvidia_driver() or "unknown",
        "cuda": torch.version.cuda or "",
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    rng = np.random.default_rng(0)
    rows_out = []
    for name in args.cases:
        sizes = CASES[name]
        plans = [
            resample_plan(h, w, *smart_resize(h, w, PATCH * MERGE, MIN_PIXELS, MAX_PIXELS), Filter.BICUBIC, backend)
            for h, w in sizes
        ]
        patch_rows = [(p.out_height // PATCH) * (p.out_width // PATCH) for p in plans]
        offsets = np.cumsum([0] + patch_rows)[:-1].tolist()
        table = torch.arange(256, device="cuda").repeat(CHANNELS, 1).to(dtype)
        moved = bytes_moved(plans, DTYPE_SIZES[args.dtype])
        # Several input/output sets, cycled through in the timed graph, so that the data of one
        # call is not still in the 50-60 MB L2 cache when the next reads it.
        sets = max(1, min(MAX_SETS, -(-ROTATION_BYTES // moved)))
        buffers = [
            (
                [torch.from_numpy(rng.integers(0, 256, (h, w, CHANNELS), dtype=np.uint8)).cuda() for h, w in sizes],
                torch.empty(sum(patch_rows), CHANNELS * TEMPORAL * PATCH * PATCH, dtype=dtype, device="cuda"),
            )
            for _ in range(sets)
        ]

        layout = PatchLayout(PATCH, MERGE, TEMPORAL)
        jobs = [
            ([FrameJob(f, p, o, 0, TEMPORAL) for f, p, o in zip(frames, plans, offsets, strict=True)], out)
            for frames, out in buffers
        ]

        def call(frame_jobs=jobs[0][0], out=jobs[0][1], table=table, layout=layout) -> None:
            TritonEngine().run(frame_jobs, table, out, layout)

        def call_all(jobs=jobs, call=call) -> None:
            for frame_jobs, out in jobs:
                call(frame_jobs, out)

        call_times = time_ms(call, args.runs, args.warmup)
        ops = op_launches(call)
        op_ms = {name: statistics.median(time_ms(launch, args.runs, args.warmup)) for name, launch in ops.items()}
        host_times = host_time_ms(call, args.runs)
        try:
            kernel_times = [t / sets for t in graph_time_ms(call_all, args.runs, args.warmup)]
            timing = f"cuda-graph over {sets} sets"
        except RuntimeError as error:  # capture refused: time the calls (host overhead included)
            print(f"{name}: CUDA graph capture failed ({error}); kernel_ms falls back to call_ms", file=sys.stderr)
            kernel_times, timing = call_times, "call-events"
        kernel = statistics.median(kernel_times)
        bandwidth = moved / (kernel / 1e3)
        rows_out.append(
            environment
            | {
                "case": name,
                "batch": len(sizes),
                "dtype": args.dtype,
                "backend": backend.value,
                "kernel_ms": f"{kernel:.4f}",
                "kernel_min_ms": f"{min(kernel_times):.4f}",
                "kernel_timing": timing,
                "pass_ms": f"{op_ms['pass']:.4f}" if "pass" in op_ms else "",
                "patchify_ms": f"{op_ms['patchify']:.4f}",
                "call_ms": f"{statistics.median(call_times):.4f}",
                "host_ms": f"{statistics.median(host_times):.4f}",
                "runs": args.runs,
                "bytes": moved,
                "gb_per_s": f"{bandwidth / 1e9:.1f}",
                "copy_gb_per_s": f"{copy_bytes_per_s / 1e9:.1f}",
                "fraction_of_copy": f"{bandwidth / copy_bytes_per_s:.3f}",
            }
        )
        del buffers

    header = ("case", "batch", "kernel ms", "pass ms", "patchify ms", "call ms", "host ms")
    columns = "".join(f"{name:>12}" for name in header[2:])
    print(f"{header[0]:<12}{header[1]:>6}{columns}{'MB':>9}{'GB/s':>8}{'of copy':>9}")
    for row in rows_out:
        timings = (row["kernel_ms"], row["pass_ms"] or "-", row["patchify_ms"], row["call_ms"], row["host_ms"])
        print(
            f"{row['case']:<12}{row['batch']:>6}"
            + "".join(f"{value:>12}" for value in timings)
            + f"{row['bytes'] / 1e6:>9.1f}{row['gb_per_s']:>8}{row['fraction_of_copy']:>9}"
        )
    append_rows(args.csv, rows_out)
    print(f"device {environment['device']}, copy bandwidth {copy_bytes_per_s / 1e9:.1f} GB/s; appended to {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
