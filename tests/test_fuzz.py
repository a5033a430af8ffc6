"""Fuzzing: mutated image bytes and random arrays through load_image + preprocess give a result or a typed error.

Bounded: every Hypothesis test has ``max_examples`` and a ``deadline``, and the optional
atheris run (``python tests/test_fuzz.py`` runs it directly) has a time and run budget;
the module runs in well under a minute.
"""

from __future__ import annotations

import inspect
import io
import os
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vlfast
from vlfast.errors import VlfastError
from vlfast.io import load_image

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")]

BACKENDS = ("torchvision", "pil")
#: Small decoded images keep each example fast; headers declaring more are refused with a typed error.
FUZZ_MAX_PIXELS = 1 << 20
FUZZ_SETTINGS = settings(
    max_examples=200,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
#: Budget of the atheris run: libFuzzer runs and seconds, and the wall-clock limit on its process.
ATHERIS_RUNS = 20000
ATHERIS_SECONDS = 15
ATHERIS_TIMEOUT_S = 60
#: Packages whose Python code gives atheris its coverage feedback.
ATHERIS_INSTRUMENTED = ("vlfast", "PIL")


def seed_images() -> dict[str, bytes]:
    """Small valid files of every format the decoders handle, mutated by the fuzzers."""
    rng = np.random.default_rng(0)
    rgb = PIL.Image.fromarray(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8))
    rgba = PIL.Image.fromarray(rng.integers(0, 256, (16, 24, 4), dtype=np.uint8))
    seeds = {}
    for name, image, fmt, options in [
        ("jpeg", rgb, "JPEG", {"quality": 80}),
        ("jpeg_progressive", rgb, "JPEG", {"progressive": True}),
        ("png", rgb, "PNG", {}),
        ("png_rgba", rgba, "PNG", {}),
        ("png_palette", rgb.convert("P"), "PNG", {"transparency": 2}),
        ("gif", rgb, "GIF", {}),
        ("webp", rgb, "WEBP", {"quality": 70}),
        ("webp_lossless", rgba, "WEBP", {"lossless": True}),
        ("bmp", rgb, "BMP", {}),
        ("tiff", rgb, "TIFF", {}),
    ]:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **options)
        seeds[name] = buffer.getvalue()
    return seeds


SEEDS = seed_images()


def load_and_preprocess(data: bytes, backend: str) -> None:
    """The code under test: a result, or a :class:`VlfastError` (anything else fails the fuzzer)."""
    try:
        image = load_image(data, backend=backend, max_pixels=FUZZ_MAX_PIXELS)
        out = vlfast.preprocess(image, backend=backend)
    except VlfastError:
        return
    assert out.pixel_values.shape[0] == int(out.image_grid_thw.prod())
    assert bool(torch.isfinite(out.pixel_values).all())


@st.composite
def mutated_images(draw) -> bytes:
    """A seed image with bit flips, truncation, insertions, overwritten or repeated spans."""
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        position = draw(st.integers(0, len(data) - 1))
        operation = draw(st.sampled_from(["flip", "truncate", "insert", "overwrite", "repeat"]))
        if operation == "flip":
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif operation == "truncate":
            del data[position:]
        elif operation == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif operation == "overwrite":
            patch = draw(st.binary(min_size=1, max_size=8))
            data[position : position + len(patch)] = patch
        else:
            span = data[position : position + draw(st.integers(1, 64))]
            data[position:position] = span * draw(st.integers(1, 4))
    return bytes(data)


@pytest.fixture(scope="module", autouse=True)
def warm_up():
    """Import and initialise the decoders once, so first-call costs do not count against the deadline."""
    for backend in BACKENDS:
        for data in SEEDS.values():
            load_and_preprocess(data, backend)


@FUZZ_SETTINGS
@given(data=mutated_images(), backend=st.sampled_from(BACKENDS))
def test_mutated_image_bytes(data, backend):
    load_and_preprocess(data, backend)


@FUZZ_SETTINGS
@given(data=st.binary(max_size=256), backend=st.sampled_from(BACKENDS))
def test_random_bytes(data, backend):
    load_and_preprocess(data, backend)


# --- random arrays ---------------------------------------------------------------------------------------------


NATIVE_DTYPES = [np.uint8] * 6 + [np.int8, np.uint16, np.int32, np.int64, np.float16, np.float32, np.float64, bool]
TORCH_DTYPES = [torch.uint8] * 6 + [torch.int8, torch.int16, torch.int64, torch.float32, torch.bfloat16, torch.bool]
FOREIGN_DTYPES = [np.dtype(">u2"), np.dtype(">u1"), np.dtype(object), np.dtype(">f4")]


