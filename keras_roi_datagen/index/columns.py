"""Building the index from a columnar table (Parquet, Arrow) without per-row Python.

`index.build` comes here when the table is a Parquet or Arrow file whose box
is four numeric columns (`box_cols`, or columns `x, y, w, h` when the table
has no `box_col`). The file is read in record batches; per batch, file names
and labels are dictionary-encoded by pyarrow, so Python sees each distinct
file name and label once, and boxes are checked as arrays. Only rows with a
problem become Python objects (their `Problem`s), with the same kinds and
messages as the row-by-row reader.

Memory: without a cache the columns are gathered in memory. With a cache
(`build_index(cache=...)`) each batch's kept rows are appended to the cache
entry's files as they are read, so memory stays flat whatever the row count
(the duplicate check sorts row hashes in 16 buckets on disk, and the image
table is a counting sort written through a memory map).

Row labels are the rows' 0-based positions in the file; a plain CSV file
(`csv_columns`) comes through here too, and its row labels are its line
numbers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from keras_roi_datagen.boxes import BoxFormat
from keras_roi_datagen.errors import AnnotationError, Problem
from keras_roi_datagen.formats import columnar
from keras_roi_datagen.index import checks
from keras_roi_datagen.index.cache import EntryWriter, add_problems, entry_meta, load
from keras_roi_datagen.index.model import IndexBuild, RoiIndex, TableSpec
from keras_roi_datagen.labels import (
    LabelValueError,
    LabelVocabulary,
    missing_label_error,
    normalize_label,
)
from keras_roi_datagen.paths import (
    MISSING_NAME,
    PathProblem,
    PathTable,
    check_image_file,
    resolve_image_path,
)
from keras_roi_datagen.storage import is_url

__all__ = ["Boxes", "ColumnBuilder", "MemorySink", "build_columnar_index", "checked_columns",
           "column_vocabularies", "columnar_box_cols", "grow", "index_in_memory", "path_lut",
           "stripped_warnings"]

_DEFAULT_BOX_COLS = ("x", "y", "w", "h")
_NO_NAME = np.iinfo(np.int64).min
_UNSEEN = np.iinfo(np.int64).max  # a dictionary entry not looked up yet
_BUCKETS = 16
Progress = Callable[[int, int], None]


def columnar_box_cols(path: str, spec: TableSpec) -> tuple[str, str, str, str] | None:
    """Returns the numeric box columns of a columnar file, or `None` when it has none.

    Args:
        path: The local file.
        spec: The `TableSpec`; `box_cols`, else `x, y, w, h` when the file has
            no `box_col`.

    Returns:
        The four columns, when all are numeric and `x_col` is text.
    """
    if not columnar.is_columnar(path):
        return None
    import pyarrow.types as pat

    types = columnar.column_types(path)
    box_cols = spec.box_cols
    if box_cols is None and spec.box_col not in types and set(_DEFAULT_BOX_COLS) <= set(types):
        box_cols = _DEFAULT_BOX_COLS
    if box_cols is None or not all(c in types for c in (*box_cols, spec.x_col)):
        return None
    numeric = all(pat.is_integer(types[c]) or pat.is_floating(types[c]) for c in box_cols)
    name_type = types[spec.x_col]
    if pat.is_dictionary(name_type):
        name_type = name_type.value_type
    text = pat.is_string(name_type) or pat.is_large_string(name_type)
    return box_cols if numeric and text else None


@dataclass
class _Labels:
    """One label column's distinct values, seen across record batches.

    Raw values get ids in order of appearance; each maps to a normalised id
    (`norm`, -1 when the value is unusable), so `"red"` and `" red"` share one.
    """

    raw_ids: dict[Any, int] = field(default_factory=dict)
    raw: list[Any] = field(default_factory=list)
    norm: list[int] = field(default_factory=list)
    errors: dict[int, LabelValueError] = field(default_factory=dict)
    norm_ids: dict[Hashable, int] = field(default_factory=dict)
    values: list[Hashable] = field(default_factory=list)
    used: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    raw_count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    raw_first: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def lookup(self, dictionary: list[Any]) -> np.ndarray:
        """Returns the normalised id of each value of a batch's dictionary."""
        found = np.empty(len(dictionary), dtype=np.int64)
        for i, value in enumerate(dictionary):
            key = (type(value), value)
            known = self.raw_ids.get(key)
            if known is None:
                known = self.raw_ids[key] = len(self.raw)
                self.raw.append(value)
                try:
                    label = normalize_label(value)
                    self.norm.append(self.norm_ids.setdefault(label, len(self.norm_ids)))
                    if len(self.norm_ids) > len(self.values):
                        self.values.append(label)
                except LabelValueError as exc:
                    self.errors[known] = exc
                    self.norm.append(-1)
            found[i] = known
        return found

    def count(self, norm_ids: np.ndarray) -> None:
        """Counts the normalised values of kept rows (they make the vocabulary)."""
        self.used = grow(self.used, len(self.values), 0)
        if len(norm_ids) and norm_ids.min() < 0:  # an optional column's missing values
            norm_ids = norm_ids[norm_ids >= 0]
        self.used += np.bincount(norm_ids, minlength=len(self.values))

    def count_raw(self, raw_ids: np.ndarray, rows: np.ndarray | None, start: int) -> None:
        """Counts kept rows per raw value, and the first row of each (for warnings).

        `rows` are the kept rows' positions in the batch (`None`: all rows),
        `start` the batch's.
        """
        self.raw_count = grow(self.raw_count, len(self.raw), 0)
        self.raw_first = grow(self.raw_first, len(self.raw), -1)
        if len(raw_ids) and raw_ids.min() < 0:  # an optional column's nulls
            present = raw_ids >= 0
            raw_ids = raw_ids[present]
            rows = np.flatnonzero(present) if rows is None else rows[present]
        self.raw_count += np.bincount(raw_ids, minlength=len(self.raw))
        unseen = (self.raw_first < 0) & (self.raw_count > 0)
        if unseen.any():  # rare after the first batches: no sort per batch
            distinct, first = np.unique(raw_ids, return_index=True)
            fresh = unseen[distinct]
            self.raw_first[distinct[fresh]] = (first[fresh] if rows is None
                                               else rows[first[fresh]]) + start


