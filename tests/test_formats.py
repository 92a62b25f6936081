"""Tests of keras_roi_datagen.formats: VIA 1/2/3 CSV and JSON, plain CSV."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from via_exports import (
    CSV_HEADER,
    Image,
    Region,
    add_csv_columns,
    dirty,
    js_json,
    via_files,  # noqa: F401  (fixture)
    via_images,  # noqa: F401  (fixture)
    write_via1_csv,
    write_via1_json,
    write_via2_csv,
    write_via2_json,
    write_via2_project,
    write_via3_csv,
    write_via3_json,
)

from keras_roi_datagen.errors import AnnotationError
from keras_roi_datagen.formats import (
    detect_via_format,
    is_via_table,
    iter_via_records,
    read_table,
    read_via,
    read_via_csv,
    read_via_json,
)
from keras_roi_datagen.formats.via import (
    CsvLayout,
    ExtraColumns,
    ViaRecord,
    attribute_columns,
    via3_shape_to_via2,
)

CSV_FORMATS = ["via1-csv", "via2-csv", "via3-csv"]
JSON_FORMATS = ["via1-json", "via2-json", "via2-json-project", "via3-json"]


def _expected(images: list[Image], fmt: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    out = []
    for image in images:
        for region in image.regions:
            shape = dict(region.shape)
            attributes = dict(region.attributes)
            if fmt in ("via1-csv", "via1-json", "via3-json", "via3-csv"):
                shape.pop("theta", None)
            if fmt.startswith("via3"):
                attributes = {k: v for k, v in attributes.items() if not isinstance(v, dict)}
                if shape["name"] == "ellipse":
                    shape["theta"] = 0
            out.append((image.filename, shape, attributes))
    return out


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


# Each layout.


@pytest.mark.parametrize("fmt", CSV_FORMATS + JSON_FORMATS)
def test_every_layout_reads_the_same_regions(
    via_files: dict[str, Path], via_images: list[Image], fmt: str  # noqa: F811
) -> None:
    df = read_table(via_files[fmt])
    assert df.attrs["format"] == fmt
    assert detect_via_format(via_files[fmt]) == fmt
    assert df.attrs["source"] == str(via_files[fmt])
    assert is_via_table(df)
    got = list(zip(df["filename"], df["region_shape_attributes"], df["region_attributes"],
                   strict=True))
    assert got == _expected(via_images, fmt)
    assert list(df.columns[:7]) == [
        "filename", "file_size", "file_attributes", "region_count", "region_id",
        "region_shape_attributes", "region_attributes",
    ]
    assert df.loc[df.index[0], "file_attributes"] == {"caption": 'a swan in geneve lake"'}
    assert df["region_id"].tolist() == [0, 1, 2, 0, 1, 2]
    assert df["region_count"].tolist() == [3] * 6


@pytest.mark.parametrize("fmt", CSV_FORMATS)
def test_csv_index_is_the_physical_line(via_files: dict[str, Path], fmt: str) -> None:  # noqa: F811
    df = read_via(via_files[fmt])
    assert df.index.name == "line"
    lines = via_files[fmt].read_text().split("\n")
    for line, filename in zip(df.index, df["filename"], strict=True):
        assert filename in lines[line - 1]
        assert '""name""' in lines[line - 1] or '","[' in lines[line - 1]


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_json_index_is_filename_and_region(via_files: dict[str, Path], fmt: str) -> None:  # noqa: F811
    df = read_via(via_files[fmt])
    assert df.index.name == "region"
    assert list(df.index) == [f"swan.jpg#{k}" for k in range(3)] + [
        f"shapes.png#{k}" for k in range(3)]


@pytest.mark.parametrize(("fmt", "row"), [
    ("via1-csv", 5), ("via2-csv", 5), ("via1-json", "empty.jpg"), ("via2-json", "empty.jpg"),
    ("via2-json-project", "empty.jpg"), ("via3-json", "empty.jpg"),
])
def test_images_without_regions_are_dropped_and_reported(
    via_files: dict[str, Path], fmt: str, row: object  # noqa: F811
) -> None:
    df = read_via(via_files[fmt])
    assert "empty.jpg" not in set(df["filename"])
    assert df.attrs["rows_without_regions"] == [{"row": row, "filename": "empty.jpg"}]


def test_attribute_columns_follow_the_standard_ones(via_files: dict[str, Path]) -> None:  # noqa: F811
    df = read_via(via_files["via2-csv"])
    assert list(df.columns[7:]) == ["name", "kind", "flags"]
    assert df["flags"].tolist() == [None, None, None, {"red": True, "big": True}, None, None]
    assert df["file_size"].dtype == "Int64"
    assert df.loc[5:8, "file_size"].tolist() == [129855, 129855, 129855]


def test_via1_header_and_layout_bytes(tmp_path: Path) -> None:
    images = [Image("a.jpg", 12, [Region({"name": "rect", "x": 1, "y": 2, "width": 3,
                                          "height": 4}, {"t": 'say "hi"'})]), Image("b.jpg", 5)]
    text = write_via1_csv(tmp_path / "v.csv", images).read_bytes()
    assert text == (
        b"#" + CSV_HEADER.encode() + b"\n"
        b'a.jpg,12,"{}",1,0,"{""name"":""rect"",""x"":1,""y"":2,""width"":3,""height"":4}",'
        b'"{""t"":""say \\""hi\\""""}"\n'
        b'b.jpg,5,"{}",0,0,"{}","{}"'
    )
    df = read_via_csv(tmp_path / "v.csv")
    assert df.loc[2, "t"] == 'say "hi"'


