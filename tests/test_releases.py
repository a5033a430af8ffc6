"""``vlfast.releases``: each per-release rule agrees with what the installed stock does, measured on it."""

from __future__ import annotations

import warnings

import numpy as np
import PIL.Image
import pytest
import torch

pytest.importorskip("torchvision", reason="the stock torchvision processors need torchvision")

from transformers.image_processing_backends import TorchvisionBackend  # noqa: E402
from transformers.image_transforms import convert_to_rgb  # noqa: E402
from transformers.image_utils import SizeDict, load_image_as_tensor  # noqa: E402
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor  # noqa: E402
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor  # noqa: E402

from vlfast import releases  # noqa: E402


def test_rgb_conversion_rule():
    """The stock conversion of a fully transparent black pixel: white when it composites, black otherwise."""
    clear = PIL.Image.new("RGBA", (1, 1), (0, 0, 0, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 5.21+ asks for return_numpy=True, which 5.17 does not know
        converted = np.asarray(convert_to_rgb(clear))
    assert releases.rgb_conversion_composites() is (converted.reshape(-1)[:3].tolist() == [255, 255, 255])


def test_inferred_channel_counts_rule():
    """Whether the stock torchvision processor finds the channel axis of an (H, W, 4) array."""
    try:
        Qwen2VLImageProcessor()(np.full((30, 40, 4), 255, np.uint8), return_tensors="pt")
        infers_four = True
    except ValueError as error:
        assert "infer channel dimension" in str(error)
        infers_four = False
    assert (4 in releases.inferred_channel_counts()) is infers_four


def test_loader_exif_rule(tmp_path):
    """Whether the torchvision processor's loader turns a JPEG tagged "rotate 90" upright."""
    exif = PIL.Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "tagged.jpg"
    PIL.Image.new("RGB", (60, 20)).save(path, exif=exif)
    assert load_image_as_tensor(str(path)).shape[1:] == ((60, 20) if releases.loader_applies_exif() else (20, 60))


def test_torchvision_lanczos_rule():
    """Whether the stock torchvision resize gives LANCZOS requests something other than BICUBIC."""
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 40, 50), dtype=np.uint8))
    stock, size = Qwen2VLImageProcessor(), SizeDict(height=17, width=23)
    lanczos = TorchvisionBackend.resize(stock, image, size, PIL.Image.Resampling.LANCZOS)
    bicubic = TorchvisionBackend.resize(stock, image, size, PIL.Image.Resampling.BICUBIC)
    assert releases.torchvision_resizes_lanczos() is not torch.equal(lanczos, bicubic)


def test_video_cap_budget_rule():
    """Whether the stock per-frame cap follows a call-time max_video_tokens."""
    clip = np.zeros((8, 448, 448, 3), np.uint8)
    stock = Qwen2VLVideoProcessor(size={"shortest_edge": 3136, "longest_edge": 602112})
    call = {"return_tensors": "pt", "cap_pixels_per_frame": True}
    default = stock(clip, **call)["video_grid_thw"]
    small = stock(clip, **call, max_video_tokens=300)["video_grid_thw"]
    assert releases.video_cap_reads_call_budget() is not torch.equal(default, small)


@pytest.mark.parametrize(
    "rule, version, expected",
    [
        (releases.rgb_conversion_composites, (5, 17, 0), False),
        (releases.rgb_conversion_composites, (5, 20, 2), False),
        (releases.rgb_conversion_composites, (5, 21, 0), True),
        (releases.loader_applies_exif, (5, 20, 2), False),
        (releases.loader_applies_exif, (5, 21, 0), True),
        (releases.video_cap_reads_call_budget, (5, 24, 0), False),
        (releases.video_cap_reads_call_budget, (5, 25, 0), True),
        (releases.torchvision_resizes_lanczos, (0, 26, 0), False),
        (releases.torchvision_resizes_lanczos, (0, 27, 0), True),
        (releases.torchvision_resizes_lanczos, (), False),  # not installed: transformers' own check says no
        (releases.pillow_exports_pixels, (11, 2, 1), False),
        (releases.pillow_exports_pixels, (12, 3, 0), False),
        (releases.pillow_exports_pixels, (13, 0, 0), True),
    ],
)
def test_rules_per_release(rule, version, expected):
    assert rule(version) is expected


@pytest.mark.parametrize(
    "triton, numpy, expected",
    [((3, 6, 0), (2, 3, 5), True), ((3, 6, 0), (2, 4, 0), False), ((3, 7, 0), (2, 4, 6), True)],
)
def test_triton_interpreter_rule(triton, numpy, expected):
    assert releases.triton_interpreter_runs(triton, numpy) is expected


@pytest.mark.parametrize(
    "text, expected",
    [("5.25.0", (5, 25, 0)), ("0.26.0+cu130", (0, 26, 0)), ("5.26.0.dev0", (5, 26, 0)), ("13.0", (13, 0))],
)
def test_parse_version(text, expected):
    assert releases.parse_version(text) == expected


def test_installed_versions_are_read():
    import transformers

    assert releases.installed_version("transformers") == releases.parse_version(transformers.__version__)
    assert releases.installed_version("no-such-distribution-vlfast") == ()
