"""The ``vlfast`` command: ``preprocess`` images, ``bench`` the implementations, ``info`` about this install.

Exit codes: 0 success; 1 ``preprocess --check`` found a difference; 2 a usage or input error, reported as
one ``vlfast: error: ...`` line on stderr (``preprocess`` reports each image that fails, goes on with the
others and exits 2 at the end).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import torch

from . import __version__
from .assets import shipped_photo_path
from .defaults import (
    BENCH_FULL_REPEATS,
    BENCH_QUICK_REPEATS,
    BENCH_SIMD_LEVEL_HELP,
    MERGE_SIZE,
    PILLOW_BLOCKS_PER_DECODE_THREAD,
    QWEN25_VL_MAX_PIXELS,
    QWEN25_VL_MIN_PIXELS,
)
from .engines import EngineName, select_engine
from .engines.cpp import simd_level
from .engines.triton_engine import interpreting
from .errors import ChunkTooLargeError, VlfastError
from .hf.families import MODEL_FAMILIES as FAMILIES
from .io import cache_pillow_blocks, load_image
from .loader import check_workers
from .machine import library_versions, machine_info
from .preprocess import Preprocessed, preprocess

__all__ = ["main"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BACKENDS = ("torchvision", "pil")
STOCK_PROCESSORS = {"torchvision": "Qwen2VLImageProcessor", "pil": "Qwen2VLImageProcessorPil"}
EXIT_MISMATCH = 1
EXIT_ERROR = 2


class CommandLineError(Exception):
    """A mistake in the command line or its inputs, reported as one line."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are raised (and printed as one line by :func:`main`)."""

    def error(self, message: str) -> NoReturn:
        raise CommandLineError(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _device(text: str) -> torch.device:
    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"not a torch device: {text!r} (try 'cpu' or 'cuda')") from None
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"unsupported device {text!r}: expected 'cpu' or 'cuda[:N]'")
    return device


def _require_device(device: torch.device) -> None:
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CommandLineError(
            f"device {device} requested but CUDA is not available (torch.cuda.is_available() is False)"
        )


# ---------------------------------------------------------------------------
# vlfast preprocess
# ---------------------------------------------------------------------------


@dataclass
class _Check:
    """The comparison of vlfast's output with the stock processor's."""

    reference: str
    identical: bool
    max_abs_diff: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "identical": self.identical, "max_abs_diff": self.max_abs_diff}


#: Longest source shown as it is in the output; longer ones (data URIs, base64) are shortened.
MAX_SHOWN_SOURCE = 120


def _label(source: str) -> str:
    """How the output names a source: as given, or shortened (a data URI is not echoed whole)."""
    if source[:5].lower() == "data:":
        media = source[5:].split(",", 1)[0].split(";", 1)[0] or "no media type"
        return f"data URI ({media}, {len(source)} characters)"
    if len(source) > MAX_SHOWN_SOURCE:
        return f"{source[:60]}... ({len(source)} characters)"
    return source


def _expand_sources(images: Sequence[str]) -> list[str]:
    """The IMAGE arguments with ``-`` (one source per line on stdin) and ``@FILE`` (one per line in FILE)
    expanded: the way in for data URIs too long for a command line."""
    sources: list[str] = []
    for item in images:
        if item == "-":
            lines = sys.stdin.read().splitlines()
        elif item.startswith("@"):
            try:
                lines = Path(item[1:]).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as error:
                raise CommandLineError(f"cannot read the list of images {item}: {error}") from None
        else:
            sources.append(item)
            continue
        sources.extend(line.strip() for line in lines if line.strip())
    if images and not sources:
        raise CommandLineError("no images given (the lists read were empty)")
    return sources


