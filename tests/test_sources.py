"""Sources a server takes from its users: the source policy, regular files only, one deadline per download,
byte caps after HTTP decompression, no file bytes in messages, and the drop-in processors guarded as
``load_image`` is, with the stock's pixels.

Cases that could hang or crash the process (the hostile corpus, FIFOs and devices) run in a subprocess with
a deadline; network cases run against servers on 127.0.0.1, each call bounded in time by a watchdog.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import os
import struct
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest
import skimage.data
import torch
from encoded_images import encoded, exif, jpeg_claiming, png_chunk, png_claiming
from transformers import Qwen2VLImageProcessor, Qwen2VLImageProcessorPil

import vlfast
from vlfast.errors import (
    DecodeError,
    DeviceError,
    ImageSourceError,
    ImageTooLargeError,
    SourceNotAllowedError,
    SourceTimeoutError,
    SourceTooLargeError,
    UnsupportedModeError,
    UnsupportedOptionError,
)
from vlfast.io import encode_image, load_image
from vlfast.processor import ImageProcessor
from vlfast.sources import SourcePolicy, current_source_policy, set_source_policy

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BACKENDS = ["torchvision", "pil"]
STOCK = {"torchvision": Qwen2VLImageProcessor, "pil": Qwen2VLImageProcessorPil}
#: A download's deadline in these tests, and the slack allowed on top of it (a loaded 2-core machine).
DEADLINE_S = 1.0
SLACK_S = 2.0
SECRET = b"root:x:0:0:SECRET-7f3a"


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    """Real-photo files in the formats and flavours whose decoding differs between the stock loaders."""
    cat = PIL.Image.fromarray(skimage.data.chelsea())
    small = cat.resize((120, 80))
    files = {
        "photo.jpg": encoded(cat, "JPEG", quality=90),
        "exif6.jpg": encoded(cat, "JPEG", exif=exif(6)),
        "photo.png": encoded(cat, "PNG"),
        "rgba.png": encoded(small.convert("RGBA"), "PNG"),
        "exif6.webp": encoded(small, "WEBP", exif=exif(6)),
        "photo.gif": encoded(small, "GIF"),
    }
    folder = tmp_path_factory.mktemp("photos")
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


@pytest.fixture
def policy_restored() -> Iterator[None]:
    previous = current_source_policy()
    yield
    set_source_policy(previous)


def within(seconds: float, call: Callable[[], Any]) -> Any:
    """``call()``'s result or exception, failing the test if it has not returned within ``seconds``."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:
            outcome["error"] = error

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"still running after {seconds} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# --- the policy and its options ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        ({"timeout": math.inf}, "timeout must be a positive, finite number"),
        ({"timeout": math.nan}, "timeout must be a positive, finite number"),
        ({"timeout": "5"}, "timeout must be a positive, finite number"),
        ({"max_bytes": 1.5}, "max_bytes must be a positive integer, got 1.5"),
        ({"max_bytes": "1"}, "max_bytes must be a positive integer"),
        ({"max_pixels": 0}, "max_pixels must be a positive integer"),
        ({"allow": ("https", "ftp")}, r"unknown source kinds \['ftp'\]"),
        ({"hosts": ("",)}, "hosts must be host names"),
        ({"private_networks": "no"}, "private_networks must be True or False"),
    ],
)
def test_bad_policy_options_are_typed_errors(options, message):
    with pytest.raises(UnsupportedOptionError, match=message):
        SourcePolicy(**options)
    if set(options) <= {"timeout", "max_bytes", "max_pixels"}:  # also load_image's own arguments
        with pytest.raises(UnsupportedOptionError, match=message):
            load_image(b"", **options)


def test_policy_values_are_normalised():
    policy = SourcePolicy(allow="https", hosts="Images.Example.COM.", max_bytes=1e12, max_pixels=2.0e6)
    assert policy.allow == {"https"} and policy.hosts == ("images.example.com",)
    assert policy.max_bytes == 10**12 and isinstance(policy.max_bytes, int) and policy.max_pixels == 2_000_000
    with pytest.raises(UnsupportedOptionError, match="expected a vlfast.SourcePolicy"):
        set_source_policy({"allow": ("https",)})


