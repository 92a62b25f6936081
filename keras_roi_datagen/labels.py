"""Label vocabularies: the classes of one label column and their encoding.

A `LabelVocabulary` maps each class of a label column (strings, integers, ...)
to an index. Built from a training table it is sorted and deterministic; given
by the user it is used as is, and a value outside it is an error naming the
row (or, with `oov=True`, maps to one extra out-of-vocabulary index).

Label values are normalised before lookup, the same way everywhere: surrounding
whitespace is stripped from strings ("cat " is "cat"), integral floats become
integers (pandas turns integer columns with gaps into floats), and a VIA
checkbox attribute such as `{"red": true, "blue": false}` becomes its single
checked option.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from keras_roi_datagen.options import LABEL_MODES

__all__ = ["LabelMode", "LabelValueError", "LabelVocabulary", "encode_labels", "missing_label_error",
           "normalize_label"]

LabelMode = Literal["categorical", "int"]


class LabelValueError(ValueError):
    """A label value cannot be used; `kind` is the problem kind."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def missing_label_error() -> LabelValueError:
    """The error of a missing label value (`None`, NaN, NA)."""
    return LabelValueError("label_missing", "the label is missing (empty).")


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def normalize_label(value: Any) -> Hashable:
    """Returns the canonical form of one label value.

    Args:
        value: A raw value from the table.

    Returns:
        A stripped string, an int, a float, or a bool.

    Raises:
        LabelValueError: With kind `"label_missing"` for empty values and
            `"label_ambiguous"` for lists or checkboxes with several options.

    Example:
    >>> normalize_label(" cat ")
    'cat'
    >>> normalize_label({"red": True, "blue": False})
    'red'
    """
    if isinstance(value, np.generic):
        value = value.item()
    if _is_missing(value):
        raise missing_label_error()
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise LabelValueError("label_missing", "the label is missing (empty string).")
        return text
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LabelValueError("label_not_finite", f"the label {value!r} is not a finite number.")
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        chosen = [str(k).strip() for k, v in value.items() if v]
        if len(chosen) == 1:
            return chosen[0]
        if not chosen:
            raise LabelValueError("label_missing", "no option of the checkbox label is checked.")
        raise LabelValueError(
            "label_ambiguous", f"several options of the checkbox label are checked: {chosen}."
        )
    if isinstance(value, (list, tuple)):
        raise LabelValueError(
            "label_ambiguous", f"the label is a list ({value!r}); one value per region is expected."
        )
    raise LabelValueError("label_unsupported", f"labels of type {type(value).__name__} are not supported.")


def _sort_key(value: Hashable) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, str(value))


def _check_kinds(labels: Iterable[Hashable], name: str | None) -> None:
    """Refuses a column mixing booleans with numbers, which Python equates (True == 1)."""
    flags = [label for label in labels if isinstance(label, bool)]
    numbers = [label for label in labels
               if isinstance(label, (int, float)) and not isinstance(label, bool)]
    if flags and numbers:
        raise LabelValueError(
            "label_mixed_kinds",
            f"label column {name!r} mixes booleans and numbers, for example {flags[0]!r} and "
            f"{numbers[0]!r}; Python treats True as 1 and False as 0, so they would become one "
            "class. Convert the column to one kind (e.g. strings) first.")


