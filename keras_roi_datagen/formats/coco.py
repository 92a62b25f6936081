"""COCO object-detection JSON (`instances_*.json`), streamed.

What COCO writes (cocodataset.org "Data format", pycocotools `coco.py`):
`{"images": [{"id", "file_name", "width", "height"}], "annotations": [{"id",
"image_id", "category_id", "bbox": [x, y, w, h], "area", "iscrowd",
"segmentation"}], "categories": [{"id", "name", "supercategory"}]}`. `bbox` is
0-based float pixels (left, top, width, height); category ids have gaps;
`segmentation` is a list of polygons `[x0, y0, x1, y1, ...]` (several parts for
an occluded object) or, with `iscrowd: 1`, an RLE mask `{"counts", "size"}`.
Keypoint annotations add `keypoints: [x, y, v, ...]` (v = 0 not labelled).

Rows: the bounding box of the polygon parts when there are any (shape
`"polygon"`), else `bbox` (`"rect"`; `"rle"` for crowd masks); keypoint-only
annotations are points. The row label is the annotation's position in the
`annotations` array. Crowd regions are left out (reported) unless
`include_crowd=True`. Members are streamed one element at a time
(`json_stream`), so a file of 10^6 annotations does not become 10^6 dicts.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from keras_roi_datagen.errors import Problem, raise_problems
from keras_roi_datagen.formats.csv import text_encoding
from keras_roi_datagen.formats.json_stream import JsonStreamError, iter_object_members, stream_error
from keras_roi_datagen.formats.regions import PointBoxSize, check_on_error, points_xyxy

__all__ = ["read_coco", "sniff_coco"]

_EXPECTED = "a COCO JSON object with 'images', 'annotations' and 'categories'"
_HINT = "Pass on_error='skip' to leave the malformed annotations out and list them in attrs['problems']."
_SHAPES = ("rect", "polygon", "rle", "keypoints")


def sniff_coco(head: str) -> bool:
    """Tell whether a JSON file's head looks like COCO (an object with `images`/`annotations`).

    Args:
        head: The first characters of the file.

    Returns:
        True for a COCO file.

    Example:
    >>> sniff_coco('{"info": {}, "images": [{"id": 1')
    True

    """
    import re

    text = head.lstrip("\ufeff \t\r\n")
    return text.startswith("{") and "_via_" not in text and re.search(
        r'"(images|annotations|categories)"\s*:\s*\[', text) is not None


class _Annotations:
    """The annotations kept as arrays (a few dozen bytes each)."""

    def __init__(self) -> None:
        self.rows, self.ids = array("q"), array("q")
        self.image_ids, self.category_ids = array("q"), array("q")
        self.boxes, self.areas, self.scores = array("d"), array("d"), array("d")
        self.crowd, self.shapes = array("b"), array("b")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _polygon_box(segmentation: Any) -> tuple[float, float, float, float] | None:
    if not isinstance(segmentation, list) or not segmentation:
        return None
    parts = segmentation if isinstance(segmentation[0], list) else [segmentation]
    xs: list[float] = []
    ys: list[float] = []
    for part in parts:
        if not isinstance(part, list) or len(part) < 2 or len(part) % 2:
            raise ValueError("each polygon part must be a flat list [x0, y0, x1, y1, ...] of an "
                             "even number of values")
        numbers = [_number(v) for v in part]
        if any(v is None for v in numbers):
            raise ValueError("polygon coordinates must be numbers")
        xs.extend(numbers[0::2])  # type: ignore[arg-type]
        ys.extend(numbers[1::2])  # type: ignore[arg-type]
    return points_xyxy(xs, ys)


class _Reader:
    def __init__(self, path: str, include_crowd: bool, point_box_size: PointBoxSize) -> None:
        self.path, self.include_crowd, self.point_box_size = path, include_crowd, point_box_size
        self.images: dict[int, tuple[str, Any, Any]] = {}
        self.categories: dict[int, str] = {}
        self.ann = _Annotations()
        self.problems: list[Problem] = []
        self.seen: set[str] = set()

    def problem(self, kind: str, message: str, row: Any, column: str | None = None,
                value: Any = None, severity: str = "error") -> None:
        self.problems.append(Problem(kind, message, source=self.path, row=row, column=column,
                                     value=value, severity=severity))  # type: ignore[arg-type]

    def image(self, index: int, item: Any) -> None:
        label = f"images[{index}]"
        image_id = _int(item.get("id")) if isinstance(item, dict) else None
        name = item.get("file_name") if isinstance(item, dict) else None
        if image_id is None or not isinstance(name, str) or not name:
            self.problem("bad_record", "an image needs an integer 'id' and a 'file_name'; expected "
                         "{'id': 1, 'file_name': 'a.jpg', 'width': W, 'height': H}.", label,
                         "images", item)
            return
        self.images[image_id] = (name, item.get("width"), item.get("height"))

    def category(self, index: int, item: Any) -> None:
        category_id = _int(item.get("id")) if isinstance(item, dict) else None
        name = item.get("name") if isinstance(item, dict) else None
        if category_id is None or name is None:
            self.problem("bad_record", "a category needs an integer 'id' and a 'name'.",
                         f"categories[{index}]", "categories", item)
            return
        self.categories[category_id] = str(name)

    def annotation(self, index: int, item: Any) -> None:
        if not isinstance(item, dict):
            self.problem("bad_record", "an annotation must be an object.", index, "annotations", item)
            return
        image_id, category_id = _int(item.get("image_id")), _int(item.get("category_id"))
        for field, value in (("image_id", image_id), ("category_id", category_id)):
            if value is None:
                self.problem("bad_record", f"the annotation has no integer {field!r}; expected "
                             "e.g. {'image_id': 1, 'category_id': 3, 'bbox': [x, y, w, h]}.",
                             index, field, item.get(field))
                return
        crowd = bool(_int(item.get("iscrowd")) or 0)
        try:
            found = self._box(item, crowd)
        except ValueError as error:
            self.problem("bad_shape", f"{error}.", index, "segmentation", item.get("segmentation"))
            return
        if found is None:
            self.problem("bad_shape", "the annotation has neither a polygon 'segmentation' nor a "
                         "'bbox' of four numbers [x, y, width, height].", index, "bbox",
                         item.get("bbox"))
            return
        box, shape = found
        if box is None:
            self.problem("shape_point", f"a {shape!r} annotation has no area and was left out; "
                         "pass point_box_size=PIXELS to make a box around its points.", index,
                         "keypoints", severity="warning")
            return
        if crowd and not self.include_crowd:
            self.problem("crowd_region", "a crowd region (iscrowd=1) was left out; pass "
                         "include_crowd=True to keep it.", index, "iscrowd", 1, "warning")
            return
        ann = self.ann
        ann.rows.append(index)
        annotation_id = _int(item.get("id"))
        ann.ids.append(-1 if annotation_id is None else annotation_id)
        ann.image_ids.append(image_id)  # type: ignore[arg-type]
        ann.category_ids.append(category_id)  # type: ignore[arg-type]
        ann.boxes.extend(box)
        area = _number(item.get("area"))
        score = _number(item.get("score"))
        ann.areas.append(np.nan if area is None else area)
        ann.scores.append(np.nan if score is None else score)
        ann.crowd.append(int(crowd))
        ann.shapes.append(_SHAPES.index(shape))

    def _box(self, item: dict[str, Any], crowd: bool) -> tuple[Any, str] | None:
        segmentation = item.get("segmentation")
        if not crowd and isinstance(segmentation, list) and segmentation:
            return _polygon_box(segmentation), "polygon"
        bbox = item.get("bbox")
        if isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) is not None for v in bbox):
            x, y, w, h = (float(v) for v in bbox)
            return (x, y, x + w, y + h), "rle" if crowd else "rect"
        keypoints = item.get("keypoints")
        if isinstance(keypoints, list) and len(keypoints) >= 3:
            pts = [(keypoints[i], keypoints[i + 1]) for i in range(0, len(keypoints) - 2, 3)
                   if _number(keypoints[i + 2]) and _number(keypoints[i]) is not None]
            if self.point_box_size is None or not pts:
                return None, "keypoints"
            size = self.point_box_size
            bw, bh = (size, size) if isinstance(size, (int, float)) else size
            x0, y0, x1, y1 = points_xyxy([p[0] for p in pts], [p[1] for p in pts])
            return (x0 - bw / 2, y0 - bh / 2, x1 + bw / 2, y1 + bh / 2), "keypoints"
        return None


def _members(path: str, encoding: str) -> Iterator[tuple[str, int | None, Any]]:
    with open(path, encoding=text_encoding(path, encoding)) as handle:
        try:
            yield from iter_object_members(handle, ("images", "annotations", "categories"))
        except JsonStreamError as error:
            raise stream_error(path, error, _EXPECTED) from None


def _image_dir(path: str, names: list[str]) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    if not names:
        return folder
    # COCO's own layout: annotations/instances_val2017.json beside val2017/ (or images/val2017/).
    split = os.path.splitext(os.path.basename(path))[0].split("_", 1)[-1]
    parent = os.path.dirname(folder)
    for candidate in (folder, os.path.join(folder, "images"), os.path.join(parent, "images"),
                      os.path.join(parent, split), os.path.join(parent, "images", split)):
        if os.path.isfile(os.path.join(candidate, names[0])):
            return candidate
    return folder


def read_coco(
    path: str | os.PathLike[str], *, on_error: str = "raise", include_crowd: bool = False,
    point_box_size: PointBoxSize = None, encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read a COCO object-detection JSON file into the common region frame.

    Args:
        path: The JSON file.
        on_error: `"raise"` (default) or `"skip"`; see `read_annotations`.
        include_crowd: Keep `iscrowd=1` regions. Defaults to `False` (left
            out and reported as warnings).
        point_box_size: Size of the box made around keypoint-only
            annotations; `None` (default) leaves them out, reported.
        encoding: The encoding used when the file has no byte-order mark.

    Returns:
        The frame (see `keras_roi_datagen.formats.regions`), with columns
        `iscrowd`, `category_id`, `area`, `image_id`, `annotation_id`,
        `image_width`, `image_height` (and `score` for a file that has
        scores), indexed by position in `annotations` (index name
        `"annotation"`).

    Raises:
        AnnotationError: Invalid JSON, not COCO, or (when raising) malformed
            annotations, unknown image or category ids.

    Example:
    >>> df = read_coco("instances_val.json")  # doctest: +SKIP
    >>> df[["filename", "x", "y", "w", "h", "label"]].head()  # doctest: +SKIP

    """
    check_on_error(on_error)
    source = os.fspath(path)
    reader = _Reader(source, include_crowd, point_box_size)
    handlers = {"images": reader.image, "annotations": reader.annotation,
                "categories": reader.category}
    keys: list[str] = []
    for key, index, value in _members(source, encoding):
        keys.append(key)
        handler = handlers.get(key)
        if handler is not None and index is not None:
            handler(index, value)
    if "annotations" not in keys or "images" not in keys:
        problem = Problem("unknown_format", f"the JSON object is not COCO: it has no 'images' and "
                          f"'annotations' arrays; expected {_EXPECTED}.", source=source,
                          value=sorted(set(keys))[:8])
        raise_problems([problem])
    frame = _frame(reader, source)
    if on_error == "raise":
        raise_problems(reader.problems, _HINT)
    frame.attrs["problems"] = reader.problems
    return frame


