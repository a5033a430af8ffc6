"""The newer model families, vlfast against the installed stock processors, side by side on the CPU.

Cases (decoded uint8 inputs, float32 output as the stock's, the vlfast C++ engine):

- Qwen3-VL image, 1920x1080 photo: ``vlfast.ImageProcessor.from_pretrained`` on the Qwen3-VL config of
  ``tests/data/qwen3_vl`` against ``AutoImageProcessor`` (torchvision) and ``Qwen2VLImageProcessorPil``;
- Qwen3-VL video, 32 frames of 1280x720 (a pan across a photo), all frames (``do_sample_frames=False``):
  vlfast's ``Qwen3VLVideoProcessor`` against the stock one, with the config's bounds (131,072 to 786,432
  pixels for the whole clip: small frames) and with ``longest_edge`` 25,165,824 (frames near 720p);
- GLM-4.1V image, 1920x1080 photo: ``Glm4vImageProcessor`` against the stock (torchvision, PIL).

Each round runs every implementation of a case once, in turn (interleaved), after a warm-up round; reported:
median [min-max] in ms over ``--repeats`` rounds and the speedup of vlfast over the stock of the same backend
(vlfast reproduces each backend's own arithmetic). Every vlfast output is checked bit-identical to its stock's
before timing. Writes ``results.md`` and ``results.csv``
(with the CPU model, versions, date and load average) to ``--out``.

Usage: ``python bench/bench_models.py [--repeats 15] [--out bench/out/models]``.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from transformers import AutoImageProcessor, AutoVideoProcessor, Qwen2VLImageProcessorPil
from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil

import vlfast
from vlfast.machine import machine_info

ROOT = Path(__file__).resolve().parents[1]
QWEN3_VL = ROOT / "tests" / "data" / "qwen3_vl"
GLM4V = ROOT / "tests" / "data" / "glm4v"
LARGE_VIDEO_BUDGET = {"shortest_edge": 4096, "longest_edge": 25_165_824}


def _photo(width: int, height: int) -> np.ndarray:
    """scikit-image's astronaut (or noise without scikit-image) resized to ``width x height``."""
    try:
        from skimage import data

        source = PIL.Image.fromarray(data.astronaut())
    except ImportError:
        source = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8))
    return np.asarray(source.resize((width, height), PIL.Image.Resampling.LANCZOS))


def _pan(frames: int, width: int, height: int) -> np.ndarray:
    """``frames`` frames of ``width x height`` panning across a larger photo."""
    wide = _photo(width + 4 * frames, height)
    return np.stack([wide[:, 4 * index : 4 * index + width] for index in range(frames)])


@dataclass
class Case:
    """One input and the implementations timed on it; ``key`` names the output compared."""

    name: str
    key: str
    runners: dict[str, Callable[[], dict]]
    seconds: dict[str, list[float]] = field(default_factory=dict)
    tokens: int = 0


def build_cases() -> list[Case]:
    image = _photo(1920, 1080)
    clip = _pan(32, 1280, 720)
    qwen3_image = {
        "vlfast torchvision": vlfast.ImageProcessor.from_pretrained(QWEN3_VL, engine="cpp", backend="torchvision"),
        "transformers torchvision": AutoImageProcessor.from_pretrained(QWEN3_VL),
        "vlfast pil": vlfast.ImageProcessor.from_pretrained(QWEN3_VL, engine="cpp", backend="pil"),
        "transformers PIL": Qwen2VLImageProcessorPil.from_pretrained(QWEN3_VL),
    }
    glm_image = {
        "vlfast torchvision": vlfast.ImageProcessor.from_pretrained(GLM4V, engine="cpp", backend="torchvision"),
        "transformers torchvision": AutoImageProcessor.from_pretrained(GLM4V),
        "vlfast pil": vlfast.ImageProcessor.from_pretrained(GLM4V, engine="cpp", backend="pil"),
        "transformers PIL": Glm4vImageProcessorPil.from_pretrained(GLM4V),
    }
    video = {
        "vlfast torchvision": vlfast.VideoProcessor.from_pretrained(QWEN3_VL, engine="cpp"),
        "transformers torchvision": AutoVideoProcessor.from_pretrained(QWEN3_VL),
    }
    video_call = {"do_sample_frames": False, "cap_pixels_per_frame": False, "return_tensors": "pt"}

    def images(processors):
        return {name: (lambda p=p: p(images=[image], return_tensors="pt")) for name, p in processors.items()}

    def videos(processors, **extra):
        return {name: (lambda p=p: p([clip], **video_call, **extra)) for name, p in processors.items()}

    return [
        Case("Qwen3-VL image 1920x1080", "pixel_values", images(qwen3_image)),
        Case("Qwen3-VL video 32x1280x720, config bounds", "pixel_values_videos", videos(video)),
        Case(
            "Qwen3-VL video 32x1280x720, longest_edge 25,165,824",
            "pixel_values_videos",
            videos(video, size=LARGE_VIDEO_BUDGET),
        ),
        Case("GLM-4.1V image 1920x1080", "pixel_values", images(glm_image)),
    ]


