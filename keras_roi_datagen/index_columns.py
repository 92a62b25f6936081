"""Building the index from a columnar table (Parquet, Arrow) without per-row Python.

`build_index` comes here when the table is a Parquet or Arrow file whose box
is four numeric columns (`box_cols`, or columns `x, y, w, h` when the table
has no `box_col`). The file is read in record batches; per batch, file names
and labels are dictionary-encoded by pyarrow, so Python sees each distinct
file name and label once, and boxes are checked as arrays. Only rows with a
problem become Python objects (their `Problem`s), with the same kinds and
messages as the row-by-row reader.

Row labels are the rows' 0-based positions in the file.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from keras_roi_datagen.boxes import BoxFormat, box_problem
from keras_roi_datagen.errors import AnnotationError, Problem
from keras_roi_datagen.formats import columnar
from keras_roi_datagen.index import IndexBuild, RoiIndex, TableSpec, _duplicates
from keras_roi_datagen.labels import LabelValueError, LabelVocabulary, normalize_label
from keras_roi_datagen.paths import PathProblem, PathTable, check_image_file, resolve_image_path

__all__ = ["build_columnar_index", "columnar_box_cols"]

_DEFAULT_BOX_COLS = ("x", "y", "w", "h")


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
    text = pat.is_string(types[spec.x_col]) or pat.is_large_string(types[spec.x_col]) or (
        pat.is_dictionary(types[spec.x_col]))
    return box_cols if numeric and text else None


@dataclass
class _Labels:
    """One label column's distinct values, seen across record batches."""

    ids: dict[Any, int] = field(default_factory=dict)
    values: list[Hashable | LabelValueError] = field(default_factory=list)
    raw: list[Any] = field(default_factory=list)

    def lookup(self, dictionary: list[Any]) -> np.ndarray:
        found = np.empty(len(dictionary), dtype=np.int32)
        for i, value in enumerate(dictionary):
            key = (type(value), value)
            known = self.ids.get(key)
            if known is None:
                known = self.ids[key] = len(self.values)
                try:
                    self.values.append(normalize_label(value))
                except LabelValueError as exc:
                    self.values.append(exc)
                self.raw.append(value)
            found[i] = known
        return found


class _Builder:
    def __init__(self, spec: TableSpec, source: str, box_cols: tuple[str, str, str, str]) -> None:
        self.spec, self.source, self.box_cols = spec, source, box_cols
        self.names: dict[str, int] = {}  # file name -> path id, or -1 - problem number
        self.path_ids_by_path: dict[str, int] = {}
        self.paths: list[str] = []
        self.name_problems: list[tuple[PathProblem, str, str | None]] = []
        self.labels = {c: _Labels() for c in spec.y_cols}
        self.chunks: list[dict[str, np.ndarray]] = []
        self.n_rows = 0

    def _name_ids(self, dictionary: list[Any]) -> np.ndarray:
        found = np.empty(len(dictionary), dtype=np.int64)
        for i, name in enumerate(dictionary):
            known = self.names.get(name)
            if known is None:
                known = self._resolve(name)
                self.names[name] = known
            found[i] = known
        return found

    def _resolve(self, name: str) -> int:
        spec = self.spec
        resolved = resolve_image_path(name, spec.image_dir, spec.allow_outside_image_dir)
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

    def add(self, batch: Any) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        n = batch.num_rows
        spec = self.spec
        names = batch.column(spec.x_col)
        if not pa.types.is_dictionary(names.type):
            names = pc.dictionary_encode(names)
        lut = self._name_ids(names.dictionary.to_pylist())
        indices = pc.fill_null(names.indices, 0).to_numpy(zero_copy_only=False).astype(np.int64)
        null_name = np.asarray(names.is_null(), dtype=bool) if names.null_count else None
        ids = lut[indices] if len(lut) else np.full(n, -1, dtype=np.int64)
        if null_name is not None:
            ids[null_name] = np.iinfo(np.int64).min  # the name itself is missing
        boxes = np.empty((n, 4), dtype=np.float64)
        for k, column in enumerate(self.box_cols):
            values = pc.cast(batch.column(column), pa.float64())
            boxes[:, k] = values.to_numpy(zero_copy_only=False)
        if spec.box_format in (BoxFormat.XYWH, BoxFormat.REL_XYWH):
            boxes[:, 2] += boxes[:, 0]
            boxes[:, 3] += boxes[:, 1]
        label_ids = {}
        for column in spec.y_cols:
            if column not in batch.schema.names:
                label_ids[column] = np.full(n, -1, dtype=np.int32)  # reported as missing
                continue
            values = batch.column(column)
            if not pa.types.is_dictionary(values.type):
                values = pc.dictionary_encode(values)
            lut_labels = self.labels[column].lookup(values.dictionary.to_pylist())
            codes = pc.fill_null(values.indices, 0).to_numpy(zero_copy_only=False).astype(np.int64)
            nulls = np.asarray(values.is_null(), dtype=bool) if values.null_count else None
            found = lut_labels[codes] if len(lut_labels) else np.full(n, -1, np.int32)
            if nulls is not None:
                found[nulls] = -1
            label_ids[column] = found.astype(np.int32)
        self.chunks.append({"ids": ids, "boxes": boxes, **{f"label:{c}": v
                                                           for c, v in label_ids.items()}})
        self.n_rows += n


