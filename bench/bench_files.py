"""End to end from image files: vlfast against the stock transformers processors, side by side, on the same files
and the same cores.

Files: scikit-image's photos resized (Pillow LANCZOS) to 448x448, 1280x720, 1920x1080 and 3840x2160, each as
JPEG (quality 90) and PNG, plus a mixed folder (every size, both formats). Each implementation is given the
file paths and decodes them itself:

* ``vlfast-torchvision`` / ``vlfast-pil``: ``vlfast.preprocess(paths, backend=...)``: decoding on its thread
  pool (``workers``), then the C++ kernel on torch's threads;
* ``stock-torchvision``: ``Qwen2VLImageProcessor()(paths)`` (torchvision's decoder, torch ops);
* ``stock-pil``: ``Qwen2VLImageProcessorPil()(paths)`` (Pillow, NumPy).

All with the Qwen2.5-VL pixel bounds (3136 / 12845056), float32 output. Two measurements per case:

* ``throughput``: images/s with every core busy, both sides given the same cores: ``--cores`` worker
  processes, each single-threaded (torch threads 1, vlfast ``workers=1``), each preprocessing its share of the
  case's files in batches; wall time of the whole set, median of ``--repeats`` rounds, implementations
  interleaved round by round;
* ``latency``: one call on one file in one process using all ``--cores`` (torch threads and vlfast workers),
  median of ``--repeats`` calls after a warm-up call.

Every vlfast result is compared with the stock result on the same files once per case (``bit_exact``).
Results: ``results.csv`` and ``results.md`` with the machine (CPU model, cores, versions, date).

``--scaling`` instead measures one process on a whole case with 1 thread and with ``--cores`` threads
(``scaling.md``): how close vlfast's parallel decode and kernel come to N x single-core, the whole call and each
phase apart.

Usage: ``python bench/bench_files.py [--cores N] [--repeats 3] [--out bench/results/files-DATE] [--quick]
[--scaling]``
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

SIZES = {"448": (448, 448), "720p": (1280, 720), "1080p": (1920, 1080), "4K": (3840, 2160)}
FORMATS = ("JPEG", "PNG")
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")
IMPLEMENTATIONS = ("vlfast-torchvision", "stock-torchvision", "vlfast-pil", "stock-pil")
#: Files per case (throughput), by size: enough for every worker to have several.
FILES_PER_CASE = {"448": 24, "720p": 12, "1080p": 8, "4K": 4, "mixed": 16}
MIN_PIXELS, MAX_PIXELS = 3136, 12845056


def write_files(folder: Path, quick: bool) -> dict[str, list[Path]]:
    """The cases' files: ``{case: paths}`` (cases ``{size}-{format}`` and ``mixed``)."""
    import PIL.Image
    import skimage.data

    photos = [PIL.Image.fromarray(getattr(skimage.data, name)()).convert("RGB") for name in PHOTOS]
    cases: dict[str, list[Path]] = {}
    for size, (width, height) in SIZES.items():
        count = max(2, FILES_PER_CASE[size] // (4 if quick else 1))
        for fmt in FORMATS:
            paths = []
            for index in range(count):
                image = photos[index % len(photos)].resize((width, height), PIL.Image.LANCZOS)
                path = folder / f"{size}-{index}.{'jpg' if fmt == 'JPEG' else 'png'}"
                options = {"quality": 90} if fmt == "JPEG" else {"compress_level": 6}
                image.save(path, format=fmt, **options)
                paths.append(path)
            cases[f"{size}-{fmt.lower()}"] = paths
    kinds = [f"{size}-{fmt.lower()}" for size in SIZES for fmt in FORMATS]
    count = max(4, FILES_PER_CASE["mixed"] // (4 if quick else 1))
    cases["mixed"] = [cases[kind][index // len(kinds) % len(cases[kind])] for index, kind in enumerate(kinds * 4)][
        :count
    ]
    return cases


# --- the implementations (built once per process) -----------------------------------------------------------

_CALLS: dict[str, Any] = {}


def _calls(workers: int) -> dict[str, Any]:
    if not _CALLS:
        import transformers

        import vlfast

        transformers.logging.set_verbosity_error()
        size = {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}
        stock_tv = transformers.Qwen2VLImageProcessor(size=size)
        stock_pil = transformers.Qwen2VLImageProcessorPil(size=size)
        bounds = {"min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS, "engine": "cpp"}
        _CALLS.update(
            {
                "vlfast-torchvision": lambda paths: vlfast.preprocess(paths, workers=workers, **bounds).pixel_values,
                "stock-torchvision": lambda paths: stock_tv(paths, return_tensors="pt")["pixel_values"],
                "vlfast-pil": lambda paths: vlfast.preprocess(
                    paths, backend="pil", workers=workers, **bounds
                ).pixel_values,
                "stock-pil": lambda paths: stock_pil(paths, return_tensors="pt")["pixel_values"],
            }
        )
    return _CALLS


def _single_threaded() -> None:
    import torch

    torch.set_num_threads(1)
    _calls(1)


def _run_share(implementation: str, paths: list[str], batch: int) -> float:
    """Seconds to preprocess ``paths`` in batches of ``batch`` in this (single-threaded) worker."""
    call = _calls(1)[implementation]
    start = time.perf_counter()
    for first in range(0, len(paths), batch):
        call(paths[first : first + batch])
    return time.perf_counter() - start


def _throughput(pool: ProcessPoolExecutor, cores: int, implementation: str, paths: list[str]) -> float:
    """Wall seconds for ``cores`` single-threaded workers to preprocess ``paths`` (split evenly)."""
    shares = [paths[index::cores] for index in range(cores)]
    start = time.perf_counter()
    list(pool.map(_run_share, [implementation] * cores, shares, [4] * cores))
    return time.perf_counter() - start


def _exact(paths: list[str]) -> dict[str, bool]:
    import torch

    calls = _CALLS
    return {
        "vlfast-torchvision": torch.equal(calls["vlfast-torchvision"](paths), calls["stock-torchvision"](paths)),
        "vlfast-pil": torch.equal(calls["vlfast-pil"](paths), calls["stock-pil"](paths)),
    }


def run(cases: dict[str, list[Path]], cores: int, repeats: int) -> list[dict[str, Any]]:
    """Every case, every implementation: throughput (worker processes) and latency (this process)."""
    import torch

    torch.set_num_threads(cores)
    _CALLS.clear()
    calls = _calls(cores)
    rows = []
    with ProcessPoolExecutor(max_workers=cores, initializer=_single_threaded) as pool:
        for case, files in cases.items():
            paths = [str(path) for path in files]
            exact = _exact(paths)
            for implementation in IMPLEMENTATIONS:  # warm-up round: every worker and the plans
                _throughput(pool, cores, implementation, paths)
                calls[implementation](paths[:1])
            wall: dict[str, list[float]] = {name: [] for name in IMPLEMENTATIONS}
            latency: dict[str, list[float]] = {name: [] for name in IMPLEMENTATIONS}
            for round_index in range(repeats):
                order = IMPLEMENTATIONS[round_index % 4 :] + IMPLEMENTATIONS[: round_index % 4]
                for implementation in order:
                    wall[implementation].append(_throughput(pool, cores, implementation, paths))
                    start = time.perf_counter()
                    calls[implementation](paths[round_index % len(paths) : round_index % len(paths) + 1])
                    latency[implementation].append(time.perf_counter() - start)
            for implementation in IMPLEMENTATIONS:
                seconds = statistics.median(wall[implementation])
                rows.append(
                    {
                        "case": case,
                        "implementation": implementation,
                        "files": len(paths),
                        "images_per_s": len(paths) / seconds,
                        "throughput_min_images_per_s": len(paths) / max(wall[implementation]),
                        "throughput_max_images_per_s": len(paths) / min(wall[implementation]),
                        "latency_ms": statistics.median(latency[implementation]) * 1e3,
                        "bit_exact": exact.get(implementation, ""),
                    }
                )
            print(f"{case}: " + ", ".join(f"{r['implementation']} {r['images_per_s']:.1f}/s" for r in rows[-4:]))
            sys.stdout.flush()
    return rows


def _ratios(rows: list[dict[str, Any]]) -> None:
    by = {(row["case"], row["implementation"]): row for row in rows}
    for row in rows:
        backend = row["implementation"].split("-", 1)[1]
        stock = by[(row["case"], f"stock-{backend}")]
        row["throughput_vs_stock"] = row["images_per_s"] / stock["images_per_s"]
        row["latency_vs_stock"] = stock["latency_ms"] / row["latency_ms"]


def write_results(rows: list[dict[str, Any]], machine: dict[str, str], out: Path, cores: int, repeats: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    fields = list(rows[0]) + list(machine)
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({**{k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()}, **machine})
    text = io.StringIO()
    text.write("# End to end from files: vlfast vs the stock processors\n\n")
    text.write(f"Machine: {machine['cpu']}, {machine['cpu_cores']} cores, {cores} used by each side, ")
    text.write(f"C++ kernels {machine['cpu_kernels'] or 'not built'}; ")
    text.write(f"date {machine['date']}; load average at start {machine['load_average_1m']}.\n")
    versions = ", ".join(f"{k} {machine[k]}" for k in ("vlfast", "python", "torch", "torchvision", "transformers"))
    text.write(f"Versions: {versions}, pillow {machine['pillow']}, numpy {machine['numpy']}.\n\n")
    text.write(
        f"Throughput: {cores} single-threaded worker processes per implementation on the same files, median of "
        f"{repeats} rounds (min-max); latency: one file per call in one process with {cores} threads, median of "
        f"{repeats}. Ratios are vlfast over the stock processor of the same backend.\n\n"
    )
    text.write("| case | implementation | images/s (min-max) | x stock | latency ms | x stock | bit-exact |\n")
    text.write("| --- | --- | --- | --- | --- | --- | --- |\n")
    for row in rows:
        text.write(
            f"| {row['case']} | {row['implementation']} | {row['images_per_s']:.2f} "
            f"({row['throughput_min_images_per_s']:.2f}-{row['throughput_max_images_per_s']:.2f}) | "
            f"{row['throughput_vs_stock']:.2f} | {row['latency_ms']:.1f} | {row['latency_vs_stock']:.2f} | "
            f"{row['bit_exact']} |\n"
        )
    (out / "results.md").write_text(text.getvalue())


#: Cases and implementations of the scaling measurement (one process, a batch per call), and vlfast's two phases
#: timed apart: its decoding (``vlfast.loader.load_images``) and its kernel (``vlfast.preprocess`` on the decoded
#: images).
SCALING_CASES = ("1080p-jpeg", "4K-jpeg", "mixed")
SCALING_IMPLEMENTATIONS = ("vlfast-torchvision", "stock-torchvision", "vlfast decode", "vlfast kernel")


def _phases(paths: list[str], workers: int) -> dict[str, Any]:
    """vlfast's phases of ``vlfast-torchvision`` as calls on ``paths`` (decoded once, here, for the kernel)."""
    import vlfast
    from vlfast.loader import load_images

    decoded = load_images(paths, workers=workers)
    bounds = {"min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS, "engine": "cpp"}
    return {
        "vlfast decode": lambda paths: load_images(paths, workers=workers),
        "vlfast kernel": lambda paths: vlfast.preprocess(decoded, **bounds).pixel_values,
    }


def scaling(cases: dict[str, list[Path]], cores: int, repeats: int) -> list[dict[str, Any]]:
    """One process, one call on the whole case: images/s with 1 thread (vlfast ``workers=1``) and with ``cores``
    threads (torch threads and vlfast workers), medians of ``repeats`` calls after a warm-up, interleaved; vlfast's
    decoding and kernel also timed apart."""
    import torch

    rows = []
    for case in SCALING_CASES:
        paths = [str(path) for path in cases[case]]
        times: dict[tuple[str, int], list[float]] = {}
        for round_index in range(repeats + 1):
            for threads in (1, cores):
                torch.set_num_threads(threads)
                _CALLS.clear()
                calls = {**_calls(threads), **_phases(paths, threads)}
                for implementation in SCALING_IMPLEMENTATIONS:
                    start = time.perf_counter()
                    calls[implementation](paths)
                    if round_index:  # the first round warms up
                        times.setdefault((implementation, threads), []).append(time.perf_counter() - start)
        for implementation in SCALING_IMPLEMENTATIONS:
            one = len(paths) / statistics.median(times[(implementation, 1)])
            many = len(paths) / statistics.median(times[(implementation, cores)])
            rows.append(
                {
                    "case": case,
                    "implementation": implementation,
                    "files": len(paths),
                    "images_per_s_1_thread": one,
                    f"images_per_s_{cores}_threads": many,
                    "speedup": many / one,
                }
            )
        print(f"scaling {case}: " + ", ".join(f"{r['implementation']} x{r['speedup']:.2f}" for r in rows[-4:]))
    return rows


def write_scaling(rows: list[dict[str, Any]], machine: dict[str, str], out: Path, cores: int, repeats: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "scaling.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) + list(machine))
        writer.writeheader()
        for row in rows:
            writer.writerow({**{k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()}, **machine})
    lines = [
        "# Scaling: one process, one call per case, 1 thread vs all threads\n",
        f"Machine: {machine['cpu']}, {machine['cpu_cores']} cores; date {machine['date']}; load average at start "
        f"{machine['load_average_1m']}. vlfast: `workers` and torch threads; stock: torch threads. Median of "
        f"{repeats} calls. `vlfast decode` and `vlfast kernel` are the two phases of `vlfast-torchvision` timed "
        "apart: `load_images(paths)`, then `preprocess` of the decoded images.\n",
        f"| case | implementation | images/s, 1 thread | images/s, {cores} threads | speedup |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['case']} | {row['implementation']} | {row['images_per_s_1_thread']:.2f} | "
            f"{row[f'images_per_s_{cores}_threads']:.2f} | {row['speedup']:.2f} |"
        )
    (out / "scaling.md").write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    parser.add_argument("--cores", type=int, default=cores, help="cores given to each side (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a quarter of the files (a smoke run)")
    parser.add_argument("--scaling", action="store_true", help="only the 1-thread vs all-threads measurement")
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    parser.add_argument("--out", type=Path, default=Path("bench") / "results" / f"files-{today}")
    args = parser.parse_args(argv)

    from vlfast.machine import machine_info

    machine = machine_info()
    with tempfile.TemporaryDirectory() as temporary:
        cases = write_files(Path(temporary), args.quick)
        if args.scaling:
            write_scaling(scaling(cases, args.cores, args.repeats), machine, args.out, args.cores, args.repeats)
            print((args.out / "scaling.md").read_text())
            return 0
        rows = run(cases, args.cores, args.repeats)
    _ratios(rows)
    write_results(rows, machine, args.out, args.cores, args.repeats)
    print((args.out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