def test_via1_trailing_comma_of_early_releases(tmp_path: Path, via_images: list[Image]) -> None:  # noqa: F811
    path = write_via1_csv(tmp_path / "v.csv", via_images, trailing_comma=True)
    assert read_via_csv(path)["region_shape_attributes"].tolist() == [
        s for _, s, _ in _expected(via_images, "via2-csv")]


def test_via2_project_older_than_2_0_10(tmp_path: Path, via_images: list[Image]) -> None:  # noqa: F811
    path = write_via2_project(tmp_path / "p.json", via_images, data_format_version=None)
    assert read_table(path).attrs["format"] == "via2-json-project"
    assert len(read_table(path)) == 6


def test_via1_json_bytes_and_many_regions_in_javascript_key_order(tmp_path: Path) -> None:
    regions = [Region({"name": "point", "cx": k, "cy": k}) for k in range(12)]
    path = write_via1_json(tmp_path / "v.json", [Image("a.jpg", 7, regions)])
    assert path.read_bytes().startswith(
        b'{"a.jpg7":{"fileref":"","size":7,"filename":"a.jpg","base64_img_data":"",'
        b'"file_attributes":{},"regions":{"0":{"shape_attributes":{"name":"point","cx":0,')
    df = read_table(path)
    assert df["region_id"].tolist() == list(range(12))
    assert [s["cx"] for s in df["region_shape_attributes"]] == list(range(12))


def test_via_1_0_0_beta_key_value_cells(tmp_path: Path) -> None:
    path = _write(tmp_path / "v.csv", "#" + CSV_HEADER + "\n"
                  'a.jpg,10,"",2,0,"name=rect;x=1;y=2.5;width=3;height=4;","name=cat;"\n'
                  'a.jpg,10,"",2,1,"name=polygon\\;all_points_x=[1:2:3]\\;all_points_y=[4:5:6]",'
                  '"name=1;"\n')
    df = read_table(path)
    assert df["region_shape_attributes"].tolist() == [
        {"name": "rect", "x": 1, "y": 2.5, "width": 3, "height": 4},
        {"name": "polygon", "all_points_x": [1, 2, 3], "all_points_y": [4, 5, 6]},
    ]
    assert df["name"].tolist() == ["cat", "1"]


def test_data_rows_starting_with_hash_after_a_via1_header(tmp_path: Path) -> None:
    images = [Image("#1.jpg", 3, [Region({"name": "point", "cx": 1, "cy": 2})])]
    df = read_table(write_via1_csv(tmp_path / "v.csv", images))
    assert df["filename"].tolist() == ["#1.jpg"]


# Dirty files.


@pytest.mark.parametrize("options", [
    {"bom": True}, {"crlf": True}, {"blank_lines": 3}, {"bom": True, "crlf": True,
                                                        "blank_lines": 2},
    {"encoding": "utf-16"},
])
@pytest.mark.parametrize("fmt", CSV_FORMATS)
def test_bom_crlf_utf16_and_blank_lines(
    via_files: dict[str, Path], fmt: str, options: dict[str, Any]  # noqa: F811
) -> None:
    clean = read_table(via_files[fmt])
    df = read_table(dirty(via_files[fmt], **options))
    pd.testing.assert_frame_equal(df, clean)


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_spreadsheet_resave_with_another_separator(
    via_files: dict[str, Path], delimiter: str  # noqa: F811
) -> None:
    path = via_files["via2-csv"]
    clean = read_table(path)
    rows = list(csv.reader(io.StringIO(path.read_text(), newline="")))
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    df = read_table(_write(path, buffer.getvalue()))
    pd.testing.assert_frame_equal(df, clean)


def test_unquoted_json_cells_and_numbers_as_strings(tmp_path: Path) -> None:
    path = _write(tmp_path / "v.csv", "#" + CSV_HEADER + "\n"
                  '0.jfif,62417,{},1,0,"{""name"":""rect"",""x"":""167"",""y"":43,""width"":226,'
                  '""height"":113}","{""Damage"":""1""}"')
    df = read_table(path)
    assert df.loc[2, "file_attributes"] == {}
    shape = df["region_shape_attributes"].tolist()[0]
    assert shape["x"] == "167"  # kept raw, validated elsewhere
    assert df.loc[2, "Damage"] == "1"


def test_comma_in_unquoted_file_name_is_rejoined(tmp_path: Path) -> None:
    images = [Image("cat, dog.jpg", 3, [Region({"name": "point", "cx": 1, "cy": 2})])]
    df = read_table(write_via2_csv(tmp_path / "v.csv", images))
    assert df["filename"].tolist() == ["cat, dog.jpg"]
    assert df["region_shape_attributes"].tolist() == [{"name": "point", "cx": 1, "cy": 2}]


