"""DataFrames accept the box-cell spellings files do (Python-literal dicts from `to_csv`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from conftest import RECTS, write_scene

from keras_roi_datagen import RoiDataset
from keras_roi_datagen.formats import read_via_csv


def _via_csv(folder: Path) -> Path:
    write_scene(folder / "scene.png")
    lines = ["filename,file_size,file_attributes,region_count,region_id,"
             "region_shape_attributes,region_attributes"]
    for k, (label, x, y, w, h) in enumerate(RECTS):
        shape = f'{{""name"":""rect"",""x"":{x},""y"":{y},""width"":{w},""height"":{h}}}'
        lines.append(f'scene.png,1,"{{}}",{len(RECTS)},{k},"{shape}","{{""name"":""{label}""}}"')
    path = folder / "via.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _crops(ds: RoiDataset) -> np.ndarray:
    return np.concatenate([np.asarray(ds[i][0]) for i in range(len(ds))])


def test_frame_with_python_literal_box_cells_reads_like_the_file(tmp_path: Path) -> None:
    path = _via_csv(tmp_path)
    saved = tmp_path / "saved.csv"
    read_via_csv(path).to_csv(saved)
    frame = pd.read_csv(saved)
    # pandas gives the dict cells back as Python literals: {'name': 'rect', ...}
    assert frame["region_shape_attributes"].iloc[0].startswith("{'name'")
    by_frame = RoiDataset(frame, image_dir=tmp_path, y_cols="name", image_size=(16, 16),
                          shuffle=False, dtype="uint8")
    by_path = RoiDataset(path, y_cols="name", image_size=(16, 16), shuffle=False, dtype="uint8")
    assert len(by_frame.index) == len(RECTS)
    np.testing.assert_array_equal(_crops(by_frame), _crops(by_path))


def test_saved_csv_read_back_by_path_too(tmp_path: Path) -> None:
    path = _via_csv(tmp_path)
    saved = tmp_path / "saved.csv"
    read_via_csv(path).to_csv(saved)
    ds = RoiDataset(saved, y_cols="name", image_size=(16, 16), shuffle=False)
    assert sorted(ds.vocabularies["name"].classes) == sorted(r[0] for r in RECTS)