def test_other_bad_options_are_typed_errors(photos):
    with pytest.raises(DeviceError, match="gpu_decode needs an available CUDA device"):
        load_image(photos["photo.jpg"], gpu_decode="bogus")
    with pytest.raises(ImageSourceError, match="malformed URL 'http://\\[::1/x.png'"):
        load_image("http://[::1/x.png")
    with pytest.raises(ImageSourceError, match="malformed URL 'http://:80/x.png': no host"):
        load_image("http://:80/x.png")
    assert load_image(photos["photo.jpg"], max_bytes=1e12).shape == (3, 300, 451)


# --- which sources: kinds, directories ---------------------------------------------------------------------


def test_kinds_the_policy_does_not_allow_are_refused_without_looking(tmp_path, photos):
    https_only = SourcePolicy(allow=("https",))
    existing, missing = tmp_path / "passwd", tmp_path / "missing"
    existing.write_bytes(SECRET)
    data = photos["photo.png"].read_bytes()
    refused = {
        "path": str(existing),
        "pathlib": existing,
        "file URL": existing.as_uri(),
        "data URI": "data:image/png;base64," + base64.b64encode(data).decode(),
        "base64": base64.b64encode(data).decode(),
        "http URL": "http://127.0.0.1:9/x.png",
    }
    for what, source in refused.items():
        with pytest.raises(SourceNotAllowedError, match="not allowed by the source policy") as caught:
            load_image(source, policy=https_only)
        assert "SECRET" not in str(caught.value), what
    # A path that exists and one that does not give the same answer: the policy reveals nothing.
    messages = []
    for path in (existing, missing):
        with pytest.raises(SourceNotAllowedError) as caught:
            load_image(str(path), policy=https_only)
        messages.append(str(caught.value).replace(path.name, "NAME"))
    assert messages[0] == messages[1]
    assert load_image(data, policy=https_only).shape == (3, 300, 451)  # bytes from the caller are not a source


def test_files_only_under_the_allowed_directories(tmp_path, photos):
    inside = tmp_path / "images"
    inside.mkdir()
    (inside / "cat.png").write_bytes(photos["photo.png"].read_bytes())
    (inside / "escape.png").symlink_to(photos["photo.png"])  # resolves outside
    policy = SourcePolicy(allow=("file",), roots=(inside,))
    assert load_image(inside / "cat.png", policy=policy).shape == (3, 300, 451)
    assert load_image((inside / "cat.png").as_uri(), policy=policy).shape == (3, 300, 451)
    for source in (photos["photo.png"], inside / "escape.png", str(inside / ".." / "images" / ".." / "x.png")):
        with pytest.raises(SourceNotAllowedError, match="outside the directories the source policy allows"):
            load_image(source, policy=policy)
    messages = []
    for path in (photos["photo.png"], photos["photo.png"].with_name("missing.png")):  # outside: exists or not
        with pytest.raises(SourceNotAllowedError) as caught:
            load_image(str(path), policy=policy)
        messages.append(str(caught.value).replace(path.name, "NAME"))
    assert messages[0] == messages[1]


def test_a_symlink_swapped_in_after_the_check_is_not_followed(tmp_path, photos, monkeypatch):
    """The file under the roots is replaced by a symlink to a file outside them between the policy's check
    and the open: the outside file is not read."""
    inside = tmp_path / "images"
    inside.mkdir()
    checked = inside / "cat.png"
    checked.write_bytes(photos["photo.png"].read_bytes())
    secret = tmp_path / "secret.png"
    secret.write_bytes(photos["photo.png"].read_bytes())
    real_open = os.open

    def open_after_a_swap(path, flags, *args):
        if os.fspath(path) == str(checked):
            checked.unlink()
            checked.symlink_to(secret)
        return real_open(path, flags, *args)

    monkeypatch.setattr(vlfast.sources.os, "open", open_after_a_swap)
    with pytest.raises(SourceNotAllowedError, match="became a symlink while it was opened"):
        load_image(checked, policy=SourcePolicy(allow=("file",), roots=(inside,)))


def test_an_opened_file_outside_the_roots_is_refused(tmp_path, photos, monkeypatch):
    """Whatever the path resolved to, the file actually opened must lie under the roots."""
    inside = tmp_path / "images"
    inside.mkdir()
    (inside / "cat.png").write_bytes(photos["photo.png"].read_bytes())
    monkeypatch.setattr(vlfast.sources.os, "readlink", lambda path: str(tmp_path / "elsewhere" / "cat.png"))
    with pytest.raises(SourceNotAllowedError, match="outside the directories the source policy allows"):
        load_image(inside / "cat.png", policy=SourcePolicy(allow=("file",), roots=(inside,)))


