"""`build_index`: ONE routing table from the kind of source to the builder that reads it.

The format registry decides what a source is, once (`formats.open_source`);
here each kind has its builders in order of preference, each either building
the index or saying it cannot (returning `None`, so the next one is tried):

| kind | builders |
|---|---|
| `"frame"` (a DataFrame) | rows |
| `"via"` | rows, streamed record by record |
| `"csv"` (a plain CSV file) | columns (pyarrow, numeric box columns), else rows of its frame |
| `"columnar"` (Parquet, Arrow) | columns (numeric box columns), else rows of its frame |
| `"coco"` | a file: columns (streamed, default columns and `split`), else rows of its region frame |
| any other format | rows of its region frame (`read_annotations`) |

A COCO folder (several files) is read through its region frame: the column
builder streams one file.

Every builder writes into one sink: memory, or, with `cache=`, an index
cache entry (`index.cache`): the columnar builders write the entry as they
read, the row builders save what they built. A cached entry is looked up
once, before routing.

Nothing is raised for bad rows: they are left out of the index and listed in
`IndexBuild.problems`, so the caller chooses between raising and skipping.
Table-wide faults (a missing column, an unreadable file) raise.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import pandas as pd

from keras_roi_datagen import storage
from keras_roi_datagen.formats.registry import Source, open_source
from keras_roi_datagen.index import cache as entries
from keras_roi_datagen.index.model import IndexBuild, TableSpec
from keras_roi_datagen.index.rows import build_rows, frame_rows, via_rows

__all__ = ["ROUTES", "build_index"]

Progress = Callable[[int, int], None]
Builder = Callable[[Source, TableSpec, "Mapping[str, Any] | None", "str | None", "Progress | None"],
                   "IndexBuild | None"]


def _stored(build: IndexBuild, folder: str | None) -> IndexBuild:
    """A build made in memory, saved as the cache entry `folder` (and mapped back) if asked."""
    if folder is None:
        return build
    entries.save(build, folder)
    return entries.load(folder) or build


def _beside(source: Source) -> str | None:
    """Where a table file keeps its images by default: its folder (a URL's parent)."""
    if source.name is None:
        return None
    if storage.is_url(source.name):
        return storage.url_dirname(source.name)
    return os.path.dirname(os.path.abspath(source.name))


def _with_image_dir(spec: TableSpec, image_dir: str | None) -> TableSpec:
    return spec if spec.image_dir is not None or image_dir is None else replace(
        spec, image_dir=image_dir)


def _frame_spec(frame: pd.DataFrame, spec: TableSpec) -> TableSpec:
    """Fill what a region frame (`read_annotations`) tells: its image folder and box columns."""
    spec = _with_image_dir(spec, frame.attrs.get("image_dir") or None)
    if (spec.box_cols is None and spec.box_col not in frame.columns
            and spec.box_col == TableSpec.box_col
            and all(c in frame.columns for c in ("x", "y", "w", "h"))):
        spec = replace(spec, box_cols=("x", "y", "w", "h"))
    return spec


def _rows_of_frame(frame: pd.DataFrame, source: str | None, spec: TableSpec,
                   vocabularies: Mapping[str, Any] | None, folder: str | None,
                   read_problems: bool = True) -> IndexBuild:
    """The row builder over a frame; `read_problems`: its reader's problems are the build's."""
    spec = _frame_spec(frame, spec)
    problems = list(frame.attrs.get("problems", [])) if read_problems else []
    without = list(frame.attrs.get("rows_without_regions", []))
    return _stored(build_rows(frame_rows(frame, spec, source), spec, source, vocabularies,
                              read_problems=problems, rows_without_regions=without), folder)


def _frame(source: Source, spec: TableSpec, vocabularies: Mapping[str, Any] | None,
           folder: str | None, progress: Progress | None) -> IndexBuild:
    assert source.frame is not None
    frame = source.frame
    return _rows_of_frame(frame, frame.attrs.get("source"), spec, vocabularies, None,
                          read_problems=False)


def _via(source: Source, spec: TableSpec, vocabularies: Mapping[str, Any] | None,
         folder: str | None, progress: Progress | None) -> IndexBuild:
    assert source.local is not None
    spec = _with_image_dir(spec, _beside(source))
    without: list[dict[str, Any]] = []  # filled while the rows are read
    return _stored(build_rows(via_rows(source.local, spec, without), spec, source.name,
                              vocabularies, rows_without_regions=without), folder)


def _csv_columns(source: Source, spec: TableSpec, vocabularies: Mapping[str, Any] | None,
                 folder: str | None, progress: Progress | None) -> IndexBuild | None:
    from keras_roi_datagen.formats import csv_columns
    from keras_roi_datagen.index.columns import build_columnar_index

    assert source.local is not None and source.name is not None
    spec = _with_image_dir(spec, _beside(source))
    try:  # pyarrow may find a record it cannot read as the row reader does only mid-file
        table, box_cols = csv_columns.open_csv_table(source.local, spec.x_col, spec.box_cols,
                                                     spec.box_col, spec.y_cols, spec.optional_cols)
        return build_columnar_index(source.local, spec, box_cols, source.name, vocabularies,
                                    table=table, cache_folder=folder, progress=progress)
    except csv_columns.CsvFallback:
        return None


def _csv_rows(source: Source, spec: TableSpec, vocabularies: Mapping[str, Any] | None,
              folder: str | None, progress: Progress | None) -> IndexBuild:
    from keras_roi_datagen.formats.csv import read_generic_csv

    assert source.local is not None
    frame = read_generic_csv(source.local)
    return _rows_of_frame(frame, source.name, _with_image_dir(spec, _beside(source)),
                          vocabularies, folder)


def _columnar_columns(source: Source, spec: TableSpec, vocabularies: Mapping[str, Any] | None,
                      folder: str | None, progress: Progress | None) -> IndexBuild | None:
    from keras_roi_datagen.index.columns import build_columnar_index, columnar_box_cols

    assert source.local is not None and source.name is not None
    spec = _with_image_dir(spec, _beside(source))
    box_cols = columnar_box_cols(source.local, spec)
    if box_cols is None:  # boxes not in four numeric columns: the row builder reads them
        return None
    return build_columnar_index(source.local, spec, box_cols, source.name, vocabularies,
                                cache_folder=folder, progress=progress)


def _columnar_rows(source: Source, spec: TableSpec, vocabularies: Mapping[str, Any] | None,
                   folder: str | None, progress: Progress | None) -> IndexBuild:
    from keras_roi_datagen.formats.columnar import read_columnar

    assert source.local is not None
    return _rows_of_frame(read_columnar(source.local), source.name,
                          _with_image_dir(spec, _beside(source)), vocabularies, folder)


def _coco_columns(source: Source, spec: TableSpec, vocabularies: Mapping[str, Any] | None,
                  folder: str | None, progress: Progress | None) -> IndexBuild | None:
    """A COCO file streamed into chunked arrays and built by columns (`formats.coco_columns`).

    A folder of COCO files (several files, their file names made relative to
    one folder) declines: its region frame is read instead.
    """
    from keras_roi_datagen.formats import coco_columns
    from keras_roi_datagen.index.columns import build_columnar_index

    assert source.local is not None and source.name is not None
    box_cols = coco_columns.box_cols(spec.x_col, spec.box_cols, spec.box_col, TableSpec.box_col,
                                     spec.y_cols)
    if box_cols is None or os.path.isdir(source.local):  # read through the region frame
        return None
    spill_dir = os.path.dirname(folder) if folder is not None else None
    if spill_dir is not None:
        os.makedirs(spill_dir, exist_ok=True)
    with coco_columns.open_coco_table(source.local, spill_dir=spill_dir) as table:
        spec = _with_image_dir(spec, table.image_dir)
        return build_columnar_index(source.local, spec, box_cols, source.name, vocabularies,
                                    table=table, cache_folder=folder, progress=progress)


def _annotations(source: Source, spec: TableSpec, vocabularies: Mapping[str, Any] | None,
                 folder: str | None, progress: Progress | None) -> IndexBuild:
    """Any format read into the common region frame; its reader's problems are this build's."""
    from keras_roi_datagen.formats.registry import read_annotations

    assert source.local is not None
    frame = read_annotations(source.local, source.kind, on_error="skip", image_dir=spec.image_dir)
    where = _beside(source) if source.is_url else frame.attrs.get("image_dir") or _beside(source)
    return _rows_of_frame(frame, source.name, _with_image_dir(spec, where), vocabularies, folder)


ROUTES: dict[str, tuple[Builder, ...]] = {
    "frame": (_frame,),
    "via": (_via,),
    "csv": (_csv_columns, _csv_rows),
    "columnar": (_columnar_columns, _columnar_rows),
    "coco": (_coco_columns, _annotations),
}
"""The builders of each kind of source, in order of preference; other formats: `_annotations`."""


def _cache_entry(source: Source, spec: TableSpec, vocabularies: Mapping[str, Any] | None,
                 cache: str | os.PathLike[str] | bool | None) -> str | None:
    """The cache entry's folder for a table file, or `None` (no cache, a DataFrame, a folder).

    A dataset folder (YOLO, VOC, a COCO or CVAT export) is read each time: its
    many files are not fingerprinted, and a stale entry would go unnoticed.
    """
    if cache is None or cache is False or source.local is None or source.name is None or (
            os.path.isdir(source.local)):
        return None
    cache_dir = entries.default_cache_dir() if cache is True else os.fspath(cache)
    key = entries.table_key(source.name, source.local, spec, vocabularies, source.version)
    return entries.cache_folder(cache_dir, key)


def build_index(
    table: pd.DataFrame | str | os.PathLike[str] | Source,
    spec: TableSpec,
    vocabularies: Mapping[str, Any] | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
    cache: str | os.PathLike[str] | bool | None = None,
    progress: Progress | None = None,
) -> IndexBuild:
    """Reads a table into a `RoiIndex`, recording every problem with its row.

    Nothing is raised for bad rows: they are left out of the index and listed
    in `IndexBuild.problems`, so the caller chooses between raising and
    skipping. Table-wide faults (a missing column, an unreadable file) raise.

    Args:
        table: A DataFrame, a path or URL (see `formats.open_source`), or a
            `Source` already opened.
        spec: The `TableSpec`. Its `image_dir`, when `None`, becomes where
            the source keeps its images: the table file's folder (a URL's
            parent), the folder a format names (COCO's `images/`, YOLO's
            `images/` beside `labels/`, the folder a VOC file names), or a
            region frame's `attrs["image_dir"]`.
        vocabularies: Optional given vocabularies per label column (a
            `LabelVocabulary` or a list of classes). Columns not given get a
            vocabulary built from the usable rows, sorted.
        storage_options: For a table given as a URL: passed to fsspec.
            Defaults to `None`.
        cache: For a table file: a folder where the built index is kept as
            memory-mapped columns and reused while the file (and `spec`,
            `vocabularies`) are unchanged; `True` for the default folder
            (`~/.cache/keras_roi_datagen/index`). A dataset folder is not
            cached (read each time). Defaults to `None` (no cache). See
            `keras_roi_datagen.index.cache`.
        progress: Called with `(rows_read, rows_total)` as a columnar
            table is read (for progress bars). Defaults to `None`.

    Returns:
        The `IndexBuild`.

    Raises:
        AnnotationError: For table-wide faults.
        StorageError: When a table given as a URL cannot be read.

    Example:
    >>> frame = pd.DataFrame({"filename": ["a.jpg"], "x": [0], "y": [0], "w": [4], "h": [4],
    ...                       "name": ["cat"]})
    >>> build = build_index(frame, TableSpec(y_cols=("name",), check_files=False))
    >>> len(build.index), build.vocabularies["name"].classes
    (1, ('cat',))
    """
    source = table if isinstance(table, Source) else open_source(
        table, spec.format, storage_options=storage_options)
    folder = _cache_entry(source, spec, vocabularies, cache)
    if folder is not None and (found := entries.load(folder)) is not None:
        return found
    for builder in ROUTES.get(source.kind, (_annotations,)):
        build = builder(source, spec, vocabularies, folder, progress)
        if build is not None:
            return build
    raise AssertionError(f"no builder read the {source.kind} source {source!r}")  # the last never declines