def grow(array: np.ndarray, size: int, fill: int) -> np.ndarray:
    """Returns `array` extended to `size` entries with `fill` (itself when long enough)."""
    if len(array) >= size:
        return array
    return np.concatenate([array, np.full(size - len(array), fill, dtype=array.dtype)])


class MemorySink:
    """Kept rows gathered in memory (no cache)."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {}

    def append(self, name: str, values: np.ndarray) -> None:
        """Adds rows to column `name`."""
        self.parts.setdefault(name, []).append(values)

    def column(self, name: str, dtype: Any, width: int = 0) -> np.ndarray:
        """Returns column `name` whole (and forgets it), as `dtype`; `width`: columns of an empty 2-D one."""
        parts = self.parts.pop(name, [])
        if not parts:
            return np.zeros((0, width) if width else 0, dtype=dtype)
        return (np.concatenate(parts) if len(parts) > 1 else parts[0]).astype(dtype, copy=False)


class ColumnBuilder:
    """Checks the record batches of a columnar table and hands the kept rows to a sink.

    Args:
        spec: The `TableSpec`, with `box_cols` set (see `checked_columns`).
        source: The table as the user named it, for messages.
        box_cols: The four numeric box columns.
        given: Given vocabularies per label column, if any.
        sink: Where kept rows go: a `MemorySink`, or a cache entry's
            `EntryWriter` (`append(name, values)`).
    """

    def __init__(self, spec: TableSpec, source: str, box_cols: tuple[str, str, str, str],
                 given: Mapping[str, Any] | None, sink: Any) -> None:
        self.spec, self.source, self.box_cols, self.sink = spec, source, box_cols, sink
        self.columns = spec.coded_cols
        self.names: dict[str, int] = {}  # file name -> path id, or -(problem number)
        self.path_ids_by_path: dict[str, int] = {}
        self.paths: list[str] = []
        self.path_used = np.zeros(0, dtype=bool)
        self.name_problems: list[tuple[PathProblem, str, str | None]] = []
        self.labels = {c: _Labels() for c in self.columns}
        self.given = {c: _vocabulary(c, v) for c, v in (given or {}).items()
                      if c in spec.y_cols and v is not None}
        self.problems: list[Problem] = []
        self.n_rows = self.kept = 0
        image_dir = spec.image_dir
        self.base = (None if image_dir is None or is_url(image_dir)
                     else os.path.join(os.path.abspath(image_dir), ""))
        self.buckets: _Buckets | None = None
        self.hashed_boxes = False  # whether `add` hashes boxes (for a caller's row hashes)
        self.dictionaries: dict[str, tuple[Any, np.ndarray]] = {}  # column -> (dictionary, ids)
        self.row_labels: Callable[[np.ndarray], np.ndarray] | None = None
        self.rows_left_out = 0  # rows a reader left out before this builder (counted as read)
        self.without: list[dict[str, Any]] = []

    def label(self, position: int) -> int:
        """The row label of a 0-based row position (its line, in a CSV file)."""
        if self.row_labels is None:
            return position
        return int(self.row_labels(np.array([position]))[0])

    def _name_ids(self, dictionary: list[Any]) -> np.ndarray:
        names = self.names
        known = [names.get(name) for name in dictionary]
        if None in known:  # names not seen before (a dictionary has no repeats): resolved once
            resolve = self._resolve
            for i, name in enumerate(dictionary):
                if known[i] is None:
                    known[i] = names[name] = resolve(name)
        found = np.array(known, dtype=np.int64)
        if len(self.paths) > len(self.path_used):
            self.path_used = np.concatenate(
                [self.path_used, np.zeros(len(self.paths) - len(self.path_used), bool)])
        return found

    def _resolve(self, name: str) -> int:
        spec = self.spec
        resolved = self._plain(name) or resolve_image_path(
            name, spec.image_dir, spec.allow_outside_image_dir)
        if isinstance(resolved, PathProblem):
            self.name_problems.append((resolved, name, None))
            return -len(self.name_problems)
        if spec.check_files:
            checked = check_image_file(resolved)
            if checked is not None:
                self.name_problems.append((checked, name, resolved))
                return -len(self.name_problems)
        known = self.path_ids_by_path.get(resolved)
        if known is None:
            known = self.path_ids_by_path[resolved] = len(self.paths)
            self.paths.append(resolved)
        return known

    def _plain(self, name: Any) -> str | None:
        """Returns `image_dir/name` for a plain relative name, else `None`.

        The same as `resolve_image_path` without its cost; `None` for anything
        else (absolute names, `..`, `~`, URLs), which take the full path.
        """
        if self.base is None or not isinstance(name, str) or not name or name != name.strip():
            return None
        if (name[0] in "/~\\" or "\\" in name or "//" in name or "/." in "/" + name
                or name.endswith("/") or ":" in name):
            return None
        return self.base + name

    def _encoded(self, array: Any, lookup: Callable[[list[Any]], np.ndarray],
                 fill: int, column: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Per row, `lookup`'s value for its entry of the column's dictionary.

        Only the dictionary entries some row uses are looked up, each once
        while the dictionary stays the same: a Parquet column written from a
        categorical carries its whole dictionary in every row group.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        if not pa.types.is_dictionary(array.type):
            array = pc.dictionary_encode(array)
        if array.null_count:
            nulls = np.asarray(array.is_null(), dtype=bool)
            indices = pc.fill_null(array.indices, 0).to_numpy(zero_copy_only=False)
        else:  # the indices as they are: no copy, no cast
            nulls, indices = None, array.indices.to_numpy(zero_copy_only=False)
        dictionary = array.dictionary
        if not len(dictionary):
            return np.full(len(indices), fill, dtype=np.int64), nulls
        known = self.dictionaries.get(column)
        if known is None or len(known[0]) != len(dictionary) or not known[0].equals(dictionary):
            known = self.dictionaries[column] = (dictionary, np.full(len(dictionary), _UNSEEN))
        lut = known[1]
        found = lut[indices]
        unseen = found == _UNSEEN
        if unseen.any():
            used = np.flatnonzero(np.bincount(indices[unseen], minlength=len(dictionary)))
            lut[used] = lookup(dictionary.take(pa.array(used)).to_pylist())
            found = lut[indices]
        return found, nulls

    def add(self, batch: Any, boxes: Boxes | None = None) -> None:
        """Checks and counts one record batch (`boxes`: its `Boxes`, if prepared already)."""
        n, spec, start = batch.num_rows, self.spec, self.n_rows
        ids, nulls = self._encoded(batch.column(spec.x_col), self._name_ids, -1, spec.x_col)
        if nulls is not None:
            ids[nulls] = _NO_NAME
        if boxes is None:
            boxes = Boxes.of(batch, self.box_cols, spec.box_format, self.hashed_boxes)
        columns = boxes.columns
        path_bad = ids < 0
        box_bad = boxes.bad & ~path_bad
        ok = ~(path_bad | box_bad)
        raw_ids, label_bad, codes = {}, {}, {}
        for column in self.columns:
            state = self.labels[column]
            raw, nulls = self._encoded(batch.column(column), state.lookup, -1, column)
            if nulls is not None:
                raw[nulls] = -1
            norm = np.append(np.asarray(state.norm, dtype=np.int64), -1)[raw]
            raw_ids[column], codes[column] = raw, norm
            if column in spec.y_cols:  # an optional column's missing value is allowed
                bad = (norm < 0) & ok
                ok &= ~bad
                label_bad[column] = bad
        unknown = {}
        for column, vocab in self.given.items():
            state = self.labels[column]
            lut = np.array([_lookup(vocab, v) for v in state.values] + [-1], dtype=np.int64)
            codes[column] = lut[codes[column]]
            unknown[column] = ok & (codes[column] < 0)
            ok &= ~unknown[column]
        self._problems(start, ids, columns, raw_ids, path_bad, box_bad, label_bad, unknown)
        all_kept = bool(ok.all())
        keep = np.flatnonzero(ok) if not all_kept else None
        rows: slice | np.ndarray = slice(None) if keep is None else keep  # no copies when all kept
        kept_ids = ids[rows]
        self._keep(kept_ids, rows, keep, columns, codes, start)
        for column in self.columns:
            if column not in self.given:
                self.labels[column].count(codes[column][rows])
            self.labels[column].count_raw(raw_ids[column][rows], keep, start)
        self._hash(ids, rows, kept_ids, columns, boxes, codes, ok, all_kept, start)
        self.n_rows += n
        self.kept += n if keep is None else len(keep)

    def _keep(self, kept_ids: np.ndarray, rows: slice | np.ndarray, keep: np.ndarray | None,
              columns: list[np.ndarray], codes: dict[str, np.ndarray], start: int) -> None:
        """Hands a batch's kept rows to the sink (`rows`: them within the batch)."""
        keep = np.arange(len(columns[0])) if keep is None else keep
        self.path_used[kept_ids] = True
        self.sink.append("path_ids", kept_ids.astype(np.int32))
        self.sink.append("boxes", np.stack(columns, axis=1)[rows])
        self.sink.append("positions", keep.astype(np.int64) + start)
        if self.row_labels is not None:
            self.sink.append("rows", self.row_labels(keep.astype(np.int64) + start))
        for column in self.columns:
            self.sink.append(f"labels:{column}", codes[column][rows].astype(np.int32))

    def _hash(self, ids: np.ndarray, rows: slice | np.ndarray, kept_ids: np.ndarray,
              columns: list[np.ndarray], boxes: Boxes, codes: dict[str, np.ndarray],
              ok: np.ndarray, all_kept: bool, start: int) -> None:
        """Records the kept rows' hashes for the duplicate check on disk (with a cache)."""
        if self.buckets is not None:
            kept = [c[rows] for c in columns]
            self.buckets.add(checks.row_hashes(kept_ids, checks.box_hashes(kept),
                                               [codes[c][rows] for c in self.columns]), self.kept)

    def _problems(self, start: int, ids: np.ndarray, columns: list[np.ndarray],
                  raw_ids: dict[str, np.ndarray], path_bad: np.ndarray, box_bad: np.ndarray,
                  label_bad: dict[str, np.ndarray], unknown: dict[str, np.ndarray]) -> None:
        spec, source = self.spec, self.source
        found: list[tuple[int, Problem]] = []
        for i in np.flatnonzero(path_bad).tolist():
            code, row = int(ids[i]), start + i
            label = self.label(row)
            if code == _NO_NAME:
                found.append((row, checks.path_problem(MISSING_NAME, source=source, row=label,
                                                       column=spec.x_col, name=None)))
                continue
            problem, name, resolved = self.name_problems[-code - 1]
            found.append((row, checks.path_problem(problem, source=source, row=label,
                                                   column=spec.x_col, name=name, path=resolved)))
        for i in np.flatnonzero(box_bad).tolist():
            box = np.array([c[i] for c in columns])
            found.append((start + i, checks.bad_box(
                tuple(box), spec.box_format, source=source, row=self.label(start + i),
                column=spec.box_column_name, value=_raw_box(box, spec.box_format),
                path=self.paths[int(ids[i])]) or Problem(
                    "box_degenerate", "the box is unusable.", source=source,
                    row=self.label(start + i))))
        for column, bad in label_bad.items():
            state = self.labels[column]
            for i in np.flatnonzero(bad).tolist():
                raw = int(raw_ids[column][i])
                error = state.errors.get(raw) if raw >= 0 else None
                found.append((start + i, checks.label_problem(
                    column, error or missing_label_error(), source=source, row=self.label(start + i),
                    value=state.raw[raw] if raw >= 0 else None, path=self.paths[int(ids[i])])))
        for column, bad in unknown.items():
            vocab, state = self.given[column], self.labels[column]
            for i in np.flatnonzero(bad).tolist():
                value = state.values[state.norm[int(raw_ids[column][i])]]
                found.append((start + i, checks.unknown_label(
                    column, value, vocab, source=source, row=self.label(start + i))))
        found.sort(key=lambda pair: pair[0])
        self.problems.extend(problem for _, problem in found)


