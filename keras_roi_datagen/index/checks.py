"""Every rule a row must pass to enter the index, with its message: one owner for both builders.

The row-by-row builder (`rows`) and the columnar builder (`columns`) read
tables differently, but a row with a bad path, box or label gets the same
`Problem` (kind, message, column, value) from either, because both build it
here. Here too: the one row hash (duplicate candidates), the duplicate check
itself, and the one index fingerprint, whether the index is in memory or in a
cache entry on disk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from keras_roi_datagen.boxes import BoxFormat, box_problem
from keras_roi_datagen.errors import Problem
from keras_roi_datagen.labels import LabelValueError, LabelVocabulary
from keras_roi_datagen.paths import PathProblem

if TYPE_CHECKING:
    from keras_roi_datagen.index.model import RoiIndex

__all__ = ["FINGERPRINT_COLUMNS", "bad_box", "box_hashes", "duplicates", "fingerprint",
           "label_problem", "path_problem", "row_hashes", "unknown_label", "whitespace_warning"]

FINGERPRINT_COLUMNS = ("path_ids", "boxes", "positions")
"""The row columns the fingerprint covers, in its order (then the codes, by name)."""

_FNV_OFFSET, _FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3
_GOLDEN = 0x9E3779B97F4A7C15


def path_problem(found: PathProblem, *, source: str | None, row: Any, column: str, name: Any,
                 path: str | None = None) -> Problem:
    """The problem of a row whose file name cannot be used.

    Args:
        found: What `paths.resolve_image_path` or `paths.check_image_file` said.
        source: The table's file.
        row: The row's label.
        column: The file-name column.
        name: The file name as the table has it.
        path: The resolved path, when it got that far.

    Returns:
        The `Problem`.
    """
    return Problem(found.kind, found.message, source=source, row=row, column=column, value=name,
                   path=path)


def bad_box(box: Sequence[float], box_format: BoxFormat, *, source: str | None, row: Any,
            column: str, value: Any, path: str | None) -> Problem | None:
    """The problem of an unusable `xyxy` box (not finite, no area, outside `[0, 1]`), or `None`.

    Args:
        box: The box as `xyxy`, in the units of `box_format`.
        box_format: How the table writes boxes (for relative bounds).
        source: The table's file.
        row: The row's label.
        column: The box's column (or columns, joined).
        value: The box as the table has it.
        path: The row's image.

    Returns:
        The `Problem`, or `None` for a usable box.
    """
    found = box_problem(box, box_format.relative)
    if found is None:
        return None
    return Problem(found[0], found[1], source=source, row=row, column=column, value=value,
                   path=path)


def label_problem(column: str, error: LabelValueError, *, source: str | None, row: Any,
                  value: Any, path: str | None) -> Problem:
    """The problem of a row whose label in `column` is missing or unusable."""
    return Problem(error.kind, f"label {column!r}: {error}", source=source, row=row,
                   column=column, value=value, path=path)


def unknown_label(column: str, value: Hashable, vocabulary: LabelVocabulary, *,
                  source: str | None, row: Any) -> Problem:
    """The problem of a row whose label is not in a given vocabulary."""
    return Problem(
        "label_unknown",
        f"label {column!r}: {value!r} is not in the given vocabulary "
        f"({len(vocabulary)} classes: {list(vocabulary.classes)[:10]}).",
        source=source, row=row, column=column, value=value)


def whitespace_warning(column: str, raw: str, count: int, *, source: str | None,
                       row: Any) -> Problem:
    """The warning for a label read without its surrounding whitespace, in `count` rows."""
    return Problem(
        "label_whitespace",
        f"label {column!r}: {raw!r} was read as {raw.strip()!r} (surrounding whitespace "
        f"stripped) in {count} row(s).", source=source, row=row, column=column, value=raw,
        severity="warning")


def box_hashes(columns: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Mixes the bits of the four box columns (`x0, y0, x1, y1`) into one `uint64` per row.

    Args:
        columns: The four columns (or a `(4, n)` array, such as `boxes.T`).

    Returns:
        One `uint64` per row.
    """
    found = np.full(len(columns[0]), _FNV_OFFSET, dtype=np.uint64)
    scratch = np.empty_like(found)
    with np.errstate(over="ignore"):
        for values in columns:
            found ^= np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
            found *= np.uint64(_FNV_PRIME)
            np.right_shift(found, np.uint64(29), out=scratch)
            found ^= scratch
    return found


