"""Reading annotation tables: VIA, COCO, Pascal VOC, YOLO, Label Studio, CVAT and plain CSV.

Each annotation format is one module behind `registry` (VIA exports are CSV or
JSON, VIA 1 to 3).

Two readers, for two different frames:

- `read_annotations` reads any annotation format into the common region frame
  (`regions`: `filename`, `x`, `y`, `w`, `h`, `label`, `shape`, then the
  format's attributes), one row per region, boxes in pixels;
- `read_raw_table` reads a table as its file lays it out: a VIA export's own
  columns (`region_shape_attributes` as a dict, ...), a plain CSV, Parquet or
  Arrow file's columns; other formats give their region frame. Its rows are
  indexed by row label (CSV line number, `"<filename>#<k>"` for VIA JSON, the
  format's record label otherwise), with `attrs["source"]` and
  `attrs["format"]` set. (`read_table` is its old name.)

`write_annotations` writes COCO, COCO results and VIA CSV.
"""

from __future__ import annotations

import copy
import os
import warnings

import pandas as pd

from keras_roi_datagen.formats import columnar
from keras_roi_datagen.formats.csv import read_generic_csv
from keras_roi_datagen.formats.registry import (
    FORMATS,
    Source,
    detect_format,
    label_columns,
    open_source,
    read_annotations,
)
from keras_roi_datagen.formats.via import (
    STANDARD_COLUMNS,
    OnError,
    ViaRecord,
    detect_via_format,
    iter_via_records,
    read_via,
    read_via_csv,
    read_via_json,
    sniff_csv,
)
from keras_roi_datagen.formats.writers import write_annotations

__all__ = [
    "FORMATS",
    "STANDARD_COLUMNS",
    "Source",
    "ViaRecord",
    "detect_format",
    "detect_via_format",
    "is_via_table",
    "iter_via_records",
    "label_columns",
    "open_source",
    "read_annotations",
    "read_generic_csv",
    "read_raw_table",
    "read_table",
    "read_via",
    "read_via_csv",
    "read_via_json",
    "write_annotations",
]


def is_via_table(df: pd.DataFrame) -> bool:
    """Tell whether a table has VIA's layout (a `region_shape_attributes` column).

    Args:
        df: A table.

    Returns:
        True when `df` has a `region_shape_attributes` column.

    Example:
    >>> is_via_table(pd.DataFrame({"region_shape_attributes": ["{}"]}))
    True

    """
    return "region_shape_attributes" in df.columns


def read_table(
    source: pd.DataFrame | str | os.PathLike[str], *, encoding: str = "utf-8",
    on_error: OnError = "raise", format: str = "auto",
) -> pd.DataFrame:
    """Deprecated name of `read_raw_table` (the table as its file lays it out).

    `read_annotations` gives the common region frame instead.
    """
    warnings.warn("`read_table` is now `read_raw_table` (the table as its file lays it out; "
                  "`read_annotations` gives the common region frame).", DeprecationWarning,
                  stacklevel=2)
    return read_raw_table(source, encoding=encoding, on_error=on_error, format=format)


def read_raw_table(
    source: pd.DataFrame | str | os.PathLike[str], *, encoding: str = "utf-8",
    on_error: OnError = "raise", format: str = "auto",
) -> pd.DataFrame:
    """Read a table as its file lays it out, or copy one given as a DataFrame.

    Not the common region frame (that is `read_annotations`): a VIA export
    keeps VIA's columns, a plain table its own.

    A `.json` file is read as VIA JSON (`read_via_json`). Any other file is read
    as CSV: VIA layout when its header has `region_shape_attributes` (written
    `#filename,...` by VIA 1 or `filename,...` by VIA 2) or it is a VIA 3 export
    (`# CSV_HEADER = metadata_id,...`), otherwise a plain table of any columns
    read with pandas (`attrs["format"] == "csv"`).

    Args:
        source: A path, or a DataFrame (returned as a deep copy; the caller's
            frame is never modified).
        encoding: The encoding of files without a byte-order mark.
        on_error: For annotation files: `"raise"` (one error listing every
            malformed row) or `"skip"` (malformed rows are dropped and
            listed, as `Problem`s, in `attrs["problems"]`; `"collect"` is its
            older spelling).
        format: `"auto"` (detected by `detect_format`) or a format name. COCO,
            VOC, YOLO, Label Studio and CVAT sources (files or folders) are
            read with `read_annotations` into the common region frame.

    Returns:
        The table. For files: index = CSV line number (index name `"line"`) or
        VIA JSON region label (index name `"region"`); `attrs["source"]` is
        `str(path)`; `attrs["format"]` is e.g. `"via2-csv"` or `"csv"`.

    Raises:
        AnnotationError: The file is malformed (see `read_via`).
        FileNotFoundError: The file does not exist.
        TypeError: `source` is neither a path nor a DataFrame.

    Example:
    >>> df = read_raw_table(pd.DataFrame({"filename": ["a.jpg"], "label": ["cat"]}))
    >>> is_via_table(df)
    False

    """
    if isinstance(source, pd.DataFrame):
        frame = source.copy(deep=True)
        frame.attrs = copy.deepcopy(dict(source.attrs))
        return frame
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"`source` must be a path or a pandas DataFrame. Received: {type(source).__name__}"
        )
    if not os.path.exists(source):
        raise FileNotFoundError(f"annotation table not found: {os.fspath(source)!r}")
    if columnar.is_columnar(source):  # Parquet / Arrow, read by columns (pyarrow)
        return columnar.read_columnar(source)
    found = detect_format(source) if format == "auto" else format
    if found not in ("via", "csv") or os.path.isdir(source):
        return read_annotations(source, found, encoding=encoding, on_error=on_error)
    if os.fspath(source).lower().endswith(".json"):
        return read_via_json(source, encoding=encoding, on_error=on_error)
    if sniff_csv(source, encoding).kind is not None:
        return read_via_csv(source, encoding=encoding, on_error=on_error)
    return read_generic_csv(source, encoding=encoding)
