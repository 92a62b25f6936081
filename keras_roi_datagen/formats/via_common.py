"""What every VIA reader shares: the `ViaRecord` they yield and lenient cell parsing.

Every VIA layout (see `keras_roi_datagen.formats.via` for what each version
writes) is read into a stream of `ViaRecord`s holding a VIA-2-style shape dict.
This module holds that record, the standard VIA 1/2 column names, the parsing
of JSON-object cells (with the older and foreign spellings found in real
files), and the helpers that turn a malformed record into an `AnnotationError`
or a record carrying its `Problem`.
"""

from __future__ import annotations

import ast
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from keras_roi_datagen.errors import AnnotationError, Problem

__all__ = [
    "EXPECTED",
    "STANDARD_COLUMNS",
    "OnError",
    "PathLike",
    "ViaRecord",
    "check_on_error",
    "fail",
    "parse_box_cell",
    "parse_object",
    "to_int",
]

PathLike = str | os.PathLike[str]
OnError = Literal["raise", "collect"]

STANDARD_COLUMNS = (
    "filename", "file_size", "file_attributes", "region_count", "region_id",
    "region_shape_attributes", "region_attributes",
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
            See `extra_columns` in `keras_roi_datagen.formats.via_csv` for how
            columns are named.

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
    """Refuse an unknown `on_error` value.

    Args:
        on_error: `"raise"` or `"collect"`.

    Raises:
        ValueError: For any other value.

    Example:
    >>> check_on_error("collect")

    """
    if on_error not in ("raise", "collect"):
        raise ValueError(
            f"`on_error` must be 'raise' or 'collect'. Received: on_error={on_error!r}"
        )


def fail(
    on_error: str, problem: Problem, filename: str = "", extra: dict[str, str] | None = None
) -> ViaRecord:
    """Raise a record's problem, or wrap it in a `ViaRecord` when collecting.

    Args:
        on_error: `"raise"` or `"collect"`.
        problem: What is wrong.
        filename: The image concerned, if known.
        extra: The row's extra columns, if known (see `ViaRecord.extra`).

    Returns:
        A record whose `problem` is set (only when collecting).

    Raises:
        AnnotationError: When `on_error` is `"raise"`.

    Example:
    >>> fail("collect", Problem("bad_record", "no file name", row=3)).row
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
