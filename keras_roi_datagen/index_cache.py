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

- `meta.json`: vocabularies, problems, counts;
- the region table, in table order: `path_ids.npy`, `boxes.npy`,
  `positions.npy`, `rows.npy` (or `rows_data.npy` + `rows_offsets.npy` for
  text row labels), `codes_<k>.npy`;
- the image table: `paths_data.npy` + `paths_offsets.npy` (UTF-8 paths),
  `image_starts.npy` (`n_images + 1` offsets) and `by_image.npy` (region rows
  sorted by image, stable), so the regions of image `i` are
  `by_image[image_starts[i]:image_starts[i + 1]]`.

Entries are written into a temporary folder and renamed into place, so a
reader never sees half an entry and two processes building at once are safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np

from keras_roi_datagen.errors import Problem
from keras_roi_datagen.index import IndexBuild, RoiIndex, TableSpec
from keras_roi_datagen.labels import LabelVocabulary
from keras_roi_datagen.paths import PathTable

__all__ = ["ImageTable", "cache_folder", "default_cache_dir", "image_table", "load", "save",
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


def _image_table(path_ids: np.ndarray, n_images: int) -> tuple[np.ndarray, np.ndarray]:
    by_image = np.argsort(path_ids, kind="stable").astype(np.int64)
    starts = np.zeros(n_images + 1, dtype=np.int64)
    np.cumsum(np.bincount(path_ids, minlength=n_images), out=starts[1:])
    return starts, by_image


def _json_label(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def save(build: IndexBuild, folder: str) -> None:
    """Writes `build` as an entry at `folder` (atomically).

    Args:
        build: The built index.
        folder: The entry's folder (see `cache_folder`).

    Raises:
        ValueError: When the row labels are neither integers nor text.
    """
    index = build.index
    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=".building-")
    try:
        columns: dict[str, np.ndarray] = {
            "paths_data": index.paths.data, "paths_offsets": index.paths.offsets,
            "path_ids": index.path_ids, "boxes": index.boxes, "positions": index.positions,
        }
        starts, by_image = _image_table(index.path_ids, len(index.paths))
        columns["image_starts"], columns["by_image"] = starts, by_image
        if index.rows.dtype.kind in "iu":
            columns["rows"] = index.rows
        elif all(isinstance(r, str) for r in index.rows.tolist()):
            text = PathTable.from_strings(index.rows.tolist())
            columns["rows_data"], columns["rows_offsets"] = text.data, text.offsets
        else:
            raise ValueError("row labels must be integers or text to be cached.")
        names = list(index.codes)
        for k, name in enumerate(names):
            columns[f"codes_{k}"] = index.codes[name]
        for name, array in columns.items():
            np.save(os.path.join(staging, f"{name}.npy"), np.ascontiguousarray(array))
        meta = {
            "format": FORMAT_VERSION, "source": index.source, "relative": index.relative,
            "codes": names, "n_rows": build.n_rows,
            "vocabularies": {c: {"classes": [_json_label(v) for v in vocab.classes],
                                 "oov": vocab.oov} for c, vocab in build.vocabularies.items()},
            "problems": [p.to_dict() for p in build.problems],
            "rows_without_regions": build.rows_without_regions,
        }
        with open(os.path.join(staging, "meta.json"), "w", encoding="utf-8") as handle:
            json.dump(meta, handle, default=str)
        try:
            os.replace(staging, folder)
        except OSError:  # another process wrote the same entry first
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
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
        meta = json.load(handle)
    if meta.get("format") != FORMAT_VERSION:
        return None

    def column(name: str) -> np.ndarray:
        mapped: np.ndarray = np.load(os.path.join(folder, f"{name}.npy"), mmap_mode="r")
        return mapped

    if os.path.exists(os.path.join(folder, "rows.npy")):
        rows = column("rows")
    else:
        labels = PathTable(column("rows_data"), column("rows_offsets")).tolist()
        rows = np.empty(len(labels), dtype=object)
        rows[:] = labels
    index = RoiIndex(
        paths=PathTable(column("paths_data"), column("paths_offsets")),
        path_ids=column("path_ids"), boxes=column("boxes"), relative=bool(meta["relative"]),
        codes={name: column(f"codes_{k}") for k, name in enumerate(meta["codes"])},
        rows=rows, positions=column("positions"), source=meta["source"], cache_folder=folder)
    vocabularies = {c: LabelVocabulary(v["classes"], name=c, oov=v["oov"])
                    for c, v in meta["vocabularies"].items()}
    problems = [Problem(**p) for p in meta["problems"]]
    return IndexBuild(index, vocabularies, problems, meta["rows_without_regions"], meta["n_rows"])


class ImageTable:
    """The regions of each image, from a cache entry (or computed for any index).

    Args:
        starts: `n_images + 1` offsets into `by_image`.
        by_image: Region rows sorted by image (stable).

    Example:
    ```python
    images = image_table(ds.index)
    rows_of_image_3 = images.regions(3)
    ```
    """

    def __init__(self, starts: np.ndarray, by_image: np.ndarray) -> None:
        self.starts, self.by_image = starts, by_image

    def __len__(self) -> int:
        return len(self.starts) - 1

    def counts(self) -> np.ndarray:
        """Regions per image."""
        return np.diff(self.starts)

    def regions(self, image: int) -> np.ndarray:
        """Returns the region rows of `image`, in table order."""
        return np.asarray(self.by_image[self.starts[image]:self.starts[image + 1]])

    def __repr__(self) -> str:
        return f"ImageTable({len(self)} images, {len(self.by_image)} regions)"


def image_table(index: RoiIndex) -> ImageTable:
    """Returns the image table of `index`: mapped from its cache entry, else computed."""
    folder = index.cache_folder
    if folder is not None:
        return ImageTable(np.load(os.path.join(folder, "image_starts.npy"), mmap_mode="r"),
                          np.load(os.path.join(folder, "by_image.npy"), mmap_mode="r"))
    return ImageTable(*_image_table(index.path_ids, len(index.paths)))