#: Each vlfast implementation and the stock one it reproduces.
PAIRS = {"vlfast torchvision": "transformers torchvision", "vlfast pil": "transformers PIL"}


def check_exact(case: Case) -> None:
    """Each vlfast output is its stock's, bit for bit; record the token count."""
    outputs = {name: run() for name, run in case.runners.items()}
    for ours, stock in PAIRS.items():
        if ours in outputs and not torch.equal(outputs[ours][case.key], outputs[stock][case.key]):
            raise SystemExit(f"{case.name}: {ours} differs from {stock}")
    grid = outputs["transformers torchvision"]["image_grid_thw" if case.key == "pixel_values" else "video_grid_thw"]
    case.tokens = int(grid.prod(dim=1).sum()) // 4


def measure(cases: Sequence[Case], repeats: int) -> None:
    for case in cases:
        for _ in range(repeats + 1):  # the first round warms up
            for name, run in case.runners.items():
                start = time.perf_counter()
                run()
                case.seconds.setdefault(name, []).append(time.perf_counter() - start)
        case.seconds = {name: times[1:] for name, times in case.seconds.items()}


def _ms(times: list[float]) -> str:
    return f"{statistics.median(times) * 1e3:.1f} [{min(times) * 1e3:.1f}-{max(times) * 1e3:.1f}]"


def report(cases: Sequence[Case], machine: dict[str, str], repeats: int, out: Path) -> str:
    names = ["vlfast torchvision", "transformers torchvision", "vlfast pil", "transformers PIL"]
    lines = [
        f"# bench/bench_models.py --repeats {repeats}, {machine['date']}",
        f"CPU: {machine['cpu']}, {machine['cpu_cores']} cores, torch threads {machine['torch_threads']}, "
        f"load average at start {machine['load_average_1m']}; torch {machine['torch']}, torchvision "
        f"{machine['torchvision']}, transformers {machine['transformers']}, Pillow {machine['pillow']}, "
        f"numpy {machine['numpy']}, vlfast {machine['vlfast']}",
        "",
        "median [min-max] ms, float32 output, uint8 input already decoded; each vlfast column is bit-identical to "
        "the stock column of the same backend; speedup: vlfast over that stock (median / median)",
        "",
        "| case | tokens | " + " | ".join(names) + " | speedup torchvision | speedup pil |",
        "|---|---:|" + "---:|" * len(names) + "---:|---:|",
    ]
    rows = []
    for case in cases:
        medians = {name: statistics.median(times) for name, times in case.seconds.items()}
        cells = [_ms(case.seconds[name]) if name in case.seconds else "-" for name in names]
        speedups = [
            f"{medians[stock] / medians[ours]:.1f}x" if ours in medians else "-" for ours, stock in PAIRS.items()
        ]
        lines.append(f"| {case.name} | {case.tokens} | " + " | ".join(cells + speedups) + " |")
        for name, times in case.seconds.items():
            rows.append(
                {
                    "case": case.name,
                    "tokens": case.tokens,
                    "implementation": name,
                    "median_ms": f"{medians[name] * 1e3:.3f}",
                    "min_ms": f"{min(times) * 1e3:.3f}",
                    "max_ms": f"{max(times) * 1e3:.3f}",
                    "repeats": len(times),
                }
            )
    out.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    (out / "results.md").write_text(text)
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*rows[0], *machine])
        writer.writeheader()
        writer.writerows({**row, **machine} for row in rows)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "models")
    args = parser.parse_args(argv)
    machine = machine_info()
    cases = build_cases()
    for case in cases:
        check_exact(case)
    measure(cases, args.repeats)
    print(report(cases, machine, args.repeats, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
