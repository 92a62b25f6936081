"""Which format a path holds, and `read_annotations`: any format to the common region frame.

Each format is one module with a sniff (from the file's head, or the folder's
layout) and a reader returning the common frame described in
`keras_roi_datagen.formats.regions`:

| name | module | source |
|---|---|---|
| `"via"` | `via` (VIA 1/2/3 CSV and JSON) | a file |
| `"coco"` | `coco` | a JSON file |
| `"voc"` | `voc` | an XML file, or a folder of them |
| `"yolo"` | `yolo` | a folder holding `labels/` (or its `data.yaml`) |
| `"labelstudio"` | `labelstudio` | a JSON file (list of tasks) |
| `"cvat"` | `cvat` | an XML file |

`detect_format` names a path's format (`"csv"` for a plain CSV table, which
has no region geometry of its own and is read by `read_table`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from keras_roi_datagen.errors import AnnotationError, Problem
from keras_roi_datagen.formats.regions import (
    PointBoxSize,
    RegionFrameBuilder,
    check_on_error,
)

__all__ = ["FORMATS", "Format", "detect_format", "read_annotations", "read_via_regions"]

_HEAD = 65536


@dataclass(frozen=True)
class Format:
    """One annotation format: its name, what it looks like, and its reader."""

    name: str
    suffixes: tuple[str, ...]
    sniff: Callable[[str], bool]
    read: Callable[..., pd.DataFrame]


def _head(path: str) -> str:
    with open(path, "rb") as handle:
        raw = handle.read(_HEAD)
    for codec in ("utf-8-sig", "utf-16", "latin-1"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return ""


def _sniff_via(head: str) -> bool:
    text = head.lstrip("\ufeff \t\r\n")
    return ("region_shape_attributes" in text or "spatial_coordinates" in text
            or "_via_" in text or ('"regions"' in text and '"filename"' in text)
            or ('"metadata"' in text and '"project"' in text))


def read_via_regions(
    path: str | os.PathLike[str], *, on_error: str = "raise",
    point_box_size: PointBoxSize = None, encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read any VIA file into the common region frame (through `read_via`).

    Region-attribute keys stay columns, as in `read_via`; `label` is the
    `label` attribute, else the only attribute when there is one. VIA `point`
    regions become boxes with `point_box_size`, else are left out (reported).

    Args:
        path: A VIA CSV or JSON file (VIA 1, 2 or 3).
        on_error: `"raise"` (default) or `"skip"`.
        point_box_size: Size of the box made around points.
        encoding: The encoding used when the file has no byte-order mark.

    Returns:
        The frame, indexed as `read_via` indexes it (CSV line or `"<file>#<k>"`).

    Raises:
        AnnotationError: As `read_via`, and for shapes that give no box (when raising).

    Example:
    >>> read_via_regions("via_region_data.csv")[["x", "y", "w", "h"]]  # doctest: +SKIP

    """
    from keras_roi_datagen.boxes import ShapeError, shape_to_xyxy
    from keras_roi_datagen.formats.via import read_via

    source = os.fspath(path)
    check_on_error(on_error)
    table = read_via(source, on_error="collect", encoding=encoding)
    builder = RegionFrameBuilder(source, "via", on_error, point_box_size)
    builder.problems.extend(table.attrs.get("problems", []))
    builder.rows_without_regions.extend(table.attrs.get("rows_without_regions", []))
    columns: dict[str, str] = table.attrs.get("attribute_columns", {})
    keep = [c for c in table.columns if c not in ("region_shape_attributes", "region_attributes",
                                                   "file_attributes", "filename")]
    label_col = "label" if "label" in columns.values() else (
        next(iter(columns.values())) if len(columns) == 1 else None)
    records = table[keep].to_dict("records")
    for row, filename, shape, values in zip(table.index.tolist(), table["filename"].tolist(),
                                            table["region_shape_attributes"].tolist(), records):
        label = values.pop(label_col) if label_col in values else None
        attributes: dict[str, Any] = {
            ("attribute_" + str(k) if k in ("x", "y", "w", "h", "shape") else str(k)): v
            for k, v in values.items()}
        name = str(shape.get("name", "rect")).lower()
        if name == "point":
            builder.add_point(row, filename, [(float(shape["cx"]), float(shape["cy"]))], label,
                              "point", **attributes)
            continue
        try:
            box = shape_to_xyxy(shape)
        except ShapeError as error:
            builder.error(error.kind, str(error), row, filename, "region_shape_attributes", shape)
            continue
        builder.add(row, filename, box, label, name, **attributes)
    return builder.frame(os.path.dirname(os.path.abspath(source)))


