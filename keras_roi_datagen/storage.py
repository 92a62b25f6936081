"""Files behind URLs: `s3://`, `gs://`, `https://` and any other fsspec protocol.

Tables and images may be given as URLs when `fsspec` (and the protocol's own
package, such as `s3fs` or `gcsfs`) is installed: `pip install
"keras-roi-datagen[storage]"`. Everything else in the library sees only two
functions: `open_image` (a local path, or the bytes behind a URL) and
`local_table` (a local copy of a table).

- **Options and credentials.** `storage_options` is passed to fsspec as
  pandas does (`{"anon": True}`, `{"key": ..., "secret": ...}`,
  `{"client_kwargs": {"endpoint_url": ...}}`); without it, each protocol finds
  credentials where it usually does (environment variables, `~/.aws`, the
  instance's role, `gcloud` application-default credentials).
- **Retries.** A transient failure (a connection error, a timeout, HTTP 408,
  429 or 5xx) is retried with exponential backoff, `RETRY.attempts` requests
  in all. A missing file or a refusal is not retried. What finally fails
  raises `StorageError` naming the URL. Retries are counted (`retry_count`),
  and `RoiDataset.validate()` reports them.
- **Per process.** Filesystem objects are created in the process that uses
  them and kept per process id, never inherited by a forked child (s3fs's
  event loop and connections are not fork-safe, fsspec/s3fs#914).
- **Concurrency.** `prefetch` reads a batch's distinct images on a few
  threads of its own (a pool per call: nothing a fork could inherit).
- **Local caching.** fsspec's URL chaining works as is: with
  `simplecache::s3://bucket/images` as `image_dir`, each image is downloaded
  once per process into a temporary folder, and `filecache::` keeps the copies
  across runs (`storage_options={"s3": {...}, "filecache":
  {"cache_storage": "/tmp/roi-cache"}}`: with chaining, options are keyed by
  protocol, as fsspec expects).

Example:
```python
ds = RoiDataset("s3://bucket/regions.parquet", image_dir="s3://bucket/images",
                storage_options={"anon": True}, box_cols=("x", "y", "w", "h"))
```
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from keras_roi_datagen.errors import StorageError

__all__ = [
    "RETRY",
    "Retry",
    "StorageStats",
    "counting_retries",
    "fetch_table",
    "filesystem",
    "is_url",
    "local_table",
    "open_image",
    "prefetch",
    "read_bytes",
    "require_fsspec",
    "retried_urls",
    "retry_count",
    "serving",
    "url_dirname",
    "url_join",
]

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://|^[a-zA-Z][a-zA-Z0-9+.-]*::")
_EXTRA_HINT = 'Install the storage extra: pip install "keras-roi-datagen[storage]"'
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Retry:
    """How transient failures are retried: exponential backoff, bounded.

    Args:
        attempts: Requests in all, the first included. Defaults to 5.
        initial_delay: Seconds before the first retry. Defaults to 0.2.
        max_delay: The longest wait between two requests. Defaults to 5.
        multiplier: Growth of the wait per retry. Defaults to 2.
    """

    attempts: int = 5
    initial_delay: float = 0.2
    max_delay: float = 5.0
    multiplier: float = 2.0

    def delays(self) -> Iterator[float]:
        """Yields the wait before each retry (with up to 10% jitter)."""
        jitter = random.Random()  # a private generator: the global one is the user's
        delay = self.initial_delay
        for _ in range(self.attempts - 1):
            yield min(self.max_delay, delay) * (1 + 0.1 * jitter.random())
            delay *= self.multiplier


RETRY = Retry()
"""The retry policy of every remote read: 5 requests in all, exponential backoff with jitter."""

# Per process: {(pid, protocol, options): filesystem}. A forked child has another
# pid, so it never uses its parent's objects.
_FILESYSTEMS: dict[tuple[int, str, str], Any] = {}
# The URLs retried in this process, one entry per retry (list.append is atomic
# under the GIL: no lock a fork could inherit).
_RETRIED: list[str] = []


class _Prefetched(threading.local):
    data: Mapping[str, bytes | StorageError] | None = None
    options: Mapping[str, Any] | None = None
    retried: list[str] | None = None  # where this thread's retries are also counted


_LOCAL = _Prefetched()


def is_url(path: object) -> bool:
    """Tells whether `path` is a URL (`s3://...`, `simplecache::s3://...`).

    Args:
        path: Anything; only strings can be URLs.

    Returns:
        Whether `path` names a protocol. `file://` counts as a URL too.

    Example:
    >>> is_url("s3://bucket/a.jpg"), is_url("images/a.jpg")
    (True, False)
    """
    return isinstance(path, str) and bool(_URL.match(path))


def require_fsspec() -> Any:
    """Returns the `fsspec` module, or raises naming the extra to install.

    Raises:
        ImportError: When fsspec is not installed.
    """
    try:
        import fsspec
    except ImportError:
        raise ImportError(f"Reading URLs needs fsspec. {_EXTRA_HINT}") from None
    return fsspec


def url_dirname(url: str) -> str:
    """Returns the folder part of a URL (`s3://b/x/t.csv` -> `s3://b/x`).

    Example:
    >>> url_dirname("s3://bucket/data/table.csv")
    's3://bucket/data'
    """
    head, sep, path = url.rpartition("://")
    return head + sep + path.rsplit("/", 1)[0] if "/" in path else url


def url_join(base: str, name: str) -> str:
    """Joins a relative name to a URL folder, normalising `.` and `..`.

    Example:
    >>> url_join("s3://bucket/images", "cats/../dogs/a.jpg")
    's3://bucket/images/dogs/a.jpg'
    """
    head, sep, path = base.rpartition("://")
    joined = "/".join(part for part in (path.rstrip("/"), name.replace("\\", "/")) if part)
    parts: list[str] = []
    for part in joined.split("/"):
        if part == "..":
            if len(parts) > 1:  # never above the bucket or host
                parts.pop()
        elif part not in ("", ".") or not parts:
            parts.append(part)
    return head + sep + "/".join(parts)


def _options_key(options: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(options or {}), sort_keys=True, default=repr)


def filesystem(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """Returns this process's filesystem for `url`, and the path within it.

    Args:
        url: A URL, possibly chained (`simplecache::s3://...`).
        storage_options: Passed to fsspec. Defaults to `None`.

    Returns:
        `(filesystem, path)`.

    Raises:
        ImportError: When fsspec or the protocol's package is missing.
    """
    fsspec = require_fsspec()
    protocol = url.split("://", 1)[0]
    key = (os.getpid(), protocol, _options_key(storage_options))
    found = _FILESYSTEMS.get(key)
    if found is not None and "::" not in url:
        return found, found._strip_protocol(url)
    try:
        fs, path = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    except ImportError as exc:
        raise ImportError(f"Reading {url!r} needs another package: {exc} {_EXTRA_HINT}") from None
    if any(k[0] != key[0] for k in _FILESYSTEMS):
        _FILESYSTEMS.clear()  # a forked child never uses its parent's objects
    _FILESYSTEMS[key] = fs
    return fs, path


def _status(exc: BaseException) -> int | None:
    for name in ("status", "status_code", "code"):
        value = getattr(exc, name, None)
        if isinstance(value, int):
            return value
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        value = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return value if isinstance(value, int) else None
    return None


def _classify(exc: BaseException) -> str | None:
    """Returns the kind of a final failure, or `None` when `exc` is transient."""
    if isinstance(exc, FileNotFoundError):
        return "storage_not_found"
    if isinstance(exc, PermissionError):
        return "storage_denied"
    if isinstance(exc, (IsADirectoryError, NotADirectoryError)):
        return "storage_failed"
    status = _status(exc)
    if status is not None:
        if status in (401, 403):
            return "storage_denied"
        if status in (404, 410):
            return "storage_not_found"
        return None if status in _RETRYABLE_STATUS else "storage_failed"
    text = str(exc)
    if "AccessDenied" in text or "Forbidden" in text or "InvalidAccessKeyId" in text:
        return "storage_denied"
    if "NoSuchKey" in text or "NoSuchBucket" in text:
        return "storage_not_found"
    transient = (OSError, TimeoutError, ConnectionError)
    with contextlib.suppress(ImportError):
        import aiohttp

        transient = (*transient, aiohttp.ClientError)  # type: ignore[assignment]
    return None if isinstance(exc, transient) else "storage_failed"


_WHAT = {"storage_not_found": "not found", "storage_denied": "access denied",
         "storage_failed": "read failed"}


def read_bytes(url: str, storage_options: Mapping[str, Any] | None = None,
               retry: Retry | None = None, *, head: int | None = None) -> bytes:
    """Reads the file behind `url` (or its first bytes), retrying transient failures.

    Args:
        url: A URL.
        storage_options: Passed to fsspec. Defaults to `None`.
        retry: The retry policy. Defaults to `RETRY`.
        head: Read only the first `head` bytes (a range request). Defaults
            to `None` (the whole file). A server that ignores ranges sends
            the whole file, which is returned as it came.

    Returns:
        The file's bytes: fewer than `head` when the file is shorter.

    Raises:
        StorageError: Naming the URL, when the file is missing, access is
            denied, or the last retry failed.
        ImportError: When fsspec (or the protocol's package) is missing.
    """
    retry = retry or RETRY
    delays = retry.delays()
    attempts = 0
    while True:
        attempts += 1
        try:
            fs, path = filesystem(url, storage_options)
            data: bytes = (fs.cat_file(path) if head is None
                           else fs.cat_file(path, start=0, end=head))
            return data
        except ImportError:
            raise
        except Exception as exc:  # fsspec backends raise many kinds
            kind = _classify(exc)
            delay = next(delays, None) if kind is None else None
            if delay is None:
                kind = kind or "storage_failed"
                tries = f" after {attempts} attempts" if attempts > 1 else ""
                raise StorageError(
                    f"{url}: {_WHAT[kind]}{tries} ({type(exc).__name__}: {exc}).",
                    url=url, kind=kind, attempts=attempts) from exc
            _RETRIED.append(url)
            if _LOCAL.retried is not None:
                _LOCAL.retried.append(url)
            time.sleep(delay)


def retry_count() -> int:
    """Returns how many requests this process has retried so far."""
    return len(_RETRIED)


def retried_urls(since: int = 0) -> list[str]:
    """Returns the URLs retried in this process, from the `since`-th retry on."""
    return _RETRIED[since:]


@contextlib.contextmanager
def counting_retries() -> Iterator[list[str]]:
    """Collects the URLs retried by this thread (and the fetch threads it starts) in a block.

    Unlike `retry_count`, which counts every thread of the process, this
    counts only the work done for the caller, so concurrent decoders each
    report their own retries (worker processes send theirs back with each
    batch). An enclosing block counts them too.

    Yields:
        The list that receives one URL per retry.

    Example:
    >>> with counting_retries() as retried:
    ...     pass
    >>> retried
    []
    """
    outer, found = _LOCAL.retried, list[str]()
    _LOCAL.retried = found
    try:
        yield found
    finally:
        _LOCAL.retried = outer
        if outer is not None:
            outer.extend(found)


@dataclass
class StorageStats:
    """Requests to URLs retried after transient failures, and which URLs.

    Counted in the process that made them, worker processes included (they
    send their counts back with each batch).

    Args:
        retries: Requests retried in all.
        retried_urls: Retries per URL.
    """

    retries: int = 0
    retried_urls: dict[str, int] = field(default_factory=dict)

    def add(self, urls: Iterable[str]) -> None:
        """Counts one retry per URL given."""
        for url in urls:
            self.retries += 1
            self.retried_urls[url] = self.retried_urls.get(url, 0) + 1

    def since(self, before: StorageStats) -> StorageStats:
        """The retries counted after the snapshot `before` (`copy()`) was taken."""
        found = StorageStats()
        for url, count in self.retried_urls.items():
            extra = count - before.retried_urls.get(url, 0)
            if extra:
                found.retries += extra
                found.retried_urls[url] = extra
        return found

    def copy(self) -> StorageStats:
        """A snapshot."""
        return StorageStats(self.retries, dict(self.retried_urls))

    def describe(self, limit: int = 5) -> str:
        """One line: how many requests were retried, naming the URLs most retried.

        Example:
        >>> stats = StorageStats()
        >>> stats.add(["s3://b/a.jpg", "s3://b/a.jpg"])
        >>> stats.describe()
        '2 requests retried after transient failures: s3://b/a.jpg (2).'
        """
        ranked = sorted(self.retried_urls.items(), key=lambda item: (-item[1], item[0]))
        shown = ", ".join(f"{url} ({count})" for url, count in ranked[:limit])
        more = f" and {len(ranked) - limit} more URLs" if len(ranked) > limit else ""
        noun = "request" if self.retries == 1 else "requests"
        return f"{self.retries} {noun} retried after transient failures: {shown}{more}."


def _fetch_many(urls: list[str], storage_options: Mapping[str, Any] | None,
                threads: int) -> dict[str, bytes | StorageError]:
    retried = _LOCAL.retried  # the caller's count, continued in the fetch threads

    def one(url: str) -> bytes | StorageError:
        previous, _LOCAL.retried = _LOCAL.retried, retried
        try:
            return read_bytes(url, storage_options)
        except StorageError as exc:
            return exc
        finally:
            _LOCAL.retried = previous

    if len(urls) == 1:
        return {urls[0]: one(urls[0])}
    with ThreadPoolExecutor(min(threads, len(urls)), thread_name_prefix="roi-fetch") as pool:
        return dict(zip(urls, pool.map(one, urls)))


@contextlib.contextmanager
def prefetch(paths: Iterable[str], storage_options: Mapping[str, Any] | None = None,
             threads: int = 8) -> Iterator[None]:
    """Reads the URLs among `paths` concurrently, for `open_image` in this thread.

    Local paths are left alone. Inside the block, `open_image(url)` serves the
    bytes read here; a URL not prefetched is read on demand with the same
    `storage_options`.

    Args:
        paths: Image paths and URLs (a batch's distinct images).
        storage_options: Passed to fsspec. Defaults to `None`.
        threads: Concurrent requests at most. Defaults to 8.
    """
    urls = list(dict.fromkeys(p for p in paths if is_url(p)))
    with serving(_fetch_many(urls, storage_options, threads) if urls else None, storage_options):
        yield


@contextlib.contextmanager
def serving(data: Mapping[str, bytes | StorageError] | None,
            storage_options: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Makes `open_image(url)` in this thread serve the given bytes (or raise the given error).

    Used to open a URL from bytes already read, such as its first kilobytes
    (`read_bytes(url, head=...)`). URLs not in `data` are read on demand.

    Args:
        data: Bytes (or the `StorageError` to raise) per URL.
        storage_options: For URLs read on demand. Defaults to `None`.
    """
    previous = (_LOCAL.data, _LOCAL.options)
    _LOCAL.data, _LOCAL.options = data, storage_options
    try:
        yield
    finally:
        _LOCAL.data, _LOCAL.options = previous


def open_image(path: str) -> str | io.BytesIO:
    """Returns what Pillow should open: the local path, or the URL's bytes.

    Args:
        path: A local path or a URL.

    Returns:
        `path` itself when local, else a `BytesIO` of the file.

    Raises:
        StorageError: When a URL cannot be read (see `read_bytes`).
    """
    if not is_url(path):
        return path
    found = _LOCAL.data.get(path) if _LOCAL.data is not None else None
    if found is None:
        found = read_bytes(path, _LOCAL.options)
    if isinstance(found, StorageError):
        raise found
    return io.BytesIO(found)


def _cache_root() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "keras_roi_datagen")


def remote_fingerprint(url: str, storage_options: Mapping[str, Any] | None = None) -> str:
    """Returns what identifies a remote file's version: size, ETag, modification time.

    Raises:
        StorageError: When the file cannot be found or read.
    """
    fs, path = filesystem(url, storage_options)
    try:
        info = fs.info(path)
    except Exception as exc:
        kind = _classify(exc) or "storage_failed"
        raise StorageError(f"{url}: {_WHAT[kind]} ({type(exc).__name__}: {exc}).",
                           url=url, kind=kind) from exc
    keys = ("size", "ETag", "etag", "LastModified", "mtime", "last_modified", "md5Hash")
    return json.dumps({k: str(info[k]) for k in keys if k in info}, sort_keys=True)


def local_table(url: str, storage_options: Mapping[str, Any] | None = None,
                cache_dir: str | None = None) -> str:
    """Returns a local copy of the table at `url`, downloading it when it changed.

    The copy is kept under `cache_dir` (default
    `~/.cache/keras_roi_datagen/tables`), named by the URL and its version
    (size, ETag, modification time), so an unchanged table is read once.

    Args:
        url: The table's URL.
        storage_options: Passed to fsspec. Defaults to `None`.
        cache_dir: Where copies are kept. Defaults to `None` (see above).

    Returns:
        The local file's path (same extension as the URL).

    Raises:
        StorageError: When the table cannot be read.
    """
    return fetch_table(url, storage_options, cache_dir)[0]


def fetch_table(url: str, storage_options: Mapping[str, Any] | None = None,
                cache_dir: str | None = None) -> tuple[str, str]:
    """Like `local_table`, and also returns the version the copy is of.

    Args:
        url: The table's URL.
        storage_options: Passed to fsspec. Defaults to `None`.
        cache_dir: Where copies are kept. Defaults to `None` (see `local_table`).

    Returns:
        `(local_path, version)`, the version as `remote_fingerprint` gives it.

    Raises:
        StorageError: When the table cannot be read.
    """
    version = remote_fingerprint(url, storage_options)
    digest = hashlib.sha256(f"{url}\n{version}".encode()).hexdigest()[:24]
    folder = cache_dir or os.path.join(_cache_root(), "tables")
    os.makedirs(folder, exist_ok=True)
    name = url.rstrip("/").rsplit("/", 1)[-1]
    target = os.path.join(folder, f"{digest}-{name}")
    if not os.path.exists(target):
        data = read_bytes(url, storage_options)
        handle, partial = tempfile.mkstemp(dir=folder, suffix=".part")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(partial, target)  # atomic: a reader never sees half a file
    return target, version
