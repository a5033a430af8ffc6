"""Encoded sources in a batch: ``vlfast.preprocess`` (and the drop-in processor) decode them on a bounded thread
pool, each as the stock processor of the backend decodes it, and give the stock's ``pixel_values``."""

from __future__ import annotations

import base64
import importlib
import threading
import time
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import skimage.data
import torch
from encoded_images import encoded, exif
from transformers import Qwen2VLImageProcessor, Qwen2VLImageProcessorPil

import vlfast
import vlfast.loader
from vlfast.errors import DecodeError, ImageSourceError, UnsupportedOptionError
from vlfast.loader import SourceStream, default_workers, load_images
from vlfast.processor import ImageProcessor

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

BACKENDS = ["torchvision", "pil"]
STOCK = {"torchvision": Qwen2VLImageProcessor, "pil": Qwen2VLImageProcessorPil}
#: The module (``vlfast.preprocess`` is also the function's name in the package).
PREPROCESS = importlib.import_module("vlfast.preprocess")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path]:
    """Photo files whose decoding differs between the stock loaders: JPEG, PNG (RGBA too), WebP, EXIF-rotated JPEG."""
    cat = PIL.Image.fromarray(skimage.data.chelsea())
    astronaut = PIL.Image.fromarray(skimage.data.astronaut()).resize((200, 260))
    rotated = exif(6)
    folder = tmp_path_factory.mktemp("sources")
    contents = {
        "cat.jpg": encoded(cat, "JPEG", quality=90),
        "astronaut.png": encoded(astronaut, "PNG"),
        "rotated.jpg": encoded(astronaut, "JPEG", exif=rotated),
        "rgba.png": encoded(cat.resize((150, 100)).convert("RGBA"), "PNG"),
        "cat.webp": encoded(cat.resize((160, 120)), "WEBP"),
        "small.jpg": encoded(astronaut.resize((64, 40)), "JPEG"),
    }
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return [folder / name for name in contents]


@pytest.mark.parametrize("backend", BACKENDS)
def test_paths_give_the_stock_pixel_values_with_any_worker_count(files, backend):
    paths = [str(path) for path in files]
    stock = STOCK[backend]()(paths, return_tensors="pt")
    results = {workers: vlfast.preprocess(paths, backend=backend, workers=workers) for workers in (1, 2, 4)}
    for result in results.values():
        assert torch.equal(result.pixel_values, stock["pixel_values"])
        assert torch.equal(result.image_grid_thw, stock["image_grid_thw"])
    assert results[1].original_sizes == results[4].original_sizes