def _frame(reader: _Reader, source: str) -> pd.DataFrame:
    ann = reader.ann
    boxes = np.frombuffer(ann.boxes, dtype=np.float64).reshape(-1, 4)
    image_ids = np.frombuffer(ann.image_ids, dtype=np.int64)
    category_ids = np.frombuffer(ann.category_ids, dtype=np.int64)
    rows = np.frombuffer(ann.rows, dtype=np.int64)
    keep = np.ones(len(rows), dtype=bool)
    ids = sorted(reader.images)
    names = np.array([reader.images[i][0] for i in ids] + [None], dtype=object)
    widths = np.array([_number(reader.images[i][1]) or np.nan for i in ids] + [np.nan])
    heights = np.array([_number(reader.images[i][2]) or np.nan for i in ids] + [np.nan])
    image_pos = np.searchsorted(np.array(ids, dtype=np.int64), image_ids)
    image_pos = np.minimum(image_pos, len(ids))
    known_image = (image_pos < len(ids)) & (
        np.array([*ids, 0], dtype=np.int64)[image_pos] == image_ids)
    cats = sorted(reader.categories)
    cat_names = np.array([reader.categories[c] for c in cats] + [None], dtype=object)
    cat_pos = np.minimum(np.searchsorted(np.array(cats, dtype=np.int64), category_ids), len(cats))
    known_cat = (cat_pos < len(cats)) & (np.array([*cats, 0], dtype=np.int64)[cat_pos]
                                         == category_ids)
    for i in np.flatnonzero(~known_image).tolist():
        reader.problem("missing_image", "the annotation's image_id is not in 'images'; expected "
                       f"one of the {len(ids)} image ids.", int(rows[i]), "image_id",
                       int(image_ids[i]))
    for i in np.flatnonzero(known_image & ~known_cat).tolist():
        reader.problem("missing_category", "the annotation's category_id is not in 'categories'; "
                       f"expected one of {cats[:20]}.", int(rows[i]), "category_id",
                       int(category_ids[i]))
    keep &= known_image & known_cat
    if keep.all():  # the usual case: views, not copies, of a million-row file's arrays
        keep = slice(None)  # type: ignore[assignment]
    image_pos, cat_pos = image_pos[keep], cat_pos[keep]
    box = boxes[keep]
    shapes = np.array(_SHAPES, dtype=object)[np.frombuffer(ann.shapes, dtype=np.int8)[keep]]
    index = pd.Index(rows[keep], name="annotation")
    data: dict[str, Any] = {
        "filename": names[image_pos], "x": box[:, 0], "y": box[:, 1],
        "w": box[:, 2] - box[:, 0], "h": box[:, 3] - box[:, 1], "label": cat_names[cat_pos],
        "shape": shapes, "iscrowd": np.frombuffer(ann.crowd, dtype=np.int8)[keep],
        "category_id": category_ids[keep], "area": np.frombuffer(ann.areas)[keep],
        "image_id": image_ids[keep], "annotation_id": np.frombuffer(ann.ids, dtype=np.int64)[keep],
        "image_width": widths[image_pos], "image_height": heights[image_pos],
    }
    scores = np.frombuffer(ann.scores)[keep]
    if len(scores) and not np.isnan(scores).all():
        data["score"] = scores
    frame = pd.DataFrame(data, index=index, copy=False)
    used = [str(n) for n in names[:1]] if len(names) > 1 else []
    annotated = set(np.unique(image_ids).tolist())
    without = [{"row": f"images[id={i}]", "filename": reader.images[i][0]}
               for i in ids if i not in annotated]
    frame.attrs.update(source=source, format="coco", image_dir=_image_dir(source, used),
                       problems=[], rows_without_regions=without,
                       categories={c: reader.categories[c] for c in cats})
    return frame
