"""Mapped index columns read by position: the rows a batch needs, never the pages around them."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_scene
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_roi_datagen import index_cache
from keras_roi_datagen.index import TableSpec, build_index
from keras_roi_datagen.mapped import gather, open_column, read_range
from keras_roi_datagen.permutation import TwoLevelPermutation

_HEADER = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")
needs_smaps = pytest.mark.skipif(not os.path.exists("/proc/self/smaps"),
                                 reason="reads the resident pages of mappings from /proc/self/smaps")


def resident_kib(folder: str | Path) -> dict[str, int]:
    """KiB of each file under `folder` resident in this process's mappings (smaps `Rss`)."""
    found: dict[str, int] = {}
    current = None
    prefix = os.path.realpath(folder)
    with open("/proc/self/smaps", encoding="utf-8") as handle:
        for line in handle:
            if _HEADER.match(line):
                parts = line.split(maxsplit=5)
                current = parts[5].strip() if len(parts) > 5 else None
            elif line.startswith("Rss:") and current and current.startswith(prefix):
                name = os.path.basename(current)
                found[name] = found.get(name, 0) + int(line.split()[1])
    return found


def _column(tmp_path: Path, values: np.ndarray) -> np.ndarray:
    path = tmp_path / f"c_{values.dtype.str.strip('<>|')}_{values.ndim}_{len(values)}.bin"
    np.ascontiguousarray(values).tofile(path)
    return open_column(str(path), values.dtype.str, list(values.shape))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), width=st.sampled_from([0, 1, 4]),
       dtype=st.sampled_from(["<i4", "<i8", "<f8", "|u1"]), data=st.data())
def test_gather_reads_the_same_rows_as_indexing(tmp_path_factory: pytest.TempPathFactory, n: int,
                                                width: int, dtype: str, data: st.DataObject) -> None:
    shape = (n,) if width == 0 else (n, width)
    values = (np.arange(int(np.prod(shape))) * 7 % 251).astype(dtype).reshape(shape)
    column = _column(tmp_path_factory.mktemp("col"), values)
    rows = np.array(data.draw(st.lists(st.integers(-n, n - 1), max_size=50)), dtype=np.int64)
    got = gather(column, rows)
    np.testing.assert_array_equal(got, values[rows])
    assert got.dtype == values.dtype and got.shape == (len(rows), *shape[1:])
    assert not isinstance(got, np.memmap)
    start = data.draw(st.integers(0, n))
    stop = data.draw(st.integers(start, n + 3))
    np.testing.assert_array_equal(read_range(column, start, stop), values[start:stop])


def test_gather_of_a_view_reads_the_view(tmp_path: Path) -> None:
    values = np.arange(40, dtype="<i8").reshape(20, 2)
    column = _column(tmp_path, values)
    view = column[5:]  # same file, other first row: must not be read by file position
    np.testing.assert_array_equal(gather(view, np.array([0, 3])), values[5:][[0, 3]])
    np.testing.assert_array_equal(gather(values, np.array([1, -1])), values[[1, -1]])


def test_gather_refuses_rows_out_of_range(tmp_path: Path) -> None:
    column = _column(tmp_path, np.arange(10, dtype="<i4"))
    with pytest.raises(IndexError, match=r"\[-10, 10\)"):
        gather(column, np.array([3, 10]))
    with pytest.raises(IndexError):
        gather(column, np.array([-11]))


@needs_smaps
def test_gather_maps_nothing_of_the_file(tmp_path: Path) -> None:
    column = _column(tmp_path, np.arange(1 << 20, dtype="<f8"))  # 8 MiB
    rows = np.random.default_rng(0).integers(0, 1 << 20, 500)
    np.testing.assert_array_equal(gather(column, rows), rows.astype("<f8"))
    assert sum(resident_kib(tmp_path).values()) == 0
    np.asarray(column[rows])  # read through the mapping, the same rows fault pages in
    assert sum(resident_kib(tmp_path).values()) > 0


