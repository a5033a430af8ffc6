"""PIL RGB images read where Pillow keeps them (vlfast.pil_memory): the view is Pillow's memory and outlives the
image, images Pillow does not export so are copied as before, the kernels read RGBX rows exactly at every SIMD
level and nothing past them, and the results equal the stock processors' on the same PIL images."""

from __future__ import annotations

import gc
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from guard_pages import run_child
from kernel_cases import make_image
from simd_levels import LEVELS, simd_level
from skimage import data
from transformers import Qwen2VLImageProcessor, Qwen2VLImageProcessorPil

import vlfast
from vlfast import pil_memory, releases
from vlfast.inputs import pil_pixels
from vlfast.io import load_image
from vlfast.pil_memory import rgbx_view

pytest.importorskip("vlfast._C", reason="the C++ extension is not built")
#: Tests of the view itself need a Pillow whose export it reads (13.0 and later; CI installs the newest).
needs_export = pytest.mark.skipif(
    not releases.pillow_exports_pixels(), reason="Pillow before 13.0: PIL images are copied"
)

STOCK = {"torchvision": Qwen2VLImageProcessor, "pil": Qwen2VLImageProcessorPil}
QWEN25_VL = {"min_pixels": 3136, "max_pixels": 12845056}
#: Widths around the packing steps (8 pixels at AVX2, 16 at AVX-512, the last step always the tail's).
WIDTHS = (1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 64, 65)


@needs_export
def test_rgb_images_are_viewed_where_pillow_keeps_them() -> None:
    """An RGB image's pixels are Pillow's own memory (a pixel Pillow changes afterwards shows), RGB bytes of 4-byte
    pixels, and stay readable after the image is gone (its memory not handed to the next images of its size)."""
    pixels_in = make_image(np.random.default_rng(0), 37, 53)
    image = PIL.Image.fromarray(pixels_in)
    pixels = pil_pixels(image)
    assert pixels.shape == (37, 53, 3) and pixels.dtype == np.uint8
    assert pixels.strides == (4 * 53, 4, 1)
    assert np.array_equal(pixels, pixels_in)
    image.putpixel((0, 0), (1, 2, 3))
    assert pixels[0, 0].tolist() == [1, 2, 3]
    del image
    gc.collect()
    others = [PIL.Image.new("RGB", (53, 37), (7, 7, 7)) for _ in range(8)]
    assert all(np.asarray(other).max() == 7 for other in others)
    assert np.array_equal(pixels[1:], pixels_in[1:])


@needs_export
def test_images_pillow_does_not_export_so_are_copied(monkeypatch: pytest.MonkeyPatch) -> None:
    """Images in several blocks (4K RGB, past Pillow's 16 MiB block), of other modes, empty, exported in another
    form, from a Pillow before 13.0 or without Arrow export: no view; their pixels are ``np.asarray``'s,
    contiguous."""
    rng = np.random.default_rng(1)
    four_k = PIL.Image.fromarray(rng.integers(0, 256, (2160, 3840, 3), dtype=np.uint8))
    assert 3840 * 2160 * 4 > PIL.Image.core.get_block_size()
    other_form = PIL.Image.fromarray(make_image(rng, 5, 6))
    gray = PIL.Image.fromarray(make_image(rng, 5, 6, 1)[:, :, 0])
    other_form.__arrow_c_array__ = gray.__arrow_c_array__  # a uint8 array of pixels, not lists of 4
    images = {
        "4K": four_k,
        "L": gray,
        "RGBA": PIL.Image.fromarray(make_image(rng, 5, 6, 4)),
        "empty": PIL.Image.new("RGB", (0, 3)),
        "other form": other_form,
    }
    for name, image in images.items():
        assert rgbx_view(image) is None, name
        pixels = pil_pixels(image)
        assert pixels.flags.c_contiguous and np.array_equal(pixels, np.asarray(image)), name
    small = PIL.Image.fromarray(make_image(rng, 5, 6))
    assert rgbx_view(small) is not None
    with monkeypatch.context() as patch:
        patch.setattr(pil_memory, "pillow_exports_pixels", lambda: False)  # Pillow 11.2 to 12.3
        assert rgbx_view(small) is None
    assert rgbx_view(small) is not None
    monkeypatch.delattr(PIL.Image.Image, "__arrow_c_array__")  # Pillow before 11.2
    assert rgbx_view(small) is None
    assert np.array_equal(pil_pixels(small), np.asarray(small))


