"""COCO JSON built by columns (`coco_columns`): the row reader's index, in chunks, cached."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_roi_datagen import coco_columns, index_columns
from keras_roi_datagen.formats import read_table
from keras_roi_datagen.formats.coco import scan_coco
from keras_roi_datagen.index import IndexBuild, TableSpec, build_index

pytest.importorskip("pyarrow", reason="the COCO column path needs pyarrow")


def _rows(build: IndexBuild) -> list[tuple[Any, ...]]:
    index = build.index
    return [(index.row_label(i), int(index.positions[i]), index.path_of(i),
             *index.boxes[i].tolist(),
             *(build.vocabularies[c].classes[index.codes[c][i]] for c in sorted(index.codes)))
            for i in range(len(index))]


def _problems(build: IndexBuild) -> list[tuple[Any, ...]]:
    return [(p.kind, str(p.row), p.column, p.severity, p.message) for p in build.problems]


def _same_problems(fast: IndexBuild, slow: IndexBuild) -> None:
    """The reader's problems first, in order; then the builder's, in any order.

    The column builder reports unknown labels per batch, the row builder after
    all rows (as for CSV and Parquet tables).
    """
    found, wanted = _problems(fast), _problems(slow)
    read = getattr(slow, "read_problems", 0)
    assert found[:read] == wanted[:read]
    assert sorted(found[read:]) == sorted(wanted[read:])


def _through_frame(path: Path, spec: TableSpec, vocabularies: Any = None) -> IndexBuild:
    """The row path this replaces: `read_table`, then the frame row by row."""
    frame = read_table(path, on_error="collect")
    read = list(frame.attrs["problems"])
    build = build_index(frame, spec, vocabularies)
    build.problems[:0] = read
    build.n_rows += sum(p.severity == "error" for p in read)
    build.read_problems = len(read)  # type: ignore[attr-defined]
    return build


_image_ids = st.integers(1, 5)  # image 5 is not in 'images'
_category_ids = st.integers(1, 4)  # category 4 is not in 'categories'
_numbers = st.one_of(st.integers(-5, 60), st.floats(-5, 60, allow_nan=False).map(
    lambda v: round(v, 2)))
_boxes = st.tuples(_numbers, _numbers, _numbers, _numbers).map(list)
_annotation = st.one_of(
    st.fixed_dictionaries({"image_id": _image_ids, "category_id": _category_ids, "bbox": _boxes},
                          optional={"iscrowd": st.sampled_from([0, 1])}),
    st.fixed_dictionaries({"image_id": _image_ids, "category_id": _category_ids,
                           "segmentation": st.lists(_numbers, min_size=6, max_size=6).map(
                               lambda v: [v])}),
    st.fixed_dictionaries({"image_id": _image_ids, "category_id": _category_ids, "bbox": _boxes,
                           "segmentation": st.sampled_from([[], [[]], [[], []]])}),
    st.sampled_from(["not an object", {"image_id": 1}, {"image_id": 1, "category_id": 1}]),
)


def _document(annotations: list[Any]) -> dict[str, Any]:
    return {"images": [{"id": i, "file_name": f"img_{i}.jpg", "width": 64, "height": 48}
                       for i in (1, 2, 3, 4)],
            "annotations": [({"id": k + 1, **a} if isinstance(a, dict) else a)
                            for k, a in enumerate(annotations)],
            "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": " dog"},
                           {"id": 3, "name": 7}]}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_annotation, min_size=1, max_size=30), st.integers(1, 7), st.integers(1, 7),
       st.booleans())
def test_problems_and_rows_match_the_row_reader(tmp_path: Path, annotations: list[Any],
                                                chunk_rows: int, batch_rows: int,
                                                vocab_given: bool) -> None:
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(_document(annotations)))
    spec = TableSpec(check_files=False, y_cols=("label",))
    vocabularies = {"label": ["cat", "dog"]} if vocab_given else None
    try:
        slow = _through_frame(path, spec, vocabularies)
    except Exception as error:  # no usable row at all: both paths must refuse alike
        with pytest.raises(type(error)):
            build_index(path, spec, vocabularies)
        return
    with tempfile.TemporaryDirectory() as cache:
        builds = [build_index(path, spec, vocabularies),
                  build_index(path, spec, vocabularies, cache=cache),
                  build_index(path, spec, vocabularies, cache=cache)]  # the cached entry
        # Chunks and record batches smaller than the file: rows cross their edges.
        with coco_columns.open_coco_table(str(path), chunk_rows=chunk_rows) as table:
            builds.append(index_columns.build_columnar_index(
                str(path), replace(spec, image_dir=table.image_dir),
                ("x", "y", "w", "h"), str(path), vocabularies, batch_rows=batch_rows,
                table=table, cache_folder=os.path.join(cache, "entry")))
        for fast in builds:
            assert _rows(fast) == _rows(slow)
            assert fast.vocabularies["label"].classes == slow.vocabularies["label"].classes
            _same_problems(fast, slow)
            assert fast.n_rows == slow.n_rows
            assert fast.rows_without_regions == slow.rows_without_regions


def test_annotations_are_handed_over_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(_document(
        [{"image_id": 1 + k % 4, "category_id": 1, "bbox": [k, 1, 5, 5]} for k in range(10)])))
    chunks: list[list[int]] = []
    reader = scan_coco(str(path), chunk_rows=4,
                       on_chunk=lambda ann: chunks.append(list(ann.rows)))
    assert chunks == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(reader.ann.rows) == 0  # nothing kept per annotation once handed over


def test_spill_files_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(_document([{"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}])))
    spill = tmp_path / "spill"
    spill.mkdir()
    with coco_columns.open_coco_table(str(path), spill_dir=str(spill)) as table:
        assert len(os.listdir(spill)) == 1 and table.total == 1
    assert os.listdir(spill) == []
    path.write_text("{not json")
    with pytest.raises(Exception, match="not valid JSON"):
        coco_columns.open_coco_table(str(path), spill_dir=str(spill))
    assert os.listdir(spill) == []


def test_coco_index_cache_is_reused_and_rebuilt(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "annotations" / "instances_val.json"
    path.parent.mkdir()
    (tmp_path / "val").mkdir()
    (tmp_path / "val" / "img_1.jpg").write_bytes(b"")  # COCO's layout: the image folder is found
    annotations = [{"image_id": 1 + k % 3, "category_id": 1 + k % 2, "bbox": [k, 2, 10, 10]}
                   for k in range(50)]
    path.write_text(json.dumps(_document(annotations)))
    spec = TableSpec(check_files=False, y_cols=("label",))
    cache = tmp_path / "cache"
    first = build_index(path, spec, cache=cache)
    assert first.index.cache_folder is not None
    assert first.index.path_of(0) == str(tmp_path / "val" / "img_1.jpg")
    assert first.rows_without_regions == [{"row": "images[id=4]", "filename": "img_4.jpg",
                                           "split": "val"}]  # instances_val.json

    def no_scan(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the cached index was not reused")

    monkeypatch.setattr(coco_columns, "open_coco_table", no_scan)
    again = build_index(path, spec, cache=cache)
    assert again.index.fingerprint() == first.index.fingerprint()
    assert again.rows_without_regions == first.rows_without_regions
    monkeypatch.undo()
    path.write_text(json.dumps(_document(annotations[:7])))  # the file changes: rebuilt
    assert len(build_index(path, spec, cache=cache).index) == 7


@pytest.mark.parametrize(("name", "split"), [("instances_val2017.json", "val"),
                                             ("instances_default.json", None)])
def test_a_files_split_by_columns_is_the_frames(tmp_path: Path, name: str,
                                                split: str | None) -> None:
    path = tmp_path / name
    annotations = [{"image_id": 1 + k % 3, "category_id": 1 + k % 2, "bbox": [k, 2, 10, 10]}
                   for k in range(9)]
    path.write_text(json.dumps(_document(annotations)))
    spec = TableSpec(check_files=False, y_cols=("label",), optional_cols=("split",))
    fast, slow = build_index(path, spec), _through_frame(path, spec)
    assert _rows(fast) == _rows(slow)
    assert fast.rows_without_regions == slow.rows_without_regions
    if split is None:
        assert "split" not in fast.index.codes
    else:
        assert fast.vocabularies["split"].classes == (split,)


def test_other_columns_are_read_through_the_frame(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(_document(
        [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "iscrowd": 0},
         {"image_id": 2, "category_id": 2, "segmentation": [[0, 0, 9, 0, 9, 9]]}])))

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("read by columns")

    monkeypatch.setattr(coco_columns, "open_coco_table", refuse)
    spec = TableSpec(check_files=False, y_cols=("shape",))
    build = build_index(path, spec)
    assert list(build.vocabularies["shape"].classes) == ["polygon", "rect"]
    assert _rows(build) == _rows(_through_frame(path, spec))


def test_category_and_image_ids_as_labels_by_columns(tmp_path: Path) -> None:
    path = tmp_path / "instances.json"
    annotations = [{"image_id": 1 + k % 4, "category_id": 1 + k % 3, "bbox": [k, 1, 5, 5]}
                   for k in range(12)]
    path.write_text(json.dumps(_document(annotations)))
    spec = TableSpec(check_files=False, y_cols=("label", "category_id", "image_id"))
    fast, slow = build_index(path, spec), _through_frame(path, spec)
    assert _rows(fast) == _rows(slow)
    assert np.array_equal(fast.index.rows, slow.index.rows)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False),
                                   st.booleans()), min_size=2, max_size=10),
                min_size=1, max_size=3), st.booleans())
def test_polygon_boxes_are_the_bounding_boxes_of_their_points(parts: list[list[Any]],
                                                              flat: bool) -> None:
    from keras_roi_datagen.formats.coco import _polygon_box
    from keras_roi_datagen.formats.regions import points_xyxy

    segmentation: list[Any] = parts[0] if flat else parts
    used = [parts[0]] if flat else parts
    valid = all(len(p) % 2 == 0 and not any(isinstance(v, bool) for v in p) for p in used)
    if not valid:  # an odd count or a boolean is an error, whichever path sees it
        with pytest.raises(ValueError, match="polygon"):
            _polygon_box(segmentation)
        return
    xs = [float(v) for p in used for v in p[0::2]]
    ys = [float(v) for p in used for v in p[1::2]]
    assert _polygon_box(segmentation) == points_xyxy(xs, ys)