def test_two_level_order_reads_a_mapped_by_image(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 50, 2000)
    table = index_cache.ImageTable.from_group_ids(ids)
    mapped = _column(tmp_path, np.asarray(table.by_image, dtype="<i8"))
    plain = TwoLevelPermutation(table.starts, table.by_image, seed=5, epoch=2)
    from_file = TwoLevelPermutation(table.starts, mapped, seed=5, epoch=2)
    np.testing.assert_array_equal(from_file.take(0, 2000), plain.take(0, 2000))
    assert sorted(from_file.take(0, 2000).tolist()) == list(range(2000))


_ROW_COLUMNS = ("boxes", "path_ids", "positions", "codes_0", "codes_1", "by_image")


def _big_table(folder: Path, n_rows: int = 120_000, n_images: int = 4) -> Path:
    for i in range(n_images):
        write_scene(folder / f"scene_{i}.png")
    k = np.arange(n_rows)
    frame = pd.DataFrame({
        "filename": [f"scene_{i}.png" for i in k * n_images // n_rows],
        "x": k % 100, "y": (k // 100) % 60, "w": 10 + (k // 6000) % 20, "h": 20,
        "name": np.array(["red", "green", "blue"])[k % 3], "type": np.array(["a", "b"])[k % 2]})
    path = folder / "big.parquet"
    frame.to_parquet(path, index=False)
    return path


@needs_smaps
def test_training_from_a_cached_index_keeps_its_rows_out_of_memory(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    from keras_roi_datagen import RoiDataset

    table = _big_table(tmp_path)
    cache = tmp_path / "cache"
    build_index(table, TableSpec(y_cols=("name", "type")), cache=cache)  # built: now reused
    ds = RoiDataset(table, y_cols=("name", "type"), image_size=(8, 8), batch_size=64, seed=1,
                    index_cache=cache)
    assert isinstance(ds.index.boxes, np.memmap)
    for i in range(6):  # 384 rows at random places in 120,000
        ds[i]
    state = ds.get_state()
    resident = {name: kib for name, kib in resident_kib(cache).items()
                if name.removesuffix(".bin") in _ROW_COLUMNS}
    # Mapped, and nothing of them resident (read through the mapping, each row would bring
    # in its page and the kernel's read-around).
    assert {"boxes.bin", "path_ids.bin", "codes_0.bin"} <= set(resident)
    assert resident == dict.fromkeys(resident, 0)
    # The fingerprint computed from the files is the one computed from the arrays.
    assert state["config"]["table"] == index_cache.load(ds.index.cache_folder).index.fingerprint()
    from dataclasses import replace

    in_memory = replace(ds.index, cache_folder=None)
    assert state["config"]["table"] == in_memory.fingerprint()


def test_the_fingerprint_is_kept_in_the_entry(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    table = _big_table(tmp_path, n_rows=600, n_images=2)
    build = build_index(table, TableSpec(y_cols=("name",)), cache=tmp_path / "cache")
    folder = build.index.cache_folder
    assert folder is not None
    meta_path = os.path.join(folder, "meta.json")
    assert "fingerprint" not in json.loads(Path(meta_path).read_text())
    first = build.index.fingerprint()
    assert json.loads(Path(meta_path).read_text())["fingerprint"] == first
    os.remove(os.path.join(folder, "boxes.bin"))  # kept: not read again
    assert build.index.fingerprint() == first


def test_an_entry_removed_while_mapped_still_fingerprints_from_its_arrays(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    import shutil
    from dataclasses import replace

    table = _big_table(tmp_path, n_rows=300, n_images=2)
    build = build_index(table, TableSpec(y_cols=("name",)), cache=tmp_path / "cache")
    expected = replace(build.index, cache_folder=None).fingerprint()
    shutil.rmtree(tmp_path / "cache")
    assert build.index.fingerprint() == expected
    np.testing.assert_array_equal(gather(build.index.boxes, np.array([4, 1])),
                                  np.asarray(build.index.boxes)[[4, 1]])
