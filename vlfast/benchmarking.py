"""The benchmark engine shared by ``vlfast bench`` and ``bench/bench_{cpu,gpu}.py``.

Every implementation preprocesses the same uint8 HWC photos with the Qwen2.5-VL settings.
Measurements are interleaved: after the warm-up, each repeat runs every implementation once,
in an order rotated from repeat to repeat, so drifts in clock speed or cache state spread over
all of them. GPU calls are bracketed by ``torch.cuda.synchronize()``. The warm-up outputs of
vlfast are also compared bit for bit with the stock torchvision backend on CPU.

Outputs (see :func:`write_report`): ``results.csv`` (one row per case and implementation,
with the machine's description), ``results.md`` (a Markdown table) and ``latency.png``.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from .assets import shipped_photo_path
from .defaults import (
    BENCH_FULL_REPEATS,
    BENCH_QUICK_REPEATS,
    BENCH_SIMD_LEVEL_HELP,
    MERGE_SIZE,
    PATCH_SIZE,
    QWEN25_VL_MAX_PIXELS,
    QWEN25_VL_MIN_PIXELS,
)
from .engines import ENGINES, EngineName
from .engines.cpp import capped_simd_level
from .errors import UnsupportedOptionError
from .machine import machine_info
from .preprocess import preprocess
from .sizing import smart_resize

__all__ = [
    "FULL_CASES",
    "QUICK_CASES",
    "BenchmarkReport",
    "Case",
    "Implementation",
    "Measurement",
    "available_implementations",
    "case_images",
    "case_inputs",
    "run_benchmark",
    "write_report",
]

#: Pixel bounds of the Qwen2.5-VL checkpoints' ``preprocessor_config.json`` (the minimum is the class default).
_STOCK_SIZE = {"shortest_edge": QWEN25_VL_MIN_PIXELS, "longest_edge": QWEN25_VL_MAX_PIXELS}
_FACTOR = PATCH_SIZE * MERGE_SIZE


@dataclass(frozen=True)
class Case:
    """One benchmark input: a batch of images, each ``(height, width)``; given as PIL images (what transformers
    and serving engines hand a processor) with ``pil``, else as uint8 NumPy arrays."""

    name: str
    sizes: tuple[tuple[int, int], ...]
    pil: bool = False

    @property
    def batch(self) -> int:
        """Number of images in one call."""
        return len(self.sizes)

    @property
    def megapixels(self) -> float:
        """Input pixels of the whole batch, in millions."""
        return sum(h * w for h, w in self.sizes) / 1e6

    @property
    def image_tokens(self) -> int:
        """LLM tokens of the batch with the Qwen2.5-VL settings (``t * h * w / merge_size**2``)."""
        total = 0
        for height, width in self.sizes:
            out_h, out_w = smart_resize(height, width, _FACTOR, QWEN25_VL_MIN_PIXELS, QWEN25_VL_MAX_PIXELS)
            total += (out_h // PATCH_SIZE) * (out_w // PATCH_SIZE) // MERGE_SIZE**2
        return total

    @property
    def description(self) -> str:
        """``WxH`` for a single image, else the number of images; ``(PIL)`` for PIL inputs."""
        given = " (PIL)" if self.pil else ""
        if self.batch == 1:
            height, width = self.sizes[0]
            return f"{width}x{height}{given}"
        return f"{self.batch} images{given}"


def _single(width: int, height: int) -> Case:
    return Case(f"{width}x{height}", ((height, width),))


#: Eight common sizes (landscape, portrait, a phone photo, a banner), as ``(height, width)``.
MIXED_SIZES: tuple[tuple[int, int], ...] = (
    (480, 640),
    (768, 1024),
    (1920, 1080),
    (960, 1280),
    (900, 1600),
    (1080, 1920),
    (1440, 2560),
    (400, 3000),
)
#: Thumbnails, as ``(height, width)``: each too small to split over threads (a multi-image request, a dataset
#: of small images); 16 of each.
SMALL_SIZES: tuple[tuple[int, int], ...] = ((224, 224),) * 16 + ((160, 240),) * 16
FULL_CASES: tuple[Case, ...] = (
    _single(448, 448),
    _single(1280, 720),
    _single(1920, 1080),
    Case("1920x1080-pil", ((1080, 1920),), pil=True),
    _single(3840, 2160),
    # Past Pillow's 16 MiB block: its pixels are copied (vlfast.pil_memory), unlike the smaller PIL images'.
    Case("3840x2160-pil", ((2160, 3840),), pil=True),
    _single(4000, 200),
    Case("mixed-8", MIXED_SIZES),
    Case("mixed-8-pil", MIXED_SIZES, pil=True),
    Case("small-32", SMALL_SIZES),
)
QUICK_CASES: tuple[Case, ...] = (
    _single(448, 448),
    _single(1920, 1080),
    _single(4000, 200),
    Case("mixed-8", MIXED_SIZES),
    Case("small-32", SMALL_SIZES),
)


# ---------------------------------------------------------------------------
# Input images
# ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _source_photos() -> tuple[np.ndarray, ...]:
    """Real photos to tile: scikit-image's sample photos when installed, else the shipped one."""
    try:
        import skimage.data
    except ImportError:
        with PIL.Image.open(shipped_photo_path()) as image:
            return (np.asarray(image.convert("RGB")),)
    return tuple(getattr(skimage.data, name)() for name in ("astronaut", "chelsea", "coffee", "rocket"))


