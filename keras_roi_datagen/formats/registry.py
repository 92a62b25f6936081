"""Which format a path holds, and `read_annotations`: any format to the common region frame.

Each format is one module with a sniff (from the file's head, or the folder's
layout) and a reader returning the common frame described in
`keras_roi_datagen.formats.regions`:

| name | module | source |
|---|---|---|
| `"via"` | `via` (VIA 1/2/3 CSV and JSON; VIA 3 in `via3`) | a file |
| `"coco"` | `coco` | a JSON file, or a folder of them (`annotations/`, split folders) |
| `"voc"` | `voc` | an XML file, or a folder of them |
| `"yolo"` | `yolo` (`data.yaml` in `yolo_yaml`) | a dataset folder, its `data.yaml`, or a split's folder |
| `"labelstudio"` | `labelstudio` | a JSON file (list of tasks), or a folder holding one |
| `"cvat"` | `cvat` | an XML file, or a folder holding `annotations.xml` |

A folder is tried against each format's folder layout in `_FOLDER_ORDER`;
one that matches none is refused with every layout listed.

`detect_format` names a path's format (`"csv"` for a plain CSV table, which
has no region geometry of its own and is read by `read_raw_table` with
`csv.read_generic_csv`). `label_columns` names the columns a table's format
keeps each region's class in (what `y_cols=None` means).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from keras_roi_datagen.errors import AnnotationError, Problem
from keras_roi_datagen.formats.heads import file_head
from keras_roi_datagen.formats.regions import PointBoxSize, check_split, select_split
from keras_roi_datagen.options import check_choice, check_on_error

__all__ = ["FORMATS", "PLAIN_KINDS", "Format", "Source", "detect_format", "label_columns",
           "open_source", "read_annotations"]

_VIA_LABELS = ("name", "type")
_REGION_LABELS = ("label",)

PLAIN_KINDS = ("csv", "columnar", "frame")
"""Sources that are tables of any columns rather than an annotation format: a plain CSV
file, a Parquet or Arrow file, and a DataFrame."""


@dataclass(frozen=True)
class Format:
    """One annotation format: what its files look like, how to read them, where its class is.

    The order of `FORMATS` is the sniff order within one syntax; adding a
    format is one module under `formats/` and one entry here.

    Args:
        name: The `format=` name.
        syntax: What a file of it is: `"json"`, `"xml"`, `"csv"` or `"yaml"`.
        sniff: Tells from a file's decoded head (its first 64 KiB) whether it
            is this format.
        read: Reads a file or folder into the common region frame.
        layout: What the format's folder looks like, for messages; empty when
            it has no folder layout.
        sniff_folder: Tells whether a folder is a dataset of this format.
            Defaults to `None` (no folder layout).
        label_columns: The columns a table of this format keeps each region's
            class in (what `y_cols=None` means). Defaults to `("label",)`.
        fallback: Whether a file of this syntax that no format recognises is
            read as this one (whose reader then names what is wrong).
        signature: What marks a file of it, for messages (e.g. `"<annotations>"`).
        options: The keyword arguments of `read_annotations` its reader takes
            beyond `on_error`, `point_box_size` and `encoding` (`"split"`,
            `"include_crowd"`, `"image_dir"`).
        splits: What tells its splits, for messages (the summary of a data
            module says where its splits came from); empty when the format
            has none of its own.
    """

    name: str
    syntax: str
    sniff: Callable[[str], bool]
    read: Callable[..., pd.DataFrame]
    layout: str = ""
    sniff_folder: Callable[[str], bool] | None = None
    label_columns: tuple[str, ...] = _REGION_LABELS
    fallback: bool = False
    signature: str = ""
    options: tuple[str, ...] = ()
    splits: str = ""


def _head(path: str) -> str:
    return file_head(path)


def _imported(module: str, name: str) -> Any:
    import importlib

    return getattr(importlib.import_module(f"keras_roi_datagen.formats.{module}"), name)


_OPTIONS = ("split", "include_crowd", "image_dir")


def _reader(module: str, name: str, options: tuple[str, ...] = ()) -> Callable[..., pd.DataFrame]:
    def read(path: str, **kwargs: Any) -> pd.DataFrame:
        for option in _OPTIONS:
            if option not in options:
                kwargs.pop(option, None)
        reader: Callable[..., pd.DataFrame] = _imported(module, name)
        return reader(path, **kwargs)

    return read


def _sniffer(module: str, name: str) -> Callable[[str], bool]:
    def sniff(head: str) -> bool:
        found: Callable[[str], bool] = _imported(module, name)
        return found(head)

    return sniff


def _folder_sniffer(module: str, name: str) -> Callable[[str], bool]:
    def sniff(path: str) -> bool:
        found: Callable[[str], bool] = _imported(module, name)
        return found(path)

    return sniff


def _is_voc_folder(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "Annotations")) or any(
        n.lower().endswith(".xml") for n in os.listdir(path))


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("via", "json", _sniffer("via", "sniff_via"), _reader("via", "read_via_regions"),
           label_columns=_VIA_LABELS, fallback=True),
    Format("coco", "json", _sniffer("coco", "sniff_coco"),
           _reader("coco", "read_coco", ("split", "include_crowd")),
           layout="a COCO folder (COCO JSON files, e.g. annotations/instances_<split>.json, or "
                  "one per split folder as train/_annotations.coco.json)",
           sniff_folder=_folder_sniffer("coco", "is_coco_folder"), options=("split", "include_crowd"),
           splits="COCO file names instances_<split>.json, or split folders"),
    Format("labelstudio", "json", _sniffer("labelstudio", "sniff_labelstudio"),
           _reader("labelstudio", "read_labelstudio", ("image_dir",)),
           layout="a Label Studio export (a folder holding one Label Studio JSON file)",
           sniff_folder=_folder_sniffer("labelstudio", "is_labelstudio_folder"),
           options=("image_dir",)),
    Format("cvat", "xml", _sniffer("cvat", "sniff_cvat"), _reader("cvat", "read_cvat", ("split",)),
           signature="CVAT (<annotations>)",
           layout="a CVAT for images export (annotations.xml, with images/)",
           sniff_folder=_folder_sniffer("cvat", "is_cvat_folder"), options=("split",),
           splits="CVAT subsets"),
    Format("voc", "xml", _sniffer("voc", "sniff_voc"), _reader("voc", "read_voc"),
           signature="Pascal VOC (<annotation>)",
           layout="a folder of VOC .xml files (or a VOC root with Annotations/)",
           sniff_folder=_is_voc_folder),
    Format("yolo", "yaml", lambda head: True, _reader("yolo", "read_yolo", ("split",)),
           layout="a YOLO dataset (data.yaml with train/val, or labels/ with images/ and "
                  "classes.txt, or a split's folder of one)",
           sniff_folder=_folder_sniffer("yolo", "is_dataset"), options=("split",),
           splits="YOLO data.yaml train/val/test, or split folders"),
)}
"""Every annotation format, by name, in sniff order. VIA also reads CSV files (sniffed
by their header) and is what an unrecognised JSON file is read as."""

# Folder layouts are tried in this order: a YOLO root may hold JSON or XML files too, a
# CVAT export's XML would pass for a folder of VOC files.
_FOLDER_ORDER = ("yolo", "coco", "cvat", "labelstudio", "voc")
_SUFFIX_SYNTAX = {".json": "json", ".xml": "xml", ".yaml": "yaml", ".yml": "yaml"}


@dataclass(frozen=True)
class Source:
    """What a table argument is, decided once: its kind and where it is read from.

    Built by `open_source`; the dataset, the data module, the command line
    and the index builder all take this answer instead of detecting again.

    Args:
        kind: A `FORMATS` name, or one of `PLAIN_KINDS`: `"csv"` (a CSV file
            that is not a VIA export), `"columnar"` (Parquet or Arrow) or
            `"frame"` (a DataFrame).
        name: The table as the user named it (a path or URL); `None` for a
            DataFrame.
        local: The local file or folder read: the path itself, or the copy a
            URL was downloaded to. `None` for a DataFrame.
        frame: The DataFrame, for `kind="frame"`.
        version: For a URL, its remote version (size, ETag, modification
            time), which keys the index cache.
    """

    kind: str
    name: str | None = None
    local: str | None = None
    frame: pd.DataFrame | None = field(default=None, compare=False, repr=False)
    version: str | None = None

    @property
    def is_url(self) -> bool:
        """Whether the table was named by a URL."""
        return self.version is not None

    @property
    def label_columns(self) -> tuple[str, ...]:
        """The columns this source keeps each region's class in (what `y_cols=None` means).

        A COCO, VOC, YOLO, Label Studio or CVAT source, and a region frame
        from one, keep it in `label`; VIA exports in region attributes,
        `("name", "type")` by this library's convention, and so do plain
        tables. A DataFrame from elsewhere is a region frame when it has a
        `label` column and neither `name` nor `type`.
        """
        if self.kind in FORMATS:
            return FORMATS[self.kind].label_columns
        if self.frame is not None:
            return label_columns(self.frame)
        return _VIA_LABELS

    def __repr__(self) -> str:
        where = "<DataFrame>" if self.name is None else repr(self.name)
        return f"Source(kind={self.kind!r}, {where})"


def open_source(table: pd.DataFrame | str | os.PathLike[str], format: str = "auto", *,
                storage_options: Mapping[str, Any] | None = None) -> Source:
    """Decides what a table argument is: the one place that does.

    A URL is downloaded once (see `storage.local_table`) and its copy
    detected like a local file.

    Args:
        table: A DataFrame, or the path or URL of an annotation file, folder
            or table.
        format: `"auto"` (default: detected) or a `FORMATS` name, which wins
            over detection.
        storage_options: For a URL: passed to fsspec. Defaults to `None`.

    Returns:
        The `Source`.

    Raises:
        ValueError: An unknown `format`.
        FileNotFoundError: A local path that does not exist.
        AnnotationError: Kind `"unknown_format"` (see `detect_format`).
        StorageError: A URL that cannot be read.

    Example:
    >>> open_source(pd.DataFrame({"filename": ["a.jpg"]})).kind
    'frame'
    """
    from keras_roi_datagen import storage
    from keras_roi_datagen.formats.columnar import is_columnar

    check_choice("format", format, ("auto", *FORMATS))
    if isinstance(table, pd.DataFrame):
        return Source("frame", frame=table)
    if not isinstance(table, (str, os.PathLike)):
        raise TypeError("`table` must be a DataFrame or the path of a table, annotation file or "
                        f"folder. Received: {type(table).__name__}")
    name = os.fspath(table)
    local, version = name, None
    if storage.is_url(name):
        local, version = storage.fetch_table(name, storage_options)
    elif not os.path.exists(name):
        raise FileNotFoundError(f"annotation table not found: {name!r}")
    if format != "auto":
        kind = format
    elif is_columnar(local):
        kind = "columnar"
    else:
        kind = detect_format(local)
    return Source(kind, name, local, version=version)


def label_columns(table: pd.DataFrame | str | os.PathLike[str], *,
                  format: str = "auto") -> tuple[str, ...]:
    """Name the label columns of a table's format: what `y_cols=None` means.

    A COCO, VOC, YOLO, Label Studio or CVAT path, and the region frame
    `read_annotations` makes of one, keep each region's class in `label`.
    VIA exports keep it in region attributes, `("name", "type")` by this
    library's convention, and so do plain tables (CSV, Parquet, Arrow). A
    DataFrame from elsewhere is a region frame when it has a `label` column
    and neither `name` nor `type`. Only a file's head is read; a URL is not
    read at all (pass `format` to name it; `RoiDataset` reads a URL's table
    once and takes its detected format, see `Source.label_columns`).

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
        if table.attrs.get("format") in FORMATS and table.attrs["format"] != "via":
            return _REGION_LABELS
        columns = set(table.columns)
        return _REGION_LABELS if "label" in columns and not columns & set(_VIA_LABELS) else (
            _VIA_LABELS)
    if format == "auto":
        from keras_roi_datagen import storage
        from keras_roi_datagen.formats.columnar import is_columnar

        source = os.fspath(table)
        if storage.is_url(source) or is_columnar(source):
            return _VIA_LABELS
        format = detect_format(source)
    return FORMATS[format].label_columns if format in FORMATS else _VIA_LABELS


