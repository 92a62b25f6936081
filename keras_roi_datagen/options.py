"""The vocabularies of user options and the checks of their values: one owner for each.

Every argument that takes one of a fixed set of words (`interpolation`,
`color_mode`, `border`, `on_error`, ...) has its words here, and every place
that accepts it (`RoiDataset`, `RoiDataModule`, the readers, the command
line's `choices=`) checks it with `check_choice` against the same tuple, so a
word added here is accepted everywhere and a message is written once.

This module imports nothing from the package: it is the bottom of the import
graph, below `errors` users.

Example:
>>> check_choice("color_mode", "rgb", COLOR_MODES)
'rgb'
>>> check_on_error("collect")  # the readers' old spelling of "skip"
'skip'
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

import numpy as np

__all__ = [
    "ASPECT_RATIOS",
    "BORDERS",
    "COLOR_MODES",
    "DATA_FORMATS",
    "DTYPES",
    "INTERPOLATIONS",
    "LABEL_MODES",
    "ON_ERROR",
    "OUTPUT_FORMATS",
    "SPLIT_BY",
    "UNSEEN_LABELS",
    "OnError",
    "check_choice",
    "check_dtype",
    "check_flag",
    "check_fraction",
    "check_image_size",
    "check_non_negative_int",
    "check_on_error",
    "check_positive_int",
    "check_seed",
    "check_shuffle_window",
    "check_unseen_labels",
    "channels_of",
]

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "hamming", "box", "lanczos")
"""Resampling filters (Pillow's, by Keras's names); `"bilinear"` is the default.

In the order `RoiDataset`'s message has always listed them."""

COLOR_MODES: Mapping[str, int] = {"rgb": 3, "grayscale": 1, "rgba": 4}
"""Colour modes of the crops and their channel counts."""

ASPECT_RATIOS = ("squash", "crop", "pad")
"""How a window's shape meets `image_size`: stretch, trim the window, or pad the crop."""

BORDERS = ("constant", "reflect", "clip")
"""Policies for window parts outside the image: zeros, mirrored image, or a window clipped to it."""

LABEL_MODES = ("categorical", "int")
"""How a label column becomes a target: one-hot `float32`, or the class index as `int32`."""

OUTPUT_FORMATS = ("tuple", "dict")
"""How the heads of a batch are packed: in `y_cols` order, or keyed by column."""

DATA_FORMATS = ("channels_last", "channels_first")
"""Keras's image data formats."""

DTYPES = ("float32", "float16", "float64", "uint8")
"""dtypes `x` may have."""

ON_ERROR = ("raise", "skip")
"""What happens to a bad row: an error naming it, or the row left out and listed."""

OnError = Literal["raise", "skip"]

UNSEEN_LABELS = ("raise", "oov")
"""What a validation or test label absent from training becomes: an error, or an extra class."""

SPLIT_BY = ("image", "row")
"""What a split keeps together: every region of an image, or nothing (rows alone)."""

_C = TypeVar("_C")
# Old spellings still accepted, each with the word it means now.
_ON_ERROR_ALIASES = {"collect": "skip"}
_UNSEEN_ALIASES = {"error": "raise"}


def check_choice(name: str, value: _C, choices: Sequence[Any] | Mapping[Any, Any]) -> _C:
    """Checks that an option is one of its words and returns it.

    Args:
        name: The argument's name, as the user wrote it.
        value: The value given.
        choices: The accepted words (a tuple, or a mapping's keys).

    Returns:
        `value`.

    Raises:
        ValueError: Naming the accepted words and the value received.

    Example:
    >>> check_choice("border", "reflect", BORDERS)
    'reflect'
    """
    if not isinstance(value, (str, int, type(None))) or value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}")
    return value


def _alias(name: str, value: Any, aliases: Mapping[str, str]) -> Any:
    if isinstance(value, str) and value in aliases:
        warnings.warn(f"`{name}={value!r}` is deprecated; pass {name}={aliases[value]!r} "
                      "(the same behaviour).", DeprecationWarning, stacklevel=3)
        return aliases[value]
    return value


