"""Label Studio JSON exports (the full "JSON" export, and "JSON-MIN").

What Label Studio writes (labelstud.io "Export annotations", the
RectangleLabels / PolygonLabels / EllipseLabels / KeyPointLabels tag pages and
the Object Detection template): `[{"id", "data": {"image": ...},
"annotations": [{"id", "completed_by", "was_cancelled", "result": [{"id",
"type": "rectanglelabels", "from_name", "to_name", "original_width",
"original_height", "image_rotation", "value": {"x", "y", "width", "height",
"rotation", "rectanglelabels": [...]}}]}]}]`. Older exports call
`annotations` `completions`. The "JSON-MIN" export flattens each task to
`{"id", "image", "<from_name>": [{"x", ..., "rectanglelabels",
"original_width", "original_height"}], "annotator"}`; both are read.
Predictions are not read (they are not ground truth).

Geometry: every value is a percentage (0-100) of `original_width` (x, width,
radiusX) or `original_height` (y, height, radiusY). A rectangle's `x`, `y` are
its top-left corner *before* rotation and `rotation` turns it clockwise, in
degrees, about that corner (in pixels: percentages of a non-square image are
converted first; label-studio-converter #131 reports converters getting this
wrong). Ellipses are centred on `x`, `y`; polygons list `points` `[[x, y], ...]`; key points are
points. Brush masks (RLE) are left out with a warning. Image paths:
`/data/local-files/?d=<path>` gives `<path>`. An uploaded image,
`/data/upload/<n>/<hash>-<name>`, is `<name>` when the image folder holds
that file, else `<hash>-<name>` (Label Studio's media folder, and the images
its own converters copy, keep the 8-hex prefix), else
`upload/<n>/<hash>-<name>` (the media folder copied whole); when none is
there it is `<name>`, with a warning listing the names tried. A folder
holding one Label Studio JSON file reads it. Row labels: `"task <id>/<result
id>"` (or positions).
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pandas as pd

from keras_roi_datagen.errors import AnnotationError, Problem
from keras_roi_datagen.formats.csv import bad_encoding_error, text_encoding
from keras_roi_datagen.formats.heads import files_like
from keras_roi_datagen.formats.regions import (
    PointBoxSize,
    RegionFrameBuilder,
    ellipse_xyxy,
    points_xyxy,
    rotated_rect_xyxy,
)

__all__ = ["export_files", "image_candidates", "image_name", "is_labelstudio_folder",
           "read_labelstudio", "sniff_labelstudio"]

_LABEL_KEYS = ("rectanglelabels", "polygonlabels", "ellipselabels", "keypointlabels",
               "brushlabels", "labels")
_GEOMETRY = {"rectanglelabels": "rect", "rectangle": "rect", "polygonlabels": "polygon",
             "polygon": "polygon", "ellipselabels": "ellipse", "ellipse": "ellipse",
             "keypointlabels": "point", "keypoint": "point", "brushlabels": "brush",
             "brush": "brush"}


def sniff_labelstudio(head: str) -> bool:
    """Tell whether a JSON file's head is a Label Studio export (a list of tasks).

    Args:
        head: The first characters of the file.

    Returns:
        True for a Label Studio export.

    Example:
    >>> sniff_labelstudio('[{"id": 1, "annotations": [{"result": []}], "data": {}}]')
    True

    """
    text = head.lstrip("\ufeff \t\r\n")
    return text.startswith("[") and re.search(
        r'"(annotations|completions|predictions|data|original_width)"\s*:', text) is not None and (
        '"regions"' not in text)


def image_name(value: Any) -> str:
    """The image file name a Label Studio task names.

    Args:
        value: The task's image value (a path or URL).

    Returns:
        The name relative to the image folder.

    Example:
    >>> image_name("/data/local-files/?d=photos/a.jpg"), image_name("/data/upload/3/1a2b3c4d-a.jpg")
    ('photos/a.jpg', 'a.jpg')

    """
    text = str(value)
    parsed = urlparse(text)
    if "local-files" in parsed.path and "d" in parse_qs(parsed.query):
        return unquote(parse_qs(parsed.query)["d"][0])
    if parsed.path.startswith("/data/upload/"):
        return re.sub(r"^[0-9a-f]{8}-", "", os.path.basename(unquote(parsed.path)))
    return text


def image_candidates(value: Any) -> list[str]:
    """The file names an image a task names may have, most likely first.

    An uploaded image's name without Label Studio's 8-hex prefix, with it,
    and its path in Label Studio's media folder; any other image has one name.

    Args:
        value: The task's image value (a path or URL).

    Returns:
        The names, relative to the image folder.

    Example:
    >>> image_candidates("/data/upload/3/1a2b3c4d-a.jpg")
    ['a.jpg', '1a2b3c4d-a.jpg', 'upload/3/1a2b3c4d-a.jpg']

    """
    name = image_name(value)
    parsed = urlparse(str(value))
    if not parsed.path.startswith("/data/upload/"):
        return [name]
    stored = unquote(parsed.path)[len("/data/"):]
    found = [name, os.path.basename(stored), stored]
    return list(dict.fromkeys(found))


def export_files(folder: str) -> list[str]:
    """The Label Studio JSON exports directly in a folder, sorted."""
    return files_like(folder, (".json",), sniff_labelstudio)


def is_labelstudio_folder(folder: str) -> bool:
    """Tell whether a folder holds a Label Studio JSON export."""
    return bool(export_files(folder))


class _Names:
    """Each task's image file name, found in the image folder among its candidates."""

    def __init__(self, builder: RegionFrameBuilder, folder: str, local: bool) -> None:
        self.builder, self.folder, self.local = builder, folder, local

    def __call__(self, value: Any, task_label: str) -> str:
        candidates = image_candidates(value)
        if len(candidates) == 1 or not self.local:
            return candidates[0]
        for name in candidates:
            if os.path.isfile(os.path.join(self.folder, name)):
                return name
        self.builder.warn("image_not_found", f"the uploaded image {value} was looked for as "
                          f"{', '.join(candidates)} in {self.folder}; none is there.",
                          task_label, candidates[0], "data", value)
        return candidates[0]


