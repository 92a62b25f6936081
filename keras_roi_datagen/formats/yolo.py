"""YOLO txt labels (Ultralytics, Darknet, Roboflow exports).

What YOLO writes (Ultralytics docs "Object Detection Datasets Overview"): a
folder with `images/` and `labels/` (often with `train/`, `val/` under each);
`labels/<name>.txt` belongs to `images/<name>.<ext>`, one line per object:
`class cx cy w h`, fractions of the image's width and height (centre and
size); segmentation labels are `class x0 y0 x1 y1 ...` (a polygon, also
fractions; oriented boxes are 4-point polygons). Class names come from
`data.yaml` (`names:` a list or `{id: name}`), `classes.txt` (LabelImg,
Roboflow) or `obj.names` (Darknet), one per line.

Fractions are taken of the image as displayed (EXIF orientation applied),
so each image's header is read. Values a hair outside `[0, 1]` (label-studio
#5014 writes them; Ultralytics then drops the whole image) are clipped and
reported as warnings; a line whose number of values is neither 5 nor an odd
number >= 7 is an error naming file and line. Row labels: `"<label file
relative to labels/>:<line>"`.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pandas as pd

from keras_roi_datagen.formats.regions import PointBoxSize, RegionFrameBuilder

__all__ = ["IMAGE_SUFFIXES", "read_yolo", "yolo_root"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")


def yolo_root(source: str) -> str | None:
    """Find the YOLO dataset folder (the one holding `labels/`) of a path.

    Args:
        source: The dataset folder, its `labels/` folder, or its `data.yaml`.

    Returns:
        The folder, or `None` when `source` is not a YOLO dataset.

    Example:
    >>> yolo_root("coco128/labels")  # doctest: +SKIP
    'coco128'

    """
    if os.path.isfile(source):
        if source.lower().endswith((".yaml", ".yml")):
            return yolo_root(os.path.dirname(os.path.abspath(source)))
        return None
    if os.path.isdir(os.path.join(source, "labels")):
        return source
    if os.path.basename(os.path.normpath(source)) == "labels":
        return os.path.dirname(os.path.abspath(source))
    return None


def _parse_names_yaml(text: str) -> list[str] | dict[int, str] | None:
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
    except ImportError:  # a small subset: `names: [a, b]` or a block list / mapping
        return _names_without_yaml(text)
    data = yaml.safe_load(text)
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        return {int(k): str(v) for k, v in names.items()}
    if isinstance(names, list):
        return [str(v) for v in names]
    return None


def _names_without_yaml(text: str) -> list[str] | dict[int, str] | None:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^names\s*:\s*(.*)$", line)
        if not match:
            continue
        inline = match.group(1).strip()
        if inline.startswith("["):
            return [v.strip().strip("'\"") for v in inline.strip("[]").split(",") if v.strip()]
        listed: list[str] = []
        mapped: dict[int, str] = {}
        for item in lines[i + 1:]:
            if not item.startswith((" ", "\t")):
                break
            entry = item.strip()
            if entry.startswith("- "):
                listed.append(entry[2:].strip().strip("'\""))
            elif ":" in entry:
                key, _, value = entry.partition(":")
                mapped[int(key)] = value.strip().strip("'\"")
        return mapped or listed
    return None


def _class_names(root: str) -> tuple[dict[int, str] | None, str | None]:
    candidates = ["data.yaml", "dataset.yaml", "classes.txt", os.path.join("labels", "classes.txt"),
                  "obj.names", "classes.names"]
    candidates += sorted(n for n in os.listdir(root) if n.endswith((".yaml", ".yml")))
    for name in candidates:
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8-sig") as handle:
            text = handle.read()
        if name.endswith((".yaml", ".yml")):
            names = _parse_names_yaml(text)
            if names is None:
                continue
        else:
            names = [line.strip() for line in text.splitlines() if line.strip()]
        return (dict(enumerate(names)) if isinstance(names, list) else names), path
    return None, None


def _images(image_root: str) -> dict[str, str]:
    """Map `<relative path without suffix>` to the image's relative path."""
    found: dict[str, str] = {}
    for folder, _dirs, files in os.walk(image_root):
        for name in sorted(files):
            _stem, suffix = os.path.splitext(name)
            if suffix.lower() in IMAGE_SUFFIXES:
                relative = os.path.relpath(os.path.join(folder, name), image_root)
                found.setdefault(os.path.splitext(relative)[0].replace(os.sep, "/"),
                                 relative.replace(os.sep, "/"))
    return found


