"""CVAT for images XML (`annotations.xml`, format version 1.1).

What CVAT writes (docs.cvat.ai "XML annotation format"): `<annotations>
<version>1.1</version><meta>...</meta>` then one `<image id name width
height>` per image holding `<box label xtl ytl xbr ybr rotation occluded
z_order source>`, `<polygon points="x0,y0;x1,y1;...">`, `<polyline>`,
`<points>`, `<ellipse cx cy rx ry rotation>`, `<mask left top width height
rle>`, `<tag>` (image-level) and `<skeleton>`/`<cuboid>`; each shape may
hold `<attribute name="...">value</attribute>` children. Coordinates are
0-based float pixels; a box's `rotation` turns it clockwise, in degrees,
about its centre. CVAT for video (`<track>`) is not read (reported).

Masks become their `left/top/width/height` box; points and skeletons are
points (`point_box_size=`). Images: `images/` beside the XML (CVAT's zip
layout; a project export keeps them in `images/<subset>/`, and the file name
is then `<subset>/<name>`), else the XML's folder. A folder holding
`annotations.xml` (the export unzipped) reads that file. Row labels:
`"<file name>#<k>"`.

Splits: each image's `subset` (a project export), else the `<subset>` of the
task in `<meta>` (a task export), read by `regions.split_name` (`Train`,
`Validation`, `Test`; CVAT's `default` names none) into a `split` column.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from typing import Any

import pandas as pd

from keras_roi_datagen.formats.heads import files_like
from keras_roi_datagen.formats.regions import (
    REGION_COLUMNS,
    SPLIT_COLUMN,
    PointBoxSize,
    RegionFrameBuilder,
    ellipse_xyxy,
    points_xyxy,
    rotated_rect_xyxy,
    split_name,
)

__all__ = ["cvat_file", "is_cvat_folder", "read_cvat", "sniff_cvat"]

_SHAPES = ("box", "polygon", "polyline", "points", "ellipse", "mask", "skeleton", "cuboid")


def sniff_cvat(head: str) -> bool:
    """Tell whether an XML file's head is a CVAT `<annotations>` file.

    Args:
        head: The first characters of the file.

    Returns:
        True for CVAT XML.

    Example:
    >>> sniff_cvat('<?xml version="1.0"?><annotations><version>1.1</version>')
    True

    """
    return "<annotations>" in head or "<annotations " in head


def cvat_file(folder: str) -> str | None:
    """The CVAT XML of an export's folder: its `annotations.xml`, else its only CVAT XML file.

    Example:
    >>> cvat_file("task_export")  # doctest: +SKIP
    'task_export/annotations.xml'

    """
    found = files_like(folder, (".xml",), sniff_cvat)
    named = [p for p in found if os.path.basename(p) == "annotations.xml"]
    return (named or found)[0] if len(named) == 1 or len(found) == 1 else None


def is_cvat_folder(folder: str) -> bool:
    """Tell whether a folder is a CVAT export (see `cvat_file`)."""
    return cvat_file(folder) is not None


def _points(text: str | None) -> list[tuple[float, float]]:
    if not text:
        raise ValueError("no 'points'")
    pairs = []
    for pair in text.split(";"):
        px, py = pair.split(",")
        pairs.append((float(px), float(py)))
    return pairs


def _attributes(element: ET.Element) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for attribute in element.findall("attribute"):
        name = attribute.get("name") or ""
        while name in REGION_COLUMNS or name in ("occluded", "z_order", "image_id", "rotation",
                                                 "subset", SPLIT_COLUMN):
            name = "attribute_" + name
        found[name] = (attribute.text or "").strip()
    return found


def _box(kind: str, element: ET.Element) -> tuple[float, float, float, float] | str:
    get = element.get
    if kind == "box":
        x0, y0 = float(get("xtl", "")), float(get("ytl", ""))
        x1, y1 = float(get("xbr", "")), float(get("ybr", ""))
        rotation = float(get("rotation") or 0.0)
        if rotation % 360 == 0:
            return (x0, y0, x1, y1)
        return rotated_rect_xyxy(x0, y0, x1 - x0, y1 - y0, rotation, about="center")
    if kind in ("polygon", "polyline"):
        pts = _points(get("points"))
        return points_xyxy([p[0] for p in pts], [p[1] for p in pts])
    if kind == "ellipse":
        return ellipse_xyxy(float(get("cx", "")), float(get("cy", "")), float(get("rx", "")),
                            float(get("ry", "")), math.radians(float(get("rotation") or 0.0)))
    if kind == "mask":
        left, top = float(get("left", "")), float(get("top", ""))
        return (left, top, left + float(get("width", "")), top + float(get("height", "")))
    return "point"


def _skeleton_points(element: ET.Element) -> list[tuple[float, float]]:
    pts: list[tuple[float, float]] = []
    for child in element.findall("points"):
        if child.get("outside") != "1":
            pts += _points(child.get("points"))
    return pts


def read_cvat(
    path: str | os.PathLike[str], *, on_error: str = "raise",
    point_box_size: PointBoxSize = None, encoding: str = "utf-8", split: str | None = None,
) -> pd.DataFrame:
    """Read a CVAT for images XML file (or an export's folder) into the common region frame.

    Args:
        path: The `annotations.xml` file, or the folder holding it.
        on_error: `"raise"` (default) or `"skip"`; see `read_annotations`.
        point_box_size: Size of the box made around points; `None` (default)
            leaves them out, reported.
        encoding: Unused (XML declares its encoding).
        split: Read only the images of this split. Defaults to `None` (all).

    Returns:
        The frame with `occluded`, `z_order`, `rotation`, `image_id`,
        `subset`, `image_width`, `image_height`, one column per CVAT
        attribute, and `split` when the subsets name splits.

    Raises:
        AnnotationError: Invalid XML, or (when raising) malformed shapes.

    Example:
    >>> read_cvat("annotations.xml").shape.value_counts()  # doctest: +SKIP

    """
    source = os.fspath(path)
    if os.path.isdir(source):
        source = cvat_file(source) or os.path.join(source, "annotations.xml")
    builder = RegionFrameBuilder(source, "cvat", on_error, point_box_size)
    first_name = None
    images = os.path.join(os.path.dirname(os.path.abspath(source)), "images")
    task_subset: str | None = None
    wanted = split_name(split) if split is not None else None
    named: set[str] = set()
    try:
        for _event, element in ET.iterparse(source, events=("end",)):
            if element.tag == "meta":
                tasks = element.findall("task")  # a task export: its one task's subset
                task_subset = tasks[0].findtext("subset") if len(tasks) == 1 else None
            elif element.tag == "image":
                # A project export keeps each task's images in images/<subset>/.
                subset = element.get("subset")
                prefix = f"{subset}/" if subset and os.path.isdir(
                    os.path.join(images, subset)) else ""
                image_split = split_name(subset or task_subset)
                if image_split is not None:
                    named.add(image_split)
                if wanted is None or image_split == wanted:
                    first_name = first_name or prefix + (element.get("name") or "")
                    _image(builder, element, prefix, subset or task_subset, image_split)
                element.clear()
            elif element.tag == "track":
                builder.warn("track_unsupported", "CVAT for video tracks are not read; export "
                             "the task as 'CVAT for images'.", f"track {element.get('id')}",
                             column="track")
                element.clear()
    except ET.ParseError as error:
        builder.error("bad_xml", f"the file is not valid XML ({error}); expected CVAT for "
                      "images XML.", row=error.position[0])
        builder.on_error = "raise"
    folder = os.path.dirname(os.path.abspath(source))
    image_dir = folder
    if first_name and os.path.isfile(os.path.join(folder, "images", first_name)):
        image_dir = os.path.join(folder, "images")
    builder.splits = sorted(named) or None
    return builder.frame(image_dir)


def _image(builder: RegionFrameBuilder, image: ET.Element, prefix: str, subset: str | None,
           split: str | None) -> None:
    name = image.get("name")
    if not name:
        builder.error("bad_record", "an <image> has no 'name'.", f"image {image.get('id')}",
                      column="name")
        return
    name = prefix + name
    before = len(builder)
    shapes = [child for child in image if child.tag in _SHAPES]
    for k, element in enumerate(shapes):
        row = f"{name}#{k}"
        label = element.get("label")
        attrs = {"occluded": int(element.get("occluded") or 0),
                 "z_order": int(element.get("z_order") or 0),
                 "rotation": float(element.get("rotation") or 0.0),
                 "image_id": image.get("id"), "subset": subset,
                 "image_width": _float(image.get("width")),
                 "image_height": _float(image.get("height")),
                 **({SPLIT_COLUMN: split} if split is not None else {}), **_attributes(element)}
        if element.tag == "cuboid":
            builder.warn("shape_unsupported", "a cuboid has no 2-D box here and was left out.",
                         row, name, "cuboid")
            continue
        try:
            if element.tag == "skeleton":
                box: Any = "skeleton"
                pts = _skeleton_points(element)
            else:
                box = _box(element.tag, element)
                pts = _points(element.get("points")) if box == "point" else []
        except ValueError as error:
            builder.error("bad_shape", f"the <{element.tag}> has a missing or non-numeric "
                          f"coordinate ({error}).", row, name, element.tag,
                          dict(element.attrib))
            continue
        if isinstance(box, str):
            builder.add_point(row, name, pts, label, element.tag, **attrs)
        else:
            builder.add(row, name, box, label, element.tag, **attrs)
    if len(builder) == before:
        builder.rows_without_regions.append({"row": f"image {image.get('id')}", "filename": name,
                                             **({SPLIT_COLUMN: split} if split else {})})


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
