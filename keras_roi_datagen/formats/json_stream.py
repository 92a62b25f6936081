"""Stream the members of a large JSON object without holding the file's objects.

`iter_object_members` reads a JSON object (`{"images": [...], "annotations":
[...], ...}`) in chunks and yields `(key, index, value)`: for the keys named in
`arrays`, one item per array element (`index` is its position); for any other
key, the whole value with `index = None`. Elements are decoded one at a time
with `json.JSONDecoder.raw_decode` over a sliding text buffer, so peak memory
is the buffer plus what the caller keeps, not the whole parsed file (a COCO
file of 10^6 annotations costs several GB through `json.load`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator
from typing import IO, Any

from keras_roi_datagen.errors import AnnotationError, Problem

__all__ = ["JsonStreamError", "iter_object_members"]

_CHUNK = 1 << 20
_WHITESPACE = " \t\r\n"
_DELIMITER = re.compile(r"[\s,\]}]")


class JsonStreamError(ValueError):
    """Invalid JSON met while streaming; `line` and `column` say where (1-based)."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"{message} at line {line}, column {column}")
        self.line, self.column = line, column


class _Buffer:
    """A text window over a handle that keeps count of the lines it let go of."""

    def __init__(self, handle: IO[str]) -> None:
        self.handle, self.text, self.pos = handle, "", 0
        self.eof, self.line_base, self.dropped = False, 1, 0

    def more(self) -> bool:
        if self.eof:
            return False
        chunk = self.handle.read(_CHUNK)
        if not chunk:
            self.eof = True
            return False
        if self.pos > _CHUNK:
            self.line_base += self.text.count("\n", 0, self.pos)
            self.dropped += self.pos
            self.text, self.pos = self.text[self.pos:], 0
        self.text += chunk
        return True

    def where(self, pos: int | None = None) -> tuple[int, int]:
        pos = self.pos if pos is None else pos
        line = self.line_base + self.text.count("\n", 0, pos)
        start = self.text.rfind("\n", 0, pos) + 1
        return line, pos - start + 1

    def fail(self, message: str, pos: int | None = None) -> JsonStreamError:
        return JsonStreamError(message, *self.where(pos))

    def peek(self) -> str:
        """Skip whitespace; return the next character ('' at the end)."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return ""

    def expect(self, chars: str, what: str) -> str:
        found = self.peek()
        if not found or found not in chars:
            raise self.fail(f"expected {what}, found {found or 'the end of the file'!r}")
        self.pos += 1
        return found

    def value(self, decoder: json.JSONDecoder) -> Any:
        """Decode the next complete JSON value."""
        self.peek()
        while True:
            try:
                value, end = decoder.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as error:
                if self.more():
                    continue
                raise self.fail(error.msg, error.pos) from None
            # A bare number (or true/false/null) may go on in the next chunk: accept it
            # only once a delimiter follows it; anything else ends at its bracket or quote.
            if (not isinstance(value, (dict, list, str)) and not self.eof
                    and _DELIMITER.search(self.text, end) is None and self.more()):
                continue
            self.pos = end
            return value


def iter_object_members(
    handle: IO[str], arrays: Collection[str]
) -> Iterator[tuple[str, int | None, Any]]:
    """Stream a top-level JSON object's members, array elements one by one.

    Args:
        handle: A text handle at the start of the JSON text.
        arrays: Keys whose array values are streamed element by element.

    Yields:
        `(key, index, value)`: `index` is the element's position for keys in
        `arrays` whose value is a non-empty array; `None` for any other member
        and for an empty array (then `value` is the whole member).

    Raises:
        JsonStreamError: The text is not a JSON object (with line and column).

    Example:
    >>> import io
    >>> list(iter_object_members(io.StringIO('{"a": [1, {"b": 2}], "c": 3}'), ["a"]))
    [('a', 0, 1), ('a', 1, {'b': 2}), ('c', None, 3)]

    """
    decoder = json.JSONDecoder()
    buf = _Buffer(handle)
    if buf.peek() == "\ufeff":
        buf.pos += 1
    buf.expect("{", "a JSON object '{'")
    if buf.peek() == "}":
        return
    while True:
        if buf.peek() != '"':
            raise buf.fail(f"expected a member name, found {buf.peek() or 'the end'!r}")
        key = buf.value(decoder)
        buf.expect(":", "':'")
        if key in arrays and buf.peek() == "[":
            buf.pos += 1
            index = 0
            if buf.peek() == "]":
                buf.pos += 1
                yield key, None, []
            else:
                while True:
                    yield key, index, buf.value(decoder)
                    index += 1
                    if buf.expect(",]", "',' or ']' after an array element") == "]":
                        break
        else:
            yield key, None, buf.value(decoder)
        if buf.expect(",}", "',' or '}' after a member") == "}":
            break
    if buf.peek():
        raise buf.fail("extra data after the JSON object")


def stream_error(path: str, error: JsonStreamError, expected: str) -> AnnotationError:
    """Build the `AnnotationError` (kind `"bad_json"`) for invalid JSON met while streaming.

    Args:
        path: The file.
        error: The scanner's error.
        expected: What the file should have been, e.g. `"a COCO JSON file"`.

    Returns:
        The error, naming the file, line and column.

    Example:
    >>> stream_error("a.json", JsonStreamError("Expecting value", 3, 7), "COCO").problems[0].row
    3

    """
    problem = Problem("bad_json", f"the file is not valid JSON ({error}); expected {expected}.",
                      source=path, row=error.line)
    return AnnotationError(problem.describe(), [problem])
