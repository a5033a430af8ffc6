"""vlfast in a Hugging Face ``datasets`` pipeline: on access (``set_transform``) and stored (``map``), on a small
in-memory dataset of encoded photos (no downloads).

    python examples/hf_datasets.py [--backend torchvision|pil]

With a dataset from the Hub, the same calls apply to its ``Image`` column.
"""

from __future__ import annotations

import argparse
import io

import datasets
import PIL.Image
import skimage.data
import torch
from torch.utils.data import DataLoader

import vlfast
from vlfast.integrations import hf_datasets
from vlfast.integrations.rows import collate


def photo_dataset() -> datasets.Dataset:
    """Six JPEG / PNG photos with a caption each, as a dataset with an ``Image`` column stores them."""
    rows = []
    for name in ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry"):
        buffer = io.BytesIO()
        PIL.Image.fromarray(getattr(skimage.data, name)()).save(buffer, format="JPEG" if len(rows) % 2 else "PNG")
        rows.append({"image": {"bytes": buffer.getvalue(), "path": None}, "caption": name})
    features = datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string")})
    return datasets.Dataset.from_list(rows, features=features)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torchvision", choices=["torchvision", "pil"])
    args = parser.parse_args()

    # 1. On access: vlfast decodes the encoded bytes (the stock decoder of the backend) and preprocesses each batch.
    dataset = hf_datasets.undecoded(photo_dataset(), "image")
    dataset.set_transform(hf_datasets.image_transform("image", backend=args.backend, max_pixels=512 * 28 * 28))
    loader = DataLoader(dataset, batch_size=4, collate_fn=collate)
    for batch in loader:
        print("batch:", tuple(batch["pixel_values"].shape), batch["image_grid_thw"].tolist())

    # 2. Stored: compact uint8 patches in Arrow (8x fewer bytes than float32), expanded exactly at training time.
    stored = hf_datasets.preprocess_dataset(
        hf_datasets.undecoded(photo_dataset(), "image"), "image", backend=args.backend, max_pixels=512 * 28 * 28
    )
    print(stored)
    rows = stored.with_format("numpy")
    model_input = collate([rows[i] for i in range(2)])
    processor = vlfast.ImageProcessor(backend=args.backend)
    pixel_values = vlfast.expand_patches(model_input["pixel_values"], model_input["image_grid_thw"], processor)
    print("expanded:", tuple(pixel_values.shape), pixel_values.dtype, "tokens:", rows[0:2]["num_image_tokens"])
    assert pixel_values.dtype == torch.float32


if __name__ == "__main__":
    main()
