"""What every VIA version shares: the `ViaRecord`, its cells, the CSV layout, and the table.

Every VIA layout (see `keras_roi_datagen.formats.via` for what each version
writes) is read into a stream of `ViaRecord`s holding a VIA-2-style shape dict,
and the stream into one table with a row per region (`records_to_frame`). This
module holds:

* the record, the standard VIA 1/2 column names, and the parsing of
  JSON-object cells (with the older and foreign spellings found in real
  files), with the helpers that turn a malformed record into an
  `AnnotationError` or a record carrying its `Problem`;
* the layout of a VIA CSV file of any version (`sniff_csv`, `read_layout`:
  VIA 3 comment lines, the VIA 1 `#filename` header or the VIA 2 header), and
  the columns a VIA file does not define (a `split` column added by a script,
  labels flattened out of `region_attributes`, a DataFrame's index saved by
  `to_csv`), kept in `ViaRecord.extra` and named by `ExtraColumns`;
* the one-row-per-region DataFrame: VIA's seven standard columns, then the
  file's extra columns, then one column per region-attribute key
  (`attribute_columns` keeps attribute columns from hiding the others).
"""

from __future__ import annotations

import ast
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from keras_roi_datagen import options
from keras_roi_datagen.errors import AnnotationError, Problem, raise_problems
from keras_roi_datagen.formats.csv import (
    LineReader,
    iter_records,
    open_text,
    read_csv_text,
    sniff_delimiter,
)

__all__ = [
    "EXPECTED",
    "STANDARD_COLUMNS",
    "VIA3_COLUMNS",
    "CsvLayout",
    "ExtraColumns",
    "OnError",
    "PathLike",
    "ViaRecord",
    "attribute_columns",
    "check_on_error",
    "fail",
    "parse_box_cell",
    "parse_object",
    "raise_missing",
    "raise_not_via_csv",
    "read_layout",
    "records_to_frame",
    "sniff_csv",
    "to_int",
]

PathLike = str | os.PathLike[str]
OnError = options.OnError

STANDARD_COLUMNS = (
    "filename", "file_size", "file_attributes", "region_count", "region_id",
    "region_shape_attributes", "region_attributes",
)
"""The columns of a VIA 2 CSV export, in its order."""
VIA3_COLUMNS = (
    "metadata_id", "file_list", "flags", "temporal_coordinates", "spatial_coordinates",
    "metadata",
)
EXPECTED = {
    "region_shape_attributes": 'a JSON object such as {"name":"rect","x":10,"y":20,'
                               '"width":30,"height":40}, or {} for an image without regions',
    "region_attributes": 'a JSON object such as {"label":"cat"}, or {}',
    "file_attributes": 'a JSON object such as {"caption":"..."}, or {}',
}
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class ViaRecord:
    """One region of interest (or one image without regions) read from a VIA file.

    Attributes:
        row: Where the record is: the 1-based physical line at which it starts
            (CSV), or a label `"<filename>#<k>"` with the 0-based region index
            (JSON; just `"<filename>"` for an image without regions).
        filename: The image file name (or URL) as written in the file.
        shape: The region shape as a VIA-2-style dict, e.g. `{"name": "rect",
            "x": 1, "y": 2, "width": 3, "height": 4}`; `{}` for an image
            without regions. Values are kept as found (not validated here).
        attributes: The region attributes, raw JSON values.
        file_attributes: The image's attributes, raw JSON values.
        region_id: The region's index within its image, when known.
        region_count: The number of regions of its image, when known.
        file_size: The image's size in bytes as VIA wrote it, when known.
        problem: Set (and everything else best-effort) when the record is
            malformed and the reader was asked to collect problems.
        extra: The row's top-level CSV columns that are not VIA's own (e.g. a
            `split` column added by a script, label columns flattened out of
            `region_attributes`, the index column of a DataFrame saved with
            `to_csv`): `{column name: cell text}`, cells as written in the file
            (unquoted, not stripped, not parsed). Always empty for JSON files.
            See `ExtraColumns` for how columns are named.

    Example:
    >>> r = ViaRecord(2, "a.jpg", {"name": "point", "cx": 1, "cy": 2}, {}, {})
    >>> r.has_region, r.extra
    (True, {})

    """

    row: int | str
    filename: str
    shape: dict[str, Any]
    attributes: dict[str, Any]
    file_attributes: dict[str, Any]
    region_id: int | None = None
    region_count: int | None = None
    file_size: int | None = None
    problem: Problem | None = field(default=None)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def has_region(self) -> bool:
        """Tell whether the record holds a region (its shape is not empty)."""
        return bool(self.shape)


def check_on_error(on_error: str) -> None:
    """Refuse an unknown `on_error` value (`options.check_on_error` decides).

    Args:
        on_error: `"raise"` or `"skip"` (`"collect"`, the readers' older word, is `"skip"`).

    Raises:
        ValueError: For any other value.

    Example:
    >>> check_on_error("skip")

    """
    options.check_on_error(on_error)


