"""The crop cache: each row's final crop, written once and read by later epochs.

`RoiDataset(cache=...)` wraps its executor in a `CachingExecutor`. Before a
batch is decoded, every row's crop is looked up by its key; only the rows
not found are decoded (in the dataset's threads or processes), and their
crops are stored for the next epoch. Batches are byte-identical with and
without the cache, because a crop depends only on its own row and image (see
`keras_roi_datagen.decode`) and the cache stores the decoder's `uint8` pixels as they are.

Key. A row's key is a hash of everything its crop depends on:

- the image file's path, size and modification time (`st_mtime_ns`), so
  changing or touching an image invalidates the rows of that image only;
- the row's box (its exact float64 values) and whether it is relative;
- the size of the image's smallest region in the dataset (`BatchJob.smallest`),
  which can set the JPEG's decode scale;
- every decode option (`DecodeOptions`: `image_size`, `interpolation`,
  `color_mode`, `max_image_pixels`, `fast_decode`, and any option added
  later, since the whole dataclass is hashed), so changing one invalidates
  every entry;
- the cache format and the library version.

Two identical rows share one entry (their crops are the same bytes).

Entries. In a folder, each entry is one file `<key[:2]>/<key>.crop`: a
header (magic, shape, payload length, CRC-32 of the pixels) and the pixels.
It is written to a temporary file and renamed into place (`os.replace`,
atomic), so a reader sees a whole entry or none; an entry that fails its
checks on reading (a torn or corrupted file) counts as `invalid`, is
decoded again and rewritten. Temporary files left by a killed process are
removed when a cache folder is next opened. Several processes may share a
folder.

Size. `cache_max_bytes` bounds the pixels stored (defaults:
`DEFAULT_MEMORY_BYTES` in memory, `DEFAULT_FOLDER_BYTES` in a folder). The
policy is "keep what is there, stop adding when full": once an entry would
pass the limit it is not stored (and `stats["full"]` counts it), entries
already stored stay and keep being used, and nothing is evicted, so a
cache never churns. Delete the folder (or lower the table) to start again.

Augmentation. A cache holds final crops, so it cannot serve random
augmentation, which must differ every epoch. `check_cache_allowed` refuses
the combination with a clear error rather than silently caching one draw.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import threading
import uuid
import zlib
from concurrent.futures import Future, InvalidStateError
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from keras_roi_datagen.decode import BatchJob, BatchResult, DecodeOptions, new_pixels
from keras_roi_datagen.workers import BatchExecutor

__all__ = [
    "DEFAULT_FOLDER_BYTES",
    "DEFAULT_MEMORY_BYTES",
    "CachingExecutor",
    "CropStore",
    "FolderCropStore",
    "MemoryCropStore",
    "check_cache_allowed",
    "open_cache",
    "row_keys",
]

DEFAULT_MEMORY_BYTES = 2 * 1024**3
DEFAULT_FOLDER_BYTES = 64 * 1024**3
_FORMAT = b"roi-crop-v1"
_HEADER = struct.Struct("<8sHHHQI")  # magic, height, width, channels, payload bytes, crc32
_MAGIC = b"ROICROP1"
_TMP = ".tmp-"


def check_cache_allowed(cache: Any, augment: Any) -> None:
    """Refuses a crop cache together with random augmentation.

    A cache stores each row's final crop once; an augmented crop must differ
    every epoch, so caching it would silently freeze one random draw.

    Args:
        cache: The dataset's `cache` argument.
        augment: The dataset's augmentation argument (`None` or falsy: none).

    Raises:
        ValueError: If both are given.
    """
    if cache not in (None, False) and augment:
        raise ValueError(
            "`cache` stores each row's final crop, so it cannot be combined with random "
            "augmentation (every epoch would see the first epoch's draw). Drop `cache=` or the "
            f"augmentation. Received: cache={cache!r}, augment={augment!r}")


def _library_version() -> str:
    from keras_roi_datagen import __version__

    return __version__


class CropStore:
    """Where crops are kept; counts what happened in `stats`.

    Args:
        max_bytes: The most pixel bytes stored (see the module docstring).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self.used = 0
        self._lock = threading.Lock()
        self.stats = {"hits": 0, "misses": 0, "invalid": 0, "writes": 0, "full": 0}

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.stats[name] += n

    def _reserve(self, size: int) -> bool:
        with self._lock:
            if self.used + size > self.max_bytes:
                self.stats["full"] += 1
                return False
            self.used += size
            self.stats["writes"] += 1
            return True

    def get(self, key: str, shape: tuple[int, int, int]) -> np.ndarray | None:
        """Returns the crop stored under `key`, or `None` (missing or invalid)."""
        raise NotImplementedError

    def put(self, key: str, pixels: np.ndarray) -> None:
        """Stores a crop under `key`, unless the store is full."""
        raise NotImplementedError