@st.composite
def random_arrays(draw, dtypes: list, negative_strides: bool) -> np.ndarray | torch.Tensor:
    """Arrays or tensors of random rank, size, dtype and layout (sliced with steps, transposed)."""
    shape = tuple(draw(st.lists(st.integers(0, 48), min_size=0, max_size=4)))
    dtype = draw(st.sampled_from(dtypes))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    steps = [draw(st.integers(1, 3)) for _ in shape]
    if negative_strides:
        steps = [-step if draw(st.booleans()) else step for step in steps]
    base_shape = tuple(size * abs(step) for size, step in zip(shape, steps, strict=True))
    if isinstance(dtype, torch.dtype):
        base = torch.from_numpy(rng.integers(0, 256, base_shape, dtype=np.uint8)).to(dtype)
        array = base[tuple(slice(None, None, step) for step in steps)]
    else:
        base = rng.integers(0, 256, base_shape).astype(dtype)
        array = np.asarray(base[tuple(slice(None, None, step) for step in steps)])  # 0-d stays an array
    if array.ndim >= 2 and draw(st.booleans()):
        order = draw(st.permutations(range(array.ndim)))
        array = array.permute(*order) if isinstance(array, torch.Tensor) else array.transpose(order)
    return array


def preprocess_array(array, backend: str) -> None:
    assert load_image(array) is array
    try:
        out = vlfast.preprocess(array, backend=backend)
    except VlfastError:
        return
    assert bool(torch.isfinite(out.pixel_values).all())
    # The original size is read the way transformers reads the layout: 2-D is (H, W); 3-D is CHW
    # when the first axis holds 1, 3 or 4 channels, else HWC.
    shape = tuple(array.shape)
    if len(shape) == 2:
        expected = shape
    else:
        expected = shape[1:] if shape[0] in (1, 3, 4) else shape[:2]
    assert out.original_sizes == [expected]


@FUZZ_SETTINGS
@given(array=random_arrays(NATIVE_DTYPES + TORCH_DTYPES, negative_strides=False), backend=st.sampled_from(BACKENDS))
def test_random_arrays(array, backend):
    preprocess_array(array, backend)


@FUZZ_SETTINGS
@given(array=random_arrays([np.uint8], negative_strides=True), backend=st.sampled_from(BACKENDS))
def test_random_arrays_with_negative_strides(array, backend):
    preprocess_array(array, backend)


@FUZZ_SETTINGS
@given(array=random_arrays(FOREIGN_DTYPES, negative_strides=False), backend=st.sampled_from(BACKENDS))
def test_random_arrays_of_foreign_dtypes(array, backend):
    preprocess_array(array, backend)


# --- atheris (optional, coverage-guided, in its own process) ---------------------------------------------------


def atheris_one_input(data: bytes) -> None:
    """The atheris target: the first byte picks the backend, the rest is the file."""
    if data:
        load_and_preprocess(data[1:], BACKENDS[data[0] % 2])


def instrument_decoders(atheris) -> None:
    """Coverage feedback from vlfast and Pillow's Python code (instrumenting everything loaded takes minutes)."""
    for name, module in list(sys.modules.items()):
        if not name.startswith(ATHERIS_INSTRUMENTED):
            continue
        for value in vars(module).values():
            members = vars(value).values() if isinstance(value, type) else [value]
            for member in members:
                function = getattr(member, "__func__", member)
                if inspect.isfunction(function) and function.__module__ == name:
                    atheris.instrument_func(function)


def run_atheris(argv: list[str]) -> None:
    """libFuzzer main loop over ``atheris_one_input``, seeded with :data:`SEEDS`; exits the process."""
    import atheris

    corpus = tempfile.mkdtemp(prefix="vlfast-atheris-")
    for name, data in SEEDS.items():
        for index, backend_byte in enumerate(b"\x00\x01"):
            with open(os.path.join(corpus, f"{name}-{index}"), "wb") as file:
                file.write(bytes([backend_byte]) + data)
    instrument_decoders(atheris)
    atheris.Setup([argv[0], *argv[1:], f"-artifact_prefix={corpus}/", corpus], atheris_one_input)
    atheris.Fuzz()


def test_atheris_harness():
    pytest.importorskip("atheris", reason="atheris is not installed (optional: pip install atheris)")
    # -rss_limit_mb=0: torch + transformers alone take more than libFuzzer's default 2 GB limit.
    command = [
        sys.executable,
        __file__,
        f"-runs={ATHERIS_RUNS}",
        f"-max_total_time={ATHERIS_SECONDS}",
        "-rss_limit_mb=0",
    ]
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(command, capture_output=True, text=True, timeout=ATHERIS_TIMEOUT_S, cwd=root, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Done" in result.stderr, result.stderr[-4000:]


if __name__ == "__main__":
    run_atheris(sys.argv)