def test_proxies_from_the_environment_only_where_private_networks_are_allowed(site, monkeypatch):
    monkeypatch.setenv("http_proxy", site.url)
    monkeypatch.setenv("HTTP_PROXY", site.url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    before = site.proxied
    # As the stock's HTTP client: the request goes through the proxy (which serves the photo here).
    assert load_image("http://images.invalid/cat.png").shape == (3, 300, 451)
    assert site.proxied == before + 1
    # Without private networks the proxy is not used: it would reach the target out of the policy's sight.
    with pytest.raises(ImageSourceError, match="cannot fetch URL 'http://images.invalid/cat.png'"):
        load_image("http://images.invalid/cat.png", policy=SourcePolicy(private_networks=False))
    assert site.proxied == before + 1


def test_downloads_still_running_past_their_deadline_are_bounded(site, monkeypatch):
    """A name lookup cannot be interrupted: its thread lives on after the deadline. Past the bound, fetches are
    refused at once; the slots come back when the lookups return."""
    lookups_return = threading.Event()
    real_getaddrinfo = vlfast.sources.socket.getaddrinfo

    def hanging_lookup(*args, **kwargs):
        lookups_return.wait(30)
        return real_getaddrinfo(*args, **kwargs)

    monkeypatch.setattr(vlfast.sources.socket, "getaddrinfo", hanging_lookup)
    monkeypatch.setattr(vlfast.sources, "_download_slots", threading.BoundedSemaphore(2))
    try:
        for _ in range(2):
            with pytest.raises(SourceTimeoutError, match="timed out after 0.2 s"):
                load_image(site.url + "/cat.png", timeout=0.2)
        start = time.monotonic()
        with pytest.raises(ImageSourceError, match="too many downloads are still running"):
            load_image(site.url + "/cat.png", timeout=0.2)
        assert time.monotonic() - start < 0.1
    finally:
        lookups_return.set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and vlfast.sources._download_slots._value < 2:
        time.sleep(0.05)
    monkeypatch.setattr(vlfast.sources.socket, "getaddrinfo", real_getaddrinfo)
    assert load_image(site.url + "/cat.png").shape == (3, 300, 451)


def test_process_wide_policy_reaches_load_image_encode_image_and_the_processors(photos, policy_restored):
    set_source_policy(SourcePolicy(allow=("https",)))
    path = str(photos["photo.jpg"])
    for call in (
        lambda: load_image(path),
        lambda: encode_image(path),
        lambda: ImageProcessor(backend="pil")(path, return_tensors="pt"),
        lambda: ImageProcessor(backend="torchvision")([[path]], return_tensors="pt"),
    ):
        with pytest.raises(SourceNotAllowedError, match="local files are not allowed by the source policy"):
            call()
    set_source_policy(SourcePolicy(max_pixels=451 * 300 - 1))
    with pytest.raises(ImageTooLargeError, match="over max_pixels=135299"):
        ImageProcessor()(path)


def test_a_patched_transformers_processor_follows_the_policy(tmp_path, photos, policy_restored):
    """``Qwen2_5_VLProcessor`` fetches string images through its image processor: vlfast's, once patched."""
    from tiny_qwen import build_processor, write_checkpoint_folder

    processor = vlfast.patch_processor(build_processor(write_checkpoint_folder(tmp_path / "tiny")))
    prompt = "<|vision_start|><|image_pad|><|vision_end|>Describe."
    path = str(photos["photo.jpg"])
    stock = build_processor(tmp_path / "tiny")(text=[prompt], images=[path], return_tensors="pt")
    ours = processor(text=[prompt], images=[path], return_tensors="pt")
    assert torch.equal(ours["pixel_values"], stock["pixel_values"])
    assert torch.equal(ours["input_ids"], stock["input_ids"])
    set_source_policy(SourcePolicy(allow=("https",)))
    with pytest.raises(SourceNotAllowedError):
        processor(text=[prompt], images=[path], return_tensors="pt")


# --- local files: regular files only, contents never echoed ------------------------------------------------

#: Runs hostile cases one after another in a child process: one JSON line per case, flushed, so that a crash
#: or a hang is pinned on the case that started and did not finish.
_CHILD = textwrap.dedent(
    """
    import json, sys, time, warnings
    warnings.filterwarnings("ignore")
    import vlfast
    from vlfast.processor import ImageProcessor
    calls = {
        "load_image": lambda source, backend: vlfast.load_image(source, backend=backend),
        "encode_image": lambda source, backend: vlfast.encode_image(source, backend=backend),
        "processor": lambda source, backend: ImageProcessor(backend=backend)(source, return_tensors="pt"),
    }
    for index, (via, source, backend) in enumerate(json.load(open(sys.argv[1]))):
        print(json.dumps({"started": index}), flush=True)
        start = time.monotonic()
        try:
            calls[via](source, backend)
            outcome, message = "ok", ""
        except vlfast.VlfastError as error:
            outcome, message = type(error).__name__, str(error)
        except Exception as error:
            outcome, message = "UNTYPED " + type(error).__name__, str(error)
        print(json.dumps({"done": index, "outcome": outcome, "message": message,
                          "seconds": time.monotonic() - start}), flush=True)
    """
)


def run_isolated(cases: list[tuple[str, str, str]], tmp_path: Path, deadline_s: float) -> list[dict[str, Any]]:
    """Each ``(via, source, backend)`` case in a child process; fails on a crash, a hang or an untyped error."""
    listing = tmp_path / "cases.json"
    listing.write_text(json.dumps(cases))
    try:
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, str(listing)], capture_output=True, text=True, timeout=deadline_s
        )
        stdout, ended = child.stdout, f"exit status {child.returncode}: {child.stderr[-2000:]}"
    except subprocess.TimeoutExpired as expired:
        stdout, ended = (expired.stdout or b"").decode(), f"no end after {deadline_s} s"
    results = [line for line in map(json.loads, stdout.splitlines()) if "done" in line]
    if len(results) < len(cases) or child.returncode != 0:
        pytest.fail(f"the child stopped ({ended}) in case {cases[len(results)] if len(results) < len(cases) else '-'}")
    for case, result in zip(cases, results, strict=True):
        assert not result["outcome"].startswith("UNTYPED"), (case, result)
    return results


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_only_regular_files_are_opened(tmp_path):
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    special = {str(fifo): "FIFO", str(tmp_path): "directory"}
    special.update({path: "character device" for path in ("/dev/zero", "/dev/urandom") if os.path.exists(path)})
    cases = [
        (via, source, backend)
        for source in [*special, Path(fifo).as_uri()]
        for via in ("load_image", "encode_image", "processor")
        for backend in BACKENDS
    ]
    for case, result in zip(cases, run_isolated(cases, tmp_path, deadline_s=120), strict=True):
        kind = special.get(case[1], "FIFO")
        assert result["outcome"] == "ImageSourceError", (case, result)
        assert f"is a {kind}, not a regular file" in result["message"], (case, result)
        assert result["seconds"] < 2, (case, result)


