"""Box geometry: box formats, VIA shapes to bounding boxes, clipping, validity.

Boxes travel through the library as `float64` arrays of shape `(n, 4)` in
`xyxy` order (left, top, right, bottom). Pixel boxes are in the coordinates of
the image as displayed (after EXIF orientation), as VGG Image Annotator shows it;
relative boxes are fractions of the displayed width and height.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "BoxFormat",
    "ShapeError",
    "box_from_values",
    "box_problem",
    "clip_box",
    "shape_to_xyxy",
    "to_pixel_xyxy",
]


class BoxFormat(str, enum.Enum):
    """How four box numbers are to be read.

    - `xywh`: left, top, width, height in pixels (VIA `rect`; the default).
    - `xyxy`: left, top, right, bottom in pixels.
    - `rel_xywh`, `rel_xyxy`: the same, as fractions of the image's width and height.

    The enum also accepts its string values: `BoxFormat("xyxy")`.
    """

    XYWH = "xywh"
    XYXY = "xyxy"
    REL_XYWH = "rel_xywh"
    REL_XYXY = "rel_xyxy"

    @property
    def relative(self) -> bool:
        """Whether the numbers are fractions of the image size."""
        return self in (BoxFormat.REL_XYWH, BoxFormat.REL_XYXY)

    @classmethod
    def parse(cls, value: BoxFormat | str) -> BoxFormat:
        """Returns the `BoxFormat` for `value`, with a clear error for unknown names.

        Args:
            value: A `BoxFormat` or one of its string values.

        Returns:
            The matching `BoxFormat`.

        Raises:
            ValueError: If `value` is not a known format.
        """
        try:
            return cls(value)
        except ValueError:
            known = ", ".join(repr(f.value) for f in cls)
            raise ValueError(
                f"`box_format` must be one of {known}. Received: box_format={value!r}"
            ) from None


class ShapeError(ValueError):
    """A shape or box value cannot be turned into a box; `kind` says why."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


_SHAPE_KEYS: dict[str, tuple[str, ...]] = {
    "rect": ("x", "y", "width", "height"),
    "circle": ("cx", "cy", "r"),
    "ellipse": ("cx", "cy", "rx", "ry"),
    "polygon": ("all_points_x", "all_points_y"),
    "polyline": ("all_points_x", "all_points_y"),
}
_SHAPE_ALIASES = {"rectangle": "rect", "poly": "polygon"}