class MemoryCropStore(CropStore):
    """Crops in this process's memory (lost at exit; not carried by pickling).

    Args:
        max_bytes: The most pixel bytes stored. Defaults to
            `DEFAULT_MEMORY_BYTES`.
    """

    def __init__(self, max_bytes: int = DEFAULT_MEMORY_BYTES) -> None:
        super().__init__(max_bytes)
        self._entries: dict[str, np.ndarray] = {}

    def get(self, key: str, shape: tuple[int, int, int]) -> np.ndarray | None:
        """Returns the crop stored under `key`, or `None`."""
        found = self._entries.get(key)
        return found if found is not None and found.shape == shape else None

    def put(self, key: str, pixels: np.ndarray) -> None:
        """Stores a read-only copy of `pixels`, unless full or already there."""
        if key in self._entries or not self._reserve(pixels.nbytes):
            return
        kept = np.array(pixels, dtype=np.uint8, copy=True)
        kept.flags.writeable = False
        self._entries[key] = kept

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_entries"], state["used"], state["_lock"] = {}, 0, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class FolderCropStore(CropStore):
    """Crops in files under a folder, shared by processes and runs.

    Args:
        folder: The cache folder (created if missing).
        max_bytes: The most bytes stored. Defaults to `DEFAULT_FOLDER_BYTES`.
    """

    def __init__(self, folder: str | os.PathLike[str], max_bytes: int = DEFAULT_FOLDER_BYTES) -> None:
        super().__init__(max_bytes)
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.used = self._scan()

    def _scan(self) -> int:
        """Sums the entries' sizes and removes temporary files of dead writers."""
        total = 0
        for sub in self.folder.iterdir():
            if not sub.is_dir():
                continue
            for entry in os.scandir(sub):
                if entry.name.startswith(_TMP):
                    if not _writer_alive(entry.name):
                        with contextlib.suppress(OSError):
                            os.unlink(entry.path)
                elif entry.name.endswith(".crop"):
                    with contextlib.suppress(OSError):
                        total += entry.stat().st_size
        return total

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.crop"

    def get(self, key: str, shape: tuple[int, int, int]) -> np.ndarray | None:
        """Reads and checks the entry of `key`; `None` if missing or invalid."""
        try:
            with open(self._path(key), "rb") as handle:
                data = handle.read()
        except OSError:
            return None
        pixels = _decode_entry(data, shape)
        if pixels is None:
            self._count("invalid")
        return pixels

    def put(self, key: str, pixels: np.ndarray) -> None:
        """Writes the entry of `key` atomically, unless the store is full."""
        payload = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
        header = _HEADER.pack(_MAGIC, *pixels.shape, len(payload), zlib.crc32(payload))
        if not self._reserve(len(header) + len(payload)):
            return
        target = self._path(key)
        target.parent.mkdir(exist_ok=True)
        temporary = target.parent / f"{_TMP}{os.getpid()}-{uuid.uuid4().hex}"
        try:
            with open(temporary, "wb") as handle:
                handle.write(header + payload)
            os.replace(temporary, target)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def _writer_alive(name: str) -> bool:
    try:
        pid = int(name[len(_TMP):].split("-", 1)[0])
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return pid != os.getpid()


def _decode_entry(data: bytes, shape: tuple[int, int, int]) -> np.ndarray | None:
    if len(data) < _HEADER.size:
        return None
    magic, height, width, channels, length, crc = _HEADER.unpack_from(data)
    payload = memoryview(data)[_HEADER.size:]
    if (magic != _MAGIC or (height, width, channels) != shape or length != len(payload)
            or length != height * width * channels or zlib.crc32(payload) != crc):
        return None
    return np.frombuffer(data, dtype=np.uint8, offset=_HEADER.size).reshape(shape)


