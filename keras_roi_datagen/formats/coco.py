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
annotations are points. `"segmentation": []` is how Roboflow and others mark
a plain box; empty polygon parts (`[[]]`, written by some converters) are
ignored with a warning, and with none left the `bbox` is the region. The row
label is the annotation's position in the `annotations` array.

Splits: a file whose name names a split (`instances_val2017.json`,
`train.json`) or that sits in a split's folder (Roboflow's
`valid/_annotations.coco.json`) gets a `split` column. A folder is read as
every COCO file in it, in its `annotations/` and in its subfolders one level
down (Roboflow's `train/`, `valid/`, `test/`); when some are named
`instances_*.json`, only those (COCO's own `annotations/` also holds
`captions_*` and `person_keypoints_*`). With several files, file names are
relative to the folder all their images share and row labels are
`"<json file relative to the folder>:<position>"`. Crowd regions are left out (reported) unless
`include_crowd=True`. Members are streamed one element at a time
(`json_stream`), so a file of 10^6 annotations does not become 10^6 dicts.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from keras_roi_datagen.errors import Problem, raise_problems
from keras_roi_datagen.formats.csv import text_encoding
from keras_roi_datagen.formats.heads import files_like
from keras_roi_datagen.formats.json_stream import JsonStreamError, iter_object_members, stream_error
from keras_roi_datagen.formats.regions import (
    SPLIT_COLUMN,
    PointBoxSize,
    check_on_error,
    points_xyxy,
    split_name,
)

__all__ = ["CocoIds", "coco_files", "file_split", "image_dir", "is_coco_folder", "read_coco",
           "scan_coco", "sniff_coco"]

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
        segmentation, emptied = _without_empty_parts(item.get("segmentation"), crowd)
        try:
            found = self._box(item, crowd, segmentation)
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
        if emptied:
            self.problem("empty_polygon", "the 'segmentation' holds an empty polygon, ignored; "
                         + ("the 'bbox' is the region." if shape == "rect" else
                            "the other parts make the region."), index, "segmentation",
                         item.get("segmentation"), "warning")
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

    def _box(self, item: dict[str, Any], crowd: bool, segmentation: Any) -> tuple[Any, str] | None:
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


def _without_empty_parts(segmentation: Any, crowd: bool) -> tuple[Any, bool]:
    """A polygon list without its empty parts (`[[]]`), and whether any was dropped."""
    if crowd or not isinstance(segmentation, list) or not segmentation or not isinstance(
            segmentation[0], list):
        return segmentation, False
    kept = [part for part in segmentation if not (isinstance(part, list) and not part)]
    return kept, len(kept) < len(segmentation)


def _members(path: str, encoding: str,
             arrays: tuple[str, ...] = ("images", "annotations", "categories"),
             ) -> Iterator[tuple[str, int | None, Any]]:
    with open(path, encoding=text_encoding(path, encoding)) as handle:
        try:
            yield from iter_object_members(handle, arrays)
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


def file_split(path: str) -> str | None:
    """The split a COCO file's name, or else its folder's name, gives (`None`: none).

    Example:
    >>> file_split("annotations/instances_val2017.json"), file_split("valid/_annotations.coco.json")
    ('val', 'val')
    >>> file_split("annotations/instances_default.json") is None
    True

    """
    stem = os.path.basename(path)
    stem = stem[:-5] if stem.lower().endswith(".json") else stem
    stem = stem[:-5] if stem.lower().endswith(".coco") else stem
    for prefix in ("instances_", "_annotations"):
        stem = stem[len(prefix):] if stem.startswith(prefix) else stem
    return split_name(stem) or split_name(os.path.basename(os.path.dirname(os.path.abspath(path))))


def coco_files(folder: str) -> list[str]:
    """The COCO files of a folder: in it, its `annotations/`, and its subfolders one level down.

    When some are named `instances_*.json`, only those are (COCO's own
    `annotations/` also holds captions and keypoints files).

    Args:
        folder: The folder.

    Returns:
        The files, sorted by path.

    Example:
    >>> coco_files("roboflow-export")  # doctest: +SKIP
    ['roboflow-export/test/_annotations.coco.json', 'roboflow-export/train/...', ...]

    """
    folders = [folder] + [os.path.join(folder, name) for name in sorted(os.listdir(folder))
                          if os.path.isdir(os.path.join(folder, name))]
    found = sorted(path for where in folders for path in files_like(where, (".json",), sniff_coco))
    instances = [p for p in found if os.path.basename(p).startswith("instances_")]
    return instances or found


def is_coco_folder(folder: str) -> bool:
    """Tell whether a folder holds COCO files (see `coco_files`)."""
    return bool(coco_files(folder))


def read_coco(
    path: str | os.PathLike[str], *, on_error: str = "raise", include_crowd: bool = False,
    point_box_size: PointBoxSize = None, encoding: str = "utf-8", split: str | None = None,
) -> pd.DataFrame:
    """Read a COCO object-detection JSON file, or a folder of them, into the common region frame.

    Args:
        path: The JSON file, or a folder of them (see `coco_files`).
        on_error: `"raise"` (default) or `"skip"`; see `read_annotations`.
        include_crowd: Keep `iscrowd=1` regions. Defaults to `False` (left
            out and reported as warnings).
        point_box_size: Size of the box made around keypoint-only
            annotations; `None` (default) leaves them out, reported.
        encoding: The encoding used when the file has no byte-order mark.
        split: In a folder, read only the files of this split (`file_split`).
            Defaults to `None` (every file).

    Returns:
        The frame (see `keras_roi_datagen.formats.regions`), with columns
        `iscrowd`, `category_id`, `area`, `image_id`, `annotation_id`,
        `image_width`, `image_height` (and `score` for a file that has
        scores), and `split` when a file's name or folder names one; a
        file's rows are indexed by position in `annotations` (index name
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
    if os.path.isdir(source):
        frame = _read_folder(source, include_crowd, point_box_size, encoding, split)
    else:
        frame = _read_file(source, include_crowd, point_box_size, encoding)
    if on_error == "raise":
        raise_problems(frame.attrs["problems"], _HINT)
    return frame


def _read_file(source: str, include_crowd: bool, point_box_size: PointBoxSize,
               encoding: str) -> pd.DataFrame:
    reader = scan_coco(source, include_crowd=include_crowd, point_box_size=point_box_size,
                       encoding=encoding)
    frame = _frame(reader, source)
    frame.attrs["problems"] = reader.problems
    found = file_split(source)
    if found is not None:
        frame[SPLIT_COLUMN] = np.full(len(frame), found, dtype=object)
        frame.attrs["splits"] = [found]
        for row in frame.attrs["rows_without_regions"]:
            row[SPLIT_COLUMN] = found
    return frame


def _read_folder(folder: str, include_crowd: bool, point_box_size: PointBoxSize, encoding: str,
                 split: str | None) -> pd.DataFrame:
    files = coco_files(folder)
    if not files:
        problem = Problem("unknown_format", "the folder holds no COCO JSON file (in it, in "
                          "annotations/ or in its subfolders).", source=folder)
        raise_problems([problem])
    several = len(files) > 1
    scanned = [(path, file_split(path)) for path in files]
    wanted = [(path, found) for path, found in scanned if split is None or found == split_name(split)]
    frames = {path: _read_file(path, include_crowd, point_box_size, encoding)
              for path, _ in wanted}
    image_dirs = [frames[path].attrs["image_dir"] if path in frames else
                  _file_image_dir(path, encoding) for path in files]
    common = os.path.commonpath(image_dirs) if several else image_dirs[0]
    parts, problems, without, categories = [], [], [], {}
    for path, frame in frames.items():
        prefix = os.path.relpath(path, folder).replace(os.sep, "/") + ":" if several else ""
        moved = os.path.relpath(frame.attrs["image_dir"], common)
        rename = (lambda name, m=moved: name) if moved == "." else (
            lambda name, m=moved: f"{m}/{name}".replace(os.sep, "/"))
        part = frame.copy()
        part["filename"] = [rename(n) for n in frame["filename"].tolist()]
        if several:
            part.index = pd.Index([f"{prefix}{r}" for r in frame.index.tolist()], name="annotation",
                                  dtype=object)
        parts.append(part)
        problems += [replace(p, row=f"{prefix}{p.row}") if several and p.row is not None else p
                     for p in frame.attrs["problems"]]
        without += [{**r, "row": f"{prefix}{r['row']}", "filename": rename(r["filename"])}
                    for r in frame.attrs["rows_without_regions"]]
        categories.update(frame.attrs.get("categories", {}))
    named = sorted({found for _, found in scanned if found is not None},
                   key=("train", "val", "test").index)
    result = pd.concat(parts) if parts else _frame(_Reader(folder, include_crowd, point_box_size),
                                                   folder).iloc[:0]
    if named and SPLIT_COLUMN not in result.columns:
        result[SPLIT_COLUMN] = pd.Series([None] * len(result), index=result.index, dtype=object)
    result.attrs = {"source": folder, "format": "coco", "image_dir": common, "problems": problems,
                    "rows_without_regions": without, "categories": categories,
                    **({"splits": named} if named else {})}
    return result


def _file_image_dir(path: str, encoding: str) -> str:
    """Where a COCO file's images are, from its first image (streamed up to it, not read whole)."""
    for key, index, value in _members(path, encoding, ("images", "annotations")):
        if key == "images" and index is not None:
            name = value.get("file_name") if isinstance(value, dict) else None
            return _image_dir(path, [name] if isinstance(name, str) and name else [])
    return _image_dir(path, [])


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