def _vocabulary(column: str, given: Any) -> LabelVocabulary:
    return given if isinstance(given, LabelVocabulary) else LabelVocabulary(given, name=column)


def _lookup(vocab: LabelVocabulary, value: Hashable) -> int:
    found = vocab.lookup(value)
    return -1 if found is None else int(found)


def _box_columns(batch: Any, box_cols: tuple[str, str, str, str],
                 box_format: BoxFormat) -> list[np.ndarray]:
    """The batch's boxes as four contiguous `float64` columns, `x0, y0, x1, y1`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = [pc.cast(batch.column(name), pa.float64()).to_numpy(zero_copy_only=False)
               for name in box_cols]
    if box_format in (BoxFormat.XYWH, BoxFormat.REL_XYWH):
        columns[2] = columns[2] + columns[0]
        columns[3] = columns[3] + columns[1]
    return columns


@dataclass
class Boxes:
    """A record batch's boxes: `x0, y0, x1, y1` columns, which are unusable, and their hash."""

    columns: list[np.ndarray]
    bad: np.ndarray
    hashes: np.ndarray | None = None

    @classmethod
    def of(cls, batch: Any, box_cols: tuple[str, str, str, str], box_format: BoxFormat,
           hashed: bool = False) -> Boxes:
        """Reads and checks the boxes of `batch` (in any thread: no builder state)."""
        columns = _box_columns(batch, box_cols, box_format)
        bad = _bad_boxes(columns, box_format.relative)
        return cls(columns, bad, checks.box_hashes(columns) if hashed else None)