def _read_coco(path: str, **kwargs: Any) -> pd.DataFrame:
    from keras_roi_datagen.formats.coco import read_coco

    return read_coco(path, **kwargs)


def _lazy(module: str, name: str) -> Callable[..., pd.DataFrame]:
    def read(path: str, **kwargs: Any) -> pd.DataFrame:
        import importlib

        kwargs.pop("include_crowd", None)
        reader: Callable[..., pd.DataFrame] = getattr(
            importlib.import_module(f"keras_roi_datagen.formats.{module}"), name)
        return reader(path, **kwargs)

    return read


def _sniffer(module: str, name: str) -> Callable[[str], bool]:
    def sniff(head: str) -> bool:
        import importlib

        found: Callable[[str], bool] = getattr(
            importlib.import_module(f"keras_roi_datagen.formats.{module}"), name)
        return found(head)

    return sniff


FORMATS: dict[str, Format] = {
    "via": Format("via", (".csv", ".json"), _sniff_via, _lazy("registry", "read_via_regions")),
    "coco": Format("coco", (".json",), _sniffer("coco", "sniff_coco"), _read_coco),
    "labelstudio": Format("labelstudio", (".json",), _sniffer("labelstudio", "sniff_labelstudio"),
                          _lazy("labelstudio", "read_labelstudio")),
    "cvat": Format("cvat", (".xml",), _sniffer("cvat", "sniff_cvat"), _lazy("cvat", "read_cvat")),
    "voc": Format("voc", (".xml",), _sniffer("voc", "sniff_voc"), _lazy("voc", "read_voc")),
    "yolo": Format("yolo", (".yaml", ".yml"), lambda head: False, _lazy("yolo", "read_yolo")),
}


def _unknown(path: str, message: str) -> AnnotationError:
    problem = Problem("unknown_format", message, source=path)
    return AnnotationError(problem.describe(), [problem])


def _detect_folder(path: str) -> str:
    from keras_roi_datagen.formats.yolo import yolo_root

    if yolo_root(path) is not None:
        return "yolo"
    names = os.listdir(path)
    if os.path.isdir(os.path.join(path, "Annotations")) or any(
            n.lower().endswith(".xml") for n in names):
        return "voc"
    raise _unknown(path, "the folder is not an annotation dataset: expected a YOLO folder "
                   "(labels/ with images/ and data.yaml or classes.txt) or a folder of VOC "
                   ".xml files (or a VOC root with Annotations/).")


