"""`y_cols=None` (the default): the format's label columns, for paths, frames and the data module."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from annotation_scene import WRITERS

from keras_roi_datagen import AnnotationError, RoiDataModule, RoiDataset, read_annotations
from keras_roi_datagen.formats import label_columns
from keras_roi_datagen.index import TableSpec, build_index

REAL = Path(__file__).parent / "data" / "real"
COCO = REAL / "coco_instances" / "annotations" / "instances_val.json"
REGION_FORMATS = sorted(set(WRITERS) - {"via"})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {name: WRITERS[name](tmp_path_factory.mktemp(name)) for name in WRITERS}


def test_coco_path_without_y_cols_has_one_label_head() -> None:
    ds = RoiDataset(COCO, image_size=(4, 4), shuffle=False)
    assert ds.y_cols == ("label",) and list(ds.vocabularies) == ["label"]
    x, y = ds[0]
    # one head: the array itself (one region, one class "a"), as Keras takes a single output
    assert np.asarray(y).shape == (1, 1)
    assert np.asarray(x).shape == (1, 4, 4, 3)


@pytest.mark.parametrize("fmt", REGION_FORMATS)
def test_every_region_format_defaults_to_label(corpus: dict[str, Path], fmt: str) -> None:
    options = {"image_size": (8, 8), "shuffle": False, "dtype": "uint8"}
    default = RoiDataset(corpus[fmt], **options)
    explicit = RoiDataset(corpus[fmt], y_cols="label", **options)
    assert default.y_cols == ("label",)
    assert list(default.vocabularies["label"].classes) == list(
        explicit.vocabularies["label"].classes)
    for got, want in zip(default[0], explicit[0]):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_region_frame_from_read_annotations_defaults_to_label(corpus: dict[str, Path]) -> None:
    frame = read_annotations(corpus["coco"])
    ds = RoiDataset(frame, image_size=(8, 8))
    assert ds.y_cols == ("label",) and len(ds.index) == 4


def test_via_path_without_y_cols_keeps_name_and_type(demo_csv: Path) -> None:
    ds = RoiDataset(demo_csv, image_size=(8, 8), shuffle=False)
    assert ds.y_cols == ("name", "type") and list(ds.vocabularies) == ["name", "type"]
    _, y = ds[0]
    assert isinstance(y, tuple) and len(y) == 2


def test_explicit_y_cols_win(demo_csv: Path, corpus: dict[str, Path]) -> None:
    assert RoiDataset(demo_csv, y_cols="name", image_size=(8, 8)).y_cols == ("name",)
    # The VIA scene keeps its class in a `label` attribute: named, it is used.
    assert RoiDataset(corpus["via"], y_cols="label", image_size=(8, 8)).y_cols == ("label",)
    with pytest.raises(AnnotationError, match=r"y_cols='label'"):
        RoiDataset(COCO, y_cols=("name", "type"), image_size=(8, 8))


def test_plain_frames_keep_todays_default() -> None:
    base = {"filename": ["a.png"], "x": [0], "y": [0], "w": [2], "h": [2]}
    assert label_columns(pd.DataFrame({**base, "name": ["n"], "type": ["t"]})) == ("name", "type")
    assert label_columns(pd.DataFrame(base)) == ("name", "type")
    # a `label` column beside VIA's attributes is not the class column on its own
    assert label_columns(pd.DataFrame({**base, "label": ["l"], "name": ["n"]})) == (
        "name", "type")
    assert label_columns(pd.DataFrame({**base, "label": ["l"]})) == ("label",)


def test_label_columns_of_paths(demo_csv: Path, corpus: dict[str, Path]) -> None:
    assert label_columns(demo_csv) == label_columns(corpus["via"]) == ("name", "type")
    assert {label_columns(corpus[f]) for f in REGION_FORMATS} == {("label",)}
    # Parquet/Arrow tables and URLs are plain tables unless `format` names them; none is read.
    assert label_columns("missing/regions.parquet") == ("name", "type")
    assert label_columns("s3://bucket/instances.json") == ("name", "type")
    assert label_columns("s3://bucket/instances.json", format="coco") == ("label",)
    assert label_columns(corpus["coco"], format="via") == ("name", "type")
    with pytest.raises(FileNotFoundError):
        label_columns("missing/instances.json")


def test_index_build_without_y_cols_takes_its_vocabularies(corpus: dict[str, Path]) -> None:
    build = build_index(read_annotations(corpus["yolo"]), TableSpec(y_cols=("label",)))
    assert RoiDataset(build, image_size=(8, 8)).y_cols == ("label",)


def test_datamodule_defaults_to_the_format_label_columns(corpus: dict[str, Path],
                                                         demo_csv: Path) -> None:
    data = RoiDataModule(corpus["coco"], validation_split=0.0, image_size=(8, 8),
                         stratify_by="label", split_by="row")
    assert data.y_cols == ("label",)
    data.setup("fit")
    assert data.train_dataset().y_cols == ("label",)
    assert RoiDataModule(demo_csv, image_size=(8, 8)).y_cols == ("name", "type")
    assert RoiDataModule(corpus["coco"], y_cols=["label"], image_size=(8, 8)).y_cols == ("label",)
