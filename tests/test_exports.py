"""Datasets as labelling tools export them: their layouts, their class names and their own splits.

`annotation_scene.LAYOUTS` writes one scene (four images: two train, one val,
one test) in each layout; every layout must give the same boxes, the same
splits and, through `RoiDataModule`, the same crops in the same splits.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from annotation_scene import (
    CATEGORY_IDS,
    LAYOUT_FORMATS,
    LAYOUTS,
    SPLIT_LAYOUTS,
    SPLIT_OF,
    TRUTH,
    write_coco,
    write_image,
    write_labelstudio,
    write_yolo_roboflow,
    write_yolo_ultralytics,
)
from hypothesis import given
from hypothesis import strategies as st

from keras_roi_datagen import AnnotationError, RoiDataModule, RoiDataset, read_annotations
from keras_roi_datagen.formats import FORMATS, detect_format


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {name: LAYOUTS[name](tmp_path_factory.mktemp(name)) for name in LAYOUTS}


def _image(filename: str) -> str:
    return filename.rsplit("/", 1)[-1]


def _boxes_and_splits(frame) -> tuple[dict, dict]:  # type: ignore[no-untyped-def]
    boxes = {(_image(r.filename), r.label): (r.x, r.y, r.x + r.w, r.y + r.h)
             for r in frame.itertuples()}
    splits = {_image(f): s for f, s in zip(frame["filename"], frame["split"])}
    return boxes, splits


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_each_layout_is_detected(layouts: dict[str, Path], layout: str) -> None:
    assert detect_format(layouts[layout]) == LAYOUT_FORMATS[layout]


@pytest.mark.parametrize("layout", sorted(SPLIT_LAYOUTS))
def test_each_layout_gives_the_same_regions_and_splits(layouts: dict[str, Path], layout: str) -> None:
    frame = read_annotations(layouts[layout])
    boxes, splits = _boxes_and_splits(frame)
    assert boxes == {(name, label): box for name in SPLIT_OF for label, box in TRUTH.items()}
    assert splits == SPLIT_OF
    assert set(frame["label"]) == set(CATEGORY_IDS)  # names, never class ids
    assert frame.attrs["problems"] == []


@pytest.mark.parametrize("layout", sorted(SPLIT_LAYOUTS))
def test_read_annotations_reads_one_split(layouts: dict[str, Path], layout: str) -> None:
    whole = read_annotations(layouts[layout])
    for split in ("train", "val", "test"):
        part = read_annotations(layouts[layout], split=split)
        assert set(part["split"]) == {split}
        assert {_image(f) for f in part["filename"]} == {n for n, s in SPLIT_OF.items() if s == split}
        # The same rows (labels, file names, boxes) as in the whole read.
        expected = whole[whole["split"] == split]
        assert part.index.tolist() == expected.index.tolist()
        assert part["filename"].tolist() == expected["filename"].tolist()
    assert len(read_annotations(layouts[layout], split="valid")) == len(TRUTH)  # Roboflow's word


def test_read_annotations_refuses_a_split_the_export_lacks(tmp_path: Path,
                                                           layouts: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match=r"split.*train, val or test"):
        read_annotations(layouts["yolo_roboflow"], split="holdout")
    with pytest.raises(ValueError, match="says nothing about splits"):
        read_annotations(write_coco(tmp_path), split="train")
    no_test = tmp_path / "no_test"
    shutil.copytree(layouts["coco_roboflow"], no_test)
    shutil.rmtree(no_test / "test")
    with pytest.raises(ValueError, match=r"has the split\(s\) \['train', 'val'\], not 'test'"):
        read_annotations(no_test, split="test")


def _crops(ds: RoiDataset) -> dict[tuple[str, str], np.ndarray]:
    x, _ = ds[0]
    rows = ds.plan(ds.epoch)[0]
    labels = ds.vocabularies["label"].decode(np.asarray(ds.index.codes["label"])[rows])
    return {(Path(ds.index.path_of(int(r))).name, label): crop
            for r, label, crop in zip(rows.tolist(), labels, np.asarray(x))}


def _module(path: Path, **kwargs: object) -> RoiDataModule:
    return RoiDataModule(path, y_cols="label", image_size=(24, 24), batch_size=16, dtype="uint8",
                         **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def reference_crops(layouts: dict[str, Path]) -> dict[str, dict]:
    data = _module(layouts["via_split"])
    return {"train": _crops(data.train_dataset()), "val": _crops(data.val_dataset()),
            "test": _crops(data.test_dataset())}


@pytest.mark.parametrize("layout", sorted(SPLIT_LAYOUTS))
def test_the_datamodule_keeps_each_exports_splits_with_identical_crops(
        layouts: dict[str, Path], layout: str, reference_crops: dict[str, dict]) -> None:
    data = _module(layouts[layout])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about: no split asked for
        data.setup("fit")
    for split, dataset in (("train", data.train_dataset()), ("val", data.val_dataset()),
                           ("test", data.test_dataset())):
        crops = _crops(dataset)
        assert sorted(crops) == sorted(reference_crops[split]), (layout, split)
        for key, crop in crops.items():
            np.testing.assert_array_equal(crop, reference_crops[split][key], err_msg=f"{layout} {key}")
    assert list(data.vocabularies["label"].classes) == sorted(TRUTH)  # from training
    text = data.summary(print_fn=lambda _: None)
    assert text.splitlines()[0].startswith("splits: the table's own: ")
    if LAYOUT_FORMATS[layout] != "via":
        assert FORMATS[LAYOUT_FORMATS[layout]].splits in text
    assert data.state_dict()["split_origin"].startswith("the table's own")
    assert len(data.predict_dataset().index) == 4 * len(TRUTH)  # predict: every row


def test_asking_for_fractions_splits_an_export_at_random_with_a_warning(
        layouts: dict[str, Path]) -> None:
    data = _module(layouts["yolo_roboflow"], validation_split=0.25, seed=2)
    with pytest.warns(UserWarning, match=r"own splits \(YOLO data.yaml.*validation_split=0.25"):
        data.setup("fit")
    assert "drawn at random by image (validation_split=0.25" in data.summary(print_fn=lambda _: None)
    assert "not used, as asked" in data.split_origin  # type: ignore[operator]
    assert len(data.train_dataset().index) + len(data.val_dataset().index) == 4 * len(TRUTH)
    with pytest.raises(ValueError, match="test split is empty"):
        data.test_dataset()


def test_an_export_holding_one_split_is_split_at_random(tmp_path: Path) -> None:
    folder = write_yolo_roboflow(tmp_path / "export")
    for split in ("valid", "test"):
        shutil.rmtree(folder / split)
    (folder / "data.yaml").write_text("train: ../train/images\nnames: [red, green, blue, yellow]\n")
    data = _module(folder)
    data.setup("fit")
    assert data.split_origin is not None and data.split_origin.startswith("drawn at random")
    assert "hold only ['train'], so they were not used" in data.split_origin
    assert len(data.val_dataset().index) == len(TRUTH)  # one of the two images


def test_an_empty_split_of_the_export_says_how_to_split_at_random(tmp_path: Path) -> None:
    folder = write_yolo_roboflow(tmp_path / "export")
    shutil.rmtree(folder / "valid")
    (folder / "data.yaml").write_text(
        "train: ../train/images\ntest: ../test/images\nnames: [red, green, blue, yellow]\n")
    data = _module(folder)
    assert len(data.test_dataset().index) == len(TRUTH)
    with pytest.raises(ValueError, match=r"val split is empty.*Pass validation_split="):
        data.val_dataset()


def test_state_of_an_export_round_trips(layouts: dict[str, Path], tmp_path: Path) -> None:
    data = _module(layouts["coco_splits"])
    data.save(tmp_path / "state.json")
    restored = _module(layouts["coco_splits"]).load(tmp_path / "state.json")
    restored.setup("fit")
    assert restored.state_dict()["splits"] == data.state_dict()["splits"]
    assert restored.split_origin == "restored from a saved state"


# Folder detection


def test_a_folder_of_nothing_lists_every_layout_looked_for(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(AnnotationError) as info:
        detect_format(tmp_path)
    message = str(info.value)
    for name in ("yolo", "coco", "cvat", "labelstudio", "voc"):
        assert FORMATS[name].layout and FORMATS[name].layout in message, name
    for words in ("YOLO", "data.yaml", "COCO", "_annotations.coco.json", "CVAT", "annotations.xml",
                  "Label Studio", "VOC"):
        assert words in message, words


def test_coco_folder_prefers_instances_files(tmp_path: Path) -> None:
    folder = LAYOUTS["coco_splits"](tmp_path)
    captions = {"images": [{"id": 1, "file_name": "scene_a.png"}],
                "annotations": [{"id": 1, "image_id": 1, "caption": "a grey scene"}]}
    (folder / "annotations" / "captions_train2017.json").write_text(json.dumps(captions))
    frame = read_annotations(folder)
    assert len(frame) == 4 * len(TRUTH) and frame.attrs["problems"] == []
    assert frame.index[0] == "annotations/instances_test2017.json:0"


# YOLO: the data.yaml, a split's folder, and Ultralytics' rules


@pytest.mark.parametrize("where", [".", "data.yaml", "train", "train/images", "train/labels",
                                   "valid", "valid/labels", "test/images"])
def test_roboflow_yolo_reads_from_its_root_yaml_or_any_split_folder(
        layouts: dict[str, Path], where: str) -> None:
    root = layouts["yolo_roboflow"]
    whole = read_annotations(root)
    part = read_annotations(root / where)
    assert set(part["label"]) == set(CATEGORY_IDS)  # the root data.yaml's names, always
    folder = where.split("/")[0]
    if folder in ("train", "valid", "test"):
        split = {"train": "train", "valid": "val", "test": "test"}[folder]
        expected = whole[whole["split"] == split]
    else:
        expected = whole
    assert part.index.tolist() == expected.index.tolist()
    assert part["filename"].tolist() == expected["filename"].tolist()
    assert detect_format(root / where) == "yolo"


@pytest.mark.parametrize("where", ["scene.yaml", "scene", "scene/labels/val2017",
                                   "scene/images/val2017"])
def test_ultralytics_layout_reads_its_splits_from_the_yaml_or_a_split_folder(
        layouts: dict[str, Path], where: str) -> None:
    top = layouts["yolo_ultralytics"].parent
    frame = read_annotations(top / where)
    assert set(frame["label"]) <= set(CATEGORY_IDS)
    if where.endswith("val2017"):
        assert set(frame["split"]) == {"val"} and len(frame) == len(TRUTH)
        assert frame.index[0] == "val2017/scene_c.txt:1"
    else:
        assert _boxes_and_splits(frame)[1] == SPLIT_OF


def test_yolo_names_come_from_the_yaml_over_classes_txt(tmp_path: Path) -> None:
    root = write_yolo_roboflow(tmp_path)
    (root / "train" / "classes.txt").write_text("0\n1\n2\n3\n")
    assert set(read_annotations(root / "train")["label"]) == set(CATEGORY_IDS)


def test_yolo_yaml_nc_alone_names_classes_as_ultralytics(tmp_path: Path) -> None:
    root = write_yolo_roboflow(tmp_path)
    (root / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\nnc: 4\n")
    assert sorted(set(read_annotations(root)["label"])) == ["class_0", "class_1", "class_2",
                                                            "class_3"]
    (root / "data.yaml").write_text("train: ../train/images\nnc: 3\nnames: [a, b, c, d]\n")
    with pytest.raises(AnnotationError, match=r"lists 4 classes but `nc: 3`"):
        read_annotations(root)


def test_yolo_split_folder_that_is_missing_names_every_path_tried(tmp_path: Path) -> None:
    root = write_yolo_roboflow(tmp_path)
    shutil.rmtree(root / "valid")
    with pytest.raises(AnnotationError) as info:
        read_annotations(root)
    problem = info.value.problems[0]
    assert (problem.kind, problem.row, problem.value) == ("split_not_found", "data.yaml:val",
                                                          "../valid/images")
    assert str(tmp_path.parent / "valid" / "images") in problem.message  # as written
    assert str(root / "valid" / "images") in problem.message  # without its ../
    assert len(read_annotations(root, on_error="skip")) == 3 * len(TRUTH)


def test_yolo_text_file_lists_and_background_images(tmp_path: Path) -> None:
    root = write_yolo_roboflow(tmp_path)
    write_image(root / "train" / "images" / "empty.png")  # no label file: a background image
    (root / "train.txt").write_text("./train/images/scene_a.png\ntrain/images/empty.png\n"
                                    "train/images/gone.png\n")
    (root / "data.yaml").write_text("train: train.txt\nval: [valid/images, test/images]\n"
                                    "names: {0: red, 1: green, 2: blue, 3: yellow}\n")
    frame = read_annotations(root, on_error="skip")
    assert _boxes_and_splits(frame)[1] == {"scene_a.png": "train", "scene_c.png": "val",
                                           "scene_d.png": "val"}
    assert frame.attrs["rows_without_regions"] == [
        {"row": "train/labels/empty.txt", "filename": "train/images/empty.png", "split": "train"}]
    [missing] = [p for p in frame.attrs["problems"] if p.severity == "error"]
    assert (missing.kind, missing.row, missing.value) == ("missing_file", "train.txt:3",
                                                          "train/images/gone.png")
    # scene_b.png's label is there, its image is not listed: not an error (Ultralytics reads
    # only listed images), but an image that is gone while its label stays is.
    (root / "valid" / "images" / "scene_c.png").unlink()
    frame = read_annotations(root, on_error="skip")
    assert [(p.kind, p.row) for p in frame.attrs["problems"] if p.severity == "error"][-1] == (
        "missing_file", "valid/labels/scene_c.txt:4")


def test_yolo_image_listed_in_two_splits_is_read_once_with_a_warning(tmp_path: Path) -> None:
    root = write_yolo_roboflow(tmp_path)
    (root / "data.yaml").write_text("train: ../train/images\nval: ../train/images\n"
                                    "names: [red, green, blue, yellow]\n")  # coco128.yaml does it
    frame = read_annotations(root)
    assert len(frame) == 2 * len(TRUTH) and set(frame["split"]) == {"train"}
    [warning] = frame.attrs["problems"]
    assert warning.kind == "split_overlap" and "2 image(s) of the val split" in warning.message


def test_ultralytics_path_that_is_not_there_falls_back_to_the_yamls_folder(tmp_path: Path) -> None:
    path = write_yolo_ultralytics(tmp_path)
    (path.parent / "scene" / "data.yaml").write_text(
        path.read_text().replace("path: scene", "path: ../datasets/scene"))
    frame = read_annotations(path.parent / "scene" / "data.yaml")
    assert _boxes_and_splits(frame)[1] == SPLIT_OF
    assert [p.kind for p in frame.attrs["problems"]] == ["yaml_path_not_found"]


# COCO: empty polygons


@pytest.mark.parametrize("segmentation", [[[]], [[], []]])
def test_coco_empty_polygon_falls_back_to_the_bbox_with_a_warning(tmp_path: Path,
                                                                  segmentation: list) -> None:
    path = write_coco(tmp_path)
    data = json.loads(path.read_text())
    data["annotations"][0]["segmentation"] = segmentation  # red, a box
    data["annotations"][1]["segmentation"] = [[], data["annotations"][1]["segmentation"][0]]
    path.write_text(json.dumps(data))
    frame = read_annotations(path)
    assert {r.label: (r.x, r.y, r.x + r.w, r.y + r.h) for r in frame.itertuples()} == TRUTH
    assert frame.loc[0, "shape"] == "rect" and frame.loc[1, "shape"] == "polygon"
    assert [(p.kind, p.row, p.severity) for p in frame.attrs["problems"]] == [
        ("empty_polygon", 0, "warning"), ("empty_polygon", 1, "warning")]
    ds = RoiDataset(path, image_size=(8, 8))  # the column path, the same warnings
    assert len(ds.index) == 4 and [p.kind for p in ds.warnings] == ["empty_polygon"] * 2


def test_coco_empty_segmentation_list_is_a_plain_box(tmp_path: Path) -> None:
    frame = read_annotations(write_coco(tmp_path))  # red is written "segmentation": []
    assert frame.loc[0, "shape"] == "rect" and frame.attrs["problems"] == []


# Label Studio: uploaded files keep their prefix on disk


def test_labelstudio_upload_found_with_its_prefix(layouts: dict[str, Path]) -> None:
    folder = layouts["labelstudio_folder"]
    frame = read_annotations(folder)
    assert set(frame["filename"]) == {"3f2a9c1b-scene.png"} and frame.attrs["problems"] == []
    ds = RoiDataset(folder, image_size=(8, 8))
    assert len(ds.index) == 4 and not ds.skipped


def test_labelstudio_upload_in_the_media_folder_and_the_names_tried(tmp_path: Path) -> None:
    path = write_labelstudio(tmp_path / "export")
    media = tmp_path / "media"
    (media / "upload" / "1").mkdir(parents=True)
    (tmp_path / "export" / "scene.png").rename(media / "upload" / "1" / "3f2a9c1b-scene.png")
    ds = RoiDataset(path, image_dir=media, image_size=(8, 8))
    assert len(ds.index) == 4 and Path(ds.index.path_of(0)) == (
        media / "upload" / "1" / "3f2a9c1b-scene.png")
    frame = read_annotations(path, on_error="skip")  # not beside the JSON: say what was tried
    [warning] = frame.attrs["problems"]
    assert warning.kind == "image_not_found" and warning.row == "task 1"
    assert "scene.png, 3f2a9c1b-scene.png, upload/1/3f2a9c1b-scene.png" in warning.message


def test_labelstudio_folder_with_two_exports_asks_for_one(tmp_path: Path) -> None:
    write_labelstudio(tmp_path)
    shutil.copy(tmp_path / "export.json", tmp_path / "export-2.json")
    assert detect_format(tmp_path) == "labelstudio"
    with pytest.raises(AnnotationError, match=r"2 Label Studio JSON exports.*name the export"):
        read_annotations(tmp_path)


def test_folder_sniffing_reads_no_heads_of_a_folder_of_per_image_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from keras_roi_datagen.formats import heads
    from keras_roi_datagen.formats.voc import sniff_voc

    folder = tmp_path / "Annotations"
    folder.mkdir()
    text = ("<annotation><filename>a.png</filename><size><width>8</width><height>8</height>"
            "</size></annotation>")
    for k in range(heads.MAX_SNIFFED + 1):
        (folder / f"{k}.xml").write_text(text)
    read: list[str] = []
    original = heads.file_head
    monkeypatch.setattr(heads, "file_head", lambda path: read.append(path) or original(path))
    assert detect_format(folder) == "voc" and read == []
    assert sniff_voc(text)


def test_index_cache_leaves_a_dataset_folder_uncached(layouts: dict[str, Path],
                                                      tmp_path: Path) -> None:
    # A folder's files are not fingerprinted: it is read each time (main opened the folder
    # as a file: IsADirectoryError).
    for layout in ("yolo_roboflow", "coco_roboflow", "cvat_project"):
        ds = RoiDataset(layouts[layout], image_size=(8, 8), index_cache=tmp_path / "cache")
        assert len(ds.index) == 4 * len(TRUTH) and ds.index.cache_folder is None
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


@given(st.sampled_from([("train", "train"), ("training", "train"), ("val", "val"),
                        ("valid", "val"), ("validation", "val"), ("dev", "val"), ("test", "test"),
                        ("testing", "test")]),
       st.sampled_from(["", "2017", "_2014", "-19"]), st.booleans())
def test_split_spellings_of_exports(word: tuple[str, str], suffix: str, upper: bool) -> None:
    from keras_roi_datagen.formats.regions import split_name

    spelled, split = word
    text = (spelled.upper() if upper else spelled.capitalize()) + suffix
    assert split_name(text) == split_name(f" {text} ") == split
    assert split_name(text + "x") is None and split_name("default") is None


def test_cvat_task_export_takes_its_tasks_subset(tmp_path: Path) -> None:
    from annotation_scene import write_cvat

    path = write_cvat(tmp_path)
    path.write_text(path.read_text().replace("<mode>annotation</mode>",
                                             "<mode>annotation</mode><subset>Validation</subset>"))
    frame = read_annotations(tmp_path)  # the export's folder
    assert set(frame["split"]) == {"val"} and set(frame["subset"]) == {"Validation"}
    assert frame.attrs["splits"] == ["val"]
    path.write_text(path.read_text().replace("Validation", "default"))
    assert "split" not in read_annotations(path).columns  # CVAT's default subset names none


def test_yolo_split_outside_the_root_names_files_from_the_folder_they_share(tmp_path: Path) -> None:
    root = write_yolo_roboflow(tmp_path / "export")
    shutil.move(str(root / "valid"), str(tmp_path / "elsewhere"))
    (root / "data.yaml").write_text(f"train: ../train/images\nval: {tmp_path / 'elsewhere' / 'images'}"
                                    "\nnames: [red, green, blue, yellow]\n")
    frame = read_annotations(root)
    assert frame.attrs["image_dir"] == str(tmp_path)
    assert "elsewhere/images/scene_c.png" in set(frame["filename"])
    ds = RoiDataset(root, image_size=(8, 8))
    assert len(ds.index) == 3 * len(TRUTH) and not ds.skipped


def test_a_yaml_of_class_names_does_not_make_any_folder_yolo(tmp_path: Path) -> None:
    from annotation_scene import write_voc

    folder = write_voc(tmp_path)
    (folder / "Annotations" / "classes.yaml").write_text("names: [red, green, blue, yellow]\n")
    assert detect_format(folder / "Annotations") == "voc"


def test_exports_read_without_pyyaml(layouts: dict[str, Path],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    expected = {name: read_annotations(layouts[name]) for name in ("yolo_roboflow",
                                                                   "yolo_ultralytics")}
    monkeypatch.setitem(sys.modules, "yaml", None)  # `import yaml` raises ImportError
    for name, frame in expected.items():
        again = read_annotations(layouts[name])
        assert again.index.tolist() == frame.index.tolist()
        assert again[["filename", "label", "split"]].equals(frame[["filename", "label", "split"]])
