"""Ray Data: ``VlfastPreprocessor`` in ``map_batches`` gives the stock processor's ``pixel_values`` for the same
files, and the example pipeline (files -> vlfast -> a tiny vision tower) gives the embeddings of the stock's
pixels; on a local Ray instance this module starts (2 CPUs, no dashboard, no network)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import ray
import torch
from transformers import Qwen2VLImageProcessor, Qwen2VLImageProcessorPil

from vlfast.errors import UnsupportedOptionError
from vlfast.integrations.ray_data import VlfastPreprocessor

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning"), pytest.mark.slow]

STOCK = {"torchvision": Qwen2VLImageProcessor, "pil": Qwen2VLImageProcessorPil}
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ray_pipeline.py"


def load_example():
    spec = importlib.util.spec_from_file_location("vlfast_ray_pipeline_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    ray.cloudpickle.register_pickle_by_value(module)  # Ray's workers cannot import it by name
    return module


@pytest.fixture(scope="module")
def example():
    return load_example()


@pytest.fixture(scope="module")
def photos(tmp_path_factory, example) -> tuple[Path, list[Path]]:
    folder = tmp_path_factory.mktemp("ray_photos")
    return folder, example.write_photos(folder)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def stock_of(paths, backend: str = "torchvision", **options):
    return STOCK[backend](**options)([str(path) for path in paths], return_tensors="pt")


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_the_callable_on_a_numpy_batch_of_bytes(photos, backend):
    _, paths = photos
    batch = {"bytes": np.array([path.read_bytes() for path in paths], dtype=object), "id": np.arange(len(paths))}
    out = VlfastPreprocessor("bytes", backend=backend, workers=2)(batch)
    assert "bytes" not in out and out["id"].tolist() == list(range(len(paths)))
    stock = stock_of(paths, backend)
    assert torch.equal(torch.from_numpy(np.concatenate(out["pixel_values"])), stock["pixel_values"])
    assert torch.equal(torch.from_numpy(np.concatenate(out["image_grid_thw"])), stock["image_grid_thw"])
    assert np.concatenate(out["num_image_tokens"]).tolist() == (stock["image_grid_thw"].prod(dim=1) // 4).tolist()
    kept = VlfastPreprocessor("bytes", keep_column=True, compact=True)(batch)
    assert "bytes" in kept and kept["pixel_values"][0].dtype == np.uint8


def test_the_callable_lets_pillow_keep_freed_image_memory_where_it_runs(photos, pillow_cache_off):
    """Set by the call (in the process that decodes), not by the constructor; conftest puts it back."""
    core = pillow_cache_off
    preprocessor = VlfastPreprocessor("bytes", workers=3)
    assert core.get_blocks_max() == 0
    _, paths = photos
    preprocessor({"bytes": np.array([path.read_bytes() for path in paths[:1]], dtype=object)})
    assert core.get_blocks_max() == 12


def test_options_ray_cannot_store_are_refused():
    with pytest.raises(UnsupportedOptionError, match="NumPy has no bfloat16: use compact=True"):
        VlfastPreprocessor("image", dtype=torch.bfloat16)


def test_map_batches_on_files_gives_the_stock_pixel_values(local_ray, photos):
    folder, paths = photos
    dataset = ray.data.read_binary_files(str(folder), include_paths=True, file_extensions=["jpg", "png"])
    rows = dataset.map_batches(
        VlfastPreprocessor,
        fn_constructor_kwargs={"column": "bytes", "max_pixels": 200_000},
        batch_format="numpy",
        batch_size=3,
        num_cpus=1,
        compute=ray.data.ActorPoolStrategy(size=1),
    ).take_all()
    assert sorted(Path(row["path"]).name for row in rows) == sorted(path.name for path in paths)
    by_name = {Path(row["path"]).name: row for row in rows}
    for path in paths:
        row, stock = by_name[path.name], stock_of([path], max_pixels=200_000)
        assert torch.equal(torch.from_numpy(row["pixel_values"]), stock["pixel_values"])
        assert torch.equal(torch.from_numpy(row["image_grid_thw"]), stock["image_grid_thw"])
        height, width = PIL.Image.open(path).size[::-1]
        assert row["original_sizes"].tolist() == [[height, width]]
        assert row["resized_sizes"].tolist() == (stock["image_grid_thw"][:, 1:] * 14).tolist()


def test_a_corrupt_file_fails_the_job_with_the_typed_error(local_ray, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    dataset = ray.data.read_binary_files(str(tmp_path)).map_batches(
        VlfastPreprocessor, fn_constructor_kwargs={"column": "bytes"}, batch_format="numpy", num_cpus=1,
        compute=ray.data.ActorPoolStrategy(size=1),
    )
    with pytest.raises(ray.exceptions.RayTaskError) as caught:
        dataset.take_all()
    # Ray Data re-raises a UserCodeException; the worker's traceback names the typed error and the source.
    assert "vlfast.errors.DecodeError: image data (15 bytes) has a corrupt image header" in str(caught.value)


@pytest.mark.parametrize("source", ["binary", "parquet", "images"])
def test_example_pipeline_embeds_the_stock_pixels(local_ray, example, photos, source):
    """read -> vlfast (compact) -> vision tower: each image's embedding is the tower's on the stock pixel_values
    (for ``images``, the stock given the arrays Ray decoded with Pillow)."""
    folder, paths = photos
    rows = example.pipeline(source, folder, paths, batch_size=3).take_all()
    assert sorted(Path(row["path"]).name for row in rows) == sorted(path.name for path in paths)
    tower = example.build_vision_tower()
    inputs = [np.asarray(PIL.Image.open(path)) for path in paths] if source == "images" else [str(p) for p in paths]
    stock = Qwen2VLImageProcessor(max_pixels=example.MAX_PIXELS)(inputs, return_tensors="pt")
    expected = example.image_embeddings(tower, stock["pixel_values"], stock["image_grid_thw"])
    by_name = {Path(row["path"]).name: row for row in rows}
    for path, embedding, grid in zip(paths, expected, stock["image_grid_thw"], strict=True):
        row = by_name[path.name]
        assert int(row["num_image_tokens"]) == int(grid.prod()) // 4
        torch.testing.assert_close(torch.from_numpy(row["embedding"]), embedding, rtol=1e-4, atol=1e-6)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_callable_on_a_gpu_actor(photos):
    """What a GPU actor (``num_gpus=1``, ``device="cuda"``) returns: the Triton kernels' output, back on the host
    for Ray, equal to the stock processor's on the same files."""
    _, paths = photos
    batch = {"bytes": np.array([path.read_bytes() for path in paths], dtype=object)}
    out = VlfastPreprocessor("bytes", device="cuda", workers=2)(batch)
    stock = stock_of(paths)
    assert torch.equal(torch.from_numpy(np.concatenate(out["pixel_values"])), stock["pixel_values"])
