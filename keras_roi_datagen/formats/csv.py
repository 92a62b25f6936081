"""Plain CSV tables of any columns, and the line-tracking CSV reader VIA files share.

A table that is not a VIA export is read with `pandas.read_csv`; the only thing
added is the index: the physical line number at which each record starts in the
file (index name `"line"`), so that an error about a row can send the user to
the right line even when quoted fields span several lines.

The same module holds the low-level reader used for VIA CSV files
(`open_text`, `LineReader`, `iter_records`): it streams records with the `csv`
module, keeps memory flat, and knows the first and last physical line of every
record. It handles a UTF-8 BOM, UTF-16 files with a BOM (Excel's "Unicode
text"), CRLF/LF/CR line ends, and blank lines.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from typing import IO

import pandas as pd

from keras_roi_datagen.errors import AnnotationError, Problem

__all__ = [
    "LineReader",
    "bad_encoding_error",
    "is_blank",
    "iter_records",
    "open_text",
    "read_csv_text",
    "read_generic_csv",
    "sniff_delimiter",
    "text_encoding",
]

PathLike = str | os.PathLike[str]

_FIELD_LIMIT = 256 * 1024 * 1024  # VIA polygons traced from masks can exceed csv's 128 KiB
_DELIMITERS = (",", ";", "\t")


def _ensure_field_limit() -> None:
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)


def text_encoding(path: PathLike, encoding: str = "utf-8") -> str:
    """Choose the codec for a text file: its BOM wins, then `encoding`.

    Args:
        path: The file.
        encoding: The encoding used when the file has no byte-order mark.

    Returns:
        `"utf-8-sig"` (UTF-8, with or without BOM), `"utf-16"` (UTF-16 with
        BOM), or `encoding`.

    Example:
    >>> text_encoding("via.csv")  # doctest: +SKIP
    'utf-8-sig'

    """
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    return "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


def open_text(path: PathLike, encoding: str = "utf-8") -> IO[str]:
    """Open a text table for the `csv` module, choosing the encoding from its BOM.

    Args:
        path: The file.
        encoding: The encoding used when the file has no byte-order mark.

    Returns:
        A text handle opened with `newline=""` (as the `csv` module requires).

    Example:
    >>> with open_text("via.csv") as handle:  # doctest: +SKIP
    ...     first = handle.readline()

    """
    return open(path, encoding=text_encoding(path, encoding), newline="")


def bad_encoding_error(
    path: PathLike, encoding: str, error: UnicodeDecodeError
) -> AnnotationError:
    """Build the error for a file that is not text in the expected encoding.

    Args:
        path: The file.
        encoding: The encoding asked for.
        error: The decoder's error.

    Returns:
        An `AnnotationError` (kind `"bad_encoding"`) naming the first bad line.

    Example:
    >>> try:  # doctest: +SKIP
    ...     open_text("latin1.csv").read()
    ... except UnicodeDecodeError as error:
    ...     raise bad_encoding_error("latin1.csv", "utf-8", error) from None

    """
    line, value = _first_undecodable_line(path, text_encoding(path, encoding))
    problem = Problem(
        "bad_encoding",
        f"the file is not valid {encoding} text ({error.reason}); re-save it as UTF-8 "
        "or pass the file's encoding (e.g. encoding='cp1252').",
        source=str(path),
        row=line,
        value=value,
    )
    return AnnotationError(problem.describe(), [problem])


def _first_undecodable_line(path: PathLike, encoding: str) -> tuple[int | None, bytes | None]:
    if encoding.startswith("utf-16"):
        return None, None
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError:
                return number, raw[:60]
    return None, None


class LineReader:
    r"""Iterate over the physical lines of a text handle, counting them.

    `csv.reader` pulls exactly the lines a record needs, so after it returns a
    record, `line` is the physical line number of the record's last line.

    Args:
        handle: A handle from `open_text`.
        path: The file's path, for error messages.
        encoding: The encoding asked for, for error messages.

    Example:
    >>> reader = LineReader(io.StringIO("a\nb\n"), "t.csv")
    >>> next(reader), reader.line
    ('a\n', 1)

    """

    def __init__(self, handle: IO[str], path: PathLike, encoding: str = "utf-8") -> None:
        self._handle = handle
        self.path = path
        self._encoding = encoding
        self._pushed: list[str] = []
        self.line = 0

    def __iter__(self) -> LineReader:
        return self

    def __next__(self) -> str:
        if self._pushed:
            text = self._pushed.pop()
        else:
            try:
                text = next(self._handle)
            except UnicodeDecodeError as error:
                raise bad_encoding_error(self.path, self._encoding, error) from None
        self.line += 1
        return text

    def push_back(self, text: str) -> None:
        r"""Return a line read too far, so that the next read yields it again.

        Args:
            text: The line last returned.

        Example:
        >>> reader = LineReader(io.StringIO("a\nb\n"), "t.csv")
        >>> reader.push_back(next(reader))
        >>> next(reader), reader.line
        ('a\n', 1)

        """
        self._pushed.append(text)
        self.line -= 1


def is_blank(fields: list[str]) -> bool:
    """Tell whether a parsed record is a blank line (as pandas skips them).

    Args:
        fields: A record from `csv.reader`.

    Returns:
        True for an empty or whitespace-only line.

    Example:
    >>> is_blank([]), is_blank(["  "]), is_blank(["", ""])
    (True, True, False)

    """
    return not fields or (len(fields) == 1 and not fields[0].strip())


def iter_records(
    reader: LineReader, delimiter: str = ","
) -> Iterator[tuple[int, int, list[str]]]:
    r"""Stream the non-blank records of a CSV file with their physical lines.

    Args:
        reader: The line source; records start at its next line.
        delimiter: The field separator.

    Yields:
        `(first_line, last_line, fields)` for each record, 1-based.

    Raises:
        AnnotationError: The file cannot be decoded, or the `csv` module rejects it.

    Example:
    >>> rows = iter_records(LineReader(io.StringIO('a,"b\nc"\nd,e\n'), "t.csv"))
    >>> list(rows)
    [(1, 2, ['a', 'b\nc']), (3, 3, ['d', 'e'])]

    """
    _ensure_field_limit()
    parser = csv.reader(reader, delimiter=delimiter)
    while True:
        start = reader.line + 1
        try:
            fields = next(parser)
        except StopIteration:
            return
        except csv.Error as error:
            problem = Problem(
                "bad_record",
                f"the CSV parser failed ({error}); expected RFC 4180 quoting "
                '(a field holding commas or quotes is wrapped in "..." with quotes doubled).',
                source=str(reader.path),
                row=start,
            )
            raise AnnotationError(problem.describe(), [problem]) from None
        if not is_blank(fields):
            yield start, reader.line, fields


def sniff_delimiter(header_line: str, wanted: str | None = None) -> str:
    """Guess the field separator of a header line (`,`, `;` or tab).

    Args:
        header_line: The header's text.
        wanted: A column name that must appear as a whole field, if known.

    Returns:
        The separator that splits the header into the most fields (or that
        isolates `wanted`), `","` by default.

    Example:
    >>> sniff_delimiter("filename;file_size;region_shape_attributes")
    ';'

    """
    best, best_count = ",", 0
    for delimiter in _DELIMITERS:
        names = [name.strip().strip('"').strip().lstrip("#").lower()
                 for name in header_line.split(delimiter)]
        if wanted is not None and wanted in names:
            return delimiter
        if len(names) > best_count:
            best, best_count = delimiter, len(names)
    return best


def _records(path: PathLike, encoding: str) -> Iterator[tuple[int, list[str], str]]:
    with open_text(path, encoding) as handle:
        reader = LineReader(handle, path, encoding)
        first = next(reader, "")
        while first and not first.strip():
            first = next(reader, "")
        delimiter = sniff_delimiter(first)
        if first:
            reader.push_back(first)
        for start, _end, fields in iter_records(reader, delimiter):
            yield start, fields, delimiter


def _frame_from_rows(rows: list[list[str]]) -> pd.DataFrame:
    header, body = rows[0], rows[1:]
    width = len(header)
    body = [(row + [""] * width)[:width] for row in body]
    frame = pd.DataFrame(body, columns=header, dtype=object)
    for column in frame.columns:
        numeric = pd.to_numeric(frame[column].replace("", None), errors="coerce")
        if numeric.notna().sum() == (frame[column] != "").sum():
            frame[column] = numeric
    return frame


def _parse_error(path: PathLike, encoding: str, error: Exception) -> AnnotationError:
    records = _records(path, encoding)
    _, header, _ = next(records)
    for line, fields, _ in records:
        if len(fields) > len(header):
            problem = Problem("bad_record", f"the record has {len(fields)} fields but the header "
                              f"has {len(header)}; expected one value per column (quote values "
                              "holding the separator).", source=str(path), row=line,
                              value=fields)
            return AnnotationError(problem.describe(), [problem])
    problem = Problem("bad_record", f"pandas cannot parse the table: {error}", source=str(path))
    return AnnotationError(problem.describe(), [problem])


def read_generic_csv(path: PathLike, *, encoding: str = "utf-8") -> pd.DataFrame:
    """Read a CSV table of any columns with pandas, indexed by physical line number.

    Args:
        path: The CSV file; its first non-blank record is the header. The
            separator (`,`, `;` or tab) is guessed from the header.
        encoding: The encoding used when the file has no byte-order mark.

    Returns:
        The table as pandas reads it, with index = the line at which each record
        starts (index name `"line"`), `attrs["source"] = str(path)` and
        `attrs["format"] = "csv"`.

    Raises:
        AnnotationError: The file is empty, cannot be decoded, or has a record
            with more fields than the header (named by its line).

    Example:
    >>> df = read_generic_csv("boxes.csv")  # doctest: +SKIP
    >>> df.index.name  # doctest: +SKIP
    'line'

    """
    lines, delimiter = [], ","
    for line, _fields, found in _records(path, encoding):
        lines.append(line)
        delimiter = found
    if not lines:
        problem = Problem("empty_file", "the file has no header; expected a CSV table.",
                          source=str(path))
        raise AnnotationError(problem.describe(), [problem])
    try:
        frame = pd.read_csv(path, encoding=text_encoding(path, encoding), sep=delimiter,
                            skip_blank_lines=True)
    except (ValueError, pd.errors.ParserError) as error:
        raise _parse_error(path, encoding, error) from None
    if len(frame) != len(lines) - 1:  # pandas and csv disagree on a record: trust csv
        frame = _frame_from_rows([fields for _, fields, _ in _records(path, encoding)])
    frame.index = pd.Index(lines[1:], name="line")
    frame.attrs["source"] = str(path)
    frame.attrs["format"] = "csv"
    return frame


def read_csv_text(text: str, delimiter: str = ",") -> list[list[str]]:
    r"""Parse CSV text held in memory (used for small embedded tables).

    Args:
        text: CSV text.
        delimiter: The field separator.

    Returns:
        The records, blank lines removed.

    Example:
    >>> read_csv_text('a,"b,c"\n')
    [['a', 'b,c']]

    """
    _ensure_field_limit()
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    return [row for row in rows if not is_blank(row)]
