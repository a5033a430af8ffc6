"""CPU benchmark: vlfast's C++ kernel against the stock transformers processors on CPU.

Usage: ``python bench/bench_cpu.py [--quick] [--out DIR] [--repeats N]``. Writes ``results.csv``,
``results.md`` and ``latency.png`` (see :mod:`vlfast.benchmarking`) and prints the table.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from vlfast.benchmarking import FULL_REPEATS, QUICK_REPEATS, run_benchmark


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CPU suite and print its Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cases and repeats")
    parser.add_argument(
        "--out", type=Path, default=Path("bench/out/cpu"), help="output folder (default: bench/out/cpu)"
    )
    parser.add_argument(
        "--repeats", type=int, help=f"timed runs per case (default: {FULL_REPEATS}, --quick: {QUICK_REPEATS})"
    )
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    report = run_benchmark(args.out, quick=args.quick, devices=("cpu",), repeats=args.repeats)
    print(report.files["markdown"].read_text(encoding="utf-8"))
    print(f"wrote {', '.join(str(path) for path in report.files.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
