"""Real files from public repositories (see tests/data/real/README.md), each against an oracle."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_roi_datagen import RoiDataset, read_annotations
from keras_roi_datagen.formats import detect_format

REAL = Path(__file__).parent / "data" / "real"


def _box(frame, row) -> list[float]:  # type: ignore[no-untyped-def]
    return frame.loc[row, ["x", "y", "w", "h"]].astype(float).tolist()


@pytest.mark.parametrize(("path", "fmt"), [("labelstudio_obb/export.json", "labelstudio"),
                                      ("yolo_doors", "yolo"), ("cvat_project/annotations.xml", "cvat"),
                                      ("coco_instances/annotations/instances_val.json", "coco"),
                                      ("voc", "voc"),
                                      ("labelimg_voc/C1_P01_N1_S2_1.xml", "voc"),
                                      ("roboflow_coco/_annotations.coco.json", "coco")])
def test_real_files_are_detected(path: str, fmt: str) -> None:
    assert detect_format(REAL / path) == fmt


def test_labelstudio_rotated_export_against_an_independent_rotation() -> None:
    tasks = json.loads((REAL / "labelstudio_obb" / "export.json").read_text())
    frame = read_annotations(REAL / "labelstudio_obb" / "export.json")
    assert len(frame) == sum(len(a["result"]) for t in tasks for a in t["annotations"]) == 25
    for task in tasks:
        for result in task["annotations"][0]["result"]:
            v, w, h = result["value"], result["original_width"], result["original_height"]
            corner = np.array([v["x"] * w / 100, v["y"] * h / 100])
            size = np.array([[0, 0], [v["width"] * w / 100, 0],
                             [v["width"] * w / 100, v["height"] * h / 100],
                             [0, v["height"] * h / 100]])
            t = math.radians(v["rotation"])
            turned = size @ np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
            points = corner + turned
            expected = [*points.min(axis=0), *(points.max(axis=0) - points.min(axis=0))]
            got = _box(frame, f"task {task['id']}/{result['id']}")
            np.testing.assert_allclose(got, expected, atol=1e-9)
    assert set(frame["filename"]) == {"/image1", "/image2", "/image3"}
    assert set(frame["label"]) == {"Butterfly", "butterfly"}


def test_yolo_export_against_its_label_lines_and_image_sizes() -> None:
    root = REAL / "yolo_doors"
    names = (root / "classes.txt").read_text().split()
    frame = read_annotations(root)
    for label_file in sorted((root / "labels").glob("*.txt")):
        width, height = Image.open(root / "images" / f"{label_file.stem}.jpg").size
        for n, line in enumerate(label_file.read_text().splitlines(), start=1):
            c, cx, cy, bw, bh = line.split()
            row = f"{label_file.name}:{n}"
            expected = [(float(cx) - float(bw) / 2) * width, (float(cy) - float(bh) / 2) * height,
                        float(bw) * width, float(bh) * height]
            np.testing.assert_allclose(_box(frame, row), expected, rtol=1e-12)
            assert frame.loc[row, "label"] == names[int(c)]
    ds = RoiDataset(root, y_cols="label", image_size=(16, 16), shuffle=False)
    assert len(ds.index) == len(frame) == 7


def test_cvat_project_export() -> None:
    path = REAL / "cvat_project" / "annotations.xml"
    frame = read_annotations(path)
    assert _box(frame, "Test/img0.jpg#0") == [0, 2, 4, 2]        # box xtl=0 ytl=2 xbr=4 ybr=4
    assert _box(frame, "Test/img0.jpg#1") == [1, 2, 6, 6]        # polyline 1,2;3,4;5,6;7,8
    assert _box(frame, "Validation/img1.jpg#0") == [1, 2, 5, 3]  # polygon 1,2;3,4;6,5
    assert frame.loc["Train/img0.jpg#0", ["a1", "a2", "a3", "a4", "occluded"]].tolist() == [
        "true", "v3", "0003", "2.4", 1]
    assert [p.kind for p in frame.attrs["problems"]] == ["shape_point"] * 3
    ds = RoiDataset(path, y_cols="label", image_size=(8, 8), shuffle=False)
    assert len(ds.index) == 9 and list(ds.vocabularies["label"].classes) == ["label1", "label2"]


def test_coco_instances_with_crowd_region() -> None:
    path = REAL / "coco_instances" / "annotations" / "instances_val.json"
    frame = read_annotations(path)
    assert frame["label"].tolist() == ["a"] and _box(frame, 0) == [0, 0, 1, 2]
    assert [(p.kind, p.row) for p in frame.attrs["problems"]] == [("crowd_region", 1)]
    crowd = read_annotations(path, include_crowd=True)
    assert _box(crowd, 1) == [0, 0, 1, 9] and crowd.loc[1, "label"] == "b"
    ds = RoiDataset(path, y_cols="label", image_size=(4, 4))
    assert Path(ds.index.path_of(0)).name == "b.jpg"


def test_voc_annotation_one_based_corners() -> None:
    frame = read_annotations(REAL / "voc")
    assert _box(frame, "2007_000001.xml#0") == [0, 1, 3, 3]  # xmin 1, ymin 2, xmax 3, ymax 4
    assert _box(frame, "2007_000001.xml#1") == [3, 4, 3, 3]
    assert frame.loc["2007_000001.xml#0", ["truncated", "difficult", "pose"]].tolist() == [
        1, 0, "Unspecified"]
    ds = RoiDataset(REAL / "voc", y_cols="label", image_size=(4, 4))
    assert len(ds.index) == 2


def test_labelimg_voc_export_one_based_corners(tmp_path: Path) -> None:
    xml = REAL / "labelimg_voc" / "C1_P01_N1_S2_1.xml"
    frame = read_annotations(xml)
    assert len(frame) == 10 and set(frame["label"]) == {"pack"}
    # Read by hand from the file: <xmin>13 <ymin>875 <xmax>275 <ymax>1249, and the last object
    # <xmin>1041 <ymin>1564 <xmax>1252 <ymax>1919; x = xmin - 1, w = xmax - xmin + 1.
    assert _box(frame, "C1_P01_N1_S2_1.xml#0") == [12, 874, 263, 375]
    assert _box(frame, "C1_P01_N1_S2_1.xml#9") == [1040, 1563, 212, 356]
    assert frame.loc["C1_P01_N1_S2_1.xml#0", ["image_width", "image_height"]].tolist() == [
        1363, 2188]
    assert set(frame["filename"]) == {"C1_P01_N1_S2_1.JPG"}
    # The photo is not committed: a synthetic one of the declared size in the `<folder>` it names.
    folder = tmp_path / "test_images"
    folder.mkdir()
    (folder / xml.name).write_bytes(xml.read_bytes())
    Image.new("RGB", (1363, 2188), (90, 120, 150)).save(folder / "C1_P01_N1_S2_1.JPG")
    ds = RoiDataset(folder / xml.name, y_cols="label", image_size=(8, 8), shuffle=False)
    assert len(ds.index) == 10 and list(ds.vocabularies["label"].classes) == ["pack"]
    assert Path(ds.index.path_of(0)).name == "C1_P01_N1_S2_1.JPG"
    x, _ = ds[0]
    assert np.asarray(x).shape[1:3] == (8, 8)


def test_roboflow_coco_export_bbox_as_is_and_polygons(tmp_path: Path) -> None:
    path = REAL / "roboflow_coco" / "_annotations.coco.json"
    frame = read_annotations(path)
    assert detect_format(path) == "coco" and frame.attrs["problems"] == []
    assert len(frame) == 49 and frame["filename"].nunique() == 20
    # Roboflow writes its superclass as category 0 and the class as 1, both named "object".
    assert set(frame["label"]) == {"object"} and set(frame["category_id"]) == {1}
    # Read by hand from the file: rectangles keep "bbox" as it is ...
    assert _box(frame, 0) == [474, 359, 108.5, 73.5]
    assert _box(frame, 11) == [0, 335, 250, 25]
    assert _box(frame, 48) == [228, 370, 220.5, 121.5]
    # ... polygons give their points' bounds: annotation 15's points span x 312.129..414.061 and
    # y 175.848..239.06 (its bbox, rounded by Roboflow, is [312, 176, 101.931, 63.211]).
    np.testing.assert_allclose(_box(frame, 15), [312.129, 175.848, 101.932, 63.212], atol=1e-9)
    assert frame.loc[15, "shape"] == "polygon" and frame.loc[0, "shape"] == "rect"
    assert set(frame["image_width"]) == set(frame["image_height"]) == {640}
    # The photos are not committed: one solid colour per image, of the declared size.
    (tmp_path / path.name).write_bytes(path.read_bytes())
    colours = {}
    for k, name in enumerate(sorted(set(frame["filename"]))):
        colours[name] = (10 * k + 5, 250 - 10 * k, 128)
        Image.new("RGB", (640, 640), colours[name]).save(tmp_path / name, quality=95)
    ds = RoiDataset(tmp_path / path.name, image_size=(8, 8), shuffle=False, dtype="uint8",
                    batch_size=49)
    assert ds.y_cols == ("label",) and len(ds.index) == 49
    x, _ = ds[0]
    for i, crop in enumerate(np.asarray(x)):
        expected = colours[Path(ds.index.path_of(i)).name]
        np.testing.assert_allclose(crop.reshape(-1, 3).mean(axis=0), expected, atol=3)