def _stock_check(source: str, ours: Preprocessed, args: argparse.Namespace) -> _Check:
    """Run the stock transformers processor on CPU on ``source`` (it decodes the file itself) with the
    same settings, and compare bit for bit."""
    import transformers

    transformers.logging.set_verbosity_error()  # its deprecation notices are not this command's output
    name = STOCK_PROCESSORS[args.backend]
    processor = getattr(transformers, name)(size={"shortest_edge": args.min_pixels, "longest_edge": args.max_pixels})
    try:
        stock = processor(source, return_tensors="pt")
    except (ValueError, TypeError, OSError, RuntimeError) as error:
        raise CommandLineError(f"transformers.{name} failed: {error}") from None
    reference = stock["pixel_values"].to(DTYPES[args.dtype])
    pixel_values = ours.pixel_values.cpu()
    if pixel_values.shape != reference.shape:
        return _Check(f"transformers.{name}", False, None)
    identical = torch.equal(ours.image_grid_thw, stock["image_grid_thw"]) and torch.equal(pixel_values, reference)
    difference = (pixel_values.float() - reference.float()).abs().max().item() if reference.numel() else 0.0
    return _Check(f"transformers.{name}", identical, float(difference))


def _timed_preprocess(image: Any, args: argparse.Namespace) -> tuple[Preprocessed, float]:
    """``preprocess`` with the command's options, and its time in milliseconds (GPU work included)."""
    if args.device.type == "cuda":
        torch.cuda.synchronize(args.device)
    start = time.perf_counter()
    result = preprocess(
        image,
        backend=args.backend,
        device=args.device,
        dtype=DTYPES[args.dtype],
        engine=args.engine,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
    )
    if args.device.type == "cuda":
        torch.cuda.synchronize(args.device)
    return result, (time.perf_counter() - start) * 1e3


def _preprocess_one(source: str, args: argparse.Namespace) -> dict[str, Any]:
    image = load_image(source, backend=args.backend)
    result, elapsed_ms = _timed_preprocess(image, args)
    _, repeated_ms = _timed_preprocess(image, args)  # without the one-time costs of a first call
    (orig_h, orig_w), (out_h, out_w) = result.original_sizes[0], result.resized_sizes[0]
    t, h, w = (int(v) for v in result.image_grid_thw[0])
    record: dict[str, Any] = {
        "image": _label(source),
        "original_size": {"width": orig_w, "height": orig_h},
        "model_input_size": {"width": out_w, "height": out_h},
        "image_grid_thw": [t, h, w],
        "image_tokens": t * h * w // MERGE_SIZE**2,
        "pixel_values": {
            "shape": list(result.pixel_values.shape),
            "dtype": str(result.pixel_values.dtype).removeprefix("torch."),
            "device": str(result.pixel_values.device),
        },
        "backend": args.backend,
        "engine": select_engine(args.engine, args.device).name.value,
        "time_ms": round(elapsed_ms, 3),
        "repeated_time_ms": round(repeated_ms, 3),
    }
    if args.check:
        record["check"] = _stock_check(source, result, args).as_dict()
    return record


def _print_record(record: dict[str, Any]) -> None:
    original, model_input, values = record["original_size"], record["model_input_size"], record["pixel_values"]
    lines = [
        record["image"],
        f"  original size    {original['width']}x{original['height']} (width x height)",
        f"  model input      {model_input['width']}x{model_input['height']}",
        f"  image_grid_thw   {record['image_grid_thw']}",
        f"  image tokens     {record['image_tokens']}",
        f"  pixel_values     {tuple(values['shape'])} {values['dtype']} on {values['device']}",
        f"  time             {record['time_ms']:.1f} ms, {record['repeated_time_ms']:.1f} ms repeated "
        f"(backend {record['backend']}, engine {record['engine']})",
    ]
    check = record.get("check")
    if check is not None:
        if check["identical"]:
            lines.append(f"  check            bit-identical to {check['reference']}")
        elif check["max_abs_diff"] is None:
            lines.append(f"  check            DIFFERENT from {check['reference']}: the shapes differ")
        else:
            lines.append(
                f"  check            DIFFERENT from {check['reference']}: max abs diff {check['max_abs_diff']:g}"
            )
    print("\n".join(lines))