def _number(shape: Mapping[str, Any], key: str) -> float:
    value = shape[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ShapeError("box_not_a_number", f"shape key {key!r} must be a number, got {value!r}.")
    try:
        return float(value)
    except ValueError:
        raise ShapeError(
            "box_not_a_number", f"shape key {key!r} must be a number, got {value!r}."
        ) from None


def _points(shape: Mapping[str, Any], key: str) -> np.ndarray:
    values = shape[key]
    if not isinstance(values, (list, tuple)) or not values:
        raise ShapeError("shape_bad_points", f"{key!r} must be a non-empty list of numbers.")
    try:
        return np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise ShapeError(
            "box_not_a_number", f"{key!r} must contain only numbers, got {values!r}."
        ) from None


def shape_to_xyxy(shape: Mapping[str, Any] | str) -> tuple[float, float, float, float]:
    """Turns a VIA region shape into its axis-aligned bounding box.

    `rect` is taken as is; `circle` and `ellipse` (with optional rotation `theta`
    in radians, as VIA 2 writes it) become the box that encloses them;
    `polygon` and `polyline` the box of their points. `point` has no area and is
    refused.

    Args:
        shape: A VIA `region_shape_attributes` dict, or its JSON text.

    Returns:
        `(left, top, right, bottom)` in pixels.

    Raises:
        ShapeError: With `kind` `"shape_unknown"`, `"shape_point"`,
            `"shape_missing_key"`, `"shape_bad_points"` or `"box_not_a_number"`.

    Example:
    >>> shape_to_xyxy({"name": "circle", "cx": 10, "cy": 20, "r": 5})
    (5.0, 15.0, 15.0, 25.0)
    """
    if isinstance(shape, str):
        try:
            shape = json.loads(shape)
        except json.JSONDecodeError as exc:
            raise ShapeError("bad_json", f"shape is not valid JSON ({exc.msg}).") from None
    if not isinstance(shape, Mapping):
        raise ShapeError("shape_unknown", f"shape must be a JSON object, got {shape!r}.")
    if not shape:
        raise ShapeError("shape_empty", "the region has no shape (empty '{}').")
    name = str(shape.get("name", "rect" if "width" in shape else "")).strip().lower()
    name = _SHAPE_ALIASES.get(name, name)
    if name == "point":
        raise ShapeError("shape_point", "a 'point' region has no area; draw a box around it.")
    if name not in _SHAPE_KEYS:
        known = ", ".join(sorted(_SHAPE_KEYS))
        raise ShapeError(
            "shape_unknown", f"unknown shape name {shape.get('name')!r}; expected one of {known}."
        )
    missing = [key for key in _SHAPE_KEYS[name] if key not in shape]
    if missing:
        raise ShapeError(
            "shape_missing_key", f"{name!r} shape lacks key(s) {missing}; it has {sorted(shape)}."
        )
    if name == "rect":
        x, y = _number(shape, "x"), _number(shape, "y")
        return (x, y, x + _number(shape, "width"), y + _number(shape, "height"))
    if name == "circle":
        cx, cy, r = (_number(shape, k) for k in ("cx", "cy", "r"))
        return (cx - r, cy - r, cx + r, cy + r)
    if name == "ellipse":
        cx, cy, rx, ry = (_number(shape, k) for k in ("cx", "cy", "rx", "ry"))
        theta = _number(shape, "theta") if "theta" in shape else 0.0
        half_w = math.hypot(rx * math.cos(theta), ry * math.sin(theta))
        half_h = math.hypot(rx * math.sin(theta), ry * math.cos(theta))
        return (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
    xs, ys = _points(shape, "all_points_x"), _points(shape, "all_points_y")
    if xs.size != ys.size:
        raise ShapeError(
            "shape_bad_points",
            f"all_points_x has {xs.size} values but all_points_y has {ys.size}.",
        )
    return (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))


def box_from_values(values: Sequence[Any], box_format: BoxFormat | str) -> tuple[float, ...]:
    """Converts four numbers in `box_format` to `xyxy` (pixels or fractions).

    Args:
        values: Four numbers (or numeric strings).
        box_format: How to read them.

    Returns:
        `(left, top, right, bottom)`, in the same unit as the input.

    Raises:
        ShapeError: If there are not four numbers.

    Example:
    >>> box_from_values([10, 20, 30, 40], "xywh")
    (10.0, 20.0, 40.0, 60.0)
    """
    fmt = BoxFormat.parse(box_format)
    if len(values) != 4:
        raise ShapeError("box_not_a_number", f"a box needs 4 numbers, got {len(values)}.")
    try:
        a, b, c, d = (float(v) for v in values)
    except (TypeError, ValueError):
        raise ShapeError("box_not_a_number", f"box values must be numbers, got {values!r}.") from None
    if fmt in (BoxFormat.XYWH, BoxFormat.REL_XYWH):
        return (a, b, a + c, b + d)
    return (a, b, c, d)


def box_problem(xyxy: Sequence[float], relative: bool = False) -> tuple[str, str] | None:
    """Checks a box that does not depend on the image: finite, positive area.

    Args:
        xyxy: `(left, top, right, bottom)`.
        relative: Whether the box is in fractions of the image size (then a box
            wholly outside `[0, 1]` is refused too).

    Returns:
        `None` when the box is usable, else `(kind, message)`.

    Example:
    >>> box_problem((0, 0, 0, 5))
    ('box_degenerate', 'box has zero or negative width or height (width 0, height 5).')
    """
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        return ("box_not_finite", "box coordinates must be finite numbers (no NaN or inf).")
    width, height = x1 - x0, y1 - y0
    if width <= 0 or height <= 0:
        return (
            "box_degenerate",
            f"box has zero or negative width or height (width {width:g}, height {height:g}).",
        )
    if relative and (x1 <= 0 or y1 <= 0 or x0 >= 1 or y0 >= 1):
        return ("box_outside_image", "relative box lies wholly outside the image ([0, 1]).")
    return None


def to_pixel_xyxy(
    xyxy: Sequence[float], relative: bool, width: int, height: int
) -> tuple[float, float, float, float]:
    """Scales a relative box to pixels of an image of `width` x `height`.

    Args:
        xyxy: `(left, top, right, bottom)`.
        relative: Whether `xyxy` is in fractions of the image size.
        width: Image width in pixels.
        height: Image height in pixels.

    Returns:
        The box in pixels.
    """
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    if relative:
        return (x0 * width, y0 * height, x1 * width, y1 * height)
    return (x0, y0, x1, y1)


def clip_box(
    xyxy: Sequence[float], width: int, height: int
) -> tuple[float, float, float, float] | None:
    """Clips a pixel box to the image; `None` when nothing of it is inside.

    Args:
        xyxy: `(left, top, right, bottom)` in pixels.
        width: Image width in pixels.
        height: Image height in pixels.

    Returns:
        The clipped box, or `None` if the box lies wholly outside the image or
        the part inside has no area.

    Example:
    >>> clip_box((-10, -10, 50, 50), 40, 30)
    (0.0, 0.0, 40.0, 30.0)
    """
    x0 = min(max(float(xyxy[0]), 0.0), float(width))
    y0 = min(max(float(xyxy[1]), 0.0), float(height))
    x1 = min(max(float(xyxy[2]), 0.0), float(width))
    y1 = min(max(float(xyxy[3]), 0.0), float(height))
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return None
    return (x0, y0, x1, y1)
