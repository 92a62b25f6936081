"""The columnar index: a table turned into NumPy arrays, checked once.

`build_index` reads an annotation table (a VIA export, any CSV, or a DataFrame),
resolves and checks every image path, turns every region into a box and every
label into a class index, and records each problem with its row. What comes
out is a `RoiIndex`: a few arrays (a million rows cost tens of megabytes and
cross process pipes cheaply), never per-row Python objects. VIA files are
streamed record by record, so the table never has to fit in a DataFrame.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from array import array
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from keras_roi_datagen import storage
from keras_roi_datagen.augment import Augmentation
from keras_roi_datagen.boxes import (
    BoxFormat,
    ShapeError,
    box_from_values,
    box_problem,
    shape_to_xyxy,
)
from keras_roi_datagen.errors import AnnotationError, Problem
from keras_roi_datagen.formats import columnar
from keras_roi_datagen.imaging import BatchJob, DecodeOptions
from keras_roi_datagen.labels import LabelValueError, LabelVocabulary, normalize_label
from keras_roi_datagen.mapped import gather, read_range
from keras_roi_datagen.paths import PathProblem, PathTable, check_image_file, resolve_image_path

__all__ = ["IndexBuild", "RoiIndex", "TableSpec", "build_index"]

# Rows read at a time by whole-column passes over a (possibly mapped) index.
_CHUNK_ROWS = 1 << 16


@dataclass(frozen=True)
class TableSpec:
    """Where things are in the table; mirrors `RoiDataset`'s arguments."""

    image_dir: str | None = None
    x_col: str = "filename"
    box_col: str = "region_shape_attributes"
    box_cols: tuple[str, str, str, str] | None = None
    box_format: BoxFormat = BoxFormat.XYWH
    y_cols: tuple[str, ...] = ("name", "type")
    allow_outside_image_dir: bool = False
    check_files: bool = True
    format: str = "auto"


