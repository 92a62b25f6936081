"""COCO JSON files built by columns: chunked arrays, no per-row Python objects.

`build_index` comes here for a COCO file (`formats.coco`) when the dataset
reads only columns this path serves (`filename`, `x`, `y`, `w`, `h`,
`label`, `category_id`, `image_id`, the defaults, and `split` when the file's
name gives one, `coco.file_split`). The file is streamed once
(`formats.coco.scan_coco`); every 2**16 kept annotations, their row, image
id, category id and box go as arrays to spill files in a temporary folder, so
memory does not grow with the file (a COCO JSON of 10^7 annotations is about
2.7 GB). The spilled chunks are then read back as Arrow record batches, file
names and labels dictionary-encoded over the file's images and categories,
and go through the same column builder as Parquet and CSV tables
(`index.columns`), so the index cache works as for them.

The result is the one the region frame (`read_annotations`) gives through
the row reader: the same rows, row labels (positions in `annotations`),
problems in the same order, and `rows_without_regions`. Other columns
(`area`, `iscrowd`, `shape`, ...) are read through the frame, as before.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from keras_roi_datagen.errors import Problem
from keras_roi_datagen.formats import coco
from keras_roi_datagen.formats.regions import SPLIT_COLUMN

__all__ = ["COLUMNS", "CocoTable", "box_cols", "open_coco_table"]

_DEFAULT_BOX_COLS = ("x", "y", "w", "h")
_NUMERIC = ("x", "y", "w", "h", "category_id", "image_id")
COLUMNS = frozenset({"filename", "label", *_NUMERIC})
_SPILLS = {"rows": np.int64, "image_ids": np.int64, "category_ids": np.int64, "boxes": np.float64}


def box_cols(x_col: str, box_cols: Sequence[str] | None, box_col: str, default_box_col: str,
             y_cols: Sequence[str]) -> tuple[str, str, str, str] | None:
    """The four box columns when this path can serve the dataset's columns, else `None`.

    Args:
        x_col: The file-name column.
        box_cols: The given box columns, if any.
        box_col: The given single box column.
        default_box_col: `TableSpec`'s default `box_col` (the frame then has
            `x, y, w, h`).
        y_cols: The label columns.

    Returns:
        The box columns, or `None` (read the file through the region frame).

    Example:
    >>> box_cols("filename", None, "region_shape_attributes", "region_shape_attributes",
    ...          ["label"])
    ('x', 'y', 'w', 'h')
    """
    try:
        import pyarrow  # noqa: F401
    except ImportError:  # the region frame reads it row by row, as before
        return None
    if box_cols is None:
        if box_col != default_box_col:
            return None
        box_cols = _DEFAULT_BOX_COLS
    found = tuple(box_cols)
    if (x_col != "filename" or len(found) != 4 or not set(found) <= set(_NUMERIC)
            or not set(y_cols) <= COLUMNS):
        return None
    return found


class _Spill:
    """Chunks of kept annotations appended to one file per column."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.handles = {name: open(self.file(name), "wb") for name in _SPILLS}  # noqa: SIM115
        self.annotated: set[int] = set()
        self.rows = 0

    def file(self, name: str) -> str:
        return os.path.join(self.folder, f"{name}.bin")

    def add(self, ann: Any) -> None:
        image_ids = np.frombuffer(ann.image_ids, dtype=np.int64)
        for name in _SPILLS:
            np.frombuffer(getattr(ann, name), dtype=_SPILLS[name]).tofile(self.handles[name])
        self.annotated.update(np.unique(image_ids).tolist())
        self.rows += len(image_ids)

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()

    def chunks(self, rows: int) -> Iterator[dict[str, np.ndarray]]:
        """Reads the spilled columns back, `rows` annotations at a time."""
        with open(self.file("rows"), "rb") as r, open(self.file("image_ids"), "rb") as i, \
                open(self.file("category_ids"), "rb") as c, open(self.file("boxes"), "rb") as b:
            for _ in range(0, self.rows, rows):
                yield {"rows": np.fromfile(r, np.int64, rows),
                       "image_ids": np.fromfile(i, np.int64, rows),
                       "category_ids": np.fromfile(c, np.int64, rows),
                       "boxes": np.fromfile(b, np.float64, 4 * rows).reshape(-1, 4)}


