"""Two builds of the C++ kernel side by side in one process: each resampling pass, alternating builds.

Usage: ``python bench/bench_cpu_ab.py BASELINE_SO [--candidate SO] [--names REV,REV] [--levels avx2,avx512]
[--widths ...] [--heights ...] [--rounds N] [--out DIR]``.

On shared cloud VMs a pass's time moves by up to 2x from one minute to the next, far more than most
kernel changes, so runs of two builds minutes apart compare the minutes, not the builds. This loads
both builds' ``_C`` into one process and times them in alternating rounds (the order flipped each
round) on the same 1920x1080 RGB image, so that both meet the same minute; it reports each build's
min and median and the median of the per-round ratios (baseline / candidate: above 1 is faster), and
checks that both wrote the same bytes. Build a baseline with ``git worktree add /tmp/base REV`` and
``python setup.py build_ext --inplace`` there; both builds must take the same plan arguments
(``engines.cpp.axis_arguments`` of this tree). Writes ``ab.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
from bench_cpu_passes import cpu_flags, floor_measurements

from vlfast.engines import cpp as cpu_kernel
from vlfast.machine import machine_info
from vlfast.plans import Backend, Filter, axis_plan

IN_HEIGHT, IN_WIDTH, CHANNELS = 1080, 1920, 3
#: Output widths of 1920-wide rows: the Qwen2.5-VL model size of 1080p (up), then 1.5x, 2x and 3.3x down.
WIDTHS = (1932, 1288, 952, 588)
#: Output heights of 1080-high columns, likewise.
HEIGHTS = (1092, 728, 532, 336)


def load_build(path: Path, name: str) -> ModuleType:
    """The ``_C`` extension at ``path``, imported under package ``name`` (so two builds coexist)."""
    spec = importlib.util.spec_from_file_location(f"{name}._C", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"not an extension module: {path}")
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except ImportError as error:  # a missing file, or a build of another Python or platform
        raise SystemExit(f"cannot load the build {path}: {error}") from error
    return module


def compare(
    builds: dict[str, ModuleType], image: np.ndarray, vertical: bool, out_size: int, backend: Backend, rounds: int
) -> dict[str, str]:
    """One pass with both builds in alternating rounds; raises if their bytes differ."""
    in_size = image.shape[0] if vertical else image.shape[1]
    fields = cpu_kernel.axis_arguments(axis_plan(in_size, out_size, Filter.BICUBIC, backend))
    shape = (out_size, image.shape[1], CHANNELS) if vertical else (image.shape[0], out_size, CHANNELS)
    # One output for both: where a buffer lies relative to the input moves a pass's time by several percent.
    out = np.empty(shape, np.uint8)
    times: dict[str, list[float]] = {name: [] for name in builds}
    order = list(builds)
    for r in range(rounds + 1):  # round 0 warms up
        for name in order if r % 2 else order[::-1]:
            start = time.perf_counter()
            builds[name].resample_axis(image, fields, vertical, out)
            if r:
                times[name].append(time.perf_counter() - start)
    outs = {name: np.empty(shape, np.uint8) for name in builds}
    for name, build in builds.items():
        build.resample_axis(image, fields, vertical, outs[name])
    if not np.array_equal(outs["baseline"], outs["candidate"]):
        raise SystemExit(f"the builds differ: {'vertical' if vertical else 'horizontal'} {out_size} {backend.value}")
    base, cand = times["baseline"], times["candidate"]
    ratios = [b / c for b, c in zip(base, cand, strict=True)]
    gathers = "" if vertical else str(builds["candidate"].horizontal_gathers(fields, CHANNELS))
    return {
        "baseline": f"{min(base) * 1e3:.2f} / {statistics.median(base) * 1e3:.2f}",
        "candidate": f"{min(cand) * 1e3:.2f} / {statistics.median(cand) * 1e3:.2f}",
        "ratio": f"{statistics.median(ratios):.2f}",
        "gathers": gathers,
    }


def write_floor(repeats: int = 15) -> str:
    """The machine's write floor, measured now: NumPy filling the 1080p float32 output's size on one thread
    (``bench_cpu_passes``' floor, the same buffer)."""
    fill = next(timing for timing in floor_measurements(1) if timing.name == "write floor numpy fill 1 thread")
    for _ in range(repeats):
        fill.once()
    median, size = statistics.median(fill.times), fill.nbytes
    return f"{size / 1e6:.1f} MB written in {median * 1e3:.2f} ms ({size / median / 1e9:.1f} GB/s, one thread)"


def positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path, help="the baseline build's _C extension file")
    parser.add_argument("--candidate", type=Path, help="the candidate's (default: this tree's vlfast._C)")
    parser.add_argument("--names", default="baseline,candidate", help="the two builds' names in the output (commits)")
    parser.add_argument("--levels", help="SIMD levels, comma-separated (default: every level both builds have)")
    parser.add_argument("--widths", default=",".join(map(str, WIDTHS)), help="horizontal output widths")
    parser.add_argument("--heights", default=",".join(map(str, HEIGHTS)), help="vertical output heights")
    parser.add_argument("--rounds", type=positive, default=60)
    parser.add_argument("--out", type=Path, default=Path("bench/out/cpu-ab"))
    args = parser.parse_args(argv)
    if not cpu_kernel.available():
        parser.error("the C++ extension vlfast._C is not built")
    names = args.names.split(",")
    if len(names) != 2:
        parser.error(f"--names takes two names, got {args.names!r}")
    baseline_name, candidate_name = names
    candidate = args.candidate or Path(cpu_kernel._C.__file__)
    # Each under a name of its own: an extension imported again under a name already loaded is that module.
    builds = {
        name: load_build(path, f"vlfast_{name}")
        for name, path in (("baseline", args.baseline), ("candidate", candidate))
    }
    shared = [level for level in builds["candidate"].simd_levels() if level in builds["baseline"].simd_levels()]
    levels = args.levels.split(",") if args.levels else [level for level in shared if level != "portable"]
    unknown = sorted(set(levels) - set(shared))
    if unknown:
        parser.error(f"levels {unknown} are not in both builds on this CPU (they have {shared})")

    machine = machine_info()
    load_start = os.getloadavg()
    floor = write_floor()
    image = np.random.default_rng(0).integers(0, 256, (IN_HEIGHT, IN_WIDTH, CHANNELS), dtype=np.uint8)
    lines = [
        "| pass | level | backend | baseline min / median ms | candidate min / median ms | ratio | candidate gathers |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    before = {name: build.simd_level() for name, build in builds.items()}
    try:
        for level in levels:
            for build in builds.values():
                build.set_simd_level(level)
            for vertical, sizes in ((False, args.widths), (True, args.heights)):
                for out_size in (int(v) for v in sizes.split(",")):
                    for backend in Backend:
                        row = compare(builds, image, vertical, out_size, backend, args.rounds)
                        what = f"{IN_HEIGHT}->{out_size} rows" if vertical else f"{IN_WIDTH}->{out_size} columns"
                        lines.append(
                            f"| {what} | {level} | {backend.value} | {row['baseline']} | {row['candidate']} "
                            f"| {row['ratio']} | {row['gathers']} |"
                        )
                        print(lines[-1], flush=True)
    finally:  # each build back at its level (a build may be this process's vlfast._C)
        for name, build in builds.items():
            build.set_simd_level(before[name])
    load_end = os.getloadavg()
    header = (
        f"CPU: {machine['cpu']}, {machine['cpu_cores']} cores, flags: {cpu_flags()}; "
        f"baseline {baseline_name}, candidate {candidate_name}; one thread, a {IN_WIDTH}x{IN_HEIGHT} RGB image, "
        f"bicubic, {args.rounds} alternating rounds; ratio: median of per-round baseline/candidate; "
        f"write floor {floor}; load average (1 min) {load_start[0]:.2f} at start, {load_end[0]:.2f} at end; "
        f"{machine['date']}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ab.md").write_text("\n".join([header, "", *lines]) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
