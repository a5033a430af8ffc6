"""Two builds of the C++ kernel side by side in one process: each pass, then whole frames, alternating builds.

Usage: ``python bench/bench_cpu_ab.py BASELINE_SO [--candidate SO] [--names REV,REV] [--levels avx2,avx512]
[--baseline-level LEVEL] [--input WxH] [--widths ...] [--heights ...] [--frames ...] [--threads N] [--frame-level LEVEL]
[--dtype DTYPE] [--cold] [--gaps MS,...] [--rounds N] [--out DIR]``.

On shared cloud VMs a pass's time moves by up to 2x from one minute to the next, far more than most
kernel changes, so runs of two builds minutes apart compare the minutes, not the builds. This loads
both builds' ``_C`` into one process and times them in alternating rounds (the order flipped each
round) on the same RGB image (``--input``, 1920x1080 unless told; the default widths and heights are for
that size), so that both meet the same minute; it reports each build's
min and median and the median of the per-round ratios (baseline / candidate: above 1 is faster), and
checks that both wrote the same bytes. Whole frames (``run_frame``: both passes, the table and the
patch layout, in ``--dtype``, float32 unless told, on ``--threads`` threads at ``--frame-level``, by default
the CPU's highest; the table's formula given to builds that take one) are timed the same way, each call
after ``--gaps`` milliseconds of idle time (0: back to back): threads that slept wake slower, and calls
come with gaps in serving; with ``--cold``, each also after ``bench_cpu_passes.EVICT_BYTES`` written
elsewhere (its input and output out of the caches, as between the calls of a pipeline doing other work).
Build a baseline with ``git worktree add /tmp/base REV`` and ``python setup.py build_ext --inplace``
there; both builds must take the same plan arguments (``engines.cpp.axis_arguments`` of this tree).
One SIMD level against another on this CPU: a copy of this tree's build as the baseline (another file, so a
library with a level of its own) and ``--baseline-level``, at which the baseline runs every pass and frame.
Writes ``ab.md`` to ``--out``.
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
import torch
from bench_cpu_passes import (
    EVICT,
    LAYOUT,
    QWEN25_MAX_PIXELS,
    QWEN25_MIN_PIXELS,
    cpu_flags,
    floor_measurements,
    output_rows,
)

from vlfast import normalization_table, smart_resize
from vlfast.engines import cpp as cpu_kernel
from vlfast.engines.host_memory import empty_output
from vlfast.machine import machine_info
from vlfast.options import OUTPUT_DTYPES
from vlfast.plans import Backend, Filter, ResamplePlan, axis_plan, resample_plan
from vlfast.tables import table_formula

IN_HEIGHT, IN_WIDTH, CHANNELS = 1080, 1920, 3
#: Output widths of 1920-wide rows: the Qwen2.5-VL model size of 1080p (up), then 1.5x, 2x and 3.3x down.
WIDTHS = (1932, 1288, 952, 588)
#: Output heights of 1080-high columns, likewise.
HEIGHTS = (1092, 728, 532, 336)
#: Whole frames: ``WxH`` resized to the Qwen2.5-VL model size, or ``WxH:WxH`` to the size after the colon
#: (1080p to 588x336: a downscale, compute-bound).
FRAMES = ("448x448", "1920x1080", "1920x1080:588x336", "3840x2160")
#: The frames' output dtypes (``--dtype``): the float ones vlfast writes.
DTYPES = {str(dtype).removeprefix("torch."): dtype for dtype in OUTPUT_DTYPES if dtype.is_floating_point}
#: Idle milliseconds before each timed frame.
GAPS = (0.0, 0.3, 2.0)


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
    gathers = "" if vertical else gather_window(builds["candidate"], fields)
    return {
        "baseline": f"{min(base) * 1e3:.2f} / {statistics.median(base) * 1e3:.2f}",
        "candidate": f"{min(cand) * 1e3:.2f} / {statistics.median(cand) * 1e3:.2f}",
        "ratio": f"{statistics.median(ratios):.2f}",
        "gathers": gathers,
    }


def gather_window(build: ModuleType, fields: tuple) -> str:
    """The window (bytes) ``build``'s horizontal pass gathers from at its SIMD level, 0 where it transposes
    (builds before 128-byte windows: whether it gathers)."""
    if hasattr(build, "horizontal_gather_window"):
        return str(build.horizontal_gather_window(fields, CHANNELS))
    return str(build.horizontal_gathers(fields, CHANNELS))


def frame_plan(frame: str) -> tuple[np.ndarray, ResamplePlan]:
    """The image and bicubic torchvision plan of a :data:`FRAMES` entry (:func:`frame_list` checked it)."""
    source, _, target = frame.partition(":")
    width, height = (int(v) for v in source.split("x"))
    if target:
        out_w, out_h = (int(v) for v in target.split("x"))
    else:
        out_h, out_w = smart_resize(height, width, min_pixels=QWEN25_MIN_PIXELS, max_pixels=QWEN25_MAX_PIXELS)
    image = np.random.default_rng(0).integers(0, 256, (height, width, CHANNELS), dtype=np.uint8)
    return image, resample_plan(height, width, out_h, out_w, Filter.BICUBIC, Backend.TORCHVISION)


def compare_frame(
    builds: dict[str, ModuleType],
    frame: str,
    threads: int,
    gap_ms: float,
    rounds: int,
    dtype: torch.dtype,
    cold: bool = False,
) -> dict[str, str]:
    """One frame with both builds in alternating rounds, each call after ``gap_ms`` idle (and with ``cold``,
    after the caches are evicted); raises if their bytes differ."""
    image, plan = frame_plan(frame)
    table = normalization_table("torchvision", dtype=dtype)
    formula = cpu_kernel.formula_arguments(table_formula("torchvision"))
    columns = CHANNELS * LAYOUT["temporal_patch_size"] * LAYOUT["patch_size"] ** 2

    def arguments(out: torch.Tensor) -> tuple:
        return (*cpu_kernel.frame_arguments(image, plan, table, out, 0, **LAYOUT), threads)

    def run(build: ModuleType, frame_arguments: tuple) -> None:
        if takes_formula(build):
            build.run_frame(*frame_arguments, formula)
        else:
            build.run_frame(*frame_arguments)

    # One output for both (pooled: huge pages, faulted in by round 0), as for the passes.
    shared = arguments(empty_output(output_rows(plan), columns, dtype))
    times: dict[str, list[float]] = {name: [] for name in builds}
    order = list(builds)
    for r in range(rounds + 1):  # round 0 warms up
        for name in order if r % 2 else order[::-1]:
            if cold:
                EVICT()
            if gap_ms:
                time.sleep(gap_ms / 1e3)
            start = time.perf_counter()
            run(builds[name], shared)
            if r:
                times[name].append(time.perf_counter() - start)
    outs = {name: torch.zeros((output_rows(plan), columns), dtype=dtype) for name in builds}
    for name, build in builds.items():
        run(build, arguments(outs[name]))
    if not torch.equal(outs["baseline"].view(torch.uint8), outs["candidate"].view(torch.uint8)):
        raise SystemExit(f"the builds differ: frame {frame}")
    base, cand = times["baseline"], times["candidate"]
    ratios = [b / c for b, c in zip(base, cand, strict=True)]
    return {
        "size": f"{plan.out_width}x{plan.out_height}",
        "baseline": f"{min(base) * 1e3:.3f} / {statistics.median(base) * 1e3:.3f}",
        "candidate": f"{min(cand) * 1e3:.3f} / {statistics.median(cand) * 1e3:.3f}",
        "ratio": f"{statistics.median(ratios):.2f}",
    }


def takes_formula(build: ModuleType) -> bool:
    """Whether ``build``'s ``run_frame`` takes the table's formula (builds from before it was added do not)."""
    return "formula" in (build.run_frame.__doc__ or "")


def write_floor(repeats: int = 15) -> str:
    """The machine's write floor, measured now: NumPy filling the 1080p float32 output's size on one thread
    (``bench_cpu_passes``' floor, the same buffer)."""
    fill = next(timing for timing in floor_measurements(1) if timing.name == "write floor numpy fill 1 thread")
    for _ in range(repeats):
        fill.once()
    median, size = statistics.median(fill.times), fill.nbytes
    return f"{size / 1e6:.1f} MB written in {median * 1e3:.2f} ms ({size / median / 1e9:.1f} GB/s, one thread)"


def frame_list(text: str) -> list[str]:
    """An argparse type: comma-separated ``WxH`` or ``WxH:WxH`` frames (none for ''), each size positive and
    an output size a multiple of the patch block."""
    block = LAYOUT["patch_size"] * LAYOUT["merge_size"]
    frames = [frame for frame in text.split(",") if frame]
    for frame in frames:
        try:
            sizes = [[int(v) for v in size.split("x")] for size in frame.split(":")]
        except ValueError:
            sizes = []
        if not 1 <= len(sizes) <= 2 or any(len(size) != 2 or min(size) < 1 for size in sizes):
            raise argparse.ArgumentTypeError(f"a frame is WxH or WxH:WxH with positive sides, got {frame!r}")
        if len(sizes) == 2 and any(side % block for side in sizes[1]):
            raise argparse.ArgumentTypeError(f"an output size must be a multiple of {block} on each side: {frame!r}")
    return frames


def gap_list(text: str) -> list[float]:
    """An argparse type: comma-separated idle milliseconds, each finite and at least 0."""
    try:
        gaps = [float(v) for v in text.split(",")]
    except ValueError:
        gaps = [-1.0]
    if not all(0 <= gap < float("inf") for gap in gaps):
        raise argparse.ArgumentTypeError(f"gaps are milliseconds >= 0, comma-separated, got {text!r}")
    return gaps


def image_size(text: str) -> tuple[int, int]:
    """An argparse type: ``WxH``, both positive, as (width, height)."""
    try:
        width, height = (int(v) for v in text.split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return width, height


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
    parser.add_argument("--baseline-level", help="the baseline's SIMD level for every pass and frame (default: alike)")
    parser.add_argument(
        "--input", type=image_size, default=(IN_WIDTH, IN_HEIGHT), help="the passes' RGB input, WxH (1920x1080)"
    )
    parser.add_argument("--widths", default=",".join(map(str, WIDTHS)), help="horizontal output widths ('' for none)")
    parser.add_argument("--heights", default=",".join(map(str, HEIGHTS)), help="vertical output heights ('' for none)")
    parser.add_argument(
        "--frames", type=frame_list, default=",".join(FRAMES), help="whole frames, WxH or WxH:WxH ('' for none)"
    )
    parser.add_argument("--threads", type=positive, default=torch.get_num_threads(), help="threads per frame")
    parser.add_argument("--frame-level", help="the SIMD level of the frames (default: the CPU's highest)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="the frames' output dtype")
    parser.add_argument("--cold", action="store_true", help="evict the caches before each frame")
    parser.add_argument(
        "--gaps", type=gap_list, default=",".join(map(str, GAPS)), help="idle milliseconds before each frame"
    )
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
    frame_level = args.frame_level or shared[-1]
    if frame_level not in shared:
        parser.error(f"frame level {frame_level!r} is not in both builds on this CPU (they have {shared})")
    if args.baseline_level is not None and args.baseline_level not in shared:
        parser.error(f"baseline level {args.baseline_level!r} is not in both builds on this CPU (they have {shared})")

    def set_levels(level: str) -> None:
        """The candidate at ``level``, the baseline at ``--baseline-level`` or ``level``."""
        builds["candidate"].set_simd_level(level)
        builds["baseline"].set_simd_level(args.baseline_level or level)

    machine = machine_info()
    load_start = os.getloadavg()
    floor = write_floor()
    in_width, in_height = args.input
    image = np.random.default_rng(0).integers(0, 256, (in_height, in_width, CHANNELS), dtype=np.uint8)
    lines = [
        "| pass | level | backend | baseline min / median ms | candidate min / median ms | ratio "
        "| candidate gather window |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    before = {name: build.simd_level() for name, build in builds.items()}
    try:
        for level in levels:
            set_levels(level)
            for vertical, sizes in ((False, args.widths), (True, args.heights)):
                for out_size in (int(v) for v in sizes.split(",") if v):
                    for backend in Backend:
                        row = compare(builds, image, vertical, out_size, backend, args.rounds)
                        what = f"{in_height}->{out_size} rows" if vertical else f"{in_width}->{out_size} columns"
                        lines.append(
                            f"| {what} | {level} | {backend.value} | {row['baseline']} | {row['candidate']} "
                            f"| {row['ratio']} | {row['gathers']} |"
                        )
                        print(lines[-1], flush=True)
        set_levels(frame_level)
        frames = args.frames
        if frames:
            lines += [
                "",
                "| frame | resized to | idle before each (ms) | baseline min / median ms | candidate min / median ms "
                "| ratio |",
                "|---|---|---:|---:|---:|---:|",
            ]
        for frame in frames:
            for gap in args.gaps:
                row = compare_frame(builds, frame, args.threads, gap, args.rounds, DTYPES[args.dtype], args.cold)
                lines.append(
                    f"| {frame.partition(':')[0]} | {row['size']} | {gap:g} | {row['baseline']} "
                    f"| {row['candidate']} | {row['ratio']} |"
                )
                print(lines[-1], flush=True)
    finally:  # each build back at its level (a build may be this process's vlfast._C)
        for name, build in builds.items():
            build.set_simd_level(before[name])
    load_end = os.getloadavg()
    header = (
        f"CPU: {machine['cpu']}, {machine['cpu_cores']} cores, flags: {cpu_flags()}; "
        f"baseline {baseline_name}{f' at {args.baseline_level}' if args.baseline_level else ''}, "
        f"candidate {candidate_name}; passes: one thread, a {in_width}x{in_height} RGB "
        f"image, bicubic; frames: {args.threads} threads, {args.dtype}, the {frame_level} level"
        f"{', caches evicted before each' if args.cold else ''}; "
        f"{args.rounds} alternating rounds; ratio: median of per-round baseline/candidate; "
        f"write floor {floor}; load average (1 min) {load_start[0]:.2f} at start, {load_end[0]:.2f} at end; "
        f"{machine['date']}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ab.md").write_text("\n".join([header, "", *lines]) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
