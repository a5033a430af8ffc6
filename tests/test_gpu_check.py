"""The one-command GPU proof, as far as it runs without a GPU: ``bench/gpu_check.sh --dry-run``
checks the install, compiles every kernel configuration for sm_90 (failing on spills), collects
the CUDA tests and runs every GPU script up to its clean refusal."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run is for machines without a GPU")


@pytest.mark.slow
def test_dry_run_passes_every_step(tmp_path: Path) -> None:
    out = tmp_path / "gpu-check"
    environment = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    environment["PYTHON"] = sys.executable
    result = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh"), str(out), "--dry-run"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = (out / "summary.md").read_text()
    for step in ("install", "aot-sm90", "tests-collect", "dry-bench_gpu", "dry-bench_throughput"):
        assert f"| {step} | ok |" in summary
    aot = (out / "logs" / "aot-sm90.log").read_text()
    assert "resample_pass C3" in aot and "resample_patchify C3 p14 bf16" in aot and "0 failure(s)" in aot
