"""Pascal VOC XML (one `<annotation>` per image; LabelImg, CVAT, Roboflow exports).

What VOC writes (the VOC devkit, `VOCdevkit/devkit_doc`; LabelImg's
`pascal_voc_io.py`): `<annotation><folder/><filename/><path/>` (LabelImg)
`<size><width/><height/><depth/></size>` and one `<object>` per region with
`<name>`, `<pose>`, `<truncated>`, `<difficult>` (`<occluded>` from some tools)
and `<bndbox><xmin/><ymin/><xmax/><ymax/></bndbox>`.

Corners are 1-based and inclusive (the devkit's pixel grid starts at 1, and
`xmax` is the last pixel column covered): `x = xmin - 1`, `w = xmax - xmin + 1`.
Converters disagree about that off-by-one; this reader follows the devkit.

`source` is one XML file or a folder of them (a VOC root with `Annotations/`
too). Images: the folder that `<path>` or `<folder>` names, a `JPEGImages/`
beside `Annotations/`, else the XML's folder. Row labels: `"<xml name>#<k>"`
(0-based object index).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Any

import pandas as pd

from keras_roi_datagen.errors import raise_problems
from keras_roi_datagen.formats.regions import PointBoxSize, RegionFrameBuilder

__all__ = ["read_voc", "sniff_voc", "voc_files"]


def sniff_voc(head: str) -> bool:
    r"""Tell whether an XML file's head is a VOC `<annotation>`.

    Args:
        head: The first characters of the file.

    Returns:
        True for VOC.

    Example:
    >>> sniff_voc('<?xml version="1.0"?>\\n<annotation><folder>x</folder>')
    True

    """
    return "<annotation>" in head or "<annotation " in head


def voc_files(source: str) -> list[str]:
    """List a VOC source's XML files (a file, a folder of them, or a VOC root).

    Args:
        source: A file or folder.

    Returns:
        The XML files, sorted.

    Example:
    >>> voc_files("VOC2007")  # doctest: +SKIP
    ['VOC2007/Annotations/000001.xml', ...]

    """
    if os.path.isfile(source):
        return [source]
    folder = source
    if os.path.isdir(os.path.join(source, "Annotations")):
        folder = os.path.join(source, "Annotations")
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.lower().endswith(".xml"))


def _text(element: ET.Element | None, tag: str) -> str | None:
    found = element.find(tag) if element is not None else None
    return found.text.strip() if found is not None and found.text is not None else None


def _image_dir(first_xml: str, root: ET.Element) -> str:
    folder = os.path.dirname(os.path.abspath(first_xml))
    name = _text(root, "filename") or ""
    candidates = []
    path = _text(root, "path")
    if path:
        candidates.append(os.path.dirname(path))
    named = _text(root, "folder")
    parent = os.path.dirname(folder)
    candidates += [os.path.join(parent, "JPEGImages"), folder]
    if named:
        candidates += [os.path.join(parent, named), os.path.join(folder, named)]
    candidates += [os.path.join(parent, "images"), parent]
    for candidate in candidates:
        if name and os.path.isfile(os.path.join(candidate, name)):
            return candidate
    return folder


def _read_one(builder: RegionFrameBuilder, path: str, label_prefix: str) -> ET.Element | None:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        builder.error("bad_xml", f"the file is not valid XML ({error}); expected a VOC "
                      "<annotation>.", row=error.position[0], source=path)
        return None
    if root.tag != "annotation":
        builder.error("unknown_format", f"the root element is <{root.tag}>; expected a VOC "
                      "<annotation>.", source=path, value=root.tag)
        return None
    filename = _text(root, "filename")
    objects = root.findall("object")
    if not filename:
        builder.error("bad_record", "the annotation has no <filename>.", source=path,
                      column="filename")
        return None
    size = root.find("size")
    width, height = _text(size, "width"), _text(size, "height")
    if size is None or not width or not height:
        builder.error("missing_size", "the annotation has no <size> with <width> and <height>; "
                      "expected <size><width>W</width><height>H</height></size>.", source=path,
                      column="size", path=filename)
        return None
    if not objects:
        builder.rows_without_regions.append({"row": label_prefix, "filename": filename})
    for k, obj in enumerate(objects):
        _object(builder, path, f"{label_prefix}#{k}", filename, obj, (width, height))
    return root


def _flag(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return value


def _object(builder: RegionFrameBuilder, path: str, row: str, filename: str, obj: ET.Element,
            size: tuple[str, str]) -> None:
    box = obj.find("bndbox")
    corners = [_text(box, tag) for tag in ("xmin", "ymin", "xmax", "ymax")]
    try:
        xmin, ymin, xmax, ymax = (float(v) for v in corners)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        builder.error("bad_shape", "the object has no <bndbox> with numeric <xmin>, <ymin>, "
                      "<xmax>, <ymax>.", row, filename, "bndbox", corners, source=path)
        return
    label = _text(obj, "name")
    if not label:
        builder.error("label_missing", "the object has no <name>.", row, filename, "name",
                      source=path)
        return
    builder.add(row, filename, (xmin - 1, ymin - 1, xmax, ymax), label, "rect",
                difficult=_flag(_text(obj, "difficult")), truncated=_flag(_text(obj, "truncated")),
                pose=_text(obj, "pose"), occluded=_flag(_text(obj, "occluded")),
                image_width=float(size[0]), image_height=float(size[1]))


def read_voc(
    source: str | os.PathLike[str], *, on_error: str = "raise",
    point_box_size: PointBoxSize = None, encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read Pascal VOC XML (one file, or a folder of them) into the common region frame.

    Args:
        source: An XML file, a folder of XML files, or a VOC root with `Annotations/`.
        on_error: `"raise"` (default) or `"skip"`; see `read_annotations`.
        point_box_size: Unused (VOC has boxes only); accepted for a uniform call.
        encoding: Unused (XML declares its encoding).

    Returns:
        The frame with `difficult`, `truncated`, `pose`, `occluded`,
        `image_width`, `image_height`; row labels `"<xml file>#<k>"`.

    Raises:
        AnnotationError: Malformed files (when raising): invalid XML, no
            `<size>`, no `<bndbox>`, no `<name>`.

    Example:
    >>> read_voc("VOC2007").loc["000001.xml#0", "label"]  # doctest: +SKIP
    'dog'

    """
    path = os.fspath(source)
    builder = RegionFrameBuilder(path, "voc", on_error, point_box_size)
    files = voc_files(path)
    first_root = None
    for xml in files:
        root = _read_one(builder, xml, os.path.basename(xml))
        last = builder.problems[-1:] if root is None and len(files) == 1 else []
        if last and last[0].kind in ("unknown_format", "bad_xml"):
            raise_problems(last)  # the one file given is not VOC: nothing to skip
        if first_root is None and root is not None:
            first_root = root
    base = files[0] if files else os.path.join(path, "x.xml")
    image_dir = _image_dir(base, first_root) if first_root is not None else os.path.dirname(
        os.path.abspath(base))
    return builder.frame(image_dir)
