"""Test-session setup: without a CUDA device, Triton kernels run in triton's CPU interpreter.

``TRITON_INTERPRET`` must be set before anything imports triton, so it is set here, first.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
