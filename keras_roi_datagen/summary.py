"""What a table holds, as counts: the facts `inspect` reports, without the rows.

A `TableSummary` is computed from a built index (`summarize`), or, for a
columnar table, straight from its record batches by the same checks that
build the index (`summarize_columnar`: the columnar index builder with its
kept rows counted instead of kept), so a first `inspect` of a big Parquet
file keeps no per-row index in memory. Either way the summary, and so what
`inspect` prints, is the same.

Example:
```python
summary = summarize(build_index("boxes.csv", TableSpec(y_cols=("name",))))
summary.usable_rows, summary.label_counts["name"]
```
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keras_roi_datagen.errors import Problem
from keras_roi_datagen.formats import columnar
from keras_roi_datagen.index import checks
from keras_roi_datagen.index.columns import (
    Boxes,
    ColumnBuilder,
    MemorySink,
    checked_columns,
    column_vocabularies,
    grow,
    index_in_memory,
    path_lut,
    stripped_warnings,
)
from keras_roi_datagen.index.model import IndexBuild, TableSpec
from keras_roi_datagen.labels import LabelVocabulary
from keras_roi_datagen.paths import PathTable

__all__ = ["TableSummary", "percentiles", "summarize", "summarize_columnar"]

Progress = Callable[[int, int], None]


@dataclass
class TableSummary:
    """A table's rows, images, boxes and labels, counted.

    Args:
        n_rows: Rows read from the table (regions, good and bad).
        usable_rows: Rows kept in the index.
        paths: The index's image paths.
        regions_per_image: Usable rows per path of `paths`.
        relative: Whether boxes are fractions of the image size.
        widths: Width of each usable box (`xyxy`: `x1 - x0`), `float64`.
        heights: Height of each usable box, `float64`.
        label_counts: Per label column, usable rows per class index.
        vocabularies: One `LabelVocabulary` per label column.
        problems: Every problem, errors (rows left out) and warnings, in the
            order `build_index` lists them.
        rows_without_regions: As in `IndexBuild`.
    """

    n_rows: int
    usable_rows: int
    paths: PathTable
    regions_per_image: np.ndarray
    relative: bool
    widths: np.ndarray
    heights: np.ndarray
    label_counts: dict[str, np.ndarray]
    vocabularies: dict[str, LabelVocabulary]
    problems: list[Problem] = field(default_factory=list)
    rows_without_regions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        """The problems that excluded a row."""
        return [p for p in self.problems if p.severity == "error"]


def summarize(build: IndexBuild) -> TableSummary:
    """Counts what a built index holds.

    Args:
        build: What `build_index` returned.

    Returns:
        The `TableSummary`.

    Example:
    >>> import pandas as pd
    >>> from keras_roi_datagen.index import TableSpec, build_index
    >>> frame = pd.DataFrame({"filename": ["a.jpg", "a.jpg"], "x": [0, 1], "y": [0, 1],
    ...                       "w": [4, 2], "h": [3, 2], "name": ["cat", "dog"]})
    >>> spec = TableSpec(y_cols=("name",), box_cols=("x", "y", "w", "h"), check_files=False)
    >>> summary = summarize(build_index(frame, spec))
    >>> summary.usable_rows, summary.widths.tolist(), summary.label_counts["name"].tolist()
    (2, [4.0, 2.0], [1, 1])
    """
    index = build.index
    boxes = np.asarray(index.boxes)
    return TableSummary(
        n_rows=build.n_rows, usable_rows=len(index), paths=index.paths,
        regions_per_image=np.bincount(np.asarray(index.path_ids), minlength=len(index.paths)),
        relative=index.relative, widths=boxes[:, 2] - boxes[:, 0],
        heights=boxes[:, 3] - boxes[:, 1],
        label_counts={column: np.bincount(np.asarray(index.codes[column]),
                                          minlength=vocab.num_classes)
                      for column, vocab in build.vocabularies.items()},
        vocabularies=build.vocabularies, problems=build.problems,
        rows_without_regions=build.rows_without_regions)


def percentiles(values: np.ndarray, q: Sequence[float], *,
                overwrite_input: bool = False) -> np.ndarray:
    """`numpy.percentile(values, q)` (its default, linear method), through one sort.

    The same numbers to the last bit as `numpy.percentile`, which partitions
    around every order statistic it needs: for 10^8 values a sort is several
    times faster.

    Args:
        values: A 1-D array of finite numbers. Where zeros of
            both signs meet, the sign of a zero may differ from numpy's.
        q: Percentiles, each in `[0, 100]`.
        overwrite_input: Sort `values` in place (a `float64` array) instead of
            a copy, as numpy's `overwrite_input`. Defaults to `False`.

    Returns:
        The percentiles, `float64`, in the order of `q`.

    Raises:
        ValueError: When `values` is empty.

    Example:
    >>> percentiles(np.array([4.0, 1.0, 3.0, 2.0]), [0, 50, 100]).tolist()
    [1.0, 2.5, 4.0]
    """
    if not len(values):
        raise ValueError("percentiles of no values.")
    ordered = np.asarray(values, dtype=np.float64)
    if overwrite_input and ordered is values:
        ordered.sort()
    else:
        ordered = np.sort(ordered)
    n = len(ordered)
    virtual = (n - 1) * np.true_divide(np.asarray(q, dtype=np.float64), 100)
    previous, following = np.floor(virtual), np.floor(virtual) + 1
    above = virtual >= n - 1  # as numpy: the last value, by index -1
    previous[above] = following[above] = -1
    previous_index, following_index = previous.astype(np.intp), following.astype(np.intp)
    gamma = virtual - previous_index
    low, high = ordered[previous_index], ordered[following_index]
    difference = high - low
    found: np.ndarray = low + difference * gamma
    np.subtract(high, difference * (1 - gamma), out=found, where=gamma >= 0.5)
    return found


class _CountingBuilder(ColumnBuilder):
    """The columnar builder with its kept rows counted, not kept: what `inspect` reports.

    Counts rows per image and per class (given vocabularies), keeps box widths
    and heights (16 bytes a row), and a 64-bit hash per table row
    (`checks.row_hashes`; a row left out gets its position instead, so it is no
    candidate unless a hash collides with it) to find duplicate candidates.
    """

    def __init__(self, spec: TableSpec, source: str, box_cols: tuple[str, str, str, str],
                 given: Mapping[str, Any] | None, total: int) -> None:
        super().__init__(spec, source, box_cols, given, sink=None)
        self.hashed_boxes = True
        self.per_path = np.zeros(0, dtype=np.int64)
        self.label_counts: dict[str, np.ndarray] = {}
        self.widths = np.empty(total, dtype=np.float64)
        self.heights = np.empty(total, dtype=np.float64)
        self.hashes = np.empty(total, dtype=np.uint64)
        self.filled = 0

    @staticmethod
    def _add_counts(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
        found = np.bincount(values, minlength=len(counts)) if len(values) else np.zeros(0, np.int64)
        counts = grow(counts, len(found), 0)
        counts[:len(found)] += found
        return counts

    def _keep(self, kept_ids: np.ndarray, rows: slice | np.ndarray, keep: np.ndarray | None,
              columns: list[np.ndarray], codes: dict[str, np.ndarray], start: int) -> None:
        self.per_path = self._add_counts(self.per_path, kept_ids)
        for column in self.given:
            self.label_counts[column] = self._add_counts(
                self.label_counts.get(column, np.zeros(0, np.int64)), codes[column][rows])
        end = self.filled + len(kept_ids)
        if end > len(self.widths):  # more rows than the metadata said: grow
            self.widths = grow(self.widths, 2 * end, 0)
            self.heights = grow(self.heights, 2 * end, 0)
        x0, y0, x1, y1 = (c[rows] for c in columns)
        np.subtract(x1, x0, out=self.widths[self.filled:end])
        np.subtract(y1, y0, out=self.heights[self.filled:end])
        self.filled = end

    def _hash(self, ids: np.ndarray, rows: slice | np.ndarray, kept_ids: np.ndarray,
              columns: list[np.ndarray], boxes: Boxes, codes: dict[str, np.ndarray],
              ok: np.ndarray, all_kept: bool, start: int) -> None:
        assert boxes.hashes is not None
        end = start + len(ids)
        if end > len(self.hashes):
            self.hashes = grow(self.hashes, 2 * end, 0)
        found = checks.row_hashes(ids, boxes.hashes, [codes[c] for c in self.columns],
                                  out=self.hashes[start:end])
        if not all_kept:
            left_out = np.flatnonzero(~ok)
            found[left_out] = left_out.astype(np.uint64) + np.uint64(start)

    def candidates(self) -> np.ndarray:
        """Positions of the rows whose hash another row shares (duplicates, or rare collisions)."""
        hashes = self.hashes[:self.n_rows]
        ordered = np.sort(hashes)
        repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
        del ordered
        if not len(repeated):
            return np.zeros(0, np.int64)
        return np.flatnonzero(np.isin(hashes, repeated)).astype(np.int64)


def summarize_columnar(
    path: str, spec: TableSpec, box_cols: tuple[str, str, str, str], source: str,
    vocabularies: Mapping[str, Any] | None = None, *, batch_rows: int = 1 << 20,
    progress: Progress | None = None, table: Any = None,
) -> Any:
    """Counts what the index of a columnar file would hold, without building it.

    The record batches go through the same checks as `build_columnar_index`,
    but the kept rows are counted (rows per image and per class, box sizes)
    instead of kept, and duplicates are found through row hashes sorted on
    disk, the rows they name read again to compare them. Memory: the box
    widths and heights (16 bytes a row) and one entry per image.

    Args:
        path: The local Parquet or Arrow file.
        spec: The `TableSpec` (with `image_dir` set).
        box_cols: The four numeric box columns (`columnar_box_cols`).
        source: The table as the user named it, for messages.
        vocabularies: As in `build_index`.
        batch_rows: Rows read per record batch. Defaults to 2**20.
        progress: Called with `(rows_read, rows_total)` after each batch.
        table: As in `build_columnar_index`. Defaults to `None`.

    Returns:
        The `summary.TableSummary`, equal to `summary.summarize` of the built
        index.

    Raises:
        AnnotationError: When a label column is missing.
    """
    spec, total, columns = checked_columns(path, spec, box_cols, source, table)
    builder = _CountingBuilder(spec, source, box_cols, vocabularies, total)
    if table is not None:
        builder.row_labels = table.row_labels

    def prepare(batch: Any) -> Boxes:
        return Boxes.of(batch, box_cols, spec.box_format, hashed=True)

    batches = (_read_ahead(columnar.iter_column_batches(path, columns, batch_rows), prepare)
               if table is None else ((b, None) for b in table.batches(columns, batch_rows)))
    for batch, boxes in batches:
        builder.add(batch, boxes)
        if progress is not None:
            progress(builder.n_rows, total)
    candidates = builder.candidates()
    per_path = grow(builder.per_path, len(builder.paths), 0)
    builder.path_used = per_path > 0
    vocabs, luts = column_vocabularies(builder)
    _, paths = path_lut(builder)
    used = np.flatnonzero(builder.path_used)
    label_counts = {}
    for column in spec.y_cols:
        if column in builder.given:
            counts = builder.label_counts.get(column, np.zeros(0, np.int64))
            label_counts[column] = grow(counts, vocabs[column].num_classes, 0)
            continue
        counts = builder.labels[column].used  # kept rows per normalised value
        classes = np.zeros(vocabs[column].num_classes, dtype=np.int64)
        seen = np.flatnonzero(counts)
        np.add.at(classes, luts[column][seen], counts[seen])
        label_counts[column] = classes
    problems = builder.problems + stripped_warnings(builder)
    problems += _duplicates_among(path, spec, box_cols, source, vocabularies, candidates,
                                  columns, batch_rows, table, builder.row_labels)
    return TableSummary(
        n_rows=builder.n_rows, usable_rows=builder.kept, paths=paths,
        regions_per_image=per_path[used], relative=spec.box_format.relative,
        widths=builder.widths[:builder.filled], heights=builder.heights[:builder.filled],
        label_counts=label_counts, vocabularies=vocabs, problems=problems)


def _read_ahead(batches: Iterator[Any], prepare: Callable[[Any], Any]) -> Iterator[tuple[Any, Any]]:
    """Yields `(batch, prepare(batch))` for `batches`, the next read and prepared in a thread.

    pyarrow decodes and numpy computes without the GIL, so reading the next
    record batch and checking its boxes (`prepare`, which must not touch the
    builder) overlap the rest of the checks of this one. A Parquet file written
    from a categorical column repeats its whole dictionary in every row group:
    decoding it takes about as long as the checks. The thread is this call's
    own, ended with it.
    """
    from concurrent.futures import ThreadPoolExecutor

    end = object()

    def read() -> Any:
        batch = next(batches, end)
        return batch if batch is end else (batch, prepare(batch))

    pool = ThreadPoolExecutor(1, thread_name_prefix="roi-read-ahead")
    try:
        pending = pool.submit(read)
        while (item := pending.result()) is not end:
            pending = pool.submit(read)
            yield item
    finally:
        pool.shutdown(wait=True)  # the read in flight ends before the file closes
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def _duplicates_among(path: str, spec: TableSpec, box_cols: tuple[str, str, str, str],
                      source: str, vocabularies: Mapping[str, Any] | None,
                      positions: np.ndarray, columns: list[str], batch_rows: int, table: Any,
                      row_labels: Callable[[np.ndarray], np.ndarray] | None) -> list[Problem]:
    """The duplicate rows among the rows at `positions` (table positions of kept rows).

    The rows are read again and indexed on their own; the index's own
    duplicate check (`checks.duplicates`) then compares them.
    """
    if not len(positions):
        return []
    import pyarrow as pa

    picked = []
    start = 0
    batches = (columnar.iter_column_batches(path, columns, batch_rows) if table is None
               else table.batches(columns, batch_rows))
    for batch in batches:
        lo, hi = np.searchsorted(positions, [start, start + batch.num_rows])
        if hi > lo:
            picked.append(batch.take(pa.array(positions[lo:hi] - start)))
        start += batch.num_rows
    rows = pa.Table.from_batches(picked).combine_chunks().to_batches()
    builder = ColumnBuilder(spec, source, box_cols, vocabularies, MemorySink())
    builder.row_labels = ((lambda p: positions[p]) if row_labels is None
                          else (lambda p: row_labels(positions[p])))
    for batch in rows:
        builder.add(batch)
    index, _ = index_in_memory(builder)
    return checks.duplicates(index)

