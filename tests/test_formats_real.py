"""Real files from public repositories (see tests/data/real/README.md), each against an oracle."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_roi_datagen import RoiDataModule, RoiDataset, read_annotations
from keras_roi_datagen.formats import detect_format

REAL = Path(__file__).parent / "data" / "real"


def _box(frame, row) -> list[float]:  # type: ignore[no-untyped-def]
    return frame.loc[row, ["x", "y", "w", "h"]].astype(float).tolist()


@pytest.mark.parametrize(("path", "fmt"), [("labelstudio_obb/export.json", "labelstudio"),
                                      ("yolo_doors", "yolo"), ("cvat_project/annotations.xml", "cvat"),
                                      ("coco_instances/annotations/instances_val.json", "coco"),
                                      ("voc", "voc"),
                                      ("labelimg_voc/C1_P01_N1_S2_1.xml", "voc"),
                                      ("roboflow_coco/_annotations.coco.json", "coco"),
                                      ("roboflow_yolo", "yolo"), ("roboflow_yolo/data.yaml", "yolo"),
                                      ("roboflow_yolo/train", "yolo"),
                                      ("roboflow_yolo/valid/labels", "yolo"),
                                      ("roboflow_coco_splits", "coco"),
                                      *((f"ultralytics_layouts/{name}", "yolo") for name in (
                                          "yolov8_detection", "yolov8_detection_with_list_of_imgs",
                                          "yolov8_detection_with_list_of_names",
                                          "yolov8_detection_with_subset_txt"))])
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


ROBOFLOW_SPLITS = {"train": "train", "valid": "val", "test": "test"}


def _yolo_expected(label_file: Path, image: Path) -> list[tuple[str, list[float]]]:
    width, height = Image.open(image).size
    found = []
    for line in label_file.read_text().splitlines():
        c, cx, cy, bw, bh = line.split()
        found.append((c, [(float(cx) - float(bw) / 2) * width, (float(cy) - float(bh) / 2) * height,
                          float(bw) * width, float(bh) * height]))
    return found


def test_roboflow_yolo_export_with_its_data_yaml_and_splits() -> None:
    root = REAL / "roboflow_yolo"
    names = ["cone", "cube"]  # data.yaml: names: ['cone', 'cube']
    frame = read_annotations(root)
    assert frame.attrs["problems"] == [] and frame.attrs["splits"] == ["train", "val", "test"]
    assert frame.attrs["class_names"] == str(root / "data.yaml")
    for folder, split in ROBOFLOW_SPLITS.items():
        for label_file in sorted((root / folder / "labels").glob("*.txt")):
            image = root / folder / "images" / f"{label_file.stem}.jpg"
            for n, (c, box) in enumerate(_yolo_expected(label_file, image), start=1):
                row = f"{folder}/labels/{label_file.name}:{n}"
                np.testing.assert_allclose(_box(frame, row), box, rtol=1e-12)
                assert frame.loc[row, ["label", "split", "filename"]].tolist() == [
                    names[int(c)], split, f"{folder}/images/{image.name}"]
    assert len(frame) == 8
    # A split's folder reads that split, with the root yaml's names.
    train = read_annotations(root / "train")
    assert train.index.tolist() == frame.index[frame["split"] == "train"].tolist()
    assert set(train["label"]) == {"cone", "cube"}
    assert read_annotations(root / "data.yaml", split="valid").index.tolist() == (
        frame.index[frame["split"] == "val"].tolist())
    data = RoiDataModule(root, image_size=(8, 8), batch_size=8)
    data.setup("fit")
    assert data.split_origin.startswith("the table's own: YOLO data.yaml")  # type: ignore[union-attr]
    assert [len(d.index) for d in (data.train_dataset(), data.val_dataset(),
                                   data.test_dataset())] == [4, 2, 2]


def test_roboflow_coco_export_with_split_folders(tmp_path: Path) -> None:
    root = REAL / "roboflow_coco_splits"
    frame = read_annotations(root)
    assert frame.attrs["problems"] == [] and frame.attrs["splits"] == ["val", "test"]
    assert frame["split"].value_counts().to_dict() == {"val": 66, "test": 49}
    test = read_annotations(REAL / "roboflow_coco" / "_annotations.coco.json")  # the same file
    ours = frame[frame["split"] == "test"]
    assert ours.index.tolist() == [f"test/_annotations.coco.json:{k}" for k in test.index]
    assert ours["filename"].tolist() == [f"test/{name}" for name in test["filename"]]
    np.testing.assert_array_equal(ours[["x", "y", "w", "h"]].to_numpy(),
                                  test[["x", "y", "w", "h"]].to_numpy())
    assert read_annotations(root, split="val").index[0] == "valid/_annotations.coco.json:0"
    # The photos are not committed: solid images of the declared size, in a copy.
    copy = tmp_path / "export"
    shutil.copytree(root, copy)
    for name in frame["filename"].unique().tolist():
        Image.new("RGB", (640, 640), (90, 120, 150)).save(copy / name)
    data = RoiDataModule(copy, image_size=(8, 8), batch_size=64)
    data.setup("fit")
    # Roboflow's valid and test without train: no training split of its own, so split at random.
    assert "hold only ['val', 'test'], so they were not used" in data.split_origin  # type: ignore[operator]
    assert len(data.train_dataset().index) + len(data.val_dataset().index) == 115


@pytest.mark.parametrize("name", ["yolov8_detection", "yolov8_detection_with_list_of_imgs",
                                  "yolov8_detection_with_list_of_names",
                                  "yolov8_detection_with_subset_txt"])
def test_ultralytics_layouts_read_alike(name: str) -> None:
    root = REAL / "ultralytics_layouts" / name
    frame = read_annotations(root)
    expected = _yolo_expected(root / "labels" / "train" / "1.txt", root / "images" / "train" / "1.jpg")
    assert len(frame) == len(expected) == 2
    for n, (c, box) in enumerate(expected, start=1):
        row = f"train/1.txt:{n}"
        # 0.133333 - 0.266667 / 2 is a hair below 0: clipped to the image, with a warning.
        np.testing.assert_allclose(_box(frame, row), box, atol=1e-5)
        assert frame.loc[row, ["label", "split"]].tolist() == [f"label_{c}", "train"]
    assert [p.kind for p in frame.attrs["problems"]] == ["box_clipped"]
    ds = RoiDataset(root, image_size=(4, 4), shuffle=False)
    assert len(ds.index) == 2 and ds.vocabularies["label"].classes == ("label_2", "label_4")
