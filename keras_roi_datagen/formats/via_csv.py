"""VIA CSV files: the layout of every version, extra columns, and VIA 1/2 records.

`sniff_csv` reads a CSV file's head (VIA 3 comment lines, the VIA 1 `#filename`
header or the VIA 2 header) and tells which layout it is; VIA 3 records are
then read by `keras_roi_datagen.formats.via3`, VIA 1 and 2 records here, with
the repairs real files need (trailing commas and spreadsheet padding, a comma
in an unquoted file name, cells cut at Excel's 32767 characters).

Columns a VIA file does not define (a `split` column added by a script, labels
flattened out of `region_attributes`, a DataFrame's index saved by `to_csv`)
are kept in `ViaRecord.extra`, named by `ExtraColumns`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from keras_roi_datagen.errors import AnnotationError, Problem
from keras_roi_datagen.formats.csv import (
    LineReader,
    iter_records,
    open_text,
    read_csv_text,
    sniff_delimiter,
)
from keras_roi_datagen.formats.via_common import (
    EXPECTED,
    STANDARD_COLUMNS,
    PathLike,
    ViaRecord,
    fail,
    parse_object,
    to_int,
)

__all__ = [
    "VIA3_COLUMNS",
    "CsvLayout",
    "ExtraColumns",
    "iter_via12_csv",
    "raise_missing",
    "raise_not_via_csv",
    "read_layout",
    "sniff_csv",
]

VIA3_COLUMNS = (
    "metadata_id", "file_list", "flags", "temporal_coordinates", "spatial_coordinates",
    "metadata",
)
_EXCEL_CELL_LIMIT = 32767  # Excel cuts longer cells when it re-saves a CSV


@dataclass
class CsvLayout:
    """What the first lines of a CSV file say about it.

    Attributes:
        kind: `"via1-csv"`, `"via2-csv"`, `"via3-csv"`, or `None` (not VIA).
        delimiter: The field separator.
        columns: The header's column names, normalised (lower case, no `#`).
        header_line: The line of the header (`None` for an empty file).
        comments: VIA 3 `# KEY = value` comment lines, keys upper-cased.
        names: The header's column names as written (surrounding whitespace
            and VIA 1's leading `#` removed); same length as `columns`, or
            empty (then `columns` are used).

    Example:
    >>> CsvLayout("via2-csv", columns=list(STANDARD_COLUMNS), header_line=1).kind
    'via2-csv'

    """

    kind: str | None
    delimiter: str = ","
    columns: list[str] = field(default_factory=list)
    header_line: int | None = None
    comments: dict[str, str] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)


def _normalise(name: str) -> str:
    return name.strip().strip('"').strip().lstrip("#").strip().lower()


def _layout(
    kind: str | None, delimiter: str, written: Sequence[str], line: int | None,
    comments: dict[str, str] | None = None,
) -> CsvLayout:
    names = [name.strip().strip('"').strip() for name in written]
    if names:
        names[0] = names[0].lstrip("#").strip()
    return CsvLayout(kind, delimiter, [_normalise(n) for n in written], line, comments or {},
                     names)


def _comment_entry(text: str) -> tuple[str, str]:
    stripped = text.strip()
    if stripped.startswith('"'):  # a spreadsheet quoted the comment cell
        rows = read_csv_text(stripped)
        stripped = ",".join(rows[0]) if rows else stripped
    key, sep, value = stripped.lstrip("#").strip().partition("=")
    if not sep:
        return "", ""
    return key.strip().upper(), value.strip().rstrip(",").strip()


def _read_preamble(reader: LineReader) -> list[tuple[int, str]]:
    comments = []
    for text in reader:
        stripped = text.strip()
        if not stripped:
            continue
        if not stripped.lstrip('"').startswith("#"):
            reader.push_back(text)
            break
        comments.append((reader.line, text))
        if "region_shape_attributes" in stripped.lower() or "CSV_HEADER" in stripped.upper():
            break  # VIA 1 header or VIA 3 column list: records follow
    return comments


def _via3_delimiter(reader: LineReader, width: int) -> str:
    first = next(reader, None)
    if first is None:
        return ","
    reader.push_back(first)
    for delimiter in (",", "\t", ";"):  # rows re-saved by a spreadsheet may use tabs
        rows = read_csv_text(first, delimiter)
        if rows and len(rows[0]) >= width:
            return delimiter
    return ","


def read_layout(reader: LineReader) -> CsvLayout:
    r"""Read a CSV file's comment lines and header, leaving `reader` at the first record.

    Args:
        reader: The file's lines, from the start.

    Returns:
        The layout.

    Example:
    >>> import io
    >>> read_layout(LineReader(io.StringIO("a,b\n1,2\n"), "t.csv")).columns
    ['a', 'b']

    """
    comments = _read_preamble(reader)
    entries = {key: value for key, value in map(_comment_entry, (t for _, t in comments)) if key}
    if "CSV_HEADER" in entries:
        written = [n for n in entries["CSV_HEADER"].split(",") if n.strip()]
        line = next(n for n, t in comments if "CSV_HEADER" in _comment_entry(t)[0])
        return _layout("via3-csv", _via3_delimiter(reader, len(written)), written, line, entries)
    for line, text in reversed(comments):
        if "region_shape_attributes" in text.lower():
            delimiter = sniff_delimiter(text, "region_shape_attributes")
            rows = read_csv_text(text.strip()) if delimiter == "," else [text.split(delimiter)]
            kind = "via1-csv" if "region_shape_attributes" in map(_normalise, rows[0]) else None
            return _layout(kind, delimiter, rows[0], line)
    first = next(reader, None)
    if first is None:
        return CsvLayout(None)
    reader.push_back(first)
    delimiter = sniff_delimiter(first, "region_shape_attributes")
    start, _end, fields = next(iter_records(reader, delimiter), (reader.line + 1, 0, []))
    kind = "via2-csv" if "region_shape_attributes" in map(_normalise, fields) else None
    return _layout(kind, delimiter, fields, start)


def sniff_csv(path: PathLike, encoding: str = "utf-8") -> CsvLayout:
    """Read only the head of a CSV file and tell whether (and which) VIA layout it is.

    Args:
        path: The CSV file.
        encoding: The encoding used when the file has no byte-order mark.

    Returns:
        The layout; `kind` is `None` for a table that is not a VIA export.

    Raises:
        AnnotationError: The head cannot be decoded.

    Example:
    >>> sniff_csv("via_region_data.csv").kind  # doctest: +SKIP
    'via1-csv'

    """
    with open_text(path, encoding) as handle:
        return read_layout(LineReader(handle, path, encoding))


class ExtraColumns:
    """Name the columns of a VIA CSV file that VIA does not define, and read them.

    * Every header column whose normalised name is not one of VIA's own (the
      seven of VIA 1/2, `STANDARD_COLUMNS`, or the six of VIA 3's
      `# CSV_HEADER`, `VIA3_COLUMNS`) is an extra column, named as written in
      the header (whitespace around it removed, case kept). A header cell that
      is blank gets pandas' name `Unnamed: <i>` (`i` the 0-based position);
      blank header cells at the end of the header are padding, not columns.
    * A name already taken (by an earlier extra column, or by one of the
      DataFrame's standard columns, which a VIA 3 extra column can hit) gets
      pandas' suffix `.1`, `.2`, ...
    * A row's cells beyond the header are kept, as `Unnamed: <i>`, when they
      are not blank.

    Args:
        layout: The file's layout.

    Example:
    >>> layout = CsvLayout("via2-csv", columns=["", *STANDARD_COLUMNS, "split", "split"])
    >>> extra = ExtraColumns(layout)
    >>> extra.names
    ['Unnamed: 0', 'split', 'split.1']
    >>> extra.read(["7", "a.jpg", "1", "{}", "1", "0", "{}", "{}", "train", " x ", "9"])
    {'Unnamed: 0': '7', 'split': 'train', 'split.1': ' x ', 'Unnamed: 10': '9'}

    """

    def __init__(self, layout: CsvLayout) -> None:
        own = set(VIA3_COLUMNS if layout.kind == "via3-csv" else STANDARD_COLUMNS)
        columns = layout.columns
        written = layout.names if len(layout.names) == len(columns) else columns
        self._width = len(columns)
        while self._width and not columns[self._width - 1]:
            self._width -= 1
        self._taken = set(STANDARD_COLUMNS)
        self._named: dict[int, str] = {}
        for i in range(self._width):
            if columns[i] not in own:
                self._named[i] = self._claim(written[i] or f"Unnamed: {i}")
        self._beyond: dict[int, str] = {}

    @property
    def names(self) -> list[str]:
        """The header's extra columns, in header order."""
        return list(self._named.values())

    def _claim(self, name: str) -> str:
        unique, k = name, 0
        while unique in self._taken:
            k += 1
            unique = f"{name}.{k}"
        self._taken.add(unique)
        return unique

    def read(self, fields: Sequence[str]) -> dict[str, str]:
        """Pick a row's extra cells, as written.

        Args:
            fields: The row's fields, aligned with the header.

        Returns:
            `{name: cell}` in column order; a cell missing from a short row is
            left out.

        """
        out = {name: fields[i] for i, name in self._named.items() if i < len(fields)}
        for i in range(self._width, len(fields)):
            if fields[i].strip():
                if i not in self._beyond:
                    self._beyond[i] = self._claim(f"Unnamed: {i}")
                out[self._beyond[i]] = fields[i]
        return out


def raise_missing(path: PathLike, layout: CsvLayout, column: str) -> None:
    """Raise the error for a header that lacks a required column.

    Args:
        path: The file.
        layout: Its layout.
        column: The missing column.

    Raises:
        AnnotationError: Kind `"missing_column"`, always.

    """
    problem = Problem("missing_column", f"the header has no {column!r} column; expected "
                      f"{', '.join(STANDARD_COLUMNS)}.", source=str(path),
                      row=layout.header_line, column=column, value=",".join(layout.columns))
    raise AnnotationError(problem.describe(), [problem])


def raise_not_via_csv(path: PathLike, layout: CsvLayout) -> None:
    """Raise the error for a CSV file that is empty or not a VIA export.

    Args:
        path: The file.
        layout: Its layout (`kind` is `None`).

    Raises:
        AnnotationError: Kind `"empty_file"` or `"missing_column"`, always.

    """
    if layout.header_line is None:
        problem = Problem("empty_file", "the file is empty; expected a VIA CSV export.",
                          source=str(path))
    else:
        problem = Problem(
            "missing_column", "this CSV file is not a VIA export: its header has no "
            "'region_shape_attributes' column (nor VIA 3's '# CSV_HEADER' line).",
            source=str(path), row=layout.header_line, column="region_shape_attributes",
            value=",".join(layout.columns))
    raise AnnotationError(problem.describe(), [problem])


# VIA 1 and 2 records.


def _looks_like_object(text: str) -> bool:
    stripped = text.strip()
    return stripped.startswith("{") and stripped.endswith("}")


def _repair(fields: list[str], index: Mapping[str, int], width: int, delimiter: str) -> list[str]:
    while len(fields) > width and not fields[-1].strip():
        fields = fields[:-1]  # VIA 1.0.0-1.0.2 trailing comma, spreadsheet padding
    extra, shape_at = len(fields) - width, index["region_shape_attributes"]
    if (extra > 0 and index.get("filename") == 0 and not _looks_like_object(fields[shape_at])
            and _looks_like_object(fields[shape_at + extra])):
        # VIA writes the file name unquoted: a comma in it splits it into several fields.
        fields = [delimiter.join(fields[: extra + 1]), *fields[extra + 1:]]
    return fields


def _via12_record(
    source: str, layout: CsvLayout, index: Mapping[str, int], extras: ExtraColumns,
    record: tuple[int, int, list[str]], on_error: str,
) -> ViaRecord:
    start, end, fields = record
    if len(fields) != len(layout.columns):
        fields = _repair(fields, index, len(layout.columns), layout.delimiter)
    count = len(fields)
    extra = extras.read(fields)

    def cell(name: str) -> str | None:
        i = index.get(name, count)
        return fields[i] if i < count else None

    span = f" (the record spans lines {start}-{end})" if end > start else ""
    if len(fields) <= max(index["filename"], index["region_shape_attributes"]):
        return fail(on_error, Problem(
            "bad_record", f"the record has {len(fields)} fields; expected {len(layout.columns)} "
            f"({', '.join(layout.columns)}){span}.", source=source, row=start,
            value=layout.delimiter.join(fields)), extra=extra)
    filename = cell("filename") or ""
    if not filename.strip():
        return fail(on_error, Problem("bad_record", f"the file name is empty; expected the "
                                      f"image's file name{span}.", source=source, row=start,
                                      column="filename", value=filename), extra=extra)
    parsed = {}
    for column in ("file_attributes", "region_shape_attributes", "region_attributes"):
        text = cell(column)
        try:
            parsed[column] = parse_object(text, numbers=column == "region_shape_attributes")
        except ValueError as error:
            if text is not None and len(text) == _EXCEL_CELL_LIMIT:
                span += "; the cell has exactly 32767 characters: a spreadsheet truncated it"
            return fail(on_error, Problem(
                "bad_json", f"{column} is not a JSON object ({error}); expected "
                f"{EXPECTED[column]}{span}.", source=source, row=start, column=column,
                value=text, path=filename), filename, extra)
    return ViaRecord(
        start, filename, parsed["region_shape_attributes"], parsed["region_attributes"],
        parsed["file_attributes"], region_id=to_int(cell("region_id")),
        region_count=to_int(cell("region_count")), file_size=to_int(cell("file_size")),
        extra=extra,
    )


def iter_via12_csv(
    path: PathLike, layout: CsvLayout, reader: LineReader, on_error: str
) -> Iterator[ViaRecord]:
    """Stream the records of a VIA 1 or 2 CSV file.

    Args:
        path: The file, for error messages.
        layout: Its layout, from `read_layout`.
        reader: The file's lines, at the first record.
        on_error: `"raise"` or `"collect"`, as in `iter_via_records`.

    Yields:
        One record per line (or per record spanning several lines).

    Raises:
        AnnotationError: The header lacks `filename` or
            `region_shape_attributes`, or a record is malformed (when raising).

    """
    index: dict[str, int] = {}
    for i, name in enumerate(layout.columns):
        index.setdefault(name, i)
    for column in ("filename", "region_shape_attributes"):
        if column not in index:
            raise_missing(path, layout, column)
    extras = ExtraColumns(layout)
    for record in iter_records(reader, layout.delimiter):
        yield _via12_record(str(path), layout, index, extras, record, on_error)
