"""What an index is: the table's options (`TableSpec`), its rows as arrays (`RoiIndex`), a build.

`resolve_table` is the one place that turns the table arguments users give
(`RoiDataset`, `RoiDataModule`, the command line) into a `Source` and a
`TableSpec`: their checks, their defaults (`y_cols=None` means the source's
label columns) and their messages are written once, here.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from keras_roi_datagen.augment import Augmentation
from keras_roi_datagen.boxes import BoxFormat
from keras_roi_datagen.decode import BatchJob, DecodeOptions
from keras_roi_datagen.errors import Problem
from keras_roi_datagen.formats.registry import Source, open_source
from keras_roi_datagen.index import checks
from keras_roi_datagen.mapped import gather, read_range
from keras_roi_datagen.paths import PathTable

__all__ = ["IndexBuild", "RoiIndex", "TableSpec", "resolve_table"]

# Rows read at a time by whole-column passes over a (possibly mapped) index.
CHUNK_ROWS = 1 << 16


@dataclass(frozen=True)
class TableSpec:
    """Where things are in the table; mirrors `RoiDataset`'s arguments.

    Args:
        image_dir: The folder (or URL) relative file names are resolved
            against; `None`: where the source keeps its images (see
            `build_index`).
        x_col: Column of image file names.
        box_col: Column holding each box as a VIA shape or four numbers.
        box_cols: Four numeric box columns instead, read with `box_format`.
        box_format: How four box numbers are read.
        y_cols: Label columns; every row needs a usable value in each.
        allow_outside_image_dir: Accept file names that lead outside `image_dir`.
        check_files: Check that each image file exists and is not empty.
        format: `"auto"` or a format name, as `open_source` takes it.
        optional_cols: Columns read like labels when the table has them,
            where a missing or unusable value is allowed (its code is -1)
            and no problem; e.g. a `split` column. Defaults to `()`.
    """

    image_dir: str | None = None
    x_col: str = "filename"
    box_col: str = "region_shape_attributes"
    box_cols: tuple[str, str, str, str] | None = None
    box_format: BoxFormat = BoxFormat.XYWH
    y_cols: tuple[str, ...] = ("name", "type")
    allow_outside_image_dir: bool = False
    check_files: bool = True
    format: str = "auto"
    optional_cols: tuple[str, ...] = ()

    @property
    def coded_cols(self) -> tuple[str, ...]:
        """The label columns, then the optional columns: every column kept as class codes."""
        return (*self.y_cols, *(c for c in self.optional_cols if c not in self.y_cols))

    @property
    def box_column_name(self) -> str:
        """How problems name the box's column (`box_col`, or the four `box_cols` joined)."""
        return self.box_col if self.box_cols is None else ",".join(self.box_cols)