def _shard_hint(error: VlfastError) -> str:
    """What to change on the command line for an image too large for a shard (max_chunk_bytes is --shard-mb)."""
    return " (--shard-mb sets max_chunk_bytes in MiB)" if isinstance(error, ChunkTooLargeError) else ""


def _run_shards(args: argparse.Namespace) -> int:
    """``preprocess DIR... --out FILE``: the images (files, and the image files under folders) to shards, with a
    progress bar on stderr and a summary (:mod:`vlfast.shards`)."""
    from tqdm import tqdm

    from .shards import check_output, image_files, write_shards

    check_output(args.out, DTYPES[args.dtype], args.compact)
    cache_pillow_blocks(PILLOW_BLOCKS_PER_DECODE_THREAD * check_workers(args.workers))
    files: list[Path] = []
    names: list[str] = []
    for item in _expand_sources(args.images):
        path = Path(item)
        found = image_files(path) if path.is_dir() else [path]
        files.extend(found)
        names.extend(str(file.relative_to(path)) if path.is_dir() else item for file in found)
    if not files:
        raise CommandLineError("no image files found in the folders given")
    with tqdm(total=len(files), unit="img", desc="vlfast preprocess", file=sys.stderr, disable=args.json) as bar:
        summary = write_shards(
            files,
            names,
            args.out,
            shard_bytes=args.shard_mb * 2**20,
            compact=args.compact,
            backend=args.backend,
            dtype=DTYPES[args.dtype],
            workers=args.workers,
            device=args.device,
            engine=args.engine,
            min_pixels=args.min_pixels,
            max_pixels=args.max_pixels,
            progress=bar.update,
            on_error=lambda name, error: bar.write(
                f"vlfast: error: {name}: {error}{_shard_hint(error)}", file=sys.stderr
            ),
        )
    result = summary.as_dict()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{summary.images} images, {summary.tokens} image tokens, {len(summary.shards)} shards "
            f"({args.out.stem}-*{args.out.suffix}), {summary.seconds:.2f} s: {result['images_per_s']} images/s, "
            f"{result['tokens_per_s']} tokens/s" + (f"; {len(summary.failed)} failed" if summary.failed else "")
        )
    return EXIT_ERROR if summary.failed else 0


def _run_preprocess(args: argparse.Namespace) -> int:
    if args.min_pixels > args.max_pixels:
        raise CommandLineError(f"--min-pixels ({args.min_pixels}) must not exceed --max-pixels ({args.max_pixels})")
    _require_device(args.device)
    if args.out is not None:
        if args.check:
            raise CommandLineError("--check compares images one by one; it does not go with --out")
        return _run_shards(args)
    if args.compact or args.workers is not None:
        raise CommandLineError("--compact and --workers go with --out (writing shards)")
    sources = _expand_sources(args.images) or [str(shipped_photo_path())]
    records = []
    failed = False
    for source in sources:
        try:
            record = _preprocess_one(source, args)
        except (CommandLineError, VlfastError) as error:  # reported, and the other images still run
            print(f"vlfast: error: {_label(source)}: {error}", file=sys.stderr, flush=True)
            record = {"image": _label(source), "error": {"type": type(error).__name__, "message": str(error)}}
            failed = True
        else:
            if not args.json:
                _print_record(record)
        records.append(record)
    if args.json:
        print(json.dumps(records, indent=2))
    if failed:
        return EXIT_ERROR
    mismatches = [record for record in records if not record.get("check", {"identical": True})["identical"]]
    return EXIT_MISMATCH if mismatches else 0


# ---------------------------------------------------------------------------
# vlfast bench
# ---------------------------------------------------------------------------


