"""The one-row-per-region DataFrame that `read_via` builds from `ViaRecord`s.

Columns, in order: VIA's seven standard columns (`STANDARD_COLUMNS`), then the
file's extra top-level columns (`ViaRecord.extra`, CSV files only), then one
column per region-attribute key. `attribute_columns` keeps attribute columns
from hiding the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from keras_roi_datagen.errors import raise_problems
from keras_roi_datagen.formats.via_common import STANDARD_COLUMNS, OnError, ViaRecord

__all__ = ["attribute_columns", "records_to_frame"]

_HINT = "Pass on_error='collect' to skip the malformed rows and list them in attrs['problems']."


def attribute_columns(keys: Iterable[str], reserved: Iterable[str] = ()) -> dict[str, str]:
    """Choose a column name for each region-attribute key.

    A key equal to a standard column, to a reserved name (the file's extra
    columns), or to a column already chosen is prefixed with `region_` until
    unique: `filename` -> `region_filename`, `region_id` -> `region_region_id`,
    and `name` -> `region_name` when the file has a top-level `name` column.
    The empty key gets no column.

    Args:
        keys: Region-attribute keys in first-seen order.
        reserved: Other column names the table already has.

    Returns:
        `{key: column}`.

    Example:
    >>> attribute_columns(["label", "filename"])
    {'label': 'label', 'filename': 'region_filename'}
    >>> attribute_columns(["name", "kind"], reserved=["name", "split"])
    {'name': 'region_name', 'kind': 'kind'}

    """
    taken, mapping = {*STANDARD_COLUMNS, *reserved}, {}
    for key in keys:
        if key == "":
            continue
        name = key
        while name in taken:
            name = "region_" + name
        taken.add(name)
        mapping[key] = name
    return mapping


def records_to_frame(
    records: Iterable[ViaRecord], *, source: str, fmt: str, index_name: str,
    on_error: OnError = "raise", extra_columns: Sequence[str] = (),
) -> pd.DataFrame:
    """Build the one-row-per-region table from records.

    Args:
        records: Records, read with `on_error="collect"`.
        source: The file, for `attrs["source"]`.
        fmt: The layout name, for `attrs["format"]`.
        index_name: `"line"` (CSV) or `"region"` (JSON).
        on_error: `"raise"` raises one `AnnotationError` listing every malformed
            record; `"collect"` drops them and lists them in `attrs["problems"]`.
        extra_columns: The file's extra columns (a CSV header's), in order; they
            get a column even when no region row has them. Extra keys found in
            the records that are not listed follow, in first-seen order.

    Returns:
        The table described in `read_via`.

    Raises:
        AnnotationError: Malformed records, when raising.

    Example:
    >>> record = ViaRecord(2, "a.jpg", {"name": "point", "cx": 1, "cy": 2}, {"name": "cat"},
    ...                    {}, extra={"name": "dog"})
    >>> df = records_to_frame([record], source="v.csv", fmt="via2-csv", index_name="line")
    >>> list(df.columns[7:]), df.loc[2, "name"], df.loc[2, "region_name"]
    (['name', 'region_name'], 'dog', 'cat')

    """
    kept, without, problems = [], [], []
    for record in records:
        if record.problem is not None:
            problems.append(record.problem)
        elif not record.shape:
            without.append({"row": record.row, "filename": record.filename})
        else:
            kept.append(record)
    if on_error == "raise":
        raise_problems(problems, _HINT)
    extras = list(dict.fromkeys([*extra_columns, *(k for r in kept for k in r.extra)]))
    columns = attribute_columns(dict.fromkeys(k for r in kept for k in r.attributes), extras)
    data: dict[str, Any] = {
        "filename": [r.filename for r in kept],
        "file_size": pd.array([r.file_size for r in kept], dtype="Int64"),
        "file_attributes": [r.file_attributes for r in kept],
        "region_count": pd.array([r.region_count for r in kept], dtype="Int64"),
        "region_id": pd.array([r.region_id for r in kept], dtype="Int64"),
        "region_shape_attributes": [r.shape for r in kept],
        "region_attributes": [r.attributes for r in kept],
    }
    for name in extras:
        data[name] = pd.Series([r.extra.get(name) for r in kept], dtype=object)
    for key, column in columns.items():
        data[column] = pd.Series([r.attributes.get(key) for r in kept], dtype=object)
    index = pd.Index([r.row for r in kept], name=index_name,
                     dtype="int64" if index_name == "line" else object)
    for column, values in data.items():
        if isinstance(values, pd.Series):
            data[column] = values.set_axis(index)
    frame = pd.DataFrame(data, index=index)
    frame.attrs.update(source=source, format=fmt, rows_without_regions=without,
                       problems=problems, attribute_columns=columns, extra_columns=extras)
    return frame