def _bad_boxes(boxes: np.ndarray, relative: bool) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        bad: np.ndarray = ~np.isfinite(boxes).all(axis=1)
        bad |= (boxes[:, 2] - boxes[:, 0] <= 0) | (boxes[:, 3] - boxes[:, 1] <= 0)
        if relative:
            bad |= (boxes[:, 2] <= 0) | (boxes[:, 3] <= 0) | (boxes[:, 0] >= 1) | (boxes[:, 1] >= 1)
    return bad


def build_columnar_index(
    path: str, spec: TableSpec, box_cols: tuple[str, str, str, str], source: str,
    vocabularies: Mapping[str, Any] | None = None, batch_rows: int = 1 << 20,
) -> IndexBuild:
    """Builds the index of a columnar file by columns (see the module docstring).

    Args:
        path: The local Parquet or Arrow file.
        spec: The `TableSpec` (with `image_dir` set).
        box_cols: The four numeric box columns (`columnar_box_cols`).
        source: The table as the user named it (a path or URL), for messages.
        vocabularies: As in `build_index`.
        batch_rows: Rows read per record batch. Defaults to 2**20.

    Returns:
        The `IndexBuild`, as `build_index` returns it.

    Raises:
        AnnotationError: When a label column is missing.
    """
    types = columnar.column_types(path)
    missing = [c for c in spec.y_cols if c not in types]
    if missing:
        raise AnnotationError.from_problems([Problem(
            "missing_column", f"the table has no column(s) {missing}; it has {list(types)}.",
            source=source, column=missing[0])])
    spec = replace(spec, box_cols=box_cols)
    builder = _Builder(spec, source, box_cols)
    for batch in columnar.iter_column_batches(path, [spec.x_col, *box_cols, *spec.y_cols],
                                              batch_rows):
        builder.add(batch)
    return _finish(builder, vocabularies)


def _concat(builder: _Builder, key: str, dtype: Any) -> np.ndarray:
    parts = [chunk.pop(key) for chunk in builder.chunks]
    if not parts:
        return np.zeros((0, 4) if key == "boxes" else 0, dtype=dtype)
    out = np.concatenate(parts) if len(parts) > 1 else parts[0]
    return out.astype(dtype, copy=False)


def _finish(builder: _Builder, given: Mapping[str, Any] | None) -> IndexBuild:
    spec, n = builder.spec, builder.n_rows
    relative = spec.box_format.relative
    ids = _concat(builder, "ids", np.int64)
    boxes = _concat(builder, "boxes", np.float64)
    labels = {c: _concat(builder, f"label:{c}", np.int32) for c in spec.y_cols}
    builder.chunks.clear()
    # The first check a row fails, in the row-by-row reader's order: path, box, labels.
    path_bad = ids < 0
    box_bad = _bad_boxes(boxes, relative) & ~path_bad
    ok = ~(path_bad | box_bad)
    label_bad: dict[str, np.ndarray] = {}
    for column, label_id in labels.items():
        bad_values = np.array([isinstance(v, LabelValueError)
                               for v in builder.labels[column].values] + [True], dtype=bool)
        bad = bad_values[label_id] & ok  # label id -1 (missing) takes the last entry
        label_bad[column] = bad
        ok &= ~bad
    vocabs = _vocabularies(builder, labels, ok, given)
    codes = {}
    for column, label_id in labels.items():
        vocab = vocabs[column]
        lut = np.array([-1 if isinstance(v, LabelValueError) else _lookup(vocab, v)
                        for v in builder.labels[column].values] + [-1], dtype=np.int64)
        column_codes = lut[label_id]
        unknown = ok & (column_codes < 0)
        label_bad[f"unknown:{column}"] = unknown
        codes[column] = column_codes
    problems = _problems(builder, ids, boxes, labels, path_bad, box_bad, label_bad, vocabs)
    for column in spec.y_cols:
        ok &= ~label_bad[f"unknown:{column}"]
    keep = np.flatnonzero(ok)
    positions = keep.astype(np.int64)
    path_ids, paths = _compact_paths(ids[keep], builder.paths)
    index = RoiIndex(
        paths=paths, path_ids=path_ids, boxes=boxes[keep], relative=relative,
        codes={c: v[keep].astype(np.int32) for c, v in codes.items()},
        rows=positions, positions=positions, source=builder.source)
    problems.extend(_stripped_warnings(builder, labels, ok))
    problems.extend(_duplicates(index))
    return IndexBuild(index, vocabs, problems, [], n)


def _lookup(vocab: LabelVocabulary, value: Hashable) -> int:
    found = vocab.lookup(value)
    return -1 if found is None else int(found)


