"""Which format a path holds, and `read_annotations`: any format to the common region frame.

Each format is one module with a sniff (from the file's head, or the folder's
layout) and a reader returning the common frame described in
`keras_roi_datagen.formats.regions`:

| name | module | source |
|---|---|---|
| `"via"` | `via` (VIA 1/2/3 CSV and JSON; VIA 3 in `via3`) | a file |
| `"coco"` | `coco` | a JSON file |
| `"voc"` | `voc` | an XML file, or a folder of them |
| `"yolo"` | `yolo` | a folder holding `labels/` (or its `data.yaml`) |
| `"labelstudio"` | `labelstudio` | a JSON file (list of tasks) |
| `"cvat"` | `cvat` | an XML file |

`detect_format` names a path's format (`"csv"` for a plain CSV table, which
has no region geometry of its own and is read by `read_table` with
`csv.read_generic_csv`). `label_columns` names the columns a table's format
keeps each region's class in (what `y_cols=None` means).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from keras_roi_datagen.errors import AnnotationError, Problem
from keras_roi_datagen.formats.regions import PointBoxSize, check_on_error

__all__ = ["FORMATS", "Format", "detect_format", "label_columns", "read_annotations"]

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
    "via": Format("via", (".csv", ".json"), _sniffer("via", "sniff_via"),
                  _lazy("via", "read_via_regions")),
    "coco": Format("coco", (".json",), _sniffer("coco", "sniff_coco"), _read_coco),
    "labelstudio": Format("labelstudio", (".json",), _sniffer("labelstudio", "sniff_labelstudio"),
                          _lazy("labelstudio", "read_labelstudio")),
    "cvat": Format("cvat", (".xml",), _sniffer("cvat", "sniff_cvat"), _lazy("cvat", "read_cvat")),
    "voc": Format("voc", (".xml",), _sniffer("voc", "sniff_voc"), _lazy("voc", "read_voc")),
    "yolo": Format("yolo", (".yaml", ".yml"), lambda head: False, _lazy("yolo", "read_yolo")),
}


# Formats read into the common region frame, whose class column is `label`; VIA
# exports and plain tables keep their own attribute columns.
_REGION_FORMATS = frozenset(FORMATS) - {"via"}
_VIA_LABELS = ("name", "type")


def label_columns(table: pd.DataFrame | str | os.PathLike[str], *,
                  format: str = "auto") -> tuple[str, ...]:
    """Name the label columns of a table's format: what `y_cols=None` means.

    A COCO, VOC, YOLO, Label Studio or CVAT path, and the region frame
    `read_annotations` makes of one, keep each region's class in `label`.
    VIA exports keep it in region attributes, `("name", "type")` by this
    library's convention, and so do plain tables (CSV, Parquet, Arrow). A
    DataFrame from elsewhere is a region frame when it has a `label` column
    and neither `name` nor `type`. Only a file's head is read; a URL is not
    read at all (pass `format` to name it).

    Args:
        table: A DataFrame, or the path or URL of an annotation file or folder.
        format: The table's format, as `RoiDataset` takes it. Defaults to
            `"auto"`: detected from a local path (`detect_format`); a URL
            counts as a plain table.

    Returns:
        `("label",)` or `("name", "type")`.

    Raises:
        FileNotFoundError: A local path does not exist (with `format="auto"`).
        AnnotationError: Kind `"unknown_format"`, as `detect_format`.

    Example:
    >>> label_columns("instances_val2017.json")  # doctest: +SKIP
    ('label',)
    >>> label_columns(pd.DataFrame({"filename": ["a.jpg"], "name": ["cat"]}))
    ('name', 'type')

    """
    if isinstance(table, pd.DataFrame):
        if table.attrs.get("format") in _REGION_FORMATS:
            return ("label",)
        columns = set(table.columns)
        return ("label",) if "label" in columns and not columns & set(_VIA_LABELS) else _VIA_LABELS
    if format == "auto":
        from keras_roi_datagen import storage
        from keras_roi_datagen.formats.columnar import is_columnar

        source = os.fspath(table)
        if storage.is_url(source) or is_columnar(source):
            return _VIA_LABELS
        format = detect_format(source)
    return ("label",) if format in _REGION_FORMATS else _VIA_LABELS


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
    return "via" if FORMATS["via"].sniff(head) else "csv"


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
    >>> ds = RoiDataset(df)  # y_cols defaults to ("label",)  # doctest: +SKIP

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
