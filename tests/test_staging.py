"""How a batch is split into upload chunks (the uploads themselves: tests/test_staging_cuda.py)."""

import pytest

from vlfast.staging import chunk_ranges


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