def _task_image(task: dict[str, Any]) -> Any:
    data = task.get("data")
    if not isinstance(data, dict):
        return None
    if "image" in data:
        return data["image"]
    strings = [v for v in data.values() if isinstance(v, str)]
    return strings[0] if strings else None


def _label(value: dict[str, Any], kind: str) -> Any:
    labels = value.get(kind) if kind in value else next(
        (value[k] for k in _LABEL_KEYS if k in value), None)
    if isinstance(labels, list):
        return labels[0] if len(labels) == 1 else ", ".join(map(str, labels)) or None
    return labels


def _annotator(annotation: dict[str, Any]) -> Any:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        return who.get("email") or who.get("id")
    return who


def read_labelstudio(
    path: str | os.PathLike[str], *, on_error: str = "raise",
    point_box_size: PointBoxSize = None, encoding: str = "utf-8", image_dir: str | None = None,
) -> pd.DataFrame:
    """Read a Label Studio JSON export into the common region frame.

    Args:
        path: The JSON file (a list of tasks), or a folder holding one.
        on_error: `"raise"` (default) or `"skip"`; see `read_annotations`.
        point_box_size: Size of the box made around key points; `None`
            (default) leaves them out, reported.
        encoding: The encoding used when the file has no byte-order mark.
        image_dir: The image folder, where uploaded images are looked for
            under each of their names. Defaults to `None`: beside the JSON,
            or its `images/`.

    Returns:
        The frame with `annotator`, `task_id`, `from_name`, `rotation`,
        `image_width`, `image_height`.

    Raises:
        AnnotationError: Invalid JSON, not a list of tasks, or (when raising)
            malformed results.

    Example:
    >>> read_labelstudio("export.json").label.value_counts()  # doctest: +SKIP

    """
    source = os.fspath(path)
    if os.path.isdir(source):
        source = _export_of(source)
    try:
        with open(source, encoding=text_encoding(source, encoding)) as handle:
            tasks = json.load(handle)
    except UnicodeDecodeError as error:
        raise bad_encoding_error(source, encoding, error) from None
    except json.JSONDecodeError as error:
        problem = Problem("bad_json", f"the file is not valid JSON ({error.msg}); expected a "
                          "Label Studio export.", source=source, row=error.lineno)
        raise AnnotationError(problem.describe(), [problem]) from None
    if not isinstance(tasks, list):
        problem = Problem("unknown_format", "a Label Studio JSON export is a list of tasks "
                          "[{'data': {...}, 'annotations': [...]}]; this file is a "
                          f"{type(tasks).__name__}.", source=source)
        raise AnnotationError(problem.describe(), [problem])
    builder = RegionFrameBuilder(source, "labelstudio", on_error, point_box_size)
    folder = _image_dir(source, image_dir, tasks)
    names = _Names(builder, folder, image_dir is None or os.path.isdir(image_dir))
    for t, task in enumerate(tasks):
        task_label = f"task {task.get('id', t)}" if isinstance(task, dict) else f"task[{t}]"
        if isinstance(task, dict) and "data" not in task and _min_regions(task):
            _read_min_task(builder, task_label, task, names)
            continue
        image = _task_image(task) if isinstance(task, dict) else None
        if image is None:
            builder.error("bad_record", "the task has no image in 'data'; expected "
                          "{'data': {'image': '...'}, 'annotations': [...]}.", task_label,
                          column="data", value=task.get("data") if isinstance(task, dict) else task)
            continue
        filename = names(image, task_label)
        annotations = task.get("annotations", task.get("completions", []))
        regions_before = len(builder)
        for a, annotation in enumerate(annotations if isinstance(annotations, list) else []):
            if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
                continue
            for r, result in enumerate(annotation.get("result") or []):
                label = (f"{task_label}/{result.get('id', f'{a}.{r}')}" if isinstance(result, dict)
                         else f"{task_label}/{a}.{r}")
                _result(builder, label, filename, result, _annotator(annotation), task.get("id"))
        if len(builder) == regions_before:
            builder.rows_without_regions.append({"row": task_label, "filename": filename})
    return builder.frame(folder)


