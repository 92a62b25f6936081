"""Dirty data end to end: every bad input is a named error or an accounted skip.

The image files come from `image_corpus` (generated, no binary blobs). Each
case is one row of an otherwise clean table; with `on_error="raise"` it must
raise its exception class naming the row, with `on_error="skip"` it must be
listed in `ds.skipped` with its kind, and every epoch must account for every
row: yielded + skipped == rows, no row twice.
"""

from __future__ import annotations

import json
from pathlib import Path

import image_corpus as corpus
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_roi_datagen import (
    AnnotationError,
    BoxError,
    ImageReadError,
    LabelError,
    RoiDatagenError,
    RoiDataset,
)

RECT = {"name": "rect", "x": 4, "y": 4, "width": 20, "height": 16}


def good_rows(folder: Path, n: int = 6) -> list[dict]:
    corpus.write_scene(folder, "good.png")
    return [{"filename": "good.png", "region_shape_attributes": json.dumps({**RECT, "x": 2 + i}),
             "name": "a" if i % 2 else "b", "type": "t"} for i in range(n)]


def table_with(folder: Path, bad: dict) -> pd.DataFrame:
    rows = good_rows(folder)
    rows.insert(3, {**rows[0], **bad})
    return pd.DataFrame(rows)


def dataset(table, folder, **kwargs):
    kwargs = {"image_size": (8, 8), "batch_size": 2, "seed": 0, **kwargs}
    return RoiDataset(table, image_dir=folder, **kwargs)


def box(**fields):
    return json.dumps({**RECT, **fields})


