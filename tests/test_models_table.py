"""The model-family table (``vlfast.hf.families``) against the registries the code runs on, the installed
transformers, the README's Models table and ``vlfast info``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import transformers

pytest.importorskip("torchvision", reason="the stock video processors need torchvision")

from vlfast import cli  # noqa: E402
from vlfast.hf.families import MODEL_FAMILIES, models_table  # noqa: E402
from vlfast.hf.image_processor import IMAGE_PROCESSORS  # noqa: E402
from vlfast.hf.patching import SUPPORTED_PROCESSORS  # noqa: E402
from vlfast.hf.video_processor import VIDEO_PROCESSORS  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"


def _all(attribute: str) -> set[str]:
    return {name for family in MODEL_FAMILIES for name in getattr(family, attribute)}


def test_table_names_exactly_the_registered_classes():
    assert _all("image_processors") == set(IMAGE_PROCESSORS)
    assert _all("video_processors") == set(VIDEO_PROCESSORS)
    assert _all("processors") == set(SUPPORTED_PROCESSORS)


@pytest.mark.parametrize("family", MODEL_FAMILIES, ids=lambda family: family.name)
def test_each_family_is_patched_with_its_classes(family):
    for processor in family.processors:
        swaps = SUPPORTED_PROCESSORS[processor]
        images = set(swaps["image_processor"].accepted)
        videos = set(swaps["video_processor"].accepted)
        # Each processor holds one of its family's image processors (GLM-4.1V's or GLM-4.6V's) and one video one.
        assert images & set(family.image_processors) and images <= set(family.image_processors) | {"ImageProcessor"}
        assert videos & set(family.video_processors) and videos <= set(family.video_processors) | {"VideoProcessor"}


def test_every_stock_class_exists_in_the_installed_transformers():
    for name in _all("image_processors") | _all("video_processors") | _all("processors"):
        assert hasattr(transformers, name), name


def test_readme_has_the_table():
    assert models_table() in README.read_text()


def test_info_lists_the_families(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for family in MODEL_FAMILIES:
        assert f"  {family.name:<24}{family.status}" in out
    assert cli.main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"] == [family.as_dict() for family in MODEL_FAMILIES]