def _unknown(path: str, message: str) -> AnnotationError:
    problem = Problem("unknown_format", message, source=path)
    return AnnotationError(problem.describe(), [problem])


def _detect_folder(path: str) -> str:
    for name in _FOLDER_ORDER:
        sniff = FORMATS[name].sniff_folder
        if sniff is not None and sniff(path):
            return name
    layouts = "; or ".join(FORMATS[name].layout for name in _FOLDER_ORDER)
    raise _unknown(path, f"the folder is not an annotation dataset: expected {layouts}.")


def _detect_syntax(path: str, syntax: str, head: str) -> str | None:
    candidates = [f for f in FORMATS.values() if f.syntax == syntax]
    for candidate in candidates:
        if candidate.sniff(head):
            return candidate.name
    fallback = [f.name for f in candidates if f.fallback]
    return fallback[0] if fallback else None


def detect_format(path: str | os.PathLike[str]) -> str:
    """Name the annotation format of a file or folder from its head or layout.

    Args:
        path: A file (VIA CSV/JSON, COCO JSON, Label Studio JSON, CVAT XML, VOC
            XML, a YOLO `data.yaml`, a plain CSV) or a folder (YOLO, COCO, CVAT,
            Label Studio, VOC; see each format's `layout`).

    Returns:
        A `FORMATS` name, or `"csv"` for a CSV table that is not a VIA export.

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
    syntax = _SUFFIX_SYNTAX.get(suffix)
    if syntax == "yaml":
        return _detect_syntax(source, "yaml", "") or "yolo"
    head = _head(source)
    stripped = head.lstrip("\ufeff \t\r\n")
    if syntax is None and stripped[:1] == "<":
        syntax = "xml"
    elif syntax is None and stripped[:1] in ("{", "["):
        syntax = "json"
    if syntax in ("xml", "json"):
        found = _detect_syntax(source, syntax, head)
        if found is None:
            names = " nor ".join(f.signature or f.name for f in FORMATS.values()
                                 if f.syntax == syntax)
            raise _unknown(source, f"the {syntax.upper()} file is neither {names}.")
        return found
    return "via" if FORMATS["via"].sniff(head) else "csv"


def read_annotations(
    source: str | os.PathLike[str], format: str = "auto", *, on_error: str = "raise",
    include_crowd: bool = False, point_box_size: PointBoxSize = None, encoding: str = "utf-8",
    split: str | None = None, image_dir: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Read annotations in any supported format into one table, one row per region.

    Columns: `filename` (as the source names the image, relative to
    `attrs["image_dir"]`), `x`, `y`, `w`, `h` (float pixels of the image as
    displayed, EXIF orientation applied: the box covers `[x, x+w) x [y, y+h)`),
    `label`, `shape` (the original shape kind), `split` when the export says
    which split each region belongs to (`"train"`, `"val"` or `"test"`: YOLO
    `data.yaml` splits, COCO `instances_<split>.json` names or split folders,
    CVAT subsets), then the format's own attributes (COCO `iscrowd`,
    `category_id`, `area`; VOC `difficult`, `truncated`, `pose`; CVAT
    attributes; Label Studio `annotator`; VIA attribute keys). The index is
    the source row label errors cite.

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
        split: Read only this split (`"train"`, `"val"` or `"test"`, or the
            export's own spelling: `"valid"`, `"validation"`, ...). Defaults
            to `None`: every region. Readers that keep splits in separate
            files read only that split's files.
        image_dir: Where the images are, when not where the format keeps
            them; the Label Studio reader looks for each image's file there.
            Defaults to `None`.

    Returns:
        The frame. `attrs`: `source`, `format`, `image_dir` (where the format
        keeps its images: beside the JSON or in `images/` for COCO, `images/`
        beside `labels/` for YOLO, the folder the XML names for VOC),
        `problems` (records left out, and warnings such as clipped
        fractions), `rows_without_regions`, and `splits` (the splits the
        export names) when it names any.

    Raises:
        AnnotationError: Malformed input (when raising), or a source that is
            not the format given.
        FileNotFoundError: `source` does not exist.
        ValueError: An unknown `format` or `on_error`; a `split` the export
            does not have (or an export that names no splits).

    Example:
    >>> df = read_annotations("instances_val2017.json")  # doctest: +SKIP
    >>> ds = RoiDataset(df)  # y_cols defaults to ("label",)  # doctest: +SKIP
    >>> train = read_annotations("roboflow-export/data.yaml", split="train")  # doctest: +SKIP

    """
    check_on_error(on_error)
    if format != "auto" and format not in FORMATS:
        raise ValueError(f"`format` must be 'auto' or one of {sorted(FORMATS)}. "
                         f"Received: format={format!r}")
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError("`source` must be a path to an annotation file or folder. "
                        f"Received: {type(source).__name__}")
    if split is not None:
        split = check_split(split)
    path = os.fspath(source)
    name = detect_format(path) if format == "auto" else format
    if name == "csv":
        raise _unknown(path, "the CSV file is not a VIA export; read plain tables with "
                       "pandas.read_csv and pass the DataFrame to RoiDataset with box_cols=.")
    if not os.path.exists(path):
        raise FileNotFoundError(f"annotation file or folder not found: {path!r}")
    frame = FORMATS[name].read(path, on_error=on_error, include_crowd=include_crowd,
                               point_box_size=point_box_size, encoding=encoding, split=split,
                               image_dir=None if image_dir is None else os.fspath(image_dir))
    if split is None:
        return frame
    named = frame.attrs.get("splits")
    if named is not None and split not in named:
        raise ValueError(f"{path} has the split(s) {named}, not {split!r}. "
                         f"Received: split={split!r}")
    return select_split(frame, split)
