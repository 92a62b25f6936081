"""Memory-mapped columns whose rows are read by position, not through the mapping.

The index cache maps its columns so that building a dataset costs nothing
and whole-column work (validation, splits) can use NumPy directly. Training,
though, reads a few rows per batch at random places. Read through the
mapping, each row faults in its page and the kernel's read-around with it
(hundreds of KiB per fault), and every page stays counted in the process's
resident memory: after a few dozen batches most of a 10^8-row index is
resident (2.3 GB), and it only grows as an epoch goes on.

`gather` reads those rows with positional reads (`os.preadv`) instead. The
pages land in the kernel's page cache, shared and reclaimable, and never in
this process's resident set, so memory while training stays flat whatever
the table's size.

Only the column as it was mapped (`MappedColumn`, the whole file) is read
by position; any view of it, and any ordinary array, is indexed as usual.

Example:
```python
column = open_column("boxes.bin", "<f8", [n, 4])
boxes = gather(column, np.array([7, 3, 7]))  # three rows, nothing mapped
```
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["MappedColumn", "gather", "open_column", "read_range"]


class MappedColumn(np.memmap):
    """A read-only `np.memmap` of a whole column file, readable by position.

    It behaves as the `np.memmap` it is; `whole` tells `gather` that its rows
    lie at `offset + row * row_bytes` in `filename` (views and results of
    NumPy operations on it are not whole).
    """

    whole: bool = False

    def __array_finalize__(self, obj: Any) -> None:
        super().__array_finalize__(obj)
        self.whole = False


def open_column(path: str, dtype: str, shape: list[int] | tuple[int, ...]) -> np.ndarray:
    """Maps a raw little-endian column file read-only.

    Args:
        path: The column's file.
        dtype: Its NumPy dtype string (e.g. `"<f8"`).
        shape: Its shape; the first dimension counts rows.

    Returns:
        A `MappedColumn`, or an empty array when the column has no rows.

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "c.bin")
    >>> np.arange(4, dtype="<i8").tofile(path)
    >>> gather(open_column(path, "<i8", [4]), np.array([3, 1])).tolist()
    [3, 1]
    """
    if not shape[0] or not os.path.getsize(path):
        return np.zeros(shape, dtype=dtype)
    column = MappedColumn(path, dtype=np.dtype(dtype), mode="r", shape=tuple(shape))
    column.whole = True
    return column


def _row_bytes(column: np.ndarray) -> int:
    return column.itemsize * int(np.prod(column.shape[1:], dtype=np.int64))


def _read_into(fd: int, target: memoryview, offset: int) -> None:
    done = 0
    while done < len(target):
        got = os.preadv(fd, [target[done:]], offset + done)
        if got <= 0:
            raise OSError(f"the column file ended early (offset {offset + done}).")
        done += got


def _readable(column: np.ndarray) -> MappedColumn | None:
    if isinstance(column, MappedColumn) and column.whole and column.filename is not None:
        return column
    return None


def gather(column: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Returns `column[rows]` as an ordinary array, reading a mapped column by position.

    For a `MappedColumn`, runs of consecutive rows are read with one
    `os.preadv` each; nothing is faulted into the mapping, so the process's
    resident memory does not grow with the rows read. Any other array is
    indexed as usual.

    Args:
        column: The column (rows along the first axis).
        rows: Integer row positions (negative ones count from the end).

    Returns:
        A new array of shape `(len(rows), *column.shape[1:])`.

    Raises:
        IndexError: If a row is out of range.

    Example:
    >>> gather(np.arange(10) * 2, np.array([4, 4, -1])).tolist()
    [8, 8, 18]
    """
    rows = np.asarray(rows)
    mapped = _readable(column)
    if mapped is None or rows.dtype.kind not in "iu" or rows.ndim != 1:
        return np.asarray(column[rows])
    n = len(column)
    if rows.size and (rows.min() < -n or rows.max() >= n):
        raise IndexError(f"rows must lie in [-{n}, {n}). Received: rows from {rows.min()} "
                         f"to {rows.max()}")
    rows = np.where(rows < 0, rows + n, rows).astype(np.int64, copy=False)
    distinct, inverse = np.unique(rows, return_inverse=True)
    values = np.empty((len(distinct), *column.shape[1:]), dtype=column.dtype)
    if not len(distinct):
        return values
    row_bytes = _row_bytes(column)
    target = values.reshape(-1).view(np.uint8).data
    run_starts = np.flatnonzero(np.diff(distinct, prepend=distinct[0] - 2) != 1)
    run_ends = np.append(run_starts[1:], len(distinct))
    try:
        fd = os.open(str(mapped.filename), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:  # the entry was removed while mapped: the mapping still reads it
        return np.asarray(column[rows])
    try:
        for first, end in zip(run_starts.tolist(), run_ends.tolist()):
            _read_into(fd, target[first * row_bytes:end * row_bytes],
                       int(mapped.offset) + int(distinct[first]) * row_bytes)
    finally:
        os.close(fd)
    return values[inverse.reshape(-1)]


def read_range(column: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Returns `column[start:stop]` as an ordinary array, read by position when mapped.

    Args:
        column: The column.
        start: First row (`0 <= start`).
        stop: One past the last row (clipped to the column's length).

    Returns:
        A new array (for an unmapped column, `column[start:stop]` itself).

    Example:
    >>> read_range(np.arange(5), 1, 3).tolist()
    [1, 2]
    """
    stop = min(int(stop), len(column))
    start = min(max(0, int(start)), stop)
    mapped = _readable(column)
    if mapped is None:
        return np.asarray(column[start:stop])
    values = np.empty((stop - start, *column.shape[1:]), dtype=column.dtype)
    if stop == start:
        return values
    row_bytes = _row_bytes(column)
    try:
        fd = os.open(str(mapped.filename), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:  # the entry was removed while mapped: the mapping still reads it
        return np.asarray(column[start:stop])
    try:
        _read_into(fd, values.reshape(-1).view(np.uint8).data,
                   int(mapped.offset) + start * row_bytes)
    finally:
        os.close(fd)
    return values