def _bad_boxes(columns: list[np.ndarray], relative: bool) -> np.ndarray:
    x0, y0, x1, y1 = columns
    with np.errstate(invalid="ignore"):
        bad: np.ndarray = ~(np.isfinite(x0) & np.isfinite(y0) & np.isfinite(x1) & np.isfinite(y1))
        bad |= (x1 - x0 <= 0) | (y1 - y0 <= 0)
        if relative:
            bad |= (x1 <= 0) | (y1 <= 0) | (x0 >= 1) | (y0 >= 1)
    return bad


def _raw_box(xyxy: np.ndarray, box_format: BoxFormat) -> list[float]:
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    if box_format in (BoxFormat.XYWH, BoxFormat.REL_XYWH):
        return [x0, y0, x1 - x0, y1 - y0]
    return [x0, y0, x1, y1]


def checked_columns(path: str, spec: TableSpec, box_cols: tuple[str, str, str, str],
                     source: str | None, table: Any) -> tuple[TableSpec, int, list[str]]:
    """The spec with its box columns, the row count and the columns to read.

    Raises:
        AnnotationError: When a label column is missing.
    """
    types = columnar.column_types(path) if table is None else table.types
    missing = [c for c in spec.y_cols if c not in types]
    if missing:
        raise AnnotationError.from_problems([Problem(
            "missing_column", f"the table has no column(s) {missing}; it has {list(types)}.",
            source=source, column=missing[0])])
    spec = replace(spec, box_cols=box_cols,
                   optional_cols=tuple(c for c in spec.optional_cols if c in types))
    total = columnar.row_count(path) if table is None else table.total
    return spec, total, [spec.x_col, *box_cols, *spec.coded_cols]