@dataclass(frozen=True)
class RoiIndex:
    """The usable rows of a table as arrays.

    Args:
        paths: Distinct image paths (absolute, or URLs), as a compact
            `PathTable` (one UTF-8 buffer and offsets).
        path_ids: Per row, the position of its image in `paths`.
        boxes: `(n, 4)` `float64` boxes, `xyxy`, pixels or fractions.
        relative: Whether `boxes` are fractions of the image size.
        codes: Per label column, the class index of each row (`int32`).
        rows: Per row, its label in the source table (CSV line number or
            DataFrame index label), for messages.
        positions: Per row, its position in the source table.
        source: The table's file, if it came from one.
        cache_folder: The on-disk cache entry its columns are mapped from,
            if any (see `keras_roi_datagen.index_cache`); a pickled index
            then maps the entry again instead of carrying its rows.
    """

    paths: PathTable
    path_ids: np.ndarray
    boxes: np.ndarray
    relative: bool
    codes: dict[str, np.ndarray]
    rows: np.ndarray
    positions: np.ndarray
    source: str | None = None
    cache_folder: str | None = None

    def __len__(self) -> int:
        return len(self.path_ids)

    def __reduce_ex__(self, protocol: Any) -> Any:
        if self.cache_folder is not None:
            return (_mapped_index, (self.cache_folder,))
        return super().__reduce_ex__(protocol)

    def select(self, keep: np.ndarray) -> RoiIndex:
        """Returns the index restricted to `keep` (a boolean mask or positions)."""
        return replace(
            self,
            path_ids=self.path_ids[keep],
            boxes=self.boxes[keep],
            codes={k: v[keep] for k, v in self.codes.items()},
            rows=self.rows[keep],
            positions=self.positions[keep],
            cache_folder=None,
        )

    def job(self, rows: np.ndarray, options: DecodeOptions, augment: Augmentation | None = None,
            params: np.ndarray | None = None) -> BatchJob:
        """Describes the decoding of the given rows as a `BatchJob` (with their augmentation)."""
        ids = gather(self.path_ids, rows)  # by position: a mapped index stays out of memory
        distinct, local = np.unique(ids, return_inverse=True)
        return BatchJob(
            paths=tuple(self.paths[i] for i in distinct.tolist()),
            path_index=local.astype(np.int32),
            boxes=gather(self.boxes, rows),
            relative=self.relative,
            options=options,
            augment=augment,
            params=params,
            smallest=self.smallest_regions[distinct],
        )

    @functools.cached_property
    def smallest_regions(self) -> np.ndarray:
        """Per image in `paths`, the width and height of its smallest region.

        An `(len(paths), 2)` `float32` array in the units of `boxes` (`inf`
        for an image without rows); each column's minimum is taken on its own.
        Read in chunks by position, so a mapped index stays out of memory.
        """
        widths = np.full(len(self.paths), np.inf, dtype=np.float32)
        heights = np.full(len(self.paths), np.inf, dtype=np.float32)
        for start in range(0, len(self), _CHUNK_ROWS):
            ids = read_range(self.path_ids, start, start + _CHUNK_ROWS)
            boxes = read_range(self.boxes, start, start + _CHUNK_ROWS)
            np.minimum.at(widths, ids, (boxes[:, 2] - boxes[:, 0]).astype(np.float32))
            np.minimum.at(heights, ids, (boxes[:, 3] - boxes[:, 1]).astype(np.float32))
        return np.column_stack([widths, heights])

    def row_label(self, row: int) -> Any:
        """Returns the source-table label of index row `row` as a plain Python value."""
        label = self.rows[row]
        return label.item() if isinstance(label, np.generic) else label

    def path_of(self, row: int) -> str:
        """Returns the image path of index row `row`."""
        return str(self.paths[self.path_ids[row]])

    def problem(self, row: int, kind: str, message: str, **extra: Any) -> Problem:
        """Builds a `Problem` located at index row `row` (its table row and image)."""
        return Problem(kind, message, source=self.source, row=self.row_label(row),
                       path=self.path_of(row), **extra)

    def fingerprint(self) -> str:
        """Returns a sha256 of everything that decides batch contents."""
        if self.cache_folder is not None:  # from the files, once: nothing mapped into memory
            from keras_roi_datagen import index_cache

            with contextlib.suppress(OSError):  # the entry was removed: hash the mapped arrays
                return index_cache.fingerprint(self.cache_folder)
        digest = hashlib.sha256()
        digest.update("\n".join(self.paths.tolist()).encode())
        for column in (self.path_ids, self.boxes, self.positions):
            digest.update(np.ascontiguousarray(column).tobytes())
        for name in sorted(self.codes):
            digest.update(name.encode() + np.ascontiguousarray(self.codes[name]).tobytes())
        digest.update(b"relative" if self.relative else b"pixels")
        return digest.hexdigest()


def _mapped_index(folder: str) -> RoiIndex:
    from keras_roi_datagen import index_cache

    build = index_cache.load(folder)
    if build is None:
        raise FileNotFoundError(f"the index cache entry {folder!r} is gone; build the index again.")
    return build.index


@dataclass
class IndexBuild:
    """What `build_index` found.

    Args:
        index: The usable rows.
        vocabularies: One `LabelVocabulary` per label column.
        problems: Every problem, errors (rows left out) and warnings.
        rows_without_regions: Images listed in a VIA export with no region,
            as `{"row": ..., "filename": ...}` dicts (dropped, not errors).
        n_rows: Rows read from the table (regions, good and bad).
    """

    index: RoiIndex
    vocabularies: dict[str, LabelVocabulary]
    problems: list[Problem] = field(default_factory=list)
    rows_without_regions: list[dict[str, Any]] = field(default_factory=list)
    n_rows: int = 0

    @property
    def errors(self) -> list[Problem]:
        """The problems that excluded a row."""
        return [p for p in self.problems if p.severity == "error"]


@dataclass(frozen=True)
class _RawRow:
    row: Any
    position: int
    filename: Any
    box: Any
    labels: dict[str, Any]
    problem: Problem | None = None


