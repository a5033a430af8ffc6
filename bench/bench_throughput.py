"""GPU throughput: images per second through ``vlfast.preprocess`` on CUDA, batches of 32.

For each case (32 x 1920x1080, and 32 mixed photo and video sizes) and each source of the
uint8 frames (``pageable`` NumPy arrays, ``pinned`` host tensors, ``device``-resident CUDA
tensors) it queues ``--calls`` batches back to back (no synchronization between them, as a
serving loop would) and reports images/s, MB/s of input and the host time per call. The
first batch of each case is compared with the stock ``Qwen2VLImageProcessor`` on the CPU,
cast to the output dtype (``bit_exact``).

Usage: ``python bench/bench_throughput.py [--calls 40] [--dtype bfloat16] [--csv PATH]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from bench_triton_kernels import append_rows

import vlfast
from vlfast.defaults import QWEN25_VL_MAX_PIXELS, QWEN25_VL_MIN_PIXELS
from vlfast.machine import machine_info

BATCH = 32
MIXED = [(1080, 1920), (480, 640), (3024, 4032), (720, 1280), (1200, 1600), (375, 500), (2160, 3840), (768, 1024)]
CASES = {"1080p-32": [(1080, 1920)] * BATCH, "mixed-32": [MIXED[i % len(MIXED)] for i in range(BATCH)]}
SOURCES = ("pageable", "pinned", "device")
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
OPTIONS = {"backend": "torchvision", "min_pixels": QWEN25_VL_MIN_PIXELS, "max_pixels": QWEN25_VL_MAX_PIXELS}


def frames_for(sizes: Sequence[tuple[int, int]], source: str, seed: int) -> list:
    """Random uint8 HWC frames of ``sizes`` held as ``source`` says."""
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    if source == "pageable":
        return arrays
    tensors = [torch.from_numpy(a) for a in arrays]
    if source == "pinned":
        return [t.pin_memory() for t in tensors]
    return [t.cuda() for t in tensors]


def stock_check(frames: list, dtype: torch.dtype) -> bool:
    """Whether vlfast on CUDA equals the stock CPU processor (cast to ``dtype``) on ``frames``."""
    from transformers import Qwen2VLImageProcessor

    host = [np.asarray(f.cpu()) if isinstance(f, torch.Tensor) else f for f in frames]
    size = {"shortest_edge": OPTIONS["min_pixels"], "longest_edge": OPTIONS["max_pixels"]}
    expected = Qwen2VLImageProcessor(size=size)(host, return_tensors="pt")["pixel_values"].to(dtype)
    got = vlfast.preprocess(frames, device="cuda", dtype=dtype, **OPTIONS).pixel_values
    return torch.equal(got.cpu(), expected)


def measure(frames: list, dtype: torch.dtype, calls: int) -> dict[str, float]:
    """Queue ``calls`` batches; images/s over the wall time until the last one finished."""
    for _ in range(3):
        vlfast.preprocess(frames, device="cuda", dtype=dtype, **OPTIONS)
    torch.cuda.synchronize()
    host_ms = []
    start = time.perf_counter()
    for _ in range(calls):
        begin = time.perf_counter()
        vlfast.preprocess(frames, device="cuda", dtype=dtype, **OPTIONS)
        host_ms.append((time.perf_counter() - begin) * 1e3)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    input_bytes = sum(int(np.prod(f.shape)) for f in frames)
    return {
        "images_per_s": calls * len(frames) / seconds,
        "input_mb_per_s": calls * input_bytes / seconds / 1e6,
        "host_ms_per_call": statistics.median(host_ms),
        "ms_per_call": seconds / calls * 1e3,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run every case and source, print a table and append CSV rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40, help="batches queued per measurement")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16")
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES))
    parser.add_argument("--csv", type=Path, default=Path("bench/out/throughput.csv"))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.exit(2, f"{parser.prog}: error: no CUDA device: throughput is measured on a GPU only\n")
    dtype = DTYPES[args.dtype]
    machine = machine_info()
    rows = []
    for case in args.cases:
        exact = None
        for source in args.sources:
            frames = frames_for(CASES[case], source, seed=len(rows))
            if exact is None:
                exact = stock_check(frames, dtype)
            result = measure(frames, dtype, args.calls)
            rows.append({"case": case, "source": source, "dtype": args.dtype, "batch": len(frames)} | result)
            rows[-1] |= {"bit_exact": exact, "calls": args.calls} | machine
            del frames
            torch.cuda.empty_cache()
    print(f"{'case':<10}{'source':>10}{'images/s':>11}{'input MB/s':>12}{'ms/call':>9}{'host ms':>9}{'exact':>7}")
    for row in rows:
        print(
            f"{row['case']:<10}{row['source']:>10}{row['images_per_s']:>11.0f}{row['input_mb_per_s']:>12.0f}"
            f"{row['ms_per_call']:>9.2f}{row['host_ms_per_call']:>9.2f}{row['bit_exact']!s:>7}"
        )
    append_rows(args.csv, rows)
    return 0 if all(row["bit_exact"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
