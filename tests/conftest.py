"""Test-session setup.

- Without a CUDA device, Triton kernels run in triton's CPU interpreter: ``TRITON_INTERPRET``
  must be set before anything imports triton, so it is set here, first.
- In CI (``CI`` set), the C++ extension must import: the exactness suites skip without it,
  and a broken build must fail the run, not skip most of it.
- triton before 3.7 runs its interpreter with ``int()`` of 1-element arrays, an error from numpy 2.4 on:
  with those two, the run stops at once with that explanation instead of failing test by test.
- Tests marked ``slow`` (benchmark and dry-run scripts, leak and fuzz loops, compile) run in CI (``CI`` set)
  or with ``--slow``; a local run deselects them and says so in its header, keeping it near 4 minutes.
- transformers 5.17 changes class-level settings in place (``Qwen2VLImageProcessor(min_pixels=...)``
  writes into the class's ``size``; ``_get_num_multimodal_tokens`` into the processor's kwargs
  ``_defaults``): every test starts from the class settings as imported, so no test depends on order.
"""

import copy
import os
from collections.abc import Iterator

import PIL.Image
import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

if os.environ.get("CI"):
    import vlfast._C  # noqa: F401

from transformers.models.qwen2_5_vl import processing_qwen2_5_vl  # noqa: E402
from transformers.models.qwen2_vl import processing_qwen2_vl  # noqa: E402
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil  # noqa: E402
from transformers.utils import is_torchvision_available  # noqa: E402

from vlfast.releases import installed_version, triton_interpreter_runs  # noqa: E402


def _mutable_class_settings() -> list[tuple[type, str]]:
    settings = [(Qwen2VLImageProcessorPil, "size")]
    if is_torchvision_available():
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
        from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

        settings += [(Qwen2VLImageProcessor, "size"), (Qwen2VLVideoProcessor, "size")]
    for module, name in (
        (processing_qwen2_vl, "Qwen2VLProcessorKwargs"),
        (processing_qwen2_5_vl, "Qwen2_5_VLProcessorKwargs"),
    ):
        kwargs_class = vars(module).get(name)  # transformers 5.23 dropped these classes
        if kwargs_class is not None:
            settings.append((kwargs_class, "_defaults"))
    return settings


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", help="also run the tests marked slow (CI runs them all)")


def _runs_slow_tests(config: pytest.Config) -> bool:
    return bool(os.environ.get("CI")) or config.getoption("--slow")


def pytest_report_header(config: pytest.Config) -> str:
    if _runs_slow_tests(config):
        return "slow tests: included"
    return "slow tests: deselected (pass --slow, or set CI=1, to run them too)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _runs_slow_tests(config):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("TRITON_INTERPRET") == "1" and not triton_interpreter_runs():
        triton, numpy = (".".join(map(str, installed_version(name))) for name in ("triton", "numpy"))
        raise pytest.UsageError(
            f"triton {triton}'s CPU interpreter fails with numpy {numpy}: install numpy<2.4 (or triton>=3.7) "
            "to run the Triton tests without a GPU"
        )


_AS_IMPORTED = {(owner, name): copy.deepcopy(getattr(owner, name)) for owner, name in _mutable_class_settings()}


@pytest.fixture(autouse=True)
def stock_class_settings_as_imported() -> None:
    """Reset the stock classes' mutable class-level settings before each test (after its module fixtures)."""
    for (owner, name), value in _AS_IMPORTED.items():
        setattr(owner, name, copy.deepcopy(value))


@pytest.fixture(autouse=True)
def pillow_block_cache_as_found() -> Iterator[None]:
    """Put Pillow's process-wide block cache back after each test (the shard writer and the Ray callable turn
    it on: vlfast.io.cache_pillow_blocks)."""
    core = PIL.Image.core
    before = core.get_blocks_max()
    yield
    core.set_blocks_max(before)


@pytest.fixture
def pillow_cache_off(monkeypatch: pytest.MonkeyPatch) -> object:
    """Pillow's block cache off and ``PILLOW_BLOCKS_MAX`` unset (no choice made); gives ``PIL.Image.core``."""
    monkeypatch.delenv("PILLOW_BLOCKS_MAX", raising=False)
    PIL.Image.core.set_blocks_max(0)
    return PIL.Image.core


@pytest.fixture
def pixels_views(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each array ``vlfast.io`` viewed (``pixels_view``) was writable, in order: decoded pixels viewed
    rather than copied show up here."""
    from vlfast import io as vlfast_io

    seen: list[bool] = []
    view = vlfast_io.pixels_view
    monkeypatch.setattr(vlfast_io, "pixels_view", lambda array: seen.append(array.flags.writeable) or view(array))
    return seen
