"""Plain CSV tables with numeric box columns, read by columns in record batches.

`build_index` comes here for a plain CSV file (not a VIA export) before it
falls back to the row-by-row reader (`formats.csv.read_generic_csv`). The
file is read with `pyarrow.csv.open_csv` in record batches of 4 MB, and the
batches go through the same column builder as Parquet and Arrow tables
(`index.columns`), so memory stays flat and the index cache works as for
Parquet. Without pyarrow the file is read row by row, as before.

Row labels stay the CSV's physical line numbers, as `read_generic_csv`
numbers them (the line at which each record starts). They are found by one
vectorised pass over the file's bytes (`record_lines`): a newline ends a record
unless an odd number of quotes precedes it, and blank lines hold no record.

Anything this path cannot read exactly as the row reader does raises
`CsvFallback` (before or during the build), and the caller reads the file row
by row instead: pyarrow missing, a file that is not UTF-8, bare carriage-return
line ends, box columns that are not all numbers, a header with a repeated
name, a record the parser rejects, or a record count that differs from the
line scan. Column types are guessed from the file's first megabyte
(`_INFER_BYTES`); box columns are then read as float64 whatever follows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_roi_datagen.formats.csv import sniff_delimiter, text_encoding

__all__ = ["CsvFallback", "CsvTable", "open_csv_table", "record_lines"]

_QUOTE, _LF, _CR = 34, 10, 13
_SPACE = np.zeros(256, dtype=bool)
_SPACE[[9, 10, 13, 32]] = True
_SCAN_BYTES = 1 << 23
_DEFAULT_BOX_COLS = ("x", "y", "w", "h")
_INFER_BYTES = 1 << 20  # the column types are guessed from the file's head
_BLOCK_BYTES = 1 << 22  # 4 MB: measured faster and half the peak RSS of 16 MB


class CsvFallback(Exception):
    """The CSV file must be read by the row reader (the reason is the message)."""


@dataclass(frozen=True)
class _Scan:
    records: int  # header included
    regular: bool  # record k (0-based) starts on line k + 1
    multiline: bool  # some quoted value holds a newline
    starts: np.ndarray | None  # each record's first line, when asked for


def record_lines(path: str | os.PathLike[str], *, collect: bool = False) -> _Scan:
    r"""Finds the physical line at which each CSV record starts, from the file's bytes.

    A record starts on a line that begins outside quotes and holds something
    other than spaces (blank lines are skipped, as pandas and the `csv`
    module skip them). Quotes are counted: RFC 4180's doubled `""` toggles
    twice, so a newline ends a record exactly when the quotes before it are
    even.

    Args:
        path: A UTF-8 CSV file (LF or CRLF line ends).
        collect: Return the start line of every record. Defaults to `False`
            (count them, and tell whether record k starts on line k + 1).

    Returns:
        The scan: `records` (header included), `regular`, and `starts` when
        `collect`.

    Raises:
        CsvFallback: The file has bare `\r` line ends.

    Example:
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("wb", suffix=".csv", delete=False) as f:
    ...     _ = f.write(b'a,b\n\n1,"x\ny"\n2,z\n')
    >>> record_lines(f.name, collect=True).starts.tolist()
    [1, 3, 5]
    """
    parity = 0  # quotes so far, mod 2
    lines = 0  # lines ended so far
    line_outside = True  # the current line began outside quotes
    line_text = False  # the current line has a non-space byte so far
    cr_pending = False  # the previous chunk ended with a carriage return
    records, regular, multiline = 0, True, False
    found: list[np.ndarray] = []
    buffer = bytearray(_SCAN_BYTES)
    with open(path, "rb") as handle:  # read, not mapped: the resident memory stays one chunk
        while True:
            size = handle.readinto(buffer)
            chunk = np.frombuffer(buffer, dtype=np.uint8, count=size)
            if cr_pending and (not size or chunk[0] != _LF):
                raise CsvFallback("the file has bare carriage-return line ends")
            if not size:
                break
            cr = np.flatnonzero(chunk[:-1] == _CR)
            if len(cr) and not np.all(chunk[cr + 1] == _LF):
                raise CsvFallback("the file has bare carriage-return line ends")
            cr_pending = bool(chunk[-1] == _CR)
            ends = np.flatnonzero(chunk == _LF)
            if size < len(buffer) and chunk[-1] != _LF:
                ends = np.append(ends, size)  # no newline at the end of the file
            quotes = np.flatnonzero(chunk == _QUOTE)
            end_parity = (np.searchsorted(quotes, ends) + parity) & 1
            outside = np.empty(len(ends), dtype=bool)
            has_text = np.empty(len(ends), dtype=bool)
            if len(ends):
                outside[0] = line_outside
                outside[1:] = end_parity[:-1] == 0
                has_text[0] = line_text or _has_text(chunk[:ends[0]])
                begins = ends[:-1] + 1
                first = chunk[np.minimum(begins, size - 1)]
                has_text[1:] = (begins < ends[1:]) & ~_SPACE[first]
                for k in np.flatnonzero((begins < ends[1:]) & _SPACE[first]).tolist():
                    has_text[k + 1] = _has_text(chunk[begins[k]:ends[k + 1]])
                line_outside = bool(end_parity[-1] == 0)
                line_text = _has_text(chunk[ends[-1] + 1:])
            else:
                line_text = line_text or _has_text(chunk)
            parity = (parity + len(quotes)) & 1
            starts = np.flatnonzero(outside & has_text) + lines + 1
            multiline = multiline or not outside.all()
            if regular and len(starts):  # blank lines after the last record keep it regular
                regular = bool(starts[0] == records + 1
                               and starts[-1] - starts[0] == len(starts) - 1)
            if collect:
                found.append(starts.astype(np.int64))
            records += len(starts)
            lines += len(ends)
            if size < len(buffer):
                break
    if line_text and line_outside:  # an unterminated last line (a chunk-sized file)
        regular = regular and lines == records
        found.append(np.array([lines + 1], dtype=np.int64))
        records += 1
    if not collect:
        return _Scan(records, regular, multiline, None)
    return _Scan(records, regular, multiline,
                 np.concatenate(found) if found else np.zeros(0, np.int64))


def _has_text(part: np.ndarray) -> bool:
    return bool((~_SPACE[part]).any()) if len(part) else False


def _pandas_nulls() -> list[str]:
    from pandas._libs.parsers import STR_NA_VALUES  # type: ignore[import-not-found]

    return sorted(STR_NA_VALUES)


class CsvTable:
    """A plain CSV file read by columns: its schema, row count, batches and row labels.

    Built by `open_csv_table`; the interface `index.columns.build_columnar_index`
    reads (`types`, `total`, `batches`, `row_labels`).
    """

    def __init__(self, path: str, delimiter: str, types: dict[str, Any], scan: _Scan,
                 numeric: Sequence[str], text: Sequence[str] = ()) -> None:
        self.path, self.delimiter, self.types, self.numeric = path, delimiter, types, numeric
        self.text = text
        self.total = max(scan.records - 1, 0)
        self._scan = scan
        self._starts: np.ndarray | None = None

    def row_labels(self, positions: np.ndarray) -> np.ndarray:
        """The CSV line number at which each given 0-based data row starts."""
        if self._scan.regular:
            return positions.astype(np.int64) + 2
        if self._starts is None:
            self._starts = record_lines(self.path, collect=True).starts
        starts = self._starts
        assert starts is not None
        labels: np.ndarray = starts[positions + 1]
        return labels

    def batches(self, columns: Sequence[str], batch_rows: int) -> Iterator[Any]:
        """Yields the rows as pyarrow `RecordBatch`es of `columns`, in file order.

        Raises:
            CsvFallback: The parser rejects a record, or a numeric column holds
                text, or the row count differs from the line scan.
        """
        import pyarrow as pa
        import pyarrow.csv as pcsv

        wanted = list(dict.fromkeys(columns))
        convert = pcsv.ConvertOptions(
            include_columns=wanted, null_values=_pandas_nulls(), strings_can_be_null=True,
            column_types={**{c: pa.string() for c in self.text},
                          **{c: pa.float64() for c in self.numeric}},
            true_values=["True", "TRUE", "true"], false_values=["False", "FALSE", "false"])
        read = pcsv.ReadOptions(block_size=_BLOCK_BYTES, use_threads=True)
        parse = pcsv.ParseOptions(delimiter=self.delimiter,
                                  newlines_in_values=self._scan.multiline)
        seen = 0
        try:
            with pcsv.open_csv(self.path, read_options=read, parse_options=parse,
                               convert_options=convert) as reader:
                for batch in reader:
                    for start in range(0, batch.num_rows, batch_rows):
                        part = batch.slice(start, batch_rows)
                        seen += part.num_rows
                        if seen > self.total:
                            raise CsvFallback("pyarrow reads more records than the line scan")
                        yield part
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as error:
            raise CsvFallback(f"pyarrow cannot read the file by columns: {error}") from None
        if seen != self.total:
            raise CsvFallback("pyarrow reads fewer records than the line scan")


def open_csv_table(path: str, x_col: str, box_cols: tuple[str, str, str, str] | None,
                   box_col: str, label_cols: Sequence[str], optional_cols: Sequence[str] = (),
                   ) -> tuple[CsvTable, tuple[str, str, str, str]]:
    """Opens a plain CSV file for the column builder, or tells why it cannot be.

    Args:
        path: A local CSV file that is not a VIA export.
        x_col: The file name column.
        box_cols: The four box columns, or `None` for `x, y, w, h` when the
            file has no `box_col`.
        box_col: The single box column (`TableSpec.box_col`).
        label_cols: The label columns.
        optional_cols: Columns read as text when the file has them.

    Returns:
        The table and its four box columns.

    Raises:
        CsvFallback: pyarrow is missing, or the file is not UTF-8, or a needed
            column is missing, or the box columns or file names do not read as
            numbers and text from the first block.
    """
    try:
        import pyarrow as pa
        import pyarrow.csv as pcsv
    except ImportError:
        raise CsvFallback("pyarrow is not installed") from None
    if text_encoding(path) != "utf-8-sig":
        raise CsvFallback("the file is not UTF-8")
    with open(path, "rb") as handle:
        head = handle.readline().decode("utf-8-sig", errors="replace")
    delimiter = sniff_delimiter(head)
    read = pcsv.ReadOptions(block_size=_INFER_BYTES)
    parse = pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    convert = pcsv.ConvertOptions(null_values=_pandas_nulls(), strings_can_be_null=True)
    try:
        with pcsv.open_csv(path, read_options=read, parse_options=parse,
                           convert_options=convert) as reader:
            schema = reader.schema
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError, StopIteration) as error:
        raise CsvFallback(f"pyarrow cannot read the header: {error}") from None
    types = {field.name: field.type for field in schema}
    if len(types) != len(schema):
        raise CsvFallback("the header repeats a column name")
    if "region_shape_attributes" in types:
        raise CsvFallback("the file is a VIA export")
    if box_cols is None and box_col not in types and set(_DEFAULT_BOX_COLS) <= set(types):
        box_cols = _DEFAULT_BOX_COLS
    needed = (x_col, *(box_cols or ()), *label_cols)
    if box_cols is None or not all(c in types for c in needed):
        raise CsvFallback("a needed column is missing (the row reader names it)")
    if not all(pa.types.is_integer(types[c]) or pa.types.is_floating(types[c])
               or pa.types.is_null(types[c]) for c in box_cols):
        raise CsvFallback("the box columns are not numeric")
    if not (pa.types.is_string(types[x_col]) or pa.types.is_null(types[x_col])):
        raise CsvFallback("the file name column is not text")
    scan = record_lines(path)
    # Empty in the first block: read as text (pandas gives NaN, a missing value, as well).
    present = [c for c in optional_cols if c in types]
    text = [c for c in (x_col, *label_cols, *present) if pa.types.is_null(types[c])]
    return CsvTable(path, delimiter, types, scan, box_cols, text), box_cols