PILLOW_EXPORTS = """
import gc, os, sys
import numpy as np
import PIL.Image
from vlfast import pil_memory
from vlfast.pil_memory import rgbx_view

pil_memory.pillow_exports_pixels = lambda: True  # whatever the release: what the rule stands on is tried here

def resident_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGESIZE") / 2**20

pixels = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
gc.collect()
before = resident_mb()
for _ in range(40):  # 8 MB each
    image = PIL.Image.fromarray(pixels)
    assert np.array_equal(rgbx_view(image)[:, :, :3], pixels)
    del image
gc.collect()
print(round(resident_mb() - before))
from_arrow = PIL.Image.fromarrow(PIL.Image.fromarray(pixels[:5, :7]), "RGB", (7, 5))
assert np.array_equal(rgbx_view(from_arrow)[:, :, :3], pixels[:5, :7])  # Pillow 11.2-12.3: a crash
PIL.Image.core.set_alignment(64)  # rows padded to 64 bytes: not one run of 4W-byte rows
assert rgbx_view(PIL.Image.fromarray(pixels[:6, :53])) is None  # Pillow 11.2-12.3: shifted rows
"""


@pytest.mark.skipif(sys.platform != "linux", reason="resident memory from /proc")
def test_the_pillow_release_read_frees_exports_and_refuses_padded_rows() -> None:
    """What the release rule stands on (``releases.PILLOW_PIXEL_EXPORT_SINCE``), tried with the gate forced open in a
    process of its own: 40 1080p images viewed and dropped free their memory, an image made by ``Image.fromarrow``
    exports, and aligned (padded) rows are refused, not read shifted; on a release the rule keeps shut, one of
    them fails (or the release has no export at all)."""
    child = subprocess.run([sys.executable, "-c", PILLOW_EXPORTS], capture_output=True, text=True, timeout=120)
    sound = child.returncode == 0 and int(child.stdout) < 100  # 320 MB if every exported image were kept
    assert sound is releases.pillow_exports_pixels(), (child.returncode, child.stdout, child.stderr[-2000:])


@needs_export
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_pil_images_equal_the_stock_at_every_level(level: str, backend: str) -> None:
    """PIL RGB images of widths around the packing steps, resized (up from below min_pixels, or down) or already
    at the model's size (no pass: rows packed into place), and real photos, each SIMD level against the stock
    processor on the same images, float32 and bfloat16."""
    rng = np.random.default_rng(2)
    images = [PIL.Image.fromarray(make_image(rng, 30, width)) for width in WIDTHS]
    images += [PIL.Image.fromarray(make_image(rng, 56, 84)), PIL.Image.fromarray(make_image(rng, 300, 451))]
    images += [PIL.Image.fromarray(data.chelsea()), PIL.Image.fromarray(data.astronaut())]  # real photos
    assert all(rgbx_view(image) is not None for image in images)
    expected = STOCK[backend](**QWEN25_VL)(images=images, return_tensors="pt")
    with simd_level(level):
        for dtype in (torch.float32, torch.bfloat16):
            got = vlfast.preprocess(images, backend=backend, engine="cpp", dtype=dtype, **QWEN25_VL)
            assert torch.equal(got.image_grid_thw, expected["image_grid_thw"])
            assert torch.equal(got.pixel_values, expected["pixel_values"].to(dtype)), (level, dtype)


@needs_export
def test_decoded_sources_are_viewed_in_place(tmp_path) -> None:
    """``load_image(backend="pil", copy=False)`` gives a view of the decoded image's RGBX memory, ``(3, H, W)``;
    preprocessing the file equals the stock PIL processor on the image Pillow decodes from it."""
    pixels_in = make_image(np.random.default_rng(3), 40, 61)
    path = tmp_path / "image.png"
    PIL.Image.fromarray(pixels_in).save(path)
    view = load_image(str(path), backend="pil", copy=False)
    assert view.shape == (3, 40, 61) and view.stride() == (1, 4 * 61, 4)
    assert torch.equal(view, torch.from_numpy(pixels_in).permute(2, 0, 1))
    with PIL.Image.open(path) as decoded:
        expected = Qwen2VLImageProcessorPil(**QWEN25_VL)(images=[decoded.convert("RGB")], return_tensors="pt")
    got = vlfast.preprocess([str(path)], backend="pil", engine="cpp", **QWEN25_VL)
    assert torch.equal(got.pixel_values, expected["pixel_values"])


