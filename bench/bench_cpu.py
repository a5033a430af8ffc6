"""CPU benchmark: vlfast's C++ kernel against the stock transformers processors on CPU.

Usage: ``python bench/bench_cpu.py [--quick] [--out DIR] [--repeats N]``. Writes ``results.csv``,
``results.md`` and ``latency.png`` (see :mod:`vlfast.benchmarking`) and prints the table. Then, in the
same run, it appends to ``results.md`` what the ratios depend on: the CPU's instruction-set flags and
its memory write bandwidth (the floor of an output-bound kernel), measured as ``bench_cpu_passes.py``
measures them: ``cold`` (the caches evicted first, as in the suite's alternating runs, where each
implementation's output follows the others' work) and ``hot`` (the output just written).
"""

from __future__ import annotations

import runpy
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from vlfast.benchmarking import run_suite, suite_parser

#: The pass benchmark's helpers (the same flags and write floor in both scripts).
_PASSES = runpy.run_path(str(Path(__file__).with_name("bench_cpu_passes.py")))


def write_floor_note(path: Path, repeats: int) -> str:
    """Measure the write floor now and append it, with the CPU flags, to the Markdown at ``path``."""
    timings = _PASSES["floor_measurements"](torch.get_num_threads(), unconditioned=False)
    for timing in timings:
        timing.run()  # warm-up
    for _ in range(repeats):
        for timing in timings:
            timing.once()
    parts = [
        f"{timing.name}: {statistics.median(timing.times) * 1e3:.2f} ms "
        f"({timing.nbytes / statistics.median(timing.times) / 1e9:.1f} GB/s)"
        for timing in timings
    ]
    note = (
        f"\nCPU flags: {_PASSES['cpu_flags']()}. Memory write bandwidth in the same run (a float32 array of the "
        f"1080p output's size, median of {repeats}): {'; '.join(parts)}.\n"
    )
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(note)
    return note


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CPU suite, print its Markdown table and the write floor."""
    parser = suite_parser(__doc__.splitlines()[0], Path("bench/out/cpu"))
    args = parser.parse_args(argv)
    status = run_suite(args, parser, devices=("cpu",))
    print(write_floor_note(args.out / "results.md", 5 if args.quick else 30))
    return status


if __name__ == "__main__":
    sys.exit(main())