@pytest.mark.parametrize("backend", BACKENDS)
def test_bytes_base64_data_uris_and_path_objects_mixed_with_arrays(files, backend):
    """Every kind of source in one batch, with an in-memory image among them: the stock's result for the same
    files (bytes and ``Path`` have no stock form; they hold the same file bytes)."""
    data = [path.read_bytes() for path in files[:4]]
    as_base64 = base64.b64encode(data[1]).decode()
    as_uri = vlfast.encode_image(data[2])
    array = skimage.data.coffee()[:123, :321]
    batch = [data[0], as_base64, as_uri, files[3], array]
    stock = STOCK[backend]()([*map(str, files[:4]), array], return_tensors="pt")
    ours = vlfast.preprocess(batch, backend=backend, workers=3)
    assert torch.equal(ours.pixel_values, stock["pixel_values"])
    assert torch.equal(ours.image_grid_thw, stock["image_grid_thw"])
    single = vlfast.preprocess(data[0], backend=backend)  # one source, not in a list
    assert torch.equal(single.pixel_values, STOCK[backend]()(str(files[0]), return_tensors="pt")["pixel_values"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_drop_in_processor_decodes_a_batch_of_strings_as_the_stock(files, backend):
    paths = [[str(files[0]), str(files[1])], [str(files[2])], [str(files[4])]]  # nested, as a processor takes them
    stock = STOCK[backend]()(paths, return_tensors="pt")
    ours = ImageProcessor(backend=backend)(paths, return_tensors="pt")
    assert torch.equal(ours["pixel_values"], stock["pixel_values"])
    assert torch.equal(ours["image_grid_thw"], stock["image_grid_thw"])


def _record_decodes(monkeypatch) -> dict:
    """Patch the loader so that each decode takes 50 ms more and records its source, its thread and the peak of
    concurrent decodes."""
    lock = threading.Lock()
    state = {"running": 0, "peak": 0, "started": [], "threads": set()}
    real = vlfast.loader.load_image

    def slow_load(source, **kwargs):
        with lock:
            state["running"] += 1
            state["peak"] = max(state["peak"], state["running"])
            state["started"].append(source)
            state["threads"].add(threading.current_thread().name)
        time.sleep(0.05)  # decoders release the GIL; so does sleep
        try:
            return real(source, **kwargs)
        finally:
            with lock:
                state["running"] -= 1

    monkeypatch.setattr(vlfast.loader, "load_image", slow_load)
    return state


def test_decodes_run_on_a_bounded_pool(files, monkeypatch):
    """``workers`` threads at most decode at once, and more than one when there is more than one source."""
    state = _record_decodes(monkeypatch)
    sources = [str(path) for path in files] * 2
    load_images(sources, workers=3)
    assert state["peak"] == 3
    assert len(state["threads"]) == 3 and all(name.startswith("vlfast-decode") for name in state["threads"])
    state.update(peak=0, threads=set())
    load_images(sources, workers=1)
    assert state["peak"] == 1 and state["threads"] == {threading.current_thread().name}


def _record_kernels_beside_decodes(monkeypatch) -> dict[str, int]:
    """Counts of kernel runs (``run_clips``) and of those that started while a decode (slowed by 20 ms) ran."""
    lock = threading.Lock()
    running = {"decodes": 0, "overlaps": 0, "kernels": 0}
    real_load, real_run = vlfast.loader.load_image, PREPROCESS.run_clips

    def load(source, **kwargs):
        with lock:
            running["decodes"] += 1
        time.sleep(0.02)
        try:
            return real_load(source, **kwargs)
        finally:
            with lock:
                running["decodes"] -= 1

    def run(*args, **kwargs):
        with lock:
            running["kernels"] += 1
            running["overlaps"] += running["decodes"] > 0
        return real_run(*args, **kwargs)

    monkeypatch.setattr(vlfast.loader, "load_image", load)
    monkeypatch.setattr(PREPROCESS, "run_clips", run)
    return running


def test_the_cpu_kernel_never_runs_beside_decodes(files, monkeypatch):
    """No oversubscription: the kernel starts when no decode is running, in one call and in a stream of chunks."""
    running = _record_kernels_beside_decodes(monkeypatch)
    paths = [str(path) for path in files] * 2
    vlfast.preprocess(paths, workers=4, engine="cpp")
    chunks = list(vlfast.preprocess_in_chunks(iter(paths), max_chunk_bytes=4 * 2**20, workers=4, engine="cpp"))
    assert len(chunks) > 2 and running["kernels"] == 1 + len(chunks)
    assert running["overlaps"] == 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_kernels_run_while_the_next_images_decode(files, monkeypatch):
    """A stream whose kernels write on the GPU does not wait for the decodes: the next chunk's images decode
    while the current chunk's kernels run, and the chunks still equal the stock."""
    paths = [str(path) for path in files] * 3
    stock = Qwen2VLImageProcessor()(paths, return_tensors="pt")
    running = _record_kernels_beside_decodes(monkeypatch)
    chunks = list(vlfast.preprocess_in_chunks(iter(paths), max_chunk_bytes=4 * 2**20, workers=2, device="cuda"))
    assert len(chunks) > 2 and running["kernels"] == len(chunks)
    assert running["overlaps"] > 0
    assert torch.equal(torch.cat([chunk.pixel_values.cpu() for chunk in chunks]), stock["pixel_values"])
    assert torch.equal(torch.cat([chunk.image_grid_thw for chunk in chunks]), stock["image_grid_thw"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_chunks_of_a_lazy_stream_of_paths_equal_the_stock(files, backend):
    paths = [str(path) for path in files]
    stock = STOCK[backend]()(paths, return_tensors="pt")
    for workers in (1, 4):
        chunks = list(
            vlfast.preprocess_in_chunks(
                (path for path in paths), max_chunk_bytes=4 * 2**20, backend=backend, workers=workers
            )
        )
        assert len(chunks) >= 2
        assert torch.equal(torch.cat([chunk.pixel_values for chunk in chunks]), stock["pixel_values"])
        assert torch.equal(torch.cat([chunk.image_grid_thw for chunk in chunks]), stock["image_grid_thw"])


@pytest.mark.parametrize("workers", [1, 4])
def test_a_failing_source_is_a_typed_error_naming_it(files, tmp_path, workers):
    missing = tmp_path / "missing.jpg"
    corrupt = files[0].read_bytes()[:3000]
    batch = [str(files[0]), str(files[1]), str(missing), corrupt, str(files[2])]
    with pytest.raises(ImageSourceError, match=r"^image 2 of 5: no such file: '.*missing\.jpg'") as caught:
        vlfast.preprocess(batch, workers=workers)
    assert caught.value.source_index == 2
    # The first failure in order is reported, whichever decode finishes first.
    truncated = r"^image 1 of 3: image data \(3000 bytes\) is a corrupt or truncated"
    with pytest.raises(DecodeError, match=truncated) as caught:
        vlfast.preprocess([str(files[1]), corrupt, str(missing)], workers=workers, backend="pil")
    assert caught.value.source_index == 1
    with pytest.raises(ImageSourceError, match=r"^image 1 of 2: no such file"):
        ImageProcessor(backend="pil")([str(files[0]), str(missing)], return_tensors="pt")
    with pytest.raises(ImageSourceError, match=r"^image 3: no such file"):  # a stream has no length to give
        list(vlfast.preprocess_in_chunks(iter([*batch[:2], str(files[3]), str(missing)]), max_chunk_bytes=2**30))


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_bad_worker_counts_are_typed_errors(files, workers):
    with pytest.raises(UnsupportedOptionError, match="workers must be a positive integer or None"):
        vlfast.preprocess([str(files[0])], workers=workers)
    with pytest.raises(UnsupportedOptionError, match="workers must be a positive integer or None"):
        vlfast.preprocess([np.zeros((56, 56, 3), np.uint8)], workers=workers)  # nothing to decode: still checked


def test_default_workers_are_the_cores_this_process_may_use(monkeypatch):
    """The affinity mask (or Python 3.13's process_cpu_count), not the machine's core count."""
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    if hasattr(os, "process_cpu_count"):
        monkeypatch.setattr(os, "process_cpu_count", lambda: 3)
    else:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 5, 7})
    assert default_workers() == 3


def test_a_stream_stopped_early_ends_its_threads(files):
    before = {thread.ident for thread in threading.enumerate()}
    with SourceStream([str(path) for path in files] * 4, workers=2) as stream:
        first = next(iter(stream))
    assert first.shape[0] == 3
    left = [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("vlfast-decode")]
    assert not left


def test_chunks_leave_out_failing_images_when_asked(files):
    """``on_error``: a source that fails to load or to be sized is reported with its position and left out."""
    import numpy as np

    from vlfast.errors import AspectRatioError

    reported = []
    banner = np.zeros((2, 500, 3), np.uint8)  # an aspect ratio the stock refuses
    batch = [str(files[0]), b"not an image", banner, str(files[1])]
    chunks = list(
        vlfast.preprocess_in_chunks(
            batch, max_chunk_bytes=2**30, on_error=lambda index, error: reported.append((index, type(error)))
        )
    )
    assert reported == [(1, DecodeError), (2, AspectRatioError)]
    stock = STOCK["torchvision"]()([str(files[0]), str(files[1])], return_tensors="pt")
    assert torch.equal(torch.cat([chunk.pixel_values for chunk in chunks]), stock["pixel_values"])


def test_the_largest_sources_start_first(files, monkeypatch):
    """A big file started last would keep one thread busy after the others finish: decodes start largest first,
    whatever their order in the batch (which the results keep)."""
    state = _record_decodes(monkeypatch)
    small, large = str(files[5]), files[0].read_bytes()
    batch = [small, small, small, large, small]
    assert len(large) > 4 * files[5].stat().st_size
    loaded = load_images(batch, workers=2)
    assert state["started"][0] is large
    assert [image.shape for image in loaded] == [image.shape for image in load_images(batch, workers=1)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_drop_in_processor_decodes_on_its_workers(files, monkeypatch, backend):
    """``workers`` of the drop-in processor: set when built or loaded, overridden per call, never saved in its
    config; the pixel values stay the stock's."""
    paths = [str(path) for path in files] * 2
    stock = STOCK[backend]()(paths, return_tensors="pt")
    state = _record_decodes(monkeypatch)
    processor = ImageProcessor(backend=backend, workers=3)
    for call, peak in (({}, 3), ({"workers": 1}, 1), ({"workers": 2}, 2)):
        state["peak"] = 0
        ours = processor(paths, return_tensors="pt", **call)
        assert state["peak"] == peak
        assert torch.equal(ours["pixel_values"], stock["pixel_values"])
        assert torch.equal(ours["image_grid_thw"], stock["image_grid_thw"])
    assert "workers" not in processor.to_dict()
    state["peak"] = 0
    assert len(processor.fetch_images(paths)) == len(paths) and state["peak"] == 3


def test_drop_in_processor_workers_survive_loading_and_are_checked(files, tmp_path):
    ImageProcessor().save_pretrained(tmp_path)
    assert "workers" not in (tmp_path / "preprocessor_config.json").read_text()
    assert ImageProcessor.from_pretrained(tmp_path, workers=2).workers == 2
    assert ImageProcessor.from_pretrained(tmp_path).workers is None
    assert ImageProcessor.from_stock(Qwen2VLImageProcessor(), workers=4).workers == 4
    for bad in (0, True, "2"):
        with pytest.raises(UnsupportedOptionError, match="workers must be a positive integer or None"):
            ImageProcessor(workers=bad)
        with pytest.raises(UnsupportedOptionError, match="workers"):
            ImageProcessor()([str(files[0])], workers=bad)


@pytest.mark.parametrize("backend", ["torchvision", "pil"])
def test_pixels_handed_to_the_caller_are_its_own(files, backend, pixels_views):
    """``fetch_images``, ``load_images`` and a ``SourceStream`` give copies (the caller may write them); only what the
    kernels alone read (``preprocess``, ``preprocess_in_chunks``, a drop-in processor's call) is viewed read-only."""
    paths = [str(path) for path in files]  # PNGs go through Pillow under both backends
    ImageProcessor(backend=backend).fetch_images(paths)
    load_images(paths, backend=backend, workers=2)
    with SourceStream(paths, backend=backend, workers=2) as stream:
        list(stream)
    pillow_decoded = sum(path.suffix == ".png" or backend == "pil" for path in files)
    assert pixels_views == [True] * 3 * pillow_decoded  # copies of their own, viewed
    pixels_views.clear()
    vlfast.preprocess(paths, backend=backend, workers=2)
    list(vlfast.preprocess_in_chunks(paths, backend=backend, max_chunk_bytes=2**30))
    ImageProcessor(backend=backend)(paths, return_tensors="pt")  # its own fetch, for the kernels
    assert pixels_views == [False] * 3 * pillow_decoded  # Pillow's read-only pixels, viewed
