"""The copies the GPU path is measured against: host-to-device from pinned and pageable memory,
host memcpy into pinned memory, and device-to-device, for one 1080p / 4K uint8 image and a
batch of 32 1080p images (medians; CUDA events around each copy, host clocks for the memcpy).

Usage: ``python bench/bench_transfer.py [--runs 30]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence

import torch
from bench_triton_kernels import time_ms

SIZES = {"1080p": 1080 * 1920 * 3, "4k": 2160 * 3840 * 3, "32x1080p": 32 * 1080 * 1920 * 3}


def event_ms(function, runs: int) -> float:
    """Median CUDA-event time of ``function`` on the current stream (two warm-up runs)."""
    return statistics.median(time_ms(function, runs, warmup=2))


def host_ms(function, runs: int) -> float:
    """Median host wall time of ``function`` (two warm-up runs)."""
    for _ in range(2):
        function()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> int:
    """Print one line per size and copy kind: ms and GB/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.exit(2, f"{parser.prog}: error: no CUDA device: transfers are measured on a GPU only\n")
    print(f"{'size':<10}{'copy':<22}{'ms':>9}{'GB/s':>8}")
    for name, size in SIZES.items():
        pageable = torch.randint(0, 256, (size,), dtype=torch.uint8)
        pinned = pageable.pin_memory()
        staging = torch.empty_like(pinned).pin_memory()
        device = torch.empty(size, dtype=torch.uint8, device="cuda")
        other = torch.empty_like(device)
        kinds = {
            "h2d pinned": event_ms(lambda d=device, p=pinned: d.copy_(p, non_blocking=True), args.runs),
            "h2d pageable": event_ms(lambda d=device, p=pageable: d.copy_(p), args.runs),
            "host memcpy to pinned": host_ms(lambda s=staging, p=pageable: s.copy_(p), args.runs),
            "d2d (read+write)": event_ms(lambda o=other, d=device: o.copy_(d), args.runs),
        }
        for kind, ms in kinds.items():
            moved = 2 * size if kind.startswith("d2d") else size
            print(f"{name:<10}{kind:<22}{ms:>9.4f}{moved / ms / 1e6:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