def detect_format(path: str | os.PathLike[str]) -> str:
    """Name the annotation format of a file or folder from its head or layout.

    Args:
        path: A file (VIA CSV/JSON, COCO JSON, Label Studio JSON, CVAT XML, VOC
            XML, a YOLO `data.yaml`, a plain CSV) or a folder (YOLO, VOC).

    Returns:
        `"via"`, `"coco"`, `"voc"`, `"yolo"`, `"labelstudio"`, `"cvat"`, or
        `"csv"` for a CSV table that is not a VIA export.

    Raises:
        FileNotFoundError: `path` does not exist.
        AnnotationError: Kind `"unknown_format"`: nothing recognisable.

    Example:
    >>> detect_format("instances_val2017.json")  # doctest: +SKIP
    'coco'

    """
    source = os.fspath(path)
    if os.path.isdir(source):
        return _detect_folder(source)
    if not os.path.isfile(source):
        raise FileNotFoundError(f"annotation file or folder not found: {source!r}")
    suffix = os.path.splitext(source)[1].lower()
    if suffix in (".yaml", ".yml"):
        return "yolo"
    head = _head(source)
    stripped = head.lstrip("\ufeff \t\r\n")
    if suffix == ".xml" or stripped.startswith("<"):
        for name in ("cvat", "voc"):
            if FORMATS[name].sniff(head):
                return name
        raise _unknown(source, "the XML file is neither CVAT (<annotations>) nor Pascal VOC "
                       "(<annotation>).")
    if suffix == ".json" or stripped[:1] in ("{", "["):
        for name in ("via", "coco", "labelstudio"):
            if FORMATS[name].sniff(head):
                return name
        return "via"  # an unusual VIA export; its reader names what is wrong
    return "via" if _sniff_via(head) else "csv"


def read_annotations(
    source: str | os.PathLike[str], format: str = "auto", *, on_error: str = "raise",
    include_crowd: bool = False, point_box_size: PointBoxSize = None, encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read annotations in any supported format into one table, one row per region.

    Columns: `filename` (as the source names the image, relative to
    `attrs["image_dir"]`), `x`, `y`, `w`, `h` (float pixels of the image as
    displayed, EXIF orientation applied: the box covers `[x, x+w) x [y, y+h)`),
    `label`, `shape` (the original shape kind), then the format's own
    attributes (COCO `iscrowd`, `category_id`, `area`; VOC `difficult`,
    `truncated`, `pose`; CVAT attributes; Label Studio `annotator`; VIA
    attribute keys). The index is the source row label errors cite.

    Args:
        source: A file or folder (see `detect_format`).
        format: `"auto"` (default: detected) or one of `"via"`, `"coco"`,
            `"voc"`, `"yolo"`, `"labelstudio"`, `"cvat"`.
        on_error: `"raise"` (default): one error listing every malformed
            record (file, record, field, value, what was expected).
            `"skip"`: they are left out and listed in `attrs["problems"]`.
        include_crowd: Keep COCO crowd regions (`iscrowd=1`). Defaults to
            `False`: left out and listed as warnings.
        point_box_size: Pixels (or `(width, height)`) of the box made around
            point and keypoint annotations; `None` (default) leaves them out,
            listed as warnings.
        encoding: Text encoding of files without a byte-order mark.

    Returns:
        The frame. `attrs`: `source`, `format`, `image_dir` (where the format
        keeps its images: beside the JSON or in `images/` for COCO, `images/`
        beside `labels/` for YOLO, the folder the XML names for VOC),
        `problems` (records left out, and warnings such as clipped
        fractions), `rows_without_regions`.

    Raises:
        AnnotationError: Malformed input (when raising), or a source that is
            not the format given.
        FileNotFoundError: `source` does not exist.
        ValueError: An unknown `format` or `on_error`.

    Example:
    >>> df = read_annotations("instances_val2017.json")  # doctest: +SKIP
    >>> ds = RoiDataset(df, y_cols="label")  # doctest: +SKIP

    """
    check_on_error(on_error)
    if format != "auto" and format not in FORMATS:
        raise ValueError(f"`format` must be 'auto' or one of {sorted(FORMATS)}. "
                         f"Received: format={format!r}")
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError("`source` must be a path to an annotation file or folder. "
                        f"Received: {type(source).__name__}")
    path = os.fspath(source)
    name = detect_format(path) if format == "auto" else format
    if name == "csv":
        raise _unknown(path, "the CSV file is not a VIA export; read plain tables with "
                       "pandas.read_csv and pass the DataFrame to RoiDataset with box_cols=.")
    if not os.path.exists(path):
        raise FileNotFoundError(f"annotation file or folder not found: {path!r}")
    return FORMATS[name].read(path, on_error=on_error, include_crowd=include_crowd,
                              point_box_size=point_box_size, encoding=encoding)
