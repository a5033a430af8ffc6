"""Test-session setup.

- Without a CUDA device, Triton kernels run in triton's CPU interpreter: ``TRITON_INTERPRET``
  must be set before anything imports triton, so it is set here, first.
- In CI (``CI`` set), the C++ extension must import: the exactness suites skip without it,
  and a broken build must fail the run, not skip most of it.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

if os.environ.get("CI"):
    import vlfast._C  # noqa: F401
