"""How a batch is split into upload chunks (the uploads themselves: tests/test_staging_cuda.py)."""

import pytest
import torch

from vlfast.engines import staging
from vlfast.engines.staging import chunk_ranges, whole_block
from vlfast.errors import ImageTooLargeError


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


def distinct(*shape: int) -> torch.Tensor:
    """uint8 of ``shape`` whose bytes differ from their neighbours'."""
    return torch.arange(torch.Size(shape).numel()).remainder(251).to(torch.uint8).view(shape)


@pytest.mark.parametrize(
    ("frame", "staged"),
    [
        (distinct(4, 5, 3), 60),
        (distinct(3, 4, 5).permute(1, 2, 0), 60),  # an HWC view of a CHW tensor
        (distinct(4, 5, 3).permute(2, 0, 1), 60),
        (distinct(6, 5, 3)[1:5], 60),  # whole rows: a contiguous block
        (distinct(4, 7, 3)[:, 1:6], 78),  # a crop: rows with gaps, within twice its size
        (distinct(4, 5, 4)[..., :3], 79),  # RGB of RGBX (a PIL image's pixels): 4/3 of its size
        (distinct(12, 15, 3)[::3, ::3], None),  # sparser: packed
        (distinct(1, 5, 3).expand(4, 5, 3), 15),  # overlapping rows: their one row
        (distinct(4, 1, 3), 12),
        (distinct(0, 5, 3), None),
    ],
)
def test_frames_go_whole_within_twice_their_size(frame: torch.Tensor, staged: int | None) -> None:
    """A host frame is staged as the block from its first byte to its last where that is at most twice its size,
    else packed; copied into a buffer of that many bytes and viewed back as staging views it (on the device), it is
    the frame, bit for bit."""
    block = whole_block(frame)
    assert (None if block is None else block.numel()) == staged
    flat = torch.empty(frame.numel() if block is None else block.numel(), dtype=torch.uint8)
    assert staging._copy_to_pinned(flat, frame, block) is flat  # the pinned buffer's copy (here: ordinary memory)
    assert torch.equal(staging._shaped_like(flat, frame, block), frame)


def test_no_room_for_the_frames_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The device buffer of a batch's host frames, refused by the allocator: ImageTooLargeError naming the size and
    the room left (the CUDA calls stubbed: this runs without a GPU)."""

    def refuse(*args: object, **kwargs: object) -> torch.Tensor:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(staging.torch, "empty", refuse)
    monkeypatch.setattr(staging.torch.cuda, "mem_get_info", lambda device: (3 * 2**20, 80 * 2**30))
    with pytest.raises(ImageTooLargeError, match=r"would take 24\.0 MiB on cuda:0, which has 3\.0 MiB free"):
        staging._empty_on(torch.device("cuda", 0), 24 * 2**20)
