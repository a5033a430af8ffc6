"""CPU benchmark: vlfast's C++ kernel against the stock transformers processors on CPU.

Usage: ``python bench/bench_cpu.py [--quick] [--out DIR] [--repeats N]``. Writes ``results.csv``,
``results.md`` and ``latency.png`` (see :mod:`vlfast.benchmarking`) and prints the table.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from vlfast.benchmarking import run_suite, suite_parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CPU suite and print its Markdown table."""
    parser = suite_parser(__doc__.splitlines()[0], Path("bench/out/cpu"))
    return run_suite(parser.parse_args(argv), parser, devices=("cpu",))


if __name__ == "__main__":
    sys.exit(main())