def build_columnar_index(
    path: str, spec: TableSpec, box_cols: tuple[str, str, str, str], source: str,
    vocabularies: Mapping[str, Any] | None = None, *, batch_rows: int = 1 << 20,
    cache_folder: str | None = None, progress: Progress | None = None, table: Any = None,
) -> IndexBuild:
    """Builds the index of a columnar file by columns (see the module docstring).

    Args:
        path: The local Parquet or Arrow file.
        spec: The `TableSpec` (with `image_dir` set).
        box_cols: The four numeric box columns (`columnar_box_cols`).
        source: The table as the user named it (a path or URL), for messages.
        vocabularies: As in `build_index`.
        batch_rows: Rows read per record batch. Defaults to 2**20.
        cache_folder: Write the index straight into this cache entry (flat
            memory) and return it memory-mapped. Defaults to `None` (in memory).
        progress: Called with `(rows_read, rows_total)` after each batch.
        table: A table read by another reader, with `types`, `total`,
            `batches(columns, batch_rows)` and `row_labels(positions)` (a
            `csv_columns.CsvTable`). Defaults to `None` (`path` is Parquet
            or Arrow, and row labels are positions).

    Returns:
        The `IndexBuild`, as `build_index` returns it.

    Raises:
        AnnotationError: When a label column is missing.
    """
    spec, total, columns = checked_columns(path, spec, box_cols, source, table)
    sink: Any = MemorySink() if cache_folder is None else EntryWriter(cache_folder)
    batches = (columnar.iter_column_batches(path, columns, batch_rows) if table is None
               else table.batches(columns, batch_rows))
    try:
        builder = ColumnBuilder(spec, source, box_cols, vocabularies, sink)
        if table is not None:
            builder.row_labels = table.row_labels
            # A reader that drops rows itself (COCO) hands over its problems first.
            builder.problems.extend(getattr(table, "problems", ()))
            builder.rows_left_out = getattr(table, "rows_left_out", 0)
            builder.without = list(getattr(table, "rows_without_regions", ()))
        if cache_folder is not None:
            builder.buckets = _Buckets(sink.staging_dir("duplicates"))
        for batch in batches:
            builder.add(batch)
            if progress is not None:
                progress(builder.n_rows, total)
        if cache_folder is None:
            return _finish_in_memory(builder)
        return _finish_on_disk(builder, sink)
    except BaseException:
        if cache_folder is not None:
            sink.abort()
        raise


