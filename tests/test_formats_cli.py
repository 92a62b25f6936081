"""`inspect`, `validate` and `preview` on every annotation format; `RoiDataModule` too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from annotation_scene import TRUTH, WRITERS
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
