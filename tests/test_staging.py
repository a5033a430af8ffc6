"""How a batch is split into upload chunks (the uploads themselves: tests/test_staging_cuda.py)."""

import pytest
import torch

from vlfast.engines.staging import chunk_ranges, is_dense


@pytest.mark.parametrize(
    ("sizes", "chunk_bytes", "expected"),
    [
        ([10, 10, 10, 10], 20, [range(0, 2), range(2, 4)]),
        ([10, 10, 10], 25, [range(0, 3)]),  # the last chunk takes what is left
        ([30, 5, 5, 30], 20, [range(0, 1), range(1, 4)]),  # a large frame closes its own chunk
        ([0, 0, 10], 5, [range(0, 3)]),  # device frames (0 bytes to upload) ride along
        ([10], 1, [range(0, 1)]),
        ([], 10, []),
    ],
)
def test_chunk_ranges(sizes, chunk_bytes, expected):
    assert chunk_ranges(sizes, chunk_bytes) == expected


@pytest.mark.parametrize(
    ("frame", "dense"),
    [
        (torch.zeros(4, 5, 3, dtype=torch.uint8), True),
        (torch.zeros(3, 4, 5, dtype=torch.uint8).permute(1, 2, 0), True),  # an HWC view of a CHW tensor
        (torch.zeros(4, 5, 3, dtype=torch.uint8).permute(2, 0, 1), True),
        (torch.zeros(6, 5, 3, dtype=torch.uint8)[1:5], True),  # whole rows: a contiguous block
        (torch.zeros(4, 7, 3, dtype=torch.uint8)[:, 1:6], False),  # a crop: rows with gaps
        (torch.zeros(4, 5, 4, dtype=torch.uint8)[..., :3], False),  # RGB of RGBA
        (torch.zeros(1, 5, 3, dtype=torch.uint8).expand(4, 5, 3), False),  # overlapping rows
        (torch.zeros(4, 1, 3, dtype=torch.uint8), True),
    ],
)
def test_is_dense(frame: torch.Tensor, dense: bool) -> None:
    assert is_dense(frame) is dense