def column_vocabularies(builder: ColumnBuilder) -> tuple[dict[str, LabelVocabulary], dict[str, np.ndarray]]:
    """The vocabulary of each coded column, and the lookup from normalised id to class index.

    An optional column no kept row has a value in is left out (the table lacks it).
    """
    vocabs, luts = {}, {}
    for column in builder.columns:
        state = builder.labels[column]
        if column in builder.given:
            vocabs[column] = builder.given[column]
            luts[column] = np.arange(max(1, vocabs[column].num_classes), dtype=np.int32)
            continue
        used = np.flatnonzero(grow(state.used, len(state.values), 0))
        if not len(used) and column not in builder.spec.y_cols:
            continue
        vocab = LabelVocabulary.from_values([state.values[i] for i in used.tolist()], name=column)
        lut = np.full(len(state.values) + 1, -1, dtype=np.int32)
        for i in used.tolist():
            lut[i] = vocab.index(state.values[i])
        vocabs[column], luts[column] = vocab, lut
    return vocabs, luts


def path_lut(builder: ColumnBuilder) -> tuple[np.ndarray, PathTable]:
    """Renumbers the paths some kept row uses, keeping their order of first appearance."""
    used = builder.path_used
    renumber = (np.cumsum(used) - 1).astype(np.int32)
    kept = PathTable.from_strings(builder.paths[i] for i in np.flatnonzero(used).tolist())
    return renumber, kept


