"""The compiled index on disk: memory-mapped columns, reused while the table is unchanged.

Building the index of a big table takes seconds to minutes; reading it back
from here takes milliseconds, and its columns are memory-mapped, so they cost
no memory until touched and several processes share one copy (a dataset
pickled into a torch `DataLoader` worker maps the same files; nothing is
pickled per row).

A cache entry is a folder named by a key over:

- the table file: its size, modification time and a fingerprint of its bytes
  (sha256 of its first and last MiB and 14 blocks of 64 KiB spread over it),
  or, for a URL, its size, ETag and modification time;
- the `TableSpec` and any given vocabularies;
- the cache format version.

A table that changes gets a new key, so its index is rebuilt (the old entry
stays until removed). Inside the folder:

- `meta.json`: vocabularies, problems, counts, and each column's dtype and
  shape (and, once asked for, the index's `fingerprint`); every column is a
  raw little-endian file `<name>.bin`;
- the region table, in table order: `path_ids`, `boxes`, `positions`, `rows`
  (or `rows_data` + `rows_offsets` for text row labels; absent when the row
  labels are the positions), `codes_<k>`;
- the image table: `paths_data` + `paths_offsets` (UTF-8 paths),
  `image_starts` (`n_images + 1` offsets) and `by_image` (region rows sorted
  by image, stable), so the regions of image `i` are
  `by_image[image_starts[i]:image_starts[i + 1]]`.

Entries are written into a temporary folder and renamed into place, so a
reader never sees half an entry and two processes building at once are safe.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import mmap
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from typing import Any

import numpy as np

from keras_roi_datagen.errors import Problem
from keras_roi_datagen.index import checks
from keras_roi_datagen.index.model import IndexBuild, RoiIndex, TableSpec
from keras_roi_datagen.labels import LabelVocabulary
from keras_roi_datagen.mapped import open_column
from keras_roi_datagen.paths import PathTable
from keras_roi_datagen.planning import ImageTable

__all__ = ["EntryWriter", "ImageTable", "MappedIndex", "add_problems", "cache_folder",
           "default_cache_dir", "entry_meta", "fingerprint", "image_table", "load", "save",
           "table_key"]

FORMAT_VERSION = 1
_BLOCK = 1 << 16
_EDGE = 1 << 20


def default_cache_dir() -> str:
    """Returns `$XDG_CACHE_HOME/keras_roi_datagen/index` (`~/.cache/...` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "keras_roi_datagen", "index")


def _file_fingerprint(path: str) -> dict[str, Any]:
    stat = os.stat(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read(_EDGE))
        if stat.st_size > 2 * _EDGE:
            for k in range(1, 15):
                handle.seek(stat.st_size * k // 15)
                digest.update(handle.read(_BLOCK))
        handle.seek(max(0, stat.st_size - _EDGE))
        digest.update(handle.read(_EDGE))
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest.hexdigest()}


def table_key(source: str, local: str, spec: TableSpec,
              vocabularies: Mapping[str, Any] | None = None, version: str | None = None) -> str:
    """Returns the cache key of a table file read with `spec`.

    Args:
        source: The table as the user named it (path or URL).
        local: The local file read (the same path, or a downloaded copy).
        spec: The `TableSpec`.
        vocabularies: Given vocabularies, if any.
        version: For a URL, its remote version (size, ETag, time).

    Returns:
        A hex digest.
    """
    spec_fields = {k: (v.value if hasattr(v, "value") else v) for k, v in asdict(spec).items()}
    given = {c: list(v.classes) if isinstance(v, LabelVocabulary) else list(v)
             for c, v in sorted((vocabularies or {}).items())}
    record = {"format": FORMAT_VERSION, "source": os.path.abspath(source) if version is None
              else source, "file": _file_fingerprint(local), "remote": version,
              "spec": spec_fields, "vocabularies": given}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=repr).encode()).hexdigest()


