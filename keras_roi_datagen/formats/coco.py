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
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from keras_roi_datagen.errors import Problem, raise_problems
from keras_roi_datagen.formats.csv import text_encoding
from keras_roi_datagen.formats.json_stream import JsonStreamError, iter_object_members, stream_error
from keras_roi_datagen.formats.regions import PointBoxSize, check_on_error, points_xyxy

__all__ = ["CocoIds", "image_dir", "read_coco", "scan_coco", "sniff_coco"]

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


_PLAIN_NUMBERS = frozenset({int, float})  # exact types: a bool is not a coordinate


def _polygon_box(segmentation: Any) -> tuple[float, float, float, float] | None:
    if not isinstance(segmentation, list) or not segmentation:
        return None
    parts = segmentation if isinstance(segmentation[0], list) else [segmentation]
    if all(isinstance(part, list) and len(part) >= 2 and not len(part) % 2
           and _PLAIN_NUMBERS.issuperset(map(type, part)) for part in parts):
        # The usual case, without a check per value (the same box as below).
        left = [float(v) for part in parts for v in part[0::2]]
        top = [float(v) for part in parts for v in part[1::2]]
        return (min(left), min(top), max(left), max(top))
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
    reader = scan_coco(source, include_crowd=include_crowd, point_box_size=point_box_size,
                       encoding=encoding)
    frame = _frame(reader, source)
    if on_error == "raise":
        raise_problems(reader.problems, _HINT)
    frame.attrs["problems"] = reader.problems
    return frame


def scan_coco(
    path: str, *, include_crowd: bool = False, point_box_size: PointBoxSize = None,
    encoding: str = "utf-8", chunk_rows: int | None = None,
    on_chunk: Callable[[_Annotations], None] | None = None,
) -> _Reader:
    """Stream a COCO file once: images, categories, annotations and problems.

    With `on_chunk`, the kept annotations are handed over every `chunk_rows`
    annotations (and once at the end) as `_Annotations` arrays and not kept,
    so memory does not grow with the file; without it they stay in
    `reader.ann`. Unknown image and category ids are not checked here.

    Args:
        path: The JSON file.
        include_crowd: As in `read_coco`. Defaults to `False`.
        point_box_size: As in `read_coco`. Defaults to `None`.
        encoding: As in `read_coco`. Defaults to `"utf-8"`.
        chunk_rows: Annotations per chunk. Defaults to `None` (2**16 with
            `on_chunk`).
        on_chunk: Called with each chunk of kept annotations. Defaults to
            `None` (keep them all in `reader.ann`).

    Returns:
        The reader: `images`, `categories`, `problems` and `ann`.

    Raises:
        AnnotationError: Invalid JSON, or a JSON object that is not COCO.

    Example:
    >>> reader = scan_coco("instances_val.json")  # doctest: +SKIP
    >>> len(reader.ann.rows), len(reader.images)  # doctest: +SKIP

    """
    reader = _Reader(path, include_crowd, point_box_size)
    handlers = {"images": reader.image, "annotations": reader.annotation,
                "categories": reader.category}
    every = chunk_rows or (1 << 16)
    keys: set[str] = set()  # a set: one entry per key, not one per array element
    for key, index, value in _members(path, encoding):
        keys.add(key)
        handler = handlers.get(key)
        if handler is not None and index is not None:
            handler(index, value)
            if on_chunk is not None and len(reader.ann.rows) >= every:
                on_chunk(reader.ann)
                reader.ann = _Annotations()
    if on_chunk is not None and len(reader.ann.rows):
        on_chunk(reader.ann)
        reader.ann = _Annotations()
    if "annotations" not in keys or "images" not in keys:
        problem = Problem("unknown_format", f"the JSON object is not COCO: it has no 'images' and "
                          f"'annotations' arrays; expected {_EXPECTED}.", source=path,
                          value=sorted(keys)[:8])
        raise_problems([problem])
    return reader


class CocoIds:
    """Sorted image and category ids of a scanned file, to look annotations up by id.

    Args:
        reader: The scan (`scan_coco`).
    """

    def __init__(self, reader: _Reader) -> None:
        self.reader = reader
        self.image_ids = np.array(sorted(reader.images), dtype=np.int64)
        self.names = np.array([reader.images[i][0] for i in self.image_ids.tolist()] + [None],
                              dtype=object)
        self.category_ids = np.array(sorted(reader.categories), dtype=np.int64)
        self.category_names = np.array(
            [reader.categories[c] for c in self.category_ids.tolist()] + [None], dtype=object)

    def positions(self, image_ids: np.ndarray,
                  category_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Each annotation's image and category position, and whether each id is known."""
        image_pos, known_image = _find(self.image_ids, image_ids)
        cat_pos, known_cat = _find(self.category_ids, category_ids)
        return image_pos, cat_pos, known_image, known_cat

    def missing(self, rows: np.ndarray, image_ids: np.ndarray, category_ids: np.ndarray,
                known_image: np.ndarray, known_cat: np.ndarray) -> tuple[list[Problem], list[Problem]]:
        """The problems of annotations whose image id, or else category id, is unknown."""
        source, n_images = self.reader.path, len(self.image_ids)
        cats = self.category_ids[:20].tolist()
        images = [Problem("missing_image", "the annotation's image_id is not in 'images'; expected "
                          f"one of the {n_images} image ids.", source=source, row=int(rows[i]),
                          column="image_id", value=int(image_ids[i]))
                  for i in np.flatnonzero(~known_image).tolist()]
        categories = [Problem("missing_category", "the annotation's category_id is not in "
                              f"'categories'; expected one of {cats}.", source=source,
                              row=int(rows[i]), column="category_id", value=int(category_ids[i]))
                      for i in np.flatnonzero(known_image & ~known_cat).tolist()]
        return images, categories


def _find(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids))
    known = (pos < len(sorted_ids)) & (np.append(sorted_ids, 0)[pos] == ids)
    return pos, known


def image_dir(reader: _Reader) -> str:
    """The folder a scanned COCO file's image names are relative to (COCO's own layouts)."""
    first = [reader.images[min(reader.images)][0]] if reader.images else []
    return _image_dir(reader.path, first)


def _frame(reader: _Reader, source: str) -> pd.DataFrame:
    ann = reader.ann
    boxes = np.frombuffer(ann.boxes, dtype=np.float64).reshape(-1, 4)
    image_ids = np.frombuffer(ann.image_ids, dtype=np.int64)
    category_ids = np.frombuffer(ann.category_ids, dtype=np.int64)
    rows = np.frombuffer(ann.rows, dtype=np.int64)
    keep = np.ones(len(rows), dtype=bool)
    lookup = CocoIds(reader)
    ids = lookup.image_ids.tolist()
    names, cat_names = lookup.names, lookup.category_names
    widths = np.array([_number(reader.images[i][1]) or np.nan for i in ids] + [np.nan])
    heights = np.array([_number(reader.images[i][2]) or np.nan for i in ids] + [np.nan])
    image_pos, cat_pos, known_image, known_cat = lookup.positions(image_ids, category_ids)
    missing_images, missing_categories = lookup.missing(rows, image_ids, category_ids,
                                                        known_image, known_cat)
    reader.problems.extend(missing_images + missing_categories)
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
    annotated = set(np.unique(image_ids).tolist())
    without = [{"row": f"images[id={i}]", "filename": reader.images[i][0]}
               for i in ids if i not in annotated]
    frame.attrs.update(source=source, format="coco", image_dir=image_dir(reader),
                       problems=[], rows_without_regions=without,
                       categories={c: reader.categories[c] for c in sorted(reader.categories)})
    return frame
