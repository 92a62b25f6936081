"""The common region frame every annotation format is read into, and its geometry.

One row per region: `filename` (as the source names the image, relative to
the image folder), `x`, `y`, `w`, `h` (float pixels of the image as displayed,
origin top left; the box covers `[x, x+w) x [y, y+h)`), `label`, `shape` (the
original shape kind), then the format's own attributes. The index is the
source row label that errors cite (index name `"row"`), e.g.
`"annotations[17]"` (COCO) or `"train/a.txt:3"` (YOLO, file and line).

A `split` column (`SPLIT_COLUMN`) is there when the export says which split
each region belongs to (YOLO `data.yaml`, COCO `instances_<split>.json` or
split folders, CVAT subsets); its values are `"train"`, `"val"` or `"test"`
(`SPLITS`), the export's own spellings (`valid`, `Validation`, `train2017`,
...) mapped by `split_name`, and `None` for a region whose split is not one
of those.

`attrs`: `source`, `format`, `image_dir` (where the format keeps its
images), `problems` (every record left out, with its reason: errors, and
warnings for what was left out or changed on purpose: crowd regions, points,
clipped fractions) and `rows_without_regions`.

`RegionFrameBuilder` gathers rows and problems for a reader; the helpers turn
polygons, rotated rectangles, ellipses and points into bounding boxes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from keras_roi_datagen import options
from keras_roi_datagen.errors import Problem, raise_problems

__all__ = [
    "REGION_COLUMNS",
    "SPLITS",
    "SPLIT_COLUMN",
    "SPLIT_SPELLINGS",
    "OnError",
    "PointBoxSize",
    "RegionFrameBuilder",
    "check_on_error",
    "ellipse_xyxy",
    "is_region_frame",
    "points_xyxy",
    "rotated_rect_xyxy",
    "check_split",
    "select_split",
    "split_name",
]

REGION_COLUMNS = ("filename", "x", "y", "w", "h", "label", "shape")
OnError = options.OnError
PointBoxSize = float | tuple[float, float] | None
NORMALISED_TOLERANCE = 0.01
_HINT = "Pass on_error='skip' to leave the malformed records out and list them in attrs['problems']."

SPLIT_COLUMN = "split"
SPLITS = ("train", "val", "test")
"""The split names, in the order `RoiDataModule` numbers them (0 train, 1 val, 2 test)."""
_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val",
            "validation": "val", "dev": "val", "test": "test", "testing": "test"}
SPLIT_SPELLINGS = "train, val or test (also training, valid, validation, dev, testing, a year " \
    "suffix as in train2017, any case)"
"""What `split_name` accepts, for messages."""
_SPLIT_PATTERN = re.compile(r"([a-z]+)(?:[-_]?\d{2,4})?")


def split_name(value: Any) -> str | None:
    """The split an export's own spelling names: `"train"`, `"val"`, `"test"`, or `None`.

    Args:
        value: A split as an export spells it: a YOLO `data.yaml` key, a
            COCO file or folder name (`train2017`, `valid`), a CVAT subset
            (`Validation`), a table's split column value.

    Returns:
        The split, or `None` when `value` names none (e.g. CVAT's `default`).

    Example:
    >>> split_name("Validation"), split_name("train2017"), split_name("default")
    ('val', 'train', None)

    """
    if not isinstance(value, str):
        return None
    found = _SPLIT_PATTERN.fullmatch(value.strip().lower())
    return _ALIASES.get(found.group(1)) if found else None


def check_split(split: Any) -> str:
    """The split `split` names, or a `ValueError` saying which spellings are read.

    Example:
    >>> check_split("valid")
    'val'

    """
    wanted = split_name(split)
    if wanted is None:
        raise ValueError(f"`split` must be {SPLIT_SPELLINGS}. Received: split={split!r}")
    return wanted


def select_split(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    """The regions of one split of a region frame (its `split` column), with `attrs` kept.

    Problems and images without regions that name another split's row are
    left out too, so the result is what reading only that split gives.

    Args:
        frame: A region frame.
        split: A split, in any spelling `split_name` reads.

    Returns:
        The regions whose `split` is `split`.

    Raises:
        ValueError: `split` names no split, or the frame has no `split`
            column (its export says nothing about splits).

    Example:
    >>> f = pd.DataFrame({"filename": ["a.jpg", "b.jpg"], "split": ["train", "val"]})
    >>> select_split(f, "valid")["filename"].tolist()
    ['b.jpg']

    """
    wanted = check_split(split)
    if SPLIT_COLUMN not in frame.columns:
        raise ValueError(f"{frame.attrs.get('source', 'the table')!s} says nothing about splits (the "
                         f"region frame has no {SPLIT_COLUMN!r} column), so split={split!r} "
                         "cannot be read; read it whole.")
    keep = frame[SPLIT_COLUMN].map(split_name) == wanted
    selected = frame.loc[keep.to_numpy()].copy()
    selected.attrs = dict(frame.attrs)
    left_out = set(frame.index[~keep.to_numpy()].tolist())
    selected.attrs["problems"] = [p for p in frame.attrs.get("problems", [])
                                  if not _hashable(p.row) or p.row not in left_out]
    without = frame.attrs.get("rows_without_regions", [])
    selected.attrs["rows_without_regions"] = [
        r for r in without if r.get(SPLIT_COLUMN) is None or split_name(r[SPLIT_COLUMN]) == wanted]
    return selected


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def check_on_error(on_error: str) -> None:
    """Refuse an unknown `on_error` (`options.check_on_error` decides).

    Args:
        on_error: `"raise"`, `"skip"` (or its older synonym `"collect"`).

    Raises:
        ValueError: For any other value.

    Example:
    >>> check_on_error("skip")

    """
    options.check_on_error(on_error)


def is_region_frame(frame: pd.DataFrame) -> bool:
    """Tell whether a table has the common region frame's box columns (`x`, `y`, `w`, `h`).

    Args:
        frame: A table.

    Returns:
        True when it has the columns `x`, `y`, `w` and `h`.

    Example:
    >>> is_region_frame(pd.DataFrame(columns=["filename", "x", "y", "w", "h", "label"]))
    True

    """
    return all(c in frame.columns for c in ("x", "y", "w", "h"))


def points_xyxy(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float, float]:
    """The bounding box of points (a polygon's or polyline's vertices).

    Args:
        xs: The x coordinates.
        ys: The y coordinates, as many.

    Returns:
        `(left, top, right, bottom)`.

    Raises:
        ValueError: No points, or a different number of x and y values.

    Example:
    >>> points_xyxy([10, 30, 20], [5, 5, 25])
    (10.0, 5.0, 30.0, 25.0)

    """
    if not xs or len(xs) != len(ys):
        raise ValueError(f"expected as many x as y values, at least one; got {len(xs)} and {len(ys)}")
    fx, fy = [float(v) for v in xs], [float(v) for v in ys]
    return (min(fx), min(fy), max(fx), max(fy))


def rotated_rect_xyxy(
    x: float, y: float, w: float, h: float, degrees: float, about: str = "top_left"
) -> tuple[float, float, float, float]:
    """The bounding box of a rectangle turned clockwise (on screen, y down).

    Args:
        x: Left of the unrotated rectangle.
        y: Top of the unrotated rectangle.
        w: Width.
        h: Height.
        degrees: Clockwise rotation in degrees.
        about: The fixed point: `"top_left"` (Label Studio) or `"center"` (CVAT).

    Returns:
        `(left, top, right, bottom)`.

    Example:
    >>> tuple(round(v, 6) for v in rotated_rect_xyxy(10, 10, 20, 10, 90))
    (0.0, 10.0, 10.0, 30.0)

    """
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    ox, oy = (x, y) if about == "top_left" else (x + w / 2, y + h / 2)
    xs, ys = [], []
    for px, py in ((x, y), (x + w, y), (x + w, y + h), (x, y + h)):
        dx, dy = px - ox, py - oy
        xs.append(ox + dx * cos - dy * sin)
        ys.append(oy + dx * sin + dy * cos)
    return points_xyxy(xs, ys)


def ellipse_xyxy(
    cx: float, cy: float, rx: float, ry: float, radians: float = 0.0
) -> tuple[float, float, float, float]:
    """The bounding box of an ellipse turned by `radians`.

    Args:
        cx: Centre x.
        cy: Centre y.
        rx: Radius along x before rotation.
        ry: Radius along y before rotation.
        radians: Rotation.

    Returns:
        `(left, top, right, bottom)`.

    Example:
    >>> ellipse_xyxy(10, 10, 5, 2)
    (5.0, 8.0, 15.0, 12.0)

    """
    half_w = math.hypot(rx * math.cos(radians), ry * math.sin(radians))
    half_h = math.hypot(rx * math.sin(radians), ry * math.cos(radians))
    return (cx - half_w, cy - half_h, cx + half_w, cy + half_h)


class RegionFrameBuilder:
    """Gathers a reader's regions and problems, then builds the common frame.

    Args:
        source: The file or folder read, for messages and `attrs["source"]`.
        fmt: The format name, for `attrs["format"]`.
        on_error: `"raise"`: `frame()` raises one error listing every malformed
            record; `"skip"`: they are left out and listed in
            `attrs["problems"]`.
        point_box_size: `None` skips point annotations (reported as warnings);
            a size in pixels (or `(width, height)`) makes each a box centred on
            the point.

    Example:
    >>> b = RegionFrameBuilder("a.json", "coco")
    >>> b.add("annotations[0]", "a.jpg", (1, 2, 11, 22), "cat", "rect", iscrowd=0)
    >>> b.frame(".").loc["annotations[0]", ["x", "w"]].tolist()
    [1.0, 10.0]

    """

    def __init__(self, source: str, fmt: str, on_error: str = "raise",
                 point_box_size: PointBoxSize = None) -> None:
        check_on_error(on_error)
        self.source, self.fmt, self.on_error = source, fmt, on_error
        self.point_box_size = point_box_size
        self._rows: list[Any] = []
        self._columns: dict[str, list[Any]] = {c: [] for c in REGION_COLUMNS}
        self.problems: list[Problem] = []
        self.rows_without_regions: list[dict[str, Any]] = []
        self.splits: list[str] | None = None  # the splits the export names, when it names any

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, row: Any, filename: str, xyxy: Sequence[float], label: Any, shape: str,
            **attributes: Any) -> None:
        """Add one region given by its bounding box `(left, top, right, bottom)` in pixels."""
        x0, y0, x1, y1 = (float(v) for v in xyxy)
        values = {"filename": filename, "x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0,
                  "label": label, "shape": shape, **attributes}
        n = len(self._rows)
        for key, value in values.items():
            column = self._columns.get(key)
            if column is None:
                column = self._columns[key] = [None] * n
            column.append(value)
        for column in self._columns.values():
            if len(column) == n:
                column.append(None)
        self._rows.append(row)

    def add_point(self, row: Any, filename: str, points: Iterable[tuple[float, float]],
                  label: Any, shape: str, **attributes: Any) -> None:
        """Add a point (or keypoints) annotation: a box with `point_box_size`, else skipped."""
        pts = [(float(px), float(py)) for px, py in points]
        if self.point_box_size is None or not pts:
            self.warn("shape_point", f"a {shape!r} annotation has no area and was left out; pass "
                      "point_box_size=PIXELS to make a box around each point.", row, filename)
            return
        size = self.point_box_size
        bw, bh = (float(size), float(size)) if isinstance(size, (int, float)) else map(float, size)
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        x0, y0, x1, y1 = points_xyxy(xs, ys)
        self.add(row, filename, (x0 - bw / 2, y0 - bh / 2, x1 + bw / 2, y1 + bh / 2), label,
                 shape, **attributes)

    def error(self, kind: str, message: str, row: Any = None, path: str | None = None,
              column: str | None = None, value: Any = None, source: str | None = None) -> None:
        """Record a malformed record (left out)."""
        self.problems.append(Problem(kind, message, source=source or self.source, row=row,
                                     column=column, value=value, path=path))

    def warn(self, kind: str, message: str, row: Any = None, path: str | None = None,
             column: str | None = None, value: Any = None, source: str | None = None) -> None:
        """Record something left out or changed on purpose (not an error)."""
        self.problems.append(Problem(kind, message, source=source or self.source, row=row,
                                     column=column, value=value, path=path, severity="warning"))

    def clip_fractions(self, values: Sequence[float], scale: float, row: Any, filename: str,
                       column: str, source: str | None = None) -> list[float] | None:
        """Clip fractions of `scale` (1 or 100) a hair outside `[0, scale]`, with a warning.

        Returns:
            The clipped values, or `None` (an error is recorded) when one lies
            further outside than the tolerance (1% of the image).
        """
        tol = NORMALISED_TOLERANCE * scale
        if any(not math.isfinite(v) or v < -tol or v > scale + tol for v in values):
            self.error("box_outside_image", f"normalised coordinates must lie within [0, {scale:g}] "
                       f"(a hair outside is clipped); expected fractions of the image size.",
                       row, filename, column, list(values), source)
            return None
        clipped = [min(max(v, 0.0), scale) for v in values]
        if clipped != list(values):
            self.warn("box_clipped", f"normalised coordinates a hair outside [0, {scale:g}] were "
                      "clipped to the image.", row, filename, column, list(values), source)
        return clipped

    def frame(self, image_dir: str | None) -> pd.DataFrame:
        """Build the frame (raising when asked to and a record was malformed).

        With `splits` set (the export names its splits), the frame has a
        `split` column even when no region was read, and `attrs["splits"]`.
        """
        if self.on_error == "raise":
            raise_problems(self.problems, _HINT)
        if self.splits is not None:
            self._columns.setdefault(SPLIT_COLUMN, [None] * len(self._rows))
        data: dict[str, Any] = {}
        for key, column in self._columns.items():
            if key in ("x", "y", "w", "h"):
                data[key] = pd.Series(column, dtype="float64")
            else:
                data[key] = pd.Series(column, dtype=object)
        index = pd.Index(self._rows, name="row", dtype=object)
        frame = pd.DataFrame({k: v.set_axis(index) for k, v in data.items()}, index=index)
        frame.attrs.update(source=self.source, format=self.fmt, image_dir=image_dir,
                           problems=list(self.problems),
                           rows_without_regions=list(self.rows_without_regions))
        if self.splits is not None:
            frame.attrs["splits"] = [s for s in SPLITS if s in self.splits]
        return frame