def cache_folder(cache_dir: str, key: str) -> str:
    """Returns the folder of the entry `key` under `cache_dir`."""
    return os.path.join(cache_dir, key[:32])


def _json_label(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class EntryWriter:
    """Writes a cache entry column by column, appending as rows arrive.

    Columns are raw little-endian files (`<name>.bin`) whose dtype and shape
    are recorded in `meta.json`; everything is written in a staging folder
    renamed into place by `commit`.

    Args:
        folder: The entry's folder (see `cache_folder`).
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder
        parent = os.path.dirname(folder)
        os.makedirs(parent, exist_ok=True)
        self.staging = tempfile.mkdtemp(dir=parent, prefix=".building-")
        self.columns: dict[str, dict[str, Any]] = {}

    def _file(self, name: str) -> str:
        return os.path.join(self.staging, f"{name.replace(':', '__')}.bin")

    def staging_dir(self, name: str) -> str:
        """A scratch folder inside the entry being written (removed by `commit`)."""
        folder = os.path.join(self.staging, name)
        os.makedirs(folder, exist_ok=True)
        return folder

    def append(self, name: str, values: np.ndarray) -> None:
        """Appends rows to column `name` (created on first use)."""
        values = np.ascontiguousarray(values)
        entry = self.columns.setdefault(
            name, {"dtype": values.dtype.str, "shape": [0, *values.shape[1:]]})
        with open(self._file(name), "ab") as handle:
            values.tofile(handle)
        entry["shape"][0] += len(values)

    def write(self, name: str, values: np.ndarray) -> None:
        """Writes column `name` whole."""
        self.columns.pop(name, None)
        if os.path.exists(self._file(name)):
            os.remove(self._file(name))
        self.append(name, values)

    def drop(self, name: str) -> None:
        """Removes column `name` from the entry being written."""
        self.columns.pop(name, None)
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._file(name))

    def column(self, name: str, mode: str = "r") -> np.ndarray:
        """Maps column `name` of the entry being written."""
        entry = self.columns[name]
        return _map(self._file(name), entry["dtype"], entry["shape"], mode)

    def chunks(self, name: str, chunk: int = 1 << 22) -> Iterator[np.ndarray]:
        """Yields column `name` a chunk at a time, read with plain reads.

        No memory map: the pages read stay in the page cache, not in this
        process's resident memory.
        """
        entry = self.columns[name]
        dtype = np.dtype(entry["dtype"])
        row_bytes = dtype.itemsize * int(np.prod(entry["shape"][1:], dtype=np.int64))
        with open(self._file(name), "rb") as handle:
            for start in range(0, entry["shape"][0], chunk):
                count = min(chunk, entry["shape"][0] - start)
                data = np.fromfile(handle, dtype=dtype, count=count * row_bytes // dtype.itemsize)
                yield data.reshape(count, *entry["shape"][1:])

    def remap(self, name: str, lut: np.ndarray | None, chunk: int = 1 << 22) -> None:
        """Replaces each value `v` of column `name` by `lut[v]`, a chunk at a time."""
        self.rename(name, name, lut, chunk)

    def rename(self, name: str, new: str, lut: np.ndarray | None = None,
               chunk: int = 1 << 22) -> None:
        """Renames column `name`, mapping its values through `lut` on the way."""
        entry = self.columns[name]
        source = self._file(name)
        if lut is None:
            os.replace(source, self._file(new))
        else:
            target = source + ".new"
            with open(target, "wb") as handle:
                for values in self.chunks(name, chunk):
                    lut[values].astype(entry["dtype"]).tofile(handle)
            os.replace(target, self._file(new))
            if new != name:
                os.remove(source)
        del self.columns[name]
        self.columns[new] = entry

    def image_table(self, n_images: int, chunk: int = 1 << 22) -> None:
        """Writes `image_starts` and `by_image` (a stable counting sort of `path_ids`)."""
        n = self.columns["path_ids"]["shape"][0]
        counts = np.zeros(n_images, dtype=np.int64)
        for ids in self.chunks("path_ids", chunk):
            counts += np.bincount(ids, minlength=n_images)
        starts = np.zeros(n_images + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        self.write("image_starts", starts)
        self.write("by_image", np.zeros(0, dtype=np.int64))
        with open(self._file("by_image"), "wb") as empty:
            empty.truncate(8 * n)
        self.columns["by_image"]["shape"] = [n]
        if not n:
            return
        cursor = starts[:-1].copy()
        with open(self._file("by_image"), "r+b") as handle, mmap.mmap(handle.fileno(), 8 * n) as mm:
            by_image = np.frombuffer(mm, dtype="<i8")
            start = 0
            for ids in self.chunks("path_ids", chunk):
                order = np.argsort(ids, kind="stable")
                sorted_ids = ids[order]
                first = np.searchsorted(sorted_ids, sorted_ids, side="left")
                by_image[cursor[sorted_ids] + (np.arange(len(ids)) - first)] = order + start
                cursor += np.bincount(ids, minlength=n_images)
                start += len(ids)
                mm.flush()
                mm.madvise(mmap.MADV_DONTNEED)  # written back: drop the pages from our memory
            del by_image

    def commit(self, meta: dict[str, Any]) -> str:
        """Writes `meta.json` and moves the entry into place; returns its folder."""
        meta = {**meta, "columns": self.columns}
        for entry in os.scandir(self.staging):
            if entry.is_dir():
                shutil.rmtree(entry.path)
        with open(os.path.join(self.staging, "meta.json"), "w", encoding="utf-8") as handle:
            json.dump(meta, handle, default=str)
        try:
            os.replace(self.staging, self.folder)
        except OSError:  # another process wrote the same entry first
            self.abort()
        return self.folder

    def abort(self) -> None:
        """Removes the staging folder."""
        shutil.rmtree(self.staging, ignore_errors=True)


def _map(path: str, dtype: str, shape: list[int], mode: str = "r") -> np.ndarray:
    if not shape[0] or not os.path.getsize(path):
        return np.zeros(shape, dtype=dtype)
    mapped: np.ndarray = np.memmap(path, dtype=np.dtype(dtype), mode=mode,  # type: ignore[call-overload]
                                   shape=tuple(shape))
    return mapped


def entry_meta(*, source: str | None, relative: bool, codes: list[str], n_rows: int,
               vocabularies: Mapping[str, LabelVocabulary], problems: list[Problem],
               rows_without_regions: list[dict[str, Any]], rows: str,
               image_dir: str | None = None) -> dict[str, Any]:
    """Returns the `meta.json` record of an entry (`rows`: `"rows"`, `"text"` or `"positions"`)."""
    return {
        "format": FORMAT_VERSION, "source": source, "relative": relative, "codes": codes,
        "n_rows": n_rows, "rows": rows, "image_dir": image_dir,
        "vocabularies": {c: {"classes": [_json_label(v) for v in vocab.classes], "oov": vocab.oov}
                         for c, vocab in vocabularies.items()},
        "problems": [p.to_dict() for p in problems],
        "rows_without_regions": rows_without_regions,
    }


def _update_meta(folder: str, change: Any) -> dict[str, Any]:
    path = os.path.join(folder, "meta.json")
    with open(path, encoding="utf-8") as handle:
        record: dict[str, Any] = json.load(handle)
    change(record)
    partial = f"{path}.{os.getpid()}.part"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(record, handle, default=str)
    os.replace(partial, path)
    return record


def add_problems(folder: str, problems: list[Problem]) -> None:
    """Appends problems found after the entry was written (the duplicate check)."""
    _update_meta(folder, lambda record: record["problems"].extend(p.to_dict() for p in problems))


def _file_blocks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as handle:  # plain reads: nothing is mapped into this process
        yield from iter(lambda: handle.read(1 << 24), b"")


def _path_blocks(data_path: str, offsets: np.ndarray, step: int = 1 << 16) -> Iterator[bytes]:
    """The paths joined by newlines, as UTF-8 (as `RoiIndex.fingerprint` hashes them), in blocks."""
    n = len(offsets) - 1
    if n < 1:
        return
    with open(data_path, "rb") as handle:
        for first in range(0, n, step):
            last = min(n, first + step)
            handle.seek(int(offsets[first]))
            chunk = np.frombuffer(handle.read(int(offsets[last] - offsets[first])), dtype=np.uint8)
            if first:
                yield b"\n"
            cuts = offsets[first + 1:last] - offsets[first]
            yield np.insert(chunk, cuts, ord("\n")).tobytes()


def fingerprint(folder: str) -> str:
    """Returns `RoiIndex.fingerprint()` of the entry at `folder`, without mapping its columns.

    The digest (`checks.fingerprint`) is computed once from the column files
    with plain reads and kept in `meta.json` (an entry never changes once
    written), so asking a big cached index for its fingerprint (as
    `RoiDataset.get_state` does) neither maps gigabytes into resident memory
    nor rereads them.

    Args:
        folder: The entry's folder.

    Returns:
        The same hex digest `RoiIndex.fingerprint` computes from the arrays.
    """
    with open(os.path.join(folder, "meta.json"), encoding="utf-8") as handle:
        record = json.load(handle)
    if "fingerprint" in record:
        return str(record["fingerprint"])
    entry = record["columns"]["paths_offsets"]
    offsets_path = os.path.join(folder, "paths_offsets.bin")
    offsets = (np.fromfile(offsets_path, dtype=np.dtype(entry["dtype"])) if entry["shape"][0]
               and os.path.getsize(offsets_path) else np.zeros(entry["shape"], entry["dtype"]))
    value = checks.fingerprint(
        _path_blocks(os.path.join(folder, "paths_data.bin"), offsets),
        {name: _file_blocks(os.path.join(folder, f"{name}.bin"))
         for name in checks.FINGERPRINT_COLUMNS},
        [(name, _file_blocks(os.path.join(folder, f"codes_{k}.bin")))
         for k, name in enumerate(record["codes"])],
        bool(record["relative"]))
    with contextlib.suppress(OSError):  # a read-only cache: computed again next time
        _update_meta(folder, lambda stored: stored.update(fingerprint=value))
    return value


def save(build: IndexBuild, folder: str) -> None:
    """Writes `build` as an entry at `folder` (atomically).

    Args:
        build: The built index.
        folder: The entry's folder (see `cache_folder`).

    Raises:
        ValueError: When the row labels are neither integers nor text.
    """
    index = build.index
    if index.rows.dtype.kind not in "iu" and not all(isinstance(r, str)
                                                     for r in index.rows.tolist()):
        raise ValueError("row labels must be integers or text to be cached.")
    writer = EntryWriter(folder)
    try:
        columns = {"paths_data": index.paths.data, "paths_offsets": index.paths.offsets,
                   "path_ids": np.asarray(index.path_ids, dtype=np.int32),
                   "boxes": index.boxes, "positions": index.positions}
        if index.rows.dtype.kind in "iu":
            columns["rows"] = index.rows
        else:
            text = PathTable.from_strings(index.rows.tolist())
            columns["rows_data"], columns["rows_offsets"] = text.data, text.offsets
        names = list(index.codes)
        for k, name in enumerate(names):
            columns[f"codes_{k}"] = index.codes[name]
        for name, values in columns.items():
            writer.write(name, np.asarray(values))
        writer.image_table(len(index.paths))
        writer.commit(entry_meta(
            source=index.source, relative=index.relative, codes=names, n_rows=build.n_rows,
            vocabularies=build.vocabularies, problems=build.problems,
            rows_without_regions=build.rows_without_regions,
            rows="rows" if "rows" in columns else "text", image_dir=build.image_dir))
    except BaseException:
        writer.abort()
        raise


def load(folder: str) -> IndexBuild | None:
    """Maps the entry at `folder`, or returns `None` when there is none.

    Args:
        folder: The entry's folder.

    Returns:
        The `IndexBuild`, its columns memory-mapped read-only.
    """
    meta_path = os.path.join(folder, "meta.json")
    if not os.path.exists(meta_path):
        return None
    with open(meta_path, encoding="utf-8") as handle:
        record = json.load(handle)
    if record.get("format") != FORMAT_VERSION:
        return None
    columns = record["columns"]

    def column(name: str) -> np.ndarray:
        entry = columns[name]
        return open_column(os.path.join(folder, f"{name}.bin"), entry["dtype"], entry["shape"])

    positions = column("positions")
    if record["rows"] == "positions":
        rows = positions
    elif record["rows"] == "rows":
        rows = column("rows")
    else:
        labels = PathTable(column("rows_data"), column("rows_offsets")).tolist()
        rows = np.empty(len(labels), dtype=object)
        rows[:] = labels
    index = MappedIndex(
        paths=PathTable(column("paths_data"), column("paths_offsets")),
        path_ids=column("path_ids"), boxes=column("boxes"), relative=bool(record["relative"]),
        codes={name: column(f"codes_{k}") for k, name in enumerate(record["codes"])},
        rows=rows, positions=positions, source=record["source"], cache_folder=folder)
    vocabularies = {c: LabelVocabulary(v["classes"], name=c, oov=v["oov"])
                    for c, v in record["vocabularies"].items()}
    problems = [Problem(**p) for p in record["problems"]]
    return IndexBuild(index, vocabularies, problems, record["rows_without_regions"],
                      record["n_rows"], image_dir=record.get("image_dir"))


@dataclasses.dataclass(frozen=True)
class MappedIndex(RoiIndex):
    """A `RoiIndex` whose columns are mapped from a cache entry (`load` returns one).

    It pickles as its folder (a dataset pickled into a torch `DataLoader`
    worker maps the same files; nothing is pickled per row), and its
    fingerprint is read from the entry's files once, not from the mapped
    arrays (which would pull gigabytes into resident memory).
    """

    def __reduce_ex__(self, protocol: Any) -> Any:
        if self.cache_folder is None:  # a copy told to forget its entry
            return super().__reduce_ex__(protocol)
        return (_mapped_index, (self.cache_folder,))

    def fingerprint(self) -> str:
        """Returns the entry's stored fingerprint (see `fingerprint`)."""
        if self.cache_folder is None:
            return super().fingerprint()
        try:
            return fingerprint(self.cache_folder)
        except OSError:  # the entry was removed: hash the mapped arrays
            return super().fingerprint()


def _mapped_index(folder: str) -> RoiIndex:
    build = load(folder)
    if build is None:
        raise FileNotFoundError(f"the index cache entry {folder!r} is gone; build the index again.")
    return build.index


def image_table(index: RoiIndex) -> ImageTable:
    """Returns the image table of `index`: mapped from its cache entry, else computed."""
    folder = index.cache_folder
    if folder is not None:
        with open(os.path.join(folder, "meta.json"), encoding="utf-8") as handle:
            columns = json.load(handle)["columns"]
        return ImageTable(*(open_column(os.path.join(folder, f"{name}.bin"), columns[name]["dtype"],
                                        columns[name]["shape"])
                            for name in ("image_starts", "by_image")))
    by_image = np.argsort(index.path_ids, kind="stable").astype(np.int64)
    starts = np.zeros(len(index.paths) + 1, dtype=np.int64)
    np.cumsum(np.bincount(index.path_ids, minlength=len(index.paths)), out=starts[1:])
    return ImageTable(starts, by_image)
