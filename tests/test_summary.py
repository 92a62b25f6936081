"""`inspect` of a columnar table counted by columns: the same facts as from its built index."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import write_scene
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_roi_datagen import index as index_module
from keras_roi_datagen.cli import main
from keras_roi_datagen.index import TableSpec, build_index
from keras_roi_datagen.index.columns import build_columnar_index
from keras_roi_datagen.summary import TableSummary, percentiles, summarize, summarize_columnar

pytest.importorskip("pyarrow", reason="columnar tables need pyarrow (the `parquet` extra)")

BOX_COLS = ("x", "y", "w", "h")


def _messy(folder: Path) -> Path:
    """A Parquet table with every kind of row `inspect` counts differently."""
    for i in range(3):
        write_scene(folder / f"scene_{i}.png")
    rows: list[dict[str, Any]] = []
    for i in range(40):
        rows.append({"filename": f"scene_{i % 3}.png", "x": float(i % 7), "y": float(i % 5),
                     "w": 10.0 + i % 9, "h": 12.0 + i % 4, "name": ["red", "green", "blue"][i % 3],
                     "type": ["a", "b"][i % 2]})
    rows += [
        {**rows[0]},  # a duplicate of row 0
        {**rows[5]}, {**rows[5]},  # two more of row 5
        {**rows[1], "filename": None},  # no file name
        {**rows[2], "filename": "../outside.png"},  # outside the image folder
        {**rows[3], "filename": "not_there.png"},  # a missing image (counted, not an error)
        {**rows[4], "w": -3.0},  # degenerate box
        {**rows[6], "x": float("nan")},  # not finite
        {**rows[7], "name": None},  # no label
        {**rows[8], "name": " red"},  # whitespace: a warning, still red
        {**rows[9], "type": "c"},
    ]
    path = folder / "messy.parquet"
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def _inspect(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["inspect", *argv]) == 0
    return capsys.readouterr().out


def test_inspect_by_columns_prints_what_the_built_index_gives(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    table = str(_messy(tmp_path))
    args = (table, "--y-cols", "name,type")
    # Through the index (built into a cache, then counted), the way `inspect` read it before.
    via_index = {"text": _inspect(capsys, *args, "--index-cache", str(tmp_path / "c")),
                 "json": _inspect(capsys, *args, "--json", "--index-cache", str(tmp_path / "c"))}

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("inspect built the index")

    monkeypatch.setattr(index_module, "build_index", refuse)
    by_columns = {"text": _inspect(capsys, *args), "json": _inspect(capsys, *args, "--json")}
    assert by_columns == via_index
    facts = json.loads(by_columns["json"])
    # Not a vacuous equality: the table's problems are all there.
    assert facts["rows"] == 51 and facts["usable_rows"] == 46
    assert facts["warnings"] == {"label_whitespace": 1, "duplicate_row": 2}
    assert facts["errors"] == {"filename_missing": 1, "path_outside_image_dir": 1,
                               "box_degenerate": 1, "box_not_finite": 1, "label_missing": 1}
    assert facts["images_missing"] == 1 and facts["labels"]["type"]["c"] == 1


def _assert_same(fast: TableSummary, slow: TableSummary) -> None:
    assert (fast.n_rows, fast.usable_rows, fast.relative) == (slow.n_rows, slow.usable_rows,
                                                             slow.relative)
    assert fast.paths.tolist() == slow.paths.tolist()
    np.testing.assert_array_equal(fast.regions_per_image, slow.regions_per_image)
    np.testing.assert_array_equal(fast.widths, slow.widths)
    np.testing.assert_array_equal(fast.heights, slow.heights)
    assert {c: v.classes for c, v in fast.vocabularies.items()} == {
        c: v.classes for c, v in slow.vocabularies.items()}
    assert {c: v.tolist() for c, v in fast.label_counts.items()} == {
        c: v.tolist() for c, v in slow.label_counts.items()}
    assert [p.to_dict() for p in fast.problems] == [p.to_dict() for p in slow.problems]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), batch_rows=st.sampled_from([3, 7, 1 << 20]))
def test_summary_by_columns_equals_the_summary_of_the_index(
        tmp_path: Path, data: st.DataObject, batch_rows: int) -> None:
    n = data.draw(st.integers(0, 60))
    pick = st.integers(0, 3)
    frame = pd.DataFrame({
        "filename": [data.draw(st.sampled_from(["a.png", "b.png", "c.png", None, "../up.png"]))
                     for _ in range(n)],
        "x": [float(data.draw(pick)) for _ in range(n)],
        "y": [float(data.draw(pick)) for _ in range(n)],
        "w": [data.draw(st.sampled_from([2.0, 3.0, 0.0, -1.0, float("inf")])) for _ in range(n)],
        "h": [data.draw(st.sampled_from([2.0, 5.0])) for _ in range(n)],
        "name": [data.draw(st.sampled_from(["cat", "dog", " cat", None, ""])) for _ in range(n)],
    })
    path = tmp_path / f"t{n}_{batch_rows}.parquet"
    frame.to_parquet(path, index=False)
    spec = TableSpec(y_cols=("name",), check_files=False, image_dir=str(tmp_path),
                     box_cols=BOX_COLS)
    given_vocab = data.draw(st.sampled_from([None, {"name": ["cat", "dog", "eel"]}]))
    slow = summarize(build_columnar_index(str(path), spec, BOX_COLS, str(path), given_vocab,
                                          batch_rows=batch_rows))
    fast = summarize_columnar(str(path), spec, BOX_COLS, str(path), given_vocab,
                              batch_rows=batch_rows)
    _assert_same(fast, slow)


def test_summary_of_a_table_read_row_by_row(tmp_path: Path) -> None:
    frame = pd.DataFrame({"filename": ["a.png", "a.png", "b.png"], "x": [0, 1, 2], "y": [0, 0, 0],
                          "w": [4, 2, 0], "h": [3, 2, 2], "name": ["cat", "dog", "cat"]})
    spec = TableSpec(y_cols=("name",), box_cols=BOX_COLS, check_files=False)
    summary = summarize(build_index(frame, spec))
    assert (summary.n_rows, summary.usable_rows) == (3, 2)
    assert summary.widths.tolist() == [4.0, 2.0] and summary.heights.tolist() == [3.0, 2.0]
    assert summary.regions_per_image[summary.regions_per_image > 0].tolist() == [2]
    assert [p.kind for p in summary.errors] == ["box_degenerate"]
    assert summary.label_counts["name"].tolist() == [1, 1]


def test_summary_keeps_no_row_arrays(tmp_path: Path) -> None:
    table = _messy(tmp_path)
    spec = replace(TableSpec(y_cols=("name", "type"), check_files=False), image_dir=str(tmp_path))
    summary = summarize_columnar(str(table), spec, BOX_COLS, str(table))
    sizes = {name: np.asarray(value).size for name, value in vars(summary).items()
             if isinstance(value, np.ndarray)}
    # Boxes' sizes (one value a row) and counts per image: no path ids, codes or positions.
    assert sizes == {"regions_per_image": 4, "widths": 46, "heights": 46}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0, 1e6, exclude_min=True) | st.floats(-1e6, -1e-300) | st.sampled_from(
    [1.0, 2.0, 1e-300]), min_size=1, max_size=60),
       st.lists(st.floats(0, 100), min_size=1, max_size=8))
def test_percentiles_are_numpys_to_the_last_bit(values: list[float], q: list[float]) -> None:
    """Box widths and heights (never zero) get numpy's percentiles, bit for bit."""
    array = np.array(values)
    found = percentiles(array, [0, 5, 25, 50, 75, 95, 100, *q])
    expected = np.percentile(array, [0, 5, 25, 50, 75, 95, 100, *q])
    assert found.tobytes() == expected.tobytes()
    assert array.tolist() == values  # the input is not sorted in place
    in_place = percentiles(array, [0, 5, 25, 50, 75, 95, 100, *q], overwrite_input=True)
    assert in_place.tobytes() == expected.tobytes()
    assert array.tolist() == sorted(values)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 2),
                          st.sampled_from(["cat", "dog", " cat", None])),
                min_size=1, max_size=40),
       st.integers(1, 7))