def _run_bench(args: argparse.Namespace) -> int:
    if args.device == "cuda":
        _require_device(torch.device("cuda"))
    devices = {"auto": ("cpu", "cuda"), "cpu": ("cpu",), "cuda": ("cuda",)}[args.device]
    start = time.perf_counter()
    from .benchmarking import run_benchmark  # the benchmark engine loads only for this command

    report = run_benchmark(
        args.out, quick=args.quick, devices=devices, repeats=args.repeats, simd_level=args.simd_level
    )
    elapsed = time.perf_counter() - start
    print(report.files["markdown"].read_text(encoding="utf-8"))
    written = ", ".join(str(path) for path in report.files.values())
    print(f"wrote {written} in {elapsed:.0f} s")
    return 0


# ---------------------------------------------------------------------------
# vlfast info
# ---------------------------------------------------------------------------


#: Model families, the stock classes vlfast reproduces for each, and its status (the README's Models table).
MODEL_FAMILIES = tuple(family.as_dict() for family in FAMILIES)


def _kernels() -> dict[str, str | None]:
    try:
        import triton  # noqa: F401
    except ImportError:
        on_cuda = interpreter = "no (triton is not installed)"
    else:
        on_cuda = "yes" if torch.cuda.is_available() else "no (no CUDA device)"
        if interpreting():
            interpreter = "yes (active: TRITON_INTERPRET=1)"
        else:
            interpreter = "yes (set TRITON_INTERPRET=1 to use it)"
    level = simd_level()
    return {
        "cpp_extension": f"yes ({level} kernels)" if level is not None else "no (vlfast._C is not built)",
        "cpp_simd_level": level,
        "triton_cuda": on_cuda,
        "triton_interpreter": interpreter,
    }


def _devices() -> dict[str, Any]:
    machine = machine_info()
    cuda = [
        {
            "index": index,
            "name": torch.cuda.get_device_name(index),
            "memory_gib": round(torch.cuda.get_device_properties(index).total_memory / 2**30, 1),
        }
        for index in range(torch.cuda.device_count() if torch.cuda.is_available() else 0)
    ]
    return {
        "cpu": {"model": machine["cpu"], "cores": int(machine["cpu_cores"]), "torch_threads": torch.get_num_threads()},
        "cuda": cuda,
        "cuda_driver": machine["gpu_driver"],
        "cuda_runtime": torch.version.cuda or "",
    }