class CocoTable:
    """A scanned COCO file as a table of record batches for `index.columns`.

    Built by `open_coco_table`; use it as a context manager (the spill files
    are removed on exit). It has what `build_columnar_index(table=...)`
    reads: `types`, `total`, `batches`, `row_labels`, plus `problems` (the
    reader's, in `read_coco`'s order), `rows_left_out` (annotations dropped
    with an error) and `rows_without_regions`, and `image_dir`.
    """

    def __init__(self, reader: Any, spill: _Spill, chunk_rows: int) -> None:
        self.reader, self.spill, self.chunk_rows = reader, spill, chunk_rows
        self.ids = coco.CocoIds(reader)
        self.image_dir = coco.image_dir(reader)
        self.split = coco.file_split(reader.path)  # one split for the whole file, if its name says
        self.types = {name: None for name in sorted(
            COLUMNS | ({SPLIT_COLUMN} if self.split is not None else set()))}
        self._kept = open(spill.file("kept_rows"), "w+b")  # noqa: SIM115
        self._current: tuple[int, np.ndarray] = (0, np.zeros(0, np.int64))
        missing_images: list[Problem] = []
        missing_categories: list[Problem] = []
        self.total = 0
        for chunk in spill.chunks(chunk_rows):  # ids are known only once the file is read
            _, _, known_image, known_cat = self.ids.positions(chunk["image_ids"],
                                                              chunk["category_ids"])
            images, categories = self.ids.missing(chunk["rows"], chunk["image_ids"],
                                                  chunk["category_ids"], known_image, known_cat)
            missing_images += images
            missing_categories += categories
            self.total += int((known_image & known_cat).sum())
        self.problems: list[Problem] = [*reader.problems, *missing_images, *missing_categories]
        self.rows_left_out = sum(p.severity == "error" for p in self.problems)
        self.rows_without_regions = [
            {"row": f"images[id={i}]", "filename": reader.images[i][0],
             **({SPLIT_COLUMN: self.split} if self.split is not None else {})}
            for i in self.ids.image_ids.tolist() if i not in spill.annotated]

    def __enter__(self) -> CocoTable:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def close(self) -> None:
        """Removes the spill files."""
        self._kept.close()
        shutil.rmtree(self.spill.folder, ignore_errors=True)

    def batches(self, columns: Sequence[str], batch_rows: int) -> Iterator[Any]:
        """Yields record batches of `columns` over the annotations kept (known ids)."""
        import pyarrow as pa

        names = pa.array(self.ids.names[:-1].tolist(), type=pa.string())
        labels = pa.array(self.ids.category_names[:-1].tolist(), type=pa.string())
        splits = pa.array([self.split], type=pa.string())
        start = 0
        for chunk in self.spill.chunks(batch_rows):
            image_pos, cat_pos, known_image, known_cat = self.ids.positions(
                chunk["image_ids"], chunk["category_ids"])
            keep = np.flatnonzero(known_image & known_cat)
            box = chunk["boxes"][keep]
            values = {"filename": pa.DictionaryArray.from_arrays(
                          pa.array(image_pos[keep].astype(np.int32)), names),
                      "label": pa.DictionaryArray.from_arrays(
                          pa.array(cat_pos[keep].astype(np.int32)), labels),
                      "x": box[:, 0], "y": box[:, 1],
                      "w": box[:, 2] - box[:, 0], "h": box[:, 3] - box[:, 1],
                      "category_id": chunk["category_ids"][keep],
                      "image_id": chunk["image_ids"][keep],
                      SPLIT_COLUMN: pa.DictionaryArray.from_arrays(
                          pa.array(np.zeros(len(keep), np.int32)), splits)}
            rows = chunk["rows"][keep]
            rows.tofile(self._kept)
            self._current = (start, rows)
            start += len(rows)
            yield pa.record_batch([pa.array(values[c]) if isinstance(values[c], np.ndarray)
                                   else values[c] for c in columns], names=list(columns))

    def row_labels(self, positions: np.ndarray) -> np.ndarray:
        """The annotation positions (row labels) of 0-based positions among the kept rows."""
        start, rows = self._current
        positions = np.asarray(positions, dtype=np.int64)
        inside = (positions >= start) & (positions < start + len(rows))
        if inside.all():
            picked: np.ndarray = rows[positions - start]
            return picked
        self._kept.flush()
        found = np.empty(len(positions), dtype=np.int64)
        for k, position in enumerate(positions.tolist()):
            self._kept.seek(8 * position)
            found[k] = np.fromfile(self._kept, np.int64, 1)[0]
        return found


def open_coco_table(path: str, *, encoding: str = "utf-8", chunk_rows: int = 1 << 16,
                    spill_dir: str | None = None) -> CocoTable:
    """Streams a COCO file once into spill files and returns it as a `CocoTable`.

    Args:
        path: The local COCO JSON file.
        encoding: As in `read_coco`. Defaults to `"utf-8"`.
        chunk_rows: Annotations per spilled chunk. Defaults to 2**16.
        spill_dir: Where the temporary spill folder goes. Defaults to `None`
            (the system's temporary folder).

    Returns:
        The table (a context manager that removes its spill files).

    Raises:
        AnnotationError: Invalid JSON, or a JSON object that is not COCO.

    Example:
    >>> with open_coco_table("instances_val.json") as table:  # doctest: +SKIP
    ...     print(table.total, len(table.problems))
    """
    folder = tempfile.mkdtemp(prefix="roi-coco-", dir=spill_dir)
    try:
        spill = _Spill(folder)
        try:
            reader = coco.scan_coco(path, encoding=encoding, chunk_rows=chunk_rows,
                                    on_chunk=spill.add)
        finally:
            spill.close()
        return CocoTable(reader, spill, chunk_rows)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