def check_on_error(on_error: Any) -> OnError:
    """Checks `on_error` and returns it (`"collect"`, the readers' old word, is `"skip"`).

    Args:
        on_error: `"raise"` or `"skip"`.

    Returns:
        `"raise"` or `"skip"`.

    Raises:
        ValueError: For any other value.
    """
    value: Any = "skip" if on_error == "collect" else on_error  # the readers' word, no warning
    checked: OnError = check_choice("on_error", value, ON_ERROR)
    return checked


def check_unseen_labels(value: Any) -> str:
    """Checks `unseen_labels` (`"raise"` or `"oov"`; the old `"error"` means `"raise"`).

    Raises:
        ValueError: For any other value.
    """
    checked: str = check_choice("unseen_labels", _alias("unseen_labels", value, _UNSEEN_ALIASES),
                                UNSEEN_LABELS)
    return checked


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_positive_int(name: str, value: Any) -> int:
    """Checks that an option is an integer of at least 1 and returns it as an `int`.

    Raises:
        ValueError: Naming the rule and the value received.

    Example:
    >>> check_positive_int("batch_size", 32)
    32
    """
    if not _is_int(value) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def check_non_negative_int(name: str, value: Any) -> int:
    """Checks that an option is an integer of at least 0 and returns it as an `int`.

    Raises:
        ValueError: Naming the rule and the value received.
    """
    if not _is_int(value) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative integer. Received: {name}={value!r}")
    return int(value)


def check_seed(seed: Any) -> int | None:
    """Checks a seed: `None` or an integer in `[0, 2**63)`.

    Raises:
        ValueError: For anything else.
    """
    if seed is None:
        return None
    if not _is_int(seed) or not 0 <= seed < 2**63:
        raise ValueError(f"`seed` must be None or an integer in [0, 2**63). Received: seed={seed!r}")
    return int(seed)


def check_image_size(image_size: Any) -> tuple[int, int]:
    """Checks `image_size`, `(height, width)` of two positive integers.

    Raises:
        ValueError: For anything else.
    """
    if (not isinstance(image_size, (tuple, list)) or len(image_size) != 2
            or not all(_is_int(v) and v > 0 for v in image_size)):
        raise ValueError(
            "`image_size` must be a tuple of two positive integers (height, width). "
            f"Received: image_size={image_size!r}")
    return (int(image_size[0]), int(image_size[1]))


def check_dtype(dtype: Any) -> np.dtype:
    """Checks the dtype of `x` (a name or a NumPy dtype) and returns the NumPy dtype.

    Raises:
        ValueError: For a dtype not in `DTYPES`.
    """
    try:
        resolved: np.dtype = np.dtype(dtype)
    except TypeError:
        resolved = np.dtype(object)
    if resolved.name not in DTYPES:
        raise ValueError(f"`dtype` must be one of {list(DTYPES)}. Received: dtype={dtype!r}")
    return resolved


def check_shuffle_window(window: Any) -> int:
    """Checks `shuffle_window` and returns it as rows (0: rows shuffled alone).

    Raises:
        ValueError: For anything but `None` or a positive integer.
    """
    if window is None:
        return 0
    if not _is_int(window) or window < 1:
        raise ValueError("`shuffle_window` must be a positive integer (rows) or None. "
                         f"Received: shuffle_window={window!r}")
    return 0 if window == 1 else int(window)


def check_fraction(name: str, value: Any, high: float = 1.0) -> float:
    """Checks a number in `[0, high]` and returns it as a `float`.

    Raises:
        ValueError: For anything else.
    """
    if (not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool)
            or not math.isfinite(float(value)) or not 0 <= float(value) <= high):
        raise ValueError(f"`{name}` must be a number in [0, {high}]. Received: {name}={value!r}")
    return float(value)


def check_flag(name: str, value: Any) -> bool:
    """Checks a `True`/`False` option (a NumPy bool too) and returns it as a `bool`.

    Raises:
        ValueError: For anything else, `0` and `1` included.

    Example:
    >>> check_flag("horizontal_flip", np.bool_(True))
    True
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"`{name}` must be True or False. Received: {name}={value!r}")
    return bool(value)

def channels_of(color_mode: str) -> int:
    """Returns the channels of a colour mode (`"rgb"`: 3, `"grayscale"`: 1, `"rgba"`: 4)."""
    return COLOR_MODES[check_choice("color_mode", color_mode, COLOR_MODES)]