def test_extra_columns_and_python_dict_cells(tmp_path: Path) -> None:
    path = _write(tmp_path / "v.csv", "Unnamed: 0," + CSV_HEADER + ",note\n"
                  "0,a.jpg, ,\"{}\",1,0,\"{'name': 'rect', 'x': 1, 'y': 2, 'width': 3, "
                  "'height': 4}\",\"{'label': 'cat'}\",hello\n")
    df = read_table(path)
    assert df.loc[2, "region_shape_attributes"] == {"name": "rect", "x": 1, "y": 2, "width": 3,
                                                    "height": 4}
    assert df.loc[2, "label"] == "cat"
    assert df["file_size"].isna().tolist() == [True]


# Errors: where, what, what was expected.


def _with_newline_then_bad_json(tmp_path: Path) -> Path:
    return _write(tmp_path / "bad.csv", CSV_HEADER + "\n"
                  'a.jpg,1,"{}",2,0,"{""name"":""rect"",\n""x"":1,\n""y"":2,""width"":3,'
                  '""height"":4}","{}"\n'
                  'a.jpg,1,"{}",2,1,"{""name"":""rect"",""x"":1 ""y"":2}","{}"\n'
                  'b.jpg,1,"{}",1,0,"{""name"":""point"",""cx"":1,""cy"":2}","{}"\n')


def test_malformed_json_names_file_line_column_value(tmp_path: Path) -> None:
    path = _with_newline_then_bad_json(tmp_path)
    with pytest.raises(AnnotationError) as info:
        read_via_csv(path)
    (problem,) = info.value.problems
    assert (problem.kind, problem.row, problem.column) == ("bad_json", 5,
                                                            "region_shape_attributes")
    assert problem.value == '{"name":"rect","x":1 "y":2}'
    message = str(info.value)
    assert str(path) in message
    assert "line 5" in message
    assert "'region_shape_attributes'" in message
    assert '"x":1 "y":2' in message
    assert "expected a JSON object" in message
    assert "on_error='skip'" in message


def test_iter_raises_at_the_first_bad_record(tmp_path: Path) -> None:
    records = iter_via_records(_with_newline_then_bad_json(tmp_path))
    assert next(records).row == 2
    with pytest.raises(AnnotationError, match="line 5"):
        next(records)


def test_collect_yields_problems_instead_of_raising(tmp_path: Path) -> None:
    path = _with_newline_then_bad_json(tmp_path)
    records = list(iter_via_records(path, on_error="collect"))
    assert [r.row for r in records] == [2, 5, 6]
    assert records[0].shape == {"name": "rect", "x": 1, "y": 2, "width": 3, "height": 4}
    assert records[1].problem is not None
    assert records[1].problem.kind == "bad_json"
    assert records[1].shape == {}
    assert records[2].problem is None
    df = read_via_csv(path, on_error="collect")
    assert list(df.index) == [2, 6]
    assert [p.row for p in df.attrs["problems"]] == [5]


def test_every_bad_row_is_listed_in_one_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "v.csv", CSV_HEADER + "\n"
                  'a.jpg,1,"{}",1,0,"{nope}","{}"\n'
                  ',1,"{}",1,0,"{}","{}"\n'
                  'c.jpg,1\n'
                  'd.jpg,1,"{}",1,0,"[1,2]","{}"\n')
    with pytest.raises(AnnotationError) as info:
        read_via_csv(path)
    problems = info.value.problems
    assert [(p.kind, p.row) for p in problems] == [
        ("bad_json", 2), ("bad_record", 3), ("bad_record", 4), ("bad_json", 5)]
    assert "4 problems found" in str(info.value)
    assert "found a JSON list, not an object" in problems[3].message


def test_cell_cut_by_a_spreadsheet_is_diagnosed(tmp_path: Path) -> None:
    cell = ('{"name":"polygon","all_points_x":[' + "1," * 20000)[:32767]
    path = _write(tmp_path / "v.csv", CSV_HEADER + '\na.jpg,1,"{}",1,0,"'
                  + cell.replace('"', '""') + '","{}"\n')
    with pytest.raises(AnnotationError, match="spreadsheet truncated it"):
        read_via_csv(path)


def test_json_region_errors_are_labelled_by_file_and_region(tmp_path: Path) -> None:
    data = {"a.jpg1": {"filename": "a.jpg", "size": 1, "file_attributes": {}, "regions": [
        {"shape_attributes": {"name": "point", "cx": 1, "cy": 1}, "region_attributes": {}},
        {"shape_attributes": [1, 2], "region_attributes": {}},
    ]}}
    path = _write(tmp_path / "v.json", js_json(data))
    with pytest.raises(AnnotationError) as info:
        read_via_json(path)
    (problem,) = info.value.problems
    assert (problem.row, problem.column, problem.source) == ("a.jpg#1", "shape_attributes",
                                                              str(path))
    df = read_via_json(path, on_error="collect")
    assert list(df.index) == ["a.jpg#0"]