def _finish_in_memory(builder: ColumnBuilder) -> IndexBuild:
    index, vocabs = index_in_memory(builder)
    problems = builder.problems + stripped_warnings(builder) + checks.duplicates(index)
    return IndexBuild(index, vocabs, problems, builder.without,
                      builder.n_rows + builder.rows_left_out, image_dir=builder.spec.image_dir)


def index_in_memory(builder: ColumnBuilder) -> tuple[RoiIndex, dict[str, LabelVocabulary]]:
    """The `RoiIndex` of what a builder over a `MemorySink` kept, and its vocabularies."""
    spec, sink = builder.spec, builder.sink
    vocabs, luts = column_vocabularies(builder)
    renumber, paths = path_lut(builder)
    path_ids = sink.column("path_ids", np.int32)
    positions = sink.column("positions", np.int64)
    rows = positions if builder.row_labels is None else sink.column("rows", np.int64)
    codes = {}
    for column in builder.columns:
        ids = sink.column(f"labels:{column}", np.int32)
        if column in vocabs:
            codes[column] = ids if column in builder.given else luts[column][ids]
    index = RoiIndex(
        paths=paths, path_ids=renumber[path_ids] if len(path_ids) else path_ids,
        boxes=sink.column("boxes", np.float64, 4), relative=spec.box_format.relative,
        codes=codes, rows=rows, positions=positions, source=builder.source)
    return index, vocabs