@dataclass(frozen=True)
class RoiIndex:
    """The usable rows of a table as arrays.

    Args:
        paths: Distinct image paths (absolute, or URLs), as a compact
            `PathTable` (one UTF-8 buffer and offsets).
        path_ids: Per row, the position of its image in `paths`.
        boxes: `(n, 4)` `float64` boxes, `xyxy`, pixels or fractions.
        relative: Whether `boxes` are fractions of the image size.
        codes: Per coded column (labels, then optional columns), the class
            index of each row (`int32`; -1 for a missing optional value).
        rows: Per row, its label in the source table (CSV line number or
            DataFrame index label), for messages.
        positions: Per row, its position in the source table.
        source: The table's file, if it came from one.
        cache_folder: The on-disk cache entry its columns are mapped from,
            if any (see `keras_roi_datagen.index.cache`).
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

    def select(self, keep: np.ndarray) -> RoiIndex:
        """Returns the index restricted to `keep` (a boolean mask or positions), in memory."""
        return RoiIndex(
            paths=self.paths,
            path_ids=self.path_ids[keep],
            boxes=self.boxes[keep],
            relative=self.relative,
            codes={k: v[keep] for k, v in self.codes.items()},
            rows=self.rows[keep],
            positions=self.positions[keep],
            source=self.source,
        )

    def with_codes(self, codes: dict[str, np.ndarray]) -> RoiIndex:
        """Returns the same rows with other class codes (e.g. recoded to another vocabulary)."""
        return RoiIndex(self.paths, self.path_ids, self.boxes, self.relative, codes, self.rows,
                        self.positions, self.source)

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
        for start in range(0, len(self), CHUNK_ROWS):
            ids = read_range(self.path_ids, start, start + CHUNK_ROWS)
            boxes = read_range(self.boxes, start, start + CHUNK_ROWS)
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
        """Returns a sha256 of everything that decides batch contents (`checks.fingerprint`)."""
        return checks.fingerprint(
            ["\n".join(self.paths.tolist()).encode()],
            {name: [np.ascontiguousarray(column).tobytes()] for name, column in (
                ("path_ids", self.path_ids), ("boxes", self.boxes), ("positions", self.positions))},
            [(name, [np.ascontiguousarray(codes).tobytes()]) for name, codes in self.codes.items()],
            self.relative)


@dataclass
class IndexBuild:
    """What `build_index` found.

    Args:
        index: The usable rows.
        vocabularies: One `LabelVocabulary` per coded column (labels, and
            the optional columns the table has).
        problems: Every problem, errors (rows left out) and warnings.
        rows_without_regions: Images listed in a VIA export with no region,
            as `{"row": ..., "filename": ...}` dicts (dropped, not errors).
        n_rows: Rows read from the table (regions, good and bad).
        image_dir: The folder (or URL) file names were resolved against,
            when the build knew it.
    """

    index: RoiIndex
    vocabularies: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)
    rows_without_regions: list[dict[str, Any]] = field(default_factory=list)
    n_rows: int = 0
    image_dir: str | None = None

    @property
    def errors(self) -> list[Problem]:
        """The problems that excluded a row."""
        return [p for p in self.problems if p.severity == "error"]

    def restricted(self, keep: np.ndarray, problems: Sequence[Problem] = ()) -> IndexBuild:
        """Returns the build with only the rows `keep` selects, and `problems` added."""
        return replace(self, index=self.index.select(keep), problems=[*self.problems, *problems])


def resolve_table(
    table: pd.DataFrame | str | os.PathLike[str] | Source,
    *,
    image_dir: str | os.PathLike[str] | None = None,
    x_col: str = "filename",
    box_col: str = "region_shape_attributes",
    box_cols: Sequence[str] | None = None,
    box_format: BoxFormat | str = "xywh",
    y_cols: Sequence[str] | str | None = None,
    allow_outside_image_dir: bool = False,
    check_files: bool = True,
    format: str = "auto",
    optional_cols: Sequence[str] = (),
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[Source, TableSpec]:
    """Turns the table arguments of a dataset, data module or command into a source and a spec.

    The source is decided once (`open_source`: a URL is downloaded, a file
    detected); `y_cols=None` then means the source's label columns
    (`Source.label_columns`).

    Args:
        table: A DataFrame, a path or URL, or a `Source` already opened.
        image_dir: See `TableSpec`.
        x_col: See `TableSpec`.
        box_col: See `TableSpec`.
        box_cols: See `TableSpec`; four names.
        box_format: A `BoxFormat` or its name.
        y_cols: Label columns (one name or several), or `None`: the source's.
        allow_outside_image_dir: See `TableSpec`.
        check_files: See `TableSpec`.
        format: `"auto"` or a format name.
        optional_cols: See `TableSpec`.
        storage_options: For a URL: passed to fsspec.

    Returns:
        `(source, spec)`.

    Raises:
        ValueError: For an argument outside its rule (`box_cols` not four
            names, an unknown `box_format` or `format`).
        FileNotFoundError: A local path that does not exist.
        AnnotationError: A source whose format cannot be told.

    Example:
    >>> frame = pd.DataFrame({"filename": ["a.jpg"], "x": [0], "y": [0], "w": [4], "h": [4],
    ...                       "label": ["cat"]})
    >>> resolve_table(frame)[1].y_cols
    ('label',)
    """
    if box_cols is not None and (isinstance(box_cols, str) or len(box_cols) != 4):
        raise ValueError(f"`box_cols` must name four columns. Received: box_cols={box_cols!r}")
    parsed_format = BoxFormat.parse(box_format)
    source = table if isinstance(table, Source) else open_source(
        table, format, storage_options=storage_options)
    columns = source.label_columns if y_cols is None else (
        (y_cols,) if isinstance(y_cols, str) else tuple(y_cols))
    spec = TableSpec(
        image_dir=os.fspath(image_dir) if image_dir is not None else None,
        x_col=x_col, box_col=box_col,
        box_cols=tuple(box_cols) if box_cols is not None else None,  # type: ignore[arg-type]
        box_format=parsed_format, y_cols=tuple(columns),
        allow_outside_image_dir=bool(allow_outside_image_dir), check_files=check_files,
        format=format, optional_cols=tuple(c for c in optional_cols if c not in columns))
    return source, spec
