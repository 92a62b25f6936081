"""Columnar tables: Parquet and Arrow (Feather v2, IPC) files, read with pyarrow.

Columnar files are read by columns, in record batches, never row by row: the
index of a table of 10^7 regions is built in seconds (see
`keras_roi_datagen.index.columns`). `read_columnar` returns a DataFrame for
everything else that wants one. pyarrow is an optional extra:
`pip install "keras-roi-datagen[parquet]"`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd

__all__ = ["COLUMNAR_SUFFIXES", "column_types", "is_columnar", "iter_column_batches",
           "read_columnar", "row_count"]

COLUMNAR_SUFFIXES = (".parquet", ".pq", ".feather", ".arrow", ".ipc")
_EXTRA_HINT = 'Install the parquet extra: pip install "keras-roi-datagen[parquet]"'


def is_columnar(path: str | os.PathLike[str]) -> bool:
    """Tells whether a file name is a Parquet or Arrow file (by its extension).

    Example:
    >>> is_columnar("regions.parquet"), is_columnar("regions.csv")
    (True, False)
    """
    return os.fspath(path).lower().endswith(COLUMNAR_SUFFIXES)


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError:
        raise ImportError(f"Reading Parquet or Arrow tables needs pyarrow. {_EXTRA_HINT}") from None
    return pyarrow


def _is_parquet(path: str) -> bool:
    return path.lower().endswith((".parquet", ".pq"))


def column_types(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Returns the file's columns and their pyarrow types, from its schema only.

    Args:
        path: A Parquet or Arrow file.

    Returns:
        `{column: pyarrow.DataType}` in file order.
    """
    _pyarrow()
    path = os.fspath(path)
    if _is_parquet(path):
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
    else:
        import pyarrow.ipc as ipc

        with ipc.open_file(path) as reader:
            schema = reader.schema
    return {field.name: field.type for field in schema}


def row_count(path: str | os.PathLike[str]) -> int:
    """Returns the file's number of rows, from its metadata."""
    _pyarrow()
    path = os.fspath(path)
    if _is_parquet(path):
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    import pyarrow as pa
    import pyarrow.ipc as ipc

    with pa.memory_map(path) as source, ipc.open_file(source) as reader:
        return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))


def iter_column_batches(path: str | os.PathLike[str], columns: Sequence[str],
                        batch_rows: int = 1 << 20) -> Iterator[Any]:
    """Yields the file's rows as pyarrow `RecordBatch`es of the given columns.

    Args:
        path: A Parquet or Arrow file.
        columns: The columns to read.
        batch_rows: Rows per batch at most. Defaults to 2**20.

    Yields:
        `pyarrow.RecordBatch`es, in file order.
    """
    _pyarrow()
    path = os.fspath(path)
    if _is_parquet(path):
        import pyarrow.parquet as pq

        # Row group by row group: `iter_batches` keeps every row group's dictionary
        # alive to the end (memory grows with the file for dictionary columns).
        with pq.ParquetFile(path, memory_map=False, buffer_size=1 << 22) as reader:
            for group in range(reader.metadata.num_row_groups):
                table = reader.read_row_group(group, columns=list(columns))
                yield from table.to_batches(max_chunksize=batch_rows)
                del table
        return
    import pyarrow as pa
    import pyarrow.ipc as ipc

    with pa.memory_map(path) as source, ipc.open_file(source) as reader:
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i).select(list(columns))
            for start in range(0, batch.num_rows, batch_rows):
                yield batch.slice(start, batch_rows)


def read_columnar(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Reads a Parquet or Arrow file into a DataFrame.

    Args:
        path: The file.

    Returns:
        The table, indexed by row position (index name `"row"`), with
        `attrs["source"]` and `attrs["format"]` (`"parquet"` or `"arrow"`).

    Raises:
        ImportError: When pyarrow is not installed.
    """
    _pyarrow()
    path = os.fspath(path)
    if _is_parquet(path):
        import pyarrow.parquet as pq

        frame: pd.DataFrame = pq.read_table(path, memory_map=True).to_pandas()
    else:
        import pyarrow.feather as feather

        frame = pd.DataFrame(feather.read_table(path, memory_map=True).to_pandas())
    frame.index = pd.RangeIndex(len(frame), name="row")
    frame.attrs["source"] = path
    frame.attrs["format"] = "parquet" if _is_parquet(path) else "arrow"
    return frame