class _Collector:
    """Accumulates rows into compact arrays while recording problems."""

    def __init__(self, spec: TableSpec, source: str | None) -> None:
        self.spec, self.source = spec, source
        self.path_table: dict[str, int] = {}
        self.path_checked: dict[str, PathProblem | str] = {}
        self.resolved: dict[str, str | PathProblem] = {}
        # One object per distinct label, however many rows carry it.
        # Per column and per kind: Python's True == 1 == 1.0 would merge them.
        self.interned: dict[str, dict[tuple[bool, Hashable], Hashable]] = {c: {} for c in spec.y_cols}
        # array.array keeps a million rows in tens of megabytes, not hundreds.
        self.path_ids = array("i")
        self.boxes = array("d")
        self.rows: array[int] | list[Any] = array("q")
        self.positions = array("q")
        self.labels: dict[str, list[Hashable]] = {c: [] for c in spec.y_cols}
        self.problems: list[Problem] = []
        self.stripped: dict[tuple[str, str], list[Any]] = {}
        self.n_rows = 0

    def fail(self, raw: _RawRow, kind: str, message: str, column: str | None, value: Any,
             path: str | None = None) -> None:
        self.problems.append(Problem(kind, message, source=self.source, row=raw.row,
                                     column=column, value=value, path=path))

    def add(self, raw: _RawRow) -> None:
        self.n_rows += 1
        if raw.problem is not None:
            self.problems.append(raw.problem)
            return
        path = self._path(raw)
        if path is None:
            return
        box = self._box(raw, path)
        if box is None:
            return
        labels = self._labels(raw, path)
        if labels is None:
            return
        self.path_ids.append(self.path_table.setdefault(path, len(self.path_table)))
        self.boxes.extend(box)
        self._append_row(raw.row)
        self.positions.append(raw.position)
        for column, label in labels.items():
            self.labels[column].append(label)

    def _append_row(self, row: Any) -> None:
        if isinstance(self.rows, array):
            if isinstance(row, (int, np.integer)) and not isinstance(row, bool):
                self.rows.append(int(row))
                return
            self.rows = list(self.rows)
        self.rows.append(row)

    def _path(self, raw: _RawRow) -> str | None:
        spec = self.spec
        key = raw.filename if isinstance(raw.filename, str) else None
        resolved = self.resolved.get(key) if key is not None else None
        if resolved is None:  # tables repeat a file name for each of its regions
            resolved = resolve_image_path(raw.filename, spec.image_dir, spec.allow_outside_image_dir)
            if key is not None:
                self.resolved[key] = resolved
        if isinstance(resolved, PathProblem):
            self.fail(raw, resolved.kind, resolved.message, spec.x_col, raw.filename)
            return None
        if spec.check_files:
            if resolved not in self.path_checked:
                self.path_checked[resolved] = check_image_file(resolved) or resolved
            checked = self.path_checked[resolved]
            if isinstance(checked, PathProblem):
                self.fail(raw, checked.kind, checked.message, spec.x_col, raw.filename, resolved)
                return None
        return resolved

    def _box(self, raw: _RawRow, path: str) -> tuple[float, ...] | None:
        spec = self.spec
        column = spec.box_col if spec.box_cols is None else ",".join(spec.box_cols)
        try:
            box = _to_xyxy(raw.box, spec.box_format)
        except ShapeError as exc:
            self.fail(raw, exc.kind, str(exc), column, raw.box, path)
            return None
        found = box_problem(box, spec.box_format.relative)
        if found is not None:
            self.fail(raw, found[0], found[1], column, raw.box, path)
            return None
        return box

    def _labels(self, raw: _RawRow, path: str) -> dict[str, Hashable] | None:
        labels = {}
        for column in self.spec.y_cols:
            value = raw.labels.get(column)
            try:
                label = normalize_label(value)
            except LabelValueError as exc:
                self.fail(raw, exc.kind, f"label {column!r}: {exc}", column, value, path)
                return None
            if isinstance(value, str) and label != value:
                self.stripped.setdefault((column, value), []).append(raw.row)
            labels[column] = self.interned[column].setdefault((isinstance(label, bool), label), label)
        return labels