def open_cache(cache: Any, max_bytes: int | None = None) -> CropStore | None:
    """Returns the store for a dataset's `cache` argument.

    Args:
        cache: `None`/`False` (no cache), `True` (memory), a folder path, or
            a `CropStore`.
        max_bytes: `cache_max_bytes`; defaults to the store's default.

    Returns:
        The `CropStore`, or `None`.
    """
    if cache is None or cache is False:
        return None
    if isinstance(cache, CropStore):
        return cache
    if cache is True:
        return MemoryCropStore(max_bytes if max_bytes is not None else DEFAULT_MEMORY_BYTES)
    return FolderCropStore(cache, max_bytes if max_bytes is not None else DEFAULT_FOLDER_BYTES)


def _file_signature(path: str) -> bytes | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return f"{stat.st_size}:{stat.st_mtime_ns}".encode()


def _options_bytes(options: DecodeOptions) -> bytes:
    return repr(options).encode()


def row_keys(job: BatchJob) -> list[str | None]:
    """Returns each row's cache key (`None` when its image cannot be stat'ed).

    Args:
        job: The batch's `BatchJob`.

    Returns:
        One hex key per row, in batch order.
    """
    common = hashlib.blake2b(digest_size=20)
    common.update(_FORMAT + b"\0" + _library_version().encode() + b"\0")
    common.update(_options_bytes(job.options) + (b"\0rel" if job.relative else b"\0pix"))
    images: list[Any] = []
    for image_no, path in enumerate(job.paths):
        signature = _file_signature(path)
        if signature is None:
            images.append(None)
            continue
        digest = common.copy()
        digest.update(path.encode("utf-8", "surrogateescape") + b"\0" + signature + b"\0")
        if job.smallest is not None:  # it can set the image's decode scale
            digest.update(np.ascontiguousarray(job.smallest[image_no], np.float32).tobytes())
        images.append(digest)
    boxes = np.ascontiguousarray(job.boxes, dtype=np.float64)
    keys: list[str | None] = []
    for position, image_no in enumerate(np.asarray(job.path_index).tolist()):
        image = images[image_no]
        if image is None:
            keys.append(None)
            continue
        digest = image.copy()
        digest.update(boxes[position].tobytes())
        keys.append(digest.hexdigest())
    return keys


class CachingExecutor:
    """Serves rows from a `CropStore`, and decodes the rest with another executor.

    Args:
        inner: The executor that decodes the rows not in the store.
        store: The `CropStore`.
    """

    def __init__(self, inner: BatchExecutor, store: CropStore) -> None:
        self.inner = inner
        self.store = store

    @property
    def pids(self) -> list[int]:
        """The inner executor's worker processes."""
        return list(getattr(self.inner, "pids", []))

    def submit(self, job: BatchJob) -> Future[BatchResult]:
        """Looks every row up; submits the missing ones to the inner executor."""
        height, width = job.options.image_size
        shape = (height, width, job.options.channels)
        keys = row_keys(job)
        pixels = new_pixels((len(keys), *shape))
        missing = []
        for position, key in enumerate(keys):
            found = self.store.get(key, shape) if key is not None else None
            if found is None:
                missing.append(position)
            else:
                pixels[position] = found
        self.store._count("hits", len(keys) - len(missing))
        self.store._count("misses", len(missing))
        outer: Future[BatchResult] = Future()
        if not missing:
            outer.set_result(BatchResult(pixels))
            return outer
        wanted = np.asarray(missing, dtype=np.int64)
        part = replace(job, path_index=np.asarray(job.path_index)[wanted], boxes=job.boxes[wanted])
        inner = self.inner.submit(part)

        def merge(done: Future[BatchResult]) -> None:
            if done.cancelled() or outer.cancelled():
                outer.cancel()
                return
            try:
                result = done.result()
                failed = {failure.position for failure in result.failures}
                pixels[wanted] = result.pixels
                for local, position in enumerate(missing):
                    key = keys[position]
                    if local not in failed and key is not None:
                        self.store.put(key, result.pixels[local])
                failures = [replace(f, position=missing[f.position]) for f in result.failures]
                merged = BatchResult(pixels, failures, result.image_sizes, result.retries)
            except BaseException as exc:
                with contextlib.suppress(InvalidStateError):  # cancelled meanwhile
                    outer.set_exception(exc)
                return
            with contextlib.suppress(InvalidStateError):
                outer.set_result(merged)

        outer.add_done_callback(lambda done: inner.cancel() if done.cancelled() else None)
        inner.add_done_callback(merge)
        return outer

    def cancel_pending(self) -> None:
        """Cancels the inner executor's queued jobs."""
        self.inner.cancel_pending()

    def close(self) -> None:
        """Closes the inner executor (the store stays usable)."""
        self.inner.close()
