"""`write_annotations`: COCO, COCO results and VIA CSV files that read back (and load in pycocotools)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from annotation_scene import CATEGORY_IDS, TRUTH, write_coco, write_voc

from keras_roi_datagen import RoiDataModule, read_annotations, write_annotations
from keras_roi_datagen.formats import read_via_csv


def _boxes(frame: pd.DataFrame) -> dict[str, tuple[float, ...]]:
    return {r.label: (r.x, r.y, r.x + r.w, r.y + r.h) for r in frame.itertuples()}


def test_coco_written_from_voc_reads_back(tmp_path: Path) -> None:
    frame = read_annotations(write_voc(tmp_path / "voc"))
    out = write_annotations(frame, tmp_path / "voc" / "JPEGImages" / "coco.json", format="coco")
    again = read_annotations(out)
    assert _boxes(again) == TRUTH
    data = json.loads(Path(out).read_text())
    assert data["images"] == [{"id": 1, "file_name": "scene.png", "width": 256, "height": 256}]


def test_coco_keeps_the_category_ids_it_was_read_with(tmp_path: Path) -> None:
    frame = read_annotations(write_coco(tmp_path))
    out = write_annotations(frame, tmp_path / "again.json", format="coco")
    data = json.loads(Path(out).read_text())
    assert {c["name"]: c["id"] for c in data["categories"]} == CATEGORY_IDS
    assert {a["image_id"] for a in data["annotations"]} == {7}


def test_coco_loads_in_pycocotools_with_results(tmp_path: Path) -> None:
    coco_api = pytest.importorskip("pycocotools.coco", reason="pycocotools is not installed")
    frame = read_annotations(write_coco(tmp_path))
    truth = write_annotations(frame, tmp_path / "truth.json", format="coco")
    predictions = frame.copy()
    predictions["label_predicted"] = predictions["label"]
    predictions["label_score"] = np.linspace(0.9, 0.6, len(predictions))
    results = write_annotations(predictions, tmp_path / "results.json", format="coco_results",
                                label_col="label_predicted", score_col="label_score")
    data = json.loads(Path(results).read_text())
    assert isinstance(data, list) and {"image_id", "category_id", "bbox", "score"} <= set(data[0])
    gt = coco_api.COCO(truth)
    dt = gt.loadRes(results)
    assert len(dt.getAnnIds()) == len(TRUTH)
    red = dt.loadAnns(dt.getAnnIds(catIds=[CATEGORY_IDS["red"]]))[0]
    assert red["bbox"] == [20.0, 30.0, 40.0, 40.0] and red["score"] == pytest.approx(0.9)


def test_results_need_a_score_column(tmp_path: Path) -> None:
    frame = read_annotations(write_coco(tmp_path))
    with pytest.raises(ValueError, match="score_col"):
        write_annotations(frame, tmp_path / "r.json", format="coco_results")
    with pytest.raises(ValueError, match="format"):
        write_annotations(frame, tmp_path / "r.json", format="yolo")


def test_via_csv_round_trip(tmp_path: Path) -> None:
    frame = read_annotations(write_coco(tmp_path))
    out = write_annotations(frame, tmp_path / "images" / "via.csv", format="via")
    table = read_via_csv(out)
    assert table.attrs["format"] == "via2-csv"
    assert table["label"].tolist() == frame["label"].tolist()
    assert _boxes(read_annotations(out)) == TRUTH


def test_predictions_frame_of_a_coco_datamodule_writes_a_results_file(tmp_path: Path) -> None:
    path = write_coco(tmp_path)
    data = RoiDataModule(path, y_cols="label", validation_split=0.0, image_size=(8, 8))
    data.setup("fit")
    n = len(data.predict_dataset().index)
    scores = np.eye(len(data.vocabularies["label"]))[np.arange(n) % 4]
    frame = data.predictions_frame([scores])
    out = write_annotations(frame, tmp_path / "res.json", format="coco_results",
                            label_col="label_predicted", score_col="label_score")
    written = json.loads(Path(out).read_text())
    assert len(written) == n and all(r["image_id"] == 7 for r in written)
    assert {r["category_id"] for r in written} <= set(CATEGORY_IDS.values())
