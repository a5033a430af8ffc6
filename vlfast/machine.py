"""What a benchmark or ``vlfast info`` reports about the machine: CPU, cores, GPU and driver, library versions."""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import subprocess
from importlib import metadata

import numpy as np
import PIL
import torch

from . import __version__
from .engines.cpp import simd_level, simd_levels

__all__ = ["cpu_flags", "cpu_model", "describe_cpu", "library_versions", "machine_info", "nvidia_driver"]


def _package_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def library_versions() -> dict[str, str]:
    """Versions of vlfast, Python and the libraries whose speed or output the benchmark depends on."""
    return {
        "vlfast": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _package_version("torchvision"),
        "transformers": _package_version("transformers"),
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "triton": _package_version("triton"),
    }


def _first_processor(cpuinfo: str) -> dict[str, str]:
    """The ``key: value`` fields of the first processor block of ``/proc/cpuinfo`` text."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():  # the first processor's block is enough
            break
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            return cpuinfo.read()
    except OSError:
        return ""


def describe_cpu(cpuinfo: str) -> str:
    """The CPU named from ``/proc/cpuinfo`` text: the model name, and for x86 its family and model numbers, which
    tell apart the CPUs that cloud VMs all name "Intel(R) Xeon(R) Processor" (``""`` when there is no name)."""
    fields = _first_processor(cpuinfo)
    name = fields.get("model name", "")
    if name and fields.get("cpu family") and fields.get("model"):
        return f"{name} (family {fields['cpu family']} model {fields['model']})"
    return name


def cpu_model() -> str:
    """:func:`describe_cpu` of this machine, or what :mod:`platform` says where there is no ``/proc/cpuinfo``."""
    return describe_cpu(_cpuinfo()) or platform.processor() or platform.machine()


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The instruction-set flags ``/proc/cpuinfo`` text (default: this machine's) lists (empty where it does not)."""
    return set(_first_processor(_cpuinfo() if cpuinfo is None else cpuinfo).get("flags", "").split())


def nvidia_driver() -> str:
    """The NVIDIA driver version from ``nvidia-smi``, or "" when there is none."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return ""
    try:
        result = subprocess.run(
            [executable, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip().splitlines()[0] if result.stdout.strip() else ""


def _kernels_level() -> str:
    """The C++ kernels' SIMD level, and the CPU's highest where they are capped below it; empty when not built."""
    level, levels = simd_level(), simd_levels()
    if level is None:
        return ""
    return level if level == levels[-1] else f"{level} (capped; this CPU has {levels[-1]})"


def machine_info() -> dict[str, str]:
    """CPU, cores, torch threads, load average, the C++ kernels' SIMD level (empty when not built), GPU and driver
    (empty without one), library versions, date."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu": cpu_model(),
        "cpu_cores": str(os.cpu_count() or 0),
        "torch_threads": str(torch.get_num_threads()),
        "load_average_1m": f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "",
        "cpu_kernels": _kernels_level(),
        "gpu": gpu,
        "gpu_driver": nvidia_driver() if gpu else "",
        "cuda": (torch.version.cuda or "") if gpu else "",
    }
    info.update(library_versions())
    return info
