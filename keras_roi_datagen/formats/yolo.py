"""YOLO datasets (Ultralytics, Roboflow, LabelImg and Darknet exports).

What YOLO writes (Ultralytics docs "Object Detection Datasets Overview"):
label files `<name>.txt` with one line per object: `class cx cy w h`,
fractions of the image's width and height (centre and size); segmentation
labels are `class x0 y0 x1 y1 ...` (a polygon, also fractions; oriented
boxes are 4-point polygons). Class names come from `data.yaml` (`names:` a
list or `{id: name}`), else `classes.txt` (LabelImg, Roboflow) or
`obj.names` (Darknet), one per line.

Which files belong together (`formats.yolo_yaml`, Ultralytics' own rules):
with a `data.yaml`, its `train`, `val` and `test` splits list the images and
each image's label file is found by replacing the last `/images/` of its
path with `/labels/`. Roboflow's export (`data.yaml` with `train:
../train/images`, and `train/images`, `train/labels`, `valid/...`) and
Ultralytics' (`path:`, `train: images/train2017`, labels in
`labels/train2017`) both read this way. Without one, a folder holding
`labels/` and `images/` is the dataset, and its split is the first folder
under `images/` when every one of them names a split (`images/train`,
`images/val`); a folder holding `train/`, `valid/`, `test/`, each with
`images/` and `labels/`, too.

`source` may be the dataset's folder, its yaml, or one split's folder
(`train/` of a Roboflow export, `images/val2017` or `labels/val2017`): a
split's folder reads that split only, with the class names (and file names,
row labels) of the whole dataset, whose yaml is looked for up to three
folders above (`data.yaml`, `dataset.yaml`, or one named after the dataset's
folder, as `coco8.yaml` beside `coco8/`). Images without a label file, or with an
empty one, are background images (listed in `rows_without_regions`); a
label file without its image is an error naming it. An image listed in two
splits is read once, in the first (train, then val, then test), with a
warning.

Fractions are taken of the image as displayed (EXIF orientation applied),
so each image's header is read. Values a hair outside `[0, 1]` (label-studio
#5014 writes them; Ultralytics then drops the whole image) are clipped and
reported as warnings; a line whose number of values is neither 5 nor an odd
number >= 7 is an error naming file and line. Row labels: `"<label file
relative to labels/>:<line>"` (relative to the dataset folder when the labels
are not all under its `labels/`).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from keras_roi_datagen.errors import AnnotationError
from keras_roi_datagen.formats import yolo_yaml
from keras_roi_datagen.formats.regions import (
    SPLITS,
    PointBoxSize,
    RegionFrameBuilder,
    split_name,
)
from keras_roi_datagen.formats.yolo_yaml import IMAGE_SUFFIXES, Entry, label_folder, label_path

__all__ = ["IMAGE_SUFFIXES", "YoloDataset", "find_dataset", "is_dataset", "read_yolo"]

_YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")
_CLASS_FILES = ("classes.txt", os.path.join("labels", "classes.txt"), "obj.names", "classes.names")
_ANCESTORS = 3  # how far above a split's folder its data.yaml is looked for


@dataclass(frozen=True)
class YoloDataset:
    """A YOLO dataset as found from a path: its root, yaml and image sources.

    Args:
        root: The dataset folder (file names and row labels are relative to it,
            or to its `images/` and `labels/`).
        yaml: The `data.yaml`, if any.
        config: The yaml's mapping (empty without one).
        entries: The image sources, with their splits.
        only: The positions in `entries` the path given stands for (a split's
            folder); `None` for the whole dataset.
    """

    root: str
    yaml: str | None
    config: dict[str, Any]
    entries: tuple[Entry, ...]
    only: frozenset[int] | None = None

    def covering(self, path: str) -> frozenset[int]:
        """The entries a folder inside the dataset holds, or lies in (with their labels)."""
        found = set()
        for i, entry in enumerate(self.entries):
            if entry.path is None or not os.path.isdir(entry.path):
                continue
            for folder in {entry.path, label_folder(entry.path)}:
                if _inside(path, folder) or _inside(folder, path):
                    found.add(i)
        return frozenset(found)


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def _named_yaml(folder: str, names: Sequence[str]) -> str | None:
    for name in names:
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return None


def _yaml_in(folder: str) -> str | None:
    """The dataset yaml of a folder: `data.yaml` and the like, else one naming splits or classes."""
    named = _named_yaml(folder, [*_YAML_NAMES, os.path.basename(folder) + ".yaml"])
    if named is not None:
        return named
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not name.lower().endswith((".yaml", ".yml")) or not os.path.isfile(path):
            continue
        try:
            config = yolo_yaml.load_yaml(path)
        except (AnnotationError, UnicodeDecodeError):
            continue
        if yolo_yaml.has_splits(config) or config.get("names") is not None:
            return path
    return None


def _split_folders(root: str) -> list[tuple[str | None, str]]:
    """The subfolders holding `labels/` (Roboflow's `train/`, `valid/`, `test/`), with their split."""
    return [(split_name(s), s) for s in sorted(os.listdir(root))
            if os.path.isdir(os.path.join(root, s, "labels"))]


def _is_root(folder: str) -> bool:
    """Whether a folder without a yaml is a dataset: it holds `labels/`, or split folders that do."""
    return os.path.isdir(os.path.join(folder, "labels")) or any(
        split for split, _ in _split_folders(folder))


def _folder_entries(root: str) -> tuple[Entry, ...]:
    """The image sources of a dataset folder without splits in a yaml."""
    images = os.path.join(root, "images")
    if os.path.isdir(images):
        subs = sorted(os.listdir(images))
        named = [(split_name(s), s) for s in subs if os.path.isdir(os.path.join(images, s))]
        if subs and len(named) == len(subs) and all(split for split, _ in named):
            return tuple(sorted((Entry(split, f"images/{s}", os.path.join(images, s),
                                       (os.path.join(images, s),)) for split, s in named),
                                key=lambda e: SPLITS.index(e.split or "train")))
        return (Entry(None, "images", images, (images,)),)
    if os.path.isdir(os.path.join(root, "labels")):
        return (Entry(None, "images", None, (images,)),)
    return tuple(sorted((Entry(split, f"{s}/images", os.path.join(root, s, "images"),
                               (os.path.join(root, s, "images"),))
                         for split, s in _split_folders(root) if split),
                        key=lambda e: SPLITS.index(e.split or "train")))


def _from_yaml(yaml_path: str) -> tuple[YoloDataset, list[Any]]:
    config = yolo_yaml.load_yaml(yaml_path)
    root, warning = yolo_yaml.root_of(yaml_path, config)
    entries = (tuple(yolo_yaml.split_entries(yaml_path, config, root))
               if yolo_yaml.has_splits(config) else _folder_entries(root))
    return YoloDataset(root, yaml_path, config, entries), [warning] if warning else []


def _without_yaml(path: str) -> YoloDataset | None:
    parent = os.path.dirname(path)
    if _is_root(path):
        return YoloDataset(path, None, {}, _folder_entries(path))
    for root in (parent, os.path.dirname(parent)):
        inner = os.path.relpath(path, root).split(os.sep)[0]
        if inner in ("labels", "images") and os.path.isdir(os.path.join(root, "labels")):
            found = YoloDataset(root, None, {}, _folder_entries(root))
            covered = found.covering(path) if path != os.path.join(root, inner) else None
            return replace(found, only=covered or None)
    return None


def _find(source: str) -> tuple[YoloDataset, list[Any]] | None:
    path = os.path.abspath(source)
    if os.path.isfile(path):
        return _from_yaml(path) if path.lower().endswith((".yaml", ".yml")) else None
    if not os.path.isdir(path):
        return None
    here = _yaml_in(path)
    if here is not None:
        found_here = _from_yaml(here)
        if found_here[0].entries:  # a yaml naming classes only, in a folder of anything else: no
            return found_here
    folder = path
    for _ in range(_ANCESTORS):  # only yamls named as datasets are: no stranger's yaml is read
        child, folder = os.path.basename(folder), os.path.dirname(folder)
        above = _named_yaml(folder, [*_YAML_NAMES, f"{child}.yaml", f"{child}.yml"])
        if above is None:
            continue
        found, warnings = _from_yaml(above)
        covered = found.covering(path)
        if covered:
            return replace(found, only=covered), warnings
    found_without = _without_yaml(path)
    return (found_without, []) if found_without is not None else None


def find_dataset(source: str | os.PathLike[str]) -> YoloDataset | None:
    """Find the YOLO dataset a path is, or is a split of.

    Args:
        source: The dataset folder, its yaml, or one split's folder.

    Returns:
        The dataset, or `None` when `source` is not a YOLO dataset.

    Raises:
        AnnotationError: Kind `"bad_yaml"`: its yaml cannot be read.

    Example:
    >>> find_dataset("roboflow-export/train").only  # doctest: +SKIP
    frozenset({0})

    """
    found = _find(os.fspath(source))
    return None if found is None else found[0]


def is_dataset(source: str) -> bool:
    """Tell whether a folder is a YOLO dataset (or a split of one); a broken yaml counts."""
    try:
        return find_dataset(source) is not None
    except AnnotationError:
        return True


def _class_files(root: str) -> tuple[dict[int, str] | None, str | None]:
    for name in _CLASS_FILES:
        path = os.path.join(root, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8-sig") as handle:
                names = [line.strip() for line in handle if line.strip()]
            return dict(enumerate(names)), path
    return None, None


def _class_names(dataset: YoloDataset) -> tuple[dict[int, str] | None, str | None]:
    if dataset.yaml is not None:
        names = yolo_yaml.class_names(dataset.yaml, dataset.config)
        if names is not None:
            return names, dataset.yaml
    return _class_files(dataset.root)


def _common(paths: Sequence[str], preferred: str, root: str) -> str:
    """`preferred` when every path lies in it, else the root, else the folder they all share."""
    for folder in (preferred, root):
        if paths and all(_inside(p, folder) for p in paths):
            return folder
    return os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else root


def _relative(path: str, base: str) -> str:
    return os.path.relpath(path, base).replace(os.sep, "/")


class _Reading:
    """One read of a dataset: the builder, the names and where file names are relative to."""

    def __init__(self, builder: RegionFrameBuilder, dataset: YoloDataset, names: dict[int, str] | None,
                 images: list[list[str]], encoding: str) -> None:
        self.builder, self.dataset, self.names, self.encoding = builder, dataset, names, encoding
        every = [image for found in images for image in found]
        root = dataset.root
        self.image_dir = _common(every, os.path.join(root, "images"), root)
        self.label_base = _common([label_path(i) for i in every], os.path.join(root, "labels"), root)
        self.claimed: dict[str, str] = {}
        self.seen: dict[str, str | None] = {}
        self.overlaps: dict[tuple[Any, Any], list[str]] = defaultdict(list)

    def image(self, image: str, split: str | None) -> None:
        if image in self.seen:
            self.overlaps[(self.seen[image], split)].append(image)
            return
        self.seen[image] = split
        label = label_path(image)
        filename = _relative(image, self.image_dir)
        if label in self.claimed:
            self.builder.warn("label_shared", f"the label file is also {self.claimed[label]!r}'s "
                              "(two images differ only in suffix); this image was left out.",
                              _relative(label, self.label_base), filename, "filename", filename)
            return
        self.claimed[label] = filename
        relative = _relative(label, self.label_base)
        lines = self._lines(label)
        if not lines:
            self.builder.rows_without_regions.append(
                {"row": relative, "filename": filename, **({"split": split} if split else {})})
            return
        from keras_roi_datagen.decode import ImageProblem, read_image_size

        size: Any
        try:
            size = read_image_size(image)
        except (ImageProblem, OSError) as error:
            size = f"the image cannot be read ({error})"
        for number, fields in lines:
            _line(self.builder, label, f"{relative}:{number}", filename, fields, size, self.names,
                  split)

    def _lines(self, label: str) -> list[tuple[int, list[str]]]:
        if not os.path.isfile(label):
            return []
        with open(label, encoding=self.encoding) as handle:
            return [(n, line.split()) for n, line in enumerate(handle, start=1) if line.strip()]

    def orphans(self, entry: Entry) -> None:
        """Label files in an entry's label folder whose image is not there: errors, per line."""
        folder = entry.path if entry.path is not None else entry.tried[0]
        if os.path.isfile(folder):  # a list of images, or one: no folder of their own
            return
        labels = label_folder(folder)
        if not os.path.isdir(labels):
            return
        for where, _dirs, files in os.walk(labels):
            for name in sorted(files):
                label = os.path.join(where, name)
                if not name.endswith(".txt") or name == "classes.txt" or label in self.claimed:
                    continue
                relative = _relative(label, self.label_base)
                stem = _relative(os.path.splitext(label)[0], labels)
                for number, _fields in self._lines(label):
                    self.builder.error("missing_file", f"no image {stem}.* under {folder}; YOLO "
                                       "fractions need the image's size.", f"{relative}:{number}",
                                       stem, "filename", stem, source=label)

    def report_overlaps(self) -> None:
        for (first, second), images in self.overlaps.items():
            self.builder.warn("split_overlap", f"{len(images)} image(s) of the {second} split are "
                              f"also listed in {first} (e.g. {images[0]}); each is read once, in "
                              f"{first}.", column="split", value=second)


def read_yolo(
    source: str | os.PathLike[str], *, on_error: str = "raise",
    point_box_size: PointBoxSize = None, encoding: str = "utf-8", split: str | None = None,
) -> pd.DataFrame:
    """Read a YOLO dataset (or one split of it) into the common region frame.

    Args:
        source: The dataset folder, its `data.yaml`, or one split's folder.
        on_error: `"raise"` (default) or `"skip"`; see `read_annotations`.
        point_box_size: Unused (YOLO has boxes and polygons); accepted for a uniform call.
        encoding: The label files' encoding.
        split: Read only this split (`"train"`, `"val"`, `"test"`, in any
            spelling `split_name` reads). Defaults to `None` (every split
            the source holds).

    Returns:
        The frame with `class_id`, `image_width`, `image_height`, and
        `split` when the dataset names its splits; labels are class names
        (the class id when the dataset names no classes, with a warning).
        `attrs["image_dir"]`: the dataset's `images/` when every image is in
        it, else the dataset folder; `attrs["class_names"]`: the file the
        names came from; `attrs["splits"]`: the splits the dataset names.

    Raises:
        AnnotationError: Malformed lines, unknown class ids, missing images or
            split folders (when raising); a `data.yaml` that cannot be read.

    Example:
    >>> read_yolo("coco128").loc["train2017/000000000009.txt:1", "label"]  # doctest: +SKIP
    'bowl'

    """
    path = os.fspath(source)
    builder = RegionFrameBuilder(path, "yolo", on_error, point_box_size)
    found = _find(path)
    if found is None:
        builder.error("unknown_format", "not a YOLO dataset: expected a data.yaml, a folder holding "
                      "labels/ (with images/ and classes.txt or data.yaml), or a split's folder "
                      "of one.")
        return builder.frame(None)
    dataset, warnings = found
    builder.problems.extend(warnings)
    names, names_file = _class_names(dataset)
    if names is None:
        builder.warn("no_class_names", "no data.yaml, classes.txt or obj.names found; labels are "
                     "the class ids.", column="label")
    named = [e.split for e in dataset.entries if e.split is not None]
    builder.splits = named or None
    wanted = split_name(split) if split is not None else None
    listed = [yolo_yaml.image_files(e.path, dataset.root) if e.path is not None else ([], [])
              for e in dataset.entries]
    images = [found for found, _ in listed]
    reading = _Reading(builder, dataset, names, images, encoding)
    for i, entry in enumerate(dataset.entries):
        if (dataset.only is not None and i not in dataset.only) or (
                wanted is not None and entry.split != wanted):
            continue
        if entry.path is None and dataset.yaml is not None:
            builder.error("split_not_found", f"the {entry.split} split `{entry.written}` is not there "
                          f"(looked at {', '.join(entry.tried)}).", f"{os.path.basename(dataset.yaml)}"
                          f":{entry.split}", column=entry.split, value=entry.written,
                          source=dataset.yaml)
            continue
        for missing in listed[i][1]:
            assert entry.path is not None
            builder.error("missing_file", f"the image is not there (looked at "
                          f"{', '.join(missing.tried)}).", f"{os.path.basename(entry.path)}:"
                          f"{missing.line}", missing.written, "filename", missing.written,
                          source=entry.path)
        if entry.path is not None and not images[i] and not listed[i][1]:
            builder.warn("split_empty", f"{entry.written} holds no images.", column=entry.split,
                         value=entry.written, source=dataset.yaml)
        for image in images[i]:
            reading.image(image, entry.split)
        reading.orphans(entry)
    reading.report_overlaps()
    frame = builder.frame(reading.image_dir)
    frame.attrs["class_names"] = names_file
    return frame


def _line(builder: RegionFrameBuilder, label_file: str, row: str, filename: str,
          fields: list[str], size: Any, names: dict[int, str] | None, split: str | None) -> None:
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
    where = {"split": split} if split is not None else {}
    builder.add(row, filename, (x0 * width, y0 * height, x1 * width, y1 * height),
                names[class_id] if names is not None else class_id, shape, class_id=class_id,
                image_width=float(width), image_height=float(height), **where)
