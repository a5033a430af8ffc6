"""The model families vlfast serves: the one table the README's Models table and ``vlfast info`` print.

Plain data (no transformers import); ``tests/test_models_table.py`` holds it to the registries the code runs
on (``IMAGE_PROCESSORS``, ``VIDEO_PROCESSORS``, ``SUPPORTED_PROCESSORS``) and to the README.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BACKENDS", "MODEL_FAMILIES", "ModelFamily", "models_table"]

#: The stock backends reproduced: both image backends; the stock video processors have torchvision's only.
BACKENDS = "images: torchvision, pil; videos: torchvision"


@dataclass(frozen=True)
class ModelFamily:
    """One family: the stock classes vlfast reproduces for it and what it serves."""

    #: Models, as the README names them.
    name: str
    #: Stock image processor classes reproduced (both backends: torchvision class and its ``Pil`` twin).
    image_processors: tuple[str, ...]
    #: Stock video processor classes reproduced.
    video_processors: tuple[str, ...]
    #: Stock processor classes ``patch_processor`` patches.
    processors: tuple[str, ...]
    #: The ``smart_resize`` it follows (``vlfast.sizing``).
    size_rule: str
    #: One line for ``vlfast info``.
    status: str

    @property
    def reproduces(self) -> str:
        """The stock classes, one string."""
        classes = ", ".join(f"`{name}`" for name in (*self.image_processors, *self.video_processors))
        patched = " / ".join(f"`{name}`" for name in self.processors)
        return f"{classes}; `patch_processor` on {patched}"

    def as_dict(self) -> dict[str, str]:
        """What ``vlfast info --json`` prints."""
        return {"family": self.name, "reproduces": self.reproduces.replace("`", ""), "status": self.status}


MODEL_FAMILIES: tuple[ModelFamily, ...] = (
    ModelFamily(
        name="Qwen2-VL, Qwen2.5-VL",
        image_processors=("Qwen2VLImageProcessor", "Qwen2VLImageProcessorPil"),
        video_processors=("Qwen2VLVideoProcessor",),
        processors=("Qwen2VLProcessor", "Qwen2_5_VLProcessor"),
        size_rule="smart_resize",
        status="supported: images and videos",
    ),
    ModelFamily(
        name="Qwen3-VL, Qwen3.5",
        image_processors=("Qwen2VLImageProcessor", "Qwen2VLImageProcessorPil"),
        video_processors=("Qwen3VLVideoProcessor",),
        processors=("Qwen3VLProcessor",),
        size_rule="smart_resize (images), smart_resize_frames (videos)",
        status="supported: images and videos",
    ),
    ModelFamily(
        name="GLM-4.1V, GLM-4.6V",
        image_processors=(
            "Glm4vImageProcessor",
            "Glm4vImageProcessorPil",
            "Glm46VImageProcessor",
            "Glm46VImageProcessorPil",
        ),
        video_processors=("Glm4vVideoProcessor", "Glm46VVideoProcessor"),
        processors=("Glm4vProcessor", "Glm46VProcessor"),
        size_rule="smart_resize_frames",
        status="supported: images and videos",
    ),
)


def models_table() -> str:
    """The README's Models table (Markdown)."""
    rows = [
        "| model family | stock classes reproduced | backends | images | videos | size rule | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for family in MODEL_FAMILIES:
        images = "yes" if family.image_processors else "no"
        videos = "yes" if family.video_processors else "no"
        rows.append(
            f"| {family.name} | {family.reproduces} | {BACKENDS} | {images} | {videos} | {family.size_rule} "
            f"| {family.status} |"
        )
    return "\n".join(rows)