def test_messages_never_echo_file_contents(tmp_path):
    text = tmp_path / "passwd"
    text.write_bytes(SECRET + b"\n" * 20)
    # A PNG whose first chunk is garbage Pillow quotes in its own message ("broken PNG file (chunk b'...')").
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + SECRET[:4] + SECRET * 4)
    sources = [str(text), text.as_uri(), str(broken), text.read_bytes(), base64.b64encode(SECRET).decode()]
    if os.path.exists("/proc/self/environ"):
        sources.append("file:///proc/self/environ")
    for source in sources:
        for backend in BACKENDS:
            with pytest.raises(DecodeError) as caught:
                load_image(source, backend=backend)
            message = str(caught.value)
            assert "SECRET" not in message and "root:x" not in message and "PATH=" not in message, message


@pytest.mark.parametrize("backend", BACKENDS)
def test_decoder_messages_name_no_build_paths(backend):
    data = bytearray(encoded(PIL.Image.fromarray(skimage.data.chelsea()), "JPEG"))
    table = data.index(b"\xff\xc4")
    data[table + 4 : table + 21] = b"\xff" * 17  # a Huffman table libjpeg-turbo refuses, naming its source file
    with pytest.raises(DecodeError, match="corrupt or truncated") as caught:
        load_image(bytes(data), backend=backend)
    assert ".cpp" not in str(caught.value) and "/__w/" not in str(caught.value)


