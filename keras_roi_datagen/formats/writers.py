"""Write a region frame back in a tool's own format: COCO, COCO results, VIA 2 CSV.

`write_annotations(frame, path, format=...)` takes the common region frame
(`read_annotations`), a VIA table (`read_via`), or `RoiDataModule.
predictions_frame` output, so that predictions open in the tool they came
from:

- `"coco"`: a COCO object-detection file (`images`, `annotations` with
  `bbox` `[x, y, w, h]`, `area`, `iscrowd`, `categories`).
- `"coco_results"`: a COCO results file, the list pycocotools'
  `COCO.loadRes` and `COCOeval` read: `[{"image_id", "category_id", "bbox",
  "score"}]`, ids matching the ground truth the frame was read from.
- `"via"`: a VIA 2 CSV export (rect shapes; attributes in `region_attributes`).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["WRITE_FORMATS", "write_annotations"]

WRITE_FORMATS = ("coco", "coco_results", "via")


def _boxes(frame: pd.DataFrame) -> np.ndarray:
    if all(c in frame.columns for c in ("x", "y", "w", "h")):
        return frame[["x", "y", "w", "h"]].to_numpy(dtype=np.float64)
    if "region_shape_attributes" in frame.columns:
        from keras_roi_datagen.boxes import shape_to_xyxy
        from keras_roi_datagen.formats.via_records import parse_object

        xyxy = np.array([shape_to_xyxy(parse_object(s))
                         for s in frame["region_shape_attributes"].tolist()], dtype=np.float64)
        xyxy = xyxy.reshape(-1, 4)
        return np.column_stack([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]])
    raise ValueError("`frame` needs box columns x, y, w, h (read_annotations) or "
                     f"region_shape_attributes (read_via). Received columns: {list(frame.columns)}")


def _image_sizes(frame: pd.DataFrame, names: Sequence[str],
                 image_dir: str | None) -> dict[str, tuple[Any, Any]]:
    sizes: dict[str, tuple[Any, Any]] = {}
    if "image_width" in frame.columns and "image_height" in frame.columns:
        for name, w, h in zip(frame["filename"].tolist(), frame["image_width"].tolist(),
                              frame["image_height"].tolist()):
            if name not in sizes and w is not None and h is not None and not (
                    isinstance(w, float) and math.isnan(w)):
                sizes[name] = (int(w), int(h))
    missing = [n for n in names if n not in sizes]
    if missing:
        from keras_roi_datagen.decode import read_image_size

        folder = image_dir or frame.attrs.get("image_dir") or os.getcwd()
        for name in missing:
            try:
                sizes[name] = read_image_size(os.path.join(folder, name))
            except Exception as error:
                raise ValueError(f"the size of image {name!r} is unknown: the frame has no "
                                 "image_width/image_height for it and it cannot be read from "
                                 f"image_dir ({error}). Pass image_dir=.") from None
    return sizes


def _category_ids(frame: pd.DataFrame, labels: list[Any], label_col: str) -> dict[Any, int]:
    known: dict[Any, int] = {}
    given = frame.attrs.get("categories")
    if isinstance(given, dict):
        known = {name: int(i) for i, name in given.items()}
    elif label_col == "label" and "category_id" in frame.columns:
        known = dict(zip(frame["label"].tolist(), frame["category_id"].astype(int).tolist()))
    next_id = max(known.values(), default=0) + 1
    for label in sorted({str(v) for v in labels} - {str(k) for k in known}):
        known[label] = next_id
        next_id += 1
    return {str(k): v for k, v in known.items()}


def _image_ids(frame: pd.DataFrame, names: list[str]) -> dict[str, int]:
    if "image_id" in frame.columns:
        pairs = dict(zip(frame["filename"].tolist(), frame["image_id"].tolist()))
        try:
            return {n: int(pairs[n]) for n in names}
        except (TypeError, ValueError):
            pass
    return {name: i + 1 for i, name in enumerate(names)}


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _coco(frame: pd.DataFrame, boxes: np.ndarray, label_col: str, score_col: str | None,
          image_dir: str | None, results: bool) -> Any:
    filenames = [str(n) for n in frame["filename"].tolist()]
    names = list(dict.fromkeys(filenames))
    labels = [str(v) for v in frame[label_col].tolist()]
    categories = _category_ids(frame, labels, label_col)
    image_ids = _image_ids(frame, names)
    scores = frame[score_col].tolist() if score_col else None
    crowd = frame["iscrowd"].tolist() if "iscrowd" in frame.columns else [0] * len(frame)
    annotations = []
    for i, (name, label) in enumerate(zip(filenames, labels)):
        x, y, w, h = (float(v) for v in boxes[i])
        item: dict[str, Any] = {"image_id": image_ids[name], "category_id": categories[label],
                                "bbox": [x, y, w, h]}
        if scores is not None:
            item["score"] = float(scores[i])
        if not results:
            item.update(id=i + 1, area=w * h, iscrowd=int(_plain(crowd[i]) or 0),
                        segmentation=[])
        annotations.append(item)
    if results:
        return annotations
    sizes = _image_sizes(frame, names, image_dir)
    return {
        "images": [{"id": image_ids[n], "file_name": n, "width": sizes[n][0],
                    "height": sizes[n][1]} for n in names],
        "annotations": annotations,
        "categories": [{"id": i, "name": name, "supercategory": ""}
                       for name, i in sorted(categories.items(), key=lambda p: p[1])],
    }


def _via(frame: pd.DataFrame, boxes: np.ndarray, path: str, attributes: Sequence[str],
         image_dir: str | None) -> None:
    filenames = [str(n) for n in frame["filename"].tolist()]
    counts: dict[str, int] = {}
    for name in filenames:
        counts[name] = counts.get(name, 0) + 1
    seen: dict[str, int] = {}
    folder = image_dir or frame.attrs.get("image_dir")
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["filename", "file_size", "file_attributes", "region_count", "region_id",
                         "region_shape_attributes", "region_attributes"])
        columns = {c: frame[c].tolist() for c in attributes}
        for i, name in enumerate(filenames):
            region_id = seen.get(name, 0)
            seen[name] = region_id + 1
            image = os.path.join(folder, name) if folder else None
            size = os.path.getsize(image) if image and os.path.isfile(image) else -1
            x, y, w, h = (float(v) for v in boxes[i])
            shape = {"name": "rect", "x": x, "y": y, "width": w, "height": h}
            values = {c: _plain(columns[c][i]) for c in attributes}
            writer.writerow([name, size, "{}", counts[name], region_id,
                             json.dumps(shape, separators=(",", ":")),
                             json.dumps(values, separators=(",", ":"), default=str)])


def write_annotations(
    frame: pd.DataFrame, path: str | os.PathLike[str], format: str, *, label_col: str = "label",
    score_col: str | None = None, attributes: Sequence[str] | None = None,
    image_dir: str | os.PathLike[str] | None = None,
) -> str:
    """Write regions as a COCO file, a COCO results file, or a VIA 2 CSV.

    Args:
        frame: Regions: the common frame of `read_annotations`, a `read_via`
            table, or `RoiDataModule.predictions_frame` output.
        path: The file to write.
        format: `"coco"`, `"coco_results"` or `"via"`.
        label_col: The column holding each region's class (for predictions,
            e.g. `"label_predicted"`). Defaults to `"label"`.
        score_col: The column holding each prediction's score (required for
            `"coco_results"`, e.g. `"label_score"`). Defaults to `None`.
        attributes: For `"via"`: the columns written into `region_attributes`.
            Defaults to `[label_col]`.
        image_dir: Where the images are, for sizes a COCO file needs that the
            frame lacks (and VIA file sizes). Defaults to `attrs["image_dir"]`.

    Returns:
        The path written.

    Raises:
        ValueError: An unknown `format`, missing columns, or (COCO) an image
            whose size is unknown.

    Example:
    >>> df = read_annotations("instances_val.json")  # doctest: +SKIP
    >>> write_annotations(df, "copy.json", format="coco")  # doctest: +SKIP

    """
    if format not in WRITE_FORMATS:
        raise ValueError(f"`format` must be one of {list(WRITE_FORMATS)}. Received: format={format!r}")
    if format == "coco_results" and score_col is None:
        raise ValueError("`score_col` must name the score column for a COCO results file. "
                         "Received: score_col=None")
    needed = ["filename"] if format == "via" and attributes is not None else ["filename", label_col]
    needed += [score_col] if score_col else []
    needed += list(attributes or [])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"`frame` has no column(s) {missing}. Received columns: {list(frame.columns)}")
    target = os.fspath(path)
    folder = os.fspath(image_dir) if image_dir is not None else None
    boxes = _boxes(frame)
    if format == "via":
        _via(frame, boxes, target, list(attributes) if attributes is not None else [label_col],
             folder)
        return target
    data = _coco(frame, boxes, label_col, score_col, folder, results=format == "coco_results")
    with open(target, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    return target