# case: (row change, files to write, exception class, problem kind, found when)
CASES = {
    "missing file": ({"filename": "nowhere.jpg"}, None, ImageReadError, "missing_file", "build"),
    "zero-byte file": ({"filename": "empty.jpg"}, corpus.write_empty_file, ImageReadError,
                       "image_empty_file", "build"),
    "truncated jpeg": ({"filename": "truncated.jpg"}, corpus.write_truncated_jpeg,
                       ImageReadError, "image_truncated", "decode"),
    "text named .jpg": ({"filename": "not_an_image.jpg"}, corpus.write_text_as_jpg,
                        ImageReadError, "image_not_an_image", "decode"),
    "decompression bomb": ({"filename": "bomb.png"}, corpus.write_bomb_png, ImageReadError,
                           "image_too_large", "decode"),
    "negative width": ({"region_shape_attributes": box(width=-5)}, None, BoxError,
                       "box_degenerate", "build"),
    "zero area": ({"region_shape_attributes": box(height=0)}, None, BoxError, "box_degenerate",
                  "build"),
    "nan coordinate": ({"region_shape_attributes": '{"name":"rect","x":NaN,"y":1,"width":2,'
                                                   '"height":2}'}, None, BoxError,
                       "box_not_finite", "build"),
    "inf coordinate": ({"region_shape_attributes": box(width=float("inf"))}, None, BoxError,
                       "box_not_finite", "build"),
    "wholly outside": ({"region_shape_attributes": box(x=5000)}, None, BoxError,
                       "box_outside_image", "decode"),
    "malformed json": ({"region_shape_attributes": '{"name":"rect","x":4,'}, None,
                       AnnotationError, "bad_json", "build"),
    "unknown shape": ({"region_shape_attributes": '{"name":"hexagon"}'}, None, BoxError,
                      "shape_unknown", "build"),
    "point shape": ({"region_shape_attributes": '{"name":"point","cx":3,"cy":3}'}, None,
                    BoxError, "shape_point", "build"),
    "label missing": ({"name": None}, None, LabelError, "label_missing", "build"),
    "path escape": ({"filename": "../../etc/passwd"}, None, ImageReadError,
                    "path_outside_image_dir", "build"),
    "absolute path outside": ({"filename": "/etc/hostname"}, None, ImageReadError,
                              "path_outside_image_dir", "build"),
    "url of an unknown protocol": ({"filename": "nosuchproto://example.org/a.jpg"}, None,
                                   ImageReadError, "remote_file", "build"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_raises_its_error_naming_the_row(tmp_path, case):
    change, writer, error, kind, when = CASES[case]
    if writer is not None:
        writer(tmp_path)
    table = table_with(tmp_path, change)
    if when == "build":
        with pytest.raises(error, match=r"row 3\b") as info:
            dataset(table, tmp_path)
    else:
        ds = dataset(table, tmp_path, shuffle=False)
        with pytest.raises(error, match=r"row 3\b") as info:
            list(ds.iter_batches())
    assert info.value.problems[0].kind == kind


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_skipped_and_accounted_every_epoch(tmp_path, case):
    change, writer, _, kind, _ = CASES[case]
    if writer is not None:
        writer(tmp_path)
    table = table_with(tmp_path, change)
    ds = dataset(table, tmp_path, on_error="skip", workers=2)
    for _ in range(2):
        served = [r for _, _, rows in ds._pass_batches() for r in rows.tolist()]
        ds.on_epoch_end()
        skipped_rows = {p.row for p in ds.skipped}
        assert skipped_rows == {3}
        assert [p.kind for p in ds.skipped] == [kind]
        labels = [ds.index.row_label(r) for r in served]
        assert len(labels) == len(set(labels)) == len(table) - 1
        assert set(labels) | skipped_rows == set(table.index)
    assert ds.epoch == 2


@pytest.mark.parametrize("case", [c for c, v in CASES.items() if v[4] == "decode"])
def test_validate_finds_image_problems_before_training(tmp_path, case):
    change, writer, _, kind, _ = CASES[case]
    if writer is not None:
        writer(tmp_path)
    ds = dataset(table_with(tmp_path, change), tmp_path, on_error="skip")
    assert len(ds.index) == 7
    report = ds.validate(decode=True, progress=False)
    assert not report.ok and [p.kind for p in report.errors] == [kind]
    assert report.errors[0].row == 3
    assert len(ds.index) == 6 and len(ds) == 3  # left out before batching
    frame = report.to_frame()
    assert frame.loc[0, "kind"] == kind and frame.loc[0, "row"] == 3


@pytest.mark.parametrize("writer", [corpus.write_png_named_jpg, corpus.write_cmyk_jpeg,
                                    corpus.write_gray16_png, corpus.write_palette_png,
                                    corpus.write_gray_jpeg, corpus.write_rgba_png])
def test_odd_but_valid_images_just_work(tmp_path, writer):
    sample = writer(tmp_path)
    region = sample.regions[0]
    x0, y0, x1, y1 = region.inner(3)
    table = pd.DataFrame([{"filename": Path(sample.path).name, "name": "n", "type": "t",
                           "region_shape_attributes": json.dumps(
                               {"name": "rect", "x": x0, "y": y0, "width": x1 - x0,
                                "height": y1 - y0})}])
    x, _ = dataset(table, tmp_path, batch_size=1)[0]
    expected = corpus.expected_color(region.rgba, "rgb")
    assert np.abs(x[0].mean(axis=(0, 1)) - np.asarray(expected)).max() <= sample.tolerance + 2


def test_decode_time_failure_is_replaced_from_the_last_batch(tmp_path):
    corpus.write_truncated_jpeg(tmp_path)
    rows = good_rows(tmp_path, n=9)
    rows[0] = {**rows[0], "filename": "truncated.jpg"}
    ds = dataset(pd.DataFrame(rows), tmp_path, on_error="skip", shuffle=False, batch_size=4)
    sizes = [len(batch[0]) for batch in ds.iter_batches()]
    assert sizes == [4, 4]  # the first batch borrowed a row from the last (was 4, 4, 1)
    assert [p.kind for p in ds.skipped] == ["image_truncated"]


def test_configurable_pixel_limit(tmp_path):
    table = pd.DataFrame(good_rows(tmp_path, n=2))
    with pytest.raises(ImageReadError, match=r"max_image_pixels=100.*Raise `max_image_pixels`"):
        list(dataset(table, tmp_path, max_image_pixels=100).iter_batches())
    assert len(list(dataset(table, tmp_path, max_image_pixels=None).iter_batches())) == 1


def test_files_outside_image_dir_can_be_allowed(tmp_path):
    inside = tmp_path / "images"
    inside.mkdir()
    corpus.write_scene(tmp_path, "outside.png")
    table = pd.DataFrame(good_rows(inside, n=2))
    table.loc[1, "filename"] = "../outside.png"
    with pytest.raises(ImageReadError, match="outside image_dir"):
        dataset(table, inside)
    assert len(dataset(table, inside, allow_outside_image_dir=True).index) == 2


def test_via_rows_without_regions_are_counted_not_mixed_in(tmp_path, demo_csv):
    ds = RoiDataset(demo_csv, image_size=(8, 8))
    assert [r["filename"] for r in ds.rows_without_regions] == ["images/scene_0015.jpg"]
    assert "images/scene_0015.jpg" not in {Path(p).relative_to(demo_csv.parent).as_posix()
                                           for p in ds.index.paths}


CORRUPTIONS = ["ok", "missing", "empty", "truncated", "text", "outside", "degenerate",
               "json", "label"]


def corrupt(row: dict, how: str) -> dict:
    return {**row, **{
        "ok": {}, "missing": {"filename": "gone.png"}, "empty": {"filename": "empty.jpg"},
        "truncated": {"filename": "truncated.jpg"}, "text": {"filename": "not_an_image.jpg"},
        "outside": {"region_shape_attributes": box(y=9000)},
        "degenerate": {"region_shape_attributes": box(width=0)},
        "json": {"region_shape_attributes": "{"}, "label": {"name": "  "},
    }[how]}


@pytest.fixture(scope="module")
def dirty_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dirty")
    good_rows(folder)
    for writer in (corpus.write_empty_file, corpus.write_truncated_jpeg, corpus.write_text_as_jpg):
        writer(folder)
    return folder


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(CORRUPTIONS), min_size=1, max_size=14), st.booleans(),
       st.integers(1, 5))
def test_random_corruption_never_crashes_and_always_accounts(dirty_folder, kinds, validate, batch):
    base = good_rows(dirty_folder, n=1)[0]
    table = pd.DataFrame([corrupt(base, how) for how in kinds])
    try:
        ds = dataset(table, dirty_folder, on_error="skip", batch_size=batch)
        if validate:
            report = ds.validate(decode=True, progress=False)
            assert {p.row for p in report.errors} <= set(table.index)
    except RoiDatagenError as error:
        problems = len({p.row for p in error.problems})
        assert problems == len(table)  # nothing usable, and every row said why
        return
    for _ in range(2):
        served = [ds.index.row_label(r) for _, _, rows in ds._pass_batches() for r in rows.tolist()]
        ds.on_epoch_end()
        skipped = [p.row for p in ds.skipped]
        assert len(served) == len(set(served))
        assert len(skipped) == len(set(skipped))
        assert sorted(served + skipped) == list(table.index)
