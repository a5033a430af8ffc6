"""Hugging Face ``datasets``: the transform (on access) and the stored map give the stock processor's
``pixel_values`` for the same images, on a small in-memory dataset."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import PIL.ImageOps
import pytest
import skimage.data
import torch
from encoded_images import encoded, exif
from transformers import Qwen2VLImageProcessor, Qwen2VLImageProcessorPil

import vlfast
from vlfast.errors import DecodeError, UnsupportedOptionError
from vlfast.integrations import hf_datasets
from vlfast.integrations.rows import OUTPUT_COLUMNS, collate

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

BACKENDS = ["torchvision", "pil"]
STOCK = {"torchvision": Qwen2VLImageProcessor, "pil": Qwen2VLImageProcessorPil}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path]:
    cat = PIL.Image.fromarray(skimage.data.chelsea())
    astronaut = PIL.Image.fromarray(skimage.data.astronaut()).resize((180, 140))
    rotated = exif(6)
    contents = {
        "cat.jpg": encoded(cat, "JPEG", quality=85),
        "astronaut.png": encoded(astronaut, "PNG"),
        "rotated.jpg": encoded(astronaut, "JPEG", exif=rotated),
        "coffee.png": encoded(PIL.Image.fromarray(skimage.data.coffee()).resize((90, 60)).convert("RGBA"), "PNG"),
    }
    folder = tmp_path_factory.mktemp("dataset")
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return [folder / name for name in contents]


def image_dataset(files: list[Path]) -> datasets.Dataset:
    """An ``Image`` column holding the files' bytes (as a dataset from the Hub does), and a label column."""
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    images = [{"bytes": path.read_bytes(), "path": None} for path in files]
    return datasets.Dataset.from_dict({"image": images, "label": list(range(len(files)))}, features=features)


