"""The opt-in GPU JPEG decode: refused without CUDA, close to (not equal to) Pillow's decode with it."""

import io

import numpy as np
import PIL.Image
import pytest
import skimage.data
import torch

import vlfast
from vlfast import DeviceError

#: Bound on nvJPEG vs libjpeg-turbo differences: IDCT and chroma upsampling differ, by up to 36
#: levels at sharp edges (H200, torchvision 0.26: mean 0.68, 27% of the values differ).
MAX_LEVEL_DIFFERENCE = 48
MAX_MEAN_DIFFERENCE = 1.0


def _jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(skimage.data.astronaut()).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:3", "cpu"])
def test_gpu_decode_without_a_gpu_is_a_device_error(device):
    with pytest.raises(DeviceError, match="gpu_decode needs an available CUDA device"):
        vlfast.load_image(_jpeg_bytes(), gpu_decode=device)


def test_the_default_stays_the_exact_cpu_decode():
    pixels = vlfast.load_image(_jpeg_bytes())
    assert pixels.device.type == "cpu"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_decode_is_close_to_pillow():
    data = _jpeg_bytes()
    on_gpu = vlfast.load_image(data, gpu_decode="cuda")
    assert on_gpu.device.type == "cuda" and on_gpu.dtype == torch.uint8
    reference = torch.from_numpy(np.array(PIL.Image.open(io.BytesIO(data)).convert("RGB"))).permute(2, 0, 1)
    difference = (on_gpu.cpu().int() - reference.int()).abs()
    print(
        f"nvJPEG vs Pillow: max {difference.max().item()}, mean {difference.float().mean().item():.4f}, "
        f"differing {(difference > 0).float().mean().item():.2%}"
    )
    assert difference.max().item() <= MAX_LEVEL_DIFFERENCE
    assert difference.float().mean().item() <= MAX_MEAN_DIFFERENCE
