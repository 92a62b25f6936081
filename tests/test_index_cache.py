"""The index cached on disk: reused while the table is unchanged, rebuilt when it changes."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import RECTS, numpy_batch, write_scene

from keras_roi_datagen import index_cache
from keras_roi_datagen.index import TableSpec, build_index

pytest.importorskip("pyarrow", reason="the columnar tables need pyarrow")


def _table(folder: Path, n_images: int = 3, fmt: str = "parquet") -> Path:
    rows = []
    for i in range(n_images):
        write_scene(folder / f"scene_{i}.png")
        for label, x, y, w, h in RECTS:
            rows.append({"filename": f"scene_{i}.png", "x": x, "y": y, "w": w, "h": h,
                         "name": label, "type": "t"})
    frame = pd.DataFrame(rows)
    path = folder / f"t.{fmt}"
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def _refuse_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the index was built again")

    from keras_roi_datagen.index import rows

    monkeypatch.setattr(rows, "_Collector", refuse)
    from keras_roi_datagen import index_columns

    monkeypatch.setattr(index_columns, "build_columnar_index", refuse)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_cache_is_reused_while_the_table_is_unchanged(tmp_path: Path, fmt: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    table = _table(tmp_path, fmt=fmt)
    spec = TableSpec(box_cols=("x", "y", "w", "h"), y_cols=("name",))
    cache = tmp_path / "cache"
    first = build_index(table, spec, cache=cache)
    plain = build_index(table, spec)
    assert first.index.fingerprint() == plain.index.fingerprint()
    assert isinstance(first.index.boxes, np.memmap)
    assert len(os.listdir(cache)) == 1
    _refuse_builds(monkeypatch)
    again = build_index(table, spec, cache=cache)
    assert again.index.fingerprint() == plain.index.fingerprint()
    assert again.vocabularies["name"].classes == plain.vocabularies["name"].classes
    assert again.index.source == str(table)


def test_cache_is_rebuilt_when_the_table_changes(tmp_path: Path) -> None:
    table = _table(tmp_path)
    spec = TableSpec(y_cols=("name",))
    cache = tmp_path / "cache"
    assert len(build_index(table, spec, cache=cache).index) == 12
    frame = pd.read_parquet(table)
    frame.loc[0, "x"] = 11  # same size, other bytes
    frame.to_parquet(table, index=False)
    os.utime(table, ns=(1, 1))
    changed = build_index(table, spec, cache=cache)
    assert changed.index.boxes[0, 0] == 11
    assert len(os.listdir(cache)) == 2
    frame.iloc[:5].to_parquet(table, index=False)
    assert len(build_index(table, spec, cache=cache).index) == 5
    # Another spec is another entry.
    assert build_index(table, TableSpec(y_cols=("type",)), cache=cache).vocabularies["type"]
    assert len(os.listdir(cache)) == 4


def test_problems_are_kept_in_the_cache(tmp_path: Path) -> None:
    table = _table(tmp_path)
    frame = pd.read_parquet(table)
    frame.loc[3, "w"] = 0
    frame.loc[5, "filename"] = "nowhere.png"
    frame.to_parquet(table, index=False)
    spec = TableSpec(y_cols=("name",))
    built = build_index(table, spec, cache=tmp_path / "c")
    again = build_index(table, spec, cache=tmp_path / "c")
    kinds = [(p.kind, p.row) for p in again.errors]
    assert kinds == [(p.kind, p.row) for p in built.errors] == [("box_degenerate", 3),
                                                                 ("missing_file", 5)]
    assert len(again.index) == 10


def test_pickled_dataset_maps_the_cache(tmp_path: Path) -> None:
    from keras_roi_datagen import RoiDataset

    table = _table(tmp_path, n_images=30)
    ds = RoiDataset(table, y_cols=("name",), image_size=(8, 8), batch_size=7, seed=1,
                    index_cache=tmp_path / "cache")
    small = RoiDataset(_table(tmp_path / "small", n_images=1), y_cols=("name",),
                       image_size=(8, 8), batch_size=7, seed=1, index_cache=tmp_path / "cache")
    blob = pickle.dumps(ds)
    # The index travels as the name of its cache entry, whatever its row count.
    assert len(blob) - len(pickle.dumps(small)) < 2000
    copy = pickle.loads(blob)
    assert isinstance(copy.index.boxes, np.memmap)
    np.testing.assert_array_equal(numpy_batch(copy[1])[0], numpy_batch(ds[1])[0])


def test_image_table_lists_each_images_regions(tmp_path: Path) -> None:
    table = _table(tmp_path)
    frame = pd.read_parquet(table).sample(frac=1.0, random_state=0)
    frame.to_parquet(table, index=False)
    build = build_index(table, TableSpec(y_cols=("name",)), cache=tmp_path / "c")
    images = index_cache.image_table(build.index)
    computed = index_cache.image_table(build.index.select(np.arange(len(build.index))))
    assert len(images) == 3 and images.counts().tolist() == [4, 4, 4]
    for i in range(3):
        rows = images.regions(i)
        assert (build.index.path_ids[rows] == i).all() and (np.diff(rows) > 0).all()
        np.testing.assert_array_equal(rows, computed.regions(i))


def test_duplicates_are_found_when_streaming_into_the_cache(tmp_path: Path) -> None:
    table = _table(tmp_path, n_images=2)
    frame = pd.read_parquet(table)
    frame = pd.concat([frame, frame.iloc[[1, 6, 1]]], ignore_index=True)  # rows 8, 9, 10
    frame.to_parquet(table, index=False)
    spec = TableSpec(y_cols=("name",))
    streamed = build_index(table, spec, cache=tmp_path / "c")
    memory = build_index(table, spec)
    found = [(p.kind, p.row) for p in streamed.problems if p.kind == "duplicate_row"]
    assert sorted(found) == sorted((p.kind, p.row) for p in memory.problems
                                   if p.kind == "duplicate_row") == [("duplicate_row", 1),
                                                                     ("duplicate_row", 6)]
    again = build_index(table, spec, cache=tmp_path / "c")
    assert sorted((p.kind, p.row) for p in again.problems
                  if p.severity == "warning") == sorted(found)