@pytest.mark.parametrize("backend", BACKENDS)
def test_transform_on_encoded_images_equals_the_stock_on_the_files(files, backend):
    dataset = hf_datasets.undecoded(image_dataset(files))
    dataset.set_transform(hf_datasets.image_transform("image", backend=backend, workers=2))
    batch = dataset[0 : len(files)]
    assert set(batch) == {"label", *OUTPUT_COLUMNS}
    assert batch["label"] == list(range(len(files)))
    stock = STOCK[backend]()([str(path) for path in files], return_tensors="pt")
    assert torch.equal(torch.cat(batch["pixel_values"]), stock["pixel_values"])
    assert torch.equal(torch.cat(batch["image_grid_thw"]), stock["image_grid_thw"])
    grids = stock["image_grid_thw"]
    assert torch.equal(torch.cat(batch["num_image_tokens"]), grids.prod(dim=1) // 4)
    assert [row.shape[0] for row in batch["pixel_values"]] == grids.prod(dim=1).tolist()
    oriented = backend == "pil" or vlfast.releases.loader_applies_exif()  # the stock loader's EXIF rule
    opened = [PIL.Image.open(path) for path in files]
    sizes = [(PIL.ImageOps.exif_transpose(image) if oriented else image).size[::-1] for image in opened]
    assert torch.cat(batch["original_sizes"]).tolist() == [list(size) for size in sizes]
    assert torch.equal(torch.cat(batch["resized_sizes"]), grids[:, 1:] * 14)
    single = dataset[2]  # one example
    assert torch.equal(single["pixel_values"], STOCK[backend]()(str(files[2]), return_tensors="pt")["pixel_values"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_transform_on_decoded_pil_images_equals_the_stock_on_them(files, backend):
    dataset = image_dataset(files)
    pictures = dataset[:]["image"]  # what datasets decoded: PIL images
    dataset.set_transform(hf_datasets.image_transform("image", backend=backend))
    stock = STOCK[backend]()(pictures, return_tensors="pt")
    assert torch.equal(collate([dataset[i] for i in range(len(files))])["pixel_values"], stock["pixel_values"])


def test_rows_with_several_images(files):
    rows = [[str(files[0]), str(files[1])], [str(files[2])], [str(files[3]), str(files[1]), str(files[0])]]
    dataset = datasets.Dataset.from_dict({"images": rows})
    dataset.set_transform(hf_datasets.image_transform("images"))
    batch = dataset[0:3]
    for row, paths in zip(range(3), rows, strict=True):
        stock = Qwen2VLImageProcessor()(paths, return_tensors="pt")
        assert torch.equal(batch["pixel_values"][row], stock["pixel_values"])
        assert torch.equal(batch["image_grid_thw"][row], stock["image_grid_thw"])
        assert batch["num_image_tokens"][row].shape == (len(paths),)


@pytest.mark.parametrize("compact", [True, False])
@pytest.mark.parametrize("formatted", [None, "transform", "torch"])
def test_stored_map_gives_the_stock_pixel_values(files, compact, formatted):
    """Also from a dataset that has a transform set (the README's order) or a format: the column is read as stored."""
    dataset = hf_datasets.undecoded(image_dataset(files))
    if formatted == "transform":
        dataset.set_transform(hf_datasets.image_transform("image"))
    elif formatted == "torch":
        dataset = dataset.with_format("torch")
    stored = hf_datasets.preprocess_dataset(dataset, "image", batch_size=3, compact=compact)
    assert stored.format["type"] == ("torch" if formatted == "torch" else None)  # a format is kept, a transform not
    assert "image" not in stored.column_names and "label" in stored.column_names
    rows = stored.with_format("numpy")  # widens uint8 to int64; collate gives uint8 back
    model_input = collate([rows[i] for i in range(len(files))])
    stock = Qwen2VLImageProcessor()([str(path) for path in files], return_tensors="pt")
    pixel_values = model_input["pixel_values"]
    if compact:
        assert pixel_values.dtype == torch.uint8
        assert pixel_values.numel() * 8 == stock["pixel_values"].numel() * 4  # 8x fewer bytes than float32
        pixel_values = vlfast.expand_patches(pixel_values, model_input["image_grid_thw"], vlfast.ImageProcessor())
    assert torch.equal(pixel_values, stock["pixel_values"])
    assert torch.equal(model_input["image_grid_thw"], stock["image_grid_thw"])


def test_stored_map_reads_images_as_stored_under_a_numpy_format():
    """A numpy format would hand a palette image over as its indices: the images are read as stored, and the
    result gets the format back; an IterableDataset is refused with a pointer to image_transform."""
    palette = [PIL.Image.fromarray(skimage.data.astronaut()[::4, ::4]).convert("P") for _ in range(2)]
    features = datasets.Features({"image": datasets.Image()})
    dataset = datasets.Dataset.from_dict({"image": palette}, features=features).with_format("numpy")
    stored = hf_datasets.preprocess_dataset(dataset, "image", backend="pil", compact=False)
    assert stored.format["type"] == "numpy"
    stock = Qwen2VLImageProcessorPil()(palette, return_tensors="pt")
    assert torch.equal(collate([stored[i] for i in range(2)])["pixel_values"], stock["pixel_values"])
    with pytest.raises(UnsupportedOptionError, match="for an IterableDataset, map image_transform"):
        hf_datasets.preprocess_dataset(dataset.to_iterable_dataset(), "image")


def test_stored_map_of_a_dataset_dict_goes_split_by_split(files):
    dataset = hf_datasets.undecoded(image_dataset(files))
    dataset.set_transform(hf_datasets.image_transform("image"))
    splits = datasets.DatasetDict({"train": dataset, "test": hf_datasets.undecoded(image_dataset(files[:2]))})
    stored = hf_datasets.preprocess_dataset(splits, "image", compact=True)
    assert {name: len(split) for name, split in stored.items()} == {"train": len(files), "test": 2}
    assert torch.equal(
        torch.as_tensor(stored["test"]["pixel_values"][1], dtype=torch.uint8),
        torch.as_tensor(stored["train"]["pixel_values"][1], dtype=torch.uint8),
    )


def test_a_corrupt_image_names_its_position(files):
    data = files[0].read_bytes()
    features = datasets.Features({"image": datasets.Image(decode=False)})
    images = [{"bytes": data, "path": None}, {"bytes": data[:2000], "path": None}]
    dataset = datasets.Dataset.from_dict({"image": images}, features=features)
    dataset.set_transform(hf_datasets.image_transform("image"))
    with pytest.raises(DecodeError, match=r"^image 1 of 2: image data \(2000 bytes\) is a corrupt or truncated"):
        dataset[0:2]
    assert np.asarray(dataset[0:1]["pixel_values"][0]).shape[1] == 1176


@pytest.mark.slow
def test_the_example_runs():
    example = Path(__file__).resolve().parents[1] / "examples" / "hf_datasets.py"
    result = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "expanded: (2000, 1176) torch.float32" in result.stdout