# --- the hostile corpus --------------------------------------------------------------------------------------


def hostile_files(folder: Path) -> dict[str, bytes]:
    """Bombs by header, truncated and corrupt files of every format, a PNG that crashes torchvision."""
    photo = PIL.Image.fromarray(skimage.data.coffee()).resize((96, 64))
    rng = np.random.default_rng(14)
    files = {"bomb.jpg": jpeg_claiming(65000, 65000), "bomb.png": png_claiming(30000, 30000)}
    rows = b"".join(b"\x05" + b"\x80" * 3 * 16 for _ in range(8))  # row filter 5 does not exist
    header = struct.pack(">IIBBBBB", 16, 8, 8, 2, 0, 0, 0)
    files["bad_filter.png"] = (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(rows))
    ) + png_chunk(b"IEND", b"")
    for fmt in ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"):
        data = encoded(photo, fmt)
        for keep in (len(data) // 4, len(data) // 2, len(data) - 10):
            files[f"cut{keep}.{fmt.lower()}"] = data[:keep]
        for index in range(4):
            flipped = np.frombuffer(data, np.uint8).copy()
            where = rng.integers(8, len(data), 6)
            flipped[where] ^= rng.integers(1, 256, 6, dtype=np.uint8)
            files[f"flip{index}.{fmt.lower()}"] = flipped.tobytes()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


@pytest.mark.slow
def test_hostile_corpus_gives_results_or_typed_errors_in_bounded_time(tmp_path):
    files = hostile_files(tmp_path)
    cases = [
        (via, str(tmp_path / name), backend)
        for name in files
        for via in ("load_image", "processor")
        for backend in BACKENDS
    ]
    for case, result in zip(cases, run_isolated(cases, tmp_path, deadline_s=300), strict=True):
        name = Path(case[1]).name
        assert result["seconds"] < 5, (case, result)
        if name.startswith("bomb"):
            assert result["outcome"] == "ImageTooLargeError" and result["seconds"] < 1, (case, result)
        elif name == "bad_filter.png":
            assert result["outcome"] == "DecodeError", (case, result)
        assert "/__w/" not in result["message"] and ".cpp:" not in result["message"], (case, result)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bombs_through_the_processors_are_refused_from_the_header(tmp_path, backend):
    for name, bomb in (("bomb.jpg", jpeg_claiming(65000, 65000)), ("bomb.png", png_claiming(30000, 30000))):
        path = tmp_path / name
        path.write_bytes(bomb)
        uri = "data:image/png;base64," + base64.b64encode(bomb).decode()
        for source in (str(path), uri, [str(path)]):
            start = time.monotonic()
            with pytest.raises(ImageTooLargeError, match="decompression-bomb"):
                ImageProcessor(backend=backend)(source, return_tensors="pt")
            assert time.monotonic() - start < 1.0


_LEAK_CHILD = textwrap.dedent(
    """
    import gc, io, json, resource, sys
    import numpy as np, PIL.Image
    import vlfast
    from vlfast.processor import ImageProcessor

    buffer = io.BytesIO()
    PIL.Image.fromarray(np.random.default_rng(3).integers(0, 256, (120, 160, 3), np.uint8)).save(buffer, "PNG")
    png = buffer.getvalue()
    uri = vlfast.encode_image(png)
    processor = ImageProcessor(backend="torchvision")

    def rss_mib():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize() / 2**20

    def calls(count):
        for _ in range(count):
            vlfast.preprocess(vlfast.load_image(png))
            processor([uri, uri], return_tensors="pt")
            try:
                vlfast.load_image(png[:200])
            except vlfast.DecodeError:
                pass
        gc.collect()

    calls(100)
    before = rss_mib()
    calls(int(sys.argv[1]))
    print(json.dumps({"before": before, "after": rss_mib()}))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads the RSS from /proc")
def test_repeated_loads_do_not_leak():
    """A server's steady state: loads, preprocessing, processor calls and failures keep the RSS flat."""
    child = subprocess.run([sys.executable, "-c", _LEAK_CHILD, "1000"], capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-2000:]
    rss = json.loads(child.stdout.splitlines()[-1])
    assert rss["after"] - rss["before"] < 32, rss  # MiB, over 1,000 rounds of 4 calls


# --- the drop-in processors give the stock's pixels for strings -------------------------------------------


@pytest.mark.parametrize("name", ["photo.jpg", "exif6.jpg", "photo.png", "rgba.png", "exif6.webp", "photo.gif"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_processor_strings_match_the_stock(photos, name, backend):
    """Paths and data URIs through the drop-in processor: the stock processor's pixels, decoded with the decoder
    the installed stock picks (a WebP's EXIF orientation is applied by torchcodec, not by torchvision)."""
    path = str(photos[name])
    stock = STOCK[backend]()(path, return_tensors="pt")
    for source in (path, encode_image(path), [path, path]):
        ours = ImageProcessor(backend=backend)(source, return_tensors="pt")
        repeat = len(source) if isinstance(source, list) else 1
        assert torch.equal(ours["image_grid_thw"], stock["image_grid_thw"].repeat(repeat, 1))
        assert torch.equal(ours["pixel_values"], stock["pixel_values"].repeat(repeat, 1))


def test_sixteen_bit_png_through_the_processor_says_what_to_do(tmp_path):
    path = tmp_path / "deep.png"
    PIL.Image.fromarray(np.full((32, 48), 40000, np.uint16)).save(path)
    if vlfast.io.stock_decoder() == "torchvision":
        with pytest.raises(UnsupportedModeError, match="16 bits per channel.*backend='pil'"):
            ImageProcessor(backend="torchvision")(str(path))
    stock = Qwen2VLImageProcessorPil()(str(path), return_tensors="pt")["pixel_values"]
    assert torch.equal(ImageProcessor(backend="pil")(str(path), return_tensors="pt")["pixel_values"], stock)


def test_png_with_a_large_text_chunk_decodes_as_the_stock_does(tmp_path, photos):
    """libpng reads text chunks of any size; Pillow refuses those over ``MAX_TEXT_CHUNK`` (so does the PIL stock)."""
    png = photos["rgba.png"].read_bytes()
    text = png_chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"x" * (4 * 2**20)))
    path = tmp_path / "comment.png"
    path.write_bytes(png[:33] + text + png[33:])  # after IHDR
    stock = Qwen2VLImageProcessor()(str(path), return_tensors="pt")
    ours = ImageProcessor(backend="torchvision")(str(path), return_tensors="pt")
    assert torch.equal(ours["pixel_values"], stock["pixel_values"])
    with pytest.raises(ValueError, match="MAX_TEXT_CHUNK"):
        Qwen2VLImageProcessorPil()(str(path))
    with pytest.raises(DecodeError, match="MAX_TEXT_CHUNK"):
        ImageProcessor(backend="pil")(str(path))


# --- http(s) ---------------------------------------------------------------------------------------------------


class Site:
    """A server on 127.0.0.1 with well-behaved and hostile routes; counts the requests it gets."""

    def __init__(self, png: bytes):
        self.png = png
        self.hits = 0
        self.proxied = 0
        self.stop = threading.Event()
        site = self
        bomb = gzip.compress(b"\0" * (64 * 2**20), compresslevel=9)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                site.hits += 1
                path = self.path
                try:
                    if path.startswith("http://"):  # a proxy request (absolute URL): serve the photo
                        site.proxied += 1
                        self.send(png)
                    elif path == "/cat.png":
                        self.send(png)
                    elif path == "/gzip.png":
                        self.send(gzip.compress(png), {"Content-Encoding": "gzip"})
                    elif path == "/deflate.png":
                        self.send(zlib.compress(png), {"Content-Encoding": "deflate"})
                    elif path == "/brotli.png":
                        self.send(b"\x0b" * 64, {"Content-Encoding": "br"})
                    elif path == "/gzip-bomb":
                        self.send(bomb, {"Content-Encoding": "gzip", "Content-Type": "image/png"})
                    elif path == "/truncated-gzip":
                        self.send(gzip.compress(png)[:-100], {"Content-Encoding": "gzip"})
                    elif path == "/drip-headers":
                        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                        self.drip(b"a", 0.1)
                    elif path == "/drip-status":
                        self.drip(b"HTTP/1.1 200 OK\r\n"[:1] + b"T" * 400, 0.05)
                    elif path.startswith("/slow-redirect/"):
                        hop = int(path.rsplit("/", 1)[1])
                        site.stop.wait(0.3)
                        self.redirect(f"/slow-redirect/{hop + 1}")
                    elif path == "/loop":
                        self.redirect("/loop")
                    elif path == "/to-localhost":
                        self.redirect(f"http://localhost:{site.port}/cat.png")
                    else:
                        self.send(b"not found", status=404)
                except OSError:  # the client hung up, as it should
                    pass

            def send(self, body: bytes, headers: dict[str, str] | None = None, status: int = 200) -> None:
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def redirect(self, location: str) -> None:
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def drip(self, data: bytes, every_s: float) -> None:
                for byte in data * 1000:
                    if site.stop.wait(every_s):
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def site(photos) -> Iterator[Site]:
    running = Site(photos["photo.png"].read_bytes())
    yield running
    running.close()


@pytest.mark.parametrize("route", ["/drip-headers", "/drip-status", "/slow-redirect/0"])
def test_one_deadline_for_the_whole_download(site, route):
    """Headers sent a byte at a time, or redirects one after another, cannot stretch the deadline."""
    start = time.monotonic()
    with pytest.raises(SourceTimeoutError, match=f"timed out after {DEADLINE_S:g} s"):
        within(DEADLINE_S + SLACK_S, lambda: load_image(site.url + route, timeout=DEADLINE_S))
    assert time.monotonic() - start < DEADLINE_S + SLACK_S


@pytest.mark.parametrize("route", ["/gzip.png", "/deflate.png"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_compressed_responses_are_decoded_as_the_stock_does(site, photos, route, backend):
    received = within(10, lambda: load_image(site.url + route, backend=backend))
    assert torch.equal(received, load_image(photos["photo.png"], backend=backend))


def test_compression_bombs_stop_at_max_bytes(site):
    start = time.monotonic()
    with pytest.raises(SourceTooLargeError, match="sent more than max_bytes=1048576 bytes"):
        within(10, lambda: load_image(site.url + "/gzip-bomb", max_bytes=2**20))
    assert time.monotonic() - start < 2


@pytest.mark.parametrize(
    "route, message",
    [
        ("/brotli.png", "unsupported Content-Encoding 'br'"),
        ("/truncated-gzip", "truncated gzip body"),
        ("/loop", "answered HTTP 302"),
        ("/missing", "answered HTTP 404"),
    ],
)
def test_bad_responses_are_typed_errors(site, route, message):
    with pytest.raises(ImageSourceError, match=message):
        within(10, lambda: load_image(site.url + route))


def test_host_allow_list_is_checked_before_connecting_and_on_redirects(site):
    hits = site.hits
    with pytest.raises(SourceNotAllowedError, match="host '127.0.0.1' is not allowed"):
        load_image(site.url + "/cat.png", policy=SourcePolicy(hosts=("images.example.com",)))
    assert site.hits == hits  # no request was sent
    assert load_image(site.url + "/cat.png", policy=SourcePolicy(hosts=("127.0.0.1",))).shape == (3, 300, 451)
    with pytest.raises(SourceNotAllowedError, match="host 'localhost' is not allowed"):
        within(10, lambda: load_image(site.url + "/to-localhost", policy=SourcePolicy(hosts=("127.0.0.1",))))


def test_private_networks_can_be_closed(site):
    closed = SourcePolicy(private_networks=False)
    hits = site.hits
    for url in (site.url + "/cat.png", f"http://localhost:{site.port}/cat.png"):
        with pytest.raises(SourceNotAllowedError, match="non-public address"):
            within(10, lambda url=url: load_image(url, policy=closed))
    assert site.hits == hits  # refused before connecting


def test_processor_urls_match_the_stock(site, photos):
    for backend in BACKENDS:
        ours = ImageProcessor(backend=backend)(site.url + "/cat.png", return_tensors="pt")
        stock = STOCK[backend]()(str(photos["photo.png"]), return_tensors="pt")
        assert torch.equal(ours["pixel_values"], stock["pixel_values"])


# --- videos: the drop-in video processors' paths and URLs -----------------------------------------------------


class _StockLoaderReached(Exception):
    """Raised by a stand-in for the stock video loader (no video decoder is needed to test the guards)."""


@pytest.fixture
def stock_video_loader(monkeypatch) -> list[tuple[str, bytes]]:
    """Replaces the stock ``fetch_videos`` (what vlfast's calls after its checks): records the path it is given
    and that file's bytes, then stops the call."""
    from transformers.video_processing_utils import BaseVideoProcessor

    seen: list[tuple[str, bytes]] = []

    def record(self, source, sample_indices_fn=None):
        seen.append((source, Path(source).read_bytes() if os.path.exists(source) else b""))
        raise _StockLoaderReached

    monkeypatch.setattr(BaseVideoProcessor, "fetch_videos", record)
    return seen


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_video_paths_follow_the_source_policy(tmp_path, policy_restored, stock_video_loader):
    from vlfast.processor import VideoProcessor

    inside = tmp_path / "videos"
    inside.mkdir()
    clip = inside / "clip.mp4"
    clip.write_bytes(b"\0\0\0\x18ftypmp42")
    fifo = inside / "fifo.mp4"
    os.mkfifo(fifo)
    processor = VideoProcessor()
    with pytest.raises(_StockLoaderReached):
        processor(str(clip))
    assert stock_video_loader == [(str(clip), clip.read_bytes())]
    cases = [
        (SourcePolicy(), str(fifo), ImageSourceError, "is a FIFO, not a regular file"),
        (SourcePolicy(), str(inside / "missing.mp4"), ImageSourceError, "no such file"),
        (SourcePolicy(allow=("https",)), str(clip), SourceNotAllowedError, "file sources are not allowed"),
        (SourcePolicy(roots=(inside / "other",)), str(clip), SourceNotAllowedError, "outside the directories"),
    ]
    for policy, source, error, message in cases:
        set_source_policy(policy)
        start = time.monotonic()
        with pytest.raises(error, match=message):
            processor(source)
        assert time.monotonic() - start < SLACK_S
    assert len(stock_video_loader) == 1


def test_video_urls_are_downloaded_within_the_policy(site, policy_restored, stock_video_loader):
    """The stock would fetch a URL with no deadline, byte cap or address check: vlfast downloads it under the
    policy and hands the stock decoder a temporary file with the same bytes, removed afterwards."""
    from vlfast.processor import VideoProcessor

    processor = VideoProcessor()
    with pytest.raises(_StockLoaderReached):
        processor(site.url + "/cat.png")
    ((path, data),) = stock_video_loader
    assert data == site.png and path.endswith(".png") and not os.path.exists(path)
    cases = [
        (SourcePolicy(max_bytes=100), site.url + "/cat.png", SourceTooLargeError, "over max_bytes=100"),
        (SourcePolicy(private_networks=False), site.url + "/cat.png", SourceNotAllowedError, "non-public address"),
        (SourcePolicy(allow=("file",)), site.url + "/cat.png", SourceNotAllowedError, "http sources are not allowed"),
        (SourcePolicy(timeout=DEADLINE_S), site.url + "/drip-headers", SourceTimeoutError, "timed out"),
        (
            SourcePolicy(hosts=("*.youtube.com", "youtube.com")),
            "https://youtube.com/watch?v=x",
            SourceNotAllowedError,
            "yt-dlp",
        ),
    ]
    for policy, source, error, message in cases:
        set_source_policy(policy)
        with pytest.raises(error, match=message):
            within(DEADLINE_S + SLACK_S, lambda source=source: processor(source))
    assert len(stock_video_loader) == 1


def test_video_frames_given_as_image_paths_match_the_stock_and_follow_the_policy(tmp_path, policy_restored):
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    from vlfast.processor import VideoProcessor

    rng = np.random.default_rng(3)
    frames = []
    for index in range(4):
        frames.append(str(tmp_path / f"frame{index}.png"))
        PIL.Image.fromarray(rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)).save(frames[-1])
    call = {"videos": [[frames]], "do_sample_frames": False, "return_tensors": "pt", "cap_pixels_per_frame": False}
    expected, got = Qwen2VLVideoProcessor()(**call), VideoProcessor()(**call)
    assert torch.equal(expected["pixel_values_videos"], got["pixel_values_videos"])
    assert torch.equal(expected["video_grid_thw"], got["video_grid_thw"])
    set_source_policy(SourcePolicy(allow=("https",)))
    with pytest.raises(SourceNotAllowedError, match="local files are not allowed"):
        VideoProcessor()(**call)