def test_duplicates_found_by_columns_are_those_of_the_index(
        tmp_path: Path, rows: list[tuple[int, int, int, str | None]], batch_rows: int) -> None:
    """Repeated rows (in any batch, any order) are reported as the built index reports them."""
    frame = pd.DataFrame({"filename": [f"{i}.png" for i, *_ in rows],
                          "x": [float(x) for _, x, _, _ in rows],
                          "y": [0.0] * len(rows), "w": [float(w) for _, _, w, _ in rows],
                          "h": [5.0] * len(rows), "name": [n for *_, n in rows]})
    path = tmp_path / "repeated.parquet"
    frame.to_parquet(path, index=False)
    spec = TableSpec(y_cols=("name",), image_dir=str(tmp_path), check_files=False)
    fast = summarize_columnar(str(path), spec, BOX_COLS, str(path), batch_rows=batch_rows)
    slow = summarize(build_index(str(path), replace(spec, box_cols=BOX_COLS)))
    # The same problems; duplicate groups may come in another order (both in hash order).
    assert sorted((p.kind, p.row, p.message) for p in fast.problems) == sorted(
        (p.kind, p.row, p.message) for p in slow.problems)
    np.testing.assert_array_equal(fast.widths, slow.widths)
    assert fast.label_counts["name"].tolist() == slow.label_counts["name"].tolist()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 30), st.sampled_from(["cat", "dog", "bird", None]),
                          st.floats(-2, 8)), min_size=1, max_size=60),
       st.integers(1, 9))
def test_categorical_parquet_counts_as_the_row_by_row_reader(
        tmp_path: Path, rows: list[tuple[int, str | None, float]], group_rows: int) -> None:
    """A categorical column repeats its whole dictionary in every row group: each name is
    resolved once and its rows counted, as when the table is read row by row."""
    frame = pd.DataFrame({"filename": [f"img_{i}.png" for i, _, _ in rows],
                          "x": [1.0] * len(rows), "y": [0.0] * len(rows),
                          "w": [w for *_, w in rows], "h": [5.0] * len(rows),
                          "name": [n for _, n, _ in rows]})
    categorical = frame.assign(filename=pd.Categorical(
        frame["filename"], categories=[f"img_{i}.png" for i in range(31)]),
        name=pd.Categorical(frame["name"], categories=["bird", "cat", "dog"]))
    path = tmp_path / "categorical.parquet"
    categorical.to_parquet(path, index=False, row_group_size=group_rows)
    spec = TableSpec(y_cols=("name",), image_dir=str(tmp_path), check_files=False)
    fast = summarize_columnar(str(path), spec, BOX_COLS, str(path), batch_rows=group_rows)
    slow = summarize(build_index(frame, replace(spec, box_cols=BOX_COLS)))
    assert dict(zip(fast.paths.tolist(), fast.regions_per_image.tolist())) == dict(
        zip(slow.paths.tolist(), slow.regions_per_image.tolist()))
    assert fast.label_counts["name"].tolist() == slow.label_counts["name"].tolist()
    assert (fast.n_rows, fast.usable_rows) == (slow.n_rows, slow.usable_rows)
    assert sorted((p.kind, p.row) for p in fast.problems) == sorted(
        (p.kind, p.row) for p in slow.problems)
