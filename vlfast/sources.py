"""Where images may be read from, and reading them within limits.

:class:`SourcePolicy` says which kinds of source :func:`vlfast.load_image` and the drop-in processors
accept (local files, http(s) URLs, data URIs, base64), which hosts and directories, and the limits of one
read: a deadline for the whole download (connection, headers, redirects, body), a byte cap (after
HTTP decompression too) and a pixel cap read from the image header. :func:`set_source_policy` sets the
process-wide default, which a server sets once at start-up::

    vlfast.set_source_policy(vlfast.SourcePolicy(allow=("https",), hosts=("images.example.com",)))

Only regular files are opened; errors name the source, never its bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import http.client
import ipaddress
import math
import numbers
import os
import socket
import stat
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NoReturn

from .errors import (
    ImageSourceError,
    SourceNotAllowedError,
    SourceTimeoutError,
    SourceTooLargeError,
    UnsupportedOptionError,
)

__all__ = [
    "DEFAULT_MAX_DECODED_PIXELS",
    "DEFAULT_MAX_SOURCE_BYTES",
    "DEFAULT_TIMEOUT_S",
    "SOURCE_KINDS",
    "SourcePolicy",
    "current_source_policy",
    "fetch_url",
    "read_file",
    "set_source_policy",
    "video_file",
]

#: Kinds of source a policy can allow: local files (paths and ``file://`` URLs), http and https URLs,
#: ``data:`` URIs and bare base64 strings. Bytes and in-memory images are always accepted.
SOURCE_KINDS = ("file", "http", "https", "data", "base64")
#: Seconds one download may take, all of it: name lookup, connection, redirects, headers and body.
DEFAULT_TIMEOUT_S = 10.0
#: Largest encoded image (file, download after decompression, base64 payload) read, in bytes.
DEFAULT_MAX_SOURCE_BYTES = 256 * 2**20
#: Decompression-bomb guard: largest ``width * height`` decoded, checked from the header.
#: Pillow's own error threshold (``2 * PIL.Image.MAX_IMAGE_PIXELS`` by default).
DEFAULT_MAX_DECODED_PIXELS = 2 * 89_478_485
USER_AGENT = "vlfast"
_CHUNK_BYTES = 1 << 20
#: Content-Encodings decoded (as the stock's HTTP client does), with the zlib window of each.
_ZLIB_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}


def _positive_int(name: str, value: object) -> int:
    """A positive integer; integral floats such as ``1e9`` are accepted."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        if float(value).is_integer():
            return int(value)
    raise UnsupportedOptionError(f"{name} must be a positive integer, got {value!r}")


def _kinds(allow: Iterable[str] | str) -> frozenset[str]:
    names = (allow,) if isinstance(allow, str) else tuple(allow)
    unknown = [name for name in names if name not in SOURCE_KINDS]
    if unknown:
        raise UnsupportedOptionError(f"allow: unknown source kinds {unknown}; expected some of {SOURCE_KINDS}")
    return frozenset(names)