def _run_info(args: argparse.Namespace) -> int:
    info = {
        "versions": library_versions(),
        "devices": _devices(),
        "kernels": _kernels(),
        "models": [dict(family) for family in MODEL_FAMILIES],
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    lines = ["versions"]
    lines += [f"  {name:<24}{version}" for name, version in info["versions"].items()]
    cpu = info["devices"]["cpu"]
    lines += ["devices", f"  {'cpu':<24}{cpu['model']}, {cpu['cores']} cores, torch threads {cpu['torch_threads']}"]
    for gpu in info["devices"]["cuda"]:
        lines.append(f"  {'cuda:' + str(gpu['index']):<24}{gpu['name']}, {gpu['memory_gib']} GiB")
    if not info["devices"]["cuda"]:
        lines.append(f"  {'cuda':<24}not available")
    else:
        lines.append(
            f"  {'driver / CUDA runtime':<24}{info['devices']['cuda_driver']} / {info['devices']['cuda_runtime']}"
        )
    kernels = info["kernels"]
    lines += [
        "kernels",
        f"  {'C++ extension (CPU)':<24}{kernels['cpp_extension']}",
        f"  {'Triton on CUDA':<24}{kernels['triton_cuda']}",
        f"  {'Triton interpreter':<24}{kernels['triton_interpreter']}",
        "models",
    ]
    lines += [f"  {family['family']:<24}{family['status']}" for family in info["models"]]
    print("\n".join(lines))
    return 0


# ---------------------------------------------------------------------------
# Parser and entry point
# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``vlfast`` argument parser with its three commands."""
    parser = _Parser(prog="vlfast", description="Bit-exact, fast Qwen2.5-VL image preprocessing.")
    parser.add_argument("--version", action="version", version=f"vlfast {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{preprocess,bench,info}")

    run = commands.add_parser(
        "preprocess",
        help="preprocess images and print sizes, grid, tokens and time",
        description="Preprocess images as Qwen2.5-VL's processor does (default: the shipped photo).",
    )
    run.add_argument(
        "images",
        nargs="*",
        metavar="IMAGE",
        help="image files, URLs or data URIs (default: the shipped photo); '-' reads one per line from stdin, "
        "@FILE one per line from FILE (for data URIs too long for a command line)",
    )
    run.add_argument("--backend", choices=BACKENDS, default="torchvision", help="stock processor reproduced")
    run.add_argument("--device", type=_device, default=torch.device("cpu"), help="output device (default: cpu)")
    engines = [name.value for name in EngineName]
    run.add_argument("--engine", choices=engines, default="auto", help="kernel that runs the plan (default: auto)")
    run.add_argument("--dtype", choices=tuple(DTYPES), default="float32", help="pixel_values dtype")
    run.add_argument("--min-pixels", type=_positive_int, default=QWEN25_VL_MIN_PIXELS, help="Qwen2.5-VL: 3136")
    run.add_argument("--max-pixels", type=_positive_int, default=QWEN25_VL_MAX_PIXELS, help="Qwen2.5-VL: 12845056")
    run.add_argument("--json", action="store_true", help="print one JSON list instead of text")
    run.add_argument(
        "--check",
        action="store_true",
        help="also run the stock transformers processor on CPU on the same source and settings, and check that "
        "pixel_values and image_grid_thw are bit-identical (exit 1 if not)",
    )
    run.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="write the images (IMAGE may be folders: their image files, sorted) as shards FILE-00000.safetensors "
        "(or .npz, by FILE's suffix) of pixel_values and image_grid_thw, with FILE.index.json, a progress bar "
        "and a summary",
    )
    run.add_argument(
        "--shard-mb", type=_positive_int, default=1024, help="with --out: most MiB of pixel_values per shard"
    )
    run.add_argument(
        "--compact", action="store_true", help="with --out: uint8 patches (8x smaller; vlfast.expand_patches)"
    )
    run.add_argument(
        "--workers", type=_positive_int, help="with --out: threads that decode the images (default: the cores)"
    )
    run.set_defaults(handler=_run_preprocess)

    bench = commands.add_parser(
        "bench",
        help="benchmark vlfast against the stock processors",
        description="Benchmark vlfast and the stock processors; write results.csv, results.md and latency.png.",
    )
    bench.add_argument("--quick", action="store_true", help="fewer cases and repeats (~25 s on 2 cores)")
    bench.add_argument("--out", type=Path, default=Path("bench/out"), help="output folder (default: bench/out)")
    bench.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="suites to run (default: CPU, and GPU if any)"
    )
    bench.add_argument(
        "--repeats",
        type=_positive_int,
        help=f"timed runs per case (default: {BENCH_FULL_REPEATS}, --quick: {BENCH_QUICK_REPEATS})",
    )
    bench.add_argument("--simd-level", help=BENCH_SIMD_LEVEL_HELP)
    bench.set_defaults(handler=_run_bench)

    info = commands.add_parser("info", help="versions, devices and available kernels")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=_run_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``vlfast`` command; return its exit code."""
    try:
        args = build_parser().parse_args(argv)
        return args.handler(args)
    except SystemExit as done:  # --help and --version
        return done.code if isinstance(done.code, int) else 0
    except (CommandLineError, VlfastError) as error:
        message = str(error)
    except ImportError as error:  # e.g. `vlfast bench` without the [bench] extra
        message = f"{error}; install the missing package (pip install 'vlfast[bench]')"
    except (OSError, RuntimeError) as error:  # an unwritable --out folder, a CUDA ordinal that does not exist
        message = f"{type(error).__name__}: {error}"
    except KeyboardInterrupt:
        message = "interrupted"
    print(f"vlfast: error: {message}", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
