"""Where an annotation's file name points, and whether it may be read.

File names in annotation exports are written by other programs and other
people: relative to some folder, absolute, with Windows separators, or URLs.
`resolve_image_path` turns one into a file path under `image_dir`, and refuses
names that would escape it (`../../etc/passwd`, an absolute path elsewhere)
unless the user allows that. The check is lexical: a symbolic link inside
`image_dir` that points elsewhere is followed, as users link image folders.

URLs (`s3://...`, `https://...`) are kept as they are when fsspec is installed
(see `keras_roi_datagen.storage`), and `image_dir` may be a URL too. Remote
files are not checked when the table is read (a million requests); they are
checked by `validate()` or when their batch is decoded.

`PathTable` keeps many paths compactly: one UTF-8 buffer and offsets.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np

from keras_roi_datagen import storage
from keras_roi_datagen.mapped import read_range
from keras_roi_datagen.storage import is_url, url_join

__all__ = ["MISSING_NAME", "PathProblem", "PathTable", "check_image_file", "resolve_image_path"]


@dataclass(frozen=True)
class PathProblem:
    """Why a file name cannot be used: a problem `kind` and a message."""

    kind: str
    message: str


MISSING_NAME = PathProblem("filename_missing", "the file name is missing or not text.")
"""The problem of a row without a usable file name."""


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def resolve_image_path(
    name: object, image_dir: str | None, allow_outside_image_dir: bool = False
) -> str | PathProblem:
    """Resolves a file name from a table to an absolute, normalised path.

    Args:
        name: The file name as found in the table.
        image_dir: The folder relative names are resolved against; `None`
            resolves them against the working directory and checks nothing.
        allow_outside_image_dir: Whether names may point outside `image_dir`.

    Returns:
        The absolute path, or a `PathProblem` (kinds `"filename_missing"`,
        `"remote_file"`, `"path_outside_image_dir"`).

    Example:
    >>> resolve_image_path("../../etc/passwd", "/data/images").kind
    'path_outside_image_dir'
    """
    if not isinstance(name, str) or not name.strip():
        return MISSING_NAME
    name = name.strip()
    if is_url(name) or is_url(image_dir):
        return _resolve_url(name, image_dir, allow_outside_image_dir)
    base = os.path.abspath(image_dir) if image_dir is not None else os.getcwd()
    path = os.path.normpath(os.path.join(base, os.path.expanduser(name)))
    # realpath: a symlink inside image_dir may still lead out of it.
    if image_dir is not None and not allow_outside_image_dir and not _inside(
            os.path.realpath(path), os.path.realpath(base)):
        return PathProblem(
            "path_outside_image_dir",
            f"the file name points outside image_dir ({base}); "
            "pass allow_outside_image_dir=True if that is intended.",
        )
    if "\\" in name and not os.path.exists(path):
        # Exports made on Windows write backslashes; try them as separators.
        alternative = resolve_image_path(name.replace("\\", "/"), image_dir, allow_outside_image_dir)
        if isinstance(alternative, str) and os.path.exists(alternative):
            return alternative
    return path


@functools.lru_cache(maxsize=64)
def _protocol_problem(url_head: str) -> str | None:
    if importlib.util.find_spec("fsspec") is None:
        return ("reading images from URLs needs fsspec: pip install "
                '"keras-roi-datagen[storage]" (or download the images and pass `image_dir`).')
    import fsspec

    for protocol in re.findall(r"([a-zA-Z][a-zA-Z0-9+.-]*)(?:://|::)", url_head):
        try:
            fsspec.get_filesystem_class(protocol)
        except ValueError:
            return f"fsspec knows no protocol {protocol!r}."
        except ImportError as exc:
            return f"reading {protocol}:// URLs needs another package: {exc}"
    return None


def _resolve_url(name: str, image_dir: str | None, allow_outside: bool) -> str | PathProblem:
    head = name if storage.is_url(name) else str(image_dir)
    problem = _protocol_problem(head.split("://", 1)[0] + "://")
    if problem is not None:
        return PathProblem("remote_file", problem)
    if is_url(name):
        url = name
    elif image_dir is not None and is_url(image_dir):
        url = url_join(image_dir, name)
    else:  # a local image_dir and a URL name are handled above
        url = name
    if image_dir is not None and is_url(image_dir) and not allow_outside:
        base = url_join(image_dir, "")
        if not (url + "/").startswith(base.rstrip("/") + "/"):
            return PathProblem(
                "path_outside_image_dir",
                f"the file name points outside image_dir ({base}); "
                "pass allow_outside_image_dir=True if that is intended.")
    return url


def check_image_file(path: str) -> PathProblem | None:
    """Checks that an image file exists, is a regular file and is not empty.

    Args:
        path: An absolute path from `resolve_image_path`.

    Returns:
        `None` when the file looks readable (or is a URL: not checked here),
        else a `PathProblem` (kinds `"missing_file"`, `"image_unreadable"`,
        `"image_empty_file"`).
    """
    if is_url(path):
        return None
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return PathProblem("missing_file", f"image file not found: {path}.")
    except OSError as exc:
        return PathProblem("image_unreadable", f"cannot access {path}: {exc.strerror}.")
    if not os.path.isfile(path):
        return PathProblem("image_unreadable", f"not a regular file: {path}.")
    if stat.st_size == 0:
        return PathProblem("image_empty_file", f"image file is empty (0 bytes): {path}.")
    return None


class PathTable(Sequence[str]):
    """Many paths in little memory: one UTF-8 buffer and `int64` offsets.

    A NumPy unicode array stores every path at the width of the longest (4
    bytes a character): 500,000 paths with one of 250 characters take 500 MB.
    Here they take their UTF-8 length plus 8 bytes each. The arrays can be
    memory-mapped (see `keras_roi_datagen.index.cache`).

    Args:
        data: `uint8` array, the paths' UTF-8 bytes end to end.
        offsets: `int64` array of `len + 1` offsets into `data`.

    Example:
    >>> table = PathTable.from_strings(["a.jpg", "dir/b.jpg"])
    >>> table[1], len(table), table.nbytes
    ('dir/b.jpg', 2, 38)
    """

    def __init__(self, data: np.ndarray, offsets: np.ndarray) -> None:
        self.data, self.offsets = data, offsets

    @classmethod
    def from_strings(cls, paths: Iterable[str]) -> PathTable:
        """Builds a table from strings."""
        encoded = [p.encode("utf-8", "surrogateescape") for p in paths]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        data = np.frombuffer(b"".join(encoded), dtype=np.uint8) if encoded else np.zeros(0, np.uint8)
        return cls(data, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @overload
    def __getitem__(self, key: int) -> str: ...

    @overload
    def __getitem__(self, key: slice | np.ndarray | Sequence[int]) -> PathTable: ...

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, (int, np.integer)):
            i = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(f"path {key} out of range ({len(self)} paths)")
            # By position: a mapped table's pages stay out of memory (see `mapped`).
            start, stop = read_range(self.offsets, i, i + 2).tolist()
            return read_range(self.data, start, stop).tobytes().decode("utf-8", "surrogateescape")
        positions = np.arange(len(self))[key]
        return PathTable.from_strings(self[int(i)] for i in positions)

    def __iter__(self) -> Iterator[str]:
        data = read_range(self.data, 0, len(self.data)).tobytes()  # one read for all paths
        offsets = read_range(self.offsets, 0, len(self.offsets)).tolist()
        for start, stop in itertools.pairwise(offsets):
            yield data[start:stop].decode("utf-8", "surrogateescape")

    def tolist(self) -> list[str]:
        """Returns the paths as a list of strings."""
        return list(self)

    @property
    def nbytes(self) -> int:
        """Bytes held by the two arrays."""
        return int(self.data.nbytes + self.offsets.nbytes)

    def __repr__(self) -> str:
        return f"PathTable({len(self)} paths, {self.nbytes} bytes)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PathTable) and self.tolist() == other.tolist()

    __hash__ = None  # type: ignore[assignment]
