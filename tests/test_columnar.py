"""Parquet and Arrow tables: read by columns, with the same index and problems as the CSV reader."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import RECTS, numpy_batch, write_scene
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_roi_datagen import index_columns
from keras_roi_datagen.index import IndexBuild, TableSpec, build_index
from keras_roi_datagen.paths import PathTable

pa = pytest.importorskip("pyarrow", reason="columnar tables need pyarrow (the `parquet` extra)")

BOX_COLS = ("x", "y", "w", "h")


def _scenes(folder: Path, n_images: int = 3) -> pd.DataFrame:
    rows = []
    for i in range(n_images):
        write_scene(folder / f"scene_{i}.png")
        for label, x, y, w, h in RECTS:
            rows.append({"filename": f"scene_{i}.png", "x": x + 3, "y": y + 3, "w": w - 6,
                         "h": h - 6, "name": label, "type": "dark" if label != "white" else "light"})
    return pd.DataFrame(rows)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.reset_index(drop=True).to_feather(path)
    return path


def _rows(build: IndexBuild) -> list[tuple[Any, ...]]:
    index = build.index
    return [(index.row_label(i), index.path_of(i), *index.boxes[i].tolist(),
             *(build.vocabularies[c].classes[index.codes[c][i]] for c in sorted(index.codes)))
            for i in range(len(index))]


@pytest.mark.parametrize("suffix", [".parquet", ".feather"])
def test_columnar_table_gives_the_csv_batches(tmp_path: Path, suffix: str) -> None:
    from keras_roi_datagen import RoiDataset

    frame = _scenes(tmp_path)
    frame.to_csv(tmp_path / "t.csv", index=False)
    table = _write(frame, tmp_path / f"t{suffix}")
    args: dict[str, Any] = {"image_size": (16, 16), "batch_size": 5, "seed": 2}
    fast = RoiDataset(table, **args)  # x, y, w, h found without box_cols
    slow = RoiDataset(tmp_path / "t.csv", box_cols=BOX_COLS, **args)
    assert isinstance(fast.index.paths, PathTable)
    assert fast.index.fingerprint() == slow.index.fingerprint()
    for i in range(len(slow)):
        (xa, ya), (xb, yb) = numpy_batch(fast[i]), numpy_batch(slow[i])
        np.testing.assert_array_equal(xa, xb)
        for a, b in zip(ya, yb):
            np.testing.assert_array_equal(a, b)


def test_labels_are_normalised_once_per_distinct_value(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    frame = pd.concat([_scenes(tmp_path)] * 500, ignore_index=True)  # 6000 rows
    table = _write(frame, tmp_path / "t.parquet")
    calls = []
    real = index_columns.normalize_label
    monkeypatch.setattr(index_columns, "normalize_label", lambda v: calls.append(v) or real(v))
    build = build_index(table, TableSpec())
    assert len(build.index) == 6000
    assert len(calls) == 4 + 2  # four names, two types: no per-row Python
    assert build.index.paths.tolist() == [str(tmp_path / f"scene_{i}.png") for i in range(3)]


_names = st.sampled_from(["scene_0.png", "scene_1.png", "missing.png", "../out.png", None])
_numbers = st.one_of(st.floats(-5, 200), st.just(float("nan")), st.just(0.0), st.just(10.0))
_labels = st.sampled_from(["red", " red", "blue", "", None, "green "])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(_names, _numbers, _numbers, _numbers, _numbers, _labels), min_size=1,
                max_size=25), st.booleans())
def test_problems_and_rows_match_the_row_reader(tmp_path: Path, rows: list[tuple[Any, ...]],
                                                vocab_given: bool) -> None:
    for i in range(2):
        write_scene(tmp_path / "images" / f"scene_{i}.png")
    frame = pd.DataFrame(rows, columns=["filename", *BOX_COLS, "name"])
    frame["filename"] = frame["filename"].astype(object)
    frame["name"] = frame["name"].astype(object)
    table = _write(frame, tmp_path / "t.parquet")
    spec = TableSpec(image_dir=str(tmp_path / "images"), box_cols=BOX_COLS, y_cols=("name",))
    vocabularies = {"name": ["red", "green"]} if vocab_given else None
    slow = build_index(frame, spec, vocabularies)
    key = lambda p: (str(p.row), p.kind, p.column, p.severity)  # noqa: E731
    with tempfile.TemporaryDirectory() as cache:
        # In memory, and streamed into a cache entry with one record batch per 4 rows.
        for fast in (build_index(table, spec, vocabularies),
                     index_columns.build_columnar_index(
                         str(table), spec, BOX_COLS, str(table), vocabularies, batch_rows=4,
                         cache_folder=os.path.join(cache, "entry"))):
            assert _rows(fast) == _rows(slow)
            assert fast.vocabularies["name"].classes == slow.vocabularies["name"].classes
            assert sorted(map(key, fast.problems)) == sorted(map(key, slow.problems))
            assert fast.n_rows == slow.n_rows == len(frame)


def test_paths_take_their_utf8_length_not_the_longest(tmp_path: Path) -> None:
    names = [f"img_{i}.jpg" for i in range(20_000)] + ["x" * 500 + ".jpg"]
    table = PathTable.from_strings(names)
    fixed_width = np.asarray(names, dtype=str)
    assert table.tolist() == names and table[-1] == names[-1] and len(table) == len(names)
    assert table.nbytes < fixed_width.nbytes / 50
    assert table[np.array([2, 0])].tolist() == [names[2], names[0]]


def test_cli_inspects_a_parquet_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from keras_roi_datagen.cli import main

    table = _write(_scenes(tmp_path), tmp_path / "t.parquet")
    assert main(["inspect", str(table), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["rows"] == 12 and facts["images"] == 3 and facts["images_missing"] == 0
    assert facts["shape_kinds"] == {"four columns (xywh)": 12} and facts["format"] == "parquet"
    assert facts["labels"]["name"] == {"blue": 3, "green": 3, "red": 3, "white": 3}


def test_cli_reuses_an_index_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from keras_roi_datagen.cli import main

    table = _write(_scenes(tmp_path), tmp_path / "t.parquet")
    cache = tmp_path / "cache"
    for _ in range(2):
        assert main(["inspect", str(table), "--json", "--index-cache", str(cache)]) == 0
        assert json.loads(capsys.readouterr().out)["usable_rows"] == 12
    assert len(os.listdir(cache)) == 1


# -- plain CSV tables, read by columns ---------------------------------------------------------

_csv_labels = st.sampled_from(["red", " red", "blue", "", None, "green ", "a,b", 'say "hi"',
                               "two\nlines"])


def _csv_text(rows: list[tuple[Any, ...]], quote_all: bool, blank_after: set[int],
              bom: bool, crlf: bool) -> bytes:
    import csv
    import io

    out = io.StringIO(newline="")
    newline = "\r\n" if crlf else "\n"
    writer = csv.writer(out, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
                        lineterminator=newline)
    writer.writerow(["filename", *BOX_COLS, "name"])
    for k, row in enumerate(rows):
        writer.writerow(["" if v is None or (isinstance(v, float) and np.isnan(v)) else v
                         for v in row])
        if k in blank_after:
            out.write(newline)
    return ("\ufeff" if bom else "").encode() + out.getvalue().encode()


def _row_reader(table: Path, spec: TableSpec, vocabularies: Any,
                monkeypatch: pytest.MonkeyPatch) -> IndexBuild:
    from keras_roi_datagen import csv_columns

    def refuse(*args: Any) -> Any:
        raise csv_columns.CsvFallback("the row reader, for comparison")

    with monkeypatch.context() as patch:
        patch.setattr(csv_columns, "open_csv_table", refuse)
        return build_index(table, spec, vocabularies)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(_names, _numbers, _numbers, _numbers, _numbers, _csv_labels), min_size=1,
                max_size=25), st.booleans(), st.booleans(), st.sets(st.integers(0, 25)),
       st.booleans(), st.booleans())
def test_csv_problems_and_rows_match_the_row_reader(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: list[tuple[Any, ...]],
        vocab_given: bool, quote_all: bool, blank_after: set[int], bom: bool,
        crlf: bool) -> None:
    from keras_roi_datagen import csv_columns

    for i in range(2):
        write_scene(tmp_path / "images" / f"scene_{i}.png")
    table = tmp_path / "t.csv"
    table.write_bytes(_csv_text(rows, quote_all, blank_after, bom, crlf))
    spec = TableSpec(image_dir=str(tmp_path / "images"), box_cols=BOX_COLS, y_cols=("name",))
    vocabularies = {"name": ["red", "green"]} if vocab_given else None
    slow = _row_reader(table, spec, vocabularies, monkeypatch)
    key = lambda p: (str(p.row), p.kind, p.column, p.severity)  # noqa: E731
    opened, box_cols = csv_columns.open_csv_table(str(table), "filename", BOX_COLS,
                                                  spec.box_col, ("name",))
    with tempfile.TemporaryDirectory() as cache:
        # By build_index (into a cache), in memory, and streamed into a cache entry with
        # one record batch per 4 rows.
        for fast in (build_index(table, spec, vocabularies, cache=cache),
                     index_columns.build_columnar_index(
                         str(table), spec, box_cols, str(table), vocabularies, table=opened),
                     index_columns.build_columnar_index(
                         str(table), spec, box_cols, str(table), vocabularies, batch_rows=4,
                         table=opened, cache_folder=os.path.join(cache, "entry"))):
            assert _rows(fast) == _rows(slow)
            assert fast.vocabularies["name"].classes == slow.vocabularies["name"].classes
            assert sorted(map(key, fast.problems)) == sorted(map(key, slow.problems))
            assert fast.n_rows == slow.n_rows == len(rows)


def test_csv_table_is_read_by_columns_into_the_index_cache(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from keras_roi_datagen import csv_columns

    frame = pd.concat([_scenes(tmp_path)] * 500, ignore_index=True)  # 6000 rows
    table = tmp_path / "t.csv"
    frame.to_csv(table, index=False)
    calls = []
    real = index_columns.normalize_label
    monkeypatch.setattr(index_columns, "normalize_label", lambda v: calls.append(v) or real(v))
    cache = tmp_path / "cache"
    first = build_index(table, TableSpec(), cache=cache)  # x, y, w, h found without box_cols
    assert len(first.index) == 6000 and len(calls) == 4 + 2  # no per-row Python
    assert first.index.row_label(0) == 2 and first.index.row_label(5999) == 6001  # CSV lines
    assert first.index.cache_folder is not None

    def no_build(*args: Any) -> Any:
        raise AssertionError("the cached index was not reused")

    monkeypatch.setattr(csv_columns, "open_csv_table", no_build)
    again = build_index(table, TableSpec(), cache=cache)
    assert again.index.fingerprint() == first.index.fingerprint()
    monkeypatch.undo()
    frame.iloc[:10].to_csv(table, index=False)  # the table changes: the index is rebuilt
    assert len(build_index(table, TableSpec(), cache=cache).index) == 10


@pytest.mark.parametrize("cache", [False, True])
@pytest.mark.parametrize("head_bytes", [1 << 20, 256])  # the text seen at once, or mid-build
def test_csv_with_text_in_a_box_column_falls_back_to_the_row_reader(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: bool, head_bytes: int) -> None:
    from keras_roi_datagen import csv_columns

    monkeypatch.setattr(csv_columns, "_INFER_BYTES", head_bytes)
    monkeypatch.setattr(csv_columns, "_BLOCK_BYTES", 4096)
    frame = pd.concat([_scenes(tmp_path)] * 50, ignore_index=True).astype({"x": object})
    frame.loc[400, "x"] = "12px"
    table = tmp_path / "t.csv"
    frame.to_csv(table, index=False)
    spec = TableSpec(box_cols=BOX_COLS)
    build = build_index(table, spec, cache=tmp_path / "cache" if cache else None)
    slow = _row_reader(table, spec, None, monkeypatch)
    assert _rows(build) == _rows(slow) and len(build.index) == len(frame) - 1
    assert [(p.row, p.kind) for p in build.problems] == [(p.row, p.kind) for p in slow.problems]
    assert [p.row for p in build.problems if p.severity == "error"] == [402]


_fields = st.text(alphabet=st.sampled_from(list('ab ,"\n\t')), max_size=6)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.lists(_fields, min_size=2, max_size=3),
                          st.sampled_from(["", "  ", "\t"])), min_size=1, max_size=12),
       st.booleans(), st.booleans(), st.one_of(st.integers(1, 9), st.just(1 << 16)))
def test_record_lines_match_the_csv_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           records: list[Any], crlf: bool, final_newline: bool,
                                           chunk: int) -> None:
    import csv
    import io

    from keras_roi_datagen import csv_columns
    from keras_roi_datagen.formats.csv import LineReader, iter_records, open_text

    newline = "\r\n" if crlf else "\n"
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator=newline)
    for record in records:
        if isinstance(record, str):
            out.write(record + newline)  # a blank line
        else:
            writer.writerow(record)
    text = out.getvalue()
    if not final_newline:
        text = text[:-len(newline)]
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode())
    with open_text(path) as handle:
        expected = [start for start, _, _ in iter_records(LineReader(handle, path))]
    monkeypatch.setattr(csv_columns, "_SCAN_BYTES", chunk)  # records across chunk boundaries
    scan = csv_columns.record_lines(path, collect=True)
    assert scan.starts is not None and scan.starts.tolist() == expected
    assert scan.records == len(expected)
    assert scan.regular == (expected == list(range(1, len(expected) + 1)))


_HEADER = "filename,x,y,w,h,name\n"


@pytest.mark.parametrize("text", [
    _HEADER, _HEADER + "a.png,1,2\n", "filename;x;y;w;h;name\na.png;1;2;3;4;red\n",
    _HEADER + "a.png,inf,2,3,4,red\n", _HEADER + "a.png,1,2,3,4,1\na.png,1,2,3,5,2\n",
    _HEADER + "a.png,1,2,3,4,True\na.png,1,2,3,5,false\n", _HEADER + "a.png,1,2,3,4,red\r\rb,1,2,3,4,red",
    "x,y,w,h,name,filename\n1,2,3,4,NA,a.png\n1,2,3,4,null,\n",
    _HEADER + "a.png,1,2,3,4,red\n" + "a.png,1,2,3,4,red\n",
], ids=["header only", "short row", "semicolons", "inf", "int labels", "bool labels",
        "bare CR", "pandas nulls", "duplicates"])
def test_csv_edge_tables_match_the_row_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              text: str) -> None:
    table = tmp_path / "t.csv"
    table.write_bytes(text.encode())
    spec = TableSpec(box_cols=BOX_COLS, y_cols=("name",), check_files=False)
    slow = _row_reader(table, spec, None, monkeypatch)
    for fast in (build_index(table, spec), build_index(table, spec, cache=tmp_path / "cache")):
        assert _rows(fast) == _rows(slow)
        assert [(p.kind, p.row) for p in fast.problems] == [(p.kind, p.row) for p in slow.problems]
        assert fast.n_rows == slow.n_rows


def test_csv_with_x_y_w_h_needs_no_box_cols_with_or_without_pyarrow(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = tmp_path / "t.csv"
    table.write_text("filename,x,y,w,h,name,type\na.png,1,2,3,4,red,a\n")
    spec = TableSpec(check_files=False)
    for build in (build_index(table, spec), _row_reader(table, spec, None, monkeypatch)):
        assert build.index.boxes.tolist() == [[1.0, 2.0, 4.0, 6.0]]
        assert build.index.row_label(0) == 2
