"""Host frames reach the GPU kernels whole, from every kind of source, chunk by chunk (CUDA only).

The GPU result is compared with the C++ engine's on the same pixels (the C++ engine is compared
with the stock processors in tests/test_exactness.py), bit for bit.
"""

import numpy as np
import PIL.Image
import pytest
import torch

pytestmark = pytest.mark.cuda

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA device", allow_module_level=True)
pytest.importorskip("triton", reason="triton is not installed: the Triton kernels cannot run")

import vlfast  # noqa: E402
from vlfast.engines import staging, triton_engine  # noqa: E402
from vlfast.errors import DeviceError  # noqa: E402

if triton_engine.interpreting():
    pytest.skip("TRITON_INTERPRET is on: the kernels run in the CPU interpreter", allow_module_level=True)

OPTIONS = {"backend": "torchvision", "min_pixels": 3136, "max_pixels": 12845056, "dtype": torch.bfloat16}
SIZES = [(1080, 1920), (333, 500), (720, 1280), (61, 4000), (2160, 3840)]


def images(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in SIZES]


def expected(arrays: list[np.ndarray]) -> torch.Tensor:
    return vlfast.preprocess(arrays, engine="cpp", **OPTIONS).pixel_values


def as_source(array: np.ndarray, kind: str):
    tensor = torch.from_numpy(array)
    if kind == "numpy":
        return array
    if kind == "pageable":
        return tensor.clone()
    if kind == "pinned":
        return tensor.pin_memory()
    if kind == "pinned-chw":  # a dense permuted view: uploaded as one block with its strides
        return tensor.permute(2, 0, 1).contiguous().pin_memory()
    if kind == "pinned-crop":  # rows with gaps, within twice its size: uploaded whole from its own memory
        padded = torch.zeros(array.shape[0] + 2, array.shape[1] + 3, 3, dtype=torch.uint8)
        padded[1:-1, 2:-1] = tensor
        return padded.pin_memory()[1:-1, 2:-1]
    if kind == "pinned-sparse":  # every other pixel of every other row: packed through the pinned buffer
        spread = torch.zeros(2 * array.shape[0], 2 * array.shape[1], 3, dtype=torch.uint8)
        spread[::2, ::2] = tensor
        return spread.pin_memory()[::2, ::2]
    if kind == "pil":  # RGB views of Pillow's RGBX memory where it exports them (1080p; 4K is copied)
        return PIL.Image.fromarray(array)
    if kind == "pinned-rgbx":  # the same layout, pinned: uploaded whole from its own memory
        rgbx = torch.zeros(array.shape[0], array.shape[1], 4, dtype=torch.uint8)
        rgbx[..., :3] = tensor
        return rgbx.pin_memory()[..., :3]
    if kind == "cuda":
        return tensor.cuda()
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind", ["numpy", "pageable", "pinned", "pinned-chw", "pinned-crop", "pinned-sparse", "pil", "pinned-rgbx", "cuda"]
)
def test_every_source_gives_the_cpu_result(kind: str) -> None:
    arrays = images()
    got = vlfast.preprocess([as_source(a, kind) for a in arrays], device="cuda", engine="triton", **OPTIONS)
    assert got.pixel_values.device.type == "cuda"
    assert torch.equal(got.pixel_values.cpu(), expected(arrays))


def test_mixed_sources_in_small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """One frame per chunk, sources of every kind interleaved: each chunk's kernels wait for its copy only."""
    monkeypatch.setattr(staging, "CHUNK_BYTES", 1)
    arrays = images(1) * 2
    kinds = ["numpy", "pinned", "cuda", "pinned-chw", "pageable", "pinned-crop", "pil", "pinned-rgbx", "pinned-sparse"]
    kinds.append("numpy")
    got = vlfast.preprocess([as_source(a, k) for a, k in zip(arrays, kinds, strict=True)], device="cuda", **OPTIONS)
    assert torch.equal(got.pixel_values.cpu(), expected(arrays))


def test_pinned_whole_frames_skip_the_host_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pinned frames sent whole (contiguous, permuted, cropped, RGB of RGBX) are uploaded from their own memory;
    others are copied into the pinned staging buffer once each: whole (NumPy arrays) or packed (sparse frames)."""
    copied = []
    original = staging._copy_to_pinned

    def copy_to_pinned(flat: torch.Tensor, frame: torch.Tensor, block: torch.Tensor | None) -> torch.Tensor:
        copied.append(block is not None)
        return original(flat, frame, block)

    monkeypatch.setattr(staging, "_copy_to_pinned", copy_to_pinned)
    arrays = images(2)
    for kind in ("pinned", "pinned-chw", "pinned-crop", "pinned-rgbx"):
        vlfast.preprocess([as_source(a, kind) for a in arrays], device="cuda", **OPTIONS)
        assert copied == [], kind
    vlfast.preprocess(arrays, device="cuda", **OPTIONS)
    assert copied == [True] * len(arrays)  # NumPy arrays: one block copy each
    copied.clear()
    vlfast.preprocess([array[::2, ::2] for array in arrays], device="cuda", **OPTIONS)
    assert copied == [False] * len(arrays)  # every other pixel of every other row: packed
    copied.clear()
    vlfast.preprocess([as_source(a, "pinned-sparse") for a in arrays], device="cuda", **OPTIONS)
    assert copied == [False] * len(arrays)  # pinned, but packed all the same


def test_on_a_side_stream_and_repeated() -> None:
    arrays = images(3)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        results = [vlfast.preprocess(arrays, device="cuda", **OPTIONS).pixel_values for _ in range(3)]
    stream.synchronize()
    reference = expected(arrays)
    assert all(torch.equal(result.cpu(), reference) for result in results)


def test_host_frames_are_refused_during_graph_capture() -> None:
    arrays = images(4)[:1]
    vlfast.preprocess(arrays, device="cuda", **OPTIONS)  # warm up outside the capture
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    with pytest.raises(DeviceError, match="while a CUDA graph is captured"):
        with torch.cuda.graph(graph, stream=stream):
            vlfast.preprocess(arrays, device="cuda", **OPTIONS)


def test_no_room_on_the_gpu_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    empty = torch.empty

    def out_of_memory(*args, **kwargs):
        if torch.device(kwargs.get("device") or "cpu").type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return empty(*args, **kwargs)

    monkeypatch.setattr(torch, "empty", out_of_memory)
    with pytest.raises(vlfast.ImageTooLargeError, match="MiB free; split the batch"):
        vlfast.preprocess(images(5)[:1], device="cuda", **OPTIONS)
