"""RoiDataset as a user meets it: shapes, pixels, epochs, errors (no training here)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from conftest import COLOURS, SCENE_SIZE, scene_table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_roi_datagen import (
    AnnotationError,
    BoxError,
    ImageReadError,
    LabelError,
    LabelVocabulary,
    RoiDataset,
)


def make(table, folder, **kwargs):
    kwargs.setdefault("image_size", (16, 16))
    kwargs.setdefault("batch_size", 4)
    return RoiDataset(table, image_dir=folder, **kwargs)


def all_rows(ds):
    """Row indices served in one pass over the current epoch, via the pass path."""
    return [rows for _, _, rows in ds._pass_batches()]


def test_batches_are_arrays_of_the_documented_shapes(scenes):
    table, folder = scenes
    ds = make(table, folder, image_size=(20, 24), batch_size=5)
    x, (y_name, y_type) = ds[0]
    assert isinstance(x, np.ndarray) and x.shape == (5, 20, 24, 3) and x.dtype == np.float32
    assert y_name.shape == (5, 4) and y_name.dtype == np.float32
    assert y_type.shape == (5, 2)
    assert np.all(y_name.sum(axis=1) == 1)
    assert ds[len(ds) - 1][0].shape[0] == 12 - 5 * 2  # the tail batch keeps the rest


def test_each_crop_shows_its_rectangles_colour_and_label(scenes):
    table, folder = scenes
    ds = make(table, folder, shuffle=False, batch_size=12, label_mode="int", dtype="uint8")
    x, (y_name, _) = ds[0]
    assert x.dtype == np.uint8
    classes = ds.vocabularies["name"].classes
    for crop, code in zip(x, y_name):
        colour = COLOURS[classes[code]]
        assert np.abs(crop.astype(int) - colour).max() <= 1


def test_box_formats_and_box_columns_give_the_same_crops(scenes):
    table, folder = scenes
    shapes = [json.loads(s) for s in table.region_shape_attributes]
    width, height = SCENE_SIZE
    variants = {
        "xywh": [[s["x"], s["y"], s["width"], s["height"]] for s in shapes],
        "xyxy": [[s["x"], s["y"], s["x"] + s["width"], s["y"] + s["height"]] for s in shapes],
        "rel_xywh": [[s["x"] / width, s["y"] / height, s["width"] / width, s["height"] / height]
                     for s in shapes],
        "rel_xyxy": [[s["x"] / width, s["y"] / height, (s["x"] + s["width"]) / width,
                      (s["y"] + s["height"]) / height] for s in shapes],
    }
    reference = make(table, folder, shuffle=False, batch_size=12)[0][0]
    for box_format, boxes in variants.items():
        frame = table.drop(columns="region_shape_attributes").copy()
        frame[["a", "b", "c", "d"]] = np.asarray(boxes, dtype=float)
        ds = make(frame, folder, shuffle=False, batch_size=12, box_cols=("a", "b", "c", "d"),
                  box_format=box_format)
        np.testing.assert_allclose(ds[0][0], reference, atol=1.0, err_msg=box_format)
        frame["box"] = [json.dumps(b) for b in boxes]
        listed = make(frame, folder, shuffle=False, batch_size=12, box_col="box",
                      box_format=box_format)
        np.testing.assert_allclose(listed[0][0], reference, atol=1.0, err_msg=box_format)


@pytest.mark.parametrize(("n", "batch_size", "drop", "expected"), [
    (1, 4, False, 1), (3, 4, False, 1), (4, 4, False, 1), (5, 4, False, 2),
    (3, 4, True, None), (4, 4, True, 1), (5, 4, True, 1), (9, 4, True, 2),
])
def test_len_is_an_int_for_every_remainder(scenes, n, batch_size, drop, expected):
    table, folder = scenes
    kwargs = {"batch_size": batch_size, "drop_remainder": drop}
    if expected is None:
        with pytest.raises(ValueError, match="leaves no batch"):
            make(table.head(n), folder, **kwargs)
        return
    ds = make(table.head(n), folder, **kwargs)
    assert type(len(ds)) is int and len(ds) == expected
    sizes = [len(ds[i][0]) for i in range(len(ds))]
    assert sum(sizes) == (n - n % batch_size if drop else n)


def test_empty_table_is_a_clear_error(scenes):
    table, folder = scenes
    with pytest.raises(AnnotationError, match="no usable region rows"):
        make(table.head(0), folder)


def test_every_row_once_per_epoch_and_epochs_reshuffle(scenes):
    table, folder = scenes
    ds = make(table, folder, batch_size=5, seed=11)
    epochs = []
    for _ in range(3):
        rows = np.concatenate(all_rows(ds))
        assert sorted(rows.tolist()) == list(range(12))
        epochs.append(rows.tolist())
        ds.on_epoch_end()
    assert ds.epoch == 3
    assert epochs[0] != epochs[1] != epochs[2]
    again = make(table, folder, batch_size=5, seed=11)
    assert np.concatenate(all_rows(again)).tolist() == epochs[0]


def test_getitem_and_the_pass_serve_the_same_batches(scenes):
    table, folder = scenes
    ds = make(table, folder, batch_size=5, seed=2, workers=2)
    by_index = [ds[i] for i in range(len(ds))]
    by_pass = list(ds.iter_batches())
    assert len(by_pass) == len(by_index) == len(ds)
    for (x, ys), (x2, ys2) in zip(by_index, by_pass, strict=True):
        np.testing.assert_array_equal(x, x2)
        assert len(ys) == len(ys2) == 2
        for head, head2 in zip(ys, ys2, strict=True):
            np.testing.assert_array_equal(head, head2)


def _keras_reset(ds):
    """What Keras's `EpochIterator.reset()` does after fit's model-building peek."""
    assert ds.num_batches == len(ds)
    ds.on_epoch_end()


def test_a_dropped_peek_keeps_the_epoch_and_its_first_batch(scenes):
    table, folder = scenes
    ds = make(table, folder, batch_size=5, seed=2)
    first = next(ds.iter_batches())  # fit's model-building peek
    _keras_reset(ds)
    assert ds.epoch == 0 and ds.get_state()["rows"] == 0
    np.testing.assert_array_equal(next(ds.iter_batches())[0], first[0])


@pytest.mark.parametrize("batch_size", [12, 6])  # one batch, two batches
def test_a_peek_that_reads_the_whole_epoch_does_not_end_it(scenes, batch_size):
    table, folder = scenes
    ds = make(table, folder, batch_size=batch_size, seed=2)
    assert len(ds.index) == 12
    list(ds.iter_batches())  # a peek (plus a read-ahead) that happened to read every batch
    _keras_reset(ds)
    assert ds.epoch == 0
    for epoch in range(3):
        rows = [r for _, _, rows in ds._pass_batches() for r in rows.tolist()]
        assert rows == ds.plan(epoch).order.tolist()
        ds.on_epoch_end()
    assert ds.epoch == 3


def test_a_pass_cut_short_continues_where_it_stopped(scenes):
    table, folder = scenes
    ds = make(table, folder, batch_size=5, seed=2)
    passes = ds.iter_batches()
    next(passes)  # steps_per_epoch=1: one batch trained, then Keras's epoch ends
    ds.on_epoch_end()
    assert (ds.epoch, ds.get_state()["rows"]) == (0, 5)
    rest = [b for b in ds.iter_batches()]  # e.g. the next fit call
    assert len(rest) == len(ds) - 1
    ds.on_epoch_end()
    assert ds.epoch == 1


def test_dict_output_and_single_head_and_no_head(scenes):
    table, folder = scenes
    _, y = make(table, folder, output_format="dict")[0]
    assert set(y) == {"name", "type"}
    _, y = make(table, folder, y_cols=("name",))[0]
    assert isinstance(y, np.ndarray) and y.shape == (4, 4)
    assert len(make(table, folder, y_cols=())[0]) == 1


def test_class_weight_yields_per_head_sample_weights(scenes):
    table, folder = scenes
    ds = make(table, folder, shuffle=False, batch_size=12, label_mode="int",
              class_weight={"type": {"light": 3.0}})
    _, (_, y_type), (w_name, w_type) = ds[0]
    light = ds.vocabularies["type"].index("light")
    assert np.all(w_type[y_type == light] == 3.0) and np.all(w_type[y_type != light] == 1.0)
    assert np.all(w_name == 1.0)


def test_given_vocabulary_is_used_and_unknown_labels_name_their_row(scenes):
    table, folder = scenes
    vocab = LabelVocabulary(["white", "red", "green", "blue"], name="name")
    ds = make(table, folder, vocabularies={"name": vocab}, shuffle=False, label_mode="int")
    assert ds[0][1][0].tolist() == [1, 2, 3, 0]
    with pytest.raises(LabelError, match=r"row 3.*'white' is not in the given vocabulary"):
        make(table, folder, vocabularies={"name": ["red", "green", "blue"]})


def test_missing_image_is_reported_when_the_dataset_is_built(scenes):
    table, folder = scenes
    table.loc[5, "filename"] = "gone.png"
    with pytest.raises(ImageReadError, match=r"row 5, column 'filename'.*gone.png"):
        make(table, folder)


def test_skip_policy_leaves_bad_rows_out_and_lists_them(scenes):
    table, folder = scenes
    table.loc[5, "filename"] = "gone.png"
    table.loc[7, "region_shape_attributes"] = '{"name":"point","cx":3,"cy":4}'
    ds = make(table, folder, on_error="skip", batch_size=10)
    assert len(ds.index) == 10 and len(ds) == 1
    assert {(p.row, p.kind) for p in ds.skipped} == {(5, "missing_file"), (7, "shape_point")}


def test_bad_box_error_names_row_column_and_value(scenes):
    table, folder = scenes
    table.loc[2, "region_shape_attributes"] = '{"name":"rect","x":1,"y":1,"width":0,"height":5}'
    with pytest.raises(BoxError, match=r"row 2, column 'region_shape_attributes'.*width 0") as info:
        make(table, folder)
    assert info.value.problems[0].value == table.loc[2, "region_shape_attributes"]


def test_missing_label_column_lists_what_the_table_has(scenes):
    table, folder = scenes
    with pytest.raises(AnnotationError, match=r"no column\(s\) \['colour'\].*'filename'"):
        make(table, folder, y_cols=("name", "colour"))


def test_arguments_are_checked_before_any_io(tmp_path):
    missing = tmp_path / "nothing.csv"
    for kwargs, pattern in [
        ({"batch_size": 0}, "batch_size=0"), ({"image_size": (0, 5)}, "image_size"),
        ({"interpolation": "cubic"}, "interpolation='cubic'"), ({"color_mode": "cmyk"}, "color_mode"),
        ({"label_mode": "binary"}, "label_mode"), ({"dtype": "int64"}, "dtype"),
        ({"on_error": "ignore"}, "on_error"), ({"box_format": "cxcywh"}, "box_format"),
        ({"shard": (3, 2)}, "shard"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            RoiDataset(missing, **kwargs)


def test_dataset_pickles_and_resumes_the_same_batches(scenes):
    table, folder = scenes
    ds = make(table, folder, seed=4, workers=2, use_multiprocessing=True)
    ds.on_epoch_end()  # not served: no effect
    copy = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(copy[1][0], ds[1][0])
    assert "RoiDataset(rows=12, images=3" in repr(ds) and "seed=4" in repr(ds)


def test_users_table_is_not_modified(scenes):
    table, folder = scenes
    before = table.copy(deep=True)
    make(table, folder, on_error="skip")
    pd.testing.assert_frame_equal(table, before)


def test_duplicate_rows_are_kept_with_a_warning(scenes):
    table, folder = scenes
    doubled = pd.concat([table, table.iloc[[0]]], ignore_index=True)
    ds = make(doubled, folder)
    assert len(ds.index) == 13
    assert [w.kind for w in ds.warnings] == ["duplicate_row"]


def test_label_whitespace_is_stripped_and_reported(scenes):
    table, folder = scenes
    table.loc[0, "name"] = " red  "
    ds = make(table, folder)
    assert ds.vocabularies["name"].classes == ("blue", "green", "red", "white")
    assert [w.kind for w in ds.warnings] == ["label_whitespace"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(boxes=st.lists(st.tuples(*[st.floats(-200, 400, allow_nan=False)] * 4), min_size=1, max_size=6),
       box_format=st.sampled_from(["xywh", "xyxy"]))
def test_random_boxes_never_crash_and_never_crop_outside(scenes, boxes, box_format):
    _, folder = scenes
    frame = pd.DataFrame({"filename": "scene_0.png", "a": [b[0] for b in boxes],
                          "b": [b[1] for b in boxes], "c": [b[2] for b in boxes],
                          "d": [b[3] for b in boxes], "name": "x", "type": "y"})
    try:
        ds = make(frame, folder, box_cols=("a", "b", "c", "d"), box_format=box_format,
                  on_error="skip", batch_size=8, dtype="uint8")
    except AnnotationError as error:
        refused = len(error.problems)
        assert refused == len(frame)  # every row was refused, each said why
        return
    batches = list(ds.iter_batches())
    served = sum(len(b[0]) for b in batches)
    assert served + len(ds.skipped) == len(frame)
    assert all(b[0].shape[1:] == (16, 16, 3) for b in batches)
    # The scenes have no black pixel; sampling outside the image would give some.
    assert not any((b[0] == 0).all(axis=-1).any() for b in batches)


def test_image_dir_defaults_to_the_tables_folder(tmp_path):
    table = scene_table(tmp_path / "data")
    table.to_csv(tmp_path / "data" / "table.csv", index=False)
    ds = RoiDataset(tmp_path / "data" / "table.csv", image_size=(8, 8))
    assert len(ds.index) == 12