def test_invalid_json_file_and_non_via_json(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match=r"line 2, column 1") as info:
        read_via(_write(tmp_path / "bad.json", '{"a": 1,\n}'))
    assert info.value.problems[0].kind == "bad_json"
    coco: dict[str, list[Any]] = {"images": [], "annotations": [], "categories": []}
    with pytest.raises(AnnotationError, match="not a VIA file") as info:
        read_via(_write(tmp_path / "coco.json", js_json(coco)))
    assert info.value.problems[0].kind == "unknown_format"
    # read_table reads every format since issue 13: this one is an empty COCO file.
    assert read_table(tmp_path / "coco.json").attrs["format"] == "coco"


def test_csv_without_via_header_is_refused_by_read_via_csv(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", "filename,label\na.jpg,cat\n")
    with pytest.raises(AnnotationError, match="region_shape_attributes") as info:
        read_via_csv(path)
    assert info.value.problems[0].row == 1
    with pytest.raises(AnnotationError, match="empty"):
        read_via_csv(_write(tmp_path / "e.csv", "\n\n"))


def test_bad_encoding_names_the_line_and_encoding_can_be_given(tmp_path: Path) -> None:
    path = tmp_path / "v.csv"
    path.write_bytes((CSV_HEADER + "\n" + 'caf\xe9.jpg,1,"{}",0,0,"{}","{}"\n').encode("cp1252"))
    with pytest.raises(AnnotationError, match="line 2") as info:
        read_table(path)
    assert info.value.problems[0].kind == "bad_encoding"
    df = read_via_csv(path, encoding="cp1252", on_error="collect")
    assert df.attrs["rows_without_regions"] == [{"row": 2, "filename": "café.jpg"}]


def test_unknown_on_error_is_refused(via_files: dict[str, Path]) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="on_error"):
        read_via(via_files["via2-csv"], on_error="sometimes")  # type: ignore[arg-type]
    # One vocabulary everywhere: the VIA readers take "skip" as every reader does.
    assert read_via(via_files["via2-csv"], on_error="skip").equals(
        read_via(via_files["via2-csv"], on_error="collect"))


# VIA 3 specifics.


@pytest.mark.parametrize(("xy", "shape"), [
    ([1, 5, 6], {"name": "point", "cx": 5, "cy": 6}),
    ([2, 10, 20, 50, 80], {"name": "rect", "x": 10, "y": 20, "width": 50, "height": 80}),
    ([3, 1, 2, 3], {"name": "circle", "cx": 1, "cy": 2, "r": 3}),
    ([4, 1, 2, 3, 4], {"name": "ellipse", "cx": 1, "cy": 2, "rx": 3, "ry": 4, "theta": 0}),
    ([5, 0, 0, 3, 4], {"name": "polyline", "all_points_x": [0, 3], "all_points_y": [0, 4]}),
    ([6, 0, 0, 1, 1, 2, 0], {"name": "polyline", "all_points_x": [0, 1, 2],
                             "all_points_y": [0, 1, 0]}),
    ([7, 0, 0, 1, 1, 2, 0], {"name": "polygon", "all_points_x": [0, 1, 2],
                             "all_points_y": [0, 1, 0]}),
    ([8, 10, 5, 20, 0, 30, 5, 20, 9], {"name": "rect", "x": 10.0, "y": 0.0, "width": 20.0,
                                       "height": 9.0}),
    ([9, 0, 5, 5, 0, -5, 0], {"name": "circle", "cx": 0.0, "cy": 0.0, "r": 5.0}),
    ([42, 1, 2], {"name": "via3_shape_42", "coordinates": [1, 2]}),
])
def test_via3_shapes_become_via2_shapes(xy: list[float], shape: dict[str, Any]) -> None:
    assert via3_shape_to_via2(xy) == shape


