"""The row-by-row index builder: VIA exports (streamed) and any DataFrame.

Each row of the table becomes a `RawRow` (its label, position, file name,
box and label values, or the problem its reader found); `build_rows`
resolves and checks every path, turns every box into `xyxy` and every label
into a class index (the rules and messages of `index.checks`), and keeps the
rows in compact arrays (a million rows cost tens of megabytes, not
hundreds). VIA files are streamed record by record, so the table never has
to fit in a DataFrame.
"""

from __future__ import annotations

from array import array
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from keras_roi_datagen.boxes import BoxFormat, ShapeError, box_from_values, shape_to_xyxy
from keras_roi_datagen.errors import AnnotationError, Problem
from keras_roi_datagen.index import checks
from keras_roi_datagen.index.model import IndexBuild, RoiIndex, TableSpec
from keras_roi_datagen.labels import LabelValueError, LabelVocabulary, normalize_label
from keras_roi_datagen.paths import PathProblem, PathTable, check_image_file, resolve_image_path

__all__ = ["RawRow", "build_rows", "frame_rows", "via_rows"]

_MISSING = object()  # an optional column's value that is absent or unusable


@dataclass(frozen=True)
class RawRow:
    """One row as its reader saw it.

    Args:
        row: Its label in the source table.
        position: Its position among the table's region rows.
        filename: The file name as the table has it.
        box: The box as the table has it (a VIA shape, JSON text, four numbers).
        labels: Per coded column, the raw value (absent keys are missing).
        problem: What the reader found wrong, if anything (the row is left out).
    """

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
        self.columns = spec.coded_cols
        self.path_table: dict[str, int] = {}
        self.path_checked: dict[str, PathProblem | str] = {}
        self.resolved: dict[str, str | PathProblem] = {}
        # One object per distinct label, however many rows carry it.
        # Per column and per kind: Python's True == 1 == 1.0 would merge them.
        self.interned: dict[str, dict[tuple[bool, Hashable], Hashable]] = {
            c: {} for c in self.columns}
        # array.array keeps a million rows in tens of megabytes, not hundreds.
        self.path_ids = array("i")
        self.boxes = array("d")
        self.rows: array[int] | list[Any] = array("q")
        self.positions = array("q")
        self.labels: dict[str, list[Any]] = {c: [] for c in self.columns}
        self.problems: list[Problem] = []
        self.stripped: dict[tuple[str, str], list[Any]] = {}
        self.n_rows = 0

    def add(self, raw: RawRow) -> None:
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

    def _path(self, raw: RawRow) -> str | None:
        spec = self.spec
        key = raw.filename if isinstance(raw.filename, str) else None
        resolved = self.resolved.get(key) if key is not None else None
        if resolved is None:  # tables repeat a file name for each of its regions
            resolved = resolve_image_path(raw.filename, spec.image_dir, spec.allow_outside_image_dir)
            if key is not None:
                self.resolved[key] = resolved
        if isinstance(resolved, PathProblem):
            self.problems.append(checks.path_problem(
                resolved, source=self.source, row=raw.row, column=spec.x_col, name=raw.filename))
            return None
        if spec.check_files:
            if resolved not in self.path_checked:
                self.path_checked[resolved] = check_image_file(resolved) or resolved
            checked = self.path_checked[resolved]
            if isinstance(checked, PathProblem):
                self.problems.append(checks.path_problem(
                    checked, source=self.source, row=raw.row, column=spec.x_col,
                    name=raw.filename, path=resolved))
                return None
        return resolved

    def _box(self, raw: RawRow, path: str) -> tuple[float, ...] | None:
        spec = self.spec
        column = spec.box_column_name
        try:
            box = _to_xyxy(raw.box, spec.box_format)
        except ShapeError as exc:
            self.problems.append(Problem(exc.kind, str(exc), source=self.source, row=raw.row,
                                         column=column, value=raw.box, path=path))
            return None
        problem = checks.bad_box(box, spec.box_format, source=self.source, row=raw.row,
                                 column=column, value=raw.box, path=path)
        if problem is not None:
            self.problems.append(problem)
            return None
        return box

    def _labels(self, raw: RawRow, path: str) -> dict[str, Any] | None:
        labels: dict[str, Any] = {}
        for column in self.columns:
            value = raw.labels.get(column)
            try:
                label = normalize_label(value)
            except LabelValueError as exc:
                if column not in self.spec.y_cols:  # optional: a missing value is allowed
                    labels[column] = _MISSING
                    continue
                self.problems.append(checks.label_problem(
                    column, exc, source=self.source, row=raw.row, value=value, path=path))
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


