"""Many image sources at once: decoded on a bounded thread pool (Pillow's, torchvision's and torchcodec's
decoders release the GIL), each exactly as :func:`vlfast.load_image` decodes it for the chosen backend.

Decoding and the C++ kernel never compete for the cores: a call decodes its sources on ``workers`` threads,
and the kernel (on torch's intra-op threads, ``torch.get_num_threads()``) starts once they are done. A stream
(:class:`SourceStream`, under :func:`vlfast.preprocess_in_chunks` and ``vlfast preprocess DIR``) decodes ahead
while its consumer works, and is settled (its decodes finished) before a CPU kernel runs; a GPU kernel runs
while the next images decode.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from .errors import UnsupportedOptionError, VlfastError
from .inputs import ImageLike
from .io import ImageSource, load_image
from .io import fetch_images as fetch_one_by_one
from .plans import Backend
from .sources import SourcePolicy

__all__ = ["SourceStream", "check_workers", "default_workers", "fetch_images", "is_source", "load_images"]


def default_workers() -> int:
    """The cores this process may run on (``os.process_cpu_count``, else the scheduler's affinity mask)."""
    count = getattr(os, "process_cpu_count", None)  # Python 3.13+
    if count is not None:
        cores = count()
    elif hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count()
    return max(1, cores or 1)


def check_workers(workers: int | None) -> int:
    """``workers`` checked (a positive int); ``None`` means :func:`default_workers`."""
    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UnsupportedOptionError(f"workers must be a positive integer or None (the cores), got {workers!r}")
    return workers


def is_source(item: object) -> bool:
    """Whether ``item`` is an encoded source :func:`vlfast.load_image` reads (path, URL, base64, data URI, bytes)."""
    return isinstance(item, (str, os.PathLike, bytes, bytearray, memoryview))


def _cost(item: ImageSource) -> int:
    """Bytes to decode, as far as a cheap look tells: a file's size, an in-memory source's length; 0 where
    nothing tells (a URL, a missing path: loading will say what is wrong)."""
    if isinstance(item, (bytes, bytearray, memoryview)):
        return len(item)
    text = os.fspath(item)
    if isinstance(text, str) and text.startswith(("http://", "https://")):
        return 0
    try:
        return os.stat(text).st_size
    except (OSError, ValueError):  # not a path (base64, data URI), or a name the OS refuses
        return len(text)


def _named(error: VlfastError, index: int, count: int | None) -> VlfastError:
    """``error`` (same type) with the position of the failing source in its batch in front of the message."""
    if count == 1:  # the message names the only source already
        named = type(error)(str(error))
    else:
        named = type(error)(f"image {index}{'' if count is None else f' of {count}'}: {error}")
    named.source_index = index  # type: ignore[attr-defined]
    return named


def _load(
    item: Any, index: int, count: int | None, backend: Backend | str, policy: SourcePolicy | None, copy: bool
) -> ImageLike:
    if not is_source(item):
        return item
    try:
        return load_image(item, backend=backend, policy=policy, copy=copy)
    except VlfastError as error:
        raise _named(error, index, count) from error


def load_images(
    items: Iterable[ImageSource],
    *,
    backend: Backend | str = Backend.TORCHVISION,
    workers: int | None = None,
    policy: SourcePolicy | None = None,
    copy: bool = True,
) -> list[ImageLike]:
    """``items`` with every encoded source decoded (:func:`vlfast.load_image`, the stock decoder of ``backend``)
    on at most ``workers`` threads (default: the cores); in-memory images pass through. Order is kept.
    ``copy``: :func:`vlfast.load_image`'s (``False``: Pillow-decoded pixels as read-only views, for callers
    that only read them).

    Raises:
        the error :func:`vlfast.load_image` raises for the first failing source in order (same type), its
        ``source_index`` set to ``i`` and, in a batch of ``n > 1``, its message starting ``"image {i} of {n}: "``.
    """
    items = list(items)
    pending = [index for index, item in enumerate(items) if is_source(item)]
    if not pending and workers is None:  # nothing to decode (the cores are not asked for)
        return items
    workers = check_workers(workers)
    count = len(items)
    if workers == 1 or len(pending) <= 1:
        return [_load(item, index, count, backend, policy, copy) for index, item in enumerate(items)]
    loaded: list[Any] = list(items)
    # Largest first, so that a big file is not the last one started while the other threads sit idle.
    started = sorted(pending, key=lambda index: -_cost(items[index]))
    with ThreadPoolExecutor(max_workers=min(workers, len(pending)), thread_name_prefix="vlfast-decode") as pool:
        futures = {index: pool.submit(_load, items[index], index, count, backend, policy, copy) for index in started}
        try:
            for index in pending:
                loaded[index] = futures[index].result()
        finally:
            for future in futures.values():
                future.cancel()
    return loaded


def _strings(images: Any, found: list[str]) -> None:
    if isinstance(images, (list, tuple)):
        for item in images:
            _strings(item, found)
    elif isinstance(images, str):
        found.append(images)


def _replaced(images: Any, loaded: Iterator[ImageLike]) -> Any:
    if isinstance(images, (list, tuple)):
        return [_replaced(item, loaded) for item in images]
    return next(loaded) if isinstance(images, str) else images


def fetch_images(
    images: Any,
    backend: Backend | str,
    *,
    workers: int | None = None,
    policy: SourcePolicy | None = None,
    copy: bool = True,
) -> Any:
    """The drop-in processors' ``fetch_images`` (:func:`vlfast.io.fetch_images`: every string in a nested list
    loaded, images passed through, anything else refused), with the strings decoded on ``workers`` threads;
    ``copy``: :func:`vlfast.load_image`'s."""
    found: list[str] = []
    _strings(images, found)
    loaded = load_images(found, backend=backend, workers=workers, policy=policy, copy=copy)
    return fetch_one_by_one(_replaced(images, iter(loaded)), backend, policy)


class SourceStream:
    """Iterate over ``items`` decoded in order, at most ``workers`` decodes ahead of the consumer.

    :meth:`settle` waits for the decodes in flight, so that work on the CPU that follows (the C++ kernel) has
    the cores to itself; iteration then resumes decoding ahead. Use as a context manager (the pool's threads
    end with it). Errors are :func:`load_images`' (``"image {i}: "`` for an unsized iterable); with
    ``on_error``, a failing source is handed to it as ``on_error(i, error)`` and skipped instead. ``copy``:
    :func:`vlfast.load_image`'s.
    """

    def __init__(
        self,
        items: Iterable[ImageSource],
        *,
        backend: Backend | str = Backend.TORCHVISION,
        workers: int | None = None,
        policy: SourcePolicy | None = None,
        on_error: Callable[[int, VlfastError], None] | None = None,
        copy: bool = True,
    ) -> None:
        self._workers = check_workers(workers)
        self._copy = copy
        self._on_error = on_error
        self._items = enumerate(items)
        self._count = len(items) if isinstance(items, Sequence) else None
        self._backend, self._policy = backend, policy
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="vlfast-decode")
        self._ahead: deque[tuple[int, Future[ImageLike]]] = deque()

    def __enter__(self) -> SourceStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Cancel the decodes not started and end the pool's threads."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def settle(self) -> None:
        """Wait until no decode is running (results are kept for the iteration)."""
        wait([future for _, future in self._ahead])

    def _top_up(self) -> None:
        while len(self._ahead) < self._workers:
            try:
                index, item = next(self._items)
            except StopIteration:
                return
            future = self._pool.submit(_load, item, index, self._count, self._backend, self._policy, self._copy)
            self._ahead.append((index, future))

    def __iter__(self) -> Iterator[ImageLike]:
        return (image for _, image in self.indexed())

    def indexed(self) -> Iterator[tuple[int, ImageLike]]:
        """``(position of the source, image)`` pairs, in order."""
        while True:
            self._top_up()
            if not self._ahead:
                return
            index, future = self._ahead.popleft()
            try:
                image = future.result()
            except VlfastError as error:
                if self._on_error is None:
                    raise
                self._on_error(index, error)
                continue
            yield index, image