def _fit_photo(photo: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale ``photo`` with Pillow to fit inside ``height x width``, then tile it (mirrored every
    other copy, so there are no seams) to fill that size exactly."""
    photo_h, photo_w = photo.shape[:2]
    scale = min(height / photo_h, width / photo_w)
    tile_size = (max(1, round(photo_w * scale)), max(1, round(photo_h * scale)))
    tile = np.asarray(PIL.Image.fromarray(photo).resize(tile_size, PIL.Image.Resampling.BICUBIC))
    row = np.concatenate([tile if i % 2 == 0 else tile[:, ::-1] for i in range(-(-width // tile.shape[1]))], axis=1)
    grid = np.concatenate([row if i % 2 == 0 else row[::-1] for i in range(-(-height // tile.shape[0]))], axis=0)
    return np.ascontiguousarray(grid[:height, :width])


def case_images(case: Case) -> list[np.ndarray]:
    """The uint8 ``(H, W, 3)`` pixels of ``case``, cycling through the source photos."""
    photos = _source_photos()
    return [_fit_photo(photos[i % len(photos)], h, w) for i, (h, w) in enumerate(case.sizes)]


def case_inputs(case: Case) -> list[np.ndarray] | list[PIL.Image.Image]:
    """What a call of ``case`` is given: :func:`case_images`, as PIL RGB images for a ``pil`` case."""
    images = case_images(case)
    return [PIL.Image.fromarray(image) for image in images] if case.pil else images


# ---------------------------------------------------------------------------
# Implementations
# ---------------------------------------------------------------------------

#: A zero-argument call that preprocesses the bound images and returns ``pixel_values``.
Runner = Callable[[], torch.Tensor]


@dataclass(frozen=True)
class Implementation:
    """A way to preprocess images.

    ``bind(images)`` builds whatever is reusable across calls (a processor) and returns the call
    to time. ``stock`` marks the transformers baselines that speedups are relative to.
    """

    name: str
    label: str
    device: str
    stock: bool
    bind: Callable[[list[np.ndarray]], Runner]


def _vlfast(device: str, engine: str, source: str = "host") -> Callable[[list[np.ndarray]], Runner]:
    """``source``: the images as the case gives them (``"host"``: NumPy arrays or PIL images), pinned host
    tensors (``"pinned"``) or tensors already on the GPU (``"device"``), converted before timing."""

    def bind(images: list[np.ndarray] | list[PIL.Image.Image]) -> Runner:
        if source == "pinned":
            images = [torch.from_numpy(np.array(image)).pin_memory() for image in images]
        elif source == "device":
            images = [torch.from_numpy(np.array(image)).to(device) for image in images]

        def run() -> torch.Tensor:
            return preprocess(
                images,
                backend="torchvision",
                device=device,
                engine=engine,
                min_pixels=QWEN25_VL_MIN_PIXELS,
                max_pixels=QWEN25_VL_MAX_PIXELS,
            ).pixel_values

        return run

    return bind


def _transformers(processor_class: str, device: str | None) -> Callable[[list[np.ndarray]], Runner]:
    def bind(images: list[np.ndarray]) -> Runner:
        import transformers

        processor = getattr(transformers, processor_class)(size=dict(_STOCK_SIZE))
        options = {"device": device} if device is not None else {}

        def run() -> torch.Tensor:
            return processor(images, return_tensors="pt", **options)["pixel_values"]

        return run

    return bind


VLFAST_CPU = "vlfast-cpu"
VLFAST_GPU = "vlfast-gpu"
VLFAST_GPU_PINNED = "vlfast-gpu-pinned"
VLFAST_GPU_RESIDENT = "vlfast-gpu-resident"
TORCHVISION_CPU = "transformers-torchvision-cpu"
TORCHVISION_CUDA = "transformers-torchvision-cuda"
PIL_BACKEND = "transformers-pil"


def _triton_on_cuda() -> bool:
    return torch.cuda.is_available() and ENGINES[EngineName.TRITON].available()


def available_implementations(devices: Iterable[str] = ("cpu", "cuda")) -> tuple[list[Implementation], list[str]]:
    """The implementations runnable here on ``devices``, and a note for each one left out."""
    devices = set(devices)
    chosen: list[Implementation] = []
    skipped: list[str] = []
    if "cpu" in devices:
        if ENGINES[EngineName.CPP].available():
            chosen.append(Implementation(VLFAST_CPU, "vlfast CPU (C++)", "cpu", False, _vlfast("cpu", "cpp")))
        else:
            skipped.append(f"{VLFAST_CPU}: the C++ extension vlfast._C is not built")
    if "cuda" in devices:
        if _triton_on_cuda():
            chosen += [
                Implementation(VLFAST_GPU, "vlfast GPU (Triton)", "cuda", False, _vlfast("cuda", "triton")),
                Implementation(
                    VLFAST_GPU_PINNED, "vlfast GPU, pinned input", "cuda", False, _vlfast("cuda", "triton", "pinned")
                ),
                Implementation(
                    VLFAST_GPU_RESIDENT, "vlfast GPU, input on GPU", "cuda", False, _vlfast("cuda", "triton", "device")
                ),
            ]
        else:
            skipped.append(f"{VLFAST_GPU}: needs a CUDA GPU and Triton")
    if "cpu" in devices:
        chosen.append(
            Implementation(
                TORCHVISION_CPU,
                "transformers torchvision CPU",
                "cpu",
                True,
                _transformers("Qwen2VLImageProcessor", None),
            )
        )
    if "cuda" in devices:
        if torch.cuda.is_available():
            chosen.append(
                Implementation(
                    TORCHVISION_CUDA,
                    "transformers torchvision CUDA",
                    "cuda",
                    True,
                    _transformers("Qwen2VLImageProcessor", "cuda"),
                )
            )
        else:
            skipped.append(f"{TORCHVISION_CUDA}: needs a CUDA GPU")
    if "cpu" in devices:
        chosen.append(
            Implementation(
                PIL_BACKEND, "transformers PIL", "cpu", True, _transformers("Qwen2VLImageProcessorPil", None)
            )
        )
    return chosen, skipped


# ---------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------


@dataclass
class Measurement:
    """The latencies of one implementation on one case, and how it compares."""

    case: Case
    implementation: Implementation
    seconds: list[float] = field(default_factory=list)
    #: Whether the warm-up output equals the stock torchvision CPU output bit for bit (None: not checked).
    bit_exact: bool | None = None
    speedup_vs_best_stock: float | None = None
    best_stock: str = ""

    @property
    def median_ms(self) -> float:
        """Median latency in milliseconds."""
        return statistics.median(self.seconds) * 1e3

    @property
    def min_ms(self) -> float:
        """Fastest run in milliseconds."""
        return min(self.seconds) * 1e3

    @property
    def max_ms(self) -> float:
        """Slowest run in milliseconds."""
        return max(self.seconds) * 1e3


def _timed(run: Runner, device: str) -> tuple[float, torch.Tensor]:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    output = run()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, output


def _same_bits(output: torch.Tensor, reference: torch.Tensor) -> bool:
    return output.shape == reference.shape and output.dtype == reference.dtype and torch.equal(output.cpu(), reference)


def _measure_case(
    case: Case,
    implementations: Sequence[Implementation],
    repeats: int,
    warmup: int,
    advance: Callable[[], None],
) -> list[Measurement]:
    images = case_inputs(case)
    runners = [impl.bind(images) for impl in implementations]
    measurements = [Measurement(case, impl) for impl in implementations]
    for round_index in range(warmup):
        kept: dict[str, torch.Tensor] = {}
        for impl, run in zip(implementations, runners, strict=True):
            output = _timed(run, impl.device)[1]
            if round_index == 0 and (not impl.stock or impl.name == TORCHVISION_CPU):
                kept[impl.name] = output
            advance()
        reference = kept.pop(TORCHVISION_CPU, None)
        if reference is not None:
            for measurement in measurements:
                if measurement.implementation.name in kept:
                    measurement.bit_exact = _same_bits(kept[measurement.implementation.name], reference)
    for round_index in range(repeats):
        shift = round_index % len(implementations)
        for position in [*range(shift, len(implementations)), *range(shift)]:
            seconds, _ = _timed(runners[position], implementations[position].device)
            measurements[position].seconds.append(seconds)
            advance()
    stock = [m for m in measurements if m.implementation.stock]
    if stock:
        best = min(stock, key=lambda m: m.median_ms)
        for measurement in measurements:
            measurement.best_stock = best.implementation.name
            measurement.speedup_vs_best_stock = best.median_ms / measurement.median_ms
    return measurements


@dataclass
class BenchmarkReport:
    """What :func:`run_benchmark` measured, where it wrote it, and what it left out."""

    measurements: list[Measurement]
    machine: dict[str, str]
    repeats: int
    warmup: int
    skipped: list[str]
    files: dict[str, Path] = field(default_factory=dict)


def run_benchmark(
    out_dir: Path | str,
    *,
    quick: bool = False,
    devices: Iterable[str] = ("cpu", "cuda"),
    cases: Sequence[Case] | None = None,
    repeats: int | None = None,
    warmup: int = 1,
    progress: bool = True,
    simd_level: str | None = None,
) -> BenchmarkReport:
    """Measure every available implementation on ``cases`` and write the report into ``out_dir``.

    Args:
        out_dir: folder for ``results.csv``, ``results.md`` and ``latency.png`` (created).
        quick: :data:`QUICK_CASES` and :data:`BENCH_QUICK_REPEATS` instead of the full suite.
        devices: ``"cpu"`` and/or ``"cuda"``: which implementations to run.
        cases, repeats: override the suite's cases or number of timed runs.
        warmup: untimed rounds first (at least 1; the first one checks exactness).
        progress: show a tqdm progress bar on stderr.
        simd_level: run the C++ kernels at this level (``vlfast.engines.cpp.simd_levels()``) for the whole
            run, e.g. ``"avx2"`` on an AVX-512 CPU for what CPUs without it get; recorded in the report.

    Raises:
        UnsupportedOptionError: this CPU has no ``simd_level``.
    """
    cases = tuple(cases) if cases is not None else (QUICK_CASES if quick else FULL_CASES)
    repeats = repeats if repeats is not None else (BENCH_QUICK_REPEATS if quick else BENCH_FULL_REPEATS)
    if repeats < 1 or warmup < 1:
        raise ValueError(f"repeats and warmup must be at least 1, got {repeats} and {warmup}")
    Path(out_dir).mkdir(parents=True, exist_ok=True)  # fail before measuring, not after
    implementations, skipped = available_implementations(devices)
    from tqdm import tqdm

    total = len(cases) * len(implementations) * (warmup + repeats)
    measurements: list[Measurement] = []
    with (
        capped_simd_level(simd_level),
        tqdm(total=total, desc="vlfast bench", unit="run", file=sys.stderr, disable=not progress) as bar,
    ):
        machine = machine_info()  # with the level the kernels run at
        for case in cases:
            bar.set_postfix_str(case.name)
            measurements.extend(_measure_case(case, implementations, repeats, warmup, lambda: bar.update(1)))
    report = BenchmarkReport(measurements, machine, repeats, warmup, skipped)
    report.files = write_report(report, Path(out_dir))
    return report


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------

CSV_FIELDS = (
    "case",
    "images",
    "batch",
    "input_megapixels",
    "image_tokens",
    "implementation",
    "device",
    "stock",
    "repeats",
    "median_ms",
    "min_ms",
    "max_ms",
    "speedup_vs_best_stock",
    "best_stock",
    "bit_exact",
)


def _exactness(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


def write_csv(report: BenchmarkReport, path: Path) -> None:
    """One row per case and implementation; the machine description repeated on every row."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*CSV_FIELDS, *report.machine])
        writer.writeheader()
        for m in report.measurements:
            writer.writerow(
                {
                    "case": m.case.name,
                    "images": ";".join(f"{w}x{h}" for h, w in m.case.sizes),
                    "batch": m.case.batch,
                    "input_megapixels": f"{m.case.megapixels:.3f}",
                    "image_tokens": m.case.image_tokens,
                    "implementation": m.implementation.name,
                    "device": m.implementation.device,
                    "stock": m.implementation.stock,
                    "repeats": len(m.seconds),
                    "median_ms": f"{m.median_ms:.3f}",
                    "min_ms": f"{m.min_ms:.3f}",
                    "max_ms": f"{m.max_ms:.3f}",
                    "speedup_vs_best_stock": f"{m.speedup_vs_best_stock:.2f}" if m.speedup_vs_best_stock else "",
                    "best_stock": m.best_stock,
                    "bit_exact": _exactness(m.bit_exact),
                    **report.machine,
                }
            )


def _machine_line(machine: dict[str, str]) -> str:
    gpu = (
        f"{machine['gpu']} (driver {machine['gpu_driver'] or '?'}, CUDA {machine['cuda']})"
        if machine["gpu"]
        else "none"
    )
    libraries = ", ".join(
        f"{name} {machine[name]}" for name in ("python", "torch", "torchvision", "transformers", "pillow", "triton")
    )
    return (
        f"CPU: {machine['cpu']}, {machine['cpu_cores']} cores (torch threads: {machine['torch_threads']}, "
        f"load average at start: {machine['load_average_1m'] or '?'}; "
        f"C++ kernels: {machine['cpu_kernels'] or 'not built'}); "
        f"GPU: {gpu}; {libraries}; vlfast {machine['vlfast']}; {machine['date']}"
    )


def _implementations(report: BenchmarkReport) -> list[Implementation]:
    """The measured implementations, in the order they were run."""
    return list({m.implementation.name: m.implementation for m in report.measurements}.values())


def _cases(report: BenchmarkReport) -> list[Case]:
    """The measured cases, in the order they were run."""
    return list({m.case.name: m.case for m in report.measurements}.values())


def markdown_table(report: BenchmarkReport) -> str:
    """The results as Markdown: one row per case, median [min-max] ms per implementation, speedups."""
    implementations = _implementations(report)
    ours = [impl for impl in implementations if not impl.stock]
    header = ["case", "input", "image tokens", *(impl.label for impl in implementations)]
    header += [f"{impl.label} speedup" for impl in ours] + ["bit-exact"]
    lines = [
        f"Qwen2.5-VL settings (min_pixels {QWEN25_VL_MIN_PIXELS}, max_pixels {QWEN25_VL_MAX_PIXELS}), "
        f"float32 output. Latency in ms: median [min-max] of {report.repeats} interleaved runs after "
        f"{report.warmup} warm-up round(s). Speedup: best stock median / vlfast median (best stock in bold).",
        "",
        _machine_line(report.machine),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 4) + ["---"]) + "|",
    ]
    for case in _cases(report):
        by_name = {m.implementation.name: m for m in report.measurements if m.case.name == case.name}
        cells = [case.name, case.description, str(case.image_tokens)]
        for impl in implementations:
            m = by_name[impl.name]
            cell = f"{m.median_ms:.1f} [{m.min_ms:.1f}-{m.max_ms:.1f}]"
            cells.append(f"**{cell}**" if impl.name == m.best_stock else cell)
        for impl in ours:
            speedup = by_name[impl.name].speedup_vs_best_stock
            cells.append(f"{speedup:.1f}x" if speedup else "")
        checks = [by_name[impl.name].bit_exact for impl in ours]
        cells.append(", ".join(_exactness(check) for check in checks if check is not None) or "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    if report.skipped:
        lines += ["", "Not measured: " + "; ".join(report.skipped) + "."]
    return "\n".join(lines) + "\n"


def _megapixels(measurement: Measurement) -> float:
    return measurement.case.megapixels


def plot_latency(report: BenchmarkReport, path: Path) -> None:
    """Median latency against input megapixels, log-log, one line per implementation over the
    single-image array cases (min-max as error bars); PIL-image cases are drawn as separate diamonds
    (labelled below them: their size is an array case's), batches as separate stars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5.5), dpi=110)
    for index, impl in enumerate(_implementations(report)):
        rows = sorted((m for m in report.measurements if m.implementation.name == impl.name), key=_megapixels)
        groups = (
            ([m for m in rows if m.case.batch == 1 and not m.case.pil], "-o", 5),
            ([m for m in rows if m.case.batch == 1 and m.case.pil], "D", 6),
            ([m for m in rows if m.case.batch > 1], "*", 10),
        )
        labelled = False
        for group, marker, size in groups:
            if group:
                axes.errorbar(
                    [m.case.megapixels for m in group],
                    [m.median_ms for m in group],
                    yerr=[[m.median_ms - m.min_ms for m in group], [m.max_ms - m.median_ms for m in group]],
                    fmt=marker,
                    markersize=size,
                    color=f"C{index}",
                    capsize=3,
                    label=None if labelled else impl.label,
                )
                labelled = True
    for case in _cases(report):
        medians = [m.median_ms for m in report.measurements if m.case.name == case.name]
        axes.annotate(
            case.name,
            (case.megapixels, min(medians) if case.pil else max(medians)),
            fontsize=7,
            alpha=0.7,
            xytext=(0, -14 if case.pil else 6),
            textcoords="offset points",
        )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("input size (megapixels per call; * = batch, \u25c6 = PIL image)")
    axes.set_ylabel("latency (ms, median; bars: min-max)")
    gpu = report.machine["gpu"] or "no GPU"
    axes.set_title(
        f"Qwen2.5-VL preprocessing latency\n{report.machine['cpu']} x{report.machine['cpu_cores']}, {gpu}", fontsize=10
    )
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_report(report: BenchmarkReport, out_dir: Path) -> dict[str, Path]:
    """Write ``results.csv``, ``results.md`` and ``latency.png`` into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"csv": out_dir / "results.csv", "markdown": out_dir / "results.md", "plot": out_dir / "latency.png"}
    write_csv(report, files["csv"])
    files["markdown"].write_text(markdown_table(report), encoding="utf-8")
    plot_latency(report, files["plot"])
    return files


def suite_parser(description: str, default_out: Path) -> argparse.ArgumentParser:
    """The options every benchmark script shares: ``--quick``, ``--out``, ``--repeats``, ``--simd-level``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="fewer cases and repeats")
    parser.add_argument("--out", type=Path, default=default_out, help=f"output folder (default: {default_out})")
    parser.add_argument(
        "--repeats",
        type=int,
        help=f"timed runs per case (default: {BENCH_FULL_REPEATS}, --quick: {BENCH_QUICK_REPEATS})",
    )
    parser.add_argument("--simd-level", help=BENCH_SIMD_LEVEL_HELP)
    return parser


def run_suite(args: argparse.Namespace, parser: argparse.ArgumentParser, devices: Sequence[str]) -> int:
    """Run :func:`run_benchmark` for parsed :func:`suite_parser` options, print the table and the files."""
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    try:
        report = run_benchmark(
            args.out, quick=args.quick, devices=tuple(devices), repeats=args.repeats, simd_level=args.simd_level
        )
    except UnsupportedOptionError as error:
        parser.error(str(error))
    print(report.files["markdown"].read_text(encoding="utf-8"))
    print(f"wrote {', '.join(str(path) for path in report.files.values())}")
    return 0