@dataclass(frozen=True)
class SourcePolicy:
    """Which image sources are read, and the limits of one read.

    Attributes:
        allow: kinds of source read, among :data:`SOURCE_KINDS`. Default: all of them, as the stock
            processors (plus ``file://`` URLs). A server taking URLs from users: ``("https",)``.
        hosts: host names http(s) URLs (and each redirect) may name: exact (``"images.example.com"``) or
            every subdomain (``"*.example.com"``). ``None``: any host.
        private_networks: whether http(s) may connect to loopback, private, link-local or other
            non-public addresses; checked on every address actually connected to, redirects included.
            When False, the proxy environment variables (``HTTP_PROXY``...) are not used, since a proxy
            connects to the target out of this check's sight; when True they are, as the stock's client does.
        roots: directories local files must lie in, after symlinks are resolved. ``None``: anywhere.
        timeout: seconds one download may take, all of it (finite).
        max_bytes: largest encoded image read: file, download (after HTTP decompression), base64 payload.
        max_pixels: largest ``width * height`` decoded, read from the header before decoding.
    """

    allow: frozenset[str] = frozenset(SOURCE_KINDS)
    hosts: tuple[str, ...] | None = None
    private_networks: bool = True
    roots: tuple[str, ...] | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    max_bytes: int = DEFAULT_MAX_SOURCE_BYTES
    max_pixels: int = DEFAULT_MAX_DECODED_PIXELS

    def __post_init__(self) -> None:
        set_field = functools.partial(object.__setattr__, self)
        set_field("allow", _kinds(self.allow))
        if self.hosts is not None:
            hosts = (self.hosts,) if isinstance(self.hosts, str) else tuple(self.hosts)
            if not all(isinstance(host, str) and host.strip(".*") for host in hosts):
                raise UnsupportedOptionError(f"hosts must be host names, got {self.hosts!r}")
            set_field("hosts", tuple(host.lower().rstrip(".") for host in hosts))
        if self.roots is not None:
            roots = (self.roots,) if isinstance(self.roots, (str, os.PathLike)) else tuple(self.roots)
            set_field("roots", tuple(os.path.realpath(root) for root in roots))
        if not isinstance(self.private_networks, bool):
            raise UnsupportedOptionError(f"private_networks must be True or False, got {self.private_networks!r}")
        timeout = self.timeout
        if not (isinstance(timeout, numbers.Real) and not isinstance(timeout, bool) and 0 < timeout < math.inf):
            raise UnsupportedOptionError(f"timeout must be a positive, finite number of seconds, got {timeout!r}")
        set_field("timeout", float(timeout))
        set_field("max_bytes", _positive_int("max_bytes", self.max_bytes))
        set_field("max_pixels", _positive_int("max_pixels", self.max_pixels))

    def with_limits(self, **limits: object) -> SourcePolicy:
        """This policy with the limits given (``timeout``, ``max_bytes``, ``max_pixels``) that are not ``None``."""
        given = {name: value for name, value in limits.items() if value is not None}
        return dataclasses.replace(self, **given) if given else self

    def require(self, kind: str, what: str) -> None:
        """Raise :class:`SourceNotAllowedError` unless sources of ``kind`` are allowed."""
        if kind not in self.allow:
            self.refuse(what, f"{kind} sources")

    def refuse(self, what: str, kinds: str) -> NoReturn:
        """Raise :class:`SourceNotAllowedError`: ``what`` is one of ``kinds``, which the policy does not allow."""
        allowed = ", ".join(kind for kind in SOURCE_KINDS if kind in self.allow) or "none"
        raise SourceNotAllowedError(f"{what}: {kinds} are not allowed by the source policy (allowed: {allowed})")

    def permits_path(self, path: str | os.PathLike) -> bool:
        """Whether ``path``, symlinks resolved, lies in one of ``roots`` (always, without roots)."""
        if self.roots is None:
            return True
        resolved = os.path.realpath(path)
        return any(os.path.commonpath((root, resolved)) == root for root in self.roots)

    def require_host(self, url: str, host: str | None) -> None:
        """Raise :class:`SourceNotAllowedError` unless ``host`` is on the host allow-list."""
        if self.hosts is None:
            return
        host = (host or "").lower().rstrip(".")
        if not any(host == name or (name.startswith("*.") and host.endswith(name[1:])) for name in self.hosts):
            raise SourceNotAllowedError(f"URL {url!r}: host {host!r} is not allowed by the source policy")

    def require_address(self, url: str, address: str) -> None:
        """Raise :class:`SourceNotAllowedError` when connecting to ``address`` breaks ``private_networks``."""
        if self.private_networks:
            return
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_global or ip.is_multicast:
            raise SourceNotAllowedError(
                f"URL {url!r} leads to {ip}, a non-public address: the source policy does not allow private networks"
            )


_process_policy = SourcePolicy()


def set_source_policy(policy: SourcePolicy) -> SourcePolicy:
    """Make ``policy`` the default of every later read in this process (:func:`vlfast.load_image`,
    :func:`vlfast.encode_image`, the drop-in processors); return the previous one."""
    global _process_policy
    if not isinstance(policy, SourcePolicy):
        raise UnsupportedOptionError(f"expected a vlfast.SourcePolicy, got {type(policy).__name__}")
    previous, _process_policy = _process_policy, policy
    return previous


def current_source_policy() -> SourcePolicy:
    """The process-wide default policy (see :func:`set_source_policy`)."""
    return _process_policy


# --- local files -----------------------------------------------------------------------------------------


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"))
    kinds += ((stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))
    return next((name for test, name in kinds if test(mode)), "special file")


