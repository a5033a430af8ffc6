"""Compile every Triton kernel configuration vlfast launches for sm_90, without a GPU.

Each configuration (pass 1 with 3 channels; pass 2 for patch 14 and 16 and every output dtype;
the compact expansion for patch 14 and 16 and every float dtype; at the GPU launch configuration
of ``vlfast.kernels.batch.launch_config``) goes through
the installed Triton's compiler for ``GPUTarget("cuda", 90, 32)`` (ptxas ships with the Triton
wheel); the registers, spill stores/loads, local memory and shared memory of each cubin are
read with the wheel's ``cuobjdump``. Exits 1 on a compile error, a spill or local memory.

Usage: ``python bench/aot_compile.py`` (about 20 s on 2 cores).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from vlfast.kernels import COMPILE_OPTIONS, batch, expand
from vlfast.kernels.resample_pass import resample_pass_kernel
from vlfast.kernels.resample_patchify import resample_patchify_kernel

TARGET = GPUTarget("cuda", 90, 32)
CHANNELS = 3  # what vlfast.preprocess always runs (RGB)
PATCHES = (14, 16)  # Qwen2/2.5-VL and Qwen3-VL
MERGE, TEMPORAL = 2, 2
OUTPUT_DTYPES = ("fp32", "bf16", "fp16", "u8")


def _source(kernel, pointers: dict[str, str], constexprs: dict[str, int]) -> ASTSource:
    """An AST source whose pointers are 16-byte aligned (as torch allocates) and whose other
    runtime arguments are int32 scalars, as the launchers pass them."""
    signature, attrs = {}, {}
    for index, name in enumerate(kernel.arg_names):
        if name in constexprs:
            signature[name] = "constexpr"
        elif name in pointers:
            signature[name] = pointers[name]
            attrs[(index,)] = [["tt.divisibility", 16]]
        else:
            signature[name] = "i32"
    return ASTSource(kernel, signature, constexprs, attrs)


def configurations() -> list[tuple[str, ASTSource, int]]:
    """(name, source, num_warps) of every configuration to compile."""
    found = []
    config = batch.launch_config(PATCHES[0], False)
    first = _source(
        resample_pass_kernel,
        {"meta_ptr": "*i64", "plan_ptr": "*i32", "inter_ptr": "*u8"},
        {
            "CHANNELS": CHANNELS,
            "BLOCK_ROWS": config.pass_rows,
            "BLOCK_COLS": config.pass_cols,
            "WIDE_STORES": config.pass_wide_stores,
        },
    )
    found.append((f"resample_pass C{CHANNELS} {config.pass_rows}x{config.pass_cols}", first, config.pass_warps))
    for patch in PATCHES:
        config = batch.launch_config(patch, False)
        for dtype in OUTPUT_DTYPES:
            source = _source(
                resample_patchify_kernel,
                {
                    "meta_ptr": "*i64",
                    "plan_ptr": "*i32",
                    "inter_ptr": "*u8",
                    "table_ptr": f"*{dtype}",
                    "out_ptr": f"*{dtype}",
                },
                {
                    "CHANNELS": CHANNELS,
                    "PATCH": patch,
                    "MERGE": MERGE,
                    "TEMPORAL": TEMPORAL,
                    "ROWS": config.patch_rows,
                    "PATCH_POW2": triton.next_power_of_2(patch),
                },
            )
            found.append(
                (f"resample_patchify C{CHANNELS} p{patch} {dtype} rows{config.patch_rows}", source, config.patch_warps)
            )
    for patch in PATCHES:
        for dtype in OUTPUT_DTYPES[:3]:
            source = _source(
                expand.expand_kernel,
                {"src_ptr": "*u8", "table_ptr": f"*{dtype}", "out_ptr": f"*{dtype}"},
                {"CHANNELS": CHANNELS, "TEMPORAL": TEMPORAL, "PATCH_AREA": patch * patch, "BLOCK_SIZE": expand.BLOCK},
            )
            found.append((f"expand C{CHANNELS} p{patch} {dtype}", source, expand.NUM_WARPS))
    return found


def resource_usage(cubin: bytes) -> dict[str, int]:
    """REG, STACK, SHARED, LOCAL of a cubin, read with the Triton wheel's cuobjdump."""
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as handle:
        handle.write(cubin)
        handle.flush()
        report = subprocess.run(
            [str(tool), "--dump-resource-usage", handle.name], capture_output=True, text=True, check=True
        ).stdout
    return {key: int(value) for key, value in re.findall(r"(REG|STACK|SHARED|LOCAL):(\d+)", report)}


def main(argv: Sequence[str] | None = None) -> int:
    """Compile every configuration; print one line each; exit 1 on an error or a spill."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    failures = 0
    print(f"{'kernel configuration':<46}{'warps':>6}{'regs':>6}{'stack':>7}{'local':>7}{'shared':>8}")
    for name, source, warps in configurations():
        try:
            compiled = triton.compile(source, target=TARGET, options={"num_warps": warps, **COMPILE_OPTIONS})
            usage = resource_usage(compiled.asm["cubin"])
        except Exception as error:  # noqa: BLE001 - any compiler failure is reported the same way
            print(f"{name:<46} FAILED: {type(error).__name__}: {error}")
            failures += 1
            continue
        spilled = usage.get("LOCAL", 0) > 0 or usage.get("STACK", 0) > 0
        failures += spilled
        print(
            f"{name:<46}{warps:>6}{usage.get('REG', -1):>6}{usage.get('STACK', 0):>7}{usage.get('LOCAL', 0):>7}"
            f"{compiled.metadata.shared:>8}{'  SPILLS' if spilled else ''}"
        )
    print(f"sm_90, triton {triton.__version__}: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