def fail(
    on_error: str, problem: Problem, filename: str = "", extra: dict[str, str] | None = None
) -> ViaRecord:
    """Raise a record's problem, or wrap it in a `ViaRecord` when collecting.

    Args:
        on_error: `"raise"` or `"skip"`.
        problem: What is wrong.
        filename: The image concerned, if known.
        extra: The row's extra columns, if known (see `ViaRecord.extra`).

    Returns:
        A record whose `problem` is set (only when collecting).

    Raises:
        AnnotationError: When `on_error` is `"raise"`.

    Example:
    >>> fail("skip", Problem("bad_record", "no file name", row=3)).row
    3

    """
    if on_error == "raise":
        raise AnnotationError(problem.describe(), [problem])
    return ViaRecord(problem.row, filename, {}, {}, {}, problem=problem, extra=extra or {})


def to_int(value: Any) -> int | None:
    """Read an integer leniently (`"12"`, `12.0`); `None` for blanks and junk.

    Args:
        value: A cell or JSON value.

    Returns:
        The integer, or `None`.

    Example:
    >>> to_int(" 7 "), to_int("-1"), to_int(""), to_int("n/a")
    (7, -1, None, None)

    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        digits = value.strip().removeprefix("-")
        if digits.isascii() and digits.isdigit():
            return int(value)
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return int(number) if math.isfinite(number) and number.is_integer() else None


def parse_object(value: Any, *, numbers: bool = False) -> dict[str, Any]:
    """Parse a JSON object from a cell, tolerating older and foreign spellings.

    Besides JSON, a Python dict literal (a DataFrame saved with `to_csv`) and
    the `key=value;` cells of VIA 1.0.0-beta (arrays as `[1:2:3]`) are read.

    Args:
        value: JSON text, an already parsed dict, or `None`/blank (meaning `{}`).
        numbers: Turn numeric `key=value;` values into numbers (shape cells).

    Returns:
        The object.

    Raises:
        ValueError: With the reason, when the text is not a JSON object.

    Example:
    >>> parse_object('{"name":"rect","x":1}')
    {'name': 'rect', 'x': 1}
    >>> parse_object("name=polygon;all_points_x=[1:2:3];", numbers=True)
    {'name': 'polygon', 'all_points_x': [1, 2, 3]}

    """
    if isinstance(value, dict):
        return value
    text = "" if value is None else str(value).strip()
    if not text or text == "{}":
        return {}
    try:
        parsed = _DECODER.decode(text)
    except json.JSONDecodeError as error:
        parsed = _python_literal(text)
        if parsed is None:
            parsed = _keyval_literal(text, numbers)
        if parsed is None:
            raise ValueError(f"{error.msg} at character {error.pos}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"found a JSON {type(parsed).__name__}, not an object")
    return parsed


def parse_box_cell(text: str) -> Any:
    """Parse a box cell of a table: a shape object or a list of four numbers, as text.

    Accepts what `parse_object` accepts for objects (JSON, a Python dict
    literal as `DataFrame.to_csv` writes it, VIA 1.0.0-beta `key=value;`),
    and a JSON or Python list or tuple of numbers (`"[1, 2, 3, 4]"`,
    `"(1, 2, 3, 4)"`).

    Args:
        text: The cell's text.

    Returns:
        The parsed dict or list.

    Raises:
        ValueError: With the JSON parser's reason, when no spelling fits.

    Example:
    >>> parse_box_cell("{'name': 'rect', 'x': 1}"), parse_box_cell("(1, 2, 3, 4)")
    ({'name': 'rect', 'x': 1}, [1, 2, 3, 4])

    """
    stripped = text.strip()
    if stripped.startswith("{"):
        return parse_object(stripped, numbers=True)
    try:
        return _DECODER.decode(stripped)
    except json.JSONDecodeError as error:
        if stripped.startswith(("[", "(")):
            try:
                value = ast.literal_eval(stripped)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                value = None
            if isinstance(value, (list, tuple)):
                return list(value)
        parsed = _keyval_literal(stripped, True)
        if parsed is not None:
            return parsed
        raise ValueError(f"{error.msg} at character {error.pos}") from None


def _python_literal(text: str) -> dict[str, Any] | None:
    if not text.startswith("{"):
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _number(text: str) -> Any:
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text and "e" not in text else number


def _keyval_literal(text: str, numbers: bool) -> dict[str, Any] | None:
    parts = [p for p in text.replace("\\;", ";").split(";") if p.strip()]
    if not parts or not all("=" in p for p in parts):
        return None
    out: dict[str, Any] = {}
    for part in parts:
        key, _, raw = part.partition("=")
        if raw.startswith("[") and raw.endswith("]"):
            out[key] = [_number(v) for v in raw[1:-1].split(":") if v != ""]
        else:
            out[key] = _number(raw) if numbers else raw
    return out


# The layout of a VIA CSV file (every version).


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


# The one-row-per-region table.

_HINT = "Pass on_error='skip' to leave the malformed rows out and list them in attrs['problems']."


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
        records: Records, read with `on_error="skip"`.
        source: The file, for `attrs["source"]`.
        fmt: The layout name, for `attrs["format"]`.
        index_name: `"line"` (CSV) or `"region"` (JSON).
        on_error: `"raise"` raises one `AnnotationError` listing every malformed
            record; `"skip"` drops them and lists them in `attrs["problems"]`.
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