def _require_regular(path: str, mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise ImageSourceError(f"{path!r} is a {_file_kind(mode)}, not a regular file: only image files are read")


def _opened_within_roots(descriptor: int, info: os.stat_result, path: str, policy: SourcePolicy) -> bool:
    """Whether the open file ``descriptor`` lies in the policy's roots: its path as the kernel reports it
    (``/proc/self/fd``), or, where that is not available, the file now at the resolved ``path`` is it."""
    try:
        return policy.permits_path(os.readlink(f"/proc/self/fd/{descriptor}"))
    except OSError:
        try:
            now = os.stat(path, follow_symlinks=False)
        except OSError:
            return False
        return (now.st_dev, now.st_ino) == (info.st_dev, info.st_ino)


def read_file(path: str | os.PathLike, policy: SourcePolicy) -> bytes:
    """The bytes of the regular file ``path``, if the policy allows it; FIFOs, devices and directories are
    refused before they are opened."""
    shown = os.fspath(path)
    policy.require("file", f"file {shown!r}")
    if not policy.permits_path(path):
        raise SourceNotAllowedError(f"file {shown!r} is outside the directories the source policy allows")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    if policy.roots is not None:
        # The file checked is the file opened: the resolved path, its last part not followed if a symlink was
        # swapped in since; the opened file is checked again below, whatever happened to the directories.
        path = os.path.realpath(path)
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        _require_regular(shown, os.stat(path).st_mode)
        descriptor = os.open(path, flags)  # non-blocking: a FIFO swapped in after the stat cannot block the open
    except FileNotFoundError as error:
        raise ImageSourceError(f"no such file: {shown!r}") from error
    except OSError as error:
        if policy.roots is not None and error.errno == errno.ELOOP:
            raise SourceNotAllowedError(f"file {shown!r} became a symlink while it was opened") from None
        raise ImageSourceError(f"cannot read file {shown!r}: {error.strerror or type(error).__name__}") from error
    with open(descriptor, "rb") as file:
        info = os.fstat(descriptor)
        _require_regular(shown, info.st_mode)
        if policy.roots is not None and not _opened_within_roots(descriptor, info, path, policy):
            raise SourceNotAllowedError(f"file {shown!r} is outside the directories the source policy allows")
        if info.st_size > policy.max_bytes:
            raise SourceTooLargeError(f"file {shown!r} has {info.st_size} bytes, over max_bytes={policy.max_bytes}")
        chunks: list[bytes] = []
        size = 0
        try:
            # In chunks: read(n) would reserve n bytes up front, and the size stat gives may be 0 (/proc).
            while chunk := file.read(min(_CHUNK_BYTES, policy.max_bytes + 1 - size)):
                size += len(chunk)
                if size > policy.max_bytes:
                    raise SourceTooLargeError(f"file {shown!r} has more than max_bytes={policy.max_bytes} bytes")
                chunks.append(chunk)
        except OSError as error:
            raise ImageSourceError(f"cannot read file {shown!r}: {error.strerror or type(error).__name__}") from error
    return b"".join(chunks)


# --- http(s) ---------------------------------------------------------------------------------------------


def check_url(url: str, policy: SourcePolicy) -> None:
    """Raise unless ``url`` is a well-formed http(s) URL the policy allows."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as error:
        raise ImageSourceError(f"malformed URL {url!r}: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ImageSourceError(f"URL {url!r}: only http(s) URLs are fetched")
    policy.require(scheme, f"URL {url!r}")
    if not parts.hostname:
        raise ImageSourceError(f"malformed URL {url!r}: no host")
    policy.require_host(url, parts.hostname)


class _Download:
    """One download: its policy and deadline, and the sockets it opened (shut down when the deadline passes)."""

    def __init__(self, url: str, policy: SourcePolicy):
        self.url = url
        self.policy = policy
        self.deadline = time.monotonic() + policy.timeout
        self.cancelled = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0 or self.cancelled.is_set():
            raise TimeoutError
        return left

    def connect(self, address: tuple[str, int], timeout: object = None, source_address: object = None) -> socket.socket:
        """``socket.create_connection`` that checks each resolved address against the policy."""
        host, port = address
        last_error: OSError | None = None
        for family, kind, proto, _, peer in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
            self.policy.require_address(self.url, peer[0])
            sock = socket.socket(family, kind, proto)
            with self._lock:
                self._sockets.append(sock)
            if self.cancelled.is_set():
                sock.close()
                raise TimeoutError
            try:
                sock.settimeout(self.remaining())
                if source_address:
                    sock.bind(source_address)
                sock.connect(peer)
                return sock
            except OSError as error:
                sock.close()
                last_error = error
        raise last_error or OSError(f"{host!r} has no address")

    def cancel(self) -> None:
        self.cancelled.set()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def opener(self) -> urllib.request.OpenerDirector:
        download = self

        def connection(base: type, *args: object, **kwargs: object) -> http.client.HTTPConnection:
            conn = base(*args, **kwargs)
            conn._create_connection = download.connect
            return conn

        class Http(urllib.request.HTTPHandler):
            def do_open(self, http_class, req, **kwargs):
                return super().do_open(functools.partial(connection, http_class), req, **kwargs)

        class Https(urllib.request.HTTPSHandler):
            def do_open(self, http_class, req, **kwargs):
                return super().do_open(functools.partial(connection, http_class), req, **kwargs)

        class Redirects(urllib.request.HTTPRedirectHandler):
            """Follow redirects (as the stock does), each one checked against the policy like the first URL."""

            def redirect_request(self, req, fp, code, msg, headers, newurl):
                if urllib.parse.urlsplit(newurl).scheme.lower() not in ("http", "https"):
                    raise ImageSourceError(
                        f"URL {req.full_url!r} redirects to {newurl!r}: only http(s) redirects are followed"
                    )
                check_url(newurl, download.policy)
                return super().redirect_request(req, fp, code, msg, headers, newurl)

        handlers: list[object] = [Http, Https, Redirects]
        if not download.policy.private_networks:
            # A proxy would resolve and connect to the target itself, out of the policy's sight.
            handlers.append(urllib.request.ProxyHandler({}))
        return urllib.request.build_opener(*handlers)

    def body(self) -> bytes:
        """The decoded body, within the policy's byte cap."""
        url, limit = self.url, self.policy.max_bytes
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with self.opener().open(request, timeout=self.remaining()) as response:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                raise SourceTooLargeError(f"URL {url!r} serves {int(declared)} bytes, over max_bytes={limit}")
            encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding not in ("", "identity", *_ZLIB_WBITS):
                raise ImageSourceError(f"URL {url!r} answered with an unsupported Content-Encoding {encoding!r}")
            inflater = zlib.decompressobj(_ZLIB_WBITS[encoding]) if encoding in _ZLIB_WBITS else None
            chunks: list[bytes] = []
            received = decoded = 0
            while chunk := response.read1(_CHUNK_BYTES):
                self.remaining()
                received += len(chunk)
                if inflater is not None:
                    chunk = self._inflate(inflater, chunk, limit - decoded)
                decoded += len(chunk)
                if received > limit or decoded > limit:
                    raise SourceTooLargeError(f"URL {url!r} sent more than max_bytes={limit} bytes")
                chunks.append(chunk)
            if inflater is not None and not inflater.eof:
                raise ImageSourceError(f"URL {url!r} sent a truncated {encoding} body")
            return b"".join(chunks)

    def _inflate(self, inflater: zlib._Decompress, chunk: bytes, room: int) -> bytes:
        """Decompress ``chunk``, stopping one byte past ``room`` (a compression bomb never expands in memory)."""
        try:
            out = inflater.decompress(chunk, room + 1)
        except zlib.error as error:
            raise ImageSourceError(f"URL {self.url!r} sent a corrupt compressed body: {error}") from None
        if len(out) > room:
            raise SourceTooLargeError(f"URL {self.url!r} sent more than max_bytes={self.policy.max_bytes} bytes")
        return out


def _fetch_now(download: _Download) -> bytes:
    url, timeout = download.url, download.policy.timeout
    try:
        return download.body()
    except ImageSourceError:
        raise
    except urllib.error.HTTPError as error:
        raise ImageSourceError(f"URL {url!r} answered HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError) or download.cancelled.is_set():
            raise SourceTimeoutError(f"URL {url!r} timed out after {timeout:g} s") from None
        reason = getattr(error.reason, "strerror", None) or error.reason
        raise ImageSourceError(f"cannot fetch URL {url!r}: {reason}") from None
    except TimeoutError:
        raise SourceTimeoutError(f"URL {url!r} timed out after {timeout:g} s") from None
    except (http.client.HTTPException, OSError, ValueError) as error:
        if download.cancelled.is_set():
            raise SourceTimeoutError(f"URL {url!r} timed out after {timeout:g} s") from None
        raise ImageSourceError(f"cannot fetch URL {url!r}: {type(error).__name__}: {error}") from None


#: Downloads running at once, those past their deadline included: a name lookup cannot be interrupted, so a
#: download whose lookup hangs keeps its thread until the lookup returns. Past this many, fetches are refused.
MAX_LIVE_DOWNLOADS = 256
_download_slots = threading.BoundedSemaphore(MAX_LIVE_DOWNLOADS)


def fetch_url(url: str, policy: SourcePolicy) -> bytes:
    """The body of an http(s) URL the policy allows, all of it within ``policy.timeout`` seconds.

    The download runs on a worker thread; when the deadline passes, its sockets are shut down and
    :class:`SourceTimeoutError` is raised at once, however slowly the server sends (headers included)
    and however long a name lookup takes. At most :data:`MAX_LIVE_DOWNLOADS` worker threads live at once.
    """
    check_url(url, policy)
    slots = _download_slots
    if not slots.acquire(blocking=False):
        raise ImageSourceError(
            f"URL {url!r} not fetched: too many downloads are still running (name lookups past their deadline "
            "cannot be interrupted); try again later"
        )
    download = _Download(url, policy)
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["data"] = _fetch_now(download)
        except BaseException as error:  # handed to the caller's thread
            outcome["error"] = error
        finally:
            slots.release()

    worker = threading.Thread(target=run, name="vlfast-fetch", daemon=True)
    try:
        worker.start()
    except RuntimeError as error:  # no thread could be started
        slots.release()
        raise ImageSourceError(f"URL {url!r} not fetched: {error}") from None
    worker.join(policy.timeout)
    if worker.is_alive():
        download.cancel()
        raise SourceTimeoutError(f"URL {url!r} timed out after {policy.timeout:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["data"]


# --- videos ----------------------------------------------------------------------------------------------

#: Hosts whose URLs the stock video loader hands to yt-dlp, whose downloads no policy limit reaches.
_YT_DLP_HOSTS = ("www.youtube.com", "youtube.com")


def _check_local_file(path: str, policy: SourcePolicy) -> None:
    policy.require("file", f"file {path!r}")
    if not policy.permits_path(path):
        raise SourceNotAllowedError(f"file {path!r} is outside the directories the source policy allows")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ImageSourceError(f"no such file: {path!r}") from None
    except OSError as error:
        raise ImageSourceError(f"cannot read file {path!r}: {error.strerror or type(error).__name__}") from None
    _require_regular(path, mode)


@contextlib.contextmanager
def video_file(source: str, policy: SourcePolicy) -> Iterator[str]:
    """A path or URL for the stock video loader to open, checked against ``policy`` first.

    A local path must be a regular file the policy allows (a FIFO or device would block the decoder). An
    http(s) URL is downloaded here, within the policy's deadline, byte cap and address checks, into a
    temporary file (removed on exit) whose path is yielded: the stock decoder reads the same bytes it would
    have downloaded. URLs the stock hands to yt-dlp are passed on only under the default, unrestricted policy.
    """
    parts = urllib.parse.urlsplit(source)
    if parts.scheme.lower() not in ("http", "https"):
        _check_local_file(source, policy)
        yield source
        return
    check_url(source, policy)
    if (parts.hostname or "").lower() in _YT_DLP_HOSTS:
        if policy != SourcePolicy():
            raise SourceNotAllowedError(
                f"URL {source!r}: the stock downloads it with yt-dlp, outside the source policy's limits; download "
                "the video and pass its path"
            )
        yield source
        return
    data = fetch_url(source, policy)
    suffix = os.path.splitext(parts.path)[1][:16]
    descriptor, path = tempfile.mkstemp(prefix="vlfast-video-", suffix=suffix)
    try:
        with open(descriptor, "wb") as file:
            file.write(data)
        yield path
    finally:
        os.unlink(path)