@needs_export
def test_decoded_copies_are_interleaved(tmp_path) -> None:
    """``load_image`` (copy=True) of a PNG with a transparency colour (its composite viewed in Pillow's memory, then
    copied) gives interleaved pixels, ``(3, H, W)`` with strides ``(1, 3W, 3)``, as before the view."""
    pixels_in = make_image(np.random.default_rng(4), 20, 31)
    path = tmp_path / "trns.png"
    PIL.Image.fromarray(pixels_in).save(path, transparency=(0, 0, 0))
    copied = load_image(str(path), backend="pil")
    assert copied.shape == (3, 20, 31) and copied.stride() == (1, 3 * 31, 3)
    assert torch.equal(copied, load_image(str(path), backend="pil", copy=False))


GUARDED_RGBX = """
import sys
import numpy as np
import torch
from guard_pages import flush_against_guard
from vlfast import _C, normalization_table
from vlfast.engines import cpp as cpu_kernel
from vlfast.plans import Backend, Filter, ResamplePlan, axis_plan


def rgb_of_rgbx_against_guard(height, width):
    \"\"\"(H, W, 3) uint8 with strides (4W, 4, 1), the last pixel's third byte followed by a PROT_NONE page.\"\"\"
    flat = flush_against_guard(4 * height * width - 1)
    flat[...] = np.random.default_rng(width).integers(0, 256, flat.size, dtype=np.uint8)
    return np.lib.stride_tricks.as_strided(flat, (height, width, 3), (4 * width, 4, 1))


table = normalization_table("torchvision", dtype=torch.float32)
layout = {"patch_size": 14, "merge_size": 2, "temporal_patch_size": 2}
checked = 0
for width in eval(sys.argv[1]):
    image = rgb_of_rgbx_against_guard(56, width)
    # No pass, a horizontal pass, a vertical one, both (the sizes that are whole blocks).
    for out_height, out_width in sorted({(h, w) for h in (56, 28) for w in (width, 56) if w % 28 == 0}):
        plan = ResamplePlan(
            56, width, out_height, out_width,
            axis_plan(width, out_width, Filter.BICUBIC, Backend.PIL) if out_width != width else None,
            axis_plan(56, out_height, Filter.BICUBIC, Backend.PIL) if out_height != 56 else None,
            False,
        )
        rows = (out_height // 14) * (out_width // 14)
        expected = torch.empty((rows, 3 * 2 * 14 * 14), dtype=torch.float32)
        _C.set_simd_level("portable")
        cpu_kernel.run_frame(np.ascontiguousarray(image), plan, table, expected, 0, num_threads=1, **layout)
        for level in _C.simd_levels():
            _C.set_simd_level(level)
            out = torch.empty_like(expected)
            cpu_kernel.run_frame(image, plan, table, out, 0, num_threads=1, **layout)
            assert torch.equal(out, expected), (width, out_height, out_width, level)
            checked += 1
print(checked)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="guard pages through libc mprotect")
def test_rgbx_rows_are_read_to_their_last_rgb_byte_only() -> None:
    """RGBX rows whose last pixel's third byte is flush against a PROT_NONE page (its X byte unmapped), at widths
    around every level's packing step, with and without a horizontal pass, at every SIMD level: no fault, and
    the bytes of the same pixels packed beforehand."""
    from vlfast import _C

    widths = [28, 56, 84, 112, 140, 168, 9, 17, 33, 65]
    child = run_child(GUARDED_RGBX, repr(widths))
    assert child.returncode == 0, child.stderr[-2000:]
    frames = sum(len({(h, w) for h in (56, 28) for w in (width, 56) if w % 28 == 0}) for width in widths)
    assert frames == 6 * 4 - 2 + 4 * 2  # 56 wide: 2 frames; other multiples of 28: 4; the rest: 2
    assert int(child.stdout) == frames * len(_C.simd_levels())
