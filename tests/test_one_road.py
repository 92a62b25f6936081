"""One road from a table to the index: `RoiDataset`, `RoiDataModule` and the CLI resolve and build alike."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import RECTS, write_scene

from keras_roi_datagen import RoiDataModule, RoiDataset
from keras_roi_datagen.cli import main
from keras_roi_datagen.formats import FORMATS, detect_format
from keras_roi_datagen.index import build as index_build

HEADER = ["filename", "file_size", "file_attributes", "region_count", "region_id",
          "region_shape_attributes", "region_attributes"]


def via_csv(folder: Path, *, file_attributes: dict, region_attributes: dict,
            extra: dict | None = None) -> Path:
    """A VIA 2 CSV of two scenes (four rectangles each), with extra top-level columns."""
    extra = extra or {}
    rows = [[*HEADER, *extra]]
    for i in range(2):
        name = f"scene_{i}.png"
        write_scene(folder / name)
        for k, (label, x, y, w, h) in enumerate(RECTS):
            shape = {"name": "rect", "x": x + 3, "y": y + 3, "width": w - 6, "height": h - 6}
            attributes = {key: (value if value != "<label>" else label)
                          for key, value in region_attributes.items()}
            rows.append([name, 0, json.dumps(file_attributes), len(RECTS), k, json.dumps(shape),
                         json.dumps(attributes), *extra.values()])
    path = folder / "via.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def classes(ds: RoiDataset) -> dict[str, tuple]:
    return {column: vocab.classes for column, vocab in ds.vocabularies.items()}


def module_classes(path: Path, **kwargs) -> dict[str, tuple]:
    data = RoiDataModule(path, validation_split=0.0, image_size=(8, 8), **kwargs)
    data.setup("fit")
    return classes(data.train_dataset())


def test_a_via_label_in_file_attributes_reads_the_same_through_dataset_and_datamodule(
        tmp_path: Path) -> None:
    path = via_csv(tmp_path, file_attributes={"type": "indoor"},
                   region_attributes={"name": "<label>"})
    ds = RoiDataset(path, image_size=(8, 8))
    assert classes(ds) == {"name": ("blue", "green", "red", "white"), "type": ("indoor",)}
    assert module_classes(path) == classes(ds)


def test_a_region_attribute_that_clashes_with_a_column_reads_the_same_everywhere(
        tmp_path: Path) -> None:
    # The region attribute `name` and a top-level column `name` disagree: the region wins.
    path = via_csv(tmp_path, file_attributes={}, region_attributes={"name": "<label>"},
                   extra={"name": "unrelated", "type": "t"})
    ds = RoiDataset(path, image_size=(8, 8))
    assert classes(ds)["name"] == ("blue", "green", "red", "white")
    assert module_classes(path) == classes(ds)


def test_the_datamodule_uses_the_index_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    path = via_csv(tmp_path / "data", file_attributes={"type": "t"},
                   region_attributes={"name": "<label>"})
    cache = tmp_path / "index_cache"
    first = RoiDataModule(path, validation_split=0.0, image_size=(8, 8), index_cache=cache)
    first.setup("fit")
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".")]

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the table was read again instead of from the index cache")

    monkeypatch.setitem(index_build.ROUTES, "via", (refuse,))
    again = RoiDataModule(path, validation_split=0.0, image_size=(8, 8), index_cache=cache)
    again.setup("fit")
    assert len(again.train_dataset().index) == len(first.train_dataset().index) == 8
    assert again.train_dataset().index.cache_folder is None  # recoded for its split, in memory


def test_the_datamodule_reads_a_split_column_from_a_via_file_attribute(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    path = via_csv(folder, file_attributes={"type": "t", "split": "train"},
                   region_attributes={"name": "<label>"})
    lines = path.read_text().splitlines()
    # The second image's regions (lines 6 to 9) are validation images.
    lines[5:] = [line.replace('""split"": ""train""', '""split"": ""val""') for line in lines[5:]]
    path.write_text("\n".join(lines) + "\n")
    data = RoiDataModule(path, image_size=(8, 8))
    data.setup("fit")
    assert len(data.train_dataset().index) == 4 and len(data.val_dataset().index) == 4
    val = data.val_dataset().index
    assert {Path(val.path_of(i)).name for i in range(len(val))} == {"scene_1.png"}


def test_every_registered_format_is_detected_and_read_by_the_cli(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from annotation_scene import TRUTH, WRITERS

    assert set(WRITERS) == set(FORMATS), "a new format needs a writer in tests/annotation_scene.py"
    for name in FORMATS:
        written = WRITERS[name](tmp_path / name)
        assert detect_format(written) == name
        assert main(["inspect", str(written), "--json", "--y-cols", "label"]) == 0
        facts = json.loads(capsys.readouterr().out)
        assert facts["usable_rows"] == len(TRUTH), name
        assert main(["inspect", str(written), "--format", name, "--y-cols", "label"]) == 0
        capsys.readouterr()


def test_the_cli_defaults_to_the_datasets_label_columns(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = via_csv(tmp_path, file_attributes={}, region_attributes={"species": "<label>"})
    assert main(["inspect", str(path), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["y_cols"] == ["name", "type"]  # as RoiDataset(path) decides
    assert facts["region_attributes"] == ["species"]  # what to pass instead, listed
    assert main(["inspect", str(path), "--json", "--y-cols", "species"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["labels"]["species"] == {label: 2 for label, *_ in sorted(RECTS)}


def test_predictions_frame_of_a_file_gives_the_files_rows(tmp_path: Path) -> None:
    path = via_csv(tmp_path, file_attributes={"type": "t"}, region_attributes={"name": "<label>"})
    data = RoiDataModule(path, validation_split=0.0, image_size=(8, 8), batch_size=3)
    data.setup("fit")
    n = len(data.predict_dataset().index)
    frame = data.predictions_frame([np.eye(4)[np.arange(n) % 4], np.ones((n, 1))])
    assert frame.index.tolist() == list(range(2, 10))  # CSV line numbers
    assert frame["name_predicted"].tolist() == [data.vocabularies["name"].classes[i % 4]
                                                for i in range(n)]