def _finish_on_disk(builder: ColumnBuilder, writer: EntryWriter) -> IndexBuild:
    spec = builder.spec
    empty: dict[str, np.ndarray] = {"path_ids": np.zeros(0, np.int32), "boxes": np.zeros((0, 4)),
             "positions": np.zeros(0, np.int64),
             **{f"labels:{c}": np.zeros(0, np.int32) for c in builder.columns}}
    if builder.row_labels is not None:
        empty["rows"] = np.zeros(0, np.int64)
    for name, values in empty.items():
        if name not in writer.columns:  # no row kept, or no record batch at all
            writer.write(name, values)
    vocabs, luts = column_vocabularies(builder)
    renumber, paths = path_lut(builder)
    writer.remap("path_ids", renumber)
    names = [column for column in builder.columns if column in vocabs]
    for column in builder.columns:
        if column not in vocabs:
            writer.drop(f"labels:{column}")
            continue
        lut = None if column in builder.given else luts[column]
        writer.rename(f"labels:{column}", f"codes_{names.index(column)}", lut)
    writer.write("paths_data", paths.data)
    writer.write("paths_offsets", paths.offsets)
    writer.image_table(len(paths))
    problems = builder.problems + stripped_warnings(builder)
    meta = entry_meta(source=builder.source, relative=spec.box_format.relative,
                      codes=names, n_rows=builder.n_rows + builder.rows_left_out,
                      vocabularies=vocabs, problems=problems,
                      rows_without_regions=builder.without,
                      rows="positions" if builder.row_labels is None else "rows",
                      image_dir=spec.image_dir)
    candidates = (builder.buckets.candidates() if builder.buckets is not None
                  else np.zeros(0, np.int64))
    folder = writer.commit(meta)
    build = load(folder)
    assert build is not None
    duplicates = checks.duplicates(build.index.select(candidates)) if len(candidates) else []
    if duplicates:
        build.problems.extend(duplicates)
        add_problems(folder, duplicates)
    return build


class _Buckets:
    """Row hashes in 16 files by their top 4 bits, to find duplicates in flat memory."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def _file(self, bucket: int, kind: str) -> str:
        return os.path.join(self.folder, f"{bucket}.{kind}")

    def add(self, hashes: np.ndarray, first_row: int) -> None:
        """Adds the `checks.row_hashes` of kept rows numbered from `first_row`."""
        bucket = (hashes >> np.uint64(60)).astype(np.uint8)
        order = np.argsort(bucket, kind="stable")  # a radix sort for 8-bit keys
        bounds = np.searchsorted(bucket[order], np.arange(_BUCKETS + 1))
        rows = np.arange(first_row, first_row + len(hashes), dtype=np.int64)
        for b in range(_BUCKETS):
            part = order[bounds[b]:bounds[b + 1]]
            with open(self._file(b, "h"), "ab") as out:
                hashes[part].tofile(out)
            with open(self._file(b, "r"), "ab") as out:
                rows[part].tofile(out)

    def candidates(self) -> np.ndarray:
        """Rows whose hash another row shares (duplicates, or rare collisions)."""
        found: list[np.ndarray] = []
        for b in range(_BUCKETS):
            if not os.path.exists(self._file(b, "h")):
                continue
            hashes = np.fromfile(self._file(b, "h"), dtype=np.uint64)
            if len(hashes) < 2:
                continue
            ordered = np.sort(hashes)
            repeated = ordered[1:][ordered[1:] == ordered[:-1]]
            if len(repeated):
                rows = np.fromfile(self._file(b, "r"), dtype=np.int64)
                found.append(rows[np.isin(hashes, repeated)])
        return np.sort(np.concatenate(found)) if found else np.zeros(0, np.int64)


def stripped_warnings(builder: ColumnBuilder) -> list[Problem]:
    """The `label_whitespace` warnings of the labels kept rows had (`checks.whitespace_warning`)."""
    found = []
    for column, state in builder.labels.items():
        counts = grow(state.raw_count, len(state.raw), 0)
        for raw_id, raw in enumerate(state.raw):
            norm = state.norm[raw_id]
            if (not isinstance(raw, str) or norm < 0 or state.values[norm] == raw
                    or not counts[raw_id]):
                continue
            found.append(checks.whitespace_warning(
                column, raw, int(counts[raw_id]), source=builder.source,
                row=builder.label(int(state.raw_first[raw_id]))))
    return found