def via_rows(path: str, spec: TableSpec, without: list[dict[str, Any]]) -> Iterator[RawRow]:
    """The region rows of a VIA export, streamed; images without regions go to `without`.

    A label is a region attribute, else a plain column of the row (a script
    flattened it), else an attribute of the whole image.

    Args:
        path: The VIA file (CSV or JSON, VIA 1 to 3).
        spec: The `TableSpec`.
        without: Receives `{"row", "filename"}` of every image without regions.

    Yields:
        One `RawRow` per region record (with its problem, when malformed).
    """
    from keras_roi_datagen.formats.via import iter_via_records

    position = 0
    for record in iter_via_records(path, on_error="skip"):
        if record.problem is None and not record.shape and not record.region_count:
            without.append({"row": record.row, "filename": record.filename})
            continue
        labels = {c: _first_present(c, record.attributes, record.extra, record.file_attributes)
                  for c in spec.coded_cols}
        yield RawRow(record.row, position, record.filename, record.shape, labels, record.problem)
        position += 1


def frame_rows(frame: pd.DataFrame, spec: TableSpec, source: str | None) -> Iterator[RawRow]:
    """The rows of a DataFrame, its index labels as row labels.

    Args:
        frame: The table.
        spec: The `TableSpec`.
        source: The table's file, for messages.

    Yields:
        One `RawRow` per row.

    Raises:
        AnnotationError: When a needed column is missing (kind `"missing_column"`).
    """
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
    label_lists = {c: frame[c].tolist() for c in spec.coded_cols if c in frame.columns}
    for position, (row, filename, box) in enumerate(
        zip(frame.index.tolist(), frame[spec.x_col].tolist(), boxes)
    ):
        labels = {c: values[position] for c, values in label_lists.items()}
        yield RawRow(row, position, filename, list(box) if spec.box_cols else box, labels)


def _vocabularies(collected: _Collector, given: Mapping[str, Any] | None
                  ) -> dict[str, LabelVocabulary]:
    vocabularies = {}
    for column in collected.columns:
        provided = (given or {}).get(column) if column in collected.spec.y_cols else None
        present = [v for v in collected.labels[column] if v is not _MISSING]
        if provided is None:
            if column not in collected.spec.y_cols and not present:
                continue  # an optional column the table does not have
            vocabularies[column] = LabelVocabulary.from_values(present, name=column)
        elif isinstance(provided, LabelVocabulary):
            vocabularies[column] = provided
        else:
            vocabularies[column] = LabelVocabulary(provided, name=column)
    return vocabularies


def _encode(collected: _Collector, vocabularies: dict[str, LabelVocabulary]
            ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    n = len(collected.path_ids)
    ok = np.ones(n, dtype=bool)
    codes = {}
    for column, vocab in vocabularies.items():
        values = collected.labels[column]
        lookup = {value: vocab.lookup(value) for value in set(values) if value is not _MISSING}
        column_codes = np.empty(n, dtype=np.int32)
        for i, value in enumerate(values):
            code = -1 if value is _MISSING else lookup[value]
            if code is None:
                ok[i] = False
                collected.problems.append(checks.unknown_label(
                    column, value, vocab, source=collected.source, row=collected.rows[i]))
                code = 0
            column_codes[i] = code
        codes[column] = column_codes
    return codes, ok


def _warnings(collected: _Collector, index: RoiIndex) -> list[Problem]:
    found = [checks.whitespace_warning(column, raw, len(rows), source=index.source, row=rows[0])
             for (column, raw), rows in collected.stripped.items()]
    found.extend(checks.duplicates(index))
    return found


def _row_array(rows: array[int] | list[Any]) -> np.ndarray:
    if isinstance(rows, array):
        return np.frombuffer(rows, dtype=np.int64)
    labels = np.empty(len(rows), dtype=object)
    labels[:] = list(rows)
    return labels


def build_rows(rows: Iterable[RawRow], spec: TableSpec, source: str | None,
               vocabularies: Mapping[str, Any] | None = None, *,
               read_problems: Iterable[Problem] = (),
               rows_without_regions: Iterable[dict[str, Any]] = ()) -> IndexBuild:
    """Checks and encodes rows into an index, recording every problem with its row.

    Args:
        rows: The table's rows (`via_rows`, `frame_rows`).
        spec: The `TableSpec`, its `image_dir` resolved.
        source: The table's file, for messages.
        vocabularies: Given vocabularies per label column (a `LabelVocabulary`
            or a list of classes); the others are built from the usable rows, sorted.
        read_problems: Problems the table's reader found (records it left out:
            counted as rows read, and listed first).
        rows_without_regions: Images listed without a region.

    Returns:
        The `IndexBuild`.
    """
    collected = _Collector(spec, source)
    read_problems = list(read_problems)
    collected.problems.extend(read_problems)
    collected.n_rows += sum(p.severity == "error" for p in read_problems)
    for raw in rows:
        collected.add(raw)
    vocabs = _vocabularies(collected, vocabularies)
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
    return IndexBuild(index, vocabs, problems, list(rows_without_regions), collected.n_rows,
                      image_dir=spec.image_dir)
