"""A Ray Data pipeline: image files -> vlfast (CPU actors) -> a tiny random Qwen2.5-VL vision tower computing one
embedding per image, on a local Ray instance (no downloads).

    python examples/ray_pipeline.py [--source binary|images|parquet] [--backend torchvision|pil]

``binary`` reads the files' bytes (``read_binary_files``: vlfast decodes them as the stock processor does),
``images`` lets Ray decode them (``read_images``), ``parquet`` reads a binary column of a Parquet file.
Between the two stages the pixels travel as compact uint8 patches (``compact=True``), 8x fewer bytes than
float32 in Ray's object store; the consumer expands them exactly (:func:`vlfast.expand_patches`). On a cluster,
point the reader at shared storage, and give the vlfast stage ``num_gpus=1`` and ``device="cuda"`` for GPU
actors.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import PIL.Image
import ray
import skimage.data
import torch
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

import vlfast
from vlfast.integrations.ray_data import VlfastPreprocessor
from vlfast.integrations.rows import collate

#: Images get at most this many pixels (a tiny tower on CPUs): 256 tokens.
MAX_PIXELS = 256 * 28 * 28
#: CPUs of the two actors on the 2-CPU local instance, which leave one to Ray's read tasks (a stage that cannot
#: get its CPUs waits for them: two 1-CPU actors would leave the readers none). On a cluster, give vlfast more.
VLFAST_CPUS, CONSUMER_CPUS = 0.5, 0.5
#: The column each source leaves the image in.
COLUMNS = {"binary": "bytes", "images": "image", "parquet": "bytes"}


def write_photos(folder: Path) -> list[Path]:
    """Scikit-image's photos as JPEG and PNG files."""
    names = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "camera")
    paths = []
    for index, name in enumerate(names):
        path = folder / f"{name}.{'jpg' if index % 2 else 'png'}"
        PIL.Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(path)
        paths.append(path)
    return paths


def build_vision_tower(seed: int = 0) -> Qwen2_5_VisionTransformerPretrainedModel:
    """A 2-block Qwen2.5-VL vision tower with random weights from ``seed`` (float32, eval mode)."""
    config = Qwen2_5_VLVisionConfig(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        out_hidden_size=64,
        fullatt_block_indexes=[1],
    )
    torch.manual_seed(seed)
    return Qwen2_5_VisionTransformerPretrainedModel._from_config(config).eval()


def image_embeddings(
    tower: Qwen2_5_VisionTransformerPretrainedModel, pixel_values: torch.Tensor, grid_thw: torch.Tensor
) -> list[torch.Tensor]:
    """The mean of each image's merged vision tokens: ``(64,)`` per image."""
    with torch.no_grad():
        output = tower(pixel_values, grid_thw=grid_thw)
    tokens = getattr(output, "pooler_output", output)  # transformers >= 5.2x returns a model output
    counts = (grid_thw.prod(dim=1) // tower.spatial_merge_size**2).tolist()
    return [part.mean(dim=0) for part in torch.split(tokens, counts)]


class VisionEmbedder:
    """The consumer: compact patches of a batch -> the stock pixel_values -> one embedding per image."""

    def __init__(self, backend: str = "torchvision") -> None:
        self.tower = build_vision_tower()
        self.processor = vlfast.ImageProcessor(backend=backend)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = ("pixel_values", "image_grid_thw")
        rows = [dict(zip(names, values, strict=True)) for values in zip(*(batch[n] for n in names), strict=True)]
        model_input = collate(rows)
        grid = model_input["image_grid_thw"]
        pixel_values = vlfast.expand_patches(model_input["pixel_values"], grid, self.processor)
        embeddings = image_embeddings(self.tower, pixel_values, grid)
        return {
            "path": batch["path"],
            "num_image_tokens": np.array([int(tokens.sum()) for tokens in batch["num_image_tokens"]]),
            "embedding": torch.stack(embeddings).numpy(),
        }


def read(source: str, folder: Path, paths: list[Path]) -> ray.data.Dataset:
    """The files as a dataset: their bytes, Ray's decoded arrays, or a binary column of a Parquet file."""
    if source == "binary":
        return ray.data.read_binary_files(str(folder), include_paths=True, file_extensions=["jpg", "png"])
    if source == "images":
        return ray.data.read_images(str(folder), include_paths=True, file_extensions=["jpg", "png"])
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"path": [str(path) for path in paths], "bytes": [path.read_bytes() for path in paths]})
    pq.write_table(table, folder / "images.parquet")
    return ray.data.read_parquet(str(folder / "images.parquet"))


def pipeline(
    source: str, folder: Path, paths: list[Path], *, backend: str = "torchvision", batch_size: int = 4
) -> ray.data.Dataset:
    """read -> vlfast (compact uint8 patches, CPU actors) -> vision tower embeddings."""
    processed = read(source, folder, paths).map_batches(
        VlfastPreprocessor,
        fn_constructor_kwargs={
            "column": COLUMNS[source],
            "backend": backend,
            "compact": True,
            "max_pixels": MAX_PIXELS,
        },
        batch_format="numpy",
        batch_size=batch_size,
        num_cpus=VLFAST_CPUS,
        compute=ray.data.ActorPoolStrategy(size=1),
    )
    return processed.map_batches(
        VisionEmbedder,
        fn_constructor_kwargs={"backend": backend},
        batch_format="numpy",
        batch_size=batch_size,
        num_cpus=CONSUMER_CPUS,
        compute=ray.data.ActorPoolStrategy(size=1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="binary", choices=sorted(COLUMNS))
    parser.add_argument("--backend", default="torchvision", choices=["torchvision", "pil"])
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as temporary:
            folder = Path(temporary)
            paths = write_photos(folder)
            for row in pipeline(args.source, folder, paths, backend=args.backend).take_all():
                print(Path(row["path"]).name, row["num_image_tokens"], "tokens, embedding", row["embedding"][:3])
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
