"""Exception classes and the `Problem` record they carry.

Every error this library raises about the user's data names where the problem is
(table file, row, column, image path), what was found and what was expected. The
same facts are kept as a `Problem` so that validation reports and skip records
can list them without parsing messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

Severity = Literal["error", "warning"]

_MAX_VALUE_CHARS = 120
_MAX_LISTED = 5


def _short(value: Any) -> str:
    text = repr(value)
    if len(text) > _MAX_VALUE_CHARS:
        text = text[: _MAX_VALUE_CHARS - 3] + "..."
    return text


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one row (or with the whole table).

    Args:
        kind: Machine-readable kind, e.g. `"missing_file"`, `"bad_json"`,
            `"box_outside_image"`. Stable across versions; tests and reports
            group by it.
        message: What is wrong and what was expected, as a sentence.
        source: The annotation table's file, when it came from a file.
        row: The row's label: the line number in a CSV file, the index label of
            a DataFrame row, or `None` for a table-wide problem.
        column: The column holding the offending value, if any.
        value: The offending value, if any.
        path: The image file concerned, if any.
        severity: `"error"` (the row cannot be used) or `"warning"` (the row is
            used; something was normalised or looks suspicious).
        details: Extra text such as a worker's traceback.

    Example:
    >>> p = Problem("missing_file", "image file not found", source="via.csv",
    ...             row=7, column="filename", value="a.jpg")
    >>> p.location()
    "via.csv, line 7, column 'filename'"
    """

    kind: str
    message: str
    source: str | None = None
    row: Any = None
    column: str | None = None
    value: Any = None
    path: str | None = None
    severity: Severity = "error"
    details: str | None = field(default=None, compare=False)

    def location(self) -> str:
        """Returns where the problem is, e.g. `"via.csv, line 7, column 'filename'"`."""
        parts = []
        if self.source:
            parts.append(str(self.source))
        if self.row is not None:
            is_line = self.source is not None and str(self.source).lower().endswith(".csv")
            parts.append(f"line {self.row}" if is_line else f"row {self.row!r}")
        if self.column:
            parts.append(f"column {self.column!r}")
        if self.path and (not self.column or self.kind.startswith("image")):
            parts.append(f"image {self.path!r}")
        return ", ".join(parts) if parts else "table"

    def describe(self) -> str:
        """Returns the full one-line description used in error messages."""
        text = f"{self.location()}: {self.message}"
        if self.value is not None and "Received" not in self.message:
            text += f" Received: {_short(self.value)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """Returns the problem as a JSON-friendly dict."""
        record = asdict(self)
        for key in ("row", "value"):
            if record[key] is not None and not isinstance(record[key], (int, float, str, bool)):
                record[key] = str(record[key])
        return record


_E = TypeVar("_E", bound="RoiDatagenError")


class RoiDatagenError(Exception):
    """Base class of every error raised by keras-roi-datagen.

    Args:
        message: The error message.
        problems: The `Problem` records behind the error (may be empty).
    """

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems: list[Problem] = list(problems)

    @classmethod
    def from_problems(cls: type[_E], problems: Sequence[Problem], hint: str = "") -> _E:
        """Builds an error listing the first few problems and how many there are.

        Args:
            problems: At least one problem.
            hint: A sentence appended to the message, e.g. how to skip bad rows.

        Returns:
            An instance of `cls`.
        """
        problems = list(problems)
        lines = [p.describe() for p in problems[:_MAX_LISTED]]
        message = lines[0] if len(problems) == 1 else (
            f"{len(problems)} problems found:\n  - " + "\n  - ".join(lines)
        )
        if len(problems) > _MAX_LISTED:
            message += f"\n  ... and {len(problems) - _MAX_LISTED} more."
        details = [p.details for p in problems[:1] if p.details]
        if details:
            message += "\n\nOriginal traceback:\n" + details[0]
        if hint:
            message += "\n" + hint
        return cls(message, problems)


class AnnotationError(RoiDatagenError, ValueError):
    """The annotation table is malformed: missing columns, bad JSON, unknown shapes."""


class BoxError(AnnotationError):
    """A region's box is unusable: degenerate, not finite, or outside the image."""


class LabelError(AnnotationError):
    """A label is missing, ambiguous, or not in the given vocabulary."""


class ImageReadError(RoiDatagenError, OSError):
    """An image file is missing, unreadable, truncated, or too large to decode."""


class StorageError(RoiDatagenError, OSError):
    """A file behind a URL (`s3://`, `gs://`, `https://`, ...) could not be read.

    Raised after transient failures were retried (see `keras_roi_datagen.storage`).

    Args:
        message: The error message; it names the URL.
        problems: The `Problem` records behind the error (may be empty).
        url: The URL that failed.
        kind: `"storage_not_found"`, `"storage_denied"` or `"storage_failed"`.
        attempts: How many requests were made.
    """

    def __init__(self, message: str, problems: Sequence[Problem] = (), *, url: str | None = None,
                 kind: str = "storage_failed", attempts: int = 1) -> None:
        super().__init__(message, problems)
        self.url, self.kind, self.attempts = url, kind, attempts

    def __reduce__(self) -> tuple[Any, ...]:
        return (_storage_error, (str(self), self.problems, self.url, self.kind, self.attempts))


def _storage_error(message: str, problems: Sequence[Problem], url: str | None, kind: str,
                   attempts: int) -> StorageError:
    return StorageError(message, problems, url=url, kind=kind, attempts=attempts)


class WorkerError(RoiDatagenError, RuntimeError):
    """A worker thread or process failed, died, or stopped answering."""


class StateMismatchError(RoiDatagenError, ValueError):
    """A saved iteration state does not fit the dataset it is restored into."""


class UnsupportedSetupError(RoiDatagenError, RuntimeError):
    """The training setup cannot serve this dataset exactly once; the message says why."""


def error_class_for(kind: str) -> type[RoiDatagenError]:
    """Returns the exception class used for a problem kind.

    Args:
        kind: A `Problem.kind`.

    Returns:
        The most specific exception class for that kind.
    """
    if kind.startswith("storage"):
        return StorageError
    if kind.startswith("image") or kind in ("missing_file", "path_outside_image_dir", "remote_file"):
        return ImageReadError
    if kind.startswith("box") or kind.startswith("shape"):
        return BoxError
    if kind.startswith("label"):
        return LabelError
    if kind.startswith("worker"):
        return WorkerError
    return AnnotationError


def raise_problems(problems: Sequence[Problem], hint: str = "") -> None:
    """Raises the error matching the first problem, listing all of them.

    Args:
        problems: Problems of severity `"error"`; nothing is raised when empty.
        hint: A sentence appended to the message.

    Raises:
        RoiDatagenError: The subclass chosen by `error_class_for` of the first problem.
    """
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise error_class_for(errors[0].kind).from_problems(errors, hint)
