"""Edges of the promises: shards, dtypes, seeds, labels Python equates, data formats, paths."""

from __future__ import annotations

import os

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import scene_table

from keras_roi_datagen import RoiDatagenError, RoiDataset


def make(folder, table=None, **kwargs):
    table = scene_table(folder) if table is None else table
    kwargs = {"image_size": (16, 16), "batch_size": 5, "seed": 4, **kwargs}
    return RoiDataset(table, image_dir=folder, **kwargs)


@pytest.mark.parametrize("dtype", [np.float32, "f4", "float32", np.dtype("float32")])
def test_every_spelling_of_float32_is_accepted(tmp_path, dtype):
    assert make(tmp_path, dtype=dtype)[0][0].dtype == np.float32


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True, 2**63])
def test_a_seed_numpy_cannot_take_is_refused_at_once(tmp_path, seed):
    with pytest.raises(ValueError, match=r"`seed` must be None or an integer.*Received: seed="):
        make(tmp_path, seed=seed)


def test_several_hosts_without_a_shared_seed_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"host 0 of 2.*same `seed`"):
        make(tmp_path, seed=None, shard=(0, 2))


def test_hosts_train_every_row_once_in_equal_padded_batches(tmp_path):
    hosts = [make(tmp_path, shard=(i, 2)) for i in range(2)]  # 12 rows, global batch 10
    assert {len(h) for h in hosts} == {2}
    trained = []
    for ds in hosts:
        assert not ds.has_partial_batch and ds.partial_batch_size is None
        for number in range(len(ds)):
            x, _, weights = ds[number]
            assert len(x) == 5 and all(len(w) == 5 for w in weights)
            planned = ds.plan().batch(number)
            trained += planned.rows[weights[0] > 0].tolist()
            np.testing.assert_array_equal(weights[0], weights[1])
    assert sorted(trained) == list(range(12))


def test_one_host_keeps_a_shorter_last_batch(tmp_path):
    ds = make(tmp_path, shard=(0, 1))
    assert ds.has_partial_batch and ds.partial_batch_size == 2
    assert len(ds[len(ds) - 1][0]) == 2 and len(ds[0]) == 2  # (x, y): no weights on one host


def test_channels_first_is_the_same_pixels_transposed(tmp_path):
    last = make(tmp_path, data_format="channels_last")[0][0]
    first = make(tmp_path, data_format="channels_first")[0][0]
    assert first.shape == (5, 3, 16, 16)
    np.testing.assert_array_equal(first, last.transpose(0, 3, 1, 2))


def test_data_format_defaults_to_keras_image_data_format(tmp_path):
    before = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        ds = make(tmp_path)
    finally:
        keras.config.set_image_data_format(before)
    assert ds.data_format == "channels_first" and ds[0][0].shape == (5, 3, 16, 16)
    with pytest.raises(ValueError, match="data_format"):
        make(tmp_path, data_format="nhwc")


def numeric_labels(folder, values):
    table = scene_table(folder)
    table["name"] = [values[i % len(values)] for i in range(len(table))]
    return table


def test_class_weight_keys_are_labels_never_indices(tmp_path):
    table = numeric_labels(tmp_path, [1, 2, 3])
    with pytest.raises(ValueError, match=r"'name' names 0.*classes are \[1, 2, 3\]"):
        make(tmp_path, table, class_weight={"name": {0: 5.0, 3: 7.0}})
    ds = make(tmp_path, table, class_weight={"name": {1: 5.0, 3: 7.0}}, shuffle=False)
    _, (y_name, _), (w_name, _) = ds[0]
    labels = np.asarray(ds.vocabularies["name"].classes)[y_name.argmax(axis=1)]
    np.testing.assert_array_equal(w_name, np.select([labels == 1, labels == 3], [5.0, 7.0], 1.0))


def test_booleans_and_numbers_in_one_column_are_an_error_naming_both(tmp_path):
    table = numeric_labels(tmp_path, [True, 1, 1.0, 2])
    with pytest.raises(ValueError, match=r"column 'name' mixes booleans and numbers.*True.*1"):
        make(tmp_path, table)


def test_each_label_column_has_its_own_table(tmp_path):
    table = numeric_labels(tmp_path, [True, False])
    table["type"] = [1, 2] * 6
    ds = make(tmp_path, table)
    assert ds.vocabularies["name"].classes == (False, True)
    assert ds.vocabularies["type"].classes == (1, 2)
    assert all(type(c) is int for c in ds.vocabularies["type"].classes)


def test_a_symlink_inside_image_dir_that_leads_out_is_refused(tmp_path):
    outside = tmp_path / "outside"
    scene_table(outside, n_images=1)
    images = tmp_path / "images"
    images.mkdir()
    os.symlink(outside / "scene_0.png", images / "linked.png")
    table = pd.DataFrame({"filename": ["linked.png"], "region_shape_attributes":
                          ['{"name": "rect", "x": 1, "y": 1, "width": 9, "height": 9}'],
                          "name": ["a"], "type": ["b"]})
    with pytest.raises(RoiDatagenError, match="outside image_dir"):
        RoiDataset(table, image_dir=images, image_size=(8, 8), seed=1)
    assert len(RoiDataset(table, image_dir=images, image_size=(8, 8), seed=1,
                          allow_outside_image_dir=True)[0][0]) == 1


def test_tensorflow_multi_worker_training_is_refused_with_the_reason(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow", reason="tensorflow is not installed in this environment")
    from keras_roi_datagen import UnsupportedSetupError

    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:2"]}, '
                                    '"task": {"type": "worker", "index": 1}}')
    ds = make(tmp_path)  # shard="auto" reads TF_CONFIG once TensorFlow is imported
    assert ds.shard == (1, 2)
    with pytest.raises(UnsupportedSetupError, match=r"host 1 of 2 under TensorFlow multi-worker"):
        ds.get_tf_dataset()


def test_predictions_come_back_in_table_order_without_padding(tmp_path):
    hosts = [make(tmp_path, shard=(i, 2), y_cols=("name",)) for i in range(2)]  # 12 rows, padded
    all_rows, all_values = [], []
    for ds in hosts:
        served = np.concatenate([ds.plan(0).batch(i).rows for i in range(len(ds))])
        fake = {"name": served.astype(float) * 10}  # what a model would say about each row
        rows, ordered = ds.predictions_in_table_order(fake)
        assert list(rows) == sorted(rows) and len(rows) == len(set(rows.tolist()))
        np.testing.assert_array_equal(ordered["name"], rows * 10.0)
        all_rows += rows.tolist()
        all_values += ordered["name"].tolist()
    assert sorted(all_rows) == list(range(12))
    with pytest.raises(ValueError, match="Predict over one whole epoch"):
        hosts[0].predictions_in_table_order(np.zeros(3))
