"""`inspect`, `validate` and `preview` on every annotation format and export layout; `RoiDataModule` too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from annotation_scene import LAYOUT_FORMATS, LAYOUTS, SPLIT_LAYOUTS, SPLIT_OF, TRUTH, WRITERS
from PIL import Image

from keras_roi_datagen import RoiDataModule
from keras_roi_datagen.cli import _FORMATS, main
from keras_roi_datagen.formats import FORMATS

NEW = ["coco", "voc", "yolo", "labelstudio", "cvat"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {name: WRITERS[name](tmp_path_factory.mktemp(name)) for name in WRITERS}


def test_cli_format_choices_are_the_registry() -> None:
    assert set(_FORMATS) == {"auto", *FORMATS}


@pytest.mark.parametrize("fmt", NEW)
def test_inspect_reads_each_format(corpus: dict[str, Path], fmt: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(corpus[fmt]), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["format"] == fmt
    assert facts["usable_rows"] == len(TRUTH)
    assert facts["labels"]["label"] == {label: 1 for label in sorted(TRUTH)}


@pytest.mark.parametrize("fmt", NEW)
def test_validate_and_preview_each_format(corpus: dict[str, Path], fmt: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(corpus[fmt]), "--no-progress"]) == 0
    sheet = tmp_path / "sheet.png"
    assert main(["preview", str(corpus[fmt]), "--sample", "4", "-o", str(sheet)]) == 0
    assert Image.open(sheet).size[0] > 0


def test_forced_format_on_the_command_line(corpus: dict[str, Path],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(corpus["cvat"]), "--format", "voc"]) == 1
    assert "VOC" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", NEW)
def test_datamodule_takes_each_format(corpus: dict[str, Path], fmt: str) -> None:
    data = RoiDataModule(corpus[fmt], y_cols="label", validation_split=0.0, image_size=(16, 16),
                         batch_size=4)
    data.setup("fit")
    assert len(data.train_dataset().index) == len(TRUTH)
    assert sorted(data.vocabularies["label"].classes) == sorted(TRUTH)


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {name: LAYOUTS[name](tmp_path_factory.mktemp(name)) for name in LAYOUTS}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_inspect_validate_preview_each_export_layout(
        layouts: dict[str, Path], layout: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = str(layouts[layout])
    assert main(["inspect", path, "--json", "--y-cols", "label"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["format"] == {"via": "via2-csv"}.get(LAYOUT_FORMATS[layout], LAYOUT_FORMATS[layout])
    images = len(SPLIT_OF) if layout in SPLIT_LAYOUTS else 1
    assert facts["usable_rows"] == images * len(TRUTH) and facts["images_missing"] == 0
    assert facts["labels"]["label"] == {label: images for label in sorted(TRUTH)}
    assert facts["splits"] == ({"train": 8, "val": 4, "test": 4} if layout in SPLIT_LAYOUTS
                               else {})
    assert main(["inspect", path, "--y-cols", "label"]) == 0
    text = capsys.readouterr().out
    assert ("train 8, val 4, test 4 rows (the table's own)" in text) == (layout in SPLIT_LAYOUTS)
    assert main(["validate", path, "--no-progress", "--y-cols", "label"]) == 0
    assert "OK." in capsys.readouterr().out
    sheet = tmp_path / "sheet.png"
    assert main(["preview", path, "--sample", "4", "-o", str(sheet), "--y-cols", "label"]) == 0
    assert Image.open(sheet).size[0] > 0


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_datamodule_takes_each_export_layout(layouts: dict[str, Path], layout: str) -> None:
    data = RoiDataModule(layouts[layout], y_cols="label", image_size=(16, 16), batch_size=4)
    data.setup("fit")
    own = layout in SPLIT_LAYOUTS
    assert data.split_origin is not None and data.split_origin.startswith(
        "the table's own" if own else "drawn at random")
    rows = len(data.train_dataset().index)
    assert rows == (2 * len(TRUTH) if own else len(TRUTH))  # one image: all in training
    assert sorted(data.vocabularies["label"].classes) == sorted(TRUTH)
