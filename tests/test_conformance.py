"""The conformance corpus: one scene written in every format gives the same boxes and crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from annotation_scene import COLOURS, TRUTH, WRITERS

from keras_roi_datagen import AnnotationError, RoiDataset, read_annotations
from keras_roi_datagen.formats import detect_format

FORMATS = sorted(WRITERS)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {name: WRITERS[name](tmp_path_factory.mktemp(name)) for name in FORMATS}


@pytest.mark.parametrize("fmt", FORMATS)
def test_detected(corpus: dict[str, Path], fmt: str) -> None:
    assert detect_format(corpus[fmt]) == fmt


@pytest.mark.parametrize("fmt", FORMATS)
def test_boxes_match_pixel_truth(corpus: dict[str, Path], fmt: str) -> None:
    frame = read_annotations(corpus[fmt])
    assert frame.attrs["format"] == fmt
    boxes = {row.label: (row.x, row.y, row.x + row.w, row.y + row.h)
             for row in frame.itertuples()}
    assert boxes == TRUTH


def _crops(ds: RoiDataset) -> dict[str, np.ndarray]:
    x, y = ds[0]
    classes = ds.vocabularies["label"].decode(np.asarray(y).argmax(axis=-1))
    return dict(zip(classes, np.asarray(x)))


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_gives_identical_crops(corpus: dict[str, Path], fmt: str) -> None:
    options = {"y_cols": "label", "image_size": (24, 24), "shuffle": False, "dtype": "uint8",
               "batch_size": 8}
    reference = _crops(RoiDataset(corpus["via"], **options))
    by_path = _crops(RoiDataset(corpus[fmt], **options))
    by_frame = _crops(RoiDataset(read_annotations(corpus[fmt]), **options))
    assert sorted(by_path) == sorted(TRUTH)
    for label in TRUTH:
        np.testing.assert_array_equal(by_path[label], reference[label], err_msg=f"{fmt} {label}")
        np.testing.assert_array_equal(by_frame[label], reference[label], err_msg=f"{fmt} {label}")
    for label in ("red", "green", "blue"):  # solid boxes: the crop is the box's colour
        inner = by_path[label][4:-4, 4:-4]  # the resize filter blends the outermost pixels
        assert (inner == np.array(COLOURS[label], dtype=np.uint8)).all(), (fmt, label)


def test_forced_format_wins_over_detection(corpus: dict[str, Path]) -> None:
    frame = read_annotations(corpus["coco"], format="coco")
    assert len(frame) == 4
    with pytest.raises(ValueError, match="format"):
        read_annotations(corpus["coco"], format="pascal")


def test_missing_label_columns_suggest_label(corpus: dict[str, Path]) -> None:
    with pytest.raises(AnnotationError, match=r"y_cols='label'"):
        RoiDataset(corpus["coco"], y_cols=("name", "type"), image_size=(8, 8))
