"""GPU benchmark: vlfast's Triton kernels against the stock torchvision backend on CUDA.

Usage: ``python bench/bench_gpu.py [--quick] [--out DIR] [--repeats N] [--with-cpu]``. ``--with-cpu``
also measures the CPU implementations in the same interleaved run, so speedups are relative to
the best stock option on the machine. Exits with an error message when CUDA is not available.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from vlfast.benchmarking import run_suite, suite_parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the GPU suite and print its Markdown table."""
    parser = suite_parser(__doc__.splitlines()[0], Path("bench/out/gpu"))
    parser.add_argument("--with-cpu", action="store_true", help="also measure the CPU implementations")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.exit(2, f"{parser.prog}: error: CUDA is not available here; run bench/bench_cpu.py for the CPU suite\n")
    return run_suite(args, parser, devices=("cpu", "cuda") if args.with_cpu else ("cuda",))


if __name__ == "__main__":
    sys.exit(main())