def row_hashes(path_ids: np.ndarray, hashed_boxes: np.ndarray, codes: Iterable[np.ndarray],
               out: np.ndarray | None = None) -> np.ndarray:
    """The 64-bit hash of each row over its image, box and labels: duplicate candidates.

    Equal rows get equal hashes; a candidate is only compared again, so a rare
    collision costs a comparison, never a wrong warning. A few megabytes for a
    million rows, where sorting the rows themselves costs hundreds.

    Args:
        path_ids: Per row, its image (any integer dtype).
        hashed_boxes: `box_hashes` of the rows' boxes.
        codes: Per coded column, each row's class code.
        out: A `uint64` array of the rows' length to write into. Defaults to a new one.

    Returns:
        The hashes (`out`, when given).
    """
    found: np.ndarray = np.empty(len(path_ids), dtype=np.uint64) if out is None else out
    np.copyto(found, path_ids, casting="unsafe")
    with np.errstate(over="ignore"):
        for values in codes:  # int64 codes: their bits, as `astype` gives them
            found *= np.uint64(_GOLDEN)
            found += np.ascontiguousarray(values, dtype=np.int64).view(np.uint64)
        found *= np.uint64(_FNV_PRIME)
        found ^= hashed_boxes
    return found


def duplicates(index: RoiIndex) -> list[Problem]:
    """The `duplicate_row` warnings of an index: rows with the same image, box and labels.

    Args:
        index: The index (usually the few candidate rows a hash found).

    Returns:
        One warning per group of identical rows; all of them are kept.
    """
    if not len(index):
        return []
    boxes = np.asarray(index.boxes)
    hashes = row_hashes(np.asarray(index.path_ids), box_hashes(boxes.T),
                        (np.asarray(c) for c in index.codes.values()))
    _, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
    found = []
    for group in np.flatnonzero(counts > 1).tolist():
        candidates = np.flatnonzero(inverse.ravel() == group)
        first = int(candidates[0])
        same = [int(m) for m in candidates.tolist() if _same_row(index, first, int(m))]
        if len(same) < 2:
            continue  # a hash collision, not a duplicate
        rows = [index.row_label(m) for m in same]
        found.append(Problem(
            "duplicate_row",
            f"{len(rows)} rows are identical (same image, box and labels): rows {rows[:10]}; "
            "all are kept.", source=index.source, row=rows[0], path=index.path_of(first),
            severity="warning"))
    return found


def _same_row(index: RoiIndex, a: int, b: int) -> bool:
    return bool(index.path_ids[a] == index.path_ids[b]
                and np.array_equal(index.boxes[a], index.boxes[b])
                and all(c[a] == c[b] for c in index.codes.values()))


def fingerprint(paths: Iterable[bytes], columns: Mapping[str, Iterable[bytes]],
                codes: Iterable[tuple[str, Iterable[bytes]]], relative: bool) -> str:
    """The sha256 of everything that decides batch contents, from the index's bytes.

    The same digest whether the bytes come from arrays in memory
    (`RoiIndex.fingerprint`) or from a cache entry's files read in blocks
    (`index.cache.fingerprint`).

    Args:
        paths: The image paths joined by newlines, as UTF-8, in chunks.
        columns: Per name in `FINGERPRINT_COLUMNS`, the column's raw bytes in chunks.
        codes: `(column name, raw bytes in chunks)` of each coded column.
        relative: Whether boxes are fractions of the image size.

    Returns:
        The hex digest.
    """
    digest = hashlib.sha256()
    for chunk in paths:
        digest.update(chunk)
    for name in FINGERPRINT_COLUMNS:
        for chunk in columns[name]:
            digest.update(chunk)
    for name, chunks in sorted(codes, key=lambda item: item[0]):
        digest.update(name.encode())
        for chunk in chunks:
            digest.update(chunk)
    digest.update(b"relative" if relative else b"pixels")
    return digest.hexdigest()