@pytest.mark.parametrize(("xy", "match"), [
    ([], "empty"), (["x", 1], "not an integer"), ([2, 1, 2, 3], "needs 4 numbers"),
    ([7, 1, 2, 3], "pairs"), ([9, 0, 0, 1, 1, 2, 2], "one line"),
])
def test_via3_bad_shapes(xy: list[Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        via3_shape_to_via2(xy)


_VIA3_DEFS = {
    "1": {"aname": "caption", "anchor_id": "FILE1_Z0_XY0", "type": 1, "desc": "",
          "options": {}, "default_option_id": ""},
    "2": {"aname": "kind", "anchor_id": "FILE1_Z0_XY1", "type": 3, "desc": "",
          "options": {"0": "cat", "1": "dog"}, "default_option_id": ""},
    "3": {"aname": "tags", "anchor_id": "FILE1_Z0_XY1", "type": 2, "desc": "",
          "options": {"0": "red", "1": "big", "2": "old"}, "default_option_id": ""},
    "4": {"aname": "pose", "anchor_id": "FILE1_Z0_XY1", "type": 4, "desc": "",
          "options": {"a": "up", "b": "down"}, "default_option_id": ""},
}
_VIA3_IMAGES = [
    Image("a.jpg", 1, [Region([2, 1, 2, 3, 4], {"2": "1", "3": "0,2", "4": "b"}),
                       Region([8, 0, 5, 5, 0, 10, 5, 5, 10], {"2": "7"})],
          {"1": "sunny"}),
    Image("https://example.org/b.png", 1, [Region([1, 3, 4], {})]),
]


@pytest.mark.parametrize("writer", [write_via3_json, write_via3_csv])
def test_via3_ids_become_names_and_labels(tmp_path: Path, writer: Any) -> None:
    path = writer(tmp_path / ("p.json" if writer is write_via3_json else "p.csv"), _VIA3_IMAGES,
                  attribute_defs=_VIA3_DEFS)
    df = read_table(path)
    first = df.iloc[0]
    assert first["region_attributes"] == {"kind": "dog", "tags": {"red": True, "old": True},
                                          "pose": "down"}
    assert first["file_attributes"] == {"caption": "sunny"}
    assert df.iloc[1]["kind"] == "7"  # unknown option ids are kept
    assert df.iloc[1]["region_shape_attributes"] == {"name": "rect", "x": 0.0, "y": 0.0,
                                                     "width": 10.0, "height": 10.0}
    assert df["filename"].tolist() == ["a.jpg", "a.jpg", "https://example.org/b.png"]


def test_via3_csv_older_attributes_line_and_temporal_rows(tmp_path: Path) -> None:
    images = [Image("a.jpg", 1, [Region({"name": "point", "cx": 1, "cy": 2}, {"label": "x"})])]
    path = write_via3_csv(tmp_path / "p.csv", images, old_attributes_line=True)
    text = path.read_text() + '\n"1_seg","[""a.jpg""]",0,"[1.5,2.5]","[]","{}"'
    df = read_table(_write(path, text))
    assert df["label"].tolist() == ["x"]
    assert len(df) == 1
    assert df.attrs["rows_without_regions"] == []


def test_via3_csv_comment_lines_padded_by_a_spreadsheet(tmp_path: Path) -> None:
    images = [Image("a.jpg", 1, [Region({"name": "point", "cx": 1, "cy": 2}, {"label": "x"})])]
    path = write_via3_csv(tmp_path / "p.csv", images)
    padded = "\n".join(line + ",,," if line.startswith("#") else line
                       for line in path.read_text().split("\n"))
    df = read_table(_write(path, padded))
    assert df["label"].tolist() == ["x"]


def test_via3_views_of_several_files_are_reported(tmp_path: Path) -> None:
    store = json.loads(write_via3_json(tmp_path / "p.json", [
        Image("a.jpg", 1, [Region({"name": "point", "cx": 1, "cy": 2})]),
        Image("b.jpg", 1, [Region({"name": "point", "cx": 3, "cy": 4})]),
    ]).read_text())
    store["view"]["1"]["fid_list"] = ["1", "2"]
    store["metadata"]["2_r0000000"]["xy"] = [2, 1, 2]
    path = _write(tmp_path / "p.json", json.dumps(store))
    records = list(iter_via_records(path, on_error="collect"))
    assert [(r.row, r.problem.kind if r.problem else None) for r in records] == [
        ("view 1", "bad_record"), ("b.jpg#0", "bad_shape")]
    assert records[1].problem is not None
    assert records[1].problem.column == "xy"


def test_via3_csv_rows_re_saved_tab_separated_and_unquoted(
    via_files: dict[str, Path],  # noqa: F811
) -> None:
    path = via_files["via3-csv"]
    clean = read_table(path)
    lines = path.read_text().split("\n")
    rows = ["\t".join(next(csv.reader([line]))) if not line.startswith("#") else line
            for line in lines]
    df = read_table(_write(path, "\n".join(rows)))
    pd.testing.assert_frame_equal(df, clean)


# Extra top-level columns.

_STANDARD = ["filename", "file_size", "file_attributes", "region_count", "region_id",
             "region_shape_attributes", "region_attributes"]


def _split_file(tmp_path: Path, images: list[Image]) -> Path:
    """The fixture's VIA 2 export plus a `split` column and a `note` spanning two lines."""
    path = write_via2_csv(tmp_path / "split.csv", images)
    return add_csv_columns(path, {
        "split": ["train", "train", "train", "val", "test", "test", "test"],
        "note": ["", "two\nlines", "a, b", "", 'say "hi"', "", " kept "],
    })


def test_via2_csv_split_column_is_kept(tmp_path: Path, via_images: list[Image]) -> None:  # noqa: F811
    path = _split_file(tmp_path, via_images)
    df = read_via_csv(path)
    assert list(df.columns) == [*_STANDARD, "split", "note", "name", "kind", "flags"]
    assert list(df.index) == [2, 3, 5, 7, 8, 9]  # the note of line 3 spans lines 3-4
    assert df["split"].tolist() == ["train"] * 3 + ["test"] * 3
    assert df["note"].tolist() == ["", "two\nlines", "a, b", 'say "hi"', "", " kept "]
    assert df.loc[7, "region_shape_attributes"]["name"] == "circle"
    assert df.attrs["extra_columns"] == ["split", "note"]
    assert df.attrs["rows_without_regions"] == [{"row": 6, "filename": "empty.jpg"}]
    records = list(iter_via_records(path))
    assert [(r.row, r.filename, r.extra["split"]) for r in records] == [
        (2, "swan.jpg", "train"), (3, "swan.jpg", "train"), (5, "swan.jpg", "train"),
        (6, "empty.jpg", "val"), (7, "shapes.png", "test"), (8, "shapes.png", "test"),
        (9, "shapes.png", "test")]
    assert records[1].extra == {"split": "train", "note": "two\nlines"}
    clean = read_via_csv(write_via2_csv(tmp_path / "clean.csv", via_images))
    pd.testing.assert_frame_equal(df.drop(columns=["split", "note"]), clean.set_axis(df.index))


@pytest.mark.parametrize("options", [{"bom": True, "crlf": True}, {"encoding": "utf-16"}])
def test_extra_columns_survive_bom_crlf_and_utf16(
    tmp_path: Path, via_images: list[Image], options: dict[str, Any]  # noqa: F811
) -> None:
    clean = read_table(_split_file(tmp_path, via_images))
    df = read_table(dirty(_split_file(tmp_path, via_images), **options))
    if options.get("crlf"):  # editors also rewrite the line end inside the quoted note
        clean["note"] = clean["note"].str.replace("\n", "\r\n")
    pd.testing.assert_frame_equal(df, clean)


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_extra_columns_survive_another_separator(
    tmp_path: Path, via_images: list[Image], delimiter: str  # noqa: F811
) -> None:
    path = _split_file(tmp_path, via_images)
    clean = read_table(path)
    rows = list(csv.reader(io.StringIO(path.read_text(), newline="")))
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    pd.testing.assert_frame_equal(read_table(_write(path, buffer.getvalue())), clean)


def test_flattened_label_columns_are_kept_and_win_their_name(tmp_path: Path) -> None:
    path = _write(tmp_path / "flat.csv", CSV_HEADER + ",name,type\n"
                  'a.jpg,10,"{}",2,0,"{""name"":""rect"",""x"":1,""y"":2,""width"":3,'
                  '""height"":4}","{}",cat,animal\n'
                  'a.jpg,10,"{}",2,1,"{""name"":""point"",""cx"":1,""cy"":2}",'
                  '"{""name"":""kitty"",""type"":""pet""}",dog,\n'
                  'b.jpg,5,"{}",0,0,"{}","{}",,\n'
                  'c.jpg,5,"{}",1,0,"{""name"":""point"",""cx"":5,""cy"":6}","{}",bird\n')
    df = read_via(path)
    assert list(df.columns[7:]) == ["name", "type", "region_name", "region_type"]
    assert df["name"].tolist() == ["cat", "dog", "bird"]
    assert df["type"].tolist() == ["animal", "", None]  # line 5 has no `type` cell
    assert df["region_name"].tolist() == [None, "kitty", None]
    assert df.attrs["attribute_columns"] == {"name": "region_name", "type": "region_type"}
    assert df.attrs["extra_columns"] == ["name", "type"]
    assert [(r.row, r.extra) for r in iter_via_records(path)] == [
        (2, {"name": "cat", "type": "animal"}), (3, {"name": "dog", "type": ""}),
        (4, {"name": "", "type": ""}), (5, {"name": "bird"})]


def test_dataframe_saved_with_to_csv_keeps_its_index_and_columns(tmp_path: Path) -> None:
    point = {"name": "point", "cx": 1, "cy": 2}
    frame = pd.DataFrame({
        "filename": ["a.jpg", "b.jpg"], "file_size": [7, 8], "file_attributes": [{}, {}],
        "region_count": [1, 1], "region_id": [0, 0], "region_shape_attributes": [point, point],
        "region_attributes": [{"label": "cat"}, {"label": "dog"}], "Split": ["train", "val"],
    }, index=[10, 11])
    frame.to_csv(tmp_path / "frame.csv")  # header ",filename,...": the index has no name
    df = read_table(tmp_path / "frame.csv")
    assert list(df.columns[7:]) == ["Unnamed: 0", "Split", "label"]
    assert df["Unnamed: 0"].tolist() == ["10", "11"]
    assert df["Split"].tolist() == ["train", "val"]
    assert df["region_shape_attributes"].tolist() == [point, point]
    assert [r.extra for r in iter_via_records(tmp_path / "frame.csv")] == [
        {"Unnamed: 0": "10", "Split": "train"}, {"Unnamed: 0": "11", "Split": "val"}]


def test_extra_column_naming_rules(tmp_path: Path) -> None:
    point = '"{""name"":""point"",""cx"":1,""cy"":2}"'
    path = _write(tmp_path / "v.csv", " " + CSV_HEADER + ",split,split, Note ,,\n"
                  f'a.jpg,1,"{{}}",1,0,{point},"{{}}",train,x,n,,\n'
                  f'b.jpg,1,"{{}}",1,0,{point},"{{}}",val\n'
                  f'c.jpg,1,"{{}}",1,0,{point},"{{}}",test,y,,,more\n'
                  f'd.jpg,1,"{{}}",1,0,"{{nope}}","{{}}",bad\n')
    records = list(iter_via_records(path, on_error="collect"))
    assert [r.extra for r in records] == [
        {"split": "train", "split.1": "x", "Note": "n"},  # trailing blank cells: padding
        {"split": "val"},  # a short row lacks the later cells
        {"split": "test", "split.1": "y", "Note": "", "Unnamed: 11": "more"},
        {"split": "bad"},  # kept on a record whose problem is collected
    ]
    assert records[3].problem is not None
    df = read_via_csv(path, on_error="collect")
    assert list(df.columns[7:]) == ["split", "split.1", "Note", "Unnamed: 11"]
    assert df["Unnamed: 11"].tolist() == [None, None, "more"]
    assert df["split.1"].tolist() == ["x", None, "y"]


def test_extra_columns_class_names_blank_and_duplicate_headers() -> None:
    layout = CsvLayout("via2-csv", columns=["", "filename", "region_shape_attributes", "x", "x",
                                            "", ""])
    extra = ExtraColumns(layout)
    assert extra.names == ["Unnamed: 0", "x", "x.1"]
    assert extra.read(["0", "a.jpg", "{}", "1"]) == {"Unnamed: 0": "0", "x": "1"}
    assert extra.read(["0", "a.jpg", "{}", "1", "2", "", "", " "]) == {
        "Unnamed: 0": "0", "x": "1", "x.1": "2"}


def test_via3_csv_extra_columns(tmp_path: Path) -> None:
    images = [Image("a.jpg", 1, [Region({"name": "point", "cx": 1, "cy": 2}, {"label": "x"}),
                                 Region({"name": "point", "cx": 3, "cy": 4}, {"label": "y"})]),
              Image("b.jpg", 1, [], {"caption": "no regions"})]
    path = add_csv_columns(write_via3_csv(tmp_path / "p.csv", images),
                           {"split": ["train", "val", "test"], "filename": ["p", "q", "r"]})
    lines = path.read_text().split("\n")
    assert lines[-4].endswith(",split,filename")
    lines[-2] += ",late"  # a cell beyond the header (not named in # CSV_HEADER)
    df = read_table(_write(path, "\n".join(lines)))
    assert list(df.columns[7:]) == ["split", "filename.1", "Unnamed: 8", "label"]
    assert df["split"].tolist() == ["train", "val"]
    assert df["filename"].tolist() == ["a.jpg", "a.jpg"]
    assert df["filename.1"].tolist() == ["p", "q"]
    assert df["Unnamed: 8"].tolist() == [None, "late"]
    first = len(lines) - 2
    assert [(r.row, r.filename, r.extra) for r in iter_via_records(path)] == [
        (first, "a.jpg", {"split": "train", "filename.1": "p"}),
        (first + 1, "a.jpg", {"split": "val", "filename.1": "q", "Unnamed: 8": "late"}),
        (first + 2, "b.jpg", {"split": "test", "filename.1": "r"}),
    ]
    assert df.index.tolist() == [first, first + 1]


@pytest.mark.parametrize("fmt", CSV_FORMATS + JSON_FORMATS)
def test_files_without_extra_columns_have_none(via_files: dict[str, Path], fmt: str) -> None:  # noqa: F811
    assert all(r.extra == {} for r in iter_via_records(via_files[fmt]))
    df = read_via(via_files[fmt])
    assert df.attrs["extra_columns"] == []
    assert list(df.columns[7:]) == list(df.attrs["attribute_columns"].values())


def test_via1_trailing_comma_makes_no_extra_column(
    tmp_path: Path, via_images: list[Image]  # noqa: F811
) -> None:
    path = write_via1_csv(tmp_path / "v.csv", via_images, trailing_comma=True)
    assert all(r.extra == {} for r in iter_via_records(path))
    padded = _write(path, path.read_text().replace(CSV_HEADER, CSV_HEADER + ",,", 1))
    assert read_via_csv(padded).attrs["extra_columns"] == []


def test_via_record_extra_defaults_to_empty() -> None:
    record = ViaRecord(2, "a.jpg", {}, {}, {})
    assert record.extra == {}
    assert record.extra is not ViaRecord(3, "b.jpg", {}, {}, {}).extra


# Tables.


def test_region_attribute_keys_that_clash_get_a_prefix(tmp_path: Path) -> None:
    images = [Image("a.jpg", 1, [Region({"name": "point", "cx": 1, "cy": 2},
                                        {"filename": "x", "region_id": "y", "": "z"})])]
    df = read_table(write_via2_json(tmp_path / "v.json", images))
    assert df.loc["a.jpg#0", "filename"] == "a.jpg"
    assert df.loc["a.jpg#0", "region_filename"] == "x"
    assert df.loc["a.jpg#0", "region_region_id"] == "y"
    assert "" not in df.columns
    assert attribute_columns(["region_x", "x"]) == {"region_x": "region_x", "x": "x"}


def test_duplicate_file_names_in_json_get_unique_labels(tmp_path: Path) -> None:
    point = Region({"name": "point", "cx": 1, "cy": 2})
    images = [Image("a.jpg", 1, [point]), Image("a.jpg", 2, [point])]
    df = read_table(write_via2_json(tmp_path / "v.json", images))
    assert list(df.index) == ["a.jpg1#0", "a.jpg2#0"]


def test_read_table_copies_a_dataframe() -> None:
    source = pd.DataFrame({"filename": ["a.jpg"], "region_shape_attributes": ["{}"]})
    source.attrs["note"] = ["x"]
    df = read_table(source)
    df.loc[0, "filename"] = "b.jpg"
    df.attrs["note"].append("y")
    assert source.loc[0, "filename"] == "a.jpg"
    assert source.attrs["note"] == ["x"]
    assert is_via_table(df)


def test_read_table_reads_a_plain_csv_with_line_numbers(tmp_path: Path) -> None:
    path = _write(tmp_path / "boxes.csv", "\ufeffpath,label,x\r\n"
                  'a.jpg,"two\r\nlines",1\r\n\r\nb.jpg,cat,2.5\r\n\r\n')
    df = read_table(path)
    assert not is_via_table(df)
    assert df.attrs == {"source": str(path), "format": "csv"}
    assert df.index.name == "line"
    assert list(df.index) == [2, 5]
    assert df["label"].tolist() == ["two\r\nlines", "cat"]
    assert df["x"].tolist() == [1.0, 2.5]


def test_plain_csv_where_pandas_and_csv_disagree_keeps_csv_rows(tmp_path: Path) -> None:
    df = read_table(_write(tmp_path / "t.csv", 'a,b\n1,x\n""\n2,y\n'))
    assert list(df.index) == [2, 4]
    assert df["a"].tolist() == [1, 2]
    assert df["b"].tolist() == ["x", "y"]


def test_plain_csv_with_a_too_wide_record_names_its_line(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="line 4") as info:
        read_table(_write(tmp_path / "t.csv", 'a,b\n1,"x\ny"\n2,y,z\n'))
    assert info.value.problems[0].kind == "bad_record"


def test_read_table_refuses_other_sources(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        read_table(42)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        read_table(tmp_path / "missing.csv")


def test_formats_do_not_import_keras() -> None:
    code = ("import sys, keras_roi_datagen.formats.via, keras_roi_datagen.formats; "
            "assert not any(m == 'keras' or m.startswith('keras.') for m in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_format_readers_do_not_reach_back_up_the_data_flow() -> None:
    # Reading a file of any format goes source -> region frame; the index and what
    # follows it (plan, decode, dataset) must not be loaded by it.
    code = ("import sys, pkgutil, importlib, keras_roi_datagen.formats as f; "
            "names = [m.name for m in pkgutil.iter_modules(f.__path__)]; "
            "[importlib.import_module('keras_roi_datagen.formats.' + n) for n in names]; "
            "up = ('index', 'index_columns', 'index_cache', 'planning', 'dataset', 'imaging'); "
            "bad = sorted(m for m in sys.modules if m.rpartition('.')[2] in up "
            "and m.startswith('keras_roi_datagen.')); "
            "assert 'via' in names and 'csv' in names, names; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


# Property: anything VIA 2 writes reads back identically.

_numbers = st.one_of(st.integers(-10_000, 10_000),
                     st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))
_points = st.integers(1, 6).flatmap(lambda n: st.tuples(st.lists(_numbers, min_size=n,
                                                                 max_size=n),
                                                        st.lists(_numbers, min_size=n,
                                                                 max_size=n)))
_shapes = st.one_of(
    st.builds(lambda x, y, w, h: {"name": "rect", "x": x, "y": y, "width": w, "height": h},
              _numbers, _numbers, _numbers, _numbers),
    st.builds(lambda x, y: {"name": "point", "cx": x, "cy": y}, _numbers, _numbers),
    st.builds(lambda x, y, r: {"name": "circle", "cx": x, "cy": y, "r": r},
              _numbers, _numbers, _numbers),
    st.builds(lambda n, p: {"name": n, "all_points_x": p[0], "all_points_y": p[1]},
              st.sampled_from(["polygon", "polyline"]), _points),
)
_values = st.one_of(st.text(max_size=12),
                    st.dictionaries(st.text(max_size=5), st.booleans(), max_size=3))
_attributes = st.dictionaries(st.text(max_size=8), _values, max_size=3)
_images = st.lists(st.builds(
    Image,
    st.from_regex(r"[A-Za-z0-9_.\- ()]{1,12}\.(jpg|png)", fullmatch=True),
    st.integers(-1, 10**9),
    st.lists(st.builds(Region, _shapes, _attributes), max_size=3),
    _attributes,
), max_size=4, unique_by=lambda image: image.filename)  # VIA keys images by name + size


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(images=_images)
def test_via2_csv_round_trip(images: list[Image]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        df = read_via_csv(write_via2_csv(Path(folder) / "v.csv", images))
        exported = read_via_json(write_via2_json(Path(folder) / "v.json", images))
    expected = [(i.filename, i.size, i.file_attributes, len(i.regions), k, r.shape, r.attributes)
                for i in images for k, r in enumerate(i.regions)]
    for frame in (df, exported):
        got = list(zip(frame["filename"], frame["file_size"], frame["file_attributes"],
                       frame["region_count"], frame["region_id"],
                       frame["region_shape_attributes"], frame["region_attributes"], strict=True))
        assert got == expected
    empty = [i.filename for i in images if not i.regions]
    assert [r["filename"] for r in df.attrs["rows_without_regions"]] == empty
    assert list(df.index) == sorted(df.index)
    assert len(set(df.index)) == len(df)