class LabelVocabulary:
    """The ordered classes of one label column.

    Args:
        classes: The classes, in index order. Values are normalised (see the
            module docstring); duplicates after normalisation are an error.
        name: The label column, used in messages. Defaults to `None`.
        oov: Whether values outside `classes` map to an extra last index
            (`len(classes)`) instead of being an error. Defaults to `False`.

    Example:
    >>> vocab = LabelVocabulary.from_values(["dog", "cat", "dog"], name="name")
    >>> vocab.classes, vocab.index("dog")
    (('cat', 'dog'), 1)
    >>> LabelVocabulary.from_json(vocab.to_json()) == vocab
    True
    """

    def __init__(self, classes: Iterable[Any], name: str | None = None, oov: bool = False) -> None:
        normalized = tuple(normalize_label(c) for c in classes)
        _check_kinds(normalized, name)
        if len(set(normalized)) != len(normalized):
            seen: set[Hashable] = set()
            dupes = [c for c in normalized if c in seen or seen.add(c)]  # type: ignore[func-returns-value]
            raise ValueError(f"Vocabulary {name!r} lists classes more than once: {dupes}")
        self.classes: tuple[Hashable, ...] = normalized
        self.name = name
        self.oov = bool(oov)
        self._lookup = {c: i for i, c in enumerate(normalized)}

    @classmethod
    def from_values(
        cls, values: Iterable[Any], name: str | None = None, oov: bool = False
    ) -> LabelVocabulary:
        """Builds a sorted vocabulary from the values seen in a table.

        Args:
            values: Raw label values (normalised here; missing ones are an error).
            name: The label column.
            oov: See the class docstring.

        Returns:
            A vocabulary whose classes are sorted: booleans, then numbers, then
            strings, each in natural order.
        """
        # Keyed by kind too: Python's True == 1, so a plain set would merge them.
        unique = {(isinstance(label, bool), label): label
                  for label in (normalize_label(v) for v in values)}
        _check_kinds(unique.values(), name)
        return cls(sorted(unique.values(), key=_sort_key), name=name, oov=oov)

    @property
    def num_classes(self) -> int:
        """Width of the encoding: the classes, plus one when `oov` is on."""
        return len(self.classes) + int(self.oov)

    def __len__(self) -> int:
        return len(self.classes)

    def __contains__(self, value: Any) -> bool:
        try:
            label = normalize_label(value)
        except LabelValueError:
            return False
        index = self._lookup.get(label)
        return index is not None and isinstance(label, bool) == isinstance(self.classes[index], bool)

    def lookup(self, label: Hashable) -> int | None:
        """Returns the index of an already normalised label, or `None` if unknown."""
        index = self._lookup.get(label)
        if index is not None and isinstance(label, bool) != isinstance(self.classes[index], bool):
            index = None  # True == 1 in Python, but not as labels
        if index is None and self.oov:
            return len(self.classes)
        return index

    def index(self, value: Any) -> int:
        """Returns the index of a raw label value.

        Args:
            value: A raw label value.

        Returns:
            Its index.

        Raises:
            LabelValueError: With kind `"label_unknown"` if the value is not a
                class and `oov` is off.
        """
        found = self.lookup(normalize_label(value))
        if found is None:
            raise LabelValueError(
                "label_unknown",
                f"label {value!r} is not in the vocabulary of {self.name!r} "
                f"({self._preview()}).",
            )
        return found

    def decode(self, indices: Sequence[int] | np.ndarray) -> list[Hashable]:
        """Maps indices back to classes (`"<oov>"` for the out-of-vocabulary index)."""
        return [self.classes[i] if i < len(self.classes) else "<oov>" for i in np.asarray(indices).tolist()]

    def _preview(self) -> str:
        shown = ", ".join(repr(c) for c in self.classes[:10])
        more = f", ... ({len(self.classes)} in all)" if len(self.classes) > 10 else ""
        return f"expected one of {shown}{more}"

    def to_dict(self) -> dict[str, Any]:
        """Returns the vocabulary as a JSON-friendly dict."""
        return {"name": self.name, "classes": list(self.classes), "oov": self.oov}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelVocabulary:
        """Rebuilds a vocabulary from `to_dict()` output."""
        return cls(data["classes"], name=data.get("name"), oov=bool(data.get("oov", False)))

    def to_json(self) -> str:
        """Returns the vocabulary as JSON text (round-trips through `from_json`)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> LabelVocabulary:
        """Rebuilds a vocabulary from `to_json()` output."""
        return cls.from_dict(json.loads(text))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelVocabulary):
            return NotImplemented
        return (self.classes, self.name, self.oov) == (other.classes, other.name, other.oov)

    def __hash__(self) -> int:
        return hash((self.classes, self.name, self.oov))

    def __repr__(self) -> str:
        oov = ", oov=True" if self.oov else ""
        return f"LabelVocabulary(name={self.name!r}, classes={list(self.classes)!r}{oov})"


def encode_labels(codes: np.ndarray, num_classes: int, label_mode: LabelMode) -> np.ndarray:
    """Encodes class indices as the model expects them.

    Args:
        codes: Integer class indices, shape `(batch,)`.
        num_classes: Width of the one-hot encoding.
        label_mode: `"categorical"` for one-hot `float32` of shape
            `(batch, num_classes)`, `"int"` for `int32` of shape `(batch,)`.

    Returns:
        The encoded labels.

    Example:
    >>> encode_labels(np.array([1, 0]), 3, "categorical").tolist()
    [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    """
    if label_mode == "int":
        return np.asarray(codes, dtype=np.int32)
    if label_mode == "categorical":
        out = np.zeros((len(codes), num_classes), dtype=np.float32)
        out[np.arange(len(codes)), codes] = 1.0
        return out
    raise ValueError(f"`label_mode` must be one of {LABEL_MODES}. Received: label_mode={label_mode!r}")
