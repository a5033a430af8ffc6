"""GPU benchmark: vlfast's Triton kernels against the stock torchvision backend on CUDA.

Usage: ``python bench/bench_gpu.py [--quick] [--out DIR] [--repeats N] [--with-cpu]``. ``--with-cpu``
also measures the CPU implementations in the same interleaved run, so speedups are relative to
the best stock option on the machine. Exits with an error message when CUDA is not available.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from vlfast.benchmarking import FULL_REPEATS, QUICK_REPEATS, run_benchmark


def main(argv: Sequence[str] | None = None) -> int:
    """Run the GPU suite and print its Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cases and repeats")
    parser.add_argument(
        "--out", type=Path, default=Path("bench/out/gpu"), help="output folder (default: bench/out/gpu)"
    )
    parser.add_argument(
        "--repeats", type=int, help=f"timed runs per case (default: {FULL_REPEATS}, --quick: {QUICK_REPEATS})"
    )
    parser.add_argument("--with-cpu", action="store_true", help="also measure the CPU implementations")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if not torch.cuda.is_available():
        parser.exit(2, f"{parser.prog}: error: CUDA is not available here; run bench/bench_cpu.py for the CPU suite\n")
    devices = ("cpu", "cuda") if args.with_cpu else ("cuda",)
    report = run_benchmark(args.out, quick=args.quick, devices=devices, repeats=args.repeats)
    print(report.files["markdown"].read_text(encoding="utf-8"))
    print(f"wrote {', '.join(str(path) for path in report.files.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
