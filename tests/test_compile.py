"""``torch.compile`` of a function that calls vlfast: it finishes, and gives the eager bits.

vlfast's public functions are opaque to the compiler (``vlfast.eager``): the caller's graph breaks there and
the call runs eagerly. Run in a subprocess with a deadline, since a regression shows as a compile that never
ends.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("vlfast._C", reason="the C++ extension is not built")

#: Compile time allowed (seconds): about 2 s here; generous for a loaded 2-core machine.
COMPILE_DEADLINE_S = 240

_CHILD = textwrap.dedent(
    """
    import io, time
    import numpy as np, PIL.Image, torch
    import vlfast

    rng = np.random.default_rng(8)
    array = rng.integers(0, 256, (300, 451, 3), dtype=np.uint8)
    tensor = torch.from_numpy(rng.integers(0, 256, (3, 97, 131), dtype=np.uint8))
    buffer = io.BytesIO()
    PIL.Image.fromarray(array).save(buffer, format="PNG")
    png = buffer.getvalue()

    def caller(image, other):
        out = vlfast.preprocess([image, other], max_pixels=200_000)
        chunks = [c.pixel_values for c in vlfast.preprocess_in_chunks([image, other], max_chunk_bytes=2**22)]
        loaded = vlfast.preprocess(vlfast.load_image(png)).pixel_values
        return out.pixel_values * 2, out.image_grid_thw, torch.cat(chunks), loaded

    start = time.monotonic()
    compiled = torch.compile(caller)(array, tensor)
    seconds = time.monotonic() - start
    expected = caller(array, tensor)
    assert all(torch.equal(a, b) for a, b in zip(compiled, expected, strict=True))
    print(f"compiled in {seconds:.1f} s, bit-identical")
    """
)


@pytest.mark.slow
def test_torch_compile_of_a_caller_finishes_with_the_eager_bits():
    try:
        child = subprocess.run(
            [sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=COMPILE_DEADLINE_S
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"torch.compile of a vlfast caller did not finish in {COMPILE_DEADLINE_S} s")
    assert child.returncode == 0, child.stderr[-3000:]
    assert "bit-identical" in child.stdout