def _label_files(labels: str) -> list[str]:
    out = []
    for folder, _dirs, files in os.walk(labels):
        out += [os.path.join(folder, n) for n in files
                if n.endswith(".txt") and n != "classes.txt"]
    return sorted(out)


def read_yolo(
    source: str | os.PathLike[str], *, on_error: str = "raise",
    point_box_size: PointBoxSize = None, encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read a YOLO dataset folder into the common region frame.

    Args:
        source: The dataset folder (holding `labels/`), its `labels/`, or its `data.yaml`.
        on_error: `"raise"` (default) or `"skip"`; see `read_annotations`.
        point_box_size: Unused (YOLO has boxes and polygons); accepted for a uniform call.
        encoding: The label files' encoding.

    Returns:
        The frame with `class_id`, `image_width`, `image_height`; labels are
        class names (the class id when the dataset names no classes, with a
        warning); `attrs["image_dir"]` is `images/` beside `labels/`.

    Raises:
        AnnotationError: Malformed lines, unknown class ids or missing images
            (when raising).

    Example:
    >>> read_yolo("coco128").loc["train2017/000000000009.txt:1", "label"]  # doctest: +SKIP
    'bowl'

    """
    from keras_roi_datagen.decode import ImageProblem, read_image_size

    path = os.fspath(source)
    root = yolo_root(path)
    builder = RegionFrameBuilder(path, "yolo", on_error, point_box_size)
    if root is None:
        builder.error("unknown_format", "not a YOLO dataset: expected a folder holding labels/ "
                      "(and images/, classes.txt or data.yaml).")
        return builder.frame(None)
    root = os.path.abspath(root)
    labels_dir, image_dir = os.path.join(root, "labels"), os.path.join(root, "images")
    names, names_file = _class_names(root)
    if names is None:
        builder.warn("no_class_names", "no data.yaml, classes.txt or obj.names found; labels are "
                     "the class ids.", column="label")
    images = _images(image_dir) if os.path.isdir(image_dir) else {}
    for label_file in _label_files(labels_dir):
        relative = os.path.relpath(label_file, labels_dir).replace(os.sep, "/")
        stem = relative[:-4]
        image = images.get(stem)
        with open(label_file, encoding=encoding) as handle:
            lines = [(n, line.split()) for n, line in enumerate(handle, start=1) if line.strip()]
        if not lines:
            builder.rows_without_regions.append({"row": relative, "filename": image or stem})
            continue
        size: Any = None
        if image is None:
            size = f"no image {stem}.* under {image_dir}"
        else:
            try:
                size = read_image_size(os.path.join(image_dir, image))
            except (ImageProblem, OSError) as error:
                size = f"the image cannot be read ({error})"
        for number, fields in lines:
            _line(builder, label_file, f"{relative}:{number}", image or stem, fields, size, names)
    frame = builder.frame(image_dir)
    frame.attrs["class_names"] = names_file
    return frame


def _line(builder: RegionFrameBuilder, label_file: str, row: str, filename: str,
          fields: list[str], size: Any, names: dict[int, str] | None) -> None:
    count = len(fields)
    if count != 5 and (count < 7 or count % 2 == 0):
        builder.error("bad_record", f"the line has {count} values; expected 5 (class cx cy w h) "
                      "or a class followed by 3 or more x y pairs (a polygon).", row, filename,
                      "line", " ".join(fields), source=label_file)
        return
    try:
        class_id = int(fields[0])
        numbers = [float(v) for v in fields[1:]]
    except ValueError:
        builder.error("bad_record", "the class must be an integer and the coordinates numbers.",
                      row, filename, "line", " ".join(fields), source=label_file)
        return
    if names is not None and class_id not in names:
        builder.error("missing_category", f"class {class_id} is not named (the dataset names "
                      f"{len(names)} classes, 0..{max(names, default=-1)}).", row, filename,
                      "class", class_id, source=label_file)
        return
    if isinstance(size, str):
        builder.error("missing_file", f"{size}; YOLO fractions need the image's size.", row,
                      filename, "filename", filename, source=label_file)
        return
    if count == 5:
        cx, cy, w, h = numbers
        corners = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        shape = "rect"
    else:
        xs, ys = numbers[0::2], numbers[1::2]
        corners = [min(xs), min(ys), max(xs), max(ys)]
        shape = "polygon"
    clipped = builder.clip_fractions(corners, 1.0, row, filename, "line", source=label_file)
    if clipped is None:
        return
    width, height = size
    x0, y0, x1, y1 = clipped
    builder.add(row, filename, (x0 * width, y0 * height, x1 * width, y1 * height),
                names[class_id] if names is not None else class_id, shape, class_id=class_id,
                image_width=float(width), image_height=float(height))