def _export_of(folder: str) -> str:
    found = export_files(folder)
    if len(found) != 1:
        what = "no Label Studio JSON export" if not found else (
            f"{len(found)} Label Studio JSON exports ({', '.join(map(os.path.basename, found))})")
        problem = Problem("unknown_format", f"the folder holds {what}; name the export file.",
                          source=folder)
        raise AnnotationError(problem.describe(), [problem])
    return found[0]


def _min_regions(task: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The region lists of a JSON-MIN task: `{from_name: [{x, y, ..., original_width}]}`."""
    return {key: value for key, value in task.items()
            if isinstance(value, list) and value and all(
                isinstance(v, dict) and "original_width" in v for v in value)}


def _min_type(region: dict[str, Any]) -> str:
    found = next((k for k in _LABEL_KEYS if k in region), None)
    if found is not None and found != "labels":
        return found
    if "points" in region:
        return "polygon"
    if "radiusX" in region:
        return "ellipse"
    return "rectangle" if "width" in region else "keypoint"


def _min_image(task: dict[str, Any]) -> str:
    image = task.get("image")
    if not isinstance(image, str):
        image = next((v for k, v in task.items() if isinstance(v, str) and k not in (
            "annotator", "created_at", "updated_at")), "")
    return image


def _read_min_task(builder: RegionFrameBuilder, task_label: str, task: dict[str, Any],
                   names: _Names) -> str:
    """Read one task of the JSON-MIN export (regions flattened beside the image key)."""
    regions = _min_regions(task)
    filename = names(_min_image(task), task_label)
    before = len(builder)
    for key, items in regions.items():
        for r, region in enumerate(items):
            result = {"type": _min_type(region), "from_name": key, "value": region,
                      "original_width": region.get("original_width"),
                      "original_height": region.get("original_height")}
            _result(builder, f"{task_label}/{key}[{r}]", filename, result, task.get("annotator"),
                    task.get("id"))
    if len(builder) == before:
        builder.rows_without_regions.append({"row": task_label, "filename": filename})
    return filename


def _image_dir(source: str, given: str | None, tasks: list[Any]) -> str:
    """The given image folder, else the JSON's folder or its `images/`: where the first image is."""
    if given is not None:
        return given
    folder = os.path.dirname(os.path.abspath(source))
    first = next((t for t in tasks if isinstance(t, dict)), None)
    if first is None:
        return folder
    image = _task_image(first) if "data" in first else _min_image(first)
    for candidate in (folder, os.path.join(folder, "images")):
        if image and any(os.path.isfile(os.path.join(candidate, name))
                         for name in image_candidates(image)):
            return candidate
    return folder


def _result(builder: RegionFrameBuilder, row: str, filename: str, result: Any, annotator: Any,
            task_id: Any) -> None:
    if not isinstance(result, dict) or not isinstance(result.get("value"), dict):
        builder.error("bad_record", "a result must be an object with a 'value' object.", row,
                      filename, "result", result)
        return
    kind = str(result.get("type", ""))
    shape = _GEOMETRY.get(kind)
    if shape is None:
        return  # choices, textarea, ...: image-level, not regions
    value = result["value"]
    width, height = _size(result.get("original_width")), _size(result.get("original_height"))
    if width is None or height is None:
        builder.error("missing_size", "the result has no positive 'original_width' and "
                      "'original_height'; percentages need the image size.", row, filename,
                      "original_width",
                      [result.get("original_width"), result.get("original_height")])
        return
    label = _label(value, kind)
    attrs = {"annotator": annotator, "task_id": task_id, "from_name": result.get("from_name"),
             "rotation": float(value.get("rotation") or 0.0),
             "image_width": width, "image_height": height}
    try:
        box = _box(builder, row, filename, shape, value, width, height)
    except (KeyError, TypeError, ValueError) as error:
        builder.error("bad_shape", f"the {kind} value is malformed ({error!r}); expected the "
                      "keys Label Studio writes for it.", row, filename, "value", value)
        return
    if box == "point":
        builder.add_point(row, filename, [(float(value["x"]) / 100 * width,
                                           float(value["y"]) / 100 * height)], label, shape,
                          **attrs)
    elif box == "skip":
        builder.warn("shape_unsupported", f"a {kind} region (a mask) has no box here and was "
                     "left out.", row, filename, "type", kind)
    elif box is not None:
        builder.add(row, filename, box, label, shape, **attrs)


def _size(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        return None
    return float(value)


def _box(builder: RegionFrameBuilder, row: str, filename: str, shape: str, value: dict[str, Any],
         width: float, height: float) -> Any:
    if shape == "point":
        return "point"
    if shape == "brush":
        return "skip"
    if shape == "polygon":
        points = value["points"]
        xs = builder.clip_fractions([float(p[0]) for p in points], 100.0, row, filename, "points")
        ys = builder.clip_fractions([float(p[1]) for p in points], 100.0, row, filename, "points")
        if xs is None or ys is None:
            return None
        return points_xyxy([x / 100 * width for x in xs], [y / 100 * height for y in ys])
    x, y = float(value["x"]), float(value["y"])
    rotation = float(value.get("rotation") or 0.0)
    if shape == "ellipse":
        rx, ry = float(value["radiusX"]) / 100 * width, float(value["radiusY"]) / 100 * height
        return ellipse_xyxy(x / 100 * width, y / 100 * height, rx, ry, math.radians(rotation))
    w, h = float(value["width"]), float(value["height"])
    if rotation % 360 == 0:
        clipped = builder.clip_fractions([x, y, x + w, y + h], 100.0, row, filename, "value")
        if clipped is None:
            return None
        x0, y0, x1, y1 = clipped
        return (x0 / 100 * width, y0 / 100 * height, x1 / 100 * width, y1 / 100 * height)
    return rotated_rect_xyxy(x / 100 * width, y / 100 * height, w / 100 * width,
                             h / 100 * height, rotation, about="top_left")
