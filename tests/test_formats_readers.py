"""Each reader's conventions, and its errors for bad input (file, record, field, value, expected)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from annotation_scene import SIZE, TRUTH, write_coco, write_image, write_labelstudio, write_yolo
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_roi_datagen import AnnotationError, RoiDataset, read_annotations
from keras_roi_datagen.formats.regions import rotated_rect_xyxy


def _coco(tmp_path: Path, annotations: list[dict], categories: list[dict] | None = None) -> Path:
    write_image(tmp_path / "scene.png")
    data = {"images": [{"id": 1, "file_name": "scene.png", "width": SIZE, "height": SIZE}],
            "annotations": annotations,
            "categories": categories or [{"id": 3, "name": "cat"}, {"id": 8, "name": "dog"}]}
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(data))
    return path


# COCO


def test_coco_multipart_polygon_is_the_box_of_all_parts(tmp_path: Path) -> None:
    parts = [[10, 10, 30, 10, 30, 30], [50, 60, 70, 60, 70, 90]]
    path = _coco(tmp_path, [{"id": 1, "image_id": 1, "category_id": 8, "segmentation": parts,
                             "bbox": [10, 10, 20, 20], "iscrowd": 0, "area": 1}])
    row = read_annotations(path).iloc[0]
    assert (row.x, row.y, row.w, row.h, row.label, row["shape"]) == (10, 10, 60, 80, "dog",
                                                                     "polygon")


def test_coco_crowd_left_out_and_reported_unless_asked(tmp_path: Path) -> None:
    crowd = {"id": 2, "image_id": 1, "category_id": 3, "iscrowd": 1, "bbox": [5, 6, 7, 8],
             "segmentation": {"counts": [0, 10], "size": [SIZE, SIZE]}, "area": 56}
    plain = {"id": 1, "image_id": 1, "category_id": 3, "iscrowd": 0, "bbox": [1, 2, 3, 4]}
    path = _coco(tmp_path, [plain, crowd])
    frame = read_annotations(path)
    assert frame["annotation_id"].tolist() == [1]
    [warning] = frame.attrs["problems"]
    assert (warning.kind, warning.row, warning.severity) == ("crowd_region", 1, "warning")
    kept = read_annotations(path, include_crowd=True)
    assert kept["iscrowd"].tolist() == [0, 1]
    assert kept.iloc[1][["x", "y", "w", "h"]].tolist() == [5, 6, 7, 8]
    assert kept.iloc[1]["shape"] == "rle"


def test_coco_keypoints_skipped_or_boxed(tmp_path: Path) -> None:
    ann = {"id": 1, "image_id": 1, "category_id": 3, "keypoints": [40, 50, 2, 0, 0, 0, 60, 70, 1]}
    path = _coco(tmp_path, [ann])
    assert len(read_annotations(path)) == 0
    row = read_annotations(path, point_box_size=10).iloc[0]
    assert (row.x, row.y, row.w, row.h) == (35, 45, 30, 30)  # the visible points only, padded


def test_coco_missing_category_names_record_field_and_value(tmp_path: Path) -> None:
    path = _coco(tmp_path, [{"id": 1, "image_id": 1, "category_id": 4, "bbox": [1, 2, 3, 4]}])
    with pytest.raises(AnnotationError) as info:
        read_annotations(path)
    problem = info.value.problems[0]
    assert (problem.kind, problem.row, problem.column, problem.value) == (
        "missing_category", 0, "category_id", 4)
    assert "coco.json" in str(info.value) and "[3, 8]" in str(info.value)


def test_coco_skip_gives_the_via_accounting(tmp_path: Path) -> None:
    good = {"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 30, 30]}
    bad = [{"id": 2, "image_id": 1, "category_id": 4, "bbox": [1, 2, 3, 4]},
           {"id": 3, "image_id": 9, "category_id": 3, "bbox": [1, 2, 3, 4]},
           {"id": 4, "image_id": 1, "category_id": 3, "bbox": [1, 2, 3]}]
    path = _coco(tmp_path, [good, *bad])
    frame = read_annotations(path, on_error="skip")
    assert len(frame) == 1
    assert sorted(p.row for p in frame.attrs["problems"]) == [1, 2, 3]
    ds = RoiDataset(path, y_cols="label", on_error="skip", image_size=(8, 8))
    assert len(ds.index) == 1
    assert sorted(p.row for p in ds.skipped) == [1, 2, 3]
    assert ds._rows_read == 4  # yielded + skipped = rows
    with pytest.raises(AnnotationError, match="3 problems"):
        RoiDataset(path, y_cols="label", image_size=(8, 8))


def test_json_that_is_not_the_format_it_claims(tmp_path: Path) -> None:
    path = write_labelstudio(tmp_path)
    with pytest.raises(AnnotationError) as info:
        read_annotations(path, format="coco")
    assert info.value.problems[0].kind == "bad_json"
    assert "line 1" in str(info.value) and "COCO" in str(info.value)
    coco = write_coco(tmp_path / "c")
    with pytest.raises(AnnotationError, match="list of tasks"):
        read_annotations(coco, format="labelstudio")


def test_coco_streaming_reports_the_line_of_broken_json(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"images": [],\n "annotations": [\n {"id": 1,,}\n]}')
    with pytest.raises(AnnotationError) as info:
        read_annotations(path, format="coco")
    assert info.value.problems[0].row == 3


# VOC


def _voc(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "a.xml"
    path.write_text(f"<annotation><filename>scene.png</filename>{body}</annotation>")
    return path


def test_voc_corners_are_one_based_inclusive(tmp_path: Path) -> None:
    path = _voc(tmp_path, "<size><width>100</width><height>80</height></size><object><name>cat"
                "</name><difficult>1</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10"
                "</xmax><ymax>20</ymax></bndbox></object>")
    row = read_annotations(path).iloc[0]
    assert (row.x, row.y, row.w, row.h, row.difficult) == (0, 0, 10, 20, 1)


def test_voc_without_size_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = _voc(tmp_path, "<object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
                "<xmax>10</xmax><ymax>20</ymax></bndbox></object>")
    with pytest.raises(AnnotationError) as info:
        read_annotations(path)
    problem = info.value.problems[0]
    assert (problem.kind, problem.source, problem.column) == ("missing_size", str(path), "size")
    assert "<size>" in str(info.value)


# YOLO


def test_yolo_four_numbers_on_one_line_and_five_on_another(tmp_path: Path) -> None:
    root = write_yolo(tmp_path)
    label = root / "labels" / "train" / "scene.txt"
    label.write_text("0 0.5 0.5 0.25 0.25\n1 0.5 0.5 0.25\n")
    with pytest.raises(AnnotationError) as info:
        read_annotations(root)
    problem = info.value.problems[0]
    assert (problem.kind, problem.row, problem.source) == ("bad_record", "train/scene.txt:2",
                                                           str(label))
    assert problem.value == "1 0.5 0.5 0.25" and "expected 5" in problem.message
    frame = read_annotations(root, on_error="skip")
    assert frame.index.tolist() == ["train/scene.txt:1"]


def test_yolo_fractions_a_hair_outside_are_clipped_with_a_warning(tmp_path: Path) -> None:
    root = write_yolo(tmp_path)
    (root / "labels" / "train" / "scene.txt").write_text(
        "0 0.5 0.5 1.004 0.5\n1 0.5 0.5 1.5 0.5\n")
    frame = read_annotations(root, on_error="skip")
    row = frame.iloc[0]
    assert (row.x, row.w) == (0, SIZE)
    kinds = sorted((p.kind, p.severity) for p in frame.attrs["problems"])
    assert kinds == [("box_clipped", "warning"), ("box_outside_image", "error")]


def test_yolo_fractions_are_of_the_displayed_size(tmp_path: Path) -> None:
    from PIL import Image

    root = write_yolo(tmp_path)
    image = Image.new("RGB", (200, 100))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: displayed 100 wide, 200 high
    image.save(root / "images" / "train" / "scene.png", exif=exif)
    (root / "labels" / "train" / "scene.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    row = read_annotations(root).iloc[0]
    assert (row.x, row.y, row.w, row.h) == (25, 50, 50, 100)


# Label Studio


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 200), st.integers(0, 100), st.integers(1, 50), st.integers(1, 50),
       st.sampled_from([0, 30, 90, 135, 270]))
def test_labelstudio_rotation_is_about_the_top_left_corner_in_pixels(
        x: int, y: int, w: int, h: int, rotation: int) -> None:
    x0, y0, x1, y1 = rotated_rect_xyxy(x, y, w, h, rotation)
    theta = math.radians(rotation)
    # The top-left corner stays put; the top edge points along (cos, sin) on screen.
    corners = [(x, y), (x + w * math.cos(theta), y + w * math.sin(theta))]
    for cx, cy in corners:
        assert x0 - 1e-9 <= cx <= x1 + 1e-9 and y0 - 1e-9 <= cy <= y1 + 1e-9
    assert math.isclose(x1 - x0, abs(w * math.cos(theta)) + abs(h * math.sin(theta)), abs_tol=1e-9)


def test_labelstudio_rotated_box_in_a_non_square_image(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png")
    value = {"x": 25.0, "y": 50.0, "width": 10.0, "height": 10.0, "rotation": 90,
             "rectanglelabels": ["cat"]}
    tasks = [{"id": 4, "data": {"image": "/data/local-files/?d=a.png"}, "annotations": [
        {"completed_by": 2, "result": [{"id": "q", "type": "rectanglelabels", "value": value,
                                        "original_width": 400, "original_height": 200}]}]}]
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(tasks))
    row = read_annotations(path).iloc[0]
    # 40 x 20 px at (100, 100), turned 90 degrees about (100, 100): 20 wide, 40 high, left of it.
    assert np.allclose([row.x, row.y, row.w, row.h], [80, 100, 20, 40])
    assert (row.filename, row.annotator, row.label) == ("a.png", 2, "cat")


def test_labelstudio_without_original_size_is_an_error(tmp_path: Path) -> None:
    tasks = [{"id": 1, "data": {"image": "a.png"}, "annotations": [{"result": [
        {"id": "z", "type": "rectanglelabels",
         "value": {"x": 1, "y": 1, "width": 2, "height": 2, "rectanglelabels": ["a"]}}]}]}]
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(tasks))
    with pytest.raises(AnnotationError) as info:
        read_annotations(path)
    assert (info.value.problems[0].kind, info.value.problems[0].row) == ("missing_size",
                                                                          "task 1/z")


# CVAT and VIA points


def test_cvat_points_skipped_or_boxed_and_attributes_kept(tmp_path: Path) -> None:
    path = tmp_path / "annotations.xml"
    path.write_text('<annotations><version>1.1</version><image id="3" name="a.png" width="50" '
                    'height="40"><points label="eye" points="10,20" occluded="0"/>'
                    '<box label="car" xtl="1" ytl="2" xbr="11" ybr="12" occluded="1">'
                    '<attribute name="colour">red</attribute></box></image></annotations>')
    frame = read_annotations(path)
    assert frame["label"].tolist() == ["car"]
    assert frame["colour"].tolist() == ["red"] and frame["occluded"].tolist() == [1]
    assert [p.kind for p in frame.attrs["problems"]] == ["shape_point"]
    boxed = read_annotations(path, point_box_size=(4, 6))
    assert boxed.loc["a.png#0", ["x", "y", "w", "h"]].tolist() == [8, 17, 4, 6]


def test_via_points_become_boxes_with_point_box_size(tmp_path: Path) -> None:
    path = tmp_path / "via.csv"
    path.write_text('filename,file_size,file_attributes,region_count,region_id,'
                    'region_shape_attributes,region_attributes\n'
                    'a.png,1,"{}",1,0,"{""name"":""point"",""cx"":30,""cy"":40}",'
                    '"{""label"":""eye""}"\n')
    assert len(read_annotations(path)) == 0
    row = read_annotations(path, point_box_size=10).iloc[0]
    assert (row.x, row.y, row.w, row.h, row.label) == (25, 35, 10, 10, "eye")


def test_region_frame_truth_is_unchanged(tmp_path: Path) -> None:
    frame = read_annotations(write_coco(tmp_path))
    assert set(frame["label"]) == set(TRUTH)


def test_coco_images_without_annotations_are_listed(tmp_path: Path) -> None:
    path = _coco(tmp_path, [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4]}])
    data = json.loads(path.read_text())
    data["images"].append({"id": 2, "file_name": "empty.png", "width": 4, "height": 4})
    path.write_text(json.dumps(data))
    frame = read_annotations(path)
    assert frame.attrs["rows_without_regions"] == [{"row": "images[id=2]", "filename": "empty.png"}]


ROBOFLOW_YAML = """train: ../train/images
val: ../valid/images
test: ../test/images