def _to_xyxy(value: Any, box_format: BoxFormat) -> tuple[float, ...]:
    if isinstance(value, str):
        from keras_roi_datagen.formats.via_records import parse_box_cell

        try:  # the spellings files accept: JSON, Python literals from `to_csv`, VIA 1 beta
            value = parse_box_cell(value)
        except ValueError as exc:
            raise ShapeError("bad_json", f"the box is not valid JSON ({exc}).") from None
    if isinstance(value, Mapping):
        return shape_to_xyxy(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        return box_from_values(list(value), box_format)
    raise ShapeError("box_not_a_number", "the box must be a VIA shape object or four numbers.")


def _first_present(key: str, *sources: Mapping[str, Any]) -> Any:
    for source in sources:
        value = source.get(key)
        if value is not None and value != "":
            return value
    return None


def _via_rows(path: str, spec: TableSpec, without: list[dict[str, Any]]) -> Iterator[_RawRow]:
    from keras_roi_datagen.formats.via import iter_via_records

    position = 0
    for record in iter_via_records(path, on_error="collect"):
        if record.problem is None and not record.shape and not record.region_count:
            without.append({"row": record.row, "filename": record.filename})
            continue
        # A label is a region attribute, else a plain column of the row (a script
        # flattened it), else an attribute of the whole image.
        labels = {c: _first_present(c, record.attributes, record.extra, record.file_attributes)
                  for c in spec.y_cols}
        yield _RawRow(record.row, position, record.filename, record.shape, labels, record.problem)
        position += 1


def _frame_rows(frame: pd.DataFrame, spec: TableSpec, source: str | None) -> Iterator[_RawRow]:
    needed = [spec.x_col, *(spec.box_cols or (spec.box_col,)), *spec.y_cols]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        hint = "" if spec.box_cols or spec.box_col in frame.columns else (
            " For four numeric box columns pass `box_cols=(...)`.")
        if "label" in frame.columns and "label" not in spec.y_cols:
            hint += " Annotation formats name each region's class `label`: pass y_cols='label'."
        raise AnnotationError.from_problems([Problem(
            "missing_column",
            f"the table has no column(s) {missing}; it has {list(frame.columns)}.{hint}",
            source=source, column=missing[0])])
    boxes: Iterator[Any] = (
        zip(*(frame[c].tolist() for c in spec.box_cols)) if spec.box_cols
        else iter(frame[spec.box_col].tolist()))
    label_lists = {c: frame[c].tolist() for c in spec.y_cols}
    for position, (row, filename, box) in enumerate(
        zip(frame.index.tolist(), frame[spec.x_col].tolist(), boxes)
    ):
        labels = {c: values[position] for c, values in label_lists.items()}
        yield _RawRow(row, position, filename, list(box) if spec.box_cols else box, labels)


def _format_of(table: str | os.PathLike[str], spec: TableSpec) -> str:
    """The annotation format of a table file: `spec.format`, or detected."""
    from keras_roi_datagen.formats import detect_format

    return spec.format if spec.format != "auto" else detect_format(table)


def _frame_spec(frame: pd.DataFrame, spec: TableSpec) -> TableSpec:
    """Fill what a region frame (`read_annotations`) tells: its image folder and box columns."""
    if spec.image_dir is None and frame.attrs.get("image_dir"):
        spec = replace(spec, image_dir=frame.attrs["image_dir"])
    if (spec.box_cols is None and spec.box_col not in frame.columns
            and spec.box_col == TableSpec.box_col
            and all(c in frame.columns for c in ("x", "y", "w", "h"))):
        spec = replace(spec, box_cols=("x", "y", "w", "h"))
    return spec


def _resolve_vocabularies(
    collected: _Collector, given: Mapping[str, Any] | None
) -> dict[str, LabelVocabulary]:
    vocabularies = {}
    for column in collected.spec.y_cols:
        provided = (given or {}).get(column)
        if provided is None:
            vocabularies[column] = LabelVocabulary.from_values(collected.labels[column], name=column)
        elif isinstance(provided, LabelVocabulary):
            vocabularies[column] = provided
        else:
            vocabularies[column] = LabelVocabulary(provided, name=column)
    return vocabularies


def _encode(
    collected: _Collector, vocabularies: dict[str, LabelVocabulary]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    n = len(collected.path_ids)
    ok = np.ones(n, dtype=bool)
    codes = {}
    for column, vocab in vocabularies.items():
        lookup = {value: vocab.lookup(value) for value in set(collected.labels[column])}
        column_codes = np.empty(n, dtype=np.int32)
        for i, value in enumerate(collected.labels[column]):
            code = lookup[value]
            if code is None:
                ok[i] = False
                collected.problems.append(Problem(
                    "label_unknown",
                    f"label {column!r}: {value!r} is not in the given vocabulary "
                    f"({len(vocab)} classes: {list(vocab.classes)[:10]}).",
                    source=collected.source, row=collected.rows[i], column=column, value=value))
                code = 0
            column_codes[i] = code
        codes[column] = column_codes
    return codes, ok


def _warnings(collected: _Collector, index: RoiIndex) -> list[Problem]:
    found = []
    for (column, raw), rows in collected.stripped.items():
        found.append(Problem(
            "label_whitespace",
            f"label {column!r}: {raw!r} was read as {raw.strip()!r} (surrounding whitespace "
            f"stripped) in {len(rows)} row(s).",
            source=index.source, row=rows[0], column=column, value=raw, severity="warning"))
    found.extend(_duplicates(index))
    return found


def _row_hashes(index: RoiIndex) -> np.ndarray:
    return hash_rows(index.path_ids, index.boxes, list(index.codes.values()))


def hash_rows(path_ids: np.ndarray, boxes: np.ndarray, codes: Sequence[np.ndarray]) -> np.ndarray:
    """A 64-bit hash per row over image, box and labels (to find duplicate rows).

    A few megabytes for a million rows, where sorting the rows themselves
    costs hundreds.
    """
    columns = [path_ids.astype(np.uint64), *np.ascontiguousarray(boxes).T.view(np.uint64),
               *(c.astype(np.uint64) for c in codes)]
    hashes = np.full(len(path_ids), 0xCBF29CE484222325, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in columns:
            hashes ^= np.ascontiguousarray(column)
            hashes *= np.uint64(0x100000001B3)
            hashes ^= hashes >> np.uint64(29)
    return hashes


def _duplicates(index: RoiIndex) -> list[Problem]:
    if not len(index):
        return []
    hashes = _row_hashes(index)
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


def build_index(
    table: pd.DataFrame | str | os.PathLike[str],
    spec: TableSpec,
    vocabularies: Mapping[str, Any] | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
    cache: str | os.PathLike[str] | bool | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> IndexBuild:
    """Reads a table into a `RoiIndex`, recording every problem with its row.

    Nothing is raised for bad rows: they are left out of the index and listed
    in `IndexBuild.problems`, so the caller chooses between raising and
    skipping. Table-wide faults (a missing column, an unreadable file) raise.

    Args:
        table: A DataFrame, or the path of a VIA export (CSV or JSON) or of a
            plain CSV file.
        spec: The `TableSpec`.
        vocabularies: Optional given vocabularies per label column (a
            `LabelVocabulary` or a list of classes). Columns not given get a
            vocabulary built from the usable rows, sorted.
        storage_options: For a table given as a URL: passed to fsspec.
            Defaults to `None`.
        cache: For a table file: a folder where the built index is kept as
            memory-mapped columns and reused while the file (and `spec`,
            `vocabularies`) are unchanged; `True` for the default folder
            (`~/.cache/keras_roi_datagen/index`). Defaults to `None` (no
            cache). See `keras_roi_datagen.index_cache`.
        progress: Called with `(rows_read, rows_total)` as a columnar
            table is read (for progress bars). Defaults to `None`.

    Returns:
        The `IndexBuild`.

    Raises:
        AnnotationError: For table-wide faults.
        StorageError: When a table given as a URL cannot be read.
    """
    source = None
    without: list[dict[str, Any]] = []
    read_problems: list[Problem] = []
    raw_rows: Iterable[_RawRow] = ()
    if not isinstance(table, pd.DataFrame):
        source = os.fspath(table)
        local = source
        if storage.is_url(source):
            local = storage.local_table(source, storage_options)
            if spec.image_dir is None:
                spec = replace(spec, image_dir=storage.url_dirname(source))
        kind = "columnar" if columnar.is_columnar(local) else _format_of(local, spec)
        if kind == "coco" and _coco_box_cols(spec) is not None:
            kind = "coco_columns"  # streamed into arrays: flat memory, and the index cache works
        if kind not in ("columnar", "via", "csv", "coco_columns"):
            from keras_roi_datagen.formats import read_table

            # Every other format becomes the common region frame; its reader's
            # problems are this build's problems, as a VIA file's records' are.
            table = read_table(local, on_error="collect", format=spec.format)
            read_problems = list(table.attrs.get("problems", []))
            if spec.image_dir is None:
                spec = replace(spec, image_dir=table.attrs.get("image_dir") or os.path.dirname(
                    os.path.abspath(local)))
        else:
            if spec.image_dir is None and kind != "coco_columns":  # COCO finds its image folder
                spec = replace(spec, image_dir=os.path.dirname(os.path.abspath(source)))
            if cache is not None and cache is not False:
                return _cached_build(source, local, spec, vocabularies, storage_options, cache,
                                     progress)
            if kind == "coco_columns":
                return _coco_by_columns(local, spec, source, vocabularies, progress, None)
            if columnar.is_columnar(local):
                from keras_roi_datagen.index_columns import build_columnar_index, columnar_box_cols

                box_cols = columnar_box_cols(local, spec)
                if box_cols is not None:  # numeric boxes: built by columns, no per-row Python
                    return build_columnar_index(local, spec, box_cols, source, vocabularies,
                                                progress=progress)
            if kind == "csv" and (found := _csv_by_columns(local, spec, source, vocabularies,
                                                            progress, None)) is not None:
                return found
            if kind == "via":
                raw_rows = _via_rows(local, spec, without)
            else:  # a plain CSV, or boxes not in numeric columns: read as a frame
                from keras_roi_datagen.formats import read_table

                frame = read_table(local, format="csv")
                spec = _frame_spec(frame, spec)  # x, y, w, h as for a DataFrame or Parquet
                raw_rows = _frame_rows(frame, spec, source)
    if isinstance(table, pd.DataFrame):
        source = table.attrs.get("source", source)
        without = list(table.attrs.get("rows_without_regions", []))
        spec = _frame_spec(table, spec)
        raw_rows = _frame_rows(table, spec, source)
    collected = _Collector(spec, source)
    collected.problems.extend(read_problems)
    collected.n_rows += sum(p.severity == "error" for p in read_problems)
    for raw in raw_rows:
        collected.add(raw)
    vocabs = _resolve_vocabularies(collected, vocabularies)
    codes, ok = _encode(collected, vocabs)
    index = RoiIndex(
        paths=PathTable.from_strings(collected.path_table),
        path_ids=np.frombuffer(collected.path_ids, dtype=np.int32),
        boxes=np.frombuffer(collected.boxes, dtype=np.float64).reshape(-1, 4),
        relative=spec.box_format.relative,
        codes=codes,
        rows=_row_array(collected.rows),
        positions=np.frombuffer(collected.positions, dtype=np.int64),
        source=source,
    )
    if not ok.all():
        index = index.select(ok)
    problems = collected.problems + _warnings(collected, index)
    # The index's arrays view the collector's buffers (no copy); its label
    # lists are no longer needed.
    collected.labels.clear()
    return IndexBuild(index, vocabs, problems, without, collected.n_rows)


def _cached_build(source: str, local: str, spec: TableSpec, vocabularies: Mapping[str, Any] | None,
                  storage_options: Mapping[str, Any] | None,
                  cache: str | os.PathLike[str] | bool,
                  progress: Callable[[int, int], None] | None) -> IndexBuild:
    from keras_roi_datagen import index_cache

    cache_dir = index_cache.default_cache_dir() if cache is True else os.fspath(cache)  # type: ignore[arg-type]
    version = storage.remote_fingerprint(source, storage_options) if storage.is_url(source) else None
    key = index_cache.table_key(source, local, spec, vocabularies, version)
    folder = index_cache.cache_folder(cache_dir, key)
    found = index_cache.load(folder)
    if found is not None:
        return found
    if columnar.is_columnar(local):
        from keras_roi_datagen.index_columns import build_columnar_index, columnar_box_cols

        box_cols = columnar_box_cols(local, spec)
        if box_cols is not None:  # written straight into the entry: flat memory
            return build_columnar_index(local, spec, box_cols, source, vocabularies,
                                        cache_folder=folder, progress=progress)
    elif _format_of(local, spec) == "csv" and (found := _csv_by_columns(
            local, spec, source, vocabularies, progress, folder)) is not None:
        return found
    elif _format_of(local, spec) == "coco" and _coco_box_cols(spec) is not None:
        return _coco_by_columns(local, spec, source, vocabularies, progress, folder)
    build = build_index(local, spec, vocabularies)
    build.index = replace(build.index, source=source)
    index_cache.save(build, folder)
    return index_cache.load(folder) or build


def _csv_by_columns(local: str, spec: TableSpec, source: str,
                    vocabularies: Mapping[str, Any] | None,
                    progress: Callable[[int, int], None] | None,
                    folder: str | None) -> IndexBuild | None:
    """A plain CSV file with numeric boxes, built by columns; `None`: read it row by row."""
    from keras_roi_datagen import csv_columns
    from keras_roi_datagen.index_columns import build_columnar_index

    try:
        table, box_cols = csv_columns.open_csv_table(local, spec.x_col, spec.box_cols,
                                                     spec.box_col, spec.y_cols)
        return build_columnar_index(local, spec, box_cols, source, vocabularies, table=table,
                                    cache_folder=folder, progress=progress)
    except csv_columns.CsvFallback:
        return None


def _coco_box_cols(spec: TableSpec) -> tuple[str, str, str, str] | None:
    from keras_roi_datagen import coco_columns

    return coco_columns.box_cols(spec.x_col, spec.box_cols, spec.box_col, TableSpec.box_col,
                                 spec.y_cols)


def _coco_by_columns(local: str, spec: TableSpec, source: str,
                     vocabularies: Mapping[str, Any] | None,
                     progress: Callable[[int, int], None] | None,
                     folder: str | None) -> IndexBuild:
    """A COCO file streamed into chunked arrays and built by columns (`coco_columns`)."""
    from keras_roi_datagen import coco_columns
    from keras_roi_datagen.index_columns import build_columnar_index

    box_cols = _coco_box_cols(spec)
    assert box_cols is not None
    spill_dir = os.path.dirname(folder) if folder is not None else None
    if spill_dir is not None:
        os.makedirs(spill_dir, exist_ok=True)
    with coco_columns.open_coco_table(local, spill_dir=spill_dir) as table:
        if spec.image_dir is None:
            spec = replace(spec, image_dir=table.image_dir)
        return build_columnar_index(local, spec, box_cols, source, vocabularies, table=table,
                                    cache_folder=folder, progress=progress)


def _row_array(rows: array[int] | Sequence[Any]) -> np.ndarray:
    if isinstance(rows, array):
        return np.frombuffer(rows, dtype=np.int64)
    labels = np.empty(len(rows), dtype=object)
    labels[:] = list(rows)
    return labels