def _vocabularies(builder: _Builder, labels: dict[str, np.ndarray], ok: np.ndarray,
                  given: Mapping[str, Any] | None) -> dict[str, LabelVocabulary]:
    vocabs = {}
    for column, label_id in labels.items():
        provided = (given or {}).get(column)
        if isinstance(provided, LabelVocabulary):
            vocabs[column] = provided
        elif provided is not None:
            vocabs[column] = LabelVocabulary(provided, name=column)
        else:
            values = builder.labels[column].values
            used = np.bincount(label_id[ok], minlength=len(values)) if ok.any() else (
                np.zeros(len(values), dtype=np.int64))
            seen = [values[i] for i in np.flatnonzero(used[:len(values)]).tolist()]
            vocabs[column] = LabelVocabulary.from_values(seen, name=column)
    return vocabs


def _compact_paths(ids: np.ndarray, paths: list[str]) -> tuple[np.ndarray, PathTable]:
    """Keeps the paths some kept row uses, numbered in order of first use."""
    if not len(ids):
        return np.zeros(0, np.int32), PathTable.from_strings([])
    used = np.zeros(len(paths), dtype=bool)
    used[ids] = True
    renumber = np.cumsum(used) - 1
    kept = [paths[i] for i in np.flatnonzero(used).tolist()]
    return renumber[ids].astype(np.int32), PathTable.from_strings(kept)


def _problems(builder: _Builder, ids: np.ndarray, boxes: np.ndarray,
              labels: dict[str, np.ndarray], path_bad: np.ndarray, box_bad: np.ndarray,
              label_bad: dict[str, np.ndarray], vocabs: dict[str, LabelVocabulary]) -> list[Problem]:
    spec, source = builder.spec, builder.source
    box_column = ",".join(builder.box_cols)
    found: list[tuple[int, Problem]] = []
    for row in np.flatnonzero(path_bad).tolist():
        code = int(ids[row])
        if code == np.iinfo(np.int64).min:
            found.append((row, Problem("filename_missing", "the file name is missing or not text.",
                                       source=source, row=row, column=spec.x_col)))
            continue
        problem, name, resolved = builder.name_problems[-code - 1]
        found.append((row, Problem(problem.kind, problem.message, source=source, row=row,
                                   column=spec.x_col, value=name, path=resolved)))
    for row in np.flatnonzero(box_bad).tolist():
        kind, message = box_problem(tuple(boxes[row]), spec.box_format.relative) or (
            "box_degenerate", "box is unusable.")
        found.append((row, Problem(kind, message, source=source, row=row, column=box_column,
                                   value=_raw_box(boxes[row], spec.box_format),
                                   path=builder.paths[int(ids[row])])))
    for key, bad in label_bad.items():
        column = key.split(":", 1)[1] if key.startswith("unknown:") else key
        state = builder.labels[column]
        for row in np.flatnonzero(bad).tolist():
            label_id = int(labels[column][row])
            path = builder.paths[int(ids[row])]
            if key.startswith("unknown:"):
                value = state.values[label_id]
                vocab = vocabs[column]
                found.append((row, Problem(
                    "label_unknown",
                    f"label {column!r}: {value!r} is not in the given vocabulary "
                    f"({len(vocab)} classes: {list(vocab.classes)[:10]}).",
                    source=source, row=row, column=column, value=value)))
                continue
            error = state.values[label_id] if label_id >= 0 else LabelValueError(
                "label_missing", "the label is missing (empty).")
            assert isinstance(error, LabelValueError)
            raw = state.raw[label_id] if label_id >= 0 else None
            found.append((row, Problem(error.kind, f"label {column!r}: {error}", source=source,
                                       row=row, column=column, value=raw, path=path)))
    found.sort(key=lambda pair: pair[0])
    return [problem for _, problem in found]


def _raw_box(xyxy: np.ndarray, box_format: BoxFormat) -> list[float]:
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    if box_format in (BoxFormat.XYWH, BoxFormat.REL_XYWH):
        return [x0, y0, x1 - x0, y1 - y0]
    return [x0, y0, x1, y1]


def _stripped_warnings(builder: _Builder, labels: dict[str, np.ndarray],
                       ok: np.ndarray) -> list[Problem]:
    found = []
    for column, label_id in labels.items():
        state = builder.labels[column]
        changed = [i for i, (raw, value) in enumerate(zip(state.raw, state.values))
                   if isinstance(raw, str) and not isinstance(value, LabelValueError)
                   and value != raw]
        for i in changed:
            rows = np.flatnonzero((label_id == i) & ok)
            if not len(rows):
                continue
            raw = state.raw[i]
            found.append(Problem(
                "label_whitespace",
                f"label {column!r}: {raw!r} was read as {raw.strip()!r} (surrounding whitespace "
                f"stripped) in {len(rows)} row(s).",
                source=builder.source, row=int(rows[0]), column=column, value=raw,
                severity="warning"))
    return found

