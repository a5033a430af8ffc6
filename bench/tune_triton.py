"""Offline tuning of the Triton launch configurations (block shapes and warps), on a GPU.

Each candidate :class:`vlfast.kernels.batch.LaunchConfig` replaces the default for one
measurement: the kernels of one ``run_batch`` call are timed as CUDA-graph replays (median of
``--runs``), for 1920x1080, 3840x2160 and a mixed batch of 32, in bfloat16. The
first-pass candidates vary with the second-pass default held, and the other way round, so the
two passes are tuned independently. The output of every candidate is compared with the default
configuration's (``same``), which the CUDA tests compare with the reference.

Usage: ``python bench/tune_triton.py [--runs 30] [--csv PATH]``; pick the fastest rows and
write them into ``vlfast.kernels.batch.launch_config``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from bench_triton_kernels import CASES, CHANNELS, MERGE, PATCH, TEMPORAL, append_rows, bytes_moved, graph_time_ms

from vlfast.defaults import QWEN25_VL_MAX_PIXELS, QWEN25_VL_MIN_PIXELS
from vlfast.plans import Backend, Filter, resample_plan
from vlfast.sizing import smart_resize

#: (rows, cols, warps, wide stores) of the first pass; (patches per program, warps) of the second.
FIRST_PASS = [(2, 512, 4, False), (4, 128, 2, False), (8, 128, 4, False), (2, 512, 4, True), (16, 64, 4, True)]
SECOND_PASS = [(4, 4), (4, 8), (8, 4), (16, 8)]
TUNED_CASES = ("1920x1080", "3840x2160", "mixed-32")
DTYPES = (torch.bfloat16,)


def main(argv: Sequence[str] | None = None) -> int:
    """Time every candidate on every case and dtype; print the table and write the CSV."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--csv", type=Path, default=Path("bench/out/tune_triton.csv"))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.exit(2, f"{parser.prog}: error: no CUDA device: tuning needs a GPU\n")
    from vlfast.engines import FrameJob, PatchLayout
    from vlfast.engines.triton_engine import TritonEngine
    from vlfast.kernels import batch

    default = batch.launch_config(PATCH, False)
    candidates = [("default", default)]
    candidates += [
        (
            f"pass1 {r}x{c} w{w}{' wide' if wide else ''}",
            dataclasses.replace(default, pass_rows=r, pass_cols=c, pass_warps=w, pass_wide_stores=wide),
        )
        for r, c, w, wide in FIRST_PASS
    ]
    candidates += [
        (f"pass2 {r}p w{w}", dataclasses.replace(default, patch_rows=r, patch_warps=w)) for r, w in SECOND_PASS
    ]
    rng = np.random.default_rng(0)
    results = []
    for case in TUNED_CASES:
        sizes = CASES[case]
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
        frames = [torch.from_numpy(rng.integers(0, 256, (h, w, CHANNELS), dtype=np.uint8)).cuda() for h, w in sizes]
        rows = [(p.out_height // PATCH) * (p.out_width // PATCH) for p in plans]
        offsets = np.cumsum([0] + rows)[:-1].tolist()
        jobs = [FrameJob(f, p, o, 0, TEMPORAL) for f, p, o in zip(frames, plans, offsets, strict=True)]
        for dtype in DTYPES:
            out = torch.empty(sum(rows), CHANNELS * TEMPORAL * PATCH * PATCH, dtype=dtype, device="cuda")
            table = torch.randn(CHANNELS, 256, device="cuda").to(dtype)
            reference = None
            for name, config in candidates:
                batch.launch_config = lambda patch_size, interpret, config=config: config

                def call(jobs=jobs, table=table, out=out) -> None:
                    TritonEngine().run(jobs, table, out, PatchLayout(PATCH, MERGE, TEMPORAL))

                out.fill_(float("nan"))
                call()
                torch.cuda.synchronize()
                if reference is None:
                    reference = out.clone()
                same = bool(
                    torch.equal(
                        out.view(torch.int16 if dtype == torch.bfloat16 else torch.int32),
                        reference.view(torch.int16 if dtype == torch.bfloat16 else torch.int32),
                    )
                )
                median = statistics.median(graph_time_ms(call, args.runs, 3))
                moved = bytes_moved(plans, out.element_size())
                results.append(
                    {
                        "case": case,
                        "dtype": str(dtype).removeprefix("torch."),
                        "config": name,
                        "kernel_ms": median,
                        "gb_per_s": moved / median / 1e6,
                        "same": same,
                    }
                    | dataclasses.asdict(config)
                )
                print(
                    f"{case:<10}{results[-1]['dtype']:>9} {name:<22}{median:>9.4f} ms"
                    f"{results[-1]['gb_per_s']:>9.0f} GB/s same={same}",
                    flush=True,
                )
            del out
        del frames
    append_rows(args.csv, results)
    return 0 if all(r["same"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