nc: 2
names: ['door', 'handle']

roboflow:
  workspace: someone
  project: doors
  version: 3
  license: CC BY 4.0
  url: https://universe.roboflow.com/someone/doors/dataset/3
"""
COCO8_YAML = """# Ultralytics
# Train/val/test sets as 1) dir: path/to/imgs, 2) file: path/to/imgs.txt, or 3) list
path: coco8 # dataset root dir
train: images/train # train images (relative to 'path') 4 images
val: images/val # val images (relative to 'path') 4 images
test: # test images (optional)

# Classes
names:
  0: person
  1: bicycle
  9: traffic light

download: https://github.com/ultralytics/assets/releases/download/v0.0.0/coco8.zip
"""


@pytest.mark.parametrize("text", [
    "names: [cat, 'dog']\n",
    "path: .\nnames:\n  - cat\n  - dog\nnc: 2\n",
    "names:\n  0: cat\n  1: \"dog\"\n",
    "train: [images/a, 'images/b']\nval: images/c\nnames: ['a, b', c]\n",
    "names: [\n  cat,\n  dog\n]\n",
    ROBOFLOW_YAML,
    COCO8_YAML,
])
def test_yolo_data_yaml_read_without_pyyaml(text: str) -> None:
    from keras_roi_datagen.formats.yolo_yaml import _yaml_without_pyyaml

    yaml = pytest.importorskip("yaml")
    expected = yaml.safe_load(text)
    got = _yaml_without_pyyaml(text)
    for key in ("path", "train", "val", "test", "nc", "names"):
        assert got.get(key) == expected.get(key), key


def test_labelstudio_json_min_export(tmp_path: Path) -> None:
    write_image(tmp_path / "scene.png")
    region = {"x": 12.5, "y": 25.0, "width": 25.0, "height": 50.0, "rotation": 0,
              "rectanglelabels": ["cat"], "original_width": 256, "original_height": 256}
    polygon = {"points": [[0, 0], [50, 0], [50, 25]], "polygonlabels": ["dog"],
               "original_width": 256, "original_height": 256}
    tasks = [{"id": 5, "image": "/data/local-files/?d=scene.png", "label": [region],
              "poly": [polygon], "annotator": "a@example.org", "annotation_id": 9}]
    path = tmp_path / "min.json"
    path.write_text(json.dumps(tasks))
    frame = read_annotations(path)
    assert frame.attrs["format"] == "labelstudio"
    assert frame.loc["task 5/label[0]", ["x", "y", "w", "h"]].tolist() == [32, 64, 64, 128]
    assert frame.loc["task 5/poly[0]", ["x", "y", "w", "h", "label"]].tolist() == [
        0, 0, 128, 64, "dog"]
    assert set(frame["annotator"]) == {"a@example.org"}
    assert len(RoiDataset(path, y_cols="label", image_size=(8, 8)).index) == 2


def test_crowd_regions_left_out_are_dataset_warnings(tmp_path: Path) -> None:
    crowd = {"id": 2, "image_id": 1, "category_id": 3, "iscrowd": 1, "bbox": [5, 6, 7, 8]}
    plain = {"id": 1, "image_id": 1, "category_id": 8, "bbox": [1, 2, 30, 40]}
    ds = RoiDataset(_coco(tmp_path, [plain, crowd]), y_cols="label", image_size=(8, 8))
    assert len(ds.index) == 1 and not ds.skipped
    assert [(p.kind, p.row) for p in ds.warnings] == [("crowd_region", 1)]
