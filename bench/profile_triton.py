"""Where the Triton kernels spend their time, on a GPU: each pass timed alone, registers and spills.

For one case (default 1920x1080, bfloat16, torchvision plans) it times each of the two
launches of ``run_batch`` on its own (CUDA events around graph replays of that launch alone),
prints the registers and spills of every compiled variant, and with ``--calls N`` only runs
``N`` plain calls (for a profiler such as Nsight Compute to attach to: ``ncu --kernel-name
regex:resample python bench/profile_triton.py --calls 3``).

Usage: ``python bench/profile_triton.py [--case 1920x1080] [--dtype bfloat16] [--calls N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence

import numpy as np
import torch
from bench_triton_kernels import CASES, CHANNELS, DTYPES, MERGE, PATCH, TEMPORAL, graph_time_ms

from vlfast.defaults import QWEN25_VL_MAX_PIXELS, QWEN25_VL_MIN_PIXELS
from vlfast.plans import Backend, Filter, resample_plan
from vlfast.sizing import smart_resize


def compiled_variants(kernel) -> list[tuple[int, int, int]]:
    """(registers, spills, shared bytes) of each variant of a JIT kernel compiled in this process."""
    found = []
    for caches in getattr(kernel, "device_caches", {}).values():
        for compiled in caches[0].values():
            found.append(
                (
                    getattr(compiled, "n_regs", -1),
                    getattr(compiled, "n_spills", -1),
                    getattr(compiled.metadata, "shared", -1),
                )
            )
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Time each pass, print registers and spills (or only run ``--calls`` calls)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), default="1920x1080")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16")
    parser.add_argument("--calls", type=int, default=0, help="only run this many calls (for a profiler)")
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.exit(2, f"{parser.prog}: error: no CUDA device: profiling needs a GPU\n")
    from vlfast.engines import FrameJob, PatchLayout
    from vlfast.engines.triton_engine import TritonEngine
    from vlfast.kernels import resample_pass, resample_patchify

    sizes = CASES[args.case]
    dtype = DTYPES[args.dtype]
    plans = [
        resample_plan(
            h,
            w,
            *smart_resize(h, w, PATCH * MERGE, QWEN25_VL_MIN_PIXELS, QWEN25_VL_MAX_PIXELS),
            Filter.BICUBIC,
            Backend.TORCHVISION,
        )
        for h, w in sizes
    ]
    rng = np.random.default_rng(0)
    frames = [torch.from_numpy(rng.integers(0, 256, (h, w, CHANNELS), dtype=np.uint8)).cuda() for h, w in sizes]
    rows = [(p.out_height // PATCH) * (p.out_width // PATCH) for p in plans]
    offsets = np.cumsum([0] + rows)[:-1].tolist()
    out = torch.empty(sum(rows), CHANNELS * TEMPORAL * PATCH * PATCH, dtype=dtype, device="cuda")
    table = torch.randn(CHANNELS, 256, device="cuda").to(dtype)

    jobs = [FrameJob(f, p, o, 0, TEMPORAL) for f, p, o in zip(frames, plans, offsets, strict=True)]

    def call() -> None:
        TritonEngine().run(jobs, table, out, PatchLayout(PATCH, MERGE, TEMPORAL))

    if args.calls:
        for _ in range(args.calls):
            call()
        torch.cuda.synchronize()
        return 0

    call()
    torch.cuda.synchronize()
    order = [(p.vertical_first, p.horizontal is not None, p.vertical is not None) for p in plans]
    print(f"case {args.case} {args.dtype}: plans (vertical_first, resize_x, resize_y) {order[:4]}")
    whole = statistics.median(graph_time_ms(call, args.runs, 3))
    # Each pass alone: the other launch is replaced by a no-op while capturing (run_batch imports
    # both launchers at call time).
    timings = {}
    for name, skipped, attribute in (
        ("pass 1 (resample_pass)", resample_patchify, "resample_patchify"),
        ("pass 2 (resample_patchify)", resample_pass, "resample_pass"),
    ):
        saved = getattr(skipped, attribute)
        setattr(skipped, attribute, lambda *_, **__: None)
        try:
            timings[name] = statistics.median(graph_time_ms(call, args.runs, 3))
        finally:
            setattr(skipped, attribute, saved)
    print(f"both passes      {whole * 1e3:9.1f} us")
    for name, value in timings.items():
        print(f"{name:<28}{value * 1e3:9.1f} us")
    for kernel in (resample_pass.resample_pass_kernel, resample_patchify.resample_patchify_kernel):
        print(f"{kernel.fn.__name__}: (registers, spills, shared) per variant {compiled_variants(kernel)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
