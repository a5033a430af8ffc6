"""Images the per-family exactness tests share: real photos (scikit-image) and synthetic worst cases."""

from __future__ import annotations

import numpy as np
from PIL import Image
from skimage import data


def real_photos() -> dict:
    """Photos in RGB, grayscale (L) and RGBA."""
    return {
        "astronaut": data.astronaut(),
        "chelsea": data.chelsea(),
        "coffee": data.coffee(),
        "camera-L": Image.fromarray(data.camera()),
        "logo-RGBA": Image.fromarray(data.logo()),
    }


def synthetic_images() -> dict:
    """Noise, hard edges (filter overshoot), gradients and a constant image."""
    rng = np.random.default_rng(3)
    yy, xx = np.indices((181, 263))
    board = ((yy // 4 + xx // 4) % 2 * 255).astype(np.uint8)
    return {
        "noise": rng.integers(0, 256, (211, 307, 3), dtype=np.uint8),
        "edges": np.stack([board, 255 - board, board], axis=-1),
        "gradient": np.stack([yy % 256, xx % 256, (yy + xx) % 256], axis=-1).astype(np.uint8),
        "constant-255": np.full((64, 300, 3), 255, np.uint8),
    }
